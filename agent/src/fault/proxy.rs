//! The fault proxy: a TCP forwarder in front of a node. Workload traffic goes through it; toxics
//! (latency, bandwidth, reset, blackhole, slow close, limit data, partition) change what it does.
//! With no toxic active a chunk is forwarded as soon as it is read.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};

pub use crate::plan::fault::Direction;

/// Whether a toxic for `d` applies to traffic flowing upstream (client → server) or not.
fn applies(d: Direction, upstream: bool) -> bool {
    matches!(
        (d, upstream),
        (Direction::Both, _) | (Direction::Upstream, true) | (Direction::Downstream, false)
    )
}

/// The toxics active on one proxy.
#[derive(Debug, Clone, Default)]
pub struct Toxics {
    pub latency: Option<(Duration, Duration, Direction)>,
    pub bandwidth: Option<(u64, Direction)>,
    /// Accept and read, but forward nothing (clients time out).
    pub blackhole: bool,
    /// New connections are reset at once (existing ones were reset when it was set).
    pub reset: bool,
    pub slow_close: Option<Duration>,
    /// Close a connection after this many bytes in either direction.
    pub limit_data: Option<u64>,
    /// The node is cut off: existing connections dropped, new ones refused by reset.
    pub partition: bool,
}

struct Shared {
    toxics: RwLock<Toxics>,
    /// Where new connections go (a cutover repoints it).
    upstream: RwLock<SocketAddr>,
    /// Bumped to make every live connection reset itself.
    kill_tx: broadcast::Sender<()>,
    conns: AtomicU64,
    seed: Mutex<u64>,
}

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

impl Proxy {
    /// Listen on a free loopback port and forward to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let listen = listener.local_addr()?;
        let (kill_tx, _) = broadcast::channel(4);
        let shared = Arc::new(Shared {
            toxics: RwLock::new(Toxics::default()),
            upstream: RwLock::new(upstream),
            kill_tx,
            conns: AtomicU64::new(0),
            seed: Mutex::new(0x5eed),
        });
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

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.conns.load(Ordering::Relaxed)
    }
}

/// Close with RST (SO_LINGER 0): the client sees "connection reset by peer".
fn reset_now(s: TcpStream) {
    if let Ok(std) = s.into_std() {
        let _ = socket_linger_zero(&std);
        drop(std);
    }
}

fn socket_linger_zero(s: &std::net::TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized linger struct.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as u32,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

async fn handle(client: TcpStream, s: Arc<Shared>) -> std::io::Result<()> {
    let upstream = *s.upstream.read().expect("upstream lock");
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

async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    upstream: bool,
    s: Arc<Shared>,
    total: Arc<AtomicU64>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Vec<u8>, Option<Instant>)>();
    let s2 = s.clone();
    let writer = async move {
        while let Some((buf, at)) = rx.recv().await {
            if let Some(at) = at {
                tokio::time::sleep_until(at.into()).await;
            }
            if w.write_all(&buf).await.is_err() {
                break;
            }
            let bw = s2.toxics.read().expect("toxics lock").bandwidth;
            if let Some((rate, dir)) = bw {
                if applies(dir, upstream) && rate > 0 {
                    tokio::time::sleep(Duration::from_secs_f64(buf.len() as f64 / rate as f64))
                        .await;
                }
            }
        }
        let slow = s2.toxics.read().expect("toxics lock").slow_close;
        if let Some(d) = slow {
            tokio::time::sleep(d).await;
        }
        let _ = w.shutdown().await;
    };
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
            let at = match t.latency {
                Some((d, j, dir)) if applies(dir, upstream) => {
                    let jitter = if j.is_zero() {
                        0.0
                    } else {
                        let mut seed = s.seed.lock().expect("seed lock");
                        *seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((*seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * j.as_secs_f64()
                    };
                    Some(
                        Instant::now()
                            + Duration::from_secs_f64((d.as_secs_f64() + jitter).max(0.0)),
                    )
                }
                _ => None,
            };
            if tx.send((buf[..n].to_vec(), at)).is_err() {
                break;
            }
        }
    };
    tokio::join!(reader, writer);
}
