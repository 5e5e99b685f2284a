#!/usr/bin/env node
// Measures embedded storage engines on smq's store workload, to choose the engine behind the Store interface
// (broker/src/store/types.ts, issue 4). Every engine runs behind the same group-commit driver that the broker
// store uses: writes are queued, a commit starts after 2 ms or once 1,000 ops are waiting, and `flush()`
// resolves when the commit holding everything queued before it is durable.
//
// The engines are not dependencies of smq: they are installed on demand into a cache outside the repository
// (SMQ_BENCH_CACHE, default ~/.cache/smq-bench/engines) and loaded from there. Each engine configuration runs
// in its own child process with its own temporary directory, removed afterwards. How to run: bench/README.md.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(import.meta.url);
const CACHE = process.env.SMQ_BENCH_CACHE ?? path.join(os.homedir(), '.cache', 'smq-bench', 'engines');
/** npm specs of the engines; better-sqlite3 13 needs Node 22 and crashes on Node 20. */
const PACKAGES = { lmdb: 'lmdb@3', 'classic-level': 'classic-level@3', 'better-sqlite3': 'better-sqlite3@12.11.1' };

/** Engine configurations, by id. `durable` says what a resolved flush() survives. */
const CONFIGS = {
  lmdb: { label: 'lmdb default (fsync)', pkg: 'lmdb', opts: {}, durable: 'power loss' },
  // Classic LMDB: the fsync happens inside the commit, before the next transaction may start.
  'lmdb-inline': { label: 'lmdb overlappingSync off', pkg: 'lmdb', opts: { overlappingSync: false }, durable: 'power loss' },
  // Acknowledged once the transaction is committed (in the OS page cache), while its fsync runs behind it:
  // after a power loss lmdb-js opens at the last fsynced transaction, so recent commits are lost, not the file.
  'lmdb-commit': { label: 'lmdb ack on commit', pkg: 'lmdb', opts: { ackOnCommit: true }, durable: 'SIGKILL' },
  'lmdb-nosync': { label: 'lmdb noSync', pkg: 'lmdb', opts: { noSync: true }, durable: 'SIGKILL' },
  'level-sync': { label: 'leveldb sync', pkg: 'classic-level', opts: { sync: true }, durable: 'power loss' },
  'level-nosync': { label: 'leveldb no sync', pkg: 'classic-level', opts: { sync: false }, durable: 'SIGKILL' },
  'sqlite-full': { label: 'sqlite WAL FULL', pkg: 'better-sqlite3', opts: { synchronous: 'FULL' }, durable: 'power loss' },
  'sqlite-normal': { label: 'sqlite WAL NORMAL', pkg: 'better-sqlite3', opts: { synchronous: 'NORMAL' }, durable: 'SIGKILL' },
  memory: { label: 'memory (reference)', pkg: null, opts: {}, durable: 'nothing' },
};

const MAX_OPS = 1000; // ops that start a commit at once
const MAX_DELAY_MS = 2; // longest wait before a commit starts

// ---------------------------------------------------------------------------------------------- engines

/** Each adapter: open(dir), commit(flat [key, value|null, ...]) -> Promise | undefined, scan(prefix), close(). */
const ADAPTERS = {
  lmdb(mod, { ackOnCommit, ...opts }) {
    const ackOnWrite = ackOnCommit || opts.noSync;
    let db;
    return {
      async open(dir) {
        db = mod.open({ path: dir, encoding: 'binary', ...opts });
      },
      commit(b) {
        // Every put of one event turn goes into one LMDB transaction (lmdb-js event-turn batching). With the
        // default overlappingSync the put promise resolves when the transaction is committed, before its fsync;
        // `db.flushed` resolves after the fsync.
        let last;
        for (let i = 0; i < b.length; i += 2) last = b[i + 1] === null ? db.remove(b[i]) : db.put(b[i], b[i + 1]);
        return ackOnWrite ? last : Promise.all([last, db.flushed]);
      },
      async scan(prefix) {
        let count = 0, bytes = 0;
        for (const { value } of db.getRange({ start: prefix, end: prefixEnd(prefix) })) { count++; bytes += value.length; }
        return { count, bytes };
      },
      async close() { await db.close(); },
    };
  },
  'classic-level'(mod, opts) {
    let db;
    const writeOptions = { sync: opts.sync };
    return {
      async open(dir) {
        db = new mod.ClassicLevel(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
        await db.open();
      },
      commit(b) {
        // A chained batch: about ten times less main-thread time than db.batch(array) for 1,000 ops here.
        const batch = db.batch();
        for (let i = 0; i < b.length; i += 2) { if (b[i + 1] === null) batch.del(b[i]); else batch.put(b[i], b[i + 1]); }
        return batch.write(writeOptions);
      },
      async scan(prefix) {
        let count = 0, bytes = 0;
        const it = db.iterator({ gte: prefix, lt: prefixEnd(prefix), highWaterMarkBytes: 1 << 20 });
        for (let entries = await it.nextv(1000); entries.length > 0; entries = await it.nextv(1000)) {
          for (const e of entries) { count++; bytes += e[1].length; }
        }
        await it.close();
        return { count, bytes };
      },
      async close() { await db.close(); },
    };
  },
  'better-sqlite3'(Database, opts) {
    let db, txn, scanStmt;
    return {
      async open(dir) {
        db = new Database(path.join(dir, 'smq.db'));
        db.pragma('journal_mode = WAL');
        db.pragma(`synchronous = ${opts.synchronous}`);
        db.exec('CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID');
        const put = db.prepare('INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)');
        const del = db.prepare('DELETE FROM kv WHERE k = ?');
        // One transaction per group commit; better-sqlite3 is synchronous, so this blocks the event loop.
        txn = db.transaction((b) => {
          for (let i = 0; i < b.length; i += 2) { if (b[i + 1] === null) del.run(b[i]); else put.run(b[i], b[i + 1]); }
        });
        scanStmt = db.prepare('SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k').raw(true);
      },
      commit(b) { txn(b); return undefined; },
      async scan(prefix) {
        let count = 0, bytes = 0;
        for (const row of scanStmt.iterate(prefix, prefixEnd(prefix))) { count++; bytes += row[1].length; }
        return { count, bytes };
      },
      async close() { db.close(); },
    };
  },
  memory() {
    // No persistence at all: the ceiling set by the driver and the workload loop themselves.
    let map;
    return {
      async open(dir) { map = MEMORY.get(dir) ?? new Map(); MEMORY.set(dir, map); },
      commit(b) {
        for (let i = 0; i < b.length; i += 2) { if (b[i + 1] === null) map.delete(b[i]); else map.set(b[i], b[i + 1]); }
        return undefined;
      },
      async scan(prefix) {
        const keys = [...map.keys()].filter((k) => k.startsWith(prefix)).sort();
        let bytes = 0;
        for (const k of keys) bytes += map.get(k).length;
        return { count: keys.length, bytes };
      },
      async close() {},
    };
  },
};

/** The memory "engine"'s maps, by directory, so that a reopen finds what was written. */
const MEMORY = new Map();

/** The smallest string greater than every key starting with `prefix` (prefixes here end in '/'). */
function prefixEnd(prefix) {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

// ---------------------------------------------------------------------------------------------- driver

/** Group commit, as the broker store does it: queued writes, one commit at a time, flush() waiters. */
class GroupCommit {
  constructor(engine) {
    this.engine = engine;
    this.ops = []; // flat: key, value (null = delete)
    this.queued = 0; // ops ever queued
    this.committed = 0; // ops ever made durable
    this.waiters = []; // { upTo, resolve, reject }, upTo increasing
    this.inFlight = false;
    this.timer = null;
    this.immediate = null;
    this.stats = newCommitStats();
    this.commitNow = () => this.commit();
  }

  put(key, value) { this.ops.push(key, value); this.queued++; this.schedule(); }

  del(key) { this.ops.push(key, null); this.queued++; this.schedule(); }

  /** Resolves when every op queued so far is durable. */
  flush() {
    if (this.committed === this.queued) return Promise.resolve();
    return new Promise((resolve, reject) => { this.waiters.push({ upTo: this.queued, resolve, reject }); });
  }

  schedule() {
    if (this.inFlight) return; // the commit in flight is the wait window; its end starts the next one
    if (this.queued - this.committed >= MAX_OPS) { this.immediate ??= setImmediate(this.commitNow); }
    else this.timer ??= setTimeout(this.commitNow, MAX_DELAY_MS);
  }

  commit() {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    if (this.immediate !== null) { clearImmediate(this.immediate); this.immediate = null; }
    if (this.inFlight || this.committed === this.queued) return;
    // At most MAX_OPS per commit bounds the work (and, for a synchronous engine, the stall) of one commit.
    const n = Math.min(this.queued - this.committed, MAX_OPS);
    const batch = this.ops.splice(0, 2 * n);
    this.inFlight = true;
    const t0 = performance.now();
    let pending;
    try { pending = this.engine.commit(batch); } catch (err) { this.fail(err); return; }
    const syncMs = performance.now() - t0;
    const done = () => {
      this.stats.add(n, performance.now() - t0, syncMs);
      this.committed += n;
      this.inFlight = false;
      while (this.waiters.length > 0 && this.waiters[0].upTo <= this.committed) this.waiters.shift().resolve();
      if (this.committed < this.queued) this.immediate ??= setImmediate(this.commitNow);
    };
    if (pending === undefined) done(); else pending.then(done, (err) => this.fail(err));
  }

  fail(err) {
    process.stderr.write(`commit failed: ${err?.stack ?? err}\n`);
    process.exit(1);
  }
}

function newCommitStats() {
  const s = {
    commits: 0, ops: 0, ms: [], syncMs: [],
    add(n, ms, sync) { s.commits++; s.ops += n; s.ms.push(ms); s.syncMs.push(sync); },
    summary() {
      return {
        commits: s.commits, avgOps: s.commits ? round(s.ops / s.commits, 0) : 0,
        commitMs: pct(s.ms), mainThreadMs: pct(s.syncMs),
      };
    },
  };
  return s;
}

// ---------------------------------------------------------------------------------------------- workload

/** Deterministic PRNG so every engine sees the same records. */
function prng(seed) {
  let x = seed >>> 0;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 0x100000000; };
}

/** `n` distinct records of `size` bytes: a binary header, a topic and a JSON payload, as a stored message. */
function makeRecords(size, n, seed) {
  const rnd = prng(seed);
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    const header = Buffer.alloc(16);
    header.writeUInt8(1, 0);
    header.writeDoubleBE(Date.now() + 3_600_000, 4);
    const site = Math.floor(rnd() * 50), dev = Math.floor(rnd() * 10_000);
    const topic = `sensors/site-${site}/dev-${dev}/telemetry`;
    const json = JSON.stringify({
      dev: `dev-${dev}`, ts: 1_732_600_000_000 + Math.floor(rnd() * 1e9), temp: round(rnd() * 40, 2),
      hum: round(rnd() * 100, 1), bat: round(rnd() * 4.2, 3), seq: Math.floor(rnd() * 1e9),
      fw: '2.4.1', ok: rnd() > 0.1, pad: '',
    });
    const text = Buffer.from(`${topic}\0${json}${' '.repeat(size)}`);
    out[i] = Buffer.concat([header, text]).subarray(0, size);
  }
  return out;
}

const pad = (n) => String(n).padStart(10, '0');

/** Scenario 1: QoS 1 persistent delivery, closed loop with `inflight` outstanding messages. */
async function qos1(store, { inflight, seconds, warmup, maxMsgs }) {
  const records = makeRecords(200, 4096, 1);
  const lat = new Float64Array(maxMsgs);
  let n = 0, measuring = false, running = true;
  const client = async (i) => {
    const cid = `cl-${String(i).padStart(4, '0')}`;
    for (let seq = 0; running; seq++) {
      const key = `d/${cid}/${pad(seq)}`;
      store.put(key, records[(i * 7 + seq) & 4095]);
      const t = performance.now();
      await store.flush(); // the PUBLISH may be acknowledged only now
      const dt = performance.now() - t;
      // The subscriber's PUBACK removes the delivery; nothing waits for that delete to be durable.
      store.del(key);
      if (measuring) { lat[n++] = dt; if (n === maxMsgs) running = false; }
    }
  };
  const clients = Array.from({ length: inflight }, (_, i) => client(i));
  await sleep(warmup * 1000);
  const eld = loopMonitor();
  store.stats = newCommitStats();
  measuring = true;
  const t0 = performance.now();
  await Promise.race([sleep(seconds * 1000), Promise.all(clients)]);
  running = false;
  const elapsed = (performance.now() - t0) / 1000;
  const loop = eld.stop();
  await Promise.all(clients);
  await store.flush();
  const sorted = lat.subarray(0, n).sort();
  return {
    inflight, seconds: round(elapsed, 2), messages: n, msgsPerSec: Math.round(n / elapsed),
    latencyMs: { p50: round(q(sorted, 0.5), 3), p99: round(q(sorted, 0.99), 3), max: round(q(sorted, 1), 3) },
    ...store.stats.summary(), loop,
  };
}

/** Writes `count` records from `keyOf(i)`, as bursts of 1,000 with at most 4 bursts awaiting durability. */
async function writeMany(store, count, seconds, keyOf, records) {
  const eld = loopMonitor();
  store.stats = newCommitStats();
  const deadline = performance.now() + seconds * 1000;
  const window = [];
  const t0 = performance.now();
  let i = 0;
  while (i < count && performance.now() < deadline) {
    for (const end = Math.min(i + 1000, count); i < end; i++) store.put(keyOf(i), records[i % records.length]);
    window.push(store.flush());
    if (window.length >= 4) await window.shift();
  }
  await Promise.all(window);
  const elapsed = (performance.now() - t0) / 1000;
  return { count: i, complete: i === count, seconds: round(elapsed, 2), putsPerSec: Math.round(i / elapsed),
    ...store.stats.summary(), loop: eld.stop() };
}

/** Opens the store at `dir` and reads every key under `prefix` in order, as start-up recovery does. */
async function recover(adapterOf, dir, prefix) {
  const engine = adapterOf();
  const t0 = performance.now();
  await engine.open(dir);
  const opened = performance.now();
  const { count, bytes } = await engine.scan(prefix);
  const t1 = performance.now();
  await engine.close();
  return { openMs: round(opened - t0, 1), scanMs: round(t1 - opened, 1), totalMs: round(t1 - t0, 1), count, bytes };
}

/** Drops the page cache of the files in `dir` only (no effect on the rest of the machine), where possible. */
function evictCache(dir) {
  try {
    const files = listFiles(dir);
    execFileSync('sync', files);
    for (const f of files) execFileSync('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']);
    return true;
  } catch {
    return false;
  }
}

function listFiles(dir) {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile()).map((e) => path.join(e.parentPath ?? e.path, e.name));
}

function footprint(dir) {
  let apparent = 0, allocated = 0;
  for (const f of listFiles(dir)) { const st = fs.statSync(f); apparent += st.size; allocated += st.blocks * 512; }
  return { apparentMB: round(apparent / 2 ** 20, 1), allocatedMB: round(allocated / 2 ** 20, 1) };
}

// ---------------------------------------------------------------------------------------------- child

async function child({ id, dir, scale }) {
  const cfg = CONFIGS[id];
  const mod = cfg.pkg === null ? null : createRequire(path.join(CACHE, 'package.json'))(cfg.pkg);
  const adapterOf = () => ADAPTERS[cfg.pkg ?? 'memory'](mod, cfg.opts);
  const sub = (name) => { const d = path.join(dir, name); fs.mkdirSync(d, { recursive: true }); return d; };
  const openStore = async (d) => { const e = adapterOf(); await e.open(d); return { engine: e, store: new GroupCommit(e) }; };
  const log = (msg) => process.stderr.write(`  [${id}] ${msg}\n`);
  const result = { id };

  // 1. QoS 1 persistent delivery: light load (latency) and heavy load (throughput).
  result.qos1 = [];
  for (const inflight of [16, 1000]) {
    const d = sub(`qos1-${inflight}`);
    const { engine, store } = await openStore(d);
    const r = await qos1(store, { inflight, seconds: 8 * scale.time, warmup: 1 * scale.time, maxMsgs: 3_000_000 });
    await engine.close();
    fs.rmSync(d, { recursive: true, force: true });
    log(`qos1 inflight=${inflight}: ${r.msgsPerSec} msg/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms`);
    result.qos1.push(r);
  }

  // 2. Offline queue fill across 1,000 sessions (interleaved, as a fan-out fills them), then recovery.
  {
    const d = sub('fill');
    const { engine, store } = await openStore(d);
    const sessions = Array.from({ length: 1000 }, (_, s) => `sess-${String(s).padStart(4, '0')}`);
    const count = Math.round(1_000_000 * scale.count);
    const fill = await writeMany(store, count, 90 * scale.time, (i) => `d/${sessions[i % 1000]}/${pad(Math.floor(i / 1000))}`,
      makeRecords(150, 4096, 2));
    fill.footprintOpen = footprint(d);
    await engine.close();
    fill.footprint = footprint(d);
    log(`fill: ${fill.count} puts in ${fill.seconds} s (${fill.putsPerSec}/s), ${fill.footprint.allocatedMB} MB`);
    result.fill = fill;
    const cold = cfg.pkg !== null && evictCache(d);
    result.recoveryCold = cold ? await recover(adapterOf, d, 'd/') : null;
    result.recoveryWarm = await recover(adapterOf, d, 'd/');
    result.footprintAfterRecovery = footprint(d);
    log(`recovery: cold ${result.recoveryCold?.totalMs ?? '-'} ms, warm ${result.recoveryWarm.totalMs} ms ` +
      `(${result.recoveryWarm.count} records)`);
    if (cfg.pkg === null) result.fill.footprint = result.fill.footprintOpen = null;
    fs.rmSync(d, { recursive: true, force: true });
  }

  // 3. Retained: distinct topics in random order, then a full read at start-up.
  {
    const d = sub('retained');
    const { engine, store } = await openStore(d);
    const count = Math.round(100_000 * scale.count);
    const rnd = prng(3);
    const topics = Array.from({ length: count }, (_, i) =>
      `r/site-${i % 97}/building-${i % 13}/floor-${Math.floor(i / 1261)}/device-${i}/state`);
    for (let i = topics.length - 1; i > 0; i--) { const j = Math.floor(rnd() * (i + 1)); [topics[i], topics[j]] = [topics[j], topics[i]]; }
    const write = await writeMany(store, count, 60 * scale.time, (i) => topics[i], makeRecords(200, 4096, 4));
    await engine.close();
    const read = await recover(adapterOf, d, 'r/');
    result.retained = { write, read, footprint: cfg.pkg === null ? null : footprint(d) };
    log(`retained: ${write.putsPerSec} puts/s, read ${read.totalMs} ms`);
    fs.rmSync(d, { recursive: true, force: true });
  }
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

// ---------------------------------------------------------------------------------------------- parent

function ensureEngines(pkgs) {
  const req = createRequire(path.join(CACHE, 'package.json'));
  const missing = pkgs.filter((p) => { try { req.resolve(p); return false; } catch { return true; } });
  if (missing.length === 0) return;
  process.stderr.write(`installing ${missing.map((p) => PACKAGES[p]).join(' ')} into ${CACHE}\n`);
  fs.mkdirSync(CACHE, { recursive: true });
  execFileSync('npm', ['install', '--prefix', CACHE, '--no-audit', '--no-fund', ...missing.map((p) => PACKAGES[p])],
    { stdio: ['ignore', 'inherit', 'inherit'] });
}

function versions(pkgs) {
  const out = {};
  for (const p of pkgs) out[p] = JSON.parse(fs.readFileSync(path.join(CACHE, 'node_modules', p, 'package.json'), 'utf8')).version;
  if (pkgs.includes('better-sqlite3')) {
    const Database = createRequire(path.join(CACHE, 'package.json'))('better-sqlite3');
    const db = new Database(':memory:');
    out.sqlite = db.prepare('SELECT sqlite_version() AS v').get().v;
    db.close();
  }
  return out;
}

/** fdatasync latency of 4 KiB appends on the disk under test: the floor under every durable commit. */
function fsyncLatency(dir) {
  const f = path.join(dir, 'fsync-probe');
  const fd = fs.openSync(f, 'w');
  const buf = Buffer.alloc(4096, 7), ms = [];
  try {
    for (let i = 0; i < 300; i++) { fs.writeSync(fd, buf); const t = performance.now(); fs.fdatasyncSync(fd); ms.push(performance.now() - t); }
  } finally { fs.closeSync(fd); fs.rmSync(f, { force: true }); }
  return pct(ms);
}

function runChild(id, dir, scale, timeoutMs) {
  return new Promise((resolve) => {
    const cp = spawn(process.execPath, [SCRIPT, '--child', JSON.stringify({ id, dir, scale })],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    cp.stdout.on('data', (d) => { out += d; });
    const timer = setTimeout(() => { process.stderr.write(`  [${id}] over ${timeoutMs / 1000} s: killed\n`); cp.kill('SIGKILL'); }, timeoutMs);
    cp.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      resolve(line ? JSON.parse(line.slice(7)) : { id, error: `exit ${code ?? signal}` });
    });
  });
}

function table(results) {
  const rows = [[
    'engine', 'survives', 'qos1 msg/s @16', 'p50/p99 ms @16', 'qos1 msg/s @1000', 'p50/p99 ms @1000',
    'main thread/commit p99/max ms', 'loop delay p99/max ms', 'fill puts/s', 'recover 1M cold/warm s', 'disk MB', 'retained puts/s', 'retained read ms',
  ]];
  for (const r of results) {
    const c = CONFIGS[r.id];
    if (r.error) { rows.push([c.label, c.durable, `failed: ${r.error}`]); continue; }
    const [lo, hi] = r.qos1;
    // The worst of the three write scenarios: what one commit, and the event loop, may stall other clients.
    const writes = [...r.qos1, r.fill, r.retained.write];
    const worst = (f) => Math.max(...writes.map(f));
    rows.push([
      c.label, c.durable, lo.msgsPerSec, `${lo.latencyMs.p50}/${lo.latencyMs.p99}`, hi.msgsPerSec,
      `${hi.latencyMs.p50}/${hi.latencyMs.p99}`,
      `${worst((x) => x.mainThreadMs.p99)}/${worst((x) => x.mainThreadMs.max)}`,
      `${worst((x) => x.loop.p99)}/${worst((x) => x.loop.max)}`,
      `${r.fill.putsPerSec}${r.fill.complete ? '' : ` (${r.fill.count} only)`}`,
      `${r.recoveryCold ? round(r.recoveryCold.totalMs / 1000, 2) : '-'}/${round(r.recoveryWarm.totalMs / 1000, 2)}`,
      r.fill.footprint ? r.fill.footprint.allocatedMB : '-', r.retained.write.putsPerSec, r.retained.read.totalMs,
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => String(row[i] ?? '').length)));
  return rows.map((row, j) => {
    const line = `| ${row.map((v, i) => String(v ?? '').padEnd(widths[i])).join(' | ')} |`;
    return j === 0 ? `${line}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|` : line;
  }).join('\n');
}

async function main(argv) {
  const arg = (name) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  if (argv.includes('--child')) return child(JSON.parse(arg('--child')));
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write('usage: node bench/store-engines.mjs [--only id,id] [--quick] [--dir DIR] [--out FILE]\n' +
      `ids: ${Object.keys(CONFIGS).join(', ')}\n`);
    return;
  }
  const ids = arg('--only')?.split(',') ?? Object.keys(CONFIGS);
  for (const id of ids) {
    if (CONFIGS[id]) continue;
    process.stderr.write(`unknown engine id '${id}' (known: ${Object.keys(CONFIGS).join(', ')})\n`);
    process.exit(2);
  }
  // --quick: a smoke run, 1/20 of the counts and 1/4 of the time.
  const scale = argv.includes('--quick') ? { count: 0.05, time: 0.25 } : { count: 1, time: 1 };
  const base = path.resolve(arg('--dir') ?? os.tmpdir());
  const outFile = path.resolve(arg('--out') ?? fileURLToPath(new URL('./results/store-engines.json', import.meta.url)));
  const pkgs = [...new Set(ids.map((id) => CONFIGS[id].pkg).filter((p) => p !== null))];
  ensureEngines(pkgs);

  const probeDir = fs.mkdtempSync(path.join(base, 'smq-store-bench-'));
  const fsync = fsyncLatency(probeDir);
  fs.rmSync(probeDir, { recursive: true, force: true });
  process.stderr.write(`fdatasync of 4 KiB on ${base}: p50 ${fsync.p50} ms, p99 ${fsync.p99} ms\n`);

  const results = [];
  const started = Date.now();
  const loadavgBefore = os.loadavg().map((x) => round(x, 2));
  let current = null;
  process.on('SIGINT', () => { if (current) fs.rmSync(current, { recursive: true, force: true }); process.exit(130); });
  for (const id of ids) {
    current = fs.mkdtempSync(path.join(base, `smq-store-bench-${id}-`));
    process.stderr.write(`${CONFIGS[id].label}\n`);
    try { results.push(await runChild(id, current, scale, 300_000 * scale.time)); }
    finally { fs.rmSync(current, { recursive: true, force: true }); current = null; }
  }
  const report = {
    date: new Date().toISOString(), seconds: Math.round((Date.now() - started) / 1000), scale,
    machine: { node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memGB: round(os.totalmem() / 2 ** 30, 1),
      kernel: os.release(), dir: base, fdatasyncMs: fsync, loadavgBefore,
      loadavgAfter: null },
    driver: { maxOps: MAX_OPS, maxDelayMs: MAX_DELAY_MS }, versions: versions(pkgs),
    configs: Object.fromEntries(ids.map((id) => [id, CONFIGS[id]])), results,
  };
  // Other work on the machine skews the numbers: the load average says how much there was.
  report.machine.loadavgAfter = os.loadavg().map((x) => round(x, 2));
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`${table(results)}\n\nraw results: ${outFile} (${report.seconds} s)\n`);
}

// ---------------------------------------------------------------------------------------------- helpers

function loopMonitor() {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  return { stop() { h.disable(); return { p50: round(h.percentile(50) / 1e6, 2), p99: round(h.percentile(99) / 1e6, 2), max: round(h.max / 1e6, 2) }; } };
}

function pct(values) {
  const s = Float64Array.from(values).sort();
  return { p50: round(q(s, 0.5), 3), p99: round(q(s, 0.99), 3), max: round(q(s, 1), 3) };
}

function q(sorted, p) { return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]; }

function round(x, digits) { const f = 10 ** digits; return Math.round(x * f) / f; }

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

main(process.argv.slice(2)).catch((err) => { process.stderr.write(`${err.stack ?? err}\n`); process.exit(1); });
