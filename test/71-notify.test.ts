/**
 * 71 notify: notifications over HTTP and gRPC, and agent mode, on the built broker. Two brokers, one per
 * transport, report to real receivers in this process (a node:http server; a @grpc/grpc-js server loading the
 * repository's notify.proto). Agents connect with ClientInfo as raw 3.1.1 bytes and as a v5 user property.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import mqtt, { type IConnackPacket, type IConnectPacket, type IPublishPacket } from 'mqtt-packet';
import { freePort, startBroker, type RunningBroker, httpBase } from './helpers/broker.js';
import { GrpcReceiver, HttpReceiver, type EventLog, type Received } from './helpers/notify-servers.js';
import { RawClient } from './helpers/raw.js';
import { connectMqtt } from './helpers/mqtt.js';

const TOKEN = 't0ken';
const INFO = { host_name: 'pi.example.com', intranet_ip: '192.168.1.100', public_ip: '', platform: 'linux', arch: 'aarch64', os: 'CentOS Stream release 8', agent_version: 'v0.0.1' };
const CLIENT_FIELDS = ['id', 'node_id', 'connect_ip', 'user_name', 'proto_name', 'proto_ver', 'keep_alive', 'clean_start', 'status', 'timestamp'];
const SUBSCRIPTION_FIELDS = [...CLIENT_FIELDS, 'topic', 'qos'];
const AGENT_FIELDS = ['id', 'node_id', 'host_name', 'connect_ip', 'intranet_ip', 'public_ip', 'platform', 'arch', 'os', 'agent_version', 'user_name', 'proto_name', 'proto_ver', 'keep_alive', 'clean_start', 'status', 'timestamp'];

/** One broker under test with the receiver its notifications go to. */
interface Target {
  readonly name: 'http' | 'grpc';
  readonly node: string;
  readonly broker: RunningBroker;
  readonly api: string;
  readonly log: EventLog;
}

const httpReceiver = new HttpReceiver();
const grpcReceiver = new GrpcReceiver();
let httpPort: number;
let grpcPort: number;
const targets: Target[] = [];
const clients: MqttClient[] = [];
const raws: RawClient[] = [];
const started = Math.floor(Date.now() / 1000);

async function start(name: 'http' | 'grpc', server: string, log: EventLog): Promise<Target> {
  const node = `node-${name}`;
  const broker = await startBroker({ config: {
    broker: node,
    http: { enable: true, host: '127.0.0.1', port: 0, tokens: [TOKEN] },
    notify: { enable: true, type: name, server, timeout: 2000, retries: 100, backoff: 100, backoff_max: 400 },
  } });
  return { name, node, broker, api: `${await httpBase(broker)}/api/v1`, log };
}

before(async () => {
  // The receivers' ports are chosen now but they start listening only in the first test: down at first.
  httpPort = await freePort();
  grpcPort = await freePort();
  const [h, g] = await Promise.all([
    start('http', `http://127.0.0.1:${httpPort}/smq/events`, httpReceiver.log),
    start('grpc', `127.0.0.1:${grpcPort}`, grpcReceiver.log),
  ]);
  targets.push(h, g);
});

after(async () => {
  for (const c of clients) c.end(true);
  for (const r of raws) r.destroy();
  await Promise.all(targets.map((t) => t.broker.stop()));
  grpcReceiver.close();
  await httpReceiver.close();
});

async function mqttClient(t: Target, clientId: string, options: IClientOptions = {}): Promise<MqttClient> {
  return connectMqtt(t.broker.port, { protocolVersion: 5, clientId, ...options }, clients);
}

function end(c: MqttClient): Promise<void> {
  return new Promise((resolve) => c.end(false, {}, () => resolve()));
}

async function api(t: Target, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${t.api}${path}`, { headers: { 'x-token': TOKEN } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** An MQTT string: two-byte big-endian length, then the bytes. */
function mqttString(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

/** A CONNECT whose payload is followed by `trailer` (the ClientInfo string), Remaining Length adjusted. */
function connectWith(packet: IConnectPacket, trailer: Buffer): Buffer {
  const plain = mqtt.generate(packet);
  let p = 1;
  while (((plain[p++] as number) & 0x80) !== 0);
  const body = Buffer.concat([plain.subarray(p), trailer]);
  const rl: number[] = [];
  let n = body.length;
  do {
    rl.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n >>= 7;
  } while (n > 0);
  return Buffer.concat([Buffer.from([0x10, ...rl]), body]);
}

/** Opens a raw 3.1.1 connection that sends `bytes` as its CONNECT. */
async function rawConnect(t: Target, bytes: Buffer, version: 4 | 5 = 4): Promise<RawClient> {
  const r = await RawClient.open(t.broker.port, version);
  raws.push(r);
  r.send(bytes);
  return r;
}

/** The fields of an event with its timestamp checked and taken out (and HTTP's `event` field). */
function fields(e: Received, expectedKeys: string[]): Record<string, unknown> {
  const { event, timestamp, ...rest } = e.body;
  const keys = Object.keys(e.body).filter((k) => k !== 'event').sort();
  assert.deepEqual(keys, [...expectedKeys].sort(), `field set of ${e.event}`);
  if (e.headers) {
    assert.equal(event, e.event);
    assert.equal(e.headers['x-smq-event'], e.event, 'the event name is in the x-smq-event header');
    assert.equal(e.headers['content-type'], 'application/json');
    assert.equal(e.path, '/smq/events', 'posted to the configured URL path');
  }
  assert.equal(typeof timestamp, 'number');
  assert.ok((timestamp as number) >= started && (timestamp as number) <= Date.now() / 1000 + 1, `timestamp ${timestamp} in unix seconds`);
  return rest;
}

test('the notification server is down at first: events are delivered after retries, in order per client', async () => {
  for (const t of targets) {
    const ids = [`early-${t.name}-1`, `early-${t.name}-2`];
    for (const id of ids) {
      const c = await mqttClient(t, id);
      await c.subscribeAsync('early/t', { qos: 1 });
      await c.unsubscribeAsync('early/t');
      await end(c);
    }
    await t.broker.waitForLog((r) => r['msg'] === 'notification server call failed; retrying');
  }
  await Promise.all([httpReceiver.listen(httpPort), grpcReceiver.listen(grpcPort)]);
  for (const t of targets) {
    for (const id of [`early-${t.name}-1`, `early-${t.name}-2`]) {
      const got = await t.log.forClient(id, 4);
      assert.deepEqual(got.map((e) => e.event), ['client_connected', 'subscribe', 'unsubscribe', 'client_disconnected'], `${t.name}: order of ${id}`);
    }
  }
  const metrics = await (await fetch(`${targets[0]?.api.replace('/api/v1', '')}/metrics`)).text();
  assert.ok(Number(/^smq_notifications_failed_total (\d+)$/m.exec(metrics)?.[1]) > 0, 'failed attempts are counted');
});

test('client events carry the seed fields, over HTTP (x-smq-event header, event field) and gRPC', async () => {
  for (const t of targets) {
    const id = `fields-${t.name}`;
    const c = await mqttClient(t, id, { username: 'alice', keepalive: 30 });
    await c.subscribeAsync('f/+', { qos: 1 });
    await c.unsubscribeAsync('f/+');
    await end(c);
    const [conn, sub, unsub, disc] = await t.log.forClient(id, 4);
    const common = { id, node_id: t.node, connect_ip: '127.0.0.1', user_name: 'alice', proto_name: 'MQTT', proto_ver: 5, keep_alive: 30, clean_start: true };
    assert.equal(conn?.event, 'client_connected');
    if (conn?.method) assert.equal(conn.method, 'OnClientConnect');
    assert.deepEqual(fields(conn as Received, CLIENT_FIELDS), { ...common, status: 1 });
    assert.equal(sub?.event, 'subscribe');
    assert.deepEqual(fields(sub as Received, SUBSCRIPTION_FIELDS), { ...common, status: 1, topic: 'f/+', qos: 1 });
    assert.equal(unsub?.event, 'unsubscribe');
    if (unsub?.method) assert.equal(unsub.method, 'OnUnSubscribe');
    assert.deepEqual(fields(unsub as Received, SUBSCRIPTION_FIELDS), { ...common, status: 1, topic: 'f/+', qos: 1 });
    assert.equal(disc?.event, 'client_disconnected');
    assert.deepEqual(fields(disc as Received, CLIENT_FIELDS), { ...common, status: 0 });
  }
});

test('an agent sending ClientInfo after its 3.1.1 CONNECT payload: notified, listed, gets its jobs, goes offline', async () => {
  for (const t of targets) {
    const id = `agent-raw-${t.name}`;
    // 10 <len> | 00 04 "MQTT" 04 | c2 (user name, password, clean) 00 05 | client id | "ops" | "pw" | 00 <n> {ClientInfo JSON}
    const bytes = connectWith(
      { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: id, clean: true, keepalive: 5, username: 'ops', password: Buffer.from('pw') },
      mqttString(JSON.stringify({ ...INFO, extra_field: 'ignored' })),
    );
    const agent = await rawConnect(t, bytes);
    assert.equal(((await agent.next('connack')) as IConnackPacket).returnCode, 0);
    agent.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `agents/${id}`, qos: 1 }] });
    await agent.next('suback');
    const [online] = await t.log.forClient(id, 1, 'agent_connected');
    if (online?.method) assert.equal(online.method, 'OnAgentConnect');
    const seed = { id, node_id: t.node, ...INFO, connect_ip: '127.0.0.1', user_name: 'ops', proto_name: 'MQTT', proto_ver: 4, keep_alive: 5, clean_start: true };
    assert.deepEqual(fields(online as Received, AGENT_FIELDS), { ...seed, status: 1 });

    const list = await api(t, '/agents');
    assert.equal(list.status, 200);
    const listed = (list.body['agents'] as Record<string, unknown>[]).find((a) => a['id'] === id);
    assert.ok(listed, `${id} listed by GET /api/v1/agents`);
    const { since, ...view } = listed;
    assert.deepEqual(view, seed);
    assert.ok(typeof since === 'number' && since >= started);
    assert.deepEqual({ page: list.body['page'], limit: list.body['limit'] }, { page: 1, limit: 100 });
    assert.ok((list.body['total'] as number) >= 1);
    assert.deepEqual((await api(t, `/agents/${id}`)).body, listed);

    // A job server publishes to agents/<id>; ordinary routing takes it to the agent.
    const jobs = await mqttClient(t, `jobs-${t.name}`);
    await jobs.publishAsync(`agents/${id}`, '{"job":"uptime"}', { qos: 1 });
    const job = (await agent.next('publish')) as IPublishPacket;
    assert.equal(job.topic, `agents/${id}`);
    assert.equal(job.payload.toString(), '{"job":"uptime"}');
    agent.send({ cmd: 'puback', messageId: job.messageId });
    await end(jobs);

    agent.send({ cmd: 'disconnect' });
    await t.log.forClient(id, 1, 'client_disconnected');
    const events = t.log.of(id);
    assert.deepEqual(events.map((e) => e.event), ['client_connected', 'subscribe', 'agent_connected', 'agent_disconnected', 'client_disconnected']);
    const offline = events[3] as Received;
    if (offline.method) assert.equal(offline.method, 'OnAgentDisconnected');
    assert.deepEqual(fields(offline, AGENT_FIELDS), { ...seed, status: 0 });
    const gone = await api(t, `/agents/${id}`);
    assert.equal(gone.status, 404);
    assert.equal(gone.body['code'], 'AGENT_NOT_FOUND');
  }
});

test('an MQTT 5 agent with the client_info user property: notified, listed; unsubscribing makes it offline', async () => {
  for (const t of targets) {
    const id = `agent-v5-${t.name}`;
    const c = await mqttClient(t, id, { properties: { userProperties: { client_info: JSON.stringify(INFO) } } });
    await c.subscribeAsync(`agents/${id}`, { qos: 0 });
    const [online] = await t.log.forClient(id, 1, 'agent_connected');
    const seed = { id, node_id: t.node, ...INFO, connect_ip: '127.0.0.1', user_name: '', proto_name: 'MQTT', proto_ver: 5, keep_alive: 60, clean_start: true };
    assert.deepEqual(fields(online as Received, AGENT_FIELDS), { ...seed, status: 1 });
    assert.equal((await api(t, `/agents/${id}`)).body['host_name'], INFO.host_name);
    await c.subscribeAsync(`agents/${id}`, { qos: 1 }); // again: still one agent, no second agent_connected
    await c.unsubscribeAsync(`agents/${id}`);
    const [offline] = await t.log.forClient(id, 1, 'agent_disconnected');
    assert.deepEqual(fields(offline as Received, AGENT_FIELDS), { ...seed, status: 0 });
    assert.equal((await api(t, `/agents/${id}`)).status, 404);
    await end(c);
    await t.log.forClient(id, 1, 'client_disconnected');
    assert.deepEqual(t.log.of(id).map((e) => e.event), [
      'client_connected', 'subscribe', 'agent_connected', 'subscribe', 'unsubscribe', 'agent_disconnected', 'client_disconnected',
    ]);
  }
});

test('a persistent session that still holds agents/<id> is an agent again when it reconnects', async () => {
  const t = targets[0] as Target;
  const id = 'agent-persistent';
  const packet: IConnectPacket = { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: id, clean: false, keepalive: 10 };
  const first = await rawConnect(t, connectWith(packet, mqttString('{"host_name":"box"}')));
  await first.next('connack');
  first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `agents/${id}`, qos: 1 }] });
  await first.next('suback');
  first.send({ cmd: 'disconnect' });
  await t.log.forClient(id, 1, 'client_disconnected');
  const again = await rawConnect(t, connectWith(packet, mqttString('{"host_name":"box","agent_version":"v2"}')));
  assert.equal(((await again.next('connack')) as IConnackPacket).sessionPresent, true);
  const events = await t.log.forClient(id, 2, 'agent_connected');
  assert.deepEqual(t.log.of(id).map((e) => e.event), [
    'client_connected', 'subscribe', 'agent_connected', 'agent_disconnected', 'client_disconnected', 'client_connected', 'agent_connected',
  ]);
  const body = fields(events[1] as Received, AGENT_FIELDS);
  assert.equal(body['agent_version'], 'v2', 'the ClientInfo of the new connection');
  assert.equal(body['clean_start'], false);
  assert.equal((await api(t, `/agents/${id}`)).body['agent_version'], 'v2');
});

test('malformed ClientInfo is refused (v5 CONNACK 0x99 with a reason, 3.1.1 closed) while other clients keep working', async () => {
  const t = targets[0] as Target;
  const bystander = await mqttClient(t, 'bystander');
  await bystander.subscribeAsync('still/works', { qos: 0 });
  const bad: [string, Buffer][] = [
    ['length mismatch', Buffer.from([0x00, 0x09, 0x7b, 0x7d])],
    ['not JSON', mqttString('host=pi')],
    ['a field that is not a string', mqttString('{"host_name":42}')],
    ['more than 4 KiB', mqttString(JSON.stringify({ host_name: 'x'.repeat(5000) }))],
  ];
  for (const [what, trailer] of bad) {
    const v5 = await rawConnect(t, connectWith({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: `bad5-${raws.length}`, clean: true, keepalive: 10 }, trailer), 5);
    const connack = (await v5.next('connack')) as IConnackPacket;
    assert.equal(connack.reasonCode, 0x99, `${what}: v5 Payload format invalid`);
    assert.match(connack.properties?.reasonString ?? '', /client info/, what);
    await v5.expectClosed();
    const v4 = await rawConnect(t, connectWith({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: `bad4-${raws.length}`, clean: true, keepalive: 10 }, trailer));
    assert.deepEqual(await v4.expectClosed(), [], `${what}: 3.1.1 closed without CONNACK`);
  }
  const v5prop = await rawConnect(t, mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'bad-prop', clean: true, keepalive: 10,
    properties: { userProperties: { client_info: '["not", "an", "object"]' } } }), 5);
  assert.equal(((await v5prop.next('connack')) as IConnackPacket).reasonCode, 0x99);
  await t.broker.waitForLog((r) => r['msg'] === 'connection refused' && String(r['reason']).startsWith('client info:'));
  const got = new Promise<string>((resolve) => bystander.once('message', (_topic, payload) => resolve(payload.toString())));
  await bystander.publishAsync('still/works', 'yes');
  assert.equal(await got, 'yes');
  assert.equal(t.log.of('bad-prop').length, 0, 'a refused client raises no event');
});

test('/metrics: notifications sent by event, failed, dropped by reason, queue and agents gauges', async () => {
  const t = targets[0] as Target;
  const text = await (await fetch(`${t.api.replace('/api/v1', '')}/metrics`)).text();
  assert.match(text, /^# TYPE smq_notifications_sent_total counter$/m);
  for (const e of ['client_connected', 'client_disconnected', 'subscribe', 'unsubscribe', 'agent_connected', 'agent_disconnected']) {
    assert.ok(Number(new RegExp(`^smq_notifications_sent_total\\{event="${e}"\\} (\\d+)$`, 'm').exec(text)?.[1]) >= 1, `sent ${e}`);
  }
  assert.match(text, /^smq_notifications_dropped_total\{reason="queue_full"\} 0$/m);
  assert.match(text, /^smq_notifications_dropped_total\{reason="retries_exhausted"\} 0$/m);
  assert.match(text, /^smq_notification_queue \d+$/m);
  assert.match(text, /^smq_agents 1$/m, 'the persistent agent is still connected');
});

test('the OpenAPI document describes /agents and /agents/{clientid}', async () => {
  const t = targets[0] as Target;
  const doc = (await (await fetch(`${t.api}/openapi.json`)).json()) as { paths: Record<string, { get?: { responses: Record<string, unknown> } }> };
  assert.ok(doc.paths['/agents']?.get?.responses['200']);
  assert.ok(doc.paths['/agents/{clientid}']?.get?.responses['404']);
});
