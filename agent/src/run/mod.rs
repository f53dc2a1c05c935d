//! Orchestration: resolve the target (or start the embedded topology), start workloads and the
//! fault timeline, cut metric intervals, stop on time or Ctrl-C, heal, run the oracles, check
//! thresholds, and write outputs. Everything that was started is stopped on every exit path.

pub mod events;
pub mod pacing;
pub mod progress;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::fault;
use crate::metrics::{Collector, LatencyStats, WorkloadMetrics};
use crate::plan::{LoadModel, Plan};
use crate::summary::*;
use crate::valkey::embedded::{self, Topology};
use crate::valkey::target::{TargetUrl, TlsChoice};
use crate::valkey::{Cmd, Endpoint, Route};
use crate::workload;
use events::Events;

/// Choices from the command line that shape a run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub target: Option<String>,
    pub out: Option<PathBuf>,
    pub duration: Option<Duration>,
    pub seed: Option<u64>,
    pub quiet: bool,
    pub valkey_server: Option<PathBuf>,
    pub tls: TlsChoice,
    pub allow_destructive: bool,
    pub skip_destructive: bool,
    pub interval: Option<Duration>,
    /// Password from `VALKEY_PASSWORD` when the URL has none.
    pub password: Option<String>,
    /// OTLP endpoint (`--otlp`, `OTEL_EXPORTER_OTLP_ENDPOINT`); no export when unset.
    pub otlp: Option<String>,
    pub otlp_protocol: Option<crate::export::otlp::Protocol>,
    /// Fraction of operations traced (default [`crate::export::otlp::DEFAULT_TRACE_SAMPLE`]).
    pub trace_sample: Option<f64>,
}

/// Why a run could not produce a verdict.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The target is unreachable or refused us (exit 3).
    #[error("{0}")]
    Target(String),
    /// The scenario cannot run as asked (exit 2), e.g. a destructive fault on a remote target.
    #[error("{0}")]
    Refused(String),
    /// Anything else that went wrong at run time (exit 3).
    #[error("{0}")]
    Runtime(String),
}

/// What the run is pointed at.
pub enum Target {
    Embedded(Topology),
    External(TargetUrl),
}

/// The URL to use: `--target`, then the scenario's `[target].url`, then `REDIS_URL`; else embedded.
pub fn pick_target(plan: &Plan, opts: &RunOptions) -> Option<String> {
    opts.target
        .clone()
        .or_else(|| plan.target_url.clone())
        .or_else(|| std::env::var("REDIS_URL").ok().filter(|s| !s.is_empty()))
}

/// Run one plan to the end (or until `shutdown`), returning the summary.
pub async fn run(
    plan: &Plan,
    opts: &RunOptions,
    shutdown: CancellationToken,
) -> Result<(RunSummary, Collector), RunError> {
    let mut plan = plan.clone();
    if let Some(d) = opts.duration {
        plan.duration = d;
    }
    if let Some(s) = opts.seed {
        plan.seed = s;
    }
    // Plugins are loaded and checked before anything else starts (a broken one is exit 2).
    let mut prepared = vec![];
    for w in &plan.workloads {
        prepared.push(
            workload::prepare(w)
                .await
                .map_err(|e| RunError::Refused(format!("workload {:?}: {e}", w.id)))?,
        );
    }
    let url = pick_target(&plan, opts);
    let timeout = plan.request_timeout;

    // The target: an external URL or a topology of our own.
    let (target, mut base_route, target_label) = match &url {
        Some(u) => {
            let mut t = TargetUrl::parse(u).map_err(RunError::Refused)?;
            if t.password.is_none() {
                t.password = opts.password.clone();
            }
            let co = t
                .connect_options(&opts.tls, timeout)
                .map_err(RunError::Refused)?;
            let route = Route::direct(t.host_port(), co);
            let label = t.to_string();
            (Target::External(t), route, label)
        }
        None => {
            let bin = embedded::locate_valkey(opts.valkey_server.as_deref())
                .map_err(RunError::Runtime)?;
            let spec = plan.topology;
            let topo = Topology::start(&bin, spec)
                .await
                .map_err(|e| RunError::Runtime(format!("embedded valkey: {e}")))?;
            let co = crate::valkey::ConnectOptions {
                timeout,
                ..Default::default()
            };
            let route = if spec.sentinels > 0 {
                Route {
                    endpoint: Endpoint::Sentinel {
                        sentinels: topo.sentinels(),
                        master: embedded::MASTER_NAME.into(),
                    },
                    opts: co,
                    via: Default::default(),
                }
            } else {
                Route::direct(format!("127.0.0.1:{}", topo.primary().port), co)
            };
            let label = format!(
                "embedded {} ({} replicas, {} sentinels)",
                topo.primary_url(),
                spec.replicas,
                spec.sentinels
            );
            (Target::Embedded(topo), route, label)
        }
    };

    // Fault set-up (refusals first, before any load), then the proxies the faults need.
    let destructive_ok = match &target {
        Target::Embedded(_) => true,
        Target::External(t) => {
            t.is_loopback() || (plan.allow_destructive && opts.allow_destructive)
        }
    };
    let server_addr = match &target {
        Target::External(t) => (t.host.clone(), t.port),
        Target::Embedded(t) => ("127.0.0.1".to_string(), t.primary().port),
    };
    let target = Arc::new(tokio::sync::Mutex::new(target));
    let mut fault_env = fault::prepare(
        &plan,
        target.clone(),
        &mut base_route,
        destructive_ok,
        opts.skip_destructive,
    )
    .await
    .map_err(|e| match e {
        fault::PrepareError::Refused(m) => RunError::Refused(m),
        fault::PrepareError::Runtime(m) => RunError::Runtime(m),
    })?;

    // Preflight: can we reach it at all?
    let route = Arc::new(base_route);
    let server = preflight(&route).await?;

    eprintln!(
        "running {} against {target_label} for {} (seed {})",
        plan.name,
        humantime::format_duration(plan.duration),
        plan.seed
    );
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + plan.duration;
    let events = Events::new(start);
    let load_cancel = shutdown.child_token();
    let fault_cancel = CancellationToken::new();

    let metrics: Vec<Arc<WorkloadMetrics>> = plan
        .workloads
        .iter()
        .map(|w| WorkloadMetrics::new(&w.id, w.kind.ops(), w.kind.counters()))
        .collect();
    let mut collector = Collector::new(metrics.clone(), start);
    let (host, port) = server_addr;
    let db = crate::export::otlp::Server { host, port };
    let mut otlp = crate::export::otlp::Exporter::start(opts, &plan, &collector, db, start);
    let mut tasks = JoinSet::new();
    let mut actives = vec![];
    let mut ctxs = vec![];
    for ((w, m), prep) in plan
        .workloads
        .iter()
        .zip(metrics.iter())
        .zip(prepared.iter())
    {
        let ctx = workload::Ctx {
            route: route.clone(),
            cancel: load_cancel.clone(),
            start,
            end,
            seed: plan.seed,
            key_prefix: plan.key_prefix.clone(),
            metrics: m.clone(),
            events: events.clone(),
        };
        match workload::spawn(w, prep.as_deref(), ctx.clone(), &mut tasks).await {
            Ok(a) => actives.push(a),
            Err(e) => {
                // A workload that cannot start (a broken plugin) is a scenario problem: exit 2.
                load_cancel.cancel();
                tasks.shutdown().await;
                return Err(RunError::Refused(format!("workload {:?}: {e}", w.id)));
            }
        }
        ctxs.push(ctx);
    }
    fault_env.events = Some(events.clone());
    let (cut_tx, mut cut_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    fault_env.cuts = Some(cut_tx);
    let timeline = fault::spawn_timeline(&plan, fault_env, start, fault_cancel.clone());

    // The load phase: cut an interval every second, show progress, stop at the end or on Ctrl-C.
    let interval = opts.interval.unwrap_or(Duration::from_secs(1));
    let mut progress = progress::Progress::new(&plan, opts.quiet);
    tokio::time::sleep_until(start.into()).await;
    let mut tick = tokio::time::interval_at((start + interval).into(), interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut interrupted = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = Instant::now();
                let iv = collector.cut(now.min(end));
                progress.update(iv, now.saturating_duration_since(start));
                if let Some(x) = otlp.as_mut() {
                    x.observe(&collector);
                }
                if now >= end { break; }
            }
            _ = tokio::time::sleep_until(end.into()) => {
                collector.cut(end);
                break;
            }
            Some(at) = cut_rx.recv() => {
                // A fault was injected or healed: close the interval there.
                if at < end {
                    collector.cut(at);
                }
            }
            _ = shutdown.cancelled() => {
                interrupted = true;
                collector.cut(Instant::now());
                break;
            }
        }
    }
    let load_end = Instant::now();
    progress.finish();

    // Stop the load, heal every fault, then let the oracles drain and count.
    load_cancel.cancel();
    fault_cancel.cancel();
    let stop_deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(stop_deadline);
    loop {
        tokio::select! {
            r = tasks.join_next() => if r.is_none() { break },
            _ = &mut stop_deadline => { tasks.abort_all(); break; }
        }
    }
    let (fault_records, fault_env) = match timeline.await {
        Ok((r, env)) => (r, Some(env)),
        Err(_) => (vec![], None),
    };
    let mut figures = vec![];
    for (a, ctx) in actives.iter().zip(ctxs.iter()) {
        let f = if interrupted && shutdown.is_cancelled() {
            // Still account, but quickly: the user asked to stop.
            tokio::time::timeout(Duration::from_secs(5), a.finish(ctx))
                .await
                .unwrap_or_default()
        } else {
            a.finish(ctx).await
        };
        figures.push(f);
    }
    collector.cut(Instant::now());
    // The fault proxies carried the drain too; only now do they go.
    drop(fault_env);

    let ran = load_end.saturating_duration_since(start).min(plan.duration);
    let mut summary = build_summary(
        &plan,
        &collector,
        &figures,
        ran,
        interrupted,
        &target_label,
        server,
        events.all(),
        fault_records,
    );
    summary.interval_secs = interval.as_secs_f64();
    fault::analyse(&mut summary, &collector);
    summary.checks = crate::check::evaluate(&plan.thresholds, &summary, Some(&collector));
    let failed = summary.checks.iter().any(|c| !c.passed) || !summary.heal_failures.is_empty();
    summary.verdict = if failed { "fail".into() } else { "pass".into() };
    if let Some(x) = otlp {
        x.finish(&summary, &plan, &collector).await;
    }

    // Stop our servers (also done on drop if anything above panicked).
    if let Target::Embedded(t) = &mut *target.lock().await {
        t.stop();
    }
    Ok((summary, collector))
}

async fn preflight(route: &Route) -> Result<ServerInfo, RunError> {
    let where_ = match &route.endpoint {
        Endpoint::Direct(hp) => hp.clone(),
        Endpoint::Sentinel { master, .. } => format!("sentinel master {master}"),
    };
    let mut conn = route
        .connect()
        .await
        .map_err(|e| RunError::Target(format!("target {where_} unreachable: {}", e.msg)))?;
    conn.request(&Cmd::new("PING"))
        .await
        .map_err(|e| RunError::Target(format!("target {where_} did not answer PING: {}", e.msg)))?;
    let info = conn.request(&Cmd::new("INFO").arg("server")).await.ok();
    let text = info.as_ref().and_then(|v| v.as_str()).unwrap_or("");
    let get = |f: &str| embedded::parse_info(text, f).unwrap_or_default();
    let valkey = get("valkey_version");
    Ok(ServerInfo {
        server_name: if valkey.is_empty() {
            "redis".into()
        } else {
            get("server_name")
        },
        version: if valkey.is_empty() {
            get("redis_version")
        } else {
            valkey
        },
        redis_version: get("redis_version"),
    })
}

#[allow(clippy::too_many_arguments)]
fn build_summary(
    plan: &Plan,
    c: &Collector,
    figures: &[workload::Figures],
    ran: Duration,
    interrupted: bool,
    target: &str,
    server: ServerInfo,
    events: Vec<events::Event>,
    faults: Vec<FaultRecord>,
) -> RunSummary {
    let secs = ran.as_secs_f64().max(1e-3);
    let mut ops = vec![];
    let mut workloads = vec![];
    let mut counters = vec![];
    for (wi, (w, m)) in plan.workloads.iter().zip(c.workloads.iter()).enumerate() {
        let names = m.op_names();
        let mut werr = 0;
        let mut wcount = 0;
        for (oi, name) in names.iter().enumerate() {
            let Some(acc) = c.totals[wi].get(oi) else {
                ops.push(empty_op(&w.id, name));
                continue;
            };
            let errors = acc.error_count();
            let count = acc.ok() + errors;
            werr += errors;
            wcount += count;
            ops.push(OpSummary {
                workload: w.id.clone(),
                op: name.clone(),
                count,
                ok: acc.ok(),
                errors,
                error_rate: errors as f64 / count.max(1) as f64,
                rate_per_sec: (count as f64 / secs * 10.0).round() / 10.0,
                latency_us: LatencyStats::of(&acc.corrected),
                service_us: LatencyStats::of(&acc.service),
                errors_by_kind: crate::valkey::ErrorKind::ALL
                    .iter()
                    .filter(|k| acc.errors[k.index()] > 0)
                    .map(|k| (k.name().to_string(), acc.errors[k.index()]))
                    .collect(),
            });
        }
        for (n, v) in m.counters.snapshot() {
            counters.push(CounterValue {
                workload: w.id.clone(),
                name: n.to_string(),
                value: v as f64,
            });
        }
        for (n, v) in m.custom_snapshot() {
            counters.push(CounterValue {
                workload: w.id.clone(),
                name: n,
                value: v as f64,
            });
        }
        for (n, v) in figures.get(wi).into_iter().flatten() {
            counters.push(CounterValue {
                workload: w.id.clone(),
                name: n.clone(),
                value: *v,
            });
        }
        workloads.push(WorkloadSummary {
            id: w.id.clone(),
            kind: w.kind.type_name().into(),
            clients: w.clients,
            model: match &w.load {
                LoadModel::Closed => "closed loop".into(),
                LoadModel::Open(s) if s.stages.is_empty() => {
                    format!("open model, {} ops/s", s.start)
                }
                LoadModel::Open(s) => format!(
                    "open model, {} stages, peak {} ops/s",
                    s.stages.len(),
                    s.peak()
                ),
            },
            late_starts: m.late_starts.load(std::sync::atomic::Ordering::Relaxed),
            dropped_starts: m.dropped_starts.load(std::sync::atomic::Ordering::Relaxed),
            errors: werr,
            error_rate: werr as f64 / wcount.max(1) as f64,
        });
    }
    let mut series = vec![];
    for iv in &c.intervals {
        for o in &iv.ops {
            let m = &c.workloads[o.workload];
            series.push(SeriesPoint {
                workload: m.id.clone(),
                op: m.op_names().get(o.op).cloned().unwrap_or_default(),
                start_secs: iv.start.as_secs_f64(),
                end_secs: iv.end.as_secs_f64(),
                ok: o.ok,
                errors: o.errors.iter().sum(),
                p50_us: o.p50_us,
                p99_us: o.p99_us,
                max_us: o.max_us,
            });
        }
    }
    let heal_failures = faults
        .iter()
        .filter_map(|f| {
            f.heal_error
                .as_ref()
                .map(|e| format!("#{} {} ({}): {e}", f.index, f.name, f.kind))
        })
        .collect();
    let started = c.started_wall;
    RunSummary {
        scenario: plan.name.clone(),
        seed: plan.seed,
        verdict: String::new(),
        duration_secs: (secs * 1000.0).round() / 1000.0,
        planned_duration_secs: plan.duration.as_secs_f64(),
        interrupted,
        run_id: run_id(plan.seed, started),
        shard: None,
        started_at: humantime::format_rfc3339_seconds(started).to_string(),
        target: target.to_string(),
        server,
        workloads,
        ops,
        counters,
        checks: vec![],
        faults,
        events,
        heal_failures,
        interval_secs: 1.0,
        series,
    }
}

fn empty_op(w: &str, op: &str) -> OpSummary {
    OpSummary {
        workload: w.into(),
        op: op.into(),
        count: 0,
        ok: 0,
        errors: 0,
        error_rate: 0.0,
        rate_per_sec: 0.0,
        latency_us: Default::default(),
        service_us: Default::default(),
        errors_by_kind: Default::default(),
    }
}

/// A pure function of its inputs and the process id: the OTLP exporter derives the same id at
/// the start of the run for its resource.
pub(crate) fn run_id(seed: u64, t: std::time::SystemTime) -> String {
    let nanos = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut r = crate::rng::Rng::new(nanos ^ seed.rotate_left(32) ^ std::process::id() as u64);
    format!("{:016x}", r.next_u64())
}

/// Write `summary.json` and `latency.hlog` (and the other reports) into `dir`.
pub fn write_outputs(dir: &std::path::Path, s: &RunSummary, c: &Collector) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_vec_pretty(s).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("summary.json"), json)?;
    crate::metrics::hlog::write(
        &dir.join("latency.hlog"),
        c,
        &format!(
            "valkey-chaos scenario={} seed={} run={}",
            s.scenario, s.seed, s.run_id
        ),
    )?;
    std::fs::write(dir.join("report.html"), crate::report::html::render(s))?;
    std::fs::write(dir.join("junit.xml"), crate::report::junit::render(s))?;
    Ok(())
}
