//! What the switches did — a rolling switch batch by batch, and the way back: plain data the
//! switches fill in, the run reports.
//! A leaf of `fault/`, so the environment, the switch and the procedure import it without
//! importing each other.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::summary::MigrationVerify;
use crate::valkey::client::READONLY_REPLIES;

/// One batch as it rolled.
#[derive(Debug, Clone)]
pub struct RolledBatch {
    pub at: Instant,
    pub workload: String,
    pub clients: &'static str,
    pub pods: u32,
}

/// What a rolling switch did, for the report.
#[derive(Debug, Clone, Default)]
pub struct RollingOutcome {
    pub batches: Vec<RolledBatch>,
    pub roll_started: Option<Instant>,
    pub roll_ended: Option<Instant>,
    /// When the copy stopped (the destination promoted).
    pub promoted: Option<Instant>,
    /// When the source's writes were stopped, and resumed.
    pub writes_stopped: Option<Instant>,
    pub writes_resumed: Option<Instant>,
    /// The last time the source's offset moved after the copy stopped, while pods still pointed
    /// at it (none: the old side took no write after the copy stopped).
    pub last_source_write: Option<Instant>,
    /// Message ids the old side held when the copy stopped (the drain skips them).
    pub copied: Option<u64>,
    /// Messages the drain step moved, and what it said.
    pub drained: Option<(u64, String)>,
    /// `READONLY` replies before the switch (the report counts those after).
    pub readonly_before: u64,
}

impl RollingOutcome {
    /// How long two sides took writes: from the copy's stop to the old side's last write.
    pub fn two_sides(&self) -> Duration {
        match (self.promoted, self.last_source_write) {
            (Some(p), Some(w)) => w.saturating_duration_since(p),
            _ => Duration::ZERO,
        }
    }

    /// From the first batch to the end of the last.
    pub fn roll_secs(&self) -> f64 {
        match (self.roll_started, self.roll_ended) {
            (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
            _ => 0.0,
        }
    }

    /// `READONLY` replies since the switch began.
    pub fn readonly(&self) -> u64 {
        READONLY_REPLIES
            .load(Ordering::Relaxed)
            .saturating_sub(self.readonly_before)
    }
}

/// What the way back did.
#[derive(Debug, Clone)]
pub struct SwitchBackOutcome {
    /// When the clients went back to the source.
    pub at: Instant,
    /// How long the destination's writes stayed stopped.
    pub paused: Duration,
    /// How long the source took to receive everything (a full sync).
    pub sync: Duration,
    /// The two sides compared while nothing wrote (none: no step to ask).
    pub verify: Option<MigrationVerify>,
}
