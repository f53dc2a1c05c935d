//! `headroom`: how much of a scenario's load a target takes with every check holding — an SLO the
//! command line adds (`--slo 'p99 < 5ms'`) and the scenario's own checks (safety, recovery,
//! thresholds). A saturation search over the multiple of the scenario's open-model rates: double
//! until a step fails, then halve the gap until it is within `precision`, each step a whole run
//! judged by the one judge. Latency is wrk2's: from the intended start, so a late generator never
//! hides. Where the agent itself, not the server, set the pace (a step flagged generator-bound),
//! the search stops and says the number is a lower bound.
//!
//! [`report`] renders the curve (multiple → offered and completed ops/s, p50, p99, errors) and
//! `headroom.json`.

pub mod report;

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::plan::{LoadModel, Plan};
use crate::run::RunOptions;
use crate::scenario::{LoadError, Overrides};
use crate::summary::{RunSummary, Verdict};

/// What to search.
#[derive(Debug, Clone)]
pub struct Options {
    pub scenario: PathBuf,
    /// SLOs as threshold texts: `'METRIC COND'`, or `'STAT COND'` for every operation.
    pub slos: Vec<String>,
    /// Each step's duration (default: the scenario's).
    pub duration: Option<Duration>,
    pub seed: Option<u64>,
    /// The largest multiple tried.
    pub max_multiple: f64,
    /// Stop narrowing when the bound is known to within this fraction.
    pub precision: f64,
    /// At most this many steps in all.
    pub max_steps: u32,
    pub run: RunOptions,
}

/// Why the search stopped where it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A step failed and the bound is narrowed to `precision`.
    Server,
    /// The generator set the pace: the number is a lower bound.
    Generator,
    /// Every step up to `max_multiple` passed.
    Ceiling,
    /// `max_steps` ran out before `precision` was reached.
    Steps,
    /// Ctrl-C or SIGTERM.
    Interrupted,
}

impl Limit {
    pub fn name(self) -> &'static str {
        match self {
            Limit::Server => "server",
            Limit::Generator => "generator",
            Limit::Ceiling => "ceiling",
            Limit::Steps => "steps",
            Limit::Interrupted => "interrupted",
        }
    }
}

/// One step of the search: the scenario at `multiple` times its rates.
#[derive(Debug, Clone)]
pub struct Step {
    pub multiple: f64,
    /// Intended starts per second of the scaled open-model workloads.
    pub offered_per_sec: f64,
    /// Operations completed per second, every workload.
    pub done_per_sec: f64,
    /// The largest p50 and p99 of any operation (µs, from the intended start).
    pub p50_us: u64,
    pub p99_us: u64,
    pub errors: u64,
    pub verdict: Verdict,
    /// The checks that failed, as `metric condition: shown`.
    pub failed: Vec<String>,
    /// Why the generator, not the server, set the pace (when it did).
    pub generator_bound: Option<String>,
}

impl Step {
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }
}

/// The result: the curve and the sustainable multiple.
#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: String,
    pub target: String,
    pub server: String,
    pub slos: Vec<String>,
    /// The scenario's own offered load at 1× (intended starts per second).
    pub base_offered_per_sec: f64,
    /// Every step, in the order run.
    pub steps: Vec<Step>,
    /// The largest multiple whose step passed (none: not even the smallest tried).
    pub headroom: Option<f64>,
    pub limit: Limit,
}

impl Report {
    /// The offered ops/s the headroom means.
    pub fn headroom_per_sec(&self) -> Option<f64> {
        self.headroom.map(|m| m * self.base_offered_per_sec)
    }
}

/// Why the search could not run.
#[derive(Debug, thiserror::Error)]
pub enum HeadroomError {
    /// The scenario or an SLO does not compile (exit 2).
    #[error("{0}")]
    Load(#[from] LoadError),
    /// A step could not run (the target, a plugin, …).
    #[error("step at {multiple}x: {source}")]
    Run {
        multiple: f64,
        source: crate::run::RunError,
    },
    /// Nothing to scale (exit 2).
    #[error("{0}")]
    Usage(String),
}

/// Search the headroom of `o.scenario`.
pub async fn search(o: &Options, shutdown: CancellationToken) -> Result<Report, HeadroomError> {
    let base = compile(o, 1.0, &[])?;
    let base_offered = offered(&base);
    if base_offered <= 0.0 {
        return Err(HeadroomError::Usage(format!(
            "{}: no workload has an open-model rate (rate_per_sec or stages) to scale; headroom \
             scales what the scenario offers per second",
            o.scenario.display()
        )));
    }
    let slos = expand_slos(&o.slos, &base);
    let mut s = Search {
        o,
        slos: &slos,
        shutdown,
        steps: vec![],
        first: None,
    };
    let limit = s.run_search().await?;
    let (target, server) = s.first.clone().unwrap_or_default();
    let steps = s.steps;
    let headroom = steps
        .iter()
        .filter(|x| x.passed())
        .map(|x| x.multiple)
        .fold(None, |a: Option<f64>, m| Some(a.map_or(m, |a| a.max(m))));
    Ok(Report {
        scenario: base.name.clone(),
        target,
        server,
        slos: slos.clone(),
        base_offered_per_sec: base_offered,
        steps,
        headroom,
        limit,
    })
}

/// The search's state: the steps run so far.
struct Search<'a> {
    o: &'a Options,
    slos: &'a [String],
    shutdown: CancellationToken,
    steps: Vec<Step>,
    /// The first step's target and server, as shown.
    first: Option<(String, String)>,
}

impl Search<'_> {
    /// Up by doubling until a step fails, down by halving if 1× fails, then bisect.
    async fn run_search(&mut self) -> Result<Limit, HeadroomError> {
        let (mut lo, mut hi): (Option<f64>, Option<f64>) = (None, None);
        let mut m = 1.0;
        // Bracket: the largest passing and the smallest failing multiple.
        loop {
            let step = match self.step(m).await? {
                Some(s) => s,
                None => return Ok(Limit::Interrupted),
            };
            // A step the generator paced that still passed is a pass (latency counts from the
            // intended start, lag included); one that failed may be the generator's failure, and
            // says nothing about the server: the last pass is a lower bound.
            if !step.passed() && step.generator_bound.is_some() {
                return Ok(Limit::Generator);
            }
            if step.passed() {
                lo = Some(m);
                if hi.is_some() {
                    break;
                }
                if m * 2.0 > self.o.max_multiple {
                    return Ok(Limit::Ceiling);
                }
                m *= 2.0;
            } else {
                hi = Some(m);
                if lo.is_some() {
                    break;
                }
                if m / 2.0 < 1.0 / 64.0 {
                    return Ok(Limit::Server);
                }
                m /= 2.0;
            }
            if self.steps.len() as u32 >= self.o.max_steps {
                return Ok(Limit::Steps);
            }
        }
        // Bisect until the bound is known to `precision`.
        while let (Some(l), Some(h)) = (lo, hi) {
            if (h - l) / l <= self.o.precision {
                return Ok(Limit::Server);
            }
            if self.steps.len() as u32 >= self.o.max_steps {
                return Ok(Limit::Steps);
            }
            let mid = (l + h) / 2.0;
            let step = match self.step(mid).await? {
                Some(s) => s,
                None => return Ok(Limit::Interrupted),
            };
            if !step.passed() && step.generator_bound.is_some() {
                return Ok(Limit::Generator);
            }
            if step.passed() {
                lo = Some(mid);
            } else {
                hi = Some(mid);
            }
        }
        Ok(Limit::Server)
    }

    /// Run the scenario at `m`; `None` when stopped (the step is kept, marked incomplete).
    async fn step(&mut self, m: f64) -> Result<Option<Step>, HeadroomError> {
        if self.shutdown.is_cancelled() {
            return Ok(None);
        }
        let plan = compile(self.o, m, self.slos)?;
        eprintln!(
            "headroom: {} at {}x ({:.0} offered ops/s)",
            plan.name,
            fmt_multiple(m),
            offered(&plan)
        );
        let out = crate::run::run(&plan, &self.o.run, self.shutdown.clone())
            .await
            .map_err(|source| HeadroomError::Run {
                multiple: m,
                source,
            })?;
        let s = &out.summary;
        self.first.get_or_insert_with(|| {
            (
                s.target.clone(),
                format!("{} {}", s.server.server_name, s.server.version),
            )
        });
        let step = step_of(m, offered(&plan), s);
        let stopped = step.verdict == Verdict::Incomplete && s.interrupted;
        self.steps.push(step.clone());
        Ok((!stopped).then_some(step))
    }
}

/// The scenario at `m` times its rates, with the SLOs as extra thresholds.
fn compile(o: &Options, m: f64, slos: &[String]) -> Result<Plan, HeadroomError> {
    let c = crate::scenario::load(
        &o.scenario,
        &Overrides {
            duration: o.duration,
            seed: o.seed,
            thresholds: slos.to_vec(),
            shard: None,
            rate_multiple: Some(m),
        },
    )?;
    Ok(c.plan)
}

/// Intended starts per second of every open-model workload over the run.
pub fn offered(plan: &Plan) -> f64 {
    let secs = plan.duration.as_secs_f64().max(1e-3);
    plan.workloads
        .iter()
        .filter_map(|w| match &w.load {
            LoadModel::Open(s) => Some(s.arrivals_until(secs) / secs),
            LoadModel::Closed => None,
        })
        .sum()
}

/// `'STAT COND'` (no workload named) becomes one threshold per operation of every workload;
/// anything else is kept as written.
pub fn expand_slos(slos: &[String], plan: &Plan) -> Vec<String> {
    let mut out = vec![];
    for slo in slos {
        let t = slo.trim();
        let metric = t.split_whitespace().next().unwrap_or("");
        if metric.contains('.') || metric.is_empty() {
            out.push(t.to_string());
            continue;
        }
        let cond = t[metric.len()..].trim();
        for w in &plan.workloads {
            if w.kind.open_ops() {
                continue;
            }
            for op in w.kind.ops() {
                out.push(format!("{}.{op}.{metric} {cond}", w.id));
            }
        }
    }
    out
}

/// A step's figures from its summary.
fn step_of(m: f64, offered: f64, s: &RunSummary) -> Step {
    let secs = s.duration_secs.max(1e-3);
    Step {
        multiple: m,
        offered_per_sec: offered,
        done_per_sec: s.ops.iter().map(|o| o.count).sum::<u64>() as f64 / secs,
        p50_us: s.ops.iter().map(|o| o.latency_us.p50).max().unwrap_or(0),
        p99_us: s.ops.iter().map(|o| o.latency_us.p99).max().unwrap_or(0),
        errors: s.ops.iter().map(|o| o.errors).sum(),
        verdict: s.verdict,
        failed: s
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{} {}: {}", c.metric, c.condition, c.shown))
            .chain(s.incomplete.iter().cloned())
            .collect(),
        // Only the agent's own CPU is the generator's limit here: clients all busy at a rate is
        // the scenario's concurrency meeting the server's latency, which is what is measured.
        generator_bound: s.workloads.iter().find_map(|w| {
            let lag = w.send_lag_us.as_ref()?;
            let busy =
                lag.behind as f64 > lag.starts as f64 * crate::summary::generator::BEHIND_FRACTION;
            (!busy && lag.waited_p99 > crate::summary::generator::WAITED_P99_US)
                .then(|| w.generator_bound.as_ref().map(|g| format!("{}: {g}", w.id)))
                .flatten()
        }),
    }
}

/// `2`, `2.5`, `1.25`.
pub fn fmt_multiple(m: f64) -> String {
    let r = (m * 1000.0).round() / 1000.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Plan {
        crate::scenario::compile::compile_str(std::path::Path::new("t.toml"), text).unwrap()
    }

    const TEXT: &str = r#"
duration = "10s"
[[workload]]
id = "cache"
type = "commands"
clients = 4
rate_per_sec = 100
[workload.commands]
mix = { get = 1, set = 1 }
[[workload]]
id = "loop"
type = "commands"
clients = 1
[workload.commands]
mix = { get = 1 }
"#;

    #[test]
    fn the_offered_load_counts_open_models_only() {
        assert_eq!(offered(&plan(TEXT)), 100.0);
    }

    #[test]
    fn a_short_slo_applies_to_every_operation() {
        let p = plan(TEXT);
        let slos = expand_slos(&["p99 < 5ms".into(), "cache.get.p50 < 1ms".into()], &p);
        assert_eq!(
            slos,
            vec![
                "cache.get.p99 < 5ms",
                "cache.set.p99 < 5ms",
                "loop.get.p99 < 5ms",
                "cache.get.p50 < 1ms"
            ]
        );
    }

    #[test]
    fn multiples_read_as_written() {
        assert_eq!(fmt_multiple(2.0), "2");
        assert_eq!(fmt_multiple(1.25), "1.25");
        assert_eq!(fmt_multiple(0.5), "0.5");
    }
}
