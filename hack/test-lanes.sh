#!/usr/bin/env bash
# Run make targets in lanes side by side: the targets of one lane one after another, the lanes at
# the same time. `make test` gives it a CPU-bound lane (lint, unit, chart, runtime, dashboards),
# a lane that mostly waits on control planes (integration, chaos) and one for the kind tier, so on
# two cores the waits of the others overlap the work of the first instead of adding to it. The
# kind tier's CPU-seconds below are its pytest's only: the cluster's pods run under dockerd.
#
# Each target's output goes to its own log and is printed whole when the target ends (so the
# lanes never interleave); a progress line says when each starts and ends. A failed target does
# not stop its lane or the other one: every tier runs, the summary lists each target's result,
# wall time and CPU-seconds (the target and the children it waited for), and the exit status is
# 1 when any failed. Ctrl-C or SIGTERM stops every lane.
# Usage: hack/test-lanes.sh "TARGET TARGET..." "TARGET..."   (logs: $TEST_LOG_DIR)
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT" || exit 1
[ $# -gt 0 ] || die "usage: $0 \"TARGET...\" [\"TARGET...\"...] (each argument is one lane)"
LOG_ROOT="$CACHE_DIR/test-logs"
TEST_LOG_DIR="${TEST_LOG_DIR:-$LOG_ROOT/$(date -u +%Y%m%dT%H%M%SZ)-$$}"
mkdir -p "$TEST_LOG_DIR"
PRINT_LOCK="$TEST_LOG_DIR/.print.lock"
TIME_BIN=/usr/bin/time
[ -x "$TIME_BIN" ] || TIME_BIN=""   # without GNU time: wall time only, said in the summary

say() { printf '\033[1m[%s test-lanes]\033[0m %s\n' "$(date +%H:%M:%S)" "$*"; }

# run_target LANE TARGET: make TARGET into its log; record "TARGET rc wall cpu" in LANE's results.
run_target() {
  local lane=$1 target=$2 log="$TEST_LOG_DIR/$2.log" times="$TEST_LOG_DIR/$2.time" rc=0 start wall cpu
  start=$(date +%s)
  say "lane $lane: $target started (log: $log)"
  if [ -n "$TIME_BIN" ]; then
    "$TIME_BIN" -o "$times" -f '%U %S' make --no-print-directory "$target" >"$log" 2>&1 </dev/null || rc=$?
    cpu=$(awk 'END { printf "%.0f", $1 + $2 }' "$times" 2>/dev/null || echo "?")
  else
    make --no-print-directory "$target" >"$log" 2>&1 </dev/null || rc=$?
    cpu="?"
  fi
  wall=$(( $(date +%s) - start ))
  {
    flock 8
    printf '\n\033[1m===== %s (lane %s): %s in %dm%02ds, %s CPU-s =====\033[0m\n' "$target" "$lane" \
      "$([ $rc = 0 ] && echo passed || echo "FAILED (exit $rc)")" $((wall / 60)) $((wall % 60)) "$cpu"
    cat "$log"
    printf '\033[1m===== end of %s =====\033[0m\n\n' "$target"
  } 8>"$PRINT_LOCK"
  echo "$target $rc $wall $cpu $lane" >>"$TEST_LOG_DIR/results"
  return "$rc"
}

run_lane() {  # run_lane N "TARGET...": every target, also after one failed
  local n=$1 target
  for target in $2; do run_target "$n" "$target" || true; done
}

# shellcheck disable=SC2317  # kill_tree and stop_lanes run from the trap
# kill_tree PID: PID and all its descendants (the lanes run make, pytest, control planes...).
kill_tree() {
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}

pids=()
# shellcheck disable=SC2317
stop_lanes() {
  say "interrupted: stopping the lanes"
  for pid in "${pids[@]}"; do kill_tree "$pid"; done
  exit 130
}
trap stop_lanes INT TERM

start=$(date +%s)
n=0
for lane in "$@"; do
  n=$((n + 1))
  say "lane $n: $lane"
  run_lane "$n" "$lane" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
trap - INT TERM

total=$(( $(date +%s) - start ))
failed=0
say "summary (logs in $TEST_LOG_DIR)"
printf '  %-20s %-5s %-8s %9s %7s\n' target lane result wall CPU-s
while read -r target rc wall cpu lane; do
  [ "$rc" = 0 ] || failed=1
  printf '  %-20s %-5s %-8s %6dm%02ds %7s\n' "$target" "$lane" "$([ "$rc" = 0 ] && echo ok || echo "FAILED")" \
    $((wall / 60)) $((wall % 60)) "$cpu"
done <"$TEST_LOG_DIR/results"
expected=$(printf '%s\n' "$@" | wc -w)
ran=$(wc -l <"$TEST_LOG_DIR/results")
[ "$ran" = "$expected" ] || { failed=1; say "only $ran of $expected targets reported a result"; }
say "all lanes done in $((total / 60))m$((total % 60))s: $([ $failed = 0 ] && echo 'every target passed' || echo 'FAILED')"
[ -n "$TIME_BIN" ] || say "CPU-seconds not measured: /usr/bin/time (GNU time) is not installed"
# Keep the logs of the last ten runs (in the default place only).
[ "$(dirname "$TEST_LOG_DIR")" != "$LOG_ROOT" ] || find "$LOG_ROOT" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' | sort -rn \
  | tail -n +11 | cut -d' ' -f2- | xargs -r rm -rf
exit $failed
