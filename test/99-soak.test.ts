/**
 * 99 soak: one broker (LMDB store on, fsync durability) under a steady mixed load for SOAK_SECONDS (120 in CI;
 * `SOAK_SECONDS=1800` by hand), sampled every few seconds: resident memory and heap, open file descriptors,
 * event-loop lag, throughput, and QoS 1 messages acknowledged against received. The load runs in a forked
 * process (test/load/soak-load.ts): QoS 0 fan-out with retained updates, persistent QoS 1 streams whose
 * subscribers keep leaving and resuming their sessions, a shared subscription group, connect/disconnect churn
 * (clean, dropped with a will, and persistent sessions that expire), and idle connections.
 *
 * Checked: no acknowledged QoS 1 message lost; memory flat after warm-up (first third of the run); file
 * descriptors back to the idle baseline once the load has left, and steady beside the connection count while it
 * runs; event-loop lag p99 bounded; every session, subscription and connection the load made gone at the end.
 * Prints a samples table and one `RELIABILITY | soak | ...` line.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, freePort, httpBase, startBroker, type RunningBroker } from './helpers/broker.js';
import { forkLoad, type LoadChild } from './load/child.js';
import { Inspector } from './load/inspector.js';
import { cpuSeconds, cpuWaitNs, median, memory, metric, metricSum, openFds, scrape, sleep, slope, type Metrics } from './load/proc.js';
import type { SoakLoad, SoakTotals } from './load/soak-load.js';

const AGAINST_MOSQUITTO = process.env['SMQ_TEST_AGAINST'] === 'mosquitto';
const SECONDS = Number(process.env['SOAK_SECONDS'] ?? 120);
/** Seconds between samples: 2 in a short run, 5 in a long one. */
const SAMPLE_S = SECONDS <= 300 ? 2 : 5;
/** Seconds between forced garbage collections (live heap) after warm-up. */
const GC_EVERY_S = SECONDS <= 300 ? 10 : 60;
const MB = 1024 * 1024;

const LOAD: SoakLoad = {
  fanoutSubscribers: 100,
  fanoutRate: 20, // x 100 subscribers: 2,000 QoS 0 deliveries/s
  streams: 20,
  streamRate: 25, // 500 QoS 1 msgs/s into persistent sessions
  sharedPublishers: 5,
  sharedMembers: 5,
  sharedRate: 40, // 200 QoS 1 msgs/s through one shared group
  churnRate: 50, // short-lived connections per second
  idle: 200,
  online: [8, 15],
  away: [1, 3],
};
const LONG_LIVED = LOAD.fanoutSubscribers + 1 + 2 * LOAD.streams + LOAD.sharedPublishers + LOAD.sharedMembers + LOAD.idle;

/*
 * Bounds, and what each would catch (rates above; the window is the last two thirds of the run, 80 s in CI):
 * - Live heap: the heap still in use after a forced full collection (over the inspector, every GC_EVERY_S
 *   seconds from the end of warm-up), least-squares slope at most LIVE_SLOPE_KB_S. Without the collection the
 *   heap in use is a sawtooth of garbage 15-20 MB high; after it, the points lie within about +-0.3 MB (what
 *   is queued for the persistent subscribers that are away at that moment). 1 KB leaked per connection cycle
 *   (50/s) is +50 KB/s, 100 bytes per QoS 1 message (700/s) +70 KB/s, 10 bytes per QoS 0 delivery +20 KB/s.
 *   And once the load has gone, the live heap may not exceed its level under load at the end of warm-up plus
 *   LIVE_AFTER_MB: every connection, session, subscription and topic of the run released. (The idle broker's
 *   live heap is about 9 MB lower: mqtt-packet's cache of 65,536 two-byte Buffers, built on first use, and
 *   compiled code; both one-time.)
 * - RSS: the last third's median at most RSS_TOLERANCE_MB above the middle third's. The thirds' midpoints are a
 *   third of the run apart (40 s in CI), so 1 KB leaked outside the heap per QoS 1 message shows as +28 MB,
 *   per QoS 0 delivery (2,000/s) as +80 MB; per connection cycle as +2 MB in CI (caught by the live heap,
 *   not by RSS) and +30 MB in a 30-minute run. The forced collections run all through both thirds, so both are
 *   measured alike; they keep RSS 20-30 MB below that of a broker left alone (V8 keeps garbage until its own
 *   mark-compact), which the samples before the first one show.
 * - File descriptors: once the load has gone, at most 2 above the idle baseline (a scrape socket may still be
 *   closing): one descriptor leaked in the whole run fails if it is 3. While the load runs, descriptors minus
 *   connections (sockets that have not sent CONNECT yet or are closing count as descriptors only) may not move
 *   by more than FD_DRIFT: one leaked in every 100 connection cycles would add 40 in CI.
 * - Event-loop lag: the p99 of each sampling window (prom-client's monitorEventLoopDelay at 10 ms resolution,
 *   less that resolution; windows holding a forced collection left out). The p99 of the median window at most
 *   LAG_MEDIAN_MS, and of every window at most LAG_P99_MS (the largest window p99 bounds the p99 of the whole
 *   run) among the windows in which the broker's event-loop thread waited less than CONTENDED of the time for a
 *   CPU (/proc/<pid>/schedstat): other test files share the two cores, and a broker that is not scheduled
 *   shows lag it did not cause. (The thread wakes thousands of times a second, so 5-15 % of waiting is usual
 *   here even when its lag is a few ms; windows with more lag came with 25 % and up.) On an idle machine the
 *   windows' p99 is 1-10 ms. The bounds catch synchronous work that holds the loop for tens of ms, several
 *   times a second (a synchronous commit, a sweep over every session, a collection of a heap that grows).
 */
const LIVE_SLOPE_KB_S = 20;
const LIVE_AFTER_MB = 1;
const RSS_TOLERANCE_MB = 12;
const FD_DRIFT = 20;
const LAG_P99_MS = 100;
const LAG_MEDIAN_MS = 50;
const CONTENDED = 0.2;

interface Sample {
  t: number;
  rss: number;
  anon: number;
  heap: number;
  fds: number;
  connections: number;
  sessions: number;
  lagP99: number;
  lagMax: number;
  cpu: number;
  /** Seconds the broker's event-loop thread has waited for a CPU. */
  cpuWait: number;
  received: number;
  sent: number;
  load: SoakTotals;
  /** A forced collection ran in this sample's lag window. */
  gc: boolean;
}

async function sample(broker: RunningBroker, base: string, load: LoadChild | null, t0: number): Promise<Sample> {
  const pid = broker.proc.pid!;
  // Descriptors before the scrape, so its own socket is not counted.
  const fds = openFds(pid);
  const mem = memory(pid);
  const cpu = cpuSeconds(pid);
  const cpuWait = cpuWaitNs(pid) / 1e9;
  const m: Metrics = await scrape(base);
  const totals = load ? await load.request<SoakTotals>({ cmd: 'stats' }) : ({} as SoakTotals);
  return {
    t: (performance.now() - t0) / 1000,
    rss: mem.rss,
    anon: mem.anon,
    heap: metric(m, 'smq_nodejs_heap_size_used_bytes'),
    fds,
    connections: metric(m, 'smq_connections'),
    sessions: metric(m, 'smq_sessions'),
    // monitorEventLoopDelay (resolution 10 ms) counts the resolution itself in every delay.
    lagP99: Math.max(0, metric(m, 'smq_nodejs_eventloop_lag_p99_seconds') - 0.01) * 1000,
    lagMax: Math.max(0, metric(m, 'smq_nodejs_eventloop_lag_max_seconds') - 0.01) * 1000,
    cpu,
    cpuWait,
    received: metricSum(m, 'smq_messages_received_total'),
    sent: metricSum(m, 'smq_messages_sent_total'),
    load: totals,
    gc: false,
  };
}

const f1 = (x: number): string => x.toFixed(1);

test(`soak: ${SECONDS} s of steady mixed load on one broker with the LMDB store`, {
  skip: AGAINST_MOSQUITTO && 'measures smq itself',
  timeout: (SECONDS + 150) * 1000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'smq-soak-'));
  let broker: RunningBroker | null = null;
  let load: LoadChild | null = null;
  let inspector: Inspector | null = null;
  try {
    const inspectPort = await freePort();
    broker = await startBroker({
      env: { NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --inspect=127.0.0.1:${inspectPort}` },
      config: {
        ws: { enable: false },
        http: { enable: true, port: 0 },
        store: { dir, durability: 'fsync' },
        sys_interval: 2,
        // The load's churn reconnects client ids and opens ~50 connections/s from a few loopback addresses:
        // none of the per-address or flapping limits may refuse it (they are off by default; stated here so
        // that a change of defaults cannot turn this into a test of the limits).
        limits: { max_connections: 0, max_connections_per_address: 0, connection_rate: 0, flapping_max: 0 },
      },
      timeoutMs: 20000,
    });
    const base = await httpBase(broker);
    const pid = broker.proc.pid!;
    inspector = await Inspector.connect(inspectPort);
    await sleep(2000);
    const idleLive = await inspector.liveHeap();
    const idle = await sample(broker, base, null, performance.now());

    load = await forkLoad(join(ROOT, 'dist/test/load/soak-load.js'));
    const t0 = performance.now();
    await load.request({ cmd: 'start', port: broker.port, load: LOAD }, 60000);
    const setupSeconds = (performance.now() - t0) / 1000;

    const samples: Sample[] = [];
    const live: { t: number; bytes: number }[] = [];
    const end = t0 + SECONDS * 1000;
    let nextGc = SECONDS / 3;
    let gcInWindow = false;
    for (let next = t0 + SAMPLE_S * 1000; next <= end; next += SAMPLE_S * 1000) {
      await sleep(Math.max(0, next - performance.now()));
      const s = await sample(broker, base, load, t0);
      s.gc = gcInWindow;
      gcInWindow = false;
      samples.push(s);
      assert.equal(broker.proc.exitCode, null, 'the broker exited during the soak');
      if (s.t >= nextGc - 0.5) {
        live.push({ t: s.t, bytes: await inspector.liveHeap() });
        gcInWindow = true;
        nextGc += GC_EVERY_S;
      }
    }

    const stopped = await load.request<SoakTotals & { lost: number; lostSample: string[]; drainSeconds: number }>(
      { cmd: 'stop', drainMs: 30000 }, 90000);
    await load.kill();
    load = null;

    // Everything the load made is gone: connections, sessions (the churn's expire 2 s after they left), subscriptions.
    let after: Metrics = await scrape(base);
    for (let i = 0; i < 50 && (metric(after, 'smq_connections') > 0 || metric(after, 'smq_sessions') > 0); i++) {
      await sleep(200);
      after = await scrape(base);
    }
    await sleep(500);
    const endFds = openFds(pid);
    const endMem = memory(pid);
    const endLive = await inspector.liveHeap();
    const drops = [...after].filter(([k, v]) => k.startsWith('smq_messages_dropped_total') && v > 0);

    // Analysis: warm-up is the first third; middle and last thirds are compared.
    const third = SECONDS / 3;
    const warm = samples.filter((s) => s.t >= third);
    const middle = warm.filter((s) => s.t < 2 * third);
    const last = warm.filter((s) => s.t >= 2 * third);
    const rssMid = median(middle.map((s) => s.rss));
    const rssLast = median(last.map((s) => s.rss));
    const liveSlope = slope(live.map((p) => p.t), live.map((p) => p.bytes)) / 1024;
    const anonSlope = slope(warm.map((s) => s.t), warm.map((s) => s.anon)) / 1024;
    const fdExtra = warm.map((s) => s.fds - s.connections);
    const lagWindows = warm.filter((s) => !s.gc).map((s) => s.lagP99);
    const lagMedian = median(lagWindows);
    // Windows in which the broker was scheduled when it wanted to run.
    const waited = (s: Sample): number => {
      const prev = samples[samples.indexOf(s) - 1];
      return prev ? (s.cpuWait - prev.cpuWait) / (s.t - prev.t) : 0;
    };
    const calm = warm.filter((s) => !s.gc && waited(s) < CONTENDED);
    const lagP99 = calm.length ? Math.max(...calm.map((s) => s.lagP99)) : NaN;
    const lagP99All = Math.max(...lagWindows);
    const first = warm[0]!;
    const final = samples.at(-1)!;
    const span = final.t - first.t;
    const rate = (k: (s: Sample) => number): number => (k(final) - k(first)) / span;
    const brokerCpu = rate((s) => s.cpu);
    const loadCpu = rate((s) => s.load.cpuSeconds);

    console.log(`soak: ${SECONDS} s, sampled every ${SAMPLE_S} s; load set up in ${f1(setupSeconds)} s; ` +
      `${LONG_LIVED} long-lived connections + churn ${LOAD.churnRate}/s`);
    console.log(`idle before: rss ${f1(idle.rss / MB)} MB, heap ${f1(idle.heap / MB)} MB (live ${f1(idleLive / MB)} MB), fds ${idle.fds}`);
    console.log('    t |  rss MB | anon MB | heap MB |   fds | conns | sessions | lag p99 ms | lag max ms | in msg/s | out msg/s | broker cpu | cpu wait');
    // About 30 rows; a stride in step with the forced collections would show only the samples right after one.
    let every = Math.max(1, Math.ceil(samples.length / 30));
    if ((every * SAMPLE_S) % GC_EVERY_S === 0) every++;
    samples.forEach((s, i) => {
      if (i % every !== 0 && i !== samples.length - 1) return;
      const prev = samples[i - 1];
      const dt = prev ? s.t - prev.t : 1;
      const r = (k: (x: Sample) => number): string => (prev ? ((k(s) - k(prev)) / dt).toFixed(0) : '-');
      console.log(`${s.t.toFixed(0).padStart(5)} | ${f1(s.rss / MB).padStart(7)} | ${f1(s.anon / MB).padStart(7)} | ` +
        `${f1(s.heap / MB).padStart(7)} | ${String(s.fds).padStart(5)} | ${String(s.connections).padStart(5)} | ` +
        `${String(s.sessions).padStart(8)} | ${s.lagP99.toFixed(1).padStart(10)} | ${s.lagMax.toFixed(1).padStart(10)} | ` +
        `${r((x) => x.received).padStart(8)} | ${r((x) => x.sent).padStart(9)} | ${(prev ? ((s.cpu - prev.cpu) / dt).toFixed(2) : '-').padStart(10)} | ` +
        `${prev ? `${(waited(s) * 100).toFixed(0)} %` : '-'}${s.gc ? ' (forced GC)' : ''}`);
    });
    console.log(`after warm-up (t >= ${f1(third)} s): rss median ${f1(rssMid / MB)} MB (middle third) -> ${f1(rssLast / MB)} MB ` +
      `(last third), anon slope ${anonSlope.toFixed(1)} KB/s, ` +
      `live heap after forced GC ${live.map((p) => `${p.t.toFixed(0)}s:${f1(p.bytes / MB)}`).join(' ')} MB, slope ${liveSlope.toFixed(2)} KB/s, ` +
      `fds - connections ${Math.min(...fdExtra)}..${Math.max(...fdExtra)}, lag p99 per window median ${lagMedian.toFixed(1)} ms, max ${lagP99.toFixed(1)} ms in the ${calm.length} of ` +
      `${lagWindows.length} windows with the broker waiting < ${CONTENDED * 100} % for a CPU (${lagP99All.toFixed(1)} ms in all)`);
    console.log(`throughput: broker in ${rate((s) => s.received).toFixed(0)} msg/s, out ${rate((s) => s.sent).toFixed(0)} msg/s, ` +
      `churn ${rate((s) => s.load.churnCycles).toFixed(1)} cycles/s; broker CPU ${(brokerCpu * 100).toFixed(0)} % of a core, ` +
      `load process ${(loadCpu * 100).toFixed(0)} %`);
    console.log(`load totals: ${JSON.stringify({ ...stopped, errors: undefined })}`);
    if (stopped.errors.length) console.log(`load errors: ${stopped.errors.join(' | ')}`);
    console.log(`after the load: connections ${metric(after, 'smq_connections')}, sessions ${metric(after, 'smq_sessions')}, ` +
      `subscriptions ${metric(after, 'smq_subscriptions')}, fds ${endFds} (idle ${idle.fds}), rss ${f1(endMem.rss / MB)} MB, live heap ${f1(endLive / MB)} MB (idle ${f1(idleLive / MB)}), drops ${JSON.stringify(drops)}`);
    console.log(`RELIABILITY | soak | load: ${LONG_LIVED} connections, ${LOAD.churnRate} connect/disconnect/s, ` +
      `${LOAD.fanoutRate * LOAD.fanoutSubscribers} QoS 0 deliveries/s, ${LOAD.streams * LOAD.streamRate + LOAD.sharedPublishers * LOAD.sharedRate} QoS 1 msgs/s ` +
      `(persistent sessions, shared group), LMDB fsync | duration: ${SECONDS} s | ` +
      `rss: ${f1(rssMid / MB)}→${f1(rssLast / MB)} MB | live heap: ${f1(idleLive / MB)}→${f1(live[0]!.bytes / MB)}→${f1(live.at(-1)!.bytes / MB)}→${f1(endLive / MB)} MB (idle, warm, end, after), slope ${liveSlope.toFixed(1)} KB/s | fds: ${idle.fds}→${endFds} after load (${Math.min(...fdExtra)}..${Math.max(...fdExtra)} beside connections) | ` +
      `lag p99: ${lagMedian.toFixed(1)} ms median, ${lagP99.toFixed(1)} ms max of ${SAMPLE_S} s windows (${lagP99All.toFixed(1)} counting those where the broker waited for a CPU) | broker cpu: ${(brokerCpu * 100).toFixed(0)} % | ` +
      `acked: ${stopped.q1Acked} | received: ${stopped.q1Acked - stopped.lost} | lost: ${stopped.lost}`);

    // No acknowledged QoS 1 message lost, and nothing else went wrong on the load's side.
    assert.ok(stopped.q1Acked > 0, 'no QoS 1 message was acknowledged');
    assert.equal(stopped.lost, 0, `acknowledged QoS 1 messages never received: ${stopped.lostSample.join('; ')}`);
    assert.equal(stopped.sessionsLost, 0, 'a persistent subscriber came back to no session');
    assert.equal(stopped.unexpectedCloses, 0, `the broker closed connections: ${stopped.errors.join(' | ')}`);
    assert.equal(stopped.churnFailures, 0, `churn cycles failed: ${stopped.errors.join(' | ')}`);
    assert.equal(stopped.q1Refused, 0, 'QoS 1 publishes were refused');
    assert.equal(stopped.q0Received, stopped.q0Sent * LOAD.fanoutSubscribers, 'QoS 0 fan-out deliveries missing');
    assert.ok(stopped.churnCycles >= LOAD.churnRate * SECONDS * 0.8, `only ${stopped.churnCycles} churn cycles`);
    assert.deepEqual(drops.filter(([k]) => !k.includes('reason="expired"')), [], 'messages dropped');
    // Memory flat.
    assert.ok(rssLast - rssMid <= RSS_TOLERANCE_MB * MB,
      `RSS grew from ${f1(rssMid / MB)} MB (middle third) to ${f1(rssLast / MB)} MB (last third), more than ${RSS_TOLERANCE_MB} MB`);
    assert.ok(liveSlope <= LIVE_SLOPE_KB_S, `live heap grows by ${liveSlope.toFixed(1)} KB/s after warm-up (bound ${LIVE_SLOPE_KB_S})`);
    assert.ok(endLive - live[0]!.bytes <= LIVE_AFTER_MB * MB,
      `live heap ${f1(endLive / MB)} MB after the load, ${f1(live[0]!.bytes / MB)} MB under load after warm-up (bound +${LIVE_AFTER_MB} MB)`);
    // File descriptors: steady beside the connections, back to the baseline afterwards.
    assert.ok(Math.max(...fdExtra) - Math.min(...fdExtra) <= FD_DRIFT, `descriptors beside connections drift: ${fdExtra.join(',')}`);
    assert.ok(endFds <= idle.fds + 2, `${endFds} descriptors after the load, ${idle.fds} before it`);
    assert.equal(metric(after, 'smq_connections'), 0, 'connections left after the load');
    assert.equal(metric(after, 'smq_sessions'), 0, 'sessions left after the load');
    assert.equal(metric(after, 'smq_subscriptions'), 0, 'subscriptions left after the load');
    // Event-loop lag.
    assert.ok(!(lagP99 > LAG_P99_MS), `event-loop lag p99 reached ${lagP99.toFixed(1)} ms in a window (bound ${LAG_P99_MS} ms)`);
    assert.ok(lagMedian <= LAG_MEDIAN_MS, `event-loop lag p99 ${lagMedian.toFixed(1)} ms in the median window (bound ${LAG_MEDIAN_MS} ms)`);
  } finally {
    inspector?.close();
    await load?.kill();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
