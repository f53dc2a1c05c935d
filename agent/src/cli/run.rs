//! `run`: compile every scenario first, then run them one after the other and judge each.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::args::{env_password, parse_dur, parse_provider, parse_time, TargetArgs};
use super::exit::{CliError, Outcome};
use super::output::{report_run, RESULTS};
use crate::plan::shard::Shard;
use crate::plan::Plan;
use crate::run::{RunOptions, TargetChoice};
use crate::scenario::Overrides;

/// `valkey-chaos run`'s flags.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Write summary.json and latency.hlog (and reports) here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Override the scenario's duration ("30s", "2m").
    #[arg(long, value_parser = parse_dur)]
    pub duration: Option<Duration>,
    /// Override the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Extra threshold, e.g. --threshold 'cache.get.p99 < 5ms' (repeatable).
    #[arg(long = "threshold", value_name = "'METRIC COND'")]
    pub thresholds: Vec<String>,
    /// No live progress.
    #[arg(long, short)]
    pub quiet: bool,
    /// Allow faults that change a non-local server (the scenario must also set allow_destructive = true).
    #[arg(long)]
    pub allow_destructive: bool,
    /// Against a non-local target, skip destructive faults instead of refusing the run.
    #[arg(long)]
    pub skip_destructive: bool,
    /// The managed service the target is: digitalocean, elasticache, aiven or self-hosted
    /// (default: detected from the host name). Decides which faults cannot run there.
    #[arg(long, value_name = "NAME", value_parser = parse_provider)]
    pub provider: Option<crate::plan::provider::Provider>,
    /// Skip the faults whose commands the target refuses (CONFIG, DEBUG, …) instead of refusing
    /// the run before the load.
    #[arg(long)]
    pub skip_forbidden: bool,
    /// Export traces and metrics to this OTLP endpoint (e.g. http://localhost:4317).
    #[arg(long, value_name = "URL", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp: Option<String>,
    /// OTLP transport: grpc or http (http/protobuf); default OTEL_EXPORTER_OTLP_PROTOCOL, else grpc.
    #[arg(long, value_name = "grpc|http", value_parser = crate::export::otlp::Protocol::parse)]
    pub otlp_protocol: Option<crate::export::otlp::Protocol>,
    /// Fraction of operations exported as trace spans.
    #[arg(long, value_name = "FRACTION", default_value_t = crate::export::otlp::DEFAULT_TRACE_SAMPLE,
          value_parser = crate::export::otlp::parse_fraction)]
    pub trace_sample: f64,
    /// Run as shard INDEX of COUNT agents (e.g. 0/4): rates and clients divided, keys shared,
    /// server faults on shard 0; `merge` of every shard's --out gives the verdict.
    #[arg(long, value_name = "INDEX/COUNT")]
    pub shard: Option<String>,
    /// Shard count when the index comes from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job).
    #[arg(long, value_name = "COUNT", env = "VALKEY_CHAOS_SHARDS")]
    pub shard_count: Option<u32>,
    /// What the agents of one sharded run share (with the scenario name and the shard count) to
    /// meet at the start barrier on the target: e.g. the release or job name.
    #[arg(long, value_name = "KEY", env = "VALKEY_CHAOS_RUN_KEY")]
    pub run_key: Option<String>,
    /// How long a shard waits at the start barrier for the others before it gives up (exit 3,
    /// naming the shards that never arrived).
    #[arg(long, value_name = "DURATION", value_parser = parse_dur, default_value = "60s")]
    pub barrier_timeout: Duration,
    /// Start the load at this instant on the target's clock (RFC 3339, e.g.
    /// 2025-06-01T12:00:00Z) instead of meeting the other shards first (first scenario only).
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub start_at: Option<std::time::SystemTime>,
    /// Run a shard without the start barrier: its time zero is its own.
    #[arg(long)]
    pub no_barrier: bool,
}

impl RunArgs {
    /// The run options the flags (and `VALKEY_PASSWORD`) ask for; `valkey_server` is the binary
    /// `--valkey-version` or `--valkey-server` named.
    fn options(&self, valkey_server: Option<PathBuf>) -> RunOptions {
        RunOptions {
            target: match &self.target.target {
                Some(u) => TargetChoice::Url(u.clone()),
                None => TargetChoice::Auto,
            },
            quiet: self.quiet,
            valkey_server,
            server_args: vec![],
            tls: self.target.tls.choice(),
            allow_destructive: self.allow_destructive,
            skip_destructive: self.skip_destructive,
            provider: self.provider,
            skip_forbidden: self.skip_forbidden,
            interval: None,
            password: env_password(),
            otlp: self
                .otlp
                .as_ref()
                .map(|endpoint| crate::export::otlp::OtlpOptions {
                    endpoint: endpoint.clone(),
                    protocol: self
                        .otlp_protocol
                        .or_else(crate::export::otlp::protocol_from_env)
                        .unwrap_or_default(),
                    trace_sample: self.trace_sample,
                }),
            start: crate::run::StartOptions {
                run_key: self.run_key.clone(),
                timeout: self.barrier_timeout,
                start_at: self.start_at,
                no_barrier: self.no_barrier,
            },
        }
    }
}

/// `valkey-chaos run`.
pub async fn run(a: RunArgs) -> Result<Outcome, CliError> {
    let job_index = std::env::var("JOB_COMPLETION_INDEX").ok();
    let shard =
        crate::plan::shard::resolve(a.shard.as_deref(), a.shard_count, job_index.as_deref())
            .map_err(CliError::usage)?;
    let overrides = Overrides {
        duration: a.duration,
        seed: a.seed,
        thresholds: a.thresholds.clone(),
        shard,
        rate_multiple: None,
    };
    let mut opts = a.options(a.target.embedded.locate()?);
    // Compile everything first: a scenario error stops the run before any load starts.
    let (plans, compiled) = compile_all(&a, &overrides, shard, &opts.target);
    if compiled != Outcome::PASS {
        // Every scenario's problems are printed already: end with them, and nothing runs.
        return Ok(compiled);
    }
    let shutdown = super::signals::shutdown_on_signals();
    let mut outcome = Outcome::PASS;
    let many = plans.len() > 1;
    for plan in &plans {
        if shutdown.is_cancelled() {
            break;
        }
        let ran = crate::run::run(plan, &opts, shutdown.clone()).await;
        // --start-at fixes the first scenario's start; the next ones meet (or start) as usual.
        opts.start.start_at = None;
        let judged = match ran {
            Ok(out) => {
                let dir = match &a.out {
                    Some(dir) if many => Some(dir.join(&plan.name)),
                    dir => dir.clone(),
                };
                report_run(
                    &out.summary,
                    &out.hlog,
                    &out.histories,
                    dir.as_deref(),
                    &RESULTS,
                )
            }
            Err(e) => Err(CliError::from(e).context(plan.name.clone())),
        };
        // One scenario's error does not stop the next one.
        outcome = outcome.and(judged);
    }
    Ok(outcome)
}

/// Compile every scenario, printing each one's problems (and a shard's notes) as it goes; the
/// outcome carries the problems.
fn compile_all(
    a: &RunArgs,
    overrides: &Overrides,
    shard: Option<Shard>,
    target: &TargetChoice,
) -> (Vec<Plan>, Outcome) {
    let mut plans = vec![];
    let mut compiled = Outcome::PASS;
    for p in &a.scenarios {
        let c = match crate::scenario::load(p, overrides) {
            Ok(c) => c,
            Err(e) => {
                compiled = compiled.and(Err(e.into()));
                continue;
            }
        };
        if let Some(s) = shard {
            if a.no_barrier && crate::run::target::pick_url(&c.plan, target).is_none() {
                eprintln!(
                    "warning: shard {s} of {} runs against its own embedded Valkey: \
                     shards share keys only on a common --target",
                    c.plan.name
                );
            }
            for note in &c.notes {
                eprintln!("shard {s} of {}: {note}", c.plan.name);
            }
        }
        for w in &c.warnings {
            eprintln!("warning: {}: {w}", p.display());
        }
        plans.push(c.plan);
    }
    (plans, compiled)
}
