//! The team's own commands a switch runs at named points (`[[migration.step]]`): the provider's
//! CLI call that stops an online migration, a deploy, a notice. Each runs to its end (bounded by
//! its `timeout`, then killed) with the two sides in its environment; its exit, time and the tail
//! of its output go to the report, and a step that fails stops the switch. A leaf of `fault/`.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::plan::migration::{Step, StepPoint};
use crate::summary::StepRecord;

/// How much of a step's output the report keeps (its end).
const KEEP: usize = 2000;

/// Run every step at `point`, in order; stop at the first that fails. What ran is in `out`.
pub(super) async fn run_at(
    point: StepPoint,
    steps: &[Step],
    sides: (SocketAddr, SocketAddr),
    started: Instant,
    out: &mut Vec<StepRecord>,
) -> Result<(), String> {
    for s in steps.iter().filter(|s| s.at == point) {
        let r = run_one(s, sides, started).await;
        let failed = r.exit != Some(0);
        let said = format!(
            "step {} `{}`: {}",
            point.name(),
            r.command,
            r.error.clone().unwrap_or_else(|| match r.exit {
                Some(c) => format!("exit {c}"),
                None => "no exit code".into(),
            })
        );
        out.push(r);
        if failed {
            return Err(format!("{said}; the switch stops here"));
        }
    }
    Ok(())
}

async fn run_one(s: &Step, (src, dst): (SocketAddr, SocketAddr), started: Instant) -> StepRecord {
    let t0 = Instant::now();
    let command = match s.command.as_slice() {
        [sh, c, text] if sh == "sh" && c == "-c" => text.clone(),
        argv => argv.join(" "),
    };
    let mut rec = StepRecord {
        at: s.at.name().into(),
        command,
        started_secs: t0.saturating_duration_since(started).as_secs_f64(),
        secs: 0.0,
        exit: None,
        output: String::new(),
        error: None,
    };
    let mut cmd = tokio::process::Command::new(&s.command[0]);
    cmd.args(&s.command[1..])
        .env("VC_SOURCE", src.to_string())
        .env("VC_DESTINATION", dst.to_string())
        .env("VC_STEP", s.at.name())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match cmd.spawn() {
        Err(e) => rec.error = Some(format!("cannot start {:?}: {e}", s.command[0])),
        Ok(child) => match tokio::time::timeout(s.timeout, child.wait_with_output()).await {
            Err(_) => {
                rec.error = Some(format!(
                    "still running after its timeout ({}), killed",
                    humantime_secs(s.timeout)
                ))
            }
            Ok(Err(e)) => rec.error = Some(format!("cannot wait for it: {e}")),
            Ok(Ok(o)) => {
                rec.exit = o.status.code();
                let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&o.stderr));
                let cut = text.len().saturating_sub(KEEP);
                let cut = (cut..text.len())
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(text.len());
                rec.output = text[cut..].trim_end().to_string();
            }
        },
    }
    rec.secs = t0.elapsed().as_secs_f64();
    rec
}

fn humantime_secs(d: Duration) -> String {
    format!("{:.0}s", d.as_secs_f64())
}
