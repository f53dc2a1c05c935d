//! `type = "rate_limit"`: steady demand plus bursts against a limiter, and an oracle that counts
//! admissions beyond the limit from the agent's own timestamps with the limiter's window semantics.
//!
//! Limiters: `fixed-window` (ECHO's INCR + EXPIRE), `sliding-log` (sorted set, atomic in Lua),
//! Dramatiq's `dramatiq-concurrent` / `dramatiq-window` / `dramatiq-bucket` (SET NX PX and
//! WATCH/MULTI/EXEC loops, command for command), and `check-then-incr` (GET, compare, INCR: the
//! classic race, there to show what an over-admitting limiter looks like).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinSet;

use super::Ctx;
use crate::clock::monotonic_ns;
use crate::plan::{Limiter, RateLimitCounter as C, RateLimitPlan, WorkloadPlan};
use crate::rng::Rng;
use crate::valkey::{Client, Cmd, Error, Script, Value};
use crate::workload::pacing::Pacer;

const ADMITTED: usize = C::Admitted.i();
const REJECTED: usize = C::Rejected.i();
const OVERSHOOT: usize = C::Overshoot.i();

/// One admission as the agent saw it.
#[derive(Clone, Copy)]
struct Adm {
    sent: Instant,
    recv: Instant,
    /// The window the client computed (epoch second, bucket start), the log timestamp (µs), or
    /// (fixed window) the INCR reply: 1 marks the admission that created a window's key.
    slot: i64,
}

pub struct State {
    plan: RateLimitPlan,
    keys: Vec<String>,
    adms: Vec<Mutex<Vec<Adm>>>,
    /// Concurrent limiter: holders now, per key.
    holding: Vec<Mutex<u64>>,
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
    let st = Arc::new(State {
        plan: r.clone(),
        adms: keys.iter().map(|_| Mutex::new(vec![])).collect(),
        holding: keys.iter().map(|_| Mutex::new(0)).collect(),
        keys,
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
    let mut c = Client::new(ctx.route.clone());
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
                attempt(&st, &ctx, &mut c, &rec, &mut rng, &sliding, key, b).await;
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
                attempt(&st, &ctx, &mut c, &rec, &mut rng, &sliding, key, intended).await;
            }
            None => steady_done = true,
        }
    }
}

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
) {
    let p = &st.plan;
    let key = st.keys[ki].as_str();
    let sent = Instant::now();
    let limit = p.limit;
    let wms = p.window.as_millis().max(1) as i64;
    let mut slot = 0i64;
    let mut incr_sent = None;
    let mut incr_recv = None;
    let r: Result<bool, Error> = match p.limiter {
        Limiter::FixedWindow => {
            async {
                let n = c
                    .request(&Cmd::new("INCR").arg(key))
                    .await?
                    .as_int()
                    .unwrap_or(0);
                slot = n;
                if n == 1 {
                    c.request(&Cmd::new("EXPIRE").arg(key).arg(p.window.as_secs().max(1)))
                        .await?;
                }
                Ok(n as u64 <= limit)
            }
            .await
        }
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
                incr_sent = Some(Instant::now());
                let n = c
                    .request(&Cmd::new("INCR").arg(key))
                    .await?
                    .as_int()
                    .unwrap_or(0);
                incr_recv = Some(Instant::now());
                slot = n;
                if n == 1 {
                    c.request(&Cmd::new("EXPIRE").arg(key).arg(p.window.as_secs().max(1)))
                        .await?;
                }
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
                slot = parts.get(1).and_then(|x| x.as_int()).unwrap_or(0);
                parts.first().and_then(|x| x.as_int()) == Some(1)
            })
        }
        Limiter::DramatiqConcurrent => dramatiq_add_or_incr(c, key, limit, 900_000).await,
        Limiter::DramatiqBucket => {
            let now = now_ms();
            let b = now - now % wms;
            slot = b;
            dramatiq_add_or_incr(c, &format!("{key}@{b}"), limit, wms as u64).await
        }
        Limiter::DramatiqWindow => {
            let t = now_ms() / 1000;
            slot = t;
            let w = (wms / 1000).max(1);
            let keys: Vec<String> = (0..w).map(|i| format!("{key}@{}", t - i)).collect();
            dramatiq_incr_and_sum(c, &keys, limit, wms as u64).await
        }
    };
    let recv = Instant::now();
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
                let from = monotonic_ns();
                {
                    let mut h = st.holding[ki].lock().expect("holding lock");
                    *h += 1;
                    if *h > limit {
                        ctx.metrics.counters.add(OVERSHOOT, 1);
                    }
                }
                let hold = p.hold.sample(rng);
                if !hold.is_zero() {
                    tokio::time::sleep(hold).await;
                }
                {
                    let mut h = st.holding[ki].lock().expect("holding lock");
                    *h = h.saturating_sub(1);
                }
                let to = monotonic_ns();
                if let Some(t) = &st.trace {
                    let _ = writeln!(t.lock().expect("trace lock"), "agent {key} {from} {to}");
                }
                let s2 = Instant::now();
                let r = dramatiq_decr(c, key, 0, 900_000).await;
                rec.record(1, s2, s2, Instant::now(), r.map(|_| ()).map_err(|e| e.kind));
            } else {
                let (sent, recv) = (incr_sent.unwrap_or(sent), incr_recv.unwrap_or(recv));
                st.adms[ki]
                    .lock()
                    .expect("adms lock")
                    .push(Adm { sent, recv, slot });
            }
        }
    }
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
    /// Count admissions beyond the limit with the limiter's own window semantics.
    fn overshoot(&self) -> u64 {
        let p = &self.plan;
        let limit = p.limit as usize;
        let mut total = 0;
        for a in &self.adms {
            let mut v = a.lock().expect("adms lock").clone();
            v.sort_by_key(|x| x.sent);
            total += match p.limiter {
                // A window's key is created by the admission that got INCR → 1 (at some time within
                // its [sent, recv]) and lives at least `window` from then. So from that reply until
                // `sent + window` there is one key: admissions certainly inside that span (sent after
                // the creating reply, reply before its end) number at most `limit`. A key lost early
                // (failover, eviction) shows up as a second creation inside the span: overshoot.
                Limiter::FixedWindow | Limiter::CheckThenIncr => {
                    let mut over = 0;
                    let mut next_from: Option<Instant> = None;
                    for a in v.iter().filter(|x| x.slot == 1) {
                        if next_from.is_some_and(|t| a.sent < t) {
                            continue;
                        }
                        let end = a.sent + p.window;
                        let n = 1 + v
                            .iter()
                            .filter(|x| !std::ptr::eq(*x, a) && x.sent >= a.recv && x.recv < end)
                            .count();
                        over += n.saturating_sub(limit);
                        next_from = Some(end);
                    }
                    // And, needing no timing at all: an admission whose own INCR counted past the
                    // limit was admitted over it.
                    let counted_past = v.iter().filter(|x| x.slot > limit as i64).count();
                    over.max(counted_past)
                }
                // Any `window` (t-w, t] of the admission timestamps (µs) holds at most `limit`.
                Limiter::SlidingLog => {
                    let mut ts: Vec<i64> = v.iter().map(|x| x.slot).collect();
                    ts.sort_unstable();
                    let w = p.window.as_micros() as i64;
                    let mut over = 0;
                    let mut lo = 0;
                    for hi in 0..ts.len() {
                        while ts[lo] <= ts[hi] - w {
                            lo += 1;
                        }
                        if hi - lo + 1 > limit {
                            over += 1;
                        }
                    }
                    over
                }
                // Per bucket key the client computed.
                Limiter::DramatiqBucket => {
                    let mut per: HashMap<i64, usize> = HashMap::new();
                    for x in &v {
                        *per.entry(x.slot).or_default() += 1;
                    }
                    per.values().map(|n| n.saturating_sub(limit)).sum()
                }
                // At most `limit` across the `window` seconds ending at each second.
                Limiter::DramatiqWindow => {
                    let w = (p.window.as_secs() as i64).max(1);
                    let mut per: HashMap<i64, usize> = HashMap::new();
                    for x in &v {
                        *per.entry(x.slot).or_default() += 1;
                    }
                    let mut over = 0;
                    for t in per.keys() {
                        let n: usize = (0..w).filter_map(|i| per.get(&(t - i))).sum();
                        over = over.max(n.saturating_sub(limit));
                    }
                    over
                }
                Limiter::DramatiqConcurrent => 0,
            } as u64;
        }
        total
    }

    pub async fn finish(&self, ctx: &Ctx) {
        if let Some(t) = &self.trace {
            let _ = t.lock().expect("trace lock").flush();
        }
        let over = self.overshoot();
        ctx.metrics.counters.add(OVERSHOOT, over);
        let admitted = ctx.metrics.counters.get(ADMITTED) as f64;
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
            ctx.metrics.counters.set_ratio(
                C::Efficiency.i(),
                (admitted / allowed * 1000.0).round() / 1000.0,
            );
        }
    }
}
