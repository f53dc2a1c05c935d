//! Valkey commands over the connection(s) the host owns for this VU.
//!
//! Commands are binary-safe argument lists, built with [`cmd!`](crate::cmd).
//! The host times every command; a failed command is an `Err(`[`CommandError`]`)`
//! that converts into a non-fatal [`Error`](crate::Error) with `?`.

use std::fmt;

use crate::__private::bindings::valkey_chaos::plugin::types::{self as raw, Node};
use crate::__private::bindings::valkey_chaos::plugin::valkey as raw_valkey;

/// Runs one command, e.g. `execute(cmd!("SET", key, value))`.
pub fn execute(command: impl AsRef<[Vec<u8>]>) -> Result<Reply, CommandError> {
    raw_valkey::execute(command.as_ref())
        .map(Reply::from_raw)
        .map_err(CommandError::from_raw)
}

/// Sends several commands in one round trip; one result per command, in order.
pub fn pipeline(commands: impl AsRef<[Vec<Vec<u8>>]>) -> Vec<Result<Reply, CommandError>> {
    raw_valkey::pipeline(commands.as_ref())
        .into_iter()
        .map(|r| r.map(Reply::from_raw).map_err(CommandError::from_raw))
        .collect()
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Error reply from the server (`ERR ...`, `WRONGTYPE ...`, `MOVED ...`), verbatim.
    Server(String),
    /// The host's per-command timeout fired.
    Timeout,
    /// Connection lost, refused or reset (possibly by an injected fault).
    Connection(String),
    /// Rejected by the host before sending (deny-list, bad arguments).
    Rejected(String),
}

impl CommandError {
    /// For a server error, its code: the first word (`"ERR"`, `"WRONGTYPE"`, `"NOSCRIPT"`...).
    pub fn server_code(&self) -> Option<&str> {
        match self {
            CommandError::Server(msg) => msg.split_whitespace().next(),
            _ => None,
        }
    }

    fn from_raw(raw: raw::CommandError) -> Self {
        match raw {
            raw::CommandError::Server(m) => CommandError::Server(m),
            raw::CommandError::Timeout => CommandError::Timeout,
            raw::CommandError::Connection(m) => CommandError::Connection(m),
            raw::CommandError::Rejected(m) => CommandError::Rejected(m),
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Server(m) => write!(f, "server error: {m}"),
            CommandError::Timeout => f.write_str("command timed out"),
            CommandError::Connection(m) => write!(f, "connection error: {m}"),
            CommandError::Rejected(m) => write!(f, "rejected by the host: {m}"),
        }
    }
}

impl std::error::Error for CommandError {}

/// A server reply (RESP3 shape; RESP2 replies map onto the same kinds).
///
/// The helpers on `Reply` look at the top-level value; use [`Reply::root`] to
/// walk arrays, sets and maps.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    nodes: Vec<Node>,
}

/// The kind of a reply value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Null (`$-1`, `*-1`, `_`).
    Nil,
    /// Simple string (`+OK`).
    Simple,
    /// Integer.
    Integer,
    /// Double (RESP3).
    Double,
    /// Boolean (RESP3).
    Boolean,
    /// Bulk string.
    Bulk,
    /// Big number (RESP3), as text.
    BigNumber,
    /// Verbatim string (RESP3).
    Verbatim,
    /// Array.
    Array,
    /// Set (RESP3).
    Set,
    /// Map (RESP3), walked with [`Value::pairs`].
    Map,
    /// Push message (RESP3).
    Push,
}

static NIL: Node = Node::Nil;

impl Reply {
    /// The top-level value.
    pub fn root(&self) -> Value<'_> {
        Value {
            nodes: &self.nodes,
            index: 0,
        }
    }

    /// See [`Value::kind`].
    pub fn kind(&self) -> Kind {
        self.root().kind()
    }

    /// See [`Value::is_nil`].
    pub fn is_nil(&self) -> bool {
        self.root().is_nil()
    }

    /// See [`Value::is_ok`].
    pub fn is_ok(&self) -> bool {
        self.root().is_ok()
    }

    /// See [`Value::as_int`].
    pub fn as_int(&self) -> Option<i64> {
        self.root().as_int()
    }

    /// See [`Value::as_f64`].
    pub fn as_f64(&self) -> Option<f64> {
        self.root().as_f64()
    }

    /// See [`Value::as_bool`].
    pub fn as_bool(&self) -> Option<bool> {
        self.root().as_bool()
    }

    /// See [`Value::as_bytes`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        self.root().as_bytes()
    }

    /// See [`Value::as_str`].
    pub fn as_str(&self) -> Option<&str> {
        self.root().as_str()
    }

    /// See [`Value::elements`].
    pub fn elements(&self) -> Option<Elements<'_>> {
        self.root().elements()
    }

    fn from_raw(raw: raw::Reply) -> Self {
        Reply { nodes: raw.nodes }
    }

    #[cfg(test)]
    pub(crate) fn from_nodes(nodes: Vec<Node>) -> Self {
        Reply { nodes }
    }
}

/// One value inside a [`Reply`].
#[derive(Debug, Clone, Copy)]
pub struct Value<'a> {
    nodes: &'a [Node],
    index: u32,
}

impl<'a> Value<'a> {
    /// An index the host got wrong reads as nil rather than panicking.
    fn node(&self) -> &'a Node {
        self.nodes.get(self.index as usize).unwrap_or(&NIL)
    }

    fn at(&self, index: u32) -> Value<'a> {
        Value {
            nodes: self.nodes,
            index,
        }
    }

    /// The kind of this value.
    pub fn kind(&self) -> Kind {
        match self.node() {
            Node::Nil => Kind::Nil,
            Node::Simple(_) => Kind::Simple,
            Node::Integer(_) => Kind::Integer,
            Node::Double(_) => Kind::Double,
            Node::Boolean(_) => Kind::Boolean,
            Node::Bulk(_) => Kind::Bulk,
            Node::BigNumber(_) => Kind::BigNumber,
            Node::Verbatim(_) => Kind::Verbatim,
            Node::Array(_) => Kind::Array,
            Node::Set(_) => Kind::Set,
            Node::Pairs(_) => Kind::Map,
            Node::Push(_) => Kind::Push,
        }
    }

    /// Whether this is null (e.g. `GET` of a missing key, `SET NX` that did not set).
    pub fn is_nil(&self) -> bool {
        matches!(self.node(), Node::Nil)
    }

    /// Whether this is the simple string `OK`.
    pub fn is_ok(&self) -> bool {
        matches!(self.node(), Node::Simple(s) if s == "OK")
    }

    /// An integer reply, or a string/bulk reply holding a decimal integer
    /// (`GET` of a counter).
    pub fn as_int(&self) -> Option<i64> {
        match self.node() {
            Node::Integer(i) => Some(*i),
            _ => std::str::from_utf8(self.as_bytes()?).ok()?.parse().ok(),
        }
    }

    /// A double, an integer, or a string holding a number (`ZSCORE`, `INCRBYFLOAT`).
    pub fn as_f64(&self) -> Option<f64> {
        match self.node() {
            Node::Double(d) => Some(*d),
            Node::Integer(i) => Some(*i as f64),
            _ => std::str::from_utf8(self.as_bytes()?).ok()?.parse().ok(),
        }
    }

    /// A boolean, or the integers 0 and 1 (`EXISTS`, `SISMEMBER` on RESP2).
    pub fn as_bool(&self) -> Option<bool> {
        match self.node() {
            Node::Boolean(b) => Some(*b),
            Node::Integer(0) => Some(false),
            Node::Integer(1) => Some(true),
            _ => None,
        }
    }

    /// The bytes of a bulk, simple, verbatim or big-number string.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.node() {
            Node::Bulk(b) => Some(b),
            Node::Simple(s) | Node::Verbatim(s) | Node::BigNumber(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// [`Value::as_bytes`] when they are UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        match self.node() {
            Node::Simple(s) | Node::Verbatim(s) | Node::BigNumber(s) => Some(s),
            Node::Bulk(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The elements of an array, set or push message.
    pub fn elements(&self) -> Option<Elements<'a>> {
        match self.node() {
            Node::Array(ix) | Node::Set(ix) | Node::Push(ix) => Some(Elements {
                value: *self,
                indices: ix.iter(),
            }),
            _ => None,
        }
    }

    /// Element `i` of an array, set or push message.
    pub fn get(&self, i: usize) -> Option<Value<'a>> {
        match self.node() {
            Node::Array(ix) | Node::Set(ix) | Node::Push(ix) => ix.get(i).map(|&j| self.at(j)),
            _ => None,
        }
    }

    /// The number of elements of an aggregate (pairs for a map), `None` for scalars.
    #[expect(
        clippy::len_without_is_empty,
        reason = "scalars have no length, hence the Option"
    )]
    pub fn len(&self) -> Option<usize> {
        match self.node() {
            Node::Array(ix) | Node::Set(ix) | Node::Push(ix) => Some(ix.len()),
            Node::Pairs(p) => Some(p.len()),
            _ => None,
        }
    }

    /// The (key, value) pairs of a map.
    pub fn pairs(&self) -> Option<Pairs<'a>> {
        match self.node() {
            Node::Pairs(p) => Some(Pairs {
                value: *self,
                pairs: p.iter(),
            }),
            _ => None,
        }
    }
}

/// Iterator over the elements of an aggregate [`Value`].
#[derive(Debug, Clone)]
pub struct Elements<'a> {
    value: Value<'a>,
    indices: std::slice::Iter<'a, u32>,
}

impl<'a> Iterator for Elements<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        self.indices.next().map(|&i| self.value.at(i))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.indices.size_hint()
    }
}

impl ExactSizeIterator for Elements<'_> {}

/// Iterator over the (key, value) pairs of a map [`Value`].
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    value: Value<'a>,
    pairs: std::slice::Iter<'a, (u32, u32)>,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (Value<'a>, Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        self.pairs
            .next()
            .map(|&(k, v)| (self.value.at(k), self.value.at(v)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.pairs.size_hint()
    }
}

impl ExactSizeIterator for Pairs<'_> {}

// `cmd!` support: autoref specialisation picks `AsRef<[u8]>` before `Display`.

/// A borrowed `cmd!` argument.
#[doc(hidden)]
pub struct ArgRef<'a, T: ?Sized>(pub &'a T);

/// `cmd!` argument as bytes (preferred).
#[doc(hidden)]
pub trait ArgBytes {
    fn __vc_arg(&self) -> Vec<u8>;
}

impl<T: ?Sized + AsRef<[u8]>> ArgBytes for ArgRef<'_, T> {
    fn __vc_arg(&self) -> Vec<u8> {
        self.0.as_ref().to_vec()
    }
}

/// `cmd!` argument formatted with `Display` (fallback).
#[doc(hidden)]
pub trait ArgDisplay {
    fn __vc_arg(&self) -> Vec<u8>;
}

impl<T: ?Sized + fmt::Display> ArgDisplay for &ArgRef<'_, T> {
    fn __vc_arg(&self) -> Vec<u8> {
        self.0.to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmd_mixes_bytes_and_display() {
        let key = String::from("vc:k");
        let bytes: Vec<u8> = vec![0, 1, 2];
        let n: i64 = -5;
        let c = crate::cmd!("SET", key, bytes, &key, b"xy", n, 1.5f64, 'c', 7usize,);
        let expect: Vec<&[u8]> = vec![
            b"SET",
            b"vc:k",
            &[0, 1, 2],
            b"vc:k",
            b"xy",
            b"-5",
            b"1.5",
            b"c",
            b"7",
        ];
        assert_eq!(c, expect);
        // nothing was moved
        assert_eq!((key.len(), bytes.len()), (4, 3));
    }

    #[test]
    fn scalar_helpers() {
        let int = Reply::from_nodes(vec![Node::Integer(3)]);
        assert_eq!(
            (int.as_int(), int.as_f64(), int.as_bool()),
            (Some(3), Some(3.0), None)
        );
        let bulk = Reply::from_nodes(vec![Node::Bulk(b"42".to_vec())]);
        assert_eq!(
            (bulk.as_int(), bulk.as_str(), bulk.as_bytes()),
            (Some(42), Some("42"), Some(&b"42"[..]))
        );
        let ok = Reply::from_nodes(vec![Node::Simple("OK".into())]);
        assert!(ok.is_ok() && !ok.is_nil());
        assert_eq!(ok.as_int(), None);
        let nil = Reply::from_nodes(vec![Node::Nil]);
        assert!(nil.is_nil() && nil.as_bytes().is_none());
        let empty = Reply::from_nodes(vec![]);
        assert!(empty.is_nil(), "an empty arena reads as nil");
        let binary = Reply::from_nodes(vec![Node::Bulk(vec![0xff, 0])]);
        assert_eq!(
            (binary.as_str(), binary.as_bytes()),
            (None, Some(&[0xff, 0][..]))
        );
    }

    #[test]
    fn walk_aggregates() {
        // [ "a", 1, {"k": nil} ]
        let r = Reply::from_nodes(vec![
            Node::Array(vec![1, 2, 3]),
            Node::Bulk(b"a".to_vec()),
            Node::Integer(1),
            Node::Pairs(vec![(4, 5)]),
            Node::Simple("k".into()),
            Node::Nil,
        ]);
        assert_eq!(r.kind(), Kind::Array);
        assert_eq!(r.root().len(), Some(3));
        let kinds: Vec<Kind> = r.elements().unwrap().map(|v| v.kind()).collect();
        assert_eq!(kinds, [Kind::Bulk, Kind::Integer, Kind::Map]);
        let map = r.root().get(2).unwrap();
        let (k, v) = map.pairs().unwrap().next().unwrap();
        assert_eq!((k.as_str(), v.is_nil()), (Some("k"), true));
        assert!(r.root().get(3).is_none());
    }

    #[test]
    fn bad_index_reads_as_nil() {
        let r = Reply::from_nodes(vec![Node::Array(vec![7])]);
        assert!(r.root().get(0).unwrap().is_nil());
    }

    #[test]
    fn server_code() {
        let e = CommandError::Server("WRONGTYPE Operation against a key".into());
        assert_eq!(e.server_code(), Some("WRONGTYPE"));
        assert_eq!(CommandError::Timeout.server_code(), None);
        assert_eq!(
            e.to_string(),
            "server error: WRONGTYPE Operation against a key"
        );
    }
}
