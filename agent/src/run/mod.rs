//! Orchestration, in small steps: resolve the target and the destructive policy ([`target`]),
//! check faults and start their proxies, meet the other shards at the start barrier
//! ([`barrier`]: one time zero for every agent of a sharded run), start the workloads and the
//! fault timeline, cut metric intervals until the end or Ctrl-C ([`load`]), stop and heal, drain
//! the oracles, then build the summary once (`summary::build`). Everything that was started is
//! stopped on every exit path.

pub mod barrier;
pub mod load;
pub mod migration;
pub mod progress;
pub mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::control::Controls;
use crate::events::{Events, FaultSpan};
use crate::export::otlp::{self, OtlpOptions};
use crate::fault;
use crate::metrics::{Collector, WorkloadMetrics};
use crate::plan::Plan;
use crate::summary::build::Recorded;
use crate::summary::RunSummary;
use crate::valkey::target::TlsChoice;
use crate::workload;

/// Which server a run is pointed at.
#[derive(Clone, Debug, Default)]
pub enum TargetChoice {
    /// The scenario's `[target].url`, then `REDIS_URL`, else the embedded topology.
    #[default]
    Auto,
    /// `--target URL`.
    Url(String),
    /// The embedded topology, whatever the scenario or the environment say.
    Embedded,
}

/// Choices from the command line that shape how a plan is run (what it runs is the plan's).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub target: TargetChoice,
    pub quiet: bool,
    pub valkey_server: Option<PathBuf>,
    pub tls: TlsChoice,
    /// The command line's half of the double opt-in for destructive faults on remote targets.
    pub allow_destructive: bool,
    pub skip_destructive: bool,
    /// Metric interval (default 1 s).
    pub interval: Option<Duration>,
    /// Password from `VALKEY_PASSWORD` when the URL has none.
    pub password: Option<String>,
    /// OTLP export; none when unset.
    pub otlp: Option<OtlpOptions>,
    /// The managed service the target is (`--provider`; else detected from its host name).
    pub provider: Option<crate::plan::provider::Provider>,
    /// Skip the faults the target refuses instead of refusing the run (`--skip-forbidden`).
    pub skip_forbidden: bool,
    /// How a sharded run's agents agree on time zero (`--run-key`, `--barrier-timeout`,
    /// `--start-at`, `--no-barrier`).
    pub start: barrier::StartOptions,
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

/// A finished run: the judged summary, its interval log and its histories.
pub struct Outcome {
    pub summary: RunSummary,
    /// The `.hlog` (HdrHistogram interval log) of every operation.
    pub hlog: Vec<u8>,
    /// `(workload id, JSON lines)` of every workload that keeps a history (`history/<id>.jsonl`).
    pub histories: Vec<(String, Vec<u8>)>,
}

/// Run one plan to the end (or until `shutdown`).
pub async fn run(
    plan: &Plan,
    opts: &RunOptions,
    shutdown: CancellationToken,
) -> Result<Outcome, RunError> {
    // Plugins are loaded and checked before anything else starts (a broken one is exit 2).
    let mut prepared = vec![];
    for w in &plan.workloads {
        prepared.push(
            workload::prepare(w)
                .await
                .map_err(|e| RunError::Refused(format!("workload {:?}: {e}", w.id)))?,
        );
    }
    let needs_barrier = barrier::mode(plan, &opts.start) == Some(barrier::Mode::Barrier);
    if needs_barrier && target::pick_url(plan, &opts.target).is_none() {
        return Err(RunError::Refused(format!(
            "shard {} of {}: the agents of a sharded run meet at a start barrier on their common \
             target, and an embedded Valkey is this agent's own: pass --target URL (the server \
             every shard loads), or --no-barrier to run this shard on its own",
            plan.shard.map(|s| s.to_string()).unwrap_or_default(),
            plan.name
        )));
    }
    let resolved = target::resolve(plan, opts).await?;
    let rehearsal = resolved.migration.clone();
    let target = Arc::new(tokio::sync::Mutex::new(resolved.target));
    let mut route = resolved.route;
    // The barrier talks to the server itself, never through a fault proxy.
    let direct = route.clone();
    // Refusals first, before any load; then the proxies the faults need.
    let controls = Controls::default();
    let mut fault_env = fault::prepare(
        plan,
        target.clone(),
        &mut route,
        resolved.policy,
        controls.clone(),
        opts.provider,
        opts.skip_forbidden,
    )
    .await
    .map_err(|e| match e {
        fault::PrepareError::Refused(m) => RunError::Refused(m),
        fault::PrepareError::Runtime(m) => RunError::Runtime(m),
    })?;
    let route = Arc::new(route);
    let server = target::preflight(&route).await?;
    eprintln!(
        "running {} against {} for {} (seed {})",
        plan.name,
        resolved.label,
        humantime::format_duration(plan.duration),
        plan.seed
    );

    // Time zero: the instant the shards agreed on, else just after now.
    let met = barrier::meet(&direct, plan, &opts.start, &shutdown).await?;
    let (start, started_wall) = match &met {
        Some(m) => (m.start, m.wall),
        None => {
            let ahead = Duration::from_millis(50);
            (Instant::now() + ahead, SystemTime::now() + ahead)
        }
    };
    let run_key = met.as_ref().map(|m| m.run_key.clone()).or_else(|| {
        plan.shard
            .filter(|s| s.count > 1)
            .map(|_| barrier::run_key(plan, opts.start.run_key.as_deref()))
    });
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
    collector.started_wall = started_wall;
    // The agent's id in histories: the run id the summary will carry.
    let agent = crate::summary::build::run_id(plan.seed, collector.started_wall);
    let (host, port) = resolved.server_addr;
    let mut exporter = opts.otlp.as_ref().and_then(|o| {
        otlp::Exporter::start(
            o,
            plan,
            &collector,
            otlp::Server { host, port },
            start,
            run_key.as_deref(),
        )
    });

    // The workloads' clients.
    let mut tasks = JoinSet::new();
    let mut actives = vec![];
    let mut ctxs = vec![];
    for ((w, m), prep) in plan.workloads.iter().zip(&metrics).zip(&prepared) {
        let ctx = workload::Ctx {
            route: route.clone(),
            cancel: load_cancel.clone(),
            start,
            end,
            seed: plan.seed,
            key_prefix: plan.key_prefix.clone(),
            metrics: m.clone(),
            events: events.clone(),
            controls: controls.clone(),
            agent: agent.clone(),
        };
        match workload::spawn(w, prep.as_deref(), ctx.clone(), &mut tasks).await {
            Ok(a) => actives.push(a),
            Err(e) => {
                // A workload that cannot start (a broken plugin) is a scenario problem: exit 2.
                load_cancel.cancel();
                tasks.shutdown().await;
                if let Some(m) = &met {
                    m.leave().await;
                }
                return Err(RunError::Refused(format!("workload {:?}: {e}", w.id)));
            }
        }
        ctxs.push(ctx);
    }

    // A rehearsal watches replication lag until the switch.
    let lag_stop = CancellationToken::new();
    let lag = rehearsal.as_ref().map(|(src, dst, _, _, co)| {
        tokio::spawn(migration::watch_lag(
            *src,
            *dst,
            co.clone(),
            start,
            lag_stop.clone(),
        ))
    });

    // The fault timeline, which cuts phase boundaries at every injection and heal.
    fault_env.events = Some(events.clone());
    fault_env.timebase = Some(collector.timebase.clone());
    let timeline = fault::spawn_timeline(plan, fault_env, start, fault_cancel.clone());

    let interval = opts.interval.unwrap_or(Duration::from_secs(1));
    let ended = load::run(
        &mut collector,
        load::Clock {
            start,
            end,
            interval,
        },
        &shutdown,
        progress::Progress::new(plan, opts.quiet),
        exporter.as_mut(),
    )
    .await;

    // Stop the load, heal every fault, then let the oracles drain and count.
    load_cancel.cancel();
    fault_cancel.cancel();
    stop_tasks(&mut tasks, Duration::from_secs(10)).await;
    let (fault_records, fault_env) = match timeline.await {
        Ok((r, env)) => (r, Some(env)),
        Err(_) => (vec![], None),
    };
    lag_stop.cancel();
    let lag_series = match lag {
        Some(h) => h.await.unwrap_or_default(),
        None => vec![],
    };
    let switched = fault_env
        .as_ref()
        .and_then(|e| e.switch.lock().expect("switch lock").clone());
    let spans: Vec<FaultSpan> = fault_records
        .iter()
        .filter_map(|f| {
            let from = start + Duration::from_secs_f64(f.injected_at_secs?);
            let to = f
                .healed_at_secs
                .map(|h| start + Duration::from_secs_f64(h))
                .unwrap_or_else(Instant::now);
            Some(FaultSpan {
                index: f.index,
                from,
                to,
            })
        })
        .collect();
    let user_stop = ended.interrupted && shutdown.is_cancelled();
    for (a, ctx) in actives.iter().zip(&ctxs) {
        if user_stop {
            // Still account, but quickly: the user asked to stop.
            let _ = tokio::time::timeout(Duration::from_secs(5), a.finish(ctx, &spans)).await;
        } else {
            a.finish(ctx, &spans).await;
        }
    }
    collector.finish();
    // The fault proxies carried the drain too; only now do they go.
    drop(fault_env);
    let migration = match (&plan.migration, &rehearsal) {
        (Some(m), Some((_, _, src_url, dst_url, _))) => {
            let verify = if m.verify {
                migration::verify(src_url, dst_url, opts).await
            } else {
                None
            };
            Some(crate::summary::MigrationReport {
                from_to: resolved.label.clone(),
                mode: match m.mode {
                    crate::plan::migration::Mode::ReplicaOf => "replicaof".into(),
                    crate::plan::migration::Mode::External => "external".into(),
                },
                seed_keys: m.seed.map(|s| u64::from(s.keys)).unwrap_or(0),
                switch: switched.as_ref().map(|s| crate::summary::SwitchReport {
                    procedure: match s.procedure {
                        crate::plan::fault::SwitchProcedure::PauseAndDrain { .. } => {
                            "pause-and-drain".into()
                        }
                        crate::plan::fault::SwitchProcedure::RepointOnly => "repoint-only".into(),
                    },
                    at_secs: s.at.saturating_duration_since(start).as_secs_f64(),
                    paused_ms: s.paused.map(|p| p.as_secs_f64() * 1000.0),
                    behind_bytes: s.behind_bytes,
                }),
                lag: migration::lag_stats(&lag_series),
                lag_series,
                noscript_after_switch: switched
                    .as_ref()
                    .map(|s| {
                        crate::valkey::client::NOSCRIPT_REPLIES
                            .load(std::sync::atomic::Ordering::Relaxed)
                            .saturating_sub(s.noscript_before)
                    })
                    .unwrap_or(0),
                verify,
            })
        }
        _ => None,
    };

    let summary = crate::summary::build::build(Recorded {
        plan,
        collector: &collector,
        ran: ended.at.saturating_duration_since(start).min(plan.duration),
        interrupted: ended.interrupted,
        target: resolved.label,
        server,
        events: events.all(),
        faults: fault_records,
        interval,
        migration,
        start_sync: met.as_ref().map(|m| crate::summary::StartSync {
            late_ms: (ended.began.saturating_duration_since(start).as_secs_f64() * 1e6).round()
                / 1000.0,
            ..m.sync.clone()
        }),
        run_key,
        generator_cpu_secs: ended.cpu_secs,
    });
    if let Some(m) = &met {
        m.leave().await;
    }
    if let Some(x) = exporter {
        x.finish(&summary, plan, &collector).await;
    }
    // Stop our servers (also done on drop if anything above panicked).
    target.lock().await.stop();
    let hlog = crate::metrics::hlog::render(
        &collector,
        &format!(
            "valkey-chaos scenario={} seed={} run={}",
            summary.scenario, summary.seed, summary.run_id
        ),
    )
    .map_err(|e| RunError::Runtime(format!("cannot encode the interval log: {e}")))?;
    let histories = plan
        .workloads
        .iter()
        .zip(&actives)
        .filter_map(|(w, a)| {
            a.history()
                .map(|h| (w.id.clone(), crate::history::to_jsonl(&h.entries())))
        })
        .collect();
    Ok(Outcome {
        summary,
        hlog,
        histories,
    })
}

/// Wait for the workload tasks to end, bounded; abort the stragglers.
async fn stop_tasks(tasks: &mut JoinSet<()>, limit: Duration) {
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            r = tasks.join_next() => if r.is_none() { break },
            _ = &mut deadline => { tasks.abort_all(); break; }
        }
    }
}
