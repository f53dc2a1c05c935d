//! `compat`: probe what the clients rely on, on the candidate (and a baseline).

use std::path::PathBuf;

use clap::Args;

use super::args::{env_password, parse_provider, TlsArgs};
use super::exit::{CliError, Outcome};
use super::output::{print_and_write, RESULTS};

/// `valkey-chaos compat`'s flags.
#[derive(Args, Debug, Clone)]
pub struct CompatArgs {
    /// The candidate: redis://[user:password@]host:port[/db] or rediss://… (VALKEY_PASSWORD fills
    /// a missing password).
    #[arg(long, value_name = "URL")]
    pub target: String,
    /// The server the stack runs on today; without it only the candidate column is shown.
    #[arg(long, value_name = "URL")]
    pub baseline: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Print the table as JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write compat.txt and compat.json into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The candidate's managed service (digitalocean, elasticache, aiven, self-hosted),
    /// overriding detection from its hostname; labels the commands it refuses.
    #[arg(long, value_name = "NAME", value_parser = parse_provider)]
    pub provider: Option<crate::plan::provider::Provider>,
    /// Fail the run when an error text changed ('Redis is busy' → 'Valkey is busy'): for
    /// applications that match error messages (ECHO's clients match only error codes).
    #[arg(long)]
    pub error_text_matters: bool,
    /// Skip the probe that stalls the server with a busy script (about 0.1 s; 5 s where CONFIG
    /// is refused).
    #[arg(long)]
    pub no_stall: bool,
}

/// `valkey-chaos compat`: the table (or its JSON), then compat.txt and compat.json in `--out`.
pub async fn compat(a: &CompatArgs) -> Result<Outcome, CliError> {
    let opts = crate::compat::Options {
        tls: a.tls.choice(),
        candidate_password: env_password(),
        provider: a.provider,
        stall: !a.no_stall,
        policy: crate::compat::Policy {
            error_text_matters: a.error_text_matters,
        },
        ..Default::default()
    };
    let r = crate::compat::run(&a.target, a.baseline.as_deref(), &opts)
        .await
        .map_err(|e| CliError::from(e).context("compat"))?;
    let (table, json) = (r.render(), r.to_json());
    let shown = if a.json { &json } else { &table };
    print_and_write(shown, a.out.as_deref(), &RESULTS, |dir| {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("compat.txt"), &table)?;
        std::fs::write(dir.join("compat.json"), &json)?;
        Ok(dir.to_path_buf())
    })?;
    Ok(Outcome::judged(!r.failed()))
}
