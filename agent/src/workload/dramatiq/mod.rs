//! `type = "dramatiq"`: Dramatiq's Redis broker, command for command — producers that enqueue
//! what `actor.send()` enqueues, consumers that fetch with prefetch, heartbeat, ack, promote delayed
//! messages, retry like the Retries middleware and dead-letter — plus a ledger of every message
//! that says, after a bounded drain, what was lost, duplicated or stuck.
//!
//! The dispatch script is our own (`dispatch.lua`), written to the KEYS/ARGV contract of
//! Dramatiq's; a Python worker and the agent interoperate on the same keys.
//!
//! Here: spawning a workload and its producers. `state` is what they all share ([`State`], a
//! recorded dispatch call), `broker` the dispatch contract, `consumer` one worker process (fetch,
//! promote, stall, crash and revive), `handler` one handler thread's message (work, ack, retry,
//! dead-letter), `finish` the drain and the accounting, `ledger` every message's fate, `message`
//! the wire format. Arrows point one way: the children import `state` and `broker`, never this
//! file.

mod broker;
mod consumer;
mod finish;
mod handler;
mod ledger;
mod message;
mod state;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::ctx::Ctx;
use crate::control::ConsumerSwitch;
use crate::plan::rollout::Clients;
use crate::plan::{DramatiqCounter as C, DramatiqPlan, WorkloadPlan};
use crate::rng::Rng;
use crate::valkey::{Client, Cmd, Value};
use crate::workload::pacing::Pacer;
use broker::DEAD_MESSAGE_TTL_MS;
pub use broker::{dispatch, dispatch_script, Broker, MAX_UNPACK};
pub use ledger::Ledger;
pub use message::Message;
pub use state::State;
use state::{now_ms, C_DEPTH, C_ENQUEUED, OP_ENQ};

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
        strandings: Default::default(),
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
    let mut c = Client::new(ctx.client_route(Clients::Producers, idx));
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
        let r = c
            .eval_script_encoded(&st.script, &cmd, &mut status)
            .await
            .or_else(|kind| {
                if st.swallowed(kind) {
                    Ok(())
                } else {
                    Err(kind)
                }
            });
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
