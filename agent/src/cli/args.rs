//! Argument groups several commands share (flattened with `#[command(flatten)]`), and the value
//! parsers and environment they read.
//!
//! A group's flags keep the help text of the command they appear in: a command whose wording
//! differs replaces it with `#[command(mut_arg(..))]` rather than declaring the flag again.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::valkey::embedded::VersionError;
use crate::valkey::target::TlsChoice;

/// TLS for `rediss://` URLs; worded for the commands that talk to two servers.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Skip TLS certificate verification (both sides).
    #[arg(long)]
    pub tls_insecure: bool,
    /// Trust this CA certificate (PEM) for rediss:// URLs (both sides).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// What the connections do with TLS.
    pub fn choice(&self) -> TlsChoice {
        TlsChoice {
            insecure: self.tls_insecure,
            ca_file: self.tls_ca.clone(),
        }
    }
}

/// The `valkey-server` of an embedded topology, by path or by version; worded for `run`.
#[derive(Args, Debug, Clone, Default)]
pub struct EmbeddedArgs {
    /// valkey-server binary for the embedded topology.
    #[arg(long, value_name = "PATH", conflicts_with = "valkey_version")]
    pub valkey_server: Option<PathBuf>,
    /// Valkey for the embedded topology by version: 9 (default) or 8.1 (what managed Valkey runs).
    #[arg(long, value_name = "8.1|9")]
    pub valkey_version: Option<String>,
}

impl EmbeddedArgs {
    /// The binary `--valkey-version` names, else `--valkey-server`'s (else `None`: the run finds
    /// one itself).
    pub fn locate(&self) -> Result<Option<PathBuf>, VersionError> {
        match &self.valkey_version {
            Some(v) => crate::valkey::embedded::locate_valkey_version(v).map(Some),
            None => Ok(self.valkey_server.clone()),
        }
    }
}

/// The target of `run`: a URL, or the embedded topology.
#[derive(Args, Debug, Clone)]
#[command(
    mut_arg("tls_insecure", |a| a.help(
        "Skip TLS certificate verification (managed databases with private CAs)"
    )),
    mut_arg("tls_ca", |a| a.help("Trust this CA certificate (PEM) for rediss:// targets")),
)]
pub struct TargetArgs {
    /// redis://[user:password@]host:port[/db] or rediss://… (default: scenario [target], REDIS_URL, else embedded).
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub embedded: EmbeddedArgs,
}

/// `VALKEY_PASSWORD`, which fills the password a target (or destination, or candidate) URL lacks.
pub fn env_password() -> Option<String> {
    std::env::var("VALKEY_PASSWORD")
        .ok()
        .filter(|s| !s.is_empty())
}

/// `--duration 30s` and the like.
pub fn parse_dur(s: &str) -> Result<Duration, String> {
    crate::units::parse_duration(s)
}

/// `--start-at`: an RFC 3339 instant.
pub fn parse_time(s: &str) -> Result<std::time::SystemTime, String> {
    humantime::parse_rfc3339_weak(s.trim())
        .map_err(|e| format!("{e}: write an RFC 3339 UTC time, e.g. 2025-06-01T12:00:00Z"))
}

/// `--provider digitalocean` and the like.
pub fn parse_provider(s: &str) -> Result<crate::plan::provider::Provider, String> {
    crate::plan::provider::Provider::parse(s).map_err(|e| e.to_string())
}
