#!/usr/bin/env bash
# The scale harness's quick mode (issue 9), as CI would run it: builds the release manager and the
# harness, then runs `scale quick` — small versions of submit (concurrency 16), decay (100 vs
# 100,000 tasks present: fails below 0.5x), memory (fails above 4 KiB per task at 100,000 tasks)
# and c1m (200 simulated workers, 20,000 tasks: must complete). Every bound compares figures of
# the same run; none is an absolute time. Exits non-zero when a bound fails or a run breaks.
#
# Usage: scripts/bench-scale-quick.sh [--json] [other scale options]
# Needs a Rust toolchain only (no Docker: the workers are simulated).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet -p orkestrator-bin -p orkestrator-benches --bin orkestrator --bin scale
exec "${CARGO_TARGET_DIR:-target}/release/scale" quick "$@"
