//! Before the load: whether a scenario's `switch-back` can happen at all — the old engine must
//! load what the new one sends a replica (`plan::rollback`, from each server's own `INFO`). A
//! leaf of `fault/`: set-up asks it, the switch-back does not need to.

use std::net::SocketAddr;

use crate::plan::rollback::{by_replication, Engine, InUse, Server};
use crate::valkey::embedded::parse_info;
use crate::valkey::{Cmd, Conn, ConnectOptions};

/// A server as the rollback rules know it, from its `INFO server`.
async fn server(addr: SocketAddr, admin: &ConnectOptions) -> Result<Server, String> {
    let mut c = Conn::connect(addr, admin)
        .await
        .map_err(|e| format!("{addr} unreachable: {}", e.msg))?;
    let v = c
        .request(&Cmd::new("INFO").arg("server"))
        .await
        .map_err(|e| format!("INFO server at {addr}: {}", e.msg))?;
    let text = v.as_str().unwrap_or_default();
    let parsed = match parse_info(text, "valkey_version") {
        Some(v) => Server::parse(Engine::Valkey, &v),
        None => parse_info(text, "redis_version").and_then(|v| Server::parse(Engine::Redis, &v)),
    };
    parsed.ok_or_else(|| format!("{addr}: no version in INFO server"))
}

/// Whether the destination, once primary, can replicate back into the source: `Ok` with the
/// reason, `Err` with why not.
pub(super) async fn check(
    src: SocketAddr,
    dst: SocketAddr,
    admin: &ConnectOptions,
) -> Result<String, String> {
    let (from, to) = (server(dst, admin).await?, server(src, admin).await?);
    let v = by_replication(&from, &to, &InUse::default());
    if v.possible {
        Ok(v.reason)
    } else {
        Err(v.reason)
    }
}
