//! `headroom`: how much of a scenario's load a target takes with every check holding.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::args::{env_password, parse_dur, TargetArgs};
use super::exit::{CliError, Outcome};
use super::output::{print_and_write, Names};
use crate::headroom::{HeadroomError, Limit, Options};
use crate::run::{RunOptions, TargetChoice};
use crate::summary::Verdict;

/// `valkey-chaos headroom`'s flags.
#[derive(Args, Debug, Clone)]
pub struct HeadroomArgs {
    /// The scenario whose open-model rates are scaled.
    pub scenario: PathBuf,
    /// The SLO each step must hold, besides the scenario's own checks: 'p99 < 5ms' (every
    /// operation) or a full threshold such as 'cache.get.p99{after} < 5ms' (repeatable).
    #[arg(long = "slo", value_name = "'[METRIC|STAT] COND'")]
    pub slos: Vec<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Each step's duration (default: the scenario's).
    #[arg(long, value_parser = parse_dur)]
    pub duration: Option<Duration>,
    /// Override the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The largest multiple of the scenario's load tried.
    #[arg(long, default_value_t = 64.0)]
    pub max_multiple: f64,
    /// Stop narrowing when the bound is known to within this fraction.
    #[arg(long, default_value_t = 0.05)]
    pub precision: f64,
    /// At most this many steps (runs) in all.
    #[arg(long, default_value_t = 14)]
    pub max_steps: u32,
    /// The embedded servers' io-threads (Valkey 8+: compare 1 with 2 and more).
    #[arg(long, value_name = "N")]
    pub io_threads: Option<u32>,
    /// Write headroom.json (the curve and the number) here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `valkey-chaos headroom`: exit 0 when the scenario's own load fits (a multiple of at least 1
/// holds every check), 1 when it does not, 4 when interrupted.
pub async fn headroom(a: &HeadroomArgs) -> Result<Outcome, CliError> {
    let valkey_server = a.target.embedded.locate()?;
    let o = Options {
        scenario: a.scenario.clone(),
        slos: a.slos.clone(),
        duration: a.duration,
        seed: a.seed,
        max_multiple: a.max_multiple,
        precision: a.precision.max(0.001),
        max_steps: a.max_steps.max(1),
        run: RunOptions {
            target: match &a.target.target {
                Some(u) => TargetChoice::Url(u.clone()),
                None => TargetChoice::Auto,
            },
            quiet: true,
            valkey_server,
            server_args: a
                .io_threads
                .map(|n| vec!["--io-threads".to_string(), n.to_string()])
                .unwrap_or_default(),
            tls: a.target.tls.choice(),
            password: env_password(),
            ..Default::default()
        },
    };
    let shutdown = super::signals::shutdown_on_signals();
    let r = crate::headroom::search(&o, shutdown)
        .await
        .map_err(|e| match e {
            HeadroomError::Load(l) => CliError::from(l),
            HeadroomError::Usage(m) => CliError::usage(m),
            HeadroomError::Run { multiple, source } => {
                CliError::from(source).context(format!("step at {multiple}x"))
            }
        })?;
    print_and_write(
        &crate::headroom::report::text(&r),
        a.out.as_deref(),
        &Names {
            written: "headroom written to",
            what: "headroom.json",
        },
        |dir| crate::headroom::report::write(dir, &r),
    )?;
    Ok(Outcome::verdict(match (r.limit, r.headroom) {
        (Limit::Interrupted, _) => Verdict::Incomplete,
        (_, Some(m)) if m >= 1.0 => Verdict::Pass,
        _ => Verdict::Fail,
    }))
}
