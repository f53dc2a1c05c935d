//! Faults on a timeline: each occurrence waits for its time, injects, and returns a guard whose
//! heal runs at the fault's end, at the end of the run, on error and on Ctrl-C. Kinds:
//! topology (`failover`, `kill`, `pause`), server (`client-pause`, `client-kill`, `debug-sleep`,
//! `memory`, `idle-timeout`) and network through the proxy (`latency`, `bandwidth`, `reset`,
//! `blackhole`, `slow-close`, `limit-data`, `partition`).

pub mod proxy;

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Collector, LatencyStats};
use crate::plan::Plan;
use crate::run::events::{EventKind, Events};
use crate::run::Target;
use crate::scenario::reader::Obj;
use crate::summary::{FaultRecord, RunSummary, Unavailability};
use crate::valkey::embedded::{self, NodeRole, TopologySpec, MASTER_NAME};
use crate::valkey::{Cmd, Conn, ConnectOptions, Route};
use proxy::{Direction, Proxy, Toxics};

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

/// `maxmemory` for the memory fault: absolute, or what is used now plus a headroom.
#[derive(Debug, Clone, PartialEq)]
pub enum MemLimit {
    Bytes(u64),
    UsedPlus(u64),
}

const TYPES: &[&str] = &[
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
    /// Changes the server itself (needs the double opt-in on a non-local target).
    pub fn destructive(&self) -> bool {
        !self.network()
    }
    /// Works through the proxy only.
    pub fn network(&self) -> bool {
        matches!(
            self,
            FaultKind::Latency { .. }
                | FaultKind::Bandwidth { .. }
                | FaultKind::Reset
                | FaultKind::Blackhole
                | FaultKind::SlowClose { .. }
                | FaultKind::LimitData { .. }
                | FaultKind::Partition
        )
    }
    /// Needs a process the agent manages.
    pub fn needs_process(&self) -> bool {
        matches!(self, FaultKind::Kill { .. } | FaultKind::Pause)
    }
    /// Has a window (heals after `duration`) rather than being a one-off event.
    pub fn windowed(&self) -> bool {
        !matches!(
            self,
            FaultKind::Failover | FaultKind::ClientKill | FaultKind::Kill { .. }
        )
    }
}

fn parse_bytes(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, u) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    let m = match u.trim() {
        "" | "b" => 1,
        "kb" | "k" => 1024,
        "mb" | "m" => 1024 * 1024,
        "gb" | "g" => 1024 * 1024 * 1024,
        _ => return None,
    };
    Some(n * m)
}

fn read_dir(o: &Obj) -> Direction {
    match o
        .choice("direction", &["upstream", "downstream", "both"])
        .map(|s| s.value)
        .as_deref()
    {
        Some("upstream") => Direction::Upstream,
        Some("downstream") => Direction::Downstream,
        _ => Direction::Both,
    }
}

/// Read one `[[fault]]` table.
pub fn read(f: &Obj, index: usize) -> Option<FaultPlan> {
    let ty = f.choice("type", TYPES);
    if ty.is_none() && !f.has("type") {
        f.missing("type", Some(format!("one of: {}", TYPES.join(", "))));
    }
    let at = f.duration("at");
    if at.is_none() && !f.has("at") {
        f.missing(
            "at",
            Some("when the fault fires, from the run start: at = \"20s\"".into()),
        );
    }
    let duration = f.duration("duration").map(|d| d.value);
    let every = f.duration("every").map(|d| d.value);
    let name = f.str("name").map(|s| s.value);
    let node = match f.str("node") {
        None => NodeSel::Primary,
        Some(s) => match s.value.as_str() {
            "primary" => NodeSel::Primary,
            "replica" => NodeSel::Replica,
            "sentinel" => NodeSel::Sentinel,
            other => NodeSel::Named(other.to_string()),
        },
    };
    let restart_after = f.duration("restart_after").map(|d| d.value);
    let ty = ty?;
    let sub = |k: &'static str| f.table(k);
    let kind = match ty.value.as_str() {
        "failover" => FaultKind::Failover,
        "kill" => FaultKind::Kill { restart_after },
        "pause" => FaultKind::Pause,
        "client-pause" => {
            let all = sub("client-pause").map(|t| {
                let m = t
                    .choice("mode", &["write", "all"])
                    .map(|s| s.value == "all")
                    .unwrap_or(false);
                t.finish();
                m
            });
            FaultKind::ClientPause {
                all: all.unwrap_or(false),
            }
        }
        "client-kill" => FaultKind::ClientKill,
        "debug-sleep" => FaultKind::DebugSleep,
        "memory" => {
            let t = sub("memory");
            let Some(t) = t else {
                f.missing("memory", Some("add [fault.memory] with maxmemory = \"4mb\" (or headroom = \"1mb\") and policy = \"allkeys-lru\"".into()));
                return None;
            };
            let policies = [
                "allkeys-lru",
                "volatile-lru",
                "allkeys-lfu",
                "volatile-lfu",
                "allkeys-random",
                "volatile-random",
                "volatile-ttl",
                "noeviction",
            ];
            let policy = t
                .choice("policy", &policies)
                .map(|s| s.value)
                .unwrap_or_else(|| "noeviction".into());
            let mm = t.str("maxmemory");
            let hr = t.str("headroom");
            let limit = match (mm, hr) {
                (Some(m), None) => parse_bytes(&m.value).map(MemLimit::Bytes).or_else(|| {
                    t.ctx.error(
                        &m.span,
                        format!("maxmemory {:?} is not a size", m.value),
                        Some("e.g. \"64mb\"".into()),
                    );
                    None
                }),
                (None, Some(h)) => parse_bytes(&h.value).map(MemLimit::UsedPlus).or_else(|| {
                    t.ctx.error(
                        &h.span,
                        format!("headroom {:?} is not a size", h.value),
                        Some("e.g. \"1mb\"".into()),
                    );
                    None
                }),
                (Some(m), Some(_)) => {
                    t.ctx
                        .error(&m.span, "give `maxmemory` or `headroom`, not both", None);
                    None
                }
                (None, None) => {
                    t.missing("maxmemory", Some("maxmemory = \"4mb\", or headroom = \"1mb\" above what is used when the fault fires".into()));
                    None
                }
            };
            t.finish();
            FaultKind::Memory {
                maxmemory: limit?,
                policy,
            }
        }
        "idle-timeout" => {
            let t = sub("idle-timeout");
            let secs = t
                .as_ref()
                .and_then(|t| t.duration("timeout"))
                .map(|d| d.value.as_secs().max(1))
                .unwrap_or(1);
            if let Some(t) = t {
                t.finish();
            }
            FaultKind::IdleTimeout { seconds: secs }
        }
        "latency" => {
            let t = sub("latency");
            let (delay, jitter, direction) = match &t {
                Some(t) => (
                    t.duration("delay")
                        .map(|d| d.value)
                        .unwrap_or(Duration::from_millis(50)),
                    t.duration("jitter").map(|d| d.value).unwrap_or_default(),
                    read_dir(t),
                ),
                None => (Duration::from_millis(50), Duration::ZERO, Direction::Both),
            };
            if let Some(t) = t {
                t.finish();
            }
            FaultKind::Latency {
                delay,
                jitter,
                direction,
            }
        }
        "bandwidth" => {
            let t = sub("bandwidth");
            let mut rate = 64 * 1024;
            let mut direction = Direction::Both;
            if let Some(t) = t {
                if let Some(r) = t.str("rate") {
                    match parse_bytes(r.value.trim_end_matches("/s")) {
                        Some(b) if b > 0 => rate = b,
                        _ => t.ctx.error(
                            &r.span,
                            format!("rate {:?} is not a size per second", r.value),
                            Some("e.g. \"64kb/s\"".into()),
                        ),
                    }
                }
                direction = read_dir(&t);
                t.finish();
            }
            FaultKind::Bandwidth {
                bytes_per_sec: rate,
                direction,
            }
        }
        "reset" => FaultKind::Reset,
        "blackhole" => FaultKind::Blackhole,
        "slow-close" => {
            let t = sub("slow-close");
            let d = t
                .as_ref()
                .and_then(|t| t.duration("delay"))
                .map(|d| d.value)
                .unwrap_or(Duration::from_secs(1));
            if let Some(t) = t {
                t.finish();
            }
            FaultKind::SlowClose { delay: d }
        }
        "limit-data" => {
            let t = sub("limit-data");
            let b = t
                .as_ref()
                .and_then(|t| t.str("bytes"))
                .and_then(|s| parse_bytes(&s.value))
                .unwrap_or(64 * 1024);
            if let Some(t) = t {
                t.finish();
            }
            FaultKind::LimitData { bytes: b }
        }
        "partition" => FaultKind::Partition,
        _ => return None,
    };
    if kind.windowed()
        && !matches!(
            kind,
            FaultKind::Memory { .. } | FaultKind::IdleTimeout { .. }
        )
        && duration.is_none()
    {
        f.missing(
            "duration",
            Some(format!(
                "a {} fault lasts a while: duration = \"10s\"",
                kind.type_name()
            )),
        );
        return None;
    }
    if restart_after.is_some() && !matches!(kind, FaultKind::Kill { .. }) {
        f.ctx.error(
            &f.span,
            "`restart_after` only applies to type = \"kill\"",
            None,
        );
    }
    if let (Some(e), Some(d)) = (every, duration) {
        if e <= d {
            f.ctx.error(
                &f.span,
                format!("`every` ({e:?}) must be longer than `duration` ({d:?})"),
                Some("a repeated fault must heal before it fires again".into()),
            );
        }
    }
    Some(FaultPlan {
        index,
        name: name.unwrap_or_else(|| kind.type_name().to_string()),
        kind,
        at: at?.value,
        duration,
        every,
        node,
        span: f.span.clone(),
    })
}

/// What the embedded topology needs for these faults.
pub fn topology_needs(faults: &[FaultPlan]) -> TopologySpec {
    let mut t = TopologySpec::default();
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

/// Why fault set-up stopped the run before it began.
pub enum PrepareError {
    Refused(String),
    Runtime(String),
}

/// Everything the timeline needs to inject and heal.
pub struct FaultEnv {
    target: Arc<Mutex<Target>>,
    /// (node name, real address, proxy)
    proxies: Vec<(String, SocketAddr, Proxy)>,
    admin: ConnectOptions,
    skipped: Vec<(usize, String)>,
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
    destructive_ok: bool,
    skip_destructive: bool,
) -> Result<FaultEnv, PrepareError> {
    let mut skipped = vec![];
    let t = target.lock().await;
    let (label, managed) = match &*t {
        Target::Embedded(_) => ("the embedded topology".to_string(), true),
        Target::External(u) => (u.to_string(), false),
    };
    for f in &plan.faults {
        if f.kind.destructive() && !destructive_ok {
            if skip_destructive {
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
            if skip_destructive {
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

/// One occurrence of a fault in time.
struct Occurrence {
    plan: FaultPlan,
    at: Instant,
}

/// Start the timeline; the handle yields one record per occurrence once everything is healed.
pub fn spawn_timeline(
    plan: &Plan,
    env: FaultEnv,
    start: Instant,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<(Vec<FaultRecord>, Arc<FaultEnv>)> {
    let end = start + plan.duration;
    let mut occ = vec![];
    for f in &plan.faults {
        let mut at = f.at;
        loop {
            occ.push(Occurrence {
                plan: f.clone(),
                at: start + at,
            });
            match f.every {
                Some(e) if start + at + e < end => at += e,
                _ => break,
            }
        }
    }
    let env = Arc::new(env);
    tokio::spawn(async move {
        let mut handles = vec![];
        for o in occ {
            let env = env.clone();
            let cancel = cancel.clone();
            handles.push(tokio::spawn(async move {
                run_occurrence(o, env, start, end, cancel).await
            }));
        }
        let mut out = vec![];
        for h in handles {
            if let Ok(r) = h.await {
                out.push(r);
            }
        }
        out.sort_by(|a, b| {
            a.index.cmp(&b.index).then(
                a.injected_at_secs
                    .partial_cmp(&b.injected_at_secs)
                    .unwrap_or(std::cmp::Ordering::Equal),
            )
        });
        // The proxies carry workload traffic until the run is over (the oracles' drain included):
        // the environment goes back to the run, which drops it last.
        cancel.cancelled().await;
        (out, env)
    })
}

/// Seconds since the run start, unrounded: phase windows are compared with interval cuts.
fn rel(start: Instant, t: Instant) -> f64 {
    t.saturating_duration_since(start).as_secs_f64()
}

async fn run_occurrence(
    o: Occurrence,
    env: Arc<FaultEnv>,
    start: Instant,
    end: Instant,
    cancel: CancellationToken,
) -> FaultRecord {
    let f = &o.plan;
    let mut rec = FaultRecord {
        index: f.index,
        name: f.name.clone(),
        kind: f.kind.type_name().into(),
        target: String::new(),
        injected_at_secs: None,
        healed_at_secs: None,
        heal_error: None,
        skipped: env
            .skipped
            .iter()
            .find(|s| s.0 == f.index)
            .map(|s| s.1.clone()),
        unavailability: vec![],
        p99_recovery_secs: None,
        errors_during: 0,
    };
    if rec.skipped.is_some() {
        return rec;
    }
    tokio::select! {
        _ = tokio::time::sleep_until(o.at.into()) => {}
        _ = cancel.cancelled() => { rec.skipped = Some("the run ended before it was due".into()); return rec; }
    }
    let events = env.events.clone();
    let topology_fault = matches!(
        f.kind,
        FaultKind::Failover | FaultKind::Kill { .. } | FaultKind::Partition | FaultKind::Pause
    );
    let primary_before = if topology_fault {
        current_primary_name(&env).await
    } else {
        None
    };
    let guard = match inject(f, &env).await {
        Ok(g) => g,
        Err(e) => {
            rec.skipped = Some(format!("inject failed: {e}"));
            if let Some(ev) = &events {
                ev.push(
                    EventKind::Note,
                    format!("fault #{} {} could not be injected: {e}", f.index, f.name),
                );
            }
            return rec;
        }
    };
    rec.target = guard.target.clone();
    let injected = Instant::now();
    rec.injected_at_secs = Some(rel(start, injected));
    if let Some(c) = &env.cuts {
        let _ = c.send(injected);
    }
    if let Some(ev) = &events {
        ev.push(
            EventKind::FaultInjected,
            format!(
                "#{} {} ({}) on {}",
                f.index,
                f.name,
                f.kind.type_name(),
                guard.target
            ),
        );
    }
    // How long until the heal: the window, restart_after, or (one-off faults) right away.
    let hold = match &f.kind {
        FaultKind::Kill { restart_after } => *restart_after,
        FaultKind::DebugSleep => f.duration,
        k if k.windowed() => f.duration,
        _ => Some(Duration::ZERO),
    };
    match hold {
        Some(d) => {
            let until = (Instant::now() + d).min(end.max(Instant::now()));
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = cancel.cancelled() => {}
            }
        }
        // Heal at the end of the run (a kill with no restart_after).
        None => cancel.cancelled().await,
    }
    let r = guard.heal(&env).await;
    let healed = Instant::now();
    rec.healed_at_secs = Some(rel(start, healed));
    if let Some(c) = &env.cuts {
        let _ = c.send(healed);
    }
    match r {
        Ok(()) => {
            if let Some(ev) = &events {
                ev.push(
                    EventKind::FaultHealed,
                    format!("#{} {} healed", f.index, f.name),
                );
            }
        }
        Err(e) => {
            if let Some(ev) = &events {
                ev.push(
                    EventKind::HealFailed,
                    format!("#{} {}: {e}", f.index, f.name),
                );
            }
            rec.heal_error = Some(e);
        }
    }
    // After a topology fault, wait (bounded) for the primary to settle and say where it went.
    if topology_fault {
        if let Some(ev) = &events {
            let t0 = Instant::now();
            let mut now_primary = current_primary_name(&env).await;
            while now_primary == primary_before
                && t0.elapsed() < Duration::from_secs(15)
                && !matches!(f.kind, FaultKind::Partition | FaultKind::Pause)
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
                now_primary = current_primary_name(&env).await;
            }
            match (&primary_before, &now_primary) {
                (Some(a), Some(b)) if a != b => ev.push(
                    EventKind::PrimaryChanged,
                    format!(
                        "primary changed from {a} to {b} ({:.1}s after the heal)",
                        t0.elapsed().as_secs_f64()
                    ),
                ),
                (_, Some(b)) => ev.push(
                    EventKind::Note,
                    format!("primary is still {b} after #{} {}", f.index, f.name),
                ),
                _ => {}
            }
        }
    }
    rec
}

/// What has to be undone.
enum Undo {
    Nothing,
    Restart(usize),
    Continue(usize),
    Unpause(SocketAddr),
    Config(SocketAddr, Vec<(String, String)>),
    Proxy(usize, Toxics),
    /// Wait for a DEBUG SLEEP reply so the server is known to be back.
    Join(tokio::task::JoinHandle<()>),
}

struct Guard {
    target: String,
    undo: Undo,
}

impl Guard {
    async fn heal(self, env: &FaultEnv) -> Result<(), String> {
        match self.undo {
            Undo::Nothing => Ok(()),
            Undo::Restart(idx) => {
                let mut t = env.target.lock().await;
                match &mut *t {
                    Target::Embedded(topo) => topo.restart_node(idx).await,
                    Target::External(_) => Err("no managed process to restart".into()),
                }
            }
            Undo::Continue(idx) => {
                let t = env.target.lock().await;
                match &*t {
                    Target::Embedded(topo) => topo.signal_node(idx, libc::SIGCONT),
                    Target::External(_) => Err("no managed process".into()),
                }
            }
            Undo::Unpause(addr) => admin(env, addr, &[Cmd::new("CLIENT").arg("UNPAUSE")]).await,
            Undo::Config(addr, saved) => {
                let cmds: Vec<Cmd> = saved
                    .iter()
                    .map(|(k, v)| {
                        Cmd::new("CONFIG")
                            .arg("SET")
                            .arg(k.as_str())
                            .arg(v.as_str())
                    })
                    .collect();
                admin(env, addr, &cmds).await
            }
            Undo::Proxy(i, before) => {
                env.proxies[i].2.set(before);
                Ok(())
            }
            Undo::Join(h) => {
                let _ = tokio::time::timeout(Duration::from_secs(60), h).await;
                Ok(())
            }
        }
    }
}

async fn admin_conn(env: &FaultEnv, addr: SocketAddr) -> Result<Conn, String> {
    Conn::connect(addr, &env.admin).await.map_err(|e| e.msg)
}

async fn admin(env: &FaultEnv, addr: SocketAddr, cmds: &[Cmd]) -> Result<(), String> {
    let mut c = admin_conn(env, addr).await?;
    for cmd in cmds {
        c.request(cmd)
            .await
            .map_err(|e| format!("{} at {addr}: {}", cmd.name(), e.msg))?;
    }
    Ok(())
}

/// Node index (embedded) and address of the node a fault should hit, now.
async fn resolve(
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

async fn sentinel_primary(sentinels: &[SocketAddr]) -> Option<SocketAddr> {
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

async fn current_primary_name(env: &FaultEnv) -> Option<String> {
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

fn proxy_index(env: &FaultEnv, real: SocketAddr) -> Result<usize, String> {
    env.proxies
        .iter()
        .position(|p| p.1 == real)
        .ok_or_else(|| format!("no fault proxy in front of {real}"))
}

async fn inject(f: &FaultPlan, env: &FaultEnv) -> Result<Guard, String> {
    match &f.kind {
        FaultKind::Failover => {
            let t = env.target.lock().await;
            let sentinels = match &*t {
                Target::Embedded(topo) => topo.sentinels(),
                _ => vec![],
            };
            drop(t);
            if let Some(s) = sentinels.first() {
                admin(
                    env,
                    *s,
                    &[Cmd::new("SENTINEL").arg("FAILOVER").arg(MASTER_NAME)],
                )
                .await?;
                return Ok(Guard {
                    target: format!("sentinel {s}"),
                    undo: Undo::Nothing,
                });
            }
            let (_, addr, name) = resolve(env, &NodeSel::Primary).await?;
            let mut c = admin_conn(env, addr).await?;
            c.request(&Cmd::new("FAILOVER"))
                .await
                .map_err(|e| format!("FAILOVER at {addr}: {}", e.msg))?;
            Ok(Guard {
                target: name,
                undo: Undo::Nothing,
            })
        }
        FaultKind::Kill { .. } => {
            let (idx, _, name) = resolve(env, &f.node).await?;
            let idx = idx.ok_or("kill needs a managed node")?;
            let mut t = env.target.lock().await;
            if let Target::Embedded(topo) = &mut *t {
                topo.kill_node(idx);
            }
            Ok(Guard {
                target: name,
                undo: Undo::Restart(idx),
            })
        }
        FaultKind::Pause => {
            let (idx, _, name) = resolve(env, &f.node).await?;
            let idx = idx.ok_or("pause needs a managed node")?;
            let t = env.target.lock().await;
            if let Target::Embedded(topo) = &*t {
                topo.signal_node(idx, libc::SIGSTOP)?;
            }
            Ok(Guard {
                target: name,
                undo: Undo::Continue(idx),
            })
        }
        FaultKind::ClientPause { all } => {
            let (_, addr, name) = resolve(env, &f.node).await?;
            let ms = f.duration.unwrap_or(Duration::from_secs(5)).as_millis() as u64 + 1000;
            admin(
                env,
                addr,
                &[Cmd::new("CLIENT")
                    .arg("PAUSE")
                    .arg(ms)
                    .arg(if *all { "ALL" } else { "WRITE" })],
            )
            .await?;
            Ok(Guard {
                target: name,
                undo: Undo::Unpause(addr),
            })
        }
        FaultKind::ClientKill => {
            let (_, addr, name) = resolve(env, &f.node).await?;
            admin(
                env,
                addr,
                &[Cmd::new("CLIENT").arg("KILL").arg("TYPE").arg("normal")],
            )
            .await?;
            Ok(Guard {
                target: name,
                undo: Undo::Nothing,
            })
        }
        FaultKind::DebugSleep => {
            let (_, addr, name) = resolve(env, &f.node).await?;
            let secs = f.duration.unwrap_or(Duration::from_secs(1)).as_secs_f64();
            let mut c = admin_conn(env, addr).await?;
            c.set_timeout(Duration::from_secs_f64(secs + 30.0));
            let h = tokio::spawn(async move {
                let _ = c
                    .request(&Cmd::new("DEBUG").arg("SLEEP").arg(format!("{secs:.3}")))
                    .await;
            });
            Ok(Guard {
                target: name,
                undo: Undo::Join(h),
            })
        }
        FaultKind::Memory { maxmemory, policy } => {
            let (_, addr, name) = resolve(env, &f.node).await?;
            let mut c = admin_conn(env, addr).await?;
            let saved = config_get(&mut c, &["maxmemory", "maxmemory-policy"]).await?;
            let bytes = match maxmemory {
                MemLimit::Bytes(b) => *b,
                MemLimit::UsedPlus(h) => {
                    let info = c
                        .request(&Cmd::new("INFO").arg("memory"))
                        .await
                        .map_err(|e| e.msg)?;
                    let used: u64 = info
                        .as_str()
                        .and_then(|t| embedded::parse_info(t, "used_memory"))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    used + h
                }
            };
            for (k, v) in [
                ("maxmemory-policy", policy.clone()),
                ("maxmemory", bytes.to_string()),
            ] {
                c.request(&Cmd::new("CONFIG").arg("SET").arg(k).arg(v.as_str()))
                    .await
                    .map_err(|e| format!("CONFIG SET {k} at {addr}: {}", e.msg))?;
            }
            Ok(Guard {
                target: format!("{name} maxmemory={bytes} policy={policy}"),
                undo: Undo::Config(addr, saved),
            })
        }
        FaultKind::IdleTimeout { seconds } => {
            let (_, addr, name) = resolve(env, &f.node).await?;
            let mut c = admin_conn(env, addr).await?;
            let saved = config_get(&mut c, &["timeout"]).await?;
            c.request(&Cmd::new("CONFIG").arg("SET").arg("timeout").arg(*seconds))
                .await
                .map_err(|e| format!("CONFIG SET timeout at {addr}: {}", e.msg))?;
            Ok(Guard {
                target: format!("{name} timeout={seconds}s"),
                undo: Undo::Config(addr, saved),
            })
        }
        k => {
            let (_, addr, name) = resolve(env, &f.node).await?;
            let i = proxy_index(env, addr)?;
            let before = env.proxies[i].2.toxics();
            let mut t = before.clone();
            match k {
                FaultKind::Latency {
                    delay,
                    jitter,
                    direction,
                } => t.latency = Some((*delay, *jitter, *direction)),
                FaultKind::Bandwidth {
                    bytes_per_sec,
                    direction,
                } => t.bandwidth = Some((*bytes_per_sec, *direction)),
                FaultKind::Reset => t.reset = true,
                FaultKind::Blackhole => t.blackhole = true,
                FaultKind::SlowClose { delay } => t.slow_close = Some(*delay),
                FaultKind::LimitData { bytes } => t.limit_data = Some(*bytes),
                FaultKind::Partition => t.partition = true,
                _ => unreachable!("all server kinds handled above"),
            }
            env.proxies[i].2.set(t);
            Ok(Guard {
                target: format!("{name} via proxy {}", env.proxies[i].2.listen),
                undo: Undo::Proxy(i, before),
            })
        }
    }
}

async fn config_get(c: &mut Conn, keys: &[&str]) -> Result<Vec<(String, String)>, String> {
    let mut out = vec![];
    for k in keys {
        let v = c
            .request(&Cmd::new("CONFIG").arg("GET").arg(*k))
            .await
            .map_err(|e| format!("CONFIG GET {k}: {}", e.msg))?;
        let arr = v.into_array().unwrap_or_default();
        let val = arr
            .get(1)
            .and_then(|x| x.as_str())
            .ok_or_else(|| format!("CONFIG GET {k} gave no value"))?;
        out.push((k.to_string(), val.to_string()));
    }
    Ok(out)
}

/// Fill in per-fault unavailability windows, p99 recovery and error counts from the intervals.
pub fn analyse(s: &mut RunSummary, c: &Collector) {
    let secs = |d: Duration| d.as_secs_f64();
    for f in s.faults.iter_mut() {
        let Some(inj) = f.injected_at_secs else {
            continue;
        };
        let healed = f.healed_at_secs.unwrap_or(s.duration_secs);
        // Errors during the window (interval resolution).
        let mut errors = 0;
        for iv in &c.intervals {
            if secs(iv.end) > inj && secs(iv.start) < healed.max(inj + 0.001) {
                errors += iv
                    .ops
                    .iter()
                    .map(|o| o.errors.iter().sum::<u64>())
                    .sum::<u64>();
            }
        }
        f.errors_during = errors;
        // Unavailability per workload: first failing interval at or after injection → first interval with successes and no errors.
        for (wi, m) in c.workloads.iter().enumerate() {
            let mut first_err = None;
            let mut back = None;
            for iv in c.intervals.iter().filter(|iv| secs(iv.end) > inj) {
                let (ok, err) = iv
                    .ops
                    .iter()
                    .filter(|o| o.workload == wi)
                    .fold((0, 0), |a, o| {
                        (a.0 + o.ok, a.1 + o.errors.iter().sum::<u64>())
                    });
                if first_err.is_none() {
                    // Only errors that start while this fault is in place (plus a second of slack)
                    // are its own; later ones belong to whatever comes next.
                    if secs(iv.start) > healed + 1.0 {
                        break;
                    }
                    if err > 0 {
                        first_err = Some(secs(iv.start).max(inj));
                    }
                } else if ok > 0 && err == 0 {
                    back = Some(secs(iv.start));
                    break;
                }
            }
            if let Some(fe) = first_err {
                f.unavailability.push(Unavailability {
                    workload: m.id.clone(),
                    first_error_secs: fe,
                    recovered_secs: back,
                    window_secs: back.map(|b| ((b - fe) * 1000.0).round() / 1000.0),
                });
            }
        }
        // p99 recovery: baseline = p99 before injection; recovered at the first interval after the heal
        // from which the next three are all within 1.5x baseline + 1ms.
        let before = c.window(Duration::ZERO, Duration::from_secs_f64(inj));
        let base = before
            .iter()
            .flatten()
            .map(|o| LatencyStats::of(&o.corrected).p99)
            .max()
            .unwrap_or(0);
        if base == 0 {
            continue;
        }
        let limit = base as f64 * 1.5 + 1000.0;
        let after: Vec<_> = c
            .intervals
            .iter()
            .filter(|iv| secs(iv.start) >= healed)
            .collect();
        for (i, iv) in after.iter().enumerate() {
            let ok_here = |iv: &&crate::metrics::Interval| {
                iv.ops
                    .iter()
                    .all(|o| o.ok == 0 || (o.p99_us as f64) <= limit)
            };
            if after[i..].iter().take(3).all(ok_here) {
                f.p99_recovery_secs =
                    Some(((secs(iv.start) - healed).max(0.0) * 1000.0).round() / 1000.0);
                break;
            }
        }
    }
}
