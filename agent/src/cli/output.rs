//! What a command shows and keeps: its text report on stdout, then its files in `--out`, and a
//! line on stderr saying where they went (or why they could not be written, exit 3).

use std::path::{Path, PathBuf};

use super::exit::{CliError, Outcome};
use crate::summary::RunSummary;

/// How the stderr lines name what went into `--out`.
pub struct Names {
    /// Before the path written: `results written to DIR`.
    pub written: &'static str,
    /// What could not be written: `cannot write results to DIR: …`.
    pub what: &'static str,
}

/// A run's, a compare's or a compat's files.
pub const RESULTS: Names = Names {
    written: "results written to",
    what: "results",
};

/// A merge's files.
pub const MERGED: Names = Names {
    written: "merged results written to",
    what: "results",
};

/// Print `text`, then write into `out` (when given) with `write`, which returns the path to name
/// on stderr. A failed write is a runtime error, raised once the text is out.
pub fn print_and_write(
    text: &str,
    out: Option<&Path>,
    names: &Names,
    write: impl FnOnce(&Path) -> std::io::Result<PathBuf>,
) -> Result<(), CliError> {
    print!("{text}");
    let Some(dir) = out else {
        return Ok(());
    };
    match write(dir) {
        Ok(p) => {
            eprintln!("{} {}", names.written, p.display());
            Ok(())
        }
        Err(e) => Err(CliError::Runtime(anyhow::Error::new(e).context(format!(
            "cannot write {} to {}",
            names.what,
            dir.display()
        )))),
    }
}

/// A run's (or a merge's) text report, its outputs (summary.json, latency.hlog, report.html,
/// junit.xml, histories) in `out`, and its verdict: the one path for `run` and `merge`.
pub fn report_run(
    summary: &RunSummary,
    hlog: &[u8],
    histories: &[(String, Vec<u8>)],
    out: Option<&Path>,
    names: &Names,
) -> Result<Outcome, CliError> {
    let text = crate::report::text::render(summary);
    print_and_write(&text, out, names, |dir| {
        crate::report::write_outputs(dir, summary, hlog, histories).map(|()| dir.to_path_buf())
    })?;
    Ok(Outcome::verdict(summary.verdict))
}
