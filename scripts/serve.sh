#!/usr/bin/env bash
# Sets up what is missing, builds ohkit (release) and serves it on its embedded default: SQLite
# under ./data and the in-process Open Humans sandbox, at http://127.0.0.1:3000.
#
# Usage: scripts/serve.sh        (settings: see the README, or `target/release/ohkit --help`)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
if [ -f target/.ohkit-toolchain ]; then export RUSTUP_TOOLCHAIN="$(cat target/.ohkit-toolchain)"; fi

echo "Building ohkit (release; the first build takes several minutes)…"
cargo leptos build --release
echo "Serving ohkit at http://${LEPTOS_SITE_ADDR:-127.0.0.1:3000} (Ctrl-C stops it)"
export LEPTOS_SITE_ROOT="${LEPTOS_SITE_ROOT:-target/site}"
export LEPTOS_OUTPUT_NAME="${LEPTOS_OUTPUT_NAME:-ohkit}"
exec target/release/ohkit serve
