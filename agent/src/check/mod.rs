//! The safety oracles' checkers: pure functions over histories (`crate::history`). A run checks
//! its own workloads' histories at the end; `merge` checks the histories of every agent of a
//! sharded run together, so a lock held by two agents at once, or a limiter over-admitting across
//! agents, is caught as it would be by one agent doing all the load.
//!
//! Both go through [`judge`]: the workload's kind picks its checker, and each checker maps what it
//! found to its kind's declared counters in one place ([`Findings`]), so the sharded verdict and
//! the single-agent one cannot drift apart. A new history-checked kind is a file here and an arm
//! in [`judge`].

pub mod limiter;
pub mod lock;

use crate::history::Entry;
use crate::plan::WorkloadType;

/// What an oracle found in a history, as its workload kind's declared counters (indices into
/// [`WorkloadType::counters`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Counted events (safety violations), each with its time on the clock used.
    pub events: Vec<(usize, Vec<u64>)>,
    /// Levels: how much the oracle could check.
    pub levels: Vec<(usize, u64)>,
    /// Events too close to tell apart on this clock (several hosts): neither counted nor excluded.
    pub uncertain: u64,
    /// A line for the report, when there is something to say (without the workload's id).
    pub note: Option<String>,
}

impl Findings {
    /// Every counter this oracle sets, with its value: events counted, levels as they are.
    pub fn values(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.events
            .iter()
            .map(|(i, t)| (*i, t.len() as u64))
            .chain(self.levels.iter().copied())
    }
}

/// Check one workload's history (one agent's, or every agent's together) with its kind's oracle;
/// `end` closes what was never closed (the run ended). `None`: the kind keeps no history, or the
/// history says too little to judge (a limiter without its configuration).
pub fn judge(ty: WorkloadType, entries: &[Entry], clock: Clock, end: u64) -> Option<Findings> {
    match ty {
        WorkloadType::Lock => Some(lock::findings(entries, clock, end)),
        WorkloadType::RateLimit => limiter::findings(entries, clock),
        WorkloadType::Commands
        | WorkloadType::Dramatiq
        | WorkloadType::Plugin
        | WorkloadType::Set => None,
    }
}

/// How entries' times are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Every entry comes from one host: CLOCK_MONOTONIC, exact.
    Mono,
    /// Entries from several hosts: Unix time, trusted to within `tolerance_ns` (an overlap or a
    /// window edge closer than that cannot be told).
    Wall { tolerance_ns: u64 },
}

/// Wall-clock skew assumed between hosts when histories from several are checked together.
pub const SKEW_NS: u64 = 10_000_000;

impl Clock {
    /// The clock for these entries.
    pub fn of(entries: &[Entry]) -> Clock {
        let mut hosts = entries.iter().map(|e| e.host.as_str());
        match hosts.next() {
            Some(h) if hosts.all(|x| x == h) && !h.is_empty() => Clock::Mono,
            None => Clock::Mono,
            _ => Clock::Wall {
                tolerance_ns: SKEW_NS,
            },
        }
    }

    /// An entry's time on this clock.
    pub fn at(&self, e: &Entry) -> u64 {
        match self {
            Clock::Mono => e.mono,
            Clock::Wall { .. } => e.wall,
        }
    }

    /// A `sent` or `aux` time (recorded on CLOCK_MONOTONIC) of an entry, on this clock.
    pub fn related(&self, e: &Entry, mono: u64) -> u64 {
        match self {
            Clock::Mono => mono,
            Clock::Wall { .. } => e.wall.saturating_sub(e.mono.saturating_sub(mono)),
        }
    }

    pub fn tolerance(&self) -> u64 {
        match self {
            Clock::Mono => 0,
            Clock::Wall { tolerance_ns } => *tolerance_ns,
        }
    }
}
