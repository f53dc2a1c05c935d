//! Dramatiq's message JSON: the seven fields in order, compact separators, options in insertion
//! order (Python dict semantics), non-ASCII escaped like `json.dumps` with `ensure_ascii`.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub queue_name: String,
    pub actor_name: String,
    pub args: Vec<Value>,
    pub kwargs: Map<String, Value>,
    pub options: Map<String, Value>,
    pub message_id: String,
    pub message_timestamp: u64,
    /// True when it was found on a `.DQ` queue or carried an eta (not serialized).
    pub was_delayed: bool,
}

impl Message {
    pub fn new(queue: &str, actor: &str, args: Vec<Value>, message_id: String, ts: u64) -> Message {
        Message {
            queue_name: queue.into(),
            actor_name: actor.into(),
            args,
            kwargs: Map::new(),
            options: Map::new(),
            message_id,
            message_timestamp: ts,
            was_delayed: false,
        }
    }

    /// Set an option; an existing key keeps its position (a Python dict update).
    pub fn set_option(&mut self, k: &str, v: Value) {
        if k == "eta" {
            self.was_delayed = true;
        }
        self.options.insert(k.to_string(), v);
    }
    pub fn remove_option(&mut self, k: &str) {
        self.options.shift_remove(k);
    }
    pub fn option_str(&self, k: &str) -> Option<&str> {
        self.options.get(k).and_then(|v| v.as_str())
    }
    pub fn option_u64(&self, k: &str) -> Option<u64> {
        self.options
            .get(k)
            .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)))
    }

    /// `json.dumps(message, separators=(",", ":"))`.
    pub fn encode(&self) -> String {
        let mut o = String::with_capacity(256);
        o.push_str("{\"queue_name\":");
        push_str(&mut o, &self.queue_name);
        o.push_str(",\"actor_name\":");
        push_str(&mut o, &self.actor_name);
        o.push_str(",\"args\":");
        push_array(&mut o, &self.args);
        o.push_str(",\"kwargs\":");
        push_object(&mut o, &self.kwargs);
        o.push_str(",\"options\":");
        push_object(&mut o, &self.options);
        o.push_str(",\"message_id\":");
        push_str(&mut o, &self.message_id);
        o.push_str(",\"message_timestamp\":");
        o.push_str(&self.message_timestamp.to_string());
        o.push('}');
        o
    }

    /// Decode a message as a Dramatiq worker would: exactly the seven fields.
    pub fn decode(b: &[u8]) -> Result<Message, String> {
        let v: Map<String, Value> =
            serde_json::from_slice(b).map_err(|e| format!("not JSON: {e}"))?;
        const FIELDS: [&str; 7] = [
            "queue_name",
            "actor_name",
            "args",
            "kwargs",
            "options",
            "message_id",
            "message_timestamp",
        ];
        if let Some(extra) = v.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(format!("unexpected field {extra:?}"));
        }
        let s = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or_else(|| format!("missing {k}"))
        };
        let queue_name = s("queue_name")?;
        let options = v
            .get("options")
            .and_then(|x| x.as_object())
            .cloned()
            .unwrap_or_default();
        Ok(Message {
            was_delayed: queue_name.ends_with(".DQ") || options.contains_key("eta"),
            queue_name,
            actor_name: s("actor_name")?,
            args: v
                .get("args")
                .and_then(|x| x.as_array())
                .cloned()
                .unwrap_or_default(),
            kwargs: v
                .get("kwargs")
                .and_then(|x| x.as_object())
                .cloned()
                .unwrap_or_default(),
            options,
            message_id: s("message_id")?,
            message_timestamp: v
                .get("message_timestamp")
                .and_then(|x| x.as_u64())
                .ok_or("missing message_timestamp")?,
        })
    }
}

/// A producer's messages, written straight into bytes: what [`Message::encode`] writes for a
/// message with one string argument and the options `send()` sets (`redis_message_id`, then
/// `eta` when delayed), with the constant parts (queue, actors, payload) escaped once.
pub struct ProducerEncoder {
    /// `{"queue_name":"<q>","actor_name":` and the same for `<q>.DQ`.
    head: String,
    head_delayed: String,
    /// Each actor name, escaped and quoted.
    actors: Vec<String>,
    /// `,"args":["<payload>"],"kwargs":{},"options":{"redis_message_id":"`
    middle: String,
}

impl ProducerEncoder {
    pub fn new(queue: &str, actors: &[String], payload: &str) -> ProducerEncoder {
        let head = |q: &str| {
            let mut o = String::from("{\"queue_name\":");
            push_str(&mut o, q);
            o.push_str(",\"actor_name\":");
            o
        };
        let mut middle = String::from(",\"args\":[");
        push_str(&mut middle, payload);
        middle.push_str("],\"kwargs\":{},\"options\":{\"redis_message_id\":");
        ProducerEncoder {
            head: head(queue),
            head_delayed: head(&format!("{queue}.DQ")),
            actors: actors
                .iter()
                .map(|a| {
                    let mut o = String::new();
                    push_str(&mut o, a);
                    o
                })
                .collect(),
            middle,
        }
    }

    /// The message body for actor number `actor`, into `out` (cleared first). The ids are
    /// plain ASCII (UUIDs): written as they are.
    pub fn encode(
        &self,
        out: &mut Vec<u8>,
        actor: usize,
        message_id: &str,
        redis_message_id: &str,
        timestamp: u64,
        eta: Option<u64>,
    ) {
        let mut digits = [0u8; 20];
        out.clear();
        out.extend_from_slice(if eta.is_some() {
            self.head_delayed.as_bytes()
        } else {
            self.head.as_bytes()
        });
        out.extend_from_slice(self.actors[actor].as_bytes());
        out.extend_from_slice(self.middle.as_bytes());
        push_plain(out, redis_message_id);
        if let Some(eta) = eta {
            out.extend_from_slice(b",\"eta\":");
            out.extend_from_slice(crate::valkey::resp::uint_digits(&mut digits, eta));
        }
        out.extend_from_slice(b"},\"message_id\":");
        push_plain(out, message_id);
        out.extend_from_slice(b",\"message_timestamp\":");
        out.extend_from_slice(crate::valkey::resp::uint_digits(&mut digits, timestamp));
        out.push(b'}');
    }
}

/// A JSON string of printable ASCII without quotes or backslashes (checked in debug builds).
fn push_plain(out: &mut Vec<u8>, s: &str) {
    debug_assert!(s
        .bytes()
        .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'));
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

fn push_str(o: &mut String, s: &str) {
    // Runs of characters that need no escape are copied whole.
    let plain = |c: char| (' '..='~').contains(&c) && c != '"' && c != '\\';
    if s.chars().all(plain) {
        o.reserve(s.len() + 2);
        o.push('"');
        o.push_str(s);
        o.push('"');
        return;
    }
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '\u{08}' => o.push_str("\\b"),
            '\u{0c}' => o.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    o.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => o.push(c),
        }
    }
    o.push('"');
}

fn push_array(o: &mut String, a: &[Value]) {
    o.push('[');
    for (i, x) in a.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        push_value(o, x);
    }
    o.push(']');
}

fn push_object(o: &mut String, m: &Map<String, Value>) {
    o.push('{');
    for (i, (k, x)) in m.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        push_str(o, k);
        o.push(':');
        push_value(o, x);
    }
    o.push('}');
}

fn push_value(o: &mut String, v: &Value) {
    match v {
        Value::String(s) => push_str(o, s),
        Value::Array(a) => push_array(o, a),
        Value::Object(m) => push_object(o, m),
        other => o.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_python() {
        let mut m = Message::new(
            "default",
            "add",
            vec![1.into(), 2.into()],
            "309568c6-51f3-4b31-8b20-fb50b52160fa".into(),
            1795639378039,
        );
        m.set_option(
            "redis_message_id",
            "8078bee4-3df9-424d-98bd-b9592550e7f3".into(),
        );
        assert_eq!(
            m.encode(),
            r#"{"queue_name":"default","actor_name":"add","args":[1,2],"kwargs":{},"options":{"redis_message_id":"8078bee4-3df9-424d-98bd-b9592550e7f3"},"message_id":"309568c6-51f3-4b31-8b20-fb50b52160fa","message_timestamp":1795639378039}"#
        );
        let back = Message::decode(m.encode().as_bytes()).unwrap();
        assert_eq!(
            back.option_str("redis_message_id"),
            Some("8078bee4-3df9-424d-98bd-b9592550e7f3")
        );
        let mut u = Message::new("q", "é😀", vec![], "m".into(), 1);
        u.set_option("redis_message_id", "r".into());
        assert!(u.encode().contains(r#""actor_name":"\u00e9\ud83d\ude00""#));
    }

    #[test]
    fn options_keep_their_position() {
        let mut m = Message::new("q", "a", vec![], "m".into(), 1);
        m.set_option("redis_message_id", "r1".into());
        m.set_option("retries", 1.into());
        m.set_option("redis_message_id", "r2".into());
        m.set_option("eta", 5.into());
        assert!(m
            .encode()
            .contains(r#""options":{"redis_message_id":"r2","retries":1,"eta":5}"#));
    }

    #[test]
    fn the_producer_encoder_writes_what_encode_writes() {
        let actors: Vec<String> = vec!["process_chunk".into(), "é\"x\\😀".into()];
        for payload in [
            "",
            "plain payload 123",
            "quote\" back\\ nl\n tab\t ü 😀 \u{1}",
        ] {
            let enc = ProducerEncoder::new("etl q", &actors, payload);
            for (i, actor) in actors.iter().enumerate() {
                for eta in [None, Some(1795639379039u64)] {
                    let (mid, rid, ts) = ("309568c6-51f3", "8078bee4-3df9", 1795639378039u64);
                    let mut m = Message::new(
                        if eta.is_some() { "etl q.DQ" } else { "etl q" },
                        actor,
                        vec![Value::String(payload.into())],
                        mid.into(),
                        ts,
                    );
                    m.set_option("redis_message_id", rid.into());
                    if let Some(e) = eta {
                        m.set_option("eta", e.into());
                    }
                    let mut out = vec![];
                    enc.encode(&mut out, i, mid, rid, ts, eta);
                    assert_eq!(String::from_utf8(out).unwrap(), m.encode());
                }
            }
        }
    }

    #[test]
    fn rejects_extra_fields() {
        assert!(Message::decode(br#"{"queue_name":"q","actor_name":"a","args":[],"kwargs":{},"options":{},"message_id":"m","message_timestamp":1,"x":1}"#).is_err());
    }
}
