//! One Dramatiq worker process as the broker sees it: a consumer for the queue and one for its
//! delay queue, `threads` handlers, and the `consumer-crash` switch that kills it and brings it
//! back as a new process.
//!
//! A round of [`Consumer::run`] follows the protocol: promote due delayed messages, fetch from the
//! delay queue (every dispatch call also refreshes this broker's heartbeat), fetch from the queue
//! when the prefetch has room (or back off when it is empty), hand prefetched messages to free
//! handlers, then wait for one to finish.
//!
//! Errors get Dramatiq 2.2.1's reactions (its `ConsumerThread.run`): a failed fetch restarts that
//! consumer 3 s later; the delay queue's consumer, on what redis-py raises a `ConnectionError`
//! for, forgets the delayed messages it held (they stay in its ack set), on any other error
//! requeues them — and dies for good if that requeue fails too; a failed promotion of a due
//! message is such an "unexpected" error, the message it popped left in its ack set.

use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use super::broker::MAX_UNPACK;
use super::handler::{Handler, Worker};
use super::message::Message;
use super::state::{
    now_ms, post_process, timed, State, C_MISSING, C_UNDECODABLE, OP_ACK, OP_ENQ, OP_FETCH,
};
use crate::metrics::Recorder;
use crate::plan::rollout::Clients;
use crate::rng::Rng;
use crate::valkey::{Client, Cmd, Value};
use crate::workload::Ctx;

/// A delayed message this consumer fetched from `.DQ` and holds until its eta.
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

/// Consumer `idx` of the workload, from its `consume_after` until the workload stops.
pub(super) async fn consumer(st: Arc<State>, ctx: Ctx, idx: u32) {
    let d = &st.plan;
    if !d.consume_after.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep_until((ctx.start + d.consume_after).into()) => {}
            _ = st.stop.cancelled() => return,
        }
    }
    Consumer::new(st, ctx, idx).run().await;
}

/// One "worker process": a broker id, a consumer for the queue and one for its delay queue,
/// `threads` handlers. A crash ends the process; a revive starts a new one in its place.
pub(super) struct Consumer {
    st: Arc<State>,
    ctx: Ctx,
    idx: u32,
    /// This process's broker id (its ack sets and heartbeat): a new one after each crash.
    broker: String,
    /// The worker process this consumer is: a new one after each crash.
    worker: Worker,
    /// One permit per handler thread.
    threads: Arc<Semaphore>,
    /// The handlers' connections; a revived process gets new ones.
    pool: Arc<Mutex<Vec<Client>>>,
    /// Messages handed to handlers and not finished yet.
    outstanding: Arc<AtomicUsize>,
    /// Wakes the loop when a handler finishes.
    freed: Arc<Notify>,
    handlers: JoinSet<()>,
    rec: Recorder,
    rng: Rng,
    fetch_client: Client,
    dq_client: Client,
    dq_name: String,
    /// Delayed messages fetched from `.DQ`, soonest eta first.
    held: BinaryHeap<Delayed>,
    /// Prefetched messages waiting for a free handler.
    cache: VecDeque<(String, Message)>,
    /// Empty fetches in a row, of the queue and of the delay queue (the idle backoff grows).
    misses: u32,
    dq_misses: u32,
    next_dq_fetch: Instant,
    dq_prefetch: u64,
    /// A consumer that failed restarts then (Dramatiq's `dramatiq_restart_delay`).
    queue_restart: Option<Instant>,
    dq_restart: Option<Instant>,
    /// The delay queue's consumer thread died (its requeue failed during an error).
    dq_dead: bool,
    /// Consumer restarts after errors, for the run's notes.
    restarts: u32,
}

/// Dramatiq's `dramatiq_restart_delay` (3000 ms): a consumer that failed restarts this much later.
pub(super) const RESTART_DELAY: Duration = Duration::from_secs(3);

impl Consumer {
    fn new(st: Arc<State>, ctx: Ctx, idx: u32) -> Consumer {
        let d = &st.plan;
        let broker = st.broker_ids[idx as usize % st.broker_ids.len()].clone();
        let threads = Arc::new(Semaphore::new(d.threads as usize));
        let pool = new_pool(&st, &ctx, idx);
        let rec = ctx.metrics.recorder(1000 + idx as usize);
        let rng = Rng::derive(
            ctx.seed,
            &format!("{}-consumer", ctx.metrics.id),
            idx as u64,
        );
        let fetch_client = Client::new(ctx.client_route(Clients::Consumers, idx));
        let dq_client = Client::new(ctx.client_route(Clients::Consumers, idx));
        let dq_name = format!("{}.DQ", d.queue);
        let dq_prefetch = (d.threads as u64 * 1000).min(MAX_UNPACK);
        Consumer {
            broker,
            worker: Worker {
                consumer: idx,
                id: (idx as u64) << 32,
            },
            threads,
            pool,
            outstanding: Arc::new(AtomicUsize::new(0)),
            freed: Arc::new(Notify::new()),
            handlers: JoinSet::new(),
            rec,
            rng,
            fetch_client,
            dq_client,
            dq_name,
            held: BinaryHeap::new(),
            cache: VecDeque::new(),
            misses: 0,
            dq_misses: 0,
            next_dq_fetch: Instant::now(),
            dq_prefetch,
            queue_restart: None,
            dq_restart: None,
            dq_dead: false,
            restarts: 0,
            st,
            ctx,
            idx,
        }
    }

    /// The consumer's rounds until the workload stops, then a graceful stop.
    async fn run(mut self) {
        loop {
            if self.st.stop.is_cancelled() {
                break;
            }
            if self.st.crash.is_crashed(self.idx) {
                if !self.crash_and_revive().await {
                    return;
                }
                continue;
            }
            if self.st.crash.is_stalled(self.idx) {
                self.stalled().await;
                continue;
            }
            self.promote_due().await;
            self.fetch_delayed().await;
            if !self.fetch().await {
                self.idle().await;
                continue;
            }
            self.dispatch();
            self.wait_for_handler().await;
        }
        self.stop().await;
    }

    /// The worker process died (a `consumer-crash` fault): it stays down until revived, then a
    /// new process takes its place. False when the workload stopped while it was down.
    async fn crash_and_revive(&mut self) -> bool {
        self.crash().await;
        if !self.await_revive().await {
            return false;
        }
        self.revive();
        true
    }

    /// Died mid-message: its handlers stop before acking, what it prefetched or held stays in
    /// its ack sets, its heartbeat stops. Another worker's maintenance requeues it once the
    /// heartbeat is older than `heartbeat_timeout`.
    async fn crash(&mut self) {
        while self.handlers.join_next().await.is_some() {}
        let abandoned = self.cache.len() + self.held.len() + self.st.crash_dropped(self.idx);
        self.st
            .inflight
            .fetch_sub(self.cache.len(), Ordering::Relaxed);
        self.st
            .delayed_held
            .fetch_sub(self.held.len(), Ordering::Relaxed);
        self.cache.clear();
        self.held.clear();
        self.ctx.events.push(
            crate::events::EventKind::Note,
            format!(
                "{}: consumer {} (broker {}) crashed holding {abandoned} messages",
                self.ctx.metrics.id, self.idx, self.broker
            ),
        );
    }

    /// Wait while the switch says crashed; false when the workload stopped meanwhile.
    async fn await_revive(&self) -> bool {
        let st = &self.st;
        loop {
            if !st.crash.is_crashed(self.idx) || st.stop.is_cancelled() {
                break;
            }
            tokio::select! {
                _ = st.crash.changed.notified() => {}
                _ = st.stop.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        !st.stop.is_cancelled()
    }

    /// Stalled (a `consumer-stall` fault): alive, heart-beating once a second, but neither
    /// fetching nor handing out what it prefetched, until the switch lets it go or the workload
    /// stops. Its handlers already running finish their messages.
    async fn stalled(&mut self) {
        let st = self.st.clone();
        let beats = format!("{}:__heartbeats__", st.plan.namespace);
        self.ctx.events.push(
            crate::events::EventKind::Note,
            format!(
                "{}: consumer {} (broker {}) stalled holding {} prefetched messages",
                self.ctx.metrics.id,
                self.idx,
                self.broker,
                self.cache.len()
            ),
        );
        while st.crash.is_stalled(self.idx) && !st.stop.is_cancelled() {
            let beat = Cmd::new("ZADD")
                .arg(beats.as_str())
                .arg(now_ms())
                .arg(self.broker.as_str());
            let _ = self.fetch_client.request(&beat).await;
            tokio::select! {
                _ = st.crash.changed.notified() => {}
                _ = st.stop.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// A new worker process: new broker id, new connections.
    fn revive(&mut self) {
        self.broker = self.rng.uuid4();
        self.worker.id += 1;
        self.pool = new_pool(&self.st, &self.ctx, self.idx);
        self.fetch_client = Client::new(self.ctx.client_route(Clients::Consumers, self.idx));
        self.dq_client = Client::new(self.ctx.client_route(Clients::Consumers, self.idx));
        self.misses = 0;
        self.dq_misses = 0;
        self.queue_restart = None;
        self.dq_restart = None;
        self.dq_dead = false;
    }

    /// Whether the delay queue's consumer is running (not dead, not waiting to restart).
    fn dq_running(&self) -> bool {
        !self.dq_dead && self.dq_restart.is_none_or(|t| Instant::now() >= t)
    }

    /// The delay queue's consumer failed with `kind` (Dramatiq's `ConsumerThread.run`): a
    /// connection error drops the delayed messages it held — they stay in its ack set, held by a
    /// live heartbeat, as dramatiq#527 reports; any other error requeues them first, and if that
    /// requeue fails the thread dies for good. It restarts after [`RESTART_DELAY`].
    async fn dq_failed(&mut self, connection: bool) {
        self.restarts += 1;
        self.dq_restart = Some(Instant::now() + RESTART_DELAY);
        if self.held.is_empty() {
            return;
        }
        let n = self.held.len();
        let requeued = !connection && {
            let ids: Vec<String> = self.held.iter().map(|h| h.rid.clone()).collect();
            let refs: Vec<&[u8]> = ids.iter().map(|s| s.as_bytes()).collect();
            let (st, b) = (&self.st, &self.broker);
            st.call(
                &mut self.dq_client,
                "requeue",
                &self.dq_name,
                b,
                false,
                &refs,
            )
            .await
            .is_ok()
        };
        self.st.delayed_held.fetch_sub(n, Ordering::Relaxed);
        self.held.clear();
        if requeued {
            return;
        }
        self.st.stranding(&self.dq_name, &self.broker, n as u64);
        self.dq_dead = !connection;
        self.ctx.events.push(
            crate::events::EventKind::Note,
            format!(
                "{}: consumer {}'s delay-queue consumer {} {n} delayed messages it held: they \
                 stay in its ack set until the worker dies (Dramatiq 2.2.1)",
                self.ctx.metrics.id,
                self.idx,
                if connection {
                    "hit a connection error and forgot"
                } else {
                    "died (its requeue failed during an error) holding"
                }
            ),
        );
    }

    /// Promote due delayed messages: enqueue a copy on the queue, then ack the .DQ copy.
    async fn promote_due(&mut self) {
        if !self.dq_running() {
            return;
        }
        let now = now_ms();
        while self.held.peek().is_some_and(|h| h.eta <= now) {
            let h = self.held.pop().expect("peeked");
            if !self.promote(h).await {
                break;
            }
        }
    }

    /// Move one delayed message to the queue, then ack its `.DQ` copy as `post_process_message`
    /// does. False when the enqueue failed: Dramatiq's delay-queue consumer takes it as an
    /// unexpected error — the message it popped stays in its ack set (no one holds it), the
    /// rest it held are requeued, and it restarts.
    async fn promote(&mut self, h: Delayed) -> bool {
        let d = &self.st.plan;
        let mut m = h.msg;
        if m.option_u64("retries").unwrap_or(0) == 0 {
            self.st
                .etas
                .lock()
                .expect("etas lock")
                .insert(m.message_id.clone(), h.eta);
        }
        m.queue_name = d.queue.clone();
        m.remove_option("eta");
        let new_rid = self.rng.uuid4();
        m.set_option("redis_message_id", new_rid.clone().into());
        let body = m.encode();
        let r = timed(
            &mut self.dq_client,
            &self.st,
            &self.rec,
            OP_ENQ,
            "enqueue",
            &d.queue,
            &self.broker,
            self.rng.chance(d.maintenance_chance),
            &[new_rid.as_bytes(), body.as_bytes()],
        )
        .await;
        self.st.delayed_held.fetch_sub(1, Ordering::Relaxed);
        if r.is_err() {
            self.dq_failed(false).await;
            return false;
        }
        let (st, rec) = (self.st.clone(), self.rec.clone());
        let _ = post_process(
            &mut self.dq_client,
            &st,
            &self.broker,
            "ack",
            &self.dq_name,
            &h.rid,
            &rec,
            OP_ACK,
        )
        .await;
        true
    }

    /// Fetch from the delay queue when due and below its prefetch (these calls keep this
    /// broker's heartbeat going too, also while the queue's fetches wait for room).
    async fn fetch_delayed(&mut self) {
        if !self.dq_running()
            || Instant::now() < self.next_dq_fetch
            || self.held.len() as u64 >= self.dq_prefetch
        {
            return;
        }
        let d = &self.st.plan;
        let want = self.dq_prefetch - self.held.len() as u64;
        let r = timed(
            &mut self.dq_client,
            &self.st,
            &self.rec,
            OP_FETCH,
            "fetch",
            &self.dq_name,
            &self.broker,
            self.rng.chance(d.maintenance_chance),
            &[want.to_string().as_bytes()],
        )
        .await;
        let got = match r {
            Ok(v) => decode_batch(&self.ctx, Some(v)),
            Err(e) => {
                if e.is_ambiguous() {
                    self.st.stranding(&self.dq_name, &self.broker, want);
                }
                return self.dq_failed(e.kind.is_connection_error()).await;
            }
        };
        if got.is_empty() {
            self.dq_misses += 1;
            self.next_dq_fetch = Instant::now() + idle_backoff(&mut self.rng, self.dq_misses);
        } else {
            self.dq_misses = 0;
            for (rid, m) in got {
                let eta = m.option_u64("eta").unwrap_or(0);
                self.st.delayed_held.fetch_add(1, Ordering::Relaxed);
                self.held.push(Delayed { eta, rid, msg: m });
            }
        }
    }

    /// Fetch from the queue when the prefetch has room. False when the queue gave nothing.
    async fn fetch(&mut self) -> bool {
        let d = &self.st.plan;
        let out = self.outstanding.load(Ordering::Relaxed) + self.cache.len();
        if !self.cache.is_empty() || out >= d.prefetch as usize {
            return true;
        }
        if self.queue_restart.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        let want = (d.prefetch as usize - out) as u64;
        let r = timed(
            &mut self.fetch_client,
            &self.st,
            &self.rec,
            OP_FETCH,
            "fetch",
            &d.queue,
            &self.broker,
            self.rng.chance(d.maintenance_chance),
            &[want.to_string().as_bytes()],
        )
        .await;
        // A failed fetch ends this consumer; Dramatiq starts a new one 3 s later (its cache was
        // empty: a fetch is only sent then) with the same broker id: what a fetch that lost its
        // reply took stays in that broker's ack set.
        let got = match r {
            Ok(v) => decode_batch(&self.ctx, Some(v)),
            Err(e) => {
                if e.is_ambiguous() {
                    self.st.stranding(&d.queue, &self.broker, want);
                }
                self.restarts += 1;
                self.queue_restart = Some(Instant::now() + RESTART_DELAY);
                return false;
            }
        };
        if got.is_empty() {
            return false;
        }
        self.misses = 0;
        self.st.inflight.fetch_add(got.len(), Ordering::Relaxed);
        self.cache.extend(got);
        true
    }

    /// After an empty fetch: back off, but not past the next delayed message's eta nor the next
    /// delay-queue fetch.
    async fn idle(&mut self) {
        self.misses += 1;
        let wait = idle_backoff(&mut self.rng, self.misses);
        let until = self
            .held
            .peek()
            .map(|h| h.eta.saturating_sub(now_ms()))
            .map(Duration::from_millis)
            .unwrap_or(wait)
            .min(wait)
            .min(
                self.next_dq_fetch
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            );
        tokio::select! {
            _ = tokio::time::sleep(until) => {}
            _ = self.st.stop.cancelled() => {}
        }
    }

    /// Hand prefetched messages to free handler threads.
    fn dispatch(&mut self) {
        while let Some((rid, m)) = self.cache.front().cloned() {
            let Ok(permit) = self.threads.clone().try_acquire_owned() else {
                break;
            };
            self.cache.pop_front();
            self.outstanding.fetch_add(1, Ordering::Relaxed);
            let handler = Handler {
                st: self.st.clone(),
                ctx: self.ctx.clone(),
                pool: self.pool.clone(),
                rec: self.rec.clone(),
                broker: self.broker.clone(),
                worker: self.worker,
            };
            let (outstanding, freed) = (self.outstanding.clone(), self.freed.clone());
            let seed = self.rng.next_u64();
            self.handlers.spawn(async move {
                let _permit = permit;
                let done = handler.handle(rid, m, seed).await;
                outstanding.fetch_sub(1, Ordering::Relaxed);
                let st = &handler.st;
                if done {
                    st.inflight.fetch_sub(1, Ordering::Relaxed);
                } else {
                    st.crashed_holding[handler.worker.consumer as usize]
                        .fetch_add(1, Ordering::Relaxed);
                }
                freed.notify_one();
            });
        }
        while self.handlers.try_join_next().is_some() {}
    }

    /// With every handler busy or the prefetch full: wait for a handler to finish, at most
    /// until the next delayed message is due (and 100 ms).
    async fn wait_for_handler(&mut self) {
        let prefetch = self.st.plan.prefetch as usize;
        if self.cache.is_empty() && self.outstanding.load(Ordering::Relaxed) < prefetch {
            return;
        }
        let next = self
            .held
            .peek()
            .map(|h| Duration::from_millis(h.eta.saturating_sub(now_ms())))
            .unwrap_or(Duration::from_millis(100))
            .min(Duration::from_millis(100));
        tokio::select! {
            _ = self.freed.notified() => {}
            _ = tokio::time::sleep(next) => {}
            _ = self.st.stop.cancelled() => {}
        }
    }

    /// Graceful stop like Worker.stop(): let handlers finish, requeue what was prefetched or held.
    async fn stop(mut self) {
        if self.restarts > 0 {
            self.ctx.events.push(
                crate::events::EventKind::Note,
                format!(
                    "{}: consumer {} restarted a consumer {} times after errors (3 s each, as \
                     Dramatiq does)",
                    self.ctx.metrics.id, self.idx, self.restarts
                ),
            );
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while self.handlers.join_next().await.is_some() {}
        })
        .await;
        let (st, d) = (&self.st, &self.st.plan);
        if !self.cache.is_empty() {
            let ids: Vec<String> = self.cache.iter().map(|(r, _)| r.clone()).collect();
            let refs: Vec<&[u8]> = ids.iter().map(|s| s.as_bytes()).collect();
            let _ = st
                .call(
                    &mut self.fetch_client,
                    "requeue",
                    &d.queue,
                    &self.broker,
                    false,
                    &refs,
                )
                .await;
            st.inflight.fetch_sub(self.cache.len(), Ordering::Relaxed);
        }
        if !self.held.is_empty() {
            let ids: Vec<String> = self.held.iter().map(|h| h.rid.clone()).collect();
            let refs: Vec<&[u8]> = ids.iter().map(|s| s.as_bytes()).collect();
            let _ = st
                .call(
                    &mut self.dq_client,
                    "requeue",
                    &self.dq_name,
                    &self.broker,
                    false,
                    &refs,
                )
                .await;
            st.delayed_held
                .fetch_sub(self.held.len(), Ordering::Relaxed);
        }
    }
}

/// The handlers' connections of one worker process, one per thread.
fn new_pool(st: &State, ctx: &Ctx, idx: u32) -> Arc<Mutex<Vec<Client>>> {
    Arc::new(Mutex::new(
        (0..st.plan.threads)
            .map(|_| Client::new(ctx.client_route(Clients::Consumers, idx)))
            .collect::<Vec<_>>(),
    ))
}

/// Idle poll backoff of a Dramatiq consumer (2.x): 5ms·2^n·U(1,2), capped at U(0.5,1)·1s.
fn idle_backoff(rng: &mut Rng, misses: u32) -> Duration {
    let b = 0.005 * 2f64.powi(misses.min(20) as i32) * (1.0 + rng.unit());
    Duration::from_secs_f64(if b > 1.0 { 0.5 + rng.unit() * 0.5 } else { b })
}

/// A fetch's reply as (redis message id, message) pairs; payloads gone or unreadable are
/// counted and skipped.
fn decode_batch(ctx: &Ctx, v: Option<Value>) -> Vec<(String, Message)> {
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
    out
}
