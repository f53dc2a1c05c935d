//! `drain`'s terminal report and `drain.json`.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::report::{Report, Verdict};
use crate::units::fmt_count;

/// The terminal report: the sides, a row per queue, what was left and why, the verdict line.
pub fn text(r: &Report, show: usize) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "source       {}", r.source);
    let _ = writeln!(o, "destination  {}", r.destination);
    let dbs: Vec<String> = r.databases.iter().map(u32::to_string).collect();
    let _ = writeln!(
        o,
        "namespace    {} in db {}",
        r.namespace,
        if dbs.is_empty() {
            "-".to_string()
        } else {
            dbs.join(", ")
        }
    );
    if r.copied_ids > 0 {
        let _ = writeln!(
            o,
            "copied       {} message ids the copy carried are skipped",
            fmt_count(r.copied_ids)
        );
    }
    if r.dry_run {
        let _ = writeln!(o, "dry run      nothing written on either side");
    }
    queues(&mut o, r);
    for l in &r.live_workers {
        let _ = writeln!(
            o,
            "left         {} messages in worker {}'s ack set (db {}, {}): it heart-beat on the \
             source {:.1}s ago; drain again once it has stopped",
            l.messages,
            l.worker,
            l.db,
            l.queue,
            l.heartbeat_age_ms as f64 / 1000.0
        );
    }
    if !r.moved.is_empty() && show > 0 {
        let what = if r.dry_run { "would move" } else { "moved" };
        let _ = writeln!(o, "\nfirst {} {what}:", r.moved.len().min(show));
        for m in r.moved.iter().take(show) {
            let _ = writeln!(o, "  {}", m.label());
        }
    }
    let _ = writeln!(o, "\n{}", verdict_line(r));
    o
}

fn queues(o: &mut String, r: &Report) {
    if r.queues.is_empty() {
        let _ = writeln!(o, "queues       no Dramatiq message on the source");
        return;
    }
    let _ = writeln!(
        o,
        "\n  {:<5} {:<24} {:>8} {:>8} {:>6} {:>6} {:>8} {:>7} {:>8} {:>6}",
        "DB", "QUEUE", "READY", "REQUEUED", "UNREF", "DEAD", "ALREADY", "COPIED", "MISSING", "LIVE"
    );
    for q in &r.queues {
        let db = if q.db == q.destination_db {
            format!("db{}", q.db)
        } else {
            format!("db{}→{}", q.db, q.destination_db)
        };
        let _ = writeln!(
            o,
            "  {:<5} {:<24} {:>8} {:>8} {:>6} {:>6} {:>8} {:>7} {:>8} {:>6}",
            db,
            q.queue,
            q.ready,
            q.requeued,
            q.unreferenced,
            q.dead_letters,
            q.already_there,
            q.copied,
            q.missing_payload,
            q.held_by_live_workers
        );
    }
}

/// The last line: what happened, and the exit code it leads to.
pub fn verdict_line(r: &Report) -> String {
    let moved = r.moved_total();
    let skipped: u64 = r.queues.iter().map(|q| q.already_there + q.copied).sum();
    let held = r.held_total();
    match (r.verdict(), r.dry_run) {
        (Verdict::Incomplete, _) => format!(
            "INCOMPLETE: stopped after {} in {:.1}s; run it again to finish (exit 4)",
            if r.dry_run {
                format!("finding {moved} to move")
            } else {
                format!("moving {moved}")
            },
            r.elapsed_secs
        ),
        (Verdict::LeftBehind, true) => format!(
            "WOULD MOVE: {moved} messages to the destination{} (exit 1)",
            if held > 0 {
                format!("; {held} held by live workers would stay")
            } else {
                String::new()
            }
        ),
        (Verdict::LeftBehind, false) => format!(
            "LEFT BEHIND: {held} messages held by workers still alive on the source; {moved} \
             moved (exit 1)"
        ),
        (Verdict::Done, true) => {
            "NOTHING TO MOVE: the source holds no stranded message (exit 0)".into()
        }
        (Verdict::Done, false) => format!(
            "DRAINED: {moved} messages moved to the destination, {skipped} skipped (already \
             there or carried by the copy) (exit 0)"
        ),
    }
}

/// Write `drain.json` into `dir`.
pub fn write(dir: &Path, r: &Report) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let p = dir.join("drain.json");
    let mut v = serde_json::to_value(r).map_err(std::io::Error::other)?;
    if let Some(m) = v.as_object_mut() {
        m.insert(
            "verdict".into(),
            match r.verdict() {
                Verdict::Done => "done",
                Verdict::LeftBehind => "left-behind",
                Verdict::Incomplete => "incomplete",
            }
            .into(),
        );
        m.insert("moved_total".into(), r.moved_total().into());
    }
    let text = serde_json::to_string_pretty(&v).map_err(std::io::Error::other)?;
    std::fs::write(&p, text)?;
    Ok(p)
}
