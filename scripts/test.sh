#!/usr/bin/env bash
# Runs `make unit`, then `make chaos-short`, beside `make e2e`, as `make test` does: the end-to-end
# tests mostly wait for apiservers, OpenStack and timers (measured: 182 s of CPU in 417 s), so on two
# cores the unit tests (144 s of CPU in 133 s) and the chaos run fit beside them, and the whole takes
# about the time of the e2e tests alone. The fuzzers run with one worker each, to leave the e2e tests
# their share. Each line is prefixed with who wrote it ([unit], [chaos]; the e2e halves prefix
# theirs); the exit status is non-zero when any fails.
set -uo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
start=$(date +%s)
(
  $MAKE --no-print-directory unit FUZZ_PARALLEL=1 2>&1 | sed -u 's/^/[unit] /'
  unit=$?
  echo "[unit] exit $unit after $(( $(date +%s) - start )) s"
  $MAKE --no-print-directory chaos-short 2>&1 | sed -u 's/^/[chaos] /'
  chaos=$?
  echo "[chaos] exit $chaos after $(( $(date +%s) - start )) s"
  [ $unit -eq 0 ] && [ $chaos -eq 0 ]
) &
side=$!
$MAKE --no-print-directory e2e E2E_FLAGS="${E2E_FLAGS:-}"
e2e=$?
wait $side
side=$?
echo "[test] unit and chaos exit $side, e2e exit $e2e, after $(( $(date +%s) - start )) s"
[ $side -eq 0 ] && [ $e2e -eq 0 ]
