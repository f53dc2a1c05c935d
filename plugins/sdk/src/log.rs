//! Messages into the agent's log, tagged with the plugin and VU by the host.
//!
//! The guest's stdout and stderr are not shown; use these instead. Keep
//! per-iteration logging at `debug`/`trace`: the host may rate-limit it.

use crate::__private::bindings::valkey_chaos::plugin::log::{self as raw, Level};

/// Logs at trace level.
pub fn trace(message: impl AsRef<str>) {
    raw::log(Level::Trace, message.as_ref());
}

/// Logs at debug level.
pub fn debug(message: impl AsRef<str>) {
    raw::log(Level::Debug, message.as_ref());
}

/// Logs at info level.
pub fn info(message: impl AsRef<str>) {
    raw::log(Level::Info, message.as_ref());
}

/// Logs at warn level.
pub fn warn(message: impl AsRef<str>) {
    raw::log(Level::Warn, message.as_ref());
}

/// Logs at error level.
pub fn error(message: impl AsRef<str>) {
    raw::log(Level::Error, message.as_ref());
}
