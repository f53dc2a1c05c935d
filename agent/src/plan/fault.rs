//! Fault kinds as plain data: what a `[[fault]]` asks for, when, and on which node. Reading lives
//! in `scenario::fault`, injecting and healing in `fault::`. Every property of a kind is an
//! exhaustive `match` here, so a new kind is one enum arm the compiler points to everywhere.

use std::ops::Range;
use std::time::Duration;

use super::Topology;

/// One `[[fault]]`, compiled.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    pub index: usize,
    /// `name = "…"`, or the type.
    pub name: String,
    pub kind: FaultKind,
    pub at: Duration,
    pub duration: Option<Duration>,
    pub every: Option<Duration>,
    pub node: NodeSel,
    /// Where it was written (for messages about it).
    pub span: Range<usize>,
}

/// Which node a fault hits; resolved when it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeSel {
    Primary,
    Replica,
    Sentinel,
    Named(String),
}

impl NodeSel {
    pub fn name(&self) -> &str {
        match self {
            NodeSel::Primary => "primary",
            NodeSel::Replica => "replica",
            NodeSel::Sentinel => "sentinel",
            NodeSel::Named(n) => n,
        }
    }
}

/// Which way a network toxic applies: upstream = client → server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Upstream,
    Downstream,
    Both,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
            Direction::Both => "both",
        }
    }
}

/// `maxmemory` for the memory fault: absolute, or what is used now plus a headroom.
#[derive(Debug, Clone, PartialEq)]
pub enum MemLimit {
    Bytes(u64),
    UsedPlus(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    Failover,
    Kill {
        restart_after: Option<Duration>,
    },
    Pause,
    ClientPause {
        all: bool,
    },
    ClientKill,
    DebugSleep,
    Memory {
        maxmemory: MemLimit,
        policy: String,
    },
    IdleTimeout {
        seconds: u64,
    },
    Latency {
        delay: Duration,
        jitter: Duration,
        direction: Direction,
    },
    Bandwidth {
        bytes_per_sec: u64,
        direction: Direction,
    },
    Reset,
    Blackhole,
    SlowClose {
        delay: Duration,
    },
    LimitData {
        bytes: u64,
    },
    Partition,
}

/// The type names, as written in `type = "…"`.
pub const TYPES: &[&str] = &[
    "failover",
    "kill",
    "pause",
    "client-pause",
    "client-kill",
    "debug-sleep",
    "memory",
    "idle-timeout",
    "latency",
    "bandwidth",
    "reset",
    "blackhole",
    "slow-close",
    "limit-data",
    "partition",
];

/// How a fault acts, which decides where it may run and how it is healed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Changes the topology (who is primary, which process runs).
    Topology,
    /// Changes the server's state or configuration through commands.
    Server,
    /// Works in the agent's own proxy; the server is untouched.
    Network,
}

impl FaultKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            FaultKind::Failover => "failover",
            FaultKind::Kill { .. } => "kill",
            FaultKind::Pause => "pause",
            FaultKind::ClientPause { .. } => "client-pause",
            FaultKind::ClientKill => "client-kill",
            FaultKind::DebugSleep => "debug-sleep",
            FaultKind::Memory { .. } => "memory",
            FaultKind::IdleTimeout { .. } => "idle-timeout",
            FaultKind::Latency { .. } => "latency",
            FaultKind::Bandwidth { .. } => "bandwidth",
            FaultKind::Reset => "reset",
            FaultKind::Blackhole => "blackhole",
            FaultKind::SlowClose { .. } => "slow-close",
            FaultKind::LimitData { .. } => "limit-data",
            FaultKind::Partition => "partition",
        }
    }

    pub fn class(&self) -> Class {
        match self {
            FaultKind::Failover | FaultKind::Kill { .. } | FaultKind::Pause => Class::Topology,
            FaultKind::ClientPause { .. }
            | FaultKind::ClientKill
            | FaultKind::DebugSleep
            | FaultKind::Memory { .. }
            | FaultKind::IdleTimeout { .. } => Class::Server,
            FaultKind::Latency { .. }
            | FaultKind::Bandwidth { .. }
            | FaultKind::Reset
            | FaultKind::Blackhole
            | FaultKind::SlowClose { .. }
            | FaultKind::LimitData { .. }
            | FaultKind::Partition => Class::Network,
        }
    }

    /// Changes the server itself (needs the double opt-in on a non-local target).
    pub fn destructive(&self) -> bool {
        self.class() != Class::Network
    }

    /// Works through the proxy only.
    pub fn network(&self) -> bool {
        self.class() == Class::Network
    }

    /// Needs a process the agent manages.
    pub fn needs_process(&self) -> bool {
        match self {
            FaultKind::Kill { .. } | FaultKind::Pause => true,
            FaultKind::Failover
            | FaultKind::ClientPause { .. }
            | FaultKind::ClientKill
            | FaultKind::DebugSleep
            | FaultKind::Memory { .. }
            | FaultKind::IdleTimeout { .. }
            | FaultKind::Latency { .. }
            | FaultKind::Bandwidth { .. }
            | FaultKind::Reset
            | FaultKind::Blackhole
            | FaultKind::SlowClose { .. }
            | FaultKind::LimitData { .. }
            | FaultKind::Partition => false,
        }
    }

    /// Has a window (heals after `duration`) rather than being a one-off event.
    pub fn windowed(&self) -> bool {
        match self {
            FaultKind::Failover | FaultKind::ClientKill | FaultKind::Kill { .. } => false,
            FaultKind::Pause
            | FaultKind::ClientPause { .. }
            | FaultKind::DebugSleep
            | FaultKind::Memory { .. }
            | FaultKind::IdleTimeout { .. }
            | FaultKind::Latency { .. }
            | FaultKind::Bandwidth { .. }
            | FaultKind::Reset
            | FaultKind::Blackhole
            | FaultKind::SlowClose { .. }
            | FaultKind::LimitData { .. }
            | FaultKind::Partition => true,
        }
    }

    /// A windowed fault that must be given a `duration` (memory and idle-timeout last until the
    /// end of the run without one).
    pub fn needs_duration(&self) -> bool {
        self.windowed()
            && !matches!(
                self,
                FaultKind::Memory { .. } | FaultKind::IdleTimeout { .. }
            )
    }

    /// May move the primary (so the timeline reports where it went).
    pub fn moves_primary(&self) -> bool {
        match self {
            FaultKind::Failover
            | FaultKind::Kill { .. }
            | FaultKind::Partition
            | FaultKind::Pause => true,
            FaultKind::ClientPause { .. }
            | FaultKind::ClientKill
            | FaultKind::DebugSleep
            | FaultKind::Memory { .. }
            | FaultKind::IdleTimeout { .. }
            | FaultKind::Latency { .. }
            | FaultKind::Bandwidth { .. }
            | FaultKind::Reset
            | FaultKind::Blackhole
            | FaultKind::SlowClose { .. }
            | FaultKind::LimitData { .. } => false,
        }
    }

    /// The kind's own parameters as `(name, value)`, durations in seconds (for exporters and
    /// reports).
    pub fn params(&self) -> Vec<(&'static str, ParamValue)> {
        use ParamValue::{Bool, Int, Secs, Text};
        match self {
            FaultKind::Kill {
                restart_after: Some(r),
            } => vec![("restart_after_seconds", Secs(r.as_secs_f64()))],
            FaultKind::ClientPause { all } => vec![("all", Bool(*all))],
            FaultKind::Memory { maxmemory, policy } => vec![
                match maxmemory {
                    MemLimit::Bytes(b) => ("maxmemory_bytes", Int(*b as i64)),
                    MemLimit::UsedPlus(b) => ("maxmemory_headroom_bytes", Int(*b as i64)),
                },
                ("policy", Text(policy.clone())),
            ],
            FaultKind::IdleTimeout { seconds } => vec![("seconds", Int(*seconds as i64))],
            FaultKind::Latency {
                delay,
                jitter,
                direction,
            } => vec![
                ("delay_seconds", Secs(delay.as_secs_f64())),
                ("jitter_seconds", Secs(jitter.as_secs_f64())),
                ("direction", Text(direction.name().into())),
            ],
            FaultKind::Bandwidth {
                bytes_per_sec,
                direction,
            } => vec![
                ("bytes_per_sec", Int(*bytes_per_sec as i64)),
                ("direction", Text(direction.name().into())),
            ],
            FaultKind::SlowClose { delay } => vec![("delay_seconds", Secs(delay.as_secs_f64()))],
            FaultKind::LimitData { bytes } => vec![("bytes", Int(*bytes as i64))],
            FaultKind::Kill {
                restart_after: None,
            }
            | FaultKind::Failover
            | FaultKind::Pause
            | FaultKind::ClientKill
            | FaultKind::DebugSleep
            | FaultKind::Reset
            | FaultKind::Blackhole
            | FaultKind::Partition => vec![],
        }
    }
}

/// A fault parameter's value, typed for exporters.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Secs(f64),
    Text(String),
}

/// What the embedded topology needs for these faults.
pub fn topology_needs(faults: &[FaultPlan]) -> Topology {
    let mut t = Topology::default();
    for f in faults {
        match (&f.kind, &f.node) {
            (FaultKind::Failover, _)
            | (FaultKind::Kill { .. }, NodeSel::Primary)
            | (FaultKind::Partition, NodeSel::Primary)
            | (FaultKind::Pause, NodeSel::Primary) => {
                t.replicas = t.replicas.max(1);
                if !matches!(f.kind, FaultKind::Failover) {
                    t.sentinels = t.sentinels.max(3);
                }
            }
            (_, NodeSel::Replica) => t.replicas = t.replicas.max(1),
            (_, NodeSel::Sentinel) => {
                t.replicas = t.replicas.max(1);
                t.sentinels = t.sentinels.max(3);
            }
            _ => {}
        }
    }
    t
}
