//! `compare`: one scenario, same seed, against a baseline and a candidate, side by side.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::args::{env_password, parse_dur, EmbeddedArgs, TlsArgs};
use super::exit::{CliError, Outcome};
use super::output::{print_and_write, RESULTS};
use crate::run::RunOptions;
use crate::scenario::Overrides;

/// `valkey-chaos compare`'s flags; the embedded Valkey is the candidate's.
#[derive(Args, Debug, Clone)]
#[command(
    mut_arg("valkey_server", |a| a.help("valkey-server binary for the embedded candidate")),
    mut_arg("valkey_version", |a| a.help("The embedded candidate by version: 9 (default) or 8.1")),
)]
pub struct CompareArgs {
    pub scenario: PathBuf,
    /// The old server (default: an embedded Redis 7.0 from Debian's redis-server on PATH).
    #[arg(long, value_name = "URL")]
    pub baseline: Option<String>,
    /// The new server (default: the embedded Valkey); VALKEY_PASSWORD fills a missing password.
    #[arg(long, value_name = "URL")]
    pub candidate: Option<String>,
    /// Override the scenario's duration for both runs ("30s", "2m").
    #[arg(long, value_parser = parse_dur)]
    pub duration: Option<Duration>,
    /// Override the scenario's seed (both runs use the same one).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write baseline/ and candidate/ results and compare.txt here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// redis-server binary for the embedded baseline.
    #[arg(long, value_name = "PATH")]
    pub redis_server: Option<PathBuf>,
    #[command(flatten)]
    pub embedded: EmbeddedArgs,
    /// No live progress.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `valkey-chaos compare`: fails if either side fails its checks.
pub async fn compare(a: &CompareArgs) -> Result<Outcome, CliError> {
    let overrides = Overrides {
        duration: a.duration,
        seed: a.seed,
        ..Default::default()
    };
    let plan = crate::scenario::load(&a.scenario, &overrides)?.plan;
    // Unlike `run`, compare has always called a missing versioned binary a usage error too.
    let valkey_server = a.embedded.locate().map_err(|e| CliError::Usage(e.into()))?;
    let opts = crate::compare::Options {
        baseline: a.baseline.clone(),
        candidate: a.candidate.clone(),
        redis_server: a.redis_server.clone(),
        valkey_server,
        run: RunOptions {
            quiet: a.quiet,
            tls: a.tls.choice(),
            password: env_password(),
            ..Default::default()
        },
    };
    let (b, c) = crate::compare::compare(&plan, &opts, super::signals::shutdown_on_signals())
        .await
        .map_err(|e| CliError::from(e).context(format!("compare {}", plan.name)))?;
    let text = crate::compare::render(&b.summary, &c.summary);
    print_and_write(&text, a.out.as_deref(), &RESULTS, |dir| {
        crate::compare::write_outputs(dir, &b, &c).map(|()| dir.to_path_buf())
    })?;
    Ok(Outcome::verdict(b.summary.verdict).and(Ok(Outcome::verdict(c.summary.verdict))))
}
