//! The RESP proxy's connection to the server: plain TCP, or TLS when the target is `rediss://`
//! (the agent's own connections reach the proxy in clear text on loopback, so the proxy can read
//! their commands; the proxy speaks TLS to the server with the target's settings).

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpStream;

use crate::valkey::conn::TlsSettings;
/// A connection to the server.
pub use crate::valkey::stream::Stream as Upstream;

/// Connect to `addr`, with TLS when `tls` is given.
pub async fn connect(addr: SocketAddr, tls: Option<&TlsSettings>) -> io::Result<Upstream> {
    let tcp = TcpStream::connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    let Some(tls) = tls else {
        return Ok(Upstream::Tcp(tcp));
    };
    let name = rustls_pki_types::ServerName::try_from(tls.server_name.clone())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let s = tokio_rustls::TlsConnector::from(tls.config.clone())
        .connect(name, tcp)
        .await?;
    Ok(Upstream::Tls(Box::new(s)))
}
