//! RESP2/RESP3 values: encoding commands and parsing replies, binary-safe.

use std::fmt;

/// One reply from the server (RESP2 and the RESP3 additions).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Simple(String),
    /// An error reply, verbatim (`ERR ...`, `READONLY ...`).
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Value>),
    Double(f64),
    Bool(bool),
    BigNumber(String),
    Verbatim(String),
    Map(Vec<(Value, Value)>),
    Set(Vec<Value>),
    Push(Vec<Value>),
}

impl Value {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            Value::Simple(s) => s.parse().ok(),
            _ => None,
        }
    }
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Simple(s) | Value::Verbatim(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }
    pub fn into_array(self) -> Option<Vec<Value>> {
        match self {
            Value::Array(v) | Value::Set(v) | Value::Push(v) => Some(v),
            _ => None,
        }
    }
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }
    pub fn is_ok(&self) -> bool {
        matches!(self, Value::Simple(s) if s == "OK")
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => write!(f, "(nil)"),
            Value::Simple(s) | Value::BigNumber(s) | Value::Verbatim(s) => write!(f, "{s}"),
            Value::Error(e) => write!(f, "(error) {e}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Bulk(b) => write!(f, "{}", String::from_utf8_lossy(b)),
            Value::Double(d) => write!(f, "{d}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Array(v) | Value::Set(v) | Value::Push(v) => {
                write!(f, "[")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{x}")?;
                }
                write!(f, "]")
            }
            Value::Map(m) => {
                write!(f, "{{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                write!(f, "}}")
            }
        }
    }
}

/// A command under construction: `Cmd::new("SET").arg(key).arg(value)`.
#[derive(Debug, Clone, Default)]
pub struct Cmd {
    args: Vec<Vec<u8>>,
}

impl Cmd {
    pub fn new(name: &str) -> Cmd {
        Cmd {
            args: vec![name.as_bytes().to_vec()],
        }
    }
    pub fn arg(mut self, a: impl ToArg) -> Cmd {
        self.args.push(a.to_arg());
        self
    }
    pub fn push(&mut self, a: impl ToArg) -> &mut Cmd {
        self.args.push(a.to_arg());
        self
    }
    pub fn from_args(args: Vec<Vec<u8>>) -> Cmd {
        Cmd { args }
    }
    pub fn args(&self) -> &[Vec<u8>] {
        &self.args
    }
    /// Upper-case command name (first argument), for metrics and deny lists.
    pub fn name(&self) -> String {
        self.args
            .first()
            .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
            .unwrap_or_default()
    }
    /// Append the RESP encoding of this command to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_args(&self.args, out)
    }
}

/// Encode any argument list as a RESP array of bulk strings.
pub fn encode_args<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    out.push(b'*');
    push_uint(out, args.len() as u64);
    out.extend_from_slice(b"\r\n");
    for a in args {
        let a = a.as_ref();
        out.push(b'$');
        push_uint(out, a.len() as u64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Append `n` in decimal.
pub fn push_uint(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(uint_digits(&mut buf, n));
}

/// `n` in decimal, written into `buf` (no allocation).
pub fn uint_digits(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Something that can be a command argument.
pub trait ToArg {
    fn to_arg(&self) -> Vec<u8>;
}
impl ToArg for &str {
    fn to_arg(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}
impl ToArg for String {
    fn to_arg(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}
impl ToArg for &String {
    fn to_arg(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}
impl ToArg for &[u8] {
    fn to_arg(&self) -> Vec<u8> {
        self.to_vec()
    }
}
impl ToArg for Vec<u8> {
    fn to_arg(&self) -> Vec<u8> {
        self.clone()
    }
}
impl ToArg for &Vec<u8> {
    fn to_arg(&self) -> Vec<u8> {
        (*self).clone()
    }
}
macro_rules! int_arg {
    ($($t:ty),*) => {$(impl ToArg for $t { fn to_arg(&self) -> Vec<u8> { self.to_string().into_bytes() } })*};
}
int_arg!(i64, u64, i32, u32, usize, f64);

/// Why a reply could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

/// Try to parse one complete value from `buf`. `Ok(None)` means more bytes are needed;
/// on success returns the value and the number of bytes it used.
pub fn parse(buf: &[u8]) -> Result<Option<(Value, usize)>, ProtocolError> {
    let mut pos = 0;
    match parse_at(buf, &mut pos, 0)? {
        Some(v) => Ok(Some((v, pos))),
        None => Ok(None),
    }
}

fn line<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let start = *pos;
    let rest = &buf[start..];
    let mut from = 0;
    // Bounded by the buffer: every iteration moves past one `\r`.
    while let Some(i) = rest[from..].iter().position(|b| *b == b'\r') {
        let cr = from + i;
        match rest.get(cr + 1) {
            Some(b'\n') => {
                *pos = start + cr + 2;
                return Some(&rest[..cr]);
            }
            Some(_) => from = cr + 1,
            None => return None,
        }
    }
    None
}

/// A decimal length or count, as RESP writes them (`-1` for nil).
fn len_of(l: &[u8]) -> Result<i64, ProtocolError> {
    let (neg, digits) = match l.split_first() {
        Some((b'-', d)) => (true, d),
        _ => (false, l),
    };
    if digits.is_empty() || digits.len() > 18 {
        return int_of(l);
    }
    let mut n: i64 = 0;
    for d in digits {
        if !d.is_ascii_digit() {
            return int_of(l);
        }
        n = n * 10 + (d - b'0') as i64;
    }
    Ok(if neg { -n } else { n })
}

/// One value stepped over by [`scan`]: the bytes it used and, for an error reply, its text.
pub type Scanned<'a> = (usize, Option<&'a [u8]>);

/// Step over one complete value in `buf` without building it: the bytes it uses and, when it
/// is an error reply, the error's text. `Ok(None)` means more bytes are needed.
pub fn scan(buf: &[u8]) -> Result<Option<Scanned<'_>>, ProtocolError> {
    let mut pos = 0;
    match scan_at(buf, &mut pos, 0)? {
        Some(err) => Ok(Some((pos, err))),
        None => Ok(None),
    }
}

/// `Some(None)`: a value was stepped over; `Some(Some(text))`: it was an error reply.
#[allow(clippy::type_complexity)]
fn scan_at<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    depth: usize,
) -> Result<Option<Option<&'a [u8]>>, ProtocolError> {
    if depth > 64 {
        return Err(ProtocolError("reply nested deeper than 64 levels".into()));
    }
    let Some(&kind) = buf.get(*pos) else {
        return Ok(None);
    };
    *pos += 1;
    let Some(l) = line(buf, pos) else {
        return Ok(None);
    };
    match kind {
        b'-' => Ok(Some(Some(l))),
        b'+' | b':' | b'_' | b'#' | b',' | b'(' => Ok(Some(None)),
        b'$' | b'=' | b'!' => {
            let n = len_of(l)?;
            if n < 0 {
                return Ok(Some(None));
            }
            let n = n as usize;
            if buf.len() < *pos + n + 2 {
                return Ok(None);
            }
            let data = &buf[*pos..*pos + n];
            *pos += n + 2;
            Ok(Some(if kind == b'!' { Some(data) } else { None }))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = len_of(l)?;
            let items = if matches!(kind, b'%' | b'|') {
                n.max(0) * 2
            } else {
                n.max(0)
            };
            for _ in 0..items {
                if scan_at(buf, pos, depth + 1)?.is_none() {
                    return Ok(None);
                }
            }
            if kind == b'|' {
                // Attributes precede the real reply.
                return scan_at(buf, pos, depth + 1);
            }
            Ok(Some(None))
        }
        other => Err(ProtocolError(format!(
            "unexpected reply type byte {:?}",
            other as char
        ))),
    }
}

fn int_of(l: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(l)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ProtocolError(format!("bad integer {:?}", String::from_utf8_lossy(l))))
}

fn parse_at(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Option<Value>, ProtocolError> {
    if depth > 64 {
        return Err(ProtocolError("reply nested deeper than 64 levels".into()));
    }
    if *pos >= buf.len() {
        return Ok(None);
    }
    let kind = buf[*pos];
    *pos += 1;
    let Some(l) = line(buf, pos) else {
        return Ok(None);
    };
    let text = || String::from_utf8_lossy(l).into_owned();
    Ok(Some(match kind {
        b'+' => Value::Simple(text()),
        b'-' => Value::Error(text()),
        b':' => Value::Int(int_of(l)?),
        b'_' => Value::Nil,
        b'#' => Value::Bool(l == b"t"),
        b',' => Value::Double(
            std::str::from_utf8(l)
                .ok()
                .and_then(|s| match s {
                    "inf" => Some(f64::INFINITY),
                    "-inf" => Some(f64::NEG_INFINITY),
                    _ => s.parse().ok(),
                })
                .ok_or_else(|| ProtocolError("bad double".into()))?,
        ),
        b'(' => Value::BigNumber(text()),
        b'$' | b'=' | b'!' => {
            let n = len_of(l)?;
            if n < 0 {
                return Ok(Some(Value::Nil));
            }
            let n = n as usize;
            if buf.len() < *pos + n + 2 {
                return Ok(None);
            }
            let data = buf[*pos..*pos + n].to_vec();
            *pos += n + 2;
            match kind {
                b'$' => Value::Bulk(data),
                b'!' => Value::Error(String::from_utf8_lossy(&data).into_owned()),
                _ => Value::Verbatim(
                    String::from_utf8_lossy(data.get(4..).unwrap_or(&[])).into_owned(),
                ),
            }
        }
        b'*' | b'~' | b'>' => {
            let n = len_of(l)?;
            if n < 0 {
                return Ok(Some(Value::Nil));
            }
            let mut items = Vec::with_capacity((n as usize).min(1024));
            for _ in 0..n {
                match parse_at(buf, pos, depth + 1)? {
                    Some(v) => items.push(v),
                    None => return Ok(None),
                }
            }
            match kind {
                b'*' => Value::Array(items),
                b'~' => Value::Set(items),
                _ => Value::Push(items),
            }
        }
        b'%' | b'|' => {
            let n = int_of(l)?;
            let mut items = Vec::with_capacity((n.max(0) as usize).min(1024));
            for _ in 0..n {
                let Some(k) = parse_at(buf, pos, depth + 1)? else {
                    return Ok(None);
                };
                let Some(v) = parse_at(buf, pos, depth + 1)? else {
                    return Ok(None);
                };
                items.push((k, v));
            }
            if kind == b'|' {
                // Attributes precede the real reply: skip them.
                return parse_at(buf, pos, depth + 1);
            }
            Value::Map(items)
        }
        other => {
            return Err(ProtocolError(format!(
                "unexpected reply type byte {:?}",
                other as char
            )))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands() {
        let mut out = Vec::new();
        Cmd::new("SET").arg("k").arg(12u64).encode(&mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n");
    }

    #[test]
    fn parses_partial_and_nested() {
        let full = b"*3\r\n:1\r\n$3\r\nfoo\r\n*1\r\n$-1\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]).unwrap(), None, "cut at {cut}");
        }
        let (v, used) = parse(full).unwrap().unwrap();
        assert_eq!(used, full.len());
        assert_eq!(
            v,
            Value::Array(vec![
                Value::Int(1),
                Value::Bulk(b"foo".to_vec()),
                Value::Array(vec![Value::Nil])
            ])
        );
    }

    #[test]
    fn parses_resp3() {
        let (v, _) = parse(b"%1\r\n+server\r\n+valkey\r\n").unwrap().unwrap();
        assert_eq!(
            v,
            Value::Map(vec![(
                Value::Simple("server".into()),
                Value::Simple("valkey".into())
            )])
        );
        assert_eq!(parse(b",1.5\r\n").unwrap().unwrap().0, Value::Double(1.5));
        assert_eq!(parse(b"#t\r\n").unwrap().unwrap().0, Value::Bool(true));
        assert_eq!(parse(b"_\r\n").unwrap().unwrap().0, Value::Nil);
    }

    #[test]
    fn scans_what_parse_parses() {
        let replies: &[&[u8]] = &[
            b"+OK\r\n",
            b"-ERR wrong\r\n",
            b"$3\r\nfoo\r\n",
            b"$-1\r\n",
            b"*2\r\n:1\r\n*1\r\n$0\r\n\r\n",
            b"%1\r\n+k\r\n,1.5\r\n",
            b"!5\r\nOOM x\r\n",
            b"|1\r\n+a\r\n+b\r\n:7\r\n",
        ];
        for r in replies {
            for cut in 0..r.len() {
                assert_eq!(scan(&r[..cut]).unwrap(), None, "{r:?} cut at {cut}");
            }
            let (used, err) = scan(r).unwrap().unwrap();
            let (v, parsed) = parse(r).unwrap().unwrap();
            assert_eq!(used, parsed, "{r:?}");
            assert_eq!(err.is_some(), matches!(v, Value::Error(_)), "{r:?}");
        }
        assert_eq!(scan(b"-ERR x\r\n").unwrap().unwrap().1, Some(&b"ERR x"[..]));
        assert!(scan(b"?\r\n").is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(b"?what\r\n").is_err());
    }
}
