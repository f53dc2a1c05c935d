//! Dramatiq's Redis broker keys, read by name (its `dispatch.lua` contract, the same in 1.x and
//! 2.x): `{ns}:{q}` the ready list, `{ns}:{q}.msgs` the payloads, `{ns}:{q}.DQ` a delay queue (an
//! ordinary queue of its own), `{ns}:{q}.XQ` / `.XQ.msgs` the dead letters, `{ns}:__acks__.{w}.{q}`
//! what worker `w` fetched and has not acked, `{ns}:__heartbeats__` when each worker last called.
//! Pure.

use std::collections::BTreeSet;

/// What one key of a namespace is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// `{ns}:{q}`: rids ready to fetch (`q` may be a delay queue, `x.DQ`).
    Queue(String),
    /// `{ns}:{q}.msgs`: rid → payload.
    Payloads(String),
    /// `{ns}:{q}.XQ`: dead-lettered rids, scored by when.
    Dead(String),
    /// `{ns}:{q}.XQ.msgs`: their payloads.
    DeadPayloads(String),
    /// `{ns}:__acks__.{worker}.{q}`: fetched by `worker`, not acked.
    Acks { worker: String, queue: String },
    /// `{ns}:__heartbeats__`.
    Heartbeats,
    /// `{ns}:{q}.acks`: Dramatiq 1.x's legacy ack zset (left alone).
    LegacyAcks(String),
}

/// Classify `key` of namespace `ns` (`None`: not a key of that namespace).
pub fn classify(ns: &str, key: &str) -> Option<Key> {
    let rest = key.strip_prefix(ns)?.strip_prefix(':')?;
    if rest.is_empty() {
        return None;
    }
    if rest == "__heartbeats__" {
        return Some(Key::Heartbeats);
    }
    if let Some(a) = rest.strip_prefix("__acks__.") {
        // Worker ids are uuid4s (no dots); queue names may hold dots (`x.DQ`).
        let (worker, queue) = a.split_once('.')?;
        return Some(Key::Acks {
            worker: worker.to_string(),
            queue: queue.to_string(),
        });
    }
    let q = |suffix: &str| {
        rest.strip_suffix(suffix)
            .filter(|q| !q.is_empty())
            .map(str::to_string)
    };
    Some(if let Some(q) = q(".XQ.msgs") {
        Key::DeadPayloads(q)
    } else if let Some(q) = q(".XQ") {
        Key::Dead(q)
    } else if let Some(q) = q(".msgs") {
        Key::Payloads(q)
    } else if let Some(q) = q(".acks") {
        Key::LegacyAcks(q)
    } else {
        Key::Queue(rest.to_string())
    })
}

/// The key names of queue `q` in namespace `ns`.
pub struct Names {
    pub queue: String,
    pub payloads: String,
    pub dead: String,
    pub dead_payloads: String,
}

impl Names {
    pub fn of(ns: &str, q: &str) -> Names {
        Names {
            queue: format!("{ns}:{q}"),
            payloads: format!("{ns}:{q}.msgs"),
            dead: format!("{ns}:{q}.XQ"),
            dead_payloads: format!("{ns}:{q}.XQ.msgs"),
        }
    }
}

/// The key of worker `w`'s ack set for queue `q`.
pub fn acks_key(ns: &str, w: &str, q: &str) -> String {
    format!("{ns}:__acks__.{w}.{q}")
}

pub fn heartbeats_key(ns: &str) -> String {
    format!("{ns}:__heartbeats__")
}

/// What a namespace holds, from its key names: the queues (ready and delay queues alike, each
/// with whatever of its keys exist) and the ack sets, by (worker, queue).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub queues: BTreeSet<String>,
    /// Queues with dead letters (by their canonical name).
    pub dead: BTreeSet<String>,
    pub acks: BTreeSet<(String, String)>,
}

impl Namespace {
    pub fn of<'a>(ns: &str, keys: impl IntoIterator<Item = &'a str>) -> Namespace {
        let mut n = Namespace::default();
        for k in keys {
            match classify(ns, k) {
                Some(Key::Queue(q)) | Some(Key::Payloads(q)) => {
                    n.queues.insert(q);
                }
                Some(Key::Dead(q)) | Some(Key::DeadPayloads(q)) => {
                    n.dead.insert(q);
                }
                Some(Key::Acks { worker, queue }) => {
                    n.queues.insert(queue.clone());
                    n.acks.insert((worker, queue));
                }
                Some(Key::Heartbeats) | Some(Key::LegacyAcks(_)) | None => {}
            }
        }
        n
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty() && self.dead.is_empty()
    }
}

/// The `message_id` of a Dramatiq payload (compact JSON), when it is one; an lz4-compressed
/// payload (an encoder of the team's own) has none readable here.
pub fn message_id(payload: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    v.get("message_id")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classified_by_name() {
        let ns = "dramatiq";
        let k = |s: &str| classify(ns, s);
        assert_eq!(k("dramatiq:network"), Some(Key::Queue("network".into())));
        assert_eq!(
            k("dramatiq:network.DQ"),
            Some(Key::Queue("network.DQ".into()))
        );
        assert_eq!(
            k("dramatiq:network.DQ.msgs"),
            Some(Key::Payloads("network.DQ".into()))
        );
        assert_eq!(k("dramatiq:network.XQ"), Some(Key::Dead("network".into())));
        assert_eq!(
            k("dramatiq:network.XQ.msgs"),
            Some(Key::DeadPayloads("network".into()))
        );
        assert_eq!(
            k("dramatiq:__acks__.0b7e-41.network.DQ"),
            Some(Key::Acks {
                worker: "0b7e-41".into(),
                queue: "network.DQ".into()
            })
        );
        assert_eq!(k("dramatiq:__heartbeats__"), Some(Key::Heartbeats));
        assert_eq!(k("dramatiq:cpu.acks"), Some(Key::LegacyAcks("cpu".into())));
        assert_eq!(k("dramatiq-results:x"), None);
        assert_eq!(k("dramatiq:"), None);
        let n = Namespace::of(
            ns,
            [
                "dramatiq:network",
                "dramatiq:network.msgs",
                "dramatiq:cpu.DQ.msgs",
                "dramatiq:cpu.XQ",
                "dramatiq:__acks__.w1.cpu",
                "other",
            ],
        );
        let q: Vec<&str> = n.queues.iter().map(String::as_str).collect();
        assert_eq!(q, ["cpu", "cpu.DQ", "network"]);
        assert!(n.dead.contains("cpu"));
        assert!(n.acks.contains(&("w1".to_string(), "cpu".to_string())));
    }

    #[test]
    fn the_message_id_is_read_from_the_payload() {
        let p = br#"{"queue_name":"q","actor_name":"a","args":[],"kwargs":{},"options":{"redis_message_id":"r"},"message_id":"m-1","message_timestamp":1}"#;
        assert_eq!(message_id(p).as_deref(), Some("m-1"));
        assert_eq!(message_id(b"\x04\x22\x4d\x18lz4"), None);
    }
}
