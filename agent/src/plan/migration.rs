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
    /// The team's own commands the switch runs at named points (the provider's CLI call that
    /// stops an online migration, a Helm upgrade, a notice).
    pub steps: Vec<Step>,
}

/// Where in a switch a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepPoint {
    /// Before the source's writes stop.
    BeforePause,
    /// When the copy stops: with `mode = "external"` the steps *are* the promotion (the
    /// provider's "stop the migration"); with `replicaof` they run right after `REPLICAOF NO ONE`.
    AtPromotion,
    /// Once the clients are on the destination (and, rolling, the drain is done).
    After,
}

impl StepPoint {
    /// Every value, as written in `at = "…"`.
    pub const NAMES: &'static [&'static str] = &["before-pause", "at-promotion", "after"];

    pub fn name(self) -> &'static str {
        match self {
            StepPoint::BeforePause => "before-pause",
            StepPoint::AtPromotion => "at-promotion",
            StepPoint::After => "after",
        }
    }

    pub fn parse(s: &str) -> Option<StepPoint> {
        match s {
            "before-pause" => Some(StepPoint::BeforePause),
            "at-promotion" => Some(StepPoint::AtPromotion),
            "after" => Some(StepPoint::After),
            _ => None,
        }
    }
}

/// One `[[migration.step]]`: a command (argv; a string is run by `sh -c`) the switch runs at
/// `at` and waits for, at most `timeout`; a non-zero exit stops the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub at: StepPoint,
    pub command: Vec<String>,
    pub timeout: std::time::Duration,
}

/// The key prefix of the seed data.
pub const SEED_PREFIX: &str = "seed:";
