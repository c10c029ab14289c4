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
scripts/build-test-image.sh
cargo build --release --bin orkestrator
exec target/release/orkestrator dev --run "${JOB:-examples/jobs/web.yaml}" "$@"
