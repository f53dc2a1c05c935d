//! What a drain moved (or, with `--dry-run`, would move), queue by queue, and what it left.

use serde::Serialize;

/// One queue of one database (a delay queue, `x.DQ`, is a queue of its own).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueCount {
    pub db: u32,
    pub destination_db: u32,
    pub queue: String,
    /// From the ready list.
    pub ready: u64,
    /// From the ack sets of workers that are gone (requeued, as Dramatiq's maintenance does).
    pub requeued: u64,
    /// Payloads no list or ack set referred to (requeued).
    pub unreferenced: u64,
    /// Dead letters (to the destination's dead-letter queue).
    pub dead_letters: u64,
    /// Already on the destination: skipped.
    pub already_there: u64,
    /// The copy carried them when it stopped (`--copied`): skipped.
    pub copied: u64,
    /// Ids whose payload was gone on the source: nothing to move.
    pub missing_payload: u64,
    /// Left in the ack sets of workers still alive on the source.
    pub held_by_live_workers: u64,
}

impl QueueCount {
    /// Messages moved (or that would move).
    pub fn moved(&self) -> u64 {
        self.ready + self.requeued + self.unreferenced + self.dead_letters
    }

    fn is_empty(&self) -> bool {
        self.moved() == 0
            && self.already_there == 0
            && self.copied == 0
            && self.missing_payload == 0
            && self.held_by_live_workers == 0
    }
}

/// A message moved (or that would move), for naming it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moved {
    pub db: u32,
    pub queue: String,
    /// Dramatiq's `redis_message_id` (the key of its payload).
    pub rid: String,
    /// The message's own `message_id`, when its payload is JSON.
    pub message_id: Option<String>,
}

impl Moved {
    /// `network db1 <message id or rid>`.
    pub fn label(&self) -> String {
        format!(
            "{} (db {}, queue {})",
            self.message_id.as_deref().unwrap_or(&self.rid),
            self.db,
            self.queue
        )
    }
}

/// An ack set left on the source because its worker still heart-beats there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveAcks {
    pub db: u32,
    pub worker: String,
    pub queue: String,
    pub messages: u64,
    /// How long ago the worker's last heartbeat was, by the source's clock.
    pub heartbeat_age_ms: u64,
}

/// What `drain` did: `drain.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub source: String,
    pub destination: String,
    pub namespace: String,
    pub dry_run: bool,
    /// The source databases looked at.
    pub databases: Vec<u32>,
    /// Queues that had anything, by database and name.
    pub queues: Vec<QueueCount>,
    /// The first messages moved (or that would move), in the order met.
    pub moved: Vec<Moved>,
    pub live_workers: Vec<LiveAcks>,
    /// Message ids the copy carried that the drain was told about.
    pub copied_ids: u64,
    pub elapsed_secs: f64,
    /// Stopped by Ctrl-C before the end.
    pub interrupted: bool,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing was (or would be) left behind: with `--dry-run`, nothing to move.
    Done,
    /// Something is (or would be) left: with `--dry-run`, messages to move; otherwise messages
    /// held by live workers.
    LeftBehind,
    /// Stopped before the end.
    Incomplete,
}

impl Report {
    pub fn moved_total(&self) -> u64 {
        self.queues.iter().map(QueueCount::moved).sum()
    }

    pub fn held_total(&self) -> u64 {
        self.queues.iter().map(|q| q.held_by_live_workers).sum()
    }

    pub fn verdict(&self) -> Verdict {
        if self.interrupted {
            Verdict::Incomplete
        } else if self.held_total() > 0 || (self.dry_run && self.moved_total() > 0) {
            Verdict::LeftBehind
        } else {
            Verdict::Done
        }
    }

    /// The count of queue `q` of database `db`, created on first use.
    pub fn queue(&mut self, db: u32, destination_db: u32, q: &str) -> &mut QueueCount {
        let i = match self.queues.iter().position(|c| c.db == db && c.queue == q) {
            Some(i) => i,
            None => {
                self.queues.push(QueueCount {
                    db,
                    destination_db,
                    queue: q.to_string(),
                    ..QueueCount::default()
                });
                self.queues.len() - 1
            }
        };
        &mut self.queues[i]
    }

    /// Drop the queues that had nothing, and sort them.
    pub fn tidy(&mut self) {
        self.queues.retain(|q| !q.is_empty());
        self.queues
            .sort_by(|a, b| (a.db, &a.queue).cmp(&(b.db, &b.queue)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_says_what_is_left() {
        let mut r = Report::default();
        assert_eq!(r.verdict(), Verdict::Done);
        r.queue(1, 1, "network").ready = 3;
        r.queue(1, 1, "network").already_there = 1;
        r.queue(1, 1, "cpu");
        r.tidy();
        assert_eq!(r.queues.len(), 1);
        assert_eq!(r.moved_total(), 3);
        assert_eq!(r.verdict(), Verdict::Done);
        r.dry_run = true;
        assert_eq!(r.verdict(), Verdict::LeftBehind);
        r.dry_run = false;
        r.queue(1, 1, "network").held_by_live_workers = 2;
        assert_eq!(r.verdict(), Verdict::LeftBehind);
        r.interrupted = true;
        assert_eq!(r.verdict(), Verdict::Incomplete);
    }
}
