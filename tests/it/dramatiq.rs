//! The Dramatiq ledger is honest: a clean run counts nothing, and loss and duplication planted
//! behind the agent's back are counted exactly.

use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test]
async fn clean_run_loses_and_duplicates_nothing() {
    let dir = scratch("dq-clean");
    let sc = scenario(
        &dir,
        "clean",
        r#"
duration = "3s"
[[workload]]
id = "q"
type = "dramatiq"
[workload.dramatiq]
queue = "clean"
producers = 2
rate_per_sec = 200
consumers = 2
threads = 4
delay_fraction = 0.1
delay = "500ms"
fail_fraction = 0.05
max_retries = 2
min_backoff = "50ms"
max_backoff = "200ms"
drain_timeout = "20s"
"#,
    );
    let s = run_plan(&sc, None).await;
    let c = |n| s.counter("q", n).unwrap();
    assert!(c("enqueued") >= 500.0, "{:#?}", s.counters);
    for n in [
        "lost",
        "duplicated",
        "stuck",
        "unfinished",
        "missing_payloads",
        "undecodable",
    ] {
        assert_eq!(c(n), 0.0, "{n}: {:#?}", s.counters);
    }
    assert!(c("retried") > 0.0, "failures were retried");
    assert_eq!(
        c("acked") + c("dead_lettered"),
        c("enqueued"),
        "every message ended"
    );
    assert!(s.op("q", "e2e").unwrap().count > 0);
}

#[tokio::test]
async fn planted_loss_and_duplicates_are_counted_exactly() {
    let t = start_single().await;
    let u = url(&t);
    let dir = scratch("dq-planted");
    let sc = scenario(
        &dir,
        "planted",
        r#"
duration = "5s"
[[workload]]
id = "q"
type = "dramatiq"
[workload.dramatiq]
queue = "planted"
producers = 1
rate_per_sec = 200
consumers = 1
threads = 4
prefetch = 64
consume_after = "4s"
drain_timeout = "20s"
"#,
    );
    let t0 = Instant::now();
    let run = tokio::spawn(async move { run_plan(&sc, Some(u)).await });
    // Before the consumers start: drop 7 messages from the tail, copy 5 at the head.
    let mut c = conn(&t).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while cmd(&mut c, &["LLEN", "dramatiq:planted"])
        .await
        .as_int()
        .unwrap_or(0)
        < 100
    {
        assert!(Instant::now() < deadline, "no backlog built");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..7 {
        let rid = cmd(&mut c, &["RPOP", "dramatiq:planted"]).await;
        let rid = rid.as_str().unwrap().to_string();
        assert_eq!(
            cmd(&mut c, &["HDEL", "dramatiq:planted.msgs", &rid])
                .await
                .as_int(),
            Some(1)
        );
    }
    let head = cmd(&mut c, &["LRANGE", "dramatiq:planted", "0", "4"])
        .await
        .into_array()
        .unwrap();
    for rid in head {
        cmd(
            &mut c,
            &["LPUSH", "dramatiq:planted", rid.as_str().unwrap()],
        )
        .await;
    }
    // The run started after t0, so its consumers start after t0 + consume_after.
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "planted {:?} after the run was spawned: the consumers may already have run",
        t0.elapsed()
    );
    let s = run.await.unwrap();
    let n = |x| s.counter("q", x).unwrap();
    assert_eq!(n("lost"), 7.0, "{:#?}", s.counters);
    assert_eq!(n("duplicated"), 5.0, "{:#?}", s.counters);
    assert_eq!(n("stuck"), 0.0, "{:#?}", s.counters);
    assert_eq!(n("acked"), n("enqueued") - 7.0, "{:#?}", s.counters);
}
