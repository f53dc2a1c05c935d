//! `merge`: several agents' outputs as one run, judged again.

use std::path::PathBuf;

use clap::Args;

use super::exit::{CliError, Outcome};
use super::output::{report_run, MERGED};

/// `valkey-chaos merge`'s flags.
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

/// `valkey-chaos merge`: the merged report, its outputs in `--out`, and the verdict judged again.
pub fn merge(a: &MergeArgs) -> Result<Outcome, CliError> {
    let m = crate::merge::merge_paths(&a.inputs, &a.thresholds)?;
    report_run(&m.summary, &m.hlog, &m.histories, a.out.as_deref(), &MERGED)
}
