//! The cutover of a migration rehearsal: the stable endpoint the workloads use is repointed from
//! the source to the destination. *pause-and-drain* is the documented procedure — stop writes,
//! let the destination receive everything, promote it, repoint, resume; *repoint-only* is the
//! hurried one — repoint while replication still runs, then stop it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::admin::admin_conn;
use super::env::FaultEnv;
use crate::plan::fault::SwitchProcedure;
use crate::valkey::embedded::parse_info;
use crate::valkey::{Cmd, Target};

pub use super::env::SwitchOutcome;

pub(super) struct Done {
    pub target: String,
    /// The source, whose writes stay paused until the heal.
    pub paused: Option<SocketAddr>,
}

async fn offset(env: &FaultEnv, addr: SocketAddr) -> Option<i64> {
    let mut c = admin_conn(env, addr).await.ok()?;
    let v = c.request(&Cmd::new("INFO").arg("replication")).await.ok()?;
    parse_info(v.as_str()?, "master_repl_offset")?.parse().ok()
}

pub(super) async fn run(env: &FaultEnv, procedure: SwitchProcedure) -> Result<Done, String> {
    let (src, dst) = match &*env.target.lock().await {
        Target::Migration {
            source,
            destination,
        } => (
            source.addr().ok_or("cannot resolve the source")?,
            destination.addr().ok_or("cannot resolve the destination")?,
        ),
        _ => return Err("a switch needs a [migration]".into()),
    };
    let endpoint = env
        .proxies
        .iter()
        .find(|p| p.node == "endpoint")
        .ok_or("the migration has no endpoint proxy")?;
    let promote = || async {
        let mut c = admin_conn(env, dst).await?;
        c.request(&Cmd::new("REPLICAOF").arg("NO").arg("ONE"))
            .await
            .map(|_| ())
            .map_err(|e| format!("REPLICAOF NO ONE at the destination {dst}: {}", e.msg))
    };
    let mut out = SwitchOutcome {
        procedure,
        at: Instant::now(),
        paused: None,
        behind_bytes: None,
        noscript_before: crate::valkey::client::NOSCRIPT_REPLIES
            .load(std::sync::atomic::Ordering::Relaxed),
    };
    let mut paused = None;
    let detail = match procedure {
        SwitchProcedure::PauseAndDrain { max_pause } => {
            let t0 = Instant::now();
            let ms = (max_pause + Duration::from_secs(30)).as_millis() as u64;
            let mut c = admin_conn(env, src).await?;
            c.request(&Cmd::new("CLIENT").arg("PAUSE").arg(ms).arg("WRITE"))
                .await
                .map_err(|e| format!("CLIENT PAUSE at the source {src}: {}", e.msg))?;
            paused = Some(src);
            let own = offset(env, src).await.unwrap_or(0);
            let mut behind = i64::MAX;
            while t0.elapsed() < max_pause {
                behind = own - offset(env, dst).await.unwrap_or(0);
                if behind <= 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            promote().await?;
            endpoint.proxy.repoint(dst);
            out.at = Instant::now();
            out.paused = Some(t0.elapsed());
            out.behind_bytes = Some(behind.max(0));
            if behind <= 0 {
                format!(
                    "pause-and-drain: the destination had everything; writes paused {} ms",
                    t0.elapsed().as_millis()
                )
            } else {
                format!(
                    "pause-and-drain: the destination was still {behind} bytes behind after \
                     max_pause ({} ms): switched anyway, what it had not received is lost",
                    max_pause.as_millis()
                )
            }
        }
        SwitchProcedure::RepointOnly => {
            let behind = match (offset(env, src).await, offset(env, dst).await) {
                (Some(a), Some(b)) => Some((a - b).max(0)),
                _ => None,
            };
            endpoint.proxy.repoint(dst);
            out.at = Instant::now();
            promote().await?;
            out.behind_bytes = behind;
            format!(
                "repoint-only: repointed while the destination was {} bytes behind; replication \
                 stopped after",
                behind.map(|b| b.to_string()).unwrap_or_else(|| "?".into())
            )
        }
    };
    *env.switch.lock().expect("switch lock") = Some(out);
    Ok(Done {
        target: format!("endpoint {} → {dst}: {detail}", endpoint.proxy.listen),
        paused,
    })
}
