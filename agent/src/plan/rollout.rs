//! A rolling switch (`procedure = "rolling"`): the cutover as a Helm upgrade does it. Every
//! service reads `REDIS_URL` when it starts, so the new URL reaches the clients pod by pod: a
//! workload's clients live on a few pods (replicas), which move to the destination in batches, a
//! Deployment's `maxUnavailable` at a time, one batch per `every`; producers and consumers are
//! separate Deployments. Where replication stops relative to the roll, and whether writes stop
//! meanwhile, decide what is stranded on the old side and who meets a read-only destination.
//!
//! Plain data and pure functions: the batches of a group are a function of the group, so a roll's
//! timeline is unit-tested without a server.

use std::ops::Range;
use std::time::Duration;

/// Where replication stops relative to the roll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollOrder {
    /// Stop the copy first (the destination is promoted), then roll: clients still on the old
    /// side write there, and what they enqueue after the stop is stranded unless drained.
    StopFirst,
    /// Roll while the copy still runs, then stop it: moved clients meet a read-only replica
    /// (`READONLY`) until the stop.
    RollFirst,
}

impl RollOrder {
    /// Every value, as written in `order = "…"`.
    pub const NAMES: &'static [&'static str] = &["stop-first", "roll-first"];

    pub fn name(self) -> &'static str {
        match self {
            RollOrder::StopFirst => "stop-first",
            RollOrder::RollFirst => "roll-first",
        }
    }
}

/// Which of a workload's clients a group moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Clients {
    /// A Dramatiq workload's producers (the API pods, the scheduler).
    Producers,
    /// A Dramatiq workload's consumers (the worker pods).
    Consumers,
    /// Every client of a workload that is not a Dramatiq one.
    All,
}

impl Clients {
    /// Every value, as written in `clients = "…"`.
    pub const NAMES: &'static [&'static str] = &["producers", "consumers", "all"];

    pub fn name(self) -> &'static str {
        match self {
            Clients::Producers => "producers",
            Clients::Consumers => "consumers",
            Clients::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<Clients> {
        match s {
            "producers" => Some(Clients::Producers),
            "consumers" => Some(Clients::Consumers),
            "all" => Some(Clients::All),
            _ => None,
        }
    }
}

/// How many pods roll at once: a count, or a percentage of the group (Kubernetes'
/// `maxUnavailable`: rounded down, at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    Count(u32),
    Percent(u32),
}

impl Batch {
    /// Kubernetes' default `maxUnavailable`.
    pub const DEFAULT: Batch = Batch::Percent(25);

    /// Pods per batch in a group of `pods`.
    pub fn size(self, pods: u32) -> u32 {
        let n = match self {
            Batch::Count(n) => n,
            Batch::Percent(p) => (u64::from(pods) * u64::from(p) / 100) as u32,
        };
        n.clamp(1, pods.max(1))
    }

    /// Read `"25%"` or `"2"`.
    pub fn parse(s: &str) -> Option<Batch> {
        let s = s.trim();
        match s.strip_suffix('%') {
            Some(p) => p
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|p| (1..=100).contains(p))
                .map(Batch::Percent),
            None => s.parse::<u32>().ok().filter(|n| *n > 0).map(Batch::Count),
        }
    }

    /// As written.
    pub fn text(self) -> String {
        match self {
            Batch::Count(n) => n.to_string(),
            Batch::Percent(p) => format!("{p}%"),
        }
    }
}

/// How a group rolls, as the scenario says it (`[[fault.switch.rollout]]`, or the switch's own
/// `batch`/`every` for every group it does not name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub batch: Batch,
    /// Time between batches (start-up, readiness, `minReadySeconds`).
    pub every: Duration,
    /// When the group's first batch starts, from the start of the roll (a Helm upgrade starts
    /// every Deployment at once: 0s).
    pub start: Duration,
}

impl Pace {
    pub const DEFAULT: Pace = Pace {
        batch: Batch::DEFAULT,
        every: Duration::from_secs(1),
        start: Duration::ZERO,
    };
}

/// One workload's clients of one kind, rolled as one Deployment of `pods` replicas. Client `i`
/// lives on pod `i % pods`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollGroup {
    pub workload: String,
    pub clients: Clients,
    pub pods: u32,
    pub pace: Pace,
}

/// A group's pods by default: one per client (a Dramatiq producer or worker is a process), at
/// most this many for the other workloads (their clients are connections of a few replicas).
pub const MAX_DEFAULT_PODS: u32 = 8;

impl RollGroup {
    /// The group's batches: when each starts (from the start of the roll) and which pods it
    /// moves, in pod order.
    pub fn batches(&self) -> Vec<(Duration, Range<u32>)> {
        let size = self.pace.batch.size(self.pods);
        let mut out = vec![];
        let (mut first, mut k) = (0, 0u32);
        while first < self.pods {
            let last = (first + size).min(self.pods);
            out.push((self.pace.start + self.pace.every * k, first..last));
            first = last;
            k += 1;
        }
        out
    }

    /// When its last batch starts, from the start of the roll.
    pub fn last_batch(&self) -> Duration {
        self.batches()
            .last()
            .map(|b| b.0)
            .unwrap_or(self.pace.start)
    }

    /// The pod client `index` lives on.
    pub fn pod_of(&self, index: u32) -> u32 {
        index % self.pods.max(1)
    }
}

/// `procedure = "rolling"`, compiled: the order, whether writes stop, the drain step, and one
/// group per workload and kind of client (every workload's clients are in exactly one group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rolling {
    pub order: RollOrder,
    /// Stop the source's writes (`CLIENT PAUSE WRITE`) before the copy stops, until the last pod
    /// has moved: nothing is written on the old side after the copy stopped.
    pub stop_writes: bool,
    /// How long the destination is given to catch up while writes are stopped.
    pub max_pause: Duration,
    /// After the roll and the stop, move what Dramatiq left on the old side to the new one
    /// (`valkey-chaos drain`, skipping what the copy carried).
    pub drain: bool,
    /// The pace of every group the scenario does not name.
    pub pace: Pace,
    /// What the scenario says per group: (workload, clients, pods, pace); expanded into `groups`
    /// once the workloads are known.
    pub overrides: Vec<(String, Clients, Option<u32>, Pace)>,
    pub groups: Vec<RollGroup>,
}

impl Rolling {
    /// When the last batch of any group starts, from the start of the roll.
    pub fn length(&self) -> Duration {
        self.groups
            .iter()
            .map(RollGroup::last_batch)
            .max()
            .unwrap_or_default()
    }

    /// One group per (workload, kind of client) with clients: `workloads` gives each workload's
    /// id and its clients by kind. A named group that matches no workload is an error.
    pub fn expand(&mut self, workloads: &[(String, Vec<(Clients, u32)>)]) -> Result<(), String> {
        for (w, c, _, _) in &self.overrides {
            let known = workloads
                .iter()
                .any(|(id, kinds)| id == w && kinds.iter().any(|(k, _)| k == c));
            if !known {
                return Err(format!(
                    "rollout group {w:?} clients = {:?}: no workload {w:?} with {} clients \
                     (Dramatiq workloads roll `producers` and `consumers`, the others `all`)",
                    c.name(),
                    c.name()
                ));
            }
        }
        self.groups.clear();
        for (id, kinds) in workloads {
            for (clients, n) in kinds.iter().filter(|(_, n)| *n > 0) {
                let o = self
                    .overrides
                    .iter()
                    .find(|(w, c, _, _)| w == id && c == clients);
                let default_pods = match clients {
                    Clients::All => (*n).min(MAX_DEFAULT_PODS),
                    _ => *n,
                };
                self.groups.push(RollGroup {
                    workload: id.clone(),
                    clients: *clients,
                    pods: o
                        .and_then(|o| o.2)
                        .unwrap_or(default_pods)
                        .clamp(1, (*n).max(1)),
                    pace: o.map(|o| o.3).unwrap_or(self.pace),
                });
            }
        }
        Ok(())
    }

    /// The group of a workload's clients of a kind.
    pub fn group(&self, workload: &str, clients: Clients) -> Option<&RollGroup> {
        self.groups
            .iter()
            .find(|g| g.workload == workload && g.clients == clients)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn group(pods: u32, batch: Batch, every: u64, start: u64) -> RollGroup {
        RollGroup {
            workload: "w".into(),
            clients: Clients::All,
            pods,
            pace: Pace {
                batch,
                every: s(every),
                start: s(start),
            },
        }
    }

    #[test]
    fn batches_follow_max_unavailable() {
        // 25% of 8 is 2 a batch; 25% of 3 rounds down to 0, so 1 (Kubernetes keeps at least one).
        assert_eq!(Batch::Percent(25).size(8), 2);
        assert_eq!(Batch::Percent(25).size(3), 1);
        assert_eq!(Batch::Percent(100).size(3), 3);
        assert_eq!(Batch::Count(5).size(3), 3);
        let g = group(5, Batch::Count(2), 2, 1);
        assert_eq!(g.batches(), vec![(s(1), 0..2), (s(3), 2..4), (s(5), 4..5)]);
        assert_eq!(g.last_batch(), s(5));
        assert_eq!((g.pod_of(7), g.pod_of(4)), (2, 4));
        assert!(group(0, Batch::DEFAULT, 1, 0).batches().is_empty());
    }

    #[test]
    fn batch_sizes_parse() {
        assert_eq!(Batch::parse("25%"), Some(Batch::Percent(25)));
        assert_eq!(Batch::parse(" 2 "), Some(Batch::Count(2)));
        assert_eq!(Batch::parse("0"), None);
        assert_eq!(Batch::parse("101%"), None);
        assert_eq!(Batch::parse("x"), None);
        assert_eq!(Batch::Percent(50).text(), "50%");
    }

    #[test]
    fn every_workload_gets_a_group_and_named_ones_their_own_pace() {
        let late = Pace {
            batch: Batch::Count(1),
            every: s(1),
            start: s(4),
        };
        let mut r = Rolling {
            order: RollOrder::StopFirst,
            stop_writes: false,
            max_pause: s(5),
            drain: false,
            pace: Pace::DEFAULT,
            overrides: vec![("tasks".into(), Clients::Producers, None, late)],
            groups: vec![],
        };
        let ws = vec![
            (
                "tasks".to_string(),
                vec![(Clients::Producers, 2), (Clients::Consumers, 3)],
            ),
            ("cache".to_string(), vec![(Clients::All, 20)]),
            ("idle".to_string(), vec![(Clients::All, 0)]),
        ];
        r.expand(&ws).unwrap();
        assert_eq!(r.groups.len(), 3);
        let p = r.group("tasks", Clients::Producers).unwrap();
        assert_eq!((p.pods, p.last_batch()), (2, s(5)));
        assert_eq!(r.group("tasks", Clients::Consumers).unwrap().pods, 3);
        assert_eq!(
            r.group("cache", Clients::All).unwrap().pods,
            MAX_DEFAULT_PODS
        );
        assert_eq!(r.length(), s(5));
        r.overrides = vec![("nope".into(), Clients::All, None, late)];
        assert!(r.expand(&ws).unwrap_err().contains("no workload \"nope\""));
    }
}
