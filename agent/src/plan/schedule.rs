//! The fault schedule: when each occurrence of each `[[fault]]` is due and how long it is held,
//! as a pure function of the plan. The timeline runs exactly this list; tests read it without a
//! server.
//!
//! A fault fires at `at`, then every `every` while the next firing is still before the end of
//! the run. An occurrence is held for its window (`duration`), a kill for `restart_after`, a
//! one-off event (failover, client-kill, consumer-crash, switch) not at all; a fault with nothing
//! that ends it (a kill with no `restart_after`, a memory or idle-timeout fault with no
//! `duration`) is held until the run ends. No fault is held past the end of the run. The plan has
//! no random element in fault timing, so the schedule does not depend on the seed.

use std::ops::Add;
use std::time::Duration;

use super::fault::{FaultKind, FaultPlan};
use super::Plan;

/// How long an occurrence is held once injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Heal this long after the injection (zero: a one-off event, healed right away).
    For(Duration),
    /// Heal when the run ends.
    UntilEnd,
}

impl Hold {
    /// How long `fault` is held: its window, `restart_after`, or (one-off faults) not at all.
    pub fn of(fault: &FaultPlan) -> Hold {
        let d = match &fault.kind {
            FaultKind::Kill { restart_after } => *restart_after,
            FaultKind::DebugSleep => fault.duration,
            k if k.windowed() => fault.duration,
            _ => Some(Duration::ZERO),
        };
        d.map_or(Hold::UntilEnd, Hold::For)
    }

    /// When an occurrence injected at `injected` heals, for a run ending at `end`: `None` when it
    /// waits for the run's end. Never later than `end`, nor earlier than `injected`. Generic so
    /// that the timeline (instants) and the schedule (offsets) share it.
    pub fn heal_at<T>(self, injected: T, end: T) -> Option<T>
    where
        T: Add<Duration, Output = T> + Ord + Copy,
    {
        match self {
            Hold::For(d) => Some((injected + d).min(end.max(injected))),
            Hold::UntilEnd => None,
        }
    }
}

/// One occurrence of a fault, in offsets from the run start.
#[derive(Debug, Clone)]
pub struct Occurrence<'a> {
    pub fault: &'a FaultPlan,
    /// 0 for the first firing, then 1, 2, … for the repeats of `every`.
    pub n: usize,
    /// When it is due.
    pub inject: Duration,
    pub hold: Hold,
    /// When it heals if the injection takes no time: `hold` after `inject`, or the end of the
    /// run (the timeline counts the hold from the end of the injection).
    pub heal: Duration,
}

/// Every occurrence of the plan's faults, fault by fault in plan order, each fault's in time
/// order.
pub fn schedule(plan: &Plan) -> Vec<Occurrence<'_>> {
    occurrences(&plan.faults, plan.duration)
}

/// [`schedule`] for these faults in a run lasting `duration`.
pub fn occurrences(faults: &[FaultPlan], duration: Duration) -> Vec<Occurrence<'_>> {
    let mut out = vec![];
    for f in faults {
        let hold = Hold::of(f);
        let mut at = f.at;
        for n in 0.. {
            out.push(Occurrence {
                fault: f,
                n,
                inject: at,
                hold,
                heal: hold.heal_at(at, duration).unwrap_or(duration.max(at)),
            });
            match f.every {
                // A zero period would fire forever at the same instant: it fires once.
                Some(e) if !e.is_zero() && at + e < duration => at += e,
                _ => break,
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::fmt::Write;
    use std::path::PathBuf;

    use super::*;
    use crate::plan::fault::{FailoverMode, Link, MemLimit};
    use crate::plan::{NodeSel, Topology};

    /// A fault `name` of `kind` at `at` seconds, with `duration` and `every` in seconds.
    fn fault(
        index: usize,
        kind: FaultKind,
        at: f64,
        dur: Option<f64>,
        every: Option<f64>,
    ) -> FaultPlan {
        FaultPlan {
            index,
            name: kind.type_name().to_string(),
            kind,
            at: Duration::from_secs_f64(at),
            duration: dur.map(Duration::from_secs_f64),
            every: every.map(Duration::from_secs_f64),
            node: NodeSel::Primary,
            link: Link::Clients,
            span: 0..0,
            recover_within: None,
        }
    }

    fn plan(seed: u64, secs: f64, faults: Vec<FaultPlan>) -> Plan {
        Plan {
            name: "t".into(),
            source: PathBuf::from("t.toml"),
            seed,
            duration: Duration::from_secs_f64(secs),
            target_url: None,
            key_prefix: "t:".into(),
            topology: Topology::default(),
            request_timeout: Duration::from_secs(1),
            workloads: vec![],
            faults,
            thresholds: vec![],
            allow_destructive: false,
            shard: None,
            migration: None,
            recover_within: crate::plan::DEFAULT_RECOVER_WITHIN,
        }
    }

    /// One line per occurrence: `#index name n=… inject..heal (hold)`, in seconds.
    fn render(occ: &[Occurrence<'_>]) -> String {
        let mut s = String::new();
        for o in occ {
            let hold = match o.hold {
                Hold::For(d) => format!("hold {}", d.as_secs_f64()),
                Hold::UntilEnd => "until end".into(),
            };
            let _ = writeln!(
                s,
                "#{} {} n={} {}..{} ({hold})",
                o.fault.index,
                o.fault.name,
                o.n,
                o.inject.as_secs_f64(),
                o.heal.as_secs_f64()
            );
        }
        s
    }

    fn check(secs: f64, faults: Vec<FaultPlan>, expect: &str) {
        let p = plan(7, secs, faults);
        let got = render(&schedule(&p));
        assert_eq!(got.trim(), expect.trim(), "\n{got}");
    }

    fn latency() -> FaultKind {
        FaultKind::Latency {
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(20),
            direction: crate::plan::fault::Direction::Downstream,
        }
    }

    fn failover() -> FaultKind {
        FaultKind::Failover {
            mode: FailoverMode::Forced,
        }
    }

    fn kill(restart: Option<f64>) -> FaultKind {
        FaultKind::Kill {
            restart_after: restart.map(Duration::from_secs_f64),
        }
    }

    #[test]
    fn no_faults_no_occurrences() {
        check(10.0, vec![], "");
    }

    #[test]
    fn a_windowed_fault_heals_after_its_duration() {
        check(
            10.0,
            vec![fault(0, latency(), 2.0, Some(3.0), None)],
            "#0 latency n=0 2..5 (hold 3)",
        );
    }

    #[test]
    fn a_window_that_outlasts_the_run_heals_at_its_end() {
        check(
            10.0,
            vec![fault(0, latency(), 8.0, Some(5.0), None)],
            "#0 latency n=0 8..10 (hold 5)",
        );
    }

    #[test]
    fn a_one_off_fault_heals_at_once_and_ignores_duration() {
        check(
            10.0,
            vec![fault(0, failover(), 4.0, Some(3.0), None)],
            "#0 failover n=0 4..4 (hold 0)",
        );
        check(
            10.0,
            vec![fault(0, FaultKind::ClientKill, 1.5, None, None)],
            "#0 client-kill n=0 1.5..1.5 (hold 0)",
        );
    }

    #[test]
    fn a_kill_is_held_for_restart_after_or_until_the_end() {
        check(
            10.0,
            vec![fault(0, kill(Some(2.0)), 3.0, Some(7.0), None)],
            "#0 kill n=0 3..5 (hold 2)",
        );
        check(
            10.0,
            vec![fault(0, kill(None), 3.0, None, None)],
            "#0 kill n=0 3..10 (until end)",
        );
    }

    #[test]
    fn a_consumer_crash_is_one_off_its_restart_is_the_guards() {
        let crash = FaultKind::ConsumerCrash {
            workload: "tasks".into(),
            consumer: 0,
            restart_after: Some(Duration::from_secs(2)),
        };
        check(
            10.0,
            vec![fault(0, crash, 3.0, None, None)],
            "#0 consumer-crash n=0 3..3 (hold 0)",
        );
    }

    #[test]
    fn memory_without_a_duration_lasts_until_the_end() {
        let mem = || FaultKind::Memory {
            maxmemory: MemLimit::Bytes(1 << 20),
            policy: "noeviction".into(),
        };
        check(
            10.0,
            vec![fault(0, mem(), 2.0, None, None)],
            "#0 memory n=0 2..10 (until end)",
        );
        check(
            10.0,
            vec![fault(0, mem(), 2.0, Some(1.0), None)],
            "#0 memory n=0 2..3 (hold 1)",
        );
        check(
            10.0,
            vec![fault(
                0,
                FaultKind::IdleTimeout { seconds: 1 },
                6.0,
                None,
                None,
            )],
            "#0 idle-timeout n=0 6..10 (until end)",
        );
    }

    #[test]
    fn every_repeats_while_the_next_firing_is_before_the_end() {
        check(
            10.0,
            vec![fault(0, latency(), 1.0, Some(1.0), Some(3.0))],
            "
#0 latency n=0 1..2 (hold 1)
#0 latency n=1 4..5 (hold 1)
#0 latency n=2 7..8 (hold 1)",
        );
        // A firing due exactly at the end does not happen; the last one is cut at the end.
        check(
            10.0,
            vec![fault(0, latency(), 1.0, Some(2.5), Some(4.5))],
            "
#0 latency n=0 1..3.5 (hold 2.5)
#0 latency n=1 5.5..8 (hold 2.5)",
        );
        check(
            10.0,
            vec![fault(0, latency(), 2.0, Some(3.0), Some(4.0))],
            "
#0 latency n=0 2..5 (hold 3)
#0 latency n=1 6..9 (hold 3)",
        );
        check(
            10.0,
            vec![fault(0, latency(), 3.0, Some(2.0), Some(5.0))],
            "
#0 latency n=0 3..5 (hold 2)
#0 latency n=1 8..10 (hold 2)",
        );
    }

    #[test]
    fn every_longer_than_the_rest_of_the_run_fires_once() {
        check(
            10.0,
            vec![fault(0, failover(), 4.0, None, Some(6.0))],
            "#0 failover n=0 4..4 (hold 0)",
        );
    }

    #[test]
    fn repeated_one_off_faults_and_kills_without_restart() {
        check(
            10.0,
            vec![fault(0, failover(), 2.0, None, Some(3.0))],
            "
#0 failover n=0 2..2 (hold 0)
#0 failover n=1 5..5 (hold 0)
#0 failover n=2 8..8 (hold 0)",
        );
        check(
            10.0,
            vec![fault(0, kill(None), 4.0, None, Some(4.0))],
            "
#0 kill n=0 4..10 (until end)
#0 kill n=1 8..10 (until end)",
        );
    }

    #[test]
    fn a_zero_period_fires_once_instead_of_forever() {
        check(
            10.0,
            vec![fault(0, failover(), 2.0, None, Some(0.0))],
            "#0 failover n=0 2..2 (hold 0)",
        );
    }

    #[test]
    fn several_faults_keep_plan_order_and_their_indices() {
        // Sharding drops faults but keeps their indices: 0 and 2 here.
        check(
            20.0,
            vec![
                fault(0, latency(), 10.0, Some(1.0), Some(4.0)),
                fault(2, failover(), 5.0, None, None),
            ],
            "
#0 latency n=0 10..11 (hold 1)
#0 latency n=1 14..15 (hold 1)
#0 latency n=2 18..19 (hold 1)
#2 failover n=0 5..5 (hold 0)",
        );
    }

    #[test]
    fn sub_second_offsets_are_kept_exactly() {
        check(
            2.0,
            vec![fault(0, latency(), 0.25, Some(0.1), Some(0.5))],
            "
#0 latency n=0 0.25..0.35 (hold 0.1)
#0 latency n=1 0.75..0.85 (hold 0.1)
#0 latency n=2 1.25..1.35 (hold 0.1)
#0 latency n=3 1.75..1.85 (hold 0.1)",
        );
    }

    #[test]
    fn the_schedule_is_the_same_for_every_seed_and_every_call() {
        let faults = || {
            vec![
                fault(0, latency(), 1.0, Some(0.5), Some(2.0)),
                fault(1, kill(Some(1.5)), 3.0, None, Some(4.0)),
            ]
        };
        let a = plan(1, 12.0, faults());
        let first = render(&schedule(&a));
        assert_eq!(render(&schedule(&a)), first);
        for seed in [0, 2, 42, u64::MAX] {
            assert_eq!(render(&schedule(&plan(seed, 12.0, faults()))), first);
        }
        // The latency toxic's own jitter is a per-packet delay in the proxy, not a shift of the
        // schedule.
        assert_eq!(
            first.trim(),
            "
#0 latency n=0 1..1.5 (hold 0.5)
#0 latency n=1 3..3.5 (hold 0.5)
#0 latency n=2 5..5.5 (hold 0.5)
#0 latency n=3 7..7.5 (hold 0.5)
#0 latency n=4 9..9.5 (hold 0.5)
#0 latency n=5 11..11.5 (hold 0.5)
#1 kill n=0 3..4.5 (hold 1.5)
#1 kill n=1 7..8.5 (hold 1.5)
#1 kill n=2 11..12 (hold 1.5)"
                .trim()
        );
    }

    #[test]
    fn heal_at_is_the_same_rule_for_instants_and_offsets() {
        let s = |x: f64| Duration::from_secs_f64(x);
        let end = s(10.0);
        assert_eq!(Hold::For(s(2.0)).heal_at(s(3.0), end), Some(s(5.0)));
        assert_eq!(Hold::For(s(2.0)).heal_at(s(9.0), end), Some(end));
        // Injected after the end (a slow injection): healed right away, not before it.
        assert_eq!(Hold::For(s(2.0)).heal_at(s(11.0), end), Some(s(11.0)));
        assert_eq!(Hold::UntilEnd.heal_at(s(3.0), end), None);
        let t0 = std::time::Instant::now();
        assert_eq!(
            Hold::For(s(2.0)).heal_at(t0 + s(9.0), t0 + end),
            Some(t0 + end)
        );
    }
}
