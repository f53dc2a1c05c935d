//! `valkey-chaos drain` without Python: what it must leave and what it moves besides the queues
//! (the real-worker round trip is in `interop.rs`).

use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use valkey_chaos::valkey::Conn;

use crate::support::*;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn payload(id: &str) -> String {
    format!(
        r#"{{"queue_name":"jobs","actor_name":"a","args":[],"kwargs":{{}},"options":{{"redis_message_id":"{id}"}},"message_id":"{id}","message_timestamp":1}}"#
    )
}

/// Run `valkey-chaos drain` from `src` to `dst` with its output in `dir/name` and `extra` flags:
/// its exit and `drain.json`.
pub(crate) fn run_drain(
    dir: &Path,
    name: &str,
    src: &str,
    dst: &str,
    extra: &[&str],
) -> (Output, serde_json::Value) {
    let out = dir.join(name);
    let mut args = vec!["drain", "--source", src, "--destination", dst, "--out"];
    args.push(out.to_str().unwrap());
    args.extend_from_slice(extra);
    let o = agent(&args, Duration::from_secs(60));
    let r = std::fs::read(out.join("drain.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| panic!("no drain.json in {}\n{}", out.display(), show(&o)));
    (o, r)
}

/// A ready message as Dramatiq enqueues it: payload, then id.
async fn enqueue(c: &mut Conn, id: &str) {
    cmd(c, &["HSET", "dramatiq:jobs.msgs", id, &payload(id)]).await;
    cmd(c, &["RPUSH", "dramatiq:jobs", id]).await;
}

async fn int(c: &mut Conn, args: &[&str]) -> i64 {
    cmd(c, args).await.as_int().unwrap()
}

/// On a Redis 7.0 source's DB 2: a worker still heart-beating holds 3 messages, 2 dead letters
/// wait in `jobs.XQ`. `drain` leaves the live worker's ack set where it is and names it (exit 1),
/// moves the dead letters with their times; once that worker's heartbeat is old, a second drain
/// requeues its 3 on the destination and exits 0.
#[tokio::test]
async fn a_live_workers_ack_set_is_left_and_dead_letters_move() {
    let src = start_bin(&crate::tls::redis_bin()).await;
    let dst = start_single().await;
    let (su, du) = (format!("{}/2", url(&src)), format!("{}/2", url(&dst)));
    let dir = scratch("drain-live");
    let mut s = conn(&src).await;
    cmd(&mut s, &["SELECT", "2"]).await;
    let mut d = conn(&dst).await;
    cmd(&mut d, &["SELECT", "2"]).await;
    for id in ["h1", "h2", "h3"] {
        cmd(&mut s, &["HSET", "dramatiq:jobs.msgs", id, &payload(id)]).await;
        cmd(&mut s, &["SADD", "dramatiq:__acks__.alive.jobs", id]).await;
    }
    for (id, at) in [("x1", "1000"), ("x2", "2000")] {
        cmd(&mut s, &["HSET", "dramatiq:jobs.XQ.msgs", id, &payload(id)]).await;
        cmd(&mut s, &["ZADD", "dramatiq:jobs.XQ", at, id]).await;
    }
    let beat = now_ms().to_string();
    cmd(&mut s, &["ZADD", "dramatiq:__heartbeats__", &beat, "alive"]).await;

    let (o, r) = run_drain(&dir, "live", &su, &du, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("worker alive's ack set"), "{text}");
    assert_eq!(r["live_workers"][0]["messages"], 3, "{r:#}");
    assert_eq!(
        int(&mut s, &["SCARD", "dramatiq:__acks__.alive.jobs"]).await,
        3
    );
    assert_eq!(int(&mut s, &["HLEN", "dramatiq:jobs.msgs"]).await, 3);
    assert_eq!(int(&mut d, &["EXISTS", "dramatiq:jobs"]).await, 0);
    // The dead letters moved with their times, and left the source.
    let dead = cmd(
        &mut d,
        &["ZRANGE", "dramatiq:jobs.XQ", "0", "-1", "WITHSCORES"],
    )
    .await;
    let dead: Vec<String> = dead
        .into_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(dead, ["x1", "1000", "x2", "2000"]);
    assert_eq!(int(&mut d, &["HLEN", "dramatiq:jobs.XQ.msgs"]).await, 2);
    assert_eq!(
        int(
            &mut s,
            &["EXISTS", "dramatiq:jobs.XQ", "dramatiq:jobs.XQ.msgs"]
        )
        .await,
        0
    );

    // That worker stopped two minutes ago.
    let old = (now_ms() - 120_000).to_string();
    cmd(&mut s, &["ZADD", "dramatiq:__heartbeats__", &old, "alive"]).await;
    let (o, r) = run_drain(&dir, "gone", &su, &du, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(r["queues"][0]["requeued"], 3, "{r:#}");
    assert_eq!(int(&mut d, &["LLEN", "dramatiq:jobs"]).await, 3);
    assert_eq!(int(&mut d, &["HLEN", "dramatiq:jobs.msgs"]).await, 3);
    assert_eq!(
        int(
            &mut s,
            &[
                "EXISTS",
                "dramatiq:__acks__.alive.jobs",
                "dramatiq:jobs.msgs"
            ]
        )
        .await,
        0
    );
}

/// What the copy carried is not moved again, even where the destination already ran it:
/// `--save-copied` when the copy stops lists m1; m2 is enqueued on the old side afterwards; the
/// destination has run m1 (its payload is gone there). `drain --copied` moves only m2.
#[tokio::test]
async fn what_the_copy_carried_is_skipped_even_once_run() {
    let src = start_bin(&crate::tls::redis_bin()).await;
    let dst = start_single().await;
    let (su, du) = (format!("{}/1", url(&src)), format!("{}/1", url(&dst)));
    let dir = scratch("drain-copied");
    let mut s = conn(&src).await;
    cmd(&mut s, &["SELECT", "1"]).await;
    enqueue(&mut s, "m1").await;
    let saved = dir.join("copied.json");
    let o = agent(
        &[
            "drain",
            "--source",
            &su,
            "--destination",
            &du,
            "--save-copied",
            saved.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    enqueue(&mut s, "m2").await;
    let (o, r) = run_drain(
        &dir,
        "out",
        &su,
        &du,
        &["--copied", saved.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(
        (
            r["queues"][0]["ready"].as_u64(),
            r["queues"][0]["copied"].as_u64()
        ),
        (Some(1), Some(1)),
        "{r:#}"
    );
    let mut d = conn(&dst).await;
    cmd(&mut d, &["SELECT", "1"]).await;
    let moved = cmd(&mut d, &["LRANGE", "dramatiq:jobs", "0", "-1"]).await;
    let moved: Vec<String> = moved
        .into_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(moved, ["m2"]);
}
