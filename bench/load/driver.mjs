// The parent side of the load generator: forks worker processes (bench/load/worker.mjs) and runs one
// measurement through them. Publishers and subscribers live in separate processes, so neither steals the
// other's core time and each reports its own CPU share.
//
//   const r = await measureLoad(broker, ctx, {
//     subs: [{ qos, clients: [{ id, localAddress, subscribe: [{ topic, qos }] }], timestamps? }],  // one per process
//     pubs: [{ qos, clients: [{ id, localAddress, topic }], window?, batch?, rate? }],             // one per process
//     fanout,   // deliveries expected per message sent, to wait for stragglers after the publishers stop
//   });
import { fork } from 'node:child_process';

const WORKER = new URL('./worker.mjs', import.meta.url).pathname;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Worker processes still alive, so the harness can kill them on Ctrl-C. */
export const live = new Set();

/** 127.0.0.2 .. 127.0.0.9 in turn: spreads client connections over source addresses (ports per address). */
export function sourceAddress(i) {
  return `127.0.0.${2 + (i % 8)}`;
}

/**
 * Forks one worker. request(msg) resolves with its answer; close() asks it to exit and kills it after 2 s.
 * BENCH_WORKER_ARGS passes node flags to the workers (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
 */
export function forkWorker(label) {
  const execArgv = process.env.BENCH_WORKER_ARGS ? process.env.BENCH_WORKER_ARGS.split(' ') : [];
  const proc = fork(WORKER, [label], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
  const waiting = new Map();
  let seq = 0;
  let exitCode;
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => {
    exitCode = code ?? signal;
    for (const w of waiting.values()) w.reject(new Error(`worker ${label} exited (${exitCode})`));
    waiting.clear();
    live.delete(worker);
    resolve();
  }));
  proc.on('message', (m) => {
    const w = waiting.get(m.seq);
    if (!w) return;
    waiting.delete(m.seq);
    if (m.type === 'error') w.reject(new Error(`worker ${label}: ${m.message}${m.errors?.length ? ` (${m.errors.join('; ')})` : ''}`));
    else w.resolve(m);
  });
  const worker = {
    label,
    pid: proc.pid,
    request(msg, timeoutMs = 120000) {
      if (exitCode !== undefined) return Promise.reject(new Error(`worker ${label} exited (${exitCode})`));
      const id = ++seq;
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => { waiting.delete(id); reject(new Error(`worker ${label}: no answer to ${msg.type} in ${timeoutMs} ms`)); }, timeoutMs);
        waiting.set(id, { resolve: (m) => { clearTimeout(t); resolve(m); }, reject: (e) => { clearTimeout(t); reject(e); } });
        proc.send({ ...msg, seq: id });
      });
    },
    async close() {
      if (exitCode !== undefined) return;
      try { proc.send({ type: 'exit' }); } catch { /* channel already closed */ }
      const t = setTimeout(() => proc.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(t);
    },
  };
  live.add(worker);
  return worker;
}

/** Kills every worker still alive (Ctrl-C, errors). */
export async function closeAll() {
  await Promise.all([...live].map((w) => w.close()));
}

/**
 * One measurement: connect and subscribe everything (every SUBACK back), start the publishers, warm up,
 * measure for ctx.duration, stop the publishers (QoS 1/2: until their in-flight messages are acknowledged),
 * let the subscribers drain, close everything. Every worker is gone when this returns or throws.
 */
export async function measureLoad(broker, ctx, plan) {
  const subs = plan.subs.map((_, i) => forkWorker(`sub${i}`));
  const pubs = plan.pubs.map((_, i) => forkWorker(`pub${i}`));
  const all = [...pubs, ...subs];
  try {
    const target = { host: broker.host, port: broker.port };
    await Promise.all(subs.map((w, i) => w.request({ type: 'setup', role: 'sub', ...target, ...plan.subs[i] })));
    await Promise.all(pubs.map((w, i) => w.request({ type: 'setup', role: 'pub', ...target, ...plan.pubs[i] })));
    await Promise.all(pubs.map((w) => w.request({ type: 'start' })));
    await sleep(ctx.warmup * 1000);

    const cpu0 = broker.cpuSeconds();
    const t0 = performance.now();
    await Promise.all(all.map((w) => w.request({ type: 'measure' })));
    await sleep(ctx.duration * 1000);
    const reports = await Promise.all(all.map((w) => w.request({ type: 'report' })));
    const wall = (performance.now() - t0) / 1000;
    const brokerCpu = (broker.cpuSeconds() - cpu0) / wall;
    const brokerRss = broker.rss();
    const pubReports = reports.slice(0, pubs.length);
    const subReports = reports.slice(pubs.length);

    const pubStops = await Promise.all(pubs.map((w) => w.request({ type: 'stop' })));
    const sent = pubStops.reduce((s, r) => s + r.total, 0);
    // With one subscriber process it knows exactly how many deliveries to wait for; otherwise each waits
    // until nothing arrives for 500 ms. fanout 0: do not wait (QoS 0 floods may have backlogs to shed).
    const expect = plan.fanout === 0 ? 0 : subs.length === 1 && plan.fanout ? sent * plan.fanout : undefined;
    const subStops = await Promise.all(subs.map((w) => w.request({ type: 'stop', expect })));
    const delivered = subStops.reduce((s, r) => s + r.total, 0);

    const rate = (rs) => rs.reduce((s, r) => s + r.count / r.elapsed, 0);
    return {
      subRate: rate(subReports),
      pubRate: rate(pubReports),
      sent,
      delivered,
      inflightLeft: pubStops.reduce((s, r) => s + r.inflight, 0),
      pubReports,
      subReports,
      subStops,
      generatorCpu: reports.map((r) => r.cpu),
      generatorCpuSystem: reports.map((r) => r.cpuSystem),
      brokerCpu,
      brokerRss,
      closedEarly: reports.reduce((s, r) => s + r.closed, 0),
      errors: reports.flatMap((r) => r.errors),
    };
  } finally {
    await Promise.all(all.map((w) => w.close()));
  }
}
