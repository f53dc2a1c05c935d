//! Where to send load: `redis://` / `rediss://` URLs, credentials, TLS settings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls;

use super::conn::{ConnectOptions, TlsSettings};

pub use super::url::TargetUrl;

/// What a run is pointed at: a topology the agent started, a server it was given, or a cutover
/// rehearsal's two sides.
pub enum Target {
    Embedded(super::embedded::Topology),
    External(TargetUrl),
    /// The clients use the source until the switch, the destination after it.
    Migration {
        source: Box<Target>,
        destination: Box<Target>,
    },
}

impl Target {
    /// The address of a side's (primary) server.
    pub fn addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Target::Embedded(t) => Some(t.primary().addr()),
            Target::External(u) => {
                use std::net::ToSocketAddrs;
                u.host_port().to_socket_addrs().ok()?.next()
            }
            Target::Migration { source, .. } => source.addr(),
        }
    }

    /// Stop every server the agent started.
    pub fn stop(&mut self) {
        match self {
            Target::Embedded(t) => t.stop(),
            Target::External(_) => {}
            Target::Migration {
                source,
                destination,
            } => {
                source.stop();
                destination.stop();
            }
        }
    }
}

impl TargetUrl {
    /// Connection options for this URL; `password_env` fills a missing password.
    pub fn connect_options(
        &self,
        tls: &TlsChoice,
        timeout: Duration,
    ) -> Result<ConnectOptions, String> {
        let tls = if self.tls {
            let insecure = self.insecure || tls.insecure;
            Some(TlsSettings {
                config: client_config(insecure, tls.ca_file.as_ref())?,
                server_name: self.host.clone(),
            })
        } else {
            None
        };
        Ok(ConnectOptions {
            tls,
            username: self.username.clone(),
            password: self.password.clone(),
            db: self.db,
            timeout,
            ..ConnectOptions::default()
        })
    }
}

/// TLS choices from the command line.
#[derive(Clone, Debug, Default)]
pub struct TlsChoice {
    pub insecure: bool,
    pub ca_file: Option<PathBuf>,
}

/// Build a rustls client configuration: webpki roots plus an optional CA file, or no verification.
pub fn client_config(
    insecure: bool,
    ca_file: Option<&PathBuf>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = ca_file {
            use rustls_pki_types::pem::PemObject;
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
            let mut n = 0;
            for c in certs {
                let c = c.map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("unusable CA certificate in {}: {e}", path.display()))?;
                n += 1;
            }
            if n == 0 {
                return Err(format!(
                    "CA file {} holds no PEM certificate",
                    path.display()
                ));
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_urls() {
        let t = TargetUrl::parse("rediss://default:s3cr%40t@db.example.com:25061/2?insecure=true")
            .unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.tls,
                t.insecure,
                t.username.as_deref(),
                t.password.as_deref(),
                t.db
            ),
            (
                "db.example.com",
                25061,
                true,
                true,
                Some("default"),
                Some("s3cr@t"),
                2
            )
        );
        assert_eq!(t.to_string(), "rediss://default@db.example.com:25061/2");
        let t = TargetUrl::parse("redis://127.0.0.1").unwrap();
        assert_eq!((t.port, t.db, t.password.clone()), (6379, 0, None));
        assert!(t.is_loopback());
        let t = TargetUrl::parse("redis://:pw@[::1]:7000").unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.password.as_deref(),
                t.username.as_deref()
            ),
            ("::1", Some("pw"), None)
        );
        assert!(t.is_loopback());
        assert!(TargetUrl::parse("http://x")
            .unwrap_err()
            .contains("unsupported scheme"));
        assert!(TargetUrl::parse("redis://x/abc")
            .unwrap_err()
            .contains("database number"));
    }
}
