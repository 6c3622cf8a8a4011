#!/usr/bin/env bash
# Measures the sandbox on loopback only: req/s and p99 for a bare axum route, exchange-member
# and token refresh, served by one process, side by side with their ratio to the bare route.
# Bounded: SECONDS_PER_PHASE (default 5, at most 60) per phase, CONCURRENCY (default 16).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${SECONDS_PER_PHASE:-5}"
concurrency="${CONCURRENCY:-16}"
cargo build --release -p sandbox --example loadgen
exec timeout 300 cargo run --release -q -p sandbox --example loadgen -- --seconds "$seconds" --concurrency "$concurrency"
