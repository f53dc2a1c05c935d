//! What a server answers when it refuses a command, engine by engine: the exact error texts of
//! Redis 7.0 and Valkey 8/9 (read from their binaries; those a test can provoke — `NOSCRIPT`,
//! `READONLY`, `BUSY`, `OOM` — checked against running servers by `tests/it/proxy.rs`), and
//! which commands each error reaches on a real server — `LOADING`
//! spares the commands served while loading, `READONLY` reaches only writes, and so on.

use std::net::SocketAddr;

use super::command::Command;
use crate::plan::protocol::ErrorCode;
use crate::valkey::{Cmd, Conn, ConnectOptions};

/// Which server the proxy speaks for, as its clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    /// The name errors carry: what `HELLO` reports as `server`, capitalised ("Valkey", or
    /// "Redis" for Redis and for Valkey with `extended-redis-compatibility yes`).
    pub name: String,
    /// Valkey (whose `NOSCRIPT` text is shorter than Redis's).
    pub valkey: bool,
}

impl Engine {
    pub fn valkey() -> Engine {
        Engine {
            name: "Valkey".into(),
            valkey: true,
        }
    }

    pub fn redis() -> Engine {
        Engine {
            name: "Redis".into(),
            valkey: false,
        }
    }

    /// Ask the server at `addr` (`HELLO`'s `server`, `INFO server`'s `server_name`); `None` when
    /// it cannot be reached.
    pub async fn detect(addr: SocketAddr, opts: &ConnectOptions) -> Option<Engine> {
        let mut c = Conn::connect(addr, opts).await.ok()?;
        let hello = c.request(&Cmd::new("HELLO")).await.ok();
        let server = hello
            .and_then(|v| v.into_array())
            .and_then(|kv| {
                kv.chunks(2)
                    .find(|p| p[0].as_str() == Some("server"))
                    .and_then(|p| p.get(1).and_then(|v| v.as_str()).map(str::to_string))
            })
            .unwrap_or_default();
        let info = c.request(&Cmd::new("INFO").arg("server")).await.ok();
        let valkey = info
            .as_ref()
            .and_then(|v| v.as_str())
            .is_some_and(|t| t.contains("server_name:valkey"));
        Some(Engine::from_server(&server, valkey))
    }

    /// From `HELLO`'s `server` field and whether `INFO server` has `server_name:valkey`.
    pub fn from_server(hello_server: &str, valkey: bool) -> Engine {
        let mut name = hello_server.to_string();
        if let Some(first) = name.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        Engine {
            name: if name.is_empty() {
                if valkey { "Valkey" } else { "Redis" }.into()
            } else {
                name
            },
            valkey,
        }
    }

    /// The error reply's text (without the leading `-` and the CRLF).
    pub fn text(&self, code: ErrorCode) -> String {
        let n = &self.name;
        match code {
            ErrorCode::Loading => format!("LOADING {n} is loading the dataset in memory"),
            ErrorCode::ReadOnly => "READONLY You can't write against a read only replica.".into(),
            ErrorCode::Busy => format!(
                "BUSY {n} is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
            ),
            ErrorCode::Oom => "OOM command not allowed when used memory > 'maxmemory'.".into(),
            ErrorCode::Misconf => format!(
                "MISCONF {n} is configured to save RDB snapshots, but it's currently unable to \
                 persist to disk. Commands that may modify the data set are disabled, because \
                 this instance is configured to report errors during writes if RDB snapshotting \
                 fails (stop-writes-on-bgsave-error option). Please check the {n} logs for \
                 details about the RDB error."
            ),
            ErrorCode::NoScript if self.valkey => "NOSCRIPT No matching script.".into(),
            ErrorCode::NoScript => "NOSCRIPT No matching script. Please use EVAL.".into(),
            ErrorCode::TryAgain => "TRYAGAIN Multiple keys request during rehashing of slot".into(),
            ErrorCode::MasterDown => {
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
                    .into()
            }
            ErrorCode::NoAuth => "NOAUTH Authentication required.".into(),
        }
    }
}

/// Whether a real server in that state would answer `cmd` with `code` (the handshake aside).
pub fn reaches(code: ErrorCode, cmd: &Command<'_>) -> bool {
    match code {
        ErrorCode::Loading => !cmd.served_while_loading(),
        ErrorCode::ReadOnly => cmd.is_write(),
        ErrorCode::Busy => !cmd.served_while_busy(),
        ErrorCode::Oom => cmd.deny_oom(),
        // A primary that cannot save refuses writes, and PING too.
        ErrorCode::Misconf => cmd.is_write() || cmd.top() == "ping",
        ErrorCode::NoScript => matches!(cmd.top(), "evalsha" | "evalsha_ro"),
        ErrorCode::TryAgain => cmd.keys().len() > 1,
        ErrorCode::MasterDown => !cmd.served_stale(),
        ErrorCode::NoAuth => !cmd.served_unauthenticated(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::command::parse;

    fn reached(code: ErrorCode, args: &[&str]) -> bool {
        let mut b = vec![];
        crate::valkey::resp::encode_args(args, &mut b);
        let r = parse(&b).unwrap().unwrap();
        reaches(code, &Command::new(&b, &r))
    }

    #[test]
    fn each_engine_words_its_errors_its_own_way() {
        let v = Engine::valkey();
        let r = Engine::redis();
        assert_eq!(
            v.text(ErrorCode::Loading),
            "LOADING Valkey is loading the dataset in memory"
        );
        assert_eq!(
            r.text(ErrorCode::Loading),
            "LOADING Redis is loading the dataset in memory"
        );
        assert_eq!(v.text(ErrorCode::NoScript), "NOSCRIPT No matching script.");
        assert_eq!(
            r.text(ErrorCode::NoScript),
            "NOSCRIPT No matching script. Please use EVAL."
        );
        assert!(r.text(ErrorCode::Misconf).contains("check the Redis logs"));
        // Valkey with extended-redis-compatibility: "redis" in HELLO, Valkey's NOSCRIPT.
        let compat = Engine::from_server("redis", true);
        assert!(compat
            .text(ErrorCode::Busy)
            .starts_with("BUSY Redis is busy"));
        assert_eq!(
            compat.text(ErrorCode::NoScript),
            v.text(ErrorCode::NoScript)
        );
        for c in ErrorCode::ALL {
            assert!(v.text(c).starts_with(c.name()), "{c:?}");
        }
    }

    #[test]
    fn each_error_reaches_the_commands_a_real_server_refuses() {
        assert!(reached(ErrorCode::Loading, &["GET", "k"]));
        assert!(!reached(ErrorCode::Loading, &["INFO"]));
        assert!(reached(ErrorCode::ReadOnly, &["SET", "k", "v"]));
        assert!(reached(ErrorCode::ReadOnly, &["EVALSHA", "x", "1", "k"]));
        assert!(!reached(ErrorCode::ReadOnly, &["GET", "k"]));
        assert!(reached(ErrorCode::Oom, &["SETEX", "k", "1", "v"]));
        assert!(!reached(ErrorCode::Oom, &["DEL", "k"]));
        assert!(!reached(ErrorCode::Oom, &["GET", "k"]));
        assert!(reached(ErrorCode::NoScript, &["EVALSHA", "x", "0"]));
        assert!(!reached(ErrorCode::NoScript, &["EVAL", "return 1", "0"]));
        assert!(reached(ErrorCode::TryAgain, &["MGET", "a", "b"]));
        assert!(!reached(ErrorCode::TryAgain, &["GET", "a"]));
        assert!(!reached(ErrorCode::NoAuth, &["AUTH", "pw"]));
        assert!(reached(ErrorCode::Misconf, &["PING"]));
    }
}
