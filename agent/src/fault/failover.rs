//! Failovers. *Coordinated* (a planned failover, as the `FAILOVER` command and a provider's
//! maintenance do it): pause writes on the primary, give a replica up to `sync_timeout` to
//! receive everything, promote it (through Sentinel when there are sentinels), demote the old
//! primary and close its client connections so they reconnect to the new one, resume. *Forced*:
//! `SENTINEL FAILOVER` at once (or, without sentinels, promote the replica and demote the
//! primary at once) — what the replica has not received is lost.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::admin::admin_conn;
use super::env::FaultEnv;
use super::nodes::{resolve, sentinel_primary};
use crate::plan::fault::FailoverMode;
use crate::plan::NodeSel;
use crate::valkey::embedded::{parse_info, MASTER_NAME};
use crate::valkey::{Cmd, Target};

/// What a failover did, for the fault record.
pub(super) struct Done {
    /// What was hit, as reports show it.
    pub target: String,
    /// The primary whose writes are paused until the heal (coordinated mode).
    pub paused: Option<SocketAddr>,
    /// When another node was first seen as primary (named by the sentinels, or promoted here).
    pub promoted_at: Option<Instant>,
}

/// Replication offsets as the primary reports them: its own, and each online replica's.
async fn offsets(
    env: &FaultEnv,
    primary: SocketAddr,
) -> Result<(i64, Vec<(SocketAddr, i64)>), String> {
    let mut c = admin_conn(env, primary).await?;
    let v = c
        .request(&Cmd::new("INFO").arg("replication"))
        .await
        .map_err(|e| format!("INFO replication at {primary}: {}", e.msg))?;
    let text = v.as_str().unwrap_or("");
    let own: i64 = parse_info(text, "master_repl_offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut replicas = vec![];
    for i in 0..16 {
        let Some(line) = parse_info(text, &format!("slave{i}")) else {
            break;
        };
        let field = |k: &str| {
            line.split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .map(str::to_string)
        };
        if field("state").as_deref() != Some("online") {
            continue;
        }
        let (Some(ip), Some(port), Some(off)) = (field("ip"), field("port"), field("offset"))
        else {
            continue;
        };
        if let (Ok(a), Ok(o)) = (format!("{ip}:{port}").parse::<SocketAddr>(), off.parse()) {
            // The primary learns a replica's offset from its once-a-second acks: ask the
            // replica itself for what it has processed.
            let now: i64 = match admin_conn(env, a).await {
                Ok(mut rc) => rc
                    .request(&Cmd::new("INFO").arg("replication"))
                    .await
                    .ok()
                    .and_then(|v| {
                        v.as_str()
                            .and_then(|t| parse_info(t, "master_repl_offset"))
                            .and_then(|x| x.parse().ok())
                    })
                    .unwrap_or(o),
                Err(_) => o,
            };
            replicas.push((a, now));
        }
    }
    Ok((own, replicas))
}

/// Run a failover of the current primary.
pub(super) async fn run(env: &FaultEnv, mode: FailoverMode) -> Result<Done, String> {
    let (_, primary, pname) = resolve(env, &NodeSel::Primary).await?;
    let sentinels = match &*env.target.lock().await {
        Target::Embedded(topo) => topo.sentinels(),
        _ => vec![],
    };
    let mut detail = vec![];
    let mut paused = None;
    if let FailoverMode::Coordinated { sync_timeout } = mode {
        // Writes wait from here on; they resume on the new primary (their connections to the
        // old one are closed below) or, if anything fails, when the guard unpauses.
        let ms = (sync_timeout + Duration::from_secs(30)).as_millis() as u64;
        let mut c = admin_conn(env, primary).await?;
        c.request(&Cmd::new("CLIENT").arg("PAUSE").arg(ms).arg("WRITE"))
            .await
            .map_err(|e| format!("CLIENT PAUSE at {primary}: {}", e.msg))?;
        paused = Some(primary);
        let t0 = Instant::now();
        let (own, _) = offsets(env, primary).await?;
        let mut behind = i64::MAX;
        loop {
            let (_, replicas) = offsets(env, primary).await?;
            behind = replicas
                .iter()
                .map(|r| own - r.1)
                .min()
                .unwrap_or(behind)
                .max(0);
            if behind == 0 || t0.elapsed() >= sync_timeout {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        detail.push(if behind == 0 {
            format!(
                "coordinated: a replica had everything after {} ms",
                t0.elapsed().as_millis()
            )
        } else if behind == i64::MAX {
            "coordinated: no replica online, promoting anyway".to_string()
        } else {
            format!(
                "coordinated: the replica was still {behind} bytes behind after {} ms (sync_timeout): \
                 promoting anyway, what it had not received is lost",
                t0.elapsed().as_millis()
            )
        });
    } else {
        detail.push("forced".to_string());
    }
    let new_primary = if let Some(s) = sentinels.first() {
        let mut c = admin_conn(env, *s).await?;
        c.request(&Cmd::new("SENTINEL").arg("FAILOVER").arg(MASTER_NAME))
            .await
            .map_err(|e| format!("SENTINEL FAILOVER at {s}: {}", e.msg))?;
        // Wait (bounded) until the sentinels name another primary.
        let t0 = Instant::now();
        loop {
            match sentinel_primary(&sentinels).await {
                Some(p) if p != primary => break Some((p, Instant::now())),
                _ if t0.elapsed() > Duration::from_secs(20) => break None,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    } else {
        // No sentinels: promote the most advanced replica ourselves.
        let (_, replicas) = offsets(env, primary).await?;
        let best = replicas
            .iter()
            .max_by_key(|r| r.1)
            .map(|r| r.0)
            .ok_or("failover needs a replica")?;
        let mut c = admin_conn(env, best).await?;
        c.request(&Cmd::new("REPLICAOF").arg("NO").arg("ONE"))
            .await
            .map_err(|e| format!("REPLICAOF NO ONE at {best}: {}", e.msg))?;
        Some((best, Instant::now()))
    };
    let (new_primary, promoted_at) = new_primary.unzip();
    let demote = sentinels.is_empty() || matches!(mode, FailoverMode::Coordinated { .. });
    match new_primary {
        Some(np) if demote => {
            // Demote the old primary now and close its clients' connections: they reconnect
            // and find the new primary (with sentinels, Sentinel already names it).
            let mut c = admin_conn(env, primary).await?;
            c.request(
                &Cmd::new("REPLICAOF")
                    .arg(np.ip().to_string())
                    .arg(u64::from(np.port())),
            )
            .await
            .map_err(|e| format!("REPLICAOF at {primary}: {}", e.msg))?;
            c.request(&Cmd::new("CLIENT").arg("KILL").arg("TYPE").arg("normal"))
                .await
                .map_err(|e| format!("CLIENT KILL at {primary}: {}", e.msg))?;
            detail.push(format!("{np} promoted, {primary} demoted"));
        }
        Some(np) => detail.push(format!(
            "{np} promoted; {primary} keeps serving its connected clients until Sentinel demotes it"
        )),
        None => detail.push("the sentinels did not name a new primary within 20s".into()),
    }
    Ok(Done {
        target: format!("{pname}: {}", detail.join("; ")),
        paused,
        promoted_at,
    })
}
