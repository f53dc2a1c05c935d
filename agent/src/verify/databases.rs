//! Which databases `verify` and `lag` look at. ECHO keeps its Dramatiq broker in DB 1 and its
//! pipeline coordination in DB 2, so by default both look at every database that holds keys
//! (`INFO keyspace`: on either side for `verify`, on the source for `lag`); `--db N` narrows it,
//! and a URL's `/N` keeps meaning "only N". Pure, but for reading `INFO keyspace`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::side::{self, Role};
use crate::valkey::target::TargetUrl;
use crate::valkey::Conn;

/// A source database and the destination database it is compared with: the same number,
/// unless the two URLs name different ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DbPair {
    pub source: u32,
    pub destination: u32,
}

impl DbPair {
    /// Database `db` on both sides.
    pub fn same(db: u32) -> DbPair {
        DbPair {
            source: db,
            destination: db,
        }
    }

    /// `db 1`, or `db 1 → 0` when the destination's number differs.
    pub fn label(self) -> String {
        if self.source == self.destination {
            format!("db {}", self.source)
        } else {
            format!("db {} → {}", self.source, self.destination)
        }
    }

    /// `db1`, or `db1→0`: for a column.
    pub fn short(self) -> String {
        if self.source == self.destination {
            format!("db{}", self.source)
        } else {
            format!("db{}→{}", self.source, self.destination)
        }
    }
}

/// How the databases were chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Choice {
    /// Every database holding keys (`INFO keyspace`); none at all → DB 0.
    InfoKeyspace,
    /// `--db N`, repeatable.
    DbFlags,
    /// The database a URL names (`/N`).
    Url,
}

impl Choice {
    /// What the output says after the list of databases.
    pub fn describe(self, both_sides: bool) -> &'static str {
        match (self, both_sides) {
            (Choice::InfoKeyspace, true) => {
                "every database holding keys on either side (INFO keyspace)"
            }
            (Choice::InfoKeyspace, false) => {
                "every database holding keys on the source (INFO keyspace)"
            }
            (Choice::DbFlags, _) => "as --db asked",
            (Choice::Url, _) => "as the URLs name them",
        }
    }
}

/// The choice as far as it can be made before connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Ask the servers (`INFO keyspace`).
    Keyspace,
    /// `--db`: these, sorted, each on both sides.
    Listed(Vec<u32>),
    /// A URL names its database: only this pair (a URL without one: DB 0).
    Url(DbPair),
}

/// Choose from `--db` and the URLs: `--db` together with a URL's `/N` is a usage error.
pub fn plan(flags: &[u32], source: &TargetUrl, destination: &TargetUrl) -> Result<Plan, String> {
    let named: Vec<String> = [("--source", source), ("--destination", destination)]
        .iter()
        .filter(|(_, u)| u.db_given)
        .map(|(flag, u)| format!("{flag} names /{}", u.db))
        .collect();
    match (flags.is_empty(), named.is_empty()) {
        (true, true) => Ok(Plan::Keyspace),
        (true, false) => Ok(Plan::Url(DbPair {
            source: source.db,
            destination: destination.db,
        })),
        (false, true) => {
            let mut dbs = flags.to_vec();
            dbs.sort_unstable();
            dbs.dedup();
            Ok(Plan::Listed(dbs))
        }
        (false, false) => Err(format!(
            "--db cannot be combined with a database in the URL ({}): give the databases \
             with --db or in the URL, not both",
            named.join(", ")
        )),
    }
}

/// Keys per database, as `INFO keyspace` counts them.
pub type Keyspace = BTreeMap<u32, u64>;

/// Parse `INFO keyspace`: `db1:keys=30,expires=0,avg_ttl=0` per line.
pub fn parse_keyspace(text: &str) -> Keyspace {
    let mut out = Keyspace::new();
    for line in text.lines() {
        let Some((db, fields)) = line.trim().split_once(':') else {
            continue;
        };
        let Some(db) = db.strip_prefix("db").and_then(|n| n.parse().ok()) else {
            continue;
        };
        let keys = fields
            .split(',')
            .find_map(|f| f.strip_prefix("keys="))
            .and_then(|n| n.parse().ok());
        if let Some(keys) = keys {
            out.insert(db, keys);
        }
    }
    out
}

/// A side's `INFO keyspace`; `None` when the server refuses `INFO`.
pub async fn keyspace(conn: &mut Conn) -> Option<Keyspace> {
    side::info(conn, "keyspace")
        .await
        .map(|t| parse_keyspace(&t))
}

/// The keys a side's `INFO keyspace` shows in `db`: `None` when unknown (INFO refused).
pub fn keys_in(ks: Option<&Keyspace>, db: u32) -> Option<u64> {
    ks.map(|k| k.get(&db).copied().unwrap_or(0))
}

impl Plan {
    /// How the databases were chosen.
    pub fn choice(&self) -> Choice {
        match self {
            Plan::Keyspace => Choice::InfoKeyspace,
            Plan::Listed(_) => Choice::DbFlags,
            Plan::Url(_) => Choice::Url,
        }
    }

    /// The pairs to look at. For [`Plan::Keyspace`]: every database holding keys on a side whose
    /// keyspace is known (`lag` passes only the source's), DB 0 when there is none.
    pub fn pairs(&self, source: Option<&Keyspace>, destination: Option<&Keyspace>) -> Vec<DbPair> {
        match self {
            Plan::Url(p) => vec![*p],
            Plan::Listed(dbs) => dbs.iter().copied().map(DbPair::same).collect(),
            Plan::Keyspace => {
                let mut dbs: Vec<u32> = [source, destination]
                    .into_iter()
                    .flatten()
                    .flat_map(|k| k.iter().filter(|(_, n)| **n > 0).map(|(db, _)| *db))
                    .collect();
                dbs.sort_unstable();
                dbs.dedup();
                if dbs.is_empty() {
                    dbs.push(0);
                }
                dbs.into_iter().map(DbPair::same).collect()
            }
        }
    }
}

/// The side that alone holds keys, when both counts are known and exactly one is zero.
pub fn one_sided(source_keys: Option<u64>, destination_keys: Option<u64>) -> Option<Role> {
    match (source_keys?, destination_keys?) {
        (s, 0) if s > 0 => Some(Role::Source),
        (0, d) if d > 0 => Some(Role::Destination),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Keyspace\r\ndb0:keys=50,expires=3,avg_ttl=100\r\n\
        db1:keys=30,expires=0,avg_ttl=0,subexpiry=0\r\ndb2:keys=30,expires=0,avg_ttl=0\r\n\
        db3:keys=0,expires=0,avg_ttl=0\r\n";

    fn url(s: &str) -> TargetUrl {
        TargetUrl::parse(s).unwrap()
    }

    #[test]
    fn keyspace_lines_parse() {
        let k = parse_keyspace(INFO);
        assert_eq!(k, Keyspace::from([(0, 50), (1, 30), (2, 30), (3, 0)]));
        assert_eq!(parse_keyspace("# Keyspace\r\n"), Keyspace::new());
        assert_eq!(parse_keyspace("dbx:keys=1\r\nfoo:bar\r\n"), Keyspace::new());
        assert_eq!(keys_in(Some(&k), 2), Some(30));
        assert_eq!(keys_in(Some(&k), 9), Some(0));
        assert_eq!(keys_in(None, 0), None);
    }

    #[test]
    fn the_databases_chosen() {
        let src = parse_keyspace(INFO);
        let dst = Keyspace::from([(0, 50), (5, 1)]);
        let none = Keyspace::new();
        let dbs = |p: &Plan, s: Option<&Keyspace>, d: Option<&Keyspace>| -> Vec<(u32, u32)> {
            p.pairs(s, d)
                .iter()
                .map(|p| (p.source, p.destination))
                .collect()
        };
        let plain = (url("redis://a:1"), url("redis://b:2"));
        type Case<'a> = (
            &'a [u32],
            (&'a TargetUrl, &'a TargetUrl),
            Choice,
            Vec<(u32, u32)>,
        );
        let cases: Vec<Case> = vec![
            // The union of databases with keys on either side (db3 holds none).
            (
                &[],
                (&plain.0, &plain.1),
                Choice::InfoKeyspace,
                vec![(0, 0), (1, 1), (2, 2), (5, 5)],
            ),
            // --db narrows it, sorted and once each.
            (
                &[2, 0, 2],
                (&plain.0, &plain.1),
                Choice::DbFlags,
                vec![(0, 0), (2, 2)],
            ),
        ];
        for (flags, (s, d), choice, want) in cases {
            let p = plan(flags, s, d).unwrap();
            assert_eq!(p.choice(), choice, "{flags:?}");
            assert_eq!(dbs(&p, Some(&src), Some(&dst)), want, "{flags:?}");
        }
        // No keys anywhere, or INFO refused on both sides: DB 0.
        assert_eq!(dbs(&Plan::Keyspace, Some(&none), Some(&none)), vec![(0, 0)]);
        assert_eq!(dbs(&Plan::Keyspace, None, None), vec![(0, 0)]);
        // lag: the source's only.
        assert_eq!(
            dbs(&Plan::Keyspace, Some(&src), None),
            vec![(0, 0), (1, 1), (2, 2)]
        );
        // A URL's database: only that pair, N against M (no path: 0), whatever the keyspace.
        for (s, d, want) in [
            ("redis://a:1/1", "redis://b:2", (1, 0)),
            ("redis://a:1/1", "redis://b:2/3", (1, 3)),
            ("redis://a:1", "redis://b:2/0", (0, 0)),
        ] {
            let p = plan(&[], &url(s), &url(d)).unwrap();
            assert_eq!(p.choice(), Choice::Url);
            assert_eq!(dbs(&p, Some(&src), Some(&dst)), vec![want], "{s} {d}");
        }
        // --db with a URL's database (even /0) is a usage error naming it.
        let e = plan(&[1], &url("redis://a:1"), &url("redis://b:2/0")).unwrap_err();
        assert!(e.contains("--destination names /0"), "{e}");
        assert!(e.starts_with("--db cannot be combined"), "{e}");
    }

    #[test]
    fn a_database_on_one_side_only() {
        assert_eq!(one_sided(Some(30), Some(0)), Some(Role::Source));
        assert_eq!(one_sided(Some(0), Some(4)), Some(Role::Destination));
        assert_eq!(one_sided(Some(30), Some(1)), None);
        assert_eq!(one_sided(Some(0), Some(0)), None);
        assert_eq!(one_sided(Some(30), None), None);
        assert_eq!(DbPair::same(2).label(), "db 2");
        let p = DbPair {
            source: 1,
            destination: 0,
        };
        assert_eq!((p.label(), p.short()), ("db 1 → 0".into(), "db1→0".into()));
    }
}
