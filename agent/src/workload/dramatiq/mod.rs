//! `type = "dramatiq"`: Dramatiq's Redis broker, command for command — producers that enqueue
//! what `actor.send()` enqueues, consumers that fetch with prefetch, heartbeat, ack, promote delayed
//! messages, retry like the Retries middleware and dead-letter — plus a ledger of every message
//! that says, after a bounded drain, what was lost, duplicated or stuck.
//!
//! The dispatch script is our own (`dispatch.lua`), written to the KEYS/ARGV contract of
//! Dramatiq's; a Python worker and the agent interoperate on the same keys.

mod ledger;
mod message;

use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::ctx::Ctx;
use crate::control::ConsumerSwitch;
use crate::events::FaultSpan;
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
            cs.spawn(consumer(st.clone(), ctx.clone(), i));
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

struct Delayed {
    eta: u64,
    rid: String,
    msg: Message,
}
impl PartialEq for Delayed {
    fn eq(&self, o: &Self) -> bool {
        self.eta == o.eta
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Delayed {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.eta.cmp(&self.eta)
    }
}

/// One "worker process": a broker id, a consumer for the queue and one for its delay queue,
/// `threads` handlers.
async fn consumer(st: Arc<State>, ctx: Ctx, idx: u32) {
    let d = &st.plan;
    if !d.consume_after.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep_until((ctx.start + d.consume_after).into()) => {}
            _ = st.stop.cancelled() => return,
        }
    }
    let mut broker = st.broker_ids[idx as usize % st.broker_ids.len()].clone();
    // The worker process this consumer is: a new one after each crash.
    let mut worker = Worker {
        consumer: idx,
        id: (idx as u64) << 32,
    };
    let sem = Arc::new(Semaphore::new(d.threads as usize));
    let new_pool = || {
        Arc::new(Mutex::new(
            (0..d.threads)
                .map(|_| Client::new(ctx.route.clone()))
                .collect::<Vec<_>>(),
        ))
    };
    let mut pool: Arc<Mutex<Vec<Client>>> = new_pool();
    let outstanding = Arc::new(AtomicUsize::new(0));
    let freed = Arc::new(Notify::new());
    let mut handlers = JoinSet::new();
    let rec = ctx.metrics.recorder(1000 + idx as usize);
    let mut rng = Rng::derive(
        ctx.seed,
        &format!("{}-consumer", ctx.metrics.id),
        idx as u64,
    );
    let mut fetch_client = Client::new(ctx.route.clone());
    let mut dq_client = Client::new(ctx.route.clone());
    let dq_name = format!("{}.DQ", d.queue);
    let mut held: BinaryHeap<Delayed> = BinaryHeap::new();
    let mut cache: VecDeque<(String, Message)> = VecDeque::new();
    let mut misses: u32 = 0;
    let mut dq_misses: u32 = 0;
    let mut next_dq_fetch = Instant::now();
    let dq_prefetch = (d.threads as u64 * 1000).min(MAX_UNPACK);
    loop {
        if st.stop.is_cancelled() {
            break;
        }
        if st.crash.is_crashed(idx) {
            // Died mid-message: its handlers stop before acking, what it prefetched or held
            // stays in its ack sets, its heartbeat stops. Another worker's maintenance requeues
            // it once the heartbeat is older than `heartbeat_timeout`.
            while handlers.join_next().await.is_some() {}
            let abandoned = cache.len() + held.len() + st.crash_dropped(idx);
            st.inflight.fetch_sub(cache.len(), Ordering::Relaxed);
            st.delayed_held.fetch_sub(held.len(), Ordering::Relaxed);
            cache.clear();
            held.clear();
            ctx.events.push(
                crate::events::EventKind::Note,
                format!(
                    "{}: consumer {idx} (broker {broker}) crashed holding {abandoned} messages",
                    ctx.metrics.id
                ),
            );
            loop {
                if !st.crash.is_crashed(idx) || st.stop.is_cancelled() {
                    break;
                }
                tokio::select! {
                    _ = st.crash.changed.notified() => {}
                    _ = st.stop.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            if st.stop.is_cancelled() {
                return;
            }
            // A new worker process: new broker id, new connections.
            broker = rng.uuid4();
            worker.id += 1;
            pool = new_pool();
            fetch_client = Client::new(ctx.route.clone());
            dq_client = Client::new(ctx.route.clone());
            misses = 0;
            dq_misses = 0;
            continue;
        }
        // Promote due delayed messages: enqueue a copy on the queue, then ack the .DQ copy.
        let now = now_ms();
        while held.peek().is_some_and(|h| h.eta <= now) {
            let h = held.pop().expect("peeked");
            let mut m = h.msg;
            if m.option_u64("retries").unwrap_or(0) == 0 {
                st.etas
                    .lock()
                    .expect("etas lock")
                    .insert(m.message_id.clone(), h.eta);
            }
            m.queue_name = d.queue.clone();
            m.remove_option("eta");
            let new_rid = rng.uuid4();
            m.set_option("redis_message_id", new_rid.clone().into());
            let body = m.encode();
            let r = timed(
                &mut dq_client,
                &st,
                &rec,
                OP_ENQ,
                "enqueue",
                &d.queue,
                &broker,
                rng.chance(d.maintenance_chance),
                &[new_rid.as_bytes(), body.as_bytes()],
            )
            .await;
            if r.is_err() {
                // Not moved: keep holding it and try again shortly (the .DQ copy stays unacked).
                m.queue_name = dq_name.clone();
                m.set_option("eta", (now_ms() + 1000).into());
                held.push(Delayed {
                    eta: now_ms() + 1000,
                    rid: h.rid,
                    msg: m,
                });
                break;
            }
            let _ = timed(
                &mut dq_client,
                &st,
                &rec,
                OP_ACK,
                "ack",
                &dq_name,
                &broker,
                false,
                &[h.rid.as_bytes()],
            )
            .await;
            st.delayed_held.fetch_sub(1, Ordering::Relaxed);
        }
        // Fetch from the delay queue (it keeps this broker's heartbeat going too).
        if Instant::now() >= next_dq_fetch && (held.len() as u64) < dq_prefetch {
            let want = dq_prefetch - held.len() as u64;
            let r = timed(
                &mut dq_client,
                &st,
                &rec,
                OP_FETCH,
                "fetch",
                &dq_name,
                &broker,
                rng.chance(d.maintenance_chance),
                &[want.to_string().as_bytes()],
            )
            .await;
            let got = decode_batch(&st, &ctx, r.ok());
            if got.is_empty() {
                dq_misses += 1;
                next_dq_fetch = Instant::now() + idle_backoff(&mut rng, dq_misses);
            } else {
                dq_misses = 0;
                for (rid, m) in got {
                    let eta = m.option_u64("eta").unwrap_or(0);
                    st.delayed_held.fetch_add(1, Ordering::Relaxed);
                    held.push(Delayed { eta, rid, msg: m });
                }
            }
        }
        // Fetch from the queue when the prefetch has room.
        let out = outstanding.load(Ordering::Relaxed) + cache.len();
        if cache.is_empty() && out < d.prefetch as usize {
            let want = (d.prefetch as usize - out) as u64;
            let r = timed(
                &mut fetch_client,
                &st,
                &rec,
                OP_FETCH,
                "fetch",
                &d.queue,
                &broker,
                rng.chance(d.maintenance_chance),
                &[want.to_string().as_bytes()],
            )
            .await;
            let got = decode_batch(&st, &ctx, r.ok());
            if got.is_empty() {
                misses += 1;
                let wait = idle_backoff(&mut rng, misses);
                let until = held
                    .peek()
                    .map(|h| h.eta.saturating_sub(now_ms()))
                    .map(Duration::from_millis)
                    .unwrap_or(wait)
                    .min(wait)
                    .min(
                        next_dq_fetch
                            .saturating_duration_since(Instant::now())
                            .max(Duration::from_millis(1)),
                    );
                tokio::select! {
                    _ = tokio::time::sleep(until) => {}
                    _ = st.stop.cancelled() => {}
                }
                continue;
            }
            misses = 0;
            st.inflight.fetch_add(got.len(), Ordering::Relaxed);
            cache.extend(got);
        }
        // Hand cached messages to free handler threads.
        while let Some((rid, m)) = cache.front().cloned() {
            let Ok(permit) = sem.clone().try_acquire_owned() else {
                break;
            };
            cache.pop_front();
            outstanding.fetch_add(1, Ordering::Relaxed);
            let (st2, ctx2, pool2, out2, freed2, rec2, broker2) = (
                st.clone(),
                ctx.clone(),
                pool.clone(),
                outstanding.clone(),
                freed.clone(),
                rec.clone(),
                broker.clone(),
            );
            let seed = rng.next_u64();
            let w = worker;
            handlers.spawn(async move {
                let _permit = permit;
                let done = handle(&st2, &ctx2, &pool2, &rec2, &broker2, w, rid, m, seed).await;
                out2.fetch_sub(1, Ordering::Relaxed);
                if done {
                    st2.inflight.fetch_sub(1, Ordering::Relaxed);
                } else {
                    st2.crashed_holding[w.consumer as usize].fetch_add(1, Ordering::Relaxed);
                }
                freed2.notify_one();
            });
        }
        while handlers.try_join_next().is_some() {}
        if !cache.is_empty() || outstanding.load(Ordering::Relaxed) >= d.prefetch as usize {
            let next = held
                .peek()
                .map(|h| Duration::from_millis(h.eta.saturating_sub(now_ms())))
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            tokio::select! {
                _ = freed.notified() => {}
                _ = tokio::time::sleep(next) => {}
                _ = st.stop.cancelled() => {}
            }
        }
    }
    // Graceful stop like Worker.stop(): let handlers finish, requeue what was prefetched or held.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while handlers.join_next().await.is_some() {}
    })
    .await;
    if !cache.is_empty() {
        let ids: Vec<String> = cache.iter().map(|(r, _)| r.clone()).collect();
        let refs: Vec<&[u8]> = ids.iter().map(|s| s.as_bytes()).collect();
        let _ = st
            .call(
                &mut fetch_client,
                "requeue",
                &d.queue,
                &broker,
                false,
                &refs,
            )
            .await;
        st.inflight.fetch_sub(cache.len(), Ordering::Relaxed);
    }
    if !held.is_empty() {
        let ids: Vec<String> = held.iter().map(|h| h.rid.clone()).collect();
        let refs: Vec<&[u8]> = ids.iter().map(|s| s.as_bytes()).collect();
        let _ = st
            .call(&mut dq_client, "requeue", &dq_name, &broker, false, &refs)
            .await;
        st.delayed_held.fetch_sub(held.len(), Ordering::Relaxed);
    }
}

/// Idle poll backoff of a Dramatiq consumer (2.x): 5ms·2^n·U(1,2), capped at U(0.5,1)·1s.
fn idle_backoff(rng: &mut Rng, misses: u32) -> Duration {
    let b = 0.005 * 2f64.powi(misses.min(20) as i32) * (1.0 + rng.unit());
    Duration::from_secs_f64(if b > 1.0 { 0.5 + rng.unit() * 0.5 } else { b })
}

fn decode_batch(st: &State, ctx: &Ctx, v: Option<Value>) -> Vec<(String, Message)> {
    let Some(items) = v.and_then(|v| v.into_array()) else {
        return vec![];
    };
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        match it {
            Value::Nil => ctx.metrics.counters.add(C_MISSING, 1),
            v => match v.as_bytes().and_then(|b| Message::decode(b).ok()) {
                Some(m) => match m.option_str("redis_message_id") {
                    Some(rid) => out.push((rid.to_string(), m)),
                    None => ctx.metrics.counters.add(C_UNDECODABLE, 1),
                },
                None => ctx.metrics.counters.add(C_UNDECODABLE, 1),
            },
        }
    }
    let _ = st;
    out
}

/// One handler run: returns false when the worker crashed before it finished (no ack sent).
#[allow(clippy::too_many_arguments)]
async fn handle(
    st: &State,
    ctx: &Ctx,
    pool: &Mutex<Vec<Client>>,
    rec: &crate::metrics::Recorder,
    broker: &str,
    worker: Worker,
    rid: String,
    mut m: Message,
    seed: u64,
) -> bool {
    let d = &st.plan;
    let retries = m.option_u64("retries").unwrap_or(0) as u32;
    let mid = m.message_id.clone();
    // e2e: enqueue (or, for a delayed message, its eta) → handler start, first attempts only.
    if retries == 0 && !m.was_delayed {
        let eta = st.etas.lock().expect("etas lock").remove(&mid);
        let from = eta.unwrap_or(m.message_timestamp).max(m.message_timestamp);
        let age = Duration::from_millis(now_ms().saturating_sub(from));
        let lat = age.as_micros() as u64;
        let began = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        rec.record_us(OP_E2E, began, lat, lat, Ok(()));
    }
    st.ledger
        .delivered(&mid, retries, worker.id, Instant::now());
    ctx.metrics.counters.add(C_DELIVERED, 1);
    if let Some(t) = &st.trace {
        use std::io::Write;
        let _ = writeln!(t.lock().expect("trace lock"), "{mid} {retries}");
    }
    let mut rng = Rng::new(seed);
    let work = d.work.sample(&mut rng);
    if d.ack_before_work {
        // A worker that acks first and works afterwards (a planted bug, for showing the oracle):
        // if it dies mid-work the message is gone, acked, and never processed.
        let mut c = pool
            .lock()
            .expect("pool lock")
            .pop()
            .unwrap_or_else(|| Client::new(ctx.route.clone()));
        let r = post_process(&mut c, st, broker, "ack", &rid, rec, OP_ACK).await;
        pool.lock().expect("pool lock").push(c);
        if let Err(e) = &r {
            st.ledger
                .ack_failed(&mid, retries, worker.id, e.is_ambiguous(), Instant::now());
        }
        if r.is_ok()
            && st.ledger.finished(
                &mid,
                retries,
                worker.id,
                Some(ledger::Final::Acked),
                Instant::now(),
            )
        {
            ctx.metrics.counters.add(C_ACKED, 1);
        }
        tokio::select! {
            _ = tokio::time::sleep(work) => {}
            _ = st.crashed(worker.consumer) => {
                st.ledger.work_lost(&mid, retries, worker.id);
                return false;
            }
        }
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(work) => {}
        _ = st.crashed(worker.consumer) => return false,
    }
    if st.crash.is_crashed(worker.consumer) {
        return false;
    }
    let fails = d.fail_fraction > 0.0 && {
        let mut h = Rng::derive(ctx.seed, &mid, retries as u64);
        h.chance(d.fail_fraction)
    };
    let mut c = pool
        .lock()
        .expect("pool lock")
        .pop()
        .unwrap_or_else(|| Client::new(ctx.route.clone()));
    let failed = |r: &Result<Value, Error>| {
        if let Err(e) = r {
            st.ledger
                .ack_failed(&mid, retries, worker.id, e.is_ambiguous(), Instant::now());
        }
    };
    let ended = |how: Option<ledger::Final>| {
        if st
            .ledger
            .finished(&mid, retries, worker.id, how, Instant::now())
        {
            match how {
                Some(ledger::Final::Acked) => ctx.metrics.counters.add(C_ACKED, 1),
                Some(ledger::Final::DeadLettered) => ctx.metrics.counters.add(C_DEAD, 1),
                None => {}
            }
        }
    };
    if !fails {
        let r = post_process(&mut c, st, broker, "ack", &rid, rec, OP_ACK).await;
        failed(&r);
        if r.is_ok() {
            ended(Some(ledger::Final::Acked));
        }
    } else {
        // The Retries middleware: give up when the attempts so far reach max_retries.
        let next = retries + 1;
        if retries >= d.max_retries {
            let r = post_process(&mut c, st, broker, "nack", &rid, rec, OP_NACK).await;
            failed(&r);
            if r.is_ok() {
                ended(Some(ledger::Final::DeadLettered));
            }
        } else {
            // The Retries middleware: enqueue a copy with a delay on .DQ, then ack the original.
            let now = now_ms();
            m.set_option("retries", next.into());
            m.set_option(
                "traceback",
                "Traceback (most recent call last):\n  valkey-chaos simulated failure\n".into(),
            );
            m.set_option("requeue_timestamp", now.into());
            let delay = backoff(&mut rng, d.version, retries, d.min_backoff, d.max_backoff);
            let new_rid = rng.uuid4();
            m.set_option("redis_message_id", new_rid.clone().into());
            m.set_option("eta", (now + delay.as_millis() as u64).into());
            m.queue_name = format!("{}.DQ", d.queue);
            let body = m.encode();
            let r = timed(
                &mut c,
                st,
                rec,
                OP_ENQ,
                "enqueue",
                &m.queue_name,
                broker,
                false,
                &[new_rid.as_bytes(), body.as_bytes()],
            )
            .await;
            if r.is_ok() {
                ctx.metrics.counters.add(C_RETRIED, 1);
            }
            let r = post_process(&mut c, st, broker, "ack", &rid, rec, OP_ACK).await;
            failed(&r);
            if r.is_ok() {
                ended(None);
            }
        }
    }
    pool.lock().expect("pool lock").push(c);
    true
}

/// Which worker process handles a message: consumer `consumer`, generation in `id`.
#[derive(Debug, Clone, Copy)]
struct Worker {
    consumer: u32,
    id: u64,
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

impl State {
    /// Drain (bounded by `drain_timeout`), stop the consumers, then account for every message;
    /// `faults` explain repeated deliveries.
    pub async fn finish(&self, ctx: &Ctx, faults: &[FaultSpan]) {
        let d = &self.plan;
        let deadline = Instant::now() + d.drain_timeout;
        let mut c = Client::new(ctx.route.clone());
        if d.consumers > 0 {
            loop {
                let done = if d.producers > 0 && !d.shared_queue {
                    self.ledger.pending() == 0
                } else {
                    // Consume-only or shared: until the queue, its payloads and the delay queue
                    // are empty and nothing is in flight here.
                    let q = format!("{}:{}", d.namespace, d.queue);
                    let len = c
                        .request(&Cmd::new("LLEN").arg(q.as_str()))
                        .await
                        .ok()
                        .and_then(|v| v.as_int())
                        .unwrap_or(1);
                    let dq = c
                        .request(&Cmd::new("HLEN").arg(format!("{q}.DQ.msgs")))
                        .await
                        .ok()
                        .and_then(|v| v.as_int())
                        .unwrap_or(1);
                    let msgs = c
                        .request(&Cmd::new("HLEN").arg(format!("{q}.msgs")))
                        .await
                        .ok()
                        .and_then(|v| v.as_int())
                        .unwrap_or(1);
                    len == 0
                        && dq == 0
                        && msgs == 0
                        && self.inflight.load(Ordering::Relaxed) == 0
                        && self.delayed_held.load(Ordering::Relaxed) == 0
                };
                if done || Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        self.stop.cancel();
        let mut cs = std::mem::take(&mut *self.consumers.lock().expect("consumers lock"));
        let _ = tokio::time::timeout(Duration::from_secs(15), async {
            while cs.join_next().await.is_some() {}
        })
        .await;
        cs.abort_all();
        if let Some(t) = &self.trace {
            use std::io::Write;
            let _ = t.lock().expect("trace lock").flush();
        }
        ctx.metrics
            .counters
            .set(C_DEPTH, self.depth_max.load(Ordering::Relaxed));
        // What is still in Valkey decides lost (gone) vs stuck (still there).
        let present = present_message_ids(&mut c, &d.namespace, &d.queue).await;
        let r = self.ledger.reconcile(present.as_ref(), faults);
        let cs = &ctx.metrics.counters;
        let put = |idx: usize, at: &[Instant]| {
            for t in at {
                cs.add_at(idx, 1, *t);
            }
        };
        if d.consumers == 0 {
            // Produce-only: somebody else consumes; what is still there is just queued.
            cs.set(C_LEFT, r.stuck.len() as u64);
        } else {
            if d.shared_queue {
                // Other workers took what we never saw: not lost by us.
                cs.set(C_TAKEN, r.lost.len() as u64);
            } else {
                put(C_LOST, &r.lost);
            }
            put(C_STUCK, &r.stuck);
            put(C_UNFINISHED, &r.unfinished);
        }
        let rep = &r.repeats;
        put(C_DUPLICATED, &rep.duplicated);
        for (idx, list) in [
            (C::Redelivered.i(), &rep.redelivered),
            (C::Resurrected.i(), &rep.resurrected),
        ] {
            for (t, _) in list {
                cs.add_at(idx, 1, *t);
            }
        }
        cs.set(C::AmbiguousLanded.i(), r.ambiguous_landed);
        put(C::AckFailed.i(), &r.ack_failed);
        cs.set(C::AckUnconfirmed.i(), r.ack_unconfirmed);
        if !r.ack_failed.is_empty() {
            ctx.events.push(
                crate::events::EventKind::Note,
                format!(
                    "{}: {} processed messages whose ack failed are still in their worker's ack \
                     set: Dramatiq redelivers them when that worker's heartbeat expires (checked: \
                     still present; not observed: the redelivery)",
                    ctx.metrics.id,
                    r.ack_failed.len()
                ),
            );
        }
        cs.set(C::Checked.i(), r.checked);
        // Say which fault each repeated delivery is put down to.
        let mut by_fault: std::collections::BTreeMap<usize, (usize, usize)> = Default::default();
        for (_, f) in &rep.redelivered {
            by_fault.entry(f.unwrap_or(usize::MAX)).or_default().0 += 1;
        }
        for (_, f) in &rep.resurrected {
            by_fault.entry(f.unwrap_or(usize::MAX)).or_default().1 += 1;
        }
        for (f, (re, res)) in by_fault {
            ctx.events.push(
                crate::events::EventKind::Note,
                format!(
                    "{}: {re} redelivered and {res} resurrected after fault #{f} (at-least-once: \
                     the fault lost a fetch, an ack or a worker)",
                    ctx.metrics.id
                ),
            );
        }
        for (kind, mid) in &r.examples {
            // Produce-only: what is left is queued; a shared queue: others took what we missed.
            if (d.consumers == 0 && *kind == "stuck") || (d.shared_queue && *kind == "lost") {
                continue;
            }
            ctx.events.push(
                crate::events::EventKind::Note,
                format!(
                    "{}: {kind}: {}",
                    ctx.metrics.id,
                    self.ledger.describe(mid, ctx.start)
                ),
            );
        }
        if present.is_none() {
            ctx.events.push(
                crate::events::EventKind::Note,
                format!(
                    "{}: could not read the queues back; lost/stuck counted as stuck",
                    ctx.metrics.id
                ),
            );
        }
    }
}

/// Message ids still held anywhere in Valkey for this queue (queue, delay queue, payload hashes, ack sets).
async fn present_message_ids(
    c: &mut Client,
    ns: &str,
    q: &str,
) -> Option<std::collections::HashSet<String>> {
    let mut ids = std::collections::HashSet::new();
    for h in [format!("{ns}:{q}.msgs"), format!("{ns}:{q}.DQ.msgs")] {
        let mut cursor = "0".to_string();
        loop {
            let v = c
                .request(
                    &Cmd::new("HSCAN")
                        .arg(h.as_str())
                        .arg(cursor.as_str())
                        .arg("COUNT")
                        .arg(1000u64),
                )
                .await
                .ok()?;
            let mut parts = v.into_array()?.into_iter();
            cursor = parts.next()?.as_str()?.to_string();
            let kv = parts.next()?.into_array()?;
            for (i, x) in kv.iter().enumerate() {
                if i % 2 == 1 {
                    if let Some(m) = x.as_bytes().and_then(|b| Message::decode(b).ok()) {
                        ids.insert(m.message_id);
                    }
                }
            }
            if cursor == "0" {
                break;
            }
        }
    }
    Some(ids)
}
