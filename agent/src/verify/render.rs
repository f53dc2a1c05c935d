//! Output of `verify` and `lag`: the terminal text, `verify.json` / `lag.json`, and the live
//! progress. Pure functions of the reports, except the progress and the file writes.

use std::fmt::Write;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value as Json};

use super::compare::{key_repr, Kind};
use super::lag::{LagReport, Sample};
use super::side::Replication;
use super::{ExtraCheck, Mode, Report};

/// What the sample method promises, said in the output and in `verify.json`.
pub const SAMPLE_METHOD: &str = "RANDOMKEY draws: each draw is the server's random key, \
    approximately uniform over the database, with replacement; duplicates are checked once";

fn verdict(r: &Report) -> &'static str {
    if r.total_differences() > 0 {
        "different"
    } else if r.interrupted {
        "incomplete"
    } else {
        "identical"
    }
}

fn keys_line(r: &Report) -> String {
    let m = r
        .pattern
        .as_deref()
        .map(|p| format!(" matching {p:?}"))
        .unwrap_or_default();
    match &r.mode {
        Mode::Full => format!("every key of the source{m} (SCAN)"),
        Mode::Sample {
            requested,
            draws,
            distinct,
            empty,
        } => {
            let mut s = format!(
                "a random sample{m}: {distinct} distinct keys of {requested} requested, from \
                 {draws} RANDOMKEY draws (approximately uniform, with replacement)"
            );
            if *empty {
                s.push_str("; the source is empty");
            } else if distinct < requested {
                s.push_str("; fewer than requested: the database is small or the pattern rare");
            }
            s
        }
    }
}

fn extra_line(r: &Report) -> &'static str {
    match r.extra {
        ExtraCheck::Checked => "looked for with a SCAN of the destination",
        ExtraCheck::Skipped => "not looked for (--no-extra)",
        ExtraCheck::SkippedSample => {
            "not looked for: a sample says nothing about the rest of the destination"
        }
    }
}

fn by_kind(r: &Report) -> String {
    Kind::ALL
        .iter()
        .filter_map(|k| r.by_kind.get(k).map(|n| format!("{} {n}", k.name())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The terminal report: what was compared, counts, the first `show` differences (by key), and
/// the verdict line.
pub fn verify_text(r: &Report, show: usize) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "source       {} ({})", r.source.url, r.source.label());
    let _ = writeln!(
        o,
        "destination  {} ({})",
        r.destination.url,
        r.destination.label()
    );
    let _ = writeln!(o, "keys         {}", keys_line(r));
    let _ = writeln!(o, "extra keys   {}", extra_line(r));
    let rate = match r.rate {
        Some(n) => format!("limit {n} keys/s"),
        None => "unlimited".into(),
    };
    let dest = if r.destination_scanned > 0 {
        format!(" + {} destination keys looked up", r.destination_scanned)
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        "checked      {} source keys{dest} in {:.1}s ({:.0} keys/s, rate {rate})",
        r.keys_checked,
        r.elapsed.as_secs_f64(),
        r.keys_per_sec()
    );
    let _ = writeln!(
        o,
        "             {} identical; {} differed at first and were read again {}s later: {} \
         matched then; {} gone from the source while read{}",
        r.identical,
        r.rechecked,
        fmt_secs_short(r.recheck_after),
        r.settled,
        r.vanished,
        if r.skipped_canaries > 0 {
            format!("; {} lag canary keys skipped", r.skipped_canaries)
        } else {
            String::new()
        }
    );
    let total = r.total_differences();
    if total == 0 {
        let _ = writeln!(o, "differences  none");
    } else {
        let _ = writeln!(o, "differences  {total}: {}", by_kind(r));
        let mut list: Vec<_> = r.differences.iter().take(show).collect();
        list.sort_by(|a, b| a.key.cmp(&b.key));
        let keys: Vec<String> = list.iter().map(|d| key_repr(&d.key)).collect();
        let w = keys
            .iter()
            .map(|k| k.chars().count())
            .max()
            .unwrap_or(3)
            .clamp(3, 40);
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{} (by key):",
            if (list.len() as u64) < total {
                format!("first {} of {total} differences", list.len())
            } else {
                format!("{total} differences")
            }
        );
        let _ = writeln!(o, "  {:<w$}  {:<21}  DESCRIPTION", "KEY", "KIND");
        for (d, k) in list.iter().zip(&keys) {
            let _ = writeln!(o, "  {k:<w$}  {:<21}  {}", d.kind.name(), d.detail);
        }
        let _ = writeln!(o);
    }
    let _ = match verdict(r) {
        "identical" => writeln!(o, "IDENTICAL: every checked key matches (exit 0)"),
        "incomplete" => writeln!(
            o,
            "INCOMPLETE: interrupted after {} keys, no difference so far (exit 1)",
            r.keys_checked
        ),
        _ => writeln!(o, "DIFFERENT: {total} keys differ (exit 1)"),
    };
    o
}

fn fmt_secs_short(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

/// `verify.json`.
pub fn verify_json(r: &Report) -> Json {
    let kinds: serde_json::Map<String, Json> = Kind::ALL
        .iter()
        .map(|k| {
            (
                k.name().to_string(),
                json!(r.by_kind.get(k).copied().unwrap_or(0)),
            )
        })
        .collect();
    let sample = match &r.mode {
        Mode::Full => Json::Null,
        Mode::Sample {
            requested,
            draws,
            distinct,
            empty,
        } => json!({
            "method": "randomkey",
            "uniform": SAMPLE_METHOD,
            "requested": requested,
            "draws": draws,
            "distinct": distinct,
            "source_empty": empty,
        }),
    };
    json!({
        "verdict": verdict(r),
        "source": r.source,
        "destination": r.destination,
        "mode": match r.mode { Mode::Full => "full", Mode::Sample { .. } => "sample" },
        "sample": sample,
        "match": r.pattern,
        "extra_keys": match r.extra {
            ExtraCheck::Checked => "checked",
            ExtraCheck::Skipped => "skipped: --no-extra",
            ExtraCheck::SkippedSample => "skipped: sample",
        },
        "keys_checked": r.keys_checked,
        "identical": r.identical,
        "rechecked": r.rechecked,
        "settled_on_recheck": r.settled,
        "vanished": r.vanished,
        "destination_keys_scanned": r.destination_scanned,
        "skipped_lag_canaries": r.skipped_canaries,
        "differences_total": r.total_differences(),
        "differences_by_kind": kinds,
        "differences": r.differences.iter().map(|d| json!({
            "key": key_repr(&d.key),
            "kind": d.kind,
            "description": d.detail,
        })).collect::<Vec<_>>(),
        "keys_per_sec": (r.keys_per_sec() * 10.0).round() / 10.0,
        "elapsed_secs": (r.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "interrupted": r.interrupted,
        "ttl_tolerance_ms": r.ttl_tolerance.as_millis() as u64,
        "rate_limit_keys_per_sec": r.rate,
    })
}

fn write_json(dir: &Path, name: &str, v: &Json) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let p = dir.join(name);
    let mut text = serde_json::to_string_pretty(v).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(&p, text)?;
    Ok(p)
}

/// Write `DIR/verify.json`.
pub fn write_verify(dir: &Path, r: &Report) -> std::io::Result<PathBuf> {
    write_json(dir, "verify.json", &verify_json(r))
}

fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1000.0;
    if m < 10.0 {
        format!("{m:.2} ms")
    } else if m < 1000.0 {
        format!("{m:.1} ms")
    } else {
        format!("{:.2} s", m / 1000.0)
    }
}

fn opt_ms(v: Option<f64>) -> String {
    v.map(|m| ms(Duration::from_secs_f64(m / 1000.0)))
        .unwrap_or_else(|| "-".into())
}

/// One line per canary, as it is taken.
pub fn lag_line(s: &Sample, r: &LagReport) -> String {
    let lag = match s.lag {
        Some(l) => ms(l),
        None => format!("not seen within {}", humantime::format_duration(r.max_lag)),
    };
    let off = s
        .offsets
        .map(|(m, o)| format!("  offsets {m}/{o} ({} bytes behind)", m - o))
        .unwrap_or_default();
    format!(
        "#{:<4} {:>7}  lag {lag:>9}  p50 {}  p99 {}  max {}{off}",
        s.seq,
        format!("+{:.1}s", s.at.as_secs_f64()),
        opt_ms(r.percentile_ms(50.0)),
        opt_ms(r.percentile_ms(99.0)),
        opt_ms(r.max_ms()),
    )
}

fn offsets_text(rep: &(Option<Replication>, Option<Replication>)) -> String {
    match rep {
        (Some(s), Some(d)) if d.is_replica() => match (s.master_repl_offset, d.slave_repl_offset) {
            (Some(m), Some(o)) => format!(
                "source master_repl_offset {m}, destination slave_repl_offset {o} ({} bytes behind)",
                m - o
            ),
            _ => "not shown by INFO replication".into(),
        },
        (Some(_), Some(_)) => "none: the destination is not a replica".into(),
        _ => "unreadable (INFO replication refused)".into(),
    }
}

/// The summary after a lag run.
pub fn lag_text(r: &LagReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "source       {} ({})", r.source.url, r.source.label());
    let _ = writeln!(
        o,
        "destination  {} ({})",
        r.destination.url,
        r.destination.label()
    );
    let _ = writeln!(o, "replication  {}", r.link_text);
    let _ = writeln!(o, "offsets      {}", offsets_text(&r.replication_end));
    let _ = writeln!(
        o,
        "canary       {} on the source (TTL'd, deleted at the end{})",
        r.key,
        if r.cleanup_error.is_some() {
            ": delete failed"
        } else {
            ""
        }
    );
    let _ = writeln!(
        o,
        "samples      {} written, {} arrived, {} not seen within {} in {:.1}s",
        r.sent,
        r.arrived,
        r.lost,
        humantime::format_duration(r.max_lag),
        r.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        o,
        "lag          p50 {}  p99 {}  max {}",
        opt_ms(r.percentile_ms(50.0)),
        opt_ms(r.percentile_ms(99.0)),
        opt_ms(r.max_ms())
    );
    if let Some(e) = &r.cleanup_error {
        let _ = writeln!(o, "warning: {e}");
    }
    if r.sent == 0 {
        let _ = writeln!(o, "NO SAMPLE: stopped before the first canary (exit 0)");
    } else if r.passed() {
        let _ = writeln!(
            o,
            "OK: every canary reached the destination within {} (exit 0)",
            humantime::format_duration(r.max_lag)
        );
    } else {
        let _ = writeln!(
            o,
            "LAGGING: {} of {} canaries never reached the destination within {}; {} (exit 1)",
            r.lost,
            r.sent,
            humantime::format_duration(r.max_lag),
            r.link_text
        );
    }
    o
}

fn repl_json(rep: &(Option<Replication>, Option<Replication>)) -> Json {
    json!({ "source": rep.0, "destination": rep.1 })
}

/// `lag.json`.
pub fn lag_json(r: &LagReport) -> Json {
    let ms3 = |v: Option<f64>| v.map(|m| (m * 1000.0).round() / 1000.0);
    json!({
        "verdict": if r.passed() { "ok" } else { "lagging" },
        "source": r.source,
        "destination": r.destination,
        "canary_key": r.key,
        "replication": r.link,
        "replication_text": r.link_text,
        "replication_start": repl_json(&r.replication_start),
        "replication_end": repl_json(&r.replication_end),
        "sent": r.sent,
        "arrived": r.arrived,
        "lost": r.lost,
        "max_lag_ms": r.max_lag.as_millis() as u64,
        "lag_ms": {
            "p50": ms3(r.percentile_ms(50.0)),
            "p99": ms3(r.percentile_ms(99.0)),
            "max": ms3(r.max_ms()),
        },
        "elapsed_secs": (r.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "interrupted": r.interrupted,
        "cleanup_error": r.cleanup_error,
        "samples": r.samples.iter().map(|s| json!({
            "seq": s.seq,
            "at_ms": s.at.as_millis() as u64,
            "lag_ms": s.lag.map(|l| (l.as_secs_f64() * 1e6).round() / 1000.0),
            "source_offset": s.offsets.map(|o| o.0),
            "destination_offset": s.offsets.map(|o| o.1),
        })).collect::<Vec<_>>(),
    })
}

/// Write `DIR/lag.json`.
pub fn write_lag(dir: &Path, r: &LagReport) -> std::io::Result<PathBuf> {
    write_json(dir, "lag.json", &lag_json(r))
}

/// Live progress of a verify on stderr: a bar on a terminal, a line every 5 s otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    last_plain: Duration,
}

impl Progress {
    /// `total`: the keys expected (both scans), when known.
    pub fn new(total: Option<u64>, enabled: bool) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let bar = (enabled && tty).then(|| {
            let b = match total {
                Some(n) => {
                    let b = ProgressBar::new(n.max(1));
                    b.set_style(
                        ProgressStyle::with_template(
                            "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} keys {per_sec} {msg}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    b
                }
                None => {
                    let b = ProgressBar::new_spinner();
                    b.set_style(
                        ProgressStyle::with_template(
                            "{spinner} {elapsed_precise} {pos} keys {per_sec} {msg}",
                        )
                        .expect("valid template"),
                    );
                    b
                }
            };
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Progress {
            bar,
            plain: enabled && !tty,
            last_plain: Duration::ZERO,
        }
    }

    pub fn update(&mut self, done: u64, differences: u64, elapsed: Duration) {
        if let Some(b) = &self.bar {
            b.set_position(done);
            b.set_message(format!("{differences} differences"));
        } else if self.plain && elapsed >= self.last_plain + Duration::from_secs(5) {
            self.last_plain = elapsed;
            eprintln!(
                "[{:>6.1}s] {done} keys ({:.0} keys/s), {differences} differences",
                elapsed.as_secs_f64(),
                done as f64 / elapsed.as_secs_f64().max(1e-3)
            );
        }
    }

    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::side::ServerInfo;
    use crate::verify::Difference;
    use std::collections::BTreeMap;

    fn report() -> Report {
        let info = |s: &str| ServerInfo {
            url: format!("redis://127.0.0.1:{s}"),
            server: "valkey".into(),
            version: "9.1.2".into(),
        };
        let mut by_kind = BTreeMap::new();
        by_kind.insert(Kind::Missing, 1);
        by_kind.insert(Kind::Value, 2);
        Report {
            source: info("1"),
            destination: info("2"),
            mode: Mode::Full,
            pattern: None,
            extra: ExtraCheck::Checked,
            keys_checked: 10,
            identical: 7,
            vanished: 0,
            rechecked: 3,
            settled: 0,
            destination_scanned: 10,
            skipped_canaries: 0,
            by_kind,
            differences: vec![
                Difference {
                    key: b"z".to_vec(),
                    kind: Kind::Value,
                    detail: "zz".into(),
                },
                Difference {
                    key: vec![b'a', 0xff],
                    kind: Kind::Missing,
                    detail: "string on source, absent on destination".into(),
                },
                Difference {
                    key: b"m".to_vec(),
                    kind: Kind::Value,
                    detail: "mm".into(),
                },
            ],
            elapsed: Duration::from_secs(2),
            interrupted: false,
            ttl_tolerance: Duration::from_secs(2),
            recheck_after: Duration::from_secs(1),
            rate: Some(5000),
        }
    }

    #[test]
    fn text_lists_differences_by_key_and_counts_by_kind() {
        let t = verify_text(&report(), 2);
        assert!(t.contains("differences  3: missing 1, value 2"), "{t}");
        assert!(t.contains("first 2 of 3 differences (by key):"), "{t}");
        // The first two found, sorted by key: a\xff before z; m (third found) not shown.
        let a = t.find("a\\xff").expect("binary key escaped");
        let z = t.find("  z  ").expect("z listed");
        assert!(a < z, "{t}");
        assert!(!t.contains("  m  "), "{t}");
        assert!(t.contains("DIFFERENT: 3 keys differ (exit 1)"), "{t}");
    }

    #[test]
    fn json_counts_every_kind() {
        let j = verify_json(&report());
        assert_eq!(j["verdict"], "different");
        assert_eq!(j["differences_total"], 3);
        assert_eq!(j["differences_by_kind"]["missing"], 1);
        assert_eq!(j["differences_by_kind"]["extra"], 0);
        assert_eq!(j["differences_by_kind"]["changed-during-verify"], 0);
        assert_eq!(j["differences"][1]["key"], "a\\xff");
        assert_eq!(j["differences"][1]["kind"], "missing");
        assert_eq!(j["keys_per_sec"], 10.0);
        let mut r = report();
        r.by_kind.clear();
        r.interrupted = true;
        assert_eq!(verify_json(&r)["verdict"], "incomplete");
        assert!(verify_text(&r, 20).contains("INCOMPLETE"));
    }
}
