//! WASM plugins: the example scenarios run against real Valkey; hostile plugins are contained
//! (CPU budget, memory cap, traps) while the run goes on; broken plugins are refused before load.

use std::time::Duration;

use crate::support::*;

fn wasm(name: &str) -> String {
    let p = repo_root()
        .join("plugins/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(
        p.is_file(),
        "{} is missing: run `cargo xtask plugins`",
        p.display()
    );
    p.display().to_string()
}

#[tokio::test]
async fn example_plugins_run_their_scenarios() {
    let cases = [
        ("plugin-hello.toml", "hello", &["set", "get"][..]),
        (
            "plugin-echo-ping.toml",
            "ping",
            &["incr", "get", "set", "zadd", "zremrangebyrank", "publish"][..],
        ),
        ("plugin-cache-aside.toml", "cache", &["get", "set"][..]),
        (
            "plugin-lightrag-etl.toml",
            "etl",
            &["set", "incrby", "decr", "eval"][..],
        ),
    ];
    for (file, id, cmds) in cases {
        let plan = valkey_chaos::scenario::load(
            &repo_root().join("scenarios").join(file),
            &valkey_chaos::scenario::Overrides {
                duration: Some(Duration::from_secs(2)),
                ..Default::default()
            },
        )
        .unwrap()
        .plan;
        let opts = valkey_chaos::run::RunOptions {
            quiet: true,
            ..Default::default()
        };
        let s = valkey_chaos::run::run(&plan, &opts, tokio_util::sync::CancellationToken::new())
            .await
            .unwrap()
            .summary;
        assert!(
            s.op(id, "iteration").unwrap().count > 5,
            "{file}: {:#?}",
            s.ops
        );
        for c in cmds {
            let o = s
                .op(id, c)
                .unwrap_or_else(|| panic!("{file}: no per-command op {id}.{c}: {:#?}", s.ops));
            assert!(o.count > 0, "{file}: {c} never ran");
        }
        for c in ["traps", "budget_exceeded", "memory_exceeded", "vus_stopped"] {
            assert_eq!(s.counter(id, c), Some(0.0), "{file}: {c}");
        }
        assert!(
            s.events.iter().any(|e| e.detail.contains("loaded from")),
            "{file}: {:?}",
            s.events
        );
    }
}

#[test]
fn hostile_plugins_are_contained_and_the_run_goes_on() {
    let dir = scratch("hostile");
    let sc = scenario(
        &dir,
        "hostile",
        &format!(
            r#"
duration = "3s"
[[workload]]
id = "spin"
type = "plugin"
rate_per_sec = 5
[workload.plugin]
path = "{spin}"
vus = 1
budget = "50ms"

[[workload]]
id = "bomb"
type = "plugin"
rate_per_sec = 5
[workload.plugin]
path = "{bomb}"
vus = 1
memory = "16mb"

[[workload]]
id = "trap"
type = "plugin"
rate_per_sec = 20
[workload.plugin]
path = "{trap}"
vus = 1
params = {{ after = 3 }}

[[workload]]
id = "native"
type = "commands"
clients = 2
rate_per_sec = 200
"#,
            spin = wasm("spin"),
            bomb = wasm("membomb"),
            trap = wasm("trap")
        ),
    );
    let out = dir.join("out");
    let o = agent(
        &[
            "run",
            sc.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(&out);
    assert!(
        counter(&s, "spin", "budget_exceeded") >= 2.0,
        "the spinning plugin is interrupted every time: {}",
        show(&o)
    );
    assert!(counter(&s, "spin", "vus_replaced") >= 2.0);
    assert!(
        counter(&s, "bomb", "memory_exceeded") + counter(&s, "bomb", "traps") >= 1.0,
        "{}",
        show(&o)
    );
    assert!(counter(&s, "trap", "traps") >= 1.0);
    assert!(
        counter(&s, "trap", "iterations") >= 10.0,
        "trap VU replaced and kept going"
    );
    // The native workload next to them kept its rate: the plugins did not starve the runtime.
    let native = op(&s, "native", "get")["count"].as_u64().unwrap()
        + op(&s, "native", "set")["count"].as_u64().unwrap();
    assert!(native >= 100, "native workload starved: {native} ops");
    assert_eq!(op(&s, "native", "get")["errors"].as_u64(), Some(0));
    let events = s["events"].to_string();
    assert!(
        events.contains("plugin spin vu 0: CPU budget exceeded"),
        "{events}"
    );
    assert!(events.contains("plugin trap vu 0: trap"), "{events}");
}

#[test]
fn broken_plugins_are_refused_before_any_load() {
    let dir = scratch("broken");
    let core = dir.join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let cases = [
        (
            wasm("wrong_version"),
            "plugin built for valkey-chaos:plugin@0.2.0, agent speaks @0.1.0",
        ),
        (
            core.display().to_string(),
            "is a core wasm module, not a component",
        ),
        (dir.join("nope.wasm").display().to_string(), "cannot read"),
    ];
    for (path, msg) in cases {
        let sc = scenario(&dir, "broken", &format!("duration = \"2s\"\n[[workload]]\nid = \"p\"\ntype = \"plugin\"\n[workload.plugin]\npath = \"{path}\"\n"));
        let o = agent(
            &["run", sc.to_str().unwrap(), "-q"],
            Duration::from_secs(30),
        );
        assert_eq!(o.status.code(), Some(2), "{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(msg), "{err}");
        assert!(!err.contains("running "), "load must not start: {err}");
    }
}

#[test]
fn plugin_check_describes_and_measures() {
    let o = agent(
        &[
            "plugin",
            "check",
            &wasm("echo_participant_ping"),
            "--vus",
            "10",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("describe   echo-participant-ping"), "{out}");
    assert!(out.contains("param      ips:"), "{out}");
    assert!(out.contains("us to instantiate"), "{out}");
}
