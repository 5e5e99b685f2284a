/**
 * 74 metrics and promtool: after real MQTT traffic, the /metrics page of a standalone broker and of a
 * clustered node (which adds smq_cluster_*) goes through `promtool check metrics` (Debian's prometheus
 * package; scripts/provision.sh installs it): it must parse as Prometheus exposition and pass promtool's
 * lint (counters end in _total and only counters do, base units, HELP on every metric, snake case).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import { startBroker, type RunningBroker, httpBase } from './helpers/broker.js';
import { startEtcd, type RunningEtcd } from './helpers/etcd.js';
import { runToEnd } from './helpers/process.js';
import { connectMqtt } from './helpers/mqtt.js';

const brokers: RunningBroker[] = [];
const clients: MqttClient[] = [];
let etcd: RunningEtcd | undefined;

after(async () => {
  for (const c of clients) c.end(true);
  await Promise.all(brokers.map((b) => b.stop()));
  await etcd?.stop();
});

async function start(config: Record<string, unknown>): Promise<{ broker: RunningBroker; metrics: string }> {
  const broker = await startBroker({ config: { ...config, http: { enable: true, host: '127.0.0.1', port: 0 } }, timeoutMs: 30_000 });
  brokers.push(broker);
  return { broker, metrics: `${await httpBase(broker)}/metrics` };
}

async function mqttClient(port: number, options: IClientOptions): Promise<MqttClient> {
  return connectMqtt(port, options, clients);
}

/**
 * Traffic: a v5 subscriber (on `subPort`) and a v3.1.1 publisher (on `pubPort`) exchange QoS 0, 1 and 2 messages,
 * one of them retained; resolves once the subscriber has every one.
 */
async function traffic(subPort: number, pubPort: number, prefix: string): Promise<void> {
  const sub = await mqttClient(subPort, { clientId: `${prefix}-sub`, protocolVersion: 5 });
  await sub.subscribeAsync(`${prefix}/#`, { qos: 2 });
  const pub = await mqttClient(pubPort, { clientId: `${prefix}-pub`, protocolVersion: 4 });
  const expected = 30;
  const all = new Promise<void>((resolve) => {
    let n = 0;
    sub.on('message', (topic) => { if (!topic.endsWith('/probe') && ++n === expected) resolve(); });
  });
  // In a cluster the subscription reaches the publisher's node through etcd: probe until one arrives.
  const first = new Promise<void>((resolve) => sub.once('message', () => resolve()));
  const probe = setInterval(() => void pub.publishAsync(`${prefix}/probe`, 'p', { qos: 0 }), 100);
  void pub.publishAsync(`${prefix}/probe`, 'p', { qos: 0 });
  await first;
  clearInterval(probe);
  const more: Promise<unknown>[] = [];
  for (let i = 0; i < 10; i++) {
    more.push(pub.publishAsync(`${prefix}/q0/${i}`, `v${i}`, { qos: 0 }));
    more.push(pub.publishAsync(`${prefix}/q1/${i}`, Buffer.alloc(100 * i, i), { qos: 1, retain: i === 1 }));
    more.push(pub.publishAsync(`${prefix}/q2/${i}`, `v${i}`, { qos: 2 }));
  }
  await Promise.all(more);
  await all;
}

/** `promtool check metrics` on `text`: its exit code and everything it printed (lint problems). */
async function promtool(text: string): Promise<{ code: number | null; output: string }> {
  const run = await runToEnd('promtool', ['check', 'metrics'], { input: text }).catch((err: Error) => {
    throw new Error(`promtool could not run (scripts/provision.sh installs Debian's prometheus package): ${err.message}`);
  });
  return { code: run.code, output: (run.stdout + run.stderr).trim() };
}

/** The value of one sample line, e.g. `smq_messages_received_total{qos="1"}`; NaN when absent. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}

test('a standalone broker: /metrics after QoS 0/1/2 traffic passes promtool check metrics with no lint', async () => {
  const { broker, metrics } = await start({});
  await traffic(broker.port, broker.port, 'solo');
  const text = await (await fetch(metrics)).text();
  // The page reflects the traffic (it is not an empty page that trivially passes).
  assert.ok(sample(text, 'smq_messages_received_total{qos="1"}') >= 10, 'QoS 1 received');
  assert.ok(sample(text, 'smq_messages_sent_total{qos="2"}') >= 10, 'QoS 2 sent');
  assert.ok(sample(text, 'smq_received_bytes_total') > 4500, 'bytes received');
  const lint = await promtool(text);
  assert.equal(lint.output, '', 'promtool lint');
  assert.equal(lint.code, 0);
});

test('a clustered node: /metrics with smq_cluster_* after cross-node traffic passes promtool check metrics', async () => {
  etcd = await startEtcd();
  const cluster = { cluster: `metrics${process.pid}`, etcd: { endpoints: [etcd.endpoint], lease_ttl: 5 }, ws: { enable: false } };
  const [a, b] = await Promise.all([start({ ...cluster, broker: 'metrics-a' }), start({ ...cluster, broker: 'metrics-b' })]);
  // Published on node a, delivered on node b: a forwards through etcd.
  await traffic(b.broker.port, a.broker.port, 'cross');
  const text = await (await fetch(a.metrics)).text();
  assert.ok(sample(text, 'smq_cluster_messages_sent_total') >= 1, 'forwarded to node b');
  assert.ok(sample(text, 'smq_cluster_etcd_write_seconds_count') >= 1, 'etcd write latency observed');
  const lint = await promtool(text);
  assert.equal(lint.output, '', 'promtool lint');
  assert.equal(lint.code, 0);
});
