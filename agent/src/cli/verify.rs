//! `verify`: after a migration, compare the source's keys with the destination's, read-only.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::args::{env_password, parse_dur, TlsArgs};
use super::exit::{CliError, Outcome};
use super::output::{print_and_write, Names};
use crate::verify::Verdict;

/// `valkey-chaos verify`'s flags.
#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// The server migrated from: redis://[user:password@]host:port[/db] or rediss://… (a URL's
    /// /db compares only that database; without one, every database holding keys on either side).
    #[arg(long, value_name = "URL")]
    pub source: String,
    /// The server migrated to (VALKEY_PASSWORD fills a missing password).
    #[arg(long, value_name = "URL")]
    pub destination: String,
    /// Only this database (repeatable; each compared with the same number on the destination).
    /// Default: every database holding keys on either side (INFO keyspace).
    #[arg(long = "db", value_name = "N")]
    pub dbs: Vec<u32>,
    /// Only keys matching this SCAN MATCH glob.
    #[arg(long = "match", value_name = "PATTERN")]
    pub pattern: Option<String>,
    /// Check a random sample of N distinct keys per database (RANDOMKEY draws: approximately
    /// uniform, with replacement) instead of every key; extra keys are then not looked for.
    #[arg(long, value_name = "N")]
    pub sample: Option<u64>,
    /// Do not SCAN the destination for keys the source lacks.
    #[arg(long)]
    pub no_extra: bool,
    /// Keys per second, over both scans of every database (0 = unlimited).
    #[arg(long, value_name = "KEYS_PER_SEC", default_value_t = crate::verify::DEFAULT_RATE)]
    pub rate: u32,
    /// TTLs within this of each other are equal; a TTL against none always differs.
    #[arg(long, value_parser = parse_dur, default_value = "2s")]
    pub ttl_tolerance: Duration,
    /// A differing key is read again this long after (it may have been in flight).
    #[arg(long, value_parser = parse_dur, default_value = "1s")]
    pub recheck_after: Duration,
    /// Write verify.json here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Differences listed on the terminal (all are counted by kind).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub show: usize,
    /// Keys per pipeline and SCAN COUNT.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub batch: usize,
    /// Elements per request when reading a big hash, list, set, sorted set or stream.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub chunk: usize,
    /// Concurrent batches (one connection per side each).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub parallel: usize,
    /// Per request deadline.
    #[arg(long, value_parser = parse_dur, default_value = "10s")]
    pub timeout: Duration,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// No live progress.
    #[arg(long, short)]
    pub quiet: bool,
}

const VERIFY_JSON: Names = Names {
    written: "written to",
    what: "verify.json",
};

/// `valkey-chaos verify`: fails on any difference; incomplete when interrupted before one.
pub async fn verify(a: &VerifyArgs) -> Result<Outcome, CliError> {
    let opts = crate::verify::Options {
        source: a.source.clone(),
        destination: a.destination.clone(),
        tls: a.tls.choice(),
        destination_password: env_password(),
        dbs: a.dbs.clone(),
        timeout: a.timeout,
        pattern: a.pattern.clone(),
        sample: a.sample,
        extra: !a.no_extra,
        rate: (a.rate > 0).then_some(a.rate),
        ttl_tolerance: a.ttl_tolerance,
        batch: a.batch,
        chunk: a.chunk,
        parallel: a.parallel,
        recheck_after: a.recheck_after,
        progress: !a.quiet,
        ..Default::default()
    };
    let r = crate::verify::run(&opts, super::signals::shutdown_on_signals())
        .await
        .map_err(|e| CliError::from(e).context("verify"))?;
    let text = crate::verify::render::verify_text(&r, a.show);
    print_and_write(&text, a.out.as_deref(), &VERIFY_JSON, |dir| {
        crate::verify::render::write_verify(dir, &r)
    })?;
    Ok(match r.verdict() {
        Verdict::Identical => Outcome::PASS,
        Verdict::Different => Outcome::judged(false),
        Verdict::Incomplete => Outcome::verdict(crate::summary::Verdict::Incomplete),
    })
}
