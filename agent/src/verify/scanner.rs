//! The scanner of one database: source keys (a full `SCAN`, or a `RANDOMKEY` sample), then, for
//! the extra-key check, destination keys, handed to the workers in batches at the verify's rate.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::error::VerifyError;
use super::options::Options;
use super::report::Mode;
use super::scan::{self, Pacer};
use super::side::Endpoint;
use super::worker::Job;
use crate::valkey::{Cmd, Conn};

/// What the scanner reports at its end.
#[derive(Debug)]
pub struct ScanEnd {
    pub mode: Mode,
    pub skipped_canaries: u64,
}

/// One database's scanner: a connection per side in that database, the verify's pacer.
pub struct Scanner<'a> {
    pub sc: Conn,
    pub dc: Conn,
    pub src: &'a Endpoint,
    pub dst: &'a Endpoint,
    pub opts: &'a Options,
    /// Shared by every database: the rate is over the whole verify.
    pub pacer: &'a mut Pacer,
    pub cancel: &'a CancellationToken,
}

async fn dbsize(c: &mut Conn) -> Option<u64> {
    c.request(&Cmd::new("DBSIZE"))
        .await
        .ok()
        .and_then(|v| v.as_int())
        .map(|n| n.max(0) as u64)
}

/// Send a job unless cancelled; `false` when the verify is stopping.
async fn send(jobs: &mpsc::Sender<Job>, job: Job, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        r = jobs.send(job) => r.is_ok(),
    }
}

impl Scanner<'_> {
    /// Source keys (full `SCAN` or sample), then destination keys for the extra check. `jobs`
    /// closes when this returns, which ends the workers' queue.
    pub async fn run(mut self, jobs: mpsc::Sender<Job>) -> Result<ScanEnd, VerifyError> {
        if let Some(n) = self.opts.sample {
            return self.sample(n, &jobs).await;
        }
        let skipped = self.scan(false, &jobs).await?;
        if self.opts.extra {
            self.scan(true, &jobs).await?;
        }
        Ok(ScanEnd {
            mode: Mode::Full,
            skipped_canaries: skipped,
        })
    }

    /// Pace, unless cancelled; `false` when the verify is stopping.
    async fn pace(&mut self, n: u64) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = self.pacer.admit(n) => true,
        }
    }

    /// A `RANDOMKEY` sample of `n` distinct source keys.
    async fn sample(&mut self, n: u64, jobs: &mpsc::Sender<Job>) -> Result<ScanEnd, VerifyError> {
        let mut s = scan::Sampler::new(n, self.opts.pattern.as_deref());
        while !s.done() && !self.cancel.is_cancelled() {
            let keys = s
                .draw(&mut self.sc, self.opts.batch)
                .await
                .map_err(|e| self.src.lost(&e))?;
            if keys.is_empty() {
                continue;
            }
            if !self.pace(keys.len() as u64).await
                || !send(jobs, Job::Compare(keys), self.cancel).await
            {
                break;
            }
        }
        Ok(ScanEnd {
            mode: Mode::Sample {
                requested: n,
                draws: s.draws,
                distinct: s.accepted,
                empty: s.empty,
            },
            skipped_canaries: 0,
        })
    }

    /// A full `SCAN` of the source (`extra`: of the destination), bounded by its `DBSIZE`;
    /// returns the canary keys skipped.
    async fn scan(&mut self, extra: bool, jobs: &mpsc::Sender<Job>) -> Result<u64, VerifyError> {
        let (opts, cancel) = (self.opts, self.cancel);
        let (conn, ep) = if extra {
            (&mut self.dc, self.dst)
        } else {
            (&mut self.sc, self.src)
        };
        let limit = scan::scan_call_limit(dbsize(conn).await.unwrap_or(0), opts.batch);
        let mut cursor = "0".to_string();
        let mut calls = 0u64;
        let mut skipped = 0u64;
        while !cancel.is_cancelled() {
            calls += 1;
            if calls > limit {
                return Err(VerifyError::Target(format!(
                    "{} {}: SCAN did not return to cursor 0 within {limit} calls",
                    ep.role.name(),
                    ep.url
                )));
            }
            let (next, mut keys) =
                scan::scan_step(conn, &cursor, opts.pattern.as_deref(), opts.batch)
                    .await
                    .map_err(|e| ep.lost(&e))?;
            let before = keys.len();
            keys.retain(|k| !k.starts_with(scan::CANARY_PREFIX));
            skipped += (before - keys.len()) as u64;
            if !keys.is_empty() {
                let n = keys.len() as u64;
                let job = if extra {
                    Job::Extra(keys)
                } else {
                    Job::Compare(keys)
                };
                let admitted = tokio::select! {
                    _ = cancel.cancelled() => false,
                    _ = self.pacer.admit(n) => true,
                };
                if !admitted || !send(jobs, job, cancel).await {
                    break;
                }
            }
            if next == "0" {
                break;
            }
            cursor = next;
        }
        Ok(if extra { 0 } else { skipped })
    }
}
