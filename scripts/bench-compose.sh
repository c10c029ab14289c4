#!/usr/bin/env bash
# Issue 21's benchmark, outside CI (see BENCHMARKS.md, "Compose up (issue 21)"): how long one
# Compose file takes to come up under `orkestrator compose up --wait` (against an `orkestrator
# dev` cluster the script starts) and under `docker-compose up -d`, on the same engine.
#
# The project is examples/compose/, which orkestrator-bin/tests/compose.rs runs too: `migrate`
# (an init service writing a marker into the named volume), `api` (built from ./api, waits for
# migrate to complete, reads a
# file secret, a bind-mounted file and the volume, health check every 1 s) and `web` (published
# on a host port, waits for api to be healthy, fetches api's page and serves it). Both sides run
# the same file, so the health-check intervals are equal. The build cache is warmed by one round of
# each side that is not counted: afterwards neither side builds (Orkestrator finds its content-hash
# tag, docker-compose its PROJECT_api image).
#
# A round is timed from before the up command to the first GET of web's page (polled every
# 100 ms) that answers with the api's page (`up`), and from before the down command to the moment
# the engine has no container and no volume of the project left (`down`: `compose down -v` /
# `docker-compose down -v`). Orkestrator is timed twice per round: with `compose up --wait`
# (which returns once every task runs and every checked one is healthy) and with `compose up`
# alone (it returns once the job is submitted).
# Rounds alternate the order (Orkestrator first, then docker-compose first), so drift hits both
# alike. Reports each round, the medians and their ratios.
#
# Needs a release build (cargo build --release -p orkestrator-bin), the test image
# (scripts/build-test-image.sh), docker-compose, curl and python3.
# Usage: scripts/bench-compose.sh [N]   (N rounds of each side, default 5)
set -euo pipefail

N=${1:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${ORKESTRATOR_BIN:-$ROOT/target/release/orkestrator}
WORK=$(mktemp -d /tmp/ork-bench-compose.XXXXXX)
PORT=$((20000 + RANDOM % 20000))
ORK_WEB=$((PORT + 1))
DC_WEB=$((PORT + 2))
ORK_P=bench-ork-$$
DC_P=bench-dc-$$
export ORKESTRATOR_ADDR=http://127.0.0.1:$PORT
export NO_COLOR=1
# docker-compose 1.29 builds with the classic builder, as `compose up` does.
export COMPOSE_DOCKER_CLI_BUILD=0 DOCKER_BUILDKIT=0
unset COMPOSE_PROJECT_NAME COMPOSE_FILE
PIDS=()

log() { printf 'bench-compose: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in docker docker-compose curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
[ -x "$BIN" ] || die "$BIN not found: cargo build --release -p orkestrator-bin"
docker image inspect orkestrator/busybox:latest >/dev/null 2>&1 ||
    die "the test image is missing: scripts/build-test-image.sh"

cleanup() {
    set +e
    (cd "$WORK/app" 2>/dev/null && WEB_PORT=$DC_WEB docker-compose -p "$DC_P" down -v --rmi local >/dev/null 2>&1)
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    # `dev` stops its jobs on SIGTERM; anything left of ours goes here (by job: other dev
    # clusters on this engine have a worker of the same name).
    docker rm -f $(docker ps -aq --filter label=orkestrator.job="$ORK_P") >/dev/null 2>&1
    docker volume rm $(docker volume ls -q --filter label=orkestrator.job="$ORK_P") >/dev/null 2>&1
    docker network rm $(docker network ls -q --filter label=orkestrator.job="$ORK_P") >/dev/null 2>&1
    docker image rm -f $(docker images -q --filter reference="$ORK_P-*") >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { python3 -c 'import time; print(f"{time.monotonic():.4f}")'; }
since() { python3 -c "print(f'{$2 - $1:.3f}')"; }
median() { python3 -c 'import statistics,sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.3f}")' "$@"; }

# The project: examples/compose/, which orkestrator-bin/tests/compose.rs runs too.
mkdir -p "$WORK/app"
cp -R "$ROOT/examples/compose/." "$WORK/app/"
cd "$WORK/app"

"$BIN" dev --port "$PORT" >"$WORK/dev.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do "$BIN" health >/dev/null 2>&1 && break; sleep 0.1; done
for _ in $(seq 100); do
    "$BIN" workers -o json 2>/dev/null | grep -q '"Ready"' && break
    sleep 0.1
done
"$BIN" workers -o json | grep -q '"Ready"' || die "the dev cluster's worker is not Ready: $(tail "$WORK/dev.log")"

wait_web() { # PORT: until web serves the api's page (2 minutes at most)
    local deadline=$((SECONDS + 120))
    until curl -sf --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null | grep -q '^marker: migrated-v1'; do
        [ "$SECONDS" -lt "$deadline" ] || die "web on port $1 did not serve the api's page in 2 minutes"
        sleep 0.1
    done
}

wait_gone() { # LABEL=VALUE: until the engine has no container and no volume with that label
    local deadline=$((SECONDS + 120))
    until [ -z "$(docker ps -aq --filter "label=$1")" ] && [ -z "$(docker volume ls -q --filter "label=$1")" ]; do
        [ "$SECONDS" -lt "$deadline" ] || die "containers or volumes with $1 still there after 2 minutes"
        sleep 0.1
    done
}

ork_round() { # [--wait]: sets UP and DOWN (seconds)
    local t0 t1 t2
    t0=$(now)
    WEB_PORT=$ORK_WEB "$BIN" compose up -p "$ORK_P" "$@" >>"$WORK/ork.log" 2>&1 ||
        die "compose up failed: $(tail -20 "$WORK/ork.log")"
    wait_web "$ORK_WEB"
    t1=$(now)
    WEB_PORT=$ORK_WEB "$BIN" compose down -p "$ORK_P" -v >>"$WORK/ork.log" 2>&1 ||
        die "compose down -v failed: $(tail -20 "$WORK/ork.log")"
    wait_gone "orkestrator.job=$ORK_P"
    t2=$(now)
    UP=$(since "$t0" "$t1")
    DOWN=$(since "$t1" "$t2")
}

dc_round() { # sets UP and DOWN (seconds)
    local t0 t1 t2
    t0=$(now)
    WEB_PORT=$DC_WEB docker-compose -p "$DC_P" up -d >>"$WORK/dc.log" 2>&1 ||
        die "docker-compose up failed: $(tail -20 "$WORK/dc.log")"
    wait_web "$DC_WEB"
    t1=$(now)
    WEB_PORT=$DC_WEB docker-compose -p "$DC_P" down -v >>"$WORK/dc.log" 2>&1 ||
        die "docker-compose down -v failed: $(tail -20 "$WORK/dc.log")"
    wait_gone "com.docker.compose.project=$DC_P"
    t2=$(now)
    UP=$(since "$t0" "$t1")
    DOWN=$(since "$t1" "$t2")
}

log "warming up (builds, not counted)"
ork_round --wait
WEB_PORT=$DC_WEB docker-compose -p "$DC_P" build >>"$WORK/dc.log" 2>&1 || die "docker-compose build failed"
dc_round

ratio() { python3 -c "print(f'{$1 / $2:.3f}')"; }

echo "== compose up until web answers, then down -v: $N rounds of each (seconds) =="
echo "round first | up: orkestrator --wait, orkestrator, docker-compose | down -v: orkestrator --wait, orkestrator, docker-compose"
OW=(); OU=(); DU=(); OWD=(); OD=(); DD=()
for i in $(seq "$N"); do
    if [ $((i % 2)) -eq 1 ]; then
        first=orkestrator
        ork_round --wait; ow=$UP; owd=$DOWN
        ork_round; ou=$UP; od=$DOWN
        dc_round; du=$UP; dd=$DOWN
    else
        first=docker-compose
        dc_round; du=$UP; dd=$DOWN
        ork_round; ou=$UP; od=$DOWN
        ork_round --wait; ow=$UP; owd=$DOWN
    fi
    echo "$i $first | $ow $ou $du | $owd $od $dd"
    OW+=("$ow"); OU+=("$ou"); DU+=("$du"); OWD+=("$owd"); OD+=("$od"); DD+=("$dd")
done
mow=$(median "${OW[@]}"); mou=$(median "${OU[@]}"); mdu=$(median "${DU[@]}")
mowd=$(median "${OWD[@]}"); mod=$(median "${OD[@]}"); mdd=$(median "${DD[@]}")
echo "median up:   orkestrator compose up --wait $mow s, compose up $mou s, docker-compose up -d $mdu s"
echo "  ratio to docker-compose: --wait $(ratio "$mow" "$mdu")x, without --wait $(ratio "$mou" "$mdu")x (target <= 1x)"
echo "median down -v: orkestrator $mowd s / $mod s, docker-compose $mdd s, ratio $(ratio "$mowd" "$mdd")x / $(ratio "$mod" "$mdd")x"
