//! The cutover of a migration rehearsal: the stable endpoint the workloads use is repointed from
//! the source to the destination. *pause-and-drain* is the documented procedure — stop writes,
//! let the destination receive everything, promote it, repoint, resume; *repoint-only* is the
//! hurried one — repoint while replication still runs, then stop it; *rolling* moves the clients
//! pod by pod (`fault::rolling`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::admin::{
    external, repl_offset, resume_writes, run_steps, sides, stop_copy, stop_writes_and_catch_up,
};
use super::env::FaultEnv;
use crate::plan::fault::SwitchProcedure;
use crate::plan::migration::StepPoint;
use crate::valkey::client::{NOSCRIPT_REPLIES, READONLY_REPLIES};

pub use super::env::SwitchOutcome;

pub(super) struct Done {
    pub target: String,
    /// The source, whose writes stay paused until the heal.
    pub paused: Option<SocketAddr>,
}

pub(super) async fn run(env: &FaultEnv, procedure: &SwitchProcedure) -> Result<Done, String> {
    let (src, dst) = sides(env).await?;
    let endpoint = env
        .proxies
        .iter()
        .find(|p| p.node == "endpoint")
        .ok_or("the migration has no endpoint proxy")?;
    let mut out = SwitchOutcome {
        procedure: procedure.clone(),
        at: Instant::now(),
        paused: None,
        behind_bytes: None,
        noscript_before: NOSCRIPT_REPLIES.load(Ordering::Relaxed),
        rolling: None,
        steps: vec![],
    };
    let said = switch(env, procedure, (src, dst), &endpoint.proxy, &mut out).await;
    // What it did so far is the report's, also when it stopped half-way.
    *env.switch.lock().expect("switch lock") = Some(out);
    let (detail, paused) = said?;
    Ok(Done {
        target: format!("endpoint {} → {dst}: {detail}", endpoint.proxy.listen),
        paused,
    })
}

/// The procedure; what it did, and the source whose writes stay paused until the heal.
async fn switch(
    env: &FaultEnv,
    procedure: &SwitchProcedure,
    (src, dst): (SocketAddr, SocketAddr),
    endpoint: &super::proxy::Proxy,
    out: &mut SwitchOutcome,
) -> Result<(String, Option<SocketAddr>), String> {
    let mut paused = None;
    let detail = match procedure {
        SwitchProcedure::PauseAndDrain { max_pause } => {
            run_steps(env, StepPoint::BeforePause, (src, dst), &mut out.steps).await?;
            let t0 = Instant::now();
            let ms = (*max_pause + Duration::from_secs(30)).as_millis() as u64;
            paused = Some(src);
            let behind = stop_writes_and_catch_up(env, (src, dst), *max_pause, ms).await?;
            stop_copy(env, (src, dst), &mut out.steps).await?;
            endpoint.repoint(dst);
            out.at = Instant::now();
            out.paused = Some(t0.elapsed());
            out.behind_bytes = behind;
            // The clients are on the destination: the old side's writes may resume.
            resume_writes(env, src)
                .await
                .map_err(|e| format!("the source: {e}"))?;
            run_steps(env, StepPoint::After, (src, dst), &mut out.steps).await?;
            match behind {
                Some(0) => format!(
                    "pause-and-drain: the destination had everything; writes paused {} ms",
                    out.paused.unwrap_or_default().as_millis()
                ),
                Some(b) => format!(
                    "pause-and-drain: the destination was still {b} bytes behind after \
                     max_pause ({} ms): switched anyway, what it had not received is lost",
                    max_pause.as_millis()
                ),
                None => format!(
                    "pause-and-drain: the canary written before the pause had not reached the \
                     destination after max_pause ({} ms): switched anyway, what it had not \
                     received is lost",
                    max_pause.as_millis()
                ),
            }
        }
        SwitchProcedure::RepointOnly => {
            run_steps(env, StepPoint::BeforePause, (src, dst), &mut out.steps).await?;
            let behind = if external(env) {
                None
            } else {
                match (repl_offset(env, src).await, repl_offset(env, dst).await) {
                    (Some(a), Some(b)) => Some((a - b).max(0)),
                    _ => None,
                }
            };
            endpoint.repoint(dst);
            out.at = Instant::now();
            stop_copy(env, (src, dst), &mut out.steps).await?;
            out.behind_bytes = behind;
            run_steps(env, StepPoint::After, (src, dst), &mut out.steps).await?;
            format!(
                "repoint-only: repointed while the destination was {} bytes behind; replication \
                 stopped after",
                behind.map(|b| b.to_string()).unwrap_or_else(|| "?".into())
            )
        }
        SwitchProcedure::Rolling(r) => {
            let mut rolled = super::rolled::RollingOutcome {
                readonly_before: READONLY_REPLIES.load(Ordering::Relaxed),
                ..Default::default()
            };
            let said = super::rolling::run(env, r, (src, dst), endpoint, out, &mut rolled).await;
            out.rolling = Some(rolled);
            said?
        }
    };
    Ok((detail, paused))
}
