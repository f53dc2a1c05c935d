//! Where to send load: `redis://` / `rediss://` URLs, credentials, TLS settings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls;

use super::conn::{ConnectOptions, TlsSettings};

/// A parsed target URL plus TLS choices. The password never appears in `Display`.
#[derive(Clone, Debug)]
pub struct TargetUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub insecure: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: u32,
}

impl std::fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "rediss" } else { "redis" };
        write!(f, "{scheme}://")?;
        if let Some(u) = &self.username {
            write!(f, "{u}@")?;
        } else if self.password.is_some() {
            write!(f, "***@")?;
        }
        write!(f, "{}:{}", self.host, self.port)?;
        if self.db != 0 {
            write!(f, "/{}", self.db)?;
        }
        Ok(())
    }
}

impl TargetUrl {
    /// Parse `redis://[user[:pass]@]host[:port][/db][?insecure=true]` or `rediss://…`.
    pub fn parse(s: &str) -> Result<TargetUrl, String> {
        let u = url::Url::parse(s).map_err(|e| format!("invalid target URL {s:?}: {e}"))?;
        let tls = match u.scheme() {
            "redis" | "valkey" => false,
            "rediss" | "valkeys" => true,
            other => {
                return Err(format!(
                    "unsupported scheme {other:?} in {s:?}: use redis:// or rediss://"
                ))
            }
        };
        let host = u
            .host_str()
            .ok_or_else(|| format!("target URL {s:?} has no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = u.port().unwrap_or(6379);
        let decode = |x: &str| {
            url::form_urlencoded::parse(format!("x={x}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        let username = (!u.username().is_empty()).then(|| decode(u.username()).unwrap_or_default());
        let password = u.password().and_then(decode);
        // `redis://:pass@host` → no user; `redis://user@host` with no password → treat as password (redis-py)
        let (username, password) = match (username, password) {
            (Some(u), None) => (None, Some(u)),
            (u, p) => (u.filter(|x| !x.is_empty()), p),
        };
        let path = u.path().trim_start_matches('/');
        let db = if path.is_empty() {
            0
        } else {
            path.parse()
                .map_err(|_| format!("invalid database number {path:?} in {s:?}"))?
        };
        let mut insecure = false;
        for (k, v) in u.query_pairs() {
            match (&*k, &*v) {
                ("insecure", "true") | ("ssl_cert_reqs", "none") => insecure = true,
                ("insecure", _) | ("ssl_cert_reqs", _) => {}
                ("db", d) => {
                    let _ = d;
                }
                (k, _) => {
                    return Err(format!(
                        "unknown URL parameter {k:?} in {s:?} (known: insecure=true)"
                    ))
                }
            }
        }
        Ok(TargetUrl {
            host,
            port,
            tls,
            insecure,
            username,
            password,
            db,
        })
    }

    /// `host:port` as given.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether the host is a loopback address (destructive faults are allowed there).
    pub fn is_loopback(&self) -> bool {
        if self.host == "localhost" {
            return true;
        }
        self.host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
    }

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
