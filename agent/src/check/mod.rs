//! The safety oracles' checkers: pure functions over histories (`crate::history`). A run checks
//! its own workloads' histories at the end; `merge` checks the histories of every agent of a
//! sharded run together, so a lock held by two agents at once, or a limiter over-admitting across
//! agents, is caught as it would be by one agent doing all the load.
//!
//! Both go through [`judge`]: the workload's kind picks its checker, and each checker maps what it
//! found to its kind's declared counters in one place ([`Findings`]), so the sharded verdict and
//! the single-agent one cannot drift apart. A new history-checked kind is a file here and an arm
//! in [`judge`]. What the checkers and [`judge`] share, the [`Clock`] and the [`Findings`], lives
//! in leaf files of its own ([`clock`], [`findings`]) that import nothing of this folder.

pub mod clock;
pub mod findings;
pub mod limiter;
pub mod lock;

pub use clock::{Clock, SKEW_NS};
pub use findings::{Findings, Outage};

use crate::history::Entry;
use crate::plan::WorkloadType;

/// Check one workload's history (one agent's, or every agent's together) with its kind's oracle;
/// what was never closed (a hold never released, an orphan never granted again) is closed at the
/// history's last entry, so a run and a merge of it judge alike. `None`: the kind keeps no
/// history, or the history says too little to judge (a limiter without its configuration).
pub fn judge(ty: WorkloadType, entries: &[Entry], clock: Clock) -> Option<Findings> {
    let end = entries.iter().map(|e| clock.at(e)).max().unwrap_or(0);
    match ty {
        WorkloadType::Lock => Some(lock::findings(entries, clock, end)),
        WorkloadType::RateLimit => limiter::findings(entries, clock),
        WorkloadType::Commands
        | WorkloadType::Dramatiq
        | WorkloadType::Plugin
        | WorkloadType::Set => None,
    }
}
