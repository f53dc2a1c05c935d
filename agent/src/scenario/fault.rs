//! Reads `[[fault]]` tables into [`FaultPlan`]s.

use std::time::Duration;

use crate::plan::fault::{Direction, FaultKind, FaultPlan, MemLimit, NodeSel, TYPES};
use crate::scenario::reader::Obj;
use crate::units::parse_bytes;

fn read_dir(o: &Obj) -> Direction {
    match o
        .choice("direction", &["upstream", "downstream", "both"])
        .map(|s| s.value)
        .as_deref()
    {
        Some("upstream") => Direction::Upstream,
        Some("downstream") => Direction::Downstream,
        _ => Direction::Both,
    }
}

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
    let node = match f.str("node") {
        None => NodeSel::Primary,
        Some(s) => match s.value.as_str() {
            "primary" => NodeSel::Primary,
            "replica" => NodeSel::Replica,
            "sentinel" => NodeSel::Sentinel,
            other => NodeSel::Named(other.to_string()),
        },
    };
    let restart_after = f.duration("restart_after").map(|d| d.value);
    let ty = ty?;
    let sub = |k: &'static str| f.table(k);
    let kind = match ty.value.as_str() {
        "failover" => FaultKind::Failover,
        "kill" => FaultKind::Kill { restart_after },
        "pause" => FaultKind::Pause,
        "client-pause" => {
            let all = sub("client-pause").map(|t| {
                let m = t
                    .choice("mode", &["write", "all"])
                    .map(|s| s.value == "all")
                    .unwrap_or(false);
                t.finish();
                m
            });
            FaultKind::ClientPause {
                all: all.unwrap_or(false),
            }
        }
        "client-kill" => FaultKind::ClientKill,
        "debug-sleep" => FaultKind::DebugSleep,
        "memory" => {
            let t = sub("memory");
            let Some(t) = t else {
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
            FaultKind::Memory {
                maxmemory: limit?,
                policy,
            }
        }
        "idle-timeout" => {
            let t = sub("idle-timeout");
            let secs = t
                .as_ref()
                .and_then(|t| t.duration("timeout"))
                .map(|d| d.value.as_secs().max(1))
                .unwrap_or(1);
            if let Some(t) = t {
                t.finish();
            }
            FaultKind::IdleTimeout { seconds: secs }
        }
        "latency" => {
            let t = sub("latency");
            let (delay, jitter, direction) = match &t {
                Some(t) => (
                    t.duration("delay")
                        .map(|d| d.value)
                        .unwrap_or(Duration::from_millis(50)),
                    t.duration("jitter").map(|d| d.value).unwrap_or_default(),
                    read_dir(t),
                ),
                None => (Duration::from_millis(50), Duration::ZERO, Direction::Both),
            };
            if let Some(t) = t {
                t.finish();
            }
            FaultKind::Latency {
                delay,
                jitter,
                direction,
            }
        }
        "bandwidth" => {
            let t = sub("bandwidth");
            let mut rate = 64 * 1024;
            let mut direction = Direction::Both;
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
        "reset" => FaultKind::Reset,
        "blackhole" => FaultKind::Blackhole,
        "slow-close" => {
            let t = sub("slow-close");
            let d = t
                .as_ref()
                .and_then(|t| t.duration("delay"))
                .map(|d| d.value)
                .unwrap_or(Duration::from_secs(1));
            if let Some(t) = t {
                t.finish();
            }
            FaultKind::SlowClose { delay: d }
        }
        "limit-data" => {
            let t = sub("limit-data");
            let b = t
                .as_ref()
                .and_then(|t| t.str("bytes"))
                .and_then(|s| parse_bytes(&s.value))
                .unwrap_or(64 * 1024);
            if let Some(t) = t {
                t.finish();
            }
            FaultKind::LimitData { bytes: b }
        }
        "partition" => FaultKind::Partition,
        _ => return None,
    };
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
    if restart_after.is_some() && !matches!(kind, FaultKind::Kill { .. }) {
        f.ctx.error(
            &f.span,
            "`restart_after` only applies to type = \"kill\"",
            None,
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
    Some(FaultPlan {
        index,
        name: name.unwrap_or_else(|| kind.type_name().to_string()),
        kind,
        at: at?.value,
        duration,
        every,
        node,
        span: f.span.clone(),
    })
}
