//! The run summary: everything a report, an exporter or `merge` needs, and `summary.json`'s
//! schema. It is data: [`build`] makes it once, as a pure function of what a run recorded;
//! [`check`] judges thresholds, [`phase`] says which time windows a phase covers, [`impact`]
//! measures what each fault did. `report` and `export` take a `&RunSummary`.

pub mod build;
pub mod check;
pub mod generator;
pub mod impact;
pub mod phase;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::events::{Event, EventKind};
use crate::metrics::{LatencyStats, SendLagStats};
use crate::plan::counter::CounterKind;

/// Pass (exit 0), fail: a check failed (exit 1), or incomplete: the run cannot vouch for
/// anything — it was interrupted, its drain was cut short, a heal failed or nothing was checked
/// (exit 4). Incomplete outranks fail: what an unfinished run counted may be an artefact of
/// stopping it (its failed checks are still listed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Incomplete,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Incomplete => "incomplete",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub scenario: String,
    pub seed: u64,
    pub verdict: Verdict,
    pub duration_secs: f64,
    pub planned_duration_secs: f64,
    /// True when Ctrl-C or SIGTERM ended the run early.
    pub interrupted: bool,
    /// Why the run cannot vouch for anything (verdict `incomplete`, as is any `heal_failures`):
    /// interrupted, drain cut short, nothing checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<String>,
    pub run_id: String,
    /// `"INDEX/COUNT"` when this run was one shard of a sharded run (`run --shard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// The shard's index and the shard count, as numbers (with `shard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_count: Option<u32>,
    /// What the agents of one sharded run share: `[<--run-key>:]<scenario>:<shard count>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_key: Option<String>,
    /// Time zero, RFC 3339 with microseconds: the instant every slot, fault and phase offset is
    /// counted from. Behind a start barrier (or `--start-at`) it is the instant all shards share,
    /// on the target's clock.
    pub started_at: String,
    /// How this agent's time zero was agreed with the other shards (none: it started alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_sync: Option<StartSync>,
    /// On a merged sharded run: how far apart the shards' time zeros and actual starts were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_skew: Option<StartSkew>,
    /// The target as `redis://host:port` (no password), or "embedded …".
    pub target: String,
    pub server: ServerInfo,
    pub workloads: Vec<WorkloadSummary>,
    pub ops: Vec<OpSummary>,
    pub counters: Vec<CounterValue>,
    pub checks: Vec<CheckResult>,
    pub faults: Vec<FaultRecord>,
    pub events: Vec<Event>,
    pub heal_failures: Vec<String>,
    /// Interval length used for the `.hlog` and the per-interval series.
    pub interval_secs: f64,
    pub series: Vec<SeriesPoint>,
    /// A cutover rehearsal's report (`[migration]` scenarios).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationReport>,
    /// Failed operations per slot (by intended start) where there were any: the `.hlog` holds
    /// successes only, and `merge` judges phase thresholds on errors from these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slot_errors: Vec<SlotErrors>,
    /// CPU seconds the agent used while the load ran (every thread: clients, timers, the
    /// collector; not set-up, drain or checks). On a machine shared with the server this CPU
    /// is taken from it. Summed over the shards of a merged run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_cpu_secs: Option<f64>,
}

/// A cutover rehearsal (`[migration]`): what the switch cost and whether the copy is whole.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrationReport {
    /// The source and the destination, as `<server> <version> at <address>`.
    pub from_to: String,
    /// `replicaof` or `external`.
    pub mode: String,
    pub seed_keys: u64,
    pub switch: Option<SwitchReport>,
    /// Replication lag by canary before the switch (source → destination).
    pub lag: LagStats,
    /// `(seconds from the start, lag ms)` samples.
    pub lag_series: Vec<(f64, f64)>,
    /// `NOSCRIPT` replies after the switch (the script cache is not replicated).
    pub noscript_after_switch: u64,
    /// The copy verified key by key at the end.
    pub verify: Option<MigrationVerify>,
    /// What the initial copy cost the source (`replicaof`: the agent started it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_cost: Option<CopyCost>,
    /// The way back, when the scenario rehearsed it (`switch-back`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch_back: Option<SwitchBackReport>,
}

/// What the way back did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwitchBackReport {
    /// When the clients went back to the source (seconds from the start).
    pub at_secs: f64,
    /// How long the destination's writes stayed stopped.
    pub paused_ms: f64,
    /// How long the source took to receive everything (a full sync back).
    pub sync_ms: f64,
    /// Every key of both sides compared while nothing wrote.
    pub verify: Option<MigrationVerify>,
}

/// What the initial copy (a full sync) cost the source: the fork, the copy-on-write memory on
/// top of what it holds against `maxmemory`, and a probe's read latency while it ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CopyCost {
    pub sync_secs: f64,
    /// Whether the source forked for it (`total_forks` moved).
    pub forked: Option<bool>,
    /// `latest_fork_usec`, in ms: how long the source stood still to fork.
    pub fork_ms: Option<f64>,
    /// `used_memory` before the copy.
    pub used_memory: Option<u64>,
    /// `rdb_last_cow_size`: pages the source copied while the child lived.
    pub cow_bytes: Option<u64>,
    /// `used_memory` + `cow_bytes`: the source's peak during the copy.
    pub peak_bytes: Option<u64>,
    /// The source's `maxmemory` (none: unlimited).
    pub maxmemory: Option<u64>,
    /// Whether the peak fits under `maxmemory` (none: no limit, or unknown).
    pub fits: Option<bool>,
    pub probe_samples: u64,
    pub probe_p50_ms: Option<f64>,
    pub probe_p99_ms: Option<f64>,
    pub probe_max_ms: Option<f64>,
}

/// What the switch did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwitchReport {
    /// `pause-and-drain` or `repoint-only`.
    pub procedure: String,
    /// When the endpoint was repointed (seconds from the start).
    pub at_secs: f64,
    /// How long writes were paused (pause-and-drain).
    pub paused_ms: Option<f64>,
    /// Replication bytes the destination had not received when it was promoted.
    pub behind_bytes: Option<i64>,
    /// A rolling switch, batch by batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling: Option<RollingReport>,
    /// The team's own commands, as they ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepRecord>,
}

/// One `[[migration.step]]` as it ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepRecord {
    /// `before-pause`, `at-promotion` or `after`.
    pub at: String,
    pub command: String,
    /// When it started (seconds from the run's start) and how long it ran.
    pub started_secs: f64,
    pub secs: f64,
    pub exit: Option<i32>,
    /// The end of what it printed (stdout, then stderr).
    pub output: String,
    /// Why it did not finish (could not start, timed out).
    pub error: Option<String>,
}

/// What a rolling switch did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RollingReport {
    /// `stop-first` or `roll-first`.
    pub order: String,
    pub stop_writes: bool,
    pub pods: u32,
    /// Every batch: when it rolled (seconds from the start), whose pods, how many.
    pub batches: Vec<RolledBatchReport>,
    /// From the first batch to the last.
    pub roll_secs: f64,
    /// When the copy stopped (seconds from the start).
    pub promoted_at_secs: Option<f64>,
    /// How long two sides took writes: from the copy's stop to the old side's last write while
    /// pods still pointed at it.
    pub two_sides_ms: f64,
    /// `READONLY` replies the agent's clients got from the switch on.
    pub readonly_replies: u64,
    /// Message ids the old side held when the copy stopped (the drain skips them).
    pub copied_ids: Option<u64>,
    /// Messages the drain step moved from the old side (none: no drain step).
    pub drained: Option<u64>,
    pub drain_said: Option<String>,
}

/// One batch of a rolling switch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolledBatchReport {
    pub at_secs: f64,
    pub workload: String,
    pub clients: String,
    pub pods: u32,
}

/// Canary lag statistics.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LagStats {
    pub samples: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// The copy, verified.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrationVerify {
    pub keys_checked: u64,
    pub differences: u64,
    pub by_kind: BTreeMap<String, u64>,
    /// The first differences, `key (kind): detail`.
    pub first: Vec<String>,
    /// Why the verify could not run.
    pub error: Option<String>,
}

/// How an agent's time zero was fixed with the other agents of its run (`run::barrier`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartSync {
    /// `barrier` (the shards met through the target) or `start-at` (`--start-at`).
    pub mode: String,
    /// The barrier's key on the target.
    pub key: String,
    /// Seconds this agent waited from its arrival until the common start.
    pub waited_secs: f64,
    /// The shards registered when this agent started (every one, behind a barrier).
    pub arrived: Vec<u32>,
    /// How well this agent knew the target's clock: half the round trip of the `TIME` sample the
    /// common start was mapped onto its own monotonic clock with (ms).
    pub uncertainty_ms: f64,
    /// How long after the common start this agent's load actually began, on its own clock (ms).
    pub late_ms: f64,
    /// This host's wall clock minus the target's, in ms (informative: time zero does not depend
    /// on it).
    pub clock_offset_ms: f64,
}

/// A merged sharded run's start: the spread of the shards' time zeros (`started_at`) and of their
/// actual starts (`started_at` + `late_ms`, known to ± `uncertainty_ms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartSkew {
    pub started_at_spread_ms: f64,
    pub actual_spread_ms: f64,
    /// The largest uncertainty of a shard's actual start (ms); 0 where a shard did not record it.
    pub uncertainty_ms: f64,
    pub shards: Vec<ShardStart>,
}

/// One input of a merge: when it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardStart {
    /// The input's label (its directory) and its shard (`i/n`) if it was one.
    pub input: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub started_at: String,
    /// From the shard's `start_sync`; none for an agent that started alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncertainty_ms: Option<f64>,
}

/// The failed operations of one op in one slot: `[from_secs, to_secs)` from time zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotErrors {
    pub workload: String,
    pub op: String,
    pub from_secs: f64,
    pub to_secs: f64,
    pub errors: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerInfo {
    pub server_name: String,
    pub version: String,
    pub redis_version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadSummary {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: crate::plan::WorkloadType,
    pub clients: u32,
    pub model: String,
    pub late_starts: u64,
    pub dropped_starts: u64,
    pub errors: u64,
    pub error_rate: f64,
    /// Open model: how late the generator released its starts (release − intended start, µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lag_us: Option<SendLagStats>,
    /// Set when the generator, not the server, set the pace: why, and what to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_bound: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpSummary {
    pub workload: String,
    pub op: String,
    /// Completed operations, failed ones included.
    pub count: u64,
    pub ok: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub rate_per_sec: f64,
    /// Latency from the intended start (coordinated-omission corrected), successful operations.
    pub latency_us: LatencyStats,
    /// Service time: from the actual send to the reply.
    pub service_us: LatencyStats,
    pub errors_by_kind: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CounterValue {
    pub workload: String,
    pub name: String,
    pub value: f64,
    /// What the counter means (safety counters fail the verdict; merge combines by kind).
    #[serde(default)]
    pub kind: CounterKind,
    /// For a `checked` counter: the total it covers (nothing checked while that total is above 0
    /// is an inconclusive oracle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covers: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    pub metric: String,
    pub condition: String,
    /// None when the metric had no data (the check then fails).
    pub value: Option<f64>,
    pub passed: bool,
    /// Human reading of the value (e.g. "4.1ms").
    pub shown: String,
    /// Where the check comes from: a threshold, or the default rule for a safety counter or an
    /// oracle's coverage.
    #[serde(default)]
    pub origin: CheckOrigin,
}

/// Why a check exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOrigin {
    /// A threshold of the scenario or the command line.
    #[default]
    Threshold,
    /// A safety counter with no threshold of its own: above 0 fails.
    Safety,
    /// An oracle that could check nothing of what happened: inconclusive fails.
    Coverage,
    /// A merged sharded run: every shard must be there and complete.
    Shard,
    /// After a fault, every workload back to normal within the bound (`recover_within`).
    Recovery,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRecord {
    pub index: usize,
    pub name: String,
    pub kind: String,
    pub target: String,
    pub injected_at_secs: Option<f64>,
    pub healed_at_secs: Option<f64>,
    pub heal_error: Option<String>,
    pub skipped: Option<String>,
    /// The injection itself failed (the scenario did not run as written: the run is incomplete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject_error: Option<String>,
    /// Per workload: first failed to first successful op after the injection (seconds).
    pub unavailability: Vec<Unavailability>,
    /// Seconds from the heal until the p99 of every interval is back within 1.5x the pre-fault p99.
    pub p99_recovery_secs: Option<f64>,
    pub errors_during: u64,
    /// What the fault did, measured: its impact window (see `summary::impact`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<Impact>,
    /// How soon after the heal every workload must be back to normal (`recover_within`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recover_within_secs: Option<f64>,
    /// A fault that stands in for a server event through the agent's proxy (a provider
    /// failover, memory pressure, the idle reaper): that it is an imitation, and what it cannot
    /// show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imitation: Option<String>,
}

#[cfg(test)]
impl FaultRecord {
    /// Fault #0 `name` of kind `kind`, injected and healed at those times, with that impact
    /// (tests' own records).
    pub fn sample(name: &str, kind: &str, at: (f64, f64), impact: Option<Impact>) -> FaultRecord {
        FaultRecord {
            index: 0,
            name: name.into(),
            kind: kind.into(),
            target: String::new(),
            injected_at_secs: Some(at.0),
            healed_at_secs: Some(at.1),
            heal_error: None,
            skipped: None,
            inject_error: None,
            unavailability: vec![],
            p99_recovery_secs: None,
            errors_during: 0,
            impact,
            recover_within_secs: None,
            imitation: None,
        }
    }
}

/// A fault's impact window: from its injection until every workload was back to normal (no
/// errors, p99 within 1.5× of its value before the first fault, served again), at slot (100 ms)
/// resolution. `{during:<fault>}` covers exactly this window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Impact {
    /// When every workload was back to normal, seconds from the run start (the end of the load
    /// when it never was).
    pub until_secs: f64,
    /// From the injection to `until_secs`, in milliseconds.
    pub window_ms: f64,
    /// False when some workload was not back to normal before the load ended.
    pub recovered: bool,
    pub workloads: Vec<WorkloadImpact>,
    /// Errors of every workload inside the window, by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// What the safety oracles counted inside the window: `<workload>.<counter>` → count.
    pub safety: BTreeMap<String, u64>,
}

/// One workload inside a fault's impact window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadImpact {
    pub workload: String,
    /// When this workload was back to normal (seconds from the run start); none: never.
    pub back_to_normal_secs: Option<f64>,
    /// The first failed operation after the injection completed here (10 ms resolution).
    pub first_failure_secs: Option<f64>,
    /// The last success completed before that failure.
    pub last_success_before_secs: Option<f64>,
    /// The first success of an operation sent after that failure.
    pub first_success_after_secs: Option<f64>,
    /// Last success before the first failure → first success after it, in milliseconds.
    pub unavailable_ms: Option<f64>,
    /// Errors inside the window.
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// What an oracle found not served after the heal, however the operations looked (an
    /// orphaned lock name blocking its acquirers), and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_served: Option<String>,
    /// This workload's own `recover_within` (in place of the scenario's), when it sets one and
    /// the fault does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recover_within_secs: Option<f64>,
    /// The largest per-op p99 before the first fault and inside the window (µs).
    pub p99_before_us: u64,
    pub p99_during_us: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unavailability {
    pub workload: String,
    pub first_error_secs: f64,
    pub recovered_secs: Option<f64>,
    pub window_secs: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesPoint {
    pub workload: String,
    pub op: String,
    pub start_secs: f64,
    pub end_secs: f64,
    pub ok: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl RunSummary {
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }
    pub fn counter(&self, workload: &str, name: &str) -> Option<f64> {
        self.counters
            .iter()
            .find(|c| c.workload == workload && c.name == name)
            .map(|c| c.value)
    }
    pub fn op(&self, workload: &str, op: &str) -> Option<&OpSummary> {
        self.ops
            .iter()
            .find(|o| o.workload == workload && o.op == op)
    }
    /// `(index, count)` of a shard's summary.
    pub fn shard_of(&self) -> Option<(u32, u32)> {
        match (self.shard_index, self.shard_count) {
            (Some(i), Some(n)) => Some((i, n)),
            _ => self
                .shard
                .as_deref()
                .and_then(|s| crate::plan::shard::Shard::parse(s).ok())
                .map(|s| (s.index, s.count)),
        }
    }
    /// Time zero as a wall-clock instant (`started_at`, to the microsecond).
    pub fn started(&self) -> Option<std::time::SystemTime> {
        humantime::parse_rfc3339_weak(&self.started_at).ok()
    }
}
