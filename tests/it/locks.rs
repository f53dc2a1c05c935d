//! Lock and rate-limit oracles are honest: clean runs count 0, planted bugs are caught every time
//! and fail the run through a threshold.

use std::time::Duration;

use crate::support::*;

#[tokio::test]
async fn clean_locks_and_limiters_count_zero() {
    let dir = scratch("clean-locks");
    let sc = scenario(
        &dir,
        "clean",
        r#"
duration = "4s"
[[workload]]
id = "lk"
type = "lock"
[workload.lock]
style = "redis-py"
names = 3
clients = 12
ttl = "5s"
hold = { min = "1ms", max = "8ms" }
retry_interval = "5ms"
fencing = true

[[workload]]
id = "ext"
type = "lock"
[workload.lock]
style = "redis-py"
names = 1
clients = 3
ttl = "1s"
hold = "1500ms"
extend_every = "200ms"
retry_interval = "20ms"

[[workload]]
id = "fw"
type = "rate_limit"
[workload.rate_limit]
limiter = "fixed-window"
limit = 20
window = "1s"
clients = 10
bursts = { every = "1s", size = 200 }
rate_per_sec = 50

[[workload]]
id = "sl"
type = "rate_limit"
[workload.rate_limit]
limiter = "sliding-log"
limit = 10
window = "500ms"
clients = 6

[[workload]]
id = "dc"
type = "rate_limit"
[workload.rate_limit]
limiter = "dramatiq-concurrent"
limit = 2
clients = 6
hold = "3ms"

[[workload]]
id = "dw"
type = "rate_limit"
[workload.rate_limit]
limiter = "dramatiq-window"
limit = 8
window = "2s"
clients = 4
"#,
    );
    let plan = valkey_chaos::scenario::load_plain(&sc).unwrap_or_else(|d| panic!("{d}"));
    let opts = valkey_chaos::run::RunOptions {
        quiet: true,
        ..Default::default()
    };
    let outcome = valkey_chaos::run::run(&plan, &opts, tokio_util::sync::CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("run failed: {e}"));
    // The histories stay beside the scenario: a failure below can be read back entry by entry.
    for (id, lines) in &outcome.histories {
        std::fs::write(dir.join(format!("{id}.jsonl")), lines).unwrap();
    }
    let s = outcome.summary;
    for (w, min) in [("lk", 100.0), ("ext", 2.0)] {
        assert!(
            s.counter(w, "acquired").unwrap() >= min,
            "{w} barely ran: {:#?}",
            s.counters
        );
        for c in [
            "violations",
            "lost_while_held",
            "fencing_violations",
            "immortal_keys",
        ] {
            assert_eq!(s.counter(w, c), Some(0.0), "{w}.{c}");
        }
    }
    assert!(s.op("ext", "extend").unwrap().count >= 10, "extends ran");
    // dramatiq-bucket is left out on purpose: Dramatiq's BucketRateLimiter re-creates an expired
    // bucket key for late requests of the same bucket and over-admits under latency
    // (docs/workloads.md).
    for w in ["fw", "sl", "dc", "dw"] {
        assert!(
            s.counter(w, "admitted").unwrap() > 5.0 && s.counter(w, "rejected").unwrap() > 5.0,
            "{w} must hit its limit: {:#?}",
            s.counters
        );
        assert_eq!(
            s.counter(w, "overshoot"),
            Some(0.0),
            "{w}.overshoot (history: {})",
            dir.join(format!("{w}.jsonl")).display()
        );
        assert_eq!(
            s.workloads.iter().find(|x| x.id == w).unwrap().errors,
            0,
            "{w} errors"
        );
    }
}

fn planted(name: &str, body: &str, counters: &[&str]) {
    let dir = scratch(name);
    for seed in [1, 2] {
        let sc = scenario(&dir, name, body);
        let out = dir.join(format!("out-{seed}"));
        let o = agent(
            &[
                "run",
                sc.to_str().unwrap(),
                "--seed",
                &seed.to_string(),
                "--out",
                out.to_str().unwrap(),
                "-q",
            ],
            Duration::from_secs(60),
        );
        assert_eq!(
            o.status.code(),
            Some(1),
            "planted bug not caught (seed {seed}): {}",
            show(&o)
        );
        let s = summary(&out);
        for c in counters {
            assert!(
                counter(&s, "bug", c) > 0.0,
                "seed {seed}: {c} stayed 0: {}",
                show(&o)
            );
        }
    }
}

#[test]
fn owner_blind_release_is_caught() {
    // ECHO's historical ETL lock: no token, plain DEL; the TTL runs out mid-work, so the slow
    // holder's DEL frees somebody else's lock.
    planted(
        "blind-release",
        r#"
duration = "3s"
[[workload]]
id = "bug"
type = "lock"
[workload.lock]
style = "set-nx-ex"
names = 1
clients = 4
ttl = "40ms"
hold = "100ms"
retry_interval = "5ms"
[thresholds]
"bug.violations" = "== 0"
"#,
        &["violations", "lost_while_held"],
    );
}

#[test]
fn ttl_shorter_than_hold_is_caught_even_with_tokens() {
    planted(
        "short-ttl",
        r#"
duration = "3s"
[[workload]]
id = "bug"
type = "lock"
[workload.lock]
style = "redis-py"
names = 1
clients = 4
ttl = "30ms"
hold = "80ms"
retry_interval = "5ms"
[thresholds]
"bug.violations" = "== 0"
"#,
        &["violations", "lost_while_held"],
    );
}

#[test]
fn split_check_and_increment_is_caught() {
    planted(
        "check-then-incr",
        r#"
duration = "3s"
[[workload]]
id = "bug"
type = "rate_limit"
[workload.rate_limit]
limiter = "check-then-incr"
limit = 10
window = "1s"
clients = 20
bursts = { every = "500ms", size = 200 }
[thresholds]
"bug.overshoot" = "== 0"
"#,
        &["overshoot"],
    );
}
