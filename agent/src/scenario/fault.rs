//! Reads `[[fault]]` tables into [`FaultPlan`]s.

use std::time::Duration;

use crate::plan::command_table;
use crate::plan::fault::{
    Direction, FailoverMode, FaultKind, FaultPlan, Link, MemLimit, NodeSel, SwitchProcedure, TYPES,
};
use crate::plan::protocol::{AfterDrop, CommandClass, CommandFilter, ErrorCode, Eviction, FlipTo};
use crate::plan::rollout::{Batch, Clients, Pace, RollOrder, Rolling};
use crate::scenario::reader::Obj;
use crate::units::parse_bytes;

/// Read one `[[fault]]` table.
pub fn read(f: &Obj, index: usize) -> Option<FaultPlan> {
    let ty = f.choice("type", TYPES);
    if ty.is_none() && !f.has("type") {
        f.missing("type", Some(format!("one of: {}", TYPES.join(", "))));
    }
    let at = f.duration("at");
    if at.is_none() && !f.has("at") {
        f.missing(
            "at",
            Some("when the fault fires, from the run start: at = \"20s\"".into()),
        );
    }
    let duration = f.duration("duration").map(|d| d.value);
    let every = f.duration("every").map(|d| d.value);
    let name = f.str("name").map(|s| s.value);
    let node = f.str("node").map(|s| match s.value.as_str() {
        "primary" => NodeSel::Primary,
        "replica" => NodeSel::Replica,
        "sentinel" => NodeSel::Sentinel,
        other => NodeSel::Named(other.to_string()),
    });
    let restart_after = f.duration("restart_after").map(|d| d.value);
    let recover_within = f.duration("recover_within").map(|d| d.value);
    let link = match f
        .choice("link", &["clients", "replication"])
        .map(|s| s.value)
    {
        Some(l) if l == "replication" => Link::Replication,
        _ => Link::Clients,
    };
    let ty = ty?;
    let kind = read_kind(f, &ty.value, restart_after)?;
    if kind.needs_duration() && duration.is_none() {
        f.missing(
            "duration",
            Some(format!(
                "a {} fault lasts a while: duration = \"10s\"",
                kind.type_name()
            )),
        );
        return None;
    }
    if restart_after.is_some()
        && !matches!(
            kind,
            FaultKind::Kill { .. } | FaultKind::ConsumerCrash { .. }
        )
    {
        f.ctx.error(
            &f.span,
            "`restart_after` only applies to type = \"kill\" and \"consumer-crash\"",
            None,
        );
    }
    if link == Link::Replication && !kind.network() {
        f.ctx.error(
            &f.span,
            format!(
                "`link = \"replication\"` needs a network fault, not {}",
                kind.type_name()
            ),
            Some(
                "latency, bandwidth, reset, blackhole, slow-close, limit-data or partition".into(),
            ),
        );
    }
    if let (Some(e), Some(d)) = (every, duration) {
        if e <= d {
            f.ctx.error(
                &f.span,
                format!("`every` ({e:?}) must be longer than `duration` ({d:?})"),
                Some("a repeated fault must heal before it fires again".into()),
            );
        }
    }
    // Replication-link faults act on a replica's link; everything else defaults to the primary.
    let on_link = kind.on_replication_link(link);
    let node = node.unwrap_or(if on_link {
        NodeSel::Replica
    } else {
        NodeSel::Primary
    });
    if on_link && node == NodeSel::Primary {
        f.ctx.error(
            &f.span,
            "a replication-link fault acts on a replica's link to its primary",
            Some("use node = \"replica\" (the default) or a replica's name".into()),
        );
    }
    Some(FaultPlan {
        index,
        name: name.unwrap_or_else(|| kind.type_name().to_string()),
        kind,
        at: at?.value,
        duration,
        every,
        node,
        link,
        span: f.span.clone(),
        recover_within,
    })
}

/// The kind and its own table (`[fault.<type>]`).
fn read_kind(f: &Obj, ty: &str, restart_after: Option<Duration>) -> Option<FaultKind> {
    let sub = |k: &'static str| f.table(k);
    Some(match ty {
        "failover" => with_table(sub("failover"), |t| FaultKind::Failover {
            mode: read_failover(t),
        }),
        "kill" => FaultKind::Kill { restart_after },
        "pause" => FaultKind::Pause,
        "client-pause" => with_table(sub("client-pause"), read_client_pause),
        "client-kill" => FaultKind::ClientKill,
        "debug-sleep" => FaultKind::DebugSleep,
        "memory" => read_memory(f)?,
        "idle-timeout" => with_table(sub("idle-timeout"), read_idle_timeout),
        "latency" => with_table(sub("latency"), read_latency),
        "bandwidth" => read_bandwidth(sub("bandwidth")),
        "reset" => FaultKind::Reset,
        "blackhole" => FaultKind::Blackhole,
        "slow-close" => with_table(sub("slow-close"), read_slow_close),
        "limit-data" => with_table(sub("limit-data"), read_limit_data),
        "partition" => FaultKind::Partition,
        "replication-lag" => with_table(sub("replication-lag"), |t| {
            let (delay, jitter) = read_delay(t);
            FaultKind::ReplicationLag { delay, jitter }
        }),
        "replication-partition" => FaultKind::ReplicationPartition,
        "consumer-crash" => read_consumer_crash(f, restart_after)?,
        "consumer-stall" => read_consumer_stall(f)?,
        "switch" => with_table(sub("switch"), read_switch),
        "switch-back" => with_table(sub("switch-back"), |t| FaultKind::SwitchBack {
            max_pause: t
                .and_then(|t| t.duration("max_pause"))
                .map(|d| d.value)
                .unwrap_or(Duration::from_secs(5)),
        }),
        "error" => read_error(f)?,
        "drop-reply" => with_table(sub("drop-reply"), read_drop_reply),
        "command-latency" => with_table(sub("command-latency"), |t| {
            let (delay, jitter) = read_delay(t);
            FaultKind::CommandLatency {
                delay,
                jitter,
                filter: t.map(read_filter).unwrap_or_default(),
            }
        }),
        "idle-reap" => with_table(sub("idle-reap"), |t| FaultKind::IdleReap {
            timeout: t
                .and_then(|t| t.duration("timeout"))
                .map(|d| d.value.max(std::time::Duration::from_millis(100)))
                .unwrap_or(Duration::from_secs(1)),
        }),
        "flip" => read_flip(f)?,
        "provider-failover" => with_table(sub("provider-failover"), read_provider_failover),
        "memory-pressure" => with_table(sub("memory-pressure"), read_memory_pressure),
        _ => return None,
    })
}

/// Read a kind's own table, when the scenario has one, then finish it (its unknown keys are
/// reported after the known ones were read).
fn with_table<R>(t: Option<Obj>, read: impl FnOnce(Option<&Obj>) -> R) -> R {
    let r = read(t.as_ref());
    if let Some(t) = t {
        t.finish();
    }
    r
}

fn read_client_pause(t: Option<&Obj>) -> FaultKind {
    let all = t.map(|t| {
        t.choice("mode", &["write", "all"])
            .map(|s| s.value == "all")
            .unwrap_or(false)
    });
    FaultKind::ClientPause {
        all: all.unwrap_or(false),
    }
}

fn read_idle_timeout(t: Option<&Obj>) -> FaultKind {
    let secs = t
        .and_then(|t| t.duration("timeout"))
        .map(|d| d.value.as_secs().max(1))
        .unwrap_or(1);
    FaultKind::IdleTimeout { seconds: secs }
}

fn read_latency(t: Option<&Obj>) -> FaultKind {
    let (delay, jitter) = read_delay(t);
    let direction = t.map(read_dir).unwrap_or(Direction::Downstream);
    FaultKind::Latency {
        delay,
        jitter,
        direction,
    }
}

fn read_slow_close(t: Option<&Obj>) -> FaultKind {
    let d = t
        .and_then(|t| t.duration("delay"))
        .map(|d| d.value)
        .unwrap_or(Duration::from_secs(1));
    FaultKind::SlowClose { delay: d }
}

fn read_limit_data(t: Option<&Obj>) -> FaultKind {
    let b = t
        .and_then(|t| t.str("bytes"))
        .and_then(|s| parse_bytes(&s.value))
        .unwrap_or(64 * 1024);
    FaultKind::LimitData { bytes: b }
}

fn read_switch(t: Option<&Obj>) -> FaultKind {
    let Some(t) = t else {
        return FaultKind::Switch {
            procedure: SwitchProcedure::PauseAndDrain {
                max_pause: Duration::from_secs(5),
            },
        };
    };
    let max_pause = t
        .duration("max_pause")
        .map(|d| d.value)
        .unwrap_or(Duration::from_secs(5));
    let procedure = match t
        .choice("procedure", &["pause-and-drain", "repoint-only", "rolling"])
        .map(|p| p.value)
        .as_deref()
    {
        Some("repoint-only") => SwitchProcedure::RepointOnly,
        Some("rolling") => SwitchProcedure::Rolling(Box::new(read_rolling(t, max_pause))),
        _ => SwitchProcedure::PauseAndDrain { max_pause },
    };
    FaultKind::Switch { procedure }
}

/// `procedure = "rolling"`: the order, the stop of writes, the drain step, the default pace and
/// `[[fault.switch.rollout]]` groups (expanded over the workloads by the compiler).
fn read_rolling(t: &Obj, max_pause: Duration) -> Rolling {
    let order = match t
        .choice("order", RollOrder::NAMES)
        .map(|o| o.value)
        .as_deref()
    {
        Some("roll-first") => RollOrder::RollFirst,
        _ => RollOrder::StopFirst,
    };
    let pace = read_pace(t, Pace::DEFAULT);
    let mut overrides = vec![];
    for g in t.tables("rollout") {
        let workload = g.req_str("workload", "the workload whose clients this group moves");
        let clients = g
            .choice("clients", Clients::NAMES)
            .and_then(|c| Clients::parse(&c.value));
        let pods = g.uint("pods", 10_000).map(|p| p.value.max(1) as u32);
        let p = read_pace(&g, pace);
        if let (Some(w), Some(c)) = (workload, clients) {
            overrides.push((w.value, c, pods, p));
        } else if !g.has("clients") {
            g.missing(
                "clients",
                Some("\"producers\", \"consumers\" or \"all\"".into()),
            );
        }
        g.finish();
    }
    Rolling {
        order,
        stop_writes: t.bool("stop_writes").map(|b| b.value).unwrap_or(true),
        max_pause,
        drain: t.bool("drain").map(|b| b.value).unwrap_or(true),
        pace,
        overrides,
        groups: vec![],
    }
}

/// `batch`, `every` and `start` of a rollout group, each defaulting to `d`'s.
fn read_pace(t: &Obj, d: Pace) -> Pace {
    let batch = t.str("batch").and_then(|b| match Batch::parse(&b.value) {
        Some(x) => Some(x),
        None => {
            t.ctx.error(
                &b.span,
                format!("batch = {:?} is not a pod count or a percentage", b.value),
                Some("write batch = \"25%\" (maxUnavailable) or batch = \"1\"".into()),
            );
            None
        }
    });
    Pace {
        batch: batch.unwrap_or(d.batch),
        every: t.duration("every").map(|e| e.value).unwrap_or(d.every),
        start: t.duration("start").map(|e| e.value).unwrap_or(d.start),
    }
}

fn read_dir(o: &Obj) -> Direction {
    match o
        .choice("direction", &["upstream", "downstream", "both"])
        .map(|s| s.value)
        .as_deref()
    {
        Some("upstream") => Direction::Upstream,
        Some("both") => Direction::Both,
        // Toxiproxy's default stream: the delay is added once per request/reply round trip.
        _ => Direction::Downstream,
    }
}

fn read_delay(t: Option<&Obj>) -> (Duration, Duration) {
    match t {
        Some(t) => (
            t.duration("delay")
                .map(|d| d.value)
                .unwrap_or(Duration::from_millis(50)),
            t.duration("jitter").map(|d| d.value).unwrap_or_default(),
        ),
        None => (Duration::from_millis(50), Duration::ZERO),
    }
}

fn read_failover(t: Option<&Obj>) -> FailoverMode {
    let Some(t) = t else {
        return FailoverMode::Coordinated {
            sync_timeout: Duration::from_secs(5),
        };
    };
    let forced = t
        .choice("mode", &["coordinated", "forced"])
        .is_some_and(|m| m.value == "forced");
    let sync_timeout = t.duration("sync_timeout").map(|d| d.value);
    if forced {
        if let Some(s) = t.duration("sync_timeout") {
            t.ctx.error(
                &s.span,
                "`sync_timeout` only applies to mode = \"coordinated\"",
                None,
            );
        }
        FailoverMode::Forced
    } else {
        FailoverMode::Coordinated {
            sync_timeout: sync_timeout.unwrap_or(Duration::from_secs(5)),
        }
    }
}

fn read_memory(f: &Obj) -> Option<FaultKind> {
    let Some(t) = f.table("memory") else {
        f.missing("memory", Some("add [fault.memory] with maxmemory = \"4mb\" (or headroom = \"1mb\") and policy = \"allkeys-lru\"".into()));
        return None;
    };
    let policies = [
        "allkeys-lru",
        "volatile-lru",
        "allkeys-lfu",
        "volatile-lfu",
        "allkeys-random",
        "volatile-random",
        "volatile-ttl",
        "noeviction",
    ];
    let policy = t
        .choice("policy", &policies)
        .map(|s| s.value)
        .unwrap_or_else(|| "noeviction".into());
    let mm = t.str("maxmemory");
    let hr = t.str("headroom");
    let limit = match (mm, hr) {
        (Some(m), None) => parse_bytes(&m.value).map(MemLimit::Bytes).or_else(|| {
            t.ctx.error(
                &m.span,
                format!("maxmemory {:?} is not a size", m.value),
                Some("e.g. \"64mb\"".into()),
            );
            None
        }),
        (None, Some(h)) => parse_bytes(&h.value).map(MemLimit::UsedPlus).or_else(|| {
            t.ctx.error(
                &h.span,
                format!("headroom {:?} is not a size", h.value),
                Some("e.g. \"1mb\"".into()),
            );
            None
        }),
        (Some(m), Some(_)) => {
            t.ctx
                .error(&m.span, "give `maxmemory` or `headroom`, not both", None);
            None
        }
        (None, None) => {
            t.missing("maxmemory", Some("maxmemory = \"4mb\", or headroom = \"1mb\" above what is used when the fault fires".into()));
            None
        }
    };
    t.finish();
    Some(FaultKind::Memory {
        maxmemory: limit?,
        policy,
    })
}

fn read_bandwidth(t: Option<Obj>) -> FaultKind {
    let mut rate = 64 * 1024;
    let mut direction = Direction::Downstream;
    if let Some(t) = t {
        if let Some(r) = t.str("rate") {
            match parse_bytes(r.value.trim_end_matches("/s")) {
                Some(b) if b > 0 => rate = b,
                _ => t.ctx.error(
                    &r.span,
                    format!("rate {:?} is not a size per second", r.value),
                    Some("e.g. \"64kb/s\"".into()),
                ),
            }
        }
        direction = read_dir(&t);
        t.finish();
    }
    FaultKind::Bandwidth {
        bytes_per_sec: rate,
        direction,
    }
}

fn read_consumer_crash(f: &Obj, restart_after: Option<Duration>) -> Option<FaultKind> {
    let Some(t) = f.table("consumer-crash") else {
        f.missing(
            "consumer-crash",
            Some("add [fault.consumer-crash] with workload = \"<dramatiq workload id>\"".into()),
        );
        return None;
    };
    let workload = t.req_str(
        "workload",
        "the id of a dramatiq workload: workload = \"tasks\"",
    );
    let consumer = t
        .uint("consumer", 10_000)
        .map(|c| c.value as u32)
        .unwrap_or(0);
    t.finish();
    Some(FaultKind::ConsumerCrash {
        workload: workload?.value,
        consumer,
        restart_after,
    })
}

/// `[fault.consumer-stall]`: which dramatiq workload, which consumer (default: every one), and
/// whether they resume at the heal.
fn read_consumer_stall(f: &Obj) -> Option<FaultKind> {
    let Some(t) = f.table("consumer-stall") else {
        f.missing(
            "consumer-stall",
            Some("add [fault.consumer-stall] with workload = \"<dramatiq workload id>\"".into()),
        );
        return None;
    };
    let workload = t.req_str(
        "workload",
        "the id of a dramatiq workload: workload = \"tasks\"",
    );
    let consumer = t.uint("consumer", 10_000).map(|c| c.value as u32);
    let resume = t.bool("resume").map(|b| b.value).unwrap_or(true);
    t.finish();
    Some(FaultKind::ConsumerStall {
        workload: workload?.value,
        consumer,
        resume,
    })
}

/// The command filter of a RESP toxic's table: `commands`, `class`, `keys`, `rate`.
fn read_filter(t: &Obj) -> CommandFilter {
    let commands = t.str_list("commands").map(|l| {
        for c in &l.value {
            if !command_table::known(c) {
                t.ctx.error(
                    &l.span,
                    format!("{c:?} is not a Valkey command"),
                    Some("a command name as COMMAND lists it (\"SET\", \"EVALSHA\", \"CLIENT|SETINFO\")".into()),
                );
            }
        }
        l.value.iter().map(|c| c.to_ascii_uppercase()).collect()
    });
    let class = t
        .choice("class", CommandClass::NAMES)
        .and_then(|c| CommandClass::parse(&c.value));
    let keys = t.str("keys").map(|k| k.value);
    let rate = t.fraction("rate").map(|r| r.value).unwrap_or(1.0);
    CommandFilter {
        commands: commands.unwrap_or_default(),
        class,
        keys,
        rate,
    }
}

/// `[fault.error]`: the error (`reply`, required) and the filter.
fn read_error(f: &Obj) -> Option<FaultKind> {
    let names: Vec<&'static str> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
    let Some(t) = f.table("error") else {
        f.missing(
            "error",
            Some(format!(
                "add [fault.error] with reply = one of: {}",
                names.join(", ")
            )),
        );
        return None;
    };
    let reply = t
        .choice("reply", &names)
        .and_then(|r| ErrorCode::parse(&r.value));
    if reply.is_none() && !t.has("reply") {
        t.missing("reply", Some(format!("one of: {}", names.join(", "))));
    }
    let filter = read_filter(&t);
    t.finish();
    Some(FaultKind::Error {
        reply: reply?,
        filter,
    })
}

fn read_drop_reply(t: Option<&Obj>) -> FaultKind {
    let then = match t
        .and_then(|t| t.choice("then", &["close", "hang"]))
        .map(|s| s.value)
        .as_deref()
    {
        Some("hang") => AfterDrop::Hang,
        _ => AfterDrop::Close,
    };
    FaultKind::DropReply {
        filter: t.map(read_filter).unwrap_or_default(),
        then,
    }
}

/// Where a flip leads: a node of the embedded topology, or `host:port`.
fn flip_to(s: &str) -> FlipTo {
    if s.contains(':') {
        FlipTo::Addr(s.to_string())
    } else {
        FlipTo::Node(s.to_string())
    }
}

/// `[fault.flip]`: `to` is required.
fn read_flip(f: &Obj) -> Option<FaultKind> {
    let Some(t) = f.table("flip") else {
        f.missing(
            "flip",
            Some("add [fault.flip] with to = \"replica\" (a node) or to = \"host:port\"".into()),
        );
        return None;
    };
    let to = t.req_str(
        "to",
        "where the endpoint now leads: to = \"replica\" or to = \"10.0.0.7:6379\"",
    );
    t.finish();
    Some(FaultKind::Flip {
        to: flip_to(&to?.value),
    })
}

fn read_provider_failover(t: Option<&Obj>) -> FaultKind {
    let reply = match t
        .and_then(|t| t.choice("reply", &["LOADING", "READONLY"]))
        .map(|s| s.value)
        .as_deref()
    {
        Some("READONLY") => ErrorCode::ReadOnly,
        _ => ErrorCode::Loading,
    };
    let flip = t.and_then(|t| t.str("flip")).map(|s| flip_to(&s.value));
    FaultKind::ProviderFailover { reply, flip }
}

fn read_memory_pressure(t: Option<&Obj>) -> FaultKind {
    let policy = t
        .and_then(|t| t.choice("policy", Eviction::NAMES))
        .and_then(|p| Eviction::parse(&p.value))
        .unwrap_or(Eviction::NoEviction);
    let rate = t
        .and_then(|t| t.fraction("rate"))
        .map(|r| r.value)
        .unwrap_or(1.0);
    FaultKind::MemoryPressure { policy, rate }
}
