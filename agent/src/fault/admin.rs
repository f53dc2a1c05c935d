//! Admin connections to a node: how faults reach the server itself (with the target's password
//! and TLS). A leaf of `fault/`, so the kinds that need it import it without importing each
//! other.

use std::net::SocketAddr;

use super::env::FaultEnv;
use crate::valkey::{Cmd, Conn};

pub(super) async fn admin_conn(env: &FaultEnv, addr: SocketAddr) -> Result<Conn, String> {
    Conn::connect(addr, &env.admin).await.map_err(|e| e.msg)
}

pub(super) async fn admin(env: &FaultEnv, addr: SocketAddr, cmds: &[Cmd]) -> Result<(), String> {
    let mut c = admin_conn(env, addr).await?;
    for cmd in cmds {
        c.request(cmd)
            .await
            .map_err(|e| format!("{} at {addr}: {}", cmd.name(), e.msg))?;
    }
    Ok(())
}

/// A node's `master_repl_offset` (what it has written or received).
pub(super) async fn repl_offset(env: &FaultEnv, addr: SocketAddr) -> Option<i64> {
    offset_of(&mut admin_conn(env, addr).await.ok()?).await
}

/// `master_repl_offset` over a connection the caller keeps (a watch samples it often).
pub(super) async fn offset_of(c: &mut Conn) -> Option<i64> {
    let v = c.request(&Cmd::new("INFO").arg("replication")).await.ok()?;
    crate::valkey::embedded::parse_info(v.as_str()?, "master_repl_offset")?
        .parse()
        .ok()
}

/// Stop the copy: the destination stops replicating and takes writes (`REPLICAOF NO ONE`).
pub(super) async fn promote(env: &FaultEnv, dst: SocketAddr) -> Result<(), String> {
    admin(env, dst, &[Cmd::new("REPLICAOF").arg("NO").arg("ONE")]).await
}

/// Stop the source's writes (`CLIENT PAUSE … WRITE`) for at most `ms`.
pub(super) async fn pause_writes(env: &FaultEnv, src: SocketAddr, ms: u64) -> Result<(), String> {
    admin(
        env,
        src,
        &[Cmd::new("CLIENT").arg("PAUSE").arg(ms).arg("WRITE")],
    )
    .await
}

/// Resume the source's writes.
pub(super) async fn resume_writes(env: &FaultEnv, src: SocketAddr) -> Result<(), String> {
    admin(env, src, &[Cmd::new("CLIENT").arg("UNPAUSE")]).await
}

/// Wait (up to `max`) until the destination has received everything the source wrote; the
/// bytes still missing when it stopped waiting (0: everything).
pub(super) async fn catch_up(
    env: &FaultEnv,
    src: SocketAddr,
    dst: SocketAddr,
    max: std::time::Duration,
) -> i64 {
    let t0 = std::time::Instant::now();
    let own = repl_offset(env, src).await.unwrap_or(0);
    let mut behind = i64::MAX;
    while t0.elapsed() < max {
        behind = own - repl_offset(env, dst).await.unwrap_or(0);
        if behind <= 0 {
            return 0;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    behind.max(0)
}

/// Whether a provider runs the copy (`mode = "external"`): then the agent cannot read the copy's
/// offsets or promote the destination itself; a canary and the team's steps do.
pub(super) fn external(env: &FaultEnv) -> bool {
    env.migration
        .as_ref()
        .is_some_and(|m| m.mode == crate::plan::migration::Mode::External)
}

/// Stop the source's writes for at most `ms` and wait (up to `max`) until the destination has
/// everything: by replication offsets when the agent runs the copy (the bytes still missing), by
/// a canary written just before the stop when a provider does (0 once it arrived, none if not).
pub(super) async fn stop_writes_and_catch_up(
    env: &FaultEnv,
    (src, dst): (SocketAddr, SocketAddr),
    max: std::time::Duration,
    ms: u64,
) -> Result<Option<i64>, String> {
    if !external(env) {
        pause_writes(env, src, ms)
            .await
            .map_err(|e| format!("the source: {e}"))?;
        return Ok(Some(catch_up(env, src, dst, max).await));
    }
    let key = format!("vc:switch:canary:{}", std::process::id());
    let nonce = format!("{:?}", std::time::Instant::now());
    admin(
        env,
        src,
        &[Cmd::new("SET")
            .arg(key.as_str())
            .arg(nonce.as_str())
            .arg("EX")
            .arg(600u64)],
    )
    .await
    .map_err(|e| format!("the canary on the source: {e}"))?;
    pause_writes(env, src, ms)
        .await
        .map_err(|e| format!("the source: {e}"))?;
    let t0 = std::time::Instant::now();
    let mut c = admin_conn(env, dst).await?;
    while t0.elapsed() < max {
        if let Ok(v) = c.request(&Cmd::new("GET").arg(key.as_str())).await {
            if v.as_str() == Some(nonce.as_str()) {
                return Ok(Some(0));
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    Ok(None)
}

/// Stop the copy: `REPLICAOF NO ONE` at the destination when the agent runs it, then the team's
/// `at-promotion` steps (with a provider, the steps *are* the promotion).
pub(super) async fn stop_copy(
    env: &FaultEnv,
    (src, dst): (SocketAddr, SocketAddr),
    steps: &mut Vec<crate::summary::StepRecord>,
) -> Result<(), String> {
    if !external(env) {
        promote(env, dst).await?;
    }
    run_steps(
        env,
        crate::plan::migration::StepPoint::AtPromotion,
        (src, dst),
        steps,
    )
    .await
}

/// The team's steps at `point` (none without a `[migration]`).
pub(super) async fn run_steps(
    env: &FaultEnv,
    point: crate::plan::migration::StepPoint,
    sides: (SocketAddr, SocketAddr),
    out: &mut Vec<crate::summary::StepRecord>,
) -> Result<(), String> {
    let Some(m) = &env.migration else {
        return Ok(());
    };
    super::steps::run_at(point, &m.steps, sides, env.timebase.start(), out).await
}

/// A migration's source and destination, as addresses.
pub(super) async fn sides(env: &FaultEnv) -> Result<(SocketAddr, SocketAddr), String> {
    match &*env.target.lock().await {
        crate::valkey::Target::Migration {
            source,
            destination,
        } => Ok((
            source.addr().ok_or("cannot resolve the source")?,
            destination.addr().ok_or("cannot resolve the destination")?,
        )),
        _ => Err("a switch needs a [migration]".into()),
    }
}
