//! A client that keeps one connection, reconnects with backoff, and follows the primary
//! through Sentinel and through the fault proxy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::conn::{Conn, ConnectOptions};
use super::error::{Error, ErrorKind};
use super::resp::{Cmd, Value};

/// Where the primary is.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// A fixed `host:port` (resolved on every connect).
    Direct(String),
    /// Ask these sentinels for the primary of `master` on every connect (redis-py's Sentinel).
    Sentinel {
        sentinels: Vec<SocketAddr>,
        master: String,
    },
}

/// Address rewriting: real node address → local fault-proxy address (and whether the proxy is
/// reached in clear text: a RESP proxy speaks TLS to the server itself).
#[derive(Clone, Default, Debug)]
pub struct AddrMap(Arc<RwLock<HashMap<SocketAddr, (SocketAddr, bool)>>>);

impl AddrMap {
    pub fn insert(&self, real: SocketAddr, via: SocketAddr) {
        self.0
            .write()
            .expect("addr map poisoned")
            .insert(real, (via, false));
    }
    /// Map `real` to a proxy reached without TLS whatever the target's scheme.
    pub fn insert_plain(&self, real: SocketAddr, via: SocketAddr) {
        self.0
            .write()
            .expect("addr map poisoned")
            .insert(real, (via, true));
    }
    pub fn map(&self, a: SocketAddr) -> SocketAddr {
        self.route(a).0
    }
    /// Where to connect for `a`, and whether in clear text.
    pub fn route(&self, a: SocketAddr) -> (SocketAddr, bool) {
        self.0
            .read()
            .expect("addr map poisoned")
            .get(&a)
            .copied()
            .unwrap_or((a, false))
    }
}

/// Everything a worker needs to open connections to the current primary.
#[derive(Clone, Debug)]
pub struct Route {
    pub endpoint: Endpoint,
    pub opts: ConnectOptions,
    pub via: AddrMap,
}

impl Route {
    pub fn direct(host_port: impl Into<String>, opts: ConnectOptions) -> Route {
        Route {
            endpoint: Endpoint::Direct(host_port.into()),
            opts,
            via: AddrMap::default(),
        }
    }

    /// The real address of the current primary (before proxy mapping).
    pub async fn primary_addr(&self) -> Result<SocketAddr, Error> {
        match &self.endpoint {
            Endpoint::Direct(hp) => resolve(hp).await,
            Endpoint::Sentinel { sentinels, master } => {
                let mut last = None;
                let opts = ConnectOptions {
                    lib_info: None,
                    password: None,
                    username: None,
                    db: 0,
                    tls: None,
                    ..self.opts.clone()
                };
                for s in sentinels {
                    let addr = self.via.map(*s);
                    let r = async {
                        let mut c = Conn::connect(addr, &opts).await?;
                        let v = c
                            .request(
                                &Cmd::new("SENTINEL")
                                    .arg("GET-MASTER-ADDR-BY-NAME")
                                    .arg(master.as_str()),
                            )
                            .await?;
                        let parts = v.into_array().unwrap_or_default();
                        let host = parts.first().and_then(|p| p.as_str()).map(str::to_string);
                        let port = parts.get(1).and_then(|p| p.as_int());
                        match (host, port) {
                            (Some(h), Some(p)) => resolve(&format!("{h}:{p}")).await,
                            // redis-py's MasterNotFoundError is a ConnectionError.
                            _ => Err(Error::new(
                                ErrorKind::Connection,
                                format!("sentinel {s} does not know master {master:?}"),
                            )),
                        }
                    }
                    .await;
                    match r {
                        Ok(a) => return Ok(a),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last
                    .unwrap_or_else(|| Error::new(ErrorKind::Connection, "no sentinel configured")))
            }
        }
    }

    /// Open a connection to the current primary (through the proxy when one is mapped).
    pub async fn connect(&self) -> Result<Conn, Error> {
        let real = self.primary_addr().await?;
        match self.via.route(real) {
            (via, true) if self.opts.tls.is_some() => {
                let opts = ConnectOptions {
                    tls: None,
                    ..self.opts.clone()
                };
                Conn::connect(via, &opts).await
            }
            (via, _) => Conn::connect(via, &self.opts).await,
        }
    }
}

async fn resolve(hp: &str) -> Result<SocketAddr, Error> {
    if let Ok(a) = hp.parse() {
        return Ok(a);
    }
    tokio::net::lookup_host(hp)
        .await
        .map_err(|e| Error::new(ErrorKind::Connection, format!("cannot resolve {hp}: {e}")))?
        .next()
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Connection,
                format!("{hp} resolves to no address"),
            )
        })
}

/// One logical client: a connection that is re-opened after failures, with backoff.
pub struct Client {
    route: Arc<Route>,
    conn: Option<Conn>,
    failures: u32,
    /// Count of (re)connections made, for the report.
    pub connects: u64,
    /// Open connections on a task of their own (see [`Client::connect_on_task`]).
    on_task: bool,
}

impl Client {
    pub fn new(route: Arc<Route>) -> Client {
        Client {
            route,
            conn: None,
            failures: 0,
            connects: 0,
            on_task: false,
        }
    }

    /// Open connections on a task of their own rather than inside the caller's future. For a
    /// caller on a small stack that stays resident: a plugin VU runs on a fiber whose pages are
    /// kept, and a connect (TCP, TLS, HELLO) polled there left 16 KiB of it resident per VU for
    /// the whole run; on a task the VU's stack stays at the depth of a command.
    pub fn connect_on_task(mut self) -> Client {
        self.on_task = true;
        self
    }

    pub fn route(&self) -> &Arc<Route> {
        &self.route
    }

    /// The open connection, connecting first when needed (after a backoff if the last tries failed).
    pub async fn conn(&mut self) -> Result<&mut Conn, Error> {
        if self.conn.as_ref().is_some_and(|c| c.is_broken()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            if self.failures > 0 {
                let ms = (10u64 << self.failures.min(7)).min(1000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let r = if self.on_task {
                // The spawned future only holds the boxed connect: a small value to move, so
                // spawning does not itself need a deep frame on the caller's stack.
                let route = self.route.clone();
                tokio::spawn(async move { Box::pin(route.connect()).await })
                    .await
                    .unwrap_or_else(|e| {
                        Err(Error::new(
                            ErrorKind::Connection,
                            format!("the connect task failed: {e}"),
                        ))
                    })
            } else {
                self.route.connect().await
            };
            match r {
                Ok(c) => {
                    self.failures = 0;
                    self.connects += 1;
                    self.conn = Some(c);
                }
                Err(e) => {
                    self.failures += 1;
                    return Err(e);
                }
            }
        }
        Ok(self.conn.as_mut().expect("connection just set"))
    }

    /// The primary is found through Sentinel (as redis-py's `Sentinel.master_for` does).
    fn follows_sentinel(&self) -> bool {
        matches!(self.route.endpoint, Endpoint::Sentinel { .. })
    }

    /// Forget the connection (after READONLY and the like): the next call rediscovers the primary.
    pub fn reset(&mut self) {
        self.conn = None;
    }

    fn after(&mut self, r: &Result<Value, Error>) {
        if let Err(e) = r {
            self.failed(e.kind);
        }
    }

    /// An operation on [`Client::conn`]'s connection failed with `kind`: drop the connection
    /// when that kind calls for it (as `request` does). `READONLY` drops it only through
    /// Sentinel (redis-py's Sentinel connection turns it into "the previous master is now a
    /// slave" and reconnects); a plain redis-py client keeps its connection and raises.
    fn failed(&mut self, kind: ErrorKind) {
        if kind == ErrorKind::ReadOnly {
            READONLY_REPLIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if !self.follows_sentinel() {
                return;
            }
        }
        if kind.drops_connection() {
            self.conn = None;
            if kind != ErrorKind::ReadOnly {
                self.failures = self.failures.max(1);
            }
        }
    }

    pub async fn request(&mut self, cmd: &Cmd) -> Result<Value, Error> {
        let r = match self.conn().await {
            Ok(c) => c.request(cmd).await,
            Err(e) => Err(e),
        };
        self.after(&r);
        r
    }

    pub async fn request_args<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value, Error> {
        let r = match self.conn().await {
            Ok(c) => c.request_args(args).await,
            Err(e) => Err(e),
        };
        self.after(&r);
        r
    }

    /// A pipeline; on a connection-level failure every command gets that error.
    pub async fn pipeline(&mut self, cmds: &[Cmd]) -> Vec<Result<Value, Error>> {
        let r = match self.conn().await {
            Ok(c) => c.pipeline(cmds).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(v) => {
                if self.follows_sentinel()
                    && v.iter()
                        .any(|x| matches!(x, Err(e) if e.kind == ErrorKind::ReadOnly))
                {
                    self.conn = None;
                }
                v
            }
            Err(e) => {
                self.after(&Err(e.clone()));
                cmds.iter().map(|_| Err(e.clone())).collect()
            }
        }
    }

    /// Run a script by SHA, loading it on NOSCRIPT (redis-py's `Script.__call__`).
    pub async fn eval_script(
        &mut self,
        script: &Script,
        keys: &[&[u8]],
        args: &[&[u8]],
    ) -> Result<Value, Error> {
        let mut full: Vec<&[u8]> = Vec::with_capacity(3 + keys.len() + args.len());
        let nkeys = keys.len().to_string();
        full.push(b"EVALSHA");
        full.push(script.sha.as_bytes());
        full.push(nkeys.as_bytes());
        full.extend_from_slice(keys);
        full.extend_from_slice(args);
        match self.request_args(&full).await {
            Err(e) if e.kind == ErrorKind::NoScript => {
                self.load_script(script).await?;
                self.request_args(&full).await
            }
            r => r,
        }
    }

    /// [`Client::eval_script`] for the load path: `encoded` is one `EVALSHA` of `script`,
    /// written by the caller; only its outcome is read (no reply is built).
    pub async fn eval_script_encoded(
        &mut self,
        script: &Script,
        encoded: &[u8],
        status: &mut Vec<Result<(), ErrorKind>>,
    ) -> Result<(), ErrorKind> {
        // Two rounds at most: the first may find the script missing.
        for round in 0..2 {
            status.clear();
            let r = match self.conn().await {
                Ok(conn) => conn.pipeline_status(encoded, 1, status).await,
                Err(e) => Err(e),
            };
            let kind = match r {
                Ok(()) => match status.first().copied().unwrap_or(Ok(())) {
                    Ok(()) => return Ok(()),
                    Err(k) => k,
                },
                Err(e) => e.kind,
            };
            self.failed(kind);
            if kind != ErrorKind::NoScript || round == 1 {
                return Err(kind);
            }
            self.load_script(script).await.map_err(|e| e.kind)?;
        }
        Err(ErrorKind::NoScript)
    }

    /// After a `NOSCRIPT` reply: count it and load the script (redis-py's recovery).
    async fn load_script(&mut self, script: &Script) -> Result<(), Error> {
        NOSCRIPT_REPLIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.request(&Cmd::new("SCRIPT").arg("LOAD").arg(script.body.as_str()))
            .await
            .map(|_| ())
    }
}

/// `NOSCRIPT` replies this process got (and recovered from by loading the script). A server
/// that came up without the scripts — a failover, a cutover: the script cache is not
/// replicated — answers the first `EVALSHA` of each script this way.
pub static NOSCRIPT_REPLIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `READONLY` replies this process's clients got: a write that reached a replica (a client
/// moved to a destination that still replicates, a stale endpoint after a failover).
pub static READONLY_REPLIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A Lua script and its SHA1 (what EVALSHA sends).
#[derive(Clone, Debug)]
pub struct Script {
    pub body: String,
    pub sha: String,
}

impl Script {
    pub fn new(body: &str) -> Script {
        Script {
            body: body.to_string(),
            sha: sha1_smol::Sha1::from(body.as_bytes()).digest().to_string(),
        }
    }
}
