//! The command line: parse arguments, dispatch, map outcomes to exit codes
//! (0 pass, 1 a check failed, 2 usage or scenario error, 3 target or runtime failure).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::run::{RunError, RunOptions, TargetChoice};
use crate::scenario::{LoadError, Overrides};
use crate::valkey::target::TlsChoice;

pub const EXIT_PASS: i32 = 0;
pub const EXIT_FAIL: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_RUNTIME: i32 = 3;

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

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run scenarios against a target (or the embedded topology) and judge them.
    Run(RunArgs),
    /// Check scenario files offline; every problem is reported as file:line:col.
    Validate {
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Measure the agent against peers on one fresh Valkey (redis-benchmark, Python Dramatiq, redis-py).
    Bench {
        /// Seconds per measured run.
        #[arg(long, default_value_t = 5)]
        secs: u64,
        /// Where the example plugins were built.
        #[arg(long, default_value = "plugins/target/wasm32-wasip2/release")]
        plugins: PathBuf,
        /// Also write bench.json here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only these groups (comma-separated): pacing, commands, dramatiq, lock, plugin,
        /// memory, proxy.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// WASM plugins: `plugin check FILE.wasm` loads, validates and measures a plugin.
    Plugin {
        #[command(subcommand)]
        cmd: PluginCmd,
    },
    /// Combine several agents' outputs (directories with summary.json and latency.hlog) into one
    /// summary with exact percentiles, and judge the thresholds again (phase ones on the merged
    /// slots); a missing or interrupted shard fails the verdict by name (exit 1).
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
    /// Start the embedded topology in the foreground and print its URLs (Ctrl-C stops it).
    Up {
        #[arg(long, default_value_t = 0)]
        replicas: u8,
        #[arg(long, default_value_t = 0)]
        sentinels: u8,
        #[arg(long, value_name = "PATH")]
        valkey_server: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PluginCmd {
    /// Load a plugin, check it against the WIT contract, print describe() and its per-VU cost.
    Check {
        file: PathBuf,
        /// Virtual users to instantiate for the cost measurement.
        #[arg(long, default_value_t = 100)]
        vus: u32,
    },
}

#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// Agents' --out directories (or their summary.json files).
    #[arg(required = true, value_name = "DIR_OR_FILE")]
    pub inputs: Vec<PathBuf>,
    /// Write the merged summary.json, latency.hlog, report.html and junit.xml here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Extra threshold, judged on the merged run, e.g. --threshold 'cache.get.p99 < 5ms' or
    /// 'cache.get.p99{during:failover} < 50ms' (repeatable).
    #[arg(long = "threshold", value_name = "'METRIC COND'")]
    pub thresholds: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// redis://[user:password@]host:port[/db] or rediss://… (default: scenario [target], REDIS_URL, else embedded).
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Skip TLS certificate verification (managed databases with private CAs).
    #[arg(long)]
    pub tls_insecure: bool,
    /// Trust this CA certificate (PEM) for rediss:// targets.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// valkey-server binary for the embedded topology.
    #[arg(long, value_name = "PATH", conflicts_with = "valkey_version")]
    pub valkey_server: Option<PathBuf>,
    /// Valkey for the embedded topology by version: 9 (default) or 8.1 (what managed Valkey runs).
    #[arg(long, value_name = "8.1|9")]
    pub valkey_version: Option<String>,
}

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

fn parse_dur(s: &str) -> Result<Duration, String> {
    crate::units::parse_duration(s)
}

fn parse_time(s: &str) -> Result<std::time::SystemTime, String> {
    humantime::parse_rfc3339_weak(s.trim())
        .map_err(|e| format!("{e}: write an RFC 3339 UTC time, e.g. 2025-06-01T12:00:00Z"))
}

/// Parse arguments, run, and return the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_USAGE
            } else {
                EXIT_PASS
            };
            let _ = e.print();
            return code;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VALKEY_CHAOS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return EXIT_RUNTIME;
        }
    };
    rt.block_on(dispatch(cli))
}

/// The shutdown token: cancelled on the first Ctrl-C or SIGTERM; a second Ctrl-C exits at once.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term_fut = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term_fut => {}
        }
        eprintln!("\nstopping: healing faults and writing results (Ctrl-C again to quit at once)");
        t.cancel();
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("quitting without waiting");
        std::process::exit(130);
    });
    token
}

async fn dispatch(cli: Cli) -> i32 {
    match cli.cmd {
        Command::Validate { scenarios } => validate(&scenarios),
        Command::Run(a) => run(a).await,
        Command::Bench {
            secs,
            plugins,
            out,
            only,
        } => bench(secs, &plugins, out.as_deref(), &only).await,
        Command::Merge(a) => merge(&a),
        Command::Compat(a) => compat(a).await,
        Command::Compare(a) => compare(a).await,
        Command::Verify(a) => verify(a).await,
        Command::Lag(a) => lag(a).await,
        Command::Plugin {
            cmd: PluginCmd::Check { file, vus },
        } => plugin_check(&file, vus).await,
        Command::Up {
            replicas,
            sentinels,
            valkey_server,
        } => up(replicas, sentinels, valkey_server).await,
    }
}

fn merge(a: &MergeArgs) -> i32 {
    let m = match crate::merge::merge_paths(&a.inputs, &a.thresholds) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    print!("{}", crate::report::text::render(&m.summary));
    if let Some(dir) = &a.out {
        match crate::report::write_outputs(dir, &m.summary, &m.hlog, &m.histories) {
            Ok(()) => eprintln!("merged results written to {}", dir.display()),
            Err(e) => {
                eprintln!("error: cannot write results to {}: {e}", dir.display());
                return EXIT_RUNTIME;
            }
        }
    }
    if m.summary.passed() {
        EXIT_PASS
    } else {
        EXIT_FAIL
    }
}

fn validate(paths: &[PathBuf]) -> i32 {
    let mut code = EXIT_PASS;
    for p in paths {
        match crate::scenario::load_plain(p) {
            Ok(plan) => println!(
                "{}: ok ({} workloads, {} faults, {} thresholds)",
                p.display(),
                plan.workloads.len(),
                plan.faults.len(),
                plan.thresholds.len()
            ),
            Err(d) => {
                eprintln!("{d}");
                code = EXIT_USAGE;
            }
        }
    }
    code
}

fn run_options(a: &RunArgs) -> RunOptions {
    RunOptions {
        target: match &a.target.target {
            Some(u) => TargetChoice::Url(u.clone()),
            None => TargetChoice::Auto,
        },
        quiet: a.quiet,
        valkey_server: a.target.valkey_server.clone(),
        tls: TlsChoice {
            insecure: a.target.tls_insecure,
            ca_file: a.target.tls_ca.clone(),
        },
        allow_destructive: a.allow_destructive,
        skip_destructive: a.skip_destructive,
        provider: a.provider,
        skip_forbidden: a.skip_forbidden,
        interval: None,
        password: env_password(),
        otlp: a
            .otlp
            .as_ref()
            .map(|endpoint| crate::export::otlp::OtlpOptions {
                endpoint: endpoint.clone(),
                protocol: a
                    .otlp_protocol
                    .or_else(crate::export::otlp::protocol_from_env)
                    .unwrap_or_default(),
                trace_sample: a.trace_sample,
            }),
        start: crate::run::barrier::StartOptions {
            run_key: a.run_key.clone(),
            timeout: a.barrier_timeout,
            start_at: a.start_at,
            no_barrier: a.no_barrier,
        },
    }
}

fn print_load_error(e: &LoadError) {
    match e {
        LoadError::Scenario(d) => eprintln!("{d}"),
        LoadError::Flag(m) => eprintln!("error: {m}"),
    }
}

async fn run(a: RunArgs) -> i32 {
    let job_index = std::env::var("JOB_COMPLETION_INDEX").ok();
    let shard = match crate::plan::shard::resolve(
        a.shard.as_deref(),
        a.shard_count,
        job_index.as_deref(),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let overrides = Overrides {
        duration: a.duration,
        seed: a.seed,
        thresholds: a.thresholds.clone(),
        shard,
    };
    let mut opts = run_options(&a);
    if let Some(v) = &a.target.valkey_version {
        match crate::valkey::embedded::locate_valkey_version(v) {
            Ok(p) => opts.valkey_server = Some(p),
            Err(e) => {
                eprintln!("error: {e}");
                return match e {
                    crate::valkey::embedded::VersionError::Unknown(_) => EXIT_USAGE,
                    crate::valkey::embedded::VersionError::Missing(_) => EXIT_RUNTIME,
                };
            }
        }
    }
    // Compile everything first: a scenario error stops the run before any load starts.
    let mut plans = vec![];
    let mut bad = false;
    for p in &a.scenarios {
        match crate::scenario::load(p, &overrides) {
            Ok(c) => {
                if let Some(s) = shard {
                    if a.no_barrier && crate::run::target::pick_url(&c.plan, &opts.target).is_none()
                    {
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
                plans.push(c.plan);
            }
            Err(e) => {
                print_load_error(&e);
                bad = true;
            }
        }
    }
    if bad {
        return EXIT_USAGE;
    }
    let shutdown = shutdown_on_signals();
    let mut code = EXIT_PASS;
    let many = plans.len() > 1;
    for plan in &plans {
        if shutdown.is_cancelled() {
            break;
        }
        let ran = crate::run::run(plan, &opts, shutdown.clone()).await;
        // --start-at fixes the first scenario's start; the next ones meet (or start) as usual.
        opts.start.start_at = None;
        match ran {
            Ok(out) => {
                print!("{}", crate::report::text::render(&out.summary));
                if let Some(dir) = &a.out {
                    let dir = if many {
                        dir.join(&plan.name)
                    } else {
                        dir.clone()
                    };
                    match crate::report::write_outputs(
                        &dir,
                        &out.summary,
                        &out.hlog,
                        &out.histories,
                    ) {
                        Ok(()) => eprintln!("results written to {}", dir.display()),
                        Err(e) => {
                            eprintln!("error: cannot write results to {}: {e}", dir.display());
                            code = code.max(EXIT_RUNTIME);
                        }
                    }
                }
                if !out.summary.passed() {
                    code = code.max(EXIT_FAIL);
                }
            }
            Err(e) => {
                eprintln!("error: {}: {e:#}", plan.name);
                code = code.max(match e {
                    RunError::Refused(_) => EXIT_USAGE,
                    RunError::Target(_) | RunError::Runtime(_) => EXIT_RUNTIME,
                });
            }
        }
    }
    code
}

async fn bench(
    secs: u64,
    plugins: &std::path::Path,
    out: Option<&std::path::Path>,
    only: &[String],
) -> i32 {
    if let Some(bad) = only
        .iter()
        .find(|g| !crate::bench::GROUPS.contains(&g.as_str()))
    {
        eprintln!(
            "error: bench --only: unknown group {bad:?} (groups: {})",
            crate::bench::GROUPS.join(", ")
        );
        return EXIT_USAGE;
    }
    match crate::bench::run(secs.max(1), Some(plugins), only).await {
        Ok(rows) => {
            print!("{}", crate::bench::render(&rows));
            if let Some(dir) = out {
                let _ = std::fs::create_dir_all(dir);
                let _ = std::fs::write(
                    dir.join("bench.json"),
                    serde_json::to_vec_pretty(&rows).unwrap_or_default(),
                );
            }
            EXIT_PASS
        }
        Err(e) => {
            eprintln!("error: bench: {e}");
            EXIT_RUNTIME
        }
    }
}

async fn plugin_check(file: &std::path::Path, vus: u32) -> i32 {
    match crate::plugin::check(file, vus.max(1)).await {
        Ok((p, info, cost)) => {
            println!("plugin {} ({})", p.name, file.display());
            println!("  contract   {} (ok)", crate::plugin::CONTRACT);
            println!("  describe   {} {}", info.name, info.version);
            for (k, d) in &info.params {
                println!("  param      {k}: {d}");
            }
            println!(
                "  compile    {:.1?} ({})",
                p.compile_time,
                if p.compiled_from_cache {
                    "from cache"
                } else {
                    "compiled, now cached"
                }
            );
            println!(
                "  per VU     {:.1} us to instantiate, {:.0} KiB resident ({} VUs measured)",
                cost.instantiate_us,
                cost.rss_per_vu_kib,
                vus.max(1)
            );
            EXIT_PASS
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}

async fn up(replicas: u8, sentinels: u8, bin: Option<PathBuf>) -> i32 {
    let bin = match crate::valkey::embedded::locate_valkey(bin.as_deref()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_RUNTIME;
        }
    };
    let spec = crate::valkey::embedded::TopologySpec {
        replicas,
        sentinels,
        ..Default::default()
    };
    let mut topo = match crate::valkey::embedded::Topology::start(&bin, spec).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_RUNTIME;
        }
    };
    for n in &topo.nodes {
        let role = match n.role {
            crate::valkey::embedded::NodeRole::Primary => "primary ",
            crate::valkey::embedded::NodeRole::Replica => "replica ",
            crate::valkey::embedded::NodeRole::Sentinel => "sentinel",
        };
        println!("{role} {:<12} redis://127.0.0.1:{}", n.name, n.port);
    }
    if sentinels > 0 {
        println!(
            "sentinel master name: {}",
            crate::valkey::embedded::MASTER_NAME
        );
    }
    println!("ready; Ctrl-C stops everything");
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
        t.cancel();
    });
    token.cancelled().await;
    topo.stop();
    println!("stopped");
    EXIT_PASS
}

#[derive(Args, Debug, Clone)]
pub struct CompatArgs {
    /// The candidate: redis://[user:password@]host:port[/db] or rediss://… (VALKEY_PASSWORD fills
    /// a missing password).
    #[arg(long, value_name = "URL")]
    pub target: String,
    /// The server the stack runs on today; without it only the candidate column is shown.
    #[arg(long, value_name = "URL")]
    pub baseline: Option<String>,
    /// Skip TLS certificate verification (both sides).
    #[arg(long)]
    pub tls_insecure: bool,
    /// Trust this CA certificate (PEM) for rediss:// URLs (both sides).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
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

fn parse_provider(s: &str) -> Result<crate::plan::provider::Provider, String> {
    crate::plan::provider::Provider::parse(s).map_err(|e| e.to_string())
}

#[derive(Args, Debug, Clone)]
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
    /// Skip TLS certificate verification (both sides).
    #[arg(long)]
    pub tls_insecure: bool,
    /// Trust this CA certificate (PEM) for rediss:// URLs (both sides).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// redis-server binary for the embedded baseline.
    #[arg(long, value_name = "PATH")]
    pub redis_server: Option<PathBuf>,
    /// valkey-server binary for the embedded candidate.
    #[arg(long, value_name = "PATH", conflicts_with = "valkey_version")]
    pub valkey_server: Option<PathBuf>,
    /// The embedded candidate by version: 9 (default) or 8.1.
    #[arg(long, value_name = "8.1|9")]
    pub valkey_version: Option<String>,
    /// No live progress.
    #[arg(long, short)]
    pub quiet: bool,
}

fn env_password() -> Option<String> {
    std::env::var("VALKEY_PASSWORD")
        .ok()
        .filter(|s| !s.is_empty())
}

async fn compat(a: CompatArgs) -> i32 {
    let opts = crate::compat::Options {
        tls: TlsChoice {
            insecure: a.tls_insecure,
            ca_file: a.tls_ca.clone(),
        },
        candidate_password: env_password(),
        provider: a.provider,
        stall: !a.no_stall,
        policy: crate::compat::Policy {
            error_text_matters: a.error_text_matters,
        },
        ..Default::default()
    };
    match crate::compat::run(&a.target, a.baseline.as_deref(), &opts).await {
        Ok(r) => {
            let (table, json) = (r.render(), r.to_json());
            print!("{}", if a.json { &json } else { &table });
            let mut code = if r.failed() { EXIT_FAIL } else { EXIT_PASS };
            if let Some(dir) = &a.out {
                let written = std::fs::create_dir_all(dir)
                    .and_then(|()| std::fs::write(dir.join("compat.txt"), &table))
                    .and_then(|()| std::fs::write(dir.join("compat.json"), &json));
                match written {
                    Ok(()) => eprintln!("results written to {}", dir.display()),
                    Err(e) => {
                        eprintln!("error: cannot write results to {}: {e}", dir.display());
                        code = EXIT_RUNTIME;
                    }
                }
            }
            code
        }
        Err(e) => {
            eprintln!("error: compat: {e}");
            match e {
                crate::compat::CompatError::Usage(_) => EXIT_USAGE,
                crate::compat::CompatError::Target(_) => EXIT_RUNTIME,
            }
        }
    }
}

async fn compare(a: CompareArgs) -> i32 {
    let overrides = Overrides {
        duration: a.duration,
        seed: a.seed,
        ..Default::default()
    };
    let plan = match crate::scenario::load(&a.scenario, &overrides) {
        Ok(c) => c.plan,
        Err(e) => {
            print_load_error(&e);
            return EXIT_USAGE;
        }
    };
    let valkey_server = match &a.valkey_version {
        Some(v) => match crate::valkey::embedded::locate_valkey_version(v) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        },
        None => a.valkey_server.clone(),
    };
    let opts = crate::compare::Options {
        baseline: a.baseline.clone(),
        candidate: a.candidate.clone(),
        redis_server: a.redis_server.clone(),
        valkey_server,
        run: RunOptions {
            quiet: a.quiet,
            tls: TlsChoice {
                insecure: a.tls_insecure,
                ca_file: a.tls_ca.clone(),
            },
            password: env_password(),
            ..Default::default()
        },
    };
    let shutdown = shutdown_on_signals();
    match crate::compare::compare(&plan, &opts, shutdown).await {
        Ok((b, c)) => {
            print!("{}", crate::compare::render(&b.summary, &c.summary));
            let mut code = EXIT_PASS;
            if let Some(dir) = &a.out {
                match crate::compare::write_outputs(dir, &b, &c) {
                    Ok(()) => eprintln!("results written to {}", dir.display()),
                    Err(e) => {
                        eprintln!("error: cannot write results to {}: {e}", dir.display());
                        code = EXIT_RUNTIME;
                    }
                }
            }
            if !b.summary.passed() || !c.summary.passed() {
                code = code.max(EXIT_FAIL);
            }
            code
        }
        Err(e) => {
            eprintln!("error: compare {}: {e:#}", plan.name);
            match e {
                RunError::Refused(_) => EXIT_USAGE,
                RunError::Target(_) | RunError::Runtime(_) => EXIT_RUNTIME,
            }
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// The server migrated from: redis://[user:password@]host:port[/db] or rediss://… (each URL
    /// names its own database).
    #[arg(long, value_name = "URL")]
    pub source: String,
    /// The server migrated to (VALKEY_PASSWORD fills a missing password).
    #[arg(long, value_name = "URL")]
    pub destination: String,
    /// Only keys matching this SCAN MATCH glob.
    #[arg(long = "match", value_name = "PATTERN")]
    pub pattern: Option<String>,
    /// Check a random sample of N distinct keys (RANDOMKEY draws: approximately uniform, with
    /// replacement) instead of every key; extra keys are then not looked for.
    #[arg(long, value_name = "N")]
    pub sample: Option<u64>,
    /// Do not SCAN the destination for keys the source lacks.
    #[arg(long)]
    pub no_extra: bool,
    /// Keys per second, over both scans (0 = unlimited).
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
    /// Skip TLS certificate verification (both sides).
    #[arg(long)]
    pub tls_insecure: bool,
    /// Trust this CA certificate (PEM) for rediss:// URLs (both sides).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// No live progress.
    #[arg(long, short)]
    pub quiet: bool,
}

async fn verify(a: VerifyArgs) -> i32 {
    let opts = crate::verify::Options {
        source: a.source.clone(),
        destination: a.destination.clone(),
        tls: TlsChoice {
            insecure: a.tls_insecure,
            ca_file: a.tls_ca.clone(),
        },
        destination_password: env_password(),
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
    match crate::verify::run(&opts, shutdown_on_signals()).await {
        Ok(r) => {
            print!("{}", crate::verify::render::verify_text(&r, a.show));
            let mut code = if r.identical() { EXIT_PASS } else { EXIT_FAIL };
            if let Some(dir) = &a.out {
                match crate::verify::render::write_verify(dir, &r) {
                    Ok(p) => eprintln!("written to {}", p.display()),
                    Err(e) => {
                        eprintln!("error: cannot write verify.json to {}: {e}", dir.display());
                        code = code.max(EXIT_RUNTIME);
                    }
                }
            }
            code
        }
        Err(e) => {
            eprintln!("error: verify: {e}");
            match e {
                crate::verify::VerifyError::Usage(_) => EXIT_USAGE,
                crate::verify::VerifyError::Target(_) => EXIT_RUNTIME,
            }
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct LagArgs {
    /// The primary being migrated from; the canary is written here.
    #[arg(long, value_name = "URL")]
    pub source: String,
    /// The server replicating it (VALKEY_PASSWORD fills a missing password); only read.
    #[arg(long, value_name = "URL")]
    pub destination: String,
    /// One canary per interval.
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
    /// Skip TLS certificate verification (both sides).
    #[arg(long)]
    pub tls_insecure: bool,
    /// Trust this CA certificate (PEM) for rediss:// URLs (both sides).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// No line per sample, only the summary.
    #[arg(long, short)]
    pub quiet: bool,
}

async fn lag(a: LagArgs) -> i32 {
    let opts = crate::verify::lag::Options {
        source: a.source.clone(),
        destination: a.destination.clone(),
        tls: TlsChoice {
            insecure: a.tls_insecure,
            ca_file: a.tls_ca.clone(),
        },
        destination_password: env_password(),
        timeout: a.timeout,
        interval: a.interval,
        duration: a.duration,
        max_lag: a.max_lag,
    };
    let quiet = a.quiet;
    let on_sample = |s: &crate::verify::lag::Sample, r: &crate::verify::lag::LagReport| {
        if quiet {
            return;
        }
        if s.seq == 1 {
            println!("{}\ncanary {} on the source", r.link_text, r.key);
        }
        println!("{}", crate::verify::render::lag_line(s, r));
    };
    match crate::verify::lag::run(&opts, shutdown_on_signals(), on_sample).await {
        Ok(r) => {
            print!("{}", crate::verify::render::lag_text(&r));
            let mut code = if r.passed() { EXIT_PASS } else { EXIT_FAIL };
            if let Some(dir) = &a.out {
                match crate::verify::render::write_lag(dir, &r) {
                    Ok(p) => eprintln!("written to {}", p.display()),
                    Err(e) => {
                        eprintln!("error: cannot write lag.json to {}: {e}", dir.display());
                        code = code.max(EXIT_RUNTIME);
                    }
                }
            }
            code
        }
        Err(e) => {
            eprintln!("error: lag: {e}");
            match e {
                crate::verify::VerifyError::Usage(_) => EXIT_USAGE,
                crate::verify::VerifyError::Target(_) => EXIT_RUNTIME,
            }
        }
    }
}
