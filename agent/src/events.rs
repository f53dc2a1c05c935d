//! Typed events the agent observed during a run (faults injected and healed, primary changes…),
//! stamped relative to the run start. They feed the summary, the report and the trace exporter.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    FaultInjected,
    FaultHealed,
    HealFailed,
    PrimaryChanged,
    Note,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub at_secs: f64,
    pub kind: EventKind,
    pub detail: String,
}

/// A shared, append-only event log.
#[derive(Clone)]
pub struct Events {
    start: Instant,
    log: Arc<Mutex<Vec<Event>>>,
}

impl Events {
    pub fn new(start: Instant) -> Events {
        Events {
            start,
            log: Arc::new(Mutex::new(vec![])),
        }
    }
    pub fn start(&self) -> Instant {
        self.start
    }
    pub fn since_start(&self) -> Duration {
        self.start.elapsed()
    }
    pub fn push(&self, kind: EventKind, detail: impl Into<String>) {
        self.push_at(kind, Instant::now(), detail)
    }
    /// An event that happened at `at`, which may be before events already logged (a primary
    /// change the fault saw during its injection, logged once it is healed): kept in time order.
    pub fn push_at(&self, kind: EventKind, at: Instant, detail: impl Into<String>) {
        let at = at.saturating_duration_since(self.start).as_secs_f64();
        let detail = detail.into();
        tracing::info!(target: "valkey_chaos::event", ?kind, at, "{detail}");
        let ev = Event {
            at_secs: (at * 1000.0).round() / 1000.0,
            kind,
            detail,
        };
        let mut log = self.log.lock().expect("events lock");
        let i = log.partition_point(|e| e.at_secs <= ev.at_secs);
        log.insert(i, ev);
    }
    pub fn all(&self) -> Vec<Event> {
        self.log.lock().expect("events lock").clone()
    }
}

/// A fault occurrence as the workloads' oracles see it: its index in `[[fault]]` order and the
/// instants it was injected and healed (a repeated delivery in between is its doing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSpan {
    pub index: usize,
    pub from: Instant,
    pub to: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_stamped_earlier_is_logged_in_time_order() {
        let start = Instant::now();
        let ev = Events::new(start);
        ev.push_at(
            EventKind::FaultInjected,
            start + Duration::from_secs(1),
            "a",
        );
        ev.push_at(EventKind::FaultHealed, start + Duration::from_secs(3), "c");
        ev.push_at(
            EventKind::PrimaryChanged,
            start + Duration::from_secs(2),
            "b",
        );
        ev.push_at(EventKind::Note, start + Duration::from_secs(3), "d");
        let all = ev.all();
        let got: Vec<(f64, &str)> = all.iter().map(|e| (e.at_secs, e.detail.as_str())).collect();
        assert_eq!(got, [(1.0, "a"), (2.0, "b"), (3.0, "c"), (3.0, "d")]);
    }
}
