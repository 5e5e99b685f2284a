/**
 * 62 cluster sessions: one session per client id, whatever the timing (issue 17). A client that reconnects while
 * the node holding its persistent session cannot answer gets a new session after a bounded wait; when the old
 * node answers late, or comes back after a crash with its copy in its store, that copy's messages are handed to
 * the new session and the copy ends: no second live copy, nothing acknowledged dropped.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import { httpBase, startBroker, type RunningBroker } from './helpers/broker.js';
import { startEtcd, type RunningEtcd } from './helpers/etcd.js';
import { openClient, type Opened } from './helpers/opened.js';

const T = { timeout: 90_000 };
const cluster = `s${process.pid}`;
let etcd: RunningEtcd;
const nodes: RunningBroker[] = [];
const dirs = new Map<string, string>();
const clients = new Set<MqttClient>();
let seq = 0;

function startNode(id: string): Promise<RunningBroker> {
  let dir = dirs.get(id);
  if (dir === undefined) dirs.set(id, (dir = mkdtempSync(join(tmpdir(), `smq-62-${id}-`))));
  return startBroker({
    config: {
      cluster, broker: id, store: { dir }, ws: { enable: false },
      etcd: { endpoints: [etcd.endpoint], lease_ttl: 10, session_wait: 6 },
      http: { enable: true, host: '127.0.0.1', port: 0, tokens: ['t'] },
    },
    timeoutMs: 30_000,
  });
}

function open(node: RunningBroker, options: IClientOptions): Promise<Opened> {
  return openClient(node.port, { connectTimeout: 30_000, ...options }, clients);
}

/** Resolves once `node` logs that the session of `clientId` left it for another node. */
function movedAway(node: RunningBroker, clientId: string): Promise<unknown> {
  return node.waitForLog((r) => r['msg'] === 'cluster: persistent session moved to another node' && r['clientId'] === clientId, 30_000);
}

/** The number of sessions a node holds, from its API. */
async function sessionsOn(node: RunningBroker): Promise<number> {
  const base = await httpBase(node);
  const stats = (await (await fetch(`${base}/api/v1/stats`, { headers: { 'x-token': 't' } })).json()) as { sessions: number };
  return stats.sessions;
}

/** A persistent client that subscribed to `topic` on `node` and left; `queued` is then published for it. */
async function away(node: RunningBroker, clientId: string, topic: string, queued: string): Promise<void> {
  const { c } = await open(node, { clientId, clean: false, properties: { sessionExpiryInterval: 3600 } });
  await c.subscribeAsync(topic, { qos: 1 });
  await c.endAsync();
  const { c: pub } = await open(node, { clientId: `pub-${++seq}` });
  await pub.publishAsync(topic, queued, { qos: 1 });
  await pub.endAsync();
}

before(async () => {
  etcd = await startEtcd();
  for (const id of ['n1', 'n2']) nodes.push(await startNode(id));
});

after(async () => {
  for (const c of clients) c.end(true);
  for (const n of nodes) {
    n.proc.kill('SIGCONT');
    await n.stop('SIGKILL');
  }
  await etcd.destroy();
});

test('a holder that answers too late: the client gets a new session, then the old copy\'s messages, and one copy remains', T, async () => {
  const [n1, n2] = nodes as [RunningBroker, RunningBroker];
  const id = `late-${++seq}`;
  const topic = `s/${id}`;
  await away(n1, id, topic, 'queued-on-n1');
  n1.proc.kill('SIGSTOP'); // paused for less than its lease: still a member, it just does not answer
  let back: Opened;
  try {
    back = await open(n2, { clientId: id, clean: false, properties: { sessionExpiryInterval: 3600 } });
  } finally {
    n1.proc.kill('SIGCONT');
  }
  assert.equal(back.present, false, 'after session_wait the client gets a new session');
  await back.c.subscribeAsync(topic, { qos: 1 });
  // n1 now answers the request it was sent: its copy must join the new session, not replace it.
  await back.receives('queued-on-n1', 'the old copy\'s message');
  assert.ok(back.c.connected, 'the client stays connected to its session on n2');
  await movedAway(n1, id);
  assert.equal(await sessionsOn(n1), 0, 'n1 keeps no copy of the session');
  const { c: pub } = await open(n1, { clientId: `pub-${++seq}` });
  await pub.publishAsync(topic, 'after', { qos: 1 });
  await back.receives('after', 'a message published on n1 afterwards');
});

test('a node back from a crash with a copy in its store hands the copy\'s messages to the session that replaced it', T, async () => {
  const [n1, n2] = nodes as [RunningBroker, RunningBroker];
  const id = `crash-${++seq}`;
  const topic = `s/${id}`;
  await away(n1, id, topic, 'kept-in-n1-store');
  await n1.stop('SIGKILL');
  const back = await open(n2, { clientId: id, clean: false, properties: { sessionExpiryInterval: 3600 } });
  assert.equal(back.present, false, 'the holder is down past session_wait: a new session');
  await back.c.subscribeAsync(topic, { qos: 1 });
  const n1back = (nodes[0] = await startNode('n1'));
  await back.receives('kept-in-n1-store', 'the copy n1 kept through its crash');
  await movedAway(n1back, id);
  assert.equal(await sessionsOn(n1back), 0, 'n1 keeps no copy of the session');
  assert.ok(back.c.connected);
});

test('a drain of 300 sessions: the moves go in batch frames and share their fences, and every session reaches the other node with its queued message', T, async () => {
  const [n1, n2] = nodes as [RunningBroker, RunningBroker];
  const count = 300;
  const ids = Array.from({ length: count }, (_, i) => `drained-${++seq}-${i}`);
  /** Runs `job` over `ids`, 50 at a time (a bounded load on this shared machine). */
  const each = async (job: (id: string) => Promise<void>): Promise<void> => {
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < ids.length; i = next++) await job(ids[i] as string);
    };
    await Promise.all(Array.from({ length: 50 }, worker));
  };
  const persistent = (clientId: string): IClientOptions => ({ clientId, clean: false, properties: { sessionExpiryInterval: 3600 } });
  await each(async (id) => {
    const { c } = await open(n1, persistent(id));
    await c.subscribeAsync(`d/${id}`, { qos: 1 });
    await c.endAsync();
    clients.delete(c);
  });
  const { c: pub } = await open(n1, { clientId: `pub-${++seq}` });
  await Promise.all(ids.map((id) => pub.publishAsync(`d/${id}`, `queued-${id}`, { qos: 1 })));
  await pub.endAsync();

  const earlier = n1.logs.length; // n1's lines from the tests before (a copy it handed over)
  assert.equal(await n1.stop('SIGTERM'), 0);
  const done = n1.logs.find((r) => r['msg'] === 'drain: persistent sessions handed over to other nodes');
  assert.ok(done !== undefined, 'n1 logs the hand-over');
  assert.equal(done['moved'], done['sessions'], 'every session held on n1 moved');
  assert.ok((done['moved'] as number) >= count);
  // Up to 256 moves at once share a fence; one per session would be 300.
  assert.ok((done['fences'] as number) <= count / 10, `${String(done['fences'])} fences for ${count} sessions`);
  // n2 announces move-batch: every session went in a batch (up to 256 each), none alone.
  const drained = n1.logs.slice(earlier);
  const batches = drained.filter((r) => r['msg'] === 'cluster: persistent sessions moved to another node');
  const alone = drained.filter((r) => r['msg'] === 'cluster: persistent session moved to another node');
  assert.equal(alone.length, 0, 'no single moves');
  assert.equal(batches.reduce((n, r) => n + (r['sessions'] as number), 0), done['moved']);
  assert.ok(batches.length >= 2 && batches.length <= 4, `${batches.length} batches for ${String(done['moved'])} sessions`);
  assert.ok(batches.every((r) => r['to'] === 'n2'));

  await each(async (id) => {
    const back = await open(n2, persistent(id));
    assert.equal(back.present, true, `${id}: session present on n2`);
    await back.receives(`queued-${id}`, id);
    await back.c.endAsync();
    clients.delete(back.c);
  });
});
