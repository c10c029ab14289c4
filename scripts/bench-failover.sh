#!/usr/bin/env bash
# Measures worker failover: runs the chaos test `kill_9_worker_with_20_tasks_recovery_time` N
# times (default 5). Each run starts a manager (heartbeat grace 3s) and worker w1, runs 20
# single-task jobs on w1, starts w2, SIGKILLs w1 and times how long until all 20 jobs are Running
# on w2 (RECOVERY_MS), and how long until the manager first moved a job off w1 (DETECT_MS: the
# failure detection part). Prints every run's figures and the medians, in milliseconds.
#
# Usage: scripts/bench-failover.sh [N]
# Needs a Docker engine (the test builds its image if missing) and a Rust toolchain.
set -euo pipefail

RUNS="${1:-5}"
case "$RUNS" in
    '' | *[!0-9]* | 0) echo "usage: $0 [RUNS>0]" >&2; exit 2 ;;
esac
TEST="kill_9_worker_with_20_tasks_recovery_time"
cd "$(dirname "$0")/.."

log() { printf 'bench-failover: %s\n' "$*" >&2; }

# Build once, outside the timed runs. Docker is required: a skipped test would measure nothing.
export ORKESTRATOR_REQUIRE_DOCKER=1
cargo test -p orkestrator-bin --test chaos --no-run --quiet

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
figures=()
detects=()
for i in $(seq 1 "$RUNS"); do
    if ! cargo test -p orkestrator-bin --test chaos --quiet -- --exact "$TEST" --nocapture \
        >"$out" 2>&1; then
        cat "$out" >&2
        log "run $i failed"
        exit 1
    fi
    ms="$(sed -n 's/^RECOVERY_MS=\([0-9][0-9]*\)$/\1/p' "$out" | tail -n 1)"
    if [ -z "$ms" ]; then
        cat "$out" >&2
        log "run $i printed no RECOVERY_MS line"
        exit 1
    fi
    detect="$(sed -n 's/^DETECT_MS=\([0-9][0-9]*\)$/\1/p' "$out" | tail -n 1)"
    figures+=("$ms")
    detects+=("${detect:-0}")
    echo "run $i: RECOVERY_MS=$ms DETECT_MS=${detect:-?}"
done

# summary NAME VALUES...: min, median and max of the values.
summary() {
    local name="$1" sorted n median
    shift
    mapfile -t sorted < <(printf '%s\n' "$@" | sort -n)
    n=${#sorted[@]}
    if (( n % 2 == 1 )); then
        median=${sorted[n / 2]}
    else
        median=$(( (sorted[n / 2 - 1] + sorted[n / 2]) / 2 ))
    fi
    echo "$name over $n runs: min ${sorted[0]} ms, median $median ms, max ${sorted[n - 1]} ms"
}
summary RECOVERY_MS "${figures[@]}"
summary DETECT_MS "${detects[@]}"
