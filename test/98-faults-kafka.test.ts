/**
 * Fault injection (issue 10): Kafka killed (SIGKILL) and started again on the same data while the bridge is
 * under load. Four publishers (v3.1.1 and v5, QoS 1 and QoS 2, persistent sessions) stream into two mappings;
 * an MQTT subscriber of the bridged topics and an unbridged QoS 1 pair are served meanwhile. Test 81 covers one
 * QoS 1 publisher; this adds several publishers and mappings, QoS 2, and what the other clients get while Kafka
 * is away. Acknowledged means in Kafka: while Kafka is away nothing bridged is acknowledged (the publishers are
 * held, not refused or disconnected), and afterwards every acknowledged message is read back from Kafka with a
 * kafkajs consumer; duplicates (a batch sent again after the outage) are counted apart.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { addMapping, bridgeHealth, HTTP_CONFIG, httpBase, mappingLabels, metricsText, pollUntil, readRecords, sample } from './helpers/bridge.js';
import { Ledger, since, Stream, waitFor, within } from './helpers/faults.js';
import { startKafka, type RunningKafka } from './helpers/kafka.js';
import { report } from './helpers/reliability.js';
import { strictConnect } from './helpers/strict/tap.js';

const WINDOW = 20;
const TOTAL = 1500;
let kafka: RunningKafka;
let broker: RunningBroker;
let api: string;
const clients: MqttClient[] = [];

before(async () => {
  kafka = await startKafka();
  broker = await startBroker({ config: { bridge: { enable: true, kafka: { addr: kafka.brokers } }, http: HTTP_CONFIG, ws: { enable: false } } });
  api = await httpBase(broker);
});

after(async () => {
  for (const c of clients) c.end(true);
  await broker?.stop();
  await kafka?.destroy();
});

async function client(clientId: string, options: IClientOptions = {}): Promise<MqttClient> {
  const c = strictConnect({ host: '127.0.0.1', port: broker.port, clientId, reconnectPeriod: 100, ...options });
  clients.push(c);
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

test('Kafka SIGKILLed under bridged QoS 1/2 load: publishers are held, not dropped; other clients are served; every acknowledged message is in Kafka afterwards', { timeout: 150_000 }, async () => {
  const started = performance.now();
  await addMapping(api, 'kf/a/#', 'f98-a');
  await addMapping(api, 'kf/b/#', 'f98-b');
  const kafkaLedger = new Ledger();
  const mqttLedger = new Ledger();
  // An MQTT subscriber of the bridged topics.
  const sub = await client('kf-sub', { clean: false });
  sub.on('message', (t, p) => {
    if (t.startsWith('kf/')) mqttLedger.receive(p.toString());
  });
  await sub.subscribeAsync('kf/#', { qos: 1 });
  // Unbridged traffic: a QoS 1 pair.
  const plainSub = await client('kf-plain-sub');
  await plainSub.subscribeAsync('plain/#', { qos: 1 });
  const plainPub = await client('kf-plain-pub');

  const setups: { id: string; topic: string; qos: 1 | 2; options: IClientOptions }[] = [
    { id: 'a1', topic: 'kf/a/v4', qos: 1, options: { protocolVersion: 4 } },
    { id: 'a2', topic: 'kf/a/v5', qos: 1, options: { protocolVersion: 5, properties: { sessionExpiryInterval: 600 } } },
    { id: 'b1', topic: 'kf/b/v4', qos: 2, options: { protocolVersion: 4 } },
    { id: 'b2', topic: 'kf/b/v5', qos: 2, options: { protocolVersion: 5, properties: { sessionExpiryInterval: 600 } } },
  ];
  const closes: string[] = [];
  const streams: Stream[] = [];
  for (const s of setups) {
    // A short keep-alive: the outage spans several of its periods, and the publishers must not be cut off.
    const c = await client(`kf-${s.id}`, { clean: false, keepalive: 2, ...s.options });
    c.on('close', () => closes.push(s.id));
    streams.push(new Stream(c, { prefix: `${s.id}-`, topic: s.topic, qos: s.qos, window: WINDOW, total: TOTAL, ledgers: [kafkaLedger, mqttLedger] }));
  }
  const acked = (): number => streams.reduce((n, s) => n + s.ackedCount, 0);
  await waitFor('bridged load under way', () => acked() >= 1000, 30_000, () => `acked ${acked()}`);

  const ackedAtKill = acked();
  const deliveredAtKill = mqttLedger.deliveries;
  const killedAt = performance.now();
  await kafka.stop(); // SIGKILL
  await pollUntil(() => bridgeHealth(api), (h) => h.state === 'down', '/healthz reports the bridge down');
  // Held: once a retry failed too, whatever Kafka took before the kill has been acknowledged, and every
  // publisher waits on a full window (a QoS 2 one partly for PUBCOMPs, which keep their place behind the
  // PUBRECs that wait for Kafka).
  const failed = async (): Promise<number> => {
    const text = await metricsText(api);
    return (sample(text, 'smq_bridge_messages_failed_total', mappingLabels('kf/a/#', 'f98-a')) ?? 0) +
      (sample(text, 'smq_bridge_messages_failed_total', mappingLabels('kf/b/#', 'f98-b')) ?? 0);
  };
  const failedAtDown = await failed();
  await pollUntil(failed, (n) => n > failedAtDown, 'a retry failed while Kafka is away');
  await waitFor('every publisher held on a full window', () => streams.every((s) => s.inFlight === WINDOW), 10_000,
    () => streams.map((s) => s.inFlight).join(' '));
  const heldAt = acked();
  // Served meanwhile: unbridged QoS 1 round trips...
  let plainMs = 0;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const got = new Promise<void>((resolve) => plainSub.once('message', () => resolve()));
    await within(Promise.all([got, plainPub.publishAsync('plain/x', `p${i}`, { qos: 1 })]), 5000, 'an unbridged QoS 1 round trip during the outage');
    plainMs = Math.max(plainMs, since(t0));
  }
  // ...and the held publishers stay connected across several keep-alive periods while the bridge keeps trying.
  await waitFor('an outage of three keep-alive periods', () => since(killedAt) >= 6000, 10_000);
  assert.equal(acked(), heldAt, 'no bridged message acknowledged while Kafka is away');
  assert.equal(streams.every((s) => s.inFlight === WINDOW), true, 'every publisher still held on a full window');
  const deliveredWhileAway = mqttLedger.deliveries - deliveredAtKill;
  await kafka.restart();
  const outageMs = since(killedAt);

  await waitFor('every stream finished', () => streams.every((s) => s.sent === TOTAL && s.inFlight === 0), 60_000,
    () => streams.map((s) => `${s.sent}/${s.ackedCount}`).join(' '));
  for (const s of streams) assert.equal(s.error, null, `a publish was refused: ${String(s.error)}`);
  assert.deepEqual(closes, [], 'no publisher was disconnected');
  await pollUntil(() => bridgeHealth(api), (h) => h.state === 'connected' && h.buffered === 0, 'the bridge connected and drained');

  const records = await readRecords(kafka.brokers, ['f98-a', 'f98-b'], (rs) => new Set(rs.map((r) => r.value.toString())).size >= kafkaLedger.acked.size, 60_000);
  for (const r of records) kafkaLedger.receive(r.value.toString());
  assert.deepEqual(kafkaLedger.missing(), [], 'acknowledged but not in Kafka');
  await waitFor('every acknowledged message at the MQTT subscriber', () => mqttLedger.complete(), 10_000);
  assert.equal(broker.proc.exitCode, null);

  report('Kafka SIGKILLed under bridged load', {
    load: `4 persistent publishers (v3.1.1/v5, QoS 1 and QoS 2, window ${WINDOW}, ${TOTAL} msgs each) -> 2 mappings -> Kafka, plus an MQTT subscriber of the bridged topics`,
    faults: `SIGKILL of Kafka after ${ackedAtKill} acks, ${outageMs} ms away; publishers held (0 acks, 0 disconnects), the MQTT subscriber got ${deliveredWhileAway} deliveries meanwhile (the held windows: routed to MQTT at once, acknowledged once in Kafka), unbridged QoS 1 round trips ${plainMs} ms at most; ${Math.round(since(started) / 100) / 10} s`,
    acked: kafkaLedger.acked.size,
    received: kafkaLedger.received,
    dup: kafkaLedger.dup,
  });
});
