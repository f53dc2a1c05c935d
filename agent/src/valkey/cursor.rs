//! Walking a cursor command (`SCAN`, `HSCAN`, `SSCAN`, `ZSCAN`) to its end, bounded: a walk that
//! has not come back to cursor 0 after its limit is an error, never a short list.

use super::{Cmd, Conn, Error, ErrorKind, Value};

/// Parse `[cursor, [item, …]]` (what `SCAN`, `HSCAN`, `SSCAN` and `ZSCAN` return).
pub fn parse_scan_reply(v: Value) -> Option<(String, Vec<Vec<u8>>)> {
    let mut parts = v.into_array()?.into_iter();
    let cursor = parts.next()?.as_str()?.to_string();
    let items = parts
        .next()?
        .into_array()?
        .into_iter()
        .map(|x| match x {
            Value::Bulk(b) => Some(b),
            other => other.as_bytes().map(<[u8]>::to_vec),
        })
        .collect::<Option<Vec<_>>>()?;
    Some((cursor, items))
}

/// Every item of a walk from cursor 0: `step(cursor)` is one call's command (e.g.
/// `SCAN <cursor> MATCH ns:* COUNT 1000`). At most `limit` calls.
pub async fn walk(
    conn: &mut Conn,
    limit: u64,
    step: impl Fn(&str) -> Cmd,
) -> Result<Vec<Vec<u8>>, Error> {
    let mut out = vec![];
    let mut cursor = "0".to_string();
    for _ in 0..limit {
        let v = conn.request(&step(&cursor)).await?;
        let (next, items) = parse_scan_reply(v)
            .ok_or_else(|| Error::new(ErrorKind::Other, "unexpected reply to a cursor command"))?;
        out.extend(items);
        if next == "0" {
            return Ok(out);
        }
        cursor = next;
    }
    Err(Error::new(
        ErrorKind::Other,
        format!("a cursor walk had not ended after {limit} calls"),
    ))
}
