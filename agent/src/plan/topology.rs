//! The embedded topology a plan needs: how many replicas and sentinels to start, and whether
//! replication goes through the agent's proxy. The plan carries one, and the fault kinds say
//! what they need of it.

/// The embedded topology a plan needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Topology {
    pub replicas: u8,
    pub sentinels: u8,
    /// Replicas replicate through the agent's proxy (replication faults need it).
    pub replication_proxy: bool,
}
