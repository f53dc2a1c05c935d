//! `compat` (the Phase 1 probes) and `compare` (one scenario, two servers) against real servers:
//! the embedded Valkey and Debian's Redis 7.0, both started here.

use std::path::Path;
use std::time::{Duration, Instant};

use valkey_chaos::compat::{self, Status};
use valkey_chaos::plan::provider::Provider;
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
    // The way back: Valkey 9 sends Redis 7.0 an RDB it cannot load (tried in rollback.rs).
    let way_back = table
        .lines()
        .find(|l| l.starts_with("way back"))
        .unwrap_or("");
    assert!(
        way_back.starts_with("way back   closed by replication: valkey 9")
            && way_back.contains("up to 10"),
        "{table}"
    );

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
    // READONLY in standalone mode: refused by Redis 7.0, OK on Valkey; informational.
    let r = row(&table, "readonly readwrite standalone");
    assert!(
        r.contains("failed: ERR This instance") && r.contains("OK, OK") && r.ends_with("different"),
        "{r}"
    );
    let r = row(&table, "lolwut banner");
    assert!(
        r.contains("Redis ver. 7.0") && r.contains("Valkey ver.") && r.ends_with("different"),
        "{r}"
    );
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
    // A removed command is refused by the target ("forbidden"), not a failure.
    let r = row(&table, "keys in script");
    assert!(
        r.ends_with("forbidden  <-") && r.contains("3 keys") && r.contains("forbidden: KEYS"),
        "{r}"
    );
    let r = row(&table, "config maxmemory-policy");
    assert!(
        r.contains("noeviction") && r.contains("allkeys-lru") && r.ends_with("different  <-"),
        "{r}"
    );
    assert!(table.contains("evict broker keys"), "{table}");
    let r = row(&table, "info server_name");
    assert!(
        r.contains("forbidden: INFO") && r.ends_with("forbidden"),
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

async fn start_valkey8(extra: &[&str]) -> Topology {
    Topology::start_with(&valkey8_bin(), TopologySpec::default(), extra)
        .await
        .unwrap_or_else(|e| panic!("cannot start valkey 8.1: {e}"))
}

async fn config_get(t: &Topology, param: &str) -> String {
    let mut c = conn(t).await;
    let v = cmd(&mut c, &["CONFIG", "GET", param]).await;
    v.into_array().unwrap()[1].to_string()
}

fn json_of(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("--json output: {e}\n{}", show(o)))
}

fn json_row<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name:?} in {v}"))
}

/// Redis 7.0 → Valkey 8.1 (managed Valkey today): Valkey's own name in BUSY. ECHO's clients
/// match error codes, never texts, so the changed text is a difference explained in one line
/// that fails the run only with --error-text-matters.
#[tokio::test]
async fn compat_busy_text_redis_7_vs_valkey_8() {
    let redis = start_redis7().await;
    let valkey8 = start_valkey8(&[]).await;
    let dir = scratch("compat-busy");
    let out = dir.join("out");
    let args = [
        "compat",
        "--target",
        &url(&valkey8),
        "--baseline",
        &url(&redis),
        "--out",
        out.to_str().unwrap(),
    ];
    let o = agent_env(&args, &[], Duration::from_secs(60));
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(table.contains("(valkey 8.1."), "{table}");
    let r = row(&table, "busy script error");
    assert!(
        r.contains("BUSY Redis is busy")
            && r.contains("BUSY Valkey is busy")
            && r.ends_with("different"),
        "{r}"
    );
    let why = table
        .lines()
        .find(|l| l.starts_with("different  busy script error: "))
        .unwrap_or_else(|| panic!("no explained line for the busy text:\n{table}"));
    assert!(why.contains("'Redis is busy' breaks"), "{why}");
    let r = row(&table, "info redis_mode");
    assert!(
        r.contains("redis_mode:standalone") && r.contains("server_mode:standalone"),
        "{r}"
    );
    assert!(row(&table, "noscript error text").ends_with("different"));
    assert!(row(&table, "lua server.call").contains("failed: no global 'server'"));
    for skipped in ["loading error", "misconf error"] {
        assert!(
            row(&table, skipped).contains("skipped: not provoked"),
            "{skipped}:\n{table}"
        );
    }
    assert!(table.contains("compat: pass"), "{table}");
    // --out: the same table, and the JSON.
    assert_eq!(
        std::fs::read_to_string(out.join("compat.txt")).unwrap(),
        table
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("compat.json")).unwrap()).unwrap();
    assert_eq!(saved["verdict"], "pass");

    // For code that matches error texts: the same difference fails the run, explained.
    let o = agent_env(
        &[
            "compat",
            "--target",
            &url(&valkey8),
            "--baseline",
            &url(&redis),
            "--error-text-matters",
            "--json",
        ],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let v = json_of(&o);
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["error_text_matters"], true);
    assert_eq!(
        v["matters"],
        serde_json::json!(["noscript error text", "busy script error"])
    );
    let busy = json_row(&v, "busy script error");
    assert_eq!(busy["status"], "different");
    assert_eq!(busy["weight"], "error-text");
    assert_eq!(busy["matters"], true);
    assert!(busy["baseline"]
        .as_str()
        .unwrap()
        .starts_with("BUSY Redis is busy"));
    assert!(busy["candidate"]
        .as_str()
        .unwrap()
        .starts_with("BUSY Valkey is busy"));
    assert!(
        busy["note"].as_str().unwrap().contains("Valkey is busy"),
        "{busy}"
    );
    assert!(busy["explanation"]
        .as_str()
        .unwrap()
        .contains("ResponseError"));

    // The probe lowered busy-reply-threshold for a moment and put it back; no key is left.
    assert_eq!(config_get(&redis, "busy-reply-threshold").await, "5000");
    assert_eq!(config_get(&valkey8, "busy-reply-threshold").await, "5000");
    assert_eq!(leftovers(&valkey8).await, Vec::<String>::new());
    assert_eq!(leftovers(&redis).await, Vec::<String>::new());
}

/// A managed-style target: KEYS and CONFIG removed, CLIENT SETINFO denied by an ACL. Refusals
/// are "forbidden", never "failed"; only KEYS matters (Dramatiq's maintenance needs it).
#[tokio::test]
async fn compat_forbidden_commands_are_their_own_outcome() {
    let valkey = Topology::start_with(
        &valkey_bin(),
        TopologySpec::default(),
        &[
            "--rename-command",
            "KEYS",
            "",
            "--rename-command",
            "CONFIG",
            "",
        ],
    )
    .await
    .expect("start valkey");
    {
        let mut c = conn(&valkey).await;
        let v = cmd(
            &mut c,
            &[
                "ACL",
                "SETUSER",
                "compat",
                "on",
                ">s3cret",
                "~*",
                "&*",
                "+@all",
                "-client|setinfo",
            ],
        )
        .await;
        assert!(v.is_ok(), "{v}");
    }
    let target = url(&valkey).replacen("redis://", "redis://compat:s3cret@", 1);
    let t0 = Instant::now();
    let o = agent_env(
        &[
            "compat",
            "--target",
            &target,
            "--provider",
            "elasticache",
            "--json",
        ],
        &[],
        Duration::from_secs(60),
    );
    let took = t0.elapsed();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let v = json_of(&o);
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["matters"], serde_json::json!(["keys in script"]));
    let side = &v["candidate"];
    assert_eq!(side["provider"], "elasticache");
    assert_eq!(side["server_name"], "valkey");
    assert!(
        side["version"].as_str().unwrap().starts_with("9."),
        "{side}"
    );
    assert!(!side["url"].as_str().unwrap().contains("s3cret"), "{side}");
    assert_eq!(v["baseline"], serde_json::Value::Null);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), compat::Check::ALL.len());
    // Nothing the target refuses is reported as a failure.
    let failed: Vec<&serde_json::Value> = rows.iter().filter(|r| r["status"] == "failed").collect();
    assert!(failed.is_empty(), "{failed:?}");

    let k = json_row(&v, "keys in script");
    assert_eq!(
        (&k["status"], &k["matters"], &k["weight"]),
        (&"forbidden".into(), &true.into(), &"behaviour".into())
    );
    assert_eq!(k["candidate"], "forbidden: KEYS (ElastiCache)");
    assert!(k["explanation"].as_str().unwrap().contains("Dramatiq"));
    let k = json_row(&v, "keys");
    assert_eq!(
        (&k["status"], &k["matters"]),
        (&"forbidden".into(), &false.into())
    );
    let s = json_row(&v, "client setinfo");
    assert_eq!(
        (&s["status"], &s["matters"]),
        (&"forbidden".into(), &false.into())
    );
    assert_eq!(s["candidate"], "forbidden: CLIENT SETINFO (ElastiCache)");
    assert!(s["note"].as_str().unwrap().contains("NOPERM"), "{s}");
    for name in [
        "config maxmemory-policy",
        "config timeout",
        "config maxclients",
        "config extended-redis-compatibility",
    ] {
        let c = json_row(&v, name);
        assert_eq!(
            (&c["status"], &c["matters"]),
            (&"forbidden".into(), &false.into()),
            "{c}"
        );
        assert_eq!(c["candidate"], "forbidden: CONFIG (ElastiCache)");
        assert!(
            c["note"].as_str().unwrap().contains("parameter group"),
            "{c}"
        );
    }
    // With CONFIG refused the busy probe waits out the default 5 s threshold, bounded.
    let b = json_row(&v, "busy script error");
    assert_eq!(b["status"], "ok");
    assert!(
        b["candidate"]
            .as_str()
            .unwrap()
            .starts_with("BUSY Valkey is busy"),
        "{b}"
    );
    assert!(took < Duration::from_secs(30), "compat took {took:?}");
    assert_eq!(
        json_row(&v, "auth wrong password")["candidate"],
        "refused: WRONGPASS"
    );
    assert_eq!(json_row(&v, "eval")["status"], "ok");

    // The text table, detection off (a loopback host), the stall skipped.
    let o = agent_env(
        &["compat", "--target", &target, "--no-stall"],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    let r = row(&table, "keys in script");
    assert!(
        r.contains("forbidden: KEYS") && r.ends_with("forbidden  <-"),
        "{r}"
    );
    assert!(!r.contains("ElastiCache"), "{r}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("matters    keys in script: forbidden by the target: KEYS")),
        "{table}"
    );
    assert!(row(&table, "config timeout").ends_with("forbidden"));
    assert!(row(&table, "busy script error").contains("skipped: --no-stall"));
    assert!(table.contains("compat: fail (1 of"), "{table}");
    assert_eq!(leftovers(&valkey).await, Vec::<String>::new());

    // A provider name nobody knows is a usage error.
    let o = agent_env(
        &["compat", "--target", &target, "--provider", "azure"],
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown provider"),
        "{}",
        show(&o)
    );
}

/// Valkey 8.1 and 9.x as candidates against Redis 7.0: both pass, with the same expected
/// differences and nothing else.
#[tokio::test]
async fn compat_valkey_8_and_9_candidates_against_redis_7() {
    let redis = start_redis7().await;
    let valkey8 = start_valkey8(&[]).await;
    let valkey9 = start_single().await;
    let expected = [
        "info redis_version",
        "info valkey_version",
        "info server_name",
        "info redis_mode",
        "hello 3",
        "client setinfo",
        "noscript error text",
        "lua server.call",
        "lua redis.REDIS_VERSION",
        "readonly readwrite standalone",
        "lolwut banner",
        "busy script error",
        "config extended-redis-compatibility",
    ];
    // LOLWUT: Valkey 9 names itself, Valkey 8.1 still prints "Redis ver." with its own version.
    for (candidate, major, banner) in [
        (&valkey8, "8.1.", "Redis ver. 8.1."),
        (&valkey9, "9.", "Valkey ver. 9."),
    ] {
        let rep = compat::run(&url(candidate), Some(&url(&redis)), &Default::default())
            .await
            .expect("compat runs");
        let text = rep.render();
        assert!(!rep.failed(), "{text}");
        assert_eq!(rep.candidate.server_name.as_deref(), Some("valkey"));
        assert!(
            rep.candidate.version.as_deref().unwrap().starts_with(major),
            "{text}"
        );
        assert!(rep
            .baseline
            .as_ref()
            .unwrap()
            .server()
            .starts_with("redis 7.0"));
        let different: Vec<&str> = rep
            .rows
            .iter()
            .filter(|r| r.status == Status::Different)
            .map(|r| r.name)
            .collect();
        assert_eq!(different, expected, "{text}");
        for r in &rep.rows {
            assert!(
                matches!(r.status, Status::Same | Status::Different | Status::Skipped),
                "{}: {:?}\n{text}",
                r.name,
                r.status
            );
        }
        let skipped: Vec<&str> = rep
            .rows
            .iter()
            .filter(|r| r.status == Status::Skipped)
            .map(|r| r.name)
            .collect();
        assert_eq!(
            skipped,
            ["auth wrong password", "loading error", "misconf error"]
        );
        assert_eq!(
            rep.row("config extended-redis-compatibility")
                .unwrap()
                .candidate
                .cell(),
            "no"
        );
        assert_eq!(rep.candidate.provider, None);
        let lolwut = rep.row("lolwut banner").unwrap().candidate.cell();
        assert!(lolwut.starts_with(banner), "{lolwut}\n{text}");
    }
    // Detection labels nothing on loopback; --provider labels the candidate side.
    let opts = compat::Options {
        provider: Some(Provider::DigitalOcean),
        stall: false,
        ..Default::default()
    };
    let rep = compat::run(&url(&valkey8), None, &opts)
        .await
        .expect("compat runs");
    assert_eq!(rep.candidate.provider, Some(Provider::DigitalOcean));
    assert!(rep.render().contains("(valkey 8.1."), "{}", rep.render());
    assert!(rep.render().contains(", DigitalOcean)"), "{}", rep.render());
    for t in [&redis, &valkey8, &valkey9] {
        assert_eq!(config_get(t, "busy-reply-threshold").await, "5000");
        assert_eq!(leftovers(t).await, Vec::<String>::new());
    }
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
    // The run goes on 1.5 s past the heal: recovery after it is judged.
    let sc = compare_scenario(
        &dir,
        "2s",
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
            "2s",
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
