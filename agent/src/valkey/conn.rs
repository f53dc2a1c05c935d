//! One connection: TCP or TLS, the handshake, requests and pipelines with a deadline.
//!
//! A lean client on purpose: one socket per worker, no multiplexer, so a pipeline is one write
//! and the measured time is the server's plus the network's, not a shared queue's.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

use super::error::{Error, ErrorKind};
use super::resp::{self, Cmd, Value};

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

enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
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
            rbuf: Vec::with_capacity(16 * 1024),
            rpos: 0,
            wbuf: Vec::with_capacity(16 * 1024),
            timeout: opts.timeout,
            broken: false,
            addr,
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

    /// Read one more value without sending anything (pub/sub, MONITOR).
    pub async fn read_value(&mut self) -> Result<Value, Error> {
        self.wbuf.clear();
        let mut v = self.exchange(1).await?;
        Ok(v.pop().unwrap_or(Value::Nil))
    }

    async fn exchange(&mut self, n: usize) -> Result<Vec<Value>, Error> {
        if self.broken {
            return Err(Error::new(
                ErrorKind::Connection,
                format!("connection to {} is broken", self.addr),
            ));
        }
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.exchange_inner(n)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.broken = true;
                Err(e)
            }
            Err(_) => {
                self.broken = true;
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!("no reply from {} within {:?}", self.addr, timeout),
                ))
            }
        }
    }

    async fn exchange_inner(&mut self, n: usize) -> Result<Vec<Value>, Error> {
        let addr = self.addr;
        let io_err = move |e: io::Error| Error::new(ErrorKind::Connection, format!("{addr}: {e}"));
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await.map_err(io_err)?;
            self.stream.flush().await.map_err(io_err)?;
        }
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match resp::parse(&self.rbuf[self.rpos..]) {
                Ok(Some((v, used))) => {
                    self.rpos += used;
                    out.push(v);
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
            if self.rpos > 0 {
                self.rbuf.drain(..self.rpos);
                self.rpos = 0;
            }
            let len = self.rbuf.len();
            if self.rbuf.capacity() - len < 4096 {
                self.rbuf.reserve(self.rbuf.capacity().max(16 * 1024));
            }
            self.rbuf.resize(self.rbuf.capacity(), 0);
            let r = self.stream.read(&mut self.rbuf[len..]).await;
            match r {
                Ok(0) => {
                    self.rbuf.truncate(len);
                    return Err(Error::new(
                        ErrorKind::Connection,
                        format!("connection closed by {addr}"),
                    ));
                }
                Ok(k) => self.rbuf.truncate(len + k),
                Err(e) => {
                    self.rbuf.truncate(len);
                    return Err(io_err(e));
                }
            }
        }
        if self.rpos == self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
        }
        Ok(out)
    }
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
