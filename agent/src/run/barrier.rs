//! The start barrier: the agents of one sharded run agree on one time zero before the load, so
//! that shard 0's failover lands at the same point of every shard's load and the per-phase
//! windows of all shards line up for `merge`.
//!
//! They meet **through the target itself**, in one hash `<key_prefix>barrier:<run key>`:
//!
//! 1. every agent registers `shard:<index>` = `<nonce>|<last seen, µs>|<host, pid>` and polls
//!    (one Lua script per poll, every [`POLL`]) until every shard `0..count` is there;
//! 2. the poll that completes the set writes `start` = the target's `TIME` + [`MARGIN`]: one
//!    instant on **one clock, the target's**, read by all;
//! 3. each agent maps that instant onto its own monotonic clock through the `TIME` sample with
//!    the shortest round trip (the instant is known to ± half that round trip), so the agents'
//!    own wall clocks need not agree;
//! 4. every agent leaves at the end (its field is deleted; the last one deletes the hash). The
//!    hash expires anyway ([`ttl`]) if agents die.
//!
//! A registration not refreshed for [`STALE`] (an agent that died while waiting) is dropped; a
//! `start` in the past found by an agent that is not registered under it is an earlier run's and
//! is cleared. Two live agents claiming one index, or agents disagreeing on `--start-at`, are
//! errors; agents disagreeing on the shard count meet under different keys (the run key names
//! the count) and time out naming that key. Nobody arriving within `--barrier-timeout` fails the run (exit 3)
//! naming the shards that never arrived.
//!
//! With `--start-at` the instant is given (on the target's clock) instead of agreed: agents
//! register so that the ones missing at the start are named, but nobody waits for them.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::plan::Plan;
use crate::summary::StartSync;
use crate::valkey::{Cmd, Conn, Route, Value};

use super::options::{RunError, StartOptions};

/// How often a waiting agent polls.
pub const POLL: Duration = Duration::from_millis(100);
/// From the last arrival to the common start: time for every agent to see it.
pub const MARGIN: Duration = Duration::from_secs(1);
/// A registration not refreshed for this long belongs to an agent that is gone.
pub const STALE: Duration = Duration::from_secs(5);
/// The latest `--start-at` accepted.
pub const MAX_AHEAD: Duration = Duration::from_secs(24 * 3600);
/// Extra `TIME` samples taken once the start is known, to map it more tightly.
const EXTRA_SAMPLES: usize = 5;

/// How a run's time zero is fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Wait until every shard arrived.
    Barrier,
    /// At `--start-at`.
    StartAt(SystemTime),
}

/// The barrier a plan needs: sharded over more than one agent (unless `--no-barrier`), or a
/// `--start-at`; none otherwise.
pub fn mode(plan: &Plan, o: &StartOptions) -> Option<Mode> {
    if let Some(t) = o.start_at {
        return Some(Mode::StartAt(t));
    }
    let sharded = plan.shard.is_some_and(|s| s.count > 1);
    (sharded && !o.no_barrier).then_some(Mode::Barrier)
}

/// The run key a plan's agents share: `[<--run-key>:]<scenario>:<shard count>`, so that each
/// scenario of a multi-scenario run gets its own barrier.
pub fn run_key(plan: &Plan, given: Option<&str>) -> String {
    let n = plan.shard.map(|s| s.count).unwrap_or(1);
    match given.map(str::trim).filter(|k| !k.is_empty()) {
        Some(k) => format!("{k}:{}:{n}", plan.name),
        None => format!("{}:{n}", plan.name),
    }
}

/// One `TIME` reading: the target's clock (µs since the epoch) somewhere between `sent` and
/// `received` on ours.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub sent: Instant,
    pub received: Instant,
    /// Our wall clock at `received`.
    pub wall: SystemTime,
    pub server_us: i64,
}

impl Sample {
    fn rtt(&self) -> Duration {
        self.received.saturating_duration_since(self.sent)
    }
    /// The instant on our monotonic clock at which the target's clock reads `at_us`, and how
    /// uncertain that is (half the round trip).
    pub fn map(&self, at_us: i64) -> (Instant, Duration) {
        let half = self.rtt() / 2;
        let mid = self.sent + half;
        let delta = at_us - self.server_us;
        let t = if delta >= 0 {
            mid + Duration::from_micros(delta as u64)
        } else {
            mid.checked_sub(Duration::from_micros(delta.unsigned_abs()))
                .unwrap_or(mid)
        };
        (t, half)
    }
    /// Our wall clock minus the target's, in ms.
    fn offset_ms(&self) -> f64 {
        let ours = self.wall.checked_sub(self.rtt() / 2).unwrap_or(self.wall);
        let ours_us = ours
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        (ours_us - self.server_us) as f64 / 1000.0
    }
}

/// The sample with the shortest round trip.
fn best(samples: &[Sample]) -> Option<Sample> {
    samples.iter().min_by_key(|s| s.rtt()).copied()
}

/// `[0, 2]` of 3 → "1/3"; the missing shards, named.
pub fn missing(arrived: &[u32], count: u32) -> Vec<String> {
    (0..count)
        .filter(|i| !arrived.contains(i))
        .map(|i| format!("{i}/{count}"))
        .collect()
}

fn shards(v: &[String]) -> String {
    match v.len() {
        1 => format!("shard {}", v[0]),
        _ => format!("shards {}", v.join(", ")),
    }
}

/// A barrier passed: the common time zero on this agent's clock, and what to leave behind.
pub struct Met {
    /// Time zero on the monotonic clock (may be just past, for an agent that saw it late).
    pub start: Instant,
    /// Time zero on the target's clock.
    pub wall: SystemTime,
    pub sync: StartSync,
    pub run_key: String,
    route: Route,
    key: String,
    index: u32,
    nonce: String,
}

impl Met {
    /// Leave the barrier: delete this agent's registration (and the hash when it was the last).
    /// A failure costs a warning: the hash expires on its own.
    pub async fn leave(&self) {
        if let Err(e) = leave(&self.route, &self.key, self.index, &self.nonce).await {
            eprintln!(
                "warning: could not clear the start barrier {} ({e}); it expires on its own",
                self.key
            );
        }
    }
}

const MEET: &str = r#"
local key, field = KEYS[1], 'shard:' .. ARGV[1]
local count, nonce, info = tonumber(ARGV[2]), ARGV[3], ARGV[4]
local stale, margin, ttl, start_at = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], ARGV[8]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function us(x) return string.format('%.0f', x) end
local function parse(v)
  if not v then return nil, nil end
  local o, seen = string.match(v, '^([^|]*)|(%d+)|')
  return o, tonumber(seen)
end
local start = tonumber(redis.call('HGET', key, 'start') or '')
local owner, seen = parse(redis.call('HGET', key, field) or nil)
if start and start < now and owner ~= nonce then
  -- an earlier run's barrier under the same key: start afresh
  redis.call('DEL', key)
  start, owner, seen = nil, nil, nil
end
if start_at ~= '' then
  if tonumber(start_at) < now and not start then return {'past', '', t[1], t[2]} end
  if start and us(start) ~= start_at then return {'start_at', us(start), t[1], t[2]} end
end
if owner and owner ~= nonce and seen and now - seen <= stale then
  return {'taken', redis.call('HGET', key, field), t[1], t[2]}
end
redis.call('HSET', key, field, nonce .. '|' .. us(now) .. '|' .. info)
local arrived = {}
for _, f in ipairs(redis.call('HKEYS', key)) do
  local i = string.match(f, '^shard:(%d+)$')
  if i and not start then
    local _, s = parse(redis.call('HGET', key, f))
    if s and now - s > stale then
      redis.call('HDEL', key, f)
      i = nil
    end
  end
  if i then table.insert(arrived, i) end
end
if not start then
  if start_at ~= '' then
    start = tonumber(start_at)
  elseif #arrived >= count then
    start = now + margin
  end
  if start then redis.call('HSET', key, 'start', us(start)) end
end
redis.call('PEXPIRE', key, ttl)
local out = {'ok', start and us(start) or '', t[1], t[2]}
for _, i in ipairs(arrived) do table.insert(out, i) end
return out
"#;

const LEAVE: &str = r#"
local key, field, mine = KEYS[1], 'shard:' .. ARGV[1], ARGV[2] .. '|'
local v = redis.call('HGET', key, field)
if v and string.sub(v, 1, #mine) == mine then redis.call('HDEL', key, field) end
for _, f in ipairs(redis.call('HKEYS', key)) do
  if string.match(f, '^shard:') then return 0 end
end
redis.call('DEL', key)
return 1
"#;

/// What one poll said.
#[derive(Debug, PartialEq)]
enum Reply {
    /// Registered; the start (µs, target clock) once fixed; the shards present.
    Ok {
        start_us: Option<i64>,
        arrived: Vec<u32>,
    },
    /// `--start-at` is already past on the target's clock.
    Past,
    /// Another agent fixed another `--start-at` under this key.
    StartAt(i64),
    /// Another live agent holds this shard index.
    Taken(String),
}

fn parse_reply(v: Value) -> Result<(Reply, i64), String> {
    let parts = v
        .into_array()
        .ok_or_else(|| "the barrier script returned no array".to_string())?;
    let text: Vec<String> = parts
        .iter()
        .map(|p| {
            p.as_str()
                .map(str::to_string)
                .or_else(|| p.as_int().map(|i| i.to_string()))
                .unwrap_or_default()
        })
        .collect();
    if text.len() < 4 {
        return Err(format!("unexpected barrier reply {text:?}"));
    }
    let num = |s: &str| s.parse::<i64>().ok();
    let (secs, micros) = (num(&text[2]), num(&text[3]));
    let now = match (secs, micros) {
        (Some(s), Some(u)) => s * 1_000_000 + u,
        _ => return Err(format!("unexpected TIME in barrier reply {text:?}")),
    };
    let r = match text[0].as_str() {
        "ok" => Reply::Ok {
            start_us: num(&text[1]),
            arrived: text[4..].iter().filter_map(|s| s.parse().ok()).collect(),
        },
        "past" => Reply::Past,
        "start_at" => Reply::StartAt(num(&text[1]).unwrap_or(0)),
        "taken" => Reply::Taken(text[1].clone()),
        other => return Err(format!("unexpected barrier status {other:?}")),
    };
    Ok((r, now))
}

fn micros_of(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn wall_of(us: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us.max(0) as u64)
}

/// How long the barrier hash lives without its agents: the wait, the run and some slack.
pub fn ttl(timeout: Duration, duration: Duration) -> Duration {
    timeout + duration + Duration::from_secs(120)
}

fn nonce() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut r = crate::rng::Rng::new(t ^ (u64::from(std::process::id()) << 32));
    format!("{:016x}", r.next_u64())
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// One poll: run the script, timing it.
async fn poll(conn: &mut Conn, key: &str, args: &[String]) -> Result<(Reply, Sample), String> {
    let mut cmd = Cmd::new("EVAL").arg(MEET).arg(1u64).arg(key);
    for a in args {
        cmd.push(a.as_str());
    }
    let sent = Instant::now();
    let v = conn.request(&cmd).await.map_err(|e| e.msg)?;
    let received = Instant::now();
    let wall = SystemTime::now();
    let (reply, server_us) = parse_reply(v)?;
    Ok((
        reply,
        Sample {
            sent,
            received,
            wall,
            server_us,
        },
    ))
}

/// A `TIME` sample.
async fn time(conn: &mut Conn) -> Result<Sample, String> {
    let sent = Instant::now();
    let v = conn.request(&Cmd::new("TIME")).await.map_err(|e| e.msg)?;
    let received = Instant::now();
    let wall = SystemTime::now();
    let p = v.into_array().unwrap_or_default();
    let f = |i: usize| p.get(i).and_then(|x| x.as_int());
    match (f(0), f(1)) {
        (Some(s), Some(u)) => Ok(Sample {
            sent,
            received,
            wall,
            server_us: s * 1_000_000 + u,
        }),
        _ => Err("TIME gave no time".into()),
    }
}

async fn leave(route: &Route, key: &str, index: u32, nonce: &str) -> Result<(), String> {
    let mut conn = tokio::time::timeout(Duration::from_secs(5), route.connect())
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.msg)?;
    conn.request(
        &Cmd::new("EVAL")
            .arg(LEAVE)
            .arg(1u64)
            .arg(key)
            .arg(u64::from(index))
            .arg(nonce),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.msg)
}

/// Meet the other agents of the run (or wait for `--start-at`) through the target at `route`
/// (the direct route, no fault proxy in between). `Ok(None)`: this run needs no barrier.
pub async fn meet(
    route: &Route,
    plan: &Plan,
    o: &StartOptions,
    shutdown: &CancellationToken,
) -> Result<Option<Met>, RunError> {
    let Some(mode) = mode(plan, o) else {
        return Ok(None);
    };
    let mut w = Waiter::new(route, plan, o, mode);
    let start_us = w.wait(shutdown).await?;
    w.sample_more().await;
    w.met(start_us).map(Some)
}

/// An agent at the barrier: what its polls send, and what they have seen so far.
struct Waiter<'a> {
    route: &'a Route,
    mode: Mode,
    index: u32,
    count: u32,
    /// This shard, as `index/count`.
    me: String,
    run_key: String,
    key: String,
    nonce: String,
    /// `--start-at` in µs on the target's clock; empty for a barrier.
    start_at: String,
    /// The barrier script's arguments.
    args: Vec<String>,
    timeout: Duration,
    arrived_at: Instant,
    deadline: Instant,
    conn: Option<Conn>,
    samples: Vec<Sample>,
    /// The shards registered at the last poll.
    arrived: Vec<u32>,
    /// Every shard seen at the barrier while this agent waited (one that gave up earlier did
    /// arrive: only the ones never seen are named as missing).
    seen: Vec<u32>,
    last_error: Option<String>,
    /// When the last progress line was printed.
    said: Instant,
}

impl<'a> Waiter<'a> {
    fn new(route: &'a Route, plan: &Plan, o: &StartOptions, mode: Mode) -> Waiter<'a> {
        let (index, count) = plan.shard.map(|s| (s.index, s.count)).unwrap_or((0, 1));
        let run_key = run_key(plan, o.run_key.as_deref());
        let key = format!("{}barrier:{run_key}", plan.key_prefix);
        let nonce = nonce();
        let start_at = match mode {
            Mode::StartAt(t) => micros_of(t).to_string(),
            Mode::Barrier => String::new(),
        };
        let args = vec![
            index.to_string(),
            count.to_string(),
            nonce.clone(),
            format!("{} pid {}", host(), std::process::id()),
            STALE.as_micros().to_string(),
            MARGIN.as_micros().to_string(),
            ttl(o.timeout, plan.duration).as_millis().to_string(),
            start_at.clone(),
        ];
        let arrived_at = Instant::now();
        // Waiting for the others is bounded by the timeout; waiting for --start-at by the given
        // instant (at most MAX_AHEAD away, checked on the first poll).
        let deadline = match mode {
            Mode::Barrier => arrived_at + o.timeout,
            Mode::StartAt(_) => arrived_at + MAX_AHEAD + o.timeout,
        };
        Waiter {
            route,
            mode,
            index,
            count,
            me: format!("{index}/{count}"),
            run_key,
            key,
            nonce,
            start_at,
            args,
            timeout: o.timeout,
            arrived_at,
            deadline,
            conn: None,
            samples: vec![],
            arrived: vec![],
            seen: vec![],
            last_error: None,
            said: arrived_at,
        }
    }

    /// Poll every [`POLL`] until the start is fixed (µs on the target's clock), the deadline
    /// passes or the run is stopped.
    async fn wait(&mut self, shutdown: &CancellationToken) -> Result<i64, RunError> {
        loop {
            if let Some(start_us) = self.poll_once().await? {
                return Ok(start_us);
            }
            let now = Instant::now();
            if now >= self.deadline {
                return Err(RunError::Runtime(self.timed_out().await));
            }
            self.progress(now);
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.cancelled() => {
                    let msg = format!("stopped while waiting at the start barrier {}", self.key);
                    return Err(RunError::Runtime(self.gone(msg).await));
                }
            }
        }
    }

    /// One poll (connecting first if needed): the start once this agent may go. A failed
    /// connection or poll is remembered and retried.
    async fn poll_once(&mut self) -> Result<Option<i64>, RunError> {
        if self.conn.is_none() {
            match self.route.connect().await {
                Ok(c) => self.conn = Some(c),
                Err(e) => self.last_error = Some(e.msg),
            }
        }
        let Some(c) = self.conn.as_mut() else {
            return Ok(None);
        };
        match poll(c, &self.key, &self.args).await {
            Ok((reply, sample)) => {
                self.samples.push(sample);
                self.last_error = None;
                self.on_reply(reply, sample).await
            }
            Err(e) => {
                self.last_error = Some(e);
                self.conn = None;
                Ok(None)
            }
        }
    }

    async fn on_reply(&mut self, reply: Reply, sample: Sample) -> Result<Option<i64>, RunError> {
        match reply {
            Reply::Ok { start_us, arrived } => {
                self.saw(arrived);
                match start_us {
                    Some(s) => self.started(s, sample).await,
                    None => Ok(None),
                }
            }
            Reply::Past => Err(RunError::Refused(format!(
                "--start-at {} has already passed on the target's clock (it reads {})",
                humantime::format_rfc3339_micros(wall_of(self.start_at.parse().unwrap_or(0))),
                humantime::format_rfc3339_micros(wall_of(sample.server_us))
            ))),
            Reply::StartAt(other) => Err(RunError::Refused(format!(
                "start barrier {}: another agent of this run starts at {}: give every agent the same --start-at",
                self.key,
                humantime::format_rfc3339_micros(wall_of(other))
            ))),
            Reply::Taken(by) => Err(RunError::Runtime(format!(
                "start barrier {}: shard {} is already taken by another live agent ({}): give each agent its own shard index",
                self.key,
                self.me,
                by.splitn(3, '|').nth(2).unwrap_or("?")
            ))),
        }
    }

    /// The shards present at this poll.
    fn saw(&mut self, mut arrived: Vec<u32>) {
        arrived.sort_unstable();
        for i in &arrived {
            if !self.seen.contains(i) {
                self.seen.push(*i);
            }
        }
        self.seen.sort_unstable();
        self.arrived = arrived;
    }

    /// The start is fixed at `start_us`: a barrier goes at once; a `--start-at` waits for the
    /// others until the start is close.
    async fn started(&self, start_us: i64, sample: Sample) -> Result<Option<i64>, RunError> {
        if let Mode::StartAt(_) = self.mode {
            if start_us - sample.server_us > MAX_AHEAD.as_micros() as i64 {
                let msg = format!(
                    "--start-at is more than {} ahead of the target's clock",
                    humantime::format_duration(MAX_AHEAD)
                );
                return Err(RunError::Refused(self.gone(msg).await));
            }
        }
        let all = self.arrived.len() as u32 >= self.count;
        let close = sample.map(start_us).0 <= Instant::now() + POLL * 2;
        Ok((matches!(self.mode, Mode::Barrier) || all || close).then_some(start_us))
    }

    /// Nobody else came in time: leave, and say who never arrived.
    async fn timed_out(&mut self) -> String {
        let count = self.count;
        let missing = missing(&self.seen, count);
        let left: Vec<String> = self
            .seen
            .iter()
            .filter(|i| !self.arrived.contains(i))
            .map(|i| format!("{i}/{count}"))
            .collect();
        let why = self
            .last_error
            .take()
            .map(|e| format!("; the last poll failed: {e}"))
            .unwrap_or_default();
        let msg = format!(
            "start barrier {}: {} never arrived within {} (arrived: {}{}); every \
             agent of the run needs the same --target and run key ({}){why}",
            self.key,
            shards(&missing),
            humantime::format_duration(self.timeout),
            if self.seen.is_empty() {
                "none".to_string()
            } else {
                self.seen
                    .iter()
                    .map(|i| format!("{i}/{count}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            if left.is_empty() {
                String::new()
            } else {
                format!("; gave up before: {}", left.join(", "))
            },
            self.run_key
        );
        self.gone(msg).await
    }

    /// Every 5 s, a line on who is still missing.
    fn progress(&mut self, now: Instant) {
        if now.duration_since(self.said) < Duration::from_secs(5) {
            return;
        }
        self.said = now;
        let count = self.count;
        eprintln!(
            "shard {}: waiting at the start barrier {}: {} of {count} arrived{} ({:.0}s of {})",
            self.me,
            self.key,
            self.arrived.len(),
            match missing(&self.arrived, count) {
                m if m.is_empty() => String::new(),
                m => format!(", {} missing", shards(&m)),
            },
            now.duration_since(self.arrived_at).as_secs_f64(),
            humantime::format_duration(self.timeout)
        );
    }

    /// Leave the barrier on the way out with an error; `msg` is the error.
    async fn gone(&self, msg: String) -> String {
        let _ = leave(self.route, &self.key, self.index, &self.nonce).await;
        msg
    }

    /// A few more readings of the target's clock: the start is mapped through the tightest one.
    async fn sample_more(&mut self) {
        if let Some(c) = self.conn.as_mut() {
            for _ in 0..EXTRA_SAMPLES {
                if let Ok(s) = time(c).await {
                    self.samples.push(s);
                }
            }
        }
    }

    /// The start on this agent's clock, announced.
    fn met(self, start_us: i64) -> Result<Met, RunError> {
        // The wait ends only after a successful poll, so there is a sample.
        let Some(b) = best(&self.samples) else {
            return Err(RunError::Runtime(format!(
                "start barrier {}: no reading of the target's clock",
                self.key
            )));
        };
        let (start, uncertainty) = b.map(start_us);
        let wall = wall_of(start_us);
        self.announce(
            wall,
            start.saturating_duration_since(Instant::now()),
            uncertainty,
        );
        Ok(Met {
            start,
            wall,
            sync: StartSync {
                mode: match self.mode {
                    Mode::Barrier => "barrier".into(),
                    Mode::StartAt(_) => "start-at".into(),
                },
                key: self.key.clone(),
                waited_secs: (start
                    .saturating_duration_since(self.arrived_at)
                    .as_secs_f64()
                    * 1000.0)
                    .round()
                    / 1000.0,
                arrived: self.arrived,
                uncertainty_ms: round3(uncertainty.as_secs_f64() * 1000.0),
                late_ms: 0.0,
                clock_offset_ms: round3(b.offset_ms()),
            },
            run_key: self.run_key,
            route: self.route.clone(),
            key: self.key,
            index: self.index,
            nonce: self.nonce,
        })
    }

    /// Time zero on the target's clock, how far ahead and how tight; with `--start-at`, the
    /// shards that had not arrived.
    fn announce(&self, wall: SystemTime, ahead: Duration, uncertainty: Duration) {
        let (me, key, count) = (&self.me, &self.key, self.count);
        match self.mode {
            Mode::Barrier => eprintln!(
                "shard {me}: all {count} shards met at {key}; time zero {} on the target's clock (in {:.2}s, ±{:.2} ms)",
                humantime::format_rfc3339_micros(wall),
                ahead.as_secs_f64(),
                uncertainty.as_secs_f64() * 1000.0
            ),
            Mode::StartAt(_) => {
                eprintln!(
                    "shard {me}: time zero {} (--start-at) on the target's clock (in {:.2}s, ±{:.2} ms)",
                    humantime::format_rfc3339_micros(wall),
                    ahead.as_secs_f64(),
                    uncertainty.as_secs_f64() * 1000.0
                );
                let missing = missing(&self.arrived, count);
                if !missing.is_empty() {
                    eprintln!(
                        "warning: {} had not arrived at {key} by the start",
                        shards(&missing)
                    );
                }
            }
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Shard;

    fn plan(shard: Option<Shard>) -> Plan {
        let mut p = crate::scenario::compile::compile_str(
            std::path::Path::new("b.toml"),
            "name = \"b\"\nduration = \"1s\"\n[[workload]]\nid = \"w\"\ntype = \"commands\"\nclients = 1\nrate_per_sec = 10\n",
        )
        .unwrap_or_else(|d| panic!("{d}"));
        p.shard = shard;
        p
    }

    #[test]
    fn who_needs_a_barrier() {
        let o = StartOptions::default();
        assert_eq!(mode(&plan(None), &o), None);
        assert_eq!(mode(&plan(Some(Shard::new(0, 1).unwrap())), &o), None);
        let two = plan(Some(Shard::new(1, 2).unwrap()));
        assert_eq!(mode(&two, &o), Some(Mode::Barrier));
        let off = StartOptions {
            no_barrier: true,
            ..Default::default()
        };
        assert_eq!(mode(&two, &off), None);
        let t = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let at = StartOptions {
            start_at: Some(t),
            no_barrier: true,
            ..Default::default()
        };
        assert_eq!(mode(&plan(None), &at), Some(Mode::StartAt(t)));
    }

    #[test]
    fn run_keys_name_the_scenario_and_the_count() {
        let p = plan(Some(Shard::new(1, 4).unwrap()));
        assert_eq!(run_key(&p, None), "b:4");
        assert_eq!(run_key(&p, Some(" ")), "b:4");
        assert_eq!(run_key(&p, Some("chaos-20250101")), "chaos-20250101:b:4");
        assert_eq!(run_key(&plan(None), Some("x")), "x:b:1");
    }

    #[test]
    fn the_start_maps_through_the_middle_of_the_round_trip() {
        let sent = Instant::now();
        let s = Sample {
            sent,
            received: sent + Duration::from_millis(4),
            wall: SystemTime::now(),
            server_us: 1_000_000,
        };
        let (t, u) = s.map(1_500_000);
        assert_eq!(u, Duration::from_millis(2));
        assert_eq!(
            t,
            sent + Duration::from_millis(2) + Duration::from_millis(500)
        );
        let (t, _) = s.map(999_000);
        assert_eq!(t, sent + Duration::from_millis(1));
        let tight = Sample {
            received: sent + Duration::from_millis(1),
            ..s
        };
        assert_eq!(best(&[s, tight, s]).unwrap().received, tight.received);
    }

    #[test]
    fn missing_shards_are_named() {
        assert_eq!(missing(&[0, 2], 4), ["1/4", "3/4"]);
        assert!(missing(&[0, 1], 2).is_empty());
        assert_eq!(shards(&missing(&[0, 1], 3)), "shard 2/3");
        assert_eq!(shards(&missing(&[1], 3)), "shards 0/3, 2/3");
    }

    #[test]
    fn replies_parse() {
        let b = |s: &str| Value::Bulk(s.as_bytes().to_vec());
        let v = Value::Array(vec![
            b("ok"),
            b("1700000001000000"),
            b("1700000000"),
            b("250"),
            b("1"),
            b("0"),
        ]);
        let (r, now) = parse_reply(v).unwrap();
        assert_eq!(now, 1_700_000_000_000_250);
        assert_eq!(
            r,
            Reply::Ok {
                start_us: Some(1_700_000_001_000_000),
                arrived: vec![1, 0]
            }
        );
        let v = Value::Array(vec![b("ok"), b(""), b("1"), b("2")]);
        assert_eq!(
            parse_reply(v).unwrap().0,
            Reply::Ok {
                start_us: None,
                arrived: vec![]
            }
        );
        let v = Value::Array(vec![b("taken"), b("n|1|h pid 7"), b("1"), b("2")]);
        assert_eq!(
            parse_reply(v).unwrap().0,
            Reply::Taken("n|1|h pid 7".into())
        );
        assert!(parse_reply(Value::Int(1)).is_err());
        assert!(parse_reply(Value::Array(vec![b("huh"), b(""), b("1"), b("2")])).is_err());
    }
}
