//! `headroom` against a real embedded Valkey: a search that ends with a number, and a planted slow
//! server (20 ms more per round trip through the agent's proxy) that lowers it.

use std::time::Duration;

use crate::support::*;

fn scenario_text(slow: bool) -> String {
    let fault = if slow {
        r#"
[[fault]]
name = "slow"
type = "latency"
at = "0s"
duration = "10m"
[fault.latency]
delay = "20ms"
"#
    } else {
        ""
    };
    format!(
        r#"
name = "headroom"
duration = "2s"
[[workload]]
id = "cache"
type = "commands"
clients = 2
rate_per_sec = 20
[workload.commands]
mix = {{ get = 4, set = 1 }}
keys = 100
{fault}"#
    )
}

fn search(name: &str, slow: bool) -> serde_json::Value {
    let dir = scratch(name);
    let sc = scenario(&dir, name, &scenario_text(slow));
    let out = dir.join("out");
    let o = agent(
        &[
            "headroom",
            sc.to_str().unwrap(),
            "--slo",
            "p99 < 200ms",
            "--max-multiple",
            "32",
            "--precision",
            "0.3",
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(300),
    );
    let h: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("headroom.json")).unwrap()).unwrap();
    assert_eq!(o.status.code(), Some(0), "{}\n{h:#}", show(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("headroom: "), "{stdout}");
    h
}

#[test]
fn a_slower_server_has_less_headroom() {
    let fast = search("headroom-fast", false);
    let slow = search("headroom-slow", true);
    let (f, s) = (
        fast["headroom"].as_f64().expect("a number"),
        slow["headroom"].as_f64().expect("a number"),
    );
    // Two clients, 20 ms more per round trip: at most ~100 ops/s, 5x the scenario's 20/s. The
    // search finds the server's limit there; without the delay it goes far higher.
    assert_eq!(slow["limit"], "server", "{slow:#}");
    assert!((1.0..=8.0).contains(&s), "{slow:#}");
    assert!(f > s, "fast {f}x, slow {s}x\n{fast:#}\n{slow:#}");
    // The curve is there: every step with its figures, the failing ones with why.
    let steps = slow["steps"].as_array().unwrap();
    assert!(steps.len() >= 3, "{slow:#}");
    assert!(steps
        .iter()
        .any(|x| x["verdict"] == "fail" && x["failed"].as_array().is_some_and(|f| !f.is_empty())));
    assert_eq!(
        slow["headroom_offered_per_sec"].as_f64().unwrap(),
        s * slow["base_offered_per_sec"].as_f64().unwrap()
    );
}

#[test]
fn a_scenario_with_nothing_to_scale_is_a_usage_error() {
    let dir = scratch("headroom-closed");
    let sc = scenario(
        &dir,
        "closed",
        r#"
duration = "2s"
[[workload]]
id = "loop"
type = "commands"
clients = 1
[workload.commands]
mix = { get = 1 }
"#,
    );
    let o = agent(&["headroom", sc.to_str().unwrap()], Duration::from_secs(60));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("open-model"));
}
