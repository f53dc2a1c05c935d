//! Whether data can move between two servers by replication, and so whether a cutover can be
//! rolled back that way: the new side (after the cutover, the primary) replicating into the old
//! engine. A replica loads its primary's RDB, and a server loads only the RDB versions it knows.
//! Pure: the servers are given by engine and version, the data by the types in use.
//!
//! Tested here with the binaries the project ships (every pair of Redis 7.0.15, Valkey 8.1.8 and
//! Valkey 9.1.2, `tests/it/rollback.rs`), the rest from the published formats:
//! - Redis writes its own RDB version: 2.6–3.0 → 6, 3.2 → 7, 4.0 → 8, 5.0–6.2 → 9, 7.0 → 10,
//!   7.2 → 11, 7.4 and 8.x → 12; it loads up to that version.
//! - Valkey 7.2–8.x write RDB 11 (Valkey 8.1 loads a newer one with `rdb-version-check relaxed`
//!   when every type is known); Valkey 9 writes `VALKEY080` to disk and to Valkey 9 replicas, and
//!   RDB 11 to a replica that does not announce Valkey 9 — unless a key needs the new format
//!   (hash fields with their own TTL: "Can't store key … in RDB version 11").
//! - So Valkey 8 → Redis 7.0 is closed (RDB 11 against Redis 7.0's 10: "Can't handle RDB format
//!   version 11"), and Valkey 9 → Redis 7.0 too; Valkey 9 → Valkey 8 holds while no hash field has
//!   a TTL. Backups are another matter: a Valkey 9 `dump.rdb` (`VALKEY080`) no Redis loads
//!   (valkey-io/valkey#665, #2422).

/// A server engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Redis,
    Valkey,
}

/// A server: engine and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server {
    pub engine: Engine,
    pub version: (u32, u32, u32),
}

impl Server {
    /// From `INFO server`'s version text (`7.0.15`); `None` when it is not `major.minor[.patch]`.
    pub fn parse(engine: Engine, version: &str) -> Option<Server> {
        let mut it = version.trim().split('.').map(|p| p.parse::<u32>().ok());
        let major = it.next()??;
        let minor = it.next()??;
        let patch = it.next().flatten().unwrap_or(0);
        Some(Server {
            engine,
            version: (major, minor, patch),
        })
    }

    /// `redis 7.0.15`.
    pub fn label(&self) -> String {
        let (a, b, c) = self.version;
        let e = match self.engine {
            Engine::Redis => "redis",
            Engine::Valkey => "valkey",
        };
        format!("{e} {a}.{b}.{c}")
    }

    fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.version.0, self.version.1) >= (major, minor)
    }

    /// The newest RDB version this server loads (its own).
    pub fn rdb_reads(&self) -> u32 {
        match self.engine {
            Engine::Valkey if self.at_least(9, 0) => 80,
            Engine::Valkey => 11,
            Engine::Redis => redis_rdb(self),
        }
    }

    /// The RDB version this server, as a primary, sends `replica` in a full sync.
    pub fn rdb_for(&self, replica: &Server) -> u32 {
        match self.engine {
            Engine::Valkey if self.at_least(9, 0) => {
                if replica.engine == Engine::Valkey && replica.at_least(9, 0) {
                    80
                } else {
                    11
                }
            }
            Engine::Valkey => 11,
            Engine::Redis => redis_rdb(self),
        }
    }

    /// One of the servers this project tests with (Redis 7.0, Valkey 8.1, Valkey 9.1).
    fn tested_here(&self) -> bool {
        matches!(
            (self.engine, self.version.0, self.version.1),
            (Engine::Redis, 7, 0) | (Engine::Valkey, 8, 1) | (Engine::Valkey, 9, 1)
        )
    }
}

fn redis_rdb(s: &Server) -> u32 {
    match (s.version.0, s.version.1) {
        (0..=2, _) | (3, 0) => 6,
        (3, _) => 7,
        (4, _) => 8,
        (5, _) | (6, _) => 9,
        (7, 0) => 10,
        (7, 1..=2) => 11,
        _ => 12,
    }
}

/// What the data holds that an older format may not carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InUse {
    /// Hash fields with a TTL of their own (`HEXPIRE`, `HSETEX`: Valkey 9, Redis 7.4).
    pub field_ttls: bool,
    /// Modules loaded on the primary (their types need the module on the replica).
    pub modules: Vec<String>,
}

/// Whether `to` can replicate from `from`, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub possible: bool,
    /// The reason, with the versions and formats involved.
    pub reason: String,
    /// What would close it later, when it is possible now (a type not used yet).
    pub unless: Option<String>,
    /// Both servers are versions this project runs in its tests (else: from the formats).
    pub tested_here: bool,
}

/// Can `to` become a replica of `from` (a full sync, then the stream)? For a cutover's way back,
/// `from` is the new side (the primary after the switch) and `to` the old engine.
pub fn by_replication(from: &Server, to: &Server, in_use: &InUse) -> Verdict {
    let sent = from.rdb_for(to);
    let reads = to.rdb_reads();
    let tested_here = from.tested_here() && to.tested_here();
    let (f, t) = (from.label(), to.label());
    let field_ttls_need_new_format =
        from.engine == Engine::Valkey && from.at_least(9, 0) && sent < 80;
    let field_ttls_unreadable = from.engine == Engine::Redis && from.at_least(7, 4) && reads < 12;
    let field_ttls_close_it = field_ttls_need_new_format || field_ttls_unreadable;
    if sent > reads {
        return Verdict {
            possible: false,
            reason: format!(
                "{f} sends RDB {} to a replica and {t} loads RDB up to {reads} (\"Can't handle \
                 RDB format version {}\")",
                fmt_rdb(sent),
                fmt_rdb(sent)
            ),
            unless: None,
            tested_here,
        };
    }
    if in_use.field_ttls && field_ttls_close_it {
        return Verdict {
            possible: false,
            reason: format!(
                "hash fields with a TTL of their own are in use, which {t} cannot load \
                 ({f} cannot store them in RDB {}: \"Can't store key in RDB version {}\")",
                fmt_rdb(sent),
                fmt_rdb(sent)
            ),
            unless: None,
            tested_here,
        };
    }
    let mut unless = vec![];
    if field_ttls_close_it {
        unless.push(format!(
            "a hash field gets a TTL of its own (HEXPIRE, HSETEX: {f} cannot send it in RDB {})",
            fmt_rdb(sent)
        ));
    }
    if !in_use.modules.is_empty() {
        unless.push(format!(
            "{t} lacks a module in use ({})",
            in_use.modules.join(", ")
        ));
    }
    Verdict {
        possible: true,
        reason: format!(
            "{f} sends RDB {} and {t} loads RDB up to {reads}",
            fmt_rdb(sent)
        ),
        unless: (!unless.is_empty()).then(|| unless.join("; ")),
        tested_here,
    }
}

/// `11`, or `80 (VALKEY080)`.
fn fmt_rdb(v: u32) -> String {
    if v >= 80 {
        format!("{v} (VALKEY0{v})")
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(e: Engine, v: &str) -> Server {
        Server::parse(e, v).unwrap()
    }

    #[test]
    fn the_way_back_from_valkey_to_redis_70_is_closed() {
        let r70 = s(Engine::Redis, "7.0.15");
        let v81 = s(Engine::Valkey, "8.1.8");
        let v91 = s(Engine::Valkey, "9.1.2");
        let none = InUse::default();
        // Forward: every pair here replicates.
        for to in [v81, v91] {
            assert!(by_replication(&r70, &to, &none).possible);
        }
        assert!(by_replication(&v81, &v91, &none).possible);
        // Back to Redis 7.0: RDB 11 against 10.
        for from in [v81, v91] {
            let v = by_replication(&from, &r70, &none);
            assert!(!v.possible, "{v:?}");
            assert!(
                v.reason.contains("RDB 11") && v.reason.contains("up to 10"),
                "{}",
                v.reason
            );
            assert!(v.tested_here);
        }
        // Valkey 9 → 8.1 holds, until a hash field gets a TTL.
        let v = by_replication(&v91, &v81, &none);
        assert!(
            v.possible && v.unless.as_deref().unwrap().contains("HEXPIRE"),
            "{v:?}"
        );
        let ttls = InUse {
            field_ttls: true,
            ..InUse::default()
        };
        let v = by_replication(&v91, &v81, &ttls);
        assert!(!v.possible && v.reason.contains("RDB version 11"), "{v:?}");
        // Valkey 9 to Valkey 9: its own format.
        assert!(by_replication(&v91, &s(Engine::Valkey, "9.0.0"), &ttls).possible);
    }

    #[test]
    fn other_versions_from_the_formats() {
        let none = InUse::default();
        let r72 = s(Engine::Redis, "7.2.4");
        let v = by_replication(&s(Engine::Valkey, "8.0.2"), &r72, &none);
        assert!(v.possible && !v.tested_here, "{v:?}");
        // Redis 7.4 writes RDB 12: Valkey 8.0 cannot load it.
        let v = by_replication(
            &s(Engine::Redis, "7.4.1"),
            &s(Engine::Valkey, "8.0.0"),
            &none,
        );
        assert!(!v.possible && v.reason.contains("RDB 12"), "{v:?}");
        assert_eq!(s(Engine::Redis, "6.2.14").rdb_reads(), 9);
        assert_eq!(Server::parse(Engine::Redis, "x"), None);
        assert_eq!(s(Engine::Valkey, "9.1").label(), "valkey 9.1.0");
        let modules = InUse {
            modules: vec!["json".into()],
            ..InUse::default()
        };
        let v = by_replication(&r72, &s(Engine::Redis, "7.2.5"), &modules);
        assert!(v.possible && v.unless.unwrap().contains("json"));
    }
}
