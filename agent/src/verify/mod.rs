//! After (and while) data moves from Redis to Valkey: [`run`] diffs the keyspaces read-only
//! (`valkey-chaos verify`), [`lag`] measures replication lag with a canary (`valkey-chaos lag`).
//!
//! `verify` data flow: a scanner ([`scan`]: `SCAN` of the source, or a `RANDOMKEY` sample,
//! paced to `--rate`) hands batches of keys to a few workers; each worker reads the batch on both
//! sides at once ([`read`]: two pipelined round trips per side and batch, chunked follow-ups for
//! big keys), compares them ([`compare`], pure), and rechecks every differing key once after
//! `recheck_after` before reporting it. With the full scan, a second `SCAN` of the destination
//! finds extra keys. The aggregator counts, keeps the first differences and drives the progress
//! line; [`render`] prints and writes `verify.json` / `lag.json`.
//!
//! Invariants: `verify` sends only read commands to both sides (`SCAN`, `RANDOMKEY`, `DBSIZE`,
//! `INFO`, `TYPE`, `PTTL`, reads by type, `EXISTS`, after the usual handshake of `AUTH`,
//! `CLIENT SETINFO`, `SELECT`), never `CONFIG`, `DEBUG` or `DUMP`; every
//! loop is bounded by a count taken from the server first; `lag` writes only its canary key
//! `vc:lag:<nonce>` on the source, with a TTL, and deletes it at the end.

pub mod compare;
pub mod lag;
pub mod read;
pub mod render;
pub mod scan;
pub mod side;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use compare::{diff, FirstRead, KeyState, Recheck};
pub use compare::{Diff, Kind};
use side::{Endpoint, Role, ServerInfo};

use crate::valkey::target::{TargetUrl, TlsChoice};
use crate::valkey::{Cmd, Conn};

/// Why `verify` or `lag` could not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A malformed URL or option (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A side is unreachable, refused us, or the connection was lost (exit 3).
    #[error("{0}")]
    Target(String),
}

/// What `verify` compares and how fast.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: String,
    pub destination: String,
    pub tls: TlsChoice,
    /// Fills the destination URL's missing password (`VALKEY_PASSWORD`).
    pub destination_password: Option<String>,
    /// Per request (and connect) deadline.
    pub timeout: Duration,
    /// `SCAN MATCH` pattern (applied client-side to a `RANDOMKEY` sample).
    pub pattern: Option<String>,
    /// Check a random sample of this many distinct keys instead of every key.
    pub sample: Option<u64>,
    /// Look for extra keys with a second `SCAN` of the destination (full mode only).
    pub extra: bool,
    /// Keys per second over both scans; `None` is unlimited.
    pub rate: Option<u32>,
    pub ttl_tolerance: Duration,
    /// Keys per pipeline (and the `SCAN COUNT` hint).
    pub batch: usize,
    /// Elements per request when reading a big hash, list, set, sorted set or stream.
    pub chunk: usize,
    /// Workers, each with one connection per side.
    pub parallel: usize,
    /// How long after the first read a differing key is read again.
    pub recheck_after: Duration,
    /// Differences kept (with key and description) in the report; all are counted.
    pub keep: usize,
    /// A bar on a terminal, a line every few seconds otherwise.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            source: String::new(),
            destination: String::new(),
            tls: TlsChoice::default(),
            destination_password: None,
            timeout: Duration::from_secs(10),
            pattern: None,
            sample: None,
            extra: true,
            rate: Some(DEFAULT_RATE),
            ttl_tolerance: Duration::from_secs(2),
            batch: 500,
            chunk: 1000,
            parallel: 4,
            recheck_after: Duration::from_secs(1),
            keep: 1000,
            progress: false,
        }
    }
}

/// The default `--rate`: safe against a production primary.
pub const DEFAULT_RATE: u32 = 5000;

/// How the keys were chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Every key `SCAN` returned (each key present for the whole scan is seen at least once).
    Full,
    /// `RANDOMKEY` draws: each draw is the server's (approximately uniform) random key, with
    /// replacement; duplicates are checked once, non-matching keys dropped.
    Sample {
        requested: u64,
        draws: u64,
        distinct: u64,
        /// The database answered nil: it is empty.
        empty: bool,
    },
}

/// Whether extra keys (on the destination only) were looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraCheck {
    Checked,
    /// `--no-extra`.
    Skipped,
    /// A sample says nothing about the rest of the destination.
    SkippedSample,
}

/// One reported difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub key: Vec<u8>,
    pub kind: Kind,
    pub detail: String,
}

/// The result of a verify.
#[derive(Debug, Clone)]
pub struct Report {
    pub source: ServerInfo,
    pub destination: ServerInfo,
    pub mode: Mode,
    pub pattern: Option<String>,
    pub extra: ExtraCheck,
    /// Source keys taken from the scan (or sample) and read on both sides.
    pub keys_checked: u64,
    /// Of those, equal on the first read.
    pub identical: u64,
    /// Of those, gone from the source when read (deleted or expired during the verify).
    pub vanished: u64,
    /// Keys that differed on the first read and were read again.
    pub rechecked: u64,
    /// Of those, equal on the recheck (in flight, or expiring within the tolerance).
    pub settled: u64,
    /// Destination keys looked up on the source by the extra-key scan.
    pub destination_scanned: u64,
    /// `lag` canary keys skipped.
    pub skipped_canaries: u64,
    pub by_kind: BTreeMap<Kind, u64>,
    /// The first [`Options::keep`] differences, in the order found.
    pub differences: Vec<Difference>,
    pub elapsed: Duration,
    /// Stopped by Ctrl-C: not every key was checked.
    pub interrupted: bool,
    pub ttl_tolerance: Duration,
    pub recheck_after: Duration,
    pub rate: Option<u32>,
}

impl Report {
    pub fn total_differences(&self) -> u64 {
        self.by_kind.values().sum()
    }
    /// Identical, and every key was checked.
    pub fn identical(&self) -> bool {
        self.total_differences() == 0 && !self.interrupted
    }
    pub fn keys_per_sec(&self) -> f64 {
        (self.keys_checked + self.destination_scanned) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A batch for a worker.
enum Job {
    /// Source keys: read both sides and compare.
    Compare(Vec<Vec<u8>>),
    /// Destination keys: do they exist on the source?
    Extra(Vec<Vec<u8>>),
}

/// What a worker reports per batch or recheck.
#[derive(Debug, Default)]
struct Outcome {
    checked: u64,
    identical: u64,
    vanished: u64,
    destination_scanned: u64,
    rechecked: u64,
    settled: u64,
    diffs: Vec<Difference>,
}

/// What the scanner reports at its end.
#[derive(Debug)]
struct ScanEnd {
    mode: Mode,
    skipped_canaries: u64,
}

/// Parse both URLs and check their TLS settings (usage errors, before any connection).
pub fn endpoints(opts: &Options) -> Result<(Endpoint, Endpoint), VerifyError> {
    endpoint_pair(
        &opts.source,
        &opts.destination,
        opts.destination_password.as_deref(),
        &opts.tls,
        opts.timeout,
    )
}

/// Both sides from their URLs (`verify` and `lag` alike); the destination's missing password is
/// `destination_password`.
fn endpoint_pair(
    source: &str,
    destination: &str,
    destination_password: Option<&str>,
    tls: &TlsChoice,
    timeout: Duration,
) -> Result<(Endpoint, Endpoint), VerifyError> {
    let src = TargetUrl::parse(source).map_err(|e| VerifyError::Usage(format!("--source: {e}")))?;
    let mut dst = TargetUrl::parse(destination)
        .map_err(|e| VerifyError::Usage(format!("--destination: {e}")))?;
    if dst.password.is_none() {
        dst.password = destination_password.map(str::to_string);
    }
    Ok((
        Endpoint::new(Role::Source, src, tls, timeout)?,
        Endpoint::new(Role::Destination, dst, tls, timeout)?,
    ))
}

/// Compare the source's keys with the destination's, read-only. `shutdown` (Ctrl-C) stops it
/// early with a partial, `interrupted` report.
pub async fn run(opts: &Options, shutdown: CancellationToken) -> Result<Report, VerifyError> {
    if opts.sample == Some(0) {
        return Err(VerifyError::Usage("--sample must be at least 1".into()));
    }
    if opts.batch == 0 || opts.chunk == 0 || opts.parallel == 0 {
        return Err(VerifyError::Usage(
            "--batch, --chunk and --parallel must be at least 1".into(),
        ));
    }
    let (src, dst) = endpoints(opts)?;
    let (src, dst) = (Arc::new(src), Arc::new(dst));
    let mut sc = src.connect().await?;
    let mut dc = dst.connect().await?;
    let source = side::server_info(&mut sc, &src.url).await;
    let destination = side::server_info(&mut dc, &dst.url).await;
    let extra = match (opts.sample, opts.extra) {
        (Some(_), _) => ExtraCheck::SkippedSample,
        (None, false) => ExtraCheck::Skipped,
        (None, true) => ExtraCheck::Checked,
    };
    let total = total_keys(opts, extra, &mut sc, &mut dc).await;

    let t0 = Instant::now();
    let cancel = shutdown.child_token();
    let (job_tx, job_rx) = mpsc::channel::<Job>(opts.parallel * 2);
    let (res_tx, res_rx) = mpsc::channel::<Result<Outcome, VerifyError>>(opts.parallel * 4);
    let cfg = Arc::new(opts.clone());
    let mut workers = spawn_workers(&src, &dst, &cfg, job_rx, res_tx, &cancel);
    let scanner = {
        let (src, dst, cfg, cancel) = (src.clone(), dst.clone(), cfg.clone(), cancel.clone());
        tokio::spawn(async move {
            let r = scan_all(&mut sc, &mut dc, &src, &dst, &cfg, job_tx, &cancel).await;
            if r.is_err() {
                cancel.cancel();
            }
            r
        })
    };

    let mut r = Report::empty(source, destination, opts, extra);
    let progress = render::Progress::new(total, opts.progress);
    let failure = r.collect(res_rx, opts.keep, progress, &cancel, t0).await;
    while workers.join_next().await.is_some() {}
    let end = scanner
        .await
        .map_err(|e| VerifyError::Target(format!("scanner task failed: {e}")))?;
    if let Some(e) = failure {
        return Err(e);
    }
    let end = end?;
    r.mode = end.mode;
    r.skipped_canaries = end.skipped_canaries;
    r.elapsed = t0.elapsed();
    r.interrupted = shutdown.is_cancelled();
    Ok(r)
}

/// Keys to check, for the progress line: the sample's size, or both `DBSIZE`s (the
/// destination's only when extra keys are looked for); unknown with a pattern.
async fn total_keys(
    opts: &Options,
    extra: ExtraCheck,
    sc: &mut Conn,
    dc: &mut Conn,
) -> Option<u64> {
    match (opts.sample, &opts.pattern) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => {
            let s = dbsize(sc).await;
            let d = if extra == ExtraCheck::Checked {
                dbsize(dc).await
            } else {
                Some(0)
            };
            s.zip(d).map(|(s, d)| s + d)
        }
    }
}

/// `opts.parallel` workers sharing the job queue; a worker that fails sends its error as its
/// last result.
fn spawn_workers(
    src: &Arc<Endpoint>,
    dst: &Arc<Endpoint>,
    cfg: &Arc<Options>,
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

impl Report {
    /// Nothing checked yet.
    fn empty(
        source: ServerInfo,
        destination: ServerInfo,
        opts: &Options,
        extra: ExtraCheck,
    ) -> Report {
        Report {
            source,
            destination,
            mode: Mode::Full,
            pattern: opts.pattern.clone(),
            extra,
            keys_checked: 0,
            identical: 0,
            vanished: 0,
            rechecked: 0,
            settled: 0,
            destination_scanned: 0,
            skipped_canaries: 0,
            by_kind: BTreeMap::new(),
            differences: vec![],
            elapsed: Duration::ZERO,
            interrupted: false,
            ttl_tolerance: opts.ttl_tolerance,
            recheck_after: opts.recheck_after,
            rate: opts.rate,
        }
    }

    /// Add the workers' results until every worker is done, driving the progress line; the
    /// first error stops the verify (`cancel`) and is returned.
    async fn collect(
        &mut self,
        mut results: mpsc::Receiver<Result<Outcome, VerifyError>>,
        keep: usize,
        mut progress: render::Progress,
        cancel: &CancellationToken,
        t0: Instant,
    ) -> Option<VerifyError> {
        let mut failure = None;
        while let Some(res) = results.recv().await {
            match res {
                Ok(o) => self.add(o, keep),
                Err(e) => {
                    cancel.cancel();
                    failure.get_or_insert(e);
                }
            }
            progress.update(
                self.keys_checked + self.destination_scanned,
                self.total_differences(),
                t0.elapsed(),
            );
        }
        progress.finish();
        failure
    }

    /// Count one batch's outcome; keep its differences while fewer than `keep` are kept.
    fn add(&mut self, o: Outcome, keep: usize) {
        self.keys_checked += o.checked;
        self.identical += o.identical;
        self.vanished += o.vanished;
        self.destination_scanned += o.destination_scanned;
        self.rechecked += o.rechecked;
        self.settled += o.settled;
        for d in o.diffs {
            *self.by_kind.entry(d.kind).or_default() += 1;
            if self.differences.len() < keep {
                self.differences.push(d);
            }
        }
    }
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

/// Pace, unless cancelled; `false` when the verify is stopping.
async fn pace(p: &mut scan::Pacer, n: u64, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = p.admit(n) => true,
    }
}

/// The scanner: source keys (full `SCAN` or sample), then destination keys for the extra check.
async fn scan_all(
    sc: &mut Conn,
    dc: &mut Conn,
    src: &Endpoint,
    dst: &Endpoint,
    opts: &Options,
    jobs: mpsc::Sender<Job>,
    cancel: &CancellationToken,
) -> Result<ScanEnd, VerifyError> {
    let mut pacer = scan::Pacer::new(opts.rate);
    let mut skipped = 0u64;
    if let Some(n) = opts.sample {
        let mut s = scan::Sampler::new(n, opts.pattern.as_deref());
        while !s.done() && !cancel.is_cancelled() {
            let keys = s.draw(sc, opts.batch).await.map_err(|e| src.lost(&e))?;
            if keys.is_empty() {
                continue;
            }
            if !pace(&mut pacer, keys.len() as u64, cancel).await
                || !send(&jobs, Job::Compare(keys), cancel).await
            {
                break;
            }
        }
        return Ok(ScanEnd {
            mode: Mode::Sample {
                requested: n,
                draws: s.draws,
                distinct: s.accepted,
                empty: s.empty,
            },
            skipped_canaries: 0,
        });
    }
    for (conn, ep, extra) in [(sc, src, false), (dc, dst, true)] {
        if extra && !opts.extra {
            break;
        }
        let limit = scan::scan_call_limit(dbsize(conn).await.unwrap_or(0), opts.batch);
        let mut cursor = "0".to_string();
        let mut calls = 0u64;
        loop {
            if cancel.is_cancelled() {
                break;
            }
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
            if !extra {
                skipped += (before - keys.len()) as u64;
            }
            if !keys.is_empty() {
                let n = keys.len() as u64;
                let job = if extra {
                    Job::Extra(keys)
                } else {
                    Job::Compare(keys)
                };
                if !pace(&mut pacer, n, cancel).await || !send(&jobs, job, cancel).await {
                    break;
                }
            }
            if next == "0" {
                break;
            }
            cursor = next;
        }
    }
    Ok(ScanEnd {
        mode: Mode::Full,
        skipped_canaries: skipped,
    })
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
