/**
 * 61 cluster API: two broker processes and a real etcd. The HTTP API of one node answers for the whole
 * cluster: clients and subscriptions on the other node are listed, filtered by node, read and kicked (v5 0x98),
 * all through etcd (the nodes never connect to each other).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { startBroker, type RunningBroker, httpBase } from './helpers/broker.js';
import { startEtcd, type RunningEtcd } from './helpers/etcd.js';
import { connectMqtt } from './helpers/mqtt.js';
import { strictConnect } from './helpers/strict/tap.js';

let etcd: RunningEtcd;
let a: RunningBroker;
let b: RunningBroker;
let api: string;
let apiB: string;
const clients: MqttClient[] = [];
const cluster = `api${process.pid}`;
const h = { 'x-token': 'k' };

function startNode(id: string, http: boolean): Promise<RunningBroker> {
  return startBroker({
    config: {
      cluster,
      broker: id,
      etcd: { endpoints: [etcd.endpoint], lease_ttl: 5 },
      ws: { enable: false },
      http: { enable: http, host: '127.0.0.1', port: 0, tokens: ['k'] },
    },
    timeoutMs: 30_000,
  });
}

before(async () => {
  etcd = await startEtcd();
  [a, b] = await Promise.all([startNode('node-a', true), startNode('node-b', true)]);
  [api, apiB] = await Promise.all([apiOf(a), apiOf(b)]);
  // Both nodes see each other before the tests ask across them.
  await waitFor(async () => ((await get('/nodes')) as unknown[]).length === 2, 'both nodes registered');
});

after(async () => {
  for (const c of clients) c.end(true);
  await Promise.all([a?.stop(), b?.stop()]);
  await etcd?.stop();
});

async function apiOf(node: RunningBroker): Promise<string> {
  return `${await httpBase(node)}/api/v1`;
}

async function get(path: string): Promise<unknown> {
  const res = await fetch(api + path, { headers: h });
  assert.equal(res.status, 200, `GET ${path}: ${res.status}`);
  return res.json();
}

/** Asks until `cond` holds: what etcd carries arrives by watch, a little after the MQTT side is done. */
async function waitFor(cond: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function mqttClient(port: number, clientId: string, username?: string): Promise<MqttClient> {
  return connectMqtt(port, { protocolVersion: 5, clientId, username }, clients);
}

interface ClientsPage {
  total: number;
  unreachable: string[];
  clients: { clientid: string; node: string; username: string | null }[];
}

test('clients of both nodes are listed by either node\'s API, in client-id order, filtered by node and username', async () => {
  await mqttClient(b.port, 'capi-b1', 'alice');
  await mqttClient(a.port, 'capi-a1');
  await mqttClient(b.port, 'capi-b2');
  const all = (await get('/clients?limit=1000')) as ClientsPage;
  const ours = all.clients.filter((c) => c.clientid.startsWith('capi-'));
  assert.deepEqual(ours.map((c) => [c.clientid, c.node]), [['capi-a1', 'node-a'], ['capi-b1', 'node-b'], ['capi-b2', 'node-b']]);
  assert.deepEqual(all.unreachable, []);
  const onB = (await get('/clients?node=node-b')) as ClientsPage;
  assert.deepEqual(onB.clients.map((c) => c.clientid), ['capi-b1', 'capi-b2']);
  assert.equal(onB.total, 2);
  const alice = (await get('/clients?username=alice')) as ClientsPage;
  assert.deepEqual(alice.clients.map((c) => c.clientid), ['capi-b1']);
  // Pages merge across nodes: page 2 of size 1 is the second client in order, wherever it is.
  const second = (await get('/clients?limit=1&page=2')) as ClientsPage;
  assert.equal(second.total, 3);
  assert.deepEqual(second.clients.map((c) => c.clientid), ['capi-b1']);
  const one = (await get('/clients/capi-b2')) as { node: string; proto_ver: number };
  assert.deepEqual([one.node, one.proto_ver], ['node-b', 5]);
});

test('subscriptions held on the other node are listed, per client and in all', async () => {
  const c = await mqttClient(b.port, 'capi-sub');
  await c.subscribeAsync({ 'capi/x': { qos: 1 }, '$share/g/capi/y': { qos: 0 } });
  const subs = (await get('/clients/capi-sub/subscriptions')) as { topic: string; node: string; qos: number }[];
  assert.deepEqual(subs, [
    { clientid: 'capi-sub', node: 'node-b', topic: '$share/g/capi/y', qos: 0 },
    { clientid: 'capi-sub', node: 'node-b', topic: 'capi/x', qos: 1 },
  ]);
  const all = (await get('/subscriptions?clientid=capi-sub')) as { total: number; subscriptions: unknown[] };
  assert.equal(all.total, 2);
  assert.equal((await fetch(`${api}/clients/nobody-here/subscriptions`, { headers: h })).status, 404);
});

test('a client on the other node is kicked through this node\'s API with v5 DISCONNECT 0x98', async () => {
  const c = await mqttClient(b.port, 'capi-kick');
  const reason = new Promise<number | undefined>((resolve) => c.once('disconnect', (p) => resolve(p.reasonCode)));
  const res = await fetch(`${api}/clients/capi-kick`, { method: 'DELETE', headers: h });
  assert.equal(res.status, 204);
  assert.equal(await reason, 0x98);
  const missing = await fetch(`${api}/clients/not-connected-anywhere`, { method: 'DELETE', headers: h });
  assert.equal(missing.status, 404);
  assert.equal(((await missing.json()) as { code: string }).code, 'CLIENT_NOT_FOUND');
});

test('a bridge mapping added through one node is bridged by every node; removed through another, gone everywhere', async () => {
  const added = await fetch(`${api}/bridge/`, { method: 'POST', headers: h, body: '{"topic": "devices/+/up", "queue": "uplink"}' });
  assert.equal(added.status, 201);
  const { id } = (await added.json()) as { id: string };
  const listedOn = async (base: string): Promise<boolean> => {
    const list = (await (await fetch(`${base}/bridge/`, { headers: h })).json()) as { mappings: { id: string }[] };
    return list.mappings.some((m) => m.id === id);
  };
  await waitFor(() => listedOn(apiB), 'the mapping reaches node-b through etcd');
  assert.equal((await fetch(`${apiB}/bridge/${id}`, { method: 'DELETE', headers: h })).status, 204);
  await waitFor(async () => !(await listedOn(api)), 'the removal reaches node-a');
});

test('/metrics counts cross-node forwards and the etcd latency of each batch write', async () => {
  const sub = await mqttClient(b.port, 'capi-metrics-sub');
  await sub.subscribeAsync('capi/metrics', { qos: 1 });
  const pub = await mqttClient(a.port, 'capi-metrics-pub');
  const got = new Promise<void>((resolve) => sub.once('message', () => resolve()));
  // The route reaches node-a through etcd a moment after SUBACK: publish until it arrives.
  const timer = setInterval(() => void pub.publishAsync('capi/metrics', 'x', { qos: 1 }), 100);
  await got.finally(() => clearInterval(timer));
  // node-b can deliver the batch before node-a has handled etcd's answer to its write, which is when node-a
  // counts it: wait for the count rather than read it once.
  const metrics = async (): Promise<string> => (await fetch(api.replace('/api/v1', '/metrics'))).text();
  const sent = (text: string): number => Number(/^smq_cluster_messages_sent_total (\d+)$/m.exec(text)?.[1] ?? 0);
  await waitFor(async () => sent(await metrics()) >= 1, 'messages sent to node-b');
  const text = await metrics();
  assert.ok(Number(/^smq_cluster_etcd_write_seconds_count (\d+)$/m.exec(text)?.[1]) >= 1, 'etcd write latency observed');
  assert.match(text, /^smq_cluster_etcd_write_seconds_bucket\{le="0\.01"\} \d+$/m);
  assert.match(text, /^smq_cluster_members 2$/m);
});

test('an agent on the other node is listed, with its ClientInfo, by this node\'s /agents', async () => {
  const info = { host_name: 'pi.example.com', intranet_ip: '10.0.0.7', public_ip: '', platform: 'linux', arch: 'aarch64', os: 'Debian 12', agent_version: 'v0.0.1' };
  const agent = strictConnect(`mqtt://127.0.0.1:${b.port}`, {
    protocolVersion: 5, clientId: 'capi-agent', reconnectPeriod: 0, properties: { userProperties: { client_info: JSON.stringify(info) } },
  });
  clients.push(agent);
  await new Promise<void>((resolve, reject) => {
    agent.once('connect', () => resolve());
    agent.once('error', reject);
  });
  await agent.subscribeAsync('agents/capi-agent', { qos: 1 });
  const page = (await get('/agents')) as { total: number; agents: { id: string; node_id: string; host_name: string; arch: string }[] };
  const seen = page.agents.find((x) => x.id === 'capi-agent');
  assert.deepEqual([seen?.node_id, seen?.host_name, seen?.arch], ['node-b', 'pi.example.com', 'aarch64']);
  const one = (await get('/agents/capi-agent')) as { intranet_ip: string };
  assert.equal(one.intranet_ip, '10.0.0.7');
  assert.equal((await fetch(`${api}/agents/no-such-agent`, { headers: h })).status, 404);
});

test('a node that stopped answering is named in `unreachable`; the rest of the list still comes', async () => {
  await b.stop('SIGKILL');
  // Until its lease expires (5 s), node-b is still a member: asked, silent for 3 s, reported.
  const page = (await get('/clients?limit=1000')) as ClientsPage;
  assert.deepEqual(page.unreachable, ['node-b']);
  assert.ok(page.clients.some((c) => c.clientid === 'capi-a1'), 'node-a\'s clients are listed');
  assert.ok(!page.clients.some((c) => c.node === 'node-b'));
});
