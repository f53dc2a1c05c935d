//! A cutover rehearsal's run-time side: start (or reach) the source and the destination, load
//! production-shaped seed data into the source, watch replication lag through a canary until the
//! switch, and verify the copy key by key at the end. What the switch itself does is
//! `fault::switch`; the endpoint and the replication link are set up by `fault::env`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::options::{RunError, RunOptions};
use crate::fault::rolled::SwitchBackOutcome;
use crate::fault::switch::SwitchOutcome;
use crate::plan::fault::SwitchProcedure;
use crate::plan::migration::{Migration, Side, SEED_PREFIX};
use crate::rng::Rng;
use crate::summary::{
    CopyCost, LagStats, MigrationReport, MigrationVerify, RolledBatchReport, RollingReport,
    SwitchBackReport, SwitchReport,
};
use crate::valkey::embedded::{self, Topology, TopologySpec};
use crate::valkey::target::TargetUrl;
use crate::valkey::{Cmd, Conn, ConnectOptions, Target};

/// Start (embedded) or parse (URL) one side.
async fn side(
    s: &Side,
    which: &str,
    opts: &RunOptions,
    timeout: Duration,
) -> Result<(Target, ConnectOptions), RunError> {
    match s {
        Side::Url(u) => {
            let mut t = TargetUrl::parse(u).map_err(RunError::Refused)?;
            if t.password.is_none() {
                t.password = opts.password.clone();
            }
            let co = t
                .connect_options(&opts.tls, timeout)
                .map_err(RunError::Refused)?;
            Ok((Target::External(t), co))
        }
        Side::Embedded => {
            let bin = if which == "source" {
                embedded::locate_redis(None).map_err(RunError::Runtime)?
            } else {
                embedded::locate_valkey(opts.valkey_server.as_deref()).map_err(RunError::Runtime)?
            };
            let topo = Topology::start(&bin, TopologySpec::default())
                .await
                .map_err(|e| RunError::Runtime(format!("embedded {which}: {e}")))?;
            Ok((
                Target::Embedded(topo),
                ConnectOptions {
                    timeout,
                    ..Default::default()
                },
            ))
        }
    }
}

/// A rehearsal's two sides, once started: where they are and how to reach them.
#[derive(Clone)]
pub struct Rehearsal {
    pub source: SocketAddr,
    pub destination: SocketAddr,
    /// URLs for the final verify.
    pub source_url: String,
    pub destination_url: String,
    /// How workloads (and the canary) connect to the source.
    pub source_opts: ConnectOptions,
    /// What the initial copy cost the source (fault set-up started it).
    pub copy_cost: Option<CopyCost>,
}

/// What the rehearsal did, for the summary: the switch, the replication lag before it, the
/// `NOSCRIPT` replies after it, and (when the plan asks) the copy verified key by key.
pub async fn report(
    m: &Migration,
    r: &Rehearsal,
    from_to: &str,
    (switched, back): (Option<&SwitchOutcome>, Option<&SwitchBackOutcome>),
    lag_series: Vec<(f64, f64)>,
    start: Instant,
    opts: &RunOptions,
) -> MigrationReport {
    let verify = if m.verify {
        verify(
            &r.source_url,
            &r.destination_url,
            opts,
            Some(format!("{SEED_PREFIX}*")),
        )
        .await
    } else {
        None
    };
    MigrationReport {
        from_to: from_to.to_string(),
        mode: m.mode.name().into(),
        seed_keys: m.seed.map(|s| u64::from(s.keys)).unwrap_or(0),
        switch: switched.map(|s| SwitchReport {
            procedure: s.procedure.name().into(),
            at_secs: s.at.saturating_duration_since(start).as_secs_f64(),
            paused_ms: s.paused.map(|p| p.as_secs_f64() * 1000.0),
            behind_bytes: s.behind_bytes,
            rolling: rolling_report(s, start),
            steps: s.steps.clone(),
        }),
        lag: lag_stats(&lag_series),
        lag_series,
        noscript_after_switch: switched
            .map(|s| {
                crate::valkey::client::NOSCRIPT_REPLIES
                    .load(std::sync::atomic::Ordering::Relaxed)
                    .saturating_sub(s.noscript_before)
            })
            .unwrap_or(0),
        verify,
        copy_cost: r.copy_cost.clone(),
        switch_back: back.map(|b| SwitchBackReport {
            at_secs: b.at.saturating_duration_since(start).as_secs_f64(),
            paused_ms: b.paused.as_secs_f64() * 1000.0,
            sync_ms: b.sync.as_secs_f64() * 1000.0,
            verify: b.verify.clone(),
        }),
    }
}

/// A rolling switch's batches and findings, on the run's clock.
fn rolling_report(s: &SwitchOutcome, start: Instant) -> Option<RollingReport> {
    let (SwitchProcedure::Rolling(r), Some(d)) = (&s.procedure, &s.rolling) else {
        return None;
    };
    let secs = |t: Instant| t.saturating_duration_since(start).as_secs_f64();
    Some(RollingReport {
        order: r.order.name().into(),
        stop_writes: r.stop_writes,
        pods: d.batches.iter().map(|b| b.pods).sum(),
        batches: d
            .batches
            .iter()
            .map(|b| RolledBatchReport {
                at_secs: secs(b.at),
                workload: b.workload.clone(),
                clients: b.clients.into(),
                pods: b.pods,
            })
            .collect(),
        roll_secs: d.roll_secs(),
        promoted_at_secs: d.promoted.map(secs),
        two_sides_ms: d.two_sides().as_secs_f64() * 1000.0,
        readonly_replies: d.readonly(),
        copied_ids: d.copied,
        drained: d.drained.as_ref().map(|x| x.0),
        drain_said: d.drained.as_ref().map(|x| x.1.clone()),
    })
}

/// A rehearsal's two sides, as the run needs them.
pub struct Setup {
    pub target: Target,
    /// How workloads (and the canary) connect to the source.
    pub source_opts: ConnectOptions,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    /// URLs for the final verify.
    pub source_url: String,
    pub destination_url: String,
    pub label: String,
}

fn url_of(s: &Side, a: SocketAddr) -> String {
    match s {
        Side::Url(u) => u.clone(),
        Side::Embedded => format!("redis://{a}"),
    }
}

/// Both sides, the source seeded.
pub async fn sides(m: &Migration, opts: &RunOptions, timeout: Duration) -> Result<Setup, RunError> {
    let (source, sco) = side(&m.source, "source", opts, timeout).await?;
    let (destination, _) = side(&m.destination, "destination", opts, timeout).await?;
    let (sa, da) = (
        source
            .addr()
            .ok_or_else(|| RunError::Target("cannot resolve the migration's source".into()))?,
        destination
            .addr()
            .ok_or_else(|| RunError::Target("cannot resolve the migration's destination".into()))?,
    );
    let name = |a: SocketAddr| async move {
        let v = embedded::info_field(a, "server", "valkey_version").await;
        match v {
            Some(v) => format!("valkey {v}"),
            None => format!(
                "redis {}",
                embedded::info_field(a, "server", "redis_version")
                    .await
                    .unwrap_or_default()
            ),
        }
    };
    let label = format!("{} at {sa} → {} at {da}", name(sa).await, name(da).await);
    if let Some(seed) = m.seed {
        // ECHO's databases: caches and the rest in 0, the Dramatiq broker in 1, coordination in 2.
        let mut conns = vec![];
        for db in SEED_DBS {
            let opts = ConnectOptions { db, ..sco.clone() };
            conns.push(Conn::connect(sa, &opts).await.map_err(|e| {
                RunError::Target(format!("source {sa} (db {db}) unreachable: {}", e.msg))
            })?);
        }
        load_seed(&mut conns, seed.keys)
            .await
            .map_err(|e| RunError::Target(format!("seeding the source {sa}: {e}")))?;
    }
    Ok(Setup {
        target: Target::Migration {
            source: Box::new(source),
            destination: Box::new(destination),
        },
        source_opts: sco,
        source: sa,
        destination: da,
        source_url: url_of(&m.source, sa),
        destination_url: url_of(&m.destination, da),
        label,
    })
}

/// The databases the seed spreads over, as ECHO's data does.
const SEED_DBS: [u32; 3] = [0, 1, 2];

/// ECHO-shaped seed data over ECHO's databases: Dramatiq payload hashes and queue lists in DB 1,
/// coordination lock keys with TTLs in DB 2, Directus cache strings with TTLs, sets, sorted sets,
/// plain hashes and a stream with a consumer group in DB 0. Pipelined; deterministic. `conns`
/// are connections to DB 0, 1 and 2.
async fn load_seed(conns: &mut [Conn], keys: u32) -> Result<(), String> {
    let mut rng = Rng::new(0x5eed);
    let mut batches: Vec<Vec<Cmd>> = SEED_DBS.iter().map(|_| Vec::with_capacity(500)).collect();
    let p = SEED_PREFIX;
    let payload = String::from_utf8(rng.alnum(300)).unwrap_or_default();
    let cache = String::from_utf8(rng.alnum(2048)).unwrap_or_default();
    for n in 0..keys {
        let (db, cmd) = match n % 10 {
            0..=1 => {
                let q = n % 7;
                let id = format!("{:016x}", rng.next_u64());
                batches[1].push(
                    Cmd::new("RPUSH")
                        .arg(format!("{p}dramatiq:q{q}"))
                        .arg(id.as_str()),
                );
                (
                    1,
                    Cmd::new("HSET")
                        .arg(format!("{p}dramatiq:q{q}.msgs"))
                        .arg(id.as_str())
                        .arg(payload.as_str()),
                )
            }
            2 => (
                2,
                Cmd::new("SET")
                    .arg(format!("{p}lock:{n}"))
                    .arg(format!("{:016x}", rng.next_u64()))
                    .arg("PX")
                    .arg(600_000u64),
            ),
            3..=5 => (
                0,
                Cmd::new("SET")
                    .arg(format!("{p}cache:{n}"))
                    .arg(cache.as_str())
                    .arg("EX")
                    .arg(60 + rng.below(3540)),
            ),
            6 => {
                let mut c = Cmd::new("SADD").arg(format!("{p}set:{n}"));
                for i in 0..10 {
                    c.push(format!("m{i}"));
                }
                (0, c)
            }
            7 => {
                let mut c = Cmd::new("ZADD").arg(format!("{p}zset:{n}"));
                for i in 0..10 {
                    c.push(format!("{}.{}", rng.below(1000), rng.below(100)));
                    c.push(format!("m{i}"));
                }
                (0, c)
            }
            8 => {
                let mut c = Cmd::new("HSET").arg(format!("{p}hash:{n}"));
                for i in 0..8 {
                    c.push(format!("f{i}"));
                    c.push(format!("{}", rng.next_u64()));
                }
                (0, c)
            }
            _ => (
                0,
                Cmd::new("XADD")
                    .arg(format!("{p}stream"))
                    .arg("*")
                    .arg("event")
                    .arg(format!("{n}")),
            ),
        };
        batches[db].push(cmd);
        if batches[db].len() >= 500 {
            flush(&mut conns[db], &mut batches[db]).await?;
        }
    }
    for (c, b) in conns.iter_mut().zip(batches.iter_mut()) {
        flush(c, b).await?;
    }
    if keys >= 10 {
        let _ = conns[0]
            .request(
                &Cmd::new("XGROUP")
                    .arg("CREATE")
                    .arg(format!("{p}stream"))
                    .arg("workers")
                    .arg("0"),
            )
            .await;
    }
    Ok(())
}

async fn flush(c: &mut Conn, batch: &mut Vec<Cmd>) -> Result<(), String> {
    if batch.is_empty() {
        return Ok(());
    }
    for r in c.pipeline(batch).await.map_err(|e| e.msg)? {
        r.map_err(|e| e.msg)?;
    }
    batch.clear();
    Ok(())
}

/// Replication lag by canary: every 250 ms a sequence number is written to the source and the
/// destination is polled until it has it. Until `stop` (the switch, or the end).
pub async fn watch_lag(
    src: SocketAddr,
    dst: SocketAddr,
    opts: ConnectOptions,
    start: Instant,
    stop: CancellationToken,
) -> Vec<(f64, f64)> {
    let mut out = vec![];
    let key = "vc:migration:canary";
    let (Ok(mut s), Ok(mut d)) = (
        Conn::connect(src, &opts).await,
        Conn::connect(dst, &opts).await,
    ) else {
        return out;
    };
    for seq in 1u64.. {
        if stop.is_cancelled() {
            break;
        }
        // Promoted: the migration is over.
        if let Ok(v) = d.request(&Cmd::new("INFO").arg("replication")).await {
            if v.as_str()
                .and_then(|t| embedded::parse_info(t, "role"))
                .as_deref()
                == Some("master")
            {
                break;
            }
        }
        let t0 = Instant::now();
        if s.request(&Cmd::new("SET").arg(key).arg(seq).arg("EX").arg(600u64))
            .await
            .is_err()
        {
            break;
        }
        let mut seen = None;
        while t0.elapsed() < Duration::from_secs(10) && !stop.is_cancelled() {
            if let Ok(v) = d.request(&Cmd::new("GET").arg(key)).await {
                if v.as_str().and_then(|x| x.parse::<u64>().ok()) >= Some(seq) {
                    seen = Some(t0.elapsed());
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // A canary that had not arrived when the migration ended counts with its age so far
        // (a lower bound: the lag was at least that).
        let lag = seen.unwrap_or_else(|| t0.elapsed());
        out.push((
            t0.saturating_duration_since(start).as_secs_f64(),
            lag.as_secs_f64() * 1000.0,
        ));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.cancelled() => break,
        }
    }
    let _ = s.request(&Cmd::new("DEL").arg(key)).await;
    out
}

/// Summary statistics of the canary samples.
pub fn lag_stats(samples: &[(f64, f64)]) -> LagStats {
    let mut v: Vec<f64> = samples.iter().map(|s| s.1).collect();
    v.sort_by(f64::total_cmp);
    let q = |p: f64| {
        v.get(((v.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
    };
    LagStats {
        samples: v.len() as u64,
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        max_ms: v.last().copied(),
    }
}

/// Verify the copy: every seed key, in every database that holds keys (ECHO's 0, 1 and 2),
/// compared on both sides, values and TTLs. Read-only.
pub async fn verify(
    src: &str,
    dst: &str,
    opts: &RunOptions,
    pattern: Option<String>,
) -> Option<MigrationVerify> {
    let o = crate::verify::Options {
        source: src.to_string(),
        destination: dst.to_string(),
        tls: opts.tls.clone(),
        destination_password: opts.password.clone(),
        pattern,
        rate: None,
        ..Default::default()
    };
    match crate::verify::run(&o, CancellationToken::new()).await {
        Ok(r) => Some(MigrationVerify {
            keys_checked: r.keys_checked,
            differences: r.total_differences(),
            by_kind: r
                .by_kind
                .iter()
                .map(|(k, n)| (k.name().to_string(), *n))
                .collect(),
            first: r
                .differences
                .iter()
                .take(10)
                .map(|d| {
                    format!(
                        "db{} {} ({}): {}",
                        d.db,
                        String::from_utf8_lossy(&d.key),
                        d.kind.name(),
                        d.detail
                    )
                })
                .collect(),
            error: None,
        }),
        Err(e) => Some(MigrationVerify {
            keys_checked: 0,
            differences: 0,
            by_kind: Default::default(),
            first: vec![],
            error: Some(e.to_string()),
        }),
    }
}
