//! Reading the state of a batch of keys from one side, read-only: two pipelined round trips per
//! batch (`TYPE` + `PTTL` for every key, then the value reads by type, each pipeline one write),
//! then chunked follow-ups for the few keys larger than a chunk.
//!
//! | type   | first read (in the batch pipeline)        | follow-up while incomplete          |
//! |--------|-------------------------------------------|-------------------------------------|
//! | string | `GET`                                     | —                                   |
//! | hash   | `HLEN`, `HSCAN 0 COUNT chunk`             | `HSCAN cursor COUNT chunk`          |
//! | list   | `LLEN`, `LRANGE 0 chunk-1`                | `LRANGE i i+chunk-1`                |
//! | set    | `SCARD`, `SSCAN 0 COUNT chunk`            | `SSCAN cursor COUNT chunk`          |
//! | zset   | `ZCARD`, `ZRANGE 0 chunk-1 WITHSCORES`    | `ZRANGE i i+chunk-1 WITHSCORES`     |
//! | stream | `XLEN`, `XRANGE - + COUNT chunk`, `XINFO GROUPS` | `XRANGE (last + COUNT chunk` |
//!
//! Small hashes and sets (listpack/intset encodings) come back whole from the first `*SCAN`
//! whatever the `COUNT`; big ones are walked by cursor (duplicates a cursor walk may return
//! collapse in the map/set). Every follow-up loop is bounded by the size read first.
//! A server error on one key (it changed type between the two round trips, a refused command)
//! makes that key [`Data::Unreadable`]; only a connection failure is an `Err`.

use std::collections::{BTreeMap, BTreeSet};

use super::compare::{Data, Entry, Group, KeyState, Score, Stream, Ttl};
use super::scan::parse_scan_reply;
use crate::valkey::{Cmd, Conn, Error, ErrorKind, Value};

/// What the first round trip said a key is.
enum Shape {
    Absent,
    Type(String, Ttl),
    Unreadable(String),
}

/// A value read part-way, with what the follow-ups need.
enum Partial {
    Done(Data),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>, String, u64),
    Set(BTreeSet<Vec<u8>>, String, u64),
    List(Vec<Vec<u8>>, u64),
    ZSet(BTreeMap<Vec<u8>, Score>, u64, u64),
    Stream(Stream, u64),
}

/// Read `keys` on one connection. `chunk` bounds the elements asked for per request.
pub async fn read_states(
    conn: &mut Conn,
    keys: &[Vec<u8>],
    chunk: usize,
) -> Result<Vec<KeyState>, Error> {
    let chunk = chunk.max(1);
    if keys.is_empty() {
        return Ok(vec![]);
    }
    // Round trip 1: type and TTL of every key.
    let mut cmds = Vec::with_capacity(keys.len() * 2);
    for k in keys {
        cmds.push(Cmd::new("TYPE").arg(k));
        cmds.push(Cmd::new("PTTL").arg(k));
    }
    let shapes = shapes(conn.pipeline(&cmds).await?);

    // Round trip 2: the values, by type.
    let mut cmds = vec![];
    let mut spans = Vec::with_capacity(keys.len());
    for (k, s) in keys.iter().zip(&shapes) {
        let start = cmds.len();
        if let Shape::Type(ty, _) = s {
            value_reads(&mut cmds, ty, k, chunk);
        }
        spans.push(start..cmds.len());
    }
    let replies = if cmds.is_empty() {
        vec![]
    } else {
        conn.pipeline(&cmds).await?
    };
    let mut replies: Vec<Option<Result<Value, Error>>> = replies.into_iter().map(Some).collect();

    let mut out = Vec::with_capacity(keys.len());
    for ((k, shape), span) in keys.iter().zip(shapes).zip(spans) {
        let rs: Vec<Result<Value, Error>> = replies[span]
            .iter_mut()
            .map(|r| r.take().expect("each reply is taken once"))
            .collect();
        out.push(key_state(conn, k, shape, rs, chunk).await?);
    }
    Ok(out)
}

/// Each key's shape from the `TYPE` + `PTTL` replies, in pairs.
fn shapes(replies: Vec<Result<Value, Error>>) -> Vec<Shape> {
    let mut shapes = Vec::with_capacity(replies.len() / 2);
    let mut it = replies.into_iter();
    while let (Some(t), Some(p)) = (it.next(), it.next()) {
        shapes.push(match (t, p) {
            (Err(e), _) | (_, Err(e)) => Shape::Unreadable(e.msg),
            (Ok(t), Ok(p)) => {
                let ty = t.as_str().unwrap_or("none").to_string();
                match (ty.as_str(), p.as_int().and_then(Ttl::from_pttl)) {
                    ("none", _) | (_, None) => Shape::Absent,
                    (_, Some(ttl)) => Shape::Type(ty, ttl),
                }
            }
        });
    }
    shapes
}

/// The first reads of a key of type `ty` (the table at the top of this file).
fn value_reads(cmds: &mut Vec<Cmd>, ty: &str, k: &[u8], chunk: usize) {
    let last = (chunk - 1) as u64;
    match ty {
        "string" => cmds.push(Cmd::new("GET").arg(k)),
        "hash" => {
            cmds.push(Cmd::new("HLEN").arg(k));
            cmds.push(Cmd::new("HSCAN").arg(k).arg("0").arg("COUNT").arg(chunk));
        }
        "list" => {
            cmds.push(Cmd::new("LLEN").arg(k));
            cmds.push(Cmd::new("LRANGE").arg(k).arg(0u64).arg(last));
        }
        "set" => {
            cmds.push(Cmd::new("SCARD").arg(k));
            cmds.push(Cmd::new("SSCAN").arg(k).arg("0").arg("COUNT").arg(chunk));
        }
        "zset" => {
            cmds.push(Cmd::new("ZCARD").arg(k));
            cmds.push(
                Cmd::new("ZRANGE")
                    .arg(k)
                    .arg(0u64)
                    .arg(last)
                    .arg("WITHSCORES"),
            );
        }
        "stream" => {
            cmds.push(Cmd::new("XLEN").arg(k));
            cmds.push(
                Cmd::new("XRANGE")
                    .arg(k)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(chunk),
            );
            cmds.push(Cmd::new("XINFO").arg("GROUPS").arg(k));
        }
        _ => {}
    }
}

/// One key's state from its shape and its first reads `rs`, with the follow-ups it needs. A
/// server error makes the key unreadable; only a connection failure is an `Err`.
async fn key_state(
    conn: &mut Conn,
    k: &[u8],
    shape: Shape,
    rs: Vec<Result<Value, Error>>,
    chunk: usize,
) -> Result<KeyState, Error> {
    let (ty, ttl) = match shape {
        Shape::Absent => return Ok(KeyState::absent()),
        Shape::Unreadable(e) => {
            return Ok(KeyState {
                data: Data::Unreadable(e),
                ttl: Ttl::Persistent,
            })
        }
        Shape::Type(ty, ttl) => (ty, ttl),
    };
    let partial = match first_read(&ty, rs) {
        Ok(p) => p,
        Err(e) if is_fatal(&e, conn) => return Err(e),
        Err(e) => Partial::Done(Data::Unreadable(e.msg)),
    };
    let data = match finish(conn, k, partial, chunk).await {
        Ok(d) => d,
        Err(e) if is_fatal(&e, conn) => return Err(e),
        Err(e) => Data::Unreadable(e.msg),
    };
    Ok(match data {
        Data::Absent => KeyState::absent(),
        data => KeyState { data, ttl },
    })
}

/// A connection-level failure stops the verify; a server error reply concerns one key.
fn is_fatal(e: &Error, conn: &Conn) -> bool {
    conn.is_broken() || matches!(e.kind, ErrorKind::Connection | ErrorKind::Timeout)
}

fn bad(what: &str) -> Error {
    Error::new(ErrorKind::Other, format!("unexpected {what} reply"))
}

fn int(r: Result<Value, Error>, what: &str) -> Result<u64, Error> {
    r?.as_int()
        .map(|n| n.max(0) as u64)
        .ok_or_else(|| bad(what))
}

fn bytes_list(v: Value, what: &str) -> Result<Vec<Vec<u8>>, Error> {
    v.into_array()
        .ok_or_else(|| bad(what))?
        .into_iter()
        .map(|x| match x {
            Value::Bulk(b) => Ok(b),
            other => other
                .as_bytes()
                .map(<[u8]>::to_vec)
                .ok_or_else(|| bad(what)),
        })
        .collect()
}

fn pairs_into<T>(
    items: Vec<Vec<u8>>,
    out: &mut BTreeMap<Vec<u8>, T>,
    f: impl Fn(Vec<u8>) -> Result<T, Error>,
) -> Result<(), Error> {
    let mut it = items.into_iter();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        out.insert(a, f(b)?);
    }
    Ok(())
}

fn score(b: Vec<u8>) -> Result<Score, Error> {
    Score::parse(&b).ok_or_else(|| {
        Error::new(
            ErrorKind::Other,
            format!("unparsable score {:?}", String::from_utf8_lossy(&b)),
        )
    })
}

/// Parse `XRANGE` entries: `[[id, [field, value, …]], …]`.
fn entries(v: Value) -> Result<Vec<Entry>, Error> {
    v.into_array()
        .ok_or_else(|| bad("XRANGE"))?
        .into_iter()
        .map(|e| {
            let mut parts = e.into_array().ok_or_else(|| bad("XRANGE"))?.into_iter();
            let id = parts
                .next()
                .and_then(|i| i.as_str().map(str::to_string))
                .ok_or_else(|| bad("XRANGE"))?;
            let fields = match parts.next() {
                Some(Value::Nil) | None => vec![],
                Some(f) => bytes_list(f, "XRANGE")?,
            };
            Ok((id, fields))
        })
        .collect()
}

/// Parse `XINFO GROUPS`: one flat field/value array (or RESP3 map) per group.
fn groups(v: Value) -> Result<Vec<Group>, Error> {
    let mut out = vec![];
    for g in v.into_array().ok_or_else(|| bad("XINFO GROUPS"))? {
        let kv: Vec<(Value, Value)> = match g {
            Value::Map(m) => m,
            other => {
                let mut it = other
                    .into_array()
                    .ok_or_else(|| bad("XINFO GROUPS"))?
                    .into_iter();
                let mut kv = vec![];
                while let (Some(a), Some(b)) = (it.next(), it.next()) {
                    kv.push((a, b));
                }
                kv
            }
        };
        let get = |name: &str| {
            kv.iter()
                .find(|(k, _)| k.as_str() == Some(name))
                .map(|x| &x.1)
        };
        out.push(Group {
            name: get("name")
                .and_then(Value::as_bytes)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| bad("XINFO GROUPS"))?,
            last_delivered: get("last-delivered-id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            pending: get("pending").and_then(Value::as_int).unwrap_or(0),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Interpret the batch replies of one key.
fn first_read(ty: &str, rs: Vec<Result<Value, Error>>) -> Result<Partial, Error> {
    let mut rs = rs.into_iter();
    let mut next = || rs.next().unwrap_or(Ok(Value::Nil));
    Ok(match ty {
        "string" => match next()? {
            Value::Nil => Partial::Done(Data::Absent),
            v => Partial::Done(Data::String(
                v.as_bytes().ok_or_else(|| bad("GET"))?.to_vec(),
            )),
        },
        "hash" => {
            let len = int(next(), "HLEN")?;
            let (cursor, items) = parse_scan_reply(next()?).ok_or_else(|| bad("HSCAN"))?;
            if len == 0 {
                return Ok(Partial::Done(Data::Absent));
            }
            let mut m = BTreeMap::new();
            pairs_into(items, &mut m, Ok)?;
            Partial::Hash(m, cursor, len)
        }
        "set" => {
            let len = int(next(), "SCARD")?;
            let (cursor, items) = parse_scan_reply(next()?).ok_or_else(|| bad("SSCAN"))?;
            if len == 0 {
                return Ok(Partial::Done(Data::Absent));
            }
            Partial::Set(items.into_iter().collect(), cursor, len)
        }
        "list" => {
            let len = int(next(), "LLEN")?;
            let items = bytes_list(next()?, "LRANGE")?;
            if len == 0 {
                return Ok(Partial::Done(Data::Absent));
            }
            Partial::List(items, len)
        }
        "zset" => {
            let len = int(next(), "ZCARD")?;
            let items = bytes_list(next()?, "ZRANGE")?;
            if len == 0 {
                return Ok(Partial::Done(Data::Absent));
            }
            let got = (items.len() / 2) as u64;
            let mut m = BTreeMap::new();
            pairs_into(items, &mut m, score)?;
            Partial::ZSet(m, got, len)
        }
        "stream" => {
            let len = int(next(), "XLEN")?;
            let es = entries(next()?)?;
            let groups = match next() {
                Ok(v) => groups(v).map_err(|e| e.msg),
                // Deleted between the two round trips.
                Err(e) if e.msg.contains("no such key") => return Ok(Partial::Done(Data::Absent)),
                // Refused (a provider may block XINFO): entries are still compared.
                Err(e) => Err(e.msg),
            };
            Partial::Stream(
                Stream {
                    entries: es,
                    groups,
                },
                len,
            )
        }
        other => Partial::Done(Data::Other(other.to_string())),
    })
}

/// Follow-up reads until the value is complete (bounded by the size read first).
async fn finish(conn: &mut Conn, k: &[u8], p: Partial, chunk: usize) -> Result<Data, Error> {
    Ok(match p {
        Partial::Done(d) => d,
        Partial::Hash(mut m, cursor, len) => {
            scan_rest(conn, "HSCAN", k, cursor, len, chunk, |items| {
                pairs_into(items, &mut m, Ok)
            })
            .await?;
            Data::Hash(m)
        }
        Partial::Set(mut s, cursor, len) => {
            scan_rest(conn, "SSCAN", k, cursor, len, chunk, |items| {
                s.extend(items);
                Ok(())
            })
            .await?;
            Data::Set(s)
        }
        Partial::List(l, len) => Data::List(list_rest(conn, k, l, len, chunk).await?),
        Partial::ZSet(m, got, len) => Data::ZSet(zset_rest(conn, k, m, got, len, chunk).await?),
        Partial::Stream(s, len) => Data::Stream(stream_rest(conn, k, s, len, chunk).await?),
    })
}

/// Walk a hash or set (`cmd` is `HSCAN` or `SSCAN`) from `cursor` back to 0, handing each
/// reply's items to `add`; at most `len + 1000` calls.
async fn scan_rest(
    conn: &mut Conn,
    cmd: &'static str,
    k: &[u8],
    mut cursor: String,
    len: u64,
    chunk: usize,
    mut add: impl FnMut(Vec<Vec<u8>>) -> Result<(), Error>,
) -> Result<(), Error> {
    let limit = len + 1000;
    let mut calls = 0u64;
    while cursor != "0" {
        calls += 1;
        if calls > limit {
            return Err(walk_limit(cmd, limit));
        }
        let v = conn
            .request(
                &Cmd::new(cmd)
                    .arg(k)
                    .arg(cursor.as_str())
                    .arg("COUNT")
                    .arg(chunk),
            )
            .await?;
        let (cur, items) = parse_scan_reply(v).ok_or_else(|| bad(cmd))?;
        add(items)?;
        cursor = cur;
    }
    Ok(())
}

/// The rest of a list of `len` elements, a chunk per request.
async fn list_rest(
    conn: &mut Conn,
    k: &[u8],
    mut l: Vec<Vec<u8>>,
    len: u64,
    chunk: usize,
) -> Result<Vec<Vec<u8>>, Error> {
    let c = chunk as u64;
    // At most len/chunk more requests; a list that shrinks ends the walk early.
    while (l.len() as u64) < len {
        let from = l.len() as u64;
        let to = (from + c - 1).min(len - 1);
        let v = conn
            .request(&Cmd::new("LRANGE").arg(k).arg(from).arg(to))
            .await?;
        let items = bytes_list(v, "LRANGE")?;
        let n = items.len() as u64;
        l.extend(items);
        if n < to - from + 1 {
            break;
        }
    }
    Ok(l)
}

/// The rest of a sorted set of `len` members (`got` read so far), a chunk per request.
async fn zset_rest(
    conn: &mut Conn,
    k: &[u8],
    mut m: BTreeMap<Vec<u8>, Score>,
    mut got: u64,
    len: u64,
    chunk: usize,
) -> Result<BTreeMap<Vec<u8>, Score>, Error> {
    let c = chunk as u64;
    // At most len/chunk more requests; a sorted set that shrinks ends the walk early.
    while got < len {
        let from = got;
        let to = (from + c - 1).min(len - 1);
        let v = conn
            .request(
                &Cmd::new("ZRANGE")
                    .arg(k)
                    .arg(from)
                    .arg(to)
                    .arg("WITHSCORES"),
            )
            .await?;
        let items = bytes_list(v, "ZRANGE")?;
        let n = (items.len() / 2) as u64;
        pairs_into(items, &mut m, score)?;
        got += n;
        if n < to - from + 1 {
            break;
        }
    }
    Ok(m)
}

/// The rest of a stream of `len` entries, after the last entry read, a chunk per request.
async fn stream_rest(
    conn: &mut Conn,
    k: &[u8],
    mut s: Stream,
    len: u64,
    chunk: usize,
) -> Result<Stream, Error> {
    let c = chunk as u64;
    let mut calls = 0u64;
    let limit = len / c + 2;
    while s.entries.len() as u64 >= c * (calls + 1) && calls < limit {
        calls += 1;
        let last = s.entries.last().map(|e| e.0.clone()).unwrap_or_default();
        let v = conn
            .request(
                &Cmd::new("XRANGE")
                    .arg(k)
                    .arg(format!("({last}"))
                    .arg("+")
                    .arg("COUNT")
                    .arg(chunk),
            )
            .await?;
        let more = entries(v)?;
        if more.is_empty() {
            break;
        }
        s.entries.extend(more);
    }
    Ok(s)
}

fn walk_limit(cmd: &str, limit: u64) -> Error {
    Error::new(
        ErrorKind::Other,
        format!("{cmd} did not finish within {limit} calls"),
    )
}
