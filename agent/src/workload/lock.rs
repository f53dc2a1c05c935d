//! `type = "lock"`: clients compete for a few lock names with redis-py `Lock` semantics (or ECHO's
//! hand-rolled styles), and an oracle watches for two holders at once.
//!
//! The oracle is the agent's own monotonic clock, independent of Valkey: a grant counts from the
//! moment its reply arrives, a hold ends the moment its release is about to be sent. Two believed
//! holds of one name that overlap are a violation.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinSet;

use super::ctx::Ctx;
use crate::clock::monotonic_ns;
use crate::history::{History, Type};
use crate::metrics::Recorder;
use crate::plan::rollout::Clients;
use crate::plan::{LockCounter as C, LockPlan, LockStyle as Style, WorkloadPlan, WorkloadType};
use crate::rng::Rng;
use crate::valkey::{Client, Cmd, Error, Script, Value};
use crate::workload::pacing::Pacer;

const ACQUIRED: usize = C::Acquired.i();
const TIMEOUTS: usize = C::Timeouts.i();
const IMMORTAL: usize = C::ImmortalKeys.i();

// redis-py 5.0.6 `redis/lock.py` scripts (MIT License, Copyright (c) 2022-2023, Redis, inc.),
// byte for byte so the SHA1s match what Python clients send.
const RELEASE: &str = "\n        local token = redis.call('get', KEYS[1])\n        if not token or token ~= ARGV[1] then\n            return 0\n        end\n        redis.call('del', KEYS[1])\n        return 1\n    ";
const EXTEND: &str = "\n        local token = redis.call('get', KEYS[1])\n        if not token or token ~= ARGV[1] then\n            return 0\n        end\n        local expiration = redis.call('pttl', KEYS[1])\n        if not expiration then\n            expiration = 0\n        end\n        if expiration < 0 then\n            return 0\n        end\n\n        local newttl = ARGV[2]\n        if ARGV[3] == \"0\" then\n            newttl = ARGV[2] + expiration\n        end\n        redis.call('pexpire', KEYS[1], newttl)\n        return 1\n    ";

pub struct State {
    plan: LockPlan,
    /// Every grant, release and extend, for the checker (and `merge`'s, across agents).
    pub history: History,
    per_client: Mutex<HashMap<u32, u64>>,
    trace: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
    keys: Vec<String>,
}

pub fn spawn(plan: &WorkloadPlan, l: &LockPlan, ctx: Ctx, tasks: &mut JoinSet<()>) -> Arc<State> {
    // A run's own names carry its id, so a run beside it cannot hold them (its holds would look
    // orphaned here); the shards of one run share theirs, which the merge judges together.
    let run = match ctx.sharded {
        true => String::new(),
        false => format!("{}:", &ctx.agent[..ctx.agent.len().min(8)]),
    };
    let keys: Vec<String> = (0..l.names)
        .map(|n| match &l.key_pattern {
            Some(p) => p.replace("{n}", &n.to_string()),
            None => format!("{}{run}{}:lock:{n}", ctx.key_prefix, ctx.metrics.id),
        })
        .collect();
    let trace = l
        .trace
        .as_ref()
        .and_then(|p| std::fs::File::create(p).ok())
        .map(|f| Mutex::new(std::io::BufWriter::new(f)));
    let st = Arc::new(State {
        plan: l.clone(),
        history: History::new(&ctx.agent),
        per_client: Mutex::new(HashMap::new()),
        trace,
        keys,
    });
    for i in 0..plan.clients {
        let pacer = Pacer::new(
            &plan.load,
            i,
            plan.clients,
            1,
            ctx.start,
            ctx.end,
            Some(ctx.metrics.clone()),
        );
        tasks.spawn(client(st.clone(), ctx.clone(), i, pacer));
    }
    st
}

fn token(rng: &mut Rng) -> String {
    // uuid1().hex-shaped: 32 lowercase hex characters.
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

/// Acquire, release and extend: the operations' indices in the recorder.
const OP_ACQUIRE: usize = 0;
const OP_RELEASE: usize = 1;
const OP_EXTEND: usize = 2;

async fn client(st: Arc<State>, ctx: Ctx, idx: u32, mut pacer: Pacer) {
    let mut holder = Holder::new(st, ctx, idx);
    while let Some(intended) = pacer.next(&holder.ctx.cancel).await {
        let intended = pacer.is_open().then_some(intended);
        if !holder.cycle(intended).await {
            break;
        }
    }
}

/// One lock client: its connection, RNG and scripts; one acquire, hold, release per slot.
struct Holder {
    st: Arc<State>,
    ctx: Ctx,
    idx: u32,
    rng: Rng,
    rec: Recorder,
    c: Client,
    /// redis-py's release and extend scripts.
    release_lua: Script,
    extend_lua: Script,
    ttl_ms: u64,
}

impl Holder {
    fn new(st: Arc<State>, ctx: Ctx, idx: u32) -> Holder {
        let rng = Rng::derive(ctx.seed, &ctx.metrics.id, idx as u64);
        let rec = ctx.metrics.recorder(idx as usize);
        let c = Client::new(ctx.client_route(Clients::All, idx));
        let ttl_ms = st.plan.ttl.as_millis().max(1) as u64;
        Holder {
            st,
            ctx,
            idx,
            rng,
            rec,
            c,
            release_lua: Script::new(RELEASE),
            extend_lua: Script::new(EXTEND),
            ttl_ms,
        }
    }

    /// One slot: pick a name, acquire it, hold it, release it, think. `intended`: the open
    /// model's intended start (else the latency counts from now). False when cancelled while
    /// thinking.
    async fn cycle(&mut self, intended: Option<Instant>) -> bool {
        let name = self.rng.below(self.st.plan.names as u64) as usize;
        let key = self.st.keys[name].clone();
        let tok = match self.st.plan.style {
            Style::RedisPy | Style::SetnxExpire => token(&mut self.rng),
            Style::SetNxEx => "1".to_string(),
        };
        let t0 = intended.unwrap_or_else(Instant::now);
        let Some(sent) = self.acquire(&key, &tok, t0).await else {
            return true;
        };
        let held_from = self.granted(&key, &tok, sent).await;
        self.hold(&key, &tok).await;
        self.release(&key, &tok, held_from).await;
        let think = self.st.plan.think;
        think.is_zero() || self.ctx.sleep(think).await
    }

    /// Acquire: retry every retry_interval until blocking_timeout (redis-py's loop). Returns the
    /// grant's send time (CLOCK_MONOTONIC ns) when granted. The last attempt that found the lock
    /// taken goes into the history (with its send time), and so does an attempt whose reply was
    /// lost (it may have set the key): what the orphan rule needs to tell a held lock from a key
    /// nobody holds.
    async fn acquire(&mut self, key: &str, tok: &str, t0: Instant) -> Option<u64> {
        let l = &self.st.plan;
        let deadline = Instant::now() + l.blocking_timeout;
        let mut taken: Option<(u64, u64)> = None;
        let granted = loop {
            let sent = Instant::now();
            let sent_ns = monotonic_ns();
            match set_if_absent(&mut self.c, l.style, key, tok, self.ttl_ms).await {
                Ok(v) if v.is_ok() => {
                    self.rec
                        .record(OP_ACQUIRE, t0, sent, Instant::now(), Ok(()));
                    break Some(sent_ns);
                }
                Ok(_) => taken = Some((sent_ns, monotonic_ns())),
                Err(e) => {
                    self.rec
                        .record(OP_ACQUIRE, t0, sent, Instant::now(), Err(e.kind));
                    self.maybe_set(key, sent_ns, &e);
                    break None;
                }
            }
            if Instant::now() + l.retry_interval > deadline {
                self.ctx.metrics.counters.add(TIMEOUTS, 1);
                break None;
            }
            if !self.ctx.sleep(l.retry_interval).await {
                break None;
            }
        };
        if let Some((sent, at)) = taken {
            self.st
                .history
                .push_at(Type::Fail, "acquire", self.idx, at, |e| {
                    e.key = Some(key.to_string());
                    e.sent = Some(sent);
                });
        }
        granted
    }

    /// An acquire that failed may still have set the key: its reply was lost (timeout,
    /// connection), or `SETNX` ran and its `EXPIRE` did not. Nobody holds such a key.
    fn maybe_set(&self, key: &str, sent: u64, e: &crate::valkey::Error) {
        if e.is_ambiguous() || self.st.plan.style == Style::SetnxExpire {
            self.st.history.push(Type::Info, "acquire", self.idx, |h| {
                h.key = Some(key.to_string());
                h.sent = Some(sent);
            });
        }
    }

    /// The grant (sent at `sent`): the believed hold starts at its reply (returned,
    /// CLOCK_MONOTONIC ns); counted, fenced when the plan says so, and written to the history.
    async fn granted(&mut self, key: &str, tok: &str, sent: u64) -> u64 {
        let (st, idx) = (&self.st, self.idx);
        let held_from = monotonic_ns();
        self.ctx.metrics.counters.add(ACQUIRED, 1);
        *st.per_client
            .lock()
            .expect("fairness lock")
            .entry(idx)
            .or_insert(0) += 1;
        let mut fence = None;
        if st.plan.fencing {
            let fkey = format!("{key}:fence");
            if let Ok(v) = self.c.request(&Cmd::new("INCR").arg(fkey.as_str())).await {
                fence = v.as_int();
            }
        }
        st.history
            .push_at(Type::Ok, "acquire", idx, held_from, |e| {
                e.key = Some(key.to_string());
                e.value = Some(tok.to_string().into());
                e.fence = fence;
                e.sent = Some(sent);
            });
        held_from
    }

    /// Hold, extending on schedule (a cancelled run still releases).
    async fn hold(&mut self, key: &str, tok: &str) {
        let hold = self.st.plan.hold.sample(&mut self.rng);
        let hold_end = Instant::now() + hold;
        if let Some(every) = self.st.plan.extend_every {
            while Instant::now() + every < hold_end {
                tokio::time::sleep(every).await;
                self.extend(key, tok).await;
            }
        }
        // A zero hold must not wait for the next timer tick (tokio timers have 1 ms resolution).
        if hold_end > Instant::now() {
            tokio::time::sleep_until(hold_end.into()).await;
        }
    }

    /// One extend. A lock found gone while believed held goes into the history as an extend
    /// that returned 0.
    async fn extend(&mut self, key: &str, tok: &str) {
        let (st, idx, ttl_ms) = (&self.st, self.idx, self.ttl_ms);
        let sent = Instant::now();
        let r = match st.plan.style {
            Style::RedisPy => {
                self.c
                    .eval_script(
                        &self.extend_lua,
                        &[key.as_bytes()],
                        &[tok.as_bytes(), ttl_ms.to_string().as_bytes(), b"1"],
                    )
                    .await
            }
            // ECHO's "renew": re-create only if gone; it never pushes the TTL.
            Style::SetNxEx | Style::SetnxExpire => {
                match self.c.request(&Cmd::new("EXISTS").arg(key)).await {
                    Ok(Value::Int(0)) => {
                        // Gone while believed held: the renew re-creates it.
                        extend_failed(&st.history, idx, key);
                        self.c
                            .request(
                                &Cmd::new("SET")
                                    .arg(key)
                                    .arg(tok)
                                    .arg("PX")
                                    .arg(ttl_ms)
                                    .arg("NX"),
                            )
                            .await
                            .map(|_| Value::Int(1))
                    }
                    other => other,
                }
            }
        };
        match r {
            Ok(v) => {
                if st.plan.style == Style::RedisPy && v.as_int() == Some(0) {
                    extend_failed(&st.history, idx, key);
                }
                self.rec
                    .record(OP_EXTEND, sent, sent, Instant::now(), Ok(()));
            }
            Err(e) => self
                .rec
                .record(OP_EXTEND, sent, sent, Instant::now(), Err(e.kind)),
        }
    }

    /// Release: the believed hold ends now, before the command goes out.
    async fn release(&mut self, key: &str, tok: &str, held_from: u64) {
        let (st, idx) = (&self.st, self.idx);
        let held_to = monotonic_ns();
        st.history.push(Type::Invoke, "release", idx, |e| {
            e.key = Some(key.to_string());
        });
        if let Some(tr) = &st.trace {
            let _ = writeln!(
                tr.lock().expect("trace lock"),
                "agent-{idx} {key} {held_from} {held_to}"
            );
        }
        let sent = Instant::now();
        let r = match st.plan.style {
            Style::RedisPy => {
                self.c
                    .eval_script(&self.release_lua, &[key.as_bytes()], &[tok.as_bytes()])
                    .await
            }
            Style::SetNxEx | Style::SetnxExpire => self.c.request(&Cmd::new("DEL").arg(key)).await,
        };
        match r {
            Ok(v) => {
                st.history.push(Type::Ok, "release", idx, |e| {
                    e.key = Some(key.to_string());
                    e.value = v.as_int().map(Into::into);
                });
                self.rec
                    .record(OP_RELEASE, sent, sent, Instant::now(), Ok(()));
            }
            Err(e) => {
                st.history.push(Type::Info, "release", idx, |h| {
                    h.key = Some(key.to_string());
                });
                self.rec
                    .record(OP_RELEASE, sent, sent, Instant::now(), Err(e.kind));
            }
        }
    }
}

/// The acquire command of each style; a grant replies OK. SETNX + PEXPIRE (the hazard ECHO's
/// style has) are two commands: a grant is the SETNX's 1, its PEXPIRE's reply is not looked at.
async fn set_if_absent(
    c: &mut Client,
    style: Style,
    key: &str,
    tok: &str,
    ttl_ms: u64,
) -> Result<Value, Error> {
    match style {
        Style::RedisPy => {
            c.request(
                &Cmd::new("SET")
                    .arg(key)
                    .arg(tok)
                    .arg("PX")
                    .arg(ttl_ms)
                    .arg("NX"),
            )
            .await
        }
        Style::SetNxEx => {
            let cmd = if ttl_ms.is_multiple_of(1000) {
                Cmd::new("SET")
                    .arg(key)
                    .arg("1")
                    .arg("EX")
                    .arg(ttl_ms / 1000)
                    .arg("NX")
            } else {
                Cmd::new("SET")
                    .arg(key)
                    .arg("1")
                    .arg("PX")
                    .arg(ttl_ms)
                    .arg("NX")
            };
            c.request(&cmd).await
        }
        Style::SetnxExpire => match c.request(&Cmd::new("SETNX").arg(key).arg(tok)).await {
            Ok(Value::Int(1)) => c
                .request(&Cmd::new("PEXPIRE").arg(key).arg(ttl_ms))
                .await
                .map(|_| Value::Simple("OK".into())),
            other => other.map(|_| Value::Nil),
        },
    }
}

/// An extend that found the lock no longer ours, for the checker (a hold it may have lost).
fn extend_failed(history: &History, idx: u32, key: &str) {
    history.push(Type::Ok, "extend", idx, |e| {
        e.key = Some(key.to_string());
        e.value = Some(0.into());
    });
}

impl State {
    pub async fn finish(&self, ctx: &Ctx) {
        if let Some(t) = &self.trace {
            let _ = t.lock().expect("trace lock").flush();
        }
        // The oracle: this agent's history, checked (merge checks every agent's together).
        // Names of the scenario's own choosing (`key_pattern`) may have holders outside this
        // history (the application, real clients): what looks orphaned there may be theirs.
        let alone = self.plan.key_pattern.is_none();
        ctx.judge_history(WorkloadType::Lock, &self.history, alone);
        // Immortal keys: lock keys left with no TTL (the SETNX+EXPIRE hazard), then clean up.
        let mut c = Client::new(ctx.route.clone());
        let mut immortal = 0;
        for k in &self.keys {
            if let Ok(Value::Int(-1)) = c.request(&Cmd::new("PTTL").arg(k.as_str())).await {
                immortal += 1;
            }
        }
        ctx.metrics.counters.set(IMMORTAL, immortal);
        let pc = self.per_client.lock().expect("fairness lock");
        let min = pc.values().min().copied().unwrap_or(0);
        let max = pc.values().max().copied().unwrap_or(0);
        let c = &ctx.metrics.counters;
        c.set(C::FairnessMin.i(), min);
        c.set(C::FairnessMax.i(), max);
        c.set(C::ClientsServed.i(), pc.len() as u64);
    }
}
