/**
 * 83 bridge crash: a broker with a durable store is killed (SIGKILL) while bridged QoS 1 and QoS 2 messages wait
 * for an absent Kafka. Nothing was acknowledged, so nothing may be lost: when the broker and Kafka are back and
 * the publisher resends (persistent session, MQTT.js's own resend), every message reaches Kafka — QoS 2
 * included, whose packet id the store must not hold before Kafka has the message (else the resent PUBLISH
 * would only be PUBREC'd, never routed).
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { startKafka, type RunningKafka } from './helpers/kafka.js';
import { addMapping, bridgeHealth, HTTP_CONFIG, httpBase, pollUntil, readRecords } from './helpers/bridge.js';
import { strictConnect } from './helpers/strict/tap.js';

let kafka: RunningKafka;
const brokers: RunningBroker[] = [];
const clients: MqttClient[] = [];

before(async () => {
  kafka = await startKafka();
});

after(async () => {
  for (const c of clients) c.end(true);
  await Promise.all(brokers.map((b) => b.stop('SIGKILL')));
  await kafka?.destroy();
});

test('bridged QoS 1 and 2 messages waiting for Kafka when the broker is killed reach Kafka after the restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'smq-b83-'));
  const config = { store: { dir }, bridge: { enable: true, kafka: { addr: kafka.brokers } }, http: HTTP_CONFIG, ws: { enable: false } };
  const first = await startBroker({ config });
  brokers.push(first);
  const api = await httpBase(first);
  await addMapping(api, 'crash/#', 'b83-crash');
  await kafka.stop(); // SIGKILL: the broker's batches now wait

  const options = { protocolVersion: 5 as const, clientId: 'b83-pub', clean: false, properties: { sessionExpiryInterval: 600 }, reconnectPeriod: 0 };
  const pub = strictConnect(`mqtt://127.0.0.1:${first.port}`, options);
  clients.push(pub);
  await new Promise<void>((resolve, reject) => {
    pub.once('connect', () => resolve());
    pub.once('error', reject);
  });
  let acked = 0;
  for (const [i, qos] of [[1, 1], [2, 2], [3, 1], [4, 2]] as const) {
    pub.publish(`crash/${i}`, `m${i}`, { qos }, (err) => {
      if (!err) acked++;
    });
  }
  // All four are with the broker (queued for Kafka, unacknowledged) once it reports them buffered.
  await pollUntil(() => bridgeHealth(api), (h) => h.buffered === 4, 'four messages wait for Kafka');
  assert.equal(acked, 0, 'nothing is acknowledged while Kafka is away');

  const gone = new Promise<void>((resolve) => pub.once('close', () => resolve()));
  await first.stop('SIGKILL');
  await gone; // (not ended: ending would close the stores that hold its unacknowledged packets)

  await kafka.restart();
  const second = await startBroker({ config });
  brokers.push(second);
  // The same client, its session and its unacknowledged packets: MQTT.js resends them on reconnect, and a
  // fresh client with the same store resumes the session.
  const again = strictConnect(`mqtt://127.0.0.1:${second.port}`, { ...options, incomingStore: pub.incomingStore, outgoingStore: pub.outgoingStore });
  clients.push(again);
  const done = new Promise<void>((resolve) => {
    let n = 0;
    again.on('packetreceive', (p) => {
      if ((p.cmd === 'puback' || p.cmd === 'pubcomp') && ++n === 4) resolve();
    });
  });
  await done;
  const records = await readRecords(kafka.brokers, ['b83-crash'], (r) => new Set(r.map((x) => x.value.toString())).size === 4);
  assert.deepEqual([...new Set(records.map((r) => r.value.toString()))].sort(), ['m1', 'm2', 'm3', 'm4']);
});
