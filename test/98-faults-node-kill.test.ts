/**
 * Fault injection (issue 10): SIGKILL of a cluster node under load. Three nodes on a real etcd; four
 * persistent QoS 1 publishers (two v3.1.1, two v5) on n1 stream to persistent subscribers on n2 and n3. One
 * case kills the subscribers' node n2, the other the publishers' node n1, each mid-stream, and starts it again
 * as itself (same port, same store) while the load goes on; clients reconnect on their own, as devices do, and
 * MQTT.js sends again what a crash left unacknowledged. Every message a publisher got a PUBACK for reaches both
 * subscribers; duplicates (QoS 1 allows them) are counted apart. Test 60 covers one publisher and a killed
 * subscriber node; this adds several publishers, a killed publisher node, and a subscriber on a third node
 * that must keep receiving throughout.
 *
 * A third case keeps a node away for longer than its lease: it leaves the member list, but its routes (it has
 * a store, so its persistent sessions outlive it) stay, what is published elsewhere meanwhile waits in its
 * inbox, and everything acknowledged reaches its persistent session once it is back.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import type { IClientOptions, MqttClient } from 'mqtt';
import { reusablePort, startBroker, type RunningBroker } from './helpers/broker.js';
import { startEtcd, type RunningEtcd } from './helpers/etcd.js';
import { Ledger, since, Stream, waitFor } from './helpers/faults.js';
import { report } from './helpers/reliability.js';
import { strictConnect } from './helpers/strict/tap.js';

const T = { timeout: 60_000 };
const PUBLISHERS = 4;
const WINDOW = 20;
let etcd: RunningEtcd;
const nodes = new Map<string, RunningBroker>();
const ports = new Map<string, number>();
const dirs = new Map<string, string>();
const clients: MqttClient[] = [];
const cluster = `kill${process.pid}`;

/** n4 has a short lease, to be away for longer than it without a long test. */
function startNode(id: string, leaseTtl = 10): Promise<RunningBroker> {
  return startBroker({
    config: {
      cluster, broker: id, port: ports.get(id),
      // The default lease: a node killed and started again within it keeps its routes, so the others go on
      // writing to its inbox meanwhile.
      etcd: { endpoints: [etcd.endpoint], lease_ttl: leaseTtl },
      store: { dir: dirs.get(id) }, ws: { enable: false },
      mqtt: { max_queued: 100_000 },
    },
    timeoutMs: 30_000,
  }).then((b) => {
    nodes.set(id, b);
    return b;
  });
}

before(async () => {
  etcd = await startEtcd();
  for (const id of ['n1', 'n2', 'n3', 'n4']) {
    ports.set(id, await reusablePort());
    dirs.set(id, mkdtempSync(join(tmpdir(), `smq-${id}-`)));
  }
  await Promise.all(['n1', 'n2', 'n3'].map((id) => startNode(id)));
  await startNode('n4', 2);
});

after(async () => {
  for (const c of clients) c.end(true);
  await Promise.all([...nodes.values()].map((n) => n.stop('SIGKILL')));
  await etcd?.destroy();
});

/** A persistent client of one node that reconnects to it every 100 ms while it is away. */
async function persistent(node: string, clientId: string, version: 4 | 5): Promise<MqttClient> {
  const options: IClientOptions = {
    host: '127.0.0.1', port: ports.get(node), clientId, clean: false, protocolVersion: version,
    reconnectPeriod: 100, connectTimeout: 5000,
    ...(version === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}),
  };
  const c = strictConnect(options);
  clients.push(c);
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

/** Subscribes `c` to `filter` and records every delivery of it in `ledger`. */
async function subscriber(c: MqttClient, filter: string, ledger: Ledger): Promise<void> {
  const prefix = filter.slice(0, -1);
  c.on('message', (topic, payload) => {
    if (topic.startsWith(prefix) && !topic.endsWith('/probe')) ledger.receive(payload.toString());
  });
  await c.subscribeAsync(filter, { qos: 1 });
}

/** Publishes probes from `pub` until every ledger's client saw one: routes travel through etcd. */
async function routable(pub: MqttClient, subs: MqttClient[], topic: string): Promise<void> {
  const seen = new Set<MqttClient>();
  const listeners = subs.map((s) => {
    const l = (t: string): void => {
      if (t === topic) seen.add(s);
    };
    s.on('message', l);
    return l;
  });
  const timer = setInterval(() => pub.publish(topic, 'probe', { qos: 0 }), 50);
  try {
    await waitFor(`a probe on ${topic} at every subscriber`, () => seen.size === subs.length, 15_000);
  } finally {
    clearInterval(timer);
    subs.forEach((s, i) => s.off('message', listeners[i] as (t: string) => void));
  }
}

/**
 * One case: publishers on n1, subscribers on n2 and n3, `victim` killed once `killAt` messages were
 * acknowledged and started again at once; the streams end at `total` per publisher.
 */
async function killMidStream(name: string, victim: string, killAt: number, total: number): Promise<void> {
  const started = performance.now();
  const base = `${name}/`;
  const on2 = new Ledger();
  const on3 = new Ledger();
  const s2 = await persistent('n2', `${name}-s2`, 5);
  const s3 = await persistent('n3', `${name}-s3`, 4);
  await subscriber(s2, `${base}#`, on2);
  await subscriber(s3, `${base}#`, on3);
  const pubs: MqttClient[] = [];
  for (let i = 0; i < PUBLISHERS; i++) pubs.push(await persistent('n1', `${name}-p${i}`, i % 2 === 0 ? 4 : 5));
  await routable(pubs[0] as MqttClient, [s2, s3], `${base}probe`);

  const streams = pubs.map((p, i) => new Stream(p, { prefix: `p${i}-`, topic: `${base}p${i}`, window: WINDOW, total, ledgers: [on2, on3] }));
  const acked = (): number => streams.reduce((n, s) => n + s.ackedCount, 0);
  await waitFor(`${killAt} acknowledged before the kill`, () => acked() >= killAt, 20_000, () => `acked ${acked()}`);
  const ackedAtKill = acked();
  const n3AtKill = on3.received;
  const downAt = performance.now();
  await nodes.get(victim)?.stop('SIGKILL');
  // While n2 is away, n1 goes on acknowledging into its inbox in etcd; while n1 is away, nothing is sent.
  const node = await startNode(victim);
  const downMs = since(downAt);
  const n3WhileDown = on3.received - n3AtKill;
  // The subscriber on n3 is served while n2 is away (n1's publishers are away with n1).
  if (victim === 'n2') assert.ok(n3WhileDown > 0, 'n3\'s subscriber received nothing while n2 was away');
  await waitFor('every stream finished and acknowledged', () => streams.every((s) => s.sent === total && s.inFlight === 0), 40_000,
    () => streams.map((s) => `${s.sent}/${s.ackedCount}`).join(' '));
  for (const s of streams) assert.equal(s.error, null, `a publish was refused: ${String(s.error)}`);
  await waitFor('every acknowledged message at both subscribers', () => on2.complete() && on3.complete(), 30_000,
    () => `n2 missing ${on2.missing(5).join(',')} (${on2.acked.size - on2.received}), n3 missing ${on3.missing(5).join(',')} (${on3.acked.size - on3.received})`);
  assert.equal(node.proc.exitCode, null);
  for (const [id, n] of nodes) assert.equal(n.proc.exitCode, null, `${id} is running`);

  const ackedTotal = on2.acked.size;
  report(`SIGKILL of the ${victim === 'n1' ? 'publishers\'' : 'subscribers\''} node under load`, {
    load: `${PUBLISHERS} persistent QoS 1 publishers on n1 (window ${WINDOW}, ${total} msgs each) -> persistent subscribers on n2 and n3`,
    faults: `SIGKILL of ${victim} after ${ackedAtKill} acks, restarted as itself (down ${downMs} ms, n3 received ${n3WhileDown} meanwhile); ${Math.round(since(started) / 100) / 10} s`,
    acked: ackedTotal * 2,
    received: on2.received + on3.received,
    dup: on2.dup + on3.dup,
  });
  for (const c of [s2, s3, ...pubs]) c.end(true);
}

test('SIGKILL of the subscribers\' node n2 mid-stream: every acknowledged QoS 1 message reaches n2\'s and n3\'s persistent subscribers', T, async () => {
  await killMidStream('killsub', 'n2', 1000, 1500);
});

test('SIGKILL of the publishers\' node n1 mid-stream: the publishers resend what was unacknowledged, and every acknowledged message arrives', T, async () => {
  await killMidStream('killpub', 'n1', 1000, 1500);
});

test('a node away for longer than its lease: its routes stay, and everything acknowledged meanwhile reaches its persistent subscriber once it is back', T, async () => {
  const started = performance.now();
  const base = 'away/';
  const on4 = new Ledger();
  const on3 = new Ledger();
  const s4 = await persistent('n4', 'away-s4', 5);
  const s3 = await persistent('n3', 'away-s3', 4);
  await subscriber(s4, `${base}#`, on4);
  await subscriber(s3, `${base}#`, on3);
  const pub = await persistent('n1', 'away-p', 4);
  await routable(pub, [s4, s3], `${base}probe`);
  const kv = new Etcd3({ hosts: `http://${etcd.endpoint}` });
  try {
    const routes = `/smq/${cluster}/routes/n4/`;
    const phase = async (name: string, count: number): Promise<string[]> => {
      const s = new Stream(pub, { prefix: `${name}-`, topic: `${base}m`, window: WINDOW, total: count, ledgers: [on4, on3] });
      await s.settled(20_000).then(() => s.acked(count, 1));
      return Array.from({ length: count }, (_, i) => `${name}-${i}`);
    };
    await nodes.get('n4')?.stop('SIGKILL');
    // A: n4 is dead but its lease (2 s) still holds its routes: n1 writes to its inbox.
    const a = await phase('a', 300);
    // B: the lease expired and n1 saw n4 leave, but n4's routes outlive it (it has a store): n1 still writes to
    // its inbox.
    await nodes.get('n1')?.waitForLog((r) => r['msg'] === 'cluster member left' && r['member'] === 'n4', 15_000);
    assert.ok((await kv.getAll().prefix(routes).keys()).length > 0, 'n4\'s routes are still in etcd');
    const b = await phase('b', 300);
    // C: n4 is back as itself, its persistent session's routes with it.
    await startNode('n4', 2);
    await routable(pub, [s4], `${base}probe`);
    const c = await phase('c', 300);
    const all = [...a, ...b, ...c];
    await waitFor('everything at both subscribers', () => all.every((id) => on4.has(id)) && on3.complete(), 20_000,
      () => `n4 missing ${all.filter((id) => !on4.has(id)).slice(0, 5).join(',')}; n3 missing ${on3.missing(5).join(',')}`);
    report('a node down for longer than its lease (2 s)', {
      load: 'one persistent QoS 1 publisher on n1 -> persistent subscribers on n4 and n3, 3 x 300 msgs',
      faults: `SIGKILL of n4; 300 published within its lease, 300 after it expired (n4 out of the member list, its routes kept), 300 after its restart; ${Math.round(since(started) / 100) / 10} s`,
      acked: on4.acked.size + on3.acked.size,
      received: on4.received + on3.received,
      dup: on4.dup + on3.dup,
    });
    assert.equal(on3.received, on3.acked.size);
    assert.equal(on4.received, on4.acked.size);
  } finally {
    kv.close();
    for (const c of [s4, s3, pub]) c.end(true);
  }
});
