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
        let at = self.start.elapsed().as_secs_f64();
        let detail = detail.into();
        tracing::info!(target: "valkey_chaos::event", ?kind, at, "{detail}");
        self.log.lock().expect("events lock").push(Event {
            at_secs: (at * 1000.0).round() / 1000.0,
            kind,
            detail,
        });
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
