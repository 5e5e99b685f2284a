// Free loopback ports for the brokers under test. Mosquitto cannot report a port it picked itself, so the
// harness picks every port the same way for all three brokers: bind port 0, read it, close, hand it out.
import net from 'node:net';

// Ports handed out in this process, so two listeners of one broker never get the same one even when the
// kernel offers a just-closed port again.
const given = new Set();

function probe() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago and that this process has not handed out before. */
export async function freePort() {
  for (let i = 0; i < 50; i++) {
    const port = await probe();
    if (!given.has(port)) {
      given.add(port);
      return port;
    }
  }
  throw new Error('no free port found in 50 tries');
}
