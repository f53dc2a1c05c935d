//! A read-through (cache-aside) cache as Directus and ECHO's API use one:
//! `GET` the key; on a miss "compute" the value (sleep `compute_ms`), then
//! `SET` it with `EX ttl`. A read error counts as a miss (best effort, as in
//! ECHO's caches).
//!
//! Key popularity is skewed: each iteration reads rank `zipf(keys, skew)`, so
//! a few keys take most reads (hot keys). Every `storm_every` iterations of
//! VU 0, the `storm_keys` hottest keys are deleted at once (an invalidation
//! after a write, or a cache flush): a miss storm where many VUs recompute the
//! same keys together (thundering herd).
//!
//! Keys (under `prefix`): `cache:item:<rank>` (strings of `value_bytes`, `ttl` s).
//! Metrics: `cache_hits_total`, `cache_misses_total`, `cache_read_errors_total`,
//! `cache_storms_total`, gauge `cache_hit_ratio_permille` (this VU's ratio so far).

use std::time::Duration;

use valkey_chaos_sdk::{
    Config, Error, Info, Result, Scenario, clock, cmd, export_scenario, metrics, random, valkey,
};

struct CacheAside {
    prefix: String,
    leader: bool,
    keys: u64,
    skew: f64,
    compute: Duration,
    ttl_secs: u64,
    value_bytes: u32,
    storm_every: u64,
    storm_keys: u64,
    hits_seen: u64,
    misses_seen: u64,
    hits: metrics::Counter,
    misses: metrics::Counter,
    read_errors: metrics::Counter,
    storms: metrics::Counter,
    hit_ratio: metrics::Gauge,
}

impl Scenario for CacheAside {
    fn describe() -> Info {
        valkey_chaos_sdk::package_info!()
            .param("prefix", "key prefix (default \"vc:\")")
            .param("keys", "number of distinct cached items (default 10000)")
            .param(
                "skew",
                "Zipf exponent of key popularity: 0 uniform, 1 classic, >1 hotter (default 1.0)",
            )
            .param(
                "compute_ms",
                "time to rebuild a missed value, in ms (default 5)",
            )
            .param("ttl", "cache entry TTL in seconds (default 300)")
            .param("value_bytes", "size of a cached value (default 1024)")
            .param(
                "storm_every",
                "VU 0 deletes the hot key set every N of its iterations; 0 = never (default 1000)",
            )
            .param(
                "storm_keys",
                "how many of the hottest keys a storm deletes (default 100)",
            )
    }

    fn setup(config: &Config) -> Result<Self> {
        let keys: u64 = config.parse("keys", 10_000)?;
        if keys == 0 {
            return Err(Error::fatal("parameter `keys` must be at least 1"));
        }
        let skew: f64 = config.parse("skew", 1.0)?;
        if !(skew.is_finite() && skew >= 0.0) {
            return Err(Error::fatal("parameter `skew` must be a number >= 0"));
        }
        Ok(CacheAside {
            prefix: config.param_or("prefix", "vc:").to_owned(),
            leader: config.vu_id == 0,
            keys,
            skew,
            compute: Duration::from_millis(config.parse("compute_ms", 5)?),
            ttl_secs: config.parse("ttl", 300)?,
            value_bytes: config.parse("value_bytes", 1024)?,
            storm_every: config.parse("storm_every", 1000)?,
            storm_keys: config.parse::<u64>("storm_keys", 100)?.min(keys),
            hits_seen: 0,
            misses_seen: 0,
            hits: metrics::counter("cache_hits_total"),
            misses: metrics::counter("cache_misses_total"),
            read_errors: metrics::counter("cache_read_errors_total"),
            storms: metrics::counter("cache_storms_total"),
            hit_ratio: metrics::gauge("cache_hit_ratio_permille"),
        })
    }

    fn iteration(&mut self, n: u64) -> Result {
        if self.leader && self.storm_every > 0 && n > 0 && n.is_multiple_of(self.storm_every) {
            self.storm()?;
        }

        let key = self.key(random::zipf(self.keys, self.skew));
        let hit = match valkey::execute(cmd!("GET", key)) {
            Ok(reply) => !reply.is_nil(),
            Err(_) => {
                self.read_errors.inc();
                false
            }
        };
        if hit {
            self.hits_seen += 1;
            self.hits.inc();
        } else {
            self.misses_seen += 1;
            self.misses.inc();
            // Rebuild the value (a database query, an API call...), then fill the cache.
            clock::sleep(self.compute);
            let value = random::bytes(self.value_bytes);
            valkey::execute(cmd!("SET", key, value, "EX", self.ttl_secs))?;
        }
        let ratio = self.hits_seen * 1000 / (self.hits_seen + self.misses_seen);
        self.hit_ratio.set(ratio as i64);
        Ok(())
    }
}

impl CacheAside {
    fn key(&self, rank: u64) -> String {
        format!("{}cache:item:{rank}", self.prefix)
    }

    /// Deletes the hottest keys in one `DEL`.
    fn storm(&mut self) -> Result {
        let mut del = cmd!("DEL");
        del.extend((0..self.storm_keys).map(|rank| self.key(rank).into_bytes()));
        if self.storm_keys > 0 {
            valkey::execute(del).map_err(|e| Error::from(e).context("miss storm DEL"))?;
        }
        self.storms.inc();
        Ok(())
    }
}

export_scenario!(CacheAside);
