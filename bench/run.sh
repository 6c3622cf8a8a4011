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
RUST_LOG=warn,server::tokens=info OHKIT_DATA_DIR="$DATA" LEPTOS_SITE_ADDR="127.0.0.1:$PORT" LEPTOS_SITE_ROOT=target/site \
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

# --- enrollment through the in-process sandbox, with curl as the browser ----------------------
SANDBOX="$BASE/oh-sandbox"
JAR="$DATA/cookies"

# enroll USER: joins as USER with a fresh cookie jar; prints the callback's time in seconds.
enroll() {
    rm -f "$JAR" "$JAR.oh"
    local authorize login_next callback
    authorize=$(curl -s -o /dev/null -c "$JAR" -b "$JAR" -w '%{redirect_url}' "$BASE/join")
    # Anonymous at the sandbox: it sends us to its login page, which returns to the authorize URL.
    login_next=$(curl -s -o /dev/null -c "$JAR.oh" -b "$JAR.oh" -w '%{redirect_url}' "$authorize")
    curl -s -o /dev/null -c "$JAR.oh" -b "$JAR.oh" --data-urlencode "username=$1" \
        --data-urlencode "next=$authorize" "$login_next" >/dev/null
    callback=$(curl -s -o "$DATA/consent.html" -c "$JAR.oh" -b "$JAR.oh" -w '%{redirect_url}' "$authorize")
    if [ -z "$callback" ]; then
        # The consent page: post its hidden fields back with allow.
        local fields
        fields=$(grep -o '<input type="hidden" name="[^"]*" value="[^"]*"' "$DATA/consent.html" \
            | sed -E 's/.*name="([^"]*)" value="([^"]*)"/--data-urlencode \1=\2/' | tr '\n' ' ')
        # shellcheck disable=SC2086
        callback=$(curl -s -o /dev/null -c "$JAR.oh" -b "$JAR.oh" -w '%{redirect_url}' \
            $fields --data-urlencode "allow=Authorize project" "$authorize")
    fi
    curl -s -o /dev/null -c "$JAR" -b "$JAR" -w '%{time_total}\n' "$(echo "$callback" | sed 's/&amp;/\&/g')"
}

ENROLLS="${OHKIT_BENCH_ENROLLS:-40}"
: >"$DATA/callback-times"
for i in $(seq 1 "$ENROLLS"); do
    enroll "$(echo alice bob carmen dmitri esi | cut -d' ' -f$(( (i - 1) % 5 + 1 )))" >>"$DATA/callback-times"
done
sort -n "$DATA/callback-times" | awk '{ t[NR] = $1 * 1000 } END {
    p50 = t[int((NR + 1) / 2)]; p99 = t[int(NR * 0.99 + 0.999)]
    printf "\ncallback (code exchange + exchange-member + database), %d enrollments: p50 %.1f ms, p99 %.1f ms\n", NR, p50, p99 }'

# Dashboard SSR for the last enrolled member, against the same bare route.
cookie=$(awk '$6 == "ohkit_session" { print $7 }' "$JAR")
read -r rps p99 bad < <(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Cookie: ohkit_session=$cookie" \
    "$BASE/dashboard" | awk '/Requests\/sec/ { r = $2 } /^ +99%/ { p = $2 } /Non-2xx/ { b = $NF }
    END { printf "%s %s %s\n", r, p, (b == "" ? 0 : b) }')
ratio=$(awk -v a="$rps" -v b="$bare_rps" 'BEGIN { printf "%.3f", a / b }')
printf '%-22s %12s %10s %9s %12s\n' "dashboard (signed in)" "$rps" "$p99" "$bad" "$ratio"

# 1,000 concurrent dashboard loads for one member whose access token has just expired. The member
# enrolls with 2-second tokens; the switch then goes back to 10 hours, so that the one refresh
# the burst needs yields a token that lasts. The sandbox counts the refreshes it grants.
switches="legacy_webhook_retry=on&fault_error_rate=0&fault_latency_ms=0&advance_clock=0"
curl -s -o /dev/null -X POST "$SANDBOX/sandbox/switches/" --data "token_lifetime=2&$switches"
enroll esi >/dev/null
cookie=$(awk '$6 == "ohkit_session" { print $7 }' "$JAR")
curl -s -o /dev/null -X POST "$SANDBOX/sandbox/switches/" --data "token_lifetime=36000&$switches"
sleep 3
refreshes() { curl -fs "$SANDBOX/sandbox/stats/" | sed -E 's/.*"refreshes":([0-9]+).*/\1/'; }
before=$(refreshes)
seq 1 1000 | xargs -P 1000 -I{} curl -s -o /dev/null -w '%{http_code}\n' \
    -H "Cookie: ohkit_session=$cookie" "$BASE/dashboard" >"$DATA/burst-codes"
after=$(refreshes)
printf '\n1000 concurrent dashboard loads, access token expired: %s refresh(es) at the sandbox; answers: %s\n' \
    "$((after - before))" "$(sort "$DATA/burst-codes" | uniq -c | awk '{ printf "%s x %s  ", $1, $2 }')"

wasm="target/site/pkg/ohkit.wasm"
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
printf '\nrelease wasm: %s bytes raw, %s bytes gzipped (gzip -9)\n' "$raw" "$gz"
printf 'machine: %s cores; wrk and the server share them; %s s per target, %s connections\n' \
    "$(nproc)" "$DURATION" "$CONNECTIONS"
