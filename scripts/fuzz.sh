#!/usr/bin/env bash
# Coverage-guided fuzzing of what clients send the broker (issue 10), by hand and for as long as you like:
#
#   bash scripts/fuzz.sh [target|all] [seconds]     fuzz each target for `seconds` (default: all, 600)
#   bash scripts/fuzz.sh merge [target|all]         add the work corpus's new coverage to the committed one
#   bash scripts/fuzz.sh cmin [target|all]          rebuild the committed corpus as the fewest inputs that
#                                                   keep the coverage of it and the work corpus
#   bash scripts/fuzz.sh replay [target|all]        run the committed corpus through the oracle, no fuzzer
#   bash scripts/fuzz.sh minimize <target> <file>   shrink an input that breaks a rule (writes <file>.min)
#
# Targets: connect, publish, subscribe, properties, agent, websocket (test/fuzz/targets.ts says what each one
# feeds the broker). The fuzzer is Jazzer.js: libFuzzer in-process, guided by coverage of dist/broker and of
# the mqtt-packet and ws packages, started by test/fuzz/jazzer/run.ts; test/fuzz/jazzer/build.sh makes its
# prebuilt addon load on Debian 12. Runs are niced. Each writes what it learns into a work corpus outside the
# repository (SMQ_FUZZ_WORK, default ~/.cache/smq/fuzz/<target>), and an input that breaks a rule into
# ~/.cache/smq/fuzz/findings/<target>/ (libFuzzer's crash-<sha1>, printed with the rule it broke). Then:
# minimize it, fix the broker, and commit the input as test/fuzz/corpus/<target>/regress-<what> so CI
# replays it (test/97-fuzz).
#
# After a long run, `cmin` (or `merge`, which only adds) brings what it learned into test/fuzz/corpus/<target>/;
# review and commit that directory. Both keep the regress-* inputs. The runs check the heap too (node --expose-gc: test/fuzz/harness.ts).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(connect publish subscribe properties agent websocket)
work="${SMQ_FUZZ_WORK:-$HOME/.cache/smq/fuzz}"

log() { printf '[fuzz] %s\n' "$*"; }
die() { printf '[fuzz] ERROR: %s\n' "$*" >&2; exit 1; }

pick() {
  local t="${1:-all}"
  if [ "$t" = all ]; then
    printf '%s\n' "${TARGETS[@]}"
    return
  fi
  local known
  for known in "${TARGETS[@]}"; do
    if [ "$known" = "$t" ]; then
      echo "$t"
      return
    fi
  done
  die "no target '$t'; there are: ${TARGETS[*]}"
}

build() {
  # tsc still writes dist/ when it reports errors, and other work in progress may have some.
  npx tsc -p tsconfig.json >/dev/null || log "tsc reported errors (dist/ was written anyway)"
}

mode="${1:-all}"
case "$mode" in
  replay)
    build
    for t in $(pick "${2:-all}"); do node dist/test/fuzz/replay.js "$t"; done
    ;;
  minimize)
    [ $# -eq 3 ] || die "usage: bash scripts/fuzz.sh minimize <target> <file>"
    build
    node dist/test/fuzz/minimize.js "$(pick "$2")" "$3"
    ;;
  merge | cmin)
    build
    SMQ_JAZZER_ADDON="$(bash test/fuzz/jazzer/build.sh)"
    export SMQ_JAZZER_ADDON
    for t in $(pick "${2:-all}"); do
      mkdir -p "$work/$t"
      nice -n 10 node dist/test/fuzz/jazzer/run.js "$mode" "$t" "$work/$t"
    done
    ;;
  *)
    seconds="${2:-600}"
    [[ "$seconds" =~ ^[0-9]+$ ]] || die "seconds must be a number, not '$seconds'"
    build
    SMQ_JAZZER_ADDON="$(bash test/fuzz/jazzer/build.sh)"
    export SMQ_JAZZER_ADDON
    status=0
    for t in $(pick "$mode"); do
      log "$t: fuzzing for ${seconds}s (work corpus $work/$t, findings in $work/findings/$t/)"
      nice -n 10 node dist/test/fuzz/jazzer/run.js fuzz "$t" "$seconds" "$work/$t" || {
        status=$?
        log "$t: finding (exit $status), see above"
      }
    done
    exit "$status"
    ;;
esac
