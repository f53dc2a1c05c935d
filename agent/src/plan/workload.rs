//! Workload kinds as plain data: what each kind is configured with, which operations it records
//! and which counters it declares (with their kind). The behaviour lives in `workload::<kind>`,
//! the reading in `scenario::workload::<kind>`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::counter::CounterDef;
use super::dur_dist::DurDist;
use crate::counters;

/// The closed set of workload kinds.
#[derive(Debug, Clone)]
pub enum WorkloadKind {
    Commands(CommandsPlan),
    Dramatiq(DramatiqPlan),
    Lock(LockPlan),
    RateLimit(RateLimitPlan),
    Plugin(PluginPlan),
    Set(SetPlan),
}

/// The type names, as written in `type = "…"`.
pub const TYPES: &[&str] = &[
    "commands",
    "dramatiq",
    "lock",
    "rate_limit",
    "plugin",
    "set",
];

/// A workload's kind without its configuration: what a summary records as its `type`, and what
/// `merge` and the oracles (`check`) match on — never the name as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadType {
    Commands,
    Dramatiq,
    Lock,
    RateLimit,
    Plugin,
    Set,
}

impl WorkloadType {
    /// The name written in `type = "…"` (one of [`TYPES`]).
    pub fn name(self) -> &'static str {
        match self {
            WorkloadType::Commands => "commands",
            WorkloadType::Dramatiq => "dramatiq",
            WorkloadType::Lock => "lock",
            WorkloadType::RateLimit => "rate_limit",
            WorkloadType::Plugin => "plugin",
            WorkloadType::Set => "set",
        }
    }

    /// The counters (and end-of-run figures) this kind reports as `<id>.<counter>`, beyond
    /// `errors` and `error_rate`.
    pub fn counters(self) -> &'static [CounterDef] {
        match self {
            WorkloadType::Commands => &[],
            WorkloadType::Dramatiq => DramatiqCounter::DEFS,
            WorkloadType::Lock => LockCounter::DEFS,
            WorkloadType::RateLimit => RateLimitCounter::DEFS,
            WorkloadType::Plugin => PluginCounter::DEFS,
            WorkloadType::Set => SetCounter::DEFS,
        }
    }
}

impl std::fmt::Display for WorkloadType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl WorkloadKind {
    /// The kind without its configuration.
    pub fn type_of(&self) -> WorkloadType {
        match self {
            WorkloadKind::Commands(_) => WorkloadType::Commands,
            WorkloadKind::Dramatiq(_) => WorkloadType::Dramatiq,
            WorkloadKind::Lock(_) => WorkloadType::Lock,
            WorkloadKind::RateLimit(_) => WorkloadType::RateLimit,
            WorkloadKind::Plugin(_) => WorkloadType::Plugin,
            WorkloadKind::Set(_) => WorkloadType::Set,
        }
    }

    pub fn type_name(&self) -> &'static str {
        self.type_of().name()
    }

    /// Operation names this workload records (lowercase), in report order.
    pub fn ops(&self) -> Vec<String> {
        let fixed: &[&str] = match self {
            WorkloadKind::Commands(c) => {
                let mut v: Vec<String> = c.mix.iter().map(|(k, _)| k.name().to_string()).collect();
                v.dedup();
                return v;
            }
            WorkloadKind::Dramatiq(_) => DRAMATIQ_OPS,
            WorkloadKind::Lock(_) => LOCK_OPS,
            WorkloadKind::RateLimit(_) => RATE_LIMIT_OPS,
            WorkloadKind::Plugin(_) => PLUGIN_OPS,
            WorkloadKind::Set(_) => SET_OPS,
        };
        fixed.iter().map(|s| s.to_string()).collect()
    }

    /// The counters (and end-of-run figures) this workload reports as `<id>.<counter>`, beyond
    /// `errors` and `error_rate`.
    pub fn counters(&self) -> &'static [CounterDef] {
        self.type_of().counters()
    }

    /// Whether operation names are only known at run time (plugins record one op per command).
    pub fn open_ops(&self) -> bool {
        matches!(self, WorkloadKind::Plugin(_))
    }
}

// ---------------------------------------------------------------------------------------------
// commands

/// The raw command mix workload.
#[derive(Debug, Clone)]
pub struct CommandsPlan {
    pub mix: Vec<(CommandKind, u32)>,
    pub keys: u64,
    pub value_bytes: usize,
    pub pipeline: usize,
}

macro_rules! command_kinds {
    ($($v:ident = $n:literal),* $(,)?) => {
        /// Commands the `commands` workload can mix.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CommandKind { $($v),* }
        impl CommandKind {
            pub const ALL: &'static [CommandKind] = &[$(CommandKind::$v),*];
            pub fn name(self) -> &'static str { match self { $(CommandKind::$v => $n),* } }
            pub fn parse(s: &str) -> Option<CommandKind> {
                match s.to_ascii_lowercase().as_str() { $($n => Some(CommandKind::$v),)* _ => None }
            }
        }
    };
}
command_kinds! {
    Get = "get", Set = "set", Del = "del", Exists = "exists", Incr = "incr", Expire = "expire",
    Mget = "mget", Hset = "hset", Hget = "hget", Lpush = "lpush", Rpush = "rpush", Lpop = "lpop",
    Sadd = "sadd", Zadd = "zadd", Zrange = "zrange", Publish = "publish", Ping = "ping", Setex = "setex",
}

// ---------------------------------------------------------------------------------------------
// dramatiq

pub const DRAMATIQ_OPS: &[&str] = &["enqueue", "fetch", "ack", "nack", "e2e"];

counters! {
    /// The Dramatiq workload's ledger counters.
    pub enum DramatiqCounter {
        Enqueued = ("enqueued", Total, "messages whose enqueue was acknowledged"),
        Delivered = ("delivered", Total, "handler starts (every attempt)"),
        Acked = ("acked", Total, "messages acknowledged after their last attempt"),
        Lost = ("lost", Safety, "acknowledged enqueue, never delivered, gone from Valkey"),
        Duplicated = ("duplicated", Safety, "an attempt (message id, retries) delivered twice"),
        Stuck = ("stuck", Safety, "still in a queue, payload hash or ack set after the drain"),
        DeadLettered = ("dead_lettered", Total, "nacked to the dead-letter queue after the last retry"),
        Retried = ("retried", Total, "retries enqueued by the Retries middleware"),
        MissingPayloads = ("missing_payloads", Safety, "a fetched id whose payload was gone"),
        Undecodable = ("undecodable", Safety, "a fetched payload that is not a Dramatiq message"),
        QueueDepthMax = ("queue_depth_max", Max, "the longest the queue was (sampled)"),
        Unfinished = ("unfinished", Safety, "delivered, never finished, gone from Valkey"),
        TakenByOthers = ("taken_by_others", Total, "shared queue: consumed by other workers"),
        LeftQueued = ("left_queued", Total, "produce-only: still queued at the end"),
        Redelivered = ("redelivered", Safety, "an attempt delivered again after a fault lost the first delivery (at-least-once)"),
        Resurrected = ("resurrected", Safety, "a message delivered again after it was acked (its ack was lost in a fault)"),
        Ambiguous = ("ambiguous", Total, "enqueues that failed in a way that may have landed them"),
        AmbiguousLanded = ("ambiguous_landed", Total, "of those, how many landed (delivered or still present)"),
        AckFailed = ("ack_failed", Safety, "processed, but the ack failed and the message is still held in its worker's ack set: Dramatiq redelivers it when that worker's heartbeat expires (at-least-once)"),
        Stranded = ("stranded", Safety, "never delivered: a fetch that lost its reply left it in a live worker's ack set, where Dramatiq leaves it until that worker stops and its heartbeat expires (at-least-once: still in Valkey, delivered late)"),
        LeftBehind = ("left_behind", Safety, "never delivered and still on the old side of a migration at the end: enqueued there after the copy stopped, where no worker consumes any more (stranded by the switch; `valkey-chaos drain` moves them)"),
        AckUnconfirmed = ("ack_unconfirmed", Total, "processed, the ack's reply lost (timeout, broken connection) and the message gone: the ack landed"),
        Checked = ("checked", Checked, "acknowledged enqueues the accounting covered", covers = "enqueued"),
    }
}

#[derive(Debug, Clone)]
pub struct DramatiqPlan {
    pub namespace: String,
    pub queue: String,
    pub actors: Vec<String>,
    pub producers: u32,
    pub consumers: u32,
    pub threads: u32,
    pub prefetch: u32,
    pub work: DurDist,
    pub payload_bytes: usize,
    pub delay_fraction: f64,
    pub delay: Duration,
    pub fail_fraction: f64,
    pub max_retries: u32,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub version: u8,
    pub drain_timeout: Duration,
    /// Consumers start this long after the run (a backlog builds up first).
    pub consume_after: Duration,
    /// Write every delivered message id here (one line each), for cross-checks.
    pub trace: Option<PathBuf>,
    /// Other consumers (e.g. Python workers) share the queue: messages they took are
    /// `taken_by_others`, not lost, and the drain waits for the queue to empty.
    pub shared_queue: bool,
    /// A worker whose heartbeat is older than this is dead: maintenance requeues what it held
    /// (Dramatiq's `heartbeat_timeout`, default 60 s).
    pub heartbeat_timeout: Duration,
    /// The chance that a fetch also runs maintenance (Dramatiq: `maintenance_chance` per
    /// million, default 1000, i.e. 0.1%).
    pub maintenance_chance: f64,
    /// Ack before the work instead of after it (`ack = "before-work"`): a misconfigured worker,
    /// there to show what the oracle catches when such a worker dies mid-work.
    pub ack_before_work: bool,
    /// Error replies the client takes for success (`swallow_errors = ["LOADING"]`): a planted
    /// bug, a wrapper that catches and logs them, there to show what the oracle catches.
    pub swallow_errors: Vec<super::protocol::ErrorCode>,
}

// ---------------------------------------------------------------------------------------------
// lock

pub const LOCK_OPS: &[&str] = &["acquire", "release", "extend"];

counters! {
    /// The lock workload's oracle counters and end-of-run figures.
    pub enum LockCounter {
        Acquired = ("acquired", Total, "grants"),
        Timeouts = ("timeouts", Total, "acquires that gave up after blocking_timeout"),
        Violations = ("violations", Safety, "two believed holds of one name overlapping"),
        LostWhileHeld = ("lost_while_held", Safety, "a holder found its lock gone or taken"),
        FencingViolations = ("fencing_violations", Safety, "a fencing token not above the previous holder's"),
        ImmortalKeys = ("immortal_keys", Safety, "lock keys left without a TTL"),
        FairnessMin = ("fairness_min", Min, "fewest grants of any client"),
        FairnessMax = ("fairness_max", Max, "most grants of any client"),
        ClientsServed = ("clients_served", Total, "clients granted at least once"),
        Checked = ("checked", Checked, "holds the checker judged", covers = "acquired"),
        Orphaned = ("orphaned", Total, "names held by nobody but still set (a release the server forgot): acquirers blocked until the TTL"),
        OrphanedMs = ("orphaned_ms", Total, "how long acquirers were blocked by orphaned names (ms)"),
    }
}

/// How a lock is taken and given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockStyle {
    /// redis-py `Lock`: token, `SET NX PX`, Lua compare-and-delete release, Lua extend.
    RedisPy,
    /// ECHO's historical ETL lock: `SET 1 NX EX`, plain `DEL`, "renew" that only re-creates.
    SetNxEx,
    /// `SETNX` then `EXPIRE`: two commands, not atomic.
    SetnxExpire,
}

#[derive(Debug, Clone)]
pub struct LockPlan {
    pub style: LockStyle,
    pub names: u32,
    pub ttl: Duration,
    pub hold: DurDist,
    pub blocking_timeout: Duration,
    pub retry_interval: Duration,
    pub extend_every: Option<Duration>,
    pub fencing: bool,
    /// Pause between a release and the next acquire attempt (closed model).
    pub think: Duration,
    /// Write every hold interval (CLOCK_MONOTONIC ns) here, for cross-checks with other clients.
    pub trace: Option<PathBuf>,
    /// Lock key names: `<key_prefix><run>:<workload id>:lock:<n>` unless set (`<run>`: the first 8
    /// characters of the run id; a shard's names leave it out, the shards share them).
    pub key_pattern: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// rate_limit

pub const RATE_LIMIT_OPS: &[&str] = &["acquire", "release"];

counters! {
    /// The rate-limit workload's oracle counters and figures.
    pub enum RateLimitCounter {
        Admitted = ("admitted", Total, "requests the limiter let through"),
        Rejected = ("rejected", Total, "requests the limiter refused"),
        Overshoot = ("overshoot", Safety, "admissions beyond the limit within one window"),
        Efficiency = ("efficiency", Ratio, "admitted / what the limit allowed over the run"),
        OvershootChecked = ("overshoot_checked", Checked, "admissions the overshoot rule could judge", covers = "admitted"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limiter {
    FixedWindow,
    SlidingLog,
    DramatiqConcurrent,
    DramatiqWindow,
    DramatiqBucket,
    CheckThenIncr,
}

impl Limiter {
    pub fn name(self) -> &'static str {
        match self {
            Limiter::FixedWindow => "fixed-window",
            Limiter::SlidingLog => "sliding-log",
            Limiter::DramatiqConcurrent => "dramatiq-concurrent",
            Limiter::DramatiqWindow => "dramatiq-window",
            Limiter::DramatiqBucket => "dramatiq-bucket",
            Limiter::CheckThenIncr => "check-then-incr",
        }
    }

    pub const NAMES: &'static [&'static str] = &[
        "fixed-window",
        "sliding-log",
        "dramatiq-concurrent",
        "dramatiq-window",
        "dramatiq-bucket",
        "check-then-incr",
    ];
}

#[derive(Debug, Clone)]
pub struct RateLimitPlan {
    pub limiter: Limiter,
    pub limit: u64,
    pub window: Duration,
    pub keys: u32,
    pub bursts: Option<(Duration, u64)>,
    /// How long a concurrent-limiter slot is held before release.
    pub hold: DurDist,
    /// Key names: `<key_prefix><workload id>:rl:<n>` unless set (`{n}` is the key number).
    pub key_pattern: Option<String>,
    pub trace: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// plugin

pub const PLUGIN_OPS: &[&str] = &["iteration"];

counters! {
    /// The plugin host's counters (plugins declare their own on top).
    pub enum PluginCounter {
        Iterations = ("iterations", Total, "iterations that returned"),
        IterationErrors = ("iteration_errors", Total, "iterations that returned an error"),
        Traps = ("traps", Total, "guest traps"),
        BudgetExceeded = ("budget_exceeded", Total, "calls interrupted for exceeding the CPU budget"),
        MemoryExceeded = ("memory_exceeded", Total, "instances that hit the memory cap"),
        VusReplaced = ("vus_replaced", Total, "VUs replaced after a trap"),
        VusStopped = ("vus_stopped", Total, "VUs stopped after a trap"),
    }
}

#[derive(Debug, Clone)]
pub struct PluginPlan {
    pub path: PathBuf,
    pub params: Vec<(String, String)>,
    /// CPU budget per call (setup, iteration, teardown), wall time of guest execution.
    pub budget: Duration,
    pub memory: u64,
    pub replace_on_trap: bool,
    /// A VU that traps this many times in a row is stopped.
    pub max_restarts: u32,
}

// ---------------------------------------------------------------------------------------------
// set

pub const SET_OPS: &[&str] = &["add", "read"];

counters! {
    /// The acknowledged-writes oracle (Jepsen's set): every acknowledged add must be read back.
    pub enum SetCounter {
        Written = ("written", Total, "adds the server acknowledged"),
        Lost = ("lost", Safety, "acknowledged adds missing from the final read"),
        Indeterminate = ("indeterminate", Total, "adds that failed ambiguously (timeout, connection)"),
        IndeterminatePresent = ("indeterminate_present", Total, "of those, how many were read back"),
        FailedPresent = ("failed_present", Safety, "adds the server refused that were read back anyway"),
        Unexpected = ("unexpected", Safety, "values read back that this run never wrote"),
        Checked = ("checked", Checked, "acknowledged adds the final read covered", covers = "written"),
    }
}

/// Unique values added to sets, read back at the end.
#[derive(Debug, Clone)]
pub struct SetPlan {
    /// How many set keys the values are spread over.
    pub keys: u32,
    /// Key names: `<key_prefix><workload id>:set:<n>` unless set (`{n}` is the key number).
    pub key_pattern: Option<String>,
    /// Delete the sets after the final read.
    pub cleanup: bool,
}
