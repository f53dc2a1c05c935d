//! A migration in the scenario (`[migration]`): a source (the Redis being retired) and a
//! destination (the new Valkey), the destination replicating the source as online migration
//! does, production-shaped seed data in the source before the load, and workloads that reach
//! "the database" through one stable endpoint that the `switch` step repoints.

/// Where one side of the migration is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// A server the agent starts on a free loopback port: Debian's `redis-server` for the
    /// source, `valkey-server` (the run's, or `--valkey-server`) for the destination.
    Embedded,
    /// A server that is already there.
    Url(String),
}

/// Who copies the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The destination `REPLICAOF`s the source (through the agent's proxy, so the link can be
    /// delayed or cut), as a provider's online migration does.
    ReplicaOf,
    /// The provider runs the migration; the agent only observes (lag by canary, verify).
    External,
}

impl Mode {
    /// As written in `mode = "…"`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::ReplicaOf => "replicaof",
            Mode::External => "external",
        }
    }
}

/// Production-shaped data loaded into the source before the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seed {
    /// How many keys, spread over ECHO's shapes: Dramatiq payload hashes and queue lists, lock
    /// keys, Directus cache strings with TTLs, sets, sorted sets and a stream.
    pub keys: u32,
}

/// `[migration]`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub source: Side,
    pub destination: Side,
    pub mode: Mode,
    pub seed: Option<Seed>,
    /// Verify the copy key by key at the end (the seed's keys, and every key under the prefix).
    pub verify: bool,
}

/// The key prefix of the seed data.
pub const SEED_PREFIX: &str = "seed:";
