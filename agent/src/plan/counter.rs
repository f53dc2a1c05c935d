//! Counters declared with their kind. A workload declares what each of its counters means once,
//! next to its plan; reports, exporters, `merge`, sharding and thresholds match on the kind and
//! never guess from a name.

use serde::{Deserialize, Serialize};

/// What a counter means, and so how it is judged, exported and merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CounterKind {
    /// A count of events over the run. Shards add up.
    #[default]
    Total,
    /// A count of safety violations: above 0 fails the verdict unless the scenario allows it
    /// with a threshold. Shards add up.
    Safety,
    /// How much a safety oracle could check (e.g. admissions inside a checked window): 0 with
    /// activity means the oracle is inconclusive. Shards add up.
    Checked,
    /// A high-water mark (queue depth). Shards take the largest.
    Max,
    /// A low-water mark (fairness). Shards take the smallest.
    Min,
    /// A level at the end of the run. Shards add up (each shard's level is its own share).
    Gauge,
    /// A fraction of something (`efficiency`): compared in `%`, not added over shards.
    Ratio,
}

impl CounterKind {
    pub fn name(self) -> &'static str {
        match self {
            CounterKind::Total => "total",
            CounterKind::Safety => "safety",
            CounterKind::Checked => "checked",
            CounterKind::Max => "max",
            CounterKind::Min => "min",
            CounterKind::Gauge => "gauge",
            CounterKind::Ratio => "ratio",
        }
    }

    /// Two shards' values of one counter, combined.
    pub fn combine(self, a: f64, b: f64) -> f64 {
        match self {
            CounterKind::Max => a.max(b),
            CounterKind::Min => a.min(b),
            // Not additive: the mean of the shards' ratios is the best a merge can say without
            // the inputs (the summary says so next to it).
            CounterKind::Ratio => (a + b) / 2.0,
            CounterKind::Total
            | CounterKind::Safety
            | CounterKind::Checked
            | CounterKind::Gauge => a + b,
        }
    }

    /// Whether a shard's value is a part of the whole-run value (so a bound on it is judged by
    /// `merge`, not per shard).
    pub fn additive(self) -> bool {
        matches!(
            self,
            CounterKind::Total | CounterKind::Safety | CounterKind::Checked | CounterKind::Gauge
        )
    }

    /// Exported as an OTLP gauge (a level) rather than a monotonic counter.
    pub fn is_level(self) -> bool {
        matches!(
            self,
            CounterKind::Max | CounterKind::Min | CounterKind::Gauge | CounterKind::Ratio
        )
    }
}

/// One counter a workload declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterDef {
    pub name: &'static str,
    pub kind: CounterKind,
    /// One line for `--help`-like listings and the report's tooltip.
    pub help: &'static str,
    /// For a [`CounterKind::Checked`] counter: the total it covers. When that total is above 0
    /// and nothing could be checked, the oracle is inconclusive (and the run fails).
    pub covers: Option<&'static str>,
}

/// Declare a workload's counters as an enum (the index into its counter array) plus their
/// definitions: `counters! { pub enum LockCounter { Acquired = ("acquired", Total, "…"), … } }`.
#[macro_export]
macro_rules! counters {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($v:ident = ($n:literal, $k:ident, $h:literal $(, covers = $c:literal)?)),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name { $($v),* }
        impl $name {
            pub const DEFS: &'static [$crate::plan::counter::CounterDef] = &[
                $($crate::plan::counter::CounterDef {
                    name: $n,
                    kind: $crate::plan::counter::CounterKind::$k,
                    help: $h,
                    covers: $crate::counters!(@covers $($c)?),
                }),*
            ];
            /// Index into [`Self::DEFS`] (and the workload's counter array).
            pub const fn i(self) -> usize { self as usize }
            pub fn name(self) -> &'static str { Self::DEFS[self as usize].name }
        }
    };
    (@covers) => { None };
    (@covers $c:literal) => { Some($c) };
}

/// The definition of `name` among `defs`.
pub fn find<'a>(defs: &'a [CounterDef], name: &str) -> Option<&'a CounterDef> {
    defs.iter().find(|d| d.name == name)
}
