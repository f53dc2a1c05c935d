//! `lag`: live replication lag through a canary, for watching a provider's online migration
//! before the switch. Every `interval` the source gets `SET vc:lag:<nonce> "<seq>:<unix ms>" PX
//! <ttl>`; the destination is polled with `GET` until it shows that sequence number (or a later
//! one), and the time from the source's `SET` reply to the destination's first `GET` reply that
//! shows it is the sample's lag (its resolution: the poll step plus one round trip).
//!
//! Every database is watched, each by its own canary written and awaited in that database, on
//! its own pair of connections (a provider's tool that copies only DB 0 shows a perfect lag there
//! while DB 1 never arrives): the databases holding keys on the source (`INFO keyspace`; none →
//! DB 0), or `--db`, or the URL's `/N`.
//!
//! This writes: one key on the source per database, overwritten per sample, with a TTL a few
//! times `max_lag` so nothing outlives a crash, and deleted at the end. Nothing is written to the
//! destination.

use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::databases::{self, Choice, DbPair, Plan};
use super::error::VerifyError;
use super::side::{self, Endpoint, Link, Replication, ServerInfo};
use crate::valkey::target::TlsChoice;
use crate::valkey::{Cmd, Conn, Value};

/// Every canary key starts with this (then a per-run nonce); `verify` skips such keys.
pub const KEY_PREFIX: &str = "vc:lag:";

/// What `lag` watches and for how long.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: String,
    pub destination: String,
    pub tls: TlsChoice,
    /// Fills the destination URL's missing password (`VALKEY_PASSWORD`).
    pub destination_password: Option<String>,
    /// `--db`: a canary in each of these. Empty: the database both URLs name, else every
    /// database holding keys on the source.
    pub dbs: Vec<u32>,
    pub timeout: Duration,
    /// One canary per interval and database (a late canary delays its database's next one).
    pub interval: Duration,
    /// Stop after this long; `None` runs until Ctrl-C.
    pub duration: Option<Duration>,
    /// A canary not seen on the destination within this is lost (and the exit code 1).
    pub max_lag: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            source: String::new(),
            destination: String::new(),
            tls: TlsChoice::default(),
            destination_password: None,
            dbs: vec![],
            timeout: Duration::from_secs(5),
            interval: Duration::from_secs(1),
            duration: None,
            max_lag: Duration::from_secs(10),
        }
    }
}

/// One canary.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The database it was written in (and awaited in, on the destination).
    pub db: DbPair,
    /// Per database, from 1.
    pub seq: u64,
    /// When it was written, since the start.
    pub at: Duration,
    /// `None`: not seen on the destination within `max_lag`.
    pub lag: Option<Duration>,
    /// The source's `master_repl_offset` and the destination's `slave_repl_offset` right after
    /// the sample, when both are readable and the destination is a replica.
    pub offsets: Option<(i64, i64)>,
}

/// At most this many samples are kept for `lag.json` (a day at one per second); the statistics
/// cover every sample.
pub const MAX_KEPT_SAMPLES: usize = 86_400;

/// How one database's canaries fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbStatus {
    /// Stopped before its first canary was judged.
    NoSample,
    /// Every canary arrived within `max_lag`.
    Ok,
    /// Some arrived, some did not.
    Lagging,
    /// None arrived: the database is not replicated (or hopelessly behind).
    NotReplicated,
}

impl DbStatus {
    /// As `lag.json` spells it.
    pub fn name(self) -> &'static str {
        match self {
            DbStatus::NoSample => "no-sample",
            DbStatus::Ok => "ok",
            DbStatus::Lagging => "lagging",
            DbStatus::NotReplicated => "not-replicated",
        }
    }
}

/// One database's canaries over the run.
#[derive(Debug, Clone)]
pub struct DbLag {
    pub pair: DbPair,
    pub sent: u64,
    pub arrived: u64,
    pub lost: u64,
    /// Lag of every arrived canary, in microseconds.
    pub hist: Histogram<u64>,
    /// Its canary could not be deleted at the end (its TTL still removes it).
    pub cleanup_error: Option<String>,
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn percentile_ms(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(q / 100.0) as f64 / 1000.0)
}

fn max_ms(h: &Histogram<u64>) -> Option<f64> {
    (!h.is_empty()).then(|| h.max() as f64 / 1000.0)
}

impl DbLag {
    fn new(pair: DbPair) -> DbLag {
        DbLag {
            pair,
            sent: 0,
            arrived: 0,
            lost: 0,
            hist: new_hist(),
            cleanup_error: None,
        }
    }
    pub fn status(&self) -> DbStatus {
        match (self.arrived, self.lost) {
            (0, 0) => DbStatus::NoSample,
            (_, 0) => DbStatus::Ok,
            (0, _) => DbStatus::NotReplicated,
            _ => DbStatus::Lagging,
        }
    }
    /// A lag percentile (0–100) in milliseconds; `None` before the first arrival.
    pub fn percentile_ms(&self, q: f64) -> Option<f64> {
        percentile_ms(&self.hist, q)
    }
    pub fn max_ms(&self) -> Option<f64> {
        max_ms(&self.hist)
    }
}

/// The result of a lag run: totals over every database, and a line per database.
#[derive(Debug, Clone)]
pub struct LagReport {
    pub source: ServerInfo,
    pub destination: ServerInfo,
    pub key: String,
    pub link: Link,
    pub link_text: String,
    pub replication_start: (Option<Replication>, Option<Replication>),
    pub replication_end: (Option<Replication>, Option<Replication>),
    /// How the databases were chosen, and each one's canaries.
    pub choice: Choice,
    pub databases: Vec<DbLag>,
    pub samples: Vec<Sample>,
    /// Lag of every arrived canary, in microseconds.
    pub hist: Histogram<u64>,
    pub sent: u64,
    pub arrived: u64,
    pub lost: u64,
    pub elapsed: Duration,
    pub interrupted: bool,
    pub max_lag: Duration,
    /// A canary could not be deleted at the end (its TTL still removes it).
    pub cleanup_error: Option<String>,
}

impl LagReport {
    /// A lag percentile (0–100) in milliseconds; `None` before the first arrival.
    pub fn percentile_ms(&self, q: f64) -> Option<f64> {
        percentile_ms(&self.hist, q)
    }
    pub fn max_ms(&self) -> Option<f64> {
        max_ms(&self.hist)
    }
    /// Every canary arrived within `max_lag`.
    pub fn passed(&self) -> bool {
        self.lost == 0
    }
    /// The database a sample was taken in.
    pub fn database(&self, pair: DbPair) -> Option<&DbLag> {
        self.databases.iter().find(|d| d.pair == pair)
    }

    /// Count a canary written in database `i`.
    fn written(&mut self, i: usize) {
        self.sent += 1;
        self.databases[i].sent += 1;
    }

    /// Count a judged canary of database `i` (kept for `lag.json` while there is room).
    fn taken(&mut self, i: usize, s: &Sample) {
        let d = &mut self.databases[i];
        match s.lag {
            Some(l) => {
                let us = (l.as_micros() as u64).max(1);
                self.arrived += 1;
                d.arrived += 1;
                let _ = self.hist.record(us);
                let _ = d.hist.record(us);
            }
            None => {
                self.lost += 1;
                d.lost += 1;
            }
        }
    }
}

fn nonce() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut r = crate::rng::Rng::new(t ^ ((std::process::id() as u64) << 32));
    format!("{:016x}", r.next_u64())
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// The sequence number in a canary value `"<seq>:<unix ms>"`.
pub fn canary_seq(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?;
    s.split(':').next()?.parse().ok()
}

/// How long to wait before the next poll, `since` the canary was written: fine at first
/// (sub-millisecond lags are the common case), coarser once the lag is clearly large.
pub fn poll_step(since: Duration) -> Duration {
    if since < Duration::from_millis(20) {
        Duration::from_millis(1)
    } else if since < Duration::from_millis(500) {
        Duration::from_millis(5)
    } else {
        Duration::from_millis(20)
    }
}

async fn replication(c: &mut Conn) -> Option<Replication> {
    side::info(c, "replication")
        .await
        .map(|t| Replication::parse(&t))
}

/// What a database's canary task tells the run, in order.
enum Event {
    /// Database `.0` wrote a canary.
    Written(usize),
    /// Database `.0` judged one: arrived, or lost.
    Taken(usize, Sample),
}

/// Watch the lag until `duration` (or Ctrl-C), a canary per database; `on_sample` sees each
/// sample as it is taken.
pub async fn run(
    opts: &Options,
    shutdown: CancellationToken,
    mut on_sample: impl FnMut(&Sample, &LagReport),
) -> Result<LagReport, VerifyError> {
    if opts.interval.is_zero() || opts.max_lag.is_zero() {
        return Err(VerifyError::Usage(
            "--interval and --max-lag must be above zero".into(),
        ));
    }
    let (src, dst) = endpoints(opts)?;
    let plan = databases::plan(&opts.dbs, &src.url, &dst.url).map_err(VerifyError::Usage)?;
    let mut sc = src.connect().await?;
    let mut dc = dst.connect().await?;
    let mut r = start_report(&mut sc, &mut dc, &src, &dst, opts).await;
    r.choice = plan.choice();
    let keyspace = match plan {
        Plan::Keyspace => databases::keyspace(&mut sc).await,
        _ => None,
    };
    let pairs = plan.pairs(keyspace.as_ref(), None);
    r.databases = pairs.iter().map(|p| DbLag::new(*p)).collect();

    let ttl = (opts.max_lag * 3).max(Duration::from_secs(30)) + opts.interval;
    let stop = shutdown.child_token();
    let t0 = Instant::now();
    let mut canaries = Vec::with_capacity(pairs.len());
    for (index, pair) in pairs.into_iter().enumerate() {
        let (src, dst) = (src.in_db(pair.source), dst.in_db(pair.destination));
        canaries.push(Canary {
            index,
            pair,
            opts: opts.clone(),
            stop: stop.clone(),
            sc: src.connect().await?,
            dc: dst.connect().await?,
            src,
            dst,
            key: r.key.clone(),
            ttl,
            t0,
            offsets_readable: true,
        });
    }
    let (tx, mut events) = mpsc::unbounded_channel();
    let mut tasks = tokio::task::JoinSet::new();
    for c in canaries {
        tasks.spawn(c.run(tx.clone()));
    }
    drop(tx);
    while let Some(ev) = events.recv().await {
        match ev {
            Event::Written(i) => r.written(i),
            Event::Taken(i, s) => {
                r.taken(i, &s);
                on_sample(&s, &r);
                if r.samples.len() < MAX_KEPT_SAMPLES {
                    r.samples.push(s);
                }
            }
        }
    }
    let mut failure = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((i, result, cleanup)) => {
                r.databases[i].cleanup_error = cleanup;
                if let Err(e) = result {
                    failure.get_or_insert(e);
                }
            }
            Err(e) => {
                failure.get_or_insert(VerifyError::Target(format!("canary task failed: {e}")));
            }
        }
    }
    let cleanup: Vec<&str> = r
        .databases
        .iter()
        .filter_map(|d| d.cleanup_error.as_deref())
        .collect();
    r.cleanup_error = (!cleanup.is_empty()).then(|| cleanup.join("; "));
    if let Some(e) = failure {
        return Err(e);
    }
    r.replication_end = (replication(&mut sc).await, replication(&mut dc).await);
    r.elapsed = t0.elapsed();
    r.interrupted = shutdown.is_cancelled();
    Ok(r)
}

/// The report before the first canary: both servers, their replication state, the link.
async fn start_report(
    sc: &mut Conn,
    dc: &mut Conn,
    src: &Endpoint,
    dst: &Endpoint,
    opts: &Options,
) -> LagReport {
    let source = side::server_info(sc, &src.url).await;
    let destination = side::server_info(dc, &dst.url).await;
    let rs = replication(sc).await;
    let rd = replication(dc).await;
    let link = side::link(rs.as_ref(), rd.as_ref(), &src.url);
    LagReport {
        source,
        destination,
        key: format!("{KEY_PREFIX}{}", nonce()),
        link,
        link_text: link.describe(rd.as_ref()),
        replication_start: (rs, rd),
        replication_end: (None, None),
        choice: Choice::InfoKeyspace,
        databases: vec![],
        samples: vec![],
        hist: new_hist(),
        sent: 0,
        arrived: 0,
        lost: 0,
        elapsed: Duration::ZERO,
        interrupted: false,
        max_lag: opts.max_lag,
        cleanup_error: None,
    }
}

/// Both sides from the options (usage errors, before any connection).
fn endpoints(opts: &Options) -> Result<(Endpoint, Endpoint), VerifyError> {
    side::pair(
        &opts.source,
        &opts.destination,
        opts.destination_password.as_deref(),
        &opts.tls,
        opts.timeout,
    )
}

/// One database's canary over a lag run, in a task of its own: both connections (in that
/// database), its key and TTL.
struct Canary {
    /// Its line in the report.
    index: usize,
    pair: DbPair,
    opts: Options,
    /// Ctrl-C, or another database's canary failing.
    stop: CancellationToken,
    src: Endpoint,
    dst: Endpoint,
    sc: Conn,
    dc: Conn,
    key: String,
    ttl: Duration,
    /// The run's start, shared by every database.
    t0: Instant,
    /// False once either side's `INFO replication` could not be read: offsets are not asked for
    /// again.
    offsets_readable: bool,
}

/// A canary task's end: its report line, what stopped it, why its key could not be deleted.
type CanaryEnd = (usize, Result<(), VerifyError>, Option<String>);

impl Canary {
    /// Sample until the end, then delete the canary whatever happened (its TTL covers a
    /// connection that is gone). A failure stops every database.
    async fn run(mut self, events: mpsc::UnboundedSender<Event>) -> CanaryEnd {
        let mut sent = 0;
        let result = self.sample(&events, &mut sent).await;
        if result.is_err() {
            self.stop.cancel();
        }
        let cleanup = if sent > 0 { self.delete().await } else { None };
        (self.index, result, cleanup)
    }

    /// One canary per interval until the end (or a stop), each reported as an event.
    async fn sample(
        &mut self,
        events: &mpsc::UnboundedSender<Event>,
        sent: &mut u64,
    ) -> Result<(), VerifyError> {
        let end = self.opts.duration.map(|d| self.t0 + d);
        // A late canary delays the next one: samples never overlap or catch up in a burst.
        let mut next = self.t0;
        for seq in 1u64.. {
            if end.is_some_and(|e| next >= e) {
                break;
            }
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = tokio::time::sleep_until(next) => {}
            }
            let started = Instant::now();
            let value = format!("{seq}:{}", unix_ms());
            let at = self.t0.elapsed();
            self.write(&value).await?;
            *sent += 1;
            let _ = events.send(Event::Written(self.index));
            let lag = self.arrival(seq, Instant::now()).await?;
            if self.stop.is_cancelled() && lag.is_none() {
                // Stopped while waiting: neither arrived nor lost.
                break;
            }
            let offsets = self.offsets().await;
            let s = Sample {
                db: self.pair,
                seq,
                at,
                lag,
                offsets,
            };
            let _ = events.send(Event::Taken(self.index, s));
            next = (started + self.opts.interval).max(Instant::now());
        }
        Ok(())
    }
    /// `SET` the canary on the source, with its TTL.
    async fn write(&mut self, value: &str) -> Result<(), VerifyError> {
        self.sc
            .request(
                &Cmd::new("SET")
                    .arg(self.key.as_str())
                    .arg(value)
                    .arg("PX")
                    .arg(self.ttl.as_millis() as u64),
            )
            .await
            .map_err(|e| {
                VerifyError::Target(format!(
                    "cannot write the canary {} on source {}: {}",
                    self.key, self.src.url, e.msg
                ))
            })?;
        Ok(())
    }

    /// Poll the destination until it shows canary `seq` (or a later one): its lag from
    /// `written`, or `None` when `max_lag` passed first (or a stop came).
    async fn arrival(
        &mut self,
        seq: u64,
        written: Instant,
    ) -> Result<Option<Duration>, VerifyError> {
        let deadline = written + self.opts.max_lag;
        loop {
            let v = self
                .dc
                .request(&Cmd::new("GET").arg(self.key.as_str()))
                .await
                .map_err(|e| self.dst.lost(&e))?;
            let seen = match &v {
                Value::Nil => None,
                v => v.as_bytes().and_then(canary_seq),
            };
            let now = Instant::now();
            if seen.is_some_and(|s| s >= seq) {
                return Ok(Some(now - written));
            }
            if now >= deadline {
                return Ok(None);
            }
            let wake = (now + poll_step(now - written)).min(deadline);
            tokio::select! {
                _ = self.stop.cancelled() => return Ok(None),
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Both replication offsets, when both sides show them and the destination is a replica.
    async fn offsets(&mut self) -> Option<(i64, i64)> {
        if !self.offsets_readable {
            return None;
        }
        match (
            replication(&mut self.sc).await,
            replication(&mut self.dc).await,
        ) {
            (Some(s), Some(d)) if d.is_replica() => s.master_repl_offset.zip(d.slave_repl_offset),
            (Some(_), Some(_)) => None,
            _ => {
                self.offsets_readable = false;
                None
            }
        }
    }

    /// Delete the canary; what went wrong when it could not be.
    async fn delete(&mut self) -> Option<String> {
        let e = self
            .sc
            .request(&Cmd::new("DEL").arg(self.key.as_str()))
            .await
            .err()?;
        Some(format!(
            "cannot delete the canary {} on source {} ({}); its TTL of {}s removes it",
            self.key,
            self.src.url,
            e.msg,
            self.ttl.as_secs()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_values() {
        assert_eq!(canary_seq(b"17:1700000000000"), Some(17));
        assert_eq!(canary_seq(b"x:1"), None);
        assert_eq!(canary_seq(&[0xff]), None);
        assert!(nonce().len() == 16);
    }

    #[test]
    fn polls_finely_then_coarsely() {
        assert_eq!(poll_step(Duration::ZERO), Duration::from_millis(1));
        assert_eq!(
            poll_step(Duration::from_millis(100)),
            Duration::from_millis(5)
        );
        assert_eq!(poll_step(Duration::from_secs(3)), Duration::from_millis(20));
    }
}
