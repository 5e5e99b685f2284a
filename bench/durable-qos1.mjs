// The cost of durability: QoS 1 throughput into a persistent session with the LMDB store (fsync, write) versus
// memory only. 10 publishers (100 messages in flight each) -> 1 persistent subscriber that acknowledges
// everything (in-flight window 1,000, queue 1M, so nothing is dropped). Prints msgs/s acknowledged and delivered. Usage: node bench/durable-qos1.mjs [seconds]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt-packet';

const SECONDS = Number(process.argv[2] ?? 5);
const ROOT = new URL('..', import.meta.url).pathname;

async function startBroker(store) {
  const dir = mkdtempSync(join(tmpdir(), 'smq-bench-'));
  const file = join(dir, 'smq.yaml');
  const storeYaml = store ? `store:\n  dir: ${join(dir, 'data')}\n  durability: ${store}\n` : '';
  writeFileSync(file, `port: 0\nws:\n  enable: false\nhttp:\n  enable: false\nsys_interval: 0\nmqtt:\n  max_inflight: 1000\n  max_queued: 1000000\nlog:\n  level: info\n${storeYaml}`);
  const proc = spawn(process.execPath, [join(ROOT, 'bin/smq.js'), '-c', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    proc.stdout.on('data', (d) => {
      buf += d;
      for (const line of buf.split('\n')) {
        if (line.includes('"broker ready"')) resolve(JSON.parse(line).listeners.find((l) => l.transport === 'tcp').port);
      }
    });
    proc.once('exit', (c) => reject(new Error(`broker exited ${c}`)));
  });
  return { port, stop: () => { proc.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }); } };
}

function client(port, connect, onPacket) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.setNoDelay(true);
      const p = mqtt.parser({ protocolVersion: 4 });
      p.on('packet', (pkt) => (pkt.cmd === 'connack' ? resolve(s) : onPacket(s, pkt)));
      s.on('data', (d) => p.parse(d));
      s.write(mqtt.generate({ cmd: 'connect', protocolVersion: 4, keepalive: 0, ...connect }));
    });
  });
}

async function run(store) {
  const broker = await startBroker(store);
  let delivered = 0;
  let acked = 0;
  let subacked;
  const suback = new Promise((r) => { subacked = r; });
  const sub = await client(broker.port, { clientId: 'bench-sub', clean: false }, (s, pkt) => {
    if (pkt.cmd === 'suback') subacked();
    if (pkt.cmd === 'publish') {
      delivered++;
      s.write(mqtt.generate({ cmd: 'puback', messageId: pkt.messageId }));
    }
  });
  sub.write(mqtt.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bench/#', qos: 1 }] }));
  await suback;
  let stop = false;
  const payload = Buffer.alloc(64);
  const pubs = [];
  for (let i = 0; i < 10; i++) {
    let next = 1;
    const send = (s) => {
      const id = next;
      next = next === 65535 ? 1 : next + 1;
      s.write(mqtt.generate({ cmd: 'publish', topic: `bench/${i}`, payload, qos: 1, retain: false, dup: false, messageId: id }));
    };
    const s = await client(broker.port, { clientId: `bench-pub-${i}`, clean: true }, (sock, pkt) => {
      if (pkt.cmd !== 'puback') return;
      acked++;
      if (!stop) send(sock);
    });
    pubs.push(s);
    for (let k = 0; k < 100; k++) send(s);
  }
  const start = Date.now();
  const a0 = acked;
  const d0 = delivered;
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const secs = (Date.now() - start) / 1000;
  const result = { store: store ?? 'memory', ackedPerSec: Math.round((acked - a0) / secs), deliveredPerSec: Math.round((delivered - d0) / secs) };
  stop = true;
  for (const s of [...pubs, sub]) s.destroy();
  broker.stop();
  return result;
}

const results = [];
for (const store of [null, 'fsync', 'write', 'none']) results.push(await run(store));
const mem = results[0].ackedPerSec;
console.log('| store | QoS 1 acked/s | delivered/s | vs memory |');
console.log('|---|--:|--:|--:|');
for (const r of results) console.log(`| ${r.store} | ${r.ackedPerSec} | ${r.deliveredPerSec} | ${(r.ackedPerSec / mem).toFixed(2)}x |`);
