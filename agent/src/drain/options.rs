//! What `drain` moves and how: the two sides (reached as `verify` reaches them), the databases,
//! the Dramatiq namespace, and what it must leave (a live worker's ack set, what the copy carried).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::DrainError;
use crate::valkey::{Conn, Route};
use crate::verify::databases::Plan;

/// One side: how to reach it and how to name it (its URL without the password).
#[derive(Debug, Clone)]
pub struct Side {
    pub label: String,
    pub route: Route,
}

impl Side {
    /// A connection to database `db`; a failure names the side and the cause.
    pub async fn connect(&self, role: &str, db: u32) -> Result<Conn, DrainError> {
        let mut r = self.route.clone();
        r.opts.db = db;
        r.connect().await.map_err(|e| {
            DrainError::Target(format!(
                "{role} {} (db {db}) unreachable: {}",
                self.label, e.msg
            ))
        })
    }
}

/// The message ids the old side held when the copy stopped: the destination received them, so
/// they are not stranded (a drain that moved one the new side already processed would run it
/// twice). Per source database. Written by `drain --save-copied`, read by `--copied`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copied {
    pub by_db: BTreeMap<u32, BTreeSet<String>>,
}

impl Copied {
    pub fn contains(&self, db: u32, rid: &str) -> bool {
        self.by_db.get(&db).is_some_and(|s| s.contains(rid))
    }

    pub fn len(&self) -> usize {
        self.by_db.values().map(BTreeSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn load(path: &Path) -> Result<Copied, DrainError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DrainError::Usage(format!("cannot read {}: {e}", path.display())))?;
        serde_json::from_str(&text).map_err(|e| {
            DrainError::Usage(format!(
                "{} is not a file `drain --save-copied` wrote: {e}",
                path.display()
            ))
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), DrainError> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| DrainError::Runtime(format!("cannot encode the copied ids: {e}")))?;
        std::fs::write(path, text)
            .map_err(|e| DrainError::Runtime(format!("cannot write {}: {e}", path.display())))
    }
}

/// What `drain` does.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: Side,
    pub destination: Side,
    /// Which databases: every one holding keys on the source, `--db`, or the URLs' `/N`.
    pub databases: Plan,
    /// Dramatiq's `namespace` (its default: `dramatiq`).
    pub namespace: String,
    /// Only count what would move; write nothing anywhere.
    pub dry_run: bool,
    /// A worker that heart-beat on the source within this is alive: its ack set is left (Dramatiq's
    /// own `heartbeat_timeout`, 60 s, is the rule its maintenance follows).
    pub heartbeat_timeout: Duration,
    /// Message ids the copy carried, skipped.
    pub copied: Option<Copied>,
    /// Messages per round trip.
    pub batch: usize,
    /// Moved messages named in the report (all are counted).
    pub keep: usize,
}

impl Options {
    /// Options with Dramatiq's defaults for these two sides.
    pub fn new(source: Side, destination: Side) -> Options {
        Options {
            source,
            destination,
            databases: Plan::Keyspace,
            namespace: "dramatiq".into(),
            dry_run: false,
            heartbeat_timeout: Duration::from_secs(60),
            copied: None,
            batch: 500,
            keep: 1000,
        }
    }
}
