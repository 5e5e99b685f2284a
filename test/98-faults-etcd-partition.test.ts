/**
 * Fault injection (issue 10): one node cut off from etcd while the rest of the cluster is not. The node's
 * `etcd.endpoints` is a TCP proxy the test controls (helpers/proxy.ts); cutting it resets the node's etcd
 * connections and every new one, as a firewall rejecting it would, while etcd and the other node stay up.
 *
 * - A cut shorter than the node's lease, under QoS 1 load both ways: the cut-off node serves its own clients,
 *   its acknowledgements of messages for the other node wait (held, not refused), the other node goes on writing
 *   to the cut-off node's inbox; once the cut heals everything acknowledged arrives.
 * - A cut longer than the lease: the node leaves the member list but its routes stay (they outlive the lease),
 *   so what is published on the other node meanwhile waits in its inbox; it takes a new lease once it can, and
 *   everything acknowledged either way arrives.
 * - A node that starts cut off: not ready (/readyz 503) until it has joined, serving local clients meanwhile.
 *
 * /readyz of a node that has joined stays 200 through a cut: readiness follows joining (broker.ts notReady),
 * so a partitioned pod stays in its Service and keeps serving the clients connected to it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import { httpBase, startBroker, type RunningBroker } from './helpers/broker.js';
import { startEtcd, type RunningEtcd } from './helpers/etcd.js';
import { Ledger, since, Stream, waitFor, within } from './helpers/faults.js';
import { startProxy, type TcpProxy } from './helpers/proxy.js';
import { report } from './helpers/reliability.js';
import { strictConnect } from './helpers/strict/tap.js';

const T = { timeout: 60_000 };
let etcd: RunningEtcd;
/** n2: straight to etcd, the rest of the cluster. */
let n2: RunningBroker;
const brokers: RunningBroker[] = [];
const proxies: TcpProxy[] = [];
const clients: MqttClient[] = [];
const cluster = `part${process.pid}`;

/** A node whose etcd is `endpoint`, with its HTTP service on. */
async function startNode(id: string, endpoint: string, leaseTtl: number): Promise<RunningBroker> {
  const b = await startBroker({
    config: {
      cluster, broker: id,
      etcd: { endpoints: [endpoint], lease_ttl: leaseTtl },
      store: { dir: mkdtempSync(join(tmpdir(), `smq-${id}-`)) }, ws: { enable: false },
      http: { enable: true, host: '127.0.0.1', port: 0 },
      mqtt: { max_queued: 100_000 },
    },
    timeoutMs: 30_000,
  });
  brokers.push(b);
  return b;
}

before(async () => {
  etcd = await startEtcd();
  n2 = await startNode('n2', etcd.endpoint, 10);
});

after(async () => {
  for (const c of clients) c.end(true);
  await Promise.all(brokers.map((b) => b.stop('SIGKILL')));
  await Promise.all(proxies.map((p) => p.close()));
  await etcd?.destroy();
});

async function client(node: RunningBroker, clientId: string, options: IClientOptions = {}): Promise<MqttClient> {
  const c = strictConnect({ host: '127.0.0.1', port: node.port, clientId, reconnectPeriod: 100, connectTimeout: 5000, ...options });
  clients.push(c);
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

/** Records deliveries of `filter` (message ids are the payloads) in `ledger`. */
async function subscribe(c: MqttClient, filter: string, ledger: Ledger): Promise<void> {
  const prefix = filter.slice(0, -1);
  c.on('message', (t, p) => {
    if (t.startsWith(prefix)) ledger.receive(p.toString());
  });
  await c.subscribeAsync(filter, { qos: 1 });
}

/** QoS 0 probes from `pub` on `topic` until `ledger` saw one: a route known cluster-wide. */
async function routable(pub: MqttClient, topic: string, ledger: Ledger): Promise<void> {
  let n = 0;
  const timer = setInterval(() => pub.publish(topic, `probe${n++}`, { qos: 0 }), 50);
  try {
    await waitFor(`a probe on ${topic}`, () => Array.from({ length: n }, (_, i) => `probe${i}`).some((id) => ledger.has(id)), 15_000);
  } finally {
    clearInterval(timer);
  }
}

async function readyz(b: RunningBroker): Promise<number> {
  return (await fetch(`${await httpBase(b)}/readyz`)).status;
}

/**
 * A QoS 0 and a QoS 1 message between two clients of `b`, cut off from etcd: both are delivered at once (`ms`, the
 * longer); the QoS 1 acknowledgement (`acked`) waits until `b` sees the cluster's routes again (issue 17).
 */
async function localService(b: RunningBroker, name: string): Promise<{ ms: number; acked: Promise<void>; ackedYet: () => boolean }> {
  const sub = await client(b, `${name}-lsub`);
  const pub = await client(b, `${name}-lpub`);
  await sub.subscribeAsync(`${name}/local`, { qos: 1 });
  let worst = 0;
  let done = false;
  let acked: Promise<void> = Promise.resolve();
  for (const qos of [0, 1] as const) {
    const t0 = performance.now();
    const got = new Promise<void>((resolve) => sub.once('message', () => resolve()));
    const ack = pub.publishAsync(`${name}/local`, `qos${qos}`, { qos }).then(() => { if (qos === 1) done = true; });
    if (qos === 0) await within(Promise.all([got, ack]), 5000, `a local QoS 0 round trip on ${name}`);
    else {
      await within(got, 5000, `a local QoS 1 delivery on ${name}`);
      acked = ack.then(() => { sub.end(true); pub.end(true); });
    }
    worst = Math.max(worst, since(t0));
  }
  return { ms: worst, acked, ackedYet: () => done };
}

/**
 * Publishers on both sides of the cut: `out` on the cut-off node to a subscriber on n2, `in` on n2 to a
 * persistent subscriber on the cut-off node.
 */
async function twoWay(cutOff: RunningBroker, name: string, intoTotal: number): Promise<{ toN2: Ledger; toCut: Ledger; out: Stream; into: Stream; pub2: MqttClient }> {
  const toN2 = new Ledger();
  const toCut = new Ledger();
  await subscribe(await client(n2, `${name}-s2`, { clean: false }), `${name}/out/#`, toN2);
  await subscribe(await client(cutOff, `${name}-sc`, { clean: false }), `${name}/in/#`, toCut);
  const pubCut = await client(cutOff, `${name}-pc`, { clean: false });
  const pub2 = await client(n2, `${name}-p2`, { clean: false });
  await routable(pubCut, `${name}/out/m`, toN2);
  await routable(pub2, `${name}/in/m`, toCut);
  const out = new Stream(pubCut, { prefix: 'out-', topic: `${name}/out/m`, window: 20, total: 3000, ledgers: [toN2] });
  const into = new Stream(pub2, { prefix: 'in-', topic: `${name}/in/m`, window: 20, total: intoTotal, ledgers: [toCut] });
  await waitFor('load under way', () => out.ackedCount >= 500 && into.ackedCount >= Math.min(500, intoTotal), 20_000);
  return { toN2, toCut, out, into, pub2 };
}

test('a node cut off from etcd for less than its lease: it serves its own clients, holds cross-node acknowledgements, and every acknowledged QoS 1 message arrives both ways after the cut', T, async () => {
  const started = performance.now();
  const proxy = await startProxy({ port: Number(etcd.endpoint.split(':')[1]) });
  proxies.push(proxy);
  const n1 = await startNode('n1', proxy.endpoint, 10);
  const { toN2, toCut, out, into } = await twoWay(n1, 'short', 1_000_000);

  const cutAt = performance.now();
  const logsAtCut = n1.logs.length;
  proxy.cut();
  // Held, not refused: once an inbox write failed (the one in flight at the cut settled), n1 acknowledges
  // nothing that crosses nodes, and its publisher stalls on a full window.
  await n1.waitForLog((r) => n1.logs.indexOf(r) >= logsAtCut && r['msg'] === 'cluster: inbox write failed: retrying', 10_000);
  await waitFor('n1\'s cross-node acknowledgements held', () => out.inFlight === 20, 10_000, () => `in flight ${out.inFlight}`);
  const heldAt = out.ackedCount;
  const local = await localService(n1, 'short-n1');
  const localMs = local.ms;
  assert.equal(await readyz(n1), 200, 'a joined node stays ready while cut off');
  // n2 goes on: n1's routes live as long as its lease, so n2 writes into n1's inbox.
  const intoAtCut = into.ackedCount;
  await waitFor('n2 acknowledging into n1\'s inbox during the cut', () => into.ackedCount >= intoAtCut + 500, 10_000);
  assert.equal(out.ackedCount, heldAt, 'nothing of n1\'s cross-node traffic acknowledged during the cut');
  assert.equal(local.ackedYet(), false, 'nor a local QoS 1 message: n1 cannot see routes made meanwhile');
  const cutMs = since(cutAt);
  assert.ok(cutMs < 10_000, `the cut (${cutMs} ms) stayed within n1's lease`);
  const intoDuringCut = into.ackedCount - intoAtCut;
  proxy.resume();
  const healedAt = performance.now();

  await waitFor('n1\'s publisher acknowledged again', () => out.ackedCount > heldAt, 30_000);
  const healMs = since(healedAt);
  await within(local.acked, 10_000, 'the local QoS 1 acknowledgement after the heal');
  into.stop();
  await waitFor('both streams done', () => out.sent === 3000 && out.inFlight === 0 && into.inFlight === 0, 30_000,
    () => `out ${out.sent}/${out.ackedCount}, in ${into.sent}/${into.ackedCount}`);
  await waitFor('every acknowledged message arrived', () => toN2.complete() && toCut.complete(), 30_000,
    () => `n2 missing ${toN2.acked.size - toN2.received}, n1 missing ${toCut.acked.size - toCut.received}`);
  for (const b of [n1, n2]) assert.equal(b.proc.exitCode, null);
  report('a node cut off from etcd (shorter than its lease)', {
    load: 'QoS 1 both ways between the cut-off node n1 and n2 (persistent sessions, window 20 each)',
    faults: `n1's etcd connections reset for ${cutMs} ms (lease 10 s), ${intoDuringCut} acknowledged into n1's inbox meanwhile; n1 acknowledging again ${healMs} ms after the heal; local QoS 0/1 deliveries on n1 during the cut ${localMs} ms at most, their acknowledgements after the heal; /readyz 200 throughout; ${Math.round(since(started) / 100) / 10} s`,
    acked: toN2.acked.size + toCut.acked.size,
    received: toN2.received + toCut.received,
    dup: toN2.dup + toCut.dup,
  });
});

test('a node cut off from etcd for longer than its lease: its routes stay, it takes a new lease after the cut, and every acknowledged message arrives both ways', T, async () => {
  const started = performance.now();
  const proxy = await startProxy({ port: Number(etcd.endpoint.split(':')[1]) });
  proxies.push(proxy);
  const n3 = await startNode('n3', proxy.endpoint, 2);
  // n2 -> n3 in three parts: before the cut, while n3 is out of the cluster, after it is back.
  const { toN2, toCut, out, into: before, pub2 } = await twoWay(n3, 'long', 1000);
  await before.settled(10_000);
  const phase = async (name: string): Promise<string[]> => {
    const s = new Stream(pub2, { prefix: `${name}-`, topic: 'long/in/m', window: 20, total: 300, ledgers: [toCut] });
    await s.settled(20_000).then(() => s.acked(300, 1));
    return Array.from({ length: 300 }, (_, i) => `${name}-${i}`);
  };

  const cutAt = performance.now();
  proxy.cut();
  await waitFor('n3\'s cross-node acknowledgements held', () => out.inFlight === 20, 10_000);
  const local = await localService(n3, 'long-n3');
  const localMs = local.ms;
  // Out of the cluster: n2 saw n3's lease expire.
  await n2.waitForLog((r) => r['msg'] === 'cluster member left' && r['member'] === 'n3', 15_000);
  const whileOut = await phase('out');
  proxy.resume();
  const cutMs = since(cutAt);
  const healedAt = performance.now();
  await n3.waitForLog((r) => r['msg'] === 'cluster lease renewed', 30_000);
  const healMs = since(healedAt);
  await within(local.acked, 10_000, 'the local QoS 1 acknowledgement after the heal');
  const afterBack = await phase('back');
  await waitFor('n3\'s stream done', () => out.sent === 3000 && out.inFlight === 0, 30_000, () => `out ${out.sent}/${out.ackedCount}`);
  await waitFor('every acknowledged message', () => toN2.complete() && toCut.complete(), 30_000,
    () => `n2 missing ${toN2.acked.size - toN2.received}; n3 missing ${toCut.missing(5).join(',')}`);
  assert.ok([...whileOut, ...afterBack].every((id) => toCut.has(id)));
  for (const b of [n3, n2]) assert.equal(b.proc.exitCode, null);
  report('a node cut off from etcd (longer than its lease)', {
    load: 'QoS 1 both ways between the cut-off node n3 and n2 (persistent sessions, window 20 each)',
    faults: `n3's etcd connections reset for ${cutMs} ms (lease 2 s), 300 published on n2 for n3 while it was out of the member list; new lease ${healMs} ms after the heal; local QoS 0/1 deliveries on n3 during the cut ${localMs} ms at most, acknowledged after the heal; ${Math.round(since(started) / 100) / 10} s`,
    acked: toN2.acked.size + toCut.acked.size,
    received: toN2.received + toCut.received,
    dup: toN2.dup + toCut.dup,
  });
});

test('a node that starts cut off from etcd serves local clients, is not ready until it joins, and ready once the cut heals', T, async () => {
  const proxy = await startProxy({ port: Number(etcd.endpoint.split(':')[1]) });
  proxies.push(proxy);
  proxy.cut();
  const n4 = await startNode('n4', proxy.endpoint, 10);
  const status = await readyz(n4);
  const body = (await (await fetch(`${await httpBase(n4)}/readyz`)).json()) as { code?: string };
  assert.equal(status, 503);
  assert.equal(body.code, 'NOT_READY');
  const local = await localService(n4, 'start-n4');
  const localMs = local.ms;
  assert.equal(local.ackedYet(), false, 'a node that has never seen the routes acknowledges nothing');
  proxy.resume();
  await n4.waitForLog((r) => r['msg'] === 'joined the cluster', 30_000);
  await within(local.acked, 10_000, 'the local QoS 1 acknowledgement once joined');
  assert.equal(await readyz(n4), 200);
  // And it is a member: a subscriber on n4 gets what is published on n2.
  const got = new Ledger();
  await subscribe(await client(n4, 'start-s4'), 'start/#', got);
  await routable(await client(n2, 'start-p2'), 'start/m', got);
  report('a node that starts cut off from etcd', {
    load: 'local clients on the cut-off node',
    faults: `etcd unreachable from the start: /readyz 503 NOT_READY, local QoS 0/1 round trips ${localMs} ms at most; joined and ready after the heal`,
    acked: 0, received: 0, dup: 0,
  });
});

test('a subscription made elsewhere while a node is cut off gets what that node acknowledges meanwhile (its view is stale)', T, async () => {
  const proxy = await startProxy({ port: Number(etcd.endpoint.split(':')[1]) });
  proxies.push(proxy);
  const n5 = await startNode('n5', proxy.endpoint, 10);
  const pub = await client(n5, 'stale-pub', { clean: false });
  const logsAtCut = n5.logs.length;
  proxy.cut();
  await n5.waitForLog((r) => n5.logs.indexOf(r) >= logsAtCut && r['msg'] === 'cluster: the routes watch is broken: acknowledgements wait until this node sees the routes again', 10_000);
  // n2 makes a route n5 cannot see: before issue 17, n5 matched no route, acknowledged, and the message was lost.
  const got = new Ledger();
  await subscribe(await client(n2, 'stale-sub', { clean: false }), 'stale/#', got);
  let ackedAt = 0;
  const ack = pub.publishAsync('stale/m', 'published-while-cut', { qos: 1 }).then(() => { ackedAt = performance.now(); });
  const resumedAt = performance.now();
  proxy.resume();
  await within(ack, 15_000, 'the acknowledgement after the heal');
  assert.ok(ackedAt >= resumedAt, 'acknowledged only once n5 could see the routes again');
  got.ack('published-while-cut');
  await waitFor('the message at the subscriber n5 could not see', () => got.complete(), 15_000);
  report('a subscription made while a node is cut off', {
    load: 'one QoS 1 message published on the cut-off node n5', faults: `n5's etcd connections reset while a subscriber on n2 subscribes; acknowledged ${Math.round(ackedAt - resumedAt)} ms after the heal`,
    acked: 1, received: got.received, dup: got.dup,
  });
});
