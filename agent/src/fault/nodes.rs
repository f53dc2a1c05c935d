//! Which node a fault hits, resolved when it fires: the current primary (as the sentinels see
//! it), a replica, a sentinel or a node by name.

use std::net::SocketAddr;
use std::time::Duration;

use super::env::FaultEnv;
use crate::plan::fault::Link;
use crate::plan::{FaultPlan, NodeSel};
use crate::valkey::embedded::{self, NodeRole, MASTER_NAME};
use crate::valkey::{ConnectOptions, Route, Target};

/// Node index (embedded) and address of the node a fault should hit, now.
pub(super) async fn resolve(
    env: &FaultEnv,
    sel: &NodeSel,
) -> Result<(Option<usize>, SocketAddr, String), String> {
    let t = env.target.lock().await;
    match &*t {
        Target::External(u) => {
            let a = crate::valkey::client::Route::direct(u.host_port(), env.admin.clone())
                .primary_addr()
                .await
                .map_err(|e| e.msg)?;
            Ok((None, a, u.to_string()))
        }
        Target::Migration {
            source,
            destination,
        } => {
            // Before the switch the clients use the source; a replica is the destination.
            let (side, name) = match sel {
                NodeSel::Replica => (destination, "destination"),
                NodeSel::Named(n) if n == "destination" => (destination, "destination"),
                _ => (source, "source"),
            };
            let a = side
                .addr()
                .ok_or_else(|| format!("cannot resolve the migration's {name}"))?;
            Ok((None, a, name.to_string()))
        }
        Target::Embedded(topo) => {
            let idx = match sel {
                NodeSel::Named(n) => topo.node_index(n).ok_or_else(|| {
                    let names: Vec<&str> = topo.nodes.iter().map(|n| n.name.as_str()).collect();
                    format!("no node {n:?} (nodes: {})", names.join(", "))
                })?,
                NodeSel::Sentinel => topo
                    .nodes
                    .iter()
                    .position(|n| n.role == NodeRole::Sentinel)
                    .ok_or("the topology has no sentinel")?,
                NodeSel::Primary | NodeSel::Replica => {
                    let want_master = *sel == NodeSel::Primary;
                    let mut found = None;
                    for (i, n) in topo
                        .nodes
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| n.role != NodeRole::Sentinel)
                    {
                        let role = embedded::info_field(n.addr(), "replication", "role").await;
                        if role.as_deref() == Some(if want_master { "master" } else { "slave" }) {
                            found = Some(i);
                            // With sentinels, prefer the node the sentinels call primary.
                            if want_master && !topo.sentinels().is_empty() {
                                if let Some(p) = sentinel_primary(&topo.sentinels()).await {
                                    if p == n.addr() {
                                        break;
                                    }
                                    continue;
                                }
                            }
                            break;
                        }
                    }
                    found.ok_or_else(|| {
                        format!(
                            "no running {} in the topology",
                            if want_master { "primary" } else { "replica" }
                        )
                    })?
                }
            };
            let n = &topo.nodes[idx];
            Ok((Some(idx), n.addr(), n.name.clone()))
        }
    }
}

pub(super) async fn sentinel_primary(sentinels: &[SocketAddr]) -> Option<SocketAddr> {
    let r = Route {
        endpoint: crate::valkey::Endpoint::Sentinel {
            sentinels: sentinels.to_vec(),
            master: MASTER_NAME.into(),
        },
        opts: ConnectOptions {
            timeout: Duration::from_secs(1),
            ..Default::default()
        },
        via: Default::default(),
    };
    r.primary_addr().await.ok()
}

pub(super) async fn current_primary_name(env: &FaultEnv) -> Option<String> {
    let t = env.target.lock().await;
    let Target::Embedded(topo) = &*t else {
        return None;
    };
    let s = topo.sentinels();
    let addr = if s.is_empty() {
        let mut found = None;
        for n in topo.data_nodes() {
            if embedded::info_field(n.addr(), "replication", "role")
                .await
                .as_deref()
                == Some("master")
            {
                found = Some(n.addr());
                break;
            }
        }
        found?
    } else {
        // Give sentinels a moment to agree.
        let mut last = None;
        for _ in 0..30 {
            last = sentinel_primary(&s).await;
            if last.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        last?
    };
    topo.nodes
        .iter()
        .find(|n| n.addr() == addr)
        .map(|n| format!("{} ({addr})", n.name))
}

/// The proxy a network fault acts on: the one in front of the node it resolves to (client
/// link), or the one a replica replicates through (replication link).
pub(super) async fn proxy_for(env: &FaultEnv, f: &FaultPlan) -> Result<usize, String> {
    if f.kind.on_replication_link(f.link) {
        let (_, _, name) = resolve(env, &f.node).await?;
        let node = name.split(' ').next().unwrap_or(&name).to_string();
        return env
            .proxies
            .iter()
            .position(|p| p.link == Link::Replication && p.node == node)
            .ok_or_else(|| {
                format!(
                    "{node} does not replicate through a fault proxy (only embedded replicas do)"
                )
            });
    }
    let (_, addr, _) = resolve(env, &f.node).await?;
    env.proxies
        .iter()
        .position(|p| p.link == Link::Clients && p.real == addr)
        .ok_or_else(|| format!("no fault proxy in front of {addr}"))
}

/// The RESP proxy in front of the node `f` acts on (protocol faults need one).
pub(super) async fn resp_proxy_for(f: &FaultPlan, env: &FaultEnv) -> Result<usize, String> {
    let i = proxy_for(env, f).await?;
    if !env.proxies[i].proxy.resp_mode() {
        return Err(format!(
            "{} needs the RESP proxy, but the proxy in front of {} forwards bytes",
            f.kind.type_name(),
            env.proxies[i].node
        ));
    }
    Ok(i)
}

/// How a guard names the proxy a protocol fault acts on.
pub(super) fn via(env: &FaultEnv, i: usize) -> String {
    let p = &env.proxies[i];
    format!("{} via proxy {}", p.node, p.proxy.listen)
}
