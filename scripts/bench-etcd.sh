#!/usr/bin/env bash
# The etcd store against redb, and the time a failover takes (issue 12). A manual tool, not
# called by CI. Loopback only; every process and temporary directory it starts goes at exit.
#
# 1. Submissions. One local etcd member (its own temporary data directory, free loopback ports,
#    `--max-txn-ops 4096 --max-request-bytes 4194304`, etcd's default fsync and timing). For
#    REPEATS rounds, for each level alternating which store goes first, one release manager at a
#    time, a fresh one (empty store) for each level:
#      redb: `orkestrator server --port P --data-dir TMP`
#      etcd: `orkestrator server --port P --data-dir TMP --store etcd://127.0.0.1:C
#             --etcd-prefix /bench-N/` (a fresh prefix each time, so each starts empty)
#    and against it, at its concurrency C of LEVELS (1 16 64):
#      wrk -t min(C,2) -cC -dDURATION --latency -s scripts/load/submit.lua -H "authorization: ..."
#    (the project's script: one new one-task job per request, named PREFIX-THREAD-N, as
#    scripts/load-wrk.sh runs it). Each level gets its own PREFIX, so that every request is a new
#    job, a real durable commit, not an `unchanged` answer. After each level the manager's task count (one per job) must have grown by
#    at least the submissions acknowledged (a check that none was a no-op); /v1/health's store figures
#    (commits, changes, commit p50) are read then too. Answers other than 2xx are counted as
#    refused (with their reasons), and a manager that stops answering is reported as wedged.
#    Printed: acknowledged submissions/s and p99 of every run, the medians over the rounds, and
#    etcd / redb.
# 2. Failover. Three etcd-backed managers (own data directories, own ports) on one prefix of the
#    same etcd member, with `--leader-lease L` for each L of LEASES (3s, the default, and 1s). In
#    each of FAILOVER_RUNS runs: wait until all three are listed in /v1/health and a submission
#    through the leader is acknowledged; `kill -9` the leader; then submit (curl, a new job each
#    time, 1 s timeout) to the two survivors in turn, 10 ms apart, until one answers 2xx. The
#    figure is the time from the kill to that answer (the clock is read just before `kill`). The
#    killed manager is then started again on its data directory (it joins as a follower), so
#    each run kills the leader of three. Printed: each run, and the median per lease.
# 3. A summary table.
#
# Usage: scripts/bench-etcd.sh [all|submit|failover]   (default all)
# Environment: BIN (the orkestrator binary; default: build target/release/orkestrator),
# ETCD (etcd), LOAD_DIR (scripts/load), LEVELS ("1 16 64"), DURATION (10s), REPEATS (3),
# LEASES ("3s 1s"), FAILOVER_RUNS (7), ETCD_ARGS (extra etcd flags), KEEP=1 keeps the
# temporary directory (logs, wrk output).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WHAT="${1:-all}"
case "$WHAT" in
    submit | failover | all) ;;
    *) echo "usage: $0 [all|submit|failover]" >&2; exit 2 ;;
esac
LOAD_DIR="${LOAD_DIR:-scripts/load}"
LEVELS="${LEVELS:-1 16 64}"
DURATION="${DURATION:-10s}"
REPEATS="${REPEATS:-3}"
LEASES="${LEASES:-3s 1s}"
FAILOVER_RUNS="${FAILOVER_RUNS:-7}"
ETCD="${ETCD:-etcd}"
read -r -a ETCD_EXTRA <<<"${ETCD_ARGS:-}"

log() { printf 'bench-etcd: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ -r "$LOAD_DIR/submit.lua" ] || die "no $LOAD_DIR/submit.lua (the wrk load scripts; set LOAD_DIR)"
for tool in "$ETCD" wrk curl jq; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool is not installed (apt-get install etcd-server wrk curl jq)"
done
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet -p orkestrator-bin --bin orkestrator
    BIN=target/release/orkestrator
fi
[ -x "$BIN" ] || die "no binary $BIN"
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

work="$(mktemp -d "${TMPDIR:-/tmp}/orkestrator-bench-etcd-XXXXXX")"
# The managers' pointers to their token files (creds::publish) go here, not into the user's own
# runtime directory.
mkdir -m 700 "$work/run"
export XDG_RUNTIME_DIR="$work/run"
export ORKESTRATOR_LOG="${ORKESTRATOR_LOG:-warn}"
etcd_pid=""
declare -A pids=() # name -> pid of every manager running

stop_pid() {
    local pid="$1"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local name
    for name in "${!pids[@]}"; do
        stop_pid "${pids[$name]}"
    done
    [ -z "$etcd_pid" ] || stop_pid "$etcd_pid"
    if [ "${KEEP:-}" = 1 ]; then
        log "kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port nothing listens on, below the kernel's ephemeral range, not handed out before.
declare -A taken=()
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 12000))
        [ -z "${taken[$p]:-}" ] || continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            taken[$p]=1
            echo "$p"
            return
        fi
    done
    die "found no free port"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
now_ns() { date +%s%N; }

# ---------------------------------------------------------------------------------------------
# etcd: one member on loopback.

start_etcd() {
    local client peer
    client="$(free_port)"
    peer="$(free_port)"
    ETCD_URL="http://127.0.0.1:$client"
    "$ETCD" --name bench --data-dir "$work/etcd" \
        --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
        --listen-peer-urls "http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "bench=http://127.0.0.1:$peer" --initial-cluster-state new \
        --max-txn-ops 4096 --max-request-bytes 4194304 "${ETCD_EXTRA[@]}" \
        >"$work/etcd.log" 2>&1 &
    etcd_pid=$!
    for _ in $(seq 300); do
        curl -sf "$ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"' && break
        kill -0 "$etcd_pid" 2>/dev/null || { tail -n 20 "$work/etcd.log" >&2; die "etcd exited"; }
        sleep 0.1
    done
    curl -sf "$ETCD_URL/health" | grep -q '"health":"true"' || die "etcd did not become healthy"
    log "etcd $("$ETCD" --version | head -n 1 | awk '{ print $3 }') on $ETCD_URL, data in $work/etcd"
}

# ---------------------------------------------------------------------------------------------
# Managers.

# start_manager NAME PORT ARGS...: `orkestrator server` in the background, data in
# $work/NAME, log appended to $work/NAME.log.
start_manager() {
    local name="$1" port="$2"
    shift 2
    mkdir -p "$work/$name"
    "$BIN" server --port "$port" --data-dir "$work/$name" "$@" >>"$work/$name.log" 2>&1 &
    pids[$name]=$!
}
stop_manager() {
    stop_pid "${pids[$1]}"
    unset "pids[$1]"
}

# wait_token DIR...: prints the operator token once one of the data directories holds it.
wait_token() {
    local d
    for _ in $(seq 1200); do
        for d in "$@"; do
            if [ -s "$d/operator.token" ]; then
                head -n 1 "$d/operator.token"
                return
            fi
        done
        sleep 0.05
    done
    die "no operator.token appeared in $* within 60 s"
}

# health URL: /v1/health as JSON (empty on failure).
health() { curl -s --max-time 2 -H "authorization: Bearer $TOKEN" "$1/v1/health" || true; }

# wait_serving URL: until a manager answers /v1/health with its own report.
wait_serving() {
    for _ in $(seq 1200); do
        health "$1" | jq -e '.manager.index' >/dev/null 2>&1 && return
        sleep 0.05
    done
    die "the manager at $1 did not serve /v1/health within 60 s"
}

# submit_one URL NAME: one submission; prints the HTTP status (000 when none came).
submit_one() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 1 -X POST "$1/v1/jobs" \
        -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
        --data "{\"name\":\"$2\",\"tasks\":[{\"name\":\"t\",\"image\":\"busybox:1.36\",\"resources\":{\"cpu\":\"10m\",\"memory\":\"6Mi\",\"disk\":\"1Mi\"}}]}" ||
        true
}

is_2xx() { case "$1" in 2[0-9][0-9]) return 0 ;; *) return 1 ;; esac; }

# ---------------------------------------------------------------------------------------------
# Part 1: submissions/s and p99, etcd against redb.

# wrk with `-s wrapper`: submit.lua, with the -H headers merged into the table it passes to
# wrk.format (which otherwise replaces them, as in load-wrk.sh; the project's script merges them
# itself), and a summary line.
wrapper="$work/submit.lua"
cat >"$wrapper" <<'EOF'
local format = wrk.format
wrk.format = function(method, path, headers, body)
  local merged = {}
  for k, v in pairs(wrk.headers) do merged[k] = v end
  for k, v in pairs(headers or {}) do merged[k] = v end
  return format(method, path, merged, body)
end
dofile(os.getenv("WRK_SCRIPT"))
done = function(summary, latency, requests)
  local s = summary.duration / 1e6
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    "RESULT requests=%d seconds=%.2f per_s=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f errors=%d\n",
    summary.requests, s, summary.requests / s, latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3, bad))
end
EOF

# jobs_total URL [TRIES]: how many jobs the manager holds (retried, 0.1 s apart, while it answers
# otherwise, e.g. 503 while it reloads its state after a failed commit). Counted as the tasks of
# /v1/health (every job of submit.lua has one task): its `jobs` counts are empty after the
# manager has loaded its state from the store (a restart, or a reload after a failed commit),
# while `tasks` are counted right.
jobs_total() {
    local n
    for _ in $(seq "${2:-100}"); do
        n="$(health "$1" | jq -e '[.tasks[]] | add // 0' 2>/dev/null)" && { echo "$n"; return; }
        sleep 0.1
    done
    return 1
}

RESULTS="$work/results.txt" # store level round acked_per_s p99_ms p50_ms commit_p50_us changes_per_commit refused_pct wedged
: >"$RESULTS"

# measure STORE ROUND URL C: one level against the manager at URL. A submission answered other
# than 2xx is counted (and its reasons kept), not fatal: the figure is acknowledged
# submissions per second, and the share refused is printed beside it. A manager that stops
# answering /v1/health after the run is recorded as wedged (and its jobs cannot be counted).
measure() {
    local store="$1" round="$2" url="$3" c="$4" t out result before after requests refused h0 h1 wedged=0
    t=$((c < 2 ? c : 2))
    out="$work/wrk-$store-$round-c$c.out"
    before="$(jobs_total "$url")" || die "$store c$c: the new manager does not report its jobs"
    h0="$(health "$url" | jq -c . 2>/dev/null || true)"
    WRK_SCRIPT="$LOAD_DIR/submit.lua" PREFIX="b$store$round-c$c-$RANDOM" \
        wrk -t"$t" -c"$c" -d"$DURATION" --latency -s "$wrapper" \
        -H "authorization: Bearer $TOKEN" "$url" >"$out" 2>&1 || true
    result="$(grep '^RESULT' "$out" | tail -n 1)"
    [ -n "$result" ] || { cat "$out" >&2; die "$store c$c: wrk printed no result"; }
    requests="$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$result")"
    refused="$(grep -c '^status ' "$out" || true)"
    local seconds acked per_s p99 p50 commit cpc pct
    seconds="$(sed -E 's/.*seconds=([0-9.]+).*/\1/' <<<"$result")"
    acked=$((requests - refused))
    # Read again until the count holds every acknowledged job (a reload after a failed commit
    # may be under way); 10 s at most: a manager that answers nothing for 10 s is wedged.
    after=""
    for _ in $(seq 10); do
        after="$(jobs_total "$url" 5)" || continue
        [ "$((after - before))" -lt "$acked" ] || break
        sleep 0.5
    done
    h1="$(health "$url" | jq -c . 2>/dev/null || true)"
    if [ -z "$after" ]; then
        wedged=1
        after="$before"
        log "$store c$c: the manager stopped answering /v1/health after the run (no answer within 2 s, for 10 s): wedged; its jobs were not counted"
    elif [ "$((after - before))" -lt "$acked" ]; then
        die "$store c$c: $acked submissions acknowledged but only $((after - before)) new jobs: some were not new jobs"
    fi
    per_s="$(awk -v a="$acked" -v s="$seconds" 'BEGIN { printf "%.1f", a / s }')"
    pct="$(awk -v r="$refused" -v n="$requests" 'BEGIN { printf "%.1f", n ? 100 * r / n : 0 }')"
    p99="$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$result")"
    p50="$(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$result")"
    commit="$(jq -r '.manager.store.commit_p50_us // "nan"' 2>/dev/null <<<"$h1" || echo nan)"
    cpc="$(jq -rn --argjson a "${h0:-null}" --argjson b "${h1:-null}" \
        'try ((($b.manager.store.changes - $a.manager.store.changes) / ([($b.manager.store.commits - $a.manager.store.commits), 1] | max) * 10 | round) / 10) catch "nan"' 2>/dev/null || echo nan)"
    commit="${commit:-nan}"
    cpc="${cpc:-nan}"
    printf '%s %s %s %s %s %s %s %s %s %s\n' "$store" "$c" "$round" "$per_s" "$p99" "$p50" "$commit" "$cpc" "$pct" "$wedged" >>"$RESULTS"
    printf '  %-4s round %s  c=%-3s %9s acknowledged/s  p50 %7s ms  p99 %7s ms  jobs +%s%s  refused %s%%  commit p50 %s us  %s changes/commit\n' \
        "$store" "$round" "$c" "$per_s" "$p50" "$p99" "$((after - before))" "$([ "$wedged" = 0 ] || echo ' (wedged)')" "$pct" "$commit" "$cpc"
    if [ "$refused" -gt 0 ]; then
        grep '^status ' "$out" | sed -E 's/.*"message":"([^"]*)".*/\1/' | sort | uniq -c | sort -rn |
            head -n 3 | sed 's/^/      refused: /'
    fi
}

# run_store STORE ROUND C: a fresh manager (empty store) for one level, stopped afterwards.
run_store() {
    local store="$1" round="$2" c="$3" port url name="m-$1-$2-c$3"
    port="$(free_port)"
    url="http://127.0.0.1:$port"
    if [ "$store" = etcd ]; then
        start_manager "$name" "$port" --store "etcd://${ETCD_URL#http://}" --etcd-prefix "/bench-$round-c$c-$RANDOM/"
    else
        start_manager "$name" "$port"
    fi
    TOKEN="$(wait_token "$work/$name")"
    wait_serving "$url"
    measure "$store" "$round" "$url" "$c"
    stop_manager "$name"
}

part_submit() {
    local round c
    echo "== submissions: wrk submit.lua, $DURATION per level, levels $LEVELS, $REPEATS rounds, a fresh manager each"
    for round in $(seq "$REPEATS"); do
        for c in $LEVELS; do
            if [ $((round % 2)) = 1 ]; then
                run_store redb "$round" "$c"
                run_store etcd "$round" "$c"
            else
                run_store etcd "$round" "$c"
                run_store redb "$round" "$c"
            fi
        done
    done
}

# ---------------------------------------------------------------------------------------------
# Part 2: leader death to the first acknowledged write on the new leader.

FAILOVERS="$work/failovers.txt" # lease run ms
: >"$FAILOVERS"

part_failover_lease() {
    local lease="$1" prefix="/bench-fo-$1-$RANDOM/" i n
    local -A port=() url=()
    local names=(fo-a fo-b fo-c)
    for n in "${names[@]}"; do
        rm -rf "${work:?}/$n" "$work/$n.log"
        port[$n]="$(free_port)"
        url[$n]="http://127.0.0.1:${port[$n]}"
    done
    start_args() {
        echo --store "etcd://${ETCD_URL#http://}" --etcd-prefix "$prefix" --leader-lease "$lease"
    }
    for n in "${names[@]}"; do
        # shellcheck disable=SC2046
        start_manager "$n" "${port[$n]}" $(start_args)
    done
    TOKEN="$(wait_token "$work/fo-a" "$work/fo-b" "$work/fo-c")"
    echo "== failover: 3 managers on one etcd, --leader-lease $lease, $FAILOVER_RUNS runs"
    for i in $(seq "$FAILOVER_RUNS"); do
        # Three managers listed, one leading, and a write through it acknowledged.
        local leader="" ok="" h addr
        for _ in $(seq 600); do
            for n in "${names[@]}"; do
                h="$(health "${url[$n]}")"
                if jq -e '(.managers | length) == 3 and ([.managers[] | select(.leader)] | length) == 1' \
                    >/dev/null 2>&1 <<<"$h"; then
                    addr="$(jq -r '.managers[] | select(.leader) | .addr' <<<"$h")"
                    for n2 in "${names[@]}"; do
                        [ "${url[$n2]}" = "$addr" ] && leader="$n2"
                    done
                    break
                fi
            done
            if [ -n "$leader" ] && is_2xx "$(submit_one "${url[$leader]}" "warm-$lease-$i-$RANDOM")"; then
                ok=1
                break
            fi
            leader=""
            sleep 0.1
        done
        [ -n "$ok" ] || die "failover $lease run $i: no leader of three managers within 60 s"
        local survivors=() t0 t1="" code codes="" seq=0 via=""
        for n in "${names[@]}"; do
            [ "$n" = "$leader" ] || survivors+=("$n")
        done
        t0="$(now_ns)"
        kill -9 "${pids[$leader]}"
        wait "${pids[$leader]}" 2>/dev/null || true
        unset "pids[$leader]"
        while [ $(($(now_ns) - t0)) -lt 30000000000 ]; do
            for n in "${survivors[@]}"; do
                seq=$((seq + 1))
                code="$(submit_one "${url[$n]}" "fo-$lease-$i-$seq-$RANDOM")"
                if is_2xx "$code"; then
                    t1="$(now_ns)"
                    via="$n"
                    break 2
                fi
                codes="$codes $code"
            done
            sleep 0.01
        done
        [ -n "$t1" ] || die "failover $lease run $i: no write acknowledged within 30 s of the kill"
        local ms=$(((t1 - t0) / 1000000)) newleader
        newleader="$(health "${url[$via]}" | jq -r '.managers[] | select(.leader) | .addr')"
        printf '%s %s %s\n' "$lease" "$i" "$ms" >>"$FAILOVERS"
        printf '  lease %-3s run %s: killed %s (%s); first acknowledged write %5d ms after, via %s, new leader %s; refused before:%s\n' \
            "$lease" "$i" "$leader" "${url[$leader]}" "$ms" "$via" "$newleader" \
            "$(tr ' ' '\n' <<<"$codes" | grep -v '^$' | sort | uniq -c | awk '{ printf " %s×%s", $1, $2 }')"
        # The killed one comes back as a follower on its data directory.
        # shellcheck disable=SC2046
        start_manager "$leader" "${port[$leader]}" $(start_args)
    done
    printf '  lease %s: median %s ms\n' "$lease" "$(awk -v l="$lease" '$1 == l { print $3 }' "$FAILOVERS" | median)"
    for n in "${names[@]}"; do
        [ -z "${pids[$n]:-}" ] || stop_manager "$n"
    done
}

part_failover() {
    local lease
    for lease in $LEASES; do
        part_failover_lease "$lease"
    done
}

# ---------------------------------------------------------------------------------------------

log "manager $("$BIN" --version 2>/dev/null | head -n 1); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); work dir $work"
start_etcd
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$WHAT" = submit ] || [ "$WHAT" = all ]; then
    part_submit
fi
if [ "$WHAT" = failover ] || [ "$WHAT" = all ]; then
    part_failover
fi

echo
echo "== summary (medians over $REPEATS rounds; load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end)"
if [ -s "$RESULTS" ]; then
    printf '| concurrency | redb acknowledged/s | redb p99 | etcd acknowledged/s | etcd p99 | etcd / redb (/s) | etcd / redb (p99) | refused redb / etcd | commit p50 redb / etcd | changes per commit redb / etcd |\n'
    printf '|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n'
    for c in $LEVELS; do
        col() { awk -v s="$1" -v c="$c" -v f="$2" '$1 == s && $2 == c { print $f }' "$RESULTS" | median; }
        rs="$(col redb 4)" rp="$(col redb 5)" es="$(col etcd 4)" ep="$(col etcd 5)"
        rc="$(col redb 7)" ec="$(col etcd 7)" rb="$(col redb 8)" eb="$(col etcd 8)"
        rr="$(col redb 9)" er="$(col etcd 9)"
        printf '| %s | %.0f | %.2f ms | %.0f | %.2f ms | %.2g× | %.2g× | %s%% / %s%% | %.0f / %.0f µs | %s / %s |\n' \
            "$c" "$rs" "$rp" "$es" "$ep" "$(awk -v a="$es" -v b="$rs" 'BEGIN { print b ? a / b : "nan" }')" \
            "$(awk -v a="$ep" -v b="$rp" 'BEGIN { print b ? a / b : "nan" }')" "$rr" "$er" "$rc" "$ec" "$rb" "$eb"
    done
    echo "(p99 is wrk's over every answer, refused ones included; each row the median of the rounds;"
    echo " managers wedged after their run: redb $(awk '$1 == "redb" && $10 == 1' "$RESULTS" | wc -l) of $(awk '$1 == "redb"' "$RESULTS" | wc -l), etcd $(awk '$1 == "etcd" && $10 == 1' "$RESULTS" | wc -l) of $(awk '$1 == "etcd"' "$RESULTS" | wc -l))"
fi
if [ -s "$FAILOVERS" ]; then
    echo
    printf '| --leader-lease | runs | kill -9 → first acknowledged write: each (ms) | median | min | max |\n'
    printf '|---|--:|---|--:|--:|--:|\n'
    for lease in $LEASES; do
        all="$(awk -v l="$lease" '$1 == l { print $3 }' "$FAILOVERS")"
        [ -n "$all" ] || continue
        printf '| %s | %s | %s | %s ms | %s ms | %s ms |\n' "$lease" "$(wc -l <<<"$all")" \
            "$(paste -sd' ' <<<"$all")" "$(median <<<"$all")" "$(sort -g <<<"$all" | head -n 1)" \
            "$(sort -g <<<"$all" | tail -n 1)"
    done
fi
