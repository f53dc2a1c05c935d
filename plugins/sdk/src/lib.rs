//! Write valkey-chaos scenario plugins in Rust.
//!
//! A plugin is a WebAssembly component that implements the `scenario` world of
//! `plugins/wit/plugin.wit` (`valkey-chaos:plugin@0.1.0`). The agent creates one
//! component instance per virtual user (VU) and calls, in order:
//! `describe` (any time), `setup` once, `iteration(n)` for n = 0, 1, 2, ... and
//! `teardown` once. Each instance is one VU, so per-VU state is just the value
//! your [`Scenario::setup`] returns; this crate keeps it for you.
//!
//! This crate hides the generated bindings: implement [`Scenario`], call
//! [`export_scenario!`], and talk to the host through the modules below.
//!
//! * [`valkey`]: run commands ([`valkey::execute`], [`valkey::pipeline`]) built
//!   with [`cmd!`], read replies with [`valkey::Reply`]'s helpers.
//! * [`metrics`]: plugin-defined counters, gauges and histograms.
//! * [`clock`]: monotonic time and a sleep that parks only this VU.
//! * [`random`]: the VU's deterministic random stream (seeded by the run).
//! * [`log`]: messages into the agent's log.
//!
//! The host measures the latency of every command and every iteration itself;
//! plugin metrics are for numbers only the plugin knows (hits, misses, lock
//! contention...).
//!
//! # Example
//!
//! ```no_run
//! use valkey_chaos_sdk::{cmd, export_scenario, metrics, valkey, Config, Info, Result, Scenario};
//!
//! struct Hello {
//!     key: String,
//!     mismatches: metrics::Counter,
//! }
//!
//! impl Scenario for Hello {
//!     fn describe() -> Info {
//!         valkey_chaos_sdk::package_info!().param("prefix", "key prefix (default \"vc:\")")
//!     }
//!
//!     fn setup(config: &Config) -> Result<Self> {
//!         let prefix = config.param_or("prefix", "vc:");
//!         Ok(Hello {
//!             key: format!("{prefix}hello:{}", config.vu_id),
//!             mismatches: metrics::counter("hello_mismatches_total"),
//!         })
//!     }
//!
//!     fn iteration(&mut self, n: u64) -> Result {
//!         valkey::execute(cmd!("SET", self.key, n))?;
//!         let reply = valkey::execute(cmd!("GET", self.key))?;
//!         if reply.as_int() != Some(n as i64) {
//!             self.mismatches.inc();
//!         }
//!         Ok(())
//!     }
//! }
//!
//! export_scenario!(Hello);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`: the `.wasm` in
//! `target/wasm32-wasip2/release/` is already a component.

#![deny(missing_docs)]

// Lets the generated bindings name this crate by its own name.
extern crate self as valkey_chaos_sdk;

pub mod clock;
pub mod log;
pub mod metrics;
pub mod random;
mod scenario;
pub mod valkey;

pub use scenario::{Config, Error, Info, Result, Scenario};

/// Implementation details used by this crate's macros. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::scenario::Adapter;
    pub use crate::valkey::{ArgBytes, ArgDisplay, ArgRef};
    pub use wit_bindgen;

    /// The raw bindings generated from `plugins/wit`.
    #[allow(missing_docs, unreachable_pub, clippy::all, rust_2018_idioms)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "../wit",
            world: "scenario",
            additional_derives: [PartialEq],
            pub_export_macro: true,
            export_macro_name: "__export_scenario_raw",
            default_bindings_module: "valkey_chaos_sdk::__private::bindings",
            runtime_path: "valkey_chaos_sdk::__private::wit_bindgen::rt",
        });
    }
}

/// Exports a [`Scenario`] implementation as this component's `vu` interface.
///
/// Use it once per plugin crate (a `cdylib`), at module level:
///
/// ```ignore
/// valkey_chaos_sdk::export_scenario!(MyScenario);
/// ```
#[macro_export]
macro_rules! export_scenario {
    ($ty:ty) => {
        const _: () = {
            type __ValkeyChaosVu = $crate::__private::Adapter<$ty>;
            $crate::__private::bindings::__export_scenario_raw!(
                __ValkeyChaosVu with_types_in $crate::__private::bindings
            );
        };
    };
}

/// An [`Info`] named and versioned after the calling crate's package
/// (`CARGO_PKG_NAME`, `CARGO_PKG_VERSION`); add parameters with [`Info::param`].
#[macro_export]
macro_rules! package_info {
    () => {
        $crate::Info::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
    };
}

/// Builds a binary-safe command (`Vec<Vec<u8>>`) for [`valkey::execute`].
///
/// Each argument is borrowed, never moved. An argument that is `AsRef<[u8]>`
/// (`&str`, `String`, `&[u8]`, `Vec<u8>`, byte arrays...) is copied as bytes;
/// anything else that is `Display` (integers, floats, `char`...) is formatted.
///
/// ```
/// use valkey_chaos_sdk::cmd;
/// let key = String::from("vc:k");
/// let ttl: u64 = 90;
/// let command = cmd!("SET", key, b"v\x00", "EX", ttl);
/// assert_eq!(command, vec![b"SET".to_vec(), b"vc:k".to_vec(), b"v\x00".to_vec(), b"EX".to_vec(), b"90".to_vec()]);
/// assert_eq!(key, "vc:k"); // still usable
/// ```
///
/// Append further arguments with `Vec::push`/`extend` (e.g. for `MGET`).
#[macro_export]
macro_rules! cmd {
    ($($arg:expr),+ $(,)?) => {{
        #[allow(unused_imports)]
        use $crate::__private::{ArgBytes as _, ArgDisplay as _};
        ::std::vec![$((&$crate::__private::ArgRef(&$arg)).__vc_arg()),+]
    }};
}
