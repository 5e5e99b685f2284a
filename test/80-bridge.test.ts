/**
 * 80 bridge: the Kafka bridge against a real Kafka (4.4.0, KRaft, on loopback; test/helpers/kafka.ts), with
 * real MQTT clients (MQTT.js, v5 and v3.1.1) and records read back with kafkajs. Mappings are added through the
 * HTTP API as the seed shows; QoS 0, 1 and 2 publishes arrive in Kafka with the MQTT topic (or the client id)
 * as key, the payload as value and the MQTT facts as headers, and still reach MQTT subscribers; order per key
 * holds; `$queue/<topic>` goes to Kafka only; the produce metrics count. Kafka outages are in 81, the cluster
 * in 82.
 */
import assert from 'node:assert/strict';
import { connectMqtt } from './helpers/mqtt.js';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import type { IClientOptions, MqttClient } from 'mqtt';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { startKafka, type RunningKafka } from './helpers/kafka.js';
import { RawClient } from './helpers/raw.js';
import {
  addMapping, HTTP_CONFIG, httpBase, inbox, mappingLabels, metricsText, pollUntil, postMapping, readRecords, sample, TOKEN,
  type KafkaRecord,
} from './helpers/bridge.js';

let kafka: RunningKafka;
/** Bridge on, default key (the MQTT topic). */
let broker: RunningBroker;
let api: string;
/** Bridge on with `bridge.kafka.key: clientid`. */
let byClient: RunningBroker;
let apiByClient: string;
/** The seed's default: no bridge. */
let plain: RunningBroker;
const clients: MqttClient[] = [];

before(async () => {
  kafka = await startKafka();
  const bridge = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    bridge: { enable: true, type: 'kafka', kafka: { addr: kafka.brokers, ...extra } },
    http: HTTP_CONFIG, ws: { enable: false },
  });
  // Each is kept as soon as it runs, so that after() stops it even when another failed to start.
  await Promise.all([
    startBroker({ config: bridge() }).then((x) => (broker = x)),
    startBroker({ config: bridge({ key: 'clientid' }) }).then((x) => (byClient = x)),
    startBroker({ config: { ws: { enable: false } } }).then((x) => (plain = x)),
  ]);
  [api, apiByClient] = await Promise.all([httpBase(broker), httpBase(byClient)]);
});

after(async () => {
  for (const c of clients) c.end(true);
  await Promise.all([broker?.stop(), byClient?.stop(), plain?.stop()]);
  await kafka?.destroy();
});

async function mqttClient(port: number, options: IClientOptions): Promise<MqttClient> {
  return connectMqtt(port, options, clients);
}

const text = (r: KafkaRecord): string => r.value.toString();

test('mappings are added through the HTTP API as the seed shows (x-token, no JSON content type), idempotently, and listed', async () => {
  const first = await postMapping(api, 'seed/event', 'b80-seed');
  assert.equal(first.status, 201);
  assert.deepEqual(Object.keys(first.body).sort(), ['id', 'queue', 'topic']);
  assert.deepEqual([first.body['topic'], first.body['queue']], ['seed/event', 'b80-seed']);
  const again = await postMapping(api, 'seed/event', 'b80-seed');
  assert.equal(again.status, 200, 'the same mapping twice changes nothing');
  assert.equal(again.body['id'], first.body['id']);
  const list = (await (await fetch(`${api}/api/v1/bridge/`, { headers: { 'x-token': TOKEN } })).json()) as {
    enabled: boolean; mappings: { id: string; topic: string; queue: string }[];
  };
  assert.equal(list.enabled, true);
  assert.deepEqual(list.mappings.filter((m) => m.queue === 'b80-seed'), [{ id: first.body['id'], topic: 'seed/event', queue: 'b80-seed' }]);
  const noToken = await fetch(`${api}/api/v1/bridge/`, { method: 'POST', body: '{"topic":"x","queue":"y"}' });
  assert.equal(noToken.status, 401);
  const bad = await postMapping(api, 'seed/event', 'not a kafka topic');
  assert.equal(bad.status, 400);
  assert.equal(bad.body['code'], 'BAD_QUEUE');

  // And the mapping bridges: a publish to the topic is in Kafka.
  const c = await mqttClient(broker.port, { protocolVersion: 5, clientId: 'b80-seed' });
  await c.publishAsync('seed/event', 'hello', { qos: 1 });
  const [r] = await readRecords(kafka.brokers, ['b80-seed'], (rs) => rs.length >= 1);
  assert.equal(r && text(r), 'hello');
});

test('QoS 0, 1 and 2 publishes arrive in Kafka with the MQTT topic as key, the payload as value and the MQTT facts as headers, and still reach subscribers', async () => {
  const queue = 'b80-headers';
  await addMapping(api, 'dev/+/up', queue);
  const sub = await mqttClient(broker.port, { protocolVersion: 5, clientId: 'b80-h-sub' });
  await sub.subscribeAsync('dev/+/up', { qos: 2 });
  const seen = inbox(sub);
  const v5 = await mqttClient(broker.port, { protocolVersion: 5, clientId: 'b80-h-v5', username: 'alice' });
  const v4 = await mqttClient(broker.port, { protocolVersion: 4, clientId: 'b80-h-v4' });
  const binary = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x7f]);
  const userProperties = { site: 'north', 'x-trace': 'abc123', multi: ['one', 'two'] };
  // QoS 1 and 2 resolve on PUBACK / PUBCOMP, which the broker sends only once Kafka has the message.
  await v5.publishAsync('dev/1/up', binary, { qos: 0, properties: { userProperties } });
  await v5.publishAsync('dev/1/up', 'v5 qos1', { qos: 1, properties: { userProperties } });
  await v5.publishAsync('dev/1/up', 'v5 qos2 retained', { qos: 2, retain: true });
  await v4.publishAsync('dev/2/up', 'v4 qos1', { qos: 1 });
  await v4.publishAsync('dev/2/up', 'v4 qos2', { qos: 2 });

  const records = await readRecords(kafka.brokers, [queue], (rs) => rs.length >= 5);
  assert.equal(records.length, 5);
  const facts = (clientId: string, topic: string, qos: number, retain: boolean, username?: string): Record<string, string> => ({
    mqtt_topic: topic, mqtt_client_id: clientId, ...(username === undefined ? {} : { mqtt_username: username }),
    mqtt_qos: String(qos), mqtt_retain: retain ? '1' : '0',
  });
  const byValue = new Map(records.map((r) => [r.value.toString('hex'), r]));
  const expect = [
    { value: binary, key: 'dev/1/up', headers: { site: 'north', 'x-trace': 'abc123', multi: ['one', 'two'], ...facts('b80-h-v5', 'dev/1/up', 0, false, 'alice') } },
    { value: Buffer.from('v5 qos1'), key: 'dev/1/up', headers: { site: 'north', 'x-trace': 'abc123', multi: ['one', 'two'], ...facts('b80-h-v5', 'dev/1/up', 1, false, 'alice') } },
    { value: Buffer.from('v5 qos2 retained'), key: 'dev/1/up', headers: facts('b80-h-v5', 'dev/1/up', 2, true, 'alice') },
    // No username sent: no mqtt_username header.
    { value: Buffer.from('v4 qos1'), key: 'dev/2/up', headers: facts('b80-h-v4', 'dev/2/up', 1, false) },
    { value: Buffer.from('v4 qos2'), key: 'dev/2/up', headers: facts('b80-h-v4', 'dev/2/up', 2, false) },
  ];
  for (const e of expect) {
    const r = byValue.get(e.value.toString('hex'));
    assert.ok(r, `record ${e.value.toString('hex')} in Kafka`);
    assert.equal(r.key, e.key);
    assert.deepEqual(r.headers, e.headers, `headers of ${e.value.toString()}`);
  }
  // Each publisher's records are in its publish order.
  assert.deepEqual(records.filter((r) => r.key === 'dev/1/up').map((r) => r.value.toString('hex')), expect.slice(0, 3).map((e) => e.value.toString('hex')));

  // The MQTT subscriber got the same five messages, user properties included.
  await seen.until(5);
  assert.deepEqual(seen.got.map((p) => [p.topic, Buffer.from(p.payload).toString('hex')]).sort(),
    expect.map((e) => [e.key, e.value.toString('hex')]).sort());
  const withProps = seen.got.find((p) => Buffer.from(p.payload).equals(binary));
  // (MQTT.js hands user properties over as an object without a prototype.)
  assert.deepEqual({ ...withProps?.properties?.userProperties }, userProperties);
});

test('order per key is kept over 400 messages of mixed QoS on four keys spread over three partitions', async () => {
  const queue = 'b80-order';
  const admin = new Kafka({ clientId: 'b80-admin', brokers: kafka.brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: queue, numPartitions: 3 }], waitForLeaders: true });
  await admin.disconnect();
  await addMapping(api, 'ord/+', queue);
  const sub = await mqttClient(broker.port, { protocolVersion: 5, clientId: 'b80-o-sub' });
  await sub.subscribeAsync('ord/+', { qos: 2 });
  const seen = inbox(sub);
  const pub = await mqttClient(broker.port, { protocolVersion: 5, clientId: 'b80-o-pub' });
  const total = 400;
  const keys = ['ord/a', 'ord/b', 'ord/c', 'ord/d'];
  // All sent at once (pipelined, without waiting for each acknowledgement); QoS 0, 1 and 2 interleaved.
  await Promise.all(Array.from({ length: total }, (_, i) =>
    pub.publishAsync(keys[i % keys.length] as string, String(i), { qos: (i % 3) as 0 | 1 | 2 })));
  const records = await readRecords(kafka.brokers, [queue], (rs) => rs.length >= total);
  assert.equal(records.length, total, 'each message once');
  assert.ok(new Set(records.map((r) => r.partition)).size > 1, 'the keys are spread over partitions');
  for (const key of keys) {
    const mine = records.filter((r) => r.key === key);
    const partitions = new Set(mine.map((r) => r.partition));
    assert.equal(partitions.size, 1, `${key}: one partition`);
    const sent = Array.from({ length: total }, (_, i) => i).filter((i) => keys[i % keys.length] === key).map(String);
    assert.deepEqual(mine.map(text), sent, `${key}: Kafka has the messages in publish order`);
  }
  await seen.until(total);
  assert.equal(seen.got.length, total, 'the MQTT subscriber got them all too');
});

test('$queue/<topic> goes to the Kafka topic mapped for <topic> only, with mqtt_topic <topic>; no MQTT subscriber gets it', async () => {
  const queue = 'b80-queue';
  await addMapping(api, 'agent/+/result', queue);
  const sub = await mqttClient(broker.port, { protocolVersion: 5, clientId: 'b80-q-sub' });
  const granted = await sub.subscribeAsync({
    'agent/1/result': { qos: 1 },
    // Not the retained messages of earlier tests: only what is published from now on.
    '#': { qos: 1, rh: 2 },
    '$queue/#': { qos: 1 },
  });
  assert.deepEqual(granted.slice(0, 2).map((g) => g.qos), [1, 1]);
  const seen = inbox(sub);
  const agent = await mqttClient(broker.port, { protocolVersion: 5, clientId: 'b80-q-agent', username: 'agent-1' });
  await agent.publishAsync('$queue/agent/1/result', 'job done q0', { qos: 0 });
  await agent.publishAsync('$queue/agent/1/result', 'job done q1', { qos: 1 });
  await agent.publishAsync('$queue/agent/1/result', 'job done q2', { qos: 2 });
  // Then an ordinary publish to the same topic: it reaches both the subscriber and Kafka, after the others.
  await agent.publishAsync('agent/1/result', 'marker', { qos: 1 });
  const records = await readRecords(kafka.brokers, [queue], (rs) => rs.some((r) => text(r) === 'marker'));
  assert.deepEqual(records.map(text), ['job done q0', 'job done q1', 'job done q2', 'marker']);
  for (const [i, r] of records.slice(0, 3).entries()) {
    assert.equal(r.key, 'agent/1/result');
    assert.deepEqual(r.headers, { mqtt_topic: 'agent/1/result', mqtt_client_id: 'b80-q-agent', mqtt_username: 'agent-1', mqtt_qos: String(i), mqtt_retain: '0' });
  }
  // The subscriber of agent/1/result, of # and of $queue/# got the marker (twice: two matching
  // subscriptions in v5 may deliver one copy per subscription) and nothing that went to $queue/.
  await seen.until(1);
  assert.ok(seen.got.every((p) => p.topic === 'agent/1/result' && p.payload.toString() === 'marker'),
    `only the marker reached MQTT: ${JSON.stringify(seen.got.map((p) => [p.topic, p.payload.toString()]))}`);
});

test('$queue/ without a mapping is refused with v5 PUBACK 0x90; without the bridge, $queue/ is refused with 0x87', async () => {
  const c = await mqttClient(broker.port, { protocolVersion: 5, clientId: 'b80-q-nomap' });
  await assert.rejects(c.publishAsync('$queue/nobody/maps/this', 'x', { qos: 1 }), (err: Error & { code?: number }) => err.code === 0x90);
  const off = await RawClient.connected(plain.port, 5, { clientId: 'b80-q-off' });
  off.client.send({ cmd: 'publish', topic: '$queue/agent/1/result', payload: Buffer.from('x'), qos: 1, messageId: 7, dup: false, retain: false });
  const ack = await off.client.next('puback');
  assert.equal((ack as { reasonCode?: number }).reasonCode, 0x87);
  off.client.destroy();
});

test('bridge.kafka.key: clientid keys each record with the publisher\'s client id', async () => {
  const queue = 'b80-key-client';
  await addMapping(apiByClient, 'kc/#', queue);
  const a = await mqttClient(byClient.port, { protocolVersion: 5, clientId: 'device-a' });
  const b = await mqttClient(byClient.port, { protocolVersion: 4, clientId: 'device-b' });
  await a.publishAsync('kc/x', 'a1', { qos: 1 });
  await b.publishAsync('kc/x', 'b1', { qos: 1 });
  await a.publishAsync('kc/y/z', 'a2', { qos: 2 });
  await b.publishAsync('$queue/kc/y', 'b2', { qos: 1 });
  const records = await readRecords(kafka.brokers, [queue], (rs) => rs.length >= 4);
  assert.deepEqual(records.map((r) => [text(r), r.key, r.headers['mqtt_topic']]), [
    ['a1', 'device-a', 'kc/x'], ['b1', 'device-b', 'kc/x'], ['a2', 'device-a', 'kc/y/z'], ['b2', 'device-b', 'kc/y'],
  ]);
});

test('a mapping\'s own key (as SmqBridge resources set it) wins over bridge.kafka.key', async () => {
  const queue = 'b80-key-own';
  const res = await fetch(`${api}/api/v1/bridge/`, {
    method: 'POST', headers: { 'x-token': TOKEN }, body: JSON.stringify({ topic: 'ko/#', queue, key: 'clientid' }),
  });
  assert.equal(res.status, 201);
  assert.equal(((await res.json()) as { key: string }).key, 'clientid');
  const c = await mqttClient(broker.port, { protocolVersion: 5, clientId: 'device-k' });
  await c.publishAsync('ko/x', 'k1', { qos: 1 });
  const records = await readRecords(kafka.brokers, [queue], (rs) => rs.length >= 1);
  assert.deepEqual(records.map((r) => [text(r), r.key]), [['k1', 'device-k']], 'keyed by client id on a broker whose default is the topic');
});

test('smq_bridge_messages_produced_total and smq_bridge_produce_seconds count the produced messages per mapping', async () => {
  const queue = 'b80-metrics';
  await addMapping(api, 'met/#', queue);
  const labels = mappingLabels('met/#', queue);
  const before = await metricsText(api);
  assert.equal(sample(before, 'smq_bridge_messages_produced_total', labels), 0, 'a new mapping starts at 0');
  const c = await mqttClient(broker.port, { protocolVersion: 5, clientId: 'b80-met' });
  for (let i = 0; i < 6; i++) await c.publishAsync(`met/${i}`, `q1-${i}`, { qos: 1 });
  for (let i = 0; i < 4; i++) await c.publishAsync(`met/${i}`, `q0-${i}`, { qos: 0 });
  // The QoS 0 messages are batched: they are counted once Kafka took them.
  await readRecords(kafka.brokers, [queue], (rs) => rs.length >= 10);
  const m = await pollUntil(() => metricsText(api), (t) => sample(t, 'smq_bridge_messages_produced_total', labels) === 10,
    'produced_total reaches 10', 5000);
  assert.equal(sample(m, 'smq_bridge_produce_seconds_count', labels), 10);
  assert.ok((sample(m, 'smq_bridge_produce_seconds_sum', labels) ?? 0) > 0);
  assert.equal(sample(m, 'smq_bridge_buffered_messages', labels), 0);
  assert.equal(sample(m, 'smq_bridge_messages_failed_total', labels), 0);
  assert.equal(sample(m, 'smq_bridge_up'), 1);
  // Other mappings are counted apart: the seed mapping of the first test produced exactly one.
  assert.equal(sample(m, 'smq_bridge_messages_produced_total', mappingLabels('seed/event', 'b80-seed')), 1);
});
