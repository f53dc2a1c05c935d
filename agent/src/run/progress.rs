//! Live progress: an indicatif bar on a terminal, a plain line every few seconds otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::metrics::Interval;
use crate::plan::Plan;

pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    total: Duration,
    last_plain: Duration,
}

impl Progress {
    pub fn new(plan: &Plan, quiet: bool) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let bar = (!quiet && tty).then(|| {
            let b = ProgressBar::new(plan.duration.as_secs().max(1));
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} {elapsed_precise}/{duration_precise} [{bar:30}] {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.set_message(format!("{}: starting", plan.name));
            b
        });
        Progress {
            bar,
            plain: !quiet && !tty,
            total: plan.duration,
            last_plain: Duration::ZERO,
        }
    }

    /// Show the slots closed since the last update (they trail the clock by the collection
    /// grace period).
    pub fn update<'a>(&mut self, slots: impl Iterator<Item = &'a Interval>, elapsed: Duration) {
        let (mut from, mut to) = (Duration::MAX, Duration::ZERO);
        let (mut ok, mut errors, mut p99) = (0u64, 0u64, 0u64);
        for iv in slots {
            from = from.min(iv.start);
            to = to.max(iv.end);
            ok += iv.ops.iter().map(|o| o.ok).sum::<u64>();
            errors += iv
                .ops
                .iter()
                .map(|o| o.errors.iter().sum::<u64>())
                .sum::<u64>();
            p99 = p99.max(iv.ops.iter().map(|o| o.p99_us).max().unwrap_or(0));
        }
        let secs = to.saturating_sub(from).as_secs_f64().max(1e-3);
        let msg = format!(
            "{:.0} ops/s  p99 {}  errors {}",
            (ok + errors) as f64 / secs,
            crate::report::fmt_us(p99 as f64),
            errors
        );
        if let Some(b) = &self.bar {
            b.set_position(elapsed.as_secs().min(self.total.as_secs()));
            b.set_message(msg);
        } else if self.plain && elapsed >= self.last_plain + Duration::from_secs(5) {
            self.last_plain = elapsed;
            eprintln!(
                "[{:>5.1}s/{:.0}s] {msg}",
                elapsed.as_secs_f64(),
                self.total.as_secs_f64()
            );
        }
    }

    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
