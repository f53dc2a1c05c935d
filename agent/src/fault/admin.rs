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
    let mut c = admin_conn(env, addr).await.ok()?;
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
