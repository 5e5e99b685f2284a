/**
 * Runs Jazzer.js on one target in a child process, the one way both scripts/fuzz.sh and test/97-fuzz do:
 *
 *   node dist/test/fuzz/jazzer/run.js fuzz <target> <seconds> <work dir>   fuzz; new inputs go to <work dir>
 *   node dist/test/fuzz/jazzer/run.js merge <target> <work dir>            add <work dir>'s new coverage to
 *                                                                          the committed corpus
 *   node dist/test/fuzz/jazzer/run.js cmin <target> <work dir>             rebuild the committed corpus as the
 *                                                                          fewest inputs (of it and <work dir>)
 *                                                                          that keep all their coverage
 *
 * A child per target because libFuzzer runs once per process, and because a finding ends the process.
 */
import { spawn, execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { corpusDir, inputName, ROOT } from '../corpus.js';

/** What a run reported (libFuzzer's final statistics and last status line). */
export interface RunResult {
  readonly target: string;
  /** 0: nothing found; 77: a finding (libFuzzer's crash code); anything else: the run itself failed. */
  readonly code: number;
  readonly execs: number;
  readonly execsPerSecond: number;
  /** Coverage edges reached, and libFuzzer's features (edges with hit-count buckets). */
  readonly cov: number;
  readonly features: number;
  /** Edges instrumented in the code loaded (the denominator of `cov`). */
  readonly edges: number;
  readonly corpus: number;
  readonly peakRssMb: number;
  /** What was printed, for a report when `code` is not 0. */
  readonly output: string;
}

/**
 * What guides the fuzzer: coverage of the broker and of the parsers it hands client bytes to (not of the
 * harness). Bug detectors: prototype pollution stays on (ClientInfo JSON, user properties); the others hook
 * child_process and fs, which these targets never reach, and triple the start-up time; the SSRF one would
 * flag the websocket target's own loopback connections.
 */
const JAZZER_ARGS = [
  '-i', 'dist/broker/src/', '-i', 'node_modules/mqtt-packet/', '-i', 'node_modules/ws/', '-e', 'dist/test/',
  '--disableBugDetectors', 'command-injection|path-traversal|remote-code-execution|ssrf',
  '--timeout', '10000',
];

/** The libFuzzer addon to load: SMQ_JAZZER_ADDON, or what build.sh makes or finds. */
export function addonPath(): string {
  const given = process.env['SMQ_JAZZER_ADDON'];
  if (given !== undefined && given !== '') return given;
  return execFileSync('bash', [join(ROOT, 'test', 'fuzz', 'jazzer', 'build.sh')], { encoding: 'utf8' }).trim();
}

/** Options of one run. */
export interface RunOptions {
  readonly target: string;
  /** Corpus directories: the first receives what the run finds; the others are read only. */
  readonly corpora: readonly string[];
  /** libFuzzer flags (after `--`). */
  readonly libFuzzer: readonly string[];
  /** Copies the child's output to stderr as it comes (long runs by hand). */
  readonly echo?: boolean;
  readonly addon?: string;
}

/** Runs Jazzer.js once and resolves with what it reported. */
export function jazzer(opts: RunOptions): Promise<RunResult> {
  const args = [
    '--expose-gc', '--max-old-space-size=2048',
    'dist/test/fuzz/jazzer/launch.js', 'dist/test/fuzz/jazzer/entry.js', ...opts.corpora, ...JAZZER_ARGS, '--', ...opts.libFuzzer,
  ];
  const env = { ...process.env, SMQ_JAZZER_ADDON: opts.addon ?? addonPath(), SMQ_FUZZ_TARGET: opts.target };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    const take = (d: Buffer): void => {
      chunks.push(d);
      if (opts.echo) process.stderr.write(d);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const output = Buffer.concat(chunks).toString('utf8');
      resolve(parse(opts.target, code ?? (signal !== null ? 128 : 1), output));
    });
  });
}

/** Reads libFuzzer's statistics out of its output. */
function parse(target: string, code: number, output: string): RunResult {
  const stat = (name: string): number => lastNumber(output, new RegExp(`stat::${name}:\\s+(\\d+)`, 'g'));
  const status = [...output.matchAll(/cov: (\d+) ft: (\d+) corp: (\d+)\//g)].at(-1);
  const edges = [...output.matchAll(/INFO: Loaded \d+ modules\s+\((\d+) inline 8-bit counters\)/g)].at(-1);
  return {
    target,
    code,
    execs: stat('number_of_executed_units'),
    execsPerSecond: stat('average_exec_per_sec'),
    cov: Number(status?.[1] ?? 0),
    features: Number(status?.[2] ?? 0),
    edges: Number(edges?.[1] ?? 0),
    corpus: Number(status?.[3] ?? 0),
    peakRssMb: stat('peak_rss_mb'),
    output,
  };
}

function lastNumber(text: string, re: RegExp): number {
  return Number([...text.matchAll(re)].at(-1)?.[1] ?? 0);
}

/** A fuzzing run of `seconds` on `target`, starting from its committed corpus; new inputs go to `work`. */
export function fuzz(target: string, seconds: number, work: string, extra: { echo?: boolean; artifacts?: string; addon?: string } = {}): Promise<RunResult> {
  mkdirSync(work, { recursive: true });
  const artifacts = extra.artifacts ?? work;
  mkdirSync(artifacts, { recursive: true });
  return jazzer({
    target,
    corpora: [work, corpusDir(target)],
    libFuzzer: [
      `-max_total_time=${seconds}`, `-dict=${join(ROOT, 'test', 'fuzz', 'mqtt.dict')}`, `-artifact_prefix=${artifacts}/`,
      '-print_final_stats=1', '-rss_limit_mb=4096',
    ],
    echo: extra.echo,
    addon: extra.addon,
  });
}

/** Adds to the committed corpus the inputs of `work` that bring coverage it lacks (libFuzzer -merge=1). */
export function merge(target: string, work: string): Promise<RunResult> {
  return jazzer({ target, corpora: [corpusDir(target), work], libFuzzer: ['-merge=1'] });
}

/**
 * Rebuilds the committed corpus of `target` from scratch: libFuzzer merges it and `work` into an empty
 * directory, which keeps only inputs that add coverage, smallest first; that replaces the committed files.
 * The regress-* inputs of past findings are always kept. Returns the counts before and after.
 */
export async function cmin(target: string, work: string): Promise<{ before: number; after: number; result: RunResult }> {
  const dir = corpusDir(target);
  const fresh = mkdtempSync(join(tmpdir(), `smq-cmin-${target}-`));
  try {
    mkdirSync(work, { recursive: true });
    const before = readdirSync(dir).length;
    const result = await jazzer({ target, corpora: [fresh, dir, work], libFuzzer: ['-merge=1'] });
    if (result.code !== 0) return { before, after: before, result };
    // A regress-* input the merge kept comes back under its SHA-1 name: it is there already.
    const kept = new Set(readdirSync(dir).filter((n) => n.startsWith('regress-')).map((n) => inputName(readFileSync(join(dir, n)))));
    for (const name of readdirSync(dir)) if (!name.startsWith('regress-')) rmSync(join(dir, name));
    for (const name of readdirSync(fresh)) if (!kept.has(name)) copyFileSync(join(fresh, name), join(dir, name));
    return { before, after: readdirSync(dir).length, result };
  } finally {
    rmSync(fresh, { recursive: true, force: true });
  }
}

/** One line about a run. */
export function summary(r: RunResult): string {
  return `${r.target}: ${r.execs} inputs at ${r.execsPerSecond}/s, coverage ${r.cov} of ${r.edges} edges (${r.features} features), corpus ${r.corpus}, peak RSS ${r.peakRssMb} MB`;
}

async function main(): Promise<void> {
  const [mode, target, ...rest] = process.argv.slice(2);
  if (mode === 'fuzz' && target !== undefined && rest.length === 2) {
    const [seconds, work] = rest as [string, string];
    const r = await fuzz(target, Number(seconds), work, { echo: true, artifacts: join(work, '..', 'findings', target) });
    console.log(`\n${summary(r)}`);
    process.exitCode = r.code;
  } else if (mode === 'merge' && target !== undefined && rest.length === 1) {
    const r = await merge(target, rest[0] as string);
    const added = /MERGE-OUTER: (\d+) new files with (\d+) new features/.exec(r.output);
    console.log(`${target}: ${added?.[1] ?? 0} inputs with ${added?.[2] ?? 0} new features added to ${corpusDir(target)}`);
    if (r.code !== 0) console.log(r.output);
    process.exitCode = r.code;
  } else if (mode === 'cmin' && target !== undefined && rest.length === 1) {
    const { before, after, result } = await cmin(target, rest[0] as string);
    console.log(`${target}: ${before} -> ${after} inputs in ${corpusDir(target)}`);
    if (result.code !== 0) console.log(result.output);
    process.exitCode = result.code;
  } else {
    throw new Error('usage: run.js fuzz <target> <seconds> <work dir> | run.js merge|cmin <target> <work dir>');
  }
}

if (process.argv[1]?.endsWith('run.js')) await main();
