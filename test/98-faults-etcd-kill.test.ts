/**
 * Fault injection (issue 10): etcd killed with SIGKILL under load and started again on the same data. Three
 * nodes; on each, a persistent QoS 1 publisher streams to persistent subscribers on all three (so every message
 * crosses to two other nodes and stays on one), and a QoS 2 publisher on n1 streams to n3. Test 60 stops etcd
 * for 2 s under one publisher; this adds load in every direction, an outage longer than the nodes' lease, QoS 2,
 * and what local clients get meanwhile: every node keeps serving its own clients (QoS 0 and QoS 1 that stay on
 * the node are delivered during the outage), acknowledgements wait until each node sees the routes again (issue
 * 17), and every acknowledged message arrives once etcd is back.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import { reusablePort, startBroker, type RunningBroker } from './helpers/broker.js';
import { startEtcd, type RunningEtcd } from './helpers/etcd.js';
import { Ledger, since, Stream, waitFor, within } from './helpers/faults.js';
import { report } from './helpers/reliability.js';
import { strictConnect } from './helpers/strict/tap.js';

const IDS = ['n1', 'n2', 'n3'] as const;
const LEASE_TTL = 2;
let etcd: RunningEtcd;
const nodes = new Map<string, RunningBroker>();
const ports = new Map<string, number>();
const clients: MqttClient[] = [];
const cluster = `etcdkill${process.pid}`;

before(async () => {
  etcd = await startEtcd();
  for (const id of IDS) ports.set(id, await reusablePort());
  await Promise.all(IDS.map((id) => startBroker({
    config: {
      cluster, broker: id, port: ports.get(id),
      etcd: { endpoints: [etcd.endpoint], lease_ttl: LEASE_TTL },
      store: { dir: mkdtempSync(join(tmpdir(), `smq-${id}-`)) }, ws: { enable: false },
      mqtt: { max_queued: 100_000 },
    },
    timeoutMs: 30_000,
  }).then((b) => nodes.set(id, b))));
});

after(async () => {
  for (const c of clients) c.end(true);
  await Promise.all([...nodes.values()].map((n) => n.stop('SIGKILL')));
  await etcd?.destroy();
});

async function client(node: string, clientId: string, options: IClientOptions = {}): Promise<MqttClient> {
  const c = strictConnect({ host: '127.0.0.1', port: ports.get(node), clientId, reconnectPeriod: 100, connectTimeout: 5000, ...options });
  clients.push(c);
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

/** One round trip between two clients of the same node (PUBACK and delivery), within `timeoutMs`: its time in ms. */
/** Resolves when `sub` receives `payload` on `topic`. */
function delivered(sub: MqttClient, topic: string, payload: string): Promise<void> {
  return new Promise<void>((resolve) => {
    const on = (t: string, p: Buffer): void => {
      if (t === topic && p.toString() === payload) {
        sub.off('message', on);
        resolve();
      }
    };
    sub.on('message', on);
  });
}

async function localRoundTrip(pub: MqttClient, sub: MqttClient, topic: string, payload: string, qos: 0 | 1, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  const got = new Promise<void>((resolve) => {
    const on = (t: string, p: Buffer): void => {
      if (t === topic && p.toString() === payload) {
        sub.off('message', on);
        resolve();
      }
    };
    sub.on('message', on);
  });
  await within(Promise.all([got, pub.publishAsync(topic, payload, { qos })]), timeoutMs, `QoS ${qos} on ${topic} (${payload})`);
  return since(t0);
}

test('etcd SIGKILLed for longer than the lease under load in every direction: local clients are served meanwhile, and every acknowledged QoS 1/2 message arrives', { timeout: 90_000 }, async () => {
  const started = performance.now();
  const ledgers = new Map<string, Ledger>(IDS.map((id) => [id, new Ledger()]));
  const q2 = new Ledger();
  for (const id of IDS) {
    const sub = await client(id, `ek-sub-${id}`, { clean: false });
    const ledger = ledgers.get(id) as Ledger;
    sub.on('message', (t, p) => {
      if (t.startsWith('ek/load/')) ledger.receive(p.toString());
      else if (t === 'ek/q2') q2.receive(p.toString());
    });
    await sub.subscribeAsync('ek/load/#', { qos: 1 });
    if (id === 'n3') await sub.subscribeAsync('ek/q2', { qos: 2 });
  }
  // Local pairs: a publisher and a clean subscriber on the same node, on a topic nobody else has.
  const local = new Map<string, { pub: MqttClient; sub: MqttClient }>();
  for (const id of IDS) {
    const sub = await client(id, `ek-lsub-${id}`);
    await sub.subscribeAsync(`ek/local/${id}`, { qos: 1 });
    local.set(id, { pub: await client(id, `ek-lpub-${id}`), sub });
  }
  // Routes travel through etcd: QoS 0 probes from each node's publisher until every subscriber saw one of each.
  const pubs = new Map<string, MqttClient>();
  for (const id of IDS) pubs.set(id, await client(id, `ek-pub-${id}`, { clean: false }));
  const timer = setInterval(() => {
    for (const [id, p] of pubs) p.publish(`ek/load/${id}`, `probe-${id}`, { qos: 0 });
  }, 50);
  try {
    await waitFor('every subscriber got every node\'s probe', () => IDS.every((id) => IDS.every((from) => (ledgers.get(id) as Ledger).has(`probe-${from}`))), 15_000);
  } finally {
    clearInterval(timer);
  }

  const total = 3000;
  const streams = IDS.map((id) => new Stream(pubs.get(id) as MqttClient, {
    prefix: `${id}-`, topic: `ek/load/${id}`, window: 20, total, ledgers: [...ledgers.values()],
  }));
  const q2pub = await client('n1', 'ek-q2pub', { clean: false });
  const q2stream = new Stream(q2pub, { prefix: 'q2-', topic: 'ek/q2', qos: 2, window: 10, total: 1000, ledgers: [q2] });
  const acked = (): number => streams.reduce((n, s) => n + s.ackedCount, 0);
  await waitFor('load under way', () => acked() >= 1500, 20_000, () => `acked ${acked()}`);

  const killedAt = performance.now();
  const ackedAtKill = acked();
  await etcd.stop(); // SIGKILL
  // Served meanwhile: QoS 0 and QoS 1 between clients of the same node, on every node. A QoS 1 message is
  // delivered at once, but acknowledged only once the node sees the routes again (issue 17: a node that cannot
  // trust its view does not acknowledge what it may have routed wrongly).
  const localMs: number[] = [];
  const localAcks: Promise<unknown>[] = [];
  let localAcked = 0;
  for (const id of IDS) {
    const { pub, sub } = local.get(id) as { pub: MqttClient; sub: MqttClient };
    localMs.push(await localRoundTrip(pub, sub, `ek/local/${id}`, 'qos0 during the outage', 0, 5000));
    const ack = pub.publishAsync(`ek/local/${id}`, 'qos1 during the outage', { qos: 1 }).then(() => { localAcked++; });
    localAcks.push(ack);
    const t0 = performance.now();
    await within(delivered(sub, `ek/local/${id}`, 'qos1 during the outage'), 5000, `local QoS 1 delivery on ${id}`);
    localMs.push(since(t0));
  }
  // Cross-node acknowledgements wait for etcd: the streams stall with full windows.
  await waitFor('cross-node streams held', () => streams.every((s) => s.inFlight === 20), 10_000,
    () => streams.map((s) => s.inFlight).join(' '));
  const heldAt = acked();
  // The outage lasts twice the lease.
  await waitFor('an outage of twice the lease', () => since(killedAt) >= 2 * LEASE_TTL * 1000, 10_000);
  assert.equal(acked(), heldAt, 'no cross-node acknowledgement while etcd is away');
  assert.equal(localAcked, 0, 'no acknowledgement while the nodes cannot see the routes');
  await etcd.restart();
  const outageMs = since(killedAt);
  const backAt = performance.now();
  await within(Promise.all(localAcks), 10_000, 'the local QoS 1 acknowledgements once etcd is back');
  const ackResumeMs = since(backAt);

  await waitFor('every stream finished', () => streams.every((s) => s.sent === total && s.inFlight === 0) && q2stream.sent === 1000 && q2stream.inFlight === 0, 60_000,
    () => `${streams.map((s) => `${s.sent}/${s.ackedCount}`).join(' ')} q2 ${q2stream.sent}/${q2stream.ackedCount}`);
  for (const s of [...streams, q2stream]) assert.equal(s.error, null);
  await waitFor('every acknowledged message at every subscriber', () => [...ledgers.values(), q2].every((l) => l.complete()), 30_000,
    () => [...ledgers.entries()].map(([id, l]) => `${id} missing ${l.acked.size - l.received}`).join(', '));
  for (const [id, n] of nodes) assert.equal(n.proc.exitCode, null, `${id} is running`);
  assert.equal(q2.dup, 0, 'QoS 2: exactly once');

  const all = [...ledgers.values()];
  const renewed = [...nodes.values()].filter((n) => n.logs.some((r) => r['msg'] === 'cluster lease renewed')).length;
  report('etcd SIGKILLed under load', {
    load: `3 nodes, a persistent QoS 1 publisher on each (window 20, ${total} msgs) -> a persistent subscriber on each (1 local + 2 remote copies), QoS 2 n1 -> n3 (1000)`,
    faults: `SIGKILL of etcd after ${ackedAtKill} acks, ${outageMs} ms away (lease ${LEASE_TTL} s; ${renewed} of 3 nodes took a new lease); local QoS 0/1 deliveries meanwhile ${Math.max(...localMs)} ms at most, their QoS 1 acknowledgements ${ackResumeMs} ms after etcd was back; ${Math.round(since(started) / 100) / 10} s`,
    acked: all.reduce((n, l) => n + l.acked.size, 0) + q2.acked.size,
    received: all.reduce((n, l) => n + l.received, 0) + q2.received,
    dup: all.reduce((n, l) => n + l.dup, 0) + q2.dup,
  });
});
