//! The way back (`type = "switch-back"`, after a `switch`): stop the destination's writes, make
//! the source its replica (a full sync from the new side into the old engine, which the
//! preflight allowed), wait until it has everything, promote it, compare the two key by key while
//! nothing writes, and send every client back to it. Refused before the load where the old engine
//! cannot load what the new one sends (`plan::rollback`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::admin::{admin, pause_writes, promote, repl_offset, resume_writes, sides};
use super::env::FaultEnv;
use super::rolled::SwitchBackOutcome;
use crate::valkey::embedded::parse_info;
use crate::valkey::Cmd;

/// The longest the full sync back may take.
const SYNC_LIMIT: Duration = Duration::from_secs(60);

pub(super) async fn run(env: &FaultEnv, max_pause: Duration) -> Result<String, String> {
    let (src, dst) = sides(env).await?;
    let t0 = Instant::now();
    let ms = (max_pause + SYNC_LIMIT + Duration::from_secs(30)).as_millis() as u64;
    pause_writes(env, dst, ms)
        .await
        .map_err(|e| format!("the destination: {e}"))?;
    let back = replicate_back(env, src, dst).await;
    let verify = match (&back, &env.handover) {
        (Ok(_), Some(h)) => Some(h.verify().await?),
        _ => None,
    };
    if back.is_ok() {
        for p in env.proxies.iter().filter(|p| p.node == "endpoint") {
            p.proxy.repoint(src);
        }
        for p in &env.pods.list {
            p.proxy.repoint(src);
        }
    }
    let at = Instant::now();
    // The destination is the old side now: nobody writes there any more.
    let resumed = resume_writes(env, dst).await;
    let sync = back?;
    resumed.map_err(|e| format!("the destination: {e}"))?;
    let out = SwitchBackOutcome {
        at,
        paused: at.saturating_duration_since(t0),
        sync,
        verify,
    };
    let said = format!(
        "switched back: the source replicated the destination in {} ms and took the clients \
         back; the destination's writes were stopped {} ms{}",
        out.sync.as_millis(),
        out.paused.as_millis(),
        match out.verify.as_ref() {
            Some(v) => format!(
                "; {} keys compared, {} differences",
                v.keys_checked, v.differences
            ),
            None => String::new(),
        }
    );
    *env.switch_back.lock().expect("switch-back lock") = Some(out);
    Ok(said)
}

/// The source replicates the destination until it has everything, then stops: how long it took.
async fn replicate_back(
    env: &FaultEnv,
    src: SocketAddr,
    dst: SocketAddr,
) -> Result<Duration, String> {
    let t0 = Instant::now();
    admin(
        env,
        src,
        &[Cmd::new("REPLICAOF")
            .arg(dst.ip().to_string())
            .arg(u64::from(dst.port()))],
    )
    .await
    .map_err(|e| format!("the source: {e}"))?;
    loop {
        let up = link_up(env, src).await;
        let (a, b) = (repl_offset(env, dst).await, repl_offset(env, src).await);
        if up && a.is_some() && a == b {
            break;
        }
        if t0.elapsed() > SYNC_LIMIT {
            // Leave the source a primary again, with what it had.
            let _ = promote(env, src).await;
            return Err(format!(
                "the source {src} did not receive the destination {dst} within {}s (link up: \
                 {up}, offsets {} / {})",
                SYNC_LIMIT.as_secs(),
                b.unwrap_or(-1),
                a.unwrap_or(-1)
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    promote(env, src).await?;
    Ok(t0.elapsed())
}

async fn link_up(env: &FaultEnv, addr: SocketAddr) -> bool {
    let Ok(mut c) = super::admin::admin_conn(env, addr).await else {
        return false;
    };
    let Ok(v) = c.request(&Cmd::new("INFO").arg("replication")).await else {
        return false;
    };
    v.as_str()
        .and_then(|t| parse_info(t, "master_link_status"))
        .as_deref()
        == Some("up")
}
