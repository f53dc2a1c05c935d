//! Talking to Valkey: RESP values, connections, reconnecting clients, targets, embedded servers.

pub mod client;
pub mod conn;
pub mod cursor;
pub mod embedded;
pub mod error;
pub mod pod;
pub mod resp;
pub mod stream;
pub mod target;
pub mod url;

pub use client::{AddrMap, Client, Endpoint, Route, Script};
pub use conn::{Conn, ConnectOptions};
pub use error::{Error, ErrorKind};
pub use resp::{Cmd, Value};
pub use target::Target;
