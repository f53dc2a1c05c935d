//! The first steps of a run: which server it is pointed at (a URL, or a topology of our own
//! started on free loopback ports), what may be done to it (the destructive policy), and whether
//! it answers at all.

use crate::fault::DestructivePolicy;
use crate::plan::Plan;
use crate::summary::ServerInfo;
use crate::valkey::embedded::{self, Topology, TopologySpec};
use crate::valkey::target::TargetUrl;
use crate::valkey::{Cmd, ConnectOptions, Endpoint, Route, Target};

use super::migration::Rehearsal;
use super::options::{RunError, RunOptions, TargetChoice};

/// A target, resolved.
pub struct Resolved {
    pub target: Target,
    /// How workloads reach the primary (before fault proxies are put in between).
    pub route: Route,
    /// The target as shown in reports (no password).
    pub label: String,
    pub policy: DestructivePolicy,
    /// Host and port of the primary, for `server.address` in traces.
    pub server_addr: (String, u16),
    /// A rehearsal's source and destination.
    pub migration: Option<Rehearsal>,
}

/// The URL a run uses: `--target`, then the scenario's `[target].url`, then `REDIS_URL`; `None`
/// means the embedded topology.
pub fn pick_url(plan: &Plan, choice: &TargetChoice) -> Option<String> {
    match choice {
        TargetChoice::Url(u) => Some(u.clone()),
        TargetChoice::Embedded => None,
        TargetChoice::Auto => plan
            .target_url
            .clone()
            .or_else(|| std::env::var("REDIS_URL").ok().filter(|s| !s.is_empty())),
    }
}

/// Resolve the target: parse the URL (or start the embedded topology the plan needs) and decide
/// what faults may do to it.
pub async fn resolve(plan: &Plan, opts: &RunOptions) -> Result<Resolved, RunError> {
    let timeout = plan.request_timeout;
    if let Some(m) = &plan.migration {
        let s = super::migration::sides(m, opts, timeout).await?;
        let loopback = s.source.ip().is_loopback() && s.destination.ip().is_loopback();
        let policy = if loopback || (plan.allow_destructive && opts.allow_destructive) {
            DestructivePolicy::Allowed
        } else if opts.skip_destructive {
            DestructivePolicy::Skip
        } else {
            DestructivePolicy::Refuse
        };
        return Ok(Resolved {
            route: Route::direct(s.source.to_string(), s.source_opts.clone()),
            label: s.label.clone(),
            server_addr: (s.source.ip().to_string(), s.source.port()),
            policy,
            migration: Some(Rehearsal {
                source: s.source,
                destination: s.destination,
                source_url: s.source_url,
                destination_url: s.destination_url,
                source_opts: s.source_opts,
                copy_cost: None,
            }),
            target: s.target,
        });
    }
    match pick_url(plan, &opts.target) {
        Some(u) => {
            let mut t = TargetUrl::parse(&u).map_err(RunError::Refused)?;
            if t.password.is_none() {
                t.password = opts.password.clone();
            }
            let co = t
                .connect_options(&opts.tls, timeout)
                .map_err(RunError::Refused)?;
            let policy = if t.is_loopback() || (plan.allow_destructive && opts.allow_destructive) {
                DestructivePolicy::Allowed
            } else if opts.skip_destructive {
                DestructivePolicy::Skip
            } else {
                DestructivePolicy::Refuse
            };
            Ok(Resolved {
                route: Route::direct(t.host_port(), co),
                label: t.to_string(),
                server_addr: (t.host.clone(), t.port),
                target: Target::External(t),
                policy,
                migration: None,
            })
        }
        None => {
            let bin = embedded::locate_valkey(opts.valkey_server.as_deref())
                .map_err(RunError::Runtime)?;
            let spec = TopologySpec {
                replicas: plan.topology.replicas,
                sentinels: plan.topology.sentinels,
                replication_proxy: plan.topology.replication_proxy,
            };
            let extra: Vec<&str> = opts.server_args.iter().map(String::as_str).collect();
            let topo = Topology::start_with(&bin, spec, &extra)
                .await
                .map_err(|e| RunError::Runtime(format!("embedded valkey: {e}")))?;
            let co = ConnectOptions {
                timeout,
                ..Default::default()
            };
            let route = if spec.sentinels > 0 {
                Route {
                    endpoint: Endpoint::Sentinel {
                        sentinels: topo.sentinels(),
                        master: embedded::MASTER_NAME.into(),
                    },
                    opts: co,
                    via: Default::default(),
                }
            } else {
                Route::direct(format!("127.0.0.1:{}", topo.primary().port), co)
            };
            let label = format!(
                "embedded {} ({} replicas, {} sentinels)",
                topo.primary_url(),
                spec.replicas,
                spec.sentinels
            );
            Ok(Resolved {
                route,
                label,
                server_addr: ("127.0.0.1".to_string(), topo.primary().port),
                target: Target::Embedded(topo),
                policy: DestructivePolicy::Allowed,
                migration: None,
            })
        }
    }
}

/// Can we reach it at all? A PING, then INFO server for the report.
pub async fn preflight(route: &Route) -> Result<ServerInfo, RunError> {
    let where_ = match &route.endpoint {
        Endpoint::Direct(hp) => hp.clone(),
        Endpoint::Sentinel { master, .. } => format!("sentinel master {master}"),
    };
    let mut conn = route
        .connect()
        .await
        .map_err(|e| RunError::Target(format!("target {where_} unreachable: {}", e.msg)))?;
    conn.request(&Cmd::new("PING"))
        .await
        .map_err(|e| RunError::Target(format!("target {where_} did not answer PING: {}", e.msg)))?;
    let info = conn.request(&Cmd::new("INFO").arg("server")).await.ok();
    let text = info.as_ref().and_then(|v| v.as_str()).unwrap_or("");
    let get = |f: &str| embedded::parse_info(text, f).unwrap_or_default();
    let valkey = get("valkey_version");
    Ok(ServerInfo {
        server_name: if valkey.is_empty() {
            "redis".into()
        } else {
            get("server_name")
        },
        version: if valkey.is_empty() {
            get("redis_version")
        } else {
            valkey
        },
        redis_version: get("redis_version"),
    })
}
