// Aedes as a stand-alone broker process, so it is measured like smq and Mosquitto (its own process, its own
// core). Usage: node bench/lib/aedes-server.mjs <port> [tlsPort certFile keyFile]
// Prints "ready" on stdout once every listener accepts connections. Stock settings: in-memory persistence,
// no limits (Aedes has no queue limit to raise).
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { Aedes } from 'aedes';

const [port, tlsPort, certFile, keyFile] = process.argv.slice(2);
if (!port) {
  console.error('usage: node bench/lib/aedes-server.mjs <port> [tlsPort certFile keyFile]');
  process.exit(2);
}

const broker = await Aedes.createBroker();
const servers = [net.createServer(broker.handle)];
if (tlsPort) {
  servers.push(tls.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, broker.handle));
}
const ports = [Number(port), Number(tlsPort)];
await Promise.all(servers.map((s, i) => new Promise((resolve, reject) => {
  s.once('error', reject);
  s.listen(ports[i], '127.0.0.1', resolve);
})));
console.log('ready');

function shutdown() {
  for (const s of servers) s.close();
  broker.close(() => process.exit(0));
  // Open client connections keep close() from finishing; the harness waits only 2 s anyway.
  setTimeout(() => process.exit(0), 500).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
