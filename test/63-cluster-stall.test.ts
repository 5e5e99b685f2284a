/**
 * 63 cluster stalls: a node the others gave up on (stopped past its lease: SIGSTOP here, a paused VM or a blocked
 * event loop in production) and a node down while its clients come back (issue 17).
 *
 * - A node that wakes reads its clients' publishes before the watch events etcd sent while it slept; the others
 *   dropped it from the cluster and moved sessions without fencing it. What it acknowledges must still reach the
 *   session where it is now.
 * - A client that reconnects while the node holding its session is down waits for that node (at most
 *   `etcd.session_wait`) and keeps its session, instead of a new one that gets the old queue late and out of order.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { startEtcd, type RunningEtcd } from './helpers/etcd.js';
import { openClient, type Opened } from './helpers/opened.js';

const T = { timeout: 90_000 };
const cluster = `st${process.pid}`;
let etcd: RunningEtcd;
const nodes = new Map<string, RunningBroker>();
const dirs = new Map<string, string>();
const clients = new Set<MqttClient>();

async function startNode(id: string): Promise<RunningBroker> {
  let dir = dirs.get(id);
  if (dir === undefined) dirs.set(id, (dir = mkdtempSync(join(tmpdir(), `smq-63-${id}-`))));
  const node = await startBroker({
    config: {
      cluster, broker: id, store: { dir }, ws: { enable: false },
      etcd: { endpoints: [etcd.endpoint], lease_ttl: 2, session_wait: 20 },
    },
    timeoutMs: 30_000,
  });
  nodes.set(id, node);
  return node;
}

function node(id: string): RunningBroker {
  const n = nodes.get(id);
  assert.ok(n, `node ${id} runs`);
  return n;
}

function open(n: RunningBroker, options: IClientOptions): Promise<Opened> {
  return openClient(n.port, { keepalive: 60, ...options }, clients);
}

/** Resolves once `n` logs that `member` left the cluster (its lease expired). */
function memberLeft(n: RunningBroker, member: string): Promise<unknown> {
  return n.waitForLog((r) => r['msg'] === 'cluster member left' && r['member'] === member, 30_000);
}

const persistent: IClientOptions = { clean: false, properties: { sessionExpiryInterval: 3600 } };

before(async () => {
  etcd = await startEtcd();
  for (const id of ['n1', 'n2', 'n3']) await startNode(id);
});

after(async () => {
  for (const c of clients) c.end(true);
  for (const n of nodes.values()) {
    n.proc.kill('SIGCONT');
    await n.stop('SIGKILL');
  }
  await etcd.destroy();
});

test('a node stopped past its lease acknowledges what it read on waking only once the session\'s new node has it', T, async () => {
  const [n1, n2, n3] = [node('n1'), node('n2'), node('n3')];
  const topic = 'stall/a';
  const s = await open(n2, { clientId: 'stall-sub', ...persistent });
  await s.c.subscribeAsync(topic, { qos: 2 });
  const p = await open(n1, { clientId: 'stall-pub' });
  await p.c.publishAsync(topic, 'before', { qos: 1 });
  await s.receives('before', 'n1 routes to the subscriber on n2');

  // Written into n1's socket as it stops: when it wakes, the kernel reports this socket readable before the
  // etcd connection that brings the news of the move.
  const acked = Promise.all([
    p.c.publishAsync(topic, 'asleep-1', { qos: 1 }),
    p.c.publishAsync(topic, 'asleep-2', { qos: 2 }),
  ]);
  n1.proc.kill('SIGSTOP');
  await memberLeft(n2, 'n1');
  await memberLeft(n3, 'n1');
  // The session moves to n3 while n1 sleeps: nobody can fence n1, whose view still has it on n2.
  await s.c.endAsync();
  const moved = n2.waitForLog((r) => r['msg'] === 'cluster: persistent session moved to another node' && r['clientId'] === 'stall-sub', 30_000);
  const s2 = await open(n3, { clientId: 'stall-sub', ...persistent });
  assert.equal(s2.present, true, 'the session moved to n3');
  await moved;
  n1.proc.kill('SIGCONT');
  await acked;
  await s2.receives('asleep-1', 'a QoS 1 message n1 acknowledged after waking');
  await s2.receives('asleep-2', 'a QoS 2 message n1 acknowledged after waking');
  await n1.waitForLog((r) => r['msg'] === 'cluster: this node was stopped or blocked: acknowledgements wait until it sees the routes again', 5_000);
  await p.c.publishAsync(topic, 'after', { qos: 1 });
  await s2.receives('after', 'a message published after the catch-up');
  assert.equal(s2.got.filter((m) => m === 'asleep-2').length, 1, 'the QoS 2 message arrives once, though n1 sent it twice');
});

test('a shared group whose member moved while a node slept gets what that node acknowledged on waking', T, async () => {
  const [n1, n2, n3] = [node('n1'), node('n2'), node('n3')];
  const topic = 'stall/g';
  const member = await open(n2, { clientId: 'stall-member', ...persistent });
  await member.c.subscribeAsync(`$share/g/${topic}`, { qos: 1 });
  const p = await open(n1, { clientId: 'stall-gpub' });
  await p.c.publishAsync(topic, 'g-before', { qos: 1 });
  await member.receives('g-before', 'n1 routes to the group member on n2');

  const acked = p.c.publishAsync(topic, 'g-asleep', { qos: 1 });
  n1.proc.kill('SIGSTOP');
  await memberLeft(n2, 'n1');
  await memberLeft(n3, 'n1');
  // The member's session moves to n3 while n1 sleeps: n1's view still picks n2 for the group.
  await member.c.endAsync();
  const moved = n2.waitForLog((r) => r['msg'] === 'cluster: persistent session moved to another node' && r['clientId'] === 'stall-member', 30_000);
  const again = await open(n3, { clientId: 'stall-member', ...persistent });
  assert.equal(again.present, true, 'the member\'s session moved to n3');
  await moved;
  n1.proc.kill('SIGCONT');
  await acked;
  await again.receives('g-asleep', 'a group message n1 acknowledged after waking');
});

test('a client whose session\'s node is down waits for the node and keeps its session and its queue', T, async () => {
  const [n2, n3] = [node('n2'), node('n3')];
  const topic = 'stall/b';
  const s = await open(n2, { clientId: 'wait-sub', ...persistent });
  await s.c.subscribeAsync(topic, { qos: 1 });
  await s.c.endAsync();
  const p = await open(n3, { clientId: 'wait-pub' });
  await p.c.publishAsync(topic, 'queued-1', { qos: 1 });
  await p.c.publishAsync(topic, 'queued-2', { qos: 1 });
  await n2.stop('SIGKILL');
  await memberLeft(n3, 'n2');
  // The holder is gone from the cluster: the client waits for it instead of starting anew.
  const back = open(n3, { clientId: 'wait-sub', ...persistent });
  await n3.waitForLog((r) => r['msg'] === 'cluster: the node holding this session is away: waiting for it' && r['clientId'] === 'wait-sub', 30_000);
  await startNode('n2');
  const s2 = await back;
  assert.equal(s2.present, true, 'the session waited for its node and came back');
  await s2.receives('queued-1', 'the first queued message');
  await s2.receives('queued-2', 'the second queued message');
  assert.deepEqual(s2.got.slice(0, 2), ['queued-1', 'queued-2'], 'in order');
});
