//! Injecting one fault and the guard that heals it: each kind's inject and its undo.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::admin::{admin, admin_conn};
use super::env::FaultEnv;
use super::nodes::{proxy_for, resolve, resp_proxy_for, via};
use super::proxy::{Act, RespToxic, Toxics};
use crate::plan::fault::{Link, MemLimit};
use crate::plan::protocol::{ErrorCode, FlipTo};
use crate::plan::{FaultKind, FaultPlan, NodeSel};
use crate::valkey::embedded;
use crate::valkey::{Cmd, Conn, Target};

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
    /// A crashed consumer comes back as a new worker.
    Revive(std::sync::Arc<crate::control::ConsumerSwitch>, u32),
    /// Stalled consumers fetch again.
    Unstall(std::sync::Arc<crate::control::ConsumerSwitch>, Option<u32>),
    /// Take a fault's RESP toxics off proxy `.0`; then (a flip) send new connections to `.2`.
    Resp(usize, usize, Option<SocketAddr>),
    /// Memory pressure: its toxic off, then the evictor finishes and says what it did.
    Pressure(usize, usize, super::pressure_fault::Evictor),
}

pub(super) struct Guard {
    /// What was hit, as reports show it.
    pub(super) target: String,
    /// When the fault itself saw another node become primary (a failover waits for it).
    pub(super) promoted_at: Option<Instant>,
    undo: Undo,
}

impl Guard {
    fn new(target: String, undo: Undo) -> Guard {
        Guard {
            target,
            promoted_at: None,
            undo,
        }
    }

    pub(super) async fn heal(self, env: &FaultEnv) -> Result<(), String> {
        match self.undo {
            Undo::Nothing => Ok(()),
            Undo::Restart(idx) => {
                let mut t = env.target.lock().await;
                match &mut *t {
                    Target::Embedded(topo) => topo.restart_node(idx).await,
                    _ => Err("no managed process to restart".into()),
                }
            }
            Undo::Continue(idx) => {
                let t = env.target.lock().await;
                match &*t {
                    Target::Embedded(topo) => topo.signal_node(idx, libc::SIGCONT),
                    _ => Err("no managed process".into()),
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
                env.proxies[i].proxy.set(before);
                Ok(())
            }
            Undo::Revive(sw, i) => sw.revive(i),
            Undo::Unstall(sw, i) => sw.set_stalled(i, false).map(|_| ()),
            Undo::Join(h) => {
                let _ = tokio::time::timeout(Duration::from_secs(60), h).await;
                Ok(())
            }
            Undo::Resp(i, id, flip) => {
                let p = &env.proxies[i].proxy;
                p.remove(id);
                if let Some(to) = flip {
                    p.repoint(to);
                }
                Ok(())
            }
            Undo::Pressure(i, id, evictor) => {
                env.proxies[i].proxy.remove(id);
                let what = evictor.finish().await;
                env.events.push(crate::events::EventKind::Note, what);
                Ok(())
            }
        }
    }
}

pub(super) async fn inject(f: &FaultPlan, env: &FaultEnv) -> Result<Guard, String> {
    match &f.kind {
        FaultKind::Failover { mode } => {
            let done = super::failover::run(env, *mode).await?;
            let undo = done.paused.map_or(Undo::Nothing, Undo::Unpause);
            Ok(Guard {
                promoted_at: done.promoted_at,
                ..Guard::new(done.target, undo)
            })
        }
        FaultKind::Kill { .. } => kill(f, env).await,
        FaultKind::Pause => pause(f, env).await,
        FaultKind::ClientPause { all } => client_pause(f, env, *all).await,
        FaultKind::ClientKill => {
            let (_, addr, name) = resolve(env, &f.node).await?;
            admin(
                env,
                addr,
                &[Cmd::new("CLIENT").arg("KILL").arg("TYPE").arg("normal")],
            )
            .await?;
            Ok(Guard::new(name, Undo::Nothing))
        }
        FaultKind::DebugSleep => debug_sleep(f, env).await,
        FaultKind::Memory { maxmemory, policy } => memory(f, env, maxmemory, policy).await,
        FaultKind::IdleTimeout { seconds } => idle_timeout(f, env, *seconds).await,
        FaultKind::Switch { procedure } => {
            let done = super::switch::run(env, procedure).await?;
            let undo = done.paused.map_or(Undo::Nothing, Undo::Unpause);
            Ok(Guard::new(done.target, undo))
        }
        FaultKind::SwitchBack { max_pause } => {
            let said = super::switch_back::run(env, *max_pause).await?;
            Ok(Guard::new(said, Undo::Nothing))
        }
        FaultKind::ConsumerCrash {
            workload,
            consumer,
            restart_after,
        } => consumer_crash(env, workload, *consumer, restart_after.is_some()),
        FaultKind::ConsumerStall {
            workload,
            consumer,
            resume,
        } => consumer_stall(env, workload, *consumer, *resume),
        FaultKind::Latency {
            delay,
            jitter,
            direction,
        } => toxic(f, env, |t| t.latency = Some((*delay, *jitter, *direction))).await,
        FaultKind::Bandwidth {
            bytes_per_sec,
            direction,
        } => toxic(f, env, |t| t.bandwidth = Some((*bytes_per_sec, *direction))).await,
        FaultKind::Reset => toxic(f, env, |t| t.reset = true).await,
        FaultKind::Blackhole => toxic(f, env, |t| t.blackhole = true).await,
        FaultKind::SlowClose { delay } => toxic(f, env, |t| t.slow_close = Some(*delay)).await,
        FaultKind::LimitData { bytes } => toxic(f, env, |t| t.limit_data = Some(*bytes)).await,
        FaultKind::Partition | FaultKind::ReplicationPartition => {
            toxic(f, env, |t| t.partition = true).await
        }
        FaultKind::Error { reply, filter } => {
            let text = engine_reply(env, f, *reply).await?;
            resp_toxic(f, env, |_| Act::Error {
                code: *reply,
                filter: filter.clone(),
                reply: text,
            })
            .await
        }
        FaultKind::DropReply { filter, then } => {
            resp_toxic(f, env, |_| Act::DropReply {
                filter: filter.clone(),
                then: *then,
            })
            .await
        }
        FaultKind::CommandLatency {
            delay,
            jitter,
            filter,
        } => {
            resp_toxic(f, env, |_| Act::Latency {
                filter: filter.clone(),
                delay: *delay,
                jitter: *jitter,
            })
            .await
        }
        FaultKind::IdleReap { timeout } => resp_toxic(f, env, |_| Act::IdleReap(*timeout)).await,
        FaultKind::Flip { to } => flip(f, env, to).await,
        FaultKind::ProviderFailover { reply, flip } => {
            provider_failover(f, env, *reply, flip.as_ref()).await
        }
        FaultKind::MemoryPressure { policy, rate } => {
            let (i, target, evictor) =
                super::pressure_fault::inject(f, env, *policy, *rate).await?;
            Ok(Guard::new(target, Undo::Pressure(i, f.index, evictor)))
        }
        FaultKind::ReplicationLag { delay, jitter } => {
            // Replication flows downstream (primary → replica) on the replica's link.
            toxic(f, env, |t| {
                t.latency = Some((*delay, *jitter, crate::plan::fault::Direction::Downstream))
            })
            .await
        }
    }
}

/// SIGKILL a managed node; the heal restarts it.
async fn kill(f: &FaultPlan, env: &FaultEnv) -> Result<Guard, String> {
    let (idx, _, name) = resolve(env, &f.node).await?;
    let idx = idx.ok_or("kill needs a managed node")?;
    let mut t = env.target.lock().await;
    if let Target::Embedded(topo) = &mut *t {
        topo.kill_node(idx);
    }
    Ok(Guard::new(name, Undo::Restart(idx)))
}

/// SIGSTOP a managed node; the heal continues it.
async fn pause(f: &FaultPlan, env: &FaultEnv) -> Result<Guard, String> {
    let (idx, _, name) = resolve(env, &f.node).await?;
    let idx = idx.ok_or("pause needs a managed node")?;
    let t = env.target.lock().await;
    if let Target::Embedded(topo) = &*t {
        topo.signal_node(idx, libc::SIGSTOP)?;
    }
    Ok(Guard::new(name, Undo::Continue(idx)))
}

/// `CLIENT PAUSE` writes (or all commands); the heal unpauses.
async fn client_pause(f: &FaultPlan, env: &FaultEnv, all: bool) -> Result<Guard, String> {
    let (_, addr, name) = resolve(env, &f.node).await?;
    // `WRITE`: a second longer than the fault, so the heal's CLIENT UNPAUSE ends it on the
    // timeline. `ALL` pauses every client's commands, CLIENT UNPAUSE included (it would
    // wait the pause out): the server's own timeout must end it, so it is exactly the
    // fault's duration, and the heal's UNPAUSE returns when it has.
    let d = f.duration.unwrap_or(Duration::from_secs(5)).as_millis() as u64;
    let ms = if all { d.max(1) } else { d + 1000 };
    admin(
        env,
        addr,
        &[Cmd::new("CLIENT")
            .arg("PAUSE")
            .arg(ms)
            .arg(if all { "ALL" } else { "WRITE" })],
    )
    .await?;
    Ok(Guard::new(name, Undo::Unpause(addr)))
}

/// `DEBUG SLEEP` for the fault's duration on a connection of its own; the heal waits for the
/// reply, so the server is known to be back.
async fn debug_sleep(f: &FaultPlan, env: &FaultEnv) -> Result<Guard, String> {
    let (_, addr, name) = resolve(env, &f.node).await?;
    let secs = f.duration.unwrap_or(Duration::from_secs(1)).as_secs_f64();
    let mut c = admin_conn(env, addr).await?;
    c.set_timeout(Duration::from_secs_f64(secs + 30.0));
    let h = tokio::spawn(async move {
        let _ = c
            .request(&Cmd::new("DEBUG").arg("SLEEP").arg(format!("{secs:.3}")))
            .await;
    });
    Ok(Guard::new(name, Undo::Join(h)))
}

/// Lower `maxmemory` (to a size, or to what is used plus a headroom) with an eviction policy;
/// the heal puts both settings back.
async fn memory(
    f: &FaultPlan,
    env: &FaultEnv,
    maxmemory: &MemLimit,
    policy: &str,
) -> Result<Guard, String> {
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
        ("maxmemory-policy", policy.to_string()),
        ("maxmemory", bytes.to_string()),
    ] {
        c.request(&Cmd::new("CONFIG").arg("SET").arg(k).arg(v.as_str()))
            .await
            .map_err(|e| format!("CONFIG SET {k} at {addr}: {}", e.msg))?;
    }
    Ok(Guard::new(
        format!("{name} maxmemory={bytes} policy={policy}"),
        Undo::Config(addr, saved),
    ))
}

/// Set the server's idle-client `timeout`; the heal puts it back.
async fn idle_timeout(f: &FaultPlan, env: &FaultEnv, seconds: u64) -> Result<Guard, String> {
    let (_, addr, name) = resolve(env, &f.node).await?;
    let mut c = admin_conn(env, addr).await?;
    let saved = config_get(&mut c, &["timeout"]).await?;
    c.request(&Cmd::new("CONFIG").arg("SET").arg("timeout").arg(seconds))
        .await
        .map_err(|e| format!("CONFIG SET timeout at {addr}: {}", e.msg))?;
    Ok(Guard::new(
        format!("{name} timeout={seconds}s"),
        Undo::Config(addr, saved),
    ))
}

/// Crash one consumer of a dramatiq workload; it comes back at the heal when it `restarts`.
fn consumer_crash(
    env: &FaultEnv,
    workload: &str,
    consumer: u32,
    restarts: bool,
) -> Result<Guard, String> {
    let sw = env
        .controls
        .consumers(workload)
        .ok_or_else(|| format!("no dramatiq workload {workload:?} with consumers"))?;
    let what = sw.crash(consumer)?;
    Ok(Guard::new(
        format!("{workload}: {what}"),
        if restarts {
            Undo::Revive(sw, consumer)
        } else {
            Undo::Nothing
        },
    ))
}

/// Stall consumers: they keep heart-beating and stop fetching until the heal (unless they are
/// not to resume: the planted bug).
fn consumer_stall(
    env: &FaultEnv,
    workload: &str,
    consumer: Option<u32>,
    resume: bool,
) -> Result<Guard, String> {
    let sw = env
        .controls
        .consumers(workload)
        .ok_or_else(|| format!("no dramatiq workload {workload:?} with consumers"))?;
    let what = sw.set_stalled(consumer, true)?;
    Ok(Guard::new(
        format!("{workload}: {what}"),
        if resume {
            Undo::Unstall(sw, consumer)
        } else {
            Undo::Nothing
        },
    ))
}

/// Set a toxic on the proxy this fault acts on (the node's client proxy, or a replica's
/// replication link); the guard puts the previous toxics back.
async fn toxic(
    f: &FaultPlan,
    env: &FaultEnv,
    set: impl FnOnce(&mut Toxics),
) -> Result<Guard, String> {
    let i = proxy_for(env, f).await?;
    let p = &env.proxies[i];
    let before = p.proxy.toxics();
    let mut t = before.clone();
    set(&mut t);
    p.proxy.set(t);
    let via = match p.link {
        Link::Clients => format!("{} via proxy {}", p.node, p.proxy.listen),
        Link::Replication => format!(
            "{}'s replication link via proxy {} → {}",
            p.node, p.proxy.listen, p.real
        ),
    };
    Ok(Guard::new(via, Undo::Proxy(i, before)))
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

/// The error reply `code` of the engine behind `f`'s proxy, as the wire carries it.
async fn engine_reply(
    env: &FaultEnv,
    f: &FaultPlan,
    code: ErrorCode,
) -> Result<std::sync::Arc<[u8]>, String> {
    let i = resp_proxy_for(f, env).await?;
    Ok(env.proxies[i].proxy.error_reply(code))
}

/// Put a RESP toxic on the proxy `f` acts on; the guard takes it off.
async fn resp_toxic(
    f: &FaultPlan,
    env: &FaultEnv,
    act: impl FnOnce(usize) -> Act,
) -> Result<Guard, String> {
    let i = resp_proxy_for(f, env).await?;
    env.proxies[i].proxy.add(RespToxic {
        id: f.index,
        act: act(i),
    });
    Ok(Guard::new(via(env, i), Undo::Resp(i, f.index, None)))
}

/// The address a flip leads to: a node of the embedded topology, or `host:port`.
async fn flip_addr(env: &FaultEnv, to: &FlipTo) -> Result<SocketAddr, String> {
    match to {
        FlipTo::Node(n) => {
            let sel = match n.as_str() {
                "replica" => NodeSel::Replica,
                "primary" => NodeSel::Primary,
                other => NodeSel::Named(other.to_string()),
            };
            resolve(env, &sel).await.map(|(_, a, _)| a)
        }
        FlipTo::Addr(hp) => tokio::net::lookup_host(hp.as_str())
            .await
            .map_err(|e| format!("cannot resolve {hp}: {e}"))?
            .next()
            .ok_or_else(|| format!("{hp} resolves to no address")),
    }
}

/// The endpoint now leads to `to`: new connections go there, live ones are closed; the heal
/// points it back.
async fn flip(f: &FaultPlan, env: &FaultEnv, to: &FlipTo) -> Result<Guard, String> {
    let i = proxy_for(env, f).await?;
    let addr = flip_addr(env, to).await?;
    let p = &env.proxies[i].proxy;
    let back = p.upstream();
    p.repoint(addr);
    Ok(Guard::new(
        format!("{} now leading to {} ({addr})", via(env, i), to.name()),
        Undo::Resp(i, f.index, Some(back)),
    ))
}

/// A provider's failover as the agent's clients see it: every connection reset, then `reply`
/// for the fault's window (`LOADING` to every command a loading server refuses, `READONLY` to
/// writes); at the heal service resumes, from `flip` when given.
async fn provider_failover(
    f: &FaultPlan,
    env: &FaultEnv,
    reply: ErrorCode,
    flip: Option<&FlipTo>,
) -> Result<Guard, String> {
    let i = resp_proxy_for(f, env).await?;
    let to = match flip {
        Some(t) => Some(flip_addr(env, t).await?),
        None => None,
    };
    let text = engine_reply(env, f, reply).await?;
    let p = &env.proxies[i].proxy;
    p.add(RespToxic {
        id: f.index,
        act: Act::Error {
            code: reply,
            filter: Default::default(),
            reply: text,
        },
    });
    p.drop_connections();
    let then = match (flip, to) {
        (Some(t), Some(a)) => format!("then {} ({a})", t.name()),
        _ => "then the same endpoint".into(),
    };
    Ok(Guard::new(
        format!(
            "{}: connections reset, {} {then}",
            via(env, i),
            reply.name()
        ),
        Undo::Resp(i, f.index, to),
    ))
}
