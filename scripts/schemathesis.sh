#!/usr/bin/env bash
# The API's contract test (issue 11): starts a throwaway manager (its own temporary data dir, no
# workers) on a free loopback port, and runs schemathesis against the OpenAPI document it serves
# at /v1/openapi.json: every operation gets generated requests (examples, coverage, fuzzing and
# stateful phases), and every answer is checked for server errors (5xx), for a status, a content
# type and a body that the document allows; with the operator token (when the manager has
# authentication), then once more without a credential for the public operations. Exits non-zero
# on any failure. Builds nothing.
#
# Usage: scripts/schemathesis.sh [PATH-TO-ORKESTRATOR-BINARY]
#   (default: target/release/orkestrator, else target/debug/orkestrator)
#
# Environment:
#   SCHEMATHESIS_MAX_EXAMPLES   cases per operation in the fuzzing phase (default 40: with the
#                               other phases, well over 1,000 cases in all)
#   SCHEMATHESIS_SEED           a seed, to repeat a run
#   SCHEMATHESIS_WORKERS        concurrent schemathesis workers (default 2)
#   SCHEMATHESIS_CHECKS         the checks (default: not_a_server_error, status_code_conformance,
#                               content_type_conformance, response_schema_conformance and, when
#                               the manager has authentication, ignored_auth)
#   SCHEMATHESIS_REPORTS        report formats (default junit,ndjson; har keeps every exchange)
#   SCHEMATHESIS_REPORT_DIR     where the reports go (default: a temporary dir, removed after)
#   SCHEMATHESIS_SCHEMA         a document file (relative to the repository) to test instead of
#                               the one the binary serves: to work on
#                               orkestrator-runtime/src/http/openapi.json without a rebuild
#   KEEP_WORK=1                 keep the temporary dir (server log, config, output)
#
# The manager runs in a network namespace of its own where only the loopback interface exists
# (when `unshare --net` works: as root, or with user namespaces), so that whatever addresses the
# fuzzed registrations give, the manager can reach nothing outside this machine. Where no such
# namespace can be made, the embedded scheduler is turned off instead, so that nothing fuzzed is
# placed and no worker address is ever called.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A version that runs on Python 3.9 and later (checked with 3.11).
SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-40}
WORKERS=${SCHEMATHESIS_WORKERS:-2}
STARTUP_DEADLINE_SECS=30

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'schemathesis.sh: %s\n' "$*" >&2; exit 2; }

target_dir=${CARGO_TARGET_DIR:-target}
bin=${1:-}
if [ -z "$bin" ]; then
    for candidate in "$target_dir/release/orkestrator" "$target_dir/debug/orkestrator"; do
        if [ -x "$candidate" ]; then
            bin=$candidate
            break
        fi
    done
    [ -n "$bin" ] || die "no orkestrator binary under $target_dir/{release,debug}: build it (cargo build --release -p orkestrator-bin) or pass its path"
fi
[ -x "$bin" ] || die "$bin is not an executable"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

# --- schemathesis, in a venv of its own -------------------------------------------------------
venv=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/orkestrator-schemathesis/venv-$SCHEMATHESIS_VERSION
st=$venv/bin/schemathesis
if ! "$st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    command -v python3 >/dev/null || die "python3 is needed to install schemathesis"
    say "installing schemathesis $SCHEMATHESIS_VERSION into $venv ($(python3 --version))"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
        || die "pip could not install schemathesis==$SCHEMATHESIS_VERSION"
fi
"$st" --version >&2

# --- into a network namespace with only loopback ----------------------------------------------
embedded_scheduler=()
if [ -z "${ORKESTRATOR_ST_NETNS:-}" ]; then
    if command -v unshare >/dev/null && command -v ip >/dev/null; then
        for how in "--net" "--map-root-user --net"; do
            # shellcheck disable=SC2086
            if unshare $how true 2>/dev/null; then
                say "running in a network namespace of its own (unshare $how)"
                # shellcheck disable=SC2086
                exec env ORKESTRATOR_ST_NETNS=1 unshare $how bash "$0" "$bin"
            fi
        done
    fi
    say "no network namespace can be made here: the embedded scheduler is turned off instead"
    embedded_scheduler=(--no-embedded-scheduler)
else
    ip link set lo up
fi

# --- a throwaway manager ----------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/orkestrator-schemathesis.XXXXXX")
data_dir=$work/data
report_dir=${SCHEMATHESIS_REPORT_DIR:-$work/report}
mkdir -p "$data_dir" "$report_dir"
server_pid=
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ -z "${SCHEMATHESIS_REPORT_DIR:-}" ] && [ "${KEEP_WORK:-}" != 1 ]; then
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
say "starting $bin server on $base (data dir $data_dir)"
# Its token files and the pointer to them stay in the work dir too.
XDG_RUNTIME_DIR=$work/run "$bin" server --port "$port" --bind 127.0.0.1 --data-dir "$data_dir" \
    "${embedded_scheduler[@]}" >"$work/server.log" 2>&1 &
server_pid=$!

deadline=$((SECONDS + STARTUP_DEADLINE_SECS))
until python3 - "$base/v1/health" <<'EOF' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        tail -n 30 "$work/server.log" >&2
        die "the manager exited before it answered /v1/health"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        tail -n 30 "$work/server.log" >&2
        die "the manager did not answer /v1/health within ${STARTUP_DEADLINE_SECS}s"
    fi
    sleep 0.2
done

auth=()
filters=()
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
victim=
if [ -s "$data_dir/operator.token" ]; then
    token=$(head -n 1 "$data_dir/operator.token" | tr -d '[:space:]')
    auth=(--header "Authorization: Bearer $token")
    say "authenticating with the operator token from $data_dir/operator.token"
    # And every operation that needs a credential must refuse a request without one (or with a
    # bad one).
    checks=$checks,ignored_auth
    # The one token the run may revoke: DELETE /v1/tokens/{id} is pinned to it, so that the
    # run never revokes the operator token it works with.
    victim=$(python3 - "$base/v1/tokens" "$token" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(
    sys.argv[1],
    data=json.dumps({"role": "read", "name": "schemathesis: to be revoked"}).encode(),
    headers={"Authorization": "Bearer " + sys.argv[2], "Content-Type": "application/json"},
    method="POST",
)
with urllib.request.urlopen(req, timeout=5) as r:
    print(json.load(r)["info"]["id"])
PY
) || die "cannot create the token the run revokes (POST /v1/tokens)"
else
    # A manager without authentication: its token endpoints do not exist.
    say "no $data_dir/operator.token: running without a credential, token and session endpoints left out"
    filters=(--exclude-tag auth)
fi
checks=${SCHEMATHESIS_CHECKS:-$checks}

# What keeps each case short: an event stream is read up to its first event (the bookmark every
# stream opens with), long-polls wait 20 ms (not the default 30 s), and logs are read, not
# followed (a followed task without a container waits for one). Revocations revoke one token
# made for that (below), never the run's own.
config=$work/schemathesis.toml
cat >"$config" <<'EOF'
request-timeout = 10.0

[[operations]]
include-name = "GET /v1/events"
max-stream-events = 1

[[operations]]
include-name = "GET /v1/jobs/{job}/logs"
parameters = { "query.follow" = "false" }

[[operations]]
include-name = ["GET /v1/workers/{id}/assignments", "GET /v1/schedulers/{id}/work"]
parameters = { "query.wait" = "20ms" }
EOF
if [ -n "$victim" ]; then
    cat >>"$config" <<EOF

[[operations]]
include-name = "DELETE /v1/tokens/{id}"
parameters = { "path.id" = "$victim" }
EOF
fi

# Schemathesis writes JSON and YAML bodies itself; POST /v1/jobs also reads TOML, written here.
# A value TOML cannot hold (a body that is not a table, a null) is sent as its JSON text, which
# the manager must refuse as a malformed spec.
mkdir -p "$work/hooks"
cat >"$work/hooks/orkestrator_hooks.py" <<'PY'
import json
import re

import schemathesis
from hypothesis.internal import lambda_sources

# Hypothesis names the lambdas of its filters by parsing their source, for display only; on
# CPython 3.11 that parse can fail now and then ("AST constructor recursion depth mismatch")
# and turn a case into an error. A name it cannot find is not worth an error.
_describe = lambda_sources.lambda_description


def _lambda_description(f):
    try:
        return _describe(f)
    except Exception:
        return "lambda: <unknown>"


lambda_sources.lambda_description = _lambda_description

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class NotToml(Exception):
    pass


def _string(s):
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code <= 0xFFFF:
            out.append("\\u%04X" % code)
        else:
            out.append("\\U%08X" % code)
    out.append('"')
    return "".join(out)


def _key(k):
    return k if BARE_KEY.fullmatch(k) else _string(k)


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise NotToml(type(v).__name__)


@schemathesis.serializer("application/toml")
def to_toml(ctx, value):
    try:
        if not isinstance(value, dict):
            raise NotToml(type(value).__name__)
        text = "".join(f"{_key(k)} = {_value(v)}\n" for k, v in value.items())
    except NotToml:
        text = json.dumps(value)
    return text.encode("utf-8")
PY

seed=()
[ -n "${SCHEMATHESIS_SEED:-}" ] && seed=(--seed "$SCHEMATHESIS_SEED")

location=("$base/v1/openapi.json")
if [ -n "${SCHEMATHESIS_SCHEMA:-}" ]; then
    location=("$(cd "$(dirname "$SCHEMATHESIS_SCHEMA")" && pwd)/$(basename "$SCHEMATHESIS_SCHEMA")" --url "$base")
fi
# One schemathesis run: NAME, then its own arguments; its output goes to $work/NAME.out, its
# case count to $cases_NAME.
run_schemathesis() {
    local name=$1
    shift
    say "schemathesis run ${location[0]} ($name, --max-examples $MAX_EXAMPLES)"
    set +e
    PYTHONPATH=$work/hooks SCHEMATHESIS_HOOKS=orkestrator_hooks "$st" --config-file "$config" \
        run "${location[@]}" "${seed[@]}" "$@" \
        --max-examples "$MAX_EXAMPLES" \
        --workers "$WORKERS" \
        --generation-with-security-parameters false \
        --generation-database none \
        --no-color \
        --report "${SCHEMATHESIS_REPORTS:-junit,ndjson}" --report-dir "$report_dir/$name" \
        2>&1 | tee "$work/$name.out"
    local status=${PIPESTATUS[0]}
    set -e
    local n
    n=$(grep -A1 'Test cases:' "$work/$name.out" | sed -n 's/^ *\([0-9][0-9]*\) generated.*/\1/p' | tail -n 1)
    printf -v "cases_$name" '%s' "${n:-0}"
    return "$status"
}

say "checks: $checks"
failed=0
run_schemathesis main "${auth[@]}" "${filters[@]}" --checks "$checks" || failed=1
total=$cases_main
if [ "${#auth[@]}" -gt 0 ]; then
    # The operations anyone may call, once more without a credential: their answers differ
    # (GET /v1/health is only `{"status": "up"}` then).
    # Reading the document needs a credential: this run reads the copy the first one tested.
    if [ -z "${SCHEMATHESIS_SCHEMA:-}" ]; then
        python3 - "$base/v1/openapi.json" "$token" "$work/openapi.json" <<'PY' \
            || die "cannot read $base/v1/openapi.json"
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
with urllib.request.urlopen(req, timeout=5) as r, open(sys.argv[3], "wb") as out:
    out.write(r.read())
PY
        location=("$work/openapi.json" --url "$base")
    fi
    run_schemathesis public \
        --include-operation-id getHealth \
        --include-operation-id createSession \
        --include-operation-id deleteSession \
        --checks "${checks/,ignored_auth/}" || failed=1
    total=$((total + cases_public))
fi

echo "schemathesis: $total generated cases in all, $( [ "$failed" = 0 ] && echo "no failures" || echo "FAILURES (see above)")"
if ! kill -0 "$server_pid" 2>/dev/null; then
    tail -n 30 "$work/server.log" >&2
    echo "schemathesis.sh: the manager died during the run" >&2
    exit 1
fi
if [ "$failed" -ne 0 ]; then
    echo "schemathesis.sh: failures found (server log: $work/server.log with KEEP_WORK=1)" >&2
    exit 1
fi
