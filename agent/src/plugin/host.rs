//! What a plugin can call: `valkey` (timed by the host, per command), `metrics`, `clock`,
//! `random` (seeded per VU), `log`. Nothing else: WASI is linked with nothing granted.

use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::valkey_chaos::plugin::{clock, log, metrics, random, types, valkey};
use crate::metrics::Recorder;
use crate::rng::Rng;
use crate::valkey::{Client, Cmd, ErrorKind, Value};

/// Commands a plugin may not send: they would change or stop the server under test.
pub const DENIED: &[&str] = &[
    "FLUSHALL",
    "FLUSHDB",
    "SHUTDOWN",
    "CONFIG",
    "DEBUG",
    "SLAVEOF",
    "REPLICAOF",
    "MONITOR",
    "SYNC",
    "PSYNC",
    "MODULE",
    "ACL",
    "FAILOVER",
    "CLUSTER",
    "SAVE",
    "BGSAVE",
    "BGREWRITEAOF",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "CLIENT",
];

/// Memory cap of one VU; remembers whether the plugin hit it.
pub struct VuLimits {
    pub max_bytes: usize,
    pub hit: bool,
}

impl ResourceLimiter for VuLimits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.max_bytes;
        if !ok {
            self.hit = true;
        }
        Ok(ok)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// What the host decided about a command name: its op index (when recording), or a refusal.
type Verdict = Result<Option<usize>, String>;

/// Per-VU host state.
pub struct VuState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limits: VuLimits,
    pub ticks_left: u64,
    pub budget_exceeded: bool,
    /// When wasm last (re)started running: the start of an export call or the return of an
    /// async host call.
    pub wasm_since: Instant,
    rng: Rng,
    client: Option<Client>,
    rec: Option<Recorder>,
    /// Declared plugin metrics: (name, kind).
    declared: Vec<(String, metrics::MetricKind)>,
    plugin: String,
    vu: u32,
    key_prefix: String,
    /// Command names seen so far: op index, or why the command is refused.
    seen: Vec<(Vec<u8>, Verdict)>,
}

impl WasiView for VuState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl VuState {
    pub fn new(
        plugin: &str,
        vu: u32,
        seed: u64,
        client: Client,
        rec: Recorder,
        memory_cap: u64,
        key_prefix: &str,
    ) -> VuState {
        VuState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits: VuLimits {
                max_bytes: memory_cap as usize,
                hit: false,
            },
            ticks_left: 1000,
            budget_exceeded: false,
            wasm_since: Instant::now(),
            rng: Rng::derive(seed, plugin, vu as u64),
            client: Some(client),
            rec: Some(rec),
            declared: vec![],
            plugin: plugin.to_string(),
            vu,
            key_prefix: key_prefix.to_string(),
            seen: vec![],
        }
    }

    /// A state with no Valkey (describe, `plugin check`): commands are rejected.
    pub fn offline(plugin: &str, vu: u32) -> VuState {
        VuState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits: VuLimits {
                max_bytes: 64 << 20,
                hit: false,
            },
            ticks_left: 1000,
            budget_exceeded: false,
            wasm_since: Instant::now(),
            rng: Rng::new(vu as u64),
            client: None,
            rec: None,
            declared: vec![],
            plugin: plugin.to_string(),
            vu,
            key_prefix: "vc:".into(),
            seen: vec![],
        }
    }

    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The op index of a command name as the plugin spelled it, or why it is refused; cached
    /// per VU so a call allocates nothing once a command has been seen.
    fn classify(&mut self, raw: &[u8]) -> Verdict {
        if let Some((_, r)) = self.seen.iter().find(|(k, _)| k.as_slice() == raw) {
            return r.clone();
        }
        let name = String::from_utf8_lossy(raw).to_ascii_uppercase();
        let r = if name.is_empty() {
            Err("empty command".to_string())
        } else if DENIED.contains(&name.as_str()) {
            Err(format!("{name} is not allowed from a plugin"))
        } else {
            Ok(self
                .rec
                .as_ref()
                .map(|rec| rec.metrics().op_index(&name.to_ascii_lowercase())))
        };
        self.seen.push((raw.to_vec(), r.clone()));
        r
    }

    async fn run(&mut self, args: Vec<Vec<u8>>) -> Result<Value, types::CommandError> {
        let op = self
            .classify(args.first().map(|a| a.as_slice()).unwrap_or(&[]))
            .map_err(types::CommandError::Rejected)?;
        let Some(client) = self.client.as_mut() else {
            return Err(types::CommandError::Rejected(
                "no Valkey connection in this context".into(),
            ));
        };
        let t0 = Instant::now();
        let r = client.request_args(&args).await;
        let t1 = Instant::now();
        self.wasm_since = t1;
        if let (Some(rec), Some(op)) = (&self.rec, op) {
            rec.record(op, t0, t0, t1, r.as_ref().map(|_| ()).map_err(|e| e.kind));
        }
        r.map_err(command_error)
    }

    /// Several commands in one write and one round trip; refused ones are answered without
    /// being sent. Every sent command is timed with the pipeline's round trip.
    async fn run_pipeline(
        &mut self,
        commands: Vec<Vec<Vec<u8>>>,
    ) -> Vec<Result<types::Reply, types::CommandError>> {
        let n = commands.len();
        let mut out: Vec<Option<Result<types::Reply, types::CommandError>>> =
            (0..n).map(|_| None).collect();
        let mut sent: Vec<(usize, Option<usize>)> = Vec::with_capacity(n);
        let mut cmds = Vec::with_capacity(n);
        for (i, c) in commands.into_iter().enumerate() {
            match self.classify(c.first().map(|a| a.as_slice()).unwrap_or(&[])) {
                Err(why) => out[i] = Some(Err(types::CommandError::Rejected(why))),
                Ok(op) => {
                    sent.push((i, op));
                    cmds.push(Cmd::from_args(c));
                }
            }
        }
        if !cmds.is_empty() {
            match self.client.as_mut() {
                None => {
                    for (i, _) in &sent {
                        out[*i] = Some(Err(types::CommandError::Rejected(
                            "no Valkey connection in this context".into(),
                        )));
                    }
                }
                Some(client) => {
                    let t0 = Instant::now();
                    let replies = client.pipeline(&cmds).await;
                    let t1 = Instant::now();
                    self.wasm_since = t1;
                    for ((i, op), r) in sent.into_iter().zip(replies) {
                        if let (Some(rec), Some(op)) = (&self.rec, op) {
                            rec.record(op, t0, t0, t1, r.as_ref().map(|_| ()).map_err(|e| e.kind));
                        }
                        out[i] = Some(r.map(to_reply).map_err(command_error));
                    }
                }
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(types::CommandError::Connection("no reply".into()))))
            .collect()
    }
}

fn command_error(e: crate::valkey::Error) -> types::CommandError {
    match e.kind {
        ErrorKind::Timeout => types::CommandError::Timeout,
        ErrorKind::Connection => types::CommandError::Connection(e.msg),
        _ => types::CommandError::Server(e.msg),
    }
}

/// Flatten a RESP value into the WIT arena (node 0 is the root).
pub fn to_reply(v: Value) -> types::Reply {
    let mut nodes = vec![types::Node::Nil];
    fill(&mut nodes, 0, v);
    types::Reply { nodes }
}

fn fill(nodes: &mut Vec<types::Node>, at: usize, v: Value) {
    // Children get consecutive slots after everything allocated so far, then are filled in.
    fn slots(nodes: &mut Vec<types::Node>, n: usize) -> usize {
        let start = nodes.len();
        nodes.extend(std::iter::repeat_with(|| types::Node::Nil).take(n));
        start
    }
    let node = match v {
        Value::Nil => types::Node::Nil,
        Value::Simple(s) => types::Node::Simple(s),
        Value::Error(e) => types::Node::Simple(e),
        Value::Int(i) => types::Node::Integer(i),
        Value::Bulk(b) => types::Node::Bulk(b),
        Value::Double(d) => types::Node::Double(d),
        Value::Bool(b) => types::Node::Boolean(b),
        Value::BigNumber(s) => types::Node::BigNumber(s),
        Value::Verbatim(s) => types::Node::Verbatim(s),
        Value::Array(items) => types::Node::Array(children(nodes, items, slots)),
        Value::Set(items) => types::Node::Set(children(nodes, items, slots)),
        Value::Push(items) => types::Node::Push(children(nodes, items, slots)),
        Value::Map(pairs) => {
            let start = slots(nodes, pairs.len() * 2);
            let mut ids = Vec::with_capacity(pairs.len());
            for (i, (k, val)) in pairs.into_iter().enumerate() {
                fill(nodes, start + 2 * i, k);
                fill(nodes, start + 2 * i + 1, val);
                ids.push(((start + 2 * i) as u32, (start + 2 * i + 1) as u32));
            }
            types::Node::Pairs(ids)
        }
    };
    nodes[at] = node;
}

fn children(
    nodes: &mut Vec<types::Node>,
    items: Vec<Value>,
    slots: fn(&mut Vec<types::Node>, usize) -> usize,
) -> Vec<u32> {
    let start = slots(nodes, items.len());
    let n = items.len();
    for (i, x) in items.into_iter().enumerate() {
        fill(nodes, start + i, x);
    }
    (start..start + n).map(|i| i as u32).collect()
}

impl types::Host for VuState {}

impl valkey::Host for VuState {
    async fn execute(&mut self, args: Vec<Vec<u8>>) -> Result<types::Reply, types::CommandError> {
        self.run(args).await.map(to_reply)
    }

    async fn pipeline(
        &mut self,
        commands: Vec<Vec<Vec<u8>>>,
    ) -> Vec<Result<types::Reply, types::CommandError>> {
        self.run_pipeline(commands).await
    }
}

impl metrics::Host for VuState {
    fn declare(&mut self, name: String, kind: metrics::MetricKind) -> metrics::MetricId {
        if let Some(i) = self.declared.iter().position(|(n, _)| *n == name) {
            return i as u32;
        }
        self.declared.push((name, kind));
        (self.declared.len() - 1) as u32
    }

    fn emit(&mut self, id: metrics::MetricId, value: i64) {
        let (Some((name, kind)), Some(rec)) = (self.declared.get(id as usize), &self.rec) else {
            return;
        };
        let m = rec.metrics();
        match kind {
            metrics::MetricKind::Counter => m.custom_add(name, value),
            metrics::MetricKind::Gauge => m.custom_set(name, value),
            metrics::MetricKind::Histogram => {
                // A duration the plugin measured (ns), ending now.
                let us = (value.max(0) as u64) / 1000;
                let now = std::time::Instant::now();
                let began = now
                    .checked_sub(std::time::Duration::from_micros(us))
                    .unwrap_or(now);
                rec.record_us(m.op_index(name), began, us, us, Ok(()));
            }
        }
    }
}

impl clock::Host for VuState {
    fn now(&mut self) -> u64 {
        crate::clock::monotonic_ns()
    }

    async fn sleep(&mut self, nanos: u64) {
        tokio::time::sleep(Duration::from_nanos(nanos.min(3_600_000_000_000))).await;
        self.wasm_since = Instant::now();
    }
}

impl random::Host for VuState {
    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
    fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.rng.below(high - low)
    }
    fn bytes(&mut self, len: u32) -> Vec<u8> {
        let mut b = vec![0u8; len.min(16 << 20) as usize];
        self.rng.fill(&mut b);
        b
    }
}

impl log::Host for VuState {
    fn log(&mut self, level: log::Level, message: String) {
        let (p, vu) = (&self.plugin, self.vu);
        match level {
            log::Level::Error => tracing::error!(plugin = %p, vu, "{message}"),
            log::Level::Warn => tracing::warn!(plugin = %p, vu, "{message}"),
            log::Level::Info => tracing::info!(plugin = %p, vu, "{message}"),
            log::Level::Debug => tracing::debug!(plugin = %p, vu, "{message}"),
            log::Level::Trace => tracing::trace!(plugin = %p, vu, "{message}"),
        }
        if level == log::Level::Error {
            if let Some(rec) = &self.rec {
                rec.metrics().custom_add("plugin_log_errors", 1);
            }
        }
    }
}
