//! `type = "rate_limit"`: steady demand plus bursts against a limiter, and an oracle that counts
//! admissions beyond the limit from the agent's own timestamps with the limiter's window semantics.
//!
//! Limiters: `fixed-window` (ECHO's INCR + EXPIRE), `sliding-log` (sorted set, atomic in Lua),
//! Dramatiq's `dramatiq-concurrent` / `dramatiq-window` / `dramatiq-bucket` (SET NX PX and
//! WATCH/MULTI/EXEC loops, command for command), and `check-then-incr` (GET, compare, INCR: the
//! classic race, there to show what an over-admitting limiter looks like).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinSet;

use super::ctx::Ctx;
use crate::clock::monotonic_ns;
use crate::history::{History, Type};
use crate::plan::rollout::Clients;
use crate::plan::{Limiter, RateLimitCounter as C, RateLimitPlan, WorkloadPlan, WorkloadType};
use crate::rng::Rng;
use crate::valkey::{Client, Cmd, Error, Script, Value};
use crate::workload::pacing::Pacer;

const ADMITTED: usize = C::Admitted.i();
const REJECTED: usize = C::Rejected.i();

pub struct State {
    plan: RateLimitPlan,
    keys: Vec<String>,
    /// Every admission and release, for the checker (and `merge`'s, across agents).
    pub history: History,
    trace: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
    started: Instant,
}

pub fn spawn(
    plan: &WorkloadPlan,
    r: &RateLimitPlan,
    ctx: Ctx,
    tasks: &mut JoinSet<()>,
) -> Arc<State> {
    let keys: Vec<String> = (0..r.keys)
        .map(|n| match &r.key_pattern {
            Some(p) => p.replace("{n}", &n.to_string()),
            None => format!("{}{}:rl:{n}", ctx.key_prefix, ctx.metrics.id),
        })
        .collect();
    let trace = r
        .trace
        .as_ref()
        .and_then(|p| std::fs::File::create(p).ok())
        .map(|f| Mutex::new(std::io::BufWriter::new(f)));
    let history = History::new(&ctx.agent);
    history.push(Type::Info, "config", 0, |e| {
        e.value = serde_json::to_value(crate::check::limiter::Config {
            limiter: r.limiter.name().to_string(),
            limit: r.limit,
            window_ms: r.window.as_millis() as u64,
        })
        .ok();
    });
    let st = Arc::new(State {
        plan: r.clone(),
        keys,
        history,
        trace,
        started: ctx.start,
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
        tasks.spawn(client(st.clone(), ctx.clone(), i, plan.clients, pacer));
    }
    st
}

fn now_ms() -> i64 {
    crate::clock::wall_ms() as i64
}

/// Sliding log, atomic, timestamped by the server (µs): processing order is timestamp order, so
/// "at most `limit` in any window" can be checked exactly afterwards. Returns {admitted, now}.
const SLIDING: &str = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000000 + tonumber(t[2]) \
local w = tonumber(ARGV[1]) \
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - w) \
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then \
redis.call('ZADD', KEYS[1], now, ARGV[3]) redis.call('PEXPIRE', KEYS[1], math.ceil(w / 1000) + 1000) return {1, now} end return {0, now}";

async fn client(st: Arc<State>, ctx: Ctx, idx: u32, clients: u32, mut pacer: Pacer) {
    let p = &st.plan;
    let mut rng = Rng::derive(ctx.seed, &ctx.metrics.id, idx as u64);
    let rec = ctx.metrics.recorder(idx as usize);
    let mut c = Client::new(ctx.client_route(Clients::All, idx));
    let sliding = Script::new(SLIDING);
    // Bursts: this client's share of each burst, fired back to back at the burst time.
    let share = |size: u64| size / clients as u64 + u64::from((idx as u64) < size % clients as u64);
    let mut burst_at = p.bursts.map(|(every, _)| ctx.start + every);
    let mut steady_done = false;
    loop {
        if ctx.cancel.is_cancelled() {
            break;
        }
        if burst_at.is_some_and(|b| b >= ctx.end) {
            burst_at = None;
        }
        if let Some(b) = burst_at.filter(|b| Instant::now() >= *b) {
            let (every, size) = p.bursts.expect("bursts configured");
            burst_at = Some(b + every);
            for _ in 0..share(size) {
                let key = rng.below(p.keys as u64) as usize;
                attempt(&st, &ctx, &mut c, &rec, &mut rng, &sliding, key, b, idx).await;
            }
            continue;
        }
        if steady_done {
            match burst_at {
                Some(b) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(b.into()) => {}
                        _ = ctx.cancel.cancelled() => break,
                    }
                    continue;
                }
                None => break,
            }
        }
        // Pacer::next is cancel-safe: a burst that interrupts its wait does not lose the slot.
        let next = match burst_at {
            Some(b) => tokio::select! {
                t = pacer.next(&ctx.cancel) => t,
                _ = tokio::time::sleep_until(b.into()) => continue,
            },
            None => pacer.next(&ctx.cancel).await,
        };
        match next {
            Some(t) => {
                let key = rng.below(p.keys as u64) as usize;
                let intended = if pacer.is_open() { t } else { Instant::now() };
                attempt(
                    &st, &ctx, &mut c, &rec, &mut rng, &sliding, key, intended, idx,
                )
                .await;
            }
            None => steady_done = true,
        }
    }
}

/// The TTL a fixed-window limiter gives a new window's key: `EXPIRE` whole seconds as ECHO's
/// limiter does, `PEXPIRE` when the window is not a whole number of seconds (so a 1.5 s window
/// really lives 1.5 s).
fn window_ttl(c: &crate::plan::RateLimitPlan, key: &str) -> (Cmd, u64) {
    let ms = c.window.as_millis().max(1) as u64;
    if ms.is_multiple_of(1000) {
        (Cmd::new("EXPIRE").arg(key).arg(ms / 1000), ms)
    } else {
        (Cmd::new("PEXPIRE").arg(key).arg(ms), ms)
    }
}

/// What an admission's `INCR` saw: its send and reply (CLOCK_MONOTONIC ns), the count it
/// returned, and for the window's creator when its `EXPIRE` was sent and the TTL it set.
#[derive(Default)]
struct Incr {
    sent: u64,
    recv: u64,
    count: i64,
    expire: Option<(u64, u64)>,
}

/// `INCR` (and, for the window's first admission, its TTL).
async fn incr(c: &mut Client, p: &crate::plan::RateLimitPlan, key: &str) -> Result<Incr, Error> {
    let mut i = Incr {
        sent: monotonic_ns(),
        ..Default::default()
    };
    i.count = c
        .request(&Cmd::new("INCR").arg(key))
        .await?
        .as_int()
        .unwrap_or(0);
    i.recv = monotonic_ns();
    if i.count == 1 {
        let (cmd, ttl) = window_ttl(p, key);
        let at = monotonic_ns();
        c.request(&cmd).await?;
        i.expire = Some((at, ttl));
    }
    Ok(i)
}

/// One admission attempt: ask the limiter, record the answer (history, sample, counters), and
/// for a concurrency limiter hold the slot, then give it back.
#[allow(clippy::too_many_arguments)]
async fn attempt(
    st: &State,
    ctx: &Ctx,
    c: &mut Client,
    rec: &crate::metrics::Recorder,
    rng: &mut Rng,
    sliding: &Script,
    ki: usize,
    intended: Instant,
    client: u32,
) {
    let p = &st.plan;
    let key = st.keys[ki].as_str();
    let sent = Instant::now();
    let (r, mut seen) = ask(p, c, rng, sliding, key).await;
    let recv = Instant::now();
    if seen.recv == 0 {
        seen.recv = monotonic_ns();
    }
    let admitted = matches!(r, Ok(true));
    if r.is_ok() {
        st.history.push_at(
            if admitted { Type::Ok } else { Type::Fail },
            "admit",
            client,
            seen.recv,
            |e| {
                e.key = Some(key.to_string());
                e.fence = Some(seen.count);
                e.sent = Some(seen.sent);
                e.aux = seen.expire.map(|x| x.0);
                e.ttl_ms = seen.expire.map(|x| x.1);
            },
        );
    }
    match r {
        Err(e) => rec.record(0, intended, sent, recv, Err(e.kind)),
        Ok(false) => {
            rec.record(0, intended, sent, recv, Ok(()));
            ctx.metrics.counters.add(REJECTED, 1);
        }
        Ok(true) => {
            rec.record(0, intended, sent, recv, Ok(()));
            ctx.metrics.counters.add(ADMITTED, 1);
            if p.limiter == Limiter::DramatiqConcurrent {
                release_concurrent(st, c, rec, rng, key, client).await;
            }
        }
    }
}

/// Ask the plan's limiter once for `key`: admitted or not, and what the history records of the
/// admission (the count or slot, and the INCR's timing).
async fn ask(
    p: &RateLimitPlan,
    c: &mut Client,
    rng: &mut Rng,
    sliding: &Script,
    key: &str,
) -> (Result<bool, Error>, Incr) {
    let limit = p.limit;
    let wms = p.window.as_millis().max(1) as i64;
    let mut seen = Incr {
        sent: monotonic_ns(),
        ..Default::default()
    };
    let r: Result<bool, Error> = match p.limiter {
        Limiter::FixedWindow => match incr(c, p, key).await {
            Ok(i) => {
                let ok = i.count as u64 <= limit;
                seen = i;
                Ok(ok)
            }
            Err(e) => Err(e),
        },
        Limiter::CheckThenIncr => {
            async {
                let cur = c
                    .request(&Cmd::new("GET").arg(key))
                    .await?
                    .as_int()
                    .unwrap_or(0);
                if cur as u64 >= limit {
                    return Ok(false);
                }
                // The admission is the INCR: time it from there.
                seen = incr(c, p, key).await?;
                Ok(true)
            }
            .await
        }
        Limiter::SlidingLog => {
            let wus = (p.window.as_micros() as i64).to_string();
            let member = format!("{:016x}", rng.next_u64());
            c.eval_script(
                sliding,
                &[key.as_bytes()],
                &[
                    wus.as_bytes(),
                    limit.to_string().as_bytes(),
                    member.as_bytes(),
                ],
            )
            .await
            .map(|v| {
                let parts = v.into_array().unwrap_or_default();
                seen.count = parts.get(1).and_then(|x| x.as_int()).unwrap_or(0);
                parts.first().and_then(|x| x.as_int()) == Some(1)
            })
        }
        Limiter::DramatiqConcurrent => dramatiq_add_or_incr(c, key, limit, 900_000).await,
        Limiter::DramatiqBucket => {
            let now = now_ms();
            let b = now - now % wms;
            seen.count = b;
            dramatiq_add_or_incr(c, &format!("{key}@{b}"), limit, wms as u64).await
        }
        Limiter::DramatiqWindow => {
            let t = now_ms() / 1000;
            seen.count = t;
            let w = (wms / 1000).max(1);
            let keys: Vec<String> = (0..w).map(|i| format!("{key}@{}", t - i)).collect();
            dramatiq_incr_and_sum(c, &keys, limit, wms as u64).await
        }
    };
    (r, seen)
}

/// A `dramatiq-concurrent` slot: held for the plan's hold time, then given back (DECR); the
/// believed hold goes into the history and the trace.
async fn release_concurrent(
    st: &State,
    c: &mut Client,
    rec: &crate::metrics::Recorder,
    rng: &mut Rng,
    key: &str,
    client: u32,
) {
    let from = monotonic_ns();
    let hold = st.plan.hold.sample(rng);
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    let to = monotonic_ns();
    st.history.push(Type::Invoke, "release", client, |e| {
        e.key = Some(key.to_string());
    });
    if let Some(t) = &st.trace {
        let _ = writeln!(t.lock().expect("trace lock"), "agent {key} {from} {to}");
    }
    let s2 = Instant::now();
    let r = dramatiq_decr(c, key, 0, 900_000).await;
    rec.record(1, s2, s2, Instant::now(), r.map(|_| ()).map_err(|e| e.kind));
}

/// Dramatiq `RedisBackend.add` then `incr`: SET NX PX, else WATCH/GET/MULTI/SET PX/EXEC.
async fn dramatiq_add_or_incr(
    c: &mut Client,
    key: &str,
    maximum: u64,
    ttl_ms: u64,
) -> Result<bool, Error> {
    if c.request(
        &Cmd::new("SET")
            .arg(key)
            .arg("1")
            .arg("PX")
            .arg(ttl_ms)
            .arg("NX"),
    )
    .await?
    .is_ok()
    {
        return Ok(true);
    }
    for _ in 0..10_000 {
        c.request(&Cmd::new("WATCH").arg(key)).await?;
        let v = c
            .request(&Cmd::new("GET").arg(key))
            .await?
            .as_int()
            .unwrap_or(0)
            + 1;
        if v as u64 > maximum {
            c.request(&Cmd::new("UNWATCH")).await?;
            return Ok(false);
        }
        let r = exec(
            c,
            vec![Cmd::new("SET").arg(key).arg(v).arg("PX").arg(ttl_ms)],
        )
        .await?;
        if r {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Dramatiq `RedisBackend.decr` (release of the concurrent limiter): sets the value down, never DELs.
async fn dramatiq_decr(
    c: &mut Client,
    key: &str,
    minimum: i64,
    ttl_ms: u64,
) -> Result<bool, Error> {
    for _ in 0..10_000 {
        c.request(&Cmd::new("WATCH").arg(key)).await?;
        let v = c
            .request(&Cmd::new("GET").arg(key))
            .await?
            .as_int()
            .unwrap_or(0)
            - 1;
        if v < minimum {
            c.request(&Cmd::new("UNWATCH")).await?;
            return Ok(false);
        }
        if exec(
            c,
            vec![Cmd::new("SET").arg(key).arg(v).arg("PX").arg(ttl_ms)],
        )
        .await?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Dramatiq `RedisBackend.incr_and_sum` (the window limiter).
async fn dramatiq_incr_and_sum(
    c: &mut Client,
    keys: &[String],
    maximum: u64,
    ttl_ms: u64,
) -> Result<bool, Error> {
    let key = &keys[0];
    for _ in 0..10_000 {
        let mut w = Cmd::new("WATCH").arg(key.as_str());
        for k in keys {
            w.push(k.as_str());
        }
        c.request(&w).await?;
        let v = c
            .request(&Cmd::new("GET").arg(key.as_str()))
            .await?
            .as_int()
            .unwrap_or(0)
            + 1;
        if v as u64 > maximum {
            c.request(&Cmd::new("UNWATCH")).await?;
            return Ok(false);
        }
        let mut mget = Cmd::new("MGET");
        for k in keys {
            mget.push(k.as_str());
        }
        let sum: i64 = c
            .request(&mget)
            .await?
            .into_array()
            .unwrap_or_default()
            .iter()
            .map(|x| x.as_int().unwrap_or(0))
            .sum();
        if 1 + sum > maximum as i64 {
            c.request(&Cmd::new("UNWATCH")).await?;
            return Ok(false);
        }
        if exec(
            c,
            vec![Cmd::new("SET")
                .arg(key.as_str())
                .arg(v)
                .arg("PX")
                .arg(ttl_ms)],
        )
        .await?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// MULTI … EXEC in one write; false when EXEC returned nil (a WATCHed key changed).
async fn exec(c: &mut Client, cmds: Vec<Cmd>) -> Result<bool, Error> {
    let mut all = vec![Cmd::new("MULTI")];
    all.extend(cmds);
    all.push(Cmd::new("EXEC"));
    let mut r = c.pipeline(&all).await;
    match r.pop() {
        Some(Ok(Value::Nil)) => Ok(false),
        Some(Ok(_)) => Ok(true),
        Some(Err(e)) => Err(e),
        None => Ok(false),
    }
}

impl State {
    /// Check this agent's admissions with the limiter's own window semantics.
    pub async fn finish(&self, ctx: &Ctx) {
        if let Some(t) = &self.trace {
            let _ = t.lock().expect("trace lock").flush();
        }
        ctx.judge_history(WorkloadType::RateLimit, &self.history, true);
        let cs = &ctx.metrics.counters;
        let admitted = cs.get(ADMITTED) as f64;
        let secs = Instant::now()
            .min(ctx.end)
            .saturating_duration_since(self.started)
            .as_secs_f64()
            .max(1e-3);
        let p = &self.plan;
        let allowed = match p.limiter {
            Limiter::DramatiqConcurrent => f64::NAN,
            _ => (secs / p.window.as_secs_f64()).ceil() * p.limit as f64 * p.keys as f64,
        };
        if allowed.is_finite() && allowed > 0.0 {
            cs.set_ratio(
                C::Efficiency.i(),
                (admitted / allowed * 1000.0).round() / 1000.0,
            );
        }
    }
}
