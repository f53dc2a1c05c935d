//! Orchestration, in stages, each a type that owns what the next one needs (mini-redis's
//! `Listener`/`Handler` style):
//!
//! 1. [`Ready`]: plugins checked, the target resolved with its destructive policy
//!    ([`target`]), every fault checked against it and its proxies started, the server answering;
//! 2. [`Running`]: the shards met at the start barrier ([`barrier`]: one time zero for every agent
//!    of a sharded run), the collector and exporter up, the workloads' clients and the fault
//!    timeline started;
//! 3. [`Loaded`]: metric intervals cut until the end or Ctrl-C ([`load`]);
//! 4. [`Drained`]: the load stopped, every fault healed, each oracle drained and counted, the
//!    rehearsal's report made ([`migration`]);
//! 5. [`Drained::record`]: fault impact measured, the evidence judged once
//!    (`summary::build::judge`), exports finished, servers stopped.
//!
//! Everything that was started is stopped on every exit path.

pub mod barrier;
mod handover;
pub mod load;
pub mod migration;
mod options;
pub mod progress;
pub mod target;

pub use options::{RunError, RunOptions, StartOptions, TargetChoice};

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::control::Controls;
use crate::events::{Events, FaultSpan};
use crate::export::otlp;
use crate::fault;
use crate::metrics::{Collector, WorkloadMetrics};
use crate::plan::Plan;
use crate::summary::build::{Evidence, Meta};
use crate::summary::{FaultRecord, MigrationReport, RunSummary, ServerInfo};
use crate::valkey::{Route, Target};
use crate::workload;

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
    let ready = Ready::prepare(plan, opts).await?;
    let running = ready.start(&shutdown).await?;
    let loaded = running.load(&shutdown).await;
    let drained = loaded.drain(&shutdown).await;
    drained.record().await
}

/// Stage 1: everything checked and in place before the first client connects.
pub struct Ready<'a> {
    plan: &'a Plan,
    opts: &'a RunOptions,
    /// Each workload's prepared plugin (none for the built-in kinds).
    prepared: Vec<Option<Arc<workload::plugin::Prepared>>>,
    /// The servers (ours are stopped when the run ends, or on drop).
    target: Arc<tokio::sync::Mutex<Target>>,
    /// The target as shown in reports (no password).
    label: String,
    /// Host and port of the primary, for `server.address` in traces.
    server_addr: (String, u16),
    rehearsal: Option<migration::Rehearsal>,
    /// How workloads reach the server: through the fault proxies where faults need them.
    route: Arc<Route>,
    /// The server itself, for the start barrier (never through a fault proxy).
    direct: Route,
    faults: fault::Prepared,
    controls: Controls,
    server: ServerInfo,
}

impl<'a> Ready<'a> {
    /// Plugins are loaded and checked before anything else (a broken one is exit 2); then the
    /// target, the faults' refusals (before any load) and proxies, and a preflight.
    pub async fn prepare(plan: &'a Plan, opts: &'a RunOptions) -> Result<Ready<'a>, RunError> {
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
                "shard {} of {}: the agents of a sharded run meet at a start barrier on their \
                 common target, and an embedded Valkey is this agent's own: pass --target URL \
                 (the server every shard loads), or --no-barrier to run this shard on its own",
                plan.shard.map(|s| s.to_string()).unwrap_or_default(),
                plan.name
            )));
        }
        let resolved = target::resolve(plan, opts).await?;
        let target = Arc::new(tokio::sync::Mutex::new(resolved.target));
        let mut route = resolved.route;
        // Its own address map: the proxies fault set-up maps into `route` are not the direct way.
        let direct = Route {
            via: Default::default(),
            ..route.clone()
        };
        let controls = Controls::default();
        let faults = fault::prepare(
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
        Ok(Ready {
            plan,
            opts,
            prepared,
            target,
            label: resolved.label,
            server_addr: resolved.server_addr,
            rehearsal: resolved.migration.map(|mut r| {
                r.copy_cost = faults.copy_cost();
                if r.copy_cost.as_ref().and_then(|c| c.fits) == Some(false) {
                    eprintln!(
                        "warning: the initial copy's peak memory (used + copy-on-write) does not \
                         fit under the source's maxmemory: see `copy` in the report"
                    );
                }
                r
            }),
            route,
            direct,
            faults,
            controls,
            server,
        })
    }

    /// Meet the other shards (or pick time zero alone), then start the collector, the exporter,
    /// every workload's clients, the rehearsal's lag watch and the fault timeline.
    pub async fn start(self, shutdown: &CancellationToken) -> Result<Running<'a>, RunError> {
        let plan = self.plan;
        let met = barrier::meet(&self.direct, plan, &self.opts.start, shutdown).await?;
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
                .map(|_| barrier::run_key(plan, self.opts.start.run_key.as_deref()))
        });
        let run_id = crate::summary::build::run_id(plan.seed, started_wall);
        let clock = Clock {
            start,
            end: start + plan.duration,
            started_wall,
            interval: self.opts.interval.unwrap_or(Duration::from_secs(1)),
        };
        let events = Events::new(start);
        let metrics: Vec<Arc<WorkloadMetrics>> = plan
            .workloads
            .iter()
            .map(|w| WorkloadMetrics::new(&w.id, w.kind.ops(), w.kind.counters()))
            .collect();
        let mut collector = Collector::new(metrics.clone(), start);
        collector.started_wall = started_wall;
        let (host, port) = self.server_addr.clone();
        let exporter = self.opts.otlp.as_ref().and_then(|o| {
            otlp::Exporter::start(
                o,
                plan,
                &collector,
                otlp::Server { host, port },
                start,
                run_key.as_deref(),
            )
        });
        let load_cancel = shutdown.child_token();
        let mut tasks = JoinSet::new();
        let workloads = match self
            .spawn_workloads(&metrics, &events, &run_id, &clock, &load_cancel, &mut tasks)
            .await
        {
            Ok(w) => w,
            Err(e) => {
                // A workload that cannot start (a broken plugin) is a scenario problem: exit 2.
                load_cancel.cancel();
                tasks.shutdown().await;
                if let Some(m) = &met {
                    m.leave().await;
                }
                return Err(e);
            }
        };
        // A rehearsal watches replication lag until the switch.
        let lag_stop = CancellationToken::new();
        let lag = self.rehearsal.as_ref().map(|r| {
            tokio::spawn(migration::watch_lag(
                r.source,
                r.destination,
                r.source_opts.clone(),
                start,
                lag_stop.clone(),
            ))
        });
        // The fault timeline, which cuts phase boundaries at every injection and heal.
        let mut faults =
            fault::FaultEnv::new(self.faults, events.clone(), collector.timebase.clone());
        if let Some(r) = &self.rehearsal {
            faults = faults.with_handover(Arc::new(handover::SwitchSteps::new(plan, r, self.opts)));
        }
        let fault_cancel = CancellationToken::new();
        let timeline = fault::spawn_timeline(plan, faults, start, fault_cancel.clone());
        Ok(Running {
            plan,
            opts: self.opts,
            target: self.target,
            label: self.label,
            rehearsal: self.rehearsal,
            server: self.server,
            met,
            run_id,
            run_key,
            clock,
            events,
            collector,
            exporter,
            tasks,
            workloads,
            load_cancel,
            fault_cancel,
            lag: lag.map(|h| (h, lag_stop)),
            timeline,
        })
    }

    /// Start the clients of every workload; stops at the first that cannot start.
    async fn spawn_workloads(
        &self,
        metrics: &[Arc<WorkloadMetrics>],
        events: &Events,
        run_id: &str,
        clock: &Clock,
        cancel: &CancellationToken,
        tasks: &mut JoinSet<()>,
    ) -> Result<Vec<(workload::Active, workload::Ctx)>, RunError> {
        let mut out = vec![];
        for ((w, m), prep) in self.plan.workloads.iter().zip(metrics).zip(&self.prepared) {
            // A workload's own database, else the URL's.
            let route = match w.db {
                Some(db) if db != self.route.opts.db => {
                    let mut r = (*self.route).clone();
                    r.opts.db = db;
                    Arc::new(r)
                }
                _ => self.route.clone(),
            };
            let ctx = workload::Ctx {
                route,
                cancel: cancel.clone(),
                start: clock.start,
                end: clock.end,
                seed: self.plan.seed,
                key_prefix: self.plan.key_prefix.clone(),
                metrics: m.clone(),
                events: events.clone(),
                controls: self.controls.clone(),
                agent: run_id.to_string(),
                pods: self.faults.pod_routes(),
                old_side: self.plan.migration.as_ref().map(|_| {
                    let mut r = self.direct.clone();
                    r.opts.db = w.db.unwrap_or(self.route.opts.db);
                    Arc::new(r)
                }),
                sharded: self.plan.shard.is_some(),
            };
            let active = workload::spawn(w, prep.as_deref(), ctx.clone(), tasks)
                .await
                .map_err(|e| RunError::Refused(format!("workload {:?}: {e}", w.id)))?;
            out.push((active, ctx));
        }
        Ok(out)
    }
}

/// When the load starts and ends.
#[derive(Clone, Copy)]
struct Clock {
    /// Time zero on this host's monotonic clock.
    start: Instant,
    /// The planned end of the load.
    end: Instant,
    /// Time zero on the wall clock (the target's, behind a start barrier).
    started_wall: SystemTime,
    /// Metric interval (progress, series, `.hlog`).
    interval: Duration,
}

/// A rehearsal's replication-lag watch: `(seconds from the start, lag ms)` samples until stopped.
type LagWatch = (JoinHandle<Vec<(f64, f64)>>, CancellationToken);

/// Stage 2: the load is running.
pub struct Running<'a> {
    plan: &'a Plan,
    opts: &'a RunOptions,
    target: Arc<tokio::sync::Mutex<Target>>,
    label: String,
    rehearsal: Option<migration::Rehearsal>,
    server: ServerInfo,
    /// The start barrier this agent met the other shards at (left when the run ends).
    met: Option<barrier::Met>,
    /// This run's id: in the summary, in every history entry, in the OTLP resource.
    run_id: String,
    run_key: Option<String>,
    clock: Clock,
    events: Events,
    collector: Collector,
    exporter: Option<otlp::Exporter>,
    /// Every client task of every workload.
    tasks: JoinSet<()>,
    workloads: Vec<(workload::Active, workload::Ctx)>,
    /// Stops the clients (a child of the shutdown token).
    load_cancel: CancellationToken,
    /// Ends the fault timeline, which heals whatever is still injected.
    fault_cancel: CancellationToken,
    /// The rehearsal's lag watch and what stops it.
    lag: Option<LagWatch>,
    timeline: JoinHandle<(Vec<FaultRecord>, Arc<fault::FaultEnv>)>,
}

impl<'a> Running<'a> {
    /// Cut metric intervals until the end of the load or `shutdown`.
    pub async fn load(mut self, shutdown: &CancellationToken) -> Loaded<'a> {
        let ended = load::run(
            &mut self.collector,
            load::Clock {
                start: self.clock.start,
                end: self.clock.end,
                interval: self.clock.interval,
            },
            shutdown,
            progress::Progress::new(self.plan, self.opts.quiet),
            self.exporter.as_mut(),
        )
        .await;
        Loaded {
            running: self,
            ended,
        }
    }
}

/// Stage 3: the load phase is over (its end, or Ctrl-C).
pub struct Loaded<'a> {
    running: Running<'a>,
    ended: load::Ended,
}

impl<'a> Loaded<'a> {
    /// Stop the load, heal every fault, then let each oracle drain and count (quickly when the
    /// user asked to stop); the rehearsal's report last, while its proxies still stand.
    pub async fn drain(self, shutdown: &CancellationToken) -> Drained<'a> {
        let Loaded { mut running, ended } = self;
        let r = &mut running;
        r.load_cancel.cancel();
        r.fault_cancel.cancel();
        stop_tasks(&mut r.tasks, Duration::from_secs(10)).await;
        let (faults, fault_env) = match (&mut r.timeline).await {
            Ok((f, env)) => (f, Some(env)),
            Err(_) => (vec![], None),
        };
        let lag_series = match r.lag.take() {
            Some((h, stop)) => {
                stop.cancel();
                h.await.unwrap_or_default()
            }
            None => vec![],
        };
        let spans = fault_spans(&faults, r.clock.start);
        // Each oracle drains and counts; a stop (now or during the drain) gives it 5 s more, and
        // one that is still counting then leaves the run incomplete.
        let mut incomplete = vec![];
        for (a, ctx) in &r.workloads {
            let mut finish = std::pin::pin!(a.finish(ctx, &spans));
            let cut = tokio::select! {
                _ = &mut finish => false,
                _ = shutdown.cancelled() => {
                    tokio::time::timeout(Duration::from_secs(5), &mut finish).await.is_err()
                }
            };
            if cut {
                incomplete.push(format!(
                    "the drain was cut short: {} had not finished accounting when the run was \
                     stopped",
                    ctx.metrics.id
                ));
            }
        }
        r.collector.finish();
        let switched = fault_env
            .as_ref()
            .and_then(|e| e.switch.lock().expect("switch lock").clone());
        let switched_back = fault_env
            .as_ref()
            .and_then(|e| e.switch_back.lock().expect("switch-back lock").clone());
        // The fault proxies carried the drain too; only now do they go.
        drop(fault_env);
        let migration = match (&r.plan.migration, &r.rehearsal) {
            (Some(m), Some(reh)) => Some(
                migration::report(
                    m,
                    reh,
                    &r.label,
                    (switched.as_ref(), switched_back.as_ref()),
                    lag_series,
                    r.clock.start,
                    r.opts,
                )
                .await,
            ),
            _ => None,
        };
        Drained {
            running,
            ended,
            faults,
            migration,
            incomplete,
        }
    }
}

/// Each injected occurrence's span on this host's clock (an unhealed one runs until now).
fn fault_spans(faults: &[FaultRecord], start: Instant) -> Vec<FaultSpan> {
    faults
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
        .collect()
}

/// Stage 4: the load stopped, faults healed, oracles counted.
pub struct Drained<'a> {
    running: Running<'a>,
    ended: load::Ended,
    faults: Vec<FaultRecord>,
    migration: Option<MigrationReport>,
    /// Why the drain could not vouch for its counts (cut short by a stop).
    incomplete: Vec<String>,
}

impl Drained<'_> {
    /// Measure what each fault did, judge the evidence once, finish the exports, stop our
    /// servers, and hand back the summary with its interval log and histories.
    pub async fn record(self) -> Result<Outcome, RunError> {
        let Drained {
            running: r,
            ended,
            mut faults,
            migration,
            incomplete,
        } = self;
        let plan = r.plan;
        let ran = ended
            .at
            .saturating_duration_since(r.clock.start)
            .min(plan.duration);
        let duration_secs = (ran.as_secs_f64().max(1e-3) * 1000.0).round() / 1000.0;
        let intents = crate::summary::impact::Intent::of(plan);
        crate::summary::impact::analyse_with(&mut faults, &r.collector, duration_secs, &intents);
        for f in &mut faults {
            let bound = plan.faults.get(f.index).and_then(|p| p.recover_within);
            f.recover_within_secs = Some(bound.unwrap_or(plan.recover_within).as_secs_f64());
            // A workload's own bound, after a fault that sets none.
            if bound.is_some() {
                continue;
            }
            for w in f.impact.iter_mut().flat_map(|i| i.workloads.iter_mut()) {
                let own = plan.workloads.iter().find(|p| p.id == w.workload);
                w.recover_within_secs = own.and_then(|p| p.recover_within).map(|d| d.as_secs_f64());
            }
        }
        let meta = Meta {
            scenario: plan.name.clone(),
            seed: plan.seed,
            run_id: r.run_id.clone(),
            shard: plan.shard,
            shard_count: None,
            run_key: r.run_key.clone(),
            started_at: humantime::format_rfc3339_micros(r.clock.started_wall).to_string(),
            start_sync: r.met.as_ref().map(|m| crate::summary::StartSync {
                late_ms: (ended
                    .began
                    .saturating_duration_since(r.clock.start)
                    .as_secs_f64()
                    * 1e6)
                    .round()
                    / 1000.0,
                ..m.sync.clone()
            }),
            start_skew: None,
            target: r.label.clone(),
            server: r.server.clone(),
            duration_secs,
            planned_duration_secs: plan.duration.as_secs_f64(),
            interrupted: ended.interrupted,
            interval_secs: r.clock.interval.as_secs_f64(),
            generator_cpu_secs: Some((ended.cpu_secs * 1000.0).round() / 1000.0),
        };
        let summary = crate::summary::build::judge(Evidence {
            meta,
            measured: crate::summary::build::measured(plan, &r.collector, ran, r.clock.interval),
            faults,
            events: r.events.all(),
            migration,
            thresholds: plan.thresholds.clone(),
            prior_checks: vec![],
            incomplete,
            phases: &r.collector,
        });
        if let Some(m) = &r.met {
            m.leave().await;
        }
        if let Some(x) = r.exporter {
            x.finish(&summary, plan, &r.collector).await;
        }
        // Stop our servers (also done on drop if anything above panicked).
        r.target.lock().await.stop();
        let hlog = crate::metrics::hlog::render(
            &r.collector,
            &format!(
                "valkey-chaos scenario={} seed={} run={}",
                summary.scenario, summary.seed, summary.run_id
            ),
        )
        .map_err(|e| RunError::Runtime(format!("cannot encode the interval log: {e}")))?;
        let histories = plan
            .workloads
            .iter()
            .zip(&r.workloads)
            .filter_map(|(w, (a, _))| {
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
