#!/usr/bin/env bash
# What `npm test` runs: provision the third-party clients the black-box tests drive, build, then run
# the unit tests (dist/broker and dist/operator, next to the modules) and the black-box suites (dist/test) with node's
# test runner: every *.test.js file under them.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

echo "==> provisioning test dependencies"
bash scripts/provision.sh

echo "==> building (tsc -p tsconfig.json)"
npm run build

# A broker that never exits (a drain that hangs, say) would otherwise hold the run until CI's own limit:
# every test and hook gets at most SMQ_TEST_TIMEOUT_MS, and the whole run at most SMQ_RUN_TIMEOUT_S. Node 20
# applies the limit to each test file as a whole too, and the soak (test/99-soak) runs for two minutes.
test_timeout_ms="${SMQ_TEST_TIMEOUT_MS:-300000}"
run_timeout_s="${SMQ_RUN_TIMEOUT_S:-2400}"
# The files are listed rather than the directories given: node 20 also runs every .js file under a
# directory named "test" (dist/test/helpers/*.js) as a test file.
mapfile -t files < <(find dist/broker dist/operator dist/test -name '*.test.js' 2>/dev/null | sort)
if [ "${#files[@]}" -eq 0 ]; then
  echo "==> no *.test.js files under dist/broker or dist/test" >&2
  exit 1
fi
# --test-force-exit: a test file ends once its tests and hooks have, even if a client handle of the test itself
# lingers (98-faults-etcd-partition once passed all its tests and then sat until the file timeout).
# The same visible reporter node picks by default (spec on a terminal, TAP otherwise), and beside it one that
# counts the tests of each file (scripts/test-counts.mjs): --test-force-exit ends a file once the tests it has
# registered so far are done, so tests registered later (after a top-level await, in a timer) are never run nor
# reported, and the file passes with fewer. The counts are compared with test/test-counts.json below.
# scripts/sync-stdout.mjs (preloaded into the runner and each file) makes their stdout blocking: a file's report
# still queued in a pipe when --test-force-exit ends it would otherwise be lost on a loaded machine.
if [ -t 1 ]; then reporter=spec; else reporter=tap; fi
counts="$(mktemp)"
trap 'rm -f "$counts"' EXIT
echo "==> running ${#files[@]} test files: node --import ./scripts/sync-stdout.mjs --test --test-concurrency=2 --test-force-exit --test-timeout=${test_timeout_ms} (dist/broker, dist/operator, dist/test)"
status=0
SMQ_TEST_COUNTS_FILE="$counts" timeout --kill-after=30 "${run_timeout_s}" \
  node --import ./scripts/sync-stdout.mjs --test --test-concurrency=2 --test-force-exit --test-timeout="${test_timeout_ms}" \
    --test-reporter="$reporter" --test-reporter-destination=stdout \
    --test-reporter=./scripts/test-counts.mjs --test-reporter-destination=/dev/null "${files[@]}" || status=$?
if [ "$status" -ne 124 ] && [ "$status" -ne 137 ]; then
  if [ "${SMQ_TEST_COUNTS:-check}" = update ]; then
    node scripts/check-test-counts.mjs "$counts" test/test-counts.json --update
  elif ! node scripts/check-test-counts.mjs "$counts" test/test-counts.json; then
    [ "$status" -ne 0 ] || status=1
  fi
fi
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "==> test run stopped after ${run_timeout_s} s (SMQ_RUN_TIMEOUT_S): something hung" >&2
elif [ "$status" -ne 0 ]; then
  echo "==> tests failed (exit ${status})" >&2
else
  echo "==> all tests passed"
fi
exit "$status"
