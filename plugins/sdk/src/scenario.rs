//! The [`Scenario`] trait and the adapter that exports it as the WIT `vu` interface.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use crate::__private::bindings::exports::valkey_chaos::plugin::vu as raw_vu;
use crate::__private::bindings::valkey_chaos::plugin::types as raw_types;
use crate::valkey::CommandError;

/// `Result` with this crate's [`Error`]; `Result` alone is `Result<(), Error>`.
pub type Result<T = (), E = Error> = std::result::Result<T, E>;

/// The scenario one virtual user runs. One component instance is one VU, so
/// the value returned by [`Scenario::setup`] is this VU's private state.
///
/// Errors: return an [`Error`] to report a failure to the host. A non-fatal
/// error counts as a failed iteration and the VU goes on; a fatal one
/// ([`Error::fatal`]) stops this VU. A panic is a wasm trap: the host records
/// it and may replace the VU with a fresh instance (the panic message goes to
/// the agent's log first).
pub trait Scenario: Sized + 'static {
    /// Name, version and accepted parameters. Called without `setup`, maybe
    /// on an instance that never runs iterations (e.g. `valkey-chaos plugin check`).
    fn describe() -> Info;

    /// Prepares this VU: read parameters, declare metrics, build keys.
    fn setup(config: &Config) -> Result<Self>;

    /// Runs one iteration; `n` counts this VU's iterations from 0.
    fn iteration(&mut self, n: u64) -> Result;

    /// Runs after the last iteration (not called when `setup` failed).
    fn teardown(&mut self) -> Result {
        Ok(())
    }
}

/// What a plugin tells the host about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Plugin name.
    pub name: String,
    /// Plugin version (its own, not the WIT's).
    pub version: String,
    /// Accepted parameters as (name, description).
    pub params: Vec<(String, String)>,
}

impl Info {
    /// An `Info` without parameters. See also [`package_info!`](crate::package_info).
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Info {
            name: name.into(),
            version: version.into(),
            params: Vec::new(),
        }
    }

    /// Adds an accepted parameter.
    pub fn param(mut self, name: impl Into<String>, description: impl Into<String>) -> Self {
        self.params.push((name.into(), description.into()));
        self
    }

    fn into_raw(self) -> raw_vu::PluginInfo {
        raw_vu::PluginInfo {
            name: self.name,
            version: self.version,
            params: self.params,
        }
    }
}

/// The configuration of one VU, as given by the host to `setup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This VU's index in its workload, `0..vu_count`.
    pub vu_id: u32,
    /// Number of VUs in the workload.
    pub vu_count: u32,
    /// The run's seed (the host's random stream is already seeded with it).
    pub seed: u64,
    /// Parameters from the scenario file, as (name, value) strings.
    pub params: Vec<(String, String)>,
}

impl Config {
    /// The value of parameter `name`, if given (the last one wins).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of parameter `name`, or `default`.
    pub fn param_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.param(name).unwrap_or(default)
    }

    /// Parameter `name` parsed as `T`, or `default` when absent. A value that
    /// does not parse is a fatal error naming the parameter.
    pub fn parse<T>(&self, name: &str, default: T) -> Result<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.param(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|e| {
                Error::fatal(format!("parameter `{name}`: invalid value `{raw}`: {e}"))
            }),
        }
    }

    fn from_raw(raw: raw_vu::VuConfig) -> Self {
        Config {
            vu_id: raw.vu_id,
            vu_count: raw.vu_count,
            seed: raw.seed,
            params: raw.params,
        }
    }
}

/// A failure reported to the host (WIT `plugin-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    fatal: bool,
}

impl Error {
    /// A non-fatal error: the host counts it and the VU goes on.
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            fatal: false,
        }
    }

    /// A fatal error: the host stops this VU.
    pub fn fatal(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            fatal: true,
        }
    }

    /// Prefixes the message with `context`: `"<context>: <message>"`.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the host should stop this VU.
    pub fn is_fatal(&self) -> bool {
        self.fatal
    }

    fn into_raw(self) -> raw_types::PluginError {
        raw_types::PluginError {
            message: self.message,
            fatal: self.fatal,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// A failed command becomes a non-fatal error, so `?` works on [`crate::valkey`] calls.
impl From<CommandError> for Error {
    fn from(e: CommandError) -> Self {
        Error::new(e.to_string())
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::new(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::new(message)
    }
}

thread_local! {
    /// This instance's VU state (one instance = one VU; wasm32-wasip2 has one thread).
    static STATE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    static PANIC_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Sends panic messages to the host log before the trap, since the host does
/// not show the guest's stderr.
fn install_panic_hook() {
    if !PANIC_HOOK.replace(true) {
        std::panic::set_hook(Box::new(|info| {
            let message = info.payload_as_str().unwrap_or("(no message)");
            match info.location() {
                Some(at) => crate::log::error(format!("plugin panicked at {at}: {message}")),
                None => crate::log::error(format!("plugin panicked: {message}")),
            }
        }));
    }
}

/// Exports a [`Scenario`] as the WIT `vu` interface; used by [`export_scenario!`](crate::export_scenario).
#[doc(hidden)]
pub struct Adapter<T>(PhantomData<T>);

impl<T: Scenario> raw_vu::Guest for Adapter<T> {
    fn describe() -> raw_vu::PluginInfo {
        install_panic_hook();
        T::describe().into_raw()
    }

    fn setup(config: raw_vu::VuConfig) -> std::result::Result<(), raw_types::PluginError> {
        install_panic_hook();
        let state = T::setup(&Config::from_raw(config)).map_err(Error::into_raw)?;
        STATE.with_borrow_mut(|s| *s = Some(Box::new(state)));
        Ok(())
    }

    fn iteration(n: u64) -> std::result::Result<(), raw_types::PluginError> {
        STATE
            .with_borrow_mut(|s| match s.as_mut().and_then(|s| s.downcast_mut::<T>()) {
                Some(state) => state.iteration(n),
                None => Err(Error::fatal("iteration called before a successful setup")),
            })
            .map_err(Error::into_raw)
    }

    fn teardown() -> std::result::Result<(), raw_types::PluginError> {
        let state = STATE.with_borrow_mut(Option::take);
        match state.and_then(|s| s.downcast::<T>().ok()) {
            Some(mut state) => state.teardown().map_err(Error::into_raw),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(params: &[(&str, &str)]) -> Config {
        Config {
            vu_id: 3,
            vu_count: 10,
            seed: 42,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn params_last_wins_and_defaults_apply() {
        let c = config(&[("prefix", "a:"), ("prefix", "b:"), ("n", " 7 ")]);
        assert_eq!(c.param("prefix"), Some("b:"));
        assert_eq!(c.param_or("missing", "vc:"), "vc:");
        assert_eq!(c.parse("n", 1u32), Ok(7));
        assert_eq!(c.parse("missing", 5u32), Ok(5));
    }

    #[test]
    fn bad_param_is_fatal_and_names_the_param() {
        let err = config(&[("ips", "many")]).parse("ips", 1u32).unwrap_err();
        assert!(err.is_fatal());
        assert!(
            err.message()
                .starts_with("parameter `ips`: invalid value `many`"),
            "{err}"
        );
    }

    #[test]
    fn command_errors_are_not_fatal() {
        let err: Error = CommandError::Timeout.into();
        assert!(!err.is_fatal());
        assert_eq!(err.context("GET").message(), "GET: command timed out");
    }
}
