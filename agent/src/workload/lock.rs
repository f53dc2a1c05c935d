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
use crate::plan::{LockCounter as C, LockPlan, LockStyle as Style, WorkloadPlan, WorkloadType};
use crate::rng::Rng;
use crate::valkey::{Client, Cmd, Script, Value};
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
    let keys: Vec<String> = (0..l.names)
        .map(|n| match &l.key_pattern {
            Some(p) => p.replace("{n}", &n.to_string()),
            None => format!("{}{}:lock:{n}", ctx.key_prefix, ctx.metrics.id),
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

async fn client(st: Arc<State>, ctx: Ctx, idx: u32, mut pacer: Pacer) {
    let l = &st.plan;
    let mut rng = Rng::derive(ctx.seed, &ctx.metrics.id, idx as u64);
    let rec = ctx.metrics.recorder(idx as usize);
    let (op_acq, op_rel, op_ext) = (0, 1, 2);
    let mut c = Client::new(ctx.route.clone());
    let release = Script::new(RELEASE);
    let extend = Script::new(EXTEND);
    let ttl_ms = l.ttl.as_millis().max(1) as u64;
    while let Some(intended) = pacer.next(&ctx.cancel).await {
        let name = rng.below(l.names as u64) as usize;
        let key = st.keys[name].clone();
        let tok = match l.style {
            Style::RedisPy | Style::SetnxExpire => token(&mut rng),
            Style::SetNxEx => "1".to_string(),
        };
        // Acquire: retry every retry_interval until blocking_timeout (redis-py's loop).
        let t0 = if pacer.is_open() {
            intended
        } else {
            Instant::now()
        };
        let deadline = Instant::now() + l.blocking_timeout;
        let mut granted = false;
        loop {
            let sent = Instant::now();
            let r = match l.style {
                Style::RedisPy => {
                    c.request(
                        &Cmd::new("SET")
                            .arg(key.as_str())
                            .arg(tok.as_str())
                            .arg("PX")
                            .arg(ttl_ms)
                            .arg("NX"),
                    )
                    .await
                }
                Style::SetNxEx => {
                    let cmd = if ttl_ms.is_multiple_of(1000) {
                        Cmd::new("SET")
                            .arg(key.as_str())
                            .arg("1")
                            .arg("EX")
                            .arg(ttl_ms / 1000)
                            .arg("NX")
                    } else {
                        Cmd::new("SET")
                            .arg(key.as_str())
                            .arg("1")
                            .arg("PX")
                            .arg(ttl_ms)
                            .arg("NX")
                    };
                    c.request(&cmd).await
                }
                Style::SetnxExpire => match c
                    .request(&Cmd::new("SETNX").arg(key.as_str()).arg(tok.as_str()))
                    .await
                {
                    Ok(Value::Int(1)) => c
                        .request(&Cmd::new("PEXPIRE").arg(key.as_str()).arg(ttl_ms))
                        .await
                        .map(|_| Value::Simple("OK".into())),
                    other => other.map(|_| Value::Nil),
                },
            };
            match r {
                Ok(v) if v.is_ok() => {
                    rec.record(op_acq, t0, sent, Instant::now(), Ok(()));
                    granted = true;
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    rec.record(op_acq, t0, sent, Instant::now(), Err(e.kind));
                    break;
                }
            }
            if Instant::now() + l.retry_interval > deadline {
                ctx.metrics.counters.add(TIMEOUTS, 1);
                break;
            }
            if !ctx.sleep(l.retry_interval).await {
                break;
            }
        }
        if !granted {
            continue;
        }
        // The believed hold starts at the grant's reply.
        let held_from = monotonic_ns();
        ctx.metrics.counters.add(ACQUIRED, 1);
        *st.per_client
            .lock()
            .expect("fairness lock")
            .entry(idx)
            .or_insert(0) += 1;
        let mut fence = None;
        if l.fencing {
            let fkey = format!("{key}:fence");
            if let Ok(v) = c.request(&Cmd::new("INCR").arg(fkey.as_str())).await {
                fence = v.as_int();
            }
        }
        st.history
            .push_at(Type::Ok, "acquire", idx, held_from, |e| {
                e.key = Some(key.clone());
                e.value = Some(tok.clone().into());
                e.fence = fence;
            });
        // Hold, extending on schedule (a cancelled run still releases).
        let hold = l.hold.sample(&mut rng);
        let hold_end = Instant::now() + hold;
        if let Some(every) = l.extend_every {
            while Instant::now() + every < hold_end {
                tokio::time::sleep(every).await;
                let sent = Instant::now();
                let r = match l.style {
                    Style::RedisPy => {
                        c.eval_script(
                            &extend,
                            &[key.as_bytes()],
                            &[tok.as_bytes(), ttl_ms.to_string().as_bytes(), b"1"],
                        )
                        .await
                    }
                    // ECHO's "renew": re-create only if gone; it never pushes the TTL.
                    Style::SetNxEx | Style::SetnxExpire => {
                        match c.request(&Cmd::new("EXISTS").arg(key.as_str())).await {
                            Ok(Value::Int(0)) => {
                                // Gone while believed held: the renew re-creates it.
                                st.history.push(Type::Ok, "extend", idx, |e| {
                                    e.key = Some(key.clone());
                                    e.value = Some(0.into());
                                });
                                c.request(
                                    &Cmd::new("SET")
                                        .arg(key.as_str())
                                        .arg(tok.as_str())
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
                        if l.style == Style::RedisPy && v.as_int() == Some(0) {
                            st.history.push(Type::Ok, "extend", idx, |e| {
                                e.key = Some(key.clone());
                                e.value = Some(0.into());
                            });
                        }
                        rec.record(op_ext, sent, sent, Instant::now(), Ok(()));
                    }
                    Err(e) => rec.record(op_ext, sent, sent, Instant::now(), Err(e.kind)),
                }
            }
        }
        // A zero hold must not wait for the next timer tick (tokio timers have 1 ms resolution).
        if hold_end > Instant::now() {
            tokio::time::sleep_until(hold_end.into()).await;
        }
        // Release: the believed hold ends now, before the command goes out.
        let held_to = monotonic_ns();
        st.history.push(Type::Invoke, "release", idx, |e| {
            e.key = Some(key.clone());
        });
        if let Some(tr) = &st.trace {
            let _ = writeln!(
                tr.lock().expect("trace lock"),
                "agent-{idx} {key} {held_from} {held_to}"
            );
        }
        let sent = Instant::now();
        let r = match l.style {
            Style::RedisPy => {
                c.eval_script(&release, &[key.as_bytes()], &[tok.as_bytes()])
                    .await
            }
            Style::SetNxEx | Style::SetnxExpire => {
                c.request(&Cmd::new("DEL").arg(key.as_str())).await
            }
        };
        match r {
            Ok(v) => {
                st.history.push(Type::Ok, "release", idx, |e| {
                    e.key = Some(key.clone());
                    e.value = v.as_int().map(Into::into);
                });
                rec.record(op_rel, sent, sent, Instant::now(), Ok(()));
            }
            Err(e) => {
                st.history.push(Type::Info, "release", idx, |h| {
                    h.key = Some(key.clone());
                });
                rec.record(op_rel, sent, sent, Instant::now(), Err(e.kind));
            }
        }
        if !l.think.is_zero() && !ctx.sleep(l.think).await {
            break;
        }
    }
}

impl State {
    pub async fn finish(&self, ctx: &Ctx) {
        if let Some(t) = &self.trace {
            let _ = t.lock().expect("trace lock").flush();
        }
        // The oracle: this agent's history, checked (merge checks every agent's together).
        ctx.judge_history(WorkloadType::Lock, &self.history);
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
