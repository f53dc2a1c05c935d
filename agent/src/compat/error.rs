//! Why a compat run could not produce a table: a usage error (exit 2) or an unreachable target
//! (exit 3).

/// Why a compat run could not produce a table.
#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    /// A malformed URL or TLS option (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A server is unreachable or refused the connection (exit 3).
    #[error("{0}")]
    Target(String),
}
