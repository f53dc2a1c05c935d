# valkey-chaos tasks. Logic lives in Rust and in .ci/setup; recipes stay thin.

set shell := ["bash", "-euo", "pipefail", "-c"]
export PATH := justfile_directory() + "/.tools/bin:" + env_var("PATH")

target := ""

# List the recipes.
default:
    @just --list

# Install valkey-server, Debian's redis, the Python venv and the wasm target under .tools/ (idempotent).
setup:
    bash .ci/setup

# Build the example and fixture WASM plugins (plugins/target/wasm32-wasip2/release/*.wasm).
plugins: setup
    cd plugins && cargo build --release --target wasm32-wasip2 -q

# Formatting, clippy with warnings as errors, and the module layering (lower layers never import higher ones).
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -q -- -D warnings
    cargo test -q -p valkey-chaos --lib layering
    cd plugins && cargo fmt --all -- --check

# Every test: unit tests, then the integration suite against real servers.
test: setup plugins
    cargo build -p valkey-chaos -q
    cargo test --workspace -q -- --test-threads 2

# The cutover gate: the ECHO-shaped suite with faults; exit 0 means safe to cut over. TARGET=rediss://… for staging.
chaos TARGET=target: setup plugins
    cargo build --release -q -p valkey-chaos
    ./target/release/valkey-chaos run scenarios/cutover/*.toml --out out/chaos {{ if TARGET != "" { "--target " + TARGET } else { "" } }}

# A one-minute smoke version of the cutover gate: typical day, failover, latency, connection storm.
chaos-quick TARGET=target: setup plugins
    cargo build --release -q -p valkey-chaos
    ./target/release/valkey-chaos run scenarios/cutover/0[1347]-*.toml --duration 15s --out out/chaos-quick {{ if TARGET != "" { "--target " + TARGET } else { "" } }}

# Benchmarks against peers measured in the same run (redis-benchmark, redis-py, Python Dramatiq).
bench: setup plugins
    cargo build --release -q -p valkey-chaos
    ./target/release/valkey-chaos bench --out out/bench

# Start a local topology for poking around: just up 1 3
up REPLICAS="0" SENTINELS="0": setup
    cargo run --release -q -p valkey-chaos -- up --replicas {{REPLICAS}} --sentinels {{SENTINELS}}

# Render a report.html in headless Chromium (apt-get installs it if missing) into a .png; fail on console errors.
report-check REPORT="out/report-check/report.html":
    #!/usr/bin/env bash
    set -euo pipefail
    if ! command -v chromium >/dev/null; then sudo=$([ "$(id -u)" = 0 ] || echo sudo); $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium; fi
    if [ ! -f "{{REPORT}}" ]; then cargo build -q -p valkey-chaos && ./target/debug/valkey-chaos run scenarios/cache-smoke.toml --duration 3s -q --out "$(dirname "{{REPORT}}")" || [ $? = 1 ]; fi
    png="{{ without_extension(REPORT) }}.png"; log=$(mktemp); profile=$(mktemp -d)
    timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update --disable-sync --no-first-run --user-data-dir="$profile" --enable-logging=stderr --v=0 --window-size=1200,2600 --screenshot="$png" "file://$(realpath "{{REPORT}}")" 2>"$log"; rm -rf "$profile"
    if grep -E ':CONSOLE|net::ERR_' "$log"; then echo "report-check: console errors in {{REPORT}}" >&2; exit 1; fi
    echo "report-check: {{REPORT}} rendered cleanly to $png"
