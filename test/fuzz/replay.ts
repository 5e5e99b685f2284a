/**
 * Runs stored inputs through a target with the oracle, without the fuzzer: the CI replay, and how a finding is
 * reproduced by hand.
 *
 *   node dist/test/fuzz/replay.js <target> [file or directory...]   (default: the target's committed corpus)
 *
 * Prints one line per input that broke a rule and a count per answer; exits 1 when any input broke one.
 */
import { statSync } from 'node:fs';
import { basename } from 'node:path';
import { readFileSync } from 'node:fs';
import { corpusDir, readInputs, type Input } from './corpus.js';
import type { Answer } from './harness.js';
import { target, type Target } from './targets.js';

/** What replaying a set of inputs gave. */
export interface Replay {
  readonly inputs: number;
  readonly answers: Record<Answer, number>;
  /** Inputs that broke a rule, with what broke. */
  readonly findings: { name: string; error: string }[];
}

/** Runs `inputs` through `t` one after the other. */
export async function replay(t: Target, inputs: readonly Input[]): Promise<Replay> {
  const answers: Record<Answer, number> = { pingresp: 0, closed: 0 };
  const findings: { name: string; error: string }[] = [];
  for (const input of inputs) {
    try {
      answers[await t.run(input.data)]++;
    } catch (err) {
      findings.push({ name: input.name, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    }
  }
  return { inputs: inputs.length, answers, findings };
}

function inputsOf(path: string): Input[] {
  if (statSync(path).isDirectory()) return readInputs(path);
  return [{ name: basename(path), data: readFileSync(path) }];
}

async function main(): Promise<void> {
  const [name, ...paths] = process.argv.slice(2);
  if (name === undefined) throw new Error('usage: replay.js <target> [file or directory...]');
  const t = target(name);
  const inputs = (paths.length > 0 ? paths : [corpusDir(name)]).flatMap(inputsOf);
  const r = await replay(t, inputs);
  for (const f of r.findings) console.log(`FINDING ${f.name}\n${f.error}\n`);
  console.log(`${name}: ${r.inputs} inputs, ${r.answers.pingresp} answered PINGRESP, ${r.answers.closed} closed, ${r.findings.length} findings`);
  await t.close();
  process.exitCode = r.findings.length > 0 ? 1 : 0;
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(basename(process.argv[1]))) await main();
