//! Workloads at run time: one module per kind (`commands`, `dramatiq`, `lock`, `rate_limit`,
//! `plugin`). Each spawns its clients from its plan (plain data in `plan::workload`), records
//! samples, and after the load stops runs its end-of-run oracle. [`pacing`] hands out intended
//! starts. Workers get everything through [`Ctx`]; they never import `run`. A failed Valkey operation is a recorded sample, never an
//! error that stops a worker.

pub mod commands;
mod ctx;
pub mod dramatiq;
pub mod lock;
pub mod pacing;
pub mod plugin;
pub mod rate_limit;
pub mod set;

pub use ctx::Ctx;

use std::sync::Arc;

use tokio::task::JoinSet;

use crate::events::FaultSpan;
use crate::plan::{WorkloadKind, WorkloadPlan};

/// A workload whose clients are running.
pub enum Active {
    Commands,
    Dramatiq(Arc<dramatiq::State>),
    Lock(Arc<lock::State>),
    RateLimit(Arc<rate_limit::State>),
    Plugin(Arc<plugin::State>),
    Set(Arc<set::State>),
}

/// What must be ready before a run touches any server (plugins are loaded and checked here,
/// so a broken plugin stops the run with exit 2 before any load).
pub async fn prepare(plan: &WorkloadPlan) -> Result<Option<Arc<plugin::Prepared>>, String> {
    match &plan.kind {
        WorkloadKind::Plugin(p) => plugin::prepare(plan, p).await.map(Some),
        _ => Ok(None),
    }
}

/// Start the clients of one workload.
pub async fn spawn(
    plan: &WorkloadPlan,
    prepared: Option<&plugin::Prepared>,
    ctx: Ctx,
    tasks: &mut JoinSet<()>,
) -> Result<Active, String> {
    Ok(match &plan.kind {
        WorkloadKind::Commands(c) => {
            commands::spawn(plan, c, ctx, tasks);
            Active::Commands
        }
        WorkloadKind::Dramatiq(d) => Active::Dramatiq(dramatiq::spawn(plan, d, ctx, tasks).await?),
        WorkloadKind::Lock(l) => Active::Lock(lock::spawn(plan, l, ctx, tasks)),
        WorkloadKind::RateLimit(r) => Active::RateLimit(rate_limit::spawn(plan, r, ctx, tasks)),
        WorkloadKind::Plugin(p) => {
            let prepared = prepared.ok_or("plugin workload was not prepared")?;
            Active::Plugin(plugin::spawn(plan, p, prepared, ctx, tasks))
        }
        WorkloadKind::Set(s) => Active::Set(set::spawn(plan, s, ctx, tasks)),
    })
}

impl Active {
    /// The workload's operation history, when it keeps one (the safety workloads do).
    pub fn history(&self) -> Option<&crate::history::History> {
        match self {
            Active::Lock(s) => Some(&s.history),
            Active::RateLimit(s) => Some(&s.history),
            Active::Commands | Active::Dramatiq(_) | Active::Plugin(_) | Active::Set(_) => None,
        }
    }

    /// After the load stopped and every fault healed: drain, check, and set the end-of-run
    /// counters. Bounded in time. `faults` are the run's fault occurrences (oracles put what a
    /// fault explains down to it).
    pub async fn finish(&self, ctx: &Ctx, faults: &[FaultSpan]) {
        match self {
            Active::Commands => {}
            Active::Dramatiq(s) => s.finish(ctx, faults).await,
            Active::Lock(s) => s.finish(ctx).await,
            Active::RateLimit(s) => s.finish(ctx).await,
            Active::Plugin(s) => s.finish(ctx).await,
            Active::Set(s) => s.finish(ctx).await,
        }
    }
}
