#!/usr/bin/env bash
# Runs every check ohkit has, in the order CI runs them: rustfmt, clippy for the server build
# (ssr) and for the browser build (hydrate, wasm32), all cargo tests (storage tests against
# SQLite and PostgreSQL), and the Playwright suite against a freshly built server.
#
# Usage: scripts/test.sh
# PostgreSQL tests use OHKIT_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test);
# when nothing listens there they are reported as ignored, with the reason, not as passed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
started=$(date +%s)

scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
if [ -f target/.ohkit-toolchain ]; then export RUSTUP_TOOLCHAIN="$(cat target/.ohkit-toolchain)"; fi
# cargo-leptos builds the server with this flag in debug mode; giving every cargo command the
# same flags lets clippy, the tests and the browser build share one set of compiled crates.
export RUSTFLAGS="--cfg erase_components"

step() { printf '\n\033[1m==> %s\033[0m (%ss)\n' "$*" "$(($(date +%s) - started))"; }

step "rustfmt"
cargo fmt --all --check

step "clippy, server build (ssr)"
cargo clippy --locked --workspace --exclude frontend --all-targets -- -D warnings

step "clippy, browser build (hydrate, wasm32)"
cargo clippy --locked -p frontend --target wasm32-unknown-unknown -- -D warnings

step "cargo tests"
export OHKIT_TEST_POSTGRES_URL="${OHKIT_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
pg_hostport="$(echo "$OHKIT_TEST_POSTGRES_URL" | sed -E 's#^[a-z]+://([^@/]*@)?([^/:?]+)(:([0-9]+))?.*#\2 \4#')"
read -r pg_host pg_port <<<"$pg_hostport"
if timeout 3 bash -c "</dev/tcp/$pg_host/${pg_port:-5432}" 2>/dev/null; then
    echo "PostgreSQL answers at $pg_host:${pg_port:-5432}: running the PostgreSQL tests too"
    cargo test --locked --workspace --exclude frontend -- --include-ignored
else
    echo "SKIPPED: the PostgreSQL tests (nothing listens at $pg_host:${pg_port:-5432}); they are listed as ignored"
    cargo test --locked --workspace --exclude frontend
fi

step "browser tests (Playwright in Chromium, against a built server)"
rm -rf target/e2e-data
OHKIT_DATA_DIR="$ROOT/target/e2e-data" cargo leptos end-to-end

step "all checks passed in $(($(date +%s) - started)) s"
