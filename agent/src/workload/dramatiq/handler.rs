//! One handler thread of a worker process: it takes a message, "works" on it for the plan's
//! work time, then acks it, retries it like the Retries middleware (a delayed copy on `.DQ`,
//! then ack) or dead-letters it (nack) — unless the worker crashes first.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ledger;
use super::message::Message;
use super::state::{
    backoff, now_ms, post_process, timed, State, C_ACKED, C_DEAD, C_DELIVERED, C_RETRIED, OP_ACK,
    OP_E2E, OP_ENQ, OP_NACK,
};
use crate::metrics::Recorder;
use crate::plan::rollout::Clients;
use crate::rng::Rng;
use crate::valkey::{Client, Error, Value};
use crate::workload::Ctx;

/// Which worker process handles a message: consumer `consumer`, generation in `id`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Worker {
    pub(super) consumer: u32,
    pub(super) id: u64,
}

/// What a handler of one worker process works with.
pub(super) struct Handler {
    pub(super) st: Arc<State>,
    pub(super) ctx: Ctx,
    /// The worker process's connections, shared by its handlers.
    pub(super) pool: Arc<Mutex<Vec<Client>>>,
    pub(super) rec: Recorder,
    pub(super) broker: String,
    pub(super) worker: Worker,
}

/// The message a handler holds: its redis message id, message id and attempt.
struct Job {
    rid: String,
    mid: String,
    retries: u32,
}

impl Handler {
    /// One handler run: returns false when the worker crashed before it finished (no ack sent).
    pub(super) async fn handle(&self, rid: String, m: Message, seed: u64) -> bool {
        let d = &self.st.plan;
        let job = Job {
            rid,
            mid: m.message_id.clone(),
            retries: m.option_u64("retries").unwrap_or(0) as u32,
        };
        self.delivered(&job, &m);
        let mut rng = Rng::new(seed);
        let work = d.work.sample(&mut rng);
        if d.ack_before_work {
            return self.ack_then_work(&job, work).await;
        }
        if !self.work(work).await {
            return false;
        }
        let fails = d.fail_fraction > 0.0 && {
            let mut h = Rng::derive(self.ctx.seed, &job.mid, job.retries as u64);
            h.chance(d.fail_fraction)
        };
        let mut c = self.client();
        if !fails {
            let r = self.post_process(&mut c, "ack", &job, OP_ACK).await;
            self.settled(&job, &r, Some(ledger::Final::Acked));
        } else if job.retries >= d.max_retries {
            // The Retries middleware: give up when the attempts so far reach max_retries.
            let r = self.post_process(&mut c, "nack", &job, OP_NACK).await;
            self.settled(&job, &r, Some(ledger::Final::DeadLettered));
        } else {
            self.retry(&mut c, &mut rng, &job, m).await;
        }
        self.pool.lock().expect("pool lock").push(c);
        true
    }

    /// The handler started: e2e latency, the ledger's delivery, the trace line.
    fn delivered(&self, job: &Job, m: &Message) {
        let st = &self.st;
        // e2e: enqueue (or, for a delayed message, its eta) → handler start, first attempts only.
        if job.retries == 0 && !m.was_delayed {
            let eta = st.etas.lock().expect("etas lock").remove(&job.mid);
            let from = eta.unwrap_or(m.message_timestamp).max(m.message_timestamp);
            let age = Duration::from_millis(now_ms().saturating_sub(from));
            let lat = age.as_micros() as u64;
            let began = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
            self.rec.record_us(OP_E2E, began, lat, lat, Ok(()));
        }
        st.ledger
            .delivered(&job.mid, job.retries, self.worker.id, Instant::now());
        self.ctx.metrics.counters.add(C_DELIVERED, 1);
        if let Some(t) = &st.trace {
            use std::io::Write;
            let _ = writeln!(t.lock().expect("trace lock"), "{} {}", job.mid, job.retries);
        }
    }

    /// The simulated processing; false when the worker crashed during it (or right after).
    async fn work(&self, work: Duration) -> bool {
        let st = &self.st;
        tokio::select! {
            _ = tokio::time::sleep(work) => {}
            _ = st.crashed(self.worker.consumer) => return false,
        }
        !st.crash.is_crashed(self.worker.consumer)
    }

    /// A worker that acks first and works afterwards (a planted bug, for showing the oracle):
    /// if it dies mid-work the message is gone, acked, and never processed.
    async fn ack_then_work(&self, job: &Job, work: Duration) -> bool {
        let st = &self.st;
        let mut c = self.client();
        let r = self.post_process(&mut c, "ack", job, OP_ACK).await;
        self.pool.lock().expect("pool lock").push(c);
        self.settled(job, &r, Some(ledger::Final::Acked));
        tokio::select! {
            _ = tokio::time::sleep(work) => {}
            _ = st.crashed(self.worker.consumer) => {
                st.ledger.work_lost(&job.mid, job.retries, self.worker.id);
                return false;
            }
        }
        true
    }

    /// The Retries middleware: enqueue a copy with a delay on .DQ, then ack the original.
    async fn retry(&self, c: &mut Client, rng: &mut Rng, job: &Job, mut m: Message) {
        let d = &self.st.plan;
        let now = now_ms();
        m.set_option("retries", (job.retries + 1).into());
        m.set_option(
            "traceback",
            "Traceback (most recent call last):\n  valkey-chaos simulated failure\n".into(),
        );
        m.set_option("requeue_timestamp", now.into());
        let delay = backoff(rng, d.version, job.retries, d.min_backoff, d.max_backoff);
        let new_rid = rng.uuid4();
        m.set_option("redis_message_id", new_rid.clone().into());
        m.set_option("eta", (now + delay.as_millis() as u64).into());
        m.queue_name = format!("{}.DQ", d.queue);
        let body = m.encode();
        let r = timed(
            c,
            &self.st,
            &self.rec,
            OP_ENQ,
            "enqueue",
            &m.queue_name,
            &self.broker,
            false,
            &[new_rid.as_bytes(), body.as_bytes()],
        )
        .await;
        if r.is_ok() {
            self.ctx.metrics.counters.add(C_RETRIED, 1);
        }
        let r = self.post_process(c, "ack", job, OP_ACK).await;
        self.settled(job, &r, None);
    }

    /// A connection of the worker's pool (a new one if the pool is empty).
    fn client(&self) -> Client {
        self.pool
            .lock()
            .expect("pool lock")
            .pop()
            .unwrap_or_else(|| {
                Client::new(
                    self.ctx
                        .client_route(Clients::Consumers, self.worker.consumer),
                )
            })
    }

    /// Ack or nack `job` on this worker's broker id.
    async fn post_process(
        &self,
        c: &mut Client,
        cmd: &str,
        job: &Job,
        op: usize,
    ) -> Result<Value, Error> {
        let queue = &self.st.plan.queue;
        post_process(
            c,
            &self.st,
            &self.broker,
            cmd,
            queue,
            &job.rid,
            &self.rec,
            op,
        )
        .await
    }

    /// Tell the ledger how an ack or nack went: a failure stays in the ack set; a success ends
    /// the message's attempt (`how`: acked, dead-lettered, or retried as a new copy).
    fn settled(&self, job: &Job, r: &Result<Value, Error>, how: Option<ledger::Final>) {
        let (st, w) = (&self.st, self.worker.id);
        match r {
            Err(e) => {
                st.ledger
                    .ack_failed(&job.mid, job.retries, w, e.is_ambiguous(), Instant::now())
            }
            Ok(_) => {
                if st
                    .ledger
                    .finished(&job.mid, job.retries, w, how, Instant::now())
                {
                    match how {
                        Some(ledger::Final::Acked) => self.ctx.metrics.counters.add(C_ACKED, 1),
                        Some(ledger::Final::DeadLettered) => {
                            self.ctx.metrics.counters.add(C_DEAD, 1)
                        }
                        None => {}
                    }
                }
            }
        }
    }
}
