//! The message ledger: every message the agent enqueued, every delivery it handled, and how each
//! one ended. A delivery of an attempt (message id, retries) seen before is a duplicate.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::metrics::Counters;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    Acked,
    DeadLettered,
}

#[derive(Default)]
struct Entry {
    enqueued: bool,
    /// Bit n: attempt with `retries = n` was delivered (attempts ≥ 64 share the top bit).
    delivered: u64,
    done: Option<Final>,
}

/// The end-of-run classification of messages that did not end.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    pub lost: u64,
    pub stuck: u64,
    pub unfinished: u64,
}

#[derive(Default)]
pub struct Ledger {
    m: Mutex<HashMap<String, Entry>>,
}

impl Ledger {
    pub fn enqueued(&self, mid: &str) {
        self.m
            .lock()
            .expect("ledger lock")
            .entry(mid.to_string())
            .or_default()
            .enqueued = true;
    }

    /// A handler started on attempt `retries` of `mid`.
    pub fn delivered(&self, mid: &str, retries: u32, c: &Counters) {
        let mut m = self.m.lock().expect("ledger lock");
        let e = m.entry(mid.to_string()).or_default();
        let bit = 1u64 << retries.min(63);
        c.add(super::C_DELIVERED, 1);
        if e.delivered & bit != 0 {
            c.add(super::C_DUPLICATED, 1);
        }
        e.delivered |= bit;
    }

    pub fn finished(&self, mid: &str, how: Final, c: &Counters) {
        let mut m = self.m.lock().expect("ledger lock");
        let e = m.entry(mid.to_string()).or_default();
        if e.done.is_none() {
            match how {
                Final::Acked => c.add(super::C_ACKED, 1),
                Final::DeadLettered => c.add(super::C_DEAD, 1),
            }
        }
        e.done = Some(how);
    }

    /// Enqueued messages that have not ended yet.
    pub fn pending(&self) -> usize {
        self.m
            .lock()
            .expect("ledger lock")
            .values()
            .filter(|e| e.enqueued && e.done.is_none())
            .count()
    }

    /// Messages that did not end, by what Valkey still holds: `lost` were never delivered and are
    /// gone, `stuck` are still in a queue, payload hash or ack set, `unfinished` were delivered but
    /// neither acked nor dead-lettered and are gone. Unknown presence counts as stuck.
    pub fn reconcile(&self, present: Option<&HashSet<String>>) -> Reconciled {
        let m = self.m.lock().expect("ledger lock");
        let mut r = Reconciled::default();
        for (mid, e) in m.iter().filter(|(_, e)| e.enqueued && e.done.is_none()) {
            match present {
                Some(p) if !p.contains(mid) && e.delivered == 0 => r.lost += 1,
                Some(p) if !p.contains(mid) => r.unfinished += 1,
                _ => r.stuck += 1,
            }
        }
        r
    }

    /// Every message id delivered at least once.
    pub fn delivered_ids(&self) -> Vec<String> {
        self.m
            .lock()
            .expect("ledger lock")
            .iter()
            .filter(|(_, e)| e.delivered != 0)
            .map(|(k, _)| k.clone())
            .collect()
    }
}
