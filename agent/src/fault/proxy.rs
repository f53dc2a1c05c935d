//! The fault proxy: a forwarder in front of a node. Workload traffic goes through it; toxics
//! change what it does. In byte mode it forwards chunks (latency, bandwidth, reset, blackhole,
//! slow close, limit data, partition); in RESP mode (`start_resp`, when a scenario has protocol
//! faults) it reads the agent's commands too (`resp_proxy`), so a toxic can answer a command
//! with a server error, lose a reply, hold one kind of command, reap idle connections or
//! squeeze memory — on the agent's own connections only — and it may speak TLS to the server.
//! With no toxic active a chunk (or a request) is forwarded as soon as it is read.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::pressure::Tracker;
use super::replies::Engine;
use super::toxic::Shared;
pub use super::toxic::{Act, Direction, Pressure, RespToxic, Toxics};
use super::wire::{reset_on_close, writer, Chunk};
use crate::plan::protocol::ErrorCode;
use crate::valkey::conn::TlsSettings;

/// How many of the agent's keys a proxy remembers for memory pressure.
const TRACKED_KEYS: usize = 500_000;

/// A running proxy. Dropping it stops accepting; live connections end with their peers.
pub struct Proxy {
    pub listen: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        let _ = self.shared.kill_tx.send(());
    }
}

/// How a RESP-mode proxy is set up: TLS toward the server, whose error texts to speak, whether
/// to track the agent's keys (memory pressure), and the seed of its rates.
#[derive(Clone, Default)]
pub struct RespOptions {
    pub tls: Option<TlsSettings>,
    pub engine: Option<Engine>,
    pub track_keys: bool,
    pub seed: u64,
}

impl Proxy {
    /// Listen on a free loopback port and forward bytes to `upstream` (the byte-level toxics).
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        Proxy::listen(Shared::new(upstream, false, None)).await
    }

    /// Listen on a free loopback port and forward to `upstream` reading the agent's commands
    /// (RESP toxics too). With `tls`, the agent connects in clear text and the proxy speaks TLS
    /// to the server.
    pub async fn start_resp(upstream: SocketAddr, o: RespOptions) -> std::io::Result<Proxy> {
        let mut s = Shared::new(upstream, true, o.tls);
        if let Some(e) = o.engine {
            s.engine = std::sync::RwLock::new(e);
        }
        if o.track_keys {
            s.tracker = Some(Mutex::new(Tracker::new(TRACKED_KEYS)));
        }
        s.seed = Mutex::new(o.seed | 1);
        Proxy::listen(s).await
    }

    async fn listen(shared: Shared) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let listen = listener.local_addr()?;
        let shared = Arc::new(shared);
        let s2 = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let s = s2.clone();
                tokio::spawn(async move {
                    let _ = handle(client, s).await;
                });
            }
        });
        Ok(Proxy {
            listen,
            shared,
            task,
        })
    }

    /// Where new connections go.
    pub fn upstream(&self) -> SocketAddr {
        *self.shared.upstream.read().expect("upstream lock")
    }

    /// Send new connections to `to` and close every live one (clients reconnect and land
    /// there): what repointing a service's hostname does to its clients.
    pub fn repoint(&self, to: SocketAddr) {
        *self.shared.upstream.write().expect("upstream lock") = to;
        let _ = self.shared.kill_tx.send(());
    }

    pub fn toxics(&self) -> Toxics {
        self.shared.toxics.read().expect("toxics lock").clone()
    }

    /// Replace the toxics. Setting `reset` or `partition` also drops every live connection.
    pub fn set(&self, t: Toxics) {
        let drop_all = t.reset || t.partition;
        *self.shared.toxics.write().expect("toxics lock") = t;
        if drop_all {
            let _ = self.shared.kill_tx.send(());
        }
    }

    pub fn clear(&self) {
        self.set(Toxics::default());
    }

    /// Reads the agent's commands (RESP toxics can act).
    pub fn resp_mode(&self) -> bool {
        self.shared.resp_mode
    }

    /// Put a RESP toxic on (RESP mode only).
    pub fn add(&self, t: RespToxic) {
        self.shared.add(t);
    }

    /// Take fault `id`'s RESP toxics off.
    pub fn remove(&self, id: usize) {
        self.shared.remove(id);
    }

    /// Whose error texts injected errors carry.
    pub fn engine(&self) -> Engine {
        self.shared.engine.read().expect("engine lock").clone()
    }

    /// The server error `code` as the engine behind this proxy words it, ready for the wire.
    pub fn error_reply(&self, code: ErrorCode) -> Arc<[u8]> {
        super::toxic::error_reply(&self.engine().text(code))
    }

    /// Close every live connection (clients reconnect, through the proxy).
    pub fn drop_connections(&self) {
        let _ = self.shared.kill_tx.send(());
    }

    /// Keys the agent wrote through the proxy and it still knows (memory pressure).
    pub fn tracked_keys(&self) -> usize {
        self.shared
            .tracker
            .as_ref()
            .map_or(0, |t| t.lock().expect("tracker lock").len())
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.conns.load(Ordering::Relaxed)
    }
}

/// Close with RST (SO_LINGER 0): the client sees "connection reset by peer".
fn reset_now(s: TcpStream) {
    let _ = reset_on_close(s.as_raw_fd());
    drop(s);
}

async fn handle(client: TcpStream, s: Arc<Shared>) -> std::io::Result<()> {
    s.conns.fetch_add(1, Ordering::Relaxed);
    {
        let t = s.toxics.read().expect("toxics lock");
        if t.reset || t.partition {
            drop(t);
            reset_now(client);
            return Ok(());
        }
    }
    let _ = client.set_nodelay(true);
    if s.resp_mode {
        return super::resp_proxy::handle(client, s).await;
    }
    let upstream = *s.upstream.read().expect("upstream lock");
    let server = match TcpStream::connect(upstream).await {
        Ok(x) => x,
        Err(_) => {
            reset_now(client);
            return Ok(());
        }
    };
    let _ = server.set_nodelay(true);
    let mut kill = s.kill_tx.subscribe();
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let total = Arc::new(AtomicU64::new(0));
    let up = pump(cr, sw, true, s.clone(), total.clone());
    let down = pump(sr, cw, false, s.clone(), total.clone());
    tokio::select! {
        _ = async { let _ = tokio::join!(up, down); } => {}
        _ = kill.recv() => {
            // Dropping the halves closes both sockets; linger 0 is not reachable on split halves,
            // so the peers see a close (or a reset when they keep writing).
        }
    }
    Ok(())
}

/// One direction of a byte-mode connection: read chunks, apply the byte toxics, write them.
async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    w: tokio::net::tcp::OwnedWriteHalf,
    upstream: bool,
    s: Arc<Shared>,
    total: Arc<AtomicU64>,
) {
    let (tx, rx) = mpsc::unbounded_channel::<Chunk>();
    let s2 = s.clone();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let t = s.toxics.read().expect("toxics lock").clone();
            if t.blackhole || t.partition {
                continue;
            }
            let seen = total.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
            if let Some(limit) = t.limit_data {
                if seen > limit {
                    break;
                }
            }
            if tx
                .send((buf[..n].to_vec(), s.byte_delay(upstream)))
                .is_err()
            {
                break;
            }
        }
    };
    tokio::join!(reader, writer(w, rx, upstream, s2));
}
