//! The connection choices shared by both probed sides, and how to judge them.

use std::time::Duration;

use super::policy::Policy;
use crate::plan::provider::Provider;
use crate::valkey::target::TlsChoice;

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
