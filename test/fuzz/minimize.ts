/**
 * Shrinks an input that breaks a rule of the oracle to one that still breaks the same rule, by deleting ever
 * smaller runs of bytes while the finding stays (delta debugging). In process, with the same oracle as the
 * fuzzer, so it needs no fork of libFuzzer's own minimizer.
 *
 *   node dist/test/fuzz/minimize.js <target> <file>    writes <file>.min and prints it as hex
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { FuzzFinding } from './harness.js';
import { target, type Target } from './targets.js';

/** At most this many runs, or this long. */
const MAX_RUNS = 20000;
const MAX_MS = 300_000;

/** The rule `data` breaks, or null when it breaks none. */
async function ruleBroken(t: Target, data: Buffer): Promise<string | null> {
  try {
    await t.run(data);
    return null;
  } catch (err) {
    if (err instanceof FuzzFinding) return err.code;
    return err instanceof Error ? err.name : 'thrown';
  }
}

async function main(): Promise<void> {
  const [name, file] = process.argv.slice(2);
  if (name === undefined || file === undefined) throw new Error('usage: minimize.js <target> <file>');
  const t = target(name);
  let data = readFileSync(file);
  const rule = await ruleBroken(t, data);
  if (rule === null) {
    console.log(`${file} breaks no rule of the ${name} target: nothing to minimize`);
    await t.close();
    process.exitCode = 1;
    return;
  }
  console.log(`${file}: ${data.length} bytes, breaks ${rule}`);
  const started = Date.now();
  let runs = 0;
  let chunk = Math.max(1, data.length >> 1);
  while (chunk >= 1 && runs < MAX_RUNS && Date.now() - started < MAX_MS) {
    let shrunk = false;
    for (let i = 0; i < data.length && runs < MAX_RUNS; ) {
      const candidate = Buffer.concat([data.subarray(0, i), data.subarray(i + chunk)]);
      runs++;
      if (candidate.length > 0 && (await ruleBroken(t, candidate)) === rule) {
        data = candidate;
        shrunk = true;
      } else {
        i += chunk;
      }
    }
    if (!shrunk) chunk >>= 1;
  }
  writeFileSync(`${file}.min`, data);
  console.log(`${file}.min: ${data.length} bytes after ${runs} runs, still breaks ${rule}\n${data.toString('hex')}`);
  await t.close();
}

await main();
