//! What the command line decides about a run (which target, TLS, destructive opt-ins, exports,
//! how shards meet) and why a run can stop without a verdict: plain types every step of `run`
//! reads, kept in a leaf so no file of `run/` imports its parent.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::export::otlp::OtlpOptions;
use crate::valkey::target::TlsChoice;

/// Which server a run is pointed at.
#[derive(Clone, Debug, Default)]
pub enum TargetChoice {
    /// The scenario's `[target].url`, then `REDIS_URL`, else the embedded topology.
    #[default]
    Auto,
    /// `--target URL`.
    Url(String),
    /// The embedded topology, whatever the scenario or the environment say.
    Embedded,
}

/// Choices from the command line that shape how a plan is run (what it runs is the plan's).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub target: TargetChoice,
    pub quiet: bool,
    pub valkey_server: Option<PathBuf>,
    /// Extra arguments for the embedded servers (primary and replicas), e.g. `--io-threads 2`.
    pub server_args: Vec<String>,
    pub tls: TlsChoice,
    /// The command line's half of the double opt-in for destructive faults on remote targets.
    pub allow_destructive: bool,
    pub skip_destructive: bool,
    /// Metric interval (default 1 s).
    pub interval: Option<Duration>,
    /// Password from `VALKEY_PASSWORD` when the URL has none.
    pub password: Option<String>,
    /// OTLP export; none when unset.
    pub otlp: Option<OtlpOptions>,
    /// The managed service the target is (`--provider`; else detected from its host name).
    pub provider: Option<crate::plan::provider::Provider>,
    /// Skip the faults the target refuses instead of refusing the run (`--skip-forbidden`).
    pub skip_forbidden: bool,
    /// How a sharded run's agents agree on time zero (`--run-key`, `--barrier-timeout`,
    /// `--start-at`, `--no-barrier`).
    pub start: StartOptions,
}

/// Why a run could not produce a verdict.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The target is unreachable or refused us (exit 3).
    #[error("{0}")]
    Target(String),
    /// The scenario cannot run as asked (exit 2), e.g. a destructive fault on a remote target.
    #[error("{0}")]
    Refused(String),
    /// Anything else that went wrong at run time (exit 3).
    #[error("{0}")]
    Runtime(String),
}

/// Command-line choices about the start (`--run-key`, `--barrier-timeout`, `--start-at`,
/// `--no-barrier`).
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// Shared by every agent of one run (`--run-key`, else `VALKEY_CHAOS_RUN_KEY`).
    pub run_key: Option<String>,
    pub timeout: Duration,
    /// A given time zero, on the target's clock.
    pub start_at: Option<SystemTime>,
    /// `--no-barrier`: a shard starts on its own.
    pub no_barrier: bool,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            run_key: None,
            timeout: Duration::from_secs(60),
            start_at: None,
            no_barrier: false,
        }
    }
}
