/**
 * 82 bridge cluster: two broker processes on a real etcd, both bridging to one real Kafka. A mapping added
 * through one node's API is stored in etcd and bridged by every node: a publish on the other node is produced
 * to Kafka by that node, once, even when the message is also forwarded to a subscriber on the first node.
 */
import assert from 'node:assert/strict';
import { connectMqtt } from './helpers/mqtt.js';
import { after, before, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { startEtcd, type RunningEtcd } from './helpers/etcd.js';
import { startKafka, type RunningKafka } from './helpers/kafka.js';
import {
  addMapping, HTTP_CONFIG, httpBase, inbox, mappingLabels, metricsText, pollUntil, readRecords, sample, TOKEN,
} from './helpers/bridge.js';

let etcd: RunningEtcd;
let kafka: RunningKafka;
let a: RunningBroker;
let b: RunningBroker;
let apiA: string;
let apiB: string;
const clients: MqttClient[] = [];

function startNode(id: string): Promise<RunningBroker> {
  return startBroker({
    config: {
      cluster: `bridge${process.pid}`,
      broker: id,
      etcd: { endpoints: [etcd.endpoint], lease_ttl: 5 },
      bridge: { enable: true, kafka: { addr: kafka.brokers } },
      http: HTTP_CONFIG,
      ws: { enable: false },
    },
    timeoutMs: 30_000,
  });
}

before(async () => {
  // Each is kept as soon as it runs, so that after() stops it even when another failed to start.
  await Promise.all([startEtcd().then((e) => (etcd = e)), startKafka().then((k) => (kafka = k))]);
  await Promise.all([startNode('node-a').then((n) => (a = n)), startNode('node-b').then((n) => (b = n))]);
  [apiA, apiB] = await Promise.all([httpBase(a), httpBase(b)]);
  await pollUntil(async () => (await (await fetch(`${apiA}/api/v1/nodes`, { headers: { 'x-token': TOKEN } })).json()) as unknown[],
    (nodes) => nodes.length === 2, 'both nodes registered');
});

after(async () => {
  for (const c of clients) c.end(true);
  await Promise.all([a?.stop(), b?.stop()]);
  await Promise.all([etcd?.destroy(), kafka?.destroy()]);
});

async function mqttClient(port: number, clientId: string): Promise<MqttClient> {
  return connectMqtt(port, { protocolVersion: 5, clientId }, clients);
}

test('a mapping added through node A\'s API is bridged by both nodes: B produces what is published on B, once, and A what is published on A', async () => {
  const queue = 'b82-cluster';
  const labels = mappingLabels('site/+/telemetry', queue);
  await addMapping(apiA, 'site/+/telemetry', queue);
  // B learns the mapping from etcd.
  await pollUntil(async () => (await (await fetch(`${apiB}/api/v1/bridge/`, { headers: { 'x-token': TOKEN } })).json()) as { mappings: { queue: string }[] },
    (l) => l.mappings.some((m) => m.queue === queue), 'node B lists the mapping', 10_000);

  // A subscriber on A: the message is also forwarded across the cluster, and A must not produce it again.
  const subA = await mqttClient(a.port, 'b82-sub-a');
  await subA.subscribeAsync('site/+/telemetry', { qos: 1 });
  const seenA = inbox(subA);
  // Subscriptions travel through etcd too: publish until A's subscriber hears one, then check Kafka.
  const pubB = await mqttClient(b.port, 'b82-pub-b');
  await pollUntil(async () => {
    await pubB.publishAsync('site/1/telemetry', 'probe', { qos: 1 });
    return seenA.got.length;
  }, (n) => n > 0, 'node A\'s subscriber reachable from node B', 10_000);
  const probes = await pollUntil(async () => sample(await metricsText(apiB), 'smq_bridge_messages_produced_total', labels) ?? 0,
    (n) => n > 0, 'node B produced');

  // The publish under test: acknowledged by B once Kafka has it.
  await pubB.publishAsync('site/2/telemetry', 'from node B', { qos: 1, properties: { userProperties: { origin: 'b' } } });
  const records = await readRecords(kafka.brokers, [queue], (rs) => rs.some((r) => r.value.toString() === 'from node B'));
  const mine = records.filter((r) => r.value.toString() === 'from node B');
  assert.equal(mine.length, 1);
  assert.equal(mine[0]?.key, 'site/2/telemetry');
  assert.deepEqual(mine[0]?.headers, { origin: 'b', mqtt_topic: 'site/2/telemetry', mqtt_client_id: 'b82-pub-b', mqtt_qos: '1', mqtt_retain: '0' });
  await pollUntil(async () => seenA.got.some((p) => p.payload.toString() === 'from node B'), (yes) => yes,
    'node A\'s subscriber got the message', 10_000);

  // Produced by B (its counter has every message published on B); A, which only received the forwarded
  // copies, never queued one for Kafka.
  const mB = await pollUntil(async () => metricsText(apiB), (t) => sample(t, 'smq_bridge_messages_produced_total', labels) === probes + 1,
    'node B counted the message');
  assert.equal(sample(mB, 'smq_bridge_messages_produced_total', labels), records.length);
  const mA = await metricsText(apiA);
  assert.equal(sample(mA, 'smq_bridge_messages_produced_total', labels), 0);
  assert.equal(sample(mA, 'smq_bridge_buffered_messages', labels), 0);
  assert.equal(sample(mA, 'smq_bridge_mappings'), 1);

  // And A bridges what is published on A.
  const pubA = await mqttClient(a.port, 'b82-pub-a');
  await pubA.publishAsync('site/3/telemetry', 'from node A', { qos: 1 });
  assert.equal(sample(await metricsText(apiA), 'smq_bridge_messages_produced_total', labels), 1);
  const more = await readRecords(kafka.brokers, [queue], (rs) => rs.some((r) => r.value.toString() === 'from node A'));
  assert.equal(more.filter((r) => r.value.toString() === 'from node A').length, 1);
});
