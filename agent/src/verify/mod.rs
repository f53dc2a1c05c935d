//! After (and while) data moves from Redis to Valkey: [`run`] diffs the keyspaces read-only
//! (`valkey-chaos verify`), [`lag`] measures replication lag with a canary (`valkey-chaos lag`).
//!
//! `verify` data flow: [`databases`] chooses the databases (every one holding keys on either
//! side, by `INFO keyspace`; `--db`; or a URL's `/N`), and each is verified in turn with
//! connections that `SELECT` it: a [`scanner`] (`SCAN` of the source, or a `RANDOMKEY` sample,
//! paced to `--rate` over the whole verify) hands batches of keys to a few [`worker`]s; each
//! worker reads the batch on both sides at once ([`read`]: two pipelined round trips per side
//! and batch, chunked follow-ups for big keys), compares them ([`compare`], pure), and rechecks
//! every differing key once after `recheck_after` before reporting it. With the full scan, a
//! second `SCAN` of the destination finds extra keys. The aggregator counts into the
//! [`report`] (totals and a line per database), keeps the first differences and drives the
//! progress line; [`render`] prints and writes `verify.json` / `lag.json`.
//!
//! Invariants: `verify` sends only read commands to both sides (`SCAN`, `RANDOMKEY`, `DBSIZE`,
//! `INFO`, `TYPE`, `PTTL`, reads by type, `EXISTS`, after the usual handshake of `AUTH`,
//! `CLIENT SETINFO`, `SELECT`), never `CONFIG`, `DEBUG` or `DUMP`; every
//! loop is bounded by a count taken from the server first; `lag` writes only its canary key
//! `vc:lag:<nonce>` on the source (in each database it watches), with a TTL, and deletes it at
//! the end.

pub mod compare;
pub mod databases;
pub mod error;
pub mod lag;
pub mod options;
pub mod read;
pub mod render;
pub mod report;
pub mod scan;
pub mod scanner;
pub mod side;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use compare::{Diff, Kind};
pub use error::VerifyError;
pub use options::{Options, DEFAULT_RATE};
pub use report::{Database, Difference, ExtraCheck, Mode, Report, Verdict};

use databases::{keys_in, one_sided, Choice};
use scanner::{ScanEnd, Scanner};
use side::{Endpoint, ServerInfo};
use worker::Outcome;

/// Parse both URLs and check their TLS settings (usage errors, before any connection).
pub fn endpoints(opts: &Options) -> Result<(Endpoint, Endpoint), VerifyError> {
    side::pair(
        &opts.source,
        &opts.destination,
        opts.destination_password.as_deref(),
        &opts.tls,
        opts.timeout,
    )
}

fn check_usage(opts: &Options) -> Result<(), VerifyError> {
    if opts.sample == Some(0) {
        return Err(VerifyError::Usage("--sample must be at least 1".into()));
    }
    if opts.batch == 0 || opts.chunk == 0 || opts.parallel == 0 {
        return Err(VerifyError::Usage(
            "--batch, --chunk and --parallel must be at least 1".into(),
        ));
    }
    Ok(())
}

/// Compare the source's keys with the destination's, read-only, database by database.
/// `shutdown` (Ctrl-C) stops it early with a partial, `interrupted` report.
pub async fn run(opts: &Options, shutdown: CancellationToken) -> Result<Report, VerifyError> {
    check_usage(opts)?;
    let (src, dst) = endpoints(opts)?;
    let plan = databases::plan(&opts.dbs, &src.url, &dst.url).map_err(VerifyError::Usage)?;
    let (mut sc, mut dc) = (src.connect().await?, dst.connect().await?);
    let source = side::server_info(&mut sc, &src.url).await;
    let destination = side::server_info(&mut dc, &dst.url).await;
    let sk = databases::keyspace(&mut sc).await;
    let dk = databases::keyspace(&mut dc).await;
    drop((sc, dc));
    let extra = match (opts.sample, opts.extra) {
        (Some(_), _) => ExtraCheck::SkippedSample,
        (None, false) => ExtraCheck::Skipped,
        (None, true) => ExtraCheck::Checked,
    };
    let mut r = Report::empty(source, destination, opts, extra, plan.choice());
    for p in plan.pairs(sk.as_ref(), dk.as_ref()) {
        let mut d = Database::new(
            p,
            keys_in(sk.as_ref(), p.source),
            keys_in(dk.as_ref(), p.destination),
        );
        if opts.pattern.is_none() {
            d.only_on = one_sided(d.source_keys, d.destination_keys);
        }
        r.databases.push(d);
    }

    let mut shared = Shared {
        src: &src,
        dst: &dst,
        opts,
        shutdown: &shutdown,
        pacer: scan::Pacer::new(opts.rate),
        progress: render::Progress::new(total_keys(opts, extra, &r.databases), opts.progress),
        t0: Instant::now(),
    };
    let mut mode = None;
    for i in 0..r.databases.len() {
        if shutdown.is_cancelled() {
            break;
        }
        shared.pacer.rebase();
        let end = shared.database(&mut r, i).await;
        let end = match end {
            Ok(end) => end,
            Err(e) => {
                shared.progress.finish();
                return Err(e);
            }
        };
        mode = Some(match mode {
            None => end.mode,
            Some(m) => Mode::and(m, end.mode),
        });
        r.skipped_canaries += end.skipped_canaries;
        r.databases[i].complete = !shutdown.is_cancelled();
    }
    shared.progress.finish();
    r.mode = mode.unwrap_or(match opts.sample {
        None => Mode::Full,
        Some(_) => Mode::Sample {
            requested: 0,
            draws: 0,
            distinct: 0,
            empty: false,
        },
    });
    r.elapsed = shared.t0.elapsed();
    r.interrupted = shutdown.is_cancelled();
    Ok(r)
}

/// Keys to check, for the progress line: the samples' size, or the `INFO keyspace` counts (the
/// destination's only when extra keys are looked for); unknown with a pattern or when `INFO` was
/// refused.
fn total_keys(opts: &Options, extra: ExtraCheck, dbs: &[Database]) -> Option<u64> {
    match (opts.sample, &opts.pattern) {
        (Some(n), _) => Some(n.saturating_mul(dbs.len() as u64)),
        (None, Some(_)) => None,
        (None, None) => dbs
            .iter()
            .map(|d| {
                let dst = match extra {
                    ExtraCheck::Checked => d.destination_keys?,
                    _ => 0,
                };
                Some(d.source_keys? + dst)
            })
            .sum(),
    }
}

/// What every database's verify shares: both sides, the options, one pacer (the rate holds over
/// the whole verify), the progress line and the start.
struct Shared<'a> {
    src: &'a Endpoint,
    dst: &'a Endpoint,
    opts: &'a Options,
    shutdown: &'a CancellationToken,
    pacer: scan::Pacer,
    progress: render::Progress,
    t0: Instant,
}

impl Shared<'_> {
    /// Verify database `i` of the report, counting into it: a scanner and `parallel` workers,
    /// every connection in that database.
    async fn database(&mut self, r: &mut Report, i: usize) -> Result<ScanEnd, VerifyError> {
        let pair = r.databases[i].pair;
        let src = Arc::new(self.src.in_db(pair.source));
        let dst = Arc::new(self.dst.in_db(pair.destination));
        let (sc, dc) = (src.connect().await?, dst.connect().await?);
        let opts = self.opts;
        let cancel = self.shutdown.child_token();
        let (job_tx, job_rx) = mpsc::channel(opts.parallel * 2);
        let (res_tx, res_rx) = mpsc::channel(opts.parallel * 4);
        let cfg = Arc::new(opts.clone());
        let mut workers = worker::spawn(&src, &dst, &cfg, pair.source, job_rx, res_tx, &cancel);
        let scanner = Scanner {
            sc,
            dc,
            src: &src,
            dst: &dst,
            opts,
            pacer: &mut self.pacer,
            cancel: &cancel,
        };
        let scan = async {
            let end = scanner.run(job_tx).await;
            if end.is_err() {
                cancel.cancel();
            }
            end
        };
        let collect = r.collect(i, res_rx, opts.keep, &mut self.progress, &cancel, self.t0);
        let (end, failure) = tokio::join!(scan, collect);
        while workers.join_next().await.is_some() {}
        match failure {
            Some(e) => Err(e),
            None => end,
        }
    }
}

impl Report {
    /// Nothing checked yet, no database listed yet.
    fn empty(
        source: ServerInfo,
        destination: ServerInfo,
        opts: &Options,
        extra: ExtraCheck,
        choice: Choice,
    ) -> Report {
        Report {
            source,
            destination,
            choice,
            databases: vec![],
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

    /// Add database `db`'s worker results until every worker is done, driving the progress
    /// line; the first error stops the verify (`cancel`) and is returned.
    async fn collect(
        &mut self,
        db: usize,
        mut results: mpsc::Receiver<Result<Outcome, VerifyError>>,
        keep: usize,
        progress: &mut render::Progress,
        cancel: &CancellationToken,
        t0: Instant,
    ) -> Option<VerifyError> {
        let mut failure = None;
        while let Some(res) = results.recv().await {
            match res {
                Ok(o) => self.add(db, o, keep),
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
        failure
    }

    /// Count one batch's outcome in database `db` and the totals; keep its differences while
    /// fewer than `keep` are kept.
    fn add(&mut self, db: usize, o: Outcome, keep: usize) {
        self.keys_checked += o.checked;
        self.identical += o.identical;
        self.vanished += o.vanished;
        self.destination_scanned += o.destination_scanned;
        self.rechecked += o.rechecked;
        self.settled += o.settled;
        let d = &mut self.databases[db];
        d.keys_checked += o.checked;
        d.differences += o.diffs.len() as u64;
        for d in o.diffs {
            *self.by_kind.entry(d.kind).or_default() += 1;
            if self.differences.len() < keep {
                self.differences.push(d);
            }
        }
    }
}
