//! The toxics a proxy carries and the state its connections share: the byte-level toxics
//! (latency, bandwidth, reset, blackhole, slow close, limit data, partition), the RESP toxics put
//! there by protocol faults (an error instead of the reply, a dropped reply, per-command latency,
//! the idle reaper, memory pressure), and [`Shared::decide`], what the proxy does with one
//! command.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};

use super::command::Command;
use super::glob;
use super::pressure::{Key, Tracker};
use super::replies::{reaches, Engine};
pub use crate::plan::fault::Direction;
use crate::plan::protocol::{AfterDrop, CommandClass, CommandFilter, ErrorCode, Eviction};
use crate::valkey::conn::TlsSettings;

/// Whether a toxic for `d` applies to traffic flowing upstream (client → server) or not.
pub fn applies(d: Direction, upstream: bool) -> bool {
    matches!(
        (d, upstream),
        (Direction::Both, _) | (Direction::Upstream, true) | (Direction::Downstream, false)
    )
}

/// The byte-level toxics active on one proxy.
#[derive(Debug, Clone, Default)]
pub struct Toxics {
    pub latency: Option<(Duration, Duration, Direction)>,
    pub bandwidth: Option<(u64, Direction)>,
    /// Accept and read, but forward nothing (clients time out).
    pub blackhole: bool,
    /// New connections are reset at once (existing ones were reset when it was set).
    pub reset: bool,
    pub slow_close: Option<Duration>,
    /// Close a connection after this many bytes in either direction.
    pub limit_data: Option<u64>,
    /// The node is cut off: existing connections dropped, new ones refused by reset.
    pub partition: bool,
}

/// Memory pressure on a proxy: the policy, how often a write finds memory full, where evicted
/// keys go (the fault's evictor deletes them on the server), and what it did.
#[derive(Debug)]
pub struct Pressure {
    pub policy: Eviction,
    pub rate: f64,
    pub evict: mpsc::UnboundedSender<Key>,
    pub evicted: AtomicU64,
    pub refused: AtomicU64,
}

/// What a RESP toxic does.
#[derive(Debug, Clone)]
pub enum Act {
    /// Answer matching commands with this error (`-TEXT\r\n`, precomputed).
    Error {
        code: ErrorCode,
        filter: CommandFilter,
        reply: Arc<[u8]>,
    },
    DropReply {
        filter: CommandFilter,
        then: AfterDrop,
    },
    Latency {
        filter: CommandFilter,
        delay: Duration,
        jitter: Duration,
    },
    /// Close connections idle longer than this.
    IdleReap(Duration),
    Pressure(Arc<Pressure>),
}

/// A RESP toxic, put on the proxy by fault `id` (and taken off by it).
#[derive(Debug, Clone)]
pub struct RespToxic {
    pub id: usize,
    pub act: Act,
}

/// What the proxy does with one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Forward it, after this long.
    Forward(Duration),
    /// Answer it with these bytes; the server never sees it.
    Answer(Arc<[u8]>),
    /// Forward it and lose its reply.
    Drop(AfterDrop),
}

/// What one proxy's connections share.
pub struct Shared {
    pub toxics: RwLock<Toxics>,
    /// Replaced whole on every change: a command reads a snapshot without copying it.
    pub resp: RwLock<Arc<Vec<RespToxic>>>,
    /// Set when `resp` is not empty (checked before taking the lock per command).
    pub any_resp: AtomicBool,
    /// Where new connections go (a cutover or a flip repoints it).
    pub upstream: RwLock<SocketAddr>,
    /// Sent to make every live connection close itself.
    pub kill_tx: broadcast::Sender<()>,
    pub conns: AtomicU64,
    pub seed: Mutex<u64>,
    /// Read the agent's commands (RESP toxics) rather than forward bytes.
    pub resp_mode: bool,
    /// TLS toward the server (RESP mode on a `rediss://` target).
    pub tls: Option<TlsSettings>,
    /// Whose error texts injected errors carry.
    pub engine: RwLock<Engine>,
    /// The keys the agent wrote (when a memory-pressure fault may need them).
    pub tracker: Option<Mutex<Tracker>>,
    /// The proxy's start: connections' idle clocks count from it.
    pub epoch: Instant,
}

/// The reply a dropped `EXEC` is answered with when an injected error aborted its transaction.
pub const EXECABORT: &[u8] = b"-EXECABORT Transaction discarded because of previous errors.\r\n";

impl Shared {
    pub fn new(upstream: SocketAddr, resp_mode: bool, tls: Option<TlsSettings>) -> Shared {
        let (kill_tx, _) = broadcast::channel(4);
        Shared {
            toxics: RwLock::new(Toxics::default()),
            resp: RwLock::new(Arc::new(vec![])),
            any_resp: AtomicBool::new(false),
            upstream: RwLock::new(upstream),
            kill_tx,
            conns: AtomicU64::new(0),
            seed: Mutex::new(0x5eed),
            resp_mode,
            tls,
            engine: RwLock::new(Engine::valkey()),
            tracker: None,
            epoch: Instant::now(),
        }
    }

    /// A uniform number in [0, 1) from the proxy's own seeded stream.
    pub fn unit(&self) -> f64 {
        let mut seed = self.seed.lock().expect("seed lock");
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 11) as f64 / (1u64 << 53) as f64
    }

    /// When a chunk read now should be written, under the byte-level latency toxic.
    pub fn byte_delay(&self, upstream: bool) -> Option<Instant> {
        let t = self.toxics.read().expect("toxics lock").latency;
        match t {
            Some((d, j, dir)) if applies(dir, upstream) => {
                let jitter = if j.is_zero() {
                    0.0
                } else {
                    (self.unit() * 2.0 - 1.0) * j.as_secs_f64()
                };
                Some(Instant::now() + Duration::from_secs_f64((d.as_secs_f64() + jitter).max(0.0)))
            }
            _ => None,
        }
    }

    /// Milliseconds since the proxy started (a connection's idle clock).
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The idle reaper's timeout, if one is on.
    pub fn idle_timeout(&self) -> Option<Duration> {
        if !self.any_resp.load(Ordering::Relaxed) {
            return None;
        }
        self.resp
            .read()
            .expect("resp lock")
            .iter()
            .filter_map(|t| match t.act {
                Act::IdleReap(d) => Some(d),
                _ => None,
            })
            .min()
    }

    /// Add a RESP toxic.
    pub fn add(&self, t: RespToxic) {
        let mut r = self.resp.write().expect("resp lock");
        let mut v = r.as_ref().clone();
        v.push(t);
        *r = Arc::new(v);
        self.any_resp.store(true, Ordering::Relaxed);
    }

    /// Take fault `id`'s toxics off.
    pub fn remove(&self, id: usize) {
        let mut r = self.resp.write().expect("resp lock");
        let v: Vec<RespToxic> = r.iter().filter(|t| t.id != id).cloned().collect();
        self.any_resp.store(!v.is_empty(), Ordering::Relaxed);
        *r = Arc::new(v);
    }

    /// What to do with `cmd`, sent on database `db`: the first error, dropped reply or refused
    /// write that applies wins; latencies add up.
    /// Commands the server runs (forwarded, a dropped reply's too) are what the memory-pressure
    /// tracker learns the agent's keys from.
    pub fn decide(&self, db: u32, cmd: &Command<'_>) -> Decision {
        let d = self.decide_toxics(db, cmd);
        if let (Some(t), Decision::Forward(_) | Decision::Drop(_)) = (&self.tracker, &d) {
            let now = crate::clock::wall_ms();
            t.lock().expect("tracker lock").observe(db, cmd, now);
        }
        d
    }

    fn decide_toxics(&self, db: u32, cmd: &Command<'_>) -> Decision {
        if !self.any_resp.load(Ordering::Relaxed) {
            return Decision::Forward(Duration::ZERO);
        }
        let toxics = self.resp.read().expect("resp lock").clone();
        let mut delay = Duration::ZERO;
        for t in toxics.iter() {
            match &t.act {
                Act::Error {
                    code,
                    filter,
                    reply,
                } => {
                    if self.hit(filter, cmd, |c| reaches(*code, c)) {
                        return Decision::Answer(reply.clone());
                    }
                }
                Act::DropReply { filter, then } => {
                    if self.hit(filter, cmd, |_| true) {
                        return Decision::Drop(*then);
                    }
                }
                Act::Latency {
                    filter,
                    delay: d,
                    jitter,
                } => {
                    if self.hit(filter, cmd, |_| true) {
                        let j = (self.unit() * 2.0 - 1.0) * jitter.as_secs_f64();
                        delay += Duration::from_secs_f64((d.as_secs_f64() + j).max(0.0));
                    }
                }
                Act::Pressure(p) => {
                    if let Some(refused) = self.squeeze(p, db, cmd) {
                        return Decision::Answer(refused);
                    }
                }
                Act::IdleReap(_) => {}
            }
        }
        Decision::Forward(delay)
    }

    /// Whether `filter` takes `cmd` (`scope`: the kind's own default when it names no class),
    /// with its rate.
    fn hit(
        &self,
        filter: &CommandFilter,
        cmd: &Command<'_>,
        scope: impl Fn(&Command<'_>) -> bool,
    ) -> bool {
        if filter.commands.is_empty() {
            if cmd.handshake() {
                return false;
            }
        } else {
            let name = cmd.upper_name();
            let top = cmd.top().to_ascii_uppercase();
            if !filter.commands.iter().any(|c| *c == name || *c == top) {
                return false;
            }
        }
        let in_scope = match filter.class {
            None if !filter.commands.is_empty() => true,
            None => scope(cmd),
            Some(CommandClass::All) => true,
            Some(CommandClass::Reads) => cmd.is_read(),
            Some(CommandClass::Writes) => cmd.is_write(),
            Some(CommandClass::Scripts) => cmd.is_script(),
        };
        if !in_scope {
            return false;
        }
        if let Some(p) = &filter.keys {
            if !cmd.keys().iter().any(|k| glob::matches(p.as_bytes(), k)) {
                return false;
            }
        }
        filter.rate >= 1.0 || self.unit() < filter.rate
    }

    /// Memory pressure on one command: a write that finds memory full gets room by evicting one
    /// of the agent's keys (never its own), or is refused with `OOM` (returned).
    fn squeeze(&self, p: &Pressure, db: u32, cmd: &Command<'_>) -> Option<Arc<[u8]>> {
        if !cmd.deny_oom() || (p.rate < 1.0 && self.unit() >= p.rate) {
            return None;
        }
        let victim = self.tracker.as_ref().and_then(|t| {
            let spare: Vec<Key> = cmd.keys().iter().map(|k| (db, k.to_vec())).collect();
            let pick = self.unit();
            t.lock()
                .expect("tracker lock")
                .victim(p.policy, &spare, pick)
        });
        match victim {
            Some(k) => {
                p.evicted.fetch_add(1, Ordering::Relaxed);
                let _ = p.evict.send(k);
                None
            }
            None => {
                p.refused.fetch_add(1, Ordering::Relaxed);
                let text = self
                    .engine
                    .read()
                    .expect("engine lock")
                    .text(ErrorCode::Oom);
                Some(error_reply(&text))
            }
        }
    }
}

/// `-TEXT\r\n`.
pub fn error_reply(text: &str) -> Arc<[u8]> {
    let mut v = Vec::with_capacity(text.len() + 3);
    v.push(b'-');
    v.extend_from_slice(text.as_bytes());
    v.extend_from_slice(b"\r\n");
    v.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::command::parse;

    fn shared() -> Shared {
        Shared::new("127.0.0.1:1".parse().unwrap(), true, None)
    }

    fn decide(s: &Shared, args: &[&str]) -> Decision {
        let mut b = vec![];
        crate::valkey::resp::encode_args(args, &mut b);
        let r = parse(&b).unwrap().unwrap();
        s.decide(0, &Command::new(&b, &r))
    }

    fn error(code: ErrorCode, filter: CommandFilter) -> Act {
        Act::Error {
            code,
            reply: error_reply(&Engine::valkey().text(code)),
            filter,
        }
    }

    #[test]
    fn an_error_reaches_its_scope_and_the_filter_narrows_it() {
        let s = shared();
        s.add(RespToxic {
            id: 1,
            act: error(ErrorCode::ReadOnly, CommandFilter::default()),
        });
        assert!(matches!(
            decide(&s, &["SET", "k", "v"]),
            Decision::Answer(_)
        ));
        assert_eq!(decide(&s, &["GET", "k"]), Decision::Forward(Duration::ZERO));
        assert_eq!(
            decide(&s, &["AUTH", "pw"]),
            Decision::Forward(Duration::ZERO),
            "the handshake always passes"
        );
        s.remove(1);
        s.add(RespToxic {
            id: 2,
            act: error(
                ErrorCode::Loading,
                CommandFilter {
                    keys: Some("vc:*".into()),
                    ..Default::default()
                },
            ),
        });
        assert!(matches!(decide(&s, &["GET", "vc:a"]), Decision::Answer(_)));
        assert_eq!(
            decide(&s, &["GET", "other"]),
            Decision::Forward(Duration::ZERO)
        );
        s.remove(2);
        assert_eq!(
            decide(&s, &["GET", "vc:a"]),
            Decision::Forward(Duration::ZERO)
        );
    }

    #[test]
    fn a_rate_takes_about_that_share_and_latencies_add_up() {
        let s = shared();
        s.add(RespToxic {
            id: 1,
            act: Act::DropReply {
                filter: CommandFilter {
                    commands: vec!["INCR".into()],
                    rate: 0.25,
                    ..Default::default()
                },
                then: AfterDrop::Close,
            },
        });
        let dropped = (0..4000)
            .filter(|_| matches!(decide(&s, &["INCR", "k"]), Decision::Drop(_)))
            .count();
        assert!((800..1200).contains(&dropped), "{dropped}");
        let slow = |class| Act::Latency {
            filter: CommandFilter {
                class: Some(class),
                ..Default::default()
            },
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
        };
        s.add(RespToxic {
            id: 2,
            act: slow(CommandClass::Writes),
        });
        s.add(RespToxic {
            id: 3,
            act: slow(CommandClass::All),
        });
        assert_eq!(
            decide(&s, &["SET", "k", "v"]),
            Decision::Forward(Duration::from_millis(20))
        );
        assert_eq!(
            decide(&s, &["GET", "k"]),
            Decision::Forward(Duration::from_millis(10))
        );
    }
}
