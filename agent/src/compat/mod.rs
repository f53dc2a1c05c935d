//! Phase 1 of the migration as a command: probe, on a candidate server (and optionally on a
//! baseline), each protocol feature the ECHO stack's clients rely on (redis-py 5.0.6, Dramatiq's
//! broker scripts, the locks, the rate limiters, cross-DB pub/sub) and what a managed Valkey 8+
//! answers differently (its name in HELLO, INFO and error texts, the Lua API, refused commands),
//! as named checks with a short observed value, then compare the two columns.
//!
//! - [`probes`] opens the session against one server and runs every [`Check`];
//! - [`judge`] pairs baseline and candidate into [`Row`]s and decides which ones matter;
//! - [`render`] turns a [`Report`] into the text table or JSON.
//!
//! A probe never stops the others: a failed command is that check's outcome, and a command the
//! target refuses (`unknown command` after `rename-command`, `NOPERM`, a provider's block list) is
//! [`Outcome::Forbidden`], not a failure. Every key lives under [`KEY_PREFIX`] plus a per-run
//! nonce and is deleted at the end. Scripts stay in the script cache (`SCRIPT FLUSH` is never
//! sent: it would hit the application's scripts too).
//!
//! One probe stalls the server on purpose: `busy script error` runs a script that spins until
//! `SCRIPT KILL` (bounded by the script's own clock) so a third connection reads the `-BUSY` text.
//! Where `CONFIG SET` works it lowers `busy-reply-threshold` to 100 ms for that moment and
//! restores it; where `CONFIG` is refused it waits out the default 5 s. `--no-stall` skips it.
//! `-LOADING` and `-MISCONF` are not provoked: a server only loads at start-up or during a full
//! resync (`DEBUG RELOAD` would block and reload the whole dataset), and `MISCONF` needs a failed
//! `BGSAVE`, which refuses every write on the server; both rows say so.

mod judge;
mod probes;
mod render;

use std::time::Duration;

use crate::plan::provider::Provider;
use crate::valkey::target::{TargetUrl, TlsChoice};

pub use judge::{compare, Policy};
pub use probes::{probe, Check, UNPACK_ELEMENTS};

/// Every key a compat run writes starts with this (then a per-run nonce).
pub const KEY_PREFIX: &str = "vc:compat:";

/// Whether a check can fail the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// Behaviour the clients depend on: failing or refused where the baseline works (or without
    /// a baseline) fails the run.
    Behaviour,
    /// An error reply's text. ECHO's clients match error codes, never texts, so a changed text
    /// fails the run only under [`Policy::error_text_matters`].
    ErrorText,
    /// Reported for the record (versions, settings, calls whose refusal the clients ignore);
    /// never fails the run, except the eviction-policy warning.
    Info,
}

impl Weight {
    pub fn name(self) -> &'static str {
        match self {
            Weight::Behaviour => "behaviour",
            Weight::ErrorText => "error-text",
            Weight::Info => "info",
        }
    }
}

/// A command the server refused to run at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `KEYS`, `CONFIG`, `CLIENT SETINFO`.
    pub command: String,
    /// The managed service the target belongs to, when known.
    pub provider: Option<Provider>,
    /// The server's reply, verbatim.
    pub reply: String,
}

/// What one check observed on one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Worked as the clients expect; the short observed value.
    Ok(String),
    /// Did not behave as expected; what happened instead.
    Failed(String),
    /// The target refuses a command the check needs.
    Forbidden(Refusal),
    /// Not applicable or not provoked here, and why.
    Skipped(String),
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok(_))
    }
    pub fn is_failed(&self) -> bool {
        matches!(self, Outcome::Failed(_))
    }
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Outcome::Forbidden(_))
    }
    /// The cell text: the value, `failed: why`, `forbidden: COMMAND (Provider)` or
    /// `skipped: why`.
    pub fn cell(&self) -> String {
        match self {
            Outcome::Ok(v) => v.clone(),
            Outcome::Failed(e) => format!("failed: {e}"),
            Outcome::Forbidden(r) => match r.provider {
                Some(p) if p != Provider::SelfHosted => format!("forbidden: {} ({p})", r.command),
                _ => format!("forbidden: {}", r.command),
            },
            Outcome::Skipped(e) => format!("skipped: {e}"),
        }
    }
}

/// One check on one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub check: Check,
    pub outcome: Outcome,
    /// A risk found in a working setting (an `allkeys-*` eviction policy).
    pub warning: Option<String>,
}

impl Probe {
    pub fn name(&self) -> &'static str {
        self.check.name()
    }
}

/// A row's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Works (no baseline).
    Ok,
    /// Same value on both (or failed, or refused, the same way on both).
    Same,
    /// Both work with different values, or the candidate works where the baseline fails or
    /// refuses, or the candidate's setting carries a warning the baseline's does not.
    Different,
    /// Fails on the candidate where the baseline works, or fails without a baseline.
    Failed,
    /// The candidate refuses a command the check needs.
    Forbidden,
    /// Not applicable or not provoked on either side.
    Skipped,
    /// Works, with a warning (no baseline).
    Warning,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Same => "same",
            Status::Different => "different",
            Status::Failed => "failed",
            Status::Forbidden => "forbidden",
            Status::Skipped => "skipped",
            Status::Warning => "warning",
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub check: Check,
    pub name: &'static str,
    pub weight: Weight,
    pub baseline: Option<Outcome>,
    pub candidate: Outcome,
    pub status: Status,
    /// Whether this row fails the run.
    pub matters: bool,
    /// What happened (the failure, the refusal and its way out, the warning).
    pub note: Option<String>,
    /// Why the check exists, for ECHO's clients, in one line.
    pub explanation: &'static str,
}

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
    /// The terminal table and the lines under it.
    pub fn render(&self) -> String {
        render::text(self)
    }
    /// The same report as pretty-printed JSON (`--json`, `compat.json`).
    pub fn to_json(&self) -> String {
        render::json(self)
    }
}

/// Why a compat run could not produce a table.
#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    /// A malformed URL or TLS option (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A server is unreachable or refused the connection (exit 3).
    #[error("{0}")]
    Target(String),
}

/// Connection choices shared by both sides, and how to judge.
#[derive(Debug, Clone)]
pub struct Options {
    pub tls: TlsChoice,
    /// Per request deadline.
    pub timeout: Duration,
    /// Fills the candidate URL's missing password (`VALKEY_PASSWORD`).
    pub candidate_password: Option<String>,
    /// The candidate's provider, overriding detection from its hostname.
    pub provider: Option<Provider>,
    /// Run the probe that stalls the server with a busy script (`--no-stall` clears it).
    pub stall: bool,
    pub policy: Policy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tls: TlsChoice::default(),
            timeout: Duration::from_secs(5),
            candidate_password: None,
            provider: None,
            stall: true,
            policy: Policy::default(),
        }
    }
}

/// Probe the candidate (and the baseline first, when given) and compare them.
pub async fn run(
    candidate: &str,
    baseline: Option<&str>,
    opts: &Options,
) -> Result<Report, CompatError> {
    let mut curl = TargetUrl::parse(candidate).map_err(CompatError::Usage)?;
    if curl.password.is_none() {
        curl.password = opts.candidate_password.clone();
    }
    let burl = baseline
        .map(TargetUrl::parse)
        .transpose()
        .map_err(CompatError::Usage)?;
    let b = match &burl {
        Some(u) => Some(probe(u, Provider::detect(&u.host), opts, "baseline").await?),
        None => None,
    };
    let cprov = opts.provider.or_else(|| Provider::detect(&curl.host));
    let c = probe(&curl, cprov, opts, "candidate").await?;
    let rows = compare(
        b.as_ref().map(|s| s.probes.as_slice()),
        &c.probes,
        opts.policy,
    );
    Ok(Report {
        baseline: b,
        candidate: c,
        rows,
        policy: opts.policy,
    })
}
