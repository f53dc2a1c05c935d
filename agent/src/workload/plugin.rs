//! `type = "plugin"`: virtual users driven by a WASM component. Each VU owns a store and an
//! instance from the plugin's shared `InstancePre`; the host times every command (`<id>.<cmd>`)
//! and every iteration (`<id>.iteration`). A trap, a blown CPU budget or the memory cap ends the
//! instance; the VU is replaced (or stopped, per `on_trap`) and the run goes on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;

use super::ctx::Ctx;
use crate::events::EventKind;
use crate::metrics::Recorder;
use crate::plan::rollout::Clients;
use crate::plan::{PluginCounter as C, PluginPlan, WorkloadPlan};
use crate::plugin::bindings::exports::valkey_chaos::plugin::vu::{Guest, VuConfig};
use crate::plugin::{self, bindings, Plugin, VuState};
use crate::valkey::Client;
use crate::workload::pacing::Pacer;

const C_ITER: usize = C::Iterations.i();
const C_ITER_ERR: usize = C::IterationErrors.i();
const C_TRAPS: usize = C::Traps.i();
const C_BUDGET: usize = C::BudgetExceeded.i();
const C_MEMORY: usize = C::MemoryExceeded.i();
const C_REPLACED: usize = C::VusReplaced.i();
const C_STOPPED: usize = C::VusStopped.i();
/// How many trap reports (with backtraces) go into the run's events per workload.
const MAX_REPORTS: u64 = 5;

pub struct State {
    reports: AtomicU64,
}

/// A plugin loaded, checked and described before anything else of the run starts.
pub struct Prepared {
    pub plugin: Arc<Plugin>,
    pub info: plugin::Info,
}

/// Load a plugin workload's component (compile or cache), check it and call describe().
pub async fn prepare(plan: &WorkloadPlan, p: &PluginPlan) -> Result<Arc<Prepared>, String> {
    let engine = plugin::engine(plan.clients, p.memory)?;
    let path = p.path.clone();
    let loaded = tokio::task::spawn_blocking(move || plugin::load(&path, &engine))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let info = plugin::describe(&loaded).await.map_err(|e| e.to_string())?;
    let known: Vec<&str> = info.params.iter().map(|(n, _)| n.as_str()).collect();
    if let Some((bad, _)) = p
        .params
        .iter()
        .find(|(n, _)| !known.is_empty() && !known.contains(&n.as_str()))
    {
        return Err(format!(
            "plugin {}: unknown parameter {bad:?} (it accepts: {})",
            loaded.name,
            known.join(", ")
        ));
    }
    Ok(Arc::new(Prepared {
        plugin: Arc::new(loaded),
        info,
    }))
}

pub fn spawn(
    plan: &WorkloadPlan,
    p: &PluginPlan,
    prepared: &Prepared,
    ctx: Ctx,
    tasks: &mut JoinSet<()>,
) -> Arc<State> {
    let (loaded, info) = (&prepared.plugin, &prepared.info);
    ctx.events.push(
        EventKind::Note,
        format!(
            "plugin {} {} loaded from {} ({} in {:.0?})",
            info.name,
            info.version,
            loaded.path.display(),
            if loaded.compiled_from_cache {
                "cached"
            } else {
                "compiled"
            },
            loaded.compile_time
        ),
    );
    let st = Arc::new(State {
        reports: AtomicU64::new(0),
    });
    for i in 0..plan.clients {
        let pacer = Pacer::new(
            &plan.load,
            i,
            plan.clients,
            1,
            ctx.start,
            ctx.end,
            Some(ctx.metrics.clone()),
        );
        tasks.spawn(vu(
            loaded.clone(),
            p.clone(),
            ctx.clone(),
            st.clone(),
            i,
            plan.clients,
            pacer,
        ));
    }
    st
}

/// Why a call failed, for counters and the report.
fn classify(store: &mut wasmtime::Store<VuState>, e: &wasmtime::Error) -> (&'static str, usize) {
    let s = store.data_mut();
    if s.budget_exceeded {
        s.budget_exceeded = false;
        ("CPU budget exceeded", C_BUDGET)
    } else if s.limits.hit {
        s.limits.hit = false;
        ("memory cap reached", C_MEMORY)
    } else {
        let _ = e;
        ("trap", C_TRAPS)
    }
}

/// One virtual user: instances of the plugin, one after another (a trapped instance is replaced
/// when the plan says so), each set up, iterated at the pacer's slots, and torn down at the end.
async fn vu(
    p: Arc<Plugin>,
    plan: PluginPlan,
    ctx: Ctx,
    st: Arc<State>,
    idx: u32,
    count: u32,
    mut pacer: Pacer,
) {
    let mut vu = Vu::new(p, plan, ctx, st, idx, count);
    loop {
        let Some((mut store, inst)) = vu.start().await else {
            return;
        };
        let guest = inst.valkey_chaos_plugin_vu();
        match vu.iterate(&mut store, guest, &mut pacer).await {
            Ended::Done => {
                plugin::arm(&mut store, vu.ticks);
                let _ = guest.call_teardown(&mut store).await;
                return;
            }
            Ended::Replace => {}
            Ended::Stop => return,
        }
    }
}

/// How an instance's iterations ended.
enum Ended {
    /// The pacer has no more slots: tear the instance down.
    Done,
    /// It trapped and the plan replaces it with a new instance.
    Replace,
    /// A fatal error, or a trap with no replacement: the VU stops.
    Stop,
}

/// What a VU keeps across its instances.
struct Vu {
    p: Arc<Plugin>,
    plan: PluginPlan,
    ctx: Ctx,
    st: Arc<State>,
    idx: u32,
    rec: Recorder,
    op_iter: usize,
    /// The CPU budget per call, in epoch ticks.
    ticks: u64,
    cfg: VuConfig,
    /// Iterations so far (the next one's number).
    n: u64,
    /// Instances that trapped so far.
    restarts: u32,
}

impl Vu {
    fn new(p: Arc<Plugin>, plan: PluginPlan, ctx: Ctx, st: Arc<State>, idx: u32, count: u32) -> Vu {
        let rec = ctx.metrics.recorder(idx as usize);
        let op_iter = ctx.metrics.op_index("iteration");
        let ticks = (plan.budget.as_millis() as u64).max(1);
        let cfg = VuConfig {
            vu_id: idx,
            vu_count: count,
            seed: ctx.seed,
            params: {
                let mut v = vec![("prefix".to_string(), ctx.key_prefix.clone())];
                v.extend(plan.params.iter().cloned());
                v
            },
        };
        Vu {
            p,
            plan,
            ctx,
            st,
            idx,
            rec,
            op_iter,
            ticks,
            cfg,
            n: 0,
            restarts: 0,
        }
    }

    /// A new instance in a new store, set up; None when it cannot be (the VU stops).
    async fn start(&self) -> Option<(wasmtime::Store<VuState>, bindings::Scenario)> {
        let (p, ctx, idx) = (&self.p, &self.ctx, self.idx);
        let state = VuState::new(
            &p.name,
            idx,
            ctx.seed,
            Client::new(ctx.client_route(Clients::All, idx)).connect_on_task(),
            self.rec.clone(),
            self.plan.memory,
            &ctx.key_prefix,
        );
        let mut store = plugin::new_store(p, state);
        plugin::arm(&mut store, self.ticks);
        // Boxed: instantiation's future is the largest this task ever awaits (1.2 KiB), and
        // unboxed it would size every VU's task for the whole run.
        let inst = match Box::pin(p.pre.instantiate_async(&mut store)).await {
            Ok(i) => i,
            Err(e) => {
                report(ctx, &self.st, &p.name, idx, "cannot instantiate", &e);
                ctx.metrics.counters.add(C_STOPPED, 1);
                return None;
            }
        };
        let guest = inst.valkey_chaos_plugin_vu();
        plugin::arm(&mut store, self.ticks);
        match guest.call_setup(&mut store, &self.cfg).await {
            Ok(Ok(())) => {}
            Ok(Err(pe)) => {
                ctx.events.push(
                    EventKind::Note,
                    format!("plugin {} vu {idx}: setup failed: {}", p.name, pe.message),
                );
                ctx.metrics.counters.add(C_STOPPED, 1);
                return None;
            }
            Err(e) => {
                let (why, c) = classify(&mut store, &e);
                ctx.metrics.counters.add(c, 1);
                report(ctx, &self.st, &p.name, idx, &format!("setup: {why}"), &e);
                ctx.metrics.counters.add(C_STOPPED, 1);
                return None;
            }
        }
        Some((store, inst))
    }

    /// Iterations at the pacer's slots until it is done, the guest says fatal, or it traps.
    async fn iterate(
        &mut self,
        store: &mut wasmtime::Store<VuState>,
        guest: &Guest,
        pacer: &mut Pacer,
    ) -> Ended {
        let ctx = &self.ctx;
        while let Some(intended) = pacer.next(&ctx.cancel).await {
            let start = if pacer.is_open() {
                intended
            } else {
                Instant::now()
            };
            let sent = Instant::now();
            plugin::arm(store, self.ticks);
            let r = guest.call_iteration(&mut *store, self.n).await;
            let end = Instant::now();
            self.n += 1;
            ctx.metrics.counters.add(C_ITER, 1);
            let failed = Err(crate::valkey::ErrorKind::Other);
            match r {
                Ok(Ok(())) => self.rec.record(self.op_iter, start, sent, end, Ok(())),
                Ok(Err(pe)) => {
                    self.rec.record(self.op_iter, start, sent, end, failed);
                    ctx.metrics.counters.add(C_ITER_ERR, 1);
                    if pe.fatal {
                        ctx.events.push(
                            EventKind::Note,
                            format!(
                                "plugin {} vu {}: fatal: {}",
                                self.p.name, self.idx, pe.message
                            ),
                        );
                        ctx.metrics.counters.add(C_STOPPED, 1);
                        return Ended::Stop;
                    }
                }
                Err(e) => {
                    self.rec.record(self.op_iter, start, sent, end, failed);
                    return self.trapped(store, &e);
                }
            }
        }
        Ended::Done
    }

    /// An iteration trapped (or blew its budget or memory): counted and reported; the instance
    /// is replaced while the plan allows.
    fn trapped(&mut self, store: &mut wasmtime::Store<VuState>, e: &wasmtime::Error) -> Ended {
        let ctx = &self.ctx;
        let (why, c) = classify(store, e);
        ctx.metrics.counters.add(c, 1);
        report(ctx, &self.st, &self.p.name, self.idx, why, e);
        self.restarts += 1;
        if self.plan.replace_on_trap && self.restarts <= self.plan.max_restarts {
            ctx.metrics.counters.add(C_REPLACED, 1);
            return Ended::Replace;
        }
        ctx.metrics.counters.add(C_STOPPED, 1);
        Ended::Stop
    }
}

fn report(ctx: &Ctx, st: &State, plugin: &str, vu: u32, why: &str, e: &wasmtime::Error) {
    if st.reports.fetch_add(1, Ordering::Relaxed) < MAX_REPORTS {
        ctx.events.push(
            EventKind::Note,
            format!("plugin {plugin} vu {vu}: {why}: {e:#}"),
        );
    }
}

impl State {
    pub async fn finish(&self, _ctx: &Ctx) {}
}
