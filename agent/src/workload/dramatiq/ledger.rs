//! The message ledger: every message the agent enqueued (acknowledged, or ambiguous: the enqueue
//! failed in a way that may have landed it), every delivery of every attempt, and how each one
//! ended. After the drain, [`Ledger::reconcile`] accounts for every acknowledged enqueue:
//!
//! - it ended: **acked** or **dead-lettered**;
//! - or it is a named failure: **lost** (never delivered, gone from Valkey), **unfinished**
//!   (delivered, never finished, gone), **stuck** (still in a queue, payload hash or ack set);
//! - a second delivery of one attempt `(message id, retries)` is **redelivered** when a fault
//!   was in progress between the two deliveries and the first never finished (a failover lost the
//!   fetch, a consumer crashed): Dramatiq's at-least-once contract; **resurrected** when the first
//!   had been acked (the ack was lost in the fault); **duplicated** when no fault explains it.
//!
//! No bit limits: attempts are kept in a vector per message, deliveries with their times.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::events::FaultSpan;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    Acked,
    DeadLettered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Acked (last attempt) or dead-lettered.
    Done,
    /// Failed and re-enqueued as the next attempt.
    Retried,
}

#[derive(Debug, Clone)]
struct Delivery {
    at: Instant,
    /// The worker (broker id generation) that held it.
    worker: u64,
    ended: Option<(End, Instant)>,
    /// The handler died after acking but before its work was done (an early-acking worker).
    work_lost: bool,
}

#[derive(Default, Debug)]
struct Entry {
    /// When the enqueue was acknowledged.
    enqueued: Option<Instant>,
    /// When an enqueue failed in a way that may still have landed it (timeout, connection).
    ambiguous: Option<Instant>,
    /// Deliveries per attempt (index = `retries`).
    attempts: Vec<Vec<Delivery>>,
    done: Option<(Final, Instant)>,
}

/// How second deliveries were explained, with when they happened (for impact windows).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Repeats {
    pub redelivered: Vec<(Instant, Option<usize>)>,
    pub resurrected: Vec<(Instant, Option<usize>)>,
    pub duplicated: Vec<Instant>,
}

/// The end-of-run accounting of every acknowledged (or ambiguous) enqueue.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Failures with the time they are attributed to (the enqueue or the last delivery).
    pub lost: Vec<Instant>,
    pub unfinished: Vec<Instant>,
    pub stuck: Vec<Instant>,
    pub repeats: Repeats,
    /// Enqueues that failed ambiguously: how many landed (delivered or present) and how many did
    /// not.
    pub ambiguous_landed: u64,
    pub ambiguous_not_landed: u64,
    /// Acknowledged enqueues the accounting covered (the oracle's "checked").
    pub checked: u64,
}

/// How long after a fault's end a repeated delivery is still its doing (requeues after a lost
/// heartbeat, reconnections after a failover).
pub const REPEAT_HORIZON: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Ledger {
    m: Mutex<HashMap<String, Entry>>,
}

impl Ledger {
    pub fn enqueued(&self, mid: &str, at: Instant) {
        self.m
            .lock()
            .expect("ledger lock")
            .entry(mid.to_string())
            .or_default()
            .enqueued = Some(at);
    }

    /// An enqueue failed with a timeout or a broken connection: it may have landed.
    pub fn ambiguous(&self, mid: &str, at: Instant) {
        self.m
            .lock()
            .expect("ledger lock")
            .entry(mid.to_string())
            .or_default()
            .ambiguous = Some(at);
    }

    /// A handler started on attempt `retries` of `mid`, in worker `worker`. Returns how many
    /// deliveries that attempt has had before.
    pub fn delivered(&self, mid: &str, retries: u32, worker: u64, at: Instant) -> usize {
        let mut m = self.m.lock().expect("ledger lock");
        let e = m.entry(mid.to_string()).or_default();
        let r = retries as usize;
        if e.attempts.len() <= r {
            e.attempts.resize_with(r + 1, Vec::new);
        }
        let before = e.attempts[r].len();
        e.attempts[r].push(Delivery {
            at,
            worker,
            ended: None,
            work_lost: false,
        });
        before
    }

    /// The handler of attempt `retries` in `worker` is done with it: the message ended (`how`),
    /// or it failed and was re-enqueued as the next attempt (`None`). Returns whether the message
    /// ended now for the first time.
    pub fn finished(
        &self,
        mid: &str,
        retries: u32,
        worker: u64,
        how: Option<Final>,
        at: Instant,
    ) -> bool {
        let mut m = self.m.lock().expect("ledger lock");
        let e = m.entry(mid.to_string()).or_default();
        if let Some(d) = e.attempts.get_mut(retries as usize).and_then(|a| {
            a.iter_mut()
                .rev()
                .find(|d| d.worker == worker && d.ended.is_none())
        }) {
            d.ended = Some((
                if how.is_some() {
                    End::Done
                } else {
                    End::Retried
                },
                at,
            ));
        }
        match how {
            Some(f) if e.done.is_none() => {
                e.done = Some((f, at));
                true
            }
            _ => false,
        }
    }

    /// An early-acking handler died before its work was done: the message was acked, its work
    /// never happened.
    pub fn work_lost(&self, mid: &str, retries: u32, worker: u64) {
        let mut m = self.m.lock().expect("ledger lock");
        if let Some(d) = m.get_mut(mid).and_then(|e| {
            e.attempts
                .get_mut(retries as usize)?
                .iter_mut()
                .rev()
                .find(|d| d.worker == worker)
        }) {
            d.work_lost = true;
        }
    }

    /// Acknowledged enqueues that have not ended yet.
    pub fn pending(&self) -> usize {
        self.m
            .lock()
            .expect("ledger lock")
            .values()
            .filter(|e| e.enqueued.is_some() && e.done.is_none())
            .count()
    }

    /// Account for every message, with what Valkey still holds (`present`: message ids in any
    /// queue, payload hash or ack set; `None`: could not be read, so unknown counts as stuck) and
    /// the faults of the run (which explain repeated deliveries).
    pub fn reconcile(&self, present: Option<&HashSet<String>>, faults: &[FaultSpan]) -> Reconciled {
        let m = self.m.lock().expect("ledger lock");
        let mut r = Reconciled::default();
        for (mid, e) in m.iter() {
            let is_present = present.is_none_or(|p| p.contains(mid));
            let delivered = e.attempts.iter().any(|a| !a.is_empty());
            if e.enqueued.is_none() {
                if e.ambiguous.is_some() {
                    if delivered || (present.is_some() && is_present) {
                        r.ambiguous_landed += 1;
                    } else {
                        r.ambiguous_not_landed += 1;
                    }
                }
            } else {
                r.checked += 1;
            }
            // Repeated deliveries, attempt by attempt.
            for attempt in &e.attempts {
                for (k, d) in attempt.iter().enumerate().skip(1) {
                    let prev = &attempt[k - 1];
                    let cause = explain(prev.at, d.at, faults);
                    match (prev.ended, cause) {
                        (_, None) => r.repeats.duplicated.push(d.at),
                        (Some((End::Done, _)), Some(f)) => r.repeats.resurrected.push((d.at, f)),
                        (_, Some(f)) => r.repeats.redelivered.push((d.at, f)),
                    }
                }
            }
            let Some(enq) = e.enqueued else {
                continue;
            };
            let last = e
                .attempts
                .iter()
                .flatten()
                .map(|d| d.at)
                .max()
                .unwrap_or(enq);
            if e.done.is_some() {
                // Acked but its work died with an early-acking worker: never processed.
                if e.attempts.iter().flatten().any(|d| d.work_lost) {
                    r.unfinished.push(last);
                } else if matches!(e.done, Some((Final::Acked, _)))
                    && present.is_some_and(|p| p.contains(mid))
                {
                    // Acked, yet still in a queue or ack set after the drain: the ack never
                    // landed.
                    r.stuck.push(last);
                }
                continue;
            }
            match (present, is_present, delivered) {
                (Some(_), false, false) => r.lost.push(enq),
                (Some(_), false, true) => r.unfinished.push(last),
                _ => r.stuck.push(last),
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
            .filter(|(_, e)| e.attempts.iter().any(|a| !a.is_empty()))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// The fault (index, if any) in progress between a delivery at `first` and a repeat at `again`:
/// injected before the repeat, and not over (plus [`REPEAT_HORIZON`]) before the first.
fn explain(first: Instant, again: Instant, faults: &[FaultSpan]) -> Option<Option<usize>> {
    faults
        .iter()
        .find(|f| f.from <= again && first <= f.to + REPEAT_HORIZON)
        .map(|f| Some(f.index))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(base: Instant, n: u64) -> Instant {
        base + Duration::from_millis(n)
    }

    #[test]
    fn every_enqueue_is_accounted_for() {
        let l = Ledger::default();
        let t = Instant::now();
        for (i, mid) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            l.enqueued(mid, ms(t, i as u64));
        }
        // a: acked. b: never delivered, gone → lost. c: delivered, gone → unfinished.
        // d: present → stuck. e: dead-lettered after two attempts.
        l.delivered("a", 0, 1, ms(t, 10));
        assert!(l.finished("a", 0, 1, Some(Final::Acked), ms(t, 11)));
        l.delivered("c", 0, 1, ms(t, 12));
        l.delivered("e", 0, 1, ms(t, 13));
        assert!(!l.finished("e", 0, 1, None, ms(t, 14)));
        l.delivered("e", 1, 1, ms(t, 20));
        assert!(l.finished("e", 1, 1, Some(Final::DeadLettered), ms(t, 21)));
        l.ambiguous("f", ms(t, 30));
        l.ambiguous("g", ms(t, 31));
        l.delivered("g", 0, 2, ms(t, 40));
        let present: HashSet<String> = ["d".to_string()].into();
        let r = l.reconcile(Some(&present), &[]);
        assert_eq!(r.lost.len(), 1);
        assert_eq!(r.unfinished.len(), 1);
        assert_eq!(r.stuck.len(), 1);
        assert_eq!(r.checked, 5);
        assert_eq!((r.ambiguous_landed, r.ambiguous_not_landed), (1, 1));
        assert_eq!(r.repeats, Repeats::default());
    }

    #[test]
    fn repeats_are_explained_by_faults_or_called_duplicates() {
        let l = Ledger::default();
        let t = Instant::now();
        // Delivered at 10ms, held when a consumer crashed at 20ms, requeued and delivered at 3s.
        l.enqueued("m", t);
        l.delivered("m", 0, 1, ms(t, 10));
        l.delivered("m", 0, 2, ms(t, 3000));
        l.finished("m", 0, 2, Some(Final::Acked), ms(t, 3001));
        // Acked at 30ms, the ack lost in a failover at 40ms, delivered again at 1s.
        l.enqueued("n", t);
        l.delivered("n", 0, 1, ms(t, 25));
        l.finished("n", 0, 1, Some(Final::Acked), ms(t, 30));
        l.delivered("n", 0, 3, ms(t, 1000));
        // Delivered twice with no fault anywhere near: a duplicate.
        l.enqueued("o", t);
        l.delivered("o", 0, 1, ms(t, 60_000));
        l.delivered("o", 0, 2, ms(t, 60_001));
        // Attempt 70 is no different from attempt 0.
        l.enqueued("p", t);
        for r in 0..=70 {
            l.delivered("p", r, 1, ms(t, 100 + r as u64));
            l.finished(
                "p",
                r,
                1,
                (r == 70).then_some(Final::Acked),
                ms(t, 100 + r as u64),
            );
        }
        let faults = [FaultSpan {
            index: 0,
            from: ms(t, 20),
            to: ms(t, 40),
        }];
        let r = l.reconcile(Some(&HashSet::new()), &faults);
        assert_eq!(r.repeats.redelivered, vec![(ms(t, 3000), Some(0))]);
        assert_eq!(r.repeats.resurrected, vec![(ms(t, 1000), Some(0))]);
        assert_eq!(r.repeats.duplicated, vec![ms(t, 60_001)]);
        // Without the fault, all three are duplicates.
        let r = l.reconcile(Some(&HashSet::new()), &[]);
        assert_eq!(r.repeats.duplicated.len(), 3);
    }
}
