//! What a verify found: the totals, a line per database, the differences kept, the verdict.
//! Plain data: [`super::render`] prints it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::compare::Kind;
use super::databases::{Choice, DbPair};
use super::side::{Role, ServerInfo};

/// How the keys were chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Every key `SCAN` returned (each key present for the whole scan is seen at least once).
    Full,
    /// `RANDOMKEY` draws: each draw is the server's (approximately uniform) random key, with
    /// replacement; duplicates are checked once, non-matching keys dropped. Summed over the
    /// databases (`--sample N` draws N per database).
    Sample {
        requested: u64,
        draws: u64,
        distinct: u64,
        /// Every database answered nil: they are empty.
        empty: bool,
    },
}

impl Mode {
    /// Two databases' modes as one: samples add up.
    pub fn and(self, other: Mode) -> Mode {
        match (self, other) {
            (
                Mode::Sample {
                    requested: r1,
                    draws: d1,
                    distinct: n1,
                    empty: e1,
                },
                Mode::Sample {
                    requested: r2,
                    draws: d2,
                    distinct: n2,
                    empty: e2,
                },
            ) => Mode::Sample {
                requested: r1 + r2,
                draws: d1 + d2,
                distinct: n1 + n2,
                empty: e1 && e2,
            },
            (Mode::Full, m) | (m, Mode::Full) => m,
        }
    }
}

/// Whether extra keys (on the destination only) were looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraCheck {
    Checked,
    /// `--no-extra`.
    Skipped,
    /// A sample says nothing about the rest of the destination.
    SkippedSample,
}

/// One reported difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The source database it was found in.
    pub db: u32,
    pub key: Vec<u8>,
    pub kind: Kind,
    pub detail: String,
}

/// One database compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub pair: DbPair,
    /// Keys `INFO keyspace` showed at the start; `None` when `INFO` was refused.
    pub source_keys: Option<u64>,
    pub destination_keys: Option<u64>,
    /// The side that alone holds keys in it (by `INFO keyspace`): a difference in every mode,
    /// `--no-extra` and `--sample` included. Not judged with `--match` (the counts are of every
    /// key, not of those matching).
    pub only_on: Option<Role>,
    /// Source keys read on both sides (first reads).
    pub keys_checked: u64,
    /// Key differences found in it.
    pub differences: u64,
    /// Verified to its end (not cut short, nor left out, by Ctrl-C).
    pub complete: bool,
}

impl Database {
    /// Nothing checked yet.
    pub fn new(pair: DbPair, source_keys: Option<u64>, destination_keys: Option<u64>) -> Database {
        Database {
            pair,
            source_keys,
            destination_keys,
            only_on: None,
            keys_checked: 0,
            differences: 0,
            complete: false,
        }
    }

    /// `db 2: 30 keys on the source, none on the destination`, when one side alone holds keys.
    pub fn one_sided_text(&self) -> Option<String> {
        let n = |k: Option<u64>| k.unwrap_or(0);
        Some(match self.only_on? {
            Role::Source => format!(
                "{}: {} keys on the source, none on the destination",
                self.pair.label(),
                n(self.source_keys)
            ),
            Role::Destination => format!(
                "{}: {} keys on the destination, none on the source",
                self.pair.label(),
                n(self.destination_keys)
            ),
        })
    }
}

/// A verify's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every key checked (and every database) matched, and nothing was left unchecked.
    Identical,
    /// A key or a database differs (also when found before an interruption).
    Different,
    /// Interrupted before the end with no difference so far: not proven identical.
    Incomplete,
}

impl Verdict {
    /// As `verify.json` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Identical => "identical",
            Verdict::Different => "different",
            Verdict::Incomplete => "incomplete",
        }
    }
}

/// The result of a verify.
#[derive(Debug, Clone)]
pub struct Report {
    pub source: ServerInfo,
    pub destination: ServerInfo,
    /// How the databases were chosen, and a line per database.
    pub choice: Choice,
    pub databases: Vec<Database>,
    pub mode: Mode,
    pub pattern: Option<String>,
    pub extra: ExtraCheck,
    /// Source keys taken from the scan (or sample) and read on both sides.
    pub keys_checked: u64,
    /// Of those, equal on the first read.
    pub identical: u64,
    /// Of those, gone from the source when read (deleted or expired during the verify).
    pub vanished: u64,
    /// Keys that differed on the first read and were read again.
    pub rechecked: u64,
    /// Of those, equal on the recheck (in flight, or expiring within the tolerance).
    pub settled: u64,
    /// Destination keys looked up on the source by the extra-key scan.
    pub destination_scanned: u64,
    /// `lag` canary keys skipped.
    pub skipped_canaries: u64,
    /// Key differences by kind (a database on one side only is counted apart).
    pub by_kind: BTreeMap<Kind, u64>,
    /// The first `keep` differences, in the order found.
    pub differences: Vec<Difference>,
    pub elapsed: Duration,
    /// Stopped by Ctrl-C: not every key was checked.
    pub interrupted: bool,
    pub ttl_tolerance: Duration,
    pub recheck_after: Duration,
    pub rate: Option<u32>,
}

impl Report {
    /// Keys that differ, every kind.
    pub fn key_differences(&self) -> u64 {
        self.by_kind.values().sum()
    }
    /// Databases holding keys on one side only.
    pub fn databases_on_one_side(&self) -> u64 {
        self.databases
            .iter()
            .filter(|d| d.only_on.is_some())
            .count() as u64
    }
    /// Every difference: keys, and databases on one side only.
    pub fn total_differences(&self) -> u64 {
        self.key_differences() + self.databases_on_one_side()
    }
    /// The verdict: a difference makes it different, else an interruption incomplete.
    pub fn verdict(&self) -> Verdict {
        if self.total_differences() > 0 {
            Verdict::Different
        } else if self.interrupted {
            Verdict::Incomplete
        } else {
            Verdict::Identical
        }
    }
    /// Identical, and every key was checked.
    pub fn identical(&self) -> bool {
        self.verdict() == Verdict::Identical
    }
    pub fn keys_per_sec(&self) -> f64 {
        (self.keys_checked + self.destination_scanned) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_add_up_over_databases() {
        let s = |requested, draws, distinct, empty| Mode::Sample {
            requested,
            draws,
            distinct,
            empty,
        };
        assert_eq!(
            s(10, 12, 10, false).and(s(10, 3, 0, true)),
            s(20, 15, 10, false)
        );
        assert_eq!(s(10, 1, 0, true).and(s(10, 1, 0, true)), s(20, 2, 0, true));
        assert_eq!(Mode::Full.and(Mode::Full), Mode::Full);
        assert_eq!(Mode::Full.and(s(1, 1, 1, false)), s(1, 1, 1, false));
    }

    #[test]
    fn a_database_on_one_side_says_which() {
        let mut d = Database::new(DbPair::same(2), Some(30), Some(0));
        assert_eq!(d.one_sided_text(), None);
        d.only_on = Some(Role::Source);
        assert_eq!(
            d.one_sided_text().as_deref(),
            Some("db 2: 30 keys on the source, none on the destination")
        );
        let mut d = Database::new(DbPair::same(4), Some(0), Some(7));
        d.only_on = Some(Role::Destination);
        assert_eq!(
            d.one_sided_text().as_deref(),
            Some("db 4: 7 keys on the destination, none on the source")
        );
    }
}
