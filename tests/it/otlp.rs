//! OTLP export against real receivers on free loopback ports: a tonic gRPC server built on the
//! OpenTelemetry collector service definitions, and a minimal HTTP/1.1 receiver for
//! http/protobuf. What arrived is decoded and checked against the run's summary.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, Metric};
use opentelemetry_proto::tonic::trace::v1::{status, Span};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::support::*;

/// Everything a receiver got.
#[derive(Clone, Default)]
pub(crate) struct Sink {
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        r: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.traces.lock().unwrap().push(r.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        r: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics.lock().unwrap().push(r.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// A gRPC OTLP receiver on a free port; stops when the token is cancelled.
pub(crate) async fn grpc_receiver(stop: CancellationToken) -> (Sink, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sink = Sink::default();
    let s = sink.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(s.clone()))
            .add_service(MetricsServiceServer::new(s))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                stop.cancelled_owned(),
            )
            .await
            .expect("otlp receiver");
    });
    (sink, format!("http://{addr}"))
}

/// An OTLP http/protobuf receiver on a free port (HTTP/1.1, bodies with a content-length),
/// on a thread of its own; requests are sorted by path into the sink.
fn http_receiver() -> (Sink, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sink = Sink::default();
    let s = sink.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let s = s.clone();
            std::thread::spawn(move || http_conn(conn, s));
        }
    });
    (sink, format!("http://{addr}"))
}

fn http_conn(conn: std::net::TcpStream, sink: Sink) {
    let mut w = conn.try_clone().unwrap();
    let mut r = std::io::BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap();
                }
                assert!(
                    !k.eq_ignore_ascii_case("transfer-encoding"),
                    "chunked bodies are not supported by this receiver"
                );
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        match path.as_str() {
            "/v1/traces" => sink
                .traces
                .lock()
                .unwrap()
                .push(ExportTraceServiceRequest::decode(&body[..]).unwrap()),
            "/v1/metrics" => sink
                .metrics
                .lock()
                .unwrap()
                .push(ExportMetricsServiceRequest::decode(&body[..]).unwrap()),
            other => panic!("unexpected OTLP path {other}"),
        }
        let _ = w.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        );
    }
}

pub(crate) fn attr<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

pub(crate) fn attr_str<'a>(kvs: &'a [KeyValue], key: &str) -> &'a str {
    match attr(kvs, key) {
        Some(any_value::Value::StringValue(s)) => s,
        other => panic!("attribute {key}: {other:?} in {kvs:?}"),
    }
}

pub(crate) fn attr_int(kvs: &[KeyValue], key: &str) -> i64 {
    match attr(kvs, key) {
        Some(any_value::Value::IntValue(i)) => *i,
        other => panic!("attribute {key}: {other:?} in {kvs:?}"),
    }
}

/// Resource attribute lists and spans of every request.
pub(crate) fn spans(sink: &Sink) -> (Vec<Vec<KeyValue>>, Vec<Span>) {
    let mut res = vec![];
    let mut spans = vec![];
    for r in sink.traces.lock().unwrap().iter() {
        for rs in &r.resource_spans {
            res.push(rs.resource.clone().unwrap_or_default().attributes);
            for ss in &rs.scope_spans {
                spans.extend(ss.spans.iter().cloned());
            }
        }
    }
    (res, spans)
}

pub(crate) fn metrics(sink: &Sink) -> (Vec<Vec<KeyValue>>, Vec<Metric>) {
    let mut res = vec![];
    let mut out = vec![];
    for r in sink.metrics.lock().unwrap().iter() {
        for rm in &r.resource_metrics {
            res.push(rm.resource.clone().unwrap_or_default().attributes);
            for sm in &rm.scope_metrics {
                out.extend(sm.metrics.iter().cloned());
            }
        }
    }
    (res, out)
}

/// Final value of a cumulative integer sum per attribute set ("k=v,k=v", sorted).
fn sum_points(ms: &[Metric], name: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for m in ms.iter().filter(|m| m.name == name) {
        let Some(metric::Data::Sum(s)) = &m.data else {
            panic!("{name} is not a sum: {:?}", m.data)
        };
        assert!(s.is_monotonic, "{name} should be a monotonic counter");
        for p in &s.data_points {
            let mut kv: Vec<String> = p
                .attributes
                .iter()
                .map(|a| format!("{}={}", a.key, attr_str(&p.attributes, &a.key)))
                .collect();
            kv.sort();
            let v = match p.value {
                Some(number_data_point::Value::AsInt(i)) => i,
                other => panic!("{name}: {other:?}"),
            };
            let e = out.entry(kv.join(",")).or_insert(0);
            *e = (*e).max(v);
        }
    }
    out
}

/// A small lock workload next to the command mix.
const LOCKS: &str = r#"
[[workload]]
id = "l"
type = "lock"
[workload.lock]
style = "redis-py"
names = 2
clients = 2
ttl = "10s"
hold = { min = "5ms", max = "20ms" }
blocking_timeout = "2s"
retry_interval = "50ms"
"#;

fn scenario_text(name: &str, duration: &str, fault: bool) -> String {
    let mut s = format!(
        r#"name = "{name}"
seed = 42
duration = "{duration}"

[[workload]]
id = "w"
type = "commands"
clients = 2
rate_per_sec = 100
[workload.commands]
mix = {{ get = 3, set = 1 }}
keys = 10
"#
    );
    if fault {
        s.push_str(
            r#"
[[fault]]
name = "stall"
type = "debug-sleep"
at = "1s"
duration = "300ms"
"#,
        );
    }
    s
}

#[tokio::test]
async fn a_run_exports_its_trace_and_metrics_over_grpc() {
    let stop = CancellationToken::new();
    let (sink, url) = grpc_receiver(stop.clone()).await;
    let dir = scratch("otlp-grpc");
    let text = scenario_text("otlp-grpc", "3s", true) + LOCKS;
    let sc = scenario(&dir, "otlp-grpc", &text);
    let plan = valkey_chaos::scenario::load_plain(&sc).unwrap_or_else(|d| panic!("{d}"));
    let opts = valkey_chaos::run::RunOptions {
        quiet: true,
        otlp: Some(valkey_chaos::export::otlp::OtlpOptions {
            endpoint: url,
            protocol: Default::default(),
            trace_sample: 1.0,
        }),
        ..Default::default()
    };
    let t0 = Instant::now();
    let s = valkey_chaos::run::run(&plan, &opts, CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("run failed: {e}"))
        .summary;
    let took = t0.elapsed();
    stop.cancel();
    assert!(took < Duration::from_secs(15), "run took {took:?}");
    assert!(s.passed(), "{:#?}", s.checks);

    // Resource: who, which scenario, which run.
    let (resources, spans) = spans(&sink);
    assert!(!resources.is_empty(), "no trace export arrived");
    for r in &resources {
        assert_eq!(attr_str(r, "service.name"), "valkey-chaos");
        assert_eq!(attr_str(r, "valkey_chaos.scenario"), "otlp-grpc");
        assert_eq!(attr_str(r, "valkey_chaos.seed"), "42");
        assert_eq!(attr_str(r, "valkey_chaos.run_id"), s.run_id);
    }

    // The root span and its children.
    let root = spans
        .iter()
        .find(|x| x.name == "run otlp-grpc")
        .expect("root span");
    assert!(root.parent_span_id.is_empty());
    assert_eq!(attr_str(&root.attributes, "valkey_chaos.verdict"), "pass");
    let event_names: Vec<&str> = root.events.iter().map(|e| e.name.as_str()).collect();
    assert!(event_names.contains(&"fault_injected"), "{event_names:?}");
    assert!(event_names.contains(&"fault_healed"), "{event_names:?}");
    let child = |name: &str| -> &Span {
        let sp = spans
            .iter()
            .find(|x| x.name == name)
            .unwrap_or_else(|| panic!("no span {name:?} among {:?}", names(&spans)));
        assert_eq!(
            sp.parent_span_id, root.span_id,
            "{name} is a child of the root"
        );
        assert_eq!(sp.trace_id, root.trace_id);
        assert!(sp.start_time_unix_nano <= sp.end_time_unix_nano, "{name}");
        assert!(
            sp.start_time_unix_nano >= root.start_time_unix_nano,
            "{name}"
        );
        assert!(sp.end_time_unix_nano <= root.end_time_unix_nano, "{name}");
        sp
    };
    let before = child("phase before");
    let during = child("phase during:stall");
    let after = child("phase after");
    assert!(before.end_time_unix_nano <= during.start_time_unix_nano);
    assert!(during.end_time_unix_nano <= after.start_time_unix_nano);
    let fault = child("fault stall");
    assert_eq!(attr_str(&fault.attributes, "fault.kind"), "debug-sleep");
    assert!(!attr_str(&fault.attributes, "fault.target").is_empty());
    assert_eq!(attr_int(&fault.attributes, "fault.index"), 0);
    assert_eq!(
        attr(&fault.attributes, "fault.duration_seconds"),
        Some(&any_value::Value::DoubleValue(0.3))
    );
    let held = fault.end_time_unix_nano - fault.start_time_unix_nano;
    assert!(
        (250_000_000..2_000_000_000).contains(&held),
        "fault span lasts inject → heal: {held} ns"
    );
    assert_eq!(fault.start_time_unix_nano, during.start_time_unix_nano);
    assert_ne!(
        fault.status.as_ref().map(|s| s.code),
        Some(status::StatusCode::Error as i32)
    );

    // Operation spans: every operation was sampled, none was lost.
    let ops: Vec<&Span> = spans
        .iter()
        .filter(|x| attr(&x.attributes, "db.system.name").is_some())
        .collect();
    let mut op_names = names(&ops.iter().map(|x| (*x).clone()).collect::<Vec<_>>())
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    op_names.sort();
    assert_eq!(op_names, ["ACQUIRE", "GET", "RELEASE", "SET"]);
    let total: u64 = s.ops.iter().map(|o| o.count).sum();
    assert!(total > 100, "{total}");
    assert_eq!(
        ops.len() as u64,
        total,
        "one span per operation at --trace-sample 1"
    );
    for o in &ops {
        assert_eq!(o.parent_span_id, root.span_id);
        assert_eq!(o.trace_id, root.trace_id);
        assert_eq!(o.kind, 3, "SPAN_KIND_CLIENT");
        assert_eq!(attr_str(&o.attributes, "db.system.name"), "valkey");
        assert_eq!(attr_str(&o.attributes, "db.operation.name"), o.name);
        assert_eq!(attr_str(&o.attributes, "server.address"), "127.0.0.1");
        assert!(attr_int(&o.attributes, "server.port") > 0);
        let w = attr_str(&o.attributes, "valkey_chaos.workload");
        let lock_op = matches!(o.name.as_str(), "ACQUIRE" | "RELEASE" | "EXTEND");
        assert_eq!(w, if lock_op { "l" } else { "w" });
    }

    // Metrics: the names, and the operation counts of the summary.
    let (mres, ms) = metrics(&sink);
    assert!(!mres.is_empty(), "no metrics export arrived");
    assert_eq!(attr_str(&mres[0], "service.name"), "valkey-chaos");
    for name in [
        "valkey_chaos_operation_duration_seconds",
        "valkey_chaos_operations_total",
    ] {
        assert!(ms.iter().any(|m| m.name == name), "no metric {name}");
    }
    let hist = ms
        .iter()
        .rfind(|m| m.name == "valkey_chaos_operation_duration_seconds")
        .unwrap();
    assert_eq!(hist.unit, "s");
    assert!(
        matches!(hist.data, Some(metric::Data::ExponentialHistogram(_))),
        "{:?}",
        hist.data
    );
    let ops_total = sum_points(&ms, "valkey_chaos_operations_total");
    for op in &s.ops {
        let got: i64 = ops_total
            .iter()
            .filter(|(k, _)| {
                k.starts_with(&format!("op={},", op.op))
                    && k.ends_with(&format!("workload={}", op.workload))
            })
            .map(|(_, v)| *v)
            .sum();
        assert_eq!(
            got as u64, op.count,
            "operations_total for {}.{} vs summary: {ops_total:?}",
            op.workload, op.op
        );
    }
    // Workload counters: the lock oracle's acquisitions.
    let acquired = sum_points(&ms, "valkey_chaos_acquired_total");
    assert_eq!(
        acquired.get("workload=l").copied().unwrap_or(-1) as f64,
        s.counter("l", "acquired").unwrap(),
        "{acquired:?}"
    );
}

fn names(spans: &[Span]) -> Vec<&str> {
    let mut v: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    v.sort();
    v.dedup();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_export_from_the_binary_with_flags_and_resource_env() {
    let (sink, url) = http_receiver();
    let dir = scratch("otlp-http");
    let sc = scenario(&dir, "otlp-http", &scenario_text("otlp-http", "2s", false));
    let out = dir.join("out");
    let args: Vec<String> = vec![
        "run".into(),
        sc.to_str().unwrap().into(),
        "-q".into(),
        "--out".into(),
        out.to_str().unwrap().into(),
        "--otlp".into(),
        url,
        "--otlp-protocol".into(),
        "http".into(),
        "--trace-sample".into(),
        "0.5".into(),
    ];
    let o = tokio::task::spawn_blocking(move || {
        Command::new(agent_bin())
            .args(&args)
            .env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=ci")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
            .stdin(Stdio::null())
            .output()
            .expect("run agent")
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("warning: OTLP"), "{stderr}");
    let s = summary(&out);

    let (resources, spans) = spans(&sink);
    assert!(!resources.is_empty(), "no trace export arrived");
    assert_eq!(attr_str(&resources[0], "service.name"), "valkey-chaos");
    assert_eq!(
        attr_str(&resources[0], "deployment.environment.name"),
        "ci",
        "OTEL_RESOURCE_ATTRIBUTES is honoured"
    );
    assert_eq!(
        attr_str(&resources[0], "valkey_chaos.run_id"),
        s["run_id"].as_str().unwrap()
    );
    let root = spans.iter().find(|x| x.name == "run otlp-http").unwrap();
    let total = s["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["count"].as_u64().unwrap())
        .sum::<u64>();
    let ops = spans
        .iter()
        .filter(|x| x.parent_span_id == root.span_id && (x.name == "GET" || x.name == "SET"))
        .count() as u64;
    // Half of the operations, give or take: a binomial with n ≈ 200 stays well within ±25%.
    assert!(
        ops * 4 > total && ops * 4 < total * 3,
        "{ops} spans for {total} ops at --trace-sample 0.5"
    );
    let (_, ms) = metrics(&sink);
    let ops_total: i64 = sum_points(&ms, "valkey_chaos_operations_total")
        .values()
        .sum();
    assert_eq!(ops_total as u64, total);
}

#[test]
fn an_unreachable_collector_costs_a_warning_not_the_run() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = scratch("otlp-down");
    let sc = scenario(&dir, "otlp-down", &scenario_text("otlp-down", "2s", false));
    let out = dir.join("out");
    let t0 = Instant::now();
    let o = Command::new(agent_bin())
        .args([
            "run",
            sc.to_str().unwrap(),
            "-q",
            "--out",
            out.to_str().unwrap(),
            "--trace-sample",
            "1",
        ])
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        )
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .stdin(Stdio::null())
        .output()
        .expect("run agent");
    let took = t0.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(&out);
    assert_eq!(s["verdict"], "pass");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        stderr.matches("warning: OTLP export").count(),
        1,
        "exactly one warning line: {stderr}"
    );
    // 2 s of load, the embedded server, and at most the bounded shutdown (5 s).
    assert!(took < Duration::from_secs(15), "took {took:?}\n{stderr}");
}
