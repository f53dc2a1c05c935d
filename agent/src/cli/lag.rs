//! `lag`: replication lag source → destination, timed with a canary key.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::args::{env_password, parse_dur, TlsArgs};
use super::exit::{CliError, Outcome};
use super::output::{print_and_write, Names};
use crate::verify::lag::{LagReport, Sample};

/// `valkey-chaos lag`'s flags.
#[derive(Args, Debug, Clone)]
pub struct LagArgs {
    /// The primary being migrated from; the canary is written here, in each database watched (a
    /// URL's /db watches only that one; without one, every database holding keys on the source).
    #[arg(long, value_name = "URL")]
    pub source: String,
    /// The server replicating it (VALKEY_PASSWORD fills a missing password); only read.
    #[arg(long, value_name = "URL")]
    pub destination: String,
    /// Watch only this database (repeatable). Default: every database holding keys on the
    /// source (INFO keyspace).
    #[arg(long = "db", value_name = "N")]
    pub dbs: Vec<u32>,
    /// One canary per interval (and database).
    #[arg(long, value_parser = parse_dur, default_value = "1s")]
    pub interval: Duration,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long, value_parser = parse_dur)]
    pub duration: Option<Duration>,
    /// A canary not on the destination within this is lost (exit 1).
    #[arg(long, value_parser = parse_dur, default_value = "10s")]
    pub max_lag: Duration,
    /// Write lag.json here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Per request deadline.
    #[arg(long, value_parser = parse_dur, default_value = "5s")]
    pub timeout: Duration,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// No line per sample, only the summary.
    #[arg(long, short)]
    pub quiet: bool,
}

const LAG_JSON: Names = Names {
    written: "written to",
    what: "lag.json",
};

/// `valkey-chaos lag`: a line per canary as it arrives (each database its own), then the summary;
/// fails if one is lost.
pub async fn lag(a: &LagArgs) -> Result<Outcome, CliError> {
    let opts = crate::verify::lag::Options {
        source: a.source.clone(),
        destination: a.destination.clone(),
        tls: a.tls.choice(),
        destination_password: env_password(),
        dbs: a.dbs.clone(),
        timeout: a.timeout,
        interval: a.interval,
        duration: a.duration,
        max_lag: a.max_lag,
    };
    let quiet = a.quiet;
    let mut first = true;
    let on_sample = |s: &Sample, r: &LagReport| {
        if quiet {
            return;
        }
        if std::mem::take(&mut first) {
            let dbs: Vec<String> = r.databases.iter().map(|d| d.pair.label()).collect();
            println!(
                "{}\ncanary {} on the source, in {}",
                r.link_text,
                r.key,
                dbs.join(", ")
            );
        }
        println!("{}", crate::verify::render::lag_line(s, r));
    };
    let r = crate::verify::lag::run(&opts, super::signals::shutdown_on_signals(), on_sample)
        .await
        .map_err(|e| CliError::from(e).context("lag"))?;
    let text = crate::verify::render::lag_text(&r);
    print_and_write(&text, a.out.as_deref(), &LAG_JSON, |dir| {
        crate::verify::render::write_lag(dir, &r)
    })?;
    Ok(Outcome::judged(r.passed()))
}
