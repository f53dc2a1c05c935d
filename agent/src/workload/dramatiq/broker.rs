//! The dispatch contract every call speaks: Dramatiq's script (our own `dispatch.lua`), its
//! fixed arguments, and one call as `EVALSHA <sha> 1 <ns> <cmd> <ts> <queue> <broker> …`.

use crate::valkey::{Client, Error, Script, Value};

use crate::clock::wall_ms as now_ms;

/// Dramatiq's `max_unpack_size` on stock Redis 7.0 and Valkey 9 (`maxstack() // 2`).
pub const MAX_UNPACK: u64 = 3996;
pub(super) const DEAD_MESSAGE_TTL_MS: u64 = 604_800_000;

/// The dispatch script for a fleet of Dramatiq `version` ("1" or "2").
pub fn dispatch_script(version: u8) -> Script {
    let body = include_str!("dispatch.lua");
    if version == 1 {
        Script::new(&body.replace("local LEGACY_ACKS = false", "local LEGACY_ACKS = true"))
    } else {
        Script::new(body)
    }
}

/// The broker settings every dispatch call carries.
pub struct Broker<'a> {
    pub namespace: &'a str,
    /// `heartbeat_timeout` (ms): a worker silent for longer is dead to maintenance.
    pub heartbeat_ms: u64,
}

#[allow(clippy::too_many_arguments)] // the script's ARGV contract
/// One dispatch call: `EVALSHA <sha> 1 <ns> <cmd> <ts> <queue> <broker> <heartbeat> 604800000 <m> 3996 args…`.
pub async fn dispatch(
    c: &mut Client,
    script: &Script,
    b: &Broker<'_>,
    cmd: &str,
    queue: &str,
    broker: &str,
    maintenance: bool,
    args: &[&[u8]],
) -> Result<Value, Error> {
    let ns = b.namespace;
    let ts = now_ms().to_string();
    let hb = b.heartbeat_ms.to_string();
    let ttl = DEAD_MESSAGE_TTL_MS.to_string();
    let mx = MAX_UNPACK.to_string();
    let mut argv: Vec<&[u8]> = vec![
        cmd.as_bytes(),
        ts.as_bytes(),
        queue.as_bytes(),
        broker.as_bytes(),
        hb.as_bytes(),
        ttl.as_bytes(),
        if maintenance { b"1" } else { b"0" },
        mx.as_bytes(),
    ];
    argv.extend_from_slice(args);
    c.eval_script(script, &[ns.as_bytes()], &argv).await
}
