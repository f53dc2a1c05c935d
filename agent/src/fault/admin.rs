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
