//! ECHO's participant conversation ping (stream S2 of the ECHO workload model):
//! the request every recording participant's phone sends every 3 s.
//!
//! One iteration is one ping, as ECHO's API does it, one round trip per command
//! and no pipelining:
//!
//! 1. `INCR` the per-IP fixed-window rate-limit key, and `EXPIRE` it only when
//!    `INCR` returned 1 (the window's first hit; non-atomic, as in ECHO). Over
//!    `limit`: the ping is refused (HTTP 429) and the iteration ends there.
//!    Many VUs share one IP (phones behind a venue NAT), so this is a hot key.
//! 2. `GET` the conversation's liveness record.
//! 3. `SET` it again (~0.4 KB of JSON) with `EX 90`.
//! 4. `ZADD` the conversation to the project's monitor index, `EXPIRE 2100`.
//! 5. `ZREMRANGEBYRANK 0 -2001`: cap the index at 2000 members.
//! 6. `PUBLISH "1"` on the project's monitor channel (wakes watching hosts).
//!
//! One VU is one participant with its own conversation; VU `i` is behind IP
//! `i % ips` and in project `i % projects`.
//!
//! Keys (all under `prefix`):
//! `dembrane:rate_limit:participant_conversation_ping:<ip>` (string, `window` s),
//! `conversation_liveness:<conv>` (string, `ttl` s),
//! `monitor:active:<project>` (zset, 2100 s); channel `monitor:project:<project>`.

use valkey_chaos_sdk::{
    Config, Error, Info, Result, Scenario, clock, cmd, export_scenario, metrics, valkey,
};

/// Size of ECHO's monitor index.
const MONITOR_CAP: u32 = 2000;
/// TTL of ECHO's monitor index.
const MONITOR_TTL_SECS: u32 = 2100;

struct Ping {
    limiter_key: String,
    liveness_key: String,
    monitor_key: String,
    channel: String,
    conversation: String,
    project: u32,
    limit: i64,
    window_secs: u32,
    ttl_secs: u32,
    value_bytes: usize,
    pings: metrics::Counter,
    rate_limited: metrics::Counter,
    liveness_misses: metrics::Counter,
}

impl Scenario for Ping {
    fn describe() -> Info {
        valkey_chaos_sdk::package_info!()
            .param("prefix", "key and channel prefix (default \"vc:\")")
            .param(
                "ips",
                "client IPs the VUs are spread over; fewer = hotter limiter key (default 1)",
            )
            .param("projects", "projects the VUs are spread over (default 1)")
            .param(
                "limit",
                "pings per IP per window before 429 (default 6000, ECHO's setting)",
            )
            .param("window", "rate-limit window in seconds (default 60)")
            .param(
                "ttl",
                "liveness record TTL in seconds (default 90; 1800 models sticky states)",
            )
            .param(
                "value_bytes",
                "approximate liveness record size (default 400)",
            )
    }

    fn setup(config: &Config) -> Result<Self> {
        let prefix = config.param_or("prefix", "vc:");
        let ips: u32 = config.parse("ips", 1)?;
        let projects: u32 = config.parse("projects", 1)?;
        if ips == 0 || projects == 0 {
            return Err(Error::fatal(
                "parameters `ips` and `projects` must be at least 1",
            ));
        }
        // A name in the 198.18.0.0/15 benchmarking range; only a key name, never dialled.
        let ip = config.vu_id % ips;
        let project = config.vu_id % projects;
        // A stable, unique conversation id per VU, shaped like ECHO's UUIDs.
        let conversation = format!("00000000-0000-4000-8000-{:012x}", config.vu_id);
        Ok(Ping {
            limiter_key: format!(
                "{prefix}dembrane:rate_limit:participant_conversation_ping:198.{}.{}.{}",
                18 + (ip >> 16) % 2,
                (ip >> 8) & 255,
                ip & 255
            ),
            liveness_key: format!("{prefix}conversation_liveness:{conversation}"),
            monitor_key: format!("{prefix}monitor:active:project-{project}"),
            channel: format!("{prefix}monitor:project:project-{project}"),
            conversation,
            project,
            limit: config.parse("limit", 6000)?,
            window_secs: config.parse("window", 60)?,
            ttl_secs: config.parse("ttl", 90)?,
            value_bytes: config.parse("value_bytes", 400)?,
            pings: metrics::counter("ping_accepted_total"),
            rate_limited: metrics::counter("ping_rate_limited_total"),
            liveness_misses: metrics::counter("ping_liveness_misses_total"),
        })
    }

    fn iteration(&mut self, n: u64) -> Result {
        // 1. Fixed-window limiter (ECHO `allow()`: fail-open is the API's
        // business; here a failed INCR fails the iteration).
        let hits = valkey::execute(cmd!("INCR", self.limiter_key))?
            .as_int()
            .ok_or_else(|| Error::new("INCR did not return an integer"))?;
        if hits == 1 {
            valkey::execute(cmd!("EXPIRE", self.limiter_key, self.window_secs))?;
        }
        if hits > self.limit {
            self.rate_limited.inc();
            return Ok(());
        }

        // 2-3. Liveness read-modify-write.
        if valkey::execute(cmd!("GET", self.liveness_key))?.is_nil() {
            // First ping of the VU, or the record expired / was lost.
            self.liveness_misses.inc();
        }
        let now = clock::now().as_nanos();
        let record = self.liveness_record(n, now);
        valkey::execute(cmd!("SET", self.liveness_key, record, "EX", self.ttl_secs))?;

        // 4-5. Monitor index, scored by time in seconds.
        let score = now as f64 / 1e9;
        valkey::execute(cmd!("ZADD", self.monitor_key, score, self.conversation))?;
        valkey::execute(cmd!("EXPIRE", self.monitor_key, MONITOR_TTL_SECS))?;
        // 6. Cap the index: keep the newest MONITOR_CAP members.
        let stop = -i64::from(MONITOR_CAP) - 1;
        valkey::execute(cmd!("ZREMRANGEBYRANK", self.monitor_key, 0, stop))?;
        // 7. Nudge the monitor streams.
        valkey::execute(cmd!("PUBLISH", self.channel, "1"))?;

        self.pings.inc();
        Ok(())
    }
}

impl Ping {
    /// A JSON liveness record like ECHO's, padded to about `value_bytes`.
    fn liveness_record(&self, n: u64, now_nanos: u64) -> String {
        let mut json = format!(
            "{{\"conversation_id\":\"{}\",\"project_id\":\"project-{}\",\"status\":\"recording\",\
             \"last_ping_ns\":{now_nanos},\"ping_count\":{},\"client\":\"valkey-chaos\",\"pad\":\"",
            self.conversation,
            self.project,
            n + 1
        );
        let padding = self.value_bytes.saturating_sub(json.len() + 2);
        json.extend(std::iter::repeat_n('x', padding));
        json.push_str("\"}");
        json
    }
}

export_scenario!(Ping);
