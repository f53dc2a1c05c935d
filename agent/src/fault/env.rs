//! Before any load: every fault checked against the target (refusals name the fault, why, and
//! the way out), and the proxies network faults need started, with the route mapped through them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Mutex;

use super::proxy::Proxy;
use crate::events::Events;
use crate::plan::Plan;
use crate::valkey::{ConnectOptions, Route, Target};

/// What may be done to the server itself (the destructive fault kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestructivePolicy {
    /// The embedded topology, a loopback target, or the double opt-in was given.
    Allowed,
    /// Refuse the run before any load (the default for a remote target).
    Refuse,
    /// Run only what is allowed and record the rest as skipped (`--skip-destructive`).
    Skip,
}

/// Why fault set-up stopped the run before it began.
pub enum PrepareError {
    Refused(String),
    Runtime(String),
}

/// Everything the timeline needs to inject and heal.
pub struct FaultEnv {
    pub(super) target: Arc<Mutex<Target>>,
    /// (node name, real address, proxy)
    pub(super) proxies: Vec<(String, SocketAddr, Proxy)>,
    pub(super) admin: ConnectOptions,
    pub(super) skipped: Vec<(usize, String)>,
    pub events: Option<Events>,
    /// Asks the run to cut a metrics interval now, so phases start and end exactly at faults.
    pub cuts: Option<tokio::sync::mpsc::UnboundedSender<Instant>>,
}

/// Check every fault against the target (refusals name the fault and why) and start the proxies
/// network faults need, mapping the route through them.
pub async fn prepare(
    plan: &Plan,
    target: Arc<Mutex<Target>>,
    route: &mut Route,
    destructive: DestructivePolicy,
) -> Result<FaultEnv, PrepareError> {
    let mut skipped = vec![];
    let t = target.lock().await;
    let (label, managed) = match &*t {
        Target::Embedded(_) => ("the embedded topology".to_string(), true),
        Target::External(u) => (u.to_string(), false),
    };
    for f in &plan.faults {
        if f.kind.destructive() && destructive != DestructivePolicy::Allowed {
            if destructive == DestructivePolicy::Skip {
                skipped.push((
                    f.index,
                    "destructive fault skipped (--skip-destructive) on a non-local target"
                        .to_string(),
                ));
                continue;
            }
            return Err(PrepareError::Refused(format!(
                "refusing fault #{} {:?} (type {}): it changes the server at {label}, which is not on loopback. \
                 To run it anyway set allow_destructive = true in the scenario AND pass --allow-destructive; \
                 or pass --skip-destructive to run only the network faults",
                f.index,
                f.name,
                f.kind.type_name()
            )));
        }
        if f.kind.needs_process() && !managed {
            if destructive == DestructivePolicy::Skip {
                skipped.push((f.index, "needs a process the agent manages".into()));
                continue;
            }
            return Err(PrepareError::Refused(format!(
                "fault #{} {:?} (type {}) needs a server process the agent manages, but the target is {label}; run it against the embedded topology (no --target)",
                f.index,
                f.name,
                f.kind.type_name()
            )));
        }
    }
    let mut proxies = vec![];
    let needs_proxy = plan.faults.iter().any(|f| f.kind.network());
    if needs_proxy {
        let nodes: Vec<(String, SocketAddr)> = match &*t {
            Target::Embedded(topo) => topo
                .data_nodes()
                .map(|n| (n.name.clone(), n.addr()))
                .collect(),
            Target::External(_) => {
                let a = route.primary_addr().await.map_err(|e| {
                    PrepareError::Runtime(format!(
                        "cannot resolve the target for the fault proxy: {}",
                        e.msg
                    ))
                })?;
                vec![("target".to_string(), a)]
            }
        };
        for (name, real) in nodes {
            let p = Proxy::start(real).await.map_err(|e| {
                PrepareError::Runtime(format!("cannot start the fault proxy for {name}: {e}"))
            })?;
            route.via.insert(real, p.listen);
            proxies.push((name, real, p));
        }
    }
    let admin = ConnectOptions {
        lib_info: None,
        ..route.opts.clone()
    };
    drop(t);
    Ok(FaultEnv {
        target,
        proxies,
        admin,
        skipped,
        events: None,
        cuts: None,
    })
}
