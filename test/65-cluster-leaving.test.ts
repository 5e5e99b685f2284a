/**
 * 65 a client back on the node its session is leaving (issue 17). While a persistent session moves from n1 to
 * n2 (snapshot sent, fence under way), its client connects to n1 again. It must not be attached to the copy that
 * is about to end there: the checker saw such clients stay connected to a node that no longer held their session,
 * listed nowhere, and every message for them lost. The connection waits for the move to end, then takes the
 * session back from where it went.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import type { IClientOptions, MqttClient } from 'mqtt';
import { decodeClaim } from '../broker/src/cluster/claims.js';
import { Keys } from '../broker/src/cluster/keys.js';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { startEtcd, type RunningEtcd } from './helpers/etcd.js';
import { openClient, type Opened } from './helpers/opened.js';

const T = { timeout: 90_000 };
const cluster = `lv${process.pid}`;
let etcd: RunningEtcd;
const nodes: RunningBroker[] = [];
const clients = new Set<MqttClient>();

function startNode(id: string): Promise<RunningBroker> {
  return startBroker({
    config: {
      cluster, broker: id, store: { dir: mkdtempSync(join(tmpdir(), `smq-65-${id}-`)) }, ws: { enable: false },
      // A lease longer than n3 is ever stopped here: n3 stays a member, so each move's fence waits for it.
      etcd: { endpoints: [etcd.endpoint], lease_ttl: 30, session_wait: 20 },
    },
    timeoutMs: 30_000,
  });
}

function open(node: RunningBroker, options: IClientOptions): Promise<Opened> {
  return openClient(node.port, options, clients);
}

/**
 * Resolves once etcd's record of the session of `clientId` names `node` (a pull asks the node named there; a
 * record not yet written would make the other node start a new session instead).
 */
async function recorded(watcher: Etcd3, clientId: string, node: string): Promise<void> {
  const key = new Keys(cluster).session(clientId);
  const w = await watcher.watch().key(key).create();
  try {
    const names = (v: string | null): boolean => v !== null && decodeClaim(v).node === node;
    const put = new Promise<void>((resolve) => w.on('put', (kv) => { if (names(kv.value.toString())) resolve(); }));
    if (!names(await watcher.get(key).string())) await put;
  } finally {
    await w.cancel();
  }
}

before(async () => {
  etcd = await startEtcd();
  for (const id of ['n1', 'n2', 'n3']) nodes.push(await startNode(id));
});

after(async () => {
  for (const c of clients) c.end(true);
  for (const n of nodes) {
    n.proc.kill('SIGCONT');
    await n.stop('SIGKILL');
  }
  await etcd.destroy();
});

test('a client that comes back to the node its session is leaving waits for the move, then gets its session back', T, async () => {
  const [n1, n2, n3] = nodes as [RunningBroker, RunningBroker, RunningBroker];
  const persistent: IClientOptions = { clientId: 'back', clean: false, properties: { sessionExpiryInterval: 3600 } };
  const first = await open(n1, persistent);
  await first.c.subscribeAsync('leaving/t', { qos: 1 });
  await first.c.endAsync();
  // n3 stopped, but still a member: the move's fence waits for its answer (up to 5 s), which holds the session
  // between its snapshot and its end on n1.
  const watcher = new Etcd3({ hosts: `http://${etcd.endpoint}` });
  await recorded(watcher, 'back', 'n1');
  n3.proc.kill('SIGSTOP');
  try {
    // Watching before the request goes out, so that the fence cannot come and go unseen.
    const w = await watcher.watch().prefix(new Keys(cluster).fence('n1', '')).create();
    const fence = new Promise<void>((resolve) => w.on('put', () => resolve()));
    const elsewhere = open(n2, persistent); // n2 asks n1 for the session
    await fence;
    // Now on n1 again, while the session is leaving it.
    const back = await open(n1, persistent);
    assert.equal(back.present, true, 'the session came back with its client');
    await elsewhere.catch(() => undefined);
    const pub = await open(n1, { clientId: 'leaving-pub' });
    await pub.c.publishAsync('leaving/t', 'after', { qos: 1 });
    await back.receives('after', 'a message published after the session came back');
    assert.ok(back.c.connected, 'still connected to its session');
  } finally {
    n3.proc.kill('SIGCONT');
    watcher.close();
  }
});

test('a client that connects where its session is arriving is answered once the messages its old node queued meanwhile are there', T, async () => {
  const [n1, n2, n3] = nodes as [RunningBroker, RunningBroker, RunningBroker];
  const persistent: IClientOptions = { clientId: 'arriving', clean: false, properties: { sessionExpiryInterval: 3600 } };
  const first = await open(n1, persistent);
  await first.c.subscribeAsync('arriving/t', { qos: 1 });
  await first.c.endAsync();
  const watcher = new Etcd3({ hosts: `http://${etcd.endpoint}` });
  await recorded(watcher, 'arriving', 'n1');
  n3.proc.kill('SIGSTOP'); // the move's fence waits for n3: the session sits on n2 without its delta meanwhile
  try {
    const keys = new Keys(cluster);
    const w = await watcher.watch().key(keys.moved('n1', 'arriving')).create();
    const acked = new Promise<void>((resolve) => w.on('put', () => resolve()));
    // The fence's end comes before the delta is sent, which comes before n2 can have it: a CONNACK sent only
    // once the move has ended comes after this line (both clocks are this machine's).
    const since = Date.now(); // the first test's moves logged the same line earlier
    const fenced = n1.waitForLog((r) => r['msg'] === 'cluster: nodes did not answer a fence in time: going on without them' &&
      Number(r['time']) >= since, 30_000);
    const pulling = open(n2, persistent);
    await acked; // installed on n2, its delta still on n1
    const second = await open(n2, persistent);
    const connackAt = Date.now();
    assert.equal(second.present, true);
    const end = await fenced;
    assert.ok(Number(end['time']) <= connackAt, 'CONNACK only after the old node finished the move');
    await pulling.catch(() => undefined);
  } finally {
    n3.proc.kill('SIGCONT');
    watcher.close();
  }
});
