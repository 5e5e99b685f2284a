// Kafka bridge scenarios (issue 8), smq only: Mosquitto and Aedes have no Kafka bridge, so these rows are
// absolute figures in a table of their own. run.mjs starts one Kafka (bench/lib/kafka.mjs) for the whole run
// and passes it in ctx.kafka; each measurement gets a fresh smq with `bridge.enable: true` pointed at it and
// the HTTP API on, a fresh Kafka topic (created beforehand, 1 partition), and one mapping `bench/br/+` -> that
// topic added through the HTTP API with the token, as an operator would.
//
// bridge-qos0, bridge-qos1: 10 publishers (one load-generator process, as fan-in) on bench/br/<i>, each sending
// a fixed count flat out (QoS 1: at most 100 unacknowledged each). A warm-up burst first (it also connects the
// bridge's producer), then the measured burst: msgs/s from its first publish until Kafka's end offset (the
// high watermark, polled every 10 ms with the admin client) has grown by every message; for QoS 1 also the
// publishers' acknowledged rate (smq acknowledges a bridged QoS 1 publish once Kafka has it).
//
// bridge-latency: 1 publisher at 1,000 msgs/s, QoS 1, the send time (process.hrtime.bigint(), CLOCK_MONOTONIC)
// in the payload's first 8 bytes; a kafkajs consumer in this process records receive time minus stamp for the
// messages sent in the measured window; the publisher records publish -> PUBACK as well.
import { Kafka, logLevel } from 'kafkajs';
import { forkWorker, sourceAddress } from '../load/driver.mjs';
import { Histogram } from '../load/histogram.mjs';

const TOKEN = 'bench-token';
const FILTER = 'bench/br/+';
const PUBLISHERS = 10;
const IN_FLIGHT = 100;
const POLL_MS = 10;
const range = (n) => Array.from({ length: n }, (_, i) => i);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const secondsBetween = (a, b) => Number(BigInt(b) - BigInt(a)) / 1e9;

/**
 * smq with the bridge on, pointed at the run's Kafka, and the HTTP API for the mapping. Every other bridge.*
 * setting is smq's default unless BENCH_BRIDGE (JSON, e.g. '{"kafka":{"batch_size":5000}}') overrides it.
 */
function brokerOpts(ctx) {
  const tune = process.env.BENCH_BRIDGE ? JSON.parse(process.env.BENCH_BRIDGE) : {};
  return { http: { token: TOKEN }, bridge: { ...tune, kafka: { ...tune.kafka, addr: ctx.kafka.brokers } } };
}

/** A fresh topic (1 partition) and the mapping FILTER -> topic through smq's HTTP API. */
async function prepare(broker, ctx, admin, label) {
  const topic = `bench-${label}-${process.pid}-${Date.now()}`;
  await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true });
  const res = await fetch(`http://127.0.0.1:${broker.httpPort}/api/v1/bridge/`, {
    method: 'POST',
    headers: { 'x-token': TOKEN, 'content-type': 'application/json' },
    body: JSON.stringify({ topic: FILTER, queue: topic }),
  });
  if (!res.ok) throw new Error(`POST /api/v1/bridge/ answered ${res.status}: ${await res.text()}`);
  return topic;
}

/** Messages in `topic` (the sum of its partitions' high watermarks). */
async function endOffset(admin, topic) {
  const parts = await admin.fetchTopicOffsets(topic);
  return parts.reduce((s, p) => s + Number(p.high ?? p.offset), 0);
}

/** The bridge's own counters from smq's /metrics (produced, failed, refused/dropped, buffered). */
async function bridgeMetrics(broker) {
  try {
    const text = await (await fetch(`http://127.0.0.1:${broker.httpPort}/metrics`)).text();
    const out = {};
    for (const m of text.matchAll(/^smq_bridge_(messages_\w+_total|buffered_messages|up)(\{[^}]*\})? (\S+)/gm)) {
      const key = m[1] + (m[2]?.includes('qos=') ? `{${/qos="([^"]+)"/.exec(m[2])[1]}}` : '');
      out[key] = (out[key] ?? 0) + Number(m[3]);
    }
    return out;
  } catch (err) {
    return { error: err.message };
  }
}

function kafkaClient(ctx, clientId) {
  return new Kafka({ clientId, brokers: ctx.kafka.brokers, logLevel: logLevel.NOTHING, retry: { retries: 10, initialRetryTime: 100 } });
}

/**
 * Waits until Kafka's end offset reaches `target`, polling every POLL_MS. Returns { at, reached, count }: the
 * time it got there (hrtime, decimal string), or, when the count stops growing for `stallMs` (QoS 0 messages
 * the bridge dropped) or `deadline` passes, the time of the last growth.
 */
async function waitForOffset(admin, topic, target, { stallMs = 5000, deadlineMs = 180000 } = {}) {
  const deadline = Date.now() + deadlineMs;
  let count = await endOffset(admin, topic);
  let lastGrowth = { at: process.hrtime.bigint(), wall: Date.now(), count };
  for (;;) {
    if (count >= target) return { at: String(process.hrtime.bigint()), reached: true, count };
    if (Date.now() - lastGrowth.wall > stallMs || Date.now() > deadline) return { at: String(lastGrowth.at), reached: false, count };
    await sleep(POLL_MS);
    const now = await endOffset(admin, topic);
    if (now > count) lastGrowth = { at: process.hrtime.bigint(), wall: Date.now(), count: now };
    count = now;
  }
}

function throughput(qos) {
  const id = `bridge-qos${qos}`;
  const what = `Kafka bridge QoS ${qos}: ${PUBLISHERS} publishers -> smq -> Kafka topic`;
  return {
    id,
    title: what,
    unit: 'msgs/s',
    better: 'higher',
    smqOnly: 'no Kafka bridge',
    needs: 'kafka',
    brokerOpts,
    async run(broker, ctx) {
      // Messages per publisher: 300,000 (QoS 0) or 200,000 (QoS 1) in all, about 10 s each on 2 cores at
      // smq's ~30k msgs/s into Kafka; --quick sends a tenth.
      const perPub = Math.round((qos ? 20000 : 30000) * (ctx.quick ? 0.1 : 1));
      const warmPerPub = Math.round(perPub / 5);
      const kafka = kafkaClient(ctx, `bench-${id}`);
      const admin = kafka.admin();
      await admin.connect();
      const pub = forkWorker('pub0');
      try {
        const topic = await prepare(broker, ctx, admin, id);
        await pub.request({
          type: 'setup', role: 'pub', host: broker.host, port: broker.port, qos, window: IN_FLIGHT,
          clients: range(PUBLISHERS).map((i) => ({ id: `bench-pub-${i}`, localAddress: sourceAddress(i), topic: `bench/br/${i}` })),
        });

        // Warm-up: JIT, the producer's connection and first metadata, Kafka's log segment.
        const warm = pub.request({ type: 'burst', count: warmPerPub }, 180000);
        const warmed = await waitForOffset(admin, topic, PUBLISHERS * warmPerPub);
        await warm;
        if (!warmed.reached) ctx.log(`warm-up: only ${warmed.count} of ${PUBLISHERS * warmPerPub} messages reached Kafka`);
        await sleep(200);

        const base = await endOffset(admin, topic);
        const n = PUBLISHERS * perPub;
        const cpu0 = broker.cpuSeconds();
        const kcpu0 = ctx.kafka.cpuSeconds();
        await pub.request({ type: 'measure' });
        const burst = pub.request({ type: 'burst', count: perPub }, 180000);
        const inKafka = await waitForOffset(admin, topic, base + n);
        const b = await burst;
        const report = await pub.request({ type: 'report' });
        const wall = secondsBetween(b.startedAt, inKafka.at);
        const delivered = inKafka.count - base;
        const metrics = await bridgeMetrics(broker);
        const extra = {
          messages: n,
          inKafka: delivered,
          lost: n - delivered,
          seconds: wall,
          // QoS 0: when the last message was written to smq; QoS 1: when its PUBACK came.
          publishersDoneAfter: secondsBetween(b.startedAt, b.finishedAt),
          brokerCpu: (broker.cpuSeconds() - cpu0) / wall,
          kafkaCpu: (ctx.kafka.cpuSeconds() - kcpu0) / wall,
          brokerRssMB: Math.round(broker.rss() / 1048576),
          kafkaRssMB: Math.round(ctx.kafka.rss() / 1048576),
          bridgeMetrics: metrics,
        };
        if (!inKafka.reached) extra.note = `only ${delivered} of ${n} messages reached Kafka (stalled)`;
        const value = delivered / wall;
        if (qos === 0) return { value, generatorCpu: [report.cpu], extra };
        const acked = n / secondsBetween(b.startedAt, b.finishedAt);
        return {
          rows: [
            { id, title: `${what}: in Kafka`, unit: 'msgs/s', better: 'higher', value },
            { id: `${id}-acked`, title: `${what}: acknowledged to the publishers (after Kafka's ack)`, unit: 'msgs/s', better: 'higher', value: acked },
          ],
          generatorCpu: [report.cpu],
          extra,
        };
      } finally {
        await pub.close();
        await admin.disconnect().catch(() => undefined);
      }
    },
  };
}

const latency = {
  id: 'bridge-latency',
  title: 'Kafka bridge latency at 1,000 msgs/s QoS 1',
  unit: 'ms',
  better: 'lower',
  smqOnly: 'no Kafka bridge',
  needs: 'kafka',
  brokerOpts,
  async run(broker, ctx) {
    const rate = 1000;
    const kafka = kafkaClient(ctx, 'bench-bridge-latency');
    const admin = kafka.admin();
    await admin.connect();
    // Fetches return as soon as a byte is there (minBytes 1); maxWaitTimeInMs only bounds an idle poll.
    const consumer = kafka.consumer({ groupId: `bench-lat-${process.pid}-${Date.now()}`, maxWaitTimeInMs: 100, minBytes: 1 });
    const pub = forkWorker('pub0');
    const hist = new Histogram();
    const win = { from: null, to: null };
    let received = 0;
    let inWindow = 0;
    try {
      const topic = await prepare(broker, ctx, admin, 'latency');
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      const joined = new Promise((resolve) => consumer.on(consumer.events.GROUP_JOIN, resolve));
      await consumer.run({
        eachBatchAutoResolve: true,
        eachBatch: async ({ batch }) => {
          const now = process.hrtime.bigint();
          for (const m of batch.messages) {
            received++;
            if (win.from === null || m.value.length < 8) continue;
            const stamp = m.value.readBigUInt64BE(0);
            if (stamp < win.from || (win.to !== null && stamp > win.to)) continue;
            inWindow++;
            hist.record(Number(now - stamp) / 1000);
          }
        },
      });
      await joined;
      await pub.request({
        type: 'setup', role: 'pub', host: broker.host, port: broker.port, qos: 1, rate, ackLatency: true,
        clients: [{ id: 'bench-lat-pub', localAddress: sourceAddress(1), topic: 'bench/br/lat' }],
      });
      await pub.request({ type: 'start' });
      await sleep(Math.max(ctx.warmup, 1) * 1000);
      const cpu0 = broker.cpuSeconds();
      const kcpu0 = ctx.kafka.cpuSeconds();
      const t0 = performance.now();
      await pub.request({ type: 'measure' });
      win.from = process.hrtime.bigint();
      await sleep(ctx.duration * 1000);
      win.to = process.hrtime.bigint();
      const report = await pub.request({ type: 'report' });
      const wall = (performance.now() - t0) / 1000;
      const brokerCpu = (broker.cpuSeconds() - cpu0) / wall;
      const kafkaCpu = (ctx.kafka.cpuSeconds() - kcpu0) / wall;
      await pub.request({ type: 'stop' });
      // The window's last messages are still on their way to the consumer.
      const deadline = Date.now() + 10000;
      while (inWindow < report.count && Date.now() < deadline) await sleep(20);
      const lat = hist.summary();
      const ack = report.latency;
      const ms = (us) => (us === null || us === undefined ? null : us / 1000);
      const row = (suffix, label, value) => ({ id: `bridge-latency-${suffix}`, title: `Kafka bridge at 1,000 msgs/s QoS 1, ${label}`, unit: 'ms', better: 'lower', value });
      return {
        rows: [
          row('p50', 'MQTT publish -> Kafka consumer, p50', ms(lat.p50)),
          row('p99', 'MQTT publish -> Kafka consumer, p99', ms(lat.p99)),
          row('puback-p50', 'MQTT publish -> PUBACK (after Kafka\'s ack), p50', ms(ack?.p50)),
          row('puback-p99', 'MQTT publish -> PUBACK (after Kafka\'s ack), p99', ms(ack?.p99)),
        ],
        generatorCpu: [report.cpu],
        extra: {
          consumerLatencyUs: lat,
          pubackLatencyUs: ack,
          sentInWindow: report.count,
          consumedFromWindow: inWindow,
          consumedTotal: received,
          brokerCpu,
          kafkaCpu,
          bridgeMetrics: await bridgeMetrics(broker),
        },
      };
    } finally {
      await pub.close();
      await consumer.disconnect().catch(() => undefined);
      await admin.disconnect().catch(() => undefined);
    }
  },
};

export const scenarios = [throughput(0), throughput(1), latency];
