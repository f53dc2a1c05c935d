//! Errors of Valkey operations, classified the way the report and the thresholds count them.

use serde::Serialize;

/// The kind of a failed operation. Small and `Copy`: it is what workers record per sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    Timeout,
    Connection,
    #[serde(rename = "readonly")]
    ReadOnly,
    Loading,
    #[serde(rename = "masterdown")]
    MasterDown,
    #[serde(rename = "noscript")]
    NoScript,
    Busy,
    Oom,
    /// `NOAUTH` / `WRONGPASS`: redis-py raises an `AuthenticationError`, a `ConnectionError`.
    Auth,
    Other,
}

impl ErrorKind {
    /// Whether a command that failed this way may have run all the same (its reply was lost).
    pub fn is_ambiguous(self) -> bool {
        matches!(self, ErrorKind::Timeout | ErrorKind::Connection)
    }
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Timeout,
        ErrorKind::Connection,
        ErrorKind::ReadOnly,
        ErrorKind::Loading,
        ErrorKind::MasterDown,
        ErrorKind::NoScript,
        ErrorKind::Busy,
        ErrorKind::Oom,
        ErrorKind::Auth,
        ErrorKind::Other,
    ];
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::ReadOnly => "readonly",
            ErrorKind::Loading => "loading",
            ErrorKind::MasterDown => "masterdown",
            ErrorKind::NoScript => "noscript",
            ErrorKind::Busy => "busy",
            ErrorKind::Oom => "oom",
            ErrorKind::Auth => "auth",
            ErrorKind::Other => "other",
        }
    }
    /// Errors after which the connection should be dropped and the primary rediscovered
    /// (`READONLY` only through Sentinel: see `valkey::client`).
    pub fn drops_connection(self) -> bool {
        matches!(
            self,
            ErrorKind::Timeout
                | ErrorKind::Connection
                | ErrorKind::ReadOnly
                | ErrorKind::Loading
                | ErrorKind::Auth
        )
    }

    /// What redis-py 5.0.6 raises a `ConnectionError` (or a subclass) for: a broken connection,
    /// `LOADING` (`BusyLoadingError`), `NOAUTH`/`WRONGPASS` (`AuthenticationError`). Dramatiq
    /// 2.2.1 retries an ack on these and restarts its consumer as a "connection error"; every
    /// other error (`TimeoutError`, and the `ResponseError`s: `READONLY`, `OOM`, `BUSY`,
    /// `MASTERDOWN`, …) is "unexpected" to it.
    pub fn is_connection_error(self) -> bool {
        matches!(
            self,
            ErrorKind::Connection | ErrorKind::Loading | ErrorKind::Auth
        )
    }
}

/// A failed operation: its kind and a message naming the address and the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct Error {
    pub kind: ErrorKind,
    pub msg: String,
}

impl Error {
    /// Whether the command may have run although it failed (its reply was lost).
    pub fn is_ambiguous(&self) -> bool {
        self.kind.is_ambiguous()
    }
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Error {
        Error {
            kind,
            msg: msg.into(),
        }
    }
    /// Classify a server error reply by its prefix.
    pub fn server(msg: String) -> Error {
        Error {
            kind: classify(msg.as_bytes()),
            msg,
        }
    }
}

/// The kind of a server error reply (its text without the `-`), by its prefix.
pub fn classify(msg: &[u8]) -> ErrorKind {
    let prefix = msg.split(|b| *b == b' ').next().unwrap_or(b"");
    let contains = |needle: &[u8]| msg.windows(needle.len()).any(|w| w == needle);
    match prefix {
        b"READONLY" => ErrorKind::ReadOnly,
        b"LOADING" => ErrorKind::Loading,
        b"MASTERDOWN" => ErrorKind::MasterDown,
        b"NOSCRIPT" => ErrorKind::NoScript,
        b"BUSY" => ErrorKind::Busy,
        b"OOM" => ErrorKind::Oom,
        b"NOAUTH" | b"WRONGPASS" => ErrorKind::Auth,
        // A script whose inner call failed wraps the inner error.
        _ if contains(b"READONLY") || contains(b"read only replica") => ErrorKind::ReadOnly,
        _ if contains(b"OOM command not allowed") => ErrorKind::Oom,
        _ => ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn classifies_server_errors() {
        assert_eq!(
            Error::server("READONLY You can't write against a read only replica.".into()).kind,
            ErrorKind::ReadOnly
        );
        assert_eq!(
            Error::server("NOSCRIPT No matching script.".into()).kind,
            ErrorKind::NoScript
        );
        assert_eq!(
            Error::server(
                "ERR Error running script: @user_script:58: -READONLY You can't write".into()
            )
            .kind,
            ErrorKind::ReadOnly
        );
        assert_eq!(
            Error::server("WRONGTYPE Operation".into()).kind,
            ErrorKind::Other
        );
        assert_eq!(
            Error::server("LOADING Valkey is loading the dataset in memory".into()).kind,
            ErrorKind::Loading
        );
        assert_eq!(
            Error::server("NOAUTH Authentication required.".into()).kind,
            ErrorKind::Auth
        );
        assert_eq!(
            Error::server("MASTERDOWN Link with MASTER is down".into()).kind,
            ErrorKind::MasterDown
        );
    }

    #[test]
    fn connection_errors_are_what_redis_py_raises_a_connection_error_for() {
        let conn: Vec<ErrorKind> = ErrorKind::ALL
            .into_iter()
            .filter(|k| k.is_connection_error())
            .collect();
        assert_eq!(
            conn,
            [ErrorKind::Connection, ErrorKind::Loading, ErrorKind::Auth]
        );
    }
}
