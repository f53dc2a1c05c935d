//! Why `drain` stopped without a result.

/// Why `drain` could not finish (what it moved before is in the error's report, when any).
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// A malformed URL, option or file (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A side is unreachable, refused a command, or the connection was lost (exit 3).
    #[error("{0}")]
    Target(String),
    /// The results could not be written (exit 3).
    #[error("{0}")]
    Runtime(String),
}
