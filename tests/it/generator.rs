//! The generator's own lateness, told apart from the server's: every open-model start's send lag
//! is recorded, and a workload whose clients cannot carry its rate is flagged GENERATOR-BOUND
//! (planted: one client at 10 ms per operation asked for 400/s), while the same server delay
//! spread over enough clients is not (correct counterpart). No timing assertions: a 10 ms
//! latency toxic makes "busy" a matter of arithmetic, not of this machine's speed.

use crate::support::*;

fn slowed(clients: u32, rate: u32) -> String {
    format!(
        r#"
duration = "4s"
[[workload]]
id = "w"
type = "commands"
clients = {clients}
rate_per_sec = {rate}
[workload.commands]
mix = {{ get = 1 }}

[[fault]]
type = "latency"
at = "0s"
duration = "4s"
[fault.latency]
delay = "10ms"
direction = "upstream"
"#
    )
}

#[tokio::test]
async fn one_client_that_cannot_carry_its_rate_is_flagged_generator_bound() {
    let dir = scratch("generator-bound");
    let s = run_plan(&scenario(&dir, "bound", &slowed(1, 400)), None).await;
    let w = &s.workloads[0];
    let lag = w
        .send_lag_us
        .expect("an open-model workload records its send lag");
    // At most ~100 operations/s fit through one client at 10 ms each: most of the 400/s starts
    // come due while the previous operation is still out.
    assert!(lag.starts > 100, "{lag:?}");
    assert!(
        lag.behind * 2 > lag.starts,
        "most starts should find the client busy: {lag:?}"
    );
    let why = w
        .generator_bound
        .as_deref()
        .unwrap_or_else(|| panic!("not flagged: {lag:?}"));
    assert!(why.contains("more clients"), "{why}");
    // Latency still counts from the intended start: the queueing shows, it is not hidden.
    let get = s.op("w", "get").unwrap();
    assert!(get.latency_us.p99 > 10 * get.service_us.p99, "{get:?}");
}

#[tokio::test]
async fn the_same_delay_over_enough_clients_is_the_servers_not_the_generators() {
    let dir = scratch("generator-free");
    let s = run_plan(&scenario(&dir, "free", &slowed(16, 100)), None).await;
    let w = &s.workloads[0];
    let lag = w
        .send_lag_us
        .expect("an open-model workload records its send lag");
    // 16 clients at 100/s: each start comes 160 ms after its client's previous one, which took
    // 10 ms. None finds its client busy; the count is the schedule's (4 s × 100/s).
    assert!((380..=401).contains(&lag.starts), "{lag:?}");
    assert!(lag.behind <= 4, "{lag:?}");
    // A CPU-starved machine may still flag the timers; never the concurrency.
    if let Some(why) = &w.generator_bound {
        assert!(!why.contains("more clients"), "{why}");
    }
    let get = s.op("w", "get").unwrap();
    assert!(get.service_us.p50 >= 10_000, "{get:?}");
}

#[tokio::test]
async fn the_generators_cpu_is_measured_over_the_load() {
    // The same clients, busy in a closed loop or nearly idle at 10 starts/s: the CPU the agent
    // reports for the load follows what it did. Relative, so a slow or shared machine passes.
    let dir = scratch("generator-cpu");
    let run = |name: &str, rate: &str| {
        scenario(
            &dir,
            name,
            &format!(
                "duration = \"2s\"\n[[workload]]\nid = \"w\"\ntype = \"commands\"\nclients = 4\n{rate}\n[workload.commands]\nmix = {{ get = 1 }}\n"
            ),
        )
    };
    let busy = run_plan(&run("busy", ""), None).await;
    let idle = run_plan(&run("idle", "rate_per_sec = 10"), None).await;
    let (b, i) = (
        busy.generator_cpu_secs.expect("a run reports its CPU"),
        idle.generator_cpu_secs.expect("a run reports its CPU"),
    );
    let ops = |s: &valkey_chaos::summary::RunSummary| s.op("w", "get").unwrap().ok;
    assert!(
        ops(&busy) > 50 * ops(&idle),
        "{} vs {}",
        ops(&busy),
        ops(&idle)
    );
    assert!(b > 5.0 * i, "busy {b}s vs idle {i}s of CPU");
    assert!(i > 0.0, "idle {i}");
}
