//! valkey-chaos: production-shaped load, fault injection and safety checks for a Redis → Valkey
//! migration.
//!
//! # Codemap (in data-flow order)
//!
//! ```text
//! scenario.toml ─scenario::load(path, &Overrides)─▶ plan::Plan ─run::run─▶ summary::RunSummary
//!                                                      │                        │
//!                           workload::* · fault::* · plugin · metrics      report · export · merge
//! ```
//!
//! - [`scenario`] reads a TOML scenario keeping every span and compiles it, with the command
//!   line's [`scenario::Overrides`] (duration, seed, extra thresholds, shard), into a
//!   [`plan::Plan`]; all problems at once as `file:line:col: message` with a hint. Per-kind readers
//!   live in `scenario::workload::<kind>` and `scenario::fault`; `scenario::threshold` is the one
//!   threshold parser (also used by `merge`); `scenario::shard` makes a plan one shard's share.
//! - [`plan`] is plain data, valid by construction: workload and fault kinds, the load model,
//!   thresholds, the topology a run needs, every workload's counters declared with their
//!   [`plan::CounterKind`], and the fault schedule (`plan::schedule`, a pure function of the plan).
//! - [`run`] orchestrates in typed stages — `Ready` (plugins, `run::target`: target, destructive
//!   policy, faults refused or prepared, preflight) → `Running` (`run::barrier`: the shards of one
//!   run meet on the target and share one time zero; workloads and fault timeline started) →
//!   `Loaded` (`run::load`: interval cuts, progress, Ctrl-C) → `Drained` (stop, heal, each oracle
//!   drained; the rehearsal's report in `run::migration`) → recorded: the evidence judged once.
//! - [`valkey`] talks to servers: RESP, one lean connection per worker, reconnecting clients that
//!   follow Sentinel and the fault proxy, target URLs (`valkey::url`, pure) with TLS, embedded
//!   `valkey-server`s.
//! - [`workload`] holds one module per workload kind at run time; each records samples, keeps its
//!   history when it has an oracle, and drains at the end; [`workload::pacing`] hands out intended
//!   starts.
//! - [`history`] is what a safety workload did, operation by operation (invoke, ok, fail, info on
//!   both clocks), written as `history/<workload>.jsonl`; [`check`] holds the oracles' checkers,
//!   pure functions of histories, reached through `check::judge` by the workload's kind: the run
//!   checks its own histories, `merge` every agent's together, with the same findings → counters
//!   mapping.
//! - [`plugin`] hosts WASM scenario plugins (wasmtime components, one store per VU, sandboxed).
//! - [`fault`] checks faults against the target, schedules them, injects and heals them through
//!   guards; [`fault::proxy`] is the TCP proxy that carries the network toxics, and in RESP mode
//!   reads the agent's commands for the protocol faults (injected errors in each engine's own
//!   text from [`fault::replies`], dropped replies, per-command latency, the idle reaper, a flip,
//!   and the provider-failover and memory-pressure imitations a managed target needs).
//! - [`metrics`] are HdrHistogram recorders (latency from the intended start and service time),
//!   the interval collector, the declared counters and the `.hlog` encoder.
//! - [`summary`] is `summary.json`'s schema and its one judge: `summary::build::judge` turns the
//!   evidence a run or a merge gathers into the judged summary — thresholds (`summary::check`),
//!   the default safety and coverage rules, recovery after every fault (from `summary::impact`,
//!   what each fault did), the rehearsal's copy, then the verdict (pass, fail, or incomplete);
//!   phases are time windows (`summary::phase`).
//! - [`report`] renders a summary (terminal, HTML, JUnit) and writes the outputs; [`export`]
//!   sends a run to OTLP while and after it happens.
//! - [`merge`] combines several agents' outputs into merged evidence with exact percentiles and
//!   hands it to the same judge: whole-run thresholds on the sums, phase thresholds on the merged
//!   slots of the phase (shared time zero), histories together; a missing or interrupted shard
//!   fails by name and leaves the merged run incomplete.
//! - [`compat`] probes what the clients rely on, candidate against baseline; [`compare`] runs one
//!   scenario against both; [`verify`] diffs a source and a destination keyspace read-only after
//!   a migration (and `lag` times its replication by canary); [`headroom`] searches how much of
//!   a scenario's load a target takes with every check holding; [`bench`] measures the agent
//!   against peers in the same run.
//! - [`plan::provider`] is data about managed services (DigitalOcean, ElastiCache, Aiven):
//!   hostnames, refused commands and each one's way out.
//! - [`cli`] parses arguments (flags several commands share, such as TLS, declared once in
//!   `cli::args`) and dispatches to one handler per command; handlers return an outcome or a
//!   typed error, `cli::output` prints the report and writes `--out`, and `cli::exit` alone maps
//!   how a command ended to exit codes 0/1/2/3/4.
//! - Leaves used everywhere: [`rng`] (seeded streams), [`clock`], [`units`], [`events`],
//!   [`control`] (switches faults flip in the agent's own simulated clients).
//!
//! # Architecture invariants
//!
//! Stated as absences; `layering.rs` checks the import rules, the folder rule and the function
//! length from the source (`cargo xtask lint`).
//!
//! - `plan` imports nothing but leaves; `valkey` imports nothing but leaves.
//! - Inside a folder no file reaches back to itself through the files it imports (what a parent
//!   and its children share lives in a leaf file); no function outside tests exceeds 120 lines.
//! - `scenario` never touches the network: it imports no `run`, `workload`, `fault`, `plugin`,
//!   `export`, `report`, and of `valkey` only the pure `url`.
//! - `workload` and `fault` never import `run`: what they need (a pacer, an event sink, a route,
//!   the target) is passed in.
//! - `summary`, `report`, `metrics` and `export` import no `run`, `workload` or `fault`.
//! - A `Plan` only comes from `scenario::compile`, and nothing changes it afterwards.
//! - A summary is built once, by `summary::build::judge`, for a run and for a merge alike; nobody
//!   patches it afterwards, and `RunSummary { … }` is written nowhere else.
//! - No verdict passes an unfinished run: interrupted, a drain cut short, a fault not healed or
//!   not injected, a shard missing, or nothing checked is `incomplete` (exit 4).
//! - No meaning is read from a counter's name: its declared kind decides how it is judged,
//!   exported and merged.
//! - A failed Valkey operation is a recorded sample with an [`valkey::ErrorKind`], never an error
//!   that stops a worker.
//! - Workers never wait on the metrics pipeline beyond an uncontended stripe lock; nothing keeps
//!   every sample: histograms per interval, V2-encoded.
//! - Every injected fault is healed: at its end, at the end of the run, on error, on Ctrl-C and
//!   SIGTERM; heal failures are reported and leave the run incomplete.
//! - Every process the agent starts dies with it (kill on drop, `PR_SET_PDEATHSIG`).
//! - A sharded run's agents meet only through their common target (`run::barrier`), and the
//!   keys they meet under expire and are deleted when the run ends.
//! - Destructive faults never run against a non-local target without the double opt-in.
//! - `compat` writes only keys under `vc:compat:<nonce>:`, deletes them, and never flushes; the
//!   one setting it changes (`busy-reply-threshold`, for its busy-script probe) it restores.

pub mod bench;
pub mod check;
pub mod cli;
pub mod clock;
pub mod compare;
pub mod compat;
pub mod control;
pub mod drain;
pub mod events;
pub mod export;
pub mod fault;
pub mod headroom;
pub mod history;
#[cfg(test)]
mod layering;
pub mod merge;
pub mod metrics;
pub mod plan;
pub mod plugin;
pub mod report;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod summary;
pub mod units;
pub mod valkey;
pub mod verify;
pub mod workload;
