//! `junit.xml` for CI: one testsuite named after the scenario, one testcase per check (the
//! thresholds, every safety counter — at 0 unless a threshold allows more — and the oracles'
//! coverage, recovery after each fault), so JUnit and the exit code agree, one failed testcase
//! per heal failure and one per other reason the run is incomplete (an interruption, …).

use std::fmt::Write;

use crate::plan::counter::CounterKind;
use crate::summary::{CheckOrigin, RunSummary};

struct Case {
    class: String,
    name: String,
    /// (message, kind) when the case failed.
    failure: Option<(String, &'static str)>,
}

/// The testcases, in order: checks, safety counters no check covers (summaries from before
/// safety counters became checks), heal failures, why else the run is incomplete.
fn cases(s: &RunSummary) -> Vec<Case> {
    let mut out = vec![];
    for c in &s.checks {
        let (class, kind) = match c.origin {
            CheckOrigin::Threshold => ("checks", "threshold"),
            CheckOrigin::Safety => ("safety", "safety"),
            CheckOrigin::Coverage => ("coverage", "inconclusive"),
            CheckOrigin::Shard => ("shards", "shard"),
            CheckOrigin::Recovery => ("recovery", "recovery"),
        };
        out.push(Case {
            class: format!("{}.{class}", s.scenario),
            name: format!("{} {}", c.metric, c.condition),
            failure: (!c.passed).then(|| (format!("got {}, want {}", c.shown, c.condition), kind)),
        });
    }
    for w in &s.workloads {
        for c in s.counters.iter().filter(|c| {
            c.workload == w.id
                && c.kind == CounterKind::Safety
                && !s
                    .checks
                    .iter()
                    .any(|k| k.metric == format!("{}.{}", c.workload, c.name))
        }) {
            out.push(Case {
                class: format!("{}.safety", s.scenario),
                name: format!("{}.{}", c.workload, c.name),
                failure: (c.value != 0.0)
                    .then(|| (format!("got {}, want == 0", c.value), "safety")),
            });
        }
    }
    for h in &s.heal_failures {
        let what = h.split_once(": ").map(|x| x.0).unwrap_or(h);
        out.push(Case {
            class: format!("{}.heal", s.scenario),
            name: format!("heal {what}"),
            failure: Some((h.clone(), "heal")),
        });
    }
    // Why else the run is incomplete: an interruption, a drain cut short, nothing checked —
    // each a failed case, so JUnit never shows an unfinished run as green.
    for why in &s.incomplete {
        let what = why.split_once(": ").map(|x| x.0).unwrap_or(why);
        out.push(Case {
            class: format!("{}.run", s.scenario),
            name: what.to_string(),
            failure: Some((why.clone(), "incomplete")),
        });
    }
    out
}

/// Render the report.
pub fn render(s: &RunSummary) -> String {
    let cases = cases(s);
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        o,
        "<testsuites name=\"valkey-chaos\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{:.3}\">",
        cases.len(),
        s.duration_secs
    );
    let _ = writeln!(
        o,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" \
         time=\"{:.3}\" timestamp=\"{}\">",
        esc(&s.scenario),
        cases.len(),
        s.duration_secs,
        esc(s.started_at.trim_end_matches('Z'))
    );
    o.push_str("    <properties>\n");
    for (k, v) in properties(s) {
        let _ = writeln!(o, "      <property name=\"{k}\" value=\"{}\"/>", esc(&v));
    }
    o.push_str("    </properties>\n");
    for c in &cases {
        let _ = write!(
            o,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"0\"",
            esc(&c.class),
            esc(&c.name)
        );
        match &c.failure {
            None => o.push_str("/>\n"),
            Some((msg, kind)) => {
                let _ = writeln!(
                    o,
                    ">\n      <failure message=\"{}\" type=\"{kind}\">{}</failure>\n    </testcase>",
                    esc(msg),
                    esc(msg)
                );
            }
        }
    }
    o.push_str("  </testsuite>\n</testsuites>\n");
    o
}

/// The testsuite's properties: the run, and which shard of which run it was.
fn properties(s: &RunSummary) -> Vec<(&'static str, String)> {
    let server = format!("{} {}", s.server.server_name, s.server.version);
    let mut p = vec![
        ("seed", s.seed.to_string()),
        ("target", s.target.clone()),
        ("server", server.trim().to_string()),
        ("run_id", s.run_id.clone()),
        ("started_at", s.started_at.clone()),
        ("verdict", s.verdict.to_string()),
        ("interrupted", s.interrupted.to_string()),
    ];
    if let Some(k) = &s.run_key {
        p.push(("run_key", k.clone()));
    }
    if let Some(x) = &s.shard {
        p.push(("shard", x.clone()));
    }
    if let Some(i) = s.shard_index {
        p.push(("shard_index", i.to_string()));
    }
    if let Some(n) = s.shard_count {
        p.push(("shard_count", n.to_string()));
    }
    if let Some(x) = &s.start_sync {
        p.push(("start_sync", x.mode.clone()));
        p.push(("start_late_ms", x.late_ms.to_string()));
        p.push(("start_uncertainty_ms", x.uncertainty_ms.to_string()));
    }
    if let Some(k) = &s.start_skew {
        p.push(("start_skew_ms", k.actual_spread_ms.to_string()));
        p.push(("started_at_spread_ms", k.started_at_spread_ms.to_string()));
    }
    p
}

/// Text escaped for XML content and attributes; characters XML 1.0 cannot carry are dropped.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => {
                let _ = write!(out, "&#{};", c as u32);
            }
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_case_per_check_safety_counter_and_heal_failure() {
        let mut s = crate::report::html::tests::sample();
        s.heal_failures = vec!["#1 kill (kill): restart <failed>\u{1}".into()];
        let x = render(&s);
        // 2 checks + 2 safety counters (acquired is not one) + 1 heal failure.
        assert_eq!(x.matches("<testcase ").count(), 5, "{x}");
        assert!(x.contains("tests=\"5\" failures=\"3\""), "{x}");
        assert!(x.contains("name=\"q&lt;1&gt;.error_rate &lt; 1%\""), "{x}");
        assert!(x.contains("message=\"got 3.226%, want &lt; 1%\""), "{x}");
        assert!(x.contains("message=\"got 2, want == 0\""), "{x}");
        assert!(
            x.contains("name=\"q&lt;1&gt;.lost_while_held\" time=\"0\"/>"),
            "{x}"
        );
        assert!(x.contains("name=\"heal #1 kill (kill)\""), "{x}");
        assert!(
            x.contains("<testsuite name=\"demo &amp; &lt;friends&gt;\""),
            "{x}"
        );
        assert!(!x.contains('\u{1}'));
        assert!(!x.contains("name=\"shard\""), "{x}");
        s.shard = Some("1/4".into());
        s.shard_index = Some(1);
        s.shard_count = Some(4);
        s.run_key = Some("k:demo:4".into());
        let x = render(&s);
        for p in [
            "<property name=\"shard\" value=\"1/4\"/>",
            "<property name=\"shard_index\" value=\"1\"/>",
            "<property name=\"shard_count\" value=\"4\"/>",
            "<property name=\"run_key\" value=\"k:demo:4\"/>",
        ] {
            assert!(x.contains(p), "{p} in {x}");
        }
        assert_eq!(
            x.matches("<failure ").count(),
            x.matches("</failure>").count()
        );
    }
}
