//! The message ledger: every message the agent enqueued (acknowledged, or ambiguous: the enqueue
//! failed in a way that may have landed it), every delivery of every attempt, and how each one
//! ended. After the drain, [`Ledger::reconcile`] accounts for every acknowledged enqueue:
//!
//! - it ended: **acked** or **dead-lettered**;
//! - or it is a named failure: **lost** (never delivered, gone from Valkey), **unfinished**
//!   (delivered, never finished, gone), **stuck** (still in a queue, payload hash or ack set);
//! - or **stranded**: never delivered, held in the ack set of a live worker whose fetch lost its
//!   reply ([`Ledger::strand`] decides from what Valkey holds): Dramatiq requeues a worker's ack
//!   set only once its heartbeat expires, so the message waits for that worker to stop;
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
    /// The handler finished but its ack (or nack) failed: whether the failure may have landed it
    /// (timeout, broken connection), and when.
    ack_failed: Option<(bool, Instant)>,
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

impl Entry {
    /// Enqueued, not ended, and its current attempt not delivered (never delivered, or the last
    /// delivery ended by re-enqueueing the next attempt).
    fn waiting(&self) -> bool {
        self.enqueued.is_some()
            && self.done.is_none()
            && self
                .attempts
                .iter()
                .flatten()
                .max_by_key(|d| d.at)
                .is_none_or(|d| matches!(d.ended, Some((End::Retried, _))))
    }

    /// The latest delivery's failed ack, if it failed: whether it may have landed.
    fn ack_failed(&self) -> Option<bool> {
        self.attempts
            .iter()
            .flatten()
            .max_by_key(|d| d.at)
            .and_then(|d| d.ack_failed.map(|(ambiguous, _)| ambiguous))
    }
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
    /// Processed, the ack failed, still held in the worker's ack set (redelivered when its
    /// heartbeat expires).
    pub ack_failed: Vec<Instant>,
    /// Processed, the ack failed ambiguously, and the message is gone: the ack landed.
    pub ack_unconfirmed: u64,
    /// Never delivered, held in a live worker's ack set by a fetch that lost its reply, with when
    /// that fetch failed.
    pub stranded: Vec<Instant>,
    /// Never delivered, gone from the side the clients use now and still on a migration's old
    /// side: enqueued there after the copy stopped, where no worker consumes any more.
    pub left_behind: Vec<Instant>,
    /// A few message ids per failure kind ("lost", "stuck", …), for the report to name.
    pub examples: Vec<(&'static str, String)>,
}

/// The members of one ack set that fetches lost their replies into (read back from Valkey, as
/// message ids), how many messages those fetches asked for, and when the first failed.
#[derive(Debug, Clone)]
pub struct HeldSet {
    pub mids: Vec<String>,
    pub up_to: u64,
    pub at: Instant,
}

/// How many messages of each failure kind the report names.
const EXAMPLES: usize = 3;

impl Reconciled {
    fn example(&mut self, kind: &'static str, mid: &str) {
        if self.examples.iter().filter(|(k, _)| *k == kind).count() < EXAMPLES {
            self.examples.push((kind, mid.to_string()));
        }
    }
}

/// How long after a fault's end a repeated delivery is still its doing (requeues after a lost
/// heartbeat, reconnections after a failover).
pub const REPEAT_HORIZON: Duration = Duration::from_secs(5);

/// Entries by message id. Ids are the agent's own uuid4s (or a peer's on a shared queue), so
/// the table needs no protection from chosen keys: foldhash instead of SipHash, which was a
/// tenth of the producers' CPU.
#[derive(Default)]
pub struct Ledger {
    m: Mutex<HashMap<String, Entry, foldhash::fast::RandomState>>,
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
            ack_failed: None,
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

    /// The handler of attempt `retries` in `worker` finished, but its ack (or nack) failed;
    /// `ambiguous`: the failure may have landed it (timeout, broken connection).
    pub fn ack_failed(&self, mid: &str, retries: u32, worker: u64, ambiguous: bool, at: Instant) {
        let mut m = self.m.lock().expect("ledger lock");
        if let Some(d) = m.get_mut(mid).and_then(|e| {
            e.attempts
                .get_mut(retries as usize)?
                .iter_mut()
                .rev()
                .find(|d| d.worker == worker && d.ended.is_none())
        }) {
            d.ack_failed = Some((ambiguous, at));
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
        self.pending_except(&HashMap::new())
    }

    /// Acknowledged enqueues that have not ended yet and are not in `stranded`.
    pub fn pending_except(&self, stranded: &HashMap<String, Instant>) -> usize {
        self.m
            .lock()
            .expect("ledger lock")
            .iter()
            .filter(|(mid, e)| {
                e.enqueued.is_some()
                    && e.done.is_none()
                    && e.ack_failed().is_none()
                    && !stranded.contains_key(*mid)
            })
            .count()
    }

    /// Which messages of the ack sets that fetches lost their replies into are stranded: those
    /// still waiting for a delivery. A set counts only when its waiting members are no more than
    /// its lost fetches could have taken; more is not a lost reply's doing (they stay stuck).
    pub fn strand(&self, sets: &[HeldSet]) -> HashMap<String, Instant> {
        let m = self.m.lock().expect("ledger lock");
        let mut out = HashMap::new();
        for s in sets {
            let waiting: Vec<&String> = s
                .mids
                .iter()
                .filter(|mid| m.get(*mid).is_some_and(Entry::waiting))
                .collect();
            if waiting.len() as u64 <= s.up_to {
                out.extend(waiting.into_iter().map(|mid| (mid.clone(), s.at)));
            }
        }
        out
    }

    /// Account for every message, with what Valkey still holds (`present`: message ids in any
    /// queue, payload hash or ack set; `None`: could not be read, so unknown counts as stuck) and
    /// the messages [`Ledger::strand`] found stranded, and the faults of the run (which explain
    /// repeated deliveries).
    pub fn reconcile(
        &self,
        present: Option<&HashSet<String>>,
        stranded: &HashMap<String, Instant>,
        faults: &[FaultSpan],
    ) -> Reconciled {
        self.reconcile_sides(present, stranded, None, faults)
    }

    /// [`Ledger::reconcile`] for a migration: a message that is gone from the side the clients
    /// use now, never delivered, and still on the old side (`old_side`: the ids it holds) is
    /// left behind there, not lost.
    pub fn reconcile_sides(
        &self,
        present: Option<&HashSet<String>>,
        stranded: &HashMap<String, Instant>,
        old_side: Option<&HashSet<String>>,
        faults: &[FaultSpan],
    ) -> Reconciled {
        let m = self.m.lock().expect("ledger lock");
        let mut r = Reconciled::default();
        let mut ids: Vec<&String> = m.keys().collect();
        ids.sort();
        for mid in ids {
            let e = &m[mid];
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
                        (_, None) => {
                            r.repeats.duplicated.push(d.at);
                            r.example("duplicated", mid);
                        }
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
                    r.example("unfinished", mid);
                } else if matches!(e.done, Some((Final::Acked, _)))
                    && present.is_some_and(|p| p.contains(mid))
                {
                    // Acked, yet still in a queue or ack set after the drain: the ack never
                    // landed.
                    r.stuck.push(last);
                    r.example("stuck", mid);
                }
                continue;
            }
            if let (true, Some(at)) = (is_present, stranded.get(mid.as_str())) {
                r.stranded.push(*at);
                r.example("stranded", mid);
                continue;
            }
            let kind = match (present, is_present, delivered, e.ack_failed()) {
                (Some(_), false, false, _) if old_side.is_some_and(|o| o.contains(mid)) => {
                    r.left_behind.push(enq);
                    "left_behind"
                }
                (Some(_), false, false, _) => {
                    r.lost.push(enq);
                    "lost"
                }
                // The ack's reply was lost, the message is gone: the ack landed.
                (Some(_), false, true, Some(true)) => {
                    r.ack_unconfirmed += 1;
                    continue;
                }
                (Some(_), false, true, _) => {
                    r.unfinished.push(last);
                    "unfinished"
                }
                // Processed, the ack failed, and it is still there (in its worker's ack set):
                // Dramatiq redelivers it once that worker's heartbeat expires.
                (Some(_), true, true, Some(_)) => {
                    r.ack_failed.push(last);
                    r.example("ack_failed", mid);
                    continue;
                }
                _ => {
                    r.stuck.push(last);
                    "stuck"
                }
            };
            r.example(kind, mid);
        }
        r
    }

    /// One message's story, times in seconds from `start`: for naming it in the report.
    pub fn describe(&self, mid: &str, start: Instant) -> String {
        let m = self.m.lock().expect("ledger lock");
        let Some(e) = m.get(mid) else {
            return format!("message {mid}: never seen");
        };
        let t = |at: Instant| format!("{:.3}s", at.saturating_duration_since(start).as_secs_f64());
        let mut parts = vec![];
        match (e.enqueued, e.ambiguous) {
            (Some(at), _) => parts.push(format!("enqueued {}", t(at))),
            (None, Some(at)) => parts.push(format!("enqueue failed ambiguously {}", t(at))),
            (None, None) => {}
        }
        for (retries, attempt) in e.attempts.iter().enumerate() {
            for d in attempt {
                let mut s = format!(
                    "attempt {retries} delivered {} to worker {}.{}",
                    t(d.at),
                    d.worker >> 32,
                    d.worker & 0xffff_ffff
                );
                match d.ended {
                    Some((End::Done, at)) => s += &format!(", done {}", t(at)),
                    Some((End::Retried, at)) => s += &format!(", retried {}", t(at)),
                    None => s += ", never finished",
                }
                if d.work_lost {
                    s += ", its work lost";
                }
                if let Some((ambiguous, at)) = d.ack_failed {
                    s += &format!(
                        ", its ack failed {}{}",
                        t(at),
                        if ambiguous { " (may have landed)" } else { "" }
                    );
                }
                parts.push(s);
            }
        }
        match e.done {
            Some((Final::Acked, at)) => parts.push(format!("ack acknowledged {}", t(at))),
            Some((Final::DeadLettered, at)) => parts.push(format!("dead-lettered {}", t(at))),
            None => {}
        }
        format!("message {mid}: {}", parts.join("; "))
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
pub(super) fn explain(
    first: Instant,
    again: Instant,
    faults: &[FaultSpan],
) -> Option<Option<usize>> {
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
        let r = l.reconcile(Some(&present), &HashMap::new(), &[]);
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
        let r = l.reconcile(Some(&HashSet::new()), &HashMap::new(), &faults);
        assert_eq!(r.repeats.redelivered, vec![(ms(t, 3000), Some(0))]);
        assert_eq!(r.repeats.resurrected, vec![(ms(t, 1000), Some(0))]);
        assert_eq!(r.repeats.duplicated, vec![ms(t, 60_001)]);
        // Without the fault, all three are duplicates.
        let r = l.reconcile(Some(&HashSet::new()), &HashMap::new(), &[]);
        assert_eq!(r.repeats.duplicated.len(), 3);
    }

    #[test]
    fn a_failed_ack_is_told_apart_from_a_stuck_or_unfinished_message() {
        let l = Ledger::default();
        let t = Instant::now();
        for mid in ["held", "landed", "refused-gone", "hung"] {
            l.enqueued(mid, t);
            l.delivered(mid, 0, 1, ms(t, 10));
        }
        // Processed, the ack timed out, still in the ack set: waits for its redelivery.
        l.ack_failed("held", 0, 1, true, ms(t, 20));
        // Processed, the ack's reply lost, gone: the ack landed.
        l.ack_failed("landed", 0, 1, true, ms(t, 20));
        // Processed, the ack refused (not ambiguous), yet gone: unfinished.
        l.ack_failed("refused-gone", 0, 1, false, ms(t, 20));
        // "hung" never finished and is still there: stuck.
        assert_eq!(l.pending(), 1, "failed acks do not hold up the drain");
        let present: HashSet<String> = ["held".to_string(), "hung".to_string()].into();
        let r = l.reconcile(Some(&present), &HashMap::new(), &[]);
        assert_eq!(r.ack_failed, vec![ms(t, 10)]);
        assert_eq!(r.ack_unconfirmed, 1);
        assert_eq!(r.unfinished.len(), 1);
        assert_eq!(r.stuck.len(), 1);
        assert!(r.examples.contains(&("stuck", "hung".to_string())));
        let story = l.describe("held", t);
        assert!(
            story.contains("its ack failed 0.020s (may have landed)"),
            "{story}"
        );
        // A later delivery that is acked supersedes the failed ack.
        l.delivered("held", 0, 2, ms(t, 5000));
        l.finished("held", 0, 2, Some(Final::Acked), ms(t, 5001));
        let r = l.reconcile(Some(&HashSet::new()), &HashMap::new(), &[]);
        assert!(r.ack_failed.is_empty());
    }

    #[test]
    fn only_waiting_messages_a_lost_fetch_could_have_taken_are_stranded() {
        let l = Ledger::default();
        let t = Instant::now();
        for mid in [
            "w1",
            "w2",
            "acked",
            "failed-ack",
            "retried",
            "x1",
            "x2",
            "x3",
        ] {
            l.enqueued(mid, t);
        }
        l.delivered("acked", 0, 1, ms(t, 5));
        l.finished("acked", 0, 1, Some(Final::Acked), ms(t, 6));
        l.delivered("failed-ack", 0, 1, ms(t, 5));
        l.ack_failed("failed-ack", 0, 1, false, ms(t, 6));
        // Failed once, re-enqueued as attempt 1: that attempt waits for a delivery.
        l.delivered("retried", 0, 1, ms(t, 5));
        l.finished("retried", 0, 1, None, ms(t, 6));
        let at = ms(t, 100);
        let set = |mids: &[&str], up_to| HeldSet {
            mids: mids.iter().map(|m| m.to_string()).collect(),
            up_to,
            at,
        };
        // A fetch for 3 lost its reply; its broker's ack set also holds a processed message
        // whose ack failed (not waiting) and one that was acked (not waiting).
        let s = l.strand(&[set(&["w1", "w2", "retried", "failed-ack", "acked"], 3)]);
        let mut got: Vec<&String> = s.keys().collect();
        got.sort();
        assert_eq!(got, ["retried", "w1", "w2"]);
        // More waiting members than the lost fetches asked for: not their doing.
        assert!(l.strand(&[set(&["x1", "x2", "x3"], 2)]).is_empty());
        assert_eq!(l.pending_except(&s), 3, "x1, x2, x3 are still pending");
        let present: HashSet<String> = ["w1", "w2", "retried", "failed-ack", "x1", "x2", "x3"]
            .map(String::from)
            .into();
        let r = l.reconcile(Some(&present), &s, &[]);
        assert_eq!(r.stranded, vec![at; 3]);
        assert_eq!(r.stuck.len(), 3);
        assert_eq!(r.ack_failed.len(), 1);
        // Stranded only while still in Valkey: gone is lost.
        let r = l.reconcile(Some(&HashSet::new()), &s, &[]);
        assert!(r.stranded.is_empty());
        assert_eq!(r.lost.len(), 5);
    }
}
