//! `procedure = "rolling"`: the cutover as a Helm upgrade with the new `REDIS_URL` does it. Each
//! pod of a workload reaches the database through a proxy of its own (`fault::pods`); a batch
//! rolls by repointing its pods' proxies at the destination, which closes their connections as a
//! restarting pod's close (what was in flight fails, and is retried the way the client retries).
//! Around the roll: stop the source's writes (`CLIENT PAUSE WRITE`) until the destination has
//! everything, remember what the copy carried, stop the copy (promote), resume writes once the
//! last pod has moved, and after it all move what Dramatiq left on the old side (`drain`). While
//! pods still point at the old side after the copy stopped, the source's replication offset is
//! watched: as long as it moves, two sides take writes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::admin::{
    external, offset_of, repl_offset, resume_writes, run_steps, stop_copy, stop_writes_and_catch_up,
};
use super::env::{FaultEnv, SwitchOutcome};
use super::proxy::Proxy;
use super::rolled::{RolledBatch, RollingOutcome};
use crate::plan::migration::StepPoint;
use crate::plan::rollout::{RollOrder, Rolling};
use crate::valkey::{Conn, ConnectOptions};

/// Run the whole procedure; the source's writes are resumed whatever happens.
pub(super) async fn run(
    env: &FaultEnv,
    r: &Rolling,
    (src, dst): (SocketAddr, SocketAddr),
    endpoint: &Proxy,
    out: &mut SwitchOutcome,
    d: &mut RollingOutcome,
) -> Result<String, String> {
    let done = procedure(env, r, (src, dst), endpoint, out, d).await;
    let resumed = resume(env, src, d).await;
    if let (Some(a), Some(b)) = (d.writes_stopped, d.writes_resumed) {
        out.paused = Some(b.saturating_duration_since(a));
    }
    done?;
    resumed?;
    if r.drain {
        let h = env
            .handover
            .as_ref()
            .ok_or("the rolling switch has no drain step")?;
        d.drained = Some(
            h.drain()
                .await
                .map_err(|e| format!("the drain step: {e}"))?,
        );
    }
    run_steps(env, StepPoint::After, (src, dst), &mut out.steps).await?;
    let pods: u32 = d.batches.iter().map(|b| b.pods).sum();
    let span = d.roll_secs();
    Ok(format!(
        "rolling ({}, writes {}): {pods} pods in {} batches over {span:.1}s; the destination \
         promoted {} bytes behind; the old side took writes for {:.1}s after the copy stopped{}",
        r.order.name(),
        if r.stop_writes {
            "stopped until the last pod moved"
        } else {
            "never stopped"
        },
        d.batches.len(),
        out.behind_bytes.unwrap_or(0),
        d.two_sides().as_secs_f64(),
        match &d.drained {
            Some((n, _)) => format!("; drained {n} messages left on the old side"),
            None => String::new(),
        }
    ))
}

async fn resume(env: &FaultEnv, src: SocketAddr, d: &mut RollingOutcome) -> Result<(), String> {
    if d.writes_stopped.is_some() && d.writes_resumed.is_none() {
        d.writes_resumed = Some(Instant::now());
        resume_writes(env, src)
            .await
            .map_err(|e| format!("the source: {e}"))?;
    }
    Ok(())
}

/// The procedure in its order.
async fn procedure(
    env: &FaultEnv,
    r: &Rolling,
    (src, dst): (SocketAddr, SocketAddr),
    endpoint: &Proxy,
    out: &mut SwitchOutcome,
    d: &mut RollingOutcome,
) -> Result<(), String> {
    match r.order {
        RollOrder::StopFirst => {
            stop(env, r, (src, dst), out, d).await?;
            out.at = Instant::now();
            let watching = CancellationToken::new();
            let watch = tokio::spawn(last_write(env.admin.clone(), src, watching.clone()));
            roll(env, r, dst, d).await;
            endpoint.repoint(dst);
            watching.cancel();
            d.last_source_write = watch.await.ok().flatten();
        }
        RollOrder::RollFirst => {
            out.at = Instant::now();
            roll(env, r, dst, d).await;
            endpoint.repoint(dst);
            stop(env, r, (src, dst), out, d).await?;
        }
    }
    Ok(())
}

/// Stop writes (when the procedure does), let the destination catch up, remember what the copy
/// carried, and stop the copy.
async fn stop(
    env: &FaultEnv,
    r: &Rolling,
    (src, dst): (SocketAddr, SocketAddr),
    out: &mut SwitchOutcome,
    d: &mut RollingOutcome,
) -> Result<(), String> {
    run_steps(env, StepPoint::BeforePause, (src, dst), &mut out.steps).await?;
    if r.stop_writes {
        // Long enough for the whole roll; the procedure resumes writes itself.
        let ms = (r.max_pause + r.length() + Duration::from_secs(30)).as_millis() as u64;
        d.writes_stopped = Some(Instant::now());
        out.behind_bytes = stop_writes_and_catch_up(env, (src, dst), r.max_pause, ms).await?;
    } else if !external(env) {
        out.behind_bytes = match (repl_offset(env, src).await, repl_offset(env, dst).await) {
            (Some(a), Some(b)) => Some((a - b).max(0)),
            _ => None,
        };
    }
    if r.drain {
        if let Some(h) = &env.handover {
            d.copied = Some(
                h.remember()
                    .await
                    .map_err(|e| format!("the drain step: {e}"))?,
            );
        }
    }
    stop_copy(env, (src, dst), &mut out.steps).await?;
    d.promoted = Some(Instant::now());
    Ok(())
}

/// Roll every group batch by batch, each on its own clock from the start of the roll.
async fn roll(env: &FaultEnv, r: &Rolling, dst: SocketAddr, d: &mut RollingOutcome) {
    let start = Instant::now();
    d.roll_started = Some(start);
    let mut events: Vec<(Duration, usize, std::ops::Range<u32>)> = r
        .groups
        .iter()
        .enumerate()
        .flat_map(|(gi, g)| {
            g.batches()
                .into_iter()
                .map(move |(at, pods)| (at, gi, pods))
        })
        .collect();
    events.sort_by_key(|e| (e.0, e.1));
    for (at, gi, range) in events {
        tokio::time::sleep_until((start + at).into()).await;
        let g = &r.groups[gi];
        for index in range.clone() {
            if let Some(p) = env.pods.get(&g.workload, g.clients, index) {
                p.proxy.repoint(dst);
            }
        }
        d.batches.push(RolledBatch {
            at: Instant::now(),
            workload: g.workload.clone(),
            clients: g.clients.name(),
            pods: range.len() as u32,
        });
    }
    // Writes that were in flight when the last pod moved land (or fail) now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    d.roll_ended = Some(Instant::now());
}

/// The last time the source's replication offset moved, sampled every 50 ms until `stop`.
async fn last_write(
    admin: ConnectOptions,
    src: SocketAddr,
    stop: CancellationToken,
) -> Option<Instant> {
    let mut c = Conn::connect(src, &admin).await.ok()?;
    let mut last_offset = offset_of(&mut c).await;
    let mut last = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.cancelled() => {}
        }
        let now = offset_of(&mut c).await;
        if now.is_some() && now != last_offset {
            last = Some(Instant::now());
            last_offset = now;
        }
        if stop.is_cancelled() {
            return last;
        }
    }
}
