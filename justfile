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

# Formatting, clippy with warnings as errors, and docs.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -q -- -D warnings
    cd plugins && cargo fmt --all -- --check

# Every test: unit tests, then the integration suite against real servers.
test: setup plugins
    cargo build -p valkey-chaos -q
    cargo test --workspace -q -- --test-threads 2

# The cutover gate: the ECHO-shaped suite with faults; exit 0 means safe to cut over. TARGET=rediss://… for staging.
chaos TARGET=target: setup
    cargo build --release -q -p valkey-chaos
    ./target/release/valkey-chaos run scenarios/cutover/*.toml --out out/chaos {{ if TARGET != "" { "--target " + TARGET } else { "" } }}

# A one-minute smoke version of the cutover gate.
chaos-quick TARGET=target: setup
    cargo build --release -q -p valkey-chaos
    ./target/release/valkey-chaos run scenarios/cutover/*.toml --duration 10s --out out/chaos-quick {{ if TARGET != "" { "--target " + TARGET } else { "" } }}

# Benchmarks against peers measured in the same run (redis-benchmark, redis-py, Python Dramatiq).
bench: setup plugins
    cargo build --release -q -p valkey-chaos
    ./target/release/valkey-chaos bench

# Start a local topology for poking around: just up 1 3
up REPLICAS="0" SENTINELS="0": setup
    cargo run --release -q -p valkey-chaos -- up --replicas {{REPLICAS}} --sentinels {{SENTINELS}}
