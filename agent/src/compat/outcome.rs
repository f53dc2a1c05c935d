//! What one check observed on one server: worked (with its value), failed, refused by the
//! target (a [`Refusal`] naming the command and the provider), or skipped.

use super::check::Check;
use crate::plan::provider::Provider;

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
