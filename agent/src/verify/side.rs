//! The two sides of a migration: connecting to each (an unreachable side names its address and
//! the cause), what server it is, and its `INFO replication`.

use std::time::Duration;

use serde::Serialize;

use super::error::VerifyError;
use crate::valkey::embedded::parse_info;
use crate::valkey::target::{TargetUrl, TlsChoice};
use crate::valkey::{Cmd, Conn, Route};

/// Source or destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Source,
    Destination,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Destination => "destination",
        }
    }
}

/// How to reach one side.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub role: Role,
    pub url: TargetUrl,
    route: Route,
}

impl Endpoint {
    /// Check the URL's TLS settings (a usage error when the CA file is unusable).
    pub fn new(
        role: Role,
        url: TargetUrl,
        tls: &TlsChoice,
        timeout: Duration,
    ) -> Result<Endpoint, VerifyError> {
        let mut opts = url
            .connect_options(tls, timeout)
            .map_err(|e| VerifyError::Usage(format!("{}: {e}", role.name())))?;
        opts.lib_info = Some((
            "valkey-chaos-verify".into(),
            env!("CARGO_PKG_VERSION").into(),
        ));
        Ok(Endpoint {
            role,
            route: Route::direct(url.host_port(), opts),
            url,
        })
    }

    /// The same side, connected to database `db` (its URL then names it).
    pub fn in_db(&self, db: u32) -> Endpoint {
        let mut e = self.clone();
        e.url.db = db;
        e.url.db_given = true;
        e.route.opts.db = db;
        e
    }

    /// A new connection (connect, TLS, AUTH, SELECT); a failure names the side, URL and cause.
    pub async fn connect(&self) -> Result<Conn, VerifyError> {
        self.route.connect().await.map_err(|e| {
            VerifyError::Target(format!(
                "{} {} unreachable: {}",
                self.role.name(),
                self.url,
                e.msg
            ))
        })
    }

    /// A connection failure after the start, worded like [`Endpoint::connect`]'s.
    pub fn lost(&self, e: &crate::valkey::Error) -> VerifyError {
        VerifyError::Target(format!("{} {}: {}", self.role.name(), self.url, e.msg))
    }
}

/// Both sides from their URLs (`verify` and `lag` alike); the destination's missing password is
/// `destination_password`. Usage errors only, before any connection.
pub fn pair(
    source: &str,
    destination: &str,
    destination_password: Option<&str>,
    tls: &TlsChoice,
    timeout: Duration,
) -> Result<(Endpoint, Endpoint), VerifyError> {
    let src = TargetUrl::parse(source).map_err(|e| VerifyError::Usage(format!("--source: {e}")))?;
    let mut dst = TargetUrl::parse(destination)
        .map_err(|e| VerifyError::Usage(format!("--destination: {e}")))?;
    if dst.password.is_none() {
        dst.password = destination_password.map(str::to_string);
    }
    Ok((
        Endpoint::new(Role::Source, src, tls, timeout)?,
        Endpoint::new(Role::Destination, dst, tls, timeout)?,
    ))
}

/// What a side is, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    /// The URL without its password.
    pub url: String,
    /// `valkey`, `redis`, or `unknown` when `INFO` is refused.
    pub server: String,
    pub version: String,
}

impl ServerInfo {
    /// `valkey 9.1.2`.
    pub fn label(&self) -> String {
        format!("{} {}", self.server, self.version)
    }
}

/// `INFO server` → name and version (`valkey_version` wins: Valkey freezes `redis_version`).
pub async fn server_info(conn: &mut Conn, url: &TargetUrl) -> ServerInfo {
    let info = info(conn, "server").await;
    let f = |k: &str| info.as_deref().and_then(|i| parse_info(i, k));
    let (server, version) = match (f("valkey_version"), f("redis_version")) {
        (Some(v), _) => (f("server_name").unwrap_or_else(|| "valkey".into()), v),
        (None, Some(v)) => ("redis".into(), v),
        (None, None) => ("unknown".into(), "(INFO refused)".into()),
    };
    ServerInfo {
        url: url.to_string(),
        server,
        version,
    }
}

/// One `INFO` section's text, or `None` when the server refuses it.
pub async fn info(conn: &mut Conn, section: &str) -> Option<String> {
    let v = conn.request(&Cmd::new("INFO").arg(section)).await.ok()?;
    v.as_str().map(str::to_string)
}

/// The fields of `INFO replication` that tell who replicates whom and how far behind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Replication {
    /// `master` or `slave` (both Redis and Valkey print these words).
    pub role: String,
    pub master_replid: Option<String>,
    pub master_repl_offset: Option<i64>,
    /// Replica only.
    pub master_host: Option<String>,
    pub master_port: Option<u16>,
    pub master_link_status: Option<String>,
    pub slave_repl_offset: Option<i64>,
    /// Primary only.
    pub connected_slaves: Option<u64>,
}

impl Replication {
    pub fn parse(text: &str) -> Replication {
        let f = |k: &str| parse_info(text, k);
        Replication {
            role: f("role").unwrap_or_default(),
            master_replid: f("master_replid"),
            master_repl_offset: f("master_repl_offset").and_then(|v| v.parse().ok()),
            master_host: f("master_host"),
            master_port: f("master_port").and_then(|v| v.parse().ok()),
            master_link_status: f("master_link_status"),
            slave_repl_offset: f("slave_repl_offset").and_then(|v| v.parse().ok()),
            connected_slaves: f("connected_slaves").and_then(|v| v.parse().ok()),
        }
    }
    pub fn is_replica(&self) -> bool {
        self.role == "slave" || self.role == "replica"
    }
}

/// Whether `dst` replicates from `src`, judged from both sides' `INFO replication`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Link {
    /// A replica sharing the source's replication id (the same history), link up.
    ReplicaUp,
    /// A replica of the source whose link is down (syncing, or broken).
    ReplicaDown,
    /// A replica of some other primary (a provider's chain, or the wrong server).
    ReplicaOfOther,
    /// Not a replica at all.
    NotReplica,
    /// `INFO` refused on a side.
    Unknown,
}

/// Judge the link: a replica's `master_replid` equals its primary's once synced, which holds
/// across address translation (a provider's private IPs) where `master_host` would not.
pub fn link(src: Option<&Replication>, dst: Option<&Replication>, src_url: &TargetUrl) -> Link {
    let Some(d) = dst else {
        return Link::Unknown;
    };
    if !d.is_replica() {
        return Link::NotReplica;
    }
    let same_id = match (src.and_then(|s| s.master_replid.as_ref()), &d.master_replid) {
        (Some(a), Some(b)) => Some(a == b),
        _ => None,
    };
    let same_addr = d.master_port == Some(src_url.port)
        && d.master_host
            .as_deref()
            .is_some_and(|h| h == src_url.host || (is_loopback(h) && src_url.is_loopback()));
    let up = d.master_link_status.as_deref() == Some("up");
    match (same_id, same_addr, up) {
        (Some(true), _, true) => Link::ReplicaUp,
        (Some(true), _, false) | (_, true, false) => Link::ReplicaDown,
        (None, true, true) => Link::ReplicaUp,
        (None, false, _) => Link::Unknown,
        (Some(false), _, _) => Link::ReplicaOfOther,
    }
}

fn is_loopback(h: &str) -> bool {
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Link {
    /// A sentence about the destination.
    pub fn describe(self, dst: Option<&Replication>) -> String {
        let master = dst
            .and_then(|d| {
                d.master_host
                    .as_ref()
                    .map(|h| format!("{h}:{}", d.master_port.unwrap_or(0)))
            })
            .unwrap_or_else(|| "?".into());
        let status = dst
            .and_then(|d| d.master_link_status.clone())
            .unwrap_or_else(|| "?".into());
        match self {
            Link::ReplicaUp => format!("the destination is a replica of the source (master {master}, link up)"),
            Link::ReplicaDown => format!(
                "the destination is a replica of the source, but its link is {status} (master {master})"
            ),
            Link::ReplicaOfOther => format!(
                "the destination is a replica of {master}, not of this source (replication ids differ)"
            ),
            Link::NotReplica => format!(
                "the destination is not a replica (role {})",
                dst.map(|d| d.role.as_str()).unwrap_or("?")
            ),
            Link::Unknown => "whether the destination replicates the source is unknown (INFO replication refused or inconclusive)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: &str = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n\
        slave0:ip=127.0.0.1,port=7001,state=online,offset=140,lag=0\r\n\
        master_replid:aaaa\r\nmaster_repl_offset:140\r\n";
    const REPLICA: &str = "# Replication\r\nrole:slave\r\nmaster_host:10.0.0.5\r\n\
        master_port:6379\r\nmaster_link_status:up\r\nslave_repl_offset:120\r\n\
        master_replid:aaaa\r\nmaster_repl_offset:120\r\n";

    #[test]
    fn parses_replication() {
        let p = Replication::parse(PRIMARY);
        assert_eq!(p.role, "master");
        assert_eq!(p.master_repl_offset, Some(140));
        assert_eq!(p.connected_slaves, Some(1));
        let r = Replication::parse(REPLICA);
        assert!(r.is_replica());
        assert_eq!(r.master_host.as_deref(), Some("10.0.0.5"));
        assert_eq!(r.slave_repl_offset, Some(120));
    }

    #[test]
    fn judges_the_link() {
        let src_url = TargetUrl::parse("redis://db.example.com:25061").unwrap();
        let p = Replication::parse(PRIMARY);
        let r = Replication::parse(REPLICA);
        // Private address, same replication id: a replica of this source.
        assert_eq!(link(Some(&p), Some(&r), &src_url), Link::ReplicaUp);
        let down = Replication {
            master_link_status: Some("down".into()),
            ..r.clone()
        };
        assert_eq!(link(Some(&p), Some(&down), &src_url), Link::ReplicaDown);
        let other = Replication {
            master_replid: Some("bbbb".into()),
            ..r.clone()
        };
        assert_eq!(link(Some(&p), Some(&other), &src_url), Link::ReplicaOfOther);
        assert_eq!(link(Some(&p), Some(&p), &src_url), Link::NotReplica);
        assert_eq!(link(Some(&p), None, &src_url), Link::Unknown);
        // No id on the source side (INFO refused there): the address decides.
        let local = TargetUrl::parse("redis://127.0.0.1:6379").unwrap();
        let r_local = Replication {
            master_host: Some("localhost".into()),
            ..r.clone()
        };
        assert_eq!(link(None, Some(&r_local), &local), Link::ReplicaUp);
        assert_eq!(link(None, Some(&r), &local), Link::Unknown);
    }
}
