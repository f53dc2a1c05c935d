//! Reports and `merge` through the real binary: two agents' runs merged into exact percentiles,
//! a self-contained report.html with shaded fault windows, a well-formed junit.xml, bad inputs.

use std::path::Path;
use std::time::Duration;

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

use crate::support::*;

const SHARD: &str = r#"
name = "shards"
duration = "3s"

[[workload]]
id = "cache"
type = "commands"
clients = 2
rate_per_sec = 300
[workload.commands]
mix = { get = 3, set = 1 }
keys = 100

[[workload]]
id = "locks"
type = "lock"
[workload.lock]
names = 2
clients = 2
ttl = "2s"
hold = "5ms"

[[fault]]
type = "debug-sleep"
at = "1s"
duration = "500ms"

[thresholds]
"cache.get.p99" = "< 10s"
"cache.error_rate" = "< 5%"
"locks.violations" = "== 0"
"cache.get.p50{before}" = "< 1s"
"#;

const T: Duration = Duration::from_secs(60);

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn merge_reports_exact_percentiles_and_renders_html_and_junit() {
    let t = start_single().await;
    let dir = scratch("reports");
    let sc = scenario(&dir, "shards", SHARD);
    let u = url(&t);
    let (d1, d2, m) = (dir.join("a1"), dir.join("a2"), dir.join("merged"));
    // Two agents at the same time against one server, like shards of a distributed run.
    let outs: Vec<_> = std::thread::scope(|scope| {
        let hs: Vec<_> = [(&d1, "1"), (&d2, "2")]
            .into_iter()
            .map(|(d, seed)| {
                let (sc, u) = (&sc, &u);
                scope.spawn(move || {
                    agent(
                        &[
                            "run",
                            s(sc),
                            "--target",
                            u,
                            "--out",
                            s(d),
                            "-q",
                            "--seed",
                            seed,
                        ],
                        T,
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in &outs {
        assert_eq!(o.status.code(), Some(0), "{}", show(o));
    }

    let o = agent(&["merge", s(&d1), s(&d2), "--out", s(&m)], T);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("verdict: PASS"));
    let (s1, s2, sm) = (summary(&d1), summary(&d2), summary(&m));

    // Exact percentiles: the union of both runs' samples, computed here from the two logs.
    let (h1, h2) = (read_hlog(&d1), read_hlog(&d2));
    let mut compared = 0;
    for o in sm["ops"].as_array().unwrap() {
        let (w, name) = (o["workload"].as_str().unwrap(), o["op"].as_str().unwrap());
        let sum =
            |f: &str| op(&s1, w, name)[f].as_u64().unwrap() + op(&s2, w, name)[f].as_u64().unwrap();
        for f in ["count", "ok", "errors"] {
            assert_eq!(o[f].as_u64().unwrap(), sum(f), "{w}.{name}.{f}");
        }
        for (tag, field) in [
            (format!("{w}.{name}"), "latency_us"),
            (format!("{w}.{name}.service"), "service_us"),
        ] {
            let mut u = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
            for h in [&h1, &h2] {
                for x in h.iter().filter(|x| x.0 == tag) {
                    u.add(&x.1).unwrap();
                }
            }
            assert_eq!(u.len(), o["ok"].as_u64().unwrap(), "{tag}");
            if u.is_empty() {
                continue;
            }
            let l = &o[field];
            assert_eq!(
                l["p50"].as_u64().unwrap(),
                u.value_at_quantile(0.5),
                "{tag} p50"
            );
            assert_eq!(
                l["p99"].as_u64().unwrap(),
                u.value_at_quantile(0.99),
                "{tag} p99"
            );
            assert_eq!(
                l["p999"].as_u64().unwrap(),
                u.value_at_quantile(0.999),
                "{tag} p999"
            );
            assert_eq!(l["max"].as_u64().unwrap(), u.max(), "{tag} max");
            compared += 1;
        }
    }
    assert!(compared >= 6, "only {compared} histograms compared");
    let p50_before = sm["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == "cache.get.p50{before}")
        .expect("the phase check is carried over");
    // Judged again, on both runs' slots before their own fault.
    assert_eq!(p50_before["passed"], true, "{p50_before}");
    assert!(p50_before["value"].as_f64().is_some(), "{p50_before}");
    assert_eq!(sm["faults"].as_array().unwrap().len(), 2);

    // report.html: self-contained, with charts, the verdict and the shaded fault window.
    for d in [&d1, &m] {
        let html = std::fs::read_to_string(d.join("report.html")).unwrap();
        for bad in [
            "http://", "https://", " src=", " href=", "<script", "<link", "url(",
        ] {
            assert!(!html.contains(bad), "{}: found {bad:?}", d.display());
        }
        assert!(html.contains("<svg") && html.contains(">shards</h1>"));
        assert!(html.contains("<div class=\"verdict pass\">PASS</div>"));
        assert!(
            html.contains("<rect class=\"fault-window\""),
            "no shaded fault window"
        );
        // The impact window is drawn as a band with a width, not an instant.
        let band = html
            .split("<rect class=\"impact-window\"")
            .nth(1)
            .expect("no impact band");
        let width: f64 = band
            .split("width=\"")
            .nth(1)
            .and_then(|w| w.split('"').next())
            .and_then(|w| w.parse().ok())
            .expect("band width");
        assert!(width >= 2.0, "impact band {width}px wide");
        assert!(html.contains("#0 debug-sleep"));
    }

    // junit.xml: well formed; one testcase per check, and every safety counter is a check.
    let x = std::fs::read_to_string(m.join("junit.xml")).unwrap();
    let els = xml_elements(&x).unwrap_or_else(|e| panic!("junit.xml is not well formed: {e}\n{x}"));
    let checks = sm["checks"].as_array().unwrap().len();
    let safety = [
        "violations",
        "lost_while_held",
        "fencing_violations",
        "immortal_keys",
    ];
    for c in safety {
        counter(&sm, "locks", c);
        let metric = format!("locks.{c}");
        assert!(
            sm["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["metric"] == metric.as_str()),
            "{metric} is not a check"
        );
    }
    let cases = els.iter().filter(|e| e.0 == "testcase").count();
    assert_eq!(cases, checks, "{x}");
    assert_eq!(els.iter().filter(|e| e.0 == "failure").count(), 0, "{x}");

    // A failing threshold given to merge fails the verdict and shows in junit.xml.
    let m2 = dir.join("merged-fail");
    let o = agent(
        &[
            "merge",
            s(&d1),
            s(&d2),
            "--out",
            s(&m2),
            "--threshold",
            "cache.get.count == 0",
        ],
        T,
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let x = std::fs::read_to_string(m2.join("junit.xml")).unwrap();
    let els = xml_elements(&x).unwrap_or_else(|e| panic!("junit.xml is not well formed: {e}\n{x}"));
    assert_eq!(els.iter().filter(|e| e.0 == "testcase").count(), checks + 1);
    let fails: Vec<_> = els.iter().filter(|e| e.0 == "failure").collect();
    assert_eq!(fails.len(), 1, "{x}");
    let want = format!(
        "got {}, want == 0",
        op(&sm, "cache", "get")["count"].as_u64().unwrap()
    );
    assert!(
        fails[0].1.iter().any(|a| a.0 == "message" && a.1 == want),
        "{x}"
    );
    let html = std::fs::read_to_string(m2.join("report.html")).unwrap();
    assert!(html.contains(">FAIL</div>"));

    // A merge of a merge keeps the same percentiles (its latency.hlog is complete).
    let m3 = dir.join("remerged");
    let o = agent(&["merge", s(&m), "--out", s(&m3)], T);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s3 = summary(&m3);
    for o in sm["ops"].as_array().unwrap() {
        let again = op(
            &s3,
            o["workload"].as_str().unwrap(),
            o["op"].as_str().unwrap(),
        );
        assert_eq!(again["latency_us"], o["latency_us"]);
        assert_eq!(again["count"], o["count"]);
    }

    // Bad inputs: exit 2 with a message naming the file.
    let missing = dir.join("no-such-agent");
    let o = agent(&["merge", s(&d1), s(&missing)], T);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(s(&missing)) && err.contains("no such directory"),
        "{err}"
    );

    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(d2.join("latency.hlog"), other.join("latency.hlog")).unwrap();
    let text = std::fs::read_to_string(d2.join("summary.json")).unwrap();
    std::fs::write(
        other.join("summary.json"),
        text.replacen("\"scenario\": \"shards\"", "\"scenario\": \"elsewhere\"", 1),
    )
    .unwrap();
    let o = agent(&["merge", s(&d1), s(&other)], T);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("other/summary.json") && err.contains("\"elsewhere\" differs"),
        "{err}"
    );

    let o = agent(&["merge", s(&d1), s(&d1)], T);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("the same run"),
        "{}",
        show(&o)
    );

    std::fs::remove_file(other.join("summary.json")).unwrap();
    let o = agent(&["merge", s(&d1), s(&other)], T);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("other/summary.json"),
        "{}",
        show(&o)
    );

    let o = agent(&["merge", s(&d1), "--threshold", "cache.nope.p99 < 1ms"], T);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no operation \"nope\""),
        "{}",
        show(&o)
    );
}

/// Every (tag, histogram) of an agent's `latency.hlog`.
fn read_hlog(dir: &Path) -> Vec<(String, Histogram<u64>)> {
    let log = std::fs::read(dir.join("latency.hlog")).unwrap();
    let mut de = Deserializer::new();
    IntervalLogIterator::new(&log)
        .filter_map(|e| match e.unwrap() {
            LogEntry::Interval(h) => Some(h),
            _ => None,
        })
        .map(|h| {
            let tag = h.tag().map(|t| t.as_str().to_string()).unwrap_or_default();
            let bytes = b64(h.encoded_histogram());
            (tag, de.deserialize(&mut bytes.as_slice()).unwrap())
        })
        .collect()
}

fn b64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = vec![];
    let (mut buf, mut bits) = (0u32, 0);
    for c in s.bytes().take_while(|c| *c != b'=') {
        buf = (buf << 6) | val(c) as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

type Element = (String, Vec<(String, String)>);

/// A small well-formedness check: one root, nested tags, quoted attributes, known entities only.
/// Returns the elements in document order.
fn xml_elements(x: &str) -> Result<Vec<Element>, String> {
    fn entities_ok(s: &str) -> bool {
        s.split('&').skip(1).all(|r| {
            let Some((name, _)) = r.split_once(';') else {
                return false;
            };
            matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
                || name
                    .strip_prefix('#')
                    .is_some_and(|n| n.parse::<u32>().is_ok())
        })
    }
    let body = x
        .trim_start()
        .strip_prefix("<?xml")
        .and_then(|r| r.split_once("?>"))
        .map(|r| r.1)
        .ok_or("no XML declaration")?;
    let mut out = vec![];
    let mut stack: Vec<String> = vec![];
    let mut roots = 0;
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        if !entities_ok(text) || text.contains('>') {
            return Err(format!("bad text {text:?}"));
        }
        if stack.is_empty() && !text.trim().is_empty() {
            return Err(format!("text outside the root: {text:?}"));
        }
        let close = rest[open..].find('>').ok_or("unterminated tag")? + open;
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            if stack.pop().as_deref() != Some(name.trim()) {
                return Err(format!("</{name}> closes nothing open"));
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let (name, mut attrs) = tag.split_once(' ').unwrap_or((tag, ""));
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad tag name {name:?}"));
        }
        let mut parsed = vec![];
        loop {
            attrs = attrs.trim_start();
            if attrs.is_empty() {
                break;
            }
            let (k, r) = attrs
                .split_once("=\"")
                .ok_or(format!("bad attributes in <{tag}>"))?;
            let (v, r) = r
                .split_once('"')
                .ok_or(format!("unquoted attribute in <{tag}>"))?;
            if !entities_ok(v) || v.contains('<') {
                return Err(format!("bad attribute value {v:?}"));
            }
            parsed.push((k.to_string(), v.to_string()));
            attrs = r;
        }
        if stack.is_empty() {
            roots += 1;
        }
        out.push((name.to_string(), parsed));
        if !self_closing {
            stack.push(name.to_string());
        }
    }
    if !rest.trim().is_empty() || !stack.is_empty() || roots != 1 {
        return Err(format!(
            "unclosed {stack:?}, {roots} roots, trailing {rest:?}"
        ));
    }
    Ok(out)
}
