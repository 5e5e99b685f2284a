// Throughput scenarios: fan-in, fan-out, point-to-point pairs and a shared subscription group. Publishers run
// flat out (QoS 0: as fast as TCP takes it; QoS 1/2: at most 100 unacknowledged messages per publisher) and
// the figure is what the subscribers receive per second during the measured window.
import { measureLoad, sourceAddress } from '../load/driver.mjs';

const IN_FLIGHT = 100;
const range = (n) => Array.from({ length: n }, (_, i) => i);

/** Raw figures every scenario keeps: what was sent and delivered, the broker's CPU and memory. */
function extraOf(r, qos, fanout) {
  const extra = {
    sentPerSec: Math.round(r.pubRate),
    sent: r.sent,
    delivered: r.delivered,
    brokerCpu: r.brokerCpu,
    generatorCpuSystem: r.generatorCpuSystem,
    brokerRssMB: Math.round(r.brokerRss / 1048576),
    // How the subscribers' reads went: a few large reads means the broker batches its writes.
    subReadsPerSec: r.subReports.reduce((s, x) => s + x.readsPerSec, 0),
    subBytesPerRead: r.subReports[0].bytesPerRead,
  };
  // QoS 0 may be dropped by design and its backlog is not waited for; QoS 1/2 must all arrive.
  if (qos > 0) {
    extra.lost = r.sent * fanout - r.delivered;
    extra.unacknowledged = r.inflightLeft;
  }
  if (r.closedEarly) extra.closedEarly = r.closedEarly;
  if (r.errors.length) extra.errors = r.errors;
  return extra;
}

function fanin(qos, { clean = true } = {}) {
  return {
    id: `fanin-qos${qos}`,
    title: `fan-in QoS ${qos}: 10 publishers -> 1 subscriber (bench/in/+)`,
    unit: 'msgs/s',
    better: 'higher',
    async run(broker, ctx) {
      const r = await measureLoad(broker, ctx, {
        subs: [{ qos, clients: [{ id: 'bench-sub', clean, localAddress: sourceAddress(0), subscribe: [{ topic: 'bench/in/+', qos }] }] }],
        pubs: [{ qos, window: IN_FLIGHT, clients: range(10).map((i) => ({ id: `bench-pub-${i}`, localAddress: sourceAddress(i), topic: `bench/in/${i}` })) }],
        fanout: qos ? 1 : 0,
      });
      return { value: r.subRate, generatorCpu: r.generatorCpu, extra: extraOf(r, qos, 1) };
    },
  };
}

/**
 * Fan-in QoS 1 into a persistent subscriber (clean session 0) with the broker's persistence on: smq writes
 * every message to its LMDB store and acknowledges after fsync; Mosquitto saves its database file now and then
 * (autosave), not per message; Aedes has no persistence in its stock setup (in memory, as in the other rows).
 */
const durable = {
  ...fanin(1, { clean: false }),
  id: 'durable-qos1',
  title: 'durable fan-in QoS 1: 10 publishers -> 1 persistent subscriber, persistence on',
  brokerOpts: { durable: true },
};

function fanout(n, qos) {
  return {
    id: `fanout-${n}-qos${qos}`,
    title: `fan-out QoS ${qos}: 1 publisher -> ${n.toLocaleString('en-US')} subscribers (bench/out)`,
    unit: 'deliveries/s',
    better: 'higher',
    async run(broker, ctx) {
      const subs = ctx.quick ? Math.min(n, 200) : n;
      const r = await measureLoad(broker, ctx, {
        subs: [{ qos, clients: range(subs).map((i) => ({ id: `bench-sub-${i}`, localAddress: sourceAddress(i), subscribe: [{ topic: 'bench/out', qos }] })) }],
        pubs: [{ qos, window: IN_FLIGHT, clients: [{ id: 'bench-pub', localAddress: sourceAddress(0), topic: 'bench/out' }] }],
        fanout: qos ? subs : 0,
      });
      const extra = { subscribers: subs, ...extraOf(r, qos, subs), perSubscriberMin: r.subReports[0].perClientMin, perSubscriberMax: r.subReports[0].perClientMax };
      return { value: r.subRate, generatorCpu: r.generatorCpu, extra };
    },
  };
}

const p2p = {
  id: 'p2p-1000',
  title: 'point-to-point QoS 0: 1,000 publishers, each to its own subscriber',
  unit: 'deliveries/s',
  better: 'higher',
  async run(broker, ctx) {
    const pairs = ctx.quick ? 100 : 1000;
    // 2,000 connections: subscribers from 127.0.0.2/4/6/8, publishers from 127.0.0.3/5/7/9.
    const r = await measureLoad(broker, ctx, {
      subs: [{ qos: 0, clients: range(pairs).map((i) => ({ id: `bench-sub-${i}`, localAddress: sourceAddress(2 * i), subscribe: [{ topic: `bench/p2p/${i}`, qos: 0 }] })) }],
      pubs: [{ qos: 0, clients: range(pairs).map((i) => ({ id: `bench-pub-${i}`, localAddress: sourceAddress(2 * i + 1), topic: `bench/p2p/${i}` })) }],
      fanout: 0,
    });
    const extra = { pairs, ...extraOf(r, 0, 1), perSubscriberMin: r.subReports[0].perClientMin, perSubscriberMax: r.subReports[0].perClientMax };
    return { value: r.subRate, generatorCpu: r.generatorCpu, extra };
  },
};

const shared = {
  id: 'shared-10',
  title: 'shared subscription QoS 0: 10 publishers -> $share/g/bench/sh/+ with 10 consumers',
  unit: 'deliveries/s',
  better: 'higher',
  async run(broker, ctx) {
    const r = await measureLoad(broker, ctx, {
      subs: [{ qos: 0, clients: range(10).map((i) => ({ id: `bench-sub-${i}`, localAddress: sourceAddress(i), subscribe: [{ topic: '$share/g/bench/sh/+', qos: 0 }] })) }],
      pubs: [{ qos: 0, clients: range(10).map((i) => ({ id: `bench-pub-${i}`, localAddress: sourceAddress(i), topic: `bench/sh/${i}` })) }],
      fanout: 0,
    });
    const per = r.subReports[0].perClient;
    const total = per.reduce((a, b) => a + b, 0);
    const extra = {
      ...extraOf(r, 0, 1),
      perConsumer: per,
      minShare: total ? Math.min(...per) / total : null,
      maxShare: total ? Math.max(...per) / total : null,
    };
    // A broker without shared subscriptions (Aedes) takes "$share/g/..." as a plain filter that matches
    // nothing; one that ignored the group would give every consumer every message. Neither is a figure.
    const sentInWindow = r.pubReports[0].count;
    if (total === 0 || total > 1.5 * sentInWindow) {
      extra.note = total === 0 ? 'nothing delivered: no shared subscriptions' : 'every consumer got every message: no shared subscriptions';
      return { value: null, generatorCpu: r.generatorCpu, extra };
    }
    return { value: r.subRate, generatorCpu: r.generatorCpu, extra };
  },
};

export const scenarios = [
  fanin(0), fanin(1), fanin(2), durable,
  fanout(100, 0), fanout(100, 1), fanout(1000, 0), fanout(1000, 1),
  p2p,
  shared,
];
