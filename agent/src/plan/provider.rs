//! Managed-service profiles as plain data: which provider a host belongs to, which commands it
//! refuses, and for each refused admin command the provider's own way to get the same effect.
//!
//! Pure: no I/O, only `std`. `compat` labels a refused probe with the provider; the fault layer
//! can use [`Provider::way_out`] to explain a fault that cannot run against a managed target.
//!
//! Sources: Aiven's and ElastiCache's published restricted-command lists; DigitalOcean publishes
//! none and changes configuration through its API, so its list holds only what that implies
//! (`CONFIG`, `DEBUG`, replication control) and [`Provider::publishes_list`] says so.

use std::fmt;

/// Where a target runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// DigitalOcean Managed Valkey/Redis (`*.db.ondigitalocean.com`).
    DigitalOcean,
    /// Amazon ElastiCache, node-based or serverless (`*.cache.amazonaws.com`).
    ElastiCache,
    /// Aiven for Valkey/Redis (`*.aivencloud.com`).
    Aiven,
    /// A server you run yourself: nothing is forbidden by a provider.
    SelfHosted,
}

/// A provider name `parse` does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProvider(pub String);

impl fmt::Display for UnknownProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown provider {:?}: expected digitalocean, elasticache, aiven or self-hosted",
            self.0
        )
    }
}

impl std::error::Error for UnknownProvider {}

const DIGITALOCEAN_FORBIDS: &[&str] = &["CONFIG", "DEBUG", "REPLICAOF", "SLAVEOF", "FAILOVER"];

const ELASTICACHE_FORBIDS: &[&str] = &[
    "BGREWRITEAOF",
    "BGSAVE",
    "CONFIG",
    "DEBUG",
    "MIGRATE",
    "PSYNC",
    "REPLICAOF",
    "SAVE",
    "SHUTDOWN",
    "SLAVEOF",
    "SYNC",
];

const AIVEN_FORBIDS: &[&str] = &[
    "ACL",
    "CLUSTER",
    "COMMAND",
    "CONFIG",
    "DEBUG",
    "FAILOVER",
    "MONITOR",
    "REPLICAOF",
    "SLAVEOF",
];

impl Provider {
    pub const ALL: [Provider; 4] = [
        Provider::DigitalOcean,
        Provider::ElastiCache,
        Provider::Aiven,
        Provider::SelfHosted,
    ];

    /// The value a `--provider` flag takes: `digitalocean`, `elasticache`, `aiven`,
    /// `self-hosted` (case-insensitive; `do`, `aws` and `selfhosted` are accepted too).
    pub fn parse(s: &str) -> Result<Provider, UnknownProvider> {
        match s.trim().to_ascii_lowercase().as_str() {
            "digitalocean" | "do" => Ok(Provider::DigitalOcean),
            "elasticache" | "aws" => Ok(Provider::ElastiCache),
            "aiven" => Ok(Provider::Aiven),
            "self-hosted" | "selfhosted" => Ok(Provider::SelfHosted),
            _ => Err(UnknownProvider(s.to_string())),
        }
    }

    /// The `--provider` spelling.
    pub fn id(self) -> &'static str {
        match self {
            Provider::DigitalOcean => "digitalocean",
            Provider::ElastiCache => "elasticache",
            Provider::Aiven => "aiven",
            Provider::SelfHosted => "self-hosted",
        }
    }

    /// The name shown to people.
    pub fn name(self) -> &'static str {
        match self {
            Provider::DigitalOcean => "DigitalOcean",
            Provider::ElastiCache => "ElastiCache",
            Provider::Aiven => "Aiven",
            Provider::SelfHosted => "self-hosted",
        }
    }

    /// The provider of a well-known managed hostname; `None` for anything else (an IP address,
    /// `localhost`, a private DNS name), which may still be managed behind another name.
    pub fn detect(host: &str) -> Option<Provider> {
        let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
        let under = |suffix: &str| {
            h.strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1)
        };
        if under("db.ondigitalocean.com") {
            Some(Provider::DigitalOcean)
        } else if under("cache.amazonaws.com") || under("cache.amazonaws.com.cn") {
            Some(Provider::ElastiCache)
        } else if under("aivencloud.com") {
            Some(Provider::Aiven)
        } else {
            None
        }
    }

    /// Whether the provider documents which commands it refuses (DigitalOcean does not).
    pub fn publishes_list(self) -> bool {
        !matches!(self, Provider::DigitalOcean)
    }

    /// The commands the provider refuses, upper-case top-level names.
    pub fn forbidden(self) -> &'static [&'static str] {
        match self {
            Provider::DigitalOcean => DIGITALOCEAN_FORBIDS,
            Provider::ElastiCache => ELASTICACHE_FORBIDS,
            Provider::Aiven => AIVEN_FORBIDS,
            Provider::SelfHosted => &[],
        }
    }

    /// Whether `command` (`"CONFIG"`, `"config set"`, `"CLIENT SETINFO"`) is on the provider's
    /// list; a subcommand is judged by its top-level command.
    pub fn forbids(self, command: &str) -> bool {
        let top = top_level(command);
        self.forbidden()
            .iter()
            .any(|c| c.eq_ignore_ascii_case(&top))
    }

    /// For a refused admin command, how to get its effect on this provider, in one line.
    /// `None` when the provider does not refuse it or offers nothing in its place.
    pub fn way_out(self, command: &str) -> Option<&'static str> {
        if !self.forbids(command) {
            return None;
        }
        let top = top_level(command);
        let line = match (self, top.as_str()) {
            (Provider::DigitalOcean, "CONFIG") => {
                "on DigitalOcean change maxmemory-policy, timeout and other settings through \
                 the control panel or the API (doctl databases configuration update)"
            }
            (Provider::DigitalOcean, "REPLICAOF" | "SLAVEOF" | "FAILOVER") => {
                "on DigitalOcean the standby node is promoted automatically; a resize or \
                 version upgrade through the API is the only failover you can start"
            }
            (Provider::ElastiCache, "CONFIG") => {
                "on ElastiCache change settings in a custom parameter group \
                 (aws elasticache modify-cache-parameter-group)"
            }
            (Provider::ElastiCache, "REPLICAOF" | "SLAVEOF") => {
                "on ElastiCache use the TestFailover API (aws elasticache test-failover)"
            }
            (Provider::ElastiCache, "SYNC" | "PSYNC") => {
                "on ElastiCache replicate out through online migration or a backup export, \
                 not PSYNC-based tools"
            }
            (Provider::ElastiCache, "SAVE" | "BGSAVE" | "BGREWRITEAOF") => {
                "on ElastiCache take a backup with the CreateSnapshot API"
            }
            (Provider::ElastiCache, "SHUTDOWN") => {
                "on ElastiCache reboot nodes with the RebootCacheCluster API"
            }
            (Provider::Aiven, "CONFIG") => {
                "on Aiven change settings in the service's advanced configuration \
                 (avn service update -c …)"
            }
            (Provider::Aiven, "REPLICAOF" | "SLAVEOF" | "FAILOVER") => {
                "on Aiven a plan change or maintenance update moves the service to new nodes; \
                 there is no client-side failover"
            }
            (Provider::Aiven, "ACL") => {
                "on Aiven manage users and their ACLs in the console or with avn service user-create"
            }
            (Provider::Aiven, "MONITOR") => {
                "on Aiven sample traffic with INFO commandstats instead of MONITOR"
            }
            (_, "DEBUG") => {
                "no provider equivalent: stall or drop connections with the agent's proxy faults"
            }
            _ => return None,
        };
        Some(line)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `"config set"` → `"CONFIG"`, `"client|setinfo"` → `"CLIENT"`.
fn top_level(command: &str) -> String {
    command
        .split(|c: char| c.is_whitespace() || c == '|')
        .find(|s| !s.is_empty())
        .unwrap_or_default()
        .to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_rejects_others() {
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.id()), Ok(p));
            assert_eq!(Provider::parse(&p.id().to_uppercase()), Ok(p));
        }
        assert_eq!(Provider::parse("do"), Ok(Provider::DigitalOcean));
        assert_eq!(Provider::parse(" AWS "), Ok(Provider::ElastiCache));
        assert_eq!(Provider::parse("selfhosted"), Ok(Provider::SelfHosted));
        let e = Provider::parse("azure").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown provider \"azure\": expected digitalocean, elasticache, aiven or self-hosted"
        );
    }

    #[test]
    fn detects_managed_hostnames() {
        let cases = [
            (
                "db-valkey-fra1-12345-do-user-678-0.m.db.ondigitalocean.com",
                Some(Provider::DigitalOcean),
            ),
            (
                "private-db-valkey-ams3-1-do-user-2-0.b.db.ondigitalocean.com.",
                Some(Provider::DigitalOcean),
            ),
            (
                "master.echo-cache.abc123.euw1.cache.amazonaws.com",
                Some(Provider::ElastiCache),
            ),
            (
                "echo-abc123.serverless.euw1.cache.amazonaws.com",
                Some(Provider::ElastiCache),
            ),
            (
                "echo.abc123.cnn1.cache.amazonaws.com.cn",
                Some(Provider::ElastiCache),
            ),
            ("VALKEY-ECHO-PROJ.AIVENCLOUD.COM", Some(Provider::Aiven)),
            ("127.0.0.1", None),
            ("localhost", None),
            ("::1", None),
            ("valkey.internal", None),
            // Suffix on a label boundary only, and never the bare domain.
            ("evilaivencloud.com", None),
            ("aivencloud.com", None),
            ("db.ondigitalocean.com", None),
            ("ondigitalocean.com", None),
            ("cache.amazonaws.com.example.org", None),
            ("s3.amazonaws.com", None),
            ("", None),
        ];
        for (host, want) in cases {
            assert_eq!(Provider::detect(host), want, "{host}");
        }
    }

    #[test]
    fn forbidden_lists() {
        for p in [
            Provider::DigitalOcean,
            Provider::ElastiCache,
            Provider::Aiven,
        ] {
            assert!(p.forbids("CONFIG"), "{p}");
            assert!(p.forbids("config set"), "{p}");
            assert!(p.forbids("config|get"), "{p}");
            assert!(p.forbids("DEBUG"), "{p}");
            assert!(p.forbids("replicaof"), "{p}");
            // The commands ECHO's clients send are allowed everywhere.
            for ok in ["GET", "EVALSHA", "KEYS", "CLIENT SETINFO", "SELECT", "SCAN"] {
                assert!(!p.forbids(ok), "{p} {ok}");
            }
        }
        assert!(Provider::Aiven.forbids("MONITOR") && Provider::Aiven.forbids("COMMAND"));
        assert!(Provider::Aiven.forbids("ACL") && Provider::Aiven.forbids("CLUSTER SHARDS"));
        assert!(Provider::Aiven.forbids("FAILOVER"));
        assert!(Provider::ElastiCache.forbids("SYNC") && Provider::ElastiCache.forbids("PSYNC"));
        assert!(!Provider::ElastiCache.forbids("MONITOR"));
        assert!(Provider::SelfHosted.forbidden().is_empty());
        assert!(!Provider::SelfHosted.forbids("CONFIG"));
        assert!(!Provider::DigitalOcean.publishes_list());
        assert!(Provider::Aiven.publishes_list() && Provider::ElastiCache.publishes_list());
        // Every list is upper-case and without duplicates.
        for p in Provider::ALL {
            let l = p.forbidden();
            for (i, c) in l.iter().enumerate() {
                assert_eq!(*c, c.to_ascii_uppercase(), "{p} {c}");
                assert!(!l[i + 1..].contains(c), "{p} lists {c} twice");
            }
        }
    }

    #[test]
    fn way_out_for_each_forbidden_admin_command() {
        let w = Provider::DigitalOcean.way_out("CONFIG SET").unwrap();
        assert!(w.contains("maxmemory-policy") && w.contains("API"), "{w}");
        let w = Provider::ElastiCache.way_out("replicaof").unwrap();
        assert!(w.contains("TestFailover"), "{w}");
        let w = Provider::ElastiCache.way_out("CONFIG").unwrap();
        assert!(w.contains("parameter group"), "{w}");
        let w = Provider::Aiven.way_out("config get").unwrap();
        assert!(w.contains("advanced configuration"), "{w}");
        // Commands a provider allows, and providers that forbid nothing, have no way out.
        assert_eq!(Provider::ElastiCache.way_out("MONITOR"), None);
        assert_eq!(Provider::SelfHosted.way_out("CONFIG"), None);
        assert_eq!(Provider::Aiven.way_out("KEYS"), None);
        // The admin commands a fault or a probe needs all have one, on every provider.
        for p in [
            Provider::DigitalOcean,
            Provider::ElastiCache,
            Provider::Aiven,
        ] {
            for c in ["CONFIG", "DEBUG", "REPLICAOF"] {
                let w = p.way_out(c).unwrap_or_else(|| panic!("{p} {c}"));
                assert!(!w.is_empty() && !w.ends_with('.'), "{p} {c}: {w}");
            }
        }
        // One line each.
        for p in Provider::ALL {
            for c in p.forbidden() {
                if let Some(w) = p.way_out(c) {
                    assert!(!w.contains('\n'), "{p} {c}");
                }
            }
        }
    }
}
