//! The timeline: runs the occurrences `plan::schedule` lists (a pure function of the plan); each
//! waits for its time, injects, holds, heals through its guard, and reports a [`FaultRecord`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::env::FaultEnv;
use super::inject::inject;
use super::nodes::current_primary_name;
use crate::events::EventKind;
use crate::plan::schedule::{schedule, Hold};
use crate::plan::{FaultKind, FaultPlan, Plan};
use crate::summary::FaultRecord;

/// One occurrence of a fault in time: the schedule's, on the run's clock.
struct Due {
    plan: FaultPlan,
    at: Instant,
    hold: Hold,
}

/// Start the timeline; the handle yields one record per occurrence once everything is healed.
pub fn spawn_timeline(
    plan: &Plan,
    env: FaultEnv,
    start: Instant,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<(Vec<FaultRecord>, Arc<FaultEnv>)> {
    let end = start + plan.duration;
    let occ: Vec<Due> = schedule(plan)
        .into_iter()
        .map(|o| Due {
            plan: o.fault.clone(),
            at: start + o.inject,
            hold: o.hold,
        })
        .collect();
    let env = Arc::new(env);
    tokio::spawn(async move {
        let mut handles = vec![];
        for o in occ {
            let env = env.clone();
            let cancel = cancel.clone();
            handles.push(tokio::spawn(async move {
                run_occurrence(o, env, start, end, cancel).await
            }));
        }
        let mut out = vec![];
        for h in handles {
            if let Ok(r) = h.await {
                out.push(r);
            }
        }
        out.sort_by(|a, b| {
            a.index.cmp(&b.index).then(
                a.injected_at_secs
                    .partial_cmp(&b.injected_at_secs)
                    .unwrap_or(std::cmp::Ordering::Equal),
            )
        });
        // The proxies carry workload traffic until the run is over (the oracles' drain included):
        // the environment goes back to the run, which drops it last.
        cancel.cancelled().await;
        (out, env)
    })
}

/// Cut a phase boundary now.
fn cut(env: &FaultEnv) -> Instant {
    env.timebase.cut_now()
}

/// Seconds since the run start, unrounded: phase windows are compared with interval cuts.
fn rel(start: Instant, t: Instant) -> f64 {
    t.saturating_duration_since(start).as_secs_f64()
}

/// One occurrence from start to end: wait for its time, inject, hold, heal, say where the
/// primary went.
async fn run_occurrence(
    o: Due,
    env: Arc<FaultEnv>,
    start: Instant,
    end: Instant,
    cancel: CancellationToken,
) -> FaultRecord {
    let f = &o.plan;
    let mut rec = blank_record(f, &env);
    if rec.skipped.is_some() {
        return rec;
    }
    tokio::select! {
        _ = tokio::time::sleep_until(o.at.into()) => {}
        _ = cancel.cancelled() => { rec.skipped = Some("the run ended before it was due".into()); return rec; }
    }
    let topology_fault = f.kind.moves_primary();
    let primary_before = if topology_fault {
        current_primary_name(&env).await
    } else {
        None
    };
    // The phase boundary is cut before the injection: an operation meant to start from here on
    // belongs to this fault's phase, one meant to start before it does not.
    let injected = cut(&env);
    let guard = match inject(f, &env).await {
        Ok(g) => g,
        Err(e) => {
            rec.skipped = Some(format!("inject failed: {e}"));
            rec.inject_error = Some(e.clone());
            note(
                &env,
                EventKind::Note,
                format!("fault #{} {} could not be injected: {e}", f.index, f.name),
            );
            return rec;
        }
    };
    rec.target = guard.target.clone();
    rec.injected_at_secs = Some(rel(start, injected));
    note(
        &env,
        EventKind::FaultInjected,
        format!(
            "#{} {} ({}) on {}",
            f.index,
            f.name,
            f.kind.type_name(),
            guard.target
        ),
    );
    hold(o.hold, end, &cancel).await;
    let promoted_at = guard.promoted_at;
    let r = guard.heal(&env).await;
    let healed = cut(&env);
    rec.healed_at_secs = Some(rel(start, healed));
    match r {
        Ok(()) => note(
            &env,
            EventKind::FaultHealed,
            format!("#{} {} healed", f.index, f.name),
        ),
        Err(e) => {
            note(
                &env,
                EventKind::HealFailed,
                format!("#{} {}: {e}", f.index, f.name),
            );
            rec.heal_error = Some(e);
        }
    }
    if topology_fault {
        report_primary(f, &env, primary_before, promoted_at, injected).await;
    }
    rec
}

/// The record of an occurrence before it fires: skipped already if the environment refused it.
fn blank_record(f: &FaultPlan, env: &FaultEnv) -> FaultRecord {
    FaultRecord {
        inject_error: None,
        recover_within_secs: None,
        index: f.index,
        name: f.name.clone(),
        kind: f.kind.type_name().into(),
        target: String::new(),
        injected_at_secs: None,
        healed_at_secs: None,
        heal_error: None,
        skipped: env
            .skipped
            .iter()
            .find(|s| s.0 == f.index)
            .map(|s| s.1.clone()),
        unavailability: vec![],
        p99_recovery_secs: None,
        errors_during: 0,
        impact: None,
        imitation: f.kind.imitation().map(str::to_string),
    }
}

/// Push an event.
fn note(env: &FaultEnv, kind: EventKind, detail: String) {
    env.events.push(kind, detail);
}

/// Hold an injected fault: for its schedule's hold from now (never past the run's `end`), or
/// until the run ends; Ctrl-C and the end of the run cut it short.
async fn hold(h: Hold, end: Instant, cancel: &CancellationToken) {
    match h.heal_at(Instant::now(), end) {
        Some(until) => {
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = cancel.cancelled() => {}
            }
        }
        // Heal at the end of the run (a kill with no restart_after).
        None => cancel.cancelled().await,
    }
}

/// After a topology fault, wait (bounded) for the primary to settle and say where it went.
async fn report_primary(
    f: &FaultPlan,
    env: &FaultEnv,
    primary_before: Option<String>,
    promoted_at: Option<Instant>,
    injected: Instant,
) {
    let ev = &env.events;
    let t0 = Instant::now();
    let mut now_primary = current_primary_name(env).await;
    while now_primary == primary_before
        && t0.elapsed() < Duration::from_secs(15)
        && !matches!(f.kind, FaultKind::Partition | FaultKind::Pause)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        now_primary = current_primary_name(env).await;
    }
    match (&primary_before, &now_primary) {
        // Stamped when the fault saw the promotion, if it did (a failover waits for the
        // sentinels to name the new primary), else when it was first seen here.
        (Some(a), Some(b)) if a != b => {
            let (at, after, what) = match promoted_at {
                Some(at) => (at, at.saturating_duration_since(injected), "injection"),
                None => (Instant::now(), t0.elapsed(), "heal"),
            };
            ev.push_at(
                EventKind::PrimaryChanged,
                at,
                format!(
                    "primary changed from {a} to {b} ({:.1}s after the {what})",
                    after.as_secs_f64()
                ),
            )
        }
        (_, Some(b)) => ev.push(
            EventKind::Note,
            format!("primary is still {b} after #{} {}", f.index, f.name),
        ),
        _ => {}
    }
}
