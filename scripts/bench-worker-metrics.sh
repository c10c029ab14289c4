#!/usr/bin/env bash
# What the worker's metrics sampling costs with N containers (default 100), in two parts.
#
# Part 1, the engine's side of each way of reading Docker stats, N plain `sleep` containers:
#   idle      nothing reads stats (the baseline)
#   oneshot   every INTERVAL, one `stream=false&one-shot=true` call per container, CONCURRENCY
#             at a time (the engine answers on its next 1-second collection tick)
#   twoshot   every INTERVAL, one `stream=false&one-shot=false` call per container, CONCURRENCY
#             at a time (the engine waits for a second tick before answering)
#   stream    one long-lived `stream=true` call per container
# For each: CPU of dockerd, and of containerd plus its shims (dockerd asks containerd for the
# cgroup figures), over WINDOW seconds; and for the per-interval modes how long a round of N
# calls took (the age of a round's oldest sample when the round ends).
#
# Part 2, the real worker: `orkestrator server` + `orkestrator worker --metrics-interval INTERVAL`
# running a job of N copies of `sleep`; CPU of the worker process over ROUNDS intervals with
# metrics on, then (same containers, adopted) with metrics off (`--metrics-interval 0s`), and
# dockerd's CPU in both. The manager keeps its state and tokens in a temporary data directory;
# the worker joins with its join token (DATA_DIR/join.token) and keeps its credential in a
# temporary directory of its own; the script reads the manager's and the worker's figures with
# the operator token (DATA_DIR/operator.token), and `orkestrator run` finds that token by itself.
#
# CPU is read from /proc/<pid>/stat (utime + stime) before and after each window; figures are
# percent of one core. Each window is measured REPEAT times; the medians are printed.
#
# Environment: N (100), INTERVAL (5), WINDOW (30, seconds, part 1), ROUNDS (6, part 2),
# REPEAT (3), CONCURRENCY (calls in flight, part 1; 8), MODES (part 1; "idle oneshot twoshot
# stream"), BIN (the orkestrator binary; default target/release/orkestrator), PART (1, 2 or
# both when unset).
set -euo pipefail

N="${N:-100}"
INTERVAL="${INTERVAL:-5}"
WINDOW="${WINDOW:-30}"
ROUNDS="${ROUNDS:-6}"
REPEAT="${REPEAT:-3}"
CONCURRENCY="${CONCURRENCY:-8}"
MODES="${MODES:-idle oneshot twoshot stream}"
BIN="${BIN:-target/release/orkestrator}"
PART="${PART:-}"
IMAGE="orkestrator/busybox:latest"
LABEL="orkestrator.bench=worker-metrics"
SOCK=/var/run/docker.sock
API=v1.41
HZ=$(getconf CLK_TCK)

log() { printf 'bench-worker-metrics: %s\n' "$*" >&2; }

ticks() { # utime+stime of every pid given (clock ticks)
    local t=0 p
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] || continue
        # Fields after the command (which may hold spaces): utime is 14th, stime 15th overall.
        t=$((t + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    done
    echo "$t"
}
engine_pids() { pgrep -x containerd; pgrep -f containerd-shim; }
pct() { # ticks seconds -> percent of one core
    awk -v t="$1" -v s="$2" -v hz="$HZ" 'BEGIN { printf "%.2f", 100 * t / hz / s }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

cleanup() {
    jobs -p | xargs -r kill 2>/dev/null || true
    docker ps -aq --filter "label=$LABEL" | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker ps -aq --filter "label=orkestrator.job=bench-wm" | xargs -r docker rm -f >/dev/null 2>&1 || true
}
trap cleanup EXIT

scripts/build-test-image.sh >/dev/null
DOCKERD=$(pgrep -x dockerd | head -1)

# One round: a stats call per container, CONCURRENCY at a time; prints how long the round took (ms).
round() {
    local query="$1" start end
    start=$(date +%s%N)
    printf '%s\n' "${IDS[@]}" |
        xargs -P "$CONCURRENCY" -I{} curl -s -o /dev/null --unix-socket "$SOCK" \
            "http://localhost/$API/containers/{}/stats?$query"
    end=$(date +%s%N)
    echo $(((end - start) / 1000000))
}

# Measures WINDOW seconds of mode $1; prints "dockerd% engine% round_ms".
measure() {
    local mode="$1" d0 e0 d1 e1 t0 t1 rounds=() pids=() secs
    d0=$(ticks "$DOCKERD"); e0=$(ticks $(engine_pids)); t0=$(date +%s%N)
    case "$mode" in
        idle) sleep "$WINDOW" ;;
        oneshot | twoshot)
            local q="stream=false&one-shot=true"
            [ "$mode" = twoshot ] && q="stream=false&one-shot=false"
            local until=$(($(date +%s) + WINDOW))
            while [ "$(date +%s)" -lt "$until" ]; do
                local r0 r
                r0=$(date +%s%N)
                r=$(round "$q")
                rounds+=("$r")
                local left=$((INTERVAL * 1000 - ($(date +%s%N) - r0) / 1000000))
                [ "$left" -gt 0 ] && sleep "$(awk -v l="$left" 'BEGIN { print l / 1000 }')"
            done
            ;;
        stream)
            for id in "${IDS[@]}"; do
                curl -s -o /dev/null --unix-socket "$SOCK" \
                    "http://localhost/$API/containers/$id/stats?stream=true" &
                pids+=($!)
            done
            sleep "$WINDOW"
            kill "${pids[@]}" 2>/dev/null || true
            wait "${pids[@]}" 2>/dev/null || true
            ;;
    esac
    t1=$(date +%s%N); d1=$(ticks "$DOCKERD"); e1=$(ticks $(engine_pids))
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a) / 1e9 }')
    local rm="-"
    [ "${#rounds[@]}" -gt 0 ] && rm=$(printf '%s\n' "${rounds[@]}" | median)
    echo "$(pct $((d1 - d0)) "$secs") $(pct $((e1 - e0)) "$secs") $rm"
}

part1() {
    log "part 1: starting $N containers"
    IDS=()
    for i in $(seq 1 "$N"); do
        IDS+=("$(docker run -d --label "$LABEL" --memory 16m "$IMAGE" sleep 3600)")
    done
    sleep 5
    printf '\n| mode (%s in flight) | dockerd %% of a core | containerd + shims %% | round of %s calls, ms (median) |\n' "$CONCURRENCY" "$N"
    printf '|---|---|---|---|\n'
    for mode in $MODES; do
        local ds=() es=() rs=()
        for _ in $(seq 1 "$REPEAT"); do
            read -r d e r < <(measure "$mode")
            log "$mode: dockerd $d%, engine $e%, round $r ms"
            ds+=("$d"); es+=("$e"); rs+=("$r")
        done
        local rmed="-"
        [ "${rs[0]}" != "-" ] && rmed=$(printf '%s\n' "${rs[@]}" | median)
        printf '| %s | %s | %s | %s |\n' "$mode" \
            "$(printf '%s\n' "${ds[@]}" | median)" "$(printf '%s\n' "${es[@]}" | median)" "$rmed"
    done
    docker ps -aq --filter "label=$LABEL" | xargs -r docker rm -f >/dev/null
}

# The worker's CPU over ROUNDS intervals; prints "worker% dockerd%".
worker_window() {
    local pid="$1" secs=$((ROUNDS * INTERVAL)) w0 d0 w1 d1
    w0=$(ticks "$pid"); d0=$(ticks "$DOCKERD")
    sleep "$secs"
    w1=$(ticks "$pid"); d1=$(ticks "$DOCKERD")
    echo "$(pct $((w1 - w0)) "$secs") $(pct $((d1 - d0)) "$secs")"
}

part2() {
    [ -x "$BIN" ] || { log "no binary $BIN (cargo build --release -p orkestrator-bin)"; exit 1; }
    local dir port wport
    dir=$(mktemp -d)
    port=$((20000 + RANDOM % 20000)); wport=$((port + 1))
    log "part 2: manager on $port, worker endpoint on $wport, $N tasks"
    "$BIN" server --port "$port" --data-dir "$dir/manager" >"$dir/server.log" 2>&1 &
    local server=$!
    until curl -sf "http://127.0.0.1:$port/v1/health" >/dev/null; do sleep 0.2; done
    local auth
    auth="authorization: Bearer $(head -n 1 "$dir/manager/operator.token")"
    cat >"$dir/job.yaml" <<EOF
name: bench-wm
count: $N
tasks:
  - name: main
    image: $IMAGE
    command: ["sleep", "3600"]
    resources: { cpu: 10m, memory: 8Mi }
    restart: { policy: never }
EOF
    start_worker() {
        "$BIN" worker --manager "http://127.0.0.1:$port" --port "$wport" --name bench-wm-worker \
            --join-token-file "$dir/manager/join.token" --data-dir "$dir/worker" \
            --cpu 64 --memory 64Gi --metrics-interval "$1" >>"$dir/worker.log" 2>&1 &
        WORKER=$!
        until curl -sf "http://127.0.0.1:$wport/health" >/dev/null; do sleep 0.2; done
    }
    start_worker "${INTERVAL}s"
    ORKESTRATOR_ADDR="http://127.0.0.1:$port" "$BIN" run "$dir/job.yaml" >/dev/null
    until [ "$(docker ps -q --filter label=orkestrator.job=bench-wm | wc -l)" -ge "$N" ]; do sleep 1; done
    # Let starts settle, and the first samples (no CPU delta yet) pass.
    sleep $((3 * INTERVAL))
    local samples
    samples=$(curl -s -H "$auth" "http://127.0.0.1:$port/v1/jobs/bench-wm/metrics?last=1" | jq '.tasks | length')
    log "the manager holds samples of $samples tasks"
    local on_w=() on_d=() off_w=() off_d=()
    for _ in $(seq 1 "$REPEAT"); do
        read -r w d < <(worker_window "$WORKER")
        log "metrics on: worker $w%, dockerd $d%"
        on_w+=("$w"); on_d+=("$d")
    done
    local stats_count
    stats_count=$(curl -s -H "$auth" "http://127.0.0.1:$wport/metrics" |
        awk '/^ork_engine_call_duration_seconds_count\{call="stats"\}/ { print $2 }')
    local stats_sum
    stats_sum=$(curl -s -H "$auth" "http://127.0.0.1:$wport/metrics" |
        awk '/^ork_engine_call_duration_seconds_sum\{call="stats"\}/ { print $2 }')
    kill "$WORKER"; wait "$WORKER" 2>/dev/null || true
    start_worker 0s
    sleep $((2 * INTERVAL))
    for _ in $(seq 1 "$REPEAT"); do
        read -r w d < <(worker_window "$WORKER")
        log "metrics off: worker $w%, dockerd $d%"
        off_w+=("$w"); off_d+=("$d")
    done
    kill "$WORKER"; wait "$WORKER" 2>/dev/null || true
    kill "$server"; wait "$server" 2>/dev/null || true
    printf '\n| worker (%s tasks, interval %ss) | worker %% of a core | dockerd %% of a core |\n' "$N" "$INTERVAL"
    printf '|---|---|---|\n'
    printf '| metrics on | %s | %s |\n' "$(printf '%s\n' "${on_w[@]}" | median)" "$(printf '%s\n' "${on_d[@]}" | median)"
    printf '| metrics off | %s | %s |\n' "$(printf '%s\n' "${off_w[@]}" | median)" "$(printf '%s\n' "${off_d[@]}" | median)"
    printf '\nstats calls: %s, mean %s ms each; samples held by the manager: %s tasks\n' \
        "$stats_count" "$(awk -v s="$stats_sum" -v c="$stats_count" 'BEGIN { printf "%.2f", 1000 * s / c }')" "$samples"
    rm -rf "$dir"
}

case "$PART" in
    1) part1 ;;
    2) part2 ;;
    *) part1; part2 ;;
esac
