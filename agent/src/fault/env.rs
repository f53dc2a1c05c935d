//! Before any load: every fault checked against the target (refusals name the fault, why, and
//! the way out), and the proxies network faults need started, with the route mapped through them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::proxy::{Proxy, RespOptions};
use super::replies::Engine;
use crate::control::Controls;
use crate::events::Events;
use crate::metrics::Timebase;
use crate::plan::fault::{Link, SwitchProcedure};
use crate::plan::provider::Provider;
use crate::plan::{FaultKind, Plan};
use crate::valkey::embedded::{self, NodeRole, Topology};
use crate::valkey::{Cmd, Conn, ConnectOptions, Route, Target};

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

/// A fault proxy: in front of a node for its clients, or on a replica's replication link.
pub(super) struct ProxyEntry {
    /// The node it serves (the node behind it, or the replica whose link it carries).
    pub node: String,
    /// Where it forwards to.
    pub real: SocketAddr,
    pub proxy: Proxy,
    pub link: Link,
}

/// What the switch did, for the fault record and the migration report.
#[derive(Debug, Clone)]
pub struct SwitchOutcome {
    pub procedure: SwitchProcedure,
    /// When the endpoint was repointed.
    pub at: Instant,
    /// How long writes on the source were paused (pause-and-drain).
    pub paused: Option<Duration>,
    /// Replication bytes the destination had not received when it was promoted.
    pub behind_bytes: Option<i64>,
    /// `NOSCRIPT` replies seen before the switch.
    pub noscript_before: u64,
    /// The team's steps, as they ran.
    pub steps: Vec<crate::summary::StepRecord>,
    /// What a rolling switch did, batch by batch.
    pub rolling: Option<super::rolled::RollingOutcome>,
}

/// A future a [`Handover`] returns.
pub type HandoverFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, String>> + Send + 'a>>;

/// The drain step of a rolling switch, handed in by the run (it is the `drain` command's mover):
/// remember what the old side holds when the copy stops, and after the roll move what Dramatiq
/// left there to the new side, skipping what the copy carried.
pub trait Handover: Send + Sync {
    /// Called at the stop, writes stopped: how many message ids the old side holds.
    fn remember(&self) -> HandoverFuture<'_, u64>;
    /// How many messages moved, and what the drain said.
    fn drain(&self) -> HandoverFuture<'_, (u64, String)>;
    /// Compare the source and the destination key by key (the way back's check).
    fn verify(&self) -> HandoverFuture<'_, crate::summary::MigrationVerify>;
}

/// What [`prepare`] set up before any load: the target, the proxies (running from now on), the
/// workloads' switches, how to reach a node as an admin, and the faults skipped with why.
pub struct Prepared {
    target: Arc<Mutex<Target>>,
    proxies: Vec<ProxyEntry>,
    pods: super::pods::Pods,
    copy_cost: Option<crate::summary::CopyCost>,
    migration: Option<crate::plan::migration::Migration>,
    controls: Controls,
    admin: ConnectOptions,
    skipped: Vec<(usize, String)>,
}

/// Everything the timeline needs to inject and heal, built when the run starts
/// ([`FaultEnv::new`]) from what was prepared and where the run records.
pub struct FaultEnv {
    pub(super) target: Arc<Mutex<Target>>,
    pub(super) proxies: Vec<ProxyEntry>,
    /// A rolling switch's pod proxies.
    pub(super) pods: super::pods::Pods,
    /// A rolling switch's drain step.
    pub(super) handover: Option<Arc<dyn Handover>>,
    /// The scenario's `[migration]`: who copies (the agent or a provider) and the team's steps.
    pub(super) migration: Option<crate::plan::migration::Migration>,
    /// The workloads' switches (consumer crashes).
    pub(super) controls: Controls,
    pub(super) admin: ConnectOptions,
    pub(super) skipped: Vec<(usize, String)>,
    /// The run's events: every injection, heal and primary change.
    pub(super) events: Events,
    /// Where phase boundaries are cut, exactly at every injection and heal.
    pub(super) timebase: Arc<Timebase>,
    /// What a migration's switch did (read by the run for its migration report).
    pub switch: std::sync::Mutex<Option<SwitchOutcome>>,
    /// What the way back did.
    pub switch_back: std::sync::Mutex<Option<super::rolled::SwitchBackOutcome>>,
}

impl FaultEnv {
    pub fn new(p: Prepared, events: Events, timebase: Arc<Timebase>) -> FaultEnv {
        FaultEnv {
            target: p.target,
            proxies: p.proxies,
            pods: p.pods,
            handover: None,
            migration: p.migration,
            controls: p.controls,
            admin: p.admin,
            skipped: p.skipped,
            events,
            timebase,
            switch: Default::default(),
            switch_back: Default::default(),
        }
    }

    /// Give a rolling switch its drain step.
    pub fn with_handover(mut self, h: Arc<dyn Handover>) -> FaultEnv {
        self.handover = Some(h);
        self
    }
}

impl Prepared {
    /// What the initial copy cost the source, when the agent started it.
    pub fn copy_cost(&self) -> Option<crate::summary::CopyCost> {
        self.copy_cost.clone()
    }

    /// Each pod's address map, when a rolling switch moves the clients pod by pod.
    pub fn pod_routes(&self) -> Option<Arc<crate::valkey::pod::PodRoutes>> {
        self.pods.routes.clone()
    }
}

/// Check every fault against the target (refusals name the fault and why) and start the proxies
/// network faults need, mapping the route through them.
pub async fn prepare(
    plan: &Plan,
    target: Arc<Mutex<Target>>,
    route: &mut Route,
    destructive: DestructivePolicy,
    controls: Controls,
    provider: Option<Provider>,
    skip_forbidden: bool,
) -> Result<Prepared, PrepareError> {
    let mut skipped = vec![];
    let t = target.lock().await;
    let (label, managed) = match &*t {
        Target::Embedded(_) => ("the embedded topology".to_string(), true),
        Target::External(u) => (u.to_string(), false),
        // The destination replicates through the agent's proxy: its link is the agent's to break.
        Target::Migration { .. } => (
            "the migration's source and destination".to_string(),
            plan.migration
                .as_ref()
                .is_some_and(|m| m.mode == crate::plan::migration::Mode::ReplicaOf),
        ),
    };
    check_placement(plan, &label, managed, destructive, &mut skipped)?;
    // Faults whose commands the target refuses: said before any load, with the way out.
    if let Target::External(u) = &*t {
        refused_commands(plan, u, route, &mut skipped, skip_forbidden, provider).await?;
    }
    let mut proxies = vec![];
    let mut pods = super::pods::Pods::default();
    let mut copy_cost = None;
    if let Target::Migration {
        source,
        destination,
    } = &*t
    {
        proxies.extend(migration_proxies(plan, source, destination, route, &mut copy_cost).await?);
        if let Some(src) = source.addr() {
            pods = super::pods::start(plan, src)
                .await
                .map_err(PrepareError::Runtime)?;
        }
        way_back(plan, source, destination, route).await?;
    }
    proxies.extend(client_proxies(plan, &t, route).await?);
    if plan.topology.replication_proxy {
        if let Target::Embedded(topo) = &*t {
            proxies.extend(replication_proxies(topo, &route.opts).await?);
        }
    }
    let admin = ConnectOptions {
        lib_info: None,
        ..route.opts.clone()
    };
    drop(t);
    Ok(Prepared {
        target,
        proxies,
        pods,
        copy_cost,
        migration: plan.migration.clone(),
        admin,
        skipped,
        controls,
    })
}

/// A `switch-back` whose old engine cannot load what the new one sends is refused before the
/// load, with the reason and the way out.
async fn way_back(
    plan: &Plan,
    source: &Target,
    destination: &Target,
    route: &Route,
) -> Result<(), PrepareError> {
    let Some(f) = plan
        .faults
        .iter()
        .find(|f| matches!(f.kind, FaultKind::SwitchBack { .. }))
    else {
        return Ok(());
    };
    let (Some(src), Some(dst)) = (source.addr(), destination.addr()) else {
        return Err(PrepareError::Runtime(
            "cannot resolve the migration's sides".into(),
        ));
    };
    let admin = ConnectOptions {
        lib_info: None,
        ..route.opts.clone()
    };
    match super::way_back::check(src, dst, &admin).await {
        Ok(_) => Ok(()),
        Err(why) => Err(PrepareError::Refused(format!(
            "refusing fault #{} {:?} (switch-back): the way back by replication is closed: {why}. \
             Rehearse it between engines that allow it (a Valkey source: `source = \"redis://…\"`), \
             or plan the rollback as a dump and restore and remove the switch-back \
             (docs/migration.md: The way back)",
            f.index, f.name
        ))),
    }
}

/// Refuse (or skip, under `--skip-destructive`) the faults this target does not allow: a
/// destructive fault on a server that is not the agent's, a fault that needs a process the agent
/// does not manage.
fn check_placement(
    plan: &Plan,
    label: &str,
    managed: bool,
    destructive: DestructivePolicy,
    skipped: &mut Vec<(usize, String)>,
) -> Result<(), PrepareError> {
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
                "fault #{} {:?} (type {}) needs a server process the agent manages, but the target is {label}; run it against the embedded topology (no --target){}",
                f.index,
                f.name,
                f.kind.type_name(),
                f.kind
                    .proxy_stand_in()
                    .map(|w| format!(", or on this target: {w}"))
                    .unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// The proxies on the clients' link, one per data node, when a network fault (or a protocol one,
/// which makes them speak RESP) needs them; the route then leads through them.
async fn client_proxies(
    plan: &Plan,
    t: &Target,
    route: &mut Route,
) -> Result<Vec<ProxyEntry>, PrepareError> {
    let protocol = plan.faults.iter().any(|f| f.kind.protocol());
    let needs_proxy =
        plan.faults.iter().any(|f| {
            (f.kind.network() && !f.kind.on_replication_link(f.link)) || f.kind.protocol()
        }) && plan.migration.is_none();
    if !needs_proxy {
        return Ok(vec![]);
    }
    let mut proxies = vec![];
    let nodes: Vec<(String, SocketAddr)> = match t {
        Target::Embedded(topo) => topo
            .data_nodes()
            .map(|n| (n.name.clone(), n.addr()))
            .collect(),
        Target::External(_) | Target::Migration { .. } => {
            let a = route.primary_addr().await.map_err(|e| {
                PrepareError::Runtime(format!(
                    "cannot resolve the target for the fault proxy: {}",
                    e.msg
                ))
            })?;
            vec![("target".to_string(), a)]
        }
    };
    // Protocol faults read the agent's commands: the proxy speaks RESP (and TLS to the
    // server), and the agent reaches it in clear text on loopback.
    let resp = match (protocol, nodes.first()) {
        (true, Some((_, first))) => Some(resp_options(plan, route, *first).await),
        _ => None,
    };
    for (name, real) in nodes {
        let started = match &resp {
            Some(o) => Proxy::start_resp(real, o.clone()).await,
            None => Proxy::start(real).await,
        };
        let p = started.map_err(|e| {
            PrepareError::Runtime(format!("cannot start the fault proxy for {name}: {e}"))
        })?;
        if resp.is_some() {
            route.via.insert_plain(real, p.listen);
        } else {
            route.via.insert(real, p.listen);
        }
        proxies.push(ProxyEntry {
            node: name,
            real,
            proxy: p,
            link: Link::Clients,
        });
    }
    Ok(proxies)
}

/// How the RESP proxies are set up: the target's TLS, whose error texts to speak (asked of the
/// server at `addr`: `HELLO`'s `server` and `INFO server`'s `server_name`; Valkey's when it cannot
/// be asked), whether memory pressure needs the agent's keys tracked, the plan's seed.
async fn resp_options(plan: &Plan, route: &Route, addr: SocketAddr) -> RespOptions {
    let admin = ConnectOptions {
        lib_info: None,
        ..route.opts.clone()
    };
    let engine = Engine::detect(addr, &admin).await;
    RespOptions {
        tls: route.opts.tls.clone(),
        engine,
        track_keys: plan
            .faults
            .iter()
            .any(|f| matches!(f.kind, FaultKind::MemoryPressure { .. })),
        seed: plan.seed,
    }
}

/// Put a proxy on every replica's link to its primary: the replica is told to replicate from
/// the proxy, and waits (bounded) until it is in sync again through it.
async fn replication_proxies(
    topo: &Topology,
    opts: &ConnectOptions,
) -> Result<Vec<ProxyEntry>, PrepareError> {
    let primary = topo.primary().addr();
    let admin = ConnectOptions {
        lib_info: None,
        ..opts.clone()
    };
    let mut out = vec![];
    for n in topo.data_nodes().filter(|n| n.role == NodeRole::Replica) {
        let p = Proxy::start(primary).await.map_err(|e| {
            PrepareError::Runtime(format!(
                "cannot start the replication proxy for {}: {e}",
                n.name
            ))
        })?;
        let fail = |what: &str, e: String| {
            PrepareError::Runtime(format!(
                "cannot route {}'s replication through the proxy ({what}): {e}",
                n.name
            ))
        };
        let mut c = Conn::connect(n.addr(), &admin)
            .await
            .map_err(|e| fail("connect", e.msg))?;
        c.request(
            &Cmd::new("REPLICAOF")
                .arg(p.listen.ip().to_string())
                .arg(u64::from(p.listen.port())),
        )
        .await
        .map_err(|e| fail("REPLICAOF", e.msg))?;
        let t0 = std::time::Instant::now();
        loop {
            let up = embedded::info_field(n.addr(), "replication", "master_link_status").await;
            let port = embedded::info_field(n.addr(), "replication", "master_port").await;
            if up.as_deref() == Some("up") && port == Some(p.listen.port().to_string()) {
                break;
            }
            if t0.elapsed() > std::time::Duration::from_secs(15) {
                return Err(fail(
                    "sync",
                    format!("the link through {} did not come up within 15s", p.listen),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        out.push(ProxyEntry {
            node: n.name.clone(),
            real: primary,
            proxy: p,
            link: Link::Replication,
        });
    }
    Ok(out)
}

/// A migration's proxies: the **endpoint** the workloads use ("the hostname in REDIS_URL"),
/// pointed at the source until the switch; and (mode `replicaof`) the destination's replication
/// link, through which it replicates the source — started, synced (bounded) and checked here.
async fn migration_proxies(
    plan: &Plan,
    source: &Target,
    destination: &Target,
    route: &mut Route,
    copy_cost: &mut Option<crate::summary::CopyCost>,
) -> Result<Vec<ProxyEntry>, PrepareError> {
    let rt = |m: String| PrepareError::Runtime(m);
    let src = source
        .addr()
        .ok_or_else(|| rt("cannot resolve the migration's source".into()))?;
    let dst = destination
        .addr()
        .ok_or_else(|| rt("cannot resolve the migration's destination".into()))?;
    let mut out = vec![];
    let endpoint = Proxy::start(src)
        .await
        .map_err(|e| rt(format!("cannot start the migration endpoint: {e}")))?;
    route.via.insert(src, endpoint.listen);
    out.push(ProxyEntry {
        node: "endpoint".into(),
        real: src,
        proxy: endpoint,
        link: Link::Clients,
    });
    let Some(m) = &plan.migration else {
        return Ok(out);
    };
    if m.mode != crate::plan::migration::Mode::ReplicaOf {
        return Ok(out);
    }
    let link = Proxy::start(src)
        .await
        .map_err(|e| rt(format!("cannot start the replication proxy: {e}")))?;
    let admin = ConnectOptions {
        lib_info: None,
        ..route.opts.clone()
    };
    let mut c = Conn::connect(dst, &admin)
        .await
        .map_err(|e| rt(format!("destination {dst} unreachable: {}", e.msg)))?;
    let cost = super::copy_cost::start(src, &admin).await;
    c.request(
        &Cmd::new("REPLICAOF")
            .arg(link.listen.ip().to_string())
            .arg(u64::from(link.listen.port())),
    )
    .await
    .map_err(|e| {
        rt(format!(
            "the destination {dst} refused REPLICAOF {} (a managed destination needs mode = \"external\"): {}",
            link.listen, e.msg
        ))
    })?;
    // The initial copy: link up and the destination's offset at the source's.
    let t0 = std::time::Instant::now();
    loop {
        let up = embedded::info_field(dst, "replication", "master_link_status").await;
        let src_off = embedded::info_field(src, "replication", "master_repl_offset").await;
        let dst_off = embedded::info_field(dst, "replication", "master_repl_offset").await;
        if up.as_deref() == Some("up") && src_off.is_some() && src_off == dst_off {
            break;
        }
        if t0.elapsed() > std::time::Duration::from_secs(60) {
            return Err(rt(format!(
                "the destination {dst} did not finish copying the source {src} within 60s \
                 (link {}, offsets {} / {})",
                up.unwrap_or_default(),
                src_off.unwrap_or_default(),
                dst_off.unwrap_or_default()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    *copy_cost = Some(cost.finish().await);
    out.push(ProxyEntry {
        node: "destination".into(),
        real: src,
        proxy: link,
        link: Link::Replication,
    });
    Ok(out)
}

/// Whether the target accepts a command, asked without side effects: `CONFIG GET`, `DEBUG
/// HELP`, `CLIENT INFO`; `None` when it cannot be asked that way (the provider's list decides).
async fn accepts(c: &mut Conn, command: &str) -> Option<Result<(), String>> {
    let probe = match command {
        "CONFIG" => Cmd::new("CONFIG").arg("GET").arg("maxmemory-policy"),
        "DEBUG" => Cmd::new("DEBUG").arg("HELP"),
        "CLIENT" => Cmd::new("CLIENT").arg("INFO"),
        _ => return None,
    };
    Some(match c.request(&probe).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_ambiguous() => Ok(()),
        Err(e) => {
            let m = e.msg.to_ascii_lowercase();
            if m.contains("unknown command")
                || m.contains("noperm")
                || m.contains("not allowed")
                || m.contains("disabled")
                || m.contains("unknown subcommand")
            {
                Err(e.msg)
            } else {
                Ok(())
            }
        }
    })
}

/// Refuse (or, with `--skip-forbidden`, skip) every fault a managed target will not let run:
/// its commands are refused by the server (asked without side effects) or on the provider's list.
async fn refused_commands(
    plan: &Plan,
    u: &crate::valkey::target::TargetUrl,
    route: &Route,
    skipped: &mut Vec<(usize, String)>,
    skip: bool,
    provider: Option<Provider>,
) -> Result<(), PrepareError> {
    let provider = provider.or_else(|| Provider::detect(&u.host));
    let mut conn = None;
    for f in &plan.faults {
        if skipped.iter().any(|s| s.0 == f.index) {
            continue;
        }
        for cmd in f.kind.commands() {
            let mut why = None;
            if let Some(p) = provider.filter(|p| p.forbids(cmd)) {
                why = Some(format!("{} refuses {cmd}", p.name()));
            } else {
                if conn.is_none() {
                    conn = route.connect().await.ok();
                }
                if let Some(c) = conn.as_mut() {
                    if let Some(Err(e)) = accepts(c, cmd).await {
                        why = Some(format!("the target refuses {cmd} ({e})"));
                    }
                }
            }
            let Some(why) = why else {
                continue;
            };
            let way_out: String = [
                provider.and_then(|p| p.way_out(cmd)),
                f.kind.proxy_stand_in(),
            ]
            .into_iter()
            .flatten()
            .map(|w| format!("{w}; "))
            .collect();
            let msg = format!(
                "fault #{} {:?} (type {}) needs {cmd}, but {why}: {way_out}remove the fault, or pass \
                 --skip-forbidden to run the rest",
                f.index,
                f.name,
                f.kind.type_name()
            );
            if skip {
                eprintln!("skipping: {msg}");
                skipped.push((
                    f.index,
                    format!("{why}: {way_out}skipped (--skip-forbidden)"),
                ));
                break;
            }
            return Err(PrepareError::Refused(msg));
        }
    }
    Ok(())
}
