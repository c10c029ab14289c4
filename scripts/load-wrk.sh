#!/usr/bin/env bash
# The issue's wrk load runs, with tokens (issue 11). A manual tool, not called by CI.
#
# Starts a release `orkestrator server` on a free loopback port with a temporary data directory
# (durable), reads the operator token it wrote there (DATA_DIR/operator.token), registers workers
# w0..w9999 with it (the workers heartbeat.lua cycles over), then runs
#   wrk -t2 -c64 -d8s --latency -s scripts/load/submit.lua    (new one-task jobs)
#   wrk -t2 -c64 -d8s --latency -s scripts/load/heartbeat.lua (heartbeats of w0..w9999)
# each with `-H "authorization: Bearer TOKEN"`, and prints requests/s and latency percentiles.
#
# The wrk scripts are the project's own, in scripts/load/. A script that passes its own header
# table to wrk.format makes wrk leave out the headers given with -H (it uses that table instead of
# wrk.headers): ours copy wrk.headers into theirs, and each run also goes through a small wrapper
# that merges them back (see `wrapper` below), so that a script given with LOAD_DIR that does not
# is still answered, not refused 401.
#
# Usage: scripts/load-wrk.sh [submit|heartbeat|all]   (default all)
# Environment: LOAD_DIR (scripts/load), BIN (the orkestrator binary; default: build
# target/release/orkestrator), THREADS (2), CONNS (64), DURATION (8s), WORKERS (10000),
# PREFIX (a fresh job-name prefix per run), KEEP=1 keeps the data directory and the log.
# A manager that writes no token (a build from before issue 11, given with BIN) is loaded
# without the header, so the same script measures both.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WHAT="${1:-all}"
case "$WHAT" in
    submit | heartbeat | all) ;;
    *) echo "usage: $0 [submit|heartbeat|all]" >&2; exit 2 ;;
esac
LOAD_DIR="${LOAD_DIR:-scripts/load}"
THREADS="${THREADS:-2}"
CONNS="${CONNS:-64}"
DURATION="${DURATION:-8s}"
WORKERS="${WORKERS:-10000}"
PREFIX="${PREFIX:-wrk$(date +%s)}"

log() { printf 'load-wrk: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for f in submit.lua heartbeat.lua; do
    [ -r "$LOAD_DIR/$f" ] || die "no $LOAD_DIR/$f (the wrk load scripts; set LOAD_DIR)"
done
for tool in wrk curl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (apt-get install $tool)"
done

if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet -p orkestrator-bin --bin orkestrator
    BIN=target/release/orkestrator
fi
[ -x "$BIN" ] || die "no binary $BIN"

work="$(mktemp -d "${TMPDIR:-/tmp}/orkestrator-wrk-XXXXXX")"
server=""
cleanup() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    if [ "${KEEP:-}" = 1 ]; then
        log "kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# A port nothing listens on, below the kernel's ephemeral range.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=""
for _ in $(seq 50); do
    p=$((20000 + RANDOM % 12000))
    if port_free "$p"; then
        port="$p"
        break
    fi
done
[ -n "$port" ] || die "found no free port"
url="http://127.0.0.1:$port"

ORKESTRATOR_LOG="${ORKESTRATOR_LOG:-warn}" "$BIN" server --port "$port" --data-dir "$work/data" \
    >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 600); do
    curl -sf "$url/v1/health" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; die "the manager exited"; }
    sleep 0.1
done
curl -sf "$url/v1/health" >/dev/null || die "the manager at $url did not answer within 60 s"

auth=()
if [ -r "$work/data/operator.token" ]; then
    token="$(head -n 1 "$work/data/operator.token")"
    auth=(-H "authorization: Bearer $token")
    log "manager $("$BIN" --version 2>/dev/null || echo "$BIN") on $url; operator token from $work/data/operator.token"
else
    log "manager on $url wrote no operator.token (a build from before tokens): no header"
fi

# wrk with `-s wrapper`: the load script, with every request carrying the -H headers.
wrapper="$work/with-headers.lua"
cat >"$wrapper" <<'EOF'
-- Runs the script named by WRK_SCRIPT, merging wrk.headers (the -H options) into the header
-- table each request passes to wrk.format (which otherwise replaces them).
local format = wrk.format
wrk.format = function(method, path, headers, body)
  local merged = {}
  for k, v in pairs(wrk.headers) do merged[k] = v end
  for k, v in pairs(headers or {}) do merged[k] = v end
  return format(method, path, merged, body)
end
dofile(os.getenv("WRK_SCRIPT"))
if done == nil then
  done = function(summary, latency, requests)
    local s = summary.duration / 1e6
    local bad = summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout
    io.write(string.format(
      "RESULT requests=%d seconds=%.2f per_s=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f errors=%d\n",
      summary.requests, s, summary.requests / s, latency:percentile(50) / 1e3,
      latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
      latency:percentile(99.9) / 1e3, latency.max / 1e3, bad))
  end
end
EOF

# Registers w0..w(WORKERS-1) with the operator token: one curl, 64 transfers at a time, kept
# alive, its config (one block per worker) written by awk.
register_workers() {
    local cfg="$work/register.curl" codes bad start
    awk -v n="$WORKERS" -v url="$url/v1/workers" -v auth="${auth[1]:-}" 'BEGIN {
        res = "{\\\"cpu\\\":\\\"8\\\",\\\"memory\\\":\\\"32Gi\\\",\\\"disk\\\":\\\"100Gi\\\"}"
        zero = "{\\\"cpu\\\":\\\"0\\\",\\\"memory\\\":\\\"0\\\",\\\"disk\\\":\\\"0\\\"}"
        for (i = 0; i < n; i++) {
            if (i > 0) print "next"
            print "url = \"" url "\""
            print "header = \"content-type: application/json\""
            if (auth != "") print "header = \"" auth "\""
            printf "data = \"{\\\"id\\\":\\\"w%d\\\",\\\"resources\\\":{\\\"total\\\":%s,\\\"allocated\\\":%s,\\\"available\\\":%s},\\\"version\\\":\\\"load-wrk\\\"}\"\n", i, res, zero, res
            print "output = \"/dev/null\""
            print "write-out = \"%{http_code}\\n\""
        }
    }' >"$cfg"
    start=$(date +%s%N)
    codes="$(curl -s --no-progress-meter --parallel --parallel-max 64 -K "$cfg")"
    bad="$(printf '%s\n' "$codes" | grep -cv '^2' || true)"
    if [ "$bad" -ne 0 ]; then
        die "$bad of $WORKERS registrations were not answered 2xx: $(printf '%s\n' "$codes" | grep -v '^2' | sort | uniq -c | tr '\n' ' ')"
    fi
    log "registered $WORKERS workers in $((($(date +%s%N) - start) / 1000000)) ms"
    rm -f "$cfg"
}

# run NAME SCRIPT: one wrk run through the wrapper; prints wrk's report and a summary line.
run() {
    local name="$1" script="$2" out
    out="$work/$name.out"
    log "$name: wrk -t$THREADS -c$CONNS -d$DURATION --latency -s $script ${auth:+-H 'authorization: Bearer …'} $url"
    WRK_SCRIPT="$script" PREFIX="$PREFIX" WORKERS="$WORKERS" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency \
        -s "$wrapper" "${auth[@]}" "$url" | tee "$out" | grep -v '^RESULT' | grep -v '^status ' || true
    local statuses
    statuses="$(grep -c '^status ' "$out" || true)"
    local result
    result="$(grep '^RESULT' "$out" | tail -n 1)"
    [ -n "$result" ] || die "$name: wrk printed no result"
    printf '%s: %s\n' "$name" "${result#RESULT }"
    [ "$statuses" -eq 0 ] || die "$name: $statuses answers were not 2xx (first: $(grep -m1 '^status ' "$out"))"
}

if [ "$WHAT" = submit ] || [ "$WHAT" = all ]; then
    run submit "$LOAD_DIR/submit.lua"
fi
if [ "$WHAT" = heartbeat ] || [ "$WHAT" = all ]; then
    register_workers
    run heartbeat "$LOAD_DIR/heartbeat.lua"
fi
