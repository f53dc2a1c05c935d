//! valkey-chaos: production-shaped load, fault injection and safety checks for a Redis → Valkey
//! migration.
//!
//! # Codemap (in data-flow order)
//!
//! - [`scenario`] reads a TOML scenario keeping every span and compiles it into a [`plan::Plan`],
//!   reporting all problems at once as `file:line:col: message` with a hint.
//! - [`plan`] is the compiled, valid-by-construction description of a run: workloads with their
//!   load model (open with intended starts, or closed), faults, thresholds.
//! - [`run`] orchestrates: target or embedded topology, workloads, the fault timeline, interval
//!   cuts, Ctrl-C, heal, oracles, checks, outputs. [`run::pacing`] hands out intended starts.
//! - [`valkey`] talks to servers: RESP, one lean connection per worker, reconnecting clients that
//!   follow Sentinel and the fault proxy, target URLs with TLS, embedded `valkey-server`s.
//! - [`workload`] holds one module per workload kind (`commands`, `dramatiq`, `lock`,
//!   `rate_limit`, `plugin`); each records samples and runs its end-of-run oracle.
//! - [`plugin`] hosts WASM scenario plugins (wasmtime components, one store per VU, sandboxed).
//! - [`fault`] injects faults on the timeline and heals them; [`fault::proxy`] is the TCP proxy
//!   that carries the network toxics.
//! - [`metrics`] are HdrHistogram recorders (latency from the intended start and service time),
//!   the interval collector and the `.hlog` writer.
//! - [`check`] evaluates thresholds (whole run or per phase) into checks.
//! - [`summary`] is the `summary.json` schema; [`report`] renders it.
//! - [`shard`] makes a plan one of N agents' share (rates and clients divided, keys shared,
//!   server faults on shard 0 only) so that `merge` of all shards judges the whole load.
//! - [`merge`] combines several agents' outputs into one summary with exact percentiles (the
//!   interval histograms are added) and re-judges the thresholds.
//! - [`export`] sends a run elsewhere while and after it happens: OTLP traces and metrics.
//! - [`compat`] is Phase 1 of the migration as a command: named probes of what the clients rely
//!   on, candidate against baseline; [`compare`] runs one scenario against both, side by side.
//! - [`provider`] is data about managed services (DigitalOcean, ElastiCache, Aiven): hostnames,
//!   refused commands and each one's way out; pure, `std` only.
//! - [`bench`] measures the agent against peers in the same run (`just bench`).
//! - [`cli`] parses arguments and maps outcomes to exit codes 0/1/2/3.
//!
//! # Architecture invariants
//!
//! - `scenario` never touches the network; a `Plan` only comes from `scenario::compile`.
//! - A failed Valkey operation is a recorded sample with an [`valkey::ErrorKind`], never an error
//!   that stops a worker.
//! - Workers never wait on the metrics pipeline beyond an uncontended stripe lock; nothing keeps
//!   every sample: histograms per interval, V2-encoded.
//! - `report` is a pure function of the summary.
//! - Every injected fault is healed: at its end, at the end of the run, on error, on Ctrl-C and
//!   SIGTERM; heal failures are reported and fail the verdict.
//! - Every process the agent starts dies with it (kill on drop, `PR_SET_PDEATHSIG`).
//! - Destructive faults never run against a non-local target without the double opt-in.
//! - `compat` writes only keys under `vc:compat:<nonce>:`, deletes them, and never flushes; the
//!   one setting it changes (`busy-reply-threshold`, for its busy-script probe) it restores.

pub mod bench;
pub mod check;
pub mod cli;
pub mod compare;
pub mod compat;
pub mod export;
pub mod fault;
pub mod merge;
pub mod metrics;
pub mod plan;
pub mod plugin;
pub mod provider;
pub mod report;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod shard;
pub mod summary;
pub mod valkey;
pub mod workload;
