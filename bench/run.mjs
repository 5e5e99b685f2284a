// smq against Mosquitto and Aedes on the same machine with the same load generator (bench/load/).
// For every scenario in bench/scenarios/*.mjs, for round 1..N, for each broker in turn (A B C A B C ...):
// a fresh broker process, one measurement, stop. Prints one table (medians, ratios) on stdout, progress on
// stderr, and writes every round's figures as JSON. See bench/README.md for what each scenario does.
// Scenarios with `smqOnly` (the Kafka bridge) run against smq alone and go into a second table without ratios;
// those with `needs: 'kafka'` share one Kafka broker, started before the first of them and stopped after the
// last (skipped, with the reason, where Kafka is not provisioned).
//
//   node bench/run.mjs [--only id,prefix] [--brokers smq,mosquitto,aedes] [--rounds 3] [--duration 10]
//                      [--warmup 2] [--quick] [--out file.json]
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { running, startBroker } from './lib/brokers.mjs';
import { KafkaUnavailable, startKafka } from './lib/kafka.mjs';
import { machine, smqOnlyTable, summarize, table } from './lib/report.mjs';
import { closeAll } from './load/driver.mjs';

const HERE = new URL('.', import.meta.url).pathname;
const BROKERS = ['smq', 'mosquitto', 'aedes'];

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    brokers: { type: 'string' },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log('usage: node bench/run.mjs [--only id,prefix] [--brokers smq,mosquitto,aedes] [--rounds N] [--duration S] [--warmup S] [--quick] [--out file.json]');
  process.exit(0);
}

const quick = args.quick;
const opts = {
  rounds: Number(args.rounds ?? (quick ? 1 : 3)),
  duration: Number(args.duration ?? (quick ? 2 : 10)),
  warmup: Number(args.warmup ?? (quick ? 0.5 : 2)),
  quick,
  brokers: args.brokers ? args.brokers.split(',') : BROKERS,
  only: args.only ? args.only.split(',') : null,
};
for (const b of opts.brokers) if (!BROKERS.includes(b)) throw new Error(`unknown broker "${b}" (${BROKERS.join(', ')})`);

const log = (msg) => process.stderr.write(`${msg}\n`);
/** The brokers a scenario runs against: smq alone for smq-only ones (the Kafka bridge). */
const brokersOf = (scenario) => (scenario.smqOnly ? ['smq'] : opts.brokers);

async function loadScenarios() {
  const dir = join(HERE, 'scenarios');
  const files = readdirSync(dir).filter((f) => f.endsWith('.mjs')).sort();
  const all = [];
  for (const f of files) {
    const mod = await import(join(dir, f));
    for (const s of mod.scenarios ?? []) all.push({ ...s, file: f });
  }
  const wanted = (id) => !opts.only || opts.only.some((p) => id === p || id.startsWith(p));
  const picked = all.filter((s) => wanted(s.id));
  if (picked.length === 0) throw new Error(`no scenario matches --only ${opts.only}; ids: ${all.map((s) => s.id).join(', ')}`);
  return picked;
}

/** An ECDSA P-256 CA and a server certificate it signed for 127.0.0.1 and localhost. */
function makeTls(dir) {
  const ssl = (...a) => execFileSync('openssl', a, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  ssl('genpkey', ...ec, '-out', 'ca.key');
  ssl('req', '-x509', '-new', '-key', 'ca.key', '-sha256', '-days', '7', '-subj', '/CN=smq bench CA', '-out', 'ca.pem');
  ssl('genpkey', ...ec, '-out', 'server.key');
  ssl('req', '-new', '-key', 'server.key', '-subj', '/CN=127.0.0.1', '-out', 'server.csr');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '7', '-sha256', '-extfile', 'server.ext', '-out', 'server.pem');
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
}

const fmtNum = (v) => (typeof v === 'number' ? (Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2)) : String(v));

/** One measurement: fresh broker, run, stop (also on error). Returns { value(s), generatorCpu, extra }. */
async function measure(scenario, name, ctx) {
  // brokerOpts may be a function of ctx (the bridge scenarios point smq at the run's Kafka).
  const brokerOpts = typeof scenario.brokerOpts === 'function' ? scenario.brokerOpts(ctx) : { ...scenario.brokerOpts };
  // A scenario asks for TLS with tls: true (or its own { cert, key }); the run's certificate is the default.
  if (brokerOpts.tls === true) brokerOpts.tls = { cert: ctx.tls.cert, key: ctx.tls.key };
  const broker = await startBroker(name, brokerOpts);
  try {
    return await scenario.run(broker, ctx);
  } finally {
    await broker.stop();
  }
}

async function main() {
  let scenarios = await loadScenarios();
  const skipped = [];
  const skip = (list, why) => {
    for (const s of list) skipped.push({ id: s.id, reason: why });
    if (list.length) log(`skipping ${list.map((s) => s.id).join(', ')}: ${why}`);
    scenarios = scenarios.filter((s) => !list.includes(s));
  };
  if (!opts.brokers.includes('smq')) skip(scenarios.filter((s) => s.smqOnly), 'smq-only scenarios and smq is not in --brokers');
  const tlsDir = mkdtempSync(join(os.tmpdir(), 'bench-tls-'));
  let kafka = null;
  const cleanup = async () => {
    await closeAll();
    await Promise.all([...running].map((b) => b.stop()));
    const k = kafka;
    kafka = null;
    await k?.stop();
    rmSync(tlsDir, { recursive: true, force: true });
  };
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, async () => { log(`${sig}: stopping brokers and workers`); await cleanup(); process.exit(130); });
  }

  const started = new Date();
  const result = { started: started.toISOString(), machine: machine(), options: { ...opts }, rows: [] };
  const rowsById = new Map();
  const rowFor = (def, scenario) => {
    let row = rowsById.get(def.id);
    if (!row) {
      row = { id: def.id, scenario: scenario.id, title: def.title, unit: def.unit, better: def.better, brokers: {} };
      if (scenario.smqOnly) row.smqOnly = scenario.smqOnly;
      for (const b of brokersOf(scenario)) row.brokers[b] = { rounds: [] };
      rowsById.set(def.id, row);
      result.rows.push(row);
    }
    return row;
  };
  let failures = 0;
  try {
    const ctx = { duration: opts.duration, warmup: opts.warmup, quick, tls: makeTls(tlsDir), log };
    // Kafka runs only around the scenarios that need it (a JVM with a 1 GiB heap would otherwise sit beside
    // every other measurement): started before the first of them, stopped after the last.
    const lastKafka = scenarios.findLast((s) => s.needs === 'kafka');
    let kafkaSkip = null;
    const alone = scenarios.filter((s) => s.smqOnly).length;
    const parts = [];
    if (scenarios.length > alone) parts.push(`${scenarios.length - alone} scenarios x ${opts.brokers.length} brokers`);
    if (alone) parts.push(`${alone} smq-only scenarios`);
    const shape = parts.join(' + ') || '0 scenarios';
    log(`${shape} x ${opts.rounds} rounds, ${opts.duration} s measured after ${opts.warmup} s warm-up`);
    for (const scenario of [...scenarios]) {
      if (scenario.needs === 'kafka' && !kafka && !kafkaSkip) {
        try {
          kafka = await startKafka(log);
          ctx.kafka = kafka;
          result.machine.kafka = kafka.version;
        } catch (err) {
          if (!(err instanceof KafkaUnavailable)) {
            failures++;
            log(`Kafka did not start: ${err.message}`);
          }
          kafkaSkip = err instanceof KafkaUnavailable ? err.message : 'Kafka did not start (above)';
        }
      }
      if (scenario.needs === 'kafka' && kafkaSkip) {
        skip([scenario], kafkaSkip);
        continue;
      }
      for (let round = 1; round <= opts.rounds; round++) {
        for (const name of brokersOf(scenario)) {
          const load = os.loadavg()[0];
          const t0 = Date.now();
          let out;
          try {
            out = await measure(scenario, name, { ...ctx, log: (m) => log(`  [${scenario.id} ${name}] ${m}`) });
          } catch (err) {
            failures++;
            log(`[${scenario.id}] round ${round} ${name}: ERROR ${err.message}`);
            // Rows not known yet (a multi-row scenario that failed at once) get the error on the scenario row.
            const defs = [...rowsById.values()].filter((r) => r.scenario === scenario.id);
            for (const row of defs.length ? defs : [rowFor(scenario, scenario)]) {
              row.brokers[name].rounds.push({ round, value: null, error: err.message, loadAverage: load });
            }
            continue;
          }
          const defs = out.rows ?? [{ ...scenario, value: out.value }];
          for (const def of defs) {
            rowFor(def, scenario).brokers[name].rounds.push({
              round, value: def.value ?? null, generatorCpu: out.generatorCpu, loadAverage: load, seconds: (Date.now() - t0) / 1000, extra: out.extra,
            });
          }
          const cpu = (out.generatorCpu ?? []).map((c) => `${Math.round(c * 100)}%`).join(' ');
          log(`[${scenario.id}] round ${round}/${opts.rounds} ${name}: ${defs.map((d) => `${fmtNum(d.value)} ${d.unit ?? scenario.unit}`).join(', ')} (generator CPU ${cpu}; load ${load.toFixed(1)})`);
          // Let the kernel retire the last run's sockets before the next broker starts.
          await new Promise((r) => setTimeout(r, 500));
        }
      }
      if (scenario === lastKafka && kafka) {
        const k = kafka;
        kafka = null;
        ctx.kafka = undefined;
        await k.stop();
        log('Kafka stopped');
      }
    }
  } finally {
    await cleanup();
  }
  for (const row of result.rows) for (const cell of Object.values(row.brokers)) summarize(cell);
  result.finished = new Date().toISOString();
  result.machine.loadAverageAtEnd = os.loadavg();
  if (skipped.length) result.skipped = skipped;

  const compared = result.rows.filter((r) => !r.smqOnly);
  const alone = result.rows.filter((r) => r.smqOnly);
  const text = [
    ...(compared.length ? [table(compared, opts.brokers)] : []),
    ...(alone.length ? [smqOnlyTable(alone)] : []),
  ].join('\n\n');
  if (text) console.log(text);
  let files;
  if (args.out) {
    files = [args.out];
  } else {
    const dir = join(HERE, 'results');
    mkdirSync(dir, { recursive: true });
    files = [join(dir, `run-${started.toISOString().replace(/[:.]/g, '-')}.json`), join(dir, 'latest.json')];
  }
  for (const f of files) writeFileSync(f, JSON.stringify(result, null, 2) + '\n');
  log(`raw figures: ${files.join(', ')}`);
  if (failures) {
    log(`${failures} measurement(s) failed`);
    process.exitCode = 1;
  }
}

await main();
