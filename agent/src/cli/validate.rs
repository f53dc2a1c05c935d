//! `validate`: compile scenario files offline and report every problem.

use std::path::PathBuf;

use clap::Args;

use super::exit::{CliError, Outcome};

/// `valkey-chaos validate`'s files.
#[derive(Args, Debug, Clone)]
pub struct ValidateArgs {
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
}

/// `valkey-chaos validate`: one line per good file, the diagnostics of every bad one.
pub fn validate(a: &ValidateArgs) -> Result<Outcome, CliError> {
    let mut outcome = Outcome::PASS;
    for p in &a.scenarios {
        let checked = crate::scenario::load(p, &Default::default()).map(|c| {
            println!(
                "{}: ok ({} workloads, {} faults, {} thresholds)",
                p.display(),
                c.plan.workloads.len(),
                c.plan.faults.len(),
                c.plan.thresholds.len()
            );
            for w in &c.warnings {
                println!("{}: warning: {w}", p.display());
            }
            Outcome::PASS
        });
        outcome = outcome.and(checked.map_err(CliError::from));
    }
    Ok(outcome)
}
