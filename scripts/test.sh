#!/usr/bin/env bash
# Runs `make unit` and `make e2e` at once, as `make test` does: the end-to-end tests mostly wait for
# apiservers, OpenStack and timers (measured: 182 s of CPU in 417 s), the unit tests mostly compute
# (144 s of CPU in 133 s), so on two cores together they take about the time of the e2e tests alone.
# The fuzzers run with one worker each, to leave the e2e tests their share. Each unit line is
# prefixed [unit] (the e2e halves prefix theirs); the exit status is non-zero when either fails.
set -uo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
start=$(date +%s)
( $MAKE --no-print-directory unit FUZZ_PARALLEL=1 2>&1 | sed -u 's/^/[unit] /' ) &
unit_pid=$!
$MAKE --no-print-directory e2e E2E_FLAGS="${E2E_FLAGS:-}"
e2e=$?
wait $unit_pid
unit=$?
echo "[test] unit exit $unit, e2e exit $e2e, after $(( $(date +%s) - start )) s"
[ $unit -eq 0 ] && [ $e2e -eq 0 ]
