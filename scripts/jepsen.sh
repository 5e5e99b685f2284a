#!/usr/bin/env bash
# Long checker runs by hand (issue 17): many seeds, longer runs, a three-member etcd by default. Each seed runs
# dist/test/jepsen/cli.js with SEED=<seed>; its schedule, history, verdict and node logs go to
# <dir>/seed-<seed>/ and its output to <dir>/seed-<seed>.out; the RELIABILITY lines of every run are printed.
#
#   npm run jepsen                      5 random seeds (JEPSEN_RUNS), 75 s each, etcd of 3 members
#   npm run jepsen -- 17 42             those seeds
#   JEPSEN_ETCD=1 JEPSEN_FAULTS=kill,pause,drain JEPSEN_DURATION_S=120 JEPSEN_NODES=5 npm run jepsen -- 1 2 3
#   JEPSEN_SCHEDULE=<dir>/seed-17/schedule.json npm run jepsen      replay a saved schedule as it is
#
# Other variables: test/jepsen/env.ts (VARIABLES). JEPSEN_DIR picks the output directory. Exits 1 if any run
# broke an invariant.
set -uo pipefail
cd "$(dirname "$0")/.."
export JEPSEN_DURATION_S="${JEPSEN_DURATION_S:-75}"
export JEPSEN_ETCD="${JEPSEN_ETCD:-3}"
dir="${JEPSEN_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/smq-jepsen-XXXXXX")}"
mkdir -p "$dir"

seeds=("$@")
if [ -n "${JEPSEN_SCHEDULE:-}" ]; then
  seeds=(replay)
elif [ "${#seeds[@]}" -eq 0 ]; then
  for _ in $(seq 1 "${JEPSEN_RUNS:-5}"); do seeds+=("$(( (RANDOM << 15 | RANDOM) % 1000000 + 1 ))"); done
fi

echo "==> ${#seeds[@]} checker run(s): seeds ${seeds[*]}; ${JEPSEN_DURATION_S} s each, etcd ${JEPSEN_ETCD} member(s); files in ${dir}"
failed=()
for seed in "${seeds[@]}"; do
  out="${dir}/seed-${seed}"
  echo "==> seed ${seed}"
  if [ "$seed" = replay ]; then unset SEED; else export SEED="$seed"; fi
  # --test-force-exit: a client handle left by a run must not hold the next one.
  JEPSEN_OUT="$out" node --test --test-force-exit --test-timeout=0 --test-reporter=spec \
    dist/test/jepsen/cli.js >"${out}.out" 2>&1 || failed+=("$seed")
  grep -E '^\s*(RELIABILITY|# RELIABILITY)' "${out}.out" | sed 's/^[[:space:]]*//'
  grep -E '^\s*(delivered|shared-delivered|qos2-once|order|sessions-kept|one-connection|retained|ready|note):' "${out}.out" | sed 's/^[[:space:]]*/    /' | sort -u | head -20
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "==> ${#failed[@]} of ${#seeds[@]} run(s) broke an invariant: seeds ${failed[*]} (outputs in ${dir})" >&2
  exit 1
fi
echo "==> every run held every invariant (outputs in ${dir})"
