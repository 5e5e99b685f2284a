// Latency at fixed rates (QoS 0): 1 publisher sends the messages a 1 ms hrtime schedule says are due, each
// stamped with process.hrtime.bigint() (CLOCK_MONOTONIC, the same clock in every process on the machine);
// 1 subscriber in another process takes the time when it reads a chunk and records now - stamp, in
// microseconds, for every message of the measured window. Rows: p50, p99 and p99.9.
import { measureLoad, sourceAddress } from '../load/driver.mjs';

function latency(rate) {
  const id = `latency-${rate / 1000}k`;
  const what = `latency at ${rate.toLocaleString('en-US')} msgs/s QoS 0`;
  return {
    id,
    title: `${what}: 1 publisher -> 1 subscriber`,
    unit: 'µs',
    better: 'lower',
    async run(broker, ctx) {
      const r = await measureLoad(broker, ctx, {
        subs: [{ qos: 0, timestamps: true, clients: [{ id: 'bench-lat-sub', localAddress: sourceAddress(0), subscribe: [{ topic: 'bench/lat', qos: 0 }] }] }],
        pubs: [{ qos: 0, rate, clients: [{ id: 'bench-lat-pub', localAddress: sourceAddress(1), topic: 'bench/lat' }] }],
        fanout: 0,
      });
      const lat = r.subReports[0].latency;
      const row = (suffix, label, value) => ({ id: `${id}-${suffix}`, title: `${what}, ${label}`, unit: 'µs', better: 'lower', value });
      return {
        rows: [row('p50', 'p50', lat.p50), row('p99', 'p99', lat.p99), row('p999', 'p99.9', lat.p999)],
        generatorCpu: r.generatorCpu,
        extra: {
          latency: lat,
          // A broker that cannot keep up shows here (delivered below the rate) as well as in the percentiles.
          sentPerSec: Math.round(r.pubRate),
          deliveredPerSec: Math.round(r.subRate),
          brokerCpu: r.brokerCpu,
          ...(r.errors.length ? { errors: r.errors } : {}),
        },
      };
    },
  };
}

export const scenarios = [latency(1000), latency(2000), latency(10000)];
