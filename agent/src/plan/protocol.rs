//! What the RESP-aware proxy faults ask for, as plain data: the server error a command is
//! answered with, which commands a toxic acts on (names, reads/writes/scripts, a key pattern, a
//! rate), what follows a dropped reply, where a flip leads, and a memory-pressure policy. The
//! proxy that acts on them is `fault::proxy`; the error texts of each engine are in
//! `fault::replies`.

/// A server error the proxy answers with instead of forwarding the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The server is loading its dataset (a restart, a replica's full sync).
    Loading,
    /// A write reached a replica (a demoted primary behind a stale endpoint).
    ReadOnly,
    /// A script or module command is running too long.
    Busy,
    /// `maxmemory` reached with nothing to evict.
    Oom,
    /// The last RDB save failed and `stop-writes-on-bgsave-error` is on.
    Misconf,
    /// `EVALSHA` of a script the server does not have (a restart, a failover, `SCRIPT FLUSH`).
    NoScript,
    /// A multi-key command while its slot migrates (cluster).
    TryAgain,
    /// A replica with `replica-serve-stale-data no` whose primary link is down.
    MasterDown,
    /// The connection is not authenticated.
    NoAuth,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::Loading,
        ErrorCode::ReadOnly,
        ErrorCode::Busy,
        ErrorCode::Oom,
        ErrorCode::Misconf,
        ErrorCode::NoScript,
        ErrorCode::TryAgain,
        ErrorCode::MasterDown,
        ErrorCode::NoAuth,
    ];

    /// The error's prefix, as the server sends it and as a scenario writes it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Loading => "LOADING",
            ErrorCode::ReadOnly => "READONLY",
            ErrorCode::Busy => "BUSY",
            ErrorCode::Oom => "OOM",
            ErrorCode::Misconf => "MISCONF",
            ErrorCode::NoScript => "NOSCRIPT",
            ErrorCode::TryAgain => "TRYAGAIN",
            ErrorCode::MasterDown => "MASTERDOWN",
            ErrorCode::NoAuth => "NOAUTH",
        }
    }

    /// The code named `s` (any case).
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
    }
}

/// Which commands a filter takes before names and keys narrow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandClass {
    /// Every command but the connection's handshake (`AUTH`, `HELLO`, `CLIENT`, `SELECT`, …).
    All,
    /// Read-only commands.
    Reads,
    /// Commands that write, scripts (`EVAL`, `EVALSHA`, `FCALL`) included: a script without
    /// flags may write.
    Writes,
    /// `EVAL`, `EVALSHA`, `FCALL` and their read-only forms.
    Scripts,
}

impl CommandClass {
    pub const NAMES: &'static [&'static str] = &["all", "reads", "writes", "scripts"];

    pub fn name(self) -> &'static str {
        match self {
            CommandClass::All => "all",
            CommandClass::Reads => "reads",
            CommandClass::Writes => "writes",
            CommandClass::Scripts => "scripts",
        }
    }

    pub fn parse(s: &str) -> Option<CommandClass> {
        [
            CommandClass::All,
            CommandClass::Reads,
            CommandClass::Writes,
            CommandClass::Scripts,
        ]
        .into_iter()
        .find(|c| c.name() == s)
    }
}

/// Which of the agent's commands a RESP toxic acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandFilter {
    /// Command names, upper case (`"SET"`, `"EVALSHA"`, `"CLIENT|SETINFO"`); empty: any name.
    pub commands: Vec<String>,
    /// `None`: the kind's own default — for an error, the commands a server answers with it
    /// (writes for `READONLY`, every non-handshake command for `LOADING`, …).
    pub class: Option<CommandClass>,
    /// A glob (Valkey's `KEYS` syntax) one of the command's keys must match.
    pub keys: Option<String>,
    /// The fraction of matching commands acted on (seeded), 1.0 = all.
    pub rate: f64,
}

impl Default for CommandFilter {
    fn default() -> Self {
        CommandFilter {
            commands: vec![],
            class: None,
            keys: None,
            rate: 1.0,
        }
    }
}

/// What follows a reply the proxy dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterDrop {
    /// The connection is closed: the client sees it reset (a broken connection).
    Close,
    /// Nothing more arrives on the connection: the client times out.
    Hang,
}

impl AfterDrop {
    pub fn name(self) -> &'static str {
        match self {
            AfterDrop::Close => "close",
            AfterDrop::Hang => "hang",
        }
    }
}

/// Where a flipped endpoint leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlipTo {
    /// A node of the embedded topology (`replica`, or its name).
    Node(String),
    /// `host:port`.
    Addr(String),
}

impl FlipTo {
    pub fn name(&self) -> &str {
        match self {
            FlipTo::Node(n) | FlipTo::Addr(n) => n,
        }
    }
}

/// The order in which memory pressure evicts the agent's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictOrder {
    /// Least recently used through the proxy (`*-lfu` is taken as this too).
    Lru,
    Random,
    /// Soonest to expire (`volatile-ttl`).
    Ttl,
}

/// A `maxmemory-policy`, as memory pressure through the proxy imitates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Nothing is evicted: writes are refused with `OOM`.
    NoEviction,
    /// Only keys with a TTL may be evicted; with none left, writes are refused.
    Volatile(EvictOrder),
    /// Any key may be evicted.
    AllKeys(EvictOrder),
}

impl Eviction {
    pub const NAMES: &'static [&'static str] = &[
        "noeviction",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
    ];

    /// The policy named as `maxmemory-policy` names it.
    pub fn parse(s: &str) -> Option<Eviction> {
        Some(match s {
            "noeviction" => Eviction::NoEviction,
            "volatile-lru" | "volatile-lfu" => Eviction::Volatile(EvictOrder::Lru),
            "volatile-random" => Eviction::Volatile(EvictOrder::Random),
            "volatile-ttl" => Eviction::Volatile(EvictOrder::Ttl),
            "allkeys-lru" | "allkeys-lfu" => Eviction::AllKeys(EvictOrder::Lru),
            "allkeys-random" => Eviction::AllKeys(EvictOrder::Random),
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Eviction::NoEviction => "noeviction",
            Eviction::Volatile(EvictOrder::Lru) => "volatile-lru",
            Eviction::Volatile(EvictOrder::Random) => "volatile-random",
            Eviction::Volatile(EvictOrder::Ttl) => "volatile-ttl",
            Eviction::AllKeys(EvictOrder::Lru) => "allkeys-lru",
            Eviction::AllKeys(EvictOrder::Random) => "allkeys-random",
            // No such policy: allkeys-ttl does not exist; read as allkeys-lru.
            Eviction::AllKeys(EvictOrder::Ttl) => "allkeys-lru",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_policies_read_back_their_names() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.name()), Some(c));
            assert_eq!(ErrorCode::parse(&c.name().to_lowercase()), Some(c));
        }
        for n in CommandClass::NAMES {
            assert_eq!(CommandClass::parse(n).map(CommandClass::name), Some(*n));
        }
        for n in Eviction::NAMES {
            let p = Eviction::parse(n).unwrap();
            // lfu is imitated as lru.
            assert_eq!(p.name(), n.replace("lfu", "lru"));
        }
        assert_eq!(Eviction::parse("allkeys-ttl"), None);
    }
}
