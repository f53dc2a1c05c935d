//! Where the keys to compare come from: a full `SCAN` (cursor loop, bounded), or a random sample
//! drawn with `RANDOMKEY`; plus the glob matcher `--match` needs client-side and the rate pacer.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

pub use crate::valkey::cursor::parse_scan_reply;
use crate::valkey::{Cmd, Conn, Error, ErrorKind, Value};

/// Keys of `lag`'s canary (`vc:lag:<nonce>`) are never compared: they are written while a
/// migration is watched and would show as differences of the tool's own making.
pub const CANARY_PREFIX: &[u8] = b"vc:lag:";

/// One `SCAN` step: `(next cursor, keys)`. The cursor is kept as the server's text.
pub async fn scan_step(
    conn: &mut Conn,
    cursor: &str,
    pattern: Option<&str>,
    count: usize,
) -> Result<(String, Vec<Vec<u8>>), Error> {
    let mut c = Cmd::new("SCAN").arg(cursor);
    if let Some(p) = pattern {
        c.push("MATCH").push(p);
    }
    c.push("COUNT").push(count);
    let v = conn.request(&c).await?;
    parse_scan_reply(v).ok_or_else(|| Error::new(ErrorKind::Other, "unexpected SCAN reply"))
}

/// An upper bound on `SCAN` calls for a keyspace of `dbsize` keys at the start: far above what a
/// real scan needs (about `dbsize / count`), so only a server that never returns cursor 0 hits it.
pub fn scan_call_limit(dbsize: u64, count: usize) -> u64 {
    (dbsize / count.max(1) as u64)
        .saturating_mul(20)
        .saturating_add(dbsize)
        .saturating_add(100_000)
}

/// Drawing a random sample with `RANDOMKEY`, deduplicated and filtered by the pattern.
#[derive(Debug)]
pub struct Sampler {
    pub wanted: u64,
    pub draws: u64,
    pub max_draws: u64,
    /// Distinct keys accepted so far.
    pub accepted: u64,
    /// `RANDOMKEY` answered nil: the database is empty.
    pub empty: bool,
    seen: HashSet<Vec<u8>>,
    pattern: Option<Glob>,
}

impl Sampler {
    pub fn new(wanted: u64, pattern: Option<&str>) -> Sampler {
        Sampler {
            wanted,
            draws: 0,
            // With replacement, duplicates and non-matching draws cost draws: bounded anyway.
            max_draws: wanted.saturating_mul(10).saturating_add(1000),
            accepted: 0,
            empty: false,
            seen: HashSet::new(),
            pattern: pattern.map(Glob::new),
        }
    }

    pub fn done(&self) -> bool {
        self.empty || self.accepted >= self.wanted || self.draws >= self.max_draws
    }

    /// Draw up to `batch` keys in one pipeline; returns the new distinct matching keys.
    pub async fn draw(&mut self, conn: &mut Conn, batch: usize) -> Result<Vec<Vec<u8>>, Error> {
        // A little more than still needed (duplicates, non-matching keys), at most a batch.
        let need = self.wanted - self.accepted;
        let n = (batch as u64)
            .min(self.max_draws - self.draws)
            .min(need.saturating_add(need / 4).saturating_add(16)) as usize;
        let cmds = vec![Cmd::new("RANDOMKEY"); n.max(1)];
        let replies = conn.pipeline(&cmds).await?;
        self.draws += replies.len() as u64;
        let mut out = vec![];
        for r in replies {
            match r? {
                Value::Nil => self.empty = true,
                v => {
                    let Some(k) = v.as_bytes().map(<[u8]>::to_vec) else {
                        continue;
                    };
                    if self.accepted >= self.wanted
                        || k.starts_with(CANARY_PREFIX)
                        || !self.pattern.as_ref().is_none_or(|g| g.matches(&k))
                        || !self.seen.insert(k.clone())
                    {
                        continue;
                    }
                    self.accepted += 1;
                    out.push(k);
                }
            }
        }
        Ok(out)
    }
}

/// Holds a scan to `rate` keys per second on average (`None`: unlimited).
#[derive(Debug)]
pub struct Pacer {
    rate: Option<f64>,
    start: Instant,
    admitted: u64,
}

impl Pacer {
    pub fn new(rate: Option<u32>) -> Pacer {
        Pacer {
            rate: rate.filter(|r| *r > 0).map(f64::from),
            start: Instant::now(),
            admitted: 0,
        }
    }

    /// When the next `n` keys may go: the keys admitted so far are due at `admitted / rate`.
    pub fn due(&self) -> Option<Instant> {
        self.rate
            .map(|r| self.start + Duration::from_secs_f64(self.admitted as f64 / r))
    }

    /// Forget the time the pacer sat idle (between two databases): the keys admitted so far are
    /// due now at the latest, so idle time is no credit for a burst; the average over the whole
    /// verify stays at or below the rate.
    pub fn rebase(&mut self) {
        if let (Some(r), Some(due)) = (self.rate, self.due()) {
            let now = Instant::now();
            if due < now {
                self.start = now - Duration::from_secs_f64(self.admitted as f64 / r);
            }
        }
    }

    /// Wait until the keys admitted so far are due, then admit `n` more.
    pub async fn admit(&mut self, n: u64) {
        if let Some(due) = self.due() {
            tokio::time::sleep_until(due).await;
        }
        self.admitted += n;
    }
}

/// A `SCAN MATCH` glob, matched client-side (for `RANDOMKEY` samples) with the server's rules:
/// `*`, `?`, `[abc]`, `[^a-z]`, `\x` escapes. Each token but `*` consumes one byte, so the
/// classic greedy algorithm with one backtrack point is exact and linear in practice.
#[derive(Debug, Clone)]
pub struct Glob {
    tokens: Vec<Tok>,
}

#[derive(Debug, Clone)]
enum Tok {
    Star,
    Any,
    Byte(u8),
    Class { negate: bool, ranges: Vec<(u8, u8)> },
}

impl Tok {
    fn matches(&self, c: u8) -> bool {
        match self {
            Tok::Star | Tok::Any => true,
            Tok::Byte(b) => *b == c,
            Tok::Class { negate, ranges } => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negate
            }
        }
    }
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        let p = pattern.as_bytes();
        let mut tokens = vec![];
        let mut i = 0;
        while i < p.len() {
            match p[i] {
                b'*' => {
                    if !matches!(tokens.last(), Some(Tok::Star)) {
                        tokens.push(Tok::Star);
                    }
                }
                b'?' => tokens.push(Tok::Any),
                b'\\' if i + 1 < p.len() => {
                    i += 1;
                    tokens.push(Tok::Byte(p[i]));
                }
                b'[' => {
                    i += 1;
                    let negate = p.get(i) == Some(&b'^');
                    if negate {
                        i += 1;
                    }
                    let mut ranges = vec![];
                    // Like the server: an unterminated class ends with the pattern.
                    while i < p.len() && p[i] != b']' {
                        if p[i] == b'\\' && i + 1 < p.len() {
                            i += 1;
                            ranges.push((p[i], p[i]));
                        } else if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
                            let (a, b) = (p[i], p[i + 2]);
                            ranges.push((a.min(b), a.max(b)));
                            i += 2;
                        } else {
                            ranges.push((p[i], p[i]));
                        }
                        i += 1;
                    }
                    tokens.push(Tok::Class { negate, ranges });
                }
                c => tokens.push(Tok::Byte(c)),
            }
            i += 1;
        }
        Glob { tokens }
    }

    pub fn matches(&self, s: &[u8]) -> bool {
        let t = &self.tokens;
        let (mut ti, mut si) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            if ti < t.len() && !matches!(t[ti], Tok::Star) && t[ti].matches(s[si]) {
                ti += 1;
                si += 1;
            } else if ti < t.len() && matches!(t[ti], Tok::Star) {
                star = Some((ti, si));
                ti += 1;
            } else if let Some((st, ss)) = star {
                ti = st + 1;
                si = ss + 1;
                star = Some((st, ss + 1));
            } else {
                return false;
            }
        }
        t[ti..].iter().all(|x| matches!(x, Tok::Star))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).matches(s.as_bytes())
    }

    #[test]
    fn globs_follow_the_server() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("h:*", "h:1"));
        assert!(!m("h:*", "x:h:1"));
        assert!(m("*:1", "h:1"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("k[0-9]", "k7"));
        assert!(m("k[9-0]", "k7"));
        assert!(!m("k[0-9]", "kx"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("**a**", "bab"));
        assert!(Glob::new("*x").matches(&[0xff, b'x']));
    }

    #[test]
    fn scan_replies_parse() {
        let v = Value::Array(vec![
            Value::Bulk(b"17".to_vec()),
            Value::Array(vec![Value::Bulk(vec![0, 1]), Value::Bulk(b"k".to_vec())]),
        ]);
        assert_eq!(
            parse_scan_reply(v),
            Some(("17".to_string(), vec![vec![0, 1], b"k".to_vec()]))
        );
        assert_eq!(parse_scan_reply(Value::Int(1)), None);
    }

    #[test]
    fn scan_limit_is_generous_and_finite() {
        assert!(scan_call_limit(0, 500) >= 100_000);
        assert!(scan_call_limit(1_000_000, 500) > 1_000_000 / 500 * 10);
        assert_eq!(scan_call_limit(u64::MAX, 1), u64::MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_holds_the_rate() {
        let mut p = Pacer::new(Some(1000));
        let t0 = tokio::time::Instant::now();
        for _ in 0..10 {
            p.admit(500).await;
        }
        // 10 batches of 500 at 1000/s: the 10th batch is due after 4.5 s.
        assert_eq!(t0.elapsed(), Duration::from_millis(4500));
        // Idle for 10 s (between two databases): no burst after it, the next batch waits.
        tokio::time::sleep(Duration::from_secs(10)).await;
        p.rebase();
        let t1 = tokio::time::Instant::now();
        p.admit(500).await;
        p.admit(500).await;
        assert_eq!(t1.elapsed(), Duration::from_millis(500));
        let mut free = Pacer::new(None);
        free.rebase();
        free.admit(1_000_000).await;
        assert!(free.due().is_none());
    }
}
