//! The agent's commands as the RESP proxy reads them: requests parsed from a client's bytes (a
//! pipeline is several in a row), each one's name, keys and kind (read, write, script, part of
//! the connection's handshake), from Valkey's own command table (`plan::command_table`).

use std::ops::Range;

use crate::plan::command_table::{self as table, Row};

/// One request: where each argument lies in the buffer, and how many bytes it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub args: Vec<Range<usize>>,
    pub len: usize,
}

/// The longest request line (a count or a length) or inline command the proxy accepts.
const MAX_LINE: usize = 64 * 1024;

/// Parse the first request in `buf`: `Ok(None)` when more bytes are needed. Multi-bulk requests
/// (what every client library sends) and inline commands (`PING\r\n`) both.
pub fn parse(buf: &[u8]) -> Result<Option<Request>, String> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        return Ok(inline(buf));
    }
    let Some((n, mut pos)) = number(buf, 1)? else {
        return Ok(None);
    };
    let n = usize::try_from(n.max(0)).map_err(|_| "bad multibulk count".to_string())?;
    if n > 1024 * 1024 {
        return Err(format!("multibulk count {n} is too large"));
    }
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        match buf.get(pos) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(c) => return Err(format!("expected '$', got {:?}", *c as char)),
        }
        let Some((len, after)) = number(buf, pos + 1)? else {
            return Ok(None);
        };
        let len = usize::try_from(len).map_err(|_| "bad bulk length".to_string())?;
        if buf.len() < after + len + 2 {
            return Ok(None);
        }
        args.push(after..after + len);
        pos = after + len + 2;
    }
    Ok(Some(Request { args, len: pos }))
}

/// An inline command: one line, arguments split on spaces.
fn inline(buf: &[u8]) -> Option<Request> {
    let end = buf.iter().position(|b| *b == b'\n')?;
    let line = if end > 0 && buf[end - 1] == b'\r' {
        end - 1
    } else {
        end
    };
    let mut args = vec![];
    let mut i = 0;
    while i < line {
        while i < line && buf[i] == b' ' {
            i += 1;
        }
        let start = i;
        while i < line && buf[i] != b' ' {
            i += 1;
        }
        if i > start {
            args.push(start..i);
        }
    }
    Some(Request { args, len: end + 1 })
}

/// A decimal line at `buf[at..]` ending in CRLF: the number and where the next line starts.
fn number(buf: &[u8], at: usize) -> Result<Option<(i64, usize)>, String> {
    let rest = buf.get(at..).unwrap_or(&[]);
    let Some(cr) = rest.iter().position(|b| *b == b'\r') else {
        if rest.len() > MAX_LINE {
            return Err("request line too long".into());
        }
        return Ok(None);
    };
    if rest.len() < cr + 2 {
        return Ok(None);
    }
    let n = std::str::from_utf8(&rest[..cr])
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| format!("bad number {:?}", String::from_utf8_lossy(&rest[..cr])))?;
    Ok(Some((n, at + cr + 2)))
}

/// One request, read: its arguments, its name and its row in the command table.
pub struct Command<'a> {
    pub args: Vec<&'a [u8]>,
    /// Lower case; `container|sub` for a subcommand the table knows.
    pub name: String,
    row: Option<&'static Row>,
}

impl<'a> Command<'a> {
    pub fn new(buf: &'a [u8], req: &Request) -> Command<'a> {
        let args: Vec<&[u8]> = req.args.iter().map(|r| &buf[r.clone()]).collect();
        let top = args
            .first()
            .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
            .unwrap_or_default();
        let sub = args
            .get(1)
            .map(|s| format!("{top}|{}", String::from_utf8_lossy(s).to_ascii_lowercase()))
            .and_then(|n| table::lookup(&n).map(|r| (n, r)));
        let (name, row) = match sub {
            Some((n, r)) => (n, Some(r)),
            None => {
                let r = table::lookup(&top);
                (top, r)
            }
        };
        Command { args, name, row }
    }

    /// The top-level command, lower case (`client` for `CLIENT SETINFO`).
    pub fn top(&self) -> &str {
        self.name.split('|').next().unwrap_or("")
    }

    fn flags(&self) -> u16 {
        self.row.map_or(0, |r| r.1)
    }

    fn has(&self, f: u16) -> bool {
        self.flags() & f != 0
    }

    pub fn is_script(&self) -> bool {
        self.has(table::SCRIPT)
    }

    /// Writes: the `write` flag, or a script that may write (`EVAL`, `EVALSHA`, `FCALL`: a script
    /// without flags is taken as writing, as Valkey does).
    pub fn is_write(&self) -> bool {
        self.has(table::WRITE) || (self.is_script() && !self.top().ends_with("_ro"))
    }

    pub fn is_read(&self) -> bool {
        self.has(table::READONLY)
    }

    /// Refused when memory is full: `denyoom`, or a script that may write.
    pub fn deny_oom(&self) -> bool {
        self.has(table::DENYOOM) || (self.is_script() && !self.top().ends_with("_ro"))
    }

    pub fn served_while_loading(&self) -> bool {
        self.has(table::LOADING)
    }

    pub fn served_stale(&self) -> bool {
        self.has(table::STALE)
    }

    pub fn served_while_busy(&self) -> bool {
        self.has(table::ALLOW_BUSY)
    }

    pub fn served_unauthenticated(&self) -> bool {
        self.has(table::NO_AUTH)
    }

    /// Enters pub/sub or MONITOR: from here on the server sends without being asked.
    pub fn starts_push(&self) -> bool {
        matches!(
            self.top(),
            "subscribe" | "psubscribe" | "ssubscribe" | "monitor"
        )
    }

    /// Part of opening a connection (`AUTH`, `HELLO`, `CLIENT SETINFO|SETNAME`, `SELECT`, …):
    /// never refused unless a filter names it, so a client can always connect.
    pub fn handshake(&self) -> bool {
        matches!(
            self.name.as_str(),
            "auth" | "hello" | "client|setinfo" | "client|setname" | "select" | "quit" | "reset"
        )
    }

    /// The name as a filter lists it: upper case, `CONTAINER|SUB` for a subcommand.
    pub fn upper_name(&self) -> String {
        self.name.to_ascii_uppercase()
    }

    /// The command's keys: `numkeys` keys for scripts, else the table's first/last/step.
    pub fn keys(&self) -> Vec<&'a [u8]> {
        let n = self.args.len();
        if self.is_script() {
            let numkeys = self
                .args
                .get(2)
                .and_then(|a| std::str::from_utf8(a).ok())
                .and_then(|s| s.parse::<usize>().ok())
                .unwrap_or(0);
            return self.args.iter().skip(3).take(numkeys).copied().collect();
        }
        let Some(&(_, _, first, last, step)) = self.row else {
            return vec![];
        };
        if first <= 0 || n == 0 {
            return vec![];
        }
        let last = if last < 0 {
            n as i32 + last
        } else {
            last.min(n as i32 - 1)
        };
        let step = step.max(1) as usize;
        let (first, last) = (first as usize, last.max(0) as usize);
        if first > last {
            return vec![];
        }
        (first..=last)
            .step_by(step)
            .filter_map(|i| self.args.get(i).copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(args: &[&str]) -> Vec<u8> {
        let mut v = vec![];
        crate::valkey::resp::encode_args(args, &mut v);
        v
    }

    fn cmd(buf: &[u8]) -> Command<'_> {
        let r = parse(buf).unwrap().unwrap();
        Command::new(buf, &r)
    }

    #[test]
    fn a_pipeline_parses_one_request_at_a_time_and_waits_for_the_rest() {
        let mut buf = enc(&["SET", "k", "v"]);
        buf.extend(enc(&["GET", "k"]));
        let a = parse(&buf).unwrap().unwrap();
        assert_eq!(a.args.len(), 3);
        let b = parse(&buf[a.len..]).unwrap().unwrap();
        assert_eq!(a.len + b.len, buf.len());
        for cut in 1..buf.len() - b.len {
            if cut < a.len {
                assert_eq!(parse(&buf[..cut]).unwrap(), None, "cut at {cut}");
            }
        }
        assert!(parse(b"*1\r\n:5\r\n").is_err());
        let i = parse(b"PING  hello\r\nx").unwrap().unwrap();
        assert_eq!((i.args.len(), i.len), (2, 13));
    }

    #[test]
    fn names_kinds_and_keys_come_from_the_command_table() {
        let b = enc(&["SET", "vc:k", "v", "EX", "5"]);
        let c = cmd(&b);
        assert!(c.is_write() && c.deny_oom() && !c.is_read() && !c.handshake());
        assert_eq!(c.keys(), vec![&b"vc:k"[..]]);
        let b = enc(&["evalsha", "abc", "2", "k1", "k2", "arg"]);
        let c = cmd(&b);
        assert!(c.is_script() && c.is_write() && c.deny_oom());
        assert_eq!(c.keys(), vec![&b"k1"[..], &b"k2"[..]]);
        let b = enc(&["MSET", "a", "1", "b", "2"]);
        assert_eq!(cmd(&b).keys(), vec![&b"a"[..], &b"b"[..]]);
        let b = enc(&["DEL", "a", "b", "c"]);
        assert_eq!(cmd(&b).keys().len(), 3);
        let b = enc(&["client", "SETINFO", "LIB-NAME", "x"]);
        let c = cmd(&b);
        assert_eq!(c.upper_name(), "CLIENT|SETINFO");
        assert!(c.handshake() && c.served_while_loading());
        let b = enc(&["GET", "k"]);
        let c = cmd(&b);
        assert!(c.is_read() && !c.served_while_loading() && !c.served_stale());
        let b = enc(&["SUBSCRIBE", "ch"]);
        assert!(cmd(&b).starts_push());
    }
}
