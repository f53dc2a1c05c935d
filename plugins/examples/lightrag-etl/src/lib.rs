//! ECHO's audio-lightrag ETL pipeline done right: a per-conversation lock
//! with an owner token, pending-chunk counters and a follow-up work queue.
//!
//! One iteration is one ETL run for a random conversation (out of
//! `conversations`; fewer conversations = more contention between VUs):
//!
//! 1. Acquire `etl_lock_conv_<conv>` with `SET <token> NX PX lock_ms`. A
//!    loser skips the conversation (as ECHO's workers did) and counts the
//!    contention.
//! 2. `INCRBY coord:pending_chunks:<conv> <chunks>` + `EXPIRE 86400`.
//! 3. Per chunk: "work" (sleep `work_ms`), enqueue a transcription job
//!    (`RPUSH` + `LTRIM` to `queue_cap`, pipelined) and `DECR` the pending
//!    counter. A negative count (the key was lost, e.g. in a failover) is
//!    clamped with `SET 0`, as ECHO does, and counted. At 0 a finalize job is
//!    enqueued.
//! 4. Release with a compare-and-delete Lua script (`EVAL`), so a VU never
//!    deletes a lock that another VU took after this one's expired. A release
//!    that finds another token (or none) is a lost lock: counted and reported
//!    as a failed iteration. The lock is released on error paths too.
//!
//! Keys (under `prefix`): `etl_lock_conv_<conv>` (string, `lock_ms`),
//! `coord:pending_chunks:<conv>` (counter, 86400 s), `etl:queue:chunks` and
//! `etl:queue:finalize` (lists capped at `queue_cap`, no TTL: the agent's
//! cleanup removes them).

use std::time::Duration;

use valkey_chaos_sdk::{
    Config, Error, Info, Result, Scenario, clock, cmd, export_scenario, metrics, random, valkey,
};

/// Deletes KEYS[1] only if it still holds this owner's token ARGV[1].
const RELEASE_SCRIPT: &str = "\
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
else
    return 0
end";

/// TTL of the pending-chunk counter, as in ECHO.
const COUNTER_TTL_SECS: u32 = 86_400;

struct Etl {
    prefix: String,
    conversations: u64,
    chunks_min: u64,
    chunks_max: u64,
    work: Duration,
    lock_ms: u64,
    queue_cap: u64,
    acquired: metrics::Counter,
    contended: metrics::Counter,
    lost: metrics::Counter,
    negative: metrics::Counter,
    leftover: metrics::Counter,
    finalized: metrics::Counter,
    held: metrics::Histogram,
}

impl Scenario for Etl {
    fn describe() -> Info {
        valkey_chaos_sdk::package_info!()
            .param("prefix", "key prefix (default \"vc:\")")
            .param(
                "conversations",
                "conversations the VUs compete for (default 100)",
            )
            .param("chunks_min", "fewest chunks per ETL run (default 1)")
            .param("chunks_max", "most chunks per ETL run (default 8)")
            .param("work_ms", "processing time per chunk in ms (default 2)")
            .param("lock_ms", "lock lease in ms (default 30000)")
            .param("queue_cap", "length cap of the job lists (default 10000)")
    }

    fn setup(config: &Config) -> Result<Self> {
        let conversations: u64 = config.parse("conversations", 100)?;
        let chunks_min: u64 = config.parse("chunks_min", 1)?;
        let chunks_max: u64 = config.parse("chunks_max", 8)?;
        let lock_ms: u64 = config.parse("lock_ms", 30_000)?;
        if conversations == 0 || chunks_min == 0 || chunks_max < chunks_min || lock_ms == 0 {
            return Err(Error::fatal(
                "need conversations >= 1, 1 <= chunks_min <= chunks_max and lock_ms >= 1",
            ));
        }
        Ok(Etl {
            prefix: config.param_or("prefix", "vc:").to_owned(),
            conversations,
            chunks_min,
            chunks_max,
            work: Duration::from_millis(config.parse("work_ms", 2)?),
            lock_ms,
            queue_cap: config.parse::<u64>("queue_cap", 10_000)?.max(1),
            acquired: metrics::counter("etl_lock_acquired_total"),
            contended: metrics::counter("etl_lock_contended_total"),
            lost: metrics::counter("etl_lock_lost_total"),
            negative: metrics::counter("etl_pending_negative_total"),
            leftover: metrics::counter("etl_pending_leftover_total"),
            finalized: metrics::counter("etl_finalize_enqueued_total"),
            held: metrics::histogram("etl_lock_held_nanoseconds"),
        })
    }

    fn iteration(&mut self, _n: u64) -> Result {
        let conv = format!("conv-{:05}", random::below(self.conversations));
        let lock_key = format!("{}etl_lock_conv_{conv}", self.prefix);
        let token = random::token();

        let set = valkey::execute(cmd!("SET", lock_key, token, "NX", "PX", self.lock_ms))?;
        if set.is_nil() {
            // Another VU holds the lock: skip this conversation.
            self.contended.inc();
            return Ok(());
        }
        self.acquired.inc();
        let since = clock::now();

        let work = self.process(&conv);

        let release = valkey::execute(cmd!("EVAL", RELEASE_SCRIPT, 1, lock_key, token));
        self.held.record_duration(since.elapsed());
        work?;
        match release?.as_int() {
            Some(1) => Ok(()),
            _ => {
                self.lost.inc();
                Err(Error::new(format!(
                    "lock {lock_key} was lost before release"
                )))
            }
        }
    }
}

impl Etl {
    /// The work done under the lock.
    fn process(&self, conv: &str) -> Result {
        let pending_key = format!("{}coord:pending_chunks:{conv}", self.prefix);
        let chunks = random::range(self.chunks_min, self.chunks_max + 1);
        valkey::execute(cmd!("INCRBY", pending_key, chunks))?;
        valkey::execute(cmd!("EXPIRE", pending_key, COUNTER_TTL_SECS))?;

        let mut remaining = 0;
        for chunk in 0..chunks {
            clock::sleep(self.work);
            let job = format!("{{\"conversation\":\"{conv}\",\"chunk\":{chunk},\"of\":{chunks}}}");
            self.enqueue("chunks", &job)?;
            remaining = valkey::execute(cmd!("DECR", pending_key))?
                .as_int()
                .ok_or_else(|| Error::new("DECR did not return an integer"))?;
            if remaining < 0 {
                // The counter was lost while we held the lock: clamp like ECHO.
                self.negative.inc();
                valkey::execute(cmd!("SET", pending_key, 0, "EX", COUNTER_TTL_SECS))?;
                remaining = 0;
            }
        }
        if remaining > 0 {
            // Chunks left over from an earlier run that failed half-way or
            // from a holder that overlapped with us.
            self.leftover.inc();
        } else {
            self.enqueue("finalize", &format!("{{\"conversation\":\"{conv}\"}}"))?;
            self.finalized.inc();
        }
        Ok(())
    }

    /// `RPUSH` a job and cap the list, in one round trip.
    fn enqueue(&self, queue: &str, job: &str) -> Result {
        let list = format!("{}etl:queue:{queue}", self.prefix);
        let keep_from = -i64::try_from(self.queue_cap).unwrap_or(i64::MAX);
        for reply in
            valkey::pipeline([cmd!("RPUSH", list, job), cmd!("LTRIM", list, keep_from, -1)])
        {
            reply?;
        }
        Ok(())
    }
}

export_scenario!(Etl);
