//! One client connection through the proxy in RESP mode. The client's bytes are read as
//! requests (a pipeline is several at once); each is forwarded, held (per-command latency),
//! answered here with an error, or forwarded with its reply to be lost — and a slot in request
//! order says what its reply will be, so replies reach the client in the order it asked.
//!
//! A transaction with a refused command is aborted as a server aborts it (`EXECABORT`, the
//! server's `MULTI` discarded); pub/sub and `MONITOR` connections are passed through as bytes from
//! the moment they subscribe. The idle reaper closes the connection when nothing was asked or
//! answered for its timeout and no reply is pending; a dropped reply closes it with a reset
//! (`then = "close"`) or leaves it silent (`then = "hang"`).

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

use super::command::{parse, Command};
use super::toxic::{Decision, Shared, EXECABORT};
use super::upstream;
use super::wire::{reset_on_close, writer, Chunk};
use crate::plan::protocol::AfterDrop;

/// What the reply to one request will be, in request order.
enum Slot {
    /// The server's reply, passed on.
    Server,
    /// An answer made here; the server never saw the request.
    Answer(Arc<[u8]>),
    /// The server's reply, lost; then the connection is closed or goes silent.
    Drop(AfterDrop),
    /// The server's reply to a request the proxy added (a `DISCARD`), not passed on.
    Swallow,
    /// From here on, everything the server sends is passed on as it comes (pub/sub, MONITOR).
    Passthrough,
}

/// What the two directions of one connection share.
struct Link {
    slots: Mutex<VecDeque<Slot>>,
    /// A slot was added.
    added: Notify,
    /// The last request read or reply written (ms on the proxy's clock).
    last: AtomicU64,
    /// A dropped reply left the connection silent: nothing more is forwarded either way.
    hung: AtomicBool,
    /// Bytes through the connection, both ways (the limit-data toxic).
    bytes: AtomicU64,
}

impl Link {
    fn push(&self, slot: Slot) {
        self.slots.lock().expect("slots lock").push_back(slot);
        self.added.notify_one();
    }

    fn touch(&self, s: &Shared) {
        self.last.store(s.now_ms(), Ordering::Relaxed);
    }

    /// Count `n` bytes; false when the limit-data toxic says the connection must end.
    fn count(&self, s: &Shared, n: usize) -> bool {
        let seen = self.bytes.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        let limit = s.toxics.read().expect("toxics lock").limit_data;
        limit.is_none_or(|l| seen <= l)
    }
}

/// Carry one client connection in RESP mode until either side closes, a toxic ends it, or the
/// proxy is told to drop every connection.
pub async fn handle(client: TcpStream, s: Arc<Shared>) -> io::Result<()> {
    let addr = *s.upstream.read().expect("upstream lock");
    let fd = client.as_raw_fd();
    let server = match upstream::connect(addr, s.tls.as_ref()).await {
        Ok(u) => u,
        Err(_) => {
            let _ = reset_on_close(fd);
            return Ok(());
        }
    };
    let mut kill = s.kill_tx.subscribe();
    let link = Arc::new(Link {
        slots: Mutex::new(VecDeque::new()),
        added: Notify::new(),
        last: AtomicU64::new(s.now_ms()),
        hung: AtomicBool::new(false),
        bytes: AtomicU64::new(0),
    });
    let (cr, cw) = client.into_split();
    let (sr, sw) = tokio::io::split(server);
    let (up_tx, up_rx) = mpsc::unbounded_channel::<Chunk>();
    let (down_tx, down_rx) = mpsc::unbounded_channel::<Chunk>();
    let up = async {
        tokio::join!(
            requests(cr, up_tx, link.clone(), s.clone()),
            writer(sw, up_rx, true, s.clone())
        )
    };
    let down = async {
        let (end, _) = tokio::join!(
            replies(sr, down_tx, link.clone(), s.clone(), fd),
            writer(cw, down_rx, false, s.clone())
        );
        end
    };
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    // Each side ends when its peer closes; a dropped reply, the reaper or the proxy end both.
    while !(up_done && down_done) {
        tokio::select! {
            _ = &mut up, if !up_done => up_done = true,
            end = &mut down, if !down_done => {
                down_done = true;
                if end == End::Close {
                    break;
                }
            }
            _ = kill.recv() => break,
            _ = reap(&link, &s) => break,
        }
    }
    Ok(())
}

/// Resolves when the idle reaper (if on) finds the connection idle past its timeout with no
/// reply pending, as the server's `timeout` closes a client.
async fn reap(link: &Link, s: &Shared) {
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Some(t) = s.idle_timeout() else {
            continue;
        };
        let idle = s.now_ms().saturating_sub(link.last.load(Ordering::Relaxed));
        let pending = !link.slots.lock().expect("slots lock").is_empty();
        if !pending && idle > t.as_millis() as u64 {
            return;
        }
    }
}

/// Per-connection state of the request side.
struct Requests {
    link: Arc<Link>,
    s: Arc<Shared>,
    tx: mpsc::UnboundedSender<Chunk>,
    /// The database `SELECT` chose (keys are tracked per database).
    db: u32,
    /// Inside `MULTI`, and whether a refused command has doomed it.
    in_multi: bool,
    aborted: bool,
    /// Pub/sub or MONITOR: bytes are forwarded as they come.
    raw: bool,
    /// Requests forwarded at once, written together at the end of the chunk.
    batch: Vec<u8>,
}

impl Requests {
    /// Write what is batched (under the byte-level latency toxic, if on).
    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let at = self.s.byte_delay(true);
        self.tx.send((std::mem::take(&mut self.batch), at)).is_ok()
    }

    /// Forward one request's bytes, at once or after `delay` (later requests wait behind it).
    fn forward(&mut self, bytes: &[u8], delay: Duration) -> bool {
        if delay.is_zero() {
            self.batch.extend_from_slice(bytes);
            return true;
        }
        if !self.flush() {
            return false;
        }
        let at = Instant::now() + delay;
        let at = self.s.byte_delay(true).map_or(at, |b| b.max(at));
        self.tx.send((bytes.to_vec(), Some(at))).is_ok()
    }

    /// One request: decide, keep the reply slot in order, forward or answer.
    fn request(&mut self, bytes: &[u8], cmd: &Command<'_>) -> bool {
        let top = cmd.top();
        if cmd.starts_push() {
            self.link.push(Slot::Passthrough);
            self.raw = true;
            return self.forward(bytes, Duration::ZERO);
        }
        if top == "exec" && self.in_multi && self.aborted {
            // The server queued the rest: discard it there, and answer as a server whose
            // transaction saw an error.
            (self.in_multi, self.aborted) = (false, false);
            self.link.push(Slot::Swallow);
            self.link.push(Slot::Answer(EXECABORT.into()));
            return self.forward(b"*1\r\n$7\r\nDISCARD\r\n", Duration::ZERO);
        }
        let ok = match self.s.decide(self.db, cmd) {
            Decision::Answer(reply) => {
                if self.in_multi && !matches!(top, "exec" | "discard" | "multi") {
                    self.aborted = true;
                }
                self.link.push(Slot::Answer(reply));
                return true;
            }
            Decision::Drop(then) => {
                self.link.push(Slot::Drop(then));
                self.forward(bytes, Duration::ZERO)
            }
            Decision::Forward(delay) => {
                self.link.push(Slot::Server);
                self.forward(bytes, delay)
            }
        };
        match top {
            "multi" => self.in_multi = true,
            "exec" | "discard" => (self.in_multi, self.aborted) = (false, false),
            "select" => {
                if let Some(db) = cmd
                    .args
                    .get(1)
                    .and_then(|a| std::str::from_utf8(a).ok())
                    .and_then(|d| d.parse().ok())
                {
                    self.db = db;
                }
            }
            _ => {}
        }
        ok
    }

    /// Every complete request in `buf`: the bytes used, or `None` when the server side is gone.
    /// A client that speaks no RESP passes through as bytes from there on (and so does the
    /// server's side).
    fn chunk(&mut self, buf: &[u8]) -> Option<usize> {
        let mut off = 0;
        while off < buf.len() && !self.raw {
            let req = match parse(&buf[off..]) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(_) => {
                    self.link.push(Slot::Passthrough);
                    self.raw = true;
                    break;
                }
            };
            let bytes = &buf[off..off + req.len];
            if !req.args.is_empty() {
                let cmd = Command::new(bytes, &req);
                if !self.request(bytes, &cmd) {
                    return None;
                }
            } else {
                self.batch.extend_from_slice(bytes);
            }
            off += req.len;
        }
        if self.raw && off < buf.len() {
            self.batch.extend_from_slice(&buf[off..]);
            off = buf.len();
        }
        Some(off)
    }
}

/// The request side: read the client's bytes, act on each request, forward to the server.
async fn requests<R: AsyncRead + Unpin>(
    mut r: R,
    tx: mpsc::UnboundedSender<Chunk>,
    link: Arc<Link>,
    s: Arc<Shared>,
) {
    let mut st = Requests {
        link: link.clone(),
        s: s.clone(),
        tx,
        db: 0,
        in_multi: false,
        aborted: false,
        raw: false,
        batch: Vec::new(),
    };
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        let before = buf.len();
        buf.reserve(16 * 1024);
        let n = match r.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        link.touch(&s);
        if !link.count(&s, n) {
            break;
        }
        let (blackhole, partition) = {
            let t = s.toxics.read().expect("toxics lock");
            (t.blackhole, t.partition)
        };
        if blackhole || partition || link.hung.load(Ordering::Relaxed) {
            buf.truncate(before);
            continue;
        }
        let Some(used) = st.chunk(&buf) else {
            break;
        };
        buf.drain(..used);
        if !st.flush() {
            break;
        }
    }
    let _ = st.flush();
}

/// The reply side: read the server's bytes and deliver replies in request order, answers made
/// here in their place, lost replies dropped.
async fn replies<R: AsyncRead + Unpin>(
    mut r: R,
    tx: mpsc::UnboundedSender<Chunk>,
    link: Arc<Link>,
    s: Arc<Shared>,
    client_fd: std::os::fd::RawFd,
) -> End {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut raw = false;
    loop {
        if !raw {
            match deliver(&mut buf, &tx, &link, &s) {
                Delivered::Wait => {}
                Delivered::Raw => raw = true,
                Delivered::Close => {
                    let _ = reset_on_close(client_fd);
                    return End::Close;
                }
                Delivered::Broken => return End::Eof,
            }
        }
        let before = buf.len();
        buf.reserve(16 * 1024);
        tokio::select! {
            n = r.read_buf(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !link.count(&s, n) {
                        return End::Close;
                    }
                    let (blackhole, partition) = {
                        let t = s.toxics.read().expect("toxics lock");
                        (t.blackhole, t.partition)
                    };
                    if blackhole || partition || link.hung.load(Ordering::Relaxed) {
                        buf.truncate(before);
                    } else if raw {
                        let at = s.byte_delay(false);
                        if tx.send((std::mem::take(&mut buf), at)).is_err() {
                            return End::Eof;
                        }
                        link.touch(&s);
                    }
                }
            },
            _ = link.added.notified() => {}
        }
    }
    // The server closed: what is still owed the client is answered here where it can be.
    let _ = deliver(&mut buf, &tx, &link, &s);
    End::Eof
}

/// How the reply side ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The server closed (or the client is gone): the request side ends on its own.
    Eof,
    /// The proxy ends the connection (a dropped reply, the data limit).
    Close,
}

/// How far [`deliver`] got.
enum Delivered {
    /// Every slot it could serve is served; the rest waits for the server.
    Wait,
    /// The connection entered pub/sub: pass everything through.
    Raw,
    /// A dropped reply closes the connection (with a reset).
    Close,
    /// The client side is gone, or the server spoke out of turn.
    Broken,
}

/// Serve slots from the front while their replies are at hand: local answers at once, server
/// replies as they complete in `buf` (push messages pass through without a slot).
fn deliver(
    buf: &mut Vec<u8>,
    tx: &mpsc::UnboundedSender<Chunk>,
    link: &Link,
    s: &Shared,
) -> Delivered {
    let mut out: Vec<u8> = vec![];
    let mut used = 0;
    let result = loop {
        let mut slots = link.slots.lock().expect("slots lock");
        let Some(front) = slots.front() else {
            // Nothing asked: a RESP3 push may still come (client tracking); anything else is
            // the server speaking out of turn, kept until a slot claims it.
            if buf.get(used) == Some(&b'>') {
                if let Ok(Some((n, _))) = crate::valkey::resp::scan(&buf[used..]) {
                    out.extend_from_slice(&buf[used..used + n]);
                    used += n;
                    continue;
                }
            }
            break Delivered::Wait;
        };
        match front {
            Slot::Answer(a) => {
                out.extend_from_slice(a);
                slots.pop_front();
                continue;
            }
            Slot::Passthrough => {
                slots.pop_front();
                out.extend_from_slice(&buf[used..]);
                used = buf.len();
                break Delivered::Raw;
            }
            Slot::Server | Slot::Drop(_) | Slot::Swallow => {}
        }
        let n = match crate::valkey::resp::scan(&buf[used..]) {
            Ok(Some((n, _))) => n,
            Ok(None) => break Delivered::Wait,
            Err(_) => break Delivered::Broken,
        };
        if buf[used] == b'>' {
            out.extend_from_slice(&buf[used..used + n]);
            used += n;
            continue;
        }
        let reply = &buf[used..used + n];
        used += n;
        match slots.pop_front() {
            Some(Slot::Server) => out.extend_from_slice(reply),
            Some(Slot::Drop(AfterDrop::Close)) => break Delivered::Close,
            Some(Slot::Drop(AfterDrop::Hang)) => {
                link.hung.store(true, Ordering::Relaxed);
                slots.clear();
                used = buf.len();
                break Delivered::Wait;
            }
            _ => {}
        }
    };
    buf.drain(..used);
    if !out.is_empty() {
        link.touch(s);
        let at = s.byte_delay(false);
        if tx.send((out, at)).is_err() {
            return Delivered::Broken;
        }
    }
    result
}
