//! Scenario files → [`Plan`]: TOML read with every span kept, compiled with all problems reported
//! at once as `file:line:col: message` plus a hint. Every input that shapes a plan — the file,
//! command-line overrides (duration, seed, extra thresholds) and the shard — goes through
//! [`load()`] (or [`compile()`]), and nothing changes the plan afterwards. Never touches the network.

pub mod compile;
pub mod diag;
pub mod fault;
pub mod load;
pub mod migration;
pub mod reader;
pub mod shard;
pub mod threshold;
pub mod workload;

use std::path::Path;
use std::time::Duration;

pub use diag::{Diagnostic, Diagnostics};

use crate::plan::{Plan, Shard};

/// What the command line adds to a scenario file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--duration`: replaces the scenario's.
    pub duration: Option<Duration>,
    /// `--seed`: replaces the scenario's (before sharding: each shard derives its own from it).
    pub seed: Option<u64>,
    /// `--threshold 'METRIC COND'`: added to the scenario's.
    pub thresholds: Vec<String>,
    /// `--shard INDEX/COUNT`: this agent's share of the load.
    pub shard: Option<Shard>,
    /// `headroom`'s step: every open-model rate times this (closed loops are as they are).
    pub rate_multiple: Option<f64>,
}

/// A compiled plan, and what the person running it should know about how it was shaped.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub plan: Plan,
    /// Notes from sharding (totals that grew, faults left to shard 0, thresholds merge judges).
    pub notes: Vec<String>,
    /// What compiles but will likely not judge well ([`advice`]).
    pub warnings: Vec<String>,
}

/// Why a scenario did not compile.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// Problems in the file, with positions.
    #[error("{0}")]
    Scenario(Diagnostics),
    /// A command-line override that does not fit the scenario (e.g. an unknown metric).
    #[error("{0}")]
    Flag(String),
}

/// Read and compile one scenario file with the command line's overrides.
pub fn load(path: &Path, o: &Overrides) -> Result<Compiled, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        LoadError::Scenario(Diagnostics(vec![Diagnostic {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            message: format!("cannot read scenario: {e}"),
            hint: Some("check the path".into()),
        }]))
    })?;
    compile(path, &text, o)
}

/// Compile a scenario text (`file` names it in messages and anchors relative plugin paths).
pub fn compile(file: &Path, text: &str, o: &Overrides) -> Result<Compiled, LoadError> {
    let mut plan = compile::compile_str(file, text).map_err(LoadError::Scenario)?;
    if let Some(d) = o.duration {
        plan.duration = d;
    }
    if let Some(s) = o.seed {
        plan.seed = s;
    }
    if let Some(m) = o.rate_multiple {
        for w in &mut plan.workloads {
            if let crate::plan::LoadModel::Open(s) = &w.load {
                w.load = crate::plan::LoadModel::Open(s.scaled(m));
            }
        }
    }
    let cat = threshold::Catalog::of_plan(&plan.workloads, &plan.faults);
    for t in &o.thresholds {
        plan.thresholds
            .push(threshold::parse_flag(t, &cat).map_err(LoadError::Flag)?);
    }
    let notes = match o.shard {
        Some(s) => shard::apply(&mut plan, s),
        None => vec![],
    };
    let warnings = advice(&plan);
    Ok(Compiled {
        plan,
        notes,
        warnings,
    })
}

/// What compiles but will likely not judge well: a fault that heals too close to the end of the
/// load for recovery to be seen (a workload still recovering when the load ends fails the run).
pub fn advice(plan: &Plan) -> Vec<String> {
    let mut out = vec![];
    for o in crate::plan::schedule::schedule(plan) {
        // A fault's own bound; else the longest of the scenario's and the workloads' own.
        let own = plan.workloads.iter().filter_map(|w| w.recover_within).max();
        let bound = o
            .fault
            .recover_within
            .unwrap_or(own.unwrap_or_default().max(plan.recover_within));
        let room = plan.duration.saturating_sub(o.heal);
        // Below the bound a slow recovery cannot be told from one that never came.
        if room < bound {
            out.push(format!(
                "fault {:?} heals at {} and the load ends {} later: leave recover_within ({}) \
                 after the last heal, or a workload still recovering at the end fails the run \
                 (raise `duration`, fire it earlier, or set recover_within)",
                o.fault.name,
                crate::units::fmt_secs(o.heal.as_secs_f64()),
                crate::units::fmt_secs(room.as_secs_f64()),
                crate::units::fmt_secs(bound.as_secs_f64())
            ));
        }
    }
    out.dedup();
    out
}

/// [`load`] without overrides (validation, tests).
pub fn load_plain(path: &Path) -> Result<Plan, LoadError> {
    load(path, &Overrides::default()).map(|c| c.plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(own: &str, fault_own: &str) -> Plan {
        let text = format!(
            r#"
name = "orphans"
duration = "30s"
[[workload]]
id = "coord"
type = "lock"
{own}
[workload.lock]
ttl = "20s"
[[fault]]
name = "failover"
type = "failover"
at = "5s"
{fault_own}
"#
        );
        compile::compile_str(Path::new("t.toml"), &text).expect("compiles")
    }

    #[test]
    fn a_workload_s_own_recover_within_needs_room_after_a_fault_that_sets_none() {
        // The scenario's 10 s fit after the heal at 5 s; the lock's 30 s does not.
        assert!(advice(&plan("", "")).is_empty());
        let p = plan(r#"recover_within = "30s""#, "");
        assert_eq!(p.workloads[0].recover_within, Some(Duration::from_secs(30)));
        let w = advice(&p);
        assert!(
            w.len() == 1 && w[0].contains("recover_within (30s)"),
            "{w:?}"
        );
        // A fault's own bound is its own: the workload's does not apply after it.
        assert!(advice(&plan(
            r#"recover_within = "30s""#,
            r#"recover_within = "5s""#
        ))
        .is_empty());
    }
}
