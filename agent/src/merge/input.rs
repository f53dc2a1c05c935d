//! One agent's output, read from disk: its `summary.json`, its `latency.hlog` and its
//! `history/<workload>.jsonl` files.

use std::path::{Path, PathBuf};

use super::error::{bad, MergeError};
use crate::summary::RunSummary;

/// One agent's output, read from disk.
pub struct Input {
    pub summary_path: PathBuf,
    pub hlog_path: PathBuf,
    /// Short name for labels: the directory name.
    pub label: String,
    pub summary: RunSummary,
    pub hlog: Vec<u8>,
    /// `history/<workload>.jsonl`, by workload id.
    pub histories: Vec<(String, Vec<crate::history::Entry>)>,
}

/// Read an agent's output: a directory, or its `summary.json` / `latency.hlog`.
pub fn load(path: &Path) -> Result<Input, MergeError> {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else if path.is_file() {
        path.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    } else {
        return Err(MergeError::Absent {
            path: path.to_path_buf(),
            msg: "no such directory or file (expected an agent's --out directory)".into(),
        });
    };
    let summary_path = dir.join("summary.json");
    let hlog_path = dir.join("latency.hlog");
    let text = std::fs::read(&summary_path).map_err(|e| {
        let msg = format!("cannot read it ({e}): is this an agent's --out directory?");
        if e.kind() == std::io::ErrorKind::NotFound {
            MergeError::Absent {
                path: summary_path.clone(),
                msg,
            }
        } else {
            bad(&summary_path, msg)
        }
    })?;
    let summary: RunSummary = serde_json::from_slice(&text)
        .map_err(|e| bad(&summary_path, format!("not a valkey-chaos summary: {e}")))?;
    let hlog =
        std::fs::read(&hlog_path).map_err(|e| bad(&hlog_path, format!("cannot read it ({e})")))?;
    let histories = load_histories(&dir)?;
    let label = dir
        .canonicalize()
        .unwrap_or_else(|_| dir.clone())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    Ok(Input {
        summary_path,
        hlog_path,
        label,
        summary,
        hlog,
        histories,
    })
}

/// `history/*.jsonl` of an agent's output (none: an older agent, or no safety workload).
fn load_histories(dir: &Path) -> Result<Vec<(String, Vec<crate::history::Entry>)>, MergeError> {
    let h = dir.join("history");
    let Ok(rd) = std::fs::read_dir(&h) else {
        return Ok(vec![]);
    };
    let mut out = vec![];
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    for p in files {
        let text =
            std::fs::read_to_string(&p).map_err(|e| bad(&p, format!("cannot read it ({e})")))?;
        let entries = crate::history::from_jsonl(&text)
            .map_err(|(line, e)| bad(&p, format!("line {line} is not a history entry: {e}")))?;
        let id = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((id, entries));
    }
    Ok(out)
}
