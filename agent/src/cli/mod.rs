//! The command line: parse arguments, dispatch to one handler per command, and turn how the
//! command ended into the exit code (0 pass, 1 a check failed, 2 usage or scenario error, 3
//! target or runtime failure, 4 incomplete) in one place, [`exit`].
//!
//! Handlers return `Result<Outcome, CliError>` and never name a number; flags several commands
//! share are declared once in [`args`]; what a command prints and writes into `--out` goes through
//! [`output`]; Ctrl-C and SIGTERM are handled in [`signals`].

pub mod args;
pub mod exit;
pub mod output;
pub mod signals;

mod bench;
mod compare;
mod compat;
mod drain;
mod headroom;
mod lag;
mod merge;
mod plugin;
mod run;
mod up;
mod validate;
mod verify;

pub use bench::BenchArgs;
pub use compare::CompareArgs;
pub use compat::CompatArgs;
pub use drain::DrainArgs;
pub use headroom::HeadroomArgs;
pub use lag::LagArgs;
pub use merge::MergeArgs;
pub use plugin::PluginCmd;
pub use run::RunArgs;
pub use up::UpArgs;
pub use validate::ValidateArgs;
pub use verify::VerifyArgs;

pub use signals::shutdown_on_signals;

use clap::{Parser, Subcommand};

use exit::{CliError, Exit, Outcome};

/// The whole command line.
#[derive(Parser, Debug)]
#[command(
    name = "valkey-chaos",
    version,
    about = "Load, chaos and safety checks for a Redis → Valkey migration"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Command,
}

/// One command, with its flags.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run scenarios against a target (or the embedded topology) and judge them.
    Run(RunArgs),
    /// Check scenario files offline; every problem is reported as file:line:col.
    Validate(ValidateArgs),
    /// Measure the agent against peers on one fresh Valkey (redis-benchmark, Python Dramatiq, redis-py).
    Bench(BenchArgs),
    /// WASM plugins: `plugin check FILE.wasm` loads, validates and measures a plugin.
    Plugin {
        #[command(subcommand)]
        cmd: PluginCmd,
    },
    /// Combine several agents' outputs (directories with summary.json and latency.hlog) into one
    /// summary with exact percentiles, and judge the thresholds again (phase ones on the merged
    /// slots); a missing shard fails its check by name and, like an interrupted one, leaves the
    /// merged run incomplete (exit 4).
    Merge(MergeArgs),
    /// Phase 1 of the migration: probe what the ECHO stack's clients rely on, on the candidate
    /// (and a baseline), as a table of named checks; exit 1 if a check that matters fails.
    Compat(CompatArgs),
    /// Run one scenario with the same seed against a baseline and a candidate (default: embedded
    /// Redis 7.0 vs embedded Valkey) and show them side by side.
    Compare(CompareArgs),
    /// After a migration: compare the source's keys (all, or a sample) with the destination's,
    /// read-only on both sides — type, value, TTL, missing and extra keys; exit 1 on a difference.
    Verify(VerifyArgs),
    /// Watch replication lag source → destination with a canary. WRITES one key on the source
    /// (vc:lag:<nonce>, with a TTL, deleted at the end); exit 1 if a canary never arrives.
    Lag(LagArgs),
    /// After a cutover: move what Dramatiq left on the old side (ready and delay queues, dead
    /// letters, the ack sets of workers that are gone) to the new side, skipping what is already
    /// there; exit 1 if something is left behind (with --dry-run: if anything would move).
    Drain(DrainArgs),
    /// Start the embedded topology in the foreground and print its URLs (Ctrl-C stops it).
    Up(UpArgs),
    /// How much of a scenario's load the target takes with every check holding (and an SLO):
    /// scales its open-model rates, doubling then narrowing; exit 1 if not even 1x holds.
    Headroom(HeadroomArgs),
}

/// Parse arguments, run, and return the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return Exit::of_clap(&e).code();
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VALKEY_CHAOS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let ended = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(dispatch(cli)),
        Err(e) => Err(CliError::Runtime(
            anyhow::Error::new(e).context("cannot start the async runtime"),
        )),
    };
    exit::exit(ended).code()
}

async fn dispatch(cli: Cli) -> Result<Outcome, CliError> {
    match cli.cmd {
        Command::Run(a) => run::run(a).await,
        Command::Validate(a) => validate::validate(&a),
        Command::Bench(a) => bench::bench(&a).await,
        Command::Plugin { cmd } => plugin::plugin(&cmd).await,
        Command::Merge(a) => merge::merge(&a),
        Command::Compat(a) => compat::compat(&a).await,
        Command::Compare(a) => compare::compare(&a).await,
        Command::Headroom(a) => headroom::headroom(&a).await,
        Command::Verify(a) => verify::verify(&a).await,
        Command::Lag(a) => lag::lag(&a).await,
        Command::Drain(a) => drain::drain(&a).await,
        Command::Up(a) => up::up(&a).await,
    }
}
