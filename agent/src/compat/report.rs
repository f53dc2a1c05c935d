//! The result of a compat run: each probed [`Side`] (server, version, provider, probes) and the
//! judged rows. Rendering it lives in `render.rs`.

use super::outcome::Probe;
use super::policy::Policy;
use super::row::Row;
use crate::plan::provider::Provider;
use crate::plan::rollback;

/// One probed server.
#[derive(Debug, Clone)]
pub struct Side {
    /// The URL without its password.
    pub label: String,
    /// `valkey` / `redis`; `None` when INFO is unavailable.
    pub server_name: Option<String>,
    /// `9.1.2` / `7.0.15` (`valkey_version` on Valkey, `redis_version` on Redis).
    pub version: Option<String>,
    /// The managed service, from `--provider` or the hostname.
    pub provider: Option<Provider>,
    pub probes: Vec<Probe>,
}

impl Side {
    /// The server as the rollback rules know it (engine and version).
    pub fn rollback_server(&self) -> Option<rollback::Server> {
        let engine = match self.server_name.as_deref()? {
            "valkey" => rollback::Engine::Valkey,
            "redis" => rollback::Engine::Redis,
            _ => return None,
        };
        rollback::Server::parse(engine, self.version.as_deref()?)
    }

    /// `valkey 9.1.2`, `redis 7.0.15` or `INFO unavailable`.
    pub fn server(&self) -> String {
        match (&self.server_name, &self.version) {
            (Some(n), Some(v)) => format!("{n} {v}"),
            (Some(n), None) => n.clone(),
            _ => "INFO unavailable".to_string(),
        }
    }
}

/// The result of a compat run.
#[derive(Debug, Clone)]
pub struct Report {
    pub baseline: Option<Side>,
    pub candidate: Side,
    pub rows: Vec<Row>,
    pub policy: Policy,
}

impl Report {
    /// Whether a row fails the run (exit 1).
    pub fn failed(&self) -> bool {
        self.rows.iter().any(|r| r.matters)
    }
    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// Whether the candidate, once it is the primary, could replicate back into the baseline's
    /// engine: the way back of a cutover by replication. `None` without a baseline or where a
    /// side's engine or version is unknown.
    pub fn way_back(&self) -> Option<rollback::Verdict> {
        let from = self.candidate.rollback_server()?;
        let to = self.baseline.as_ref()?.rollback_server()?;
        Some(rollback::by_replication(
            &from,
            &to,
            &rollback::InUse::default(),
        ))
    }
}
