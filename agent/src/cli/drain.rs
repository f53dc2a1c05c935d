//! `drain`: after a cutover, move what Dramatiq left on the old side to the new one.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::args::{env_password, parse_dur, TlsArgs};
use super::exit::{CliError, Outcome};
use super::output::{print_and_write, Names};
use crate::drain::{Copied, Options, Side, Verdict};
use crate::valkey::target::TargetUrl;
use crate::valkey::Route;
use crate::verify::databases::plan;

/// `valkey-chaos drain`'s flags.
#[derive(Args, Debug, Clone)]
pub struct DrainArgs {
    /// The old side: redis://[user:password@]host:port[/db] or rediss://… (a URL's /db drains
    /// only that database; without one, every database holding keys on the source).
    #[arg(long, value_name = "URL")]
    pub source: String,
    /// The new side (VALKEY_PASSWORD fills a missing password).
    #[arg(long, value_name = "URL")]
    pub destination: String,
    /// Only this database (repeatable; each into the same number on the destination).
    #[arg(long = "db", value_name = "N")]
    pub dbs: Vec<u32>,
    /// Dramatiq's namespace (RedisBroker's `namespace`).
    #[arg(long, value_name = "NS", default_value = "dramatiq")]
    pub namespace: String,
    /// Count what would move and write nothing; exit 1 if anything would.
    #[arg(long)]
    pub dry_run: bool,
    /// A worker that heart-beat on the source within this is alive: its ack set is left.
    #[arg(long, value_parser = parse_dur, default_value = "60s")]
    pub heartbeat_timeout: Duration,
    /// Write the message ids the source holds now (what the copy carried) to FILE and stop:
    /// run it when the copy stops, while writes are stopped (read-only).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["copied", "dry_run"])]
    pub save_copied: Option<PathBuf>,
    /// Skip the message ids FILE lists (`--save-copied`): the destination had them.
    #[arg(long, value_name = "FILE")]
    pub copied: Option<PathBuf>,
    /// Write drain.json here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Moved messages listed on the terminal (all are counted).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub show: usize,
    /// Messages per round trip.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub batch: usize,
    /// Per request deadline.
    #[arg(long, value_parser = parse_dur, default_value = "10s")]
    pub timeout: Duration,
    #[command(flatten)]
    pub tls: TlsArgs,
}

const DRAIN_JSON: Names = Names {
    written: "written to",
    what: "drain.json",
};

/// One side from its URL, as `verify` reaches it (TLS flags for both, `VALKEY_PASSWORD` for the
/// destination's missing password).
fn side(
    flag: &str,
    url: &str,
    password: Option<String>,
    a: &DrainArgs,
) -> Result<(Side, TargetUrl), CliError> {
    let mut u = TargetUrl::parse(url).map_err(|e| CliError::usage(format!("{flag}: {e}")))?;
    if u.password.is_none() {
        u.password = password;
    }
    let mut opts = u
        .connect_options(&a.tls.choice(), a.timeout)
        .map_err(|e| CliError::usage(format!("{flag}: {e}")))?;
    opts.lib_info = Some((
        "valkey-chaos-drain".into(),
        env!("CARGO_PKG_VERSION").into(),
    ));
    Ok((
        Side {
            label: u.to_string(),
            route: Route::direct(u.host_port(), opts),
        },
        u,
    ))
}

/// `valkey-chaos drain`: 0 nothing left behind (dry: nothing to move), 1 something is (dry:
/// something to move), 4 interrupted.
pub async fn drain(a: &DrainArgs) -> Result<Outcome, CliError> {
    let (source, su) = side("--source", &a.source, None, a)?;
    let (destination, du) = side("--destination", &a.destination, env_password(), a)?;
    let databases = plan(&a.dbs, &su, &du).map_err(CliError::usage)?;
    if a.batch == 0 {
        return Err(CliError::usage("--batch must be at least 1"));
    }
    let copied = match &a.copied {
        Some(p) => Some(Copied::load(p).map_err(|e| CliError::from(e).context("drain"))?),
        None => None,
    };
    let opts = Options {
        databases,
        namespace: a.namespace.clone(),
        dry_run: a.dry_run,
        heartbeat_timeout: a.heartbeat_timeout,
        copied,
        batch: a.batch,
        ..Options::new(source, destination)
    };
    if let Some(path) = &a.save_copied {
        let c = crate::drain::copied(&opts)
            .await
            .map_err(|e| CliError::from(e).context("drain"))?;
        c.save(path)
            .map_err(|e| CliError::from(e).context("drain"))?;
        println!(
            "{} message ids on the source ({} databases) saved to {}: pass it as --copied after the switch",
            c.len(),
            c.by_db.len(),
            path.display()
        );
        return Ok(Outcome::PASS);
    }
    let r = crate::drain::run(&opts, &super::signals::shutdown_on_signals())
        .await
        .map_err(|e| CliError::from(e).context("drain"))?;
    let text = crate::drain::render::text(&r, a.show);
    print_and_write(&text, a.out.as_deref(), &DRAIN_JSON, |dir| {
        crate::drain::render::write(dir, &r)
    })?;
    Ok(match r.verdict() {
        Verdict::Done => Outcome::PASS,
        Verdict::LeftBehind => Outcome::judged(false),
        Verdict::Incomplete => Outcome::verdict(crate::summary::Verdict::Incomplete),
    })
}
