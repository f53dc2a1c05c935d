# valkey-chaos tasks for those who have just: every recipe is `cargo xtask <recipe>`, whose logic
# lives in tests/xtask/main.rs. Without just: `cargo xtask help`, `cargo chaos`, `cargo suite`.

set positional-arguments

# List the recipes.
default:
    @just --list

# Install valkey-server 9.x and 8.1, Debian's redis, helm, the Python venv and the wasm target under .tools/ (idempotent).
setup:
    cargo xtask setup

# Build the example and fixture WASM plugins (plugins/target/wasm32-wasip2/release/*.wasm).
plugins:
    cargo xtask plugins

# Formatting, clippy with warnings as errors (workspace and plugins), and the module layering.
lint:
    cargo xtask lint

# Every test against real servers; arguments pass through (`just test -- shard::`).
test *ARGS:
    cargo xtask test "$@"

# The cutover gate; exit 0 means safe to cut over. `just chaos rediss://…` for staging.
chaos *ARGS:
    cargo xtask chaos "$@"

# A one-minute smoke version of the cutover gate: typical day, failover, latency, connection storm.
chaos-quick *ARGS:
    cargo xtask chaos-quick "$@"

# Benchmarks against peers measured in the same run (redis-benchmark, redis-py, Python Dramatiq).
bench *ARGS:
    cargo xtask bench "$@"

# Start a local topology for poking around: just up 1 3
up *ARGS:
    cargo xtask up "$@"

# Render a report.html in headless Chromium into a .png; fail on console errors.
report-check *ARGS:
    cargo xtask report-check "$@"

# What CI runs: setup, lint, test.
ci:
    cargo xtask ci
