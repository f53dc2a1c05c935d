//! What `verify` compares and how fast: its options, as the command line (or the rehearsal)
//! gives them.

use std::time::Duration;

use crate::valkey::target::TlsChoice;

/// The default `--rate`: safe against a production primary.
pub const DEFAULT_RATE: u32 = 5000;

/// What `verify` compares and how fast.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: String,
    pub destination: String,
    pub tls: TlsChoice,
    /// Fills the destination URL's missing password (`VALKEY_PASSWORD`).
    pub destination_password: Option<String>,
    /// `--db`: only these databases (each compared with the same number on the destination).
    /// Empty: the database both URLs name, else every database holding keys on either side.
    pub dbs: Vec<u32>,
    /// Per request (and connect) deadline.
    pub timeout: Duration,
    /// `SCAN MATCH` pattern (applied client-side to a `RANDOMKEY` sample).
    pub pattern: Option<String>,
    /// Check a random sample of this many distinct keys per database instead of every key.
    pub sample: Option<u64>,
    /// Look for extra keys with a second `SCAN` of the destination (full mode only).
    pub extra: bool,
    /// Keys per second over both scans of every database; `None` is unlimited.
    pub rate: Option<u32>,
    pub ttl_tolerance: Duration,
    /// Keys per pipeline (and the `SCAN COUNT` hint).
    pub batch: usize,
    /// Elements per request when reading a big hash, list, set, sorted set or stream.
    pub chunk: usize,
    /// Workers, each with one connection per side.
    pub parallel: usize,
    /// How long after the first read a differing key is read again.
    pub recheck_after: Duration,
    /// Differences kept (with key and description) in the report; all are counted.
    pub keep: usize,
    /// A bar on a terminal, a line every few seconds otherwise.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            source: String::new(),
            destination: String::new(),
            tls: TlsChoice::default(),
            destination_password: None,
            dbs: vec![],
            timeout: Duration::from_secs(10),
            pattern: None,
            sample: None,
            extra: true,
            rate: Some(DEFAULT_RATE),
            ttl_tolerance: Duration::from_secs(2),
            batch: 500,
            chunk: 1000,
            parallel: 4,
            recheck_after: Duration::from_secs(1),
            keep: 1000,
            progress: false,
        }
    }
}
