//! `compat` (the Phase 1 probes) and `compare` (one scenario, two servers) against real servers:
//! the embedded Valkey and Debian's Redis 7.0, both started here.

use std::path::Path;
use std::time::{Duration, Instant};

use valkey_chaos::compat::{self, Status};
use valkey_chaos::valkey::embedded::free_port;
use valkey_chaos::valkey::Value;

use crate::support::*;
use crate::tls::redis_bin;

async fn start_redis7() -> Topology {
    Topology::start(&redis_bin(), TopologySpec::default())
        .await
        .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"))
}

/// The table line of check `name` (`name` then two spaces).
fn row(table: &str, name: &str) -> String {
    table
        .lines()
        .find(|l| l.starts_with(&format!("{name}  ")))
        .unwrap_or_else(|| panic!("no row {name:?}:\n{table}"))
        .to_string()
}

/// Keys a compat run left behind in dbs 0–2 (there must be none). SCAN, not KEYS: one of the
/// test servers has KEYS disabled.
async fn leftovers(t: &Topology) -> Vec<String> {
    let mut c = conn(t).await;
    let mut out = vec![];
    for db in ["0", "1", "2"] {
        cmd(&mut c, &["SELECT", db]).await;
        let mut cursor = "0".to_string();
        loop {
            let v = cmd(
                &mut c,
                &["SCAN", &cursor, "MATCH", "vc:compat:*", "COUNT", "1000"],
            )
            .await;
            let mut parts = v.into_array().unwrap().into_iter();
            cursor = parts.next().unwrap().to_string();
            out.extend(
                parts
                    .next()
                    .and_then(Value::into_array)
                    .unwrap_or_default()
                    .iter()
                    .map(Value::to_string),
            );
            if cursor == "0" {
                break;
            }
        }
    }
    out
}

#[tokio::test]
async fn compat_valkey_candidate_against_redis_7_baseline() {
    let valkey = start_single().await;
    let redis = start_redis7().await;
    let t0 = Instant::now();
    let o = agent_env(
        &[
            "compat",
            "--target",
            &url(&valkey),
            "--baseline",
            &url(&redis),
        ],
        &[],
        Duration::from_secs(60),
    );
    let took = t0.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(table.contains("(redis 7.0"), "{table}");
    assert!(table.contains("(valkey "), "{table}");
    assert!(table.contains("compat: pass"), "{table}");

    // Server identity: redis on one side, valkey on the other.
    let r = row(&table, "info server_name");
    assert!(
        r.contains("(absent)") && r.contains("valkey") && r.ends_with("different"),
        "{r}"
    );
    assert!(row(&table, "info valkey_version").ends_with("different"));
    let r = row(&table, "hello 3");
    assert!(
        r.contains("server=redis 7.0") && r.contains("server=valkey") && r.ends_with("different"),
        "{r}"
    );
    // CLIENT SETINFO is Redis 7.2+: refused by the baseline, accepted by Valkey.
    let r = row(&table, "client setinfo");
    assert!(
        r.contains("failed: ERR unknown subcommand")
            && r.contains("OK")
            && r.ends_with("different"),
        "{r}"
    );
    for same in [
        "resp2 default",
        "select 1",
        "select 2",
        "eval",
        "evalsha noscript recovery",
        "eval undeclared keys",
        "keys in script",
        "lua unpack 7992",
        "multi exec",
        "watch exec abort",
        "set nx px",
        "set nx ex",
        "setnx expire",
        "incrbyfloat",
        "zadd zremrange zrangebyscore",
        "lpush lindex lpop rpush",
        "brpoplpush",
        "sadd smembers srem",
        "hset hmget hdel",
        "scan match count",
        "pubsub across dbs",
        "config maxmemory-policy",
    ] {
        assert!(row(&table, same).ends_with("same"), "{same}:\n{table}");
    }
    assert!(row(&table, "auth wrong password").ends_with("skipped"));
    assert!(!table.contains("<-"), "{table}");
    assert!(took < Duration::from_secs(20), "compat took {took:?}");
    assert_eq!(leftovers(&valkey).await, Vec::<String>::new());
    assert_eq!(leftovers(&redis).await, Vec::<String>::new());

    // The other way round, as a library call: Redis 7.0 as the candidate fails CLIENT SETINFO,
    // which is informational (redis-py ignores the refusal), so the run still passes.
    let rep = compat::run(&url(&redis), Some(&url(&valkey)), &Default::default())
        .await
        .expect("compat runs");
    let r = rep.row("client setinfo").unwrap();
    assert_eq!((r.status, r.matters), (Status::Failed, false), "{r:?}");
    assert_eq!(rep.row("hello 3").unwrap().status, Status::Different);
    assert_eq!(
        rep.row("eval undeclared keys").unwrap().status,
        Status::Same
    );
    assert!(!rep.failed(), "{}", rep.render());
    assert_eq!(rep.rows.len(), rep.candidate.probes.len());
}

#[tokio::test]
async fn compat_fails_on_what_matters() {
    let baseline = start_single().await;
    // A provider-style candidate: KEYS disabled (breaks Dramatiq's maintenance script), an
    // eviction policy that may drop broker keys, and INFO disabled (informational rows only).
    let candidate = Topology::start_with(
        &valkey_bin(),
        TopologySpec::default(),
        &[
            "--rename-command",
            "KEYS",
            "",
            "--maxmemory-policy",
            "allkeys-lru",
            "--rename-command",
            "INFO",
            "",
        ],
    )
    .await
    .expect("start candidate");
    let o = agent_env(
        &[
            "compat",
            "--target",
            &url(&candidate),
            "--baseline",
            &url(&baseline),
        ],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    let r = row(&table, "keys in script");
    assert!(r.ends_with("failed  <-") && r.contains("3 keys"), "{r}");
    let r = row(&table, "config maxmemory-policy");
    assert!(
        r.contains("noeviction") && r.contains("allkeys-lru") && r.ends_with("different  <-"),
        "{r}"
    );
    assert!(table.contains("evict broker keys"), "{table}");
    let r = row(&table, "info server_name");
    assert!(
        r.contains("failed: INFO server") && !r.ends_with("<-"),
        "{r}"
    );
    assert!(table.contains("(INFO unavailable)"), "{table}");
    assert!(table.contains("compat: fail (2 of"), "{table}");

    // Without a baseline: the same two rows matter.
    let rep = compat::run(&url(&candidate), None, &Default::default())
        .await
        .expect("compat runs");
    let bad: Vec<&str> = rep
        .rows
        .iter()
        .filter(|r| r.matters)
        .map(|r| r.name)
        .collect();
    assert_eq!(bad, ["keys in script", "config maxmemory-policy"]);
    assert_eq!(
        rep.row("config maxmemory-policy").unwrap().status,
        Status::Warning
    );
    assert_eq!(leftovers(&baseline).await, Vec::<String>::new());
    assert_eq!(leftovers(&candidate).await, Vec::<String>::new());
}

#[test]
fn compat_unreachable_sides_are_exit_3() {
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let o = agent_env(&["compat", "--target", &dead], &[], Duration::from_secs(30));
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("candidate") && err.contains(&dead[8..]),
        "{err}"
    );
    let o = agent_env(
        &["compat", "--target", &dead, "--baseline", &dead],
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("baseline"),
        "{}",
        show(&o)
    );
}

fn compare_scenario(dir: &Path, p99: &str, extra: &str) -> std::path::PathBuf {
    scenario(
        dir,
        "compare",
        &format!(
            r#"
name = "compare-smoke"
seed = 4242
duration = "5s"

[[workload]]
id = "cache"
type = "commands"
clients = 4
rate_per_sec = 500
[workload.commands]
mix = {{ get = 3, set = 1 }}
keys = 1000
value_bytes = 64

[thresholds]
"cache.get.p99" = "< {p99}"
"cache.error_rate" = "< 1%"
{extra}"#
        ),
    )
}

#[test]
fn compare_embedded_redis_7_against_embedded_valkey() {
    let dir = scratch("compare-embedded");
    // A process fault: both embedded sides are topologies the agent manages, Redis 7.0 included.
    let sc = compare_scenario(
        &dir,
        "1s",
        r#"
[[fault]]
name = "stall"
type = "pause"
at = "300ms"
node = "primary"
duration = "200ms"
"#,
    );
    let out = dir.join("out");
    let o = agent_env(
        &[
            "compare",
            sc.to_str().unwrap(),
            "--duration",
            "1s",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
        Duration::from_secs(90),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("compare compare-smoke  seed 4242"), "{text}");
    let base = text
        .lines()
        .find(|l| l.starts_with("baseline   embedded"))
        .unwrap_or_default();
    let cand = text
        .lines()
        .find(|l| l.starts_with("candidate  embedded"))
        .unwrap_or_default();
    assert!(base.contains("(redis 7.0"), "{text}");
    assert!(cand.contains("(valkey "), "{text}");
    assert!(
        text.contains("cache.get") && text.contains("cache.set"),
        "{text}"
    );
    for metric in ["ops/s", "p50", "p99", "p99.9", "errors"] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(metric)),
            "{metric}:\n{text}"
        );
    }
    let p99 = text
        .lines()
        .find(|l| l.trim_start().starts_with("p99 "))
        .unwrap();
    assert!(p99.trim_end().ends_with('x'), "a ratio: {p99}");
    assert!(
        text.contains("baseline   pass") && text.contains("candidate  pass"),
        "{text}"
    );

    let b = summary(&out.join("baseline"));
    let c = summary(&out.join("candidate"));
    assert_eq!(b["seed"], 4242);
    assert_eq!(c["seed"], 4242);
    assert_eq!(b["server"]["server_name"], "redis");
    assert_eq!(c["server"]["server_name"], "valkey");
    for s in [&b, &c] {
        assert!(op(s, "cache", "get")["ok"].as_u64().unwrap() > 100, "{s}");
        let f = &s["faults"][0];
        assert!(
            f["injected_at_secs"].is_number() && f["healed_at_secs"].is_number(),
            "{f}"
        );
        assert!(f["heal_error"].is_null(), "{f}");
    }
    assert!(out.join("compare.txt").is_file());
}

#[tokio::test]
async fn compare_urls_and_failing_thresholds() {
    let dir = scratch("compare-urls");
    let valkey = start_single().await;
    let redis = start_redis7().await;
    let sc = compare_scenario(&dir, "1us", "");
    let o = agent_env(
        &[
            "compare",
            sc.to_str().unwrap(),
            "--baseline",
            &url(&redis),
            "--candidate",
            &url(&valkey),
            "--duration",
            "1s",
            "--seed",
            "77",
            "--quiet",
        ],
        &[],
        Duration::from_secs(90),
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("seed 77"), "{text}");
    assert!(
        text.contains(&format!("baseline   {} (redis 7.0", url(&redis))),
        "{text}"
    );
    assert!(text.contains("baseline   fail: cache.get.p99"), "{text}");
    assert!(text.contains("candidate  fail: cache.get.p99"), "{text}");

    // An embedded side while REDIS_URL is set would silently hit REDIS_URL: refused.
    let o = agent_env(
        &[
            "compare",
            sc.to_str().unwrap(),
            "--candidate",
            &url(&valkey),
        ],
        &[("REDIS_URL", &url(&valkey))],
        Duration::from_secs(30),
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("REDIS_URL"),
        "{}",
        show(&o)
    );
    // An unreachable side: exit 3.
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let o = agent_env(
        &[
            "compare",
            sc.to_str().unwrap(),
            "--baseline",
            &dead,
            "--candidate",
            &url(&valkey),
        ],
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
}
