//! A rolling switch's pods: one proxy per pod of every rollout group, pointed at the source until
//! the pod's batch rolls. Rolling a pod repoints its proxy at the destination and closes its live
//! connections, as a restarting pod's close; its clients reconnect there.

use std::net::SocketAddr;
use std::sync::Arc;

use super::proxy::Proxy;
use crate::plan::fault::SwitchProcedure;
use crate::plan::rollout::{Clients, Rolling};
use crate::plan::{FaultKind, Plan};
use crate::valkey::pod::PodRoutes;
use crate::valkey::AddrMap;

/// One pod's proxy.
pub(super) struct Pod {
    pub workload: String,
    pub clients: Clients,
    pub index: u32,
    pub proxy: Proxy,
}

/// Every pod of a rolling switch, and their address maps for the workloads.
#[derive(Default)]
pub(super) struct Pods {
    pub list: Vec<Pod>,
    pub routes: Option<Arc<PodRoutes>>,
}

impl Pods {
    pub fn get(&self, workload: &str, clients: Clients, index: u32) -> Option<&Pod> {
        self.list
            .iter()
            .find(|p| p.workload == workload && p.clients == clients && p.index == index)
    }
}

/// The plan's rolling switch, if it has one.
pub(super) fn rolling(plan: &Plan) -> Option<&Rolling> {
    plan.faults.iter().find_map(|f| match &f.kind {
        FaultKind::Switch {
            procedure: SwitchProcedure::Rolling(r),
        } => Some(&**r),
        _ => None,
    })
}

/// Start a proxy in front of the source for every pod of the plan's rolling switch (none
/// without one).
pub(super) async fn start(plan: &Plan, src: SocketAddr) -> Result<Pods, String> {
    let Some(r) = rolling(plan) else {
        return Ok(Pods::default());
    };
    let mut out = Pods::default();
    let mut routes = PodRoutes::default();
    for g in &r.groups {
        let mut maps = vec![];
        for index in 0..g.pods {
            let proxy = Proxy::start(src).await.map_err(|e| {
                format!(
                    "cannot start the proxy of pod {}/{}-{index}: {e}",
                    g.workload,
                    g.clients.name()
                )
            })?;
            let via = AddrMap::default();
            via.insert(src, proxy.listen);
            maps.push(via);
            out.list.push(Pod {
                workload: g.workload.clone(),
                clients: g.clients,
                index,
                proxy,
            });
        }
        routes.add(&g.workload, g.clients.name(), maps);
    }
    out.routes = Some(Arc::new(routes));
    Ok(out)
}
