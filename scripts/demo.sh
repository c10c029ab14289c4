#!/usr/bin/env bash
# The all-in-one local cluster: builds the example image if the engine lacks it, builds
# orkestrator, and runs `orkestrator dev --run examples/jobs/web.yaml`: a manager, the embedded
# scheduler and one Docker worker in one process, running the example job.
#
#   scripts/demo.sh            serve until Ctrl-C (jobs are stopped on exit)
#   scripts/demo.sh --exit     stop the job and exit once it runs
#   JOB=examples/jobs/pair.json scripts/demo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

docker info >/dev/null 2>&1 || {
    echo "error: the Docker engine does not answer (docker info fails): start it (sudo dockerd) and retry" >&2
    exit 1
}
# The build needs protoc (the etcd client compiles etcd's protobuf definitions); the tests also
# start local etcd members. Install both where apt-get can.
if ! command -v protoc >/dev/null 2>&1 || ! command -v etcd >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        sudo_=""
        [ "$(id -u)" -eq 0 ] || sudo_="sudo"
        echo "installing protobuf-compiler and etcd-server (protoc for the build, etcd for the tests)"
        $sudo_ apt-get install -y protobuf-compiler etcd-server >/dev/null 2>&1 ||
            { $sudo_ apt-get update >/dev/null && $sudo_ apt-get install -y protobuf-compiler etcd-server >/dev/null; } ||
            echo "warning: could not install protobuf-compiler / etcd-server" >&2
    fi
    command -v protoc >/dev/null 2>&1 || {
        echo "error: protoc is missing (install protobuf-compiler); the etcd client's build needs it" >&2
        exit 1
    }
fi
scripts/build-test-image.sh
cargo build --release --bin orkestrator
exec target/release/orkestrator dev --run "${JOB:-examples/jobs/web.yaml}" "$@"
