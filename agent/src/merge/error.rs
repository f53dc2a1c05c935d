//! What can go wrong in a merge: an input that cannot be read or does not fit, an input that is
//! not there (a missing shard, or a usage error), or bad arguments.

use std::path::{Path, PathBuf};

/// Why a merge cannot go ahead: a bad input, an absent one, or bad arguments.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A problem with one input file.
    #[error("{}: {msg}", path.display())]
    Input { path: PathBuf, msg: String },
    /// An input that is not there (no directory, no `summary.json`): a missing shard when the
    /// others are shards of one run, else a usage error.
    #[error("{}: {msg}", path.display())]
    Absent { path: PathBuf, msg: String },
    /// A problem with the arguments.
    #[error("{0}")]
    Usage(String),
}

/// A problem with one input file, as an error naming it.
pub(super) fn bad(path: &Path, msg: impl Into<String>) -> MergeError {
    MergeError::Input {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}
