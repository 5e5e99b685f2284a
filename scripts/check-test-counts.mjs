// Compares the tests each file reported in a run (scripts/test-counts.mjs: one line per test, naming its file) with the committed list
// test/test-counts.json and exits 1 when a file reported fewer than the list says, or did not run at all: a
// file whose tests stop being registered (see test-counts.mjs) otherwise passes. More tests than listed, or a
// file not listed, is only noted. `--update` writes the run's counts as the new list instead.
//
//   node scripts/check-test-counts.mjs <run's lines> <list.json> [--update]
import { readFileSync, writeFileSync } from 'node:fs';

const [runFile, listFile, flag] = process.argv.slice(2);
if (runFile === undefined || listFile === undefined) {
  console.error("usage: node scripts/check-test-counts.mjs <run's lines> <list.json> [--update]");
  process.exit(2);
}
const run = {};
for (const file of readFileSync(runFile, 'utf8').split('\n').filter((l) => l !== '').sort()) run[file] = (run[file] ?? 0) + 1;
if (flag === '--update') {
  writeFileSync(listFile, `${JSON.stringify(run, null, 1)}\n`);
  console.log(`==> ${listFile}: ${Object.keys(run).length} files, ${Object.values(run).reduce((a, b) => a + b, 0)} tests recorded`);
  process.exit(0);
}
const list = JSON.parse(readFileSync(listFile, 'utf8'));
const short = [];
const notes = [];
for (const [file, want] of Object.entries(list)) {
  const got = run[file] ?? 0;
  if (got < want) short.push(`${file}: ${got} of ${want} tests reported${got === 0 ? ' (the file did not run or reported nothing)' : ''}`);
  else if (got > want) notes.push(`${file}: ${got} tests, the list says ${want}`);
}
for (const file of Object.keys(run)) if (!(file in list)) notes.push(`${file}: ${run[file]} tests, not in the list`);
const total = (o) => Object.values(o).reduce((a, b) => a + b, 0);
if (notes.length > 0) {
  console.log(`==> test counts above ${listFile} (record them: SMQ_TEST_COUNTS=update bash scripts/test.sh):\n  ${notes.join('\n  ')}`);
}
if (short.length > 0) {
  console.error(`==> FEWER TESTS than ${listFile} lists (${total(run)} reported, ${total(list)} listed): a file stopped early or stopped declaring tests:\n  ${short.join('\n  ')}`);
  process.exit(1);
}
console.log(`==> test counts: ${total(run)} tests reported in ${Object.keys(run).length} files, none fewer than ${listFile} lists`);
