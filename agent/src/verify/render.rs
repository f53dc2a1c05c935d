//! Output of `verify` and `lag`: the terminal text, `verify.json` / `lag.json`, and the live
//! progress. Pure functions of the reports, except the progress and the file writes.

use std::fmt::Write;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value as Json};

use super::compare::{key_repr, Kind};
use super::databases::DbPair;
use super::lag::{DbStatus, LagReport, Sample};
use super::report::{Database, ExtraCheck, Mode, Report, Verdict};
use super::side::{Replication, Role};

/// What the sample method promises, said in the output and in `verify.json`.
pub const SAMPLE_METHOD: &str = "RANDOMKEY draws: each draw is the server's random key, \
    approximately uniform over the database, with replacement; duplicates are checked once";

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

/// `0, 1, 2: every database holding keys on either side (INFO keyspace)`.
fn databases_line(pairs: &[DbPair], choice: super::databases::Choice, both_sides: bool) -> String {
    let list: Vec<String> = pairs
        .iter()
        .map(|p| {
            if p.source == p.destination {
                p.source.to_string()
            } else {
                format!("{} → {}", p.source, p.destination)
            }
        })
        .collect();
    format!("{}: {}", list.join(", "), choice.describe(both_sides))
}

fn count(n: Option<u64>) -> String {
    match n {
        Some(0) => "none".into(),
        Some(n) => n.to_string(),
        None => "? (INFO refused)".into(),
    }
}

/// `db 1         30 keys on the source, none on the destination: 30 checked, 30 differ`.
fn database_line(d: &Database, interrupted: bool) -> String {
    let what = if d.complete {
        format!(
            "{} checked, {}",
            d.keys_checked,
            match d.differences {
                0 => "none differ".to_string(),
                n => format!("{n} differ"),
            }
        )
    } else if d.keys_checked > 0 || d.differences > 0 {
        format!(
            "{} checked, {} differ before the interruption",
            d.keys_checked, d.differences
        )
    } else if interrupted {
        "not checked: interrupted".into()
    } else {
        "not checked".into()
    };
    let side = match d.only_on {
        Some(Role::Source) => "; on the source only",
        Some(Role::Destination) => "; on the destination only",
        None => "",
    };
    format!(
        "{:<12} {} keys on the source, {} on the destination: {what}{side}",
        d.pair.label(),
        count(d.source_keys),
        count(d.destination_keys)
    )
}

/// What was compared: both sides, the databases, the keys, the extra-key check.
fn header(o: &mut String, r: &Report) {
    let _ = writeln!(o, "source       {} ({})", r.source.url, r.source.label());
    let _ = writeln!(
        o,
        "destination  {} ({})",
        r.destination.url,
        r.destination.label()
    );
    let pairs: Vec<DbPair> = r.databases.iter().map(|d| d.pair).collect();
    let _ = writeln!(o, "databases    {}", databases_line(&pairs, r.choice, true));
    let _ = writeln!(o, "keys         {}", keys_line(r));
    let _ = writeln!(o, "extra keys   {}", extra_line(r));
}

/// The counts: keys checked, how fast, what the rechecks found, and a line per database.
fn counts(o: &mut String, r: &Report) {
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
    for d in &r.databases {
        let _ = writeln!(o, "{}", database_line(d, r.interrupted));
    }
}

/// The differences: counted by kind, the databases on one side only, then the first `show`
/// keys (by database and key).
fn differences(o: &mut String, r: &Report, show: usize) {
    let total = r.total_differences();
    if total == 0 {
        let _ = writeln!(o, "differences  none");
        return;
    }
    let keys = r.key_differences();
    let one_sided = r.databases_on_one_side();
    let mut parts = vec![];
    if keys > 0 {
        parts.push(by_kind(r));
    }
    if one_sided > 0 {
        let noun = if one_sided == 1 {
            "database"
        } else {
            "databases"
        };
        parts.push(format!("{one_sided} {noun} on one side only"));
    }
    let _ = writeln!(o, "differences  {total}: {}", parts.join("; "));
    for line in r.databases.iter().filter_map(Database::one_sided_text) {
        let _ = writeln!(o, "             {line}");
    }
    if r.differences.is_empty() {
        return;
    }
    let mut list: Vec<_> = r.differences.iter().take(show).collect();
    list.sort_by(|a, b| (a.db, &a.key).cmp(&(b.db, &b.key)));
    let names: Vec<String> = list.iter().map(|d| key_repr(&d.key)).collect();
    let w = names
        .iter()
        .map(|k| k.chars().count())
        .max()
        .unwrap_or(3)
        .clamp(3, 40);
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{} (by key):",
        if (list.len() as u64) < keys {
            format!("first {} of {keys} differences", list.len())
        } else {
            format!("{keys} differences")
        }
    );
    let _ = writeln!(o, "  DB    {:<w$}  {:<21}  DESCRIPTION", "KEY", "KIND");
    for (d, k) in list.iter().zip(&names) {
        let db = format!("db{}", d.db);
        let _ = writeln!(o, "  {db:<4}  {k:<w$}  {:<21}  {}", d.kind.name(), d.detail);
    }
    let _ = writeln!(o);
}

/// The last line: the verdict and its exit code.
fn verdict_line(r: &Report) -> String {
    match r.verdict() {
        Verdict::Identical => "IDENTICAL: every checked key matches (exit 0)".into(),
        Verdict::Incomplete => format!(
            "INCOMPLETE: interrupted after {} keys, no difference so far (exit 4)",
            r.keys_checked
        ),
        Verdict::Different => {
            let mut parts = vec![];
            let keys = r.key_differences();
            if keys > 0 {
                parts.push(format!("{keys} keys differ"));
            }
            let one_sided: Vec<String> = r
                .databases
                .iter()
                .filter(|d| d.only_on.is_some())
                .map(|d| d.pair.label())
                .collect();
            if !one_sided.is_empty() {
                parts.push(format!("{} on one side only", one_sided.join(", ")));
            }
            format!("DIFFERENT: {} (exit 1)", parts.join("; "))
        }
    }
}

/// The terminal report: what was compared, counts (a line per database), the databases on one
/// side only, the first `show` differences (by database and key), and the verdict line.
pub fn verify_text(r: &Report, show: usize) -> String {
    let mut o = String::new();
    header(&mut o, r);
    counts(&mut o, r);
    differences(&mut o, r, show);
    let _ = writeln!(o, "{}", verdict_line(r));
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
    let databases: Vec<Json> = r
        .databases
        .iter()
        .map(|d| {
            json!({
                "db": d.pair.source,
                "destination_db": d.pair.destination,
                "source_keys": d.source_keys,
                "destination_keys": d.destination_keys,
                "only_on": d.only_on,
                "keys_checked": d.keys_checked,
                "differences": d.differences,
                "complete": d.complete,
            })
        })
        .collect();
    json!({
        "verdict": r.verdict().name(),
        "source": r.source,
        "destination": r.destination,
        "database_selection": r.choice,
        "databases": databases,
        "databases_on_one_side": r.databases_on_one_side(),
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
            "db": d.db,
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

/// One line per canary, as it is taken (the running percentiles are its database's).
pub fn lag_line(s: &Sample, r: &LagReport) -> String {
    let lag = match s.lag {
        Some(l) => ms(l),
        None => format!("not seen within {}", humantime::format_duration(r.max_lag)),
    };
    let off = s
        .offsets
        .map(|(m, o)| format!("  offsets {m}/{o} ({} bytes behind)", m - o))
        .unwrap_or_default();
    let (p50, p99, max) = match r.database(s.db) {
        Some(d) => (d.percentile_ms(50.0), d.percentile_ms(99.0), d.max_ms()),
        None => (r.percentile_ms(50.0), r.percentile_ms(99.0), r.max_ms()),
    };
    format!(
        "#{:<4} {:<5} {:>7}  lag {lag:>9}  p50 {}  p99 {}  max {}{off}",
        s.seq,
        s.db.short(),
        format!("+{:.1}s", s.at.as_secs_f64()),
        opt_ms(p50),
        opt_ms(p99),
        opt_ms(max),
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

/// A line per database after a lag run.
fn lag_database_line(d: &super::lag::DbLag, r: &LagReport) -> String {
    let within = humantime::format_duration(r.max_lag);
    let what = match d.status() {
        DbStatus::NoSample => "no canary judged".to_string(),
        DbStatus::Ok => format!(
            "lag p50 {}  p99 {}  max {}",
            opt_ms(d.percentile_ms(50.0)),
            opt_ms(d.percentile_ms(99.0)),
            opt_ms(d.max_ms())
        ),
        DbStatus::Lagging => format!(
            "{} not seen within {within}: lagging (max {})",
            d.lost,
            opt_ms(d.max_ms())
        ),
        DbStatus::NotReplicated => {
            format!("{} not seen within {within}: not replicated", d.lost)
        }
    };
    format!(
        "{:<12} {} written, {} arrived: {what}",
        d.pair.label(),
        d.sent,
        d.arrived
    )
}

/// The databases whose canaries did not all arrive, for the verdict: `db 2 not replicated`.
fn lagging_databases(r: &LagReport) -> String {
    r.databases
        .iter()
        .filter_map(|d| match d.status() {
            DbStatus::NotReplicated => Some(format!("{} not replicated", d.pair.label())),
            DbStatus::Lagging => Some(format!("{} lagging", d.pair.label())),
            DbStatus::Ok | DbStatus::NoSample => None,
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The summary after a lag run: totals, then a line per database, then the verdict.
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
    let pairs: Vec<DbPair> = r.databases.iter().map(|d| d.pair).collect();
    let _ = writeln!(
        o,
        "databases    {}",
        databases_line(&pairs, r.choice, false)
    );
    let _ = writeln!(
        o,
        "canary       {} on the source, in each database (TTL'd, deleted at the end{})",
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
    for d in &r.databases {
        let _ = writeln!(o, "{}", lag_database_line(d, r));
    }
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
            "LAGGING: {} of {} canaries never reached the destination within {} ({}); {} (exit 1)",
            r.lost,
            r.sent,
            humantime::format_duration(r.max_lag),
            lagging_databases(r),
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
        "database_selection": r.choice,
        "databases": r.databases.iter().map(|d| json!({
            "db": d.pair.source,
            "destination_db": d.pair.destination,
            "status": d.status().name(),
            "sent": d.sent,
            "arrived": d.arrived,
            "lost": d.lost,
            "lag_ms": {
                "p50": ms3(d.percentile_ms(50.0)),
                "p99": ms3(d.percentile_ms(99.0)),
                "max": ms3(d.max_ms()),
            },
            "cleanup_error": d.cleanup_error,
        })).collect::<Vec<_>>(),
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
            "db": s.db.source,
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
    use crate::verify::databases::Choice;
    use crate::verify::lag::DbLag;
    use crate::verify::side::{Link, ServerInfo};
    use crate::verify::Difference;
    use hdrhistogram::Histogram;
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
        let mut db0 = Database::new(DbPair::same(0), Some(10), Some(10));
        (db0.keys_checked, db0.differences, db0.complete) = (10, 3, true);
        Report {
            source: info("1"),
            destination: info("2"),
            choice: Choice::InfoKeyspace,
            databases: vec![db0],
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
                    db: 0,
                    key: b"z".to_vec(),
                    kind: Kind::Value,
                    detail: "zz".into(),
                },
                Difference {
                    db: 0,
                    key: vec![b'a', 0xff],
                    kind: Kind::Missing,
                    detail: "string on source, absent on destination".into(),
                },
                Difference {
                    db: 0,
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

    /// ECHO's three databases: DB 0 copied, DB 1 and DB 2 on the source only.
    fn echo_report() -> Report {
        let mut r = report();
        let mut dbs = vec![];
        for (db, src, dst, checked, differ) in
            [(0, 50, 50, 50, 0), (1, 30, 0, 30, 30), (2, 30, 0, 30, 30)]
        {
            let mut d = Database::new(DbPair::same(db), Some(src), Some(dst));
            d.only_on = (dst == 0).then_some(Role::Source);
            (d.keys_checked, d.differences, d.complete) = (checked, differ, true);
            dbs.push(d);
        }
        r.databases = dbs;
        r.by_kind = BTreeMap::from([(Kind::Missing, 60)]);
        r.differences = [(2, "coord:x"), (1, "dramatiq:default.msgs")]
            .iter()
            .map(|(db, k)| Difference {
                db: *db,
                key: k.as_bytes().to_vec(),
                kind: Kind::Missing,
                detail: "hash on source, absent on destination".into(),
            })
            .collect();
        r
    }

    #[test]
    fn text_gives_a_line_per_database_and_names_the_one_sided_ones() {
        let t = verify_text(&echo_report(), 20);
        assert!(
            t.contains(
                "databases    0, 1, 2: every database holding keys on either side (INFO keyspace)"
            ),
            "{t}"
        );
        assert!(
            t.contains("db 0         50 keys on the source, 50 on the destination: 50 checked, none differ\n"),
            "{t}"
        );
        assert!(
            t.contains("db 1         30 keys on the source, none on the destination: 30 checked, 30 differ; on the source only"),
            "{t}"
        );
        assert!(
            t.contains("differences  62: missing 60; 2 databases on one side only"),
            "{t}"
        );
        assert!(
            t.contains("db 2: 30 keys on the source, none on the destination"),
            "{t}"
        );
        // Each difference names its database; listed by database, then key.
        let d1 = t
            .find("db1   dramatiq:default.msgs")
            .expect("db1's key, with its database");
        let d2 = t
            .find("db2   coord:x")
            .expect("db2's key, with its database");
        assert!(d1 < d2, "{t}");
        assert!(
            t.contains("DIFFERENT: 60 keys differ; db 1, db 2 on one side only (exit 1)"),
            "{t}"
        );
    }

    #[test]
    fn a_database_on_one_side_is_a_difference_even_with_nothing_compared() {
        // --no-extra, DB 3 only on the destination: no key differs, the verdict still does.
        let mut r = report();
        r.by_kind.clear();
        r.differences.clear();
        r.extra = ExtraCheck::Skipped;
        let mut d = Database::new(DbPair::same(3), Some(0), Some(4));
        d.only_on = Some(Role::Destination);
        d.complete = true;
        r.databases.push(d);
        assert_eq!(r.verdict(), Verdict::Different);
        let t = verify_text(&r, 20);
        assert!(
            t.contains("differences  1: 1 database on one side only"),
            "{t}"
        );
        assert!(
            t.contains("db 3: 4 keys on the destination, none on the source"),
            "{t}"
        );
        assert!(
            t.contains("DIFFERENT: db 3 on one side only (exit 1)"),
            "{t}"
        );
        let j = verify_json(&r);
        assert_eq!(j["verdict"], "different");
        assert_eq!(j["differences_total"], 1);
        assert_eq!(j["databases_on_one_side"], 1);
        assert_eq!(j["databases"][1]["only_on"], "destination");
    }

    #[test]
    fn json_has_every_database_and_each_difference_names_its_own() {
        let j = verify_json(&echo_report());
        assert_eq!(j["database_selection"], "info-keyspace");
        let dbs = j["databases"].as_array().unwrap();
        assert_eq!(dbs.len(), 3);
        assert_eq!(
            (
                &dbs[2]["db"],
                &dbs[2]["source_keys"],
                &dbs[2]["destination_keys"],
                &dbs[2]["only_on"]
            ),
            (&2.into(), &30.into(), &0.into(), &"source".into())
        );
        assert_eq!(dbs[0]["only_on"], Json::Null);
        assert_eq!(j["databases_on_one_side"], 2);
        assert_eq!(j["differences_total"], 62);
        assert_eq!(j["differences"][1]["db"], 1);
        assert_eq!(j["differences"][1]["key"], "dramatiq:default.msgs");
    }

    #[test]
    fn an_interrupted_verify_is_incomplete_with_exit_4_unless_it_found_a_difference() {
        let mut r = report();
        r.by_kind.clear();
        r.differences.clear();
        r.interrupted = true;
        let mut d = Database::new(DbPair::same(1), Some(30), Some(30));
        d.complete = false;
        r.databases.push(d);
        assert_eq!(r.verdict(), Verdict::Incomplete);
        let t = verify_text(&r, 20);
        assert!(
            t.contains("INCOMPLETE: interrupted after 10 keys, no difference so far (exit 4)"),
            "{t}"
        );
        assert!(t.contains("db 1         30 keys on the source, 30 on the destination: not checked: interrupted"), "{t}");
        let mut r = report();
        r.interrupted = true;
        assert_eq!(r.verdict(), Verdict::Different);
        assert!(verify_text(&r, 20).contains("(exit 1)"));
    }

    fn lag_report(dbs: &[(u32, &[Option<u64>])]) -> LagReport {
        let info = |s: &str| ServerInfo {
            url: format!("redis://127.0.0.1:{s}"),
            server: "redis".into(),
            version: "7.0.15".into(),
        };
        let mut r = LagReport {
            source: info("1"),
            destination: info("2"),
            key: "vc:lag:0123456789abcdef".into(),
            link: Link::NotReplica,
            link_text: "the destination is not a replica (role master)".into(),
            replication_start: (None, None),
            replication_end: (None, None),
            choice: Choice::DbFlags,
            databases: vec![],
            samples: vec![],
            hist: Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap(),
            sent: 0,
            arrived: 0,
            lost: 0,
            elapsed: Duration::from_secs(1),
            interrupted: false,
            max_lag: Duration::from_millis(300),
            cleanup_error: None,
        };
        for (db, lags) in dbs {
            let mut d = DbLag {
                pair: DbPair::same(*db),
                sent: lags.len() as u64,
                arrived: 0,
                lost: 0,
                hist: Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap(),
                cleanup_error: None,
            };
            for l in *lags {
                match l {
                    Some(us) => {
                        d.arrived += 1;
                        d.hist.record(*us).unwrap();
                        r.hist.record(*us).unwrap();
                    }
                    None => d.lost += 1,
                }
            }
            (r.sent, r.arrived, r.lost) = (r.sent + d.sent, r.arrived + d.arrived, r.lost + d.lost);
            r.databases.push(d);
        }
        r
    }

    #[test]
    fn lag_reports_each_database_and_names_the_ones_not_replicated() {
        let r = lag_report(&[
            (0, &[Some(120), Some(150)]),
            (1, &[Some(100), None]),
            (2, &[None, None]),
        ]);
        assert!(!r.passed());
        let t = lag_text(&r);
        assert!(t.contains("databases    0, 1, 2: as --db asked"), "{t}");
        assert!(
            t.contains("db 0         2 written, 2 arrived: lag p50 0.12 ms"),
            "{t}"
        );
        assert!(
            t.contains("db 1         2 written, 1 arrived: 1 not seen within 300ms: lagging"),
            "{t}"
        );
        assert!(
            t.contains(
                "db 2         2 written, 0 arrived: 2 not seen within 300ms: not replicated"
            ),
            "{t}"
        );
        assert!(
            t.contains("LAGGING: 3 of 6 canaries never reached the destination within 300ms (db 1 lagging, db 2 not replicated); the destination is not a replica (role master) (exit 1)"),
            "{t}"
        );
        let j = lag_json(&r);
        assert_eq!(j["verdict"], "lagging");
        assert_eq!(j["database_selection"], "db-flags");
        let statuses: Vec<&str> = j["databases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["ok", "lagging", "not-replicated"]);
        assert_eq!(j["databases"][2]["lost"], 2);
        let ok = lag_report(&[(0, &[Some(120)])]);
        assert!(ok.passed());
        assert!(lag_text(&ok).contains("OK: every canary reached the destination"));
        let s = Sample {
            db: DbPair::same(2),
            seq: 1,
            at: Duration::ZERO,
            lag: None,
            offsets: None,
        };
        let line = lag_line(&s, &r);
        assert!(line.starts_with("#1    db2  "), "{line}");
        assert!(line.contains("not seen within 300ms"), "{line}");
    }
}
