#!/usr/bin/env bash
# Builds a release ohkit with the benchmark-only `/bench/hello` route, starts it on loopback with a
# throwaway data directory, and prints side by side, measured in this one run with wrk:
# requests per second and p99 latency of each page and of the bare axum route, and their ratio.
# Also prints the release WASM size, raw and gzipped.
#
# Usage: bench/run.sh [seconds per target, default 10] [connections, default 32]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DURATION="${1:-10}"
CONNECTIONS="${2:-32}"
PORT="${OHKIT_BENCH_PORT:-3900}"
BASE="http://127.0.0.1:$PORT"
export PATH="$HOME/.cargo/bin:$PATH"

scripts/setup.sh >/dev/null
echo "building release with --bin-features bench-routes…"
cargo leptos build --release --bin-features bench-routes >/dev/null 2>&1 \
    || cargo leptos build --release --bin-features bench-routes

DATA="$(mktemp -d)"
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DATA"' EXIT
RUST_LOG=warn OHKIT_DATA_DIR="$DATA" LEPTOS_SITE_ADDR="127.0.0.1:$PORT" LEPTOS_SITE_ROOT=target/site \
    LEPTOS_OUTPUT_NAME=ohkit target/release/ohkit serve 2>"$DATA/server.log" &
SERVER=$!
for _ in $(seq 1 200); do
    curl -fs "$BASE/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "$BASE/readyz" >/dev/null || { cat "$DATA/server.log"; echo "server did not start"; exit 1; }

# measure NAME PATH: prints "req/s p99" for PATH after a short warm-up.
measure() {
    wrk -t1 -c4 -d1s "$BASE$1" >/dev/null 2>&1
    wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$BASE$1" | awk '
        /Requests\/sec/ { rps = $2 }
        /^ +99%/ { p99 = $2 }
        /Non-2xx/ { bad = $NF }
        END { printf "%s %s %s\n", rps, p99, (bad == "" ? 0 : bad) }'
}

printf '\n%-22s %12s %10s %9s %12s\n' "target" "req/s" "p99" "non-2xx" "vs bare"
read -r bare_rps bare_p99 bare_bad < <(measure /bench/hello)
printf '%-22s %12s %10s %9s %12s\n' "bare axum /bench/hello" "$bare_rps" "$bare_p99" "$bare_bad" "1.00"
for target in "signup page /:/"; do
    name="${target%%:*}"
    path="${target#*:}"
    read -r rps p99 bad < <(measure "$path")
    ratio=$(awk -v a="$rps" -v b="$bare_rps" 'BEGIN { printf "%.3f", a / b }')
    printf '%-22s %12s %10s %9s %12s\n' "$name" "$rps" "$p99" "$bad" "$ratio"
done

wasm="target/site/pkg/ohkit.wasm"
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
printf '\nrelease wasm: %s bytes raw, %s bytes gzipped (gzip -9)\n' "$raw" "$gz"
printf 'machine: %s cores; wrk and the server share them; %s s per target, %s connections\n' \
    "$(nproc)" "$DURATION" "$CONNECTIONS"
