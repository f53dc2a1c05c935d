//! Target URLs: `redis://` / `rediss://` with credentials, database and TLS flags. Pure parsing
//! (no I/O), so the scenario compiler can check a `[target].url` without touching the network.

/// A parsed target URL plus TLS choices. The password never appears in `Display`.
#[derive(Clone, Debug)]
pub struct TargetUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub insecure: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The database the URL names (`/N`), 0 without one.
    pub db: u32,
    /// Whether the URL names its database (`/0` does, no path does not): `verify` and `lag`
    /// then compare only that database.
    pub db_given: bool,
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
        let db_given = !path.is_empty();
        let db = if db_given {
            path.parse()
                .map_err(|_| format!("invalid database number {path:?} in {s:?}"))?
        } else {
            0
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
            db_given,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_in_the_path_is_told_from_none() {
        let cases = [
            ("redis://h:1", 0, false, "redis://h:1"),
            ("redis://h:1/", 0, false, "redis://h:1"),
            ("redis://h:1/0", 0, true, "redis://h:1"),
            ("redis://h:1/2", 2, true, "redis://h:1/2"),
            (
                "rediss://:pw@h:1/15?insecure=true",
                15,
                true,
                "rediss://***@h:1/15",
            ),
        ];
        for (url, db, given, shown) in cases {
            let t = TargetUrl::parse(url).unwrap();
            assert_eq!(
                (t.db, t.db_given, t.to_string()),
                (db, given, shown.into()),
                "{url}"
            );
        }
    }
}
