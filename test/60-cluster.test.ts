/**
 * 60 cluster: three broker processes and a real etcd (Debian's etcd-server on loopback). Publishes cross nodes
 * for QoS 0/1/2 and both protocol versions, a shared group spread over nodes gets each message exactly once,
 * retained messages are cluster-wide, and acknowledged QoS 1 messages survive a node's SIGKILL and an etcd
 * outage.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import type { IClientOptions, MqttClient } from 'mqtt';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { makeCertificates } from './helpers/certs.js';
import { startEtcd, type RunningEtcd } from './helpers/etcd.js';
import { report } from './helpers/reliability.js';
import { strictConnect } from './helpers/strict/tap.js';

const T = { timeout: 60_000 };
let etcd: RunningEtcd;
const nodes: RunningBroker[] = [];
const clients = new Set<MqttClient>();
const cluster = `t${process.pid}`;
let seq = 0;

function topic(name: string): string {
  return `cluster/${++seq}/${name}`;
}

/** Starts node `id` of the test cluster, with a data directory so it can come back as itself. */
function startNode(id: string, dir = mkdtempSync(join(tmpdir(), `smq-${id}-`))): Promise<RunningBroker> {
  return startBroker({
    config: {
      cluster,
      broker: id,
      etcd: { endpoints: [etcd.endpoint], lease_ttl: 5, orphan_ttl: 2 },
      store: { dir },
      ws: { enable: false },
      // The kill test parks 2,000 messages for an offline session.
      mqtt: { max_queued: 100_000 },
      sys_interval: 1,
    },
    timeoutMs: 30_000,
  });
}

interface Received {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
}

/** A connected MQTT.js client and what it received. */
class Client {
  readonly got: Received[] = [];
  private waiters = new Set<() => void>();

  constructor(readonly mqtt: MqttClient) {
    mqtt.on('message', (t, payload, packet) => {
      this.got.push({ topic: t, payload: payload.toString(), qos: packet.qos, retain: packet.retain });
      for (const w of this.waiters) w();
    });
  }

  /** Resolves once `cond` holds on what was received; re-checked on every message. */
  until(cond: (got: Received[]) => boolean, timeoutMs = 15_000, what = 'messages'): Promise<void> {
    if (cond(this.got)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!cond(this.got)) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`${what} not received within ${timeoutMs} ms; got ${this.got.length}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }
}

async function open(node: RunningBroker, version: 4 | 5, options: IClientOptions = {}): Promise<Client> {
  const m = strictConnect(`mqtt://127.0.0.1:${node.port}`, {
    protocolVersion: version,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    clientId: `c${++seq}`,
    ...options,
  });
  clients.add(m);
  const c = new Client(m);
  await new Promise<void>((resolve, reject) => {
    m.once('connect', () => resolve());
    m.once('error', reject);
  });
  return c;
}

/**
 * Waits until a route is known cluster-wide: publishes QoS 0 probes from `pub` until `sub` receives one. Route
 * changes travel through etcd, so a subscription is not visible elsewhere at the instant of its SUBACK.
 */
async function routable(pub: Client, sub: Client, t: string): Promise<void> {
  const probe = `${t}/probe`;
  let n = 0;
  const timer = setInterval(() => pub.mqtt.publish(probe, `p${n++}`, { qos: 0 }), 50);
  try {
    await sub.until((got) => got.some((r) => r.topic === probe), 15_000, `a probe on ${probe}`);
  } finally {
    clearInterval(timer);
  }
}

before(async () => {
  etcd = await startEtcd();
  nodes.push(...(await Promise.all(['n1', 'n2', 'n3'].map((id) => startNode(id)))));
});

after(async () => {
  for (const c of clients) c.end(true);
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
  await etcd.destroy();
});

for (const version of [4, 5] as const) {
  describe(`[v${version}] publish across nodes`, () => {
    for (const qos of [0, 1, 2] as const) {
      test(`QoS ${qos}: a message published on n1 reaches a subscriber on n2, in order`, T, async () => {
        const t = topic(`q${qos}`);
        const sub = await open(nodes[1]!, version);
        await sub.mqtt.subscribeAsync(`${t}/#`, { qos });
        const pub = await open(nodes[0]!, version);
        await routable(pub, sub, t);
        const count = 200;
        for (let i = 0; i < count; i++) await pub.mqtt.publishAsync(`${t}/m`, `m${i}`, { qos });
        await sub.until((got) => got.filter((r) => r.topic === `${t}/m`).length >= count, 15_000, `${count} messages`);
        const got = sub.got.filter((r) => r.topic === `${t}/m`);
        assert.deepEqual(got.map((r) => r.payload), Array.from({ length: count }, (_, i) => `m${i}`));
        assert.ok(got.every((r) => r.qos === qos));
      });
    }
  });
}

test('$SYS/broker/cluster/... counts cross-node traffic: messages sent through etcd and the members', T, async () => {
  const watcher = await open(nodes[0]!, 4);
  await watcher.mqtt.subscribeAsync('$SYS/broker/cluster/#', { qos: 0 });
  const value = (t: string): number => Number(watcher.got.filter((r) => r.topic === t).at(-1)?.payload ?? NaN);
  // The QoS tests above sent messages from n1 to n2; n1 reports them within a sys_interval.
  await watcher.until(() => value('$SYS/broker/cluster/messages/sent') > 0 && value('$SYS/broker/cluster/members') >= 3, 10_000, 'cluster counters');
  assert.ok(value('$SYS/broker/cluster/etcd/writes') > 0);
  assert.ok(value('$SYS/broker/cluster/etcd/writes') < value('$SYS/broker/cluster/messages/sent'), 'batched: fewer writes than messages');
});

test('a shared group with members on two nodes gets each message exactly once, from a third node', T, async () => {
  const t = topic('shared');
  const a = await open(nodes[0]!, 5);
  const b = await open(nodes[1]!, 5);
  await a.mqtt.subscribeAsync(`$share/g/${t}/#`, { qos: 1 });
  await b.mqtt.subscribeAsync(`$share/g/${t}/#`, { qos: 1 });
  const pub = await open(nodes[2]!, 5);
  // Both members must be known on n3 before counting: probe until each has received one.
  const probe = `${t}/probe`;
  let n = 0;
  const timer = setInterval(() => pub.mqtt.publish(probe, `p${n++}`, { qos: 0 }), 50);
  await Promise.all([a, b].map((c) => c.until((got) => got.some((r) => r.topic === probe), 15_000, 'a probe')));
  clearInterval(timer);
  const count = 300;
  for (let i = 0; i < count; i++) await pub.mqtt.publishAsync(`${t}/m`, `m${i}`, { qos: 1 });
  const both = (): Received[] => [...a.got, ...b.got].filter((r) => r.topic === `${t}/m`);
  // Either member may take the last message: wait on both.
  const waits = [a, b].map((c) => c.until(() => both().length >= count, 15_000, `${count} messages over both members`));
  for (const w of waits) w.catch(() => undefined); // the slower one may time out after the other saw them all
  await Promise.race(waits);
  const payloads = both().map((r) => r.payload).sort();
  assert.deepEqual(payloads, Array.from({ length: count }, (_, i) => `m${i}`).sort(), 'each message exactly once');
  assert.ok(a.got.some((r) => r.topic === `${t}/m`) && b.got.some((r) => r.topic === `${t}/m`), 'both nodes took a share');
});

test('a retained message set on n1 is sent to a new subscriber on n3, and a clear on n2 clears it everywhere', T, async () => {
  const t = topic('retained');
  const pub = await open(nodes[0]!, 4);
  await pub.mqtt.publishAsync(t, 'kept', { qos: 1, retain: true });
  // The PUBACK came after etcd had it; n3 hears of it through its watch, so ask until it has it.
  const sub = await open(nodes[2]!, 4);
  for (let i = 0; !sub.got.some((r) => r.topic === t); i++) {
    assert.ok(i < 100, 'retained message never reached n3');
    await sub.mqtt.subscribeAsync(t, { qos: 1 });
    await sub.until((got) => got.some((r) => r.topic === t), 100).catch(() => sub.mqtt.unsubscribeAsync(t));
  }
  assert.deepEqual(sub.got.find((r) => r.topic === t), { topic: t, payload: 'kept', qos: 1, retain: true });
  const clearer = await open(nodes[1]!, 4);
  await clearer.mqtt.publishAsync(t, '', { qos: 1, retain: true });
  const late = await open(nodes[2]!, 4);
  const local = await open(nodes[2]!, 4); // publishes the marker on the subscriber's own node
  for (let i = 0; ; i++) {
    await late.mqtt.subscribeAsync(t, { qos: 1 });
    // A marker published after the subscription: once it arrives, any retained message would have come first.
    const marker = `${t}/marker/${i}`;
    await late.mqtt.subscribeAsync(marker, { qos: 1 });
    await local.mqtt.publishAsync(marker, 'm', { qos: 1 });
    await late.until((got) => got.some((r) => r.topic === marker), 10_000, 'the marker');
    if (!late.got.some((r) => r.topic === t)) break;
    assert.ok(i < 50, 'the cleared retained message was still sent by n3');
    late.got.length = 0;
    await late.mqtt.unsubscribeAsync(t);
  }
});

test('a client id connecting to n2 while connected to n1 takes over: n1 disconnects it with 0x8E [MQTT-3.1.4-3]', T, async () => {
  const id = `takeover-${++seq}`;
  const first = await open(nodes[0]!, 5, { clientId: id });
  const disconnected = new Promise<number | undefined>((resolve) => {
    first.mqtt.once('disconnect', (packet) => resolve(packet.reasonCode));
  });
  const closed = new Promise<void>((resolve) => first.mqtt.once('close', () => resolve()));
  const second = await open(nodes[1]!, 5, { clientId: id });
  assert.equal(await disconnected, 0x8e);
  await closed;
  assert.ok(second.mqtt.connected, 'the new connection stays');
});

test('a takeover request about an older connection is ignored: the newer connection of the id stays', T, async () => {
  const id = `late-${++seq}`;
  const current = await open(nodes[1]!, 5, { clientId: id });
  // What n1 would ask of n2 if a claim of an older connection on n1 reached etcd only now (issue 17: the plain
  // put let such a stale claim win, and the newer connection was dropped with 0x8E).
  const etcdClient = new Etcd3({ hosts: `http://${etcd.endpoint}` });
  try {
    const key = `/smq/${cluster}/takeover/n2/${id}`;
    // n2 deletes the request once it has handled it: the watch sees that happen.
    const watcher = await etcdClient.watch().key(key).create();
    const handled = new Promise<void>((resolve) => watcher.once('delete', () => resolve()));
    await etcdClient.put(key).value(`n1\n${Date.now() - 60_000}`);
    await withDeadline(handled, 10_000, 'n2 to take up the request');
    await watcher.cancel();
  } finally {
    etcdClient.close();
  }
  await current.mqtt.publishAsync(`late/${id}`, 'still here', { qos: 1 });
  assert.ok(current.mqtt.connected, 'the newer connection stays');
});

test('a takeover made while etcd was away is carried out once it returns: one live connection per client id', T, async () => {
  const id = `away-${++seq}`;
  const first = await open(nodes[0]!, 5, { clientId: id });
  const disconnected = new Promise<number | undefined>((resolve) => {
    first.mqtt.once('disconnect', (packet) => resolve(packet.reasonCode));
  });
  await etcd.stop();
  let second: Client;
  try {
    // n2 accepts the client (it serves its own clients while etcd is away) but cannot claim the id yet.
    second = await open(nodes[1]!, 5, { clientId: id });
  } finally {
    await etcd.restart();
  }
  assert.equal(await withDeadline(disconnected, 30_000, 'the older connection on n1 to be taken over'), 0x8e);
  assert.ok(second.mqtt.connected, 'the newer connection stays');
});

test('a persistent session moves to the node its client reconnects to, with its subscriptions and queued messages', T, async () => {
  const t = topic('move');
  const id = `mover-${++seq}`;
  const first = await open(nodes[0]!, 4, { clientId: id, clean: false });
  await first.mqtt.subscribeAsync(`${t}/#`, { qos: 1 });
  const pub = await open(nodes[2]!, 4);
  await routable(pub, first, t);
  first.mqtt.end(true);
  await new Promise<void>((r) => first.mqtt.once('close', () => r()));
  const count = 50;
  for (let i = 0; i < count; i++) await pub.mqtt.publishAsync(`${t}/m`, `m${i}`, { qos: 1 });
  // Reconnect to n2: the session comes from n1 with the 50 queued messages.
  const m = strictConnect(`mqtt://127.0.0.1:${nodes[1]!.port}`, { protocolVersion: 4, reconnectPeriod: 0, clientId: id, clean: false });
  clients.add(m);
  const moved = new Client(m);
  const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
    m.once('connect', (p) => resolve(p));
    m.once('error', reject);
  });
  assert.equal(connack.sessionPresent, true, 'CONNACK says the session is present');
  await moved.until((got) => got.filter((r) => r.topic === `${t}/m`).length >= count, 15_000, `${count} queued messages`);
  assert.deepEqual(moved.got.filter((r) => r.topic === `${t}/m`).map((r) => r.payload), Array.from({ length: count }, (_, i) => `m${i}`));
  // The subscription moved too: a new publish on n3 reaches it on n2.
  await routable(pub, moved, `${t}/after`);
});

test('SIGKILL of the subscriber node mid-stream: every acknowledged QoS 1 message reaches the persistent session after it returns', T, async () => {
  const t = topic('kill');
  const dir = mkdtempSync(join(tmpdir(), 'smq-n4-'));
  let n4 = await startNode('n4', dir);
  nodes.push(n4);
  const id = `persistent-${seq}`;
  const sub = await open(n4, 4, { clientId: id, clean: false });
  await sub.mqtt.subscribeAsync(`${t}/#`, { qos: 1 });
  const pub = await open(nodes[0]!, 4);
  await routable(pub, sub, t);
  sub.mqtt.end(true);
  // Pipelined, so the whole stream fits well inside the lease: until it expires, n1 keeps routing to n4.
  const count = 2000;
  const acked: string[] = [];
  let kill: Promise<unknown> | null = null;
  await Promise.all(Array.from({ length: count }, (_, i) => pub.mqtt.publishAsync(`${t}/m`, `m${i}`, { qos: 1 }).then(() => {
    acked.push(`m${i}`);
    if (acked.length === 500) kill = n4.stop('SIGKILL');
  })));
  assert.ok(kill !== null);
  await kill;
  n4 = await startNode('n4', dir);
  nodes.push(n4);
  const back = await open(n4, 4, { clientId: id, clean: false });
  await back.until((got) => new Set(got.filter((r) => r.topic === `${t}/m`).map((r) => r.payload)).size >= count, 30_000, `${count} messages`);
  const all = back.got.filter((r) => r.topic === `${t}/m`).map((r) => r.payload);
  const got = new Set(all);
  report('cluster: SIGKILL of the subscriber node', {
    load: `${count} QoS 1 pipelined, node 1 -> persistent session on node 4`, faults: 'SIGKILL of node 4 after 500 PUBACKs, restart',
    acked: acked.length, received: acked.filter((p) => got.has(p)).length, dup: all.length - got.size,
  });
  assert.deepEqual(acked.filter((p) => !got.has(p)), [], 'no acknowledged message lost');
});

test('the routes and inbox of a node that left for good are deleted after etcd.orphan_ttl', T, async () => {
  const t = topic('orphan');
  const n5 = await startNode('n5');
  nodes.push(n5);
  const sub = await open(n5, 4, { clientId: `orphan-${seq}`, clean: false });
  await sub.mqtt.subscribeAsync(`${t}/#`, { qos: 1 });
  const pub = await open(nodes[0]!, 4);
  await routable(pub, sub, t);
  await n5.stop('SIGKILL');
  // Acknowledged once it is in n5's inbox: n5's routes outlive its lease (it may come back as itself).
  await pub.mqtt.publishAsync(`${t}/m`, 'for a node that never returns', { qos: 1 });
  const kv = new Etcd3({ hosts: `http://${etcd.endpoint}` });
  try {
    const prefix = `/smq/${cluster}/inbox/n5/`;
    const routes = `/smq/${cluster}/routes/n5/`;
    assert.ok((await kv.getAll().prefix(prefix).keys()).length > 0, 'the message waits in the inbox of n5');
    // Lease expiry (5 s), then orphan_ttl (2 s) and a sweep: poll etcd until both are gone.
    const deadline = Date.now() + 40_000;
    while ((await kv.getAll().prefix(prefix).keys()).length + (await kv.getAll().prefix(routes).keys()).length > 0) {
      assert.ok(Date.now() < deadline, 'the routes and inbox of n5 were never removed');
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    kv.close();
  }
});

test('etcd over mutual TLS (etcd.ca, etcd.cert, etcd.key): a node joins; with a CA that does not sign etcd it does not', T, async () => {
  const certs = makeCertificates();
  const secure = await startEtcd({
    cert: certs.server.cert, key: certs.server.key, ca: certs.ca.cert, clientCert: certs.client.cert, clientKey: certs.client.key,
  });
  try {
    const etcdTls = { endpoints: [secure.endpoint], ca: certs.ca.cert, cert: certs.client.cert, key: certs.client.key };
    const good = await startBroker({ config: { cluster: `tls${process.pid}`, broker: 'tls-1', etcd: etcdTls, ws: { enable: false } }, timeoutMs: 30_000 });
    nodes.push(good);
    await good.waitForLog((r) => r['msg'] === 'joined the cluster', 15_000);
    const bad = await startBroker({
      config: { cluster: `tls${process.pid}`, broker: 'tls-2', etcd: { ...etcdTls, ca: certs.otherCa.cert }, ws: { enable: false } },
      timeoutMs: 30_000,
    });
    nodes.push(bad);
    await bad.waitForLog((r) => r['msg'] === 'cluster: etcd not reachable: retrying', 15_000);
    assert.ok(!bad.logs.some((r) => r['msg'] === 'joined the cluster'), 'a node that cannot verify etcd must not join');
  } finally {
    await secure.destroy();
  }
});

test('etcd with authentication (etcd.username, etcd.password): the right password joins, a wrong one does not', T, async () => {
  const guarded = await startEtcd();
  const admin = new Etcd3({ hosts: `http://${guarded.endpoint}` });
  try {
    await admin.role('root').create().catch(() => undefined); // built in on some versions
    await admin.user('root').create('root-secret');
    await admin.user('root').addRole('root');
    await admin.auth.authEnable();
    const etcdAuth = { endpoints: [guarded.endpoint], username: 'root', password: 'root-secret' };
    const good = await startBroker({ config: { cluster: `auth${process.pid}`, broker: 'auth-1', etcd: etcdAuth, ws: { enable: false } }, timeoutMs: 30_000 });
    nodes.push(good);
    await good.waitForLog((r) => r['msg'] === 'joined the cluster', 15_000);
    const bad = await startBroker({
      config: { cluster: `auth${process.pid}`, broker: 'auth-2', etcd: { ...etcdAuth, password: 'wrong' }, ws: { enable: false } },
      timeoutMs: 30_000,
    });
    nodes.push(bad);
    await bad.waitForLog((r) => r['msg'] === 'cluster: etcd not reachable: retrying', 15_000);
    assert.ok(!bad.logs.some((r) => r['msg'] === 'joined the cluster'), 'a wrong password must not join');
  } finally {
    admin.close();
    await guarded.destroy();
  }
});

test('etcd stopped and restarted mid-stream: nodes keep serving, and every acknowledged QoS 1 message arrives', T, async () => {
  const t = topic('outage');
  const sub = await open(nodes[1]!, 4);
  await sub.mqtt.subscribeAsync(`${t}/#`, { qos: 1 });
  const pub = await open(nodes[0]!, 4);
  await routable(pub, sub, t);
  // A client on n1 alone keeps being served while etcd is away.
  const local = await open(nodes[0]!, 4);
  await local.mqtt.subscribeAsync(`${t}/local`, { qos: 0 });
  const count = 400;
  const sent: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    if (i === 100) {
      await etcd.stop();
      pub.mqtt.publish(`${t}/local`, 'while etcd is down', { qos: 0 });
      await local.until((got) => got.some((r) => r.topic === `${t}/local`), 5000, 'a local message during the outage');
      setTimeout(() => void etcd.restart(), 2000);
    }
    sent.push(pub.mqtt.publishAsync(`${t}/m`, `m${i}`, { qos: 1 }));
  }
  await Promise.all(sent);
  await sub.until((got) => new Set(got.filter((r) => r.topic === `${t}/m`).map((r) => r.payload)).size >= count, 30_000, `${count} messages`);
  const all = sub.got.filter((r) => r.topic === `${t}/m`).map((r) => r.payload);
  report('cluster: etcd stopped and restarted', {
    load: `${count} QoS 1, node 1 -> node 2`, faults: 'etcd stopped after 100 messages, restarted 2 s later',
    acked: count, received: new Set(all).size, dup: all.length - new Set(all).size,
  });
  for (const n of nodes.slice(0, 3)) assert.equal(n.proc.exitCode, null, 'no node crashed');
});

/** `p`, or a rejection naming `what` after `ms`. */
function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`waited ${ms} ms for ${what}`)), ms); });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
