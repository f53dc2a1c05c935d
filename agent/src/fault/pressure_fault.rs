//! Injecting memory pressure through the proxy: the toxic that refuses or makes room for the
//! agent's writes, and the evictor that deletes, on the server, the keys the proxy chose — keys
//! the agent itself wrote, never anything else — and says at the heal what it did.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::env::FaultEnv;
use super::nodes::{resp_proxy_for, via};
use super::pressure::Key;
use super::proxy::{Act, Pressure, RespToxic};
use crate::plan::protocol::Eviction;
use crate::plan::FaultPlan;
use crate::valkey::{Cmd, Conn, ConnectOptions, Value};

/// The evictor of one memory-pressure fault: its task and what it counted.
pub(super) struct Evictor {
    task: tokio::task::JoinHandle<()>,
    pressure: Arc<Pressure>,
    deleted: Arc<AtomicU64>,
    name: String,
}

impl Evictor {
    /// The toxic is off: let the evictor delete what it was given (bounded), and say what the
    /// fault did.
    pub(super) async fn finish(self) -> String {
        let Evictor {
            task,
            pressure,
            deleted,
            name,
        } = self;
        let (chosen, refused) = (
            pressure.evicted.load(Ordering::Relaxed),
            pressure.refused.load(Ordering::Relaxed),
        );
        // The evictor ends when the last sender (the toxic's and this one) is gone.
        drop(pressure);
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        format!(
            "{name}: {} of the agent's keys evicted ({chosen} chosen), {refused} writes refused \
             with OOM",
            deleted.load(Ordering::Relaxed)
        )
    }
}

/// Memory pressure on the proxy `f` acts on, with `policy`; `rate` of the agent's writes find
/// memory full. Returns the proxy, what was hit (for the report) and the evictor the heal ends.
pub(super) async fn inject(
    f: &FaultPlan,
    env: &FaultEnv,
    policy: Eviction,
    rate: f64,
) -> Result<(usize, String, Evictor), String> {
    let i = resp_proxy_for(f, env).await?;
    let p = &env.proxies[i];
    let (tx, rx) = mpsc::unbounded_channel();
    let pressure = Arc::new(Pressure {
        policy,
        rate,
        evict: tx,
        evicted: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    });
    let deleted = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(evict(rx, p.real, env.admin.clone(), deleted.clone()));
    p.proxy.add(RespToxic {
        id: f.index,
        act: Act::Pressure(pressure.clone()),
    });
    let target = format!(
        "{} policy={} ({} of the agent's keys known)",
        via(env, i),
        policy.name(),
        p.proxy.tracked_keys()
    );
    let evictor = Evictor {
        task,
        pressure,
        deleted,
        name: format!("fault #{} {}", f.index, f.name),
    };
    Ok((i, target, evictor))
}

/// Delete the keys the proxy chose, on a connection of its own to the server (`UNLINK`, in
/// batches, each in its database), counting those that were there.
async fn evict(
    mut rx: mpsc::UnboundedReceiver<Key>,
    addr: SocketAddr,
    opts: ConnectOptions,
    deleted: Arc<AtomicU64>,
) {
    let mut conn: Option<Conn> = None;
    let mut batch: Vec<Key> = Vec::with_capacity(128);
    while let Some(k) = rx.recv().await {
        batch.push(k);
        while batch.len() < 128 {
            match rx.try_recv() {
                Ok(k) => batch.push(k),
                Err(_) => break,
            }
        }
        if conn.as_ref().is_none_or(|c| c.is_broken()) {
            conn = Conn::connect(addr, &opts).await.ok();
        }
        let Some(c) = conn.as_mut() else {
            batch.clear();
            continue;
        };
        batch.sort_by_key(|k| k.0);
        let mut cmds = vec![];
        let mut db = None;
        for (d, key) in batch.drain(..) {
            if db != Some(d) {
                cmds.push(Cmd::new("SELECT").arg(u64::from(d)));
                db = Some(d);
            }
            cmds.push(Cmd::new("UNLINK").arg(key));
        }
        if let Ok(replies) = c.pipeline(&cmds).await {
            let n = replies
                .iter()
                .zip(&cmds)
                .filter(|(r, c)| c.name() == "UNLINK" && matches!(r, Ok(Value::Int(1))))
                .count();
            deleted.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}
