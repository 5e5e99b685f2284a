/**
 * Fault injection (issue 10): one client floods. A separate process (so that it competes for the CPU as another
 * machine's client would not, but does not stall the test's own clients' event loop) writes QoS 0 PUBLISH
 * packets as fast as its socket takes them, to a topic with a subscriber that reads everything; meanwhile four
 * ordinary publishers send QoS 1 messages every 20 ms, each to its own subscriber. The service property
 * asserted: their messages all arrive (none acknowledged is lost) with end-to-end latency p99 under 1 s and at
 * most 3 s, with the default configuration (no `limits.publish_rate`), and the broker survives. Generous bounds
 * on purpose: this is not a latency benchmark (bench/ has those), it shows one client cannot starve the others.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { Ledger, rssBytes, since, waitFor } from './helpers/faults.js';
import { RawClient } from './helpers/raw.js';
import { report } from './helpers/reliability.js';
import { strictConnect } from './helpers/strict/tap.js';

const FLOOD_MS = 6000;
const VICTIMS = 4;
const EVERY_MS = 20;
const P99_LIMIT_MS = 1000;
const MAX_LIMIT_MS = 3000;

/**
 * The flooder: CONNECT (3.1.1, clean), then one 64-byte QoS 0 PUBLISH written over and over, waiting for
 * 'drain' only when the socket says so, for `ms`; prints how many it wrote. Packets are built by hand so that the
 * child needs nothing but Node.
 */
const FLOODER = `
const net = require('node:net');
const [port, topic, ms] = process.argv.slice(1);
const varint = (n) => { const b = []; do { let d = n % 128; n = Math.floor(n / 128); if (n > 0) d |= 128; b.push(d); } while (n > 0); return Buffer.from(b); };
const str = (s) => { const b = Buffer.from(s); return Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b]); };
const packet = (first, body) => Buffer.concat([Buffer.from([first]), varint(body.length), body]);
const connectPacket = packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([4, 2, 0, 60]), str('flooder')]));
const one = packet(0x30, Buffer.concat([str(topic), Buffer.alloc(64, 97)]));
const batch = Buffer.concat(Array(64).fill(one));
const s = net.connect(Number(port), '127.0.0.1', () => {
  s.write(connectPacket);
  s.once('data', () => {
    const end = Date.now() + Number(ms);
    let sent = 0;
    const pump = () => {
      while (Date.now() < end) {
        sent += 64;
        if (!s.write(batch)) { s.once('drain', pump); return; }
      }
      process.stdout.write(String(sent));
      s.end();
    };
    pump();
  });
});
s.on('data', () => {});
s.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

let broker: RunningBroker;
const clients: MqttClient[] = [];
const children: ChildProcess[] = [];

before(async () => {
  broker = await startBroker({ config: { ws: { enable: false } } });
});

after(async () => {
  for (const c of clients) c.end(true);
  for (const c of children) c.kill('SIGKILL');
  await broker?.stop();
});

async function mqttClient(clientId: string): Promise<MqttClient> {
  const c = strictConnect({ host: '127.0.0.1', port: broker.port, clientId, reconnectPeriod: 0 });
  clients.push(c);
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

test('one client floods as fast as it can: the others\' QoS 1 messages all arrive with bounded latency, and the broker survives', { timeout: 60_000 }, async () => {
  const started = performance.now();
  // The flood's subscriber reads everything and keeps nothing.
  const { client: sink } = await RawClient.connected(broker.port, 4, { clientId: 'flood-sink' });
  sink.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood/x', qos: 0 }] });
  await sink.next('suback');
  let sunk = 0;
  sink.socket.removeAllListeners('data');
  sink.socket.on('data', (d: Buffer) => { sunk += d.length; });

  const ledger = new Ledger();
  const latencies: number[] = [];
  const ackMs: number[] = [];
  const pairs: { pub: MqttClient; topic: string }[] = [];
  for (let i = 0; i < VICTIMS; i++) {
    const topic = `victim/${i}`;
    const sub = await mqttClient(`victim-sub-${i}`);
    sub.on('message', (t, p) => {
      if (t !== topic) return;
      const [id, at] = p.toString().split(' ') as [string, string];
      ledger.receive(id);
      latencies.push(performance.now() - Number(at));
    });
    await sub.subscribeAsync(topic, { qos: 1 });
    pairs.push({ pub: await mqttClient(`victim-pub-${i}`), topic });
  }

  const pid = broker.proc.pid as number;
  const baseRss = rssBytes(pid);
  const flooder = spawn(process.execPath, ['-e', FLOODER, String(broker.port), 'flood/x', String(FLOOD_MS)], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(flooder);
  let floodOut = '';
  let floodErr = '';
  flooder.stdout!.on('data', (d: Buffer) => { floodOut += d.toString(); });
  flooder.stderr!.on('data', (d: Buffer) => { floodErr += d.toString(); });
  const floodDone = new Promise<number | null>((resolve) => flooder.once('exit', (code) => resolve(code)));
  // The victims start once the flood is on: bytes reach the sink.
  await waitFor('the flood under way', () => sunk > 1_000_000, 10_000);

  let n = 0;
  let maxRss = baseRss;
  const timer = setInterval(() => {
    maxRss = Math.max(maxRss, rssBytes(pid));
    for (const { pub, topic } of pairs) {
      const id = `v${n++}`;
      const t0 = performance.now();
      pub.publish(topic, `${id} ${t0}`, { qos: 1 }, (err) => {
        if (err) return;
        ackMs.push(performance.now() - t0);
        ledger.ack(id);
      });
    }
  }, EVERY_MS);
  const code = await floodDone;
  clearInterval(timer);
  const flooded = Number(floodOut);
  assert.equal(code, 0, `the flooder failed: ${floodErr}`);
  await waitFor('every victim message acknowledged', () => ledger.acked.size === n, 10_000, () => `${ledger.acked.size}/${n}`);
  await waitFor('every acknowledged victim message delivered', () => ledger.complete(), 10_000, () => `missing ${ledger.acked.size - ledger.received}`);

  const sorted = [...latencies].sort((a, b) => a - b);
  const p50 = Math.round(percentile(sorted, 0.5));
  const p99 = Math.round(percentile(sorted, 0.99));
  const max = Math.round(sorted[sorted.length - 1] ?? 0);
  const ackP99 = Math.round(percentile([...ackMs].sort((a, b) => a - b), 0.99));
  assert.equal(broker.proc.exitCode, null, 'the broker is running');
  const fresh = await RawClient.connected(broker.port, 5);
  fresh.client.destroy();
  assert.ok(p99 <= P99_LIMIT_MS, `victim latency p99 ${p99} ms over ${P99_LIMIT_MS} ms`);
  assert.ok(max <= MAX_LIMIT_MS, `victim latency max ${max} ms over ${MAX_LIMIT_MS} ms`);
  report('one client floods as fast as it can', {
    load: `a flooder process writing 64-byte QoS 0 PUBLISHes for ${FLOOD_MS / 1000} s to a reading subscriber; ${VICTIMS} QoS 1 publishers every ${EVERY_MS} ms, each to its own subscriber`,
    faults: `${flooded} messages flooded (${Math.round(flooded / (FLOOD_MS / 1000))} msgs/s); victims end to end p50 ${p50} ms, p99 ${p99} ms, max ${max} ms (bounds ${P99_LIMIT_MS}/${MAX_LIMIT_MS}), PUBACK p99 ${ackP99} ms; broker RSS ${Math.round(baseRss / 1e6)} -> ${Math.round(maxRss / 1e6)} MB; ${Math.round(since(started) / 100) / 10} s`,
    acked: ledger.acked.size,
    received: ledger.received,
    dup: ledger.dup,
  });
  sink.destroy();
});
