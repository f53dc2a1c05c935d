//! A managed Valkey as it really is: faults whose commands the target refuses are refused before
//! any load, with the way out; and the gate runs the same on Valkey 8.1 (what managed Valkey
//! runs today) as on 9.x.

use std::time::Duration;

use crate::support::*;

const MEMORY: &str = r#"
duration = "3s"
[[workload]]
id = "cache"
type = "commands"
clients = 2
rate_per_sec = 50
[[fault]]
name = "squeeze"
type = "memory"
at = "1s"
duration = "1s"
[fault.memory]
maxmemory = "64mb"
policy = "volatile-lru"
"#;

#[tokio::test]
async fn a_fault_the_target_refuses_is_refused_before_the_load_with_the_way_out() {
    // CONFIG disabled, as managed services do.
    let t = Topology::start_with(
        &valkey_bin(),
        TopologySpec::default(),
        &["--rename-command", "CONFIG", ""],
    )
    .await
    .unwrap();
    let u = url(&t);
    let dir = scratch("refused-config");
    let sc = scenario(&dir, "memory", MEMORY);
    let o = agent(
        &["run", sc.to_str().unwrap(), "-q", "--target", &u],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("fault #0 \"squeeze\" (type memory) needs CONFIG")
            && e.contains("refuses CONFIG")
            && e.contains("--skip-forbidden"),
        "{e}"
    );
    assert!(!e.contains("running memory"), "no load started: {e}");
    // With the provider named, its own way out is given.
    let o = agent(
        &[
            "run",
            sc.to_str().unwrap(),
            "-q",
            "--target",
            &u,
            "--provider",
            "digitalocean",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("DigitalOcean"), "{e}");
    // --skip-forbidden runs the rest and records the fault as skipped.
    let out = dir.join("out");
    let o = agent(
        &[
            "run",
            sc.to_str().unwrap(),
            "-q",
            "--target",
            &u,
            "--skip-forbidden",
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(&out);
    let f = &s["faults"][0];
    assert!(f["injected_at_secs"].is_null(), "{f}");
    assert!(
        f["skipped"].as_str().unwrap().contains("refuses CONFIG"),
        "{f}"
    );
}

#[test]
fn the_same_fault_on_a_target_that_allows_it_runs() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = rt.block_on(start_single());
    let dir = scratch("allowed-config");
    let sc = scenario(&dir, "memory", MEMORY);
    let out = dir.join("out");
    let o = agent(
        &[
            "run",
            sc.to_str().unwrap(),
            "-q",
            "--target",
            &url(&t),
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(summary(&out)["faults"][0]["injected_at_secs"].is_number());
}

/// A short subset of the gate against one Valkey version.
fn gate_subset(version: &str, want: &str) {
    let dir = scratch(&format!("gate-{}", version.replace('.', "")));
    for sc in ["01-typical-day.toml", "03-failover-under-load.toml"] {
        let out = dir.join(sc);
        let path = repo_root().join("scenarios/cutover").join(sc);
        let o = agent(
            &[
                "run",
                path.to_str().unwrap(),
                "-q",
                "--duration",
                "12s",
                "--valkey-version",
                version,
                "--out",
                out.to_str().unwrap(),
            ],
            Duration::from_secs(240),
        );
        // Latency thresholds measure this machine as much as the server (the suite shares two
        // cores with other tests), and a 12 s run leaves less than recover_within after a fault
        // (the full gate judges recovery); what must hold on both versions is every other check.
        let s = summary(&out);
        let failed: Vec<_> = s["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["passed"] == false && !is_latency(c["metric"].as_str().unwrap_or("")))
            .filter(|c| c["origin"] != "recovery")
            .collect();
        assert!(
            failed.is_empty(),
            "{sc} on {version}: {failed:?}\n{}",
            show(&o)
        );
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "{sc} on {version}: {}",
            show(&o)
        );
        assert!(
            s["server"]["version"].as_str().unwrap().starts_with(want),
            "{}",
            s["server"]
        );
    }
}

fn is_latency(metric: &str) -> bool {
    let stat = metric.split('{').next().unwrap_or("");
    let last = stat.rsplit('.').next().unwrap_or("");
    last.starts_with('p') && last[1..].chars().all(|c| c.is_ascii_digit() || c == '_')
        || matches!(last, "max" | "mean")
}

#[test]
fn a_gate_subset_passes_on_valkey_8_1() {
    gate_subset("8.1", "8.1.");
}

#[test]
fn a_gate_subset_passes_on_valkey_9() {
    gate_subset("9", "9.");
}

#[test]
fn an_unknown_valkey_version_is_a_usage_error() {
    let o = agent(
        &["run", "scenarios/cache-smoke.toml", "--valkey-version", "7"],
        Duration::from_secs(30),
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("8.1 or 9"));
}
