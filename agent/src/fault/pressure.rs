//! Memory pressure through the proxy: the keys the agent itself wrote through it (by database,
//! with or without a TTL, in the order they were last used), and which of them to evict when a
//! write needs room — in the order of a `maxmemory-policy`. Only these keys are ever evicted:
//! on a shared target nothing else is touched. Keys written inside scripts are not seen (a
//! script's keys are not all declared), so they are never evicted.

use std::collections::{BTreeMap, HashMap};

use super::command::Command;
use crate::plan::protocol::{EvictOrder, Eviction};

/// A key the agent wrote: its database and name.
pub type Key = (u32, Vec<u8>);

/// How a write changes a key's TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// Left as it was (a new key has none).
    Keep,
    /// Set to expire at this wall-clock millisecond.
    At(u64),
    /// Removed (`PERSIST`, a plain `SET`).
    Clear,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    stamp: u64,
    expires: Option<u64>,
}

/// The keys the agent wrote through the proxy, at most `cap` of them (the least recently used
/// are forgotten first: never evicted, since the proxy no longer knows them).
#[derive(Debug)]
pub struct Tracker {
    keys: HashMap<Key, Meta>,
    /// Keys with a TTL, and keys without, by last use.
    volatile: BTreeMap<u64, Key>,
    persistent: BTreeMap<u64, Key>,
    /// Keys with a TTL by expiry (then last use).
    by_expiry: BTreeMap<(u64, u64), Key>,
    next: u64,
    cap: usize,
}

impl Tracker {
    pub fn new(cap: usize) -> Tracker {
        Tracker {
            keys: HashMap::new(),
            volatile: BTreeMap::new(),
            persistent: BTreeMap::new(),
            by_expiry: BTreeMap::new(),
            next: 0,
            cap: cap.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    fn unlink(&mut self, key: &Key) -> Option<Meta> {
        let m = self.keys.remove(key)?;
        match m.expires {
            Some(e) => {
                self.volatile.remove(&m.stamp);
                self.by_expiry.remove(&(e, m.stamp));
            }
            None => {
                self.persistent.remove(&m.stamp);
            }
        }
        Some(m)
    }

    fn link(&mut self, key: Key, expires: Option<u64>) {
        self.next += 1;
        let stamp = self.next;
        match expires {
            Some(e) => {
                self.volatile.insert(stamp, key.clone());
                self.by_expiry.insert((e, stamp), key.clone());
            }
            None => {
                self.persistent.insert(stamp, key.clone());
            }
        }
        self.keys.insert(key, Meta { stamp, expires });
        if self.keys.len() > self.cap {
            if let Some(oldest) = self.oldest(true) {
                self.unlink(&oldest);
            }
        }
    }

    /// The agent wrote `key`, changing its TTL as `ttl` says.
    pub fn wrote(&mut self, key: Key, ttl: Ttl) {
        let before = self.unlink(&key).and_then(|m| m.expires);
        let expires = match ttl {
            Ttl::Keep => before,
            Ttl::At(t) => Some(t),
            Ttl::Clear => None,
        };
        self.link(key, expires);
    }

    /// The agent read `key`: it is the most recently used now (if known).
    pub fn used(&mut self, key: &Key) {
        if let Some(m) = self.unlink(key) {
            self.link(key.clone(), m.expires);
        }
    }

    /// The agent deleted `key`.
    pub fn removed(&mut self, key: &Key) {
        self.unlink(key);
    }

    /// Every key of database `db` is gone (`FLUSHDB`), or of every database (`None`).
    pub fn flushed(&mut self, db: Option<u32>) {
        let gone: Vec<Key> = self
            .keys
            .keys()
            .filter(|k| db.is_none_or(|d| k.0 == d))
            .cloned()
            .collect();
        for k in gone {
            self.unlink(&k);
        }
    }

    /// The least recently used key, of every key or of those with a TTL.
    fn oldest(&self, any: bool) -> Option<Key> {
        let v = self.volatile.first_key_value();
        let p = if any {
            self.persistent.first_key_value()
        } else {
            None
        };
        match (v, p) {
            (Some(a), Some(b)) => Some(if a.0 < b.0 { a.1 } else { b.1 }.clone()),
            (Some(a), None) => Some(a.1.clone()),
            (None, Some(b)) => Some(b.1.clone()),
            (None, None) => None,
        }
    }

    /// Choose a key to evict under `policy` (none of `spare`), and forget it; `None` when the
    /// policy has nothing left to evict. `pick` is a uniform number in [0, 1) for random order.
    pub fn victim(&mut self, policy: Eviction, spare: &[Key], pick: f64) -> Option<Key> {
        let (any, order) = match policy {
            Eviction::NoEviction => return None,
            Eviction::Volatile(o) => (false, o),
            Eviction::AllKeys(o) => (true, o),
        };
        let candidate = |k: &Key| !spare.contains(k);
        let key = match order {
            EvictOrder::Lru => {
                // Each map is in order of last use: its first candidate is its LRU key.
                let v = self.volatile.values().find(|k| candidate(k));
                let p = any
                    .then(|| self.persistent.values().find(|k| candidate(k)))
                    .flatten();
                match (v, p) {
                    (Some(a), Some(b)) if self.keys[b].stamp < self.keys[a].stamp => Some(b),
                    (Some(a), _) => Some(a),
                    (None, b) => b,
                }
                .cloned()
            }
            EvictOrder::Ttl => self.by_expiry.values().find(|k| candidate(k)).cloned(),
            EvictOrder::Random => {
                let pool: Vec<&Key> = if any {
                    self.keys.keys().filter(|k| candidate(k)).collect()
                } else {
                    self.volatile.values().filter(|k| candidate(k)).collect()
                };
                if pool.is_empty() {
                    None
                } else {
                    let i = ((pick * pool.len() as f64) as usize).min(pool.len() - 1);
                    Some(pool[i].clone())
                }
            }
        }?;
        self.unlink(&key);
        Some(key)
    }

    /// What `cmd` (run in database `db`, at wall-clock `now_ms`) does to the keys it names.
    pub fn observe(&mut self, db: u32, cmd: &Command<'_>, now_ms: u64) {
        if cmd.is_script() {
            return;
        }
        match cmd.top() {
            "flushdb" => return self.flushed(Some(db)),
            "flushall" => return self.flushed(None),
            _ => {}
        }
        let keys = cmd.keys();
        if keys.is_empty() {
            return;
        }
        let effect = effect(cmd, now_ms);
        for k in keys {
            let key = (db, k.to_vec());
            match effect {
                Effect::Remove => self.removed(&key),
                Effect::Write(ttl) => self.wrote(key, ttl),
                Effect::Read => self.used(&key),
            }
        }
    }
}

/// What a command does to its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Remove,
    Write(Ttl),
    Read,
}

fn effect(cmd: &Command<'_>, now_ms: u64) -> Effect {
    let num = |i: usize| {
        cmd.args
            .get(i)
            .and_then(|a| std::str::from_utf8(a).ok())
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    match cmd.top() {
        "del" | "unlink" | "getdel" => Effect::Remove,
        "setex" => Effect::Write(Ttl::At(now_ms + num(2) * 1000)),
        "psetex" => Effect::Write(Ttl::At(now_ms + num(2))),
        "expire" => Effect::Write(Ttl::At(now_ms + num(2) * 1000)),
        "pexpire" => Effect::Write(Ttl::At(now_ms + num(2))),
        "expireat" => Effect::Write(Ttl::At(num(2) * 1000)),
        "pexpireat" => Effect::Write(Ttl::At(num(2))),
        "persist" => Effect::Write(Ttl::Clear),
        "set" | "getex" => Effect::Write(set_options(cmd, now_ms)),
        _ if cmd.is_write() => Effect::Write(Ttl::Keep),
        _ => Effect::Read,
    }
}

/// The TTL `SET`'s (or `GETEX`'s) options give: `EX`/`PX`/`EXAT`/`PXAT` set one, `KEEPTTL`
/// keeps it, `PERSIST` (GETEX) and a plain `SET` remove it; a `GETEX` without options keeps it.
fn set_options(cmd: &Command<'_>, now_ms: u64) -> Ttl {
    let first = if cmd.top() == "set" { 3 } else { 2 };
    let mut ttl = if cmd.top() == "set" {
        Ttl::Clear
    } else {
        Ttl::Keep
    };
    let mut i = first;
    while i < cmd.args.len() {
        let opt = cmd.args[i].to_ascii_uppercase();
        let n = cmd
            .args
            .get(i + 1)
            .and_then(|a| std::str::from_utf8(a).ok())
            .and_then(|s| s.parse::<u64>().ok());
        match (opt.as_slice(), n) {
            (b"EX", Some(n)) => ttl = Ttl::At(now_ms + n * 1000),
            (b"PX", Some(n)) => ttl = Ttl::At(now_ms + n),
            (b"EXAT", Some(n)) => ttl = Ttl::At(n * 1000),
            (b"PXAT", Some(n)) => ttl = Ttl::At(n),
            (b"KEEPTTL", _) => ttl = Ttl::Keep,
            (b"PERSIST", _) => ttl = Ttl::Clear,
            _ => {}
        }
        i += 1;
    }
    ttl
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::command::parse;

    fn run(t: &mut Tracker, db: u32, args: &[&str], now: u64) {
        let mut b = vec![];
        crate::valkey::resp::encode_args(args, &mut b);
        let r = parse(&b).unwrap().unwrap();
        t.observe(db, &Command::new(&b, &r), now);
    }

    fn key(db: u32, k: &str) -> Key {
        (db, k.as_bytes().to_vec())
    }

    #[test]
    fn volatile_policies_evict_only_keys_with_a_ttl_least_recently_used_first() {
        let mut t = Tracker::new(100);
        run(&mut t, 0, &["SETEX", "c1", "60", "v"], 0);
        run(&mut t, 0, &["SET", "p1", "v"], 0);
        run(&mut t, 0, &["SET", "c2", "v", "EX", "30"], 0);
        run(&mut t, 1, &["HSET", "h", "f", "v"], 0);
        run(&mut t, 0, &["GET", "c1"], 0); // c1 is now used after c2
        let lru = Eviction::Volatile(EvictOrder::Lru);
        assert_eq!(t.victim(lru, &[], 0.0), Some(key(0, "c2")));
        assert_eq!(t.victim(lru, &[key(0, "c1")], 0.0), None, "spared");
        assert_eq!(t.victim(lru, &[], 0.0), Some(key(0, "c1")));
        assert_eq!(t.victim(lru, &[], 0.0), None, "only persistent keys left");
        assert_eq!(
            t.victim(Eviction::AllKeys(EvictOrder::Lru), &[], 0.0),
            Some(key(0, "p1"))
        );
        assert_eq!(t.victim(Eviction::NoEviction, &[], 0.0), None);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn ttls_follow_the_commands_that_set_and_clear_them() {
        let mut t = Tracker::new(100);
        run(&mut t, 0, &["SET", "a", "v", "PX", "500"], 1000);
        run(&mut t, 0, &["SET", "b", "v", "EX", "1"], 1000);
        run(&mut t, 0, &["SET", "c", "v", "EX", "9"], 1000);
        run(&mut t, 0, &["PERSIST", "c"], 1000);
        run(&mut t, 0, &["SET", "b", "v2", "KEEPTTL"], 1000);
        run(&mut t, 0, &["DEL", "zzz", "a"], 1000);
        let ttl = Eviction::Volatile(EvictOrder::Ttl);
        assert_eq!(t.victim(ttl, &[], 0.0), Some(key(0, "b")));
        assert_eq!(t.victim(ttl, &[], 0.0), None);
        // A script's keys are never taken for the agent's own writes.
        run(
            &mut t,
            0,
            &["EVALSHA", "x", "1", "dramatiq", "enqueue"],
            1000,
        );
        assert_eq!(t.len(), 1);
        run(&mut t, 0, &["FLUSHDB"], 1000);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn the_cap_forgets_the_least_recently_used_keys() {
        let mut t = Tracker::new(3);
        for k in ["a", "b", "c", "d"] {
            run(&mut t, 0, &["SETEX", k, "9", "v"], 0);
        }
        assert_eq!(t.len(), 3);
        assert_eq!(
            t.victim(Eviction::Volatile(EvictOrder::Lru), &[], 0.0),
            Some(key(0, "b"))
        );
        let r = t.victim(Eviction::AllKeys(EvictOrder::Random), &[], 0.99);
        assert!(r == Some(key(0, "c")) || r == Some(key(0, "d")), "{r:?}");
    }
}
