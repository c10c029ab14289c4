#!/usr/bin/env bash
# Issue 20's benchmark, outside CI (see BENCHMARKS.md, "Volumes and secrets"): the start time an
# instance's storage adds on the worker, a named volume and two secrets, against the same instance
# without them.
#
# Two one-task jobs that differ only in storage: `plain`, and `stored` (a `type: volume` volume at
# /data and two secrets at their default paths). Same image, command, user, limits and network
# mode. Each start is the worker's start of a fresh instance: `orkestrator restart` of the stopped
# job (every instance started at once, no predecessor to wait for, a new container), then
# `stop --wait` and waiting until its container and its secret files are gone, so that every
# start of `stored` fetches and writes its secrets again. The first start of each job
# (`run -f`, which for `stored` creates the volume) is kept apart. Starts alternate in pairs,
# plain/stored then stored/plain, so drift hits both alike.
#
# The time of a start is read from the manager's events: the task's `Starting` event (the worker
# reports it as it begins the start) to its `Running` event (reported as soon as the engine has
# started the container). It is split with the worker's own log of its requests to the engine
# (bollard's debug lines, to the microsecond: the worker runs with ORKESTRATOR_LOG=info,bollard=debug)
# and `docker events`: the worker's own work from its image check to its create request (the
# secrets fetched from the manager and written, the volume looked up), the engine's create, the
# engine's start (start request -> the engine's `start` event), and the report of Running.
#
# Needs a release build (cargo build --release -p orkestrator-bin), the test image
# (scripts/build-test-image.sh), python3, and root (the secret files and the volume are handed to
# user 1000). Usage: [NETWORK=none|bridge] [CPU=100m] [ENGINE=PAIRS [ENGINE_FILES=fresh|same]] [KEEP=1] scripts/bench-storage.sh [N]   (N starts of each job);
# ANALYSE=DIR scripts/bench-storage.sh prints the figures of a run kept with KEEP=1.
set -euo pipefail

N=${1:-40}
NETWORK=${NETWORK:-none}
CPU=${CPU:-100m}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${ORKESTRATOR_BIN:-$ROOT/target/release/orkestrator}
IMAGE=orkestrator/busybox:latest
WORK=$(mktemp -d /tmp/ork-bench-storage.XXXXXX)
SECRETS=$(mktemp -d /dev/shm/ork-bench-storage.XXXXXX)
PORT=$((20000 + RANDOM % 20000))
WPORT=$((PORT + 1))
W=bench-storage-w
export ORKESTRATOR_ADDR=http://127.0.0.1:$PORT
export NO_COLOR=1
PIDS=()

analyse() { # DIR: the figures from the events kept in DIR
    python3 - "$1/events.jsonl" "$1/docker.jsonl" "$1/worker.log" <<'EOF'
import json, statistics, sys

starting, running = {}, {}
order = []
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    e = json.loads(line)
    k = e.get("kind", e)
    if k.get("type") != "task_state_changed":
        continue
    inst = k["instance"]
    if k["to"] == "Starting" and inst not in starting:
        starting[inst] = (k["job"], e["at"])
        order.append(inst)
    elif k["to"] == "Running" and inst not in running:
        running[inst] = e["at"]

create, start = {}, {}
for line in open(sys.argv[2]):
    d = json.loads(line)
    inst = d.get("Actor", {}).get("Attributes", {}).get("orkestrator.instance")
    ms = d["timeNano"] / 1e6
    if d.get("Action") == "create":
        create.setdefault(inst, ms)
    elif d.get("Action") == "start":
        start.setdefault(inst, ms)

# The worker's requests to the engine (bollard's debug lines, microseconds): the image check that
# begins a start, the volume look-up, the create and the start.
import datetime, re
def wall_ms(stamp):
    return datetime.datetime.strptime(stamp[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp() * 1000
req = {}  # instance -> {image, volume, create, start}
last_image = last_volume = None
pending = None
for line in open(sys.argv[3]):
    if "DEBUG unix://" not in line:
        continue
    t = wall_ms(line.split()[0])
    if "/images/" in line:
        last_image, last_volume = t, None
    elif "/volumes?filters" in line:
        last_volume = t
    elif "/containers/create?name=" in line:
        m = re.search(r"name=ork-[a-z0-9-]*?-((?:plain|stored)-\d+-\d+)-main-\d+", line)
        if m:
            pending = m.group(1)
            req[pending] = {"image": last_image, "volume": last_volume, "create": t}
    elif line.rstrip().endswith("/start") and pending:
        req[pending]["start"] = t
        pending = None

rows = {"plain": [], "stored": []}
first = {}
seq = []  # (job, total) in the order of the starts, firsts left out
for inst in order:
    job, t0 = starting[inst]
    if inst not in running:
        print(f"{inst}: no Running event", file=sys.stderr)
        continue
    t3 = running[inst]
    w = req.get(inst, {})
    nan = float("nan")
    r = (t3 - t0,
         w.get("create", nan) - w.get("image", nan),                         # the worker's own work
         (w["volume"] - w["image"]) if w.get("volume") else nan,             # ... up to the volume look-up
         w.get("start", nan) - w.get("create", nan),                         # the engine's create
         start.get(inst, nan) - w.get("start", nan),                         # the engine's start
         t3 - start.get(inst, nan),                                          # the report
         start.get(inst, nan) - w.get("image", nan))                         # the worker's start, all of it
    if job not in first:
        first[job] = r
    else:
        rows[job].append(r)
        seq.append((job, r[0]))

def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]

print("Starting -> Running (the manager's events, ms):")
print("job     n  median    p90")
med = {}
for job in ("plain", "stored"):
    tot = [r[0] for r in rows[job]]
    med[job] = statistics.median(tot)
    print(f"{job:7} {len(tot):2}  {med[job]:6.1f}  {q(tot, 0.9):6.1f}")
cols = ["worker's own work (image check -> create)", "  of it, image check -> volume look-up (secrets)",
        "engine: create", "engine: start", "start -> Running reported",
        "worker's start: image check -> started"]
print("Where the time goes (medians, ms; the worker's log and docker events):")
print(f"{'':50} {'plain':>8} {'stored':>8} {'added':>8}")
for i, c in enumerate(cols, start=1):
    m = [statistics.median(v for r in rows[job] if (v := r[i]) == v) if any(r[i] == r[i] for r in rows[job]) else float("nan")
         for job in ("plain", "stored")]
    print(f"{c:50} {m[0]:8.1f} {m[1]:8.1f} {m[1] - m[0]:+8.1f}")
for job in ("plain", "stored"):
    print(f"all {job} totals (ms): " + " ".join(f"{r[0]:.0f}" for r in rows[job]))
for job in ("plain", "stored"):
    r = first[job]
    print(f"first start of {job} (run -f{', creates the volume' if job == 'stored' else ''}): "
          f"Starting -> Running {r[0]:.0f} ms; worker's own work {r[1]:.1f}, engine create {r[3]:.1f}, "
          f"engine start {r[4]:.1f}, report {r[5]:.1f}")
# Each pair of starts (plain/stored or stored/plain, one after the other): stored minus plain,
# which takes out the drift of the run.
pairs = [b[1] - a[1] if a[0] == "plain" else a[1] - b[1] for a, b in zip(seq[0::2], seq[1::2])]
import random
random.seed(20)
tp, ts = [r[0] for r in rows["plain"]], [r[0] for r in rows["stored"]]
boot = sorted(statistics.median(random.choices(ts, k=len(ts))) - statistics.median(random.choices(tp, k=len(tp)))
              for _ in range(2000))
print(f"difference of the medians, 95% bootstrap interval: {boot[50]:+.1f} .. {boot[1949]:+.1f} ms")
print(f"median of the {len(pairs)} paired differences (stored - plain, back to back): {statistics.median(pairs):+.1f} ms")
d = med["stored"] - med["plain"]
print(f"added by a named volume and two secrets: {d:+.1f} ms (median), ratio {med['stored'] / med['plain']:.3f}x; "
      f"target <= 10 ms more: {'met' if d <= 10 else 'NOT met'}")
EOF
}

if [ -n "${ANALYSE:-}" ]; then analyse "$ANALYSE"; exit 0; fi


cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    docker rm -f $(docker ps -aq --filter label=orkestrator.worker=$W) >/dev/null 2>&1 || true
    docker network rm $(docker network ls -q --filter label=orkestrator.worker=$W) >/dev/null 2>&1 || true
    docker volume rm $(docker volume ls -q --filter label=orkestrator.worker=$W) >/dev/null 2>&1 || true
    if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
    rm -rf "$SECRETS" "${CLI_SECRETS:-}"
}
trap cleanup EXIT

# A volume of an earlier run would make the first start of `stored` find it instead of making it.
docker volume rm $(docker volume ls -q --filter label=orkestrator.worker=$W) >/dev/null 2>&1 || true

"$BIN" server --port "$PORT" --data-dir "$WORK/m" --heartbeat-interval 500ms >"$WORK/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do "$BIN" health >/dev/null 2>&1 && break; sleep 0.1; done
ORKESTRATOR_LOG=${WORKER_LOG:-info,bollard=debug} "$BIN" worker --manager "$ORKESTRATOR_ADDR" --name $W --port "$WPORT" \
    --data-dir "$WORK/w" --secrets-dir "$SECRETS" --stop-grace 2s >"$WORK/worker.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    "$BIN" workers -o json 2>/dev/null | grep -q '"Ready"' && break
    sleep 0.1
done

# Two secrets: one given on the command line, one from a file (a 2 KiB PEM-sized value).
"$BIN" secret create bench-user --from-literal app >/dev/null
head -c 1536 /dev/urandom | base64 >"$WORK/pass.txt"
"$BIN" secret create bench-key -f "$WORK/pass.txt" >/dev/null

job_yaml() { # NAME STORED(0|1)
    cat <<EOF
name: $1
network: { mode: $NETWORK }
EOF
    if [ "$2" = 1 ]; then
        cat <<EOF
volumes:
  data: { type: volume }
EOF
    fi
    cat <<EOF
tasks:
  - name: main
    image: $IMAGE
    user: "1000:1000"
    resources: { cpu: $CPU, memory: 16Mi }
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
EOF
    if [ "$2" = 1 ]; then
        cat <<EOF
    mounts: [{ volume: data, path: /data }]
    secrets: [{ name: bench-user }, { name: bench-key }]
EOF
    fi
}
job_yaml plain 0 >"$WORK/plain.yaml"
job_yaml stored 1 >"$WORK/stored.yaml"

# The manager's events and the engine's, for the whole run.
"$BIN" events -o json >"$WORK/events.jsonl" 2>"$WORK/events.err" &
PIDS+=($!)
docker events --filter type=container --filter label=orkestrator.worker=$W \
    --format '{{json .}}' >"$WORK/docker.jsonl" &
PIDS+=($!)
sleep 1

phase() { "$BIN" status "$1" -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["phase"])' 2>/dev/null || echo none; }
wait_until() { # WHAT COMMAND...: polls every 50 ms, for at most 60 s
    local what=$1; shift
    for _ in $(seq 1200); do "$@" && return 0; sleep 0.05; done
    echo "timed out waiting for $what" >&2
    exit 1
}
is_phase() { [ "$(phase "$1")" = "$2" ]; }
no_containers() { [ -z "$(docker ps -aq --filter label=orkestrator.job="$1")" ]; }
no_secret_files() { [ -z "$(ls -A "$SECRETS")" ]; }

one_start() { # JOB run|restart
    if [ "$2" = run ]; then
        "$BIN" run -f "$WORK/$1.yaml" >/dev/null
    else
        "$BIN" restart "$1" >/dev/null
    fi
    wait_until "$1 Running" is_phase "$1" Running
    "$BIN" stop "$1" --wait >/dev/null
    wait_until "$1's container removed" no_containers "$1"
    wait_until "the secret files removed" no_secret_files
    # The worker removes what is left of an instance in the background: let it settle.
    sleep 0.3
}

echo "== volumes and secrets: $N starts of each job, network mode $NETWORK, cpu $CPU =="
one_start plain run
one_start stored run
for i in $(seq "$N"); do
    if [ $((i % 2)) = 1 ]; then
        one_start plain restart; one_start stored restart
    else
        one_start stored restart; one_start plain restart
    fi
    [ $((i % 10)) = 0 ] && echo "$i of $N"
done
sleep 1

analyse "$WORK"

# The engine alone, for comparison (ENGINE=PAIRS): the same two containers made with the docker CLI
# (the worker's limits and options; the volume and two read-only bind mounts of files on a
# tmpfs), `docker create` then `docker start`, pairs alternated as above. The CLI's own time is in
# both sides alike. ENGINE_FILES=fresh (the default) writes the two files in a new directory for
# each start, as the worker does for each instance; ENGINE_FILES=same mounts the same two files
# every time.
[ -n "${ENGINE:-}" ] || exit 0
echo
echo "== the engine alone: $ENGINE pairs of docker create + start, with and without the mounts (files: ${ENGINE_FILES:-fresh}) =="
# Not in the worker's secrets directory: the worker removes what no instance of its own owns there.
CLI_SECRETS=$(mktemp -d /dev/shm/ork-bench-storage-cli.XXXXXX)
docker volume create --label orkestrator.worker=$W ork-bench-storage-cli >/dev/null
python3 - "$ENGINE" "$CPU" "$CLI_SECRETS" "$IMAGE" "${ENGINE_FILES:-fresh}" "$WORK/pass.txt" <<'PY'
import os, statistics, subprocess, sys, time
n, cpu, sec, image, files, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
cpus = str(int(cpu[:-1]) / 1000) if cpu.endswith("m") else cpu
value = open(key).read()
def written(i):
    d = os.path.join(sec, str(i) if files == "fresh" else "same", "main")
    if not os.path.isdir(d):
        os.makedirs(d, mode=0o700)
        for j, v in enumerate(("app", value)):
            p = os.path.join(d, str(j))
            with open(p, "w") as f:
                f.write(v)
            os.chmod(p, 0o400)
            os.chown(p, 1000, 1000)
    return d
base = ["docker", "create", "--cpus", cpus, "--memory", "16m", "--memory-swap", "16m",
        "--pids-limit", "4096", "--security-opt", "no-new-privileges:true", "--network", "none",
        "--user", "1000:1000"]
cmd = [image, "sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
res = {"plain": [], "stored": []}
def one(kind, i):
    mounts = []
    if kind == "stored":
        d = written(i)
        mounts = ["-v", "ork-bench-storage-cli:/data",
                  "--mount", f"type=bind,source={d}/0,target=/run/secrets/bench-user,readonly",
                  "--mount", f"type=bind,source={d}/1,target=/run/secrets/bench-key,readonly"]
    t0 = time.monotonic()
    cid = subprocess.check_output(base + mounts + cmd).decode().strip()
    t1 = time.monotonic()
    subprocess.check_call(["docker", "start", cid], stdout=subprocess.DEVNULL)
    t2 = time.monotonic()
    subprocess.check_call(["docker", "rm", "-f", cid], stdout=subprocess.DEVNULL)
    res[kind].append(((t1 - t0) * 1000, (t2 - t1) * 1000))
    time.sleep(0.3)
for i in range(n):
    for k in (("plain", "stored") if i % 2 == 0 else ("stored", "plain")):
        one(k, i)
print(f"{'(medians, ms)':14} {'create':>8} {'start':>8} {'both':>8}")
m = {}
for k in res:
    m[k] = [statistics.median(x[0] for x in res[k]), statistics.median(x[1] for x in res[k]),
            statistics.median(x[0] + x[1] for x in res[k])]
    print(f"{k:14} {m[k][0]:8.1f} {m[k][1]:8.1f} {m[k][2]:8.1f}")
print(f"{'added':14} {m['stored'][0] - m['plain'][0]:+8.1f} {m['stored'][1] - m['plain'][1]:+8.1f} {m['stored'][2] - m['plain'][2]:+8.1f}")
pairs = [s[1] - p[1] for p, s in zip(res["plain"], res["stored"])]
print(f"median of the {n} paired differences of the start: {statistics.median(pairs):+.1f} ms")
pairs = [s[0] + s[1] - p[0] - p[1] for p, s in zip(res["plain"], res["stored"])]
print(f"median of the {n} paired differences of create + start: {statistics.median(pairs):+.1f} ms")
PY
