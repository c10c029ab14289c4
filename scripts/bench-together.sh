#!/usr/bin/env bash
# Issue 19's benchmarks, outside CI (see BENCHMARKS.md, "Tasks that work together"):
#
#  1. submit -> Running of a three-task instance (db with a health check, an init task, app
#     depending on both), against the same containers made by the docker CLI in the same order:
#     network create, the runs, waiting for db's health with the same interval and init's end,
#     polling every 100 ms on both sides. PAIRS pairs, interleaved; medians and their ratio.
#  2. the cost of an instance's network: N one-task instances with `network: { mode: none }`
#     against the same with a network each (the default), submit -> all Running and stop -> all
#     gone, at N = 10, 50 and 250 on one worker.
#
# Needs a release build (cargo build --release -p orkestrator-bin), the test image
# (scripts/build-test-image.sh) and python3. Usage: [ONLY=pairs|networks] scripts/bench-together.sh [PAIRS]
set -euo pipefail

PAIRS=${1:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${ORKESTRATOR_BIN:-$ROOT/target/release/orkestrator}
IMAGE=orkestrator/busybox:latest
WORK=$(mktemp -d /tmp/ork-bench-together.XXXXXX)
PORT=$((20000 + RANDOM % 20000))
WPORT=$((PORT + 1))
export ORKESTRATOR_ADDR=http://127.0.0.1:$PORT
export NO_COLOR=1
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    docker rm -f $(docker ps -aq --filter label=orkestrator.worker=bench-w) >/dev/null 2>&1 || true
    docker network rm $(docker network ls -q --filter label=orkestrator.worker=bench-w) >/dev/null 2>&1 || true
    docker rm -f bench-db bench-init bench-app >/dev/null 2>&1 || true
    docker network rm bench-net >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { python3 -c 'import time; print(f"{time.monotonic():.4f}")'; }

"$BIN" server --port "$PORT" --data-dir "$WORK/m" --heartbeat-interval 500ms >"$WORK/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do "$BIN" health >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN" worker --manager "$ORKESTRATOR_ADDR" --name bench-w --port "$WPORT" --data-dir "$WORK/w" \
    --cpu 16 --memory 16Gi --stop-grace 2s >"$WORK/worker.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    "$BIN" workers -o json 2>/dev/null | grep -q '"Ready"' && break
    sleep 0.1
done

phase() { "$BIN" status "$1" -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["phase"])' 2>/dev/null || echo none; }
wait_phase() { # JOB PHASE
    until [ "$(phase "$1")" = "$2" ]; do sleep 0.1; done
}

DB_CMD='mkdir -p /tmp/www; echo hello > /tmp/www/index.html; sleep 2; exec httpd -f -p 8080 -h /tmp/www'
CHECK='timeout 1 wget -q -O /dev/null http://127.0.0.1:8080/'
INIT_CMD='sleep 1'
APP_CMD="timeout 5 wget -q -O- http://db:8080/; trap 'exit 0' TERM; while true; do sleep 1; done"

three_yaml() { # NAME
    cat <<EOF
name: $1
tasks:
  - name: db
    image: $IMAGE
    resources: { cpu: 50m, memory: 16Mi }
    command: ["sh", "-c", "$DB_CMD"]
    health_check: { exec: ["sh", "-c", "$CHECK"], interval: 1s, timeout: 1s, failures: 1, start_period: 10s }
  - name: init
    image: $IMAGE
    resources: { cpu: 50m, memory: 16Mi }
    restart: { policy: never }
    command: ["sh", "-c", "$INIT_CMD"]
  - name: app
    image: $IMAGE
    resources: { cpu: 50m, memory: 16Mi }
    depends_on: { db: { condition: healthy }, init: { condition: completed_successfully } }
    command: ["sh", "-c", "$APP_CMD"]
EOF
}

# The same containers as the worker makes: its limits (cpu 50m, memory 16Mi without swap, the
# default process limit) and security options. A CPU quota slows a container's start and its
# exec health checks, so leaving it out would compare different containers.
LIMITS="--cpus 0.05 --memory 16m --memory-swap 16m --pids-limit 4096 --security-opt no-new-privileges:true --init=false"

inspect() { docker inspect -f "$2" "$1" 2>/dev/null || true; }

ork_three() { # -> seconds
    local name=bench3-$1
    three_yaml "$name" >"$WORK/$name.yaml"
    local t0; t0=$(now)
    "$BIN" run -f "$WORK/$name.yaml" >/dev/null
    wait_phase "$name" Running
    local t1; t1=$(now)
    "$BIN" stop "$name" --wait >/dev/null
    python3 -c "print(f'{$t1 - $t0:.3f}')"
}

cli_three() { # -> seconds
    local t0; t0=$(now)
    docker network create --subnet 10.214.0.0/29 bench-net >/dev/null
    docker run -d --name bench-db --network bench-net --network-alias db $LIMITS \
        --health-cmd "$CHECK" --health-interval 1s --health-timeout 1s --health-retries 1 \
        --health-start-period 10s "$IMAGE" sh -c "$DB_CMD" >/dev/null
    docker run -d --name bench-init --network bench-net --network-alias init $LIMITS "$IMAGE" sh -c "$INIT_CMD" >/dev/null
    until [ "$(inspect bench-db '{{.State.Health.Status}}')" = healthy ] &&
        [ "$(inspect bench-init '{{.State.Status}} {{.State.ExitCode}}')" = "exited 0" ]; do
        sleep 0.1
    done
    docker run -d --name bench-app --network bench-net --network-alias app $LIMITS "$IMAGE" sh -c "$APP_CMD" >/dev/null
    until [ "$(inspect bench-app '{{.State.Status}}')" = running ]; do sleep 0.1; done
    local t1; t1=$(now)
    docker rm -f bench-app bench-init bench-db >/dev/null
    docker network rm bench-net >/dev/null
    python3 -c "print(f'{$t1 - $t0:.3f}')"
}

median() { python3 -c 'import statistics,sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.3f}")' "$@"; }

if [ "${ONLY:-}" != networks ]; then
echo "== 1. three-task instance: submit -> Running, $PAIRS pairs (Orkestrator, docker CLI) =="
ORK=(); CLI=()
for i in $(seq "$PAIRS"); do
    o=$(ork_three "$i"); c=$(cli_three)
    echo "pair $i: orkestrator $o s, docker CLI $c s"
    ORK+=("$o"); CLI+=("$c")
done
mo=$(median "${ORK[@]}"); mc=$(median "${CLI[@]}")
echo "median: orkestrator $mo s, docker CLI $mc s, ratio $(python3 -c "print(f'{$mo / $mc:.3f}')")x (target <= 1.1x)"

fi

[ "${ONLY:-}" = pairs ] && exit 0

many_yaml() { # NAME COUNT MODE
    cat <<EOF
name: $1
count: $2
network: { mode: $3 }
tasks:
  - name: idle
    image: $IMAGE
    resources: { cpu: 10m, memory: 8Mi }
    # Quiet while it waits (no process a second): 250 of them must not load the 2 cores.
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
EOF
}

echo
echo "== 2. networks: N one-task instances, submit -> all Running and stop -> gone =="
echo "N mode up_s down_s"
for n in 10 50 250; do
    for mode in none bridge; do
        name=net-$n-$mode
        many_yaml "$name" "$n" "$mode" >"$WORK/$name.yaml"
        t0=$(now)
        "$BIN" run -f "$WORK/$name.yaml" >/dev/null
        wait_phase "$name" Running
        t1=$(now)
        "$BIN" stop "$name" --wait >/dev/null
        until [ -z "$(docker network ls -q --filter label=orkestrator.job="$name")" ]; do sleep 0.1; done
        t2=$(now)
        echo "$n $mode $(python3 -c "print(f'{$t1 - $t0:.2f} {$t2 - $t1:.2f}')")"
    done
done
