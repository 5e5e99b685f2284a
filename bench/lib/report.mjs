// What run.mjs prints and stores: the machine description, medians and spreads, and the one table.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

const ROOT = new URL('../..', import.meta.url).pathname;

/** A generator process above this share of a core may have limited the figure instead of the broker. */
export const GENERATOR_BOUND = 0.9;

function git(...args) {
  try { return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { return null; }
}

/** The machine and the versions of everything measured. */
export function machine() {
  const mosq = spawnSync('mosquitto', ['-h'], { encoding: 'utf8' });
  const aedes = JSON.parse(readFileSync(new URL('../../node_modules/aedes/package.json', import.meta.url), 'utf8'));
  return {
    cpu: os.cpus()[0]?.model,
    cores: os.cpus().length,
    memoryMB: Math.round(os.totalmem() / 1048576),
    kernel: os.release(),
    node: process.version,
    mosquitto: /mosquitto version (\S+)/.exec(`${mosq.stdout}${mosq.stderr}`)?.[1] ?? null,
    aedes: aedes.version,
    smqCommit: git('rev-parse', 'HEAD'),
    // Uncommitted changes under broker/ mean the smq measured is not exactly that commit.
    smqDirty: Boolean(git('status', '--porcelain', '--', 'broker')),
    loadAverageAtStart: os.loadavg(),
  };
}

export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** Fills in median, min, max and the generator-bound flag of one (row, broker) cell from its rounds. */
export function summarize(cell) {
  const values = cell.rounds.map((r) => r.value).filter((x) => typeof x === 'number' && Number.isFinite(x));
  cell.median = median(values);
  cell.min = values.length ? Math.min(...values) : null;
  cell.max = values.length ? Math.max(...values) : null;
  // Conservative: one round in which a generator process neared a full core taints the median.
  cell.generatorBound = cell.rounds.some((r) => (r.generatorCpu ?? []).some((c) => c > GENERATOR_BOUND));
  cell.maxGeneratorCpu = Math.max(0, ...cell.rounds.flatMap((r) => r.generatorCpu ?? []));
  return cell;
}

function fmt(v) {
  if (v === null || v === undefined) return 'n/a';
  const a = Math.abs(v);
  if (a >= 100) return Math.round(v).toLocaleString('en-US');
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function ratio(a, b) {
  return typeof a === 'number' && typeof b === 'number' && b !== 0 ? `${(a / b).toFixed(2)}x` : 'n/a';
}

/** The results table (Markdown), rows in run order. */
export function table(rows, brokers) {
  const others = ['mosquitto', 'aedes'].filter((b) => brokers.includes(b) && brokers.includes('smq'));
  const head = ['scenario', 'unit', ...brokers, ...others.map((b) => `smq/${b}`)];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 ? '---' : '--:')).join('|')}|`];
  let marked = false;
  for (const row of rows) {
    const cells = brokers.map((b) => {
      const c = row.brokers[b];
      if (!c) return '';
      if (c.median === null) return c.rounds.some((r) => r.error) ? 'error' : 'n/a';
      marked ||= c.generatorBound;
      return fmt(c.median) + (c.generatorBound ? ' *' : '');
    });
    const ratios = others.map((b) => ratio(row.brokers.smq?.median, row.brokers[b]?.median));
    const unit = row.better === 'lower' ? `${row.unit} (lower is better)` : row.unit;
    lines.push(`| ${[row.title, unit, ...cells, ...ratios].join(' | ')} |`);
  }
  if (marked) {
    lines.push('', `\\* generator-bound: a load-generator process used more than ${GENERATOR_BOUND * 100} % of a core in at least one round, so the figure may be the generator's limit rather than the broker's.`);
  }
  return lines.join('\n');
}

/**
 * The table of smq-only rows (the Kafka bridge: Mosquitto and Aedes have none): smq's absolute figures with
 * their spread over the rounds, no ratios.
 */
export function smqOnlyTable(rows) {
  const why = [...new Set(rows.map((r) => r.smqOnly).filter((w) => typeof w === 'string'))].join('; ');
  const lines = [
    `smq only${why ? ` (Mosquitto and Aedes: ${why})` : ''}: absolute figures, median of the rounds, no comparison.`,
    '',
    '| scenario | unit | smq | min | max | rounds |',
    '|---|---|--:|--:|--:|--:|',
  ];
  let marked = false;
  for (const row of rows) {
    const c = row.brokers.smq;
    const unit = row.better === 'lower' ? `${row.unit} (lower is better)` : row.unit;
    let value;
    if (c.median === null) value = c.rounds.some((r) => r.error) ? 'error' : 'n/a';
    else {
      marked ||= c.generatorBound;
      value = fmt(c.median) + (c.generatorBound ? ' *' : '');
    }
    lines.push(`| ${[row.title, unit, value, fmt(c.min), fmt(c.max), c.rounds.length].join(' | ')} |`);
  }
  if (marked) lines.push('', `\\* generator-bound: a load-generator process used more than ${GENERATOR_BOUND * 100} % of a core in at least one round.`);
  return lines.join('\n');
}
