//! Routes that move a few clients at a time: a rolling cutover restarts the services pod by pod
//! with the new `REDIS_URL`, so each pod of a workload reaches "the database" through an address
//! map of its own (the agent's proxy for that pod, which the roll repoints). Client `i` of a
//! group of `n` pods lives on pod `i % n`.

use std::collections::HashMap;

use super::client::AddrMap;

/// Every pod's address map, by workload and kind of client (`"producers"`, `"consumers"`,
/// `"all"`).
#[derive(Debug, Default)]
pub struct PodRoutes {
    groups: HashMap<(String, &'static str), Vec<AddrMap>>,
}

impl PodRoutes {
    /// A group's pods, in pod order.
    pub fn add(&mut self, workload: &str, clients: &'static str, pods: Vec<AddrMap>) {
        self.groups.insert((workload.to_string(), clients), pods);
    }

    /// The address map of the pod client `index` of this group lives on (none: not rolled).
    pub fn via(&self, workload: &str, clients: &'static str, index: u32) -> Option<AddrMap> {
        let pods = self.groups.get(&(workload.to_string(), clients))?;
        pods.get(index as usize % pods.len().max(1)).cloned()
    }
}
