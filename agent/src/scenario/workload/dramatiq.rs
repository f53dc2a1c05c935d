//! Reads `[workload.dramatiq]`.

use std::time::Duration;

use crate::plan::*;
use crate::scenario::load::{merge_load, read_load};
use crate::scenario::reader::Obj;

pub fn read(
    w: &Obj,
    k: Option<&Obj>,
    load: Option<LoadModel>,
) -> Option<(DramatiqPlan, LoadModel)> {
    let Some(k) = k else {
        w.missing(
            "dramatiq",
            Some("add a [workload.dramatiq] table (queue, actors, producers, consumers, …)".into()),
        );
        return None;
    };
    let namespace = k
        .str("namespace")
        .map(|s| s.value)
        .unwrap_or_else(|| "dramatiq".into());
    let queue = k
        .str("queue")
        .map(|s| s.value)
        .unwrap_or_else(|| "default".into());
    if queue.ends_with(".DQ") || queue.ends_with(".XQ") || queue.is_empty() {
        k.ctx.error(
            &k.span,
            format!("queue {queue:?} must be a plain queue name (no .DQ/.XQ suffix)"),
            None,
        );
    }
    let actors = k
        .str_list("actors")
        .map(|a| a.value)
        .unwrap_or_else(|| vec!["process_chunk".into()]);
    if actors.is_empty() {
        k.ctx.error(
            &k.span,
            "`actors` is empty",
            Some("name at least one actor, e.g. actors = [\"process_chunk\"]".into()),
        );
    }
    let producers = k
        .uint("producers", 10_000)
        .map(|v| v.value as u32)
        .unwrap_or(1);
    let consumers = k
        .uint("consumers", 1_000)
        .map(|v| v.value as u32)
        .unwrap_or(1);
    let threads = k
        .uint("threads", 10_000)
        .map(|v| v.value as u32)
        .unwrap_or(8)
        .max(1);
    let prefetch = k
        .uint("prefetch", 65_535)
        .map(|v| v.value as u32)
        .unwrap_or(threads * 2)
        .max(1);
    let work = k
        .dur_dist("work")
        .unwrap_or(DurDist::Fixed(Duration::from_millis(5)));
    let payload_bytes = k
        .uint("payload_bytes", 16 << 20)
        .map(|v| v.value as usize)
        .unwrap_or(300);
    let delay_fraction = k.fraction("delay_fraction").map(|v| v.value).unwrap_or(0.0);
    let delay = k
        .duration("delay")
        .map(|d| d.value)
        .unwrap_or(Duration::from_secs(2));
    let fail_fraction = k.fraction("fail_fraction").map(|v| v.value).unwrap_or(0.0);
    let max_retries = k
        .uint("max_retries", 1000)
        .map(|v| v.value as u32)
        .unwrap_or(20);
    let min_backoff = k
        .duration("min_backoff")
        .map(|d| d.value)
        .unwrap_or(Duration::from_secs(15));
    let max_backoff = k
        .duration("max_backoff")
        .map(|d| d.value)
        .unwrap_or(Duration::from_secs(7 * 86400));
    let version = match k
        .choice("dramatiq_version", &["1", "2"])
        .map(|s| s.value)
        .as_deref()
    {
        Some("1") => 1,
        _ => 2,
    };
    let drain_timeout = k
        .duration("drain_timeout")
        .map(|d| d.value)
        .unwrap_or(Duration::from_secs(30));
    let consume_after = k
        .duration("consume_after")
        .map(|d| d.value)
        .unwrap_or(Duration::ZERO);
    let trace = k.str("trace").map(|s| std::path::PathBuf::from(s.value));
    let shared_queue = k.bool("shared_queue").map(|b| b.value).unwrap_or(false);
    let heartbeat_timeout = k
        .duration("heartbeat_timeout")
        .map(|d| d.value)
        .unwrap_or(Duration::from_secs(60))
        .max(Duration::from_millis(100));
    let ack_before_work = k
        .choice("ack", &["after-work", "before-work"])
        .is_some_and(|a| a.value == "before-work");
    let maintenance_chance = k
        .fraction("maintenance_chance")
        .map(|v| v.value)
        .unwrap_or(0.001);
    if producers == 0 && consumers == 0 {
        k.ctx.error(
            &k.span,
            "a dramatiq workload needs producers or consumers",
            Some("producers = 0 consumes only, consumers = 0 produces only".into()),
        );
    }
    let kload = read_load(k);
    let load = merge_load(w, load, kload, &k.span)?;
    Some((
        DramatiqPlan {
            namespace,
            queue,
            actors,
            producers,
            consumers,
            threads,
            prefetch,
            work,
            payload_bytes,
            delay_fraction,
            delay,
            fail_fraction,
            max_retries,
            min_backoff,
            max_backoff,
            version,
            drain_timeout,
            consume_after,
            trace,
            shared_queue,
            heartbeat_timeout,
            maintenance_chance,
            ack_before_work,
        },
        load,
    ))
}
