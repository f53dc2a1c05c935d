//! Why `verify` or `lag` stopped without a result.

/// Why `verify` or `lag` could not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A malformed URL or option (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A side is unreachable, refused us, or the connection was lost (exit 3).
    #[error("{0}")]
    Target(String),
}
