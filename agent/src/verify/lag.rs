//! `lag`: live replication lag through a canary, for watching a provider's online migration
//! before the switch. Every `interval` the source gets `SET vc:lag:<nonce> "<seq>:<unix ms>" PX
//! <ttl>`; the destination is polled with `GET` until it shows that sequence number (or a later
//! one), and the time from the source's `SET` reply to the destination's first `GET` reply that
//! shows it is the sample's lag (its resolution: the poll step plus one round trip).
//!
//! This writes: one key on the source, overwritten per sample, with a TTL a few times `max_lag`
//! so nothing outlives a crash, and deleted at the end. Nothing is written to the destination.

use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::side::{self, Endpoint, Link, Replication, ServerInfo};
use super::VerifyError;
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
    pub timeout: Duration,
    /// One canary per interval (a late canary delays the next one).
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

/// The result of a lag run.
#[derive(Debug, Clone)]
pub struct LagReport {
    pub source: ServerInfo,
    pub destination: ServerInfo,
    pub key: String,
    pub link: Link,
    pub link_text: String,
    pub replication_start: (Option<Replication>, Option<Replication>),
    pub replication_end: (Option<Replication>, Option<Replication>),
    pub samples: Vec<Sample>,
    /// Lag of every arrived canary, in microseconds.
    pub hist: Histogram<u64>,
    pub sent: u64,
    pub arrived: u64,
    pub lost: u64,
    pub elapsed: Duration,
    pub interrupted: bool,
    pub max_lag: Duration,
    /// The canary could not be deleted at the end (its TTL still removes it).
    pub cleanup_error: Option<String>,
}

impl LagReport {
    /// A lag percentile (0–100) in milliseconds; `None` before the first arrival.
    pub fn percentile_ms(&self, q: f64) -> Option<f64> {
        (!self.hist.is_empty()).then(|| self.hist.value_at_quantile(q / 100.0) as f64 / 1000.0)
    }
    pub fn max_ms(&self) -> Option<f64> {
        (!self.hist.is_empty()).then(|| self.hist.max() as f64 / 1000.0)
    }
    /// Every canary arrived within `max_lag`.
    pub fn passed(&self) -> bool {
        self.lost == 0
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

/// Watch the lag until `duration` (or Ctrl-C); `on_sample` sees each sample as it is taken.
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
    let mut sc = src.connect().await?;
    let mut dc = dst.connect().await?;
    let source = side::server_info(&mut sc, &src.url).await;
    let destination = side::server_info(&mut dc, &dst.url).await;
    let rs = replication(&mut sc).await;
    let rd = replication(&mut dc).await;
    let link = side::link(rs.as_ref(), rd.as_ref(), &src.url);
    let link_text = link.describe(rd.as_ref());

    let key = format!("{KEY_PREFIX}{}", nonce());
    let ttl = (opts.max_lag * 3).max(Duration::from_secs(30)) + opts.interval;
    let mut r = LagReport {
        source,
        destination,
        key: key.clone(),
        link,
        link_text,
        replication_start: (rs, rd),
        replication_end: (None, None),
        samples: vec![],
        hist: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
        sent: 0,
        arrived: 0,
        lost: 0,
        elapsed: Duration::ZERO,
        interrupted: false,
        max_lag: opts.max_lag,
        cleanup_error: None,
    };
    let mut c = Canary {
        opts,
        shutdown: &shutdown,
        src,
        dst,
        sc,
        dc,
        key,
        ttl,
        offsets_readable: true,
    };
    let t0 = Instant::now();
    let result = c.sample(&mut r, t0, &mut on_sample).await;
    // The canary goes whatever happened (its TTL covers a connection that is gone).
    if r.sent > 0 {
        r.cleanup_error = c.delete().await;
    }
    result?;
    r.replication_end = (replication(&mut c.sc).await, replication(&mut c.dc).await);
    r.elapsed = t0.elapsed();
    r.interrupted = shutdown.is_cancelled();
    Ok(r)
}

/// Both sides from the options (usage errors, before any connection).
fn endpoints(opts: &Options) -> Result<(Endpoint, Endpoint), VerifyError> {
    super::endpoint_pair(
        &opts.source,
        &opts.destination,
        opts.destination_password.as_deref(),
        &opts.tls,
        opts.timeout,
    )
}

/// The canary's state over a lag run: both connections, its key and TTL.
struct Canary<'a> {
    opts: &'a Options,
    shutdown: &'a CancellationToken,
    src: Endpoint,
    dst: Endpoint,
    sc: Conn,
    dc: Conn,
    key: String,
    ttl: Duration,
    /// False once either side's `INFO replication` could not be read: offsets are not asked for
    /// again.
    offsets_readable: bool,
}

impl Canary<'_> {
    /// One canary per interval until the end (or Ctrl-C), each recorded in `r`.
    async fn sample(
        &mut self,
        r: &mut LagReport,
        t0: Instant,
        on_sample: &mut impl FnMut(&Sample, &LagReport),
    ) -> Result<(), VerifyError> {
        let end = self.opts.duration.map(|d| t0 + d);
        // A late canary delays the next one: samples never overlap or catch up in a burst.
        let mut next = t0;
        for seq in 1u64.. {
            if end.is_some_and(|e| next >= e) {
                break;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(next) => {}
            }
            let started = Instant::now();
            let value = format!("{seq}:{}", unix_ms());
            let at = t0.elapsed();
            self.write(&value).await?;
            r.sent += 1;
            let lag = self.arrival(seq, Instant::now()).await?;
            if self.shutdown.is_cancelled() && lag.is_none() {
                // Stopped while waiting: neither arrived nor lost.
                break;
            }
            let offsets = self.offsets().await;
            match lag {
                Some(l) => {
                    r.arrived += 1;
                    let _ = r.hist.record((l.as_micros() as u64).max(1));
                }
                None => r.lost += 1,
            }
            let s = Sample {
                seq,
                at,
                lag,
                offsets,
            };
            on_sample(&s, r);
            if r.samples.len() < MAX_KEPT_SAMPLES {
                r.samples.push(s);
            }
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
    /// `written`, or `None` when `max_lag` passed first (or Ctrl-C came).
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
                _ = self.shutdown.cancelled() => return Ok(None),
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
