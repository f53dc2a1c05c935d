//! What `.ci/setup` installs under `.tools/` is there and works: valkey-server 8.1 (what managed
//! Valkey runs) beside 9.x, each started on a free port and asked for its version, the agent run
//! against 8.1 through `--valkey-server`, and the pinned helm v3.

use std::process::Command;
use std::time::Duration;

use crate::support::*;

pub fn valkey81_bin() -> std::path::PathBuf {
    let p = repo_root().join(".tools/valkey-8.1/bin/valkey-server");
    assert!(
        p.is_file(),
        "{} is missing: run `cargo xtask setup`",
        p.display()
    );
    p
}

fn bulk(v: &valkey_chaos::valkey::Value) -> String {
    match v {
        valkey_chaos::valkey::Value::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        valkey_chaos::valkey::Value::Verbatim(s) | valkey_chaos::valkey::Value::Simple(s) => {
            s.clone()
        }
        other => panic!("not text: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valkey_81_and_9_both_start_and_answer() {
    for (bin, want) in [
        (valkey81_bin(), "valkey_version:8.1."),
        (valkey_bin(), "valkey_version:9."),
    ] {
        let topo = Topology::start(&bin, TopologySpec::default())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let mut c = conn(&topo).await;
        assert_eq!(bulk(&cmd(&mut c, &["PING"]).await), "PONG");
        let info = bulk(&cmd(&mut c, &["INFO", "server"]).await);
        assert!(
            info.lines().any(|l| l.starts_with(want)),
            "{}: {want} not in\n{info}",
            bin.display()
        );
    }
}

#[test]
fn the_agent_runs_against_valkey_81_when_told_to() {
    let dir = scratch("valkey-81");
    let sc = scenario(
        &dir,
        "smoke",
        r#"
name = "smoke-81"
seed = 1
duration = "1s"
[[workload]]
id = "cache"
type = "commands"
clients = 2
rate_per_sec = 200
[workload.commands]
mix = { get = 1, set = 1 }
keys = 100
[thresholds]
"cache.error_rate" = "< 1%"
"#,
    );
    let out = dir.join("out");
    let v81 = valkey81_bin();
    let o = agent(
        &[
            "run",
            "-q",
            "--valkey-server",
            v81.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            sc.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(&out);
    assert!(
        s["server"].to_string().contains("8.1."),
        "the summary names the server it ran against: {}",
        s["server"]
    );
}

#[test]
fn helm_is_the_pinned_v3() {
    let helm = crate::chart::helm();
    let o = Command::new(&helm)
        .args(["version", "--template", "{{.Version}}"])
        .output()
        .expect("helm version");
    let v = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && v.starts_with("v3."),
        "{}: {v}",
        helm.display()
    );
}
