//! Histories: every operation of a safety workload as it happened, Jepsen-style — an `invoke`,
//! then `ok`, `fail` (certainly did not happen) or `info` (may or may not have happened) — with
//! the agent, the client, the key, the value (token, fencing number, message id, count) and both
//! clocks. One JSON object per line, one file per workload per agent (`history/<workload>.jsonl`
//! in `--out`). The oracles' checkers (`crate::check`) read these, so `merge` can check the
//! histories of every agent of a sharded run together.
//!
//! A line:
//!
//! ```json
//! {"type":"ok","f":"acquire","process":"3f9a…/2","key":"vc:locks:lock:1","value":"<token>",
//!  "fence":41,"mono":81234567890,"wall":1733220000123456789,"host":"<boot id>"}
//! ```
//!
//! `mono` is CLOCK_MONOTONIC (ns): comparable between processes of one host (`host` is the
//! kernel's boot id). `wall` is the Unix time (ns): comparable between hosts to within their clock
//! skew. A leaf: plain data and serde.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What an entry says about its operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Type {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(rename = "type")]
    pub kind: Type,
    /// The operation: `acquire`, `release`, `extend`, `admit`, `add`, `read`.
    pub f: String,
    /// `<agent>/<client>`: who did it.
    pub process: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// A fencing token (locks) or the counter a limiter returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<i64>,
    /// When the operation was sent (ns, CLOCK_MONOTONIC), for entries that end one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<u64>,
    /// The validity a limiter gave its window key (ms), from when it set it (`sent` of the
    /// `EXPIRE`, in `aux`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux: Option<u64>,
    pub mono: u64,
    pub wall: u64,
    pub host: String,
}

/// One workload's history, appended by its clients.
pub struct History {
    /// `<agent id>` for `process`.
    agent: String,
    host: String,
    entries: Mutex<Vec<Entry>>,
}

impl History {
    pub fn new(agent: &str) -> History {
        History {
            agent: agent.to_string(),
            host: boot_id(),
            entries: Mutex::new(vec![]),
        }
    }

    /// The `process` of client `client` of this agent.
    pub fn process(&self, client: u32) -> String {
        format!("{}/{client}", self.agent)
    }

    /// Append an entry stamped now (both clocks), filled in by `fill`.
    pub fn push(&self, kind: Type, f: &str, client: u32, fill: impl FnOnce(&mut Entry)) {
        let (mono, wall) = now();
        self.append(kind, f, client, mono, wall, fill);
    }

    /// Append an entry stamped at an earlier `mono` reading; its wall time is derived from one
    /// reading of both clocks now (a monotonic reading taken after the wall one would move it
    /// earlier by any preemption in between).
    pub fn push_at(
        &self,
        kind: Type,
        f: &str,
        client: u32,
        mono: u64,
        fill: impl FnOnce(&mut Entry),
    ) {
        let (now_mono, now_wall) = now();
        let wall = now_wall.saturating_sub(now_mono.saturating_sub(mono));
        self.append(kind, f, client, mono, wall, fill);
    }

    fn append(
        &self,
        kind: Type,
        f: &str,
        client: u32,
        mono: u64,
        wall: u64,
        fill: impl FnOnce(&mut Entry),
    ) {
        let mut e = Entry {
            kind,
            f: f.to_string(),
            process: self.process(client),
            key: None,
            value: None,
            fence: None,
            sent: None,
            ttl_ms: None,
            aux: None,
            mono,
            wall,
            host: self.host.clone(),
        };
        fill(&mut e);
        self.entries.lock().expect("history lock").push(e);
    }

    /// Every entry so far, in the order they were appended.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().expect("history lock").clone()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().expect("history lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// CLOCK_MONOTONIC and the Unix time, now (ns).
pub fn now() -> (u64, u64) {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (crate::clock::monotonic_ns(), wall)
}

/// The kernel's boot id: processes with the same one share CLOCK_MONOTONIC.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Entries as JSON lines.
pub fn to_jsonl(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 160);
    for e in entries {
        if serde_json::to_writer(&mut out, e).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

/// Entries from JSON lines; the line number (1-based) of the first one that is not an entry.
pub fn from_jsonl(text: &str) -> Result<Vec<Entry>, (usize, String)> {
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(line).map_err(|e| (i + 1, e.to_string()))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = History::new("a1");
        h.push(Type::Ok, "acquire", 3, |e| {
            e.key = Some("k".into());
            e.value = Some("tok".into());
            e.fence = Some(7);
        });
        h.push(Type::Invoke, "release", 3, |_| {});
        let text = String::from_utf8(to_jsonl(&h.entries())).unwrap();
        assert!(text.starts_with("{\"type\":\"ok\",\"f\":\"acquire\",\"process\":\"a1/3\""));
        let back = from_jsonl(&text).unwrap();
        assert_eq!(back, h.entries());
        assert_eq!(from_jsonl("{}\n").unwrap_err().0, 1);
    }
}
