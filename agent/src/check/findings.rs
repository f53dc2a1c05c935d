//! What an oracle found in a history, as its workload kind's counters: the one shape every
//! checker of this folder returns and [`crate::check::judge`] hands on.

/// What an oracle found in a history, as its workload kind's declared counters (indices into
/// [`crate::plan::WorkloadType::counters`]).
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
    /// Stretches the workload was not served although the operations it recorded may look
    /// normal: the recovery check takes them as not back to normal.
    pub outages: Vec<Outage>,
}

/// A stretch the oracle knows the workload was not served (acquirers blocked by an orphaned lock
/// name), on the clock used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    pub from: u64,
    /// `None`: it had not ended when the history did.
    pub to: Option<u64>,
    /// What it was, for the report (`orphaned lock name app:lock:1`).
    pub what: String,
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
