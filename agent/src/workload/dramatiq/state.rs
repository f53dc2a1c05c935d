//! What every producer, consumer and handler of one Dramatiq workload shares: the [`State`]
//! (ledger, switches, counts), the operation and counter indices, a recorded dispatch call
//! ([`timed`]), Dramatiq's ack/nack retry ([`post_process`]) and its retry backoff.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::broker::{dispatch, Broker};
use super::ledger::Ledger;
use crate::control::ConsumerSwitch;
use crate::plan::protocol::ErrorCode;
use crate::plan::{DramatiqCounter as C, DramatiqPlan};
use crate::rng::Rng;
use crate::valkey::{Client, Error, ErrorKind, Script, Value};

pub(super) const OP_ENQ: usize = 0;
pub(super) const OP_FETCH: usize = 1;
pub(super) const OP_ACK: usize = 2;
pub(super) const OP_NACK: usize = 3;
pub(super) const OP_E2E: usize = 4;
pub(crate) const C_ENQUEUED: usize = C::Enqueued.i();
pub(crate) const C_DELIVERED: usize = C::Delivered.i();
pub(crate) const C_ACKED: usize = C::Acked.i();
pub(crate) const C_LOST: usize = C::Lost.i();
pub(crate) const C_DUPLICATED: usize = C::Duplicated.i();
pub(crate) const C_STUCK: usize = C::Stuck.i();
pub(crate) const C_DEAD: usize = C::DeadLettered.i();
pub(crate) const C_RETRIED: usize = C::Retried.i();
pub(super) const C_MISSING: usize = C::MissingPayloads.i();
pub(super) const C_UNDECODABLE: usize = C::Undecodable.i();
pub(super) const C_DEPTH: usize = C::QueueDepthMax.i();
pub(super) const C_UNFINISHED: usize = C::Unfinished.i();
pub(super) const C_TAKEN: usize = C::TakenByOthers.i();
pub(super) const C_LEFT: usize = C::LeftQueued.i();

pub use crate::clock::wall_ms as now_ms;

/// Shared by every producer and consumer of one workload.
pub struct State {
    pub(super) plan: DramatiqPlan,
    pub(super) script: Script,
    pub ledger: Ledger,
    pub(super) consumers: Mutex<JoinSet<()>>,
    pub(super) stop: CancellationToken,
    /// Messages fetched or being handled by our consumers and not yet acked/requeued.
    pub(super) inflight: AtomicUsize,
    pub(super) delayed_held: AtomicUsize,
    pub(super) broker_ids: Vec<String>,
    /// The consumers' crash switches (`consumer-crash` faults).
    pub(super) crash: Arc<ConsumerSwitch>,
    /// Per consumer: handlers that died with their worker since the last crash was accounted.
    pub(super) crashed_holding: Vec<AtomicUsize>,
    pub(super) depth_max: AtomicU64,
    /// Eta of messages we promoted from the delay queue: their e2e counts from the eta.
    pub(super) etas: Mutex<std::collections::HashMap<String, u64>>,
    pub(super) trace: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
    /// Fetches whose outcome is unknown (the reply lost with the connection; a delay-queue
    /// consumer that forgot what it held): what they took waits in a live broker's ack set.
    pub(super) strandings: Mutex<Vec<Stranding>>,
}

/// Messages one broker may hold in its ack set of `queue` without any of its handlers having
/// them: up to `up_to`, since `at`. Dramatiq requeues a broker's ack set only once its heartbeat
/// expires, so they wait for that worker to stop.
#[derive(Debug, Clone)]
pub(super) struct Stranding {
    pub queue: String,
    pub broker: String,
    pub up_to: u64,
    pub at: Instant,
}

impl State {
    /// Resolves when consumer `i` crashes.
    pub(super) async fn crashed(&self, i: u32) {
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
    pub(super) fn crash_dropped(&self, i: u32) -> usize {
        let n = self.crashed_holding[i as usize].swap(0, Ordering::Relaxed);
        self.inflight.fetch_sub(n, Ordering::Relaxed);
        n
    }

    /// A fetch of `queue` by `broker` for `up_to` messages may have moved them into its ack set
    /// without their reaching this worker.
    pub(super) fn stranding(&self, queue: &str, broker: &str, up_to: u64) {
        self.strandings
            .lock()
            .expect("strandings lock")
            .push(Stranding {
                queue: queue.to_string(),
                broker: broker.to_string(),
                up_to,
                at: Instant::now(),
            });
    }

    /// Whether a planted-bug client takes this error reply for success (`swallow_errors`).
    pub(super) fn swallowed(&self, kind: ErrorKind) -> bool {
        let code = match kind {
            ErrorKind::Loading => ErrorCode::Loading,
            ErrorKind::ReadOnly => ErrorCode::ReadOnly,
            ErrorKind::Busy => ErrorCode::Busy,
            ErrorKind::Oom => ErrorCode::Oom,
            ErrorKind::NoScript => ErrorCode::NoScript,
            ErrorKind::MasterDown => ErrorCode::MasterDown,
            ErrorKind::Auth => ErrorCode::NoAuth,
            ErrorKind::Timeout | ErrorKind::Connection | ErrorKind::Other => return false,
        };
        self.plan.swallow_errors.contains(&code)
    }

    /// One dispatch call of this workload's broker (an error a planted-bug client swallows
    /// comes back as a nil reply).
    pub(super) async fn call(
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
        .or_else(|e| {
            if self.swallowed(e.kind) {
                Ok(Value::Nil)
            } else {
                Err(e)
            }
        })
    }
}

/// Dramatiq 2.x `compute_backoff`: `min·2^n·U(1,2)`, past the cap `U(0.5,1)·cap`; 1.x: `[0.5,1]·min(min·2^n, cap)`.
pub(super) fn backoff(
    rng: &mut Rng,
    version: u8,
    attempts: u32,
    min: Duration,
    cap: Duration,
) -> Duration {
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
pub(super) async fn timed(
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

/// Dramatiq's `POST_PROCESS_MESSAGE_RETRY_DELAY_SECS`: how long a failed ack waits to retry.
pub(super) const ACK_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Ack or nack as Dramatiq 2.2.1's `post_process_message` does: what redis-py raises a
/// `ConnectionError` for (a broken connection, `LOADING`, `NOAUTH`) is retried every 5 s
/// (bounded here to 6 tries); any other error (a timeout, `READONLY`, `OOM`, …) is logged as
/// unhandled and the ack dropped (the message stays in the worker's ack set).
#[allow(clippy::too_many_arguments)]
pub(super) async fn post_process(
    c: &mut Client,
    st: &State,
    broker: &str,
    cmd: &str,
    queue: &str,
    rid: &str,
    rec: &crate::metrics::Recorder,
    op: usize,
) -> Result<Value, Error> {
    let mut tries = 0;
    loop {
        let r = timed(c, st, rec, op, cmd, queue, broker, false, &[rid.as_bytes()]).await;
        match &r {
            Err(e) if e.kind.is_connection_error() && tries < 5 => {
                tries += 1;
                tokio::time::sleep(ACK_RETRY_DELAY).await;
            }
            _ => return r,
        }
    }
}
