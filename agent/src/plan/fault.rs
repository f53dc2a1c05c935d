//! Fault kinds as plain data: what a `[[fault]]` asks for, when, and on which node. Reading lives
//! in `scenario::fault`, injecting and healing in `fault::`. Every property of a kind is an
//! exhaustive `match` here, so a new kind is one enum arm the compiler points to everywhere.

use std::ops::Range;
use std::time::Duration;

use super::protocol::{AfterDrop, CommandFilter, ErrorCode, Eviction, FlipTo};
use super::topology::Topology;

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
    /// Which connections a network toxic acts on: the clients', or a replica's link to its
    /// primary.
    pub link: Link,
    /// Where it was written (for messages about it).
    pub span: Range<usize>,
    /// `recover_within` for this fault (else the scenario's).
    pub recover_within: Option<Duration>,
}

/// The connections a network toxic acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Link {
    /// Workload connections to the node (through the agent's proxy in front of it).
    #[default]
    Clients,
    /// A replica's replication link to its primary (embedded topology: the replica replicates
    /// through the agent's proxy).
    Replication,
}

impl Link {
    pub fn name(self) -> &'static str {
        match self {
            Link::Clients => "clients",
            Link::Replication => "replication",
        }
    }
}

/// How a failover is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverMode {
    /// A planned failover, as the `FAILOVER` command and providers' maintenance do it: writes on
    /// the primary are paused, a replica is given up to `sync_timeout` to receive everything,
    /// then it is promoted, the old primary is demoted and its clients reconnect. Nothing
    /// acknowledged is lost — unless the replica could not catch up in time (replication lag).
    Coordinated { sync_timeout: Duration },
    /// `SENTINEL FAILOVER` at once, as after a crash: what the replica has not received is lost,
    /// and clients still connected to the old primary keep writing there until Sentinel demotes
    /// it (up to several seconds: two primaries at once).
    Forced,
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
    Failover {
        mode: FailoverMode,
    },
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
    /// Replication delayed: the replica's link to its primary goes through the proxy with this
    /// latency (the replica lags; a failover now loses what it has not received).
    ReplicationLag {
        delay: Duration,
        jitter: Duration,
    },
    /// The replica's link to its primary is cut (it falls behind; writes keep being acknowledged).
    ReplicationPartition,
    /// One of a Dramatiq workload's consumers (a worker process) dies mid-message: it stops
    /// fetching, acking and heart-beating; what it held stays in its ack set until another
    /// worker's maintenance requeues it. It comes back as a new worker after `restart_after`.
    ConsumerCrash {
        workload: String,
        consumer: u32,
        restart_after: Option<Duration>,
    },
    /// A Dramatiq workload's consumers (one, or every one) stay alive and keep heart-beating but
    /// stop fetching and handing out messages: what Dramatiq users report after a Sentinel
    /// failover. They resume when the fault heals, unless `resume = false` (the planted bug: they
    /// never fetch again; what they prefetched is stuck, since their heartbeat keeps it theirs).
    ConsumerStall {
        workload: String,
        /// None: every consumer.
        consumer: Option<u32>,
        resume: bool,
    },
    /// The cutover (a `[migration]` run): the stable endpoint is repointed from the source to
    /// the destination.
    Switch {
        procedure: SwitchProcedure,
    },
    /// The way back (after a `switch`): the destination's writes stop, the source replicates it,
    /// is promoted and takes the clients back, and the two are compared key by key.
    SwitchBack {
        max_pause: Duration,
    },
    /// The agent's commands matching `filter` are answered with a server error (the target
    /// engine's own text) instead of being forwarded.
    Error {
        reply: ErrorCode,
        filter: CommandFilter,
    },
    /// Matching commands are forwarded and run, and their reply is lost: the outcome is
    /// ambiguous to the client (a broken connection, or a timeout with `then = hang`).
    DropReply {
        filter: CommandFilter,
        then: AfterDrop,
    },
    /// Matching commands are held this long before they are forwarded (slow writes, fast
    /// reads): later commands on the connection wait behind them, as behind a slow server.
    CommandLatency {
        delay: Duration,
        jitter: Duration,
        filter: CommandFilter,
    },
    /// The agent's connections idle for longer than `timeout` are closed, as the server's
    /// `timeout` does (imitated in the proxy: no `CONFIG` needed).
    IdleReap {
        timeout: Duration,
    },
    /// The endpoint now leads to another server: new connections go there, live ones are closed
    /// (a stable host name moving to a new primary).
    Flip {
        to: FlipTo,
    },
    /// A provider's failover as the client sees it, imitated in the proxy: every connection is
    /// reset, commands are answered `reply` (`LOADING`, or `READONLY` for writes) for the
    /// fault's duration, then served again — by the same endpoint, or by `flip` when given.
    ProviderFailover {
        reply: ErrorCode,
        flip: Option<FlipTo>,
    },
    /// Memory pressure imitated in the proxy: writes that find no room are refused with `OOM`,
    /// room is made by evicting keys the agent itself wrote (never anything else), in the
    /// policy's order; `rate` of the writes find memory full.
    MemoryPressure {
        policy: Eviction,
        rate: f64,
    },
}

/// How the cutover is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchProcedure {
    /// `CLIENT PAUSE WRITE` on the source, wait (up to `max_pause`) until the destination has
    /// everything, promote it (`REPLICAOF NO ONE`), repoint, resume: the documented "stop writes,
    /// repoint clients, stop the migration".
    PauseAndDrain { max_pause: Duration },
    /// Repoint while replication still runs, then stop it: what a hurried operator does. What
    /// the destination had not received is lost.
    RepointOnly,
    /// The clients move pod by pod, as a Helm upgrade with the new `REDIS_URL` restarts them
    /// (`plan::rollout`).
    Rolling(Box<super::rollout::Rolling>),
}

impl SwitchProcedure {
    /// As written in `procedure = "…"`.
    pub fn name(&self) -> &'static str {
        match self {
            SwitchProcedure::PauseAndDrain { .. } => "pause-and-drain",
            SwitchProcedure::RepointOnly => "repoint-only",
            SwitchProcedure::Rolling(_) => "rolling",
        }
    }
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
    "replication-lag",
    "replication-partition",
    "consumer-crash",
    "consumer-stall",
    "switch",
    "switch-back",
    "error",
    "drop-reply",
    "command-latency",
    "idle-reap",
    "flip",
    "provider-failover",
    "memory-pressure",
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
    /// Acts on the agent's own simulated clients (a worker process dying).
    Workload,
    /// Works in the agent's RESP-aware proxy on the clients' link (it reads their commands);
    /// the server is untouched.
    Protocol,
}

impl FaultKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            FaultKind::Failover { .. } => "failover",
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
            FaultKind::ReplicationLag { .. } => "replication-lag",
            FaultKind::ReplicationPartition => "replication-partition",
            FaultKind::ConsumerCrash { .. } => "consumer-crash",
            FaultKind::ConsumerStall { .. } => "consumer-stall",
            FaultKind::Switch { .. } => "switch",
            FaultKind::SwitchBack { .. } => "switch-back",
            FaultKind::Error { .. } => "error",
            FaultKind::DropReply { .. } => "drop-reply",
            FaultKind::CommandLatency { .. } => "command-latency",
            FaultKind::IdleReap { .. } => "idle-reap",
            FaultKind::Flip { .. } => "flip",
            FaultKind::ProviderFailover { .. } => "provider-failover",
            FaultKind::MemoryPressure { .. } => "memory-pressure",
        }
    }

    pub fn class(&self) -> Class {
        match self {
            FaultKind::Failover { .. }
            | FaultKind::Kill { .. }
            | FaultKind::Pause
            | FaultKind::Switch { .. }
            | FaultKind::SwitchBack { .. } => Class::Topology,
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
            | FaultKind::Partition
            | FaultKind::ReplicationLag { .. }
            | FaultKind::ReplicationPartition => Class::Network,
            FaultKind::ConsumerCrash { .. } | FaultKind::ConsumerStall { .. } => Class::Workload,
            FaultKind::Error { .. }
            | FaultKind::DropReply { .. }
            | FaultKind::CommandLatency { .. }
            | FaultKind::IdleReap { .. }
            | FaultKind::Flip { .. }
            | FaultKind::ProviderFailover { .. }
            | FaultKind::MemoryPressure { .. } => Class::Protocol,
        }
    }

    /// Changes the server itself (needs the double opt-in on a non-local target).
    pub fn destructive(&self) -> bool {
        matches!(self.class(), Class::Topology | Class::Server)
    }

    /// Works through the proxy only, on bytes (any link).
    pub fn network(&self) -> bool {
        self.class() == Class::Network
    }

    /// Works in the RESP-aware proxy on the clients' link.
    pub fn protocol(&self) -> bool {
        self.class() == Class::Protocol
    }

    /// Where the fault happens, for the catalogue: on the server, or in the agent's proxy.
    pub fn needs_server(&self) -> bool {
        matches!(self.class(), Class::Topology | Class::Server)
    }

    /// The fault that imitates this one through the agent's proxy, where the target refuses
    /// what this one needs (a managed service): the way out a refusal offers.
    pub fn proxy_stand_in(&self) -> Option<&'static str> {
        match self {
            FaultKind::Failover { .. } | FaultKind::Kill { .. } | FaultKind::Pause => {
                Some("type = \"provider-failover\" imitates a failover through the agent's proxy")
            }
            FaultKind::Memory { .. } => Some(
                "type = \"memory-pressure\" imitates it through the agent's proxy (OOM, eviction \
                 of the agent's own keys)",
            ),
            FaultKind::IdleTimeout { .. } => {
                Some("type = \"idle-reap\" closes idle connections in the agent's proxy instead")
            }
            FaultKind::DebugSleep | FaultKind::ClientPause { .. } => {
                Some("type = \"command-latency\" holds commands in the agent's proxy instead")
            }
            FaultKind::ClientKill => {
                Some("type = \"reset\" resets the agent's connections in its proxy instead")
            }
            FaultKind::Latency { .. }
            | FaultKind::Bandwidth { .. }
            | FaultKind::Reset
            | FaultKind::Blackhole
            | FaultKind::SlowClose { .. }
            | FaultKind::LimitData { .. }
            | FaultKind::Partition
            | FaultKind::ReplicationLag { .. }
            | FaultKind::ReplicationPartition
            | FaultKind::ConsumerCrash { .. }
            | FaultKind::ConsumerStall { .. }
            | FaultKind::Switch { .. }
            | FaultKind::SwitchBack { .. }
            | FaultKind::Error { .. }
            | FaultKind::DropReply { .. }
            | FaultKind::CommandLatency { .. }
            | FaultKind::IdleReap { .. }
            | FaultKind::Flip { .. }
            | FaultKind::ProviderFailover { .. }
            | FaultKind::MemoryPressure { .. } => None,
        }
    }

    /// For a fault that stands in for a server event the agent may not cause on a managed
    /// target: that it is imitated through the proxy, and what the imitation cannot show.
    pub fn imitation(&self) -> Option<&'static str> {
        match self {
            FaultKind::ProviderFailover { .. } => Some(
                "imitated through the agent's proxy: the agent's own connections are reset and \
                 its commands refused as a failing-over server refuses them; it cannot show what \
                 the server itself would lose (writes a real failover drops with the standby's \
                 replication lag, the script cache of a new primary) nor other clients",
            ),
            FaultKind::MemoryPressure { .. } => Some(
                "imitated through the agent's proxy: writes that find no room are refused with \
                 OOM and only keys the agent wrote through the proxy are evicted; it cannot show \
                 what the server itself would evict (keys written inside scripts, such as \
                 Dramatiq's broker keys, and other clients' keys) nor its memory accounting",
            ),
            FaultKind::IdleReap { .. } => Some(
                "imitated through the agent's proxy: the agent's own idle connections are \
                 closed as the server's `timeout` closes them; it cannot show the server's \
                 timeout on other clients",
            ),
            FaultKind::Failover { .. }
            | FaultKind::Kill { .. }
            | FaultKind::Pause
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
            | FaultKind::Partition
            | FaultKind::ReplicationLag { .. }
            | FaultKind::ReplicationPartition
            | FaultKind::ConsumerCrash { .. }
            | FaultKind::ConsumerStall { .. }
            | FaultKind::Switch { .. }
            | FaultKind::SwitchBack { .. }
            | FaultKind::Error { .. }
            | FaultKind::DropReply { .. }
            | FaultKind::CommandLatency { .. }
            | FaultKind::Flip { .. } => None,
        }
    }

    /// Needs a process the agent manages (the embedded topology).
    pub fn needs_process(&self) -> bool {
        match self {
            FaultKind::Kill { .. }
            | FaultKind::Pause
            | FaultKind::ReplicationLag { .. }
            | FaultKind::ReplicationPartition => true,
            FaultKind::Failover { .. }
            | FaultKind::Switch { .. }
            | FaultKind::SwitchBack { .. }
            | FaultKind::ConsumerCrash { .. }
            | FaultKind::ConsumerStall { .. }
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
            | FaultKind::Partition
            | FaultKind::Error { .. }
            | FaultKind::DropReply { .. }
            | FaultKind::CommandLatency { .. }
            | FaultKind::IdleReap { .. }
            | FaultKind::Flip { .. }
            | FaultKind::ProviderFailover { .. }
            | FaultKind::MemoryPressure { .. } => false,
        }
    }

    /// Has a window (heals after `duration`) rather than being a one-off event.
    pub fn windowed(&self) -> bool {
        match self {
            FaultKind::Failover { .. }
            | FaultKind::ClientKill
            | FaultKind::Kill { .. }
            | FaultKind::ConsumerCrash { .. }
            | FaultKind::Switch { .. }
            | FaultKind::SwitchBack { .. } => false,
            FaultKind::Pause
            | FaultKind::ClientPause { .. }
            | FaultKind::DebugSleep
            | FaultKind::Memory { .. }
            | FaultKind::IdleTimeout { .. }
            | FaultKind::ConsumerStall { .. }
            | FaultKind::Latency { .. }
            | FaultKind::Bandwidth { .. }
            | FaultKind::Reset
            | FaultKind::Blackhole
            | FaultKind::SlowClose { .. }
            | FaultKind::LimitData { .. }
            | FaultKind::Partition
            | FaultKind::ReplicationLag { .. }
            | FaultKind::ReplicationPartition
            | FaultKind::Error { .. }
            | FaultKind::DropReply { .. }
            | FaultKind::CommandLatency { .. }
            | FaultKind::IdleReap { .. }
            | FaultKind::Flip { .. }
            | FaultKind::ProviderFailover { .. }
            | FaultKind::MemoryPressure { .. } => true,
        }
    }

    /// A windowed fault that must be given a `duration` (memory and idle-timeout last until the
    /// end of the run without one).
    pub fn needs_duration(&self) -> bool {
        self.windowed()
            && !matches!(
                self,
                FaultKind::Memory { .. }
                    | FaultKind::IdleTimeout { .. }
                    | FaultKind::ConsumerStall { resume: false, .. }
                    | FaultKind::IdleReap { .. }
                    | FaultKind::Flip { .. }
                    | FaultKind::MemoryPressure { .. }
            )
    }

    /// May move the primary (so the timeline reports where it went).
    pub fn moves_primary(&self) -> bool {
        match self {
            FaultKind::Failover { .. }
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
            | FaultKind::LimitData { .. }
            | FaultKind::ReplicationLag { .. }
            | FaultKind::ReplicationPartition
            | FaultKind::ConsumerCrash { .. }
            | FaultKind::ConsumerStall { .. }
            | FaultKind::Switch { .. }
            | FaultKind::SwitchBack { .. }
            | FaultKind::Error { .. }
            | FaultKind::DropReply { .. }
            | FaultKind::CommandLatency { .. }
            | FaultKind::IdleReap { .. }
            | FaultKind::Flip { .. }
            | FaultKind::ProviderFailover { .. }
            | FaultKind::MemoryPressure { .. } => false,
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
            FaultKind::Failover { mode } => match mode {
                FailoverMode::Coordinated { sync_timeout } => vec![
                    ("mode", Text("coordinated".into())),
                    ("sync_timeout_seconds", Secs(sync_timeout.as_secs_f64())),
                ],
                FailoverMode::Forced => vec![("mode", Text("forced".into()))],
            },
            FaultKind::ReplicationLag { delay, jitter } => vec![
                ("delay_seconds", Secs(delay.as_secs_f64())),
                ("jitter_seconds", Secs(jitter.as_secs_f64())),
            ],
            FaultKind::ConsumerCrash {
                workload,
                consumer,
                restart_after,
            } => {
                let mut v = vec![
                    ("workload", Text(workload.clone())),
                    ("consumer", Int(*consumer as i64)),
                ];
                if let Some(r) = restart_after {
                    v.push(("restart_after_seconds", Secs(r.as_secs_f64())));
                }
                v
            }
            FaultKind::ConsumerStall {
                workload,
                consumer,
                resume,
            } => {
                let mut v = vec![("workload", Text(workload.clone()))];
                if let Some(c) = consumer {
                    v.push(("consumer", Int(*c as i64)));
                }
                v.push(("resume", Text(resume.to_string())));
                v
            }
            FaultKind::SwitchBack { max_pause } => {
                vec![("max_pause_seconds", Secs(max_pause.as_secs_f64()))]
            }
            FaultKind::Switch { procedure } => match procedure {
                SwitchProcedure::PauseAndDrain { max_pause } => vec![
                    ("procedure", Text("pause-and-drain".into())),
                    ("max_pause_seconds", Secs(max_pause.as_secs_f64())),
                ],
                SwitchProcedure::RepointOnly => vec![("procedure", Text("repoint-only".into()))],
                SwitchProcedure::Rolling(r) => vec![
                    ("procedure", Text("rolling".into())),
                    ("order", Text(r.order.name().into())),
                    ("stop_writes", Text(r.stop_writes.to_string())),
                    ("drain", Text(r.drain.to_string())),
                    ("groups", Int(r.groups.len() as i64)),
                    ("roll_seconds", Secs(r.length().as_secs_f64())),
                ],
            },
            FaultKind::Kill {
                restart_after: None,
            }
            | FaultKind::Pause
            | FaultKind::ReplicationPartition
            | FaultKind::ClientKill
            | FaultKind::DebugSleep
            | FaultKind::Reset
            | FaultKind::Blackhole
            | FaultKind::Partition => vec![],
            FaultKind::Error { .. }
            | FaultKind::DropReply { .. }
            | FaultKind::CommandLatency { .. }
            | FaultKind::IdleReap { .. }
            | FaultKind::Flip { .. }
            | FaultKind::ProviderFailover { .. }
            | FaultKind::MemoryPressure { .. } => self.protocol_params(),
        }
    }

    /// The parameters of a fault in the RESP proxy (none for the others).
    fn protocol_params(&self) -> Vec<(&'static str, ParamValue)> {
        use ParamValue::{Secs, Text};
        match self {
            FaultKind::Error { reply, filter } => {
                let mut v = vec![("reply", Text(reply.name().into()))];
                v.extend(filter_params(filter));
                v
            }
            FaultKind::DropReply { filter, then } => {
                let mut v = vec![("then", Text(then.name().into()))];
                v.extend(filter_params(filter));
                v
            }
            FaultKind::CommandLatency {
                delay,
                jitter,
                filter,
            } => {
                let mut v = vec![
                    ("delay_seconds", Secs(delay.as_secs_f64())),
                    ("jitter_seconds", Secs(jitter.as_secs_f64())),
                ];
                v.extend(filter_params(filter));
                v
            }
            FaultKind::IdleReap { timeout } => {
                vec![("timeout_seconds", Secs(timeout.as_secs_f64()))]
            }
            FaultKind::Flip { to } => vec![("to", Text(to.name().into()))],
            FaultKind::ProviderFailover { reply, flip } => {
                let mut v = vec![("reply", Text(reply.name().into()))];
                if let Some(f) = flip {
                    v.push(("flip", Text(f.name().into())));
                }
                v
            }
            FaultKind::MemoryPressure { policy, rate } => vec![
                ("policy", Text(policy.name().into())),
                ("rate", Secs(*rate)),
            ],
            FaultKind::Failover { .. }
            | FaultKind::Kill { .. }
            | FaultKind::Pause
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
            | FaultKind::Partition
            | FaultKind::ReplicationLag { .. }
            | FaultKind::ReplicationPartition
            | FaultKind::ConsumerCrash { .. }
            | FaultKind::ConsumerStall { .. }
            | FaultKind::Switch { .. }
            | FaultKind::SwitchBack { .. } => vec![],
        }
    }

    /// The commands this fault sends to the server (what a managed target may refuse).
    pub fn commands(&self) -> &'static [&'static str] {
        match self {
            FaultKind::Failover { .. } => &["SENTINEL", "FAILOVER", "CLIENT", "REPLICAOF"],
            FaultKind::ClientPause { .. } => &["CLIENT"],
            FaultKind::ClientKill => &["CLIENT"],
            FaultKind::DebugSleep => &["DEBUG"],
            FaultKind::Memory { .. } | FaultKind::IdleTimeout { .. } => &["CONFIG"],
            FaultKind::Switch { .. } | FaultKind::SwitchBack { .. } => &["CLIENT", "REPLICAOF"],
            FaultKind::Kill { .. }
            | FaultKind::Pause
            | FaultKind::Latency { .. }
            | FaultKind::Bandwidth { .. }
            | FaultKind::Reset
            | FaultKind::Blackhole
            | FaultKind::SlowClose { .. }
            | FaultKind::LimitData { .. }
            | FaultKind::Partition
            | FaultKind::ReplicationLag { .. }
            | FaultKind::ReplicationPartition
            | FaultKind::ConsumerCrash { .. }
            | FaultKind::ConsumerStall { .. }
            | FaultKind::Error { .. }
            | FaultKind::DropReply { .. }
            | FaultKind::CommandLatency { .. }
            | FaultKind::IdleReap { .. }
            | FaultKind::Flip { .. }
            | FaultKind::ProviderFailover { .. }
            | FaultKind::MemoryPressure { .. } => &[],
        }
    }

    /// Acts on a replica's replication link (the replica replicates through the agent's proxy).
    pub fn on_replication_link(&self, link: Link) -> bool {
        matches!(
            self,
            FaultKind::ReplicationLag { .. } | FaultKind::ReplicationPartition
        ) || (self.network() && link == Link::Replication)
    }
}

/// A command filter's parameters (those not at their default).
fn filter_params(f: &CommandFilter) -> Vec<(&'static str, ParamValue)> {
    let mut v = vec![];
    if !f.commands.is_empty() {
        v.push(("commands", ParamValue::Text(f.commands.join(","))));
    }
    if let Some(c) = f.class {
        v.push(("class", ParamValue::Text(c.name().into())));
    }
    if let Some(k) = &f.keys {
        v.push(("keys", ParamValue::Text(k.clone())));
    }
    if f.rate < 1.0 {
        v.push(("rate", ParamValue::Secs(f.rate)));
    }
    v
}

/// A fault parameter's value, typed for exporters.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    /// Seconds, or another fractional number (a rate) named by its key.
    Secs(f64),
    Text(String),
}

/// What the embedded topology needs for these faults.
pub fn topology_needs(faults: &[FaultPlan]) -> Topology {
    let mut t = Topology::default();
    for f in faults {
        if f.kind.on_replication_link(f.link) {
            t.replicas = t.replicas.max(1);
            t.replication_proxy = true;
        }
        // A flip to a node of the embedded topology needs that node.
        let flip = match &f.kind {
            FaultKind::Flip { to } => Some(to),
            FaultKind::ProviderFailover { flip, .. } => flip.as_ref(),
            _ => None,
        };
        if let Some(FlipTo::Node(_)) = flip {
            t.replicas = t.replicas.max(1);
        }
        match (&f.kind, &f.node) {
            (FaultKind::Failover { .. }, _)
            | (FaultKind::Kill { .. }, NodeSel::Primary)
            | (FaultKind::Partition, NodeSel::Primary)
            | (FaultKind::Pause, NodeSel::Primary) => {
                // Clients follow the primary through Sentinel, as a Sentinel-aware redis-py does.
                t.replicas = t.replicas.max(1);
                t.sentinels = t.sentinels.max(3);
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
