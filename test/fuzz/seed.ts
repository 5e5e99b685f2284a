/**
 * Writes each target's seeds (targets.ts) into its committed corpus: `node dist/test/fuzz/seed.js [target...]`.
 * Seeds already there are left as they are; the fuzzer's own finds are added by scripts/fuzz.sh.
 */
import { corpusDir, writeInputs } from './corpus.js';
import { target, TARGETS } from './targets.js';

const names = process.argv.length > 2 ? process.argv.slice(2) : [...TARGETS.keys()];
for (const name of names) {
  const t = target(name);
  const seeds = t.seeds();
  const added = writeInputs(corpusDir(name), seeds);
  console.log(`${name}: ${seeds.length} seeds, ${added} new, in ${corpusDir(name)}`);
}
