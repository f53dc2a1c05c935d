//! One key's state on both sides, compared: type, logical value, TTL. Pure: no I/O, no clock.
//!
//! Values are compared logically, never as `DUMP` payloads (the RDB encodings of Redis 7 and
//! Valkey 8/9 differ for equal values). Everything is bytes: keys, fields, members, values.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use serde::Serialize;

/// A sorted-set score: the text the server printed and the double it denotes.
///
/// Servers print the same double differently (`0.10000000000000001` from Redis 7.0's `%.17g`,
/// `0.1` from Valkey's shortest round-trip form), so scores are equal when their doubles are.
#[derive(Debug, Clone)]
pub struct Score {
    pub text: String,
    pub value: f64,
}

impl Score {
    /// Parse a printed score: decimal, exponent, `inf`, `+inf`, `-inf` (any case). NaN is no score.
    pub fn parse(text: &[u8]) -> Option<Score> {
        let t = std::str::from_utf8(text).ok()?.trim();
        let value: f64 = t.parse().ok()?;
        if value.is_nan() {
            return None;
        }
        Some(Score {
            text: t.to_string(),
            value,
        })
    }
}

impl PartialEq for Score {
    fn eq(&self, other: &Score) -> bool {
        self.value == other.value
    }
}

/// A stream consumer group as `XINFO GROUPS` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: Vec<u8>,
    pub last_delivered: String,
    /// Entries delivered and not acknowledged (the PEL's size).
    pub pending: i64,
}

/// A stream entry: its id and its field/value pairs in entry order.
pub type Entry = (String, Vec<Vec<u8>>);

/// A stream: entries in id order and its consumer groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub entries: Vec<Entry>,
    /// `Err` when `XINFO GROUPS` was refused (a provider may block it).
    pub groups: Result<Vec<Group>, String>,
}

/// What a key holds, as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// The key does not exist (or expired).
    Absent,
    String(Vec<u8>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    /// In list order.
    List(Vec<Vec<u8>>),
    Set(BTreeSet<Vec<u8>>),
    /// Member → score.
    ZSet(BTreeMap<Vec<u8>, Score>),
    Stream(Stream),
    /// A type this tool does not read (a module type such as `ReJSON-RL`): only its type and TTL
    /// are compared.
    Other(String),
    /// The key could not be read: the server's reason (e.g. it changed type between two reads).
    Unreadable(String),
}

impl Data {
    /// The type name as `TYPE` prints it.
    pub fn type_name(&self) -> &str {
        match self {
            Data::Absent => "none",
            Data::String(_) => "string",
            Data::Hash(_) => "hash",
            Data::List(_) => "list",
            Data::Set(_) => "set",
            Data::ZSet(_) => "zset",
            Data::Stream(_) => "stream",
            Data::Other(t) => t,
            Data::Unreadable(_) => "unreadable",
        }
    }
}

/// A key's time to live, as `PTTL` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    Persistent,
    Ms(i64),
}

impl Ttl {
    /// From a `PTTL` reply: -1 no TTL, -2 no key (`None`), else milliseconds.
    pub fn from_pttl(v: i64) -> Option<Ttl> {
        match v {
            -2 => None,
            v if v < 0 => Some(Ttl::Persistent),
            v => Some(Ttl::Ms(v)),
        }
    }
}

/// One key on one side.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyState {
    pub data: Data,
    pub ttl: Ttl,
}

impl KeyState {
    pub fn absent() -> KeyState {
        KeyState {
            data: Data::Absent,
            ttl: Ttl::Persistent,
        }
    }
    pub fn exists(&self) -> bool {
        !matches!(self.data, Data::Absent)
    }
}

/// The kind of a difference, one per reported key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// On the source, not on the destination.
    Missing,
    /// On the destination, not on the source.
    Extra,
    /// Both have the key with different types.
    Type,
    /// Same type, different value.
    Value,
    /// Same value, TTL differs beyond the tolerance (or one side has none).
    Ttl,
    /// Still different on the recheck, and the source itself changed between the two reads: the
    /// key is being written, so whether the destination is behind or wrong cannot be told.
    ChangedDuringVerify,
    /// Could not be compared (a read was refused or the key kept changing type).
    Unreadable,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Missing,
        Kind::Extra,
        Kind::Type,
        Kind::Value,
        Kind::Ttl,
        Kind::ChangedDuringVerify,
        Kind::Unreadable,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::Extra => "extra",
            Kind::Type => "type",
            Kind::Value => "value",
            Kind::Ttl => "ttl",
            Kind::ChangedDuringVerify => "changed-during-verify",
            Kind::Unreadable => "unreadable",
        }
    }
}

/// A difference found for one key: its kind and a short human description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    pub kind: Kind,
    pub detail: String,
}

fn d(kind: Kind, detail: String) -> Option<Diff> {
    Some(Diff { kind, detail })
}

/// Compare a key read on the source with the same key read on the destination. The first
/// difference found wins, in the order existence, type, value, TTL.
pub fn diff(src: &KeyState, dst: &KeyState, ttl_tolerance: Duration) -> Option<Diff> {
    let tol = ttl_tolerance.as_millis() as i64;
    let expiring = |s: &KeyState| matches!(s.ttl, Ttl::Ms(ms) if ms <= tol);
    match (&src.data, &dst.data) {
        (Data::Absent, Data::Absent) => return None,
        // The other side expired it already: within the TTL tolerance, not a difference.
        (_, Data::Absent) if expiring(src) => return None,
        (Data::Absent, _) if expiring(dst) => return None,
        (_, Data::Absent) => {
            return d(
                Kind::Missing,
                format!("{} on source, absent on destination", src.data.type_name()),
            )
        }
        (Data::Absent, _) => {
            return d(
                Kind::Extra,
                format!("{} on destination only", dst.data.type_name()),
            )
        }
        (Data::Unreadable(e), _) => return d(Kind::Unreadable, format!("on source: {e}")),
        (_, Data::Unreadable(e)) => return d(Kind::Unreadable, format!("on destination: {e}")),
        _ => {}
    }
    if src.data.type_name() != dst.data.type_name() {
        return d(
            Kind::Type,
            format!(
                "{} on source, {} on destination",
                src.data.type_name(),
                dst.data.type_name()
            ),
        );
    }
    if let Some(detail) = value_diff(&src.data, &dst.data) {
        return d(Kind::Value, detail);
    }
    ttl_diff(src.ttl, dst.ttl, ttl_tolerance).map(|detail| Diff {
        kind: Kind::Ttl,
        detail,
    })
}

/// Describe how two TTLs differ beyond `tolerance`; `None` when they agree.
pub fn ttl_diff(src: Ttl, dst: Ttl, tolerance: Duration) -> Option<String> {
    match (src, dst) {
        (Ttl::Persistent, Ttl::Persistent) => None,
        (Ttl::Ms(a), Ttl::Ms(b)) => {
            let tol = tolerance.as_millis() as i64;
            ((a - b).abs() > tol).then(|| {
                format!(
                    "ttl {} on source, {} on destination (tolerance {})",
                    secs(a),
                    secs(b),
                    secs(tol)
                )
            })
        }
        (Ttl::Persistent, Ttl::Ms(b)) => {
            Some(format!("no ttl on source, {} on destination", secs(b)))
        }
        (Ttl::Ms(a), Ttl::Persistent) => {
            Some(format!("ttl {} on source, none on destination", secs(a)))
        }
    }
}

fn secs(ms: i64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.3}s", ms as f64 / 1000.0)
    }
}

/// Describe how two values of the same type differ; `None` when they are equal.
pub fn value_diff(src: &Data, dst: &Data) -> Option<String> {
    match (src, dst) {
        (Data::String(a), Data::String(b)) => string_diff(a, b),
        (Data::Hash(a), Data::Hash(b)) => hash_diff(a, b),
        (Data::List(a), Data::List(b)) => list_diff(a, b),
        (Data::Set(a), Data::Set(b)) => set_diff(a, b),
        (Data::ZSet(a), Data::ZSet(b)) => zset_diff(a, b),
        (Data::Stream(a), Data::Stream(b)) => stream_diff(a, b),
        (Data::Other(_), Data::Other(_)) => None,
        _ => (src.type_name() != dst.type_name()).then(|| "types differ".to_string()),
    }
}

fn string_diff(a: &[u8], b: &[u8]) -> Option<String> {
    if a == b {
        return None;
    }
    if a.len() <= 40 && b.len() <= 40 {
        return Some(format!(
            "{} on source, {} on destination",
            repr(a, 40),
            repr(b, 40)
        ));
    }
    let at = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    Some(format!(
        "{} bytes on source, {} on destination; first difference at byte {at}",
        a.len(),
        b.len()
    ))
}

fn hash_diff(a: &BTreeMap<Vec<u8>, Vec<u8>>, b: &BTreeMap<Vec<u8>, Vec<u8>>) -> Option<String> {
    if a == b {
        return None;
    }
    let mut first = None;
    let mut n = 0usize;
    let keys: BTreeSet<&Vec<u8>> = a.keys().chain(b.keys()).collect();
    for k in keys {
        let what = match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y => continue,
            (Some(x), Some(y)) => format!(
                "field {}: {} on source, {} on destination",
                repr(k, 40),
                repr(x, 40),
                repr(y, 40)
            ),
            (Some(_), None) => format!("field {} only on source", repr(k, 40)),
            (None, _) => format!("field {} only on destination", repr(k, 40)),
        };
        n += 1;
        first.get_or_insert(what);
    }
    let first = first.unwrap_or_default();
    Some(if n == 1 {
        first
    } else {
        format!("{n} fields differ; first: {first}")
    })
}

fn list_diff(a: &[Vec<u8>], b: &[Vec<u8>]) -> Option<String> {
    if a == b {
        return None;
    }
    let mut sa: Vec<&Vec<u8>> = a.iter().collect();
    let mut sb: Vec<&Vec<u8>> = b.iter().collect();
    sa.sort_unstable();
    sb.sort_unstable();
    let at = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let where_ = match (a.get(at), b.get(at)) {
        (Some(x), Some(y)) => format!(
            "first difference at index {at}: {} on source, {} on destination",
            repr(x, 40),
            repr(y, 40)
        ),
        _ => format!("equal up to index {at}"),
    };
    Some(if sa == sb {
        format!("same elements in a different order; {where_}")
    } else if a.len() != b.len() {
        format!(
            "length {} on source, {} on destination; {where_}",
            a.len(),
            b.len()
        )
    } else {
        where_
    })
}

fn set_diff(a: &BTreeSet<Vec<u8>>, b: &BTreeSet<Vec<u8>>) -> Option<String> {
    if a == b {
        return None;
    }
    let only_a: Vec<&Vec<u8>> = a.difference(b).collect();
    let only_b: Vec<&Vec<u8>> = b.difference(a).collect();
    let eg = only_a
        .first()
        .map(|m| format!("{} only on source", repr(m, 40)))
        .or_else(|| {
            only_b
                .first()
                .map(|m| format!("{} only on destination", repr(m, 40)))
        })
        .unwrap_or_default();
    Some(format!(
        "{} members only on source, {} only on destination; e.g. {eg}",
        only_a.len(),
        only_b.len()
    ))
}

fn zset_diff(a: &BTreeMap<Vec<u8>, Score>, b: &BTreeMap<Vec<u8>, Score>) -> Option<String> {
    if a == b {
        return None;
    }
    let mut first = None;
    let mut n = 0usize;
    let keys: BTreeSet<&Vec<u8>> = a.keys().chain(b.keys()).collect();
    for m in keys {
        let what = match (a.get(m), b.get(m)) {
            (Some(x), Some(y)) if x == y => continue,
            (Some(x), Some(y)) => format!(
                "member {}: score {} on source, {} on destination",
                repr(m, 40),
                x.text,
                y.text
            ),
            (Some(_), None) => format!("member {} only on source", repr(m, 40)),
            (None, _) => format!("member {} only on destination", repr(m, 40)),
        };
        n += 1;
        first.get_or_insert(what);
    }
    let first = first.unwrap_or_default();
    Some(if n == 1 {
        first
    } else {
        format!("{n} members differ; first: {first}")
    })
}

fn stream_diff(a: &Stream, b: &Stream) -> Option<String> {
    if a.entries != b.entries {
        let at = a
            .entries
            .iter()
            .zip(&b.entries)
            .take_while(|(x, y)| x == y)
            .count();
        let what = match (a.entries.get(at), b.entries.get(at)) {
            (Some(x), Some(y)) if x.0 == y.0 => format!("entry {} has other fields", x.0),
            (Some(x), Some(y)) => format!("entry {} on source where destination has {}", x.0, y.0),
            (Some(x), None) => format!("entry {} only on source", x.0),
            (None, Some(y)) => format!("entry {} only on destination", y.0),
            (None, None) => String::new(),
        };
        return Some(format!(
            "{} entries on source, {} on destination; {what}",
            a.entries.len(),
            b.entries.len()
        ));
    }
    match (&a.groups, &b.groups) {
        (Ok(ga), Ok(gb)) if ga == gb => None,
        (Ok(ga), Ok(gb)) => {
            for g in ga {
                match gb.iter().find(|x| x.name == g.name) {
                    None => {
                        return Some(format!(
                            "consumer group {} only on source",
                            repr(&g.name, 40)
                        ))
                    }
                    Some(h) if h.last_delivered != g.last_delivered => {
                        return Some(format!(
                            "consumer group {}: last-delivered-id {} on source, {} on destination",
                            repr(&g.name, 40),
                            g.last_delivered,
                            h.last_delivered
                        ))
                    }
                    Some(h) if h.pending != g.pending => {
                        return Some(format!(
                            "consumer group {}: {} pending on source, {} on destination",
                            repr(&g.name, 40),
                            g.pending,
                            h.pending
                        ))
                    }
                    Some(_) => {}
                }
            }
            gb.iter()
                .find(|h| !ga.iter().any(|g| g.name == h.name))
                .map(|h| format!("consumer group {} only on destination", repr(&h.name, 40)))
        }
        // Refused on both sides: entries were compared, groups cannot be.
        (Err(_), Err(_)) => None,
        (Err(e), Ok(_)) => Some(format!("consumer groups unreadable on source: {e}")),
        (Ok(_), Err(e)) => Some(format!("consumer groups unreadable on destination: {e}")),
    }
}

/// What the source held at the first read of a differing key, kept for its recheck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstRead {
    pub fingerprint: u64,
    pub ttl: Ttl,
}

impl FirstRead {
    pub fn of(s: &KeyState) -> FirstRead {
        FirstRead {
            fingerprint: fingerprint(&s.data),
            ttl: s.ttl,
        }
    }
}

/// The verdict on a key read again `elapsed` after it first differed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// Equal now: it was in flight (or expired within the tolerance on one side).
    Settled,
    /// Gone from the source as its TTL said it would be: expired, not a difference.
    Expired,
    /// Still different; [`Kind::ChangedDuringVerify`] when the source itself changed between the
    /// two reads (its value, or its TTL beyond what `elapsed` explains).
    Differs(Diff),
}

/// Judge a recheck: `first` from the first read, `src`/`dst` read again `elapsed` later.
pub fn recheck(
    first: FirstRead,
    src: &KeyState,
    dst: &KeyState,
    elapsed: Duration,
    ttl_tolerance: Duration,
) -> Recheck {
    let Some(now) = diff(src, dst, ttl_tolerance) else {
        return Recheck::Settled;
    };
    let window = (elapsed + ttl_tolerance).as_millis();
    if !src.exists() && matches!(first.ttl, Ttl::Ms(ms) if ms.max(0) as u128 <= window) {
        return Recheck::Expired;
    }
    let source_changed = fingerprint(&src.data) != first.fingerprint
        || ttl_diff(first.ttl, src.ttl, elapsed + ttl_tolerance).is_some();
    Recheck::Differs(if source_changed {
        Diff {
            kind: Kind::ChangedDuringVerify,
            detail: format!(
                "the source changed between the two reads; now {}: {}",
                now.kind.name(),
                now.detail
            ),
        }
    } else {
        now
    })
}

/// A 64-bit digest of a value (type and content, not TTL), to tell on a recheck whether the
/// source changed without keeping the first read in memory. Equal values digest equally; scores
/// digest by their double (so `0.1` and `0.10000000000000001` are one score).
pub fn fingerprint(data: &Data) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    data.type_name().hash(&mut h);
    match data {
        Data::Absent | Data::Other(_) => {}
        Data::Unreadable(e) => e.hash(&mut h),
        Data::String(s) => s.hash(&mut h),
        Data::Hash(m) => m.hash(&mut h),
        Data::List(l) => l.hash(&mut h),
        Data::Set(s) => s.hash(&mut h),
        Data::ZSet(z) => {
            for (m, s) in z {
                m.hash(&mut h);
                // +0.0 normalises -0.0, which compares equal.
                (s.value + 0.0).to_bits().hash(&mut h);
            }
        }
        Data::Stream(s) => {
            s.entries.hash(&mut h);
            match &s.groups {
                Ok(g) => {
                    for g in g {
                        (&g.name, &g.last_delivered, g.pending).hash(&mut h);
                    }
                }
                Err(e) => e.hash(&mut h),
            }
        }
    }
    h.finish()
}

/// Bytes as redis-cli prints them: quoted, printable ASCII as is, the rest escaped, clipped to
/// `max` bytes with `…` and the full length. Keys in reports use [`key_repr`] (never clipped).
pub fn repr(b: &[u8], max: usize) -> String {
    let mut s = String::with_capacity(b.len().min(max) + 2);
    s.push('"');
    escape_into(&mut s, &b[..b.len().min(max)]);
    s.push('"');
    if b.len() > max {
        let _ = write!(s, "…({} bytes)", b.len());
    }
    s
}

/// A key for a report line or JSON: printable ASCII as is (backslash and quote escaped), other
/// bytes as `\xNN`. Reversible, so a binary key can be found again.
pub fn key_repr(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    escape_into(&mut s, b);
    s
}

fn escape_into(s: &mut String, b: &[u8]) {
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Duration = Duration::from_secs(2);

    fn b(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }
    fn st(data: Data) -> KeyState {
        KeyState {
            data,
            ttl: Ttl::Persistent,
        }
    }
    fn hash(pairs: &[(&str, &str)]) -> Data {
        Data::Hash(pairs.iter().map(|(k, v)| (b(k), b(v))).collect())
    }
    fn zset(pairs: &[(&str, &str)]) -> Data {
        Data::ZSet(
            pairs
                .iter()
                .map(|(m, s)| (b(m), Score::parse(s.as_bytes()).unwrap()))
                .collect(),
        )
    }
    fn kind(a: Data, bb: Data) -> Option<Kind> {
        diff(&st(a), &st(bb), TOL).map(|d| d.kind)
    }

    #[test]
    fn existence_and_type() {
        assert_eq!(kind(Data::Absent, Data::Absent), None);
        assert_eq!(
            kind(Data::String(b("x")), Data::Absent),
            Some(Kind::Missing)
        );
        assert_eq!(kind(Data::Absent, Data::String(b("x"))), Some(Kind::Extra));
        let t = diff(
            &st(Data::String(b("1"))),
            &st(Data::List(vec![b("1")])),
            TOL,
        )
        .unwrap();
        assert_eq!(t.kind, Kind::Type);
        assert_eq!(t.detail, "string on source, list on destination");
        assert_eq!(
            kind(Data::Unreadable("WRONGTYPE".into()), Data::String(b("x"))),
            Some(Kind::Unreadable)
        );
        // Expiring within the tolerance on one side, already expired on the other.
        let soon = KeyState {
            data: Data::String(b("x")),
            ttl: Ttl::Ms(1_500),
        };
        assert_eq!(diff(&soon, &KeyState::absent(), TOL), None);
        assert_eq!(diff(&KeyState::absent(), &soon, TOL), None);
        let later = KeyState {
            ttl: Ttl::Ms(2_500),
            ..soon.clone()
        };
        assert_eq!(
            diff(&later, &KeyState::absent(), TOL).map(|d| d.kind),
            Some(Kind::Missing)
        );
        // Module types: same type name is all that is compared.
        assert_eq!(
            kind(
                Data::Other("ReJSON-RL".into()),
                Data::Other("ReJSON-RL".into())
            ),
            None
        );
    }

    #[test]
    fn strings_are_binary_safe() {
        assert_eq!(
            kind(
                Data::String(vec![0, 255, 10]),
                Data::String(vec![0, 255, 10])
            ),
            None
        );
        let x = diff(
            &st(Data::String(vec![0, 255])),
            &st(Data::String(vec![0, 254])),
            TOL,
        )
        .unwrap();
        assert_eq!(x.kind, Kind::Value);
        assert_eq!(
            x.detail,
            r#""\x00\xff" on source, "\x00\xfe" on destination"#
        );
        let long_a = vec![b'a'; 100];
        let mut long_b = long_a.clone();
        long_b[70] = b'b';
        assert_eq!(
            string_diff(&long_a, &long_b).unwrap(),
            "100 bytes on source, 100 on destination; first difference at byte 70"
        );
    }

    #[test]
    fn hashes_compare_field_by_field() {
        assert_eq!(
            kind(
                hash(&[("a", "1"), ("b", "2")]),
                hash(&[("b", "2"), ("a", "1")])
            ),
            None
        );
        let x = value_diff(
            &hash(&[("a", "1"), ("b", "2")]),
            &hash(&[("a", "1"), ("b", "3")]),
        );
        assert_eq!(
            x.unwrap(),
            r#"field "b": "2" on source, "3" on destination"#
        );
        let x = value_diff(&hash(&[("a", "1"), ("b", "2")]), &hash(&[("c", "1")]));
        assert_eq!(
            x.unwrap(),
            r#"3 fields differ; first: field "a" only on source"#
        );
    }

    #[test]
    fn list_order_matters() {
        let l = |v: &[&str]| Data::List(v.iter().map(|s| b(s)).collect());
        assert_eq!(kind(l(&["a", "b", "c"]), l(&["a", "b", "c"])), None);
        let x = diff(&st(l(&["a", "b", "c"])), &st(l(&["c", "b", "a"])), TOL).unwrap();
        assert_eq!(x.kind, Kind::Value);
        assert_eq!(
            x.detail,
            r#"same elements in a different order; first difference at index 0: "a" on source, "c" on destination"#
        );
        assert_eq!(
            value_diff(&l(&["a", "b"]), &l(&["a"])).unwrap(),
            "length 2 on source, 1 on destination; equal up to index 1"
        );
        assert_eq!(
            value_diff(&l(&["a", "b"]), &l(&["a", "x"])).unwrap(),
            r#"first difference at index 1: "b" on source, "x" on destination"#
        );
    }

    #[test]
    fn sets_ignore_order() {
        let s = |v: &[&str]| Data::Set(v.iter().map(|x| b(x)).collect());
        assert_eq!(kind(s(&["a", "b"]), s(&["b", "a"])), None);
        assert_eq!(
            value_diff(&s(&["a", "b"]), &s(&["b", "c", "d"])).unwrap(),
            r#"1 members only on source, 2 only on destination; e.g. "a" only on source"#
        );
    }

    #[test]
    fn zset_scores_compare_as_doubles() {
        // Redis 7.0 prints %.17g, Valkey the shortest form: the same double.
        assert_eq!(
            kind(
                zset(&[("m", "0.10000000000000001"), ("n", "inf"), ("o", "-inf")]),
                zset(&[("m", "0.1"), ("n", "+inf"), ("o", "-INF")])
            ),
            None
        );
        assert_eq!(kind(zset(&[("m", "1")]), zset(&[("m", "1.0")])), None);
        let x = value_diff(
            &zset(&[("m", "1.5"), ("n", "inf")]),
            &zset(&[("m", "1.5"), ("n", "-inf")]),
        );
        assert_eq!(
            x.unwrap(),
            r#"member "n": score inf on source, -inf on destination"#
        );
        let x = value_diff(
            &zset(&[("m", "0.1")]),
            &zset(&[("m", "0.10000000000000002")]),
        );
        assert_eq!(
            x.unwrap(),
            r#"member "m": score 0.1 on source, 0.10000000000000002 on destination"#
        );
        assert!(Score::parse(b"nan").is_none());
        assert!(Score::parse(b"abc").is_none());
        assert_eq!(
            value_diff(&zset(&[("m", "1")]), &zset(&[])).unwrap(),
            r#"member "m" only on source"#
        );
    }

    #[test]
    fn streams_compare_entries_and_groups() {
        let g = |name: &str, last: &str, pending: i64| Group {
            name: b(name),
            last_delivered: last.into(),
            pending,
        };
        let s = |ids: &[&str], groups: Vec<Group>| {
            Data::Stream(Stream {
                entries: ids
                    .iter()
                    .map(|id| (id.to_string(), vec![b("f"), b(id)]))
                    .collect(),
                groups: Ok(groups),
            })
        };
        assert_eq!(
            kind(
                s(&["1-0", "2-0"], vec![g("g", "1-0", 1)]),
                s(&["1-0", "2-0"], vec![g("g", "1-0", 1)])
            ),
            None
        );
        assert_eq!(
            value_diff(&s(&["1-0", "2-0"], vec![]), &s(&["1-0"], vec![])).unwrap(),
            "2 entries on source, 1 on destination; entry 2-0 only on source"
        );
        assert_eq!(
            value_diff(
                &s(&["1-0"], vec![g("g", "1-0", 1)]),
                &s(&["1-0"], vec![g("g", "0-0", 0)])
            )
            .unwrap(),
            r#"consumer group "g": last-delivered-id 1-0 on source, 0-0 on destination"#
        );
        assert_eq!(
            value_diff(&s(&["1-0"], vec![g("g", "1-0", 1)]), &s(&["1-0"], vec![])).unwrap(),
            r#"consumer group "g" only on source"#
        );
        let refused = Data::Stream(Stream {
            entries: vec![],
            groups: Err("NOPERM".into()),
        });
        assert_eq!(value_diff(&refused, &refused), None);
    }

    #[test]
    fn ttl_tolerance() {
        let with = |ttl| KeyState {
            data: Data::String(b("v")),
            ttl,
        };
        // Within the tolerance, either direction, boundary included.
        assert_eq!(
            diff(&with(Ttl::Ms(10_000)), &with(Ttl::Ms(8_000)), TOL),
            None
        );
        assert_eq!(
            diff(&with(Ttl::Ms(10_000)), &with(Ttl::Ms(11_500)), TOL),
            None
        );
        let x = diff(&with(Ttl::Ms(10_000)), &with(Ttl::Ms(7_999)), TOL).unwrap();
        assert_eq!(x.kind, Kind::Ttl);
        assert_eq!(
            x.detail,
            "ttl 10s on source, 7.999s on destination (tolerance 2s)"
        );
        // TTL against none is a difference whatever the tolerance.
        assert_eq!(
            diff(&with(Ttl::Persistent), &with(Ttl::Ms(3_600_000)), TOL)
                .unwrap()
                .detail,
            "no ttl on source, 3600s on destination"
        );
        assert_eq!(
            diff(
                &with(Ttl::Ms(1_500)),
                &with(Ttl::Persistent),
                Duration::from_secs(3600)
            )
            .unwrap()
            .kind,
            Kind::Ttl
        );
        // A value difference wins over a TTL difference.
        let other = KeyState {
            data: Data::String(b("w")),
            ttl: Ttl::Persistent,
        };
        assert_eq!(
            diff(&with(Ttl::Ms(5)), &other, TOL).unwrap().kind,
            Kind::Value
        );
        assert_eq!(Ttl::from_pttl(-2), None);
        assert_eq!(Ttl::from_pttl(-1), Some(Ttl::Persistent));
        assert_eq!(Ttl::from_pttl(0), Some(Ttl::Ms(0)));
    }

    #[test]
    fn rechecks_tell_in_flight_from_changed_from_wrong() {
        let at = |v: &str, ttl| KeyState {
            data: Data::String(b(v)),
            ttl,
        };
        let p = Ttl::Persistent;
        let sec = Duration::from_secs(1);
        // Differed at first (destination behind), equal now: settled.
        let first = FirstRead::of(&at("new", p));
        assert_eq!(
            recheck(first, &at("new", p), &at("new", p), sec, TOL),
            Recheck::Settled
        );
        // Source unchanged, destination still wrong: the plain difference.
        assert_eq!(
            recheck(first, &at("new", p), &at("old", p), sec, TOL),
            Recheck::Differs(Diff {
                kind: Kind::Value,
                detail: r#""new" on source, "old" on destination"#.into()
            })
        );
        // The source moved on between the reads: changed during verify.
        match recheck(first, &at("newer", p), &at("new", p), sec, TOL) {
            Recheck::Differs(d) => {
                assert_eq!(d.kind, Kind::ChangedDuringVerify);
                assert!(
                    d.detail
                        .ends_with(r#"now value: "newer" on source, "new" on destination"#),
                    "{}",
                    d.detail
                );
            }
            other => panic!("{other:?}"),
        }
        // A TTL that only ran down is no change of the source.
        let first = FirstRead::of(&at("v", Ttl::Ms(100_000)));
        match recheck(
            first,
            &at("v", Ttl::Ms(99_000)),
            &at("v", Ttl::Ms(50_000)),
            sec,
            TOL,
        ) {
            Recheck::Differs(d) => assert_eq!(d.kind, Kind::Ttl),
            other => panic!("{other:?}"),
        }
        // A TTL that was reset is.
        match recheck(
            first,
            &at("v", Ttl::Ms(500_000)),
            &at("v", Ttl::Ms(50_000)),
            sec,
            TOL,
        ) {
            Recheck::Differs(d) => assert_eq!(d.kind, Kind::ChangedDuringVerify),
            other => panic!("{other:?}"),
        }
        // Expired on the source as its TTL said, still on the destination: not a difference.
        let first = FirstRead::of(&at("v", Ttl::Ms(2_500)));
        assert_eq!(
            recheck(
                first,
                &KeyState::absent(),
                &at("v", Ttl::Ms(2_400)),
                sec,
                TOL
            ),
            Recheck::Expired
        );
        // Deleted on the source (no TTL) while the destination keeps it: changed during verify.
        let first = FirstRead::of(&at("v", p));
        match recheck(first, &KeyState::absent(), &at("v", p), sec, TOL) {
            Recheck::Differs(d) => assert_eq!(d.kind, Kind::ChangedDuringVerify),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fingerprints_follow_values() {
        let a = zset(&[("m", "0.1"), ("z", "-0")]);
        let b2 = zset(&[("m", "0.10000000000000001"), ("z", "0")]);
        assert_eq!(fingerprint(&a), fingerprint(&b2));
        assert_ne!(
            fingerprint(&a),
            fingerprint(&zset(&[("m", "0.2"), ("z", "0")]))
        );
        assert_ne!(
            fingerprint(&Data::String(b("a"))),
            fingerprint(&Data::List(vec![b("a")]))
        );
        assert_eq!(
            fingerprint(&hash(&[("a", "1")])),
            fingerprint(&hash(&[("a", "1")]))
        );
    }

    #[test]
    fn keys_print_reversibly() {
        assert_eq!(key_repr(b"plain:key"), "plain:key");
        assert_eq!(key_repr(b"a\"b\\c\x00\xff\n"), r#"a\"b\\c\x00\xff\n"#);
        assert_eq!(repr(b"abcdef", 3), "\"abc\"…(6 bytes)");
    }
}
