//! What the initial copy costs the source: a full sync forks the source (its RDB goes to the
//! replica from a child process), and while the child lives every page the parent writes is
//! copied (copy-on-write), so the source's memory peaks at what it holds plus what it copied. On
//! a small instance near `maxmemory` that peak is what stalls production (DigitalOcean offers a
//! standby only on plans of 2 GB and more "because of the memory requirements of replication").
//! Read from the source's own `INFO` (`latest_fork_usec`, `rdb_last_cow_size`, `used_memory`,
//! `maxmemory`), with a probe client timing a read on the source every 2 ms while the copy runs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::summary::CopyCost;
use crate::valkey::embedded::parse_info;
use crate::valkey::{Cmd, Conn, ConnectOptions};

/// The source before the copy, and the probe timing it while the copy runs.
pub(super) struct Watch {
    src: SocketAddr,
    admin: ConnectOptions,
    started: Instant,
    used_before: Option<u64>,
    forks_before: Option<u64>,
    stop: CancellationToken,
    probe: JoinHandle<Vec<Duration>>,
}

async fn info(c: &mut Conn) -> Option<String> {
    let v = c.request(&Cmd::new("INFO").arg("all")).await.ok()?;
    v.as_str().map(str::to_string)
}

fn num(text: &str, field: &str) -> Option<u64> {
    parse_info(text, field)?.trim().parse().ok()
}

/// Read the source and start the probe, just before the copy starts.
pub(super) async fn start(src: SocketAddr, admin: &ConnectOptions) -> Watch {
    let text = match Conn::connect(src, admin).await {
        Ok(mut c) => info(&mut c).await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let stop = CancellationToken::new();
    let probe = tokio::spawn(probe(src, admin.clone(), stop.clone()));
    Watch {
        src,
        admin: admin.clone(),
        started: Instant::now(),
        used_before: num(&text, "used_memory"),
        forks_before: num(&text, "total_forks"),
        stop,
        probe,
    }
}

/// Time one read on the source every 2 ms until `stop` (bounded: 60 s of samples).
async fn probe(src: SocketAddr, admin: ConnectOptions, stop: CancellationToken) -> Vec<Duration> {
    let mut out = vec![];
    let Ok(mut c) = Conn::connect(src, &admin).await else {
        return out;
    };
    let cmd = Cmd::new("EXISTS").arg("vc:copy-cost:probe");
    while !stop.is_cancelled() && out.len() < 30_000 {
        let t0 = Instant::now();
        if c.request(&cmd).await.is_err() {
            break;
        }
        out.push(t0.elapsed());
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(2)) => {}
            _ = stop.cancelled() => {}
        }
    }
    out
}

impl Watch {
    /// The copy is done: what it cost.
    pub(super) async fn finish(self) -> CopyCost {
        let sync_secs = self.started.elapsed().as_secs_f64();
        self.stop.cancel();
        let mut lat = self.probe.await.unwrap_or_default();
        lat.sort();
        let text = match Conn::connect(self.src, &self.admin).await {
            Ok(mut c) => info(&mut c).await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let forked = match (self.forks_before, num(&text, "total_forks")) {
            (Some(a), Some(b)) => Some(b > a),
            _ => None,
        };
        let used = self.used_before.or(num(&text, "used_memory"));
        let cow = num(&text, "rdb_last_cow_size");
        let maxmemory = num(&text, "maxmemory").filter(|m| *m > 0);
        let peak = match (used, cow) {
            (Some(u), Some(c)) => Some(u + c),
            _ => None,
        };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let pick = |q: f64| {
            (!lat.is_empty()).then(|| ms(lat[((lat.len() - 1) as f64 * q).round() as usize]))
        };
        CopyCost {
            sync_secs,
            forked,
            fork_ms: num(&text, "latest_fork_usec").map(|u| u as f64 / 1000.0),
            used_memory: used,
            cow_bytes: cow,
            peak_bytes: peak,
            maxmemory,
            fits: match (peak, maxmemory) {
                (Some(p), Some(m)) => Some(p <= m),
                _ => None,
            },
            probe_samples: lat.len() as u64,
            probe_p50_ms: pick(0.5),
            probe_p99_ms: pick(0.99),
            probe_max_ms: lat.last().map(|d| ms(*d)),
        }
    }
}
