//! The compiled plan: what a run does, valid by construction, as plain data. Only
//! `scenario::compile` makes one, and nothing changes it afterwards: command-line overrides and
//! sharding are inputs of the compile. This module is a leaf: it imports no other part of the
//! agent but the seeded RNG.
//!
//! Small types several kind files share ([`Topology`], [`DurDist`]) live in leaf files of their
//! own, which those files import and this one re-exports.

pub mod command_table;
pub mod counter;
pub mod dur_dist;
pub mod fault;
pub mod migration;
pub mod protocol;
pub mod provider;
pub mod rollback;
pub mod rollout;
pub mod schedule;
pub mod shard;
pub mod topology;
pub mod workload;

use std::path::PathBuf;
use std::time::Duration;

pub use counter::{CounterDef, CounterKind};
pub use dur_dist::DurDist;
pub use fault::{FaultKind, FaultPlan, NodeSel};
pub use shard::Shard;
pub use topology::Topology;
pub use workload::*;

/// One scenario, compiled.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub source: PathBuf,
    pub seed: u64,
    pub duration: Duration,
    /// `[target].url`, if the scenario names one.
    pub target_url: Option<String>,
    pub key_prefix: String,
    /// The embedded topology this scenario needs when it runs against the embedded default.
    pub topology: Topology,
    /// Per-request deadline for workload connections.
    pub request_timeout: Duration,
    pub workloads: Vec<WorkloadPlan>,
    pub faults: Vec<FaultPlan>,
    pub thresholds: Vec<Threshold>,
    /// The scenario's half of the double opt-in for destructive faults on non-local targets.
    pub allow_destructive: bool,
    /// Which share of a sharded run this plan is (`None`: the whole run).
    pub shard: Option<Shard>,
    /// A cutover rehearsal: source, destination, how the data moves.
    pub migration: Option<migration::Migration>,
    /// How soon after a fault heals every workload must be back to normal (`recover_within`,
    /// default 10 s); a fault may set its own.
    pub recover_within: Duration,
}

/// The default `recover_within`.
pub const DEFAULT_RECOVER_WITHIN: Duration = Duration::from_secs(10);

/// One workload: an id, a load model and what each operation does.
#[derive(Debug, Clone)]
pub struct WorkloadPlan {
    pub id: String,
    /// Concurrent clients (connections / virtual users).
    pub clients: u32,
    pub load: LoadModel,
    pub kind: WorkloadKind,
    /// The logical database its clients `SELECT` (`db = N`); none: the target URL's (`/N`, else 0).
    pub db: Option<u32>,
    /// How soon after a fault's heal this workload must be back to normal, in place of the
    /// scenario's `recover_within` after every fault that sets none of its own (a lock whose
    /// release a fault can cut is back only when its TTL ran out).
    pub recover_within: Option<Duration>,
}

/// How operations are started.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadModel {
    /// Each client loops: next operation as soon as the previous one ends.
    Closed,
    /// Operations have intended start times from an arrival-rate schedule (ops/s for the workload).
    Open(RateSchedule),
}

/// Piecewise-linear arrival rate: starts at `start` and ramps to each stage's target over its duration;
/// the last target holds until the end of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSchedule {
    pub start: f64,
    pub stages: Vec<(Duration, f64)>,
}

impl RateSchedule {
    pub fn constant(rate: f64) -> RateSchedule {
        RateSchedule {
            start: rate,
            stages: vec![],
        }
    }

    /// Rate at time `t` (seconds from the start).
    pub fn rate_at(&self, t: f64) -> f64 {
        let mut from = self.start;
        let mut t0 = 0.0;
        for (d, to) in &self.stages {
            let d = d.as_secs_f64();
            if t < t0 + d {
                return from + (to - from) * ((t - t0) / d);
            }
            t0 += d;
            from = *to;
        }
        from
    }

    /// Expected arrivals in [0, t].
    pub fn arrivals_until(&self, t: f64) -> f64 {
        let mut from = self.start;
        let mut t0 = 0.0;
        let mut acc = 0.0;
        for (d, to) in &self.stages {
            let d = d.as_secs_f64();
            if t <= t0 + d {
                let x = t - t0;
                return acc + from * x + (to - from) * x * x / (2.0 * d);
            }
            acc += (from + to) / 2.0 * d;
            t0 += d;
            from = *to;
        }
        acc + from * (t - t0)
    }

    /// The time (seconds) at which the `k`-th arrival (0-based, fractional allowed) is due:
    /// the inverse of [`RateSchedule::arrivals_until`]. `None` when it never comes (rate 0 forever).
    pub fn time_of_arrival(&self, k: f64) -> Option<f64> {
        let mut from = self.start;
        let mut t0 = 0.0;
        let mut acc = 0.0;
        for (d, to) in &self.stages {
            let d = d.as_secs_f64();
            let area = (from + to) / 2.0 * d;
            if k < acc + area {
                let need = k - acc;
                let a = (to - from) / (2.0 * d);
                let x = if a.abs() < 1e-12 {
                    need / from
                } else {
                    // a x² + from x − need = 0, the non-negative root
                    (-from + (from * from + 4.0 * a * need).max(0.0).sqrt()) / (2.0 * a)
                };
                return Some(t0 + x.clamp(0.0, d));
            }
            acc += area;
            t0 += d;
            from = *to;
        }
        if from <= 0.0 {
            return None;
        }
        Some(t0 + (k - acc) / from)
    }

    pub fn peak(&self) -> f64 {
        self.stages.iter().map(|s| s.1).fold(self.start, f64::max)
    }

    /// The same schedule at `m` times the rate (stage durations unchanged).
    pub fn scaled(&self, m: f64) -> RateSchedule {
        RateSchedule {
            start: self.start * m,
            stages: self.stages.iter().map(|(d, r)| (*d, r * m)).collect(),
        }
    }
}

/// Which slice of the run a metric is taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Before,
    /// During fault number `index` (0-based in `[[fault]]` order).
    During(usize),
    /// After the last fault ended.
    After,
    /// After fault number `index` ended (other faults may still be in progress).
    AfterFault(usize),
}

/// What a threshold reads.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricPath {
    /// `<id>.<op>.<stat>`
    Op { op: String, stat: Stat },
    /// `<id>.<counter>` (`errors`, `error_rate`, safety counters)
    Counter(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Count,
    Rate,
    P50,
    P90,
    P99,
    P999,
    Max,
    Mean,
    Errors,
    ErrorRate,
}

impl Stat {
    pub const NAMES: &'static [&'static str] = &[
        "count",
        "rate",
        "p50",
        "p90",
        "p99",
        "p999",
        "max",
        "mean",
        "errors",
        "error_rate",
    ];
    pub fn parse(s: &str) -> Option<Stat> {
        Some(match s {
            "count" => Stat::Count,
            "rate" => Stat::Rate,
            "p50" => Stat::P50,
            "p90" => Stat::P90,
            "p99" => Stat::P99,
            "p999" => Stat::P999,
            "max" => Stat::Max,
            "mean" => Stat::Mean,
            "errors" => Stat::Errors,
            "error_rate" => Stat::ErrorRate,
            _ => return None,
        })
    }
    pub fn is_latency(self) -> bool {
        matches!(
            self,
            Stat::P50 | Stat::P90 | Stat::P99 | Stat::P999 | Stat::Max | Stat::Mean
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

impl CmpOp {
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Eq => (a - b).abs() < 1e-9,
        }
    }
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Eq => "==",
        }
    }
}

/// `"cache.get.p99" = "< 5ms"`, compiled: latency in microseconds, rates as fractions.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The metric as written, e.g. `cache.get.p99{during:failover}`.
    pub metric: String,
    pub workload: String,
    pub path: MetricPath,
    pub phase: Option<Phase>,
    pub op: CmpOp,
    pub value: f64,
    /// The condition as written, e.g. `< 5ms`.
    pub condition: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_inverse_matches_integral() {
        let s = RateSchedule {
            start: 100.0,
            stages: vec![
                (Duration::from_secs(10), 1000.0),
                (Duration::from_secs(5), 1000.0),
                (Duration::from_secs(5), 0.0),
            ],
        };
        for k in [0.0, 1.0, 50.0, 500.0, 5499.0, 5500.0, 9000.0, 12999.0] {
            let t = s.time_of_arrival(k).unwrap();
            assert!((s.arrivals_until(t) - k).abs() < 1e-6, "k={k} t={t}");
        }
        assert!(s.time_of_arrival(13001.0).is_none());
        assert_eq!(s.rate_at(5.0), 550.0);
        let c = RateSchedule::constant(10.0);
        assert_eq!(c.time_of_arrival(25.0), Some(2.5));
    }
}
