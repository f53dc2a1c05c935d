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

use super::side::{self, Endpoint, Link, Replication, Role, ServerInfo};
use super::VerifyError;
use crate::valkey::target::{TargetUrl, TlsChoice};
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
    let src_url =
        TargetUrl::parse(&opts.source).map_err(|e| VerifyError::Usage(format!("--source: {e}")))?;
    let mut dst_url = TargetUrl::parse(&opts.destination)
        .map_err(|e| VerifyError::Usage(format!("--destination: {e}")))?;
    if dst_url.password.is_none() {
        dst_url.password = opts.destination_password.clone();
    }
    let src = Endpoint::new(Role::Source, src_url, &opts.tls, opts.timeout)?;
    let dst = Endpoint::new(Role::Destination, dst_url, &opts.tls, opts.timeout)?;
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
    let t0 = Instant::now();
    let end = opts.duration.map(|d| t0 + d);
    let mut offsets_readable = true;
    let result = async {
        // A late canary delays the next one: samples never overlap or catch up in a burst.
        let mut next = t0;
        for seq in 1u64.. {
            if end.is_some_and(|e| next >= e) {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(next) => {}
            }
            let started = Instant::now();
            let value = format!("{seq}:{}", unix_ms());
            let at = t0.elapsed();
            sc.request(
                &Cmd::new("SET")
                    .arg(key.as_str())
                    .arg(value.as_str())
                    .arg("PX")
                    .arg(ttl.as_millis() as u64),
            )
            .await
            .map_err(|e| {
                VerifyError::Target(format!(
                    "cannot write the canary {key} on source {}: {}",
                    src.url, e.msg
                ))
            })?;
            r.sent += 1;
            let written = Instant::now();
            let deadline = written + opts.max_lag;
            let mut lag = None;
            loop {
                let v = dc
                    .request(&Cmd::new("GET").arg(key.as_str()))
                    .await
                    .map_err(|e| dst.lost(&e))?;
                let seen = match &v {
                    Value::Nil => None,
                    v => v.as_bytes().and_then(canary_seq),
                };
                let now = Instant::now();
                if seen.is_some_and(|s| s >= seq) {
                    lag = Some(now - written);
                    break;
                }
                if now >= deadline {
                    break;
                }
                let wake = (now + poll_step(now - written)).min(deadline);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep_until(wake) => {}
                }
            }
            if shutdown.is_cancelled() && lag.is_none() {
                // Stopped while waiting: neither arrived nor lost.
                break;
            }
            let offsets = if offsets_readable {
                match (replication(&mut sc).await, replication(&mut dc).await) {
                    (Some(s), Some(d)) if d.is_replica() => {
                        s.master_repl_offset.zip(d.slave_repl_offset)
                    }
                    (Some(_), Some(_)) => None,
                    _ => {
                        offsets_readable = false;
                        None
                    }
                }
            } else {
                None
            };
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
            on_sample(&s, &r);
            if r.samples.len() < MAX_KEPT_SAMPLES {
                r.samples.push(s);
            }
            next = (started + opts.interval).max(Instant::now());
        }
        Ok::<(), VerifyError>(())
    }
    .await;
    // The canary goes whatever happened (its TTL covers a connection that is gone).
    if r.sent > 0 {
        if let Err(e) = sc.request(&Cmd::new("DEL").arg(key.as_str())).await {
            r.cleanup_error = Some(format!(
                "cannot delete the canary {key} on source {} ({}); its TTL of {}s removes it",
                src.url,
                e.msg,
                ttl.as_secs()
            ));
        }
    }
    result?;
    r.replication_end = (replication(&mut sc).await, replication(&mut dc).await);
    r.elapsed = t0.elapsed();
    r.interrupted = shutdown.is_cancelled();
    Ok(r)
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
