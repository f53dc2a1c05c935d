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
