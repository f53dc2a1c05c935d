//! `type = "dramatiq"`: Dramatiq's Redis broker, command for command — producers that enqueue
//! what `actor.send()` enqueues, consumers that fetch with prefetch, heartbeat, ack, promote delayed
//! messages, retry like the Retries middleware and dead-letter — plus a ledger of every message
//! that says, after a bounded drain, what was lost, duplicated or stuck.
//!
//! The dispatch script is our own (`dispatch.lua`), written to the KEYS/ARGV contract of
//! Dramatiq's; a Python worker and the agent interoperate on the same keys.
//!
//! Here: the shared [`State`], the producers and the dispatch call; `consumer` is one worker
//! process (fetch, promote, crash and revive), `handler` one handler thread's message (work, ack,
//! retry, dead-letter), `finish` the drain and the accounting, `ledger` every message's fate,
//! `message` the wire format.

mod consumer;
mod finish;
mod handler;
mod ledger;
mod message;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::ctx::Ctx;
use crate::control::ConsumerSwitch;
use crate::plan::{DramatiqCounter as C, DramatiqPlan, WorkloadPlan};
use crate::rng::Rng;
use crate::valkey::{Client, Cmd, Error, Script, Value};
use crate::workload::pacing::Pacer;
pub use ledger::Ledger;
pub use message::Message;

const OP_ENQ: usize = 0;
const OP_FETCH: usize = 1;
const OP_ACK: usize = 2;
const OP_NACK: usize = 3;
const OP_E2E: usize = 4;
pub(crate) const C_ENQUEUED: usize = C::Enqueued.i();
pub(crate) const C_DELIVERED: usize = C::Delivered.i();
pub(crate) const C_ACKED: usize = C::Acked.i();
pub(crate) const C_LOST: usize = C::Lost.i();
pub(crate) const C_DUPLICATED: usize = C::Duplicated.i();
pub(crate) const C_STUCK: usize = C::Stuck.i();
pub(crate) const C_DEAD: usize = C::DeadLettered.i();
pub(crate) const C_RETRIED: usize = C::Retried.i();
const C_MISSING: usize = C::MissingPayloads.i();
const C_UNDECODABLE: usize = C::Undecodable.i();
const C_DEPTH: usize = C::QueueDepthMax.i();
const C_UNFINISHED: usize = C::Unfinished.i();
const C_TAKEN: usize = C::TakenByOthers.i();
const C_LEFT: usize = C::LeftQueued.i();

/// Dramatiq's `max_unpack_size` on stock Redis 7.0 and Valkey 9 (`maxstack() // 2`).
pub const MAX_UNPACK: u64 = 3996;
const DEAD_MESSAGE_TTL_MS: u64 = 604_800_000;

/// The dispatch script for a fleet of Dramatiq `version` ("1" or "2").
pub fn dispatch_script(version: u8) -> Script {
    let body = include_str!("dispatch.lua");
    if version == 1 {
        Script::new(&body.replace("local LEGACY_ACKS = false", "local LEGACY_ACKS = true"))
    } else {
        Script::new(body)
    }
}

pub use crate::clock::wall_ms as now_ms;

/// Shared by every producer and consumer of one workload.
pub struct State {
    plan: DramatiqPlan,
    script: Script,
    pub ledger: Ledger,
    consumers: Mutex<JoinSet<()>>,
    stop: CancellationToken,
    /// Messages fetched or being handled by our consumers and not yet acked/requeued.
    inflight: AtomicUsize,
    delayed_held: AtomicUsize,
    broker_ids: Vec<String>,
    /// The consumers' crash switches (`consumer-crash` faults).
    crash: Arc<ConsumerSwitch>,
    /// Per consumer: handlers that died with their worker since the last crash was accounted.
    crashed_holding: Vec<AtomicUsize>,
    depth_max: AtomicU64,
    /// Eta of messages we promoted from the delay queue: their e2e counts from the eta.
    etas: Mutex<std::collections::HashMap<String, u64>>,
    trace: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
}

impl State {
    /// Resolves when consumer `i` crashes.
    async fn crashed(&self, i: u32) {
        loop {
            if self.crash.is_crashed(i) {
                return;
            }
            tokio::select! {
                _ = self.crash.changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }

    /// Messages consumer `i`'s handlers were holding when it crashed (taken once; they leave
    /// the in-flight count, they stay in its ack set).
    fn crash_dropped(&self, i: u32) -> usize {
        let n = self.crashed_holding[i as usize].swap(0, Ordering::Relaxed);
        self.inflight.fetch_sub(n, Ordering::Relaxed);
        n
    }

    /// One dispatch call of this workload's broker.
    async fn call(
        &self,
        c: &mut Client,
        cmd: &str,
        queue: &str,
        broker: &str,
        maintenance: bool,
        args: &[&[u8]],
    ) -> Result<Value, Error> {
        dispatch(
            c,
            &self.script,
            &Broker {
                namespace: &self.plan.namespace,
                heartbeat_ms: self.plan.heartbeat_timeout.as_millis() as u64,
            },
            cmd,
            queue,
            broker,
            maintenance,
            args,
        )
        .await
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

pub async fn spawn(
    plan: &WorkloadPlan,
    d: &DramatiqPlan,
    ctx: Ctx,
    tasks: &mut JoinSet<()>,
) -> Result<Arc<State>, String> {
    let mut rng = Rng::derive(ctx.seed, &format!("{}-brokers", ctx.metrics.id), 0);
    let nb = d.producers.max(d.consumers).max(1);
    let broker_ids: Vec<String> = (0..nb).map(|_| rng.uuid4()).collect();
    let trace = d
        .trace
        .as_ref()
        .and_then(|p| std::fs::File::create(p).ok())
        .map(|f| Mutex::new(std::io::BufWriter::new(f)));
    let st = Arc::new(State {
        plan: d.clone(),
        script: dispatch_script(d.version),
        ledger: Ledger::default(),
        consumers: Mutex::new(JoinSet::new()),
        stop: CancellationToken::new(),
        inflight: AtomicUsize::new(0),
        delayed_held: AtomicUsize::new(0),
        broker_ids,
        crash: ConsumerSwitch::new(d.consumers),
        crashed_holding: (0..d.consumers).map(|_| AtomicUsize::new(0)).collect(),
        depth_max: AtomicU64::new(0),
        etas: Mutex::new(Default::default()),
        trace,
    });
    for i in 0..d.producers {
        let pacer = Pacer::new(
            &plan.load,
            i,
            d.producers,
            1,
            ctx.start,
            ctx.end,
            Some(ctx.metrics.clone()),
        );
        tasks.spawn(producer(st.clone(), ctx.clone(), i, pacer));
    }
    ctx.controls
        .register_consumers(&ctx.metrics.id, st.crash.clone());
    {
        let mut cs = st.consumers.lock().expect("consumers lock");
        for i in 0..d.consumers {
            cs.spawn(consumer::consumer(st.clone(), ctx.clone(), i));
        }
        cs.spawn(depth_watch(st.clone(), ctx.clone()));
    }
    Ok(st)
}

async fn producer(st: Arc<State>, ctx: Ctx, idx: u32, mut pacer: Pacer) {
    let d = &st.plan;
    let mut rng = Rng::derive(ctx.seed, &ctx.metrics.id, idx as u64);
    let rec = ctx.metrics.recorder(idx as usize);
    let broker = st.broker_ids[idx as usize % st.broker_ids.len()].clone();
    let mut c = Client::new(ctx.route.clone());
    // One payload per producer: its content does not matter, its size does.
    let payload = String::from_utf8(rng.alnum(d.payload_bytes)).unwrap_or_default();
    // Everything constant is encoded once; per message only the ids and times are written.
    let enc = message::ProducerEncoder::new(&d.queue, &d.actors, &payload);
    let delayed_queue = format!("{}.DQ", d.queue);
    let hb = (d.heartbeat_timeout.as_millis() as u64).to_string();
    let ttl = DEAD_MESSAGE_TTL_MS.to_string();
    let mx = MAX_UNPACK.to_string();
    let mut body = Vec::with_capacity(d.payload_bytes + 256);
    let mut cmd = Vec::with_capacity(d.payload_bytes + 512);
    let mut status = Vec::with_capacity(1);
    let (mut mid_buf, mut rid_buf) = ([0u8; 36], [0u8; 36]);
    let mut digits = [0u8; 20];
    while let Some(intended) = pacer.next(&ctx.cancel).await {
        let actor = rng.below(d.actors.len() as u64) as usize;
        let delayed = rng.chance(d.delay_fraction);
        let mid = rng.uuid4_into(&mut mid_buf);
        let rid = rng.uuid4_into(&mut rid_buf);
        let ts = now_ms();
        let eta = delayed.then(|| ts + d.delay.as_millis() as u64);
        enc.encode(&mut body, actor, mid, rid, ts, eta);
        let queue = if delayed { &delayed_queue } else { &d.queue };
        let sent = Instant::now();
        let maint = rng.chance(d.maintenance_chance);
        cmd.clear();
        // `dispatch`'s EVALSHA, written in place: the same arguments, nothing allocated.
        crate::valkey::resp::encode_args(
            &[
                &b"EVALSHA"[..],
                st.script.sha.as_bytes(),
                b"1",
                d.namespace.as_bytes(),
                b"enqueue",
                crate::valkey::resp::uint_digits(&mut digits, ts),
                queue.as_bytes(),
                broker.as_bytes(),
                hb.as_bytes(),
                ttl.as_bytes(),
                if maint { b"1" } else { b"0" },
                mx.as_bytes(),
                rid.as_bytes(),
                &body,
            ],
            &mut cmd,
        );
        let r = c.eval_script_encoded(&st.script, &cmd, &mut status).await;
        let end = Instant::now();
        let start = if pacer.is_open() { intended } else { sent };
        match r {
            Ok(()) => {
                rec.record(OP_ENQ, start, sent, end, Ok(()));
                st.ledger.enqueued(mid, end);
                ctx.metrics.counters.add(C_ENQUEUED, 1);
            }
            // Not acknowledged: the producer saw the error, as `send()` would raise it. A timeout
            // or a broken connection may still have landed it: tracked, not dropped.
            Err(kind) => {
                rec.record(OP_ENQ, start, sent, end, Err(kind));
                if kind.is_ambiguous() {
                    st.ledger.ambiguous(mid, end);
                    ctx.metrics.counters.add(C::Ambiguous.i(), 1);
                }
            }
        }
    }
}

/// Dramatiq 2.x `compute_backoff`: `min·2^n·U(1,2)`, past the cap `U(0.5,1)·cap`; 1.x: `[0.5,1]·min(min·2^n, cap)`.
fn backoff(rng: &mut Rng, version: u8, attempts: u32, min: Duration, cap: Duration) -> Duration {
    let base = min.as_secs_f64() * 2f64.powi(attempts.min(40) as i32);
    let cap = cap.as_secs_f64();
    let s = if version == 1 {
        let b = base.min(cap);
        b / 2.0 + rng.unit() * b / 2.0
    } else {
        let b = base * (1.0 + rng.unit());
        if b > cap {
            cap * (0.5 + rng.unit() * 0.5)
        } else {
            b
        }
    };
    Duration::from_secs_f64(s)
}

/// A dispatch call, recorded as operation `op`.
#[allow(clippy::too_many_arguments)]
async fn timed(
    c: &mut Client,
    st: &State,
    rec: &crate::metrics::Recorder,
    op: usize,
    cmd: &str,
    queue: &str,
    broker: &str,
    maintenance: bool,
    args: &[&[u8]],
) -> Result<Value, Error> {
    let s = Instant::now();
    let r = st.call(c, cmd, queue, broker, maintenance, args).await;
    rec.record(
        op,
        s,
        s,
        Instant::now(),
        r.as_ref().map(|_| ()).map_err(|e| e.kind),
    );
    r
}

/// Ack or nack as Dramatiq's `post_process_message` does: a connection error is retried every
/// 5 s (bounded here to 6 tries); any other error drops it (the message stays in the ack set).
async fn post_process(
    c: &mut Client,
    st: &State,
    broker: &str,
    cmd: &str,
    rid: &str,
    rec: &crate::metrics::Recorder,
    op: usize,
) -> Result<Value, Error> {
    let d = &st.plan;
    let mut tries = 0;
    loop {
        let r = timed(
            c,
            st,
            rec,
            op,
            cmd,
            &d.queue,
            broker,
            false,
            &[rid.as_bytes()],
        )
        .await;
        match &r {
            Err(e)
                if matches!(
                    e.kind,
                    crate::valkey::ErrorKind::Connection
                        | crate::valkey::ErrorKind::Loading
                        | crate::valkey::ErrorKind::MasterDown
                ) && tries < 5 =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            _ => return r,
        }
    }
}

async fn depth_watch(st: Arc<State>, ctx: Ctx) {
    let mut c = Client::new(ctx.route.clone());
    let q = format!("{}:{}", st.plan.namespace, st.plan.queue);
    loop {
        if let Ok(Value::Int(n)) = c.request(&Cmd::new("LLEN").arg(q.as_str())).await {
            st.depth_max.fetch_max(n as u64, Ordering::Relaxed);
            ctx.metrics.counters.max(C_DEPTH, n as u64);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = st.stop.cancelled() => break,
        }
    }
}
