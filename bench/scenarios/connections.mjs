// Connection scenarios: many idle connections (connect rate and broker memory per connection) and full TLS
// handshakes per second. The clients run in forked bench/load/connector.mjs processes so their CPU is
// measured apart from the broker's.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CONNECTOR = fileURLToPath(new URL('../load/connector.mjs', import.meta.url));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A forked connector: request(msg) sends one command and resolves with its reply; stop() kills the process.
async function forkConnector() {
  const child = fork(CONNECTOR, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let waiting = null;
  child.on('message', (msg) => {
    const w = waiting;
    waiting = null;
    if (!w) return;
    if (msg.type === 'error') w.reject(new Error(`connector: ${msg.message}`));
    else w.resolve(msg);
  });
  child.on('exit', (code, signal) => {
    if (waiting) waiting.reject(new Error(`connector exited (${code ?? signal})`));
    waiting = null;
  });
  const next = () => new Promise((resolve, reject) => { waiting = { resolve, reject }; });
  const ready = next();
  await ready;
  return {
    request(msg) {
      const reply = next();
      child.send(msg);
      return reply;
    },
    stop() {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise((resolve) => {
        child.once('exit', resolve);
        child.kill('SIGKILL');
      });
    },
  };
}

// Broker RSS once it has settled: samples 500 ms apart until it grows by less than 64 KB (at most 5 s).
async function settledRss(broker) {
  const samples = [broker.rss()];
  for (let t = 0; t < 10; t++) {
    await sleep(500);
    samples.push(broker.rss());
    if (samples.at(-1) - samples.at(-2) < 65536) break;
  }
  return { rss: samples.at(-1), samples };
}

// Mosquitto listens with a fixed backlog of 100: more handshakes outstanding than that overflow its accept
// queue, and each dropped SYN costs a 1 s retransmit, which would measure the backlog, not the broker.
const IDLE_OUTSTANDING = 100;
// A Node client costs ~75 us of CPU per connection (half of it the kernel's loopback handshake), so one
// process tops out near 13k connections/s; two share the load and each stays well under a full core.
const IDLE_PROCESSES = 2;

const idle = {
  id: 'idle-15k',
  title: '15,000 idle connections',
  unit: 'conn/s',
  better: 'higher',
  async run(broker, ctx) {
    const count = ctx.quick ? 2000 : 15000;
    const connectors = [];
    try {
      for (let p = 0; p < IDLE_PROCESSES; p++) connectors.push(await forkConnector());
      await sleep(1000); // let the fresh broker finish starting up before the baseline
      const before = broker.rss();
      const cpu0 = broker.cpuSeconds();
      const replies = await Promise.all(connectors.map((c, p) => c.request({
        cmd: 'open', host: broker.host, port: broker.port, count: count / IDLE_PROCESSES,
        concurrency: IDLE_OUTSTANDING / IDLE_PROCESSES, prefix: `bench-idle-${p}-`,
      })));
      const brokerCpu = broker.cpuSeconds() - cpu0;
      const ok = replies.reduce((sum, r) => sum + r.ok, 0);
      const failed = replies.reduce((sum, r) => sum + r.failed, 0);
      const errors = replies.map((r) => r.errors);
      if (ok === 0) throw new Error(`no connection succeeded: ${JSON.stringify(errors)}`);
      if (failed) ctx.log(`${broker.name}: ${failed} of ${count} connections failed ${JSON.stringify(errors)}`);
      // From the first connect of either process to the last CONNACK of either.
      const seconds = (Math.max(...replies.map((r) => r.lastAt)) - Math.min(...replies.map((r) => r.startedAt))) / 1000;
      const after = await settledRss(broker);
      const perConnKB = (after.rss - before) / ok / 1024;
      const closed = await Promise.all(connectors.map((c) => c.request({ cmd: 'close' })));
      const dropped = closed.reduce((sum, r) => sum + r.dropped, 0);
      if (dropped) ctx.log(`${broker.name}: broker closed ${dropped} idle connections`);
      return {
        rows: [
          { id: 'idle-15k/connect-rate', title: `connect rate (${count} conns)`, unit: 'conn/s', better: 'higher', value: ok / seconds },
          { id: 'idle-15k/mem-per-conn', title: 'memory per idle connection', unit: 'KB/conn', better: 'lower', value: perConnKB },
        ],
        generatorCpu: replies.map((r) => r.cpu),
        extra: {
          connections: count, ok, failed, errors, connectSeconds: seconds, brokerCpuMsPerConn: (brokerCpu * 1000) / ok, rssBefore: before, rssAfter: after.rss,
          rssSamples: after.samples, droppedByBroker: dropped, closeSeconds: Math.max(...closed.map((r) => r.seconds)),
        },
      };
    } finally {
      await Promise.all(connectors.map((c) => c.stop()));
    }
  },
};

const handshakes = {
  id: 'tls-handshakes',
  title: 'TLS handshakes + CONNECT/CONNACK',
  unit: 'hs/s',
  better: 'higher',
  brokerOpts: { tls: true },
  async run(broker, ctx) {
    if (!broker.tlsPort) throw new Error(`${broker.name} has no TLS listener`);
    // A Node TLS client spends ~1.6 ms of CPU per full handshake here (OpenSSL 3.0's own client ~0.9 ms),
    // more than a broker does, so the loops are split over two processes and the rate is bound by the two
    // cores that clients and broker share. The broker's CPU per handshake does not depend on that, so it
    // is reported as a second row.
    const loops = ctx.quick ? 10 : 50;
    const connectors = [];
    try {
      for (let p = 0; p < 2; p++) connectors.push(await forkConnector());
      const cycling = Promise.all(connectors.map((c, p) => c.request({
        cmd: 'cycle', host: broker.host, port: broker.tlsPort, ca: ctx.tls.ca, loops: loops / 2,
        warmup: ctx.warmup, duration: ctx.duration, prefix: `bench-tls-${p}-`,
      })));
      cycling.catch(() => {}); // a failure is rethrown by the await below, not reported as unhandled meanwhile
      // The broker's CPU over the connectors' measured window (their timers start with the request).
      await sleep(ctx.warmup * 1000);
      const cpu0 = broker.cpuSeconds();
      await sleep(ctx.duration * 1000);
      const brokerCpu = broker.cpuSeconds() - cpu0;
      const replies = await cycling;
      const total = replies.reduce((sum, r) => sum + r.handshakes, 0);
      const seconds = Math.max(...replies.map((r) => r.seconds));
      const failed = replies.reduce((sum, r) => sum + r.failed, 0);
      const reused = replies.reduce((sum, r) => sum + r.reused, 0);
      if (failed) ctx.log(`${broker.name}: ${failed} TLS connections failed ${JSON.stringify(replies.map((r) => r.errors))}`);
      if (reused) throw new Error(`${reused} TLS sessions were resumed: the figure would not be full handshakes`);
      if (total === 0) throw new Error(`no TLS connection succeeded: ${JSON.stringify(replies.map((r) => r.errors))}`);
      return {
        rows: [
          { id: 'tls-handshakes', title: 'TLS handshakes + CONNECT/CONNACK', unit: 'hs/s', better: 'higher', value: total / seconds },
          { id: 'tls-handshakes/broker-cpu', title: 'broker CPU per TLS handshake', unit: 'ms', better: 'lower', value: (brokerCpu * 1000) / total },
        ],
        generatorCpu: replies.map((r) => r.cpu),
        extra: { loops, handshakes: total, seconds, failed, reused, brokerCpuSeconds: brokerCpu, perProcess: replies },
      };
    } finally {
      await Promise.all(connectors.map((c) => c.stop()));
    }
  },
};

export const scenarios = [idle, handshakes];
