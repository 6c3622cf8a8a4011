#!/usr/bin/env bash
# Installs what building, serving and testing ohkit needs, and only what is missing or of the
# wrong version: the pinned Rust toolchain with the wasm32 target, cargo-leptos, the
# wasm-bindgen CLI matching Cargo.lock, wasm-opt (binaryen 123 from npm), Debian's Chromium and
# wrk, and the end2end npm packages. Quick when everything is already there.
#
# Usage: scripts/setup.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TOOLCHAIN="$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)"
CARGO_LEPTOS_VERSION="0.3.11"
BINARYEN_VERSION="123"
WASM_BINDGEN_VERSION="$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')"
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
die() { printf '\033[1;31msetup: %s\033[0m\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
APT_UPDATED=""
apt_install() {
    if [ -z "$APT_UPDATED" ]; then
        say "updating Debian's package lists"
        timeout 600 $SUDO apt-get update -qq || die "apt-get update failed"
        APT_UPDATED=1
    fi
    say "installing Debian packages: $*"
    DEBIAN_FRONTEND=noninteractive timeout 1800 $SUDO apt-get install -y -qq --no-install-recommends "$@" \
        || die "apt-get install $* failed"
}

# --- Rust toolchain -------------------------------------------------------------------------
debian_toolchain() {
    # rustup could not download: build the same compiler from Debian's packages, with a wasm32
    # standard library compiled once from the shipped source (see docs in shared toolchain notes).
    say "falling back to Debian's Rust $TOOLCHAIN packages"
    apt_install rustc-web cargo-web libstd-rust-web-dev rust-web-src rust-web-llvm rust-web-clippy \
        rustfmt-web lld-22
    local libdir=/usr/lib/rustlib/wasm32-unknown-unknown/lib
    local stamp="$libdir/.ohkit-stamp"
    local version
    version="$(/usr/bin/rustc --version)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$version" ]; then
        say "building the wasm32 standard library for $version (about a minute)"
        local tmp
        tmp="$(mktemp -d)"
        mkdir -p "$tmp/src"
        printf '[package]\nname = "stdbuild"\nversion = "0.0.0"\nedition = "2021"\n[lib]\npath = "src/lib.rs"\n' >"$tmp/Cargo.toml"
        : >"$tmp/src/lib.rs"
        (cd "$tmp" && RUSTC_BOOTSTRAP=1 RUSTFLAGS=-Cembed-bitcode=yes /usr/bin/cargo build -q --release \
            --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort) || die "building the wasm32 std failed"
        $SUDO mkdir -p "$libdir"
        find "$tmp/target/wasm32-unknown-unknown/release/deps" \( -name 'lib*.rlib' -o -name 'lib*.rmeta' \) \
            ! -name 'libstdbuild*' -exec $SUDO cp {} "$libdir/" \;
        echo "$version" | $SUDO tee "$stamp" >/dev/null
        rm -rf "$tmp"
    fi
    if command -v rustup >/dev/null; then
        rustup toolchain link ohkit-debian /usr >/dev/null
        echo "ohkit-debian" >"$ROOT/target/.ohkit-toolchain"
        say "Debian toolchain linked as ohkit-debian; scripts select it through target/.ohkit-toolchain"
    fi
}

mkdir -p target
if [ -f target/.ohkit-toolchain ]; then
    export RUSTUP_TOOLCHAIN="$(cat target/.ohkit-toolchain)"
    say "using the fallback toolchain $RUSTUP_TOOLCHAIN"
elif ! command -v rustup >/dev/null; then
    if ! command -v cargo >/dev/null || ! cargo --version | grep -q " $TOOLCHAIN"; then
        debian_toolchain
    fi
elif rustup toolchain list | grep -q "^$TOOLCHAIN-" \
    && rustup target list --installed --toolchain "$TOOLCHAIN" 2>/dev/null | grep -q wasm32-unknown-unknown \
    && rustup component list --installed --toolchain "$TOOLCHAIN" 2>/dev/null | grep -q '^clippy' \
    && rustup component list --installed --toolchain "$TOOLCHAIN" 2>/dev/null | grep -q '^rustfmt'; then
    say "Rust $TOOLCHAIN with wasm32, clippy and rustfmt: present"
else
    say "installing Rust $TOOLCHAIN with the wasm32 target, clippy and rustfmt"
    if ! timeout 600 rustup toolchain install "$TOOLCHAIN" --profile minimal \
        --component clippy,rustfmt --target wasm32-unknown-unknown; then
        say "rustup could not install $TOOLCHAIN"
        debian_toolchain
    fi
fi

# --- cargo tools ----------------------------------------------------------------------------
if cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
    say "cargo-leptos $CARGO_LEPTOS_VERSION: present"
else
    say "installing cargo-leptos $CARGO_LEPTOS_VERSION (a long build: about 30 minutes on 2 cores)"
    cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads \
        || die "installing cargo-leptos failed"
fi

if wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION\$"; then
    say "wasm-bindgen-cli $WASM_BINDGEN_VERSION: present"
else
    say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (the version Cargo.lock pins; about 3 minutes)"
    # Without --locked: the CLI's own lockfile pins a crate version the registry may not serve.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force \
        || die "installing wasm-bindgen-cli failed"
fi

# --- Debian packages ------------------------------------------------------------------------
missing=()
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
else
    say "node, npm, chromium, wrk, curl: present"
fi

# --- wasm-opt -------------------------------------------------------------------------------
# Debian's binaryen is too old: its wasm-opt corrupts wasm-bindgen's externref table.
if wasm-opt --version 2>/dev/null | grep -q "version $BINARYEN_VERSION"; then
    say "wasm-opt $BINARYEN_VERSION: present"
else
    say "installing wasm-opt from the npm package binaryen@$BINARYEN_VERSION"
    timeout 600 $SUDO npm install -g --no-fund --no-audit "binaryen@$BINARYEN_VERSION.0.0" \
        || die "npm install -g binaryen failed"
    hash -r
    wasm-opt --version | grep -q "version $BINARYEN_VERSION" \
        || die "wasm-opt on PATH is not version $BINARYEN_VERSION: $(command -v wasm-opt)"
fi

# --- end2end packages -----------------------------------------------------------------------
stamp="end2end/node_modules/.ohkit-lock"
if [ -f "$stamp" ] && cmp -s end2end/package-lock.json "$stamp"; then
    say "end2end npm packages: present"
else
    say "installing the end2end npm packages (npm ci; no browser download)"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 900 npm ci --no-fund --no-audit) \
        || die "npm ci in end2end failed"
    cp end2end/package-lock.json "$stamp"
fi

say "ready"
