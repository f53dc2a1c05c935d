//! Reports: pure functions of a [`RunSummary`] (text for the terminal, JSON on disk, a
//! self-contained HTML page, JUnit XML for CI).

pub mod html;
pub mod junit;
pub mod text;

pub use crate::units::{fmt_count, fmt_us};

use std::path::Path;

use crate::summary::RunSummary;

/// Write a run's (or a merge's) outputs into `dir`: `summary.json`, `latency.hlog` (given as
/// bytes), `report.html`, `junit.xml` and `history/<workload>.jsonl`. The one writer for `run`,
/// `merge` and `compare`.
pub fn write_outputs(
    dir: &Path,
    s: &RunSummary,
    hlog: &[u8],
    histories: &[(String, Vec<u8>)],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_vec_pretty(s).map_err(std::io::Error::other)?;
    write_synced(&dir.join("summary.json"), &json)?;
    write_synced(&dir.join("latency.hlog"), hlog)?;
    std::fs::write(dir.join("report.html"), html::render(s))?;
    std::fs::write(dir.join("junit.xml"), junit::render(s))?;
    if !histories.is_empty() {
        let h = dir.join("history");
        std::fs::create_dir_all(&h)?;
        for (workload, lines) in histories {
            write_synced(&h.join(format!("{workload}.jsonl")), lines)?;
        }
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
