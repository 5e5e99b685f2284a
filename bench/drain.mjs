// How long a cluster node takes to drain: etcd and two nodes (n1, n2, each with a store), N persistent sessions
// on n1 (MQTT 5, session expiry 1 h, each subscribed to its own topic d/<i> at QoS 1, then gone), one queued
// message each, then SIGTERM to n1. Measures SIGTERM to n1's exit and how many sessions reached n2, then checks a
// sample: clients that resume on n2 must find their session (session present) and their queued message.
// Uses the built test helpers (run `npx tsc -p tsconfig.json` first), as the cluster tests do.
//
//   node bench/drain.mjs [--sessions 1000] [--sample 50] [--concurrency 200] [--no-queue]
//
// Prints progress on stderr and one line on stdout:
//   # DRAIN | sessions: N | drain: X s | moved: M | on n2: S | per second: R | sample: ok/n
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';

const DIST = new URL('../dist/test/helpers/', import.meta.url);
const { startBroker, httpBase } = await import(new URL('broker.js', DIST).href);
const { startEtcd } = await import(new URL('etcd.js', DIST).href);

const { values: args } = parseArgs({
  options: {
    sessions: { type: 'string', default: '1000' },
    sample: { type: 'string', default: '50' },
    concurrency: { type: 'string', default: '200' },
    'no-queue': { type: 'boolean', default: false },
  },
});
const N = Number(args.sessions);
const SAMPLE = Math.min(Number(args.sample), N);
const CONCURRENCY = Number(args.concurrency);
const QUEUE = !args['no-queue'];
const log = (msg) => process.stderr.write(`${msg}\n`);
const id = (i) => `drain-${i}`;

/** Runs `job(i)` for i in [0, n), at most `limit` at once. */
async function bounded(n, limit, job) {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) await job(i);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

function connect(node, options) {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${node.port}`, {
    protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 30_000, ...options,
  });
}

const persistent = (i) => ({ clientId: id(i), clean: false, properties: { sessionExpiryInterval: 3600 } });

async function sessionsOn(node) {
  const res = await fetch(`${await httpBase(node)}/api/v1/stats`, { headers: { 'x-token': 't' } });
  return (await res.json()).sessions;
}

/** A sampled client resumes on n2: true when its session was there and its queued message arrives (10 s). */
function resumes(node, i) {
  return new Promise((resolve) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${node.port}`, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 30_000, ...persistent(i) });
    const done = (ok) => {
      clearTimeout(timer);
      c.end(true);
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 10_000);
    c.once('error', () => done(false));
    // Handlers first: the queued message follows the CONNACK at once.
    c.on('message', (topic, payload) => {
      if (topic === `d/${i}` && payload.toString() === `q-${i}`) done(true);
    });
    c.once('connect', (connack) => {
      if (!connack.sessionPresent) done(false);
      else if (!QUEUE) done(true);
    });
  });
}

/** etcd's counts of puts, deletes and transactions so far (its /metrics). */
async function etcdWrites(etcd) {
  const text = await (await fetch(`http://${etcd.endpoint}/metrics`)).text();
  const n = { put: 0, delete: 0, txn: 0 };
  for (const m of text.matchAll(/^etcd_mvcc_(put|delete|txn)_total (\d+)/gm)) n[m[1]] += Number(m[2]);
  return n;
}

const etcd = await startEtcd();
const dirs = [];
const nodes = [];
const cluster = `drain${process.pid}`;
try {
  for (const node of ['n1', 'n2']) {
    const dir = mkdtempSync(join(tmpdir(), `smq-drain-${node}-`));
    dirs.push(dir);
    nodes.push(await startBroker({
      config: {
        cluster, broker: node, store: { dir }, ws: { enable: false }, log: { level: 'info' },
        etcd: { endpoints: [etcd.endpoint], session_wait: 2 },
        http: { enable: true, host: '127.0.0.1', port: 0, tokens: ['t'] },
        mqtt: { max_queued: 1000 },
      },
      timeoutMs: 30_000,
    }));
  }
  const [n1, n2] = nodes;
  let t = Date.now();
  await bounded(N, CONCURRENCY, async (i) => {
    const c = await connect(n1, persistent(i));
    await c.subscribeAsync(`d/${i}`, { qos: 1 });
    await c.endAsync();
  });
  log(`${N} persistent sessions on n1 in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  if (QUEUE) {
    t = Date.now();
    const pub = await connect(n1, { clientId: 'drain-publisher' });
    await bounded(N, CONCURRENCY, (i) => pub.publishAsync(`d/${i}`, `q-${i}`, { qos: 1 }));
    await pub.endAsync();
    log(`one message queued for each in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  }
  const before = await sessionsOn(n1);
  if (before !== N) throw new Error(`n1 holds ${before} sessions, not ${N}`);

  const writesBefore = await etcdWrites(etcd);
  t = Date.now();
  const code = await n1.stop('SIGTERM');
  const drain = (Date.now() - t) / 1000;
  const line = n1.logs.find((r) => r.msg === 'drain: persistent sessions handed over to other nodes');
  const moved = line?.moved ?? 0;
  const onN2 = await sessionsOn(n2);
  const after = await etcdWrites(etcd);
  const [puts, deletes, txns] = ['put', 'delete', 'txn'].map((k) => after[k] - writesBefore[k]);
  const writes = puts + deletes + txns;
  log(`etcd: ${writes} puts, deletes and transactions during the drain (${moved > 0 ? (writes / moved).toFixed(1) : '?'} per session moved; ${puts} puts, ${deletes} deletes, ${txns} transactions)`);
  log(`n1 exited with ${code} after ${drain.toFixed(1)} s; it moved ${moved}; n2 holds ${onN2}`);
  // Where the time went, by n1's own clock: from SIGTERM's log line to the first and last move, to the end.
  const at = (msg) => n1.logs.find((r) => r.msg === msg)?.time;
  // One line per session moved alone, one per batch (batch-moves.ts).
  const moves = n1.logs.filter((r) => r.msg === 'cluster: persistent session moved to another node' || r.msg === 'cluster: persistent sessions moved to another node');
  const start = at('draining');
  const since = (t) => (t === undefined || start === undefined ? '?' : ((t - start) / 1000).toFixed(2));
  log(`n1: first move at ${since(moves[0]?.time)} s, last at ${since(moves.at(-1)?.time)} s, handed over at ${since(line?.time)} s, stopped at ${since(at('stopped'))} s`);
  const warnings = n1.logs.filter((r) => r.level >= 40).concat(n2.logs.filter((r) => r.level >= 40));
  if (warnings.length > 0) log(`${warnings.length} warnings, first: ${JSON.stringify(warnings[0])}`);

  const picked = new Set();
  while (picked.size < SAMPLE) picked.add(Math.floor(Math.random() * N));
  let ok = 0;
  await bounded(picked.size, 10, async (k) => {
    if (await resumes(n2, [...picked][k])) ok++;
  });
  const rate = drain > 0 ? Math.round(moved / drain) : 0;
  console.log(`# DRAIN | sessions: ${N} | drain: ${drain.toFixed(1)} s | moved: ${moved} | on n2: ${onN2} | per second: ${rate} | sample: ${ok}/${picked.size}`);
} finally {
  for (const n of nodes) await n.stop('SIGKILL').catch(() => undefined);
  await etcd.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
