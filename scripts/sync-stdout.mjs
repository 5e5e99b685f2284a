// Preloaded into the test runner and every test file (node --import): makes stdout and stderr blocking when they
// are pipes. A test file reports its results to the runner over its stdout; with --test-force-exit it calls
// process.exit as soon as its tests are done, and on a loaded machine the last writes to a pipe were still
// queued then and were lost: the file's last tests went missing from the report (CI saw validate.test.js report
// 105 of its 121 tests, and the per-file count guard failed the run).
for (const stream of [process.stdout, process.stderr]) {
  const handle = /** @type {{ setBlocking?: (on: boolean) => void } | undefined} */ (stream._handle);
  if (typeof handle?.setBlocking === 'function') handle.setBlocking(true);
}
