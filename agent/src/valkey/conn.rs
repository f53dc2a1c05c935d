//! One connection: TCP or TLS, the handshake, requests and pipelines with a deadline.
//!
//! A lean client on purpose: one socket per worker, no multiplexer, so a pipeline is one write
//! and the measured time is the server's plus the network's, not a shared queue's.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use super::error::{Error, ErrorKind};
use super::resp::{self, Cmd, Value};
use super::stream::Stream;

/// How to open and introduce a connection (everything but where to).
#[derive(Clone)]
pub struct ConnectOptions {
    pub tls: Option<TlsSettings>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: u32,
    /// Per request (and connect) deadline.
    pub timeout: Duration,
    /// `CLIENT SETINFO LIB-NAME/LIB-VER` values sent after connecting, as redis-py 5.0.6 does.
    pub lib_info: Option<(String, String)>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("tls", &self.tls.is_some())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("db", &self.db)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            tls: None,
            username: None,
            password: None,
            db: 0,
            timeout: Duration::from_secs(5),
            lib_info: Some(("valkey-chaos".into(), env!("CARGO_PKG_VERSION").into())),
        }
    }
}

/// TLS client configuration plus the name to verify.
#[derive(Clone)]
pub struct TlsSettings {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: String,
}

/// One open connection. After a timeout or I/O error it is `broken` and must be dropped.
pub struct Conn {
    stream: Stream,
    rbuf: Vec<u8>,
    rpos: usize,
    wbuf: Vec<u8>,
    timeout: Duration,
    broken: bool,
    addr: SocketAddr,
    /// The request deadline's timer, kept across requests: registering a tokio timer per
    /// request costs more than the request's own work at high rates, so the timer is only
    /// moved when it fires before the current request's deadline (about once per `timeout`).
    watchdog: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Conn {
    /// Connect, do TLS if configured, then AUTH / SETINFO / SELECT.
    pub async fn connect(addr: SocketAddr, opts: &ConnectOptions) -> Result<Conn, Error> {
        let tcp = tokio::time::timeout(opts.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Timeout,
                    format!("connect to {addr} timed out after {:?}", opts.timeout),
                )
            })?
            .map_err(|e| {
                Error::new(
                    ErrorKind::Connection,
                    format!("cannot connect to {addr}: {e}"),
                )
            })?;
        let _ = tcp.set_nodelay(true);
        let stream = match &opts.tls {
            None => Stream::Tcp(tcp),
            Some(tls) => {
                let name = rustls_pki_types::ServerName::try_from(tls.server_name.clone())
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::Connection,
                            format!("bad TLS server name {:?}: {e}", tls.server_name),
                        )
                    })?;
                let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
                let s = tokio::time::timeout(opts.timeout, connector.connect(name, tcp))
                    .await
                    .map_err(|_| {
                        Error::new(
                            ErrorKind::Timeout,
                            format!("TLS handshake with {addr} timed out"),
                        )
                    })?
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::Connection,
                            format!("TLS handshake with {addr} failed: {e}{}", tls_hint(&e)),
                        )
                    })?;
                Stream::Tls(Box::new(s))
            }
        };
        let mut conn = Conn {
            stream,
            // Small to start (thousands of connections for plugin VUs): both grow with what
            // goes through them and keep their size.
            rbuf: Vec::with_capacity(READ_MIN),
            rpos: 0,
            wbuf: Vec::with_capacity(256),
            timeout: opts.timeout,
            broken: false,
            addr,
            watchdog: None,
        };
        if let Some(pass) = &opts.password {
            let mut c = Cmd::new("AUTH");
            if let Some(user) = &opts.username {
                c.push(user.as_str());
            }
            c.push(pass.as_str());
            conn.request(&c)
                .await
                .map_err(|e| Error::new(e.kind, format!("AUTH at {addr} failed: {}", e.msg)))?;
        }
        if let Some((name, ver)) = &opts.lib_info {
            // Redis < 7.2 answers "unknown subcommand": ignored, like redis-py does.
            let _ = conn
                .request(
                    &Cmd::new("CLIENT")
                        .arg("SETINFO")
                        .arg("LIB-NAME")
                        .arg(name.as_str()),
                )
                .await;
            let _ = conn
                .request(
                    &Cmd::new("CLIENT")
                        .arg("SETINFO")
                        .arg("LIB-VER")
                        .arg(ver.as_str()),
                )
                .await;
            if conn.broken {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!("connection to {addr} lost during handshake"),
                ));
            }
        }
        if opts.db != 0 {
            conn.request(&Cmd::new("SELECT").arg(opts.db as u64))
                .await
                .map_err(|e| {
                    Error::new(
                        e.kind,
                        format!("SELECT {} at {addr} failed: {}", opts.db, e.msg),
                    )
                })?;
        }
        Ok(conn)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn is_broken(&self) -> bool {
        self.broken
    }
    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    /// Send one command and read its reply. A server error reply becomes `Err` with its kind.
    pub async fn request(&mut self, cmd: &Cmd) -> Result<Value, Error> {
        self.wbuf.clear();
        cmd.encode(&mut self.wbuf);
        match self.exchange(1).await {
            Ok(mut v) => reply_to_result(v.pop().unwrap_or(Value::Nil)),
            Err(e) => Err(e),
        }
    }

    /// Send raw argument lists (binary-safe) as one command.
    pub async fn request_args<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value, Error> {
        self.wbuf.clear();
        resp::encode_args(args, &mut self.wbuf);
        match self.exchange(1).await {
            Ok(mut v) => reply_to_result(v.pop().unwrap_or(Value::Nil)),
            Err(e) => Err(e),
        }
    }

    /// Send several commands in one write and read all replies. The outer error is a
    /// connection-level failure; each inner result is that command's reply.
    pub async fn pipeline(&mut self, cmds: &[Cmd]) -> Result<Vec<Result<Value, Error>>, Error> {
        self.wbuf.clear();
        for c in cmds {
            c.encode(&mut self.wbuf);
        }
        let replies = self.exchange(cmds.len()).await?;
        Ok(replies.into_iter().map(reply_to_result).collect())
    }

    /// Write pre-encoded bytes (`n` commands) and read `n` raw replies.
    pub async fn pipeline_encoded(
        &mut self,
        encoded: &[u8],
        n: usize,
    ) -> Result<Vec<Value>, Error> {
        self.wbuf.clear();
        self.wbuf.extend_from_slice(encoded);
        self.exchange(n).await
    }

    /// Write pre-encoded bytes (`n` commands) and read `n` replies keeping only their outcome:
    /// `Ok` or the kind of the error reply. Nothing is allocated per reply (the load path).
    /// The outer error is a connection-level failure.
    pub async fn pipeline_status(
        &mut self,
        encoded: &[u8],
        n: usize,
        out: &mut Vec<Result<(), ErrorKind>>,
    ) -> Result<(), Error> {
        self.wbuf.clear();
        self.wbuf.extend_from_slice(encoded);
        self.exchange_with(n, Replies::Status(out)).await
    }

    /// Read one more value without sending anything (pub/sub, MONITOR).
    pub async fn read_value(&mut self) -> Result<Value, Error> {
        self.wbuf.clear();
        let mut v = self.exchange(1).await?;
        Ok(v.pop().unwrap_or(Value::Nil))
    }

    async fn exchange(&mut self, n: usize) -> Result<Vec<Value>, Error> {
        let mut out = Vec::with_capacity(n);
        self.exchange_with(n, Replies::Values(&mut out)).await?;
        Ok(out)
    }

    /// Write `wbuf`, read `n` replies into `out`, within the deadline.
    async fn exchange_with(&mut self, n: usize, mut out: Replies<'_>) -> Result<(), Error> {
        if self.broken {
            return Err(Error::new(
                ErrorKind::Connection,
                format!("connection to {} is broken", self.addr),
            ));
        }
        let timeout = self.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut dog = match self.watchdog.take() {
            Some(mut d) => {
                if d.deadline() > deadline {
                    d.as_mut().reset(deadline);
                }
                d
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        let r = {
            let mut io = std::pin::pin!(exchange_io(
                &mut self.stream,
                &mut self.rbuf,
                &mut self.rpos,
                &self.wbuf,
                self.addr,
                n,
                &mut out,
            ));
            std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = io.as_mut().poll(cx) {
                    return Poll::Ready(Some(r));
                }
                // The timer may be set for an earlier request's deadline: move it on (at most
                // once per poll) until this request's own deadline has passed.
                for _ in 0..2 {
                    if dog.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Poll::Ready(None);
                    }
                    dog.as_mut().reset(deadline);
                }
                Poll::Pending
            })
            .await
        };
        self.watchdog = Some(dog);
        match r {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => {
                self.broken = true;
                Err(e)
            }
            None => {
                self.broken = true;
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!("no reply from {} within {:?}", self.addr, timeout),
                ))
            }
        }
    }
}

/// The least a read asks the socket for (and a new connection's read buffer).
const READ_MIN: usize = 1024;

/// Where replies go: whole values, or only their outcome (no allocation per reply).
enum Replies<'a> {
    Values(&'a mut Vec<Value>),
    Status(&'a mut Vec<Result<(), ErrorKind>>),
}

/// Write the request, then read and parse until `n` replies are in `out`. Reads go into the
/// buffer's spare capacity (never zero-filled).
async fn exchange_io(
    stream: &mut Stream,
    rbuf: &mut Vec<u8>,
    rpos: &mut usize,
    wbuf: &[u8],
    addr: SocketAddr,
    n: usize,
    out: &mut Replies<'_>,
) -> Result<(), Error> {
    let io_err = move |e: io::Error| Error::new(ErrorKind::Connection, format!("{addr}: {e}"));
    if !wbuf.is_empty() {
        stream.write_all(wbuf).await.map_err(io_err)?;
        stream.flush().await.map_err(io_err)?;
    }
    let mut got = 0;
    while got < n {
        let parsed = match out {
            Replies::Values(v) => resp::parse(&rbuf[*rpos..]).map(|r| {
                r.map(|(x, used)| {
                    v.push(x);
                    used
                })
            }),
            Replies::Status(v) => resp::scan(&rbuf[*rpos..]).map(|r| {
                r.map(|(used, err)| {
                    v.push(match err {
                        None => Ok(()),
                        Some(text) => Err(super::error::classify(text)),
                    });
                    used
                })
            }),
        };
        match parsed {
            Ok(Some(used)) => {
                *rpos += used;
                got += 1;
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::Other,
                    format!("protocol error from {addr}: {}", e.0),
                ))
            }
        }
        if *rpos > 0 {
            rbuf.drain(..*rpos);
            *rpos = 0;
        }
        if rbuf.capacity() - rbuf.len() < READ_MIN / 2 {
            // Doubles: a large reply takes a logarithmic number of reads to fit.
            rbuf.reserve(rbuf.capacity().max(READ_MIN));
        }
        match stream.read_buf(rbuf).await {
            Ok(0) => {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!("connection closed by {addr}"),
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    if *rpos == rbuf.len() {
        rbuf.clear();
        *rpos = 0;
    }
    Ok(())
}

/// What to do about a certificate the handshake rejected (empty for other failures).
fn tls_hint(e: &io::Error) -> &'static str {
    let Some(rustls::Error::InvalidCertificate(c)) =
        e.get_ref().and_then(|x| x.downcast_ref::<rustls::Error>())
    else {
        return "";
    };
    match c {
        rustls::CertificateError::UnknownIssuer => {
            " (unknown issuer: the server certificate is not signed by a trusted CA; pass \
             --tls-ca FILE with that CA, or --tls-insecure / ?insecure=true to skip verification)"
        }
        rustls::CertificateError::NotValidForName
        | rustls::CertificateError::NotValidForNameContext { .. } => {
            " (the certificate does not name this host: connect by a name it lists, or pass \
             --tls-insecure / ?insecure=true to skip verification)"
        }
        _ => " (certificate rejected: pass --tls-ca FILE, or --tls-insecure / ?insecure=true to skip verification)",
    }
}

/// Turn an error reply into `Err` with its classified kind.
pub fn reply_to_result(v: Value) -> Result<Value, Error> {
    match v {
        Value::Error(msg) => Err(Error::server(msg)),
        v => Ok(v),
    }
}
