//! A worker of a verify: one connection per side, in one database. It takes batches of keys
//! from the scanner, reads them on both sides at once, compares them, and reads each differing
//! key again `recheck_after` later before it reports it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::compare::{self, diff, FirstRead, KeyState, Kind, Recheck};
use super::error::VerifyError;
use super::options::Options;
use super::read;
use super::report::Difference;
use super::side::Endpoint;
use crate::valkey::{Cmd, Conn};

/// A batch for a worker.
pub enum Job {
    /// Source keys: read both sides and compare.
    Compare(Vec<Vec<u8>>),
    /// Destination keys: do they exist on the source?
    Extra(Vec<Vec<u8>>),
}

/// What a worker reports per batch or recheck.
#[derive(Debug, Default)]
pub struct Outcome {
    pub checked: u64,
    pub identical: u64,
    pub vanished: u64,
    pub destination_scanned: u64,
    pub rechecked: u64,
    pub settled: u64,
    pub diffs: Vec<Difference>,
}

/// `cfg.parallel` workers sharing the job queue, connected to database `db` (the source's number,
/// which names their differences); a worker that fails sends its error as its last result.
pub fn spawn(
    src: &Arc<Endpoint>,
    dst: &Arc<Endpoint>,
    cfg: &Arc<Options>,
    db: u32,
    job_rx: mpsc::Receiver<Job>,
    res_tx: mpsc::Sender<Result<Outcome, VerifyError>>,
    cancel: &CancellationToken,
) -> tokio::task::JoinSet<()> {
    let job_rx = Arc::new(Mutex::new(job_rx));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..cfg.parallel {
        let (src, dst, cfg) = (src.clone(), dst.clone(), cfg.clone());
        let (jobs, results, cancel) = (job_rx.clone(), res_tx.clone(), cancel.clone());
        workers.spawn(async move {
            let r = async {
                let w = Worker {
                    src: src.connect().await?,
                    dst: dst.connect().await?,
                    src_ep: src,
                    dst_ep: dst,
                    cfg,
                    db,
                    pending: vec![],
                };
                w.run(jobs, &results, &cancel).await
            }
            .await;
            if let Err(e) = r {
                let _ = results.send(Err(e)).await;
            }
        });
    }
    workers
}

/// A key waiting for its recheck.
struct Pending {
    key: Vec<u8>,
    first: Instant,
    what: PendingKind,
}

enum PendingKind {
    /// Differed on the first read; what the source held then (digest and TTL).
    Compare(FirstRead),
    /// On the destination, not on the source.
    Extra,
}

/// One worker: a connection per side, and its keys waiting for a recheck.
struct Worker {
    src: Conn,
    dst: Conn,
    src_ep: Arc<Endpoint>,
    dst_ep: Arc<Endpoint>,
    cfg: Arc<Options>,
    /// The source database, named by each difference.
    db: u32,
    pending: Vec<Pending>,
}

enum Step {
    Job(Job),
    Recheck,
    Done,
}

impl Worker {
    async fn run(
        mut self,
        jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
        results: &mpsc::Sender<Result<Outcome, VerifyError>>,
        cancel: &CancellationToken,
    ) -> Result<(), VerifyError> {
        loop {
            let due = self
                .pending
                .first()
                .map(|p| p.first + self.cfg.recheck_after);
            let wake = due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let step = tokio::select! {
                biased;
                _ = cancel.cancelled() => Step::Done,
                _ = tokio::time::sleep_until(wake), if due.is_some() => Step::Recheck,
                j = async { jobs.lock().await.recv().await } => j.map_or(Step::Done, Step::Job),
            };
            let o = match step {
                Step::Done => break,
                Step::Recheck => self.recheck(false).await?,
                Step::Job(Job::Compare(keys)) => self.compare(keys).await?,
                Step::Job(Job::Extra(keys)) => self.extra(keys).await?,
            };
            if results.send(Ok(o)).await.is_err() {
                return Ok(());
            }
        }
        // The scan is over (or stopped): the remaining rechecks, when due (at once when stopped).
        while !self.pending.is_empty() {
            let due = self.pending[0].first + self.cfg.recheck_after;
            if !cancel.is_cancelled() {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep_until(due) => {}
                }
            }
            let o = self.recheck(cancel.is_cancelled()).await?;
            if results.send(Ok(o)).await.is_err() {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn read_both(
        &mut self,
        keys: &[Vec<u8>],
    ) -> Result<(Vec<KeyState>, Vec<KeyState>), VerifyError> {
        let chunk = self.cfg.chunk;
        let (s, d) = tokio::join!(
            read::read_states(&mut self.src, keys, chunk),
            read::read_states(&mut self.dst, keys, chunk)
        );
        Ok((
            s.map_err(|e| self.src_ep.lost(&e))?,
            d.map_err(|e| self.dst_ep.lost(&e))?,
        ))
    }

    async fn compare(&mut self, keys: Vec<Vec<u8>>) -> Result<Outcome, VerifyError> {
        let (s, d) = self.read_both(&keys).await?;
        let now = Instant::now();
        let mut o = Outcome::default();
        for ((key, s1), d1) in keys.into_iter().zip(s).zip(d) {
            o.checked += 1;
            if !s1.exists() {
                o.vanished += 1;
                continue;
            }
            match diff(&s1, &d1, self.cfg.ttl_tolerance) {
                None => o.identical += 1,
                Some(_) => self.pending.push(Pending {
                    key,
                    first: now,
                    what: PendingKind::Compare(FirstRead::of(&s1)),
                }),
            }
        }
        Ok(o)
    }

    async fn extra(&mut self, keys: Vec<Vec<u8>>) -> Result<Outcome, VerifyError> {
        let cmds: Vec<Cmd> = keys.iter().map(|k| Cmd::new("EXISTS").arg(k)).collect();
        let replies = self
            .src
            .pipeline(&cmds)
            .await
            .map_err(|e| self.src_ep.lost(&e))?;
        let now = Instant::now();
        let mut o = Outcome {
            destination_scanned: keys.len() as u64,
            ..Outcome::default()
        };
        for (key, r) in keys.into_iter().zip(replies) {
            match r {
                Ok(v) if v.as_int() == Some(0) => self.pending.push(Pending {
                    key,
                    first: now,
                    what: PendingKind::Extra,
                }),
                Ok(_) => {}
                Err(e) => o.diffs.push(Difference {
                    db: self.db,
                    key,
                    kind: Kind::Unreadable,
                    detail: format!("EXISTS on source: {}", e.msg),
                }),
            }
        }
        Ok(o)
    }

    /// Read the due keys again (all of them when `all`) and report those still different.
    async fn recheck(&mut self, all: bool) -> Result<Outcome, VerifyError> {
        let now = Instant::now();
        let after = self.cfg.recheck_after;
        let split = if all {
            self.pending.len()
        } else {
            self.pending.partition_point(|p| p.first + after <= now)
        };
        let due: Vec<Pending> = self.pending.drain(..split).collect();
        let tol = self.cfg.ttl_tolerance;
        let mut o = Outcome {
            rechecked: due.len() as u64,
            ..Outcome::default()
        };
        let (cmp, ext): (Vec<Pending>, Vec<Pending>) = due
            .into_iter()
            .partition(|p| matches!(p.what, PendingKind::Compare(_)));

        let keys: Vec<Vec<u8>> = cmp.iter().map(|p| p.key.clone()).collect();
        let (s, d) = self.read_both(&keys).await?;
        for ((p, s2), d2) in cmp.into_iter().zip(s).zip(d) {
            let PendingKind::Compare(first) = p.what else {
                continue;
            };
            match compare::recheck(first, &s2, &d2, p.first.elapsed(), tol) {
                Recheck::Settled => o.settled += 1,
                Recheck::Expired => o.vanished += 1,
                Recheck::Differs(d) => o.diffs.push(Difference {
                    db: self.db,
                    key: p.key,
                    kind: d.kind,
                    detail: d.detail,
                }),
            }
        }

        if !ext.is_empty() {
            let cmds: Vec<Cmd> = ext.iter().map(|p| Cmd::new("EXISTS").arg(&p.key)).collect();
            let types: Vec<Cmd> = ext.iter().map(|p| Cmd::new("TYPE").arg(&p.key)).collect();
            let (s, d) = tokio::join!(self.src.pipeline(&cmds), self.dst.pipeline(&types));
            let s = s.map_err(|e| self.src_ep.lost(&e))?;
            let d = d.map_err(|e| self.dst_ep.lost(&e))?;
            for ((p, s2), d2) in ext.into_iter().zip(s).zip(d) {
                let on_source = s2.ok().and_then(|v| v.as_int()).unwrap_or(1) != 0;
                let dtype = d2
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "none".into());
                if on_source {
                    o.settled += 1;
                } else if dtype == "none" {
                    o.vanished += 1;
                } else {
                    o.diffs.push(Difference {
                        db: self.db,
                        key: p.key,
                        kind: Kind::Extra,
                        detail: format!("{dtype} on destination only"),
                    });
                }
            }
        }
        Ok(o)
    }
}
