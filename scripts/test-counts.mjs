// A node:test reporter that records, for every test a file reports (every level: suites, tests, subtests;
// skipped ones too), one line with the file's path relative to the repository, appended to the file named by
// SMQ_TEST_COUNTS_FILE. scripts/test.sh adds it beside the visible reporter and compares the counts with
// test/test-counts.json (scripts/check-test-counts.mjs): node's runner reports only the tests a file registered
// before it ended, so a file cut short (tests registered after a top-level await or in a timer, ended by
// --test-force-exit once the tests it knew had finished) passes with fewer tests, and only a count from outside
// the file can tell. The lines are written synchronously, each as it comes: --test-force-exit also ends the
// runner itself as soon as the last file is done, before a reporter's final output would be flushed.
import { appendFileSync } from 'node:fs';
import { relative } from 'node:path';

export default async function* testCounts(source) {
  const out = process.env.SMQ_TEST_COUNTS_FILE;
  for await (const event of source) {
    if (out === undefined || (event.type !== 'test:pass' && event.type !== 'test:fail')) continue;
    const file = event.data.file;
    if (typeof file === 'string') appendFileSync(out, `${relative(process.cwd(), file)}\n`);
  }
}
