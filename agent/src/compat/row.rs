//! One line of the compat table: a check's baseline and candidate outcomes, their [`Status`],
//! and whether the line fails the run.

use super::check::Check;
use super::outcome::Outcome;
use super::weight::Weight;

/// A row's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Works (no baseline).
    Ok,
    /// Same value on both (or failed, or refused, the same way on both).
    Same,
    /// Both work with different values, or the candidate works where the baseline fails or
    /// refuses, or the candidate's setting carries a warning the baseline's does not.
    Different,
    /// Fails on the candidate where the baseline works, or fails without a baseline.
    Failed,
    /// The candidate refuses a command the check needs.
    Forbidden,
    /// Not applicable or not provoked on either side.
    Skipped,
    /// Works, with a warning (no baseline).
    Warning,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Same => "same",
            Status::Different => "different",
            Status::Failed => "failed",
            Status::Forbidden => "forbidden",
            Status::Skipped => "skipped",
            Status::Warning => "warning",
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub check: Check,
    pub name: &'static str,
    pub weight: Weight,
    pub baseline: Option<Outcome>,
    pub candidate: Outcome,
    pub status: Status,
    /// Whether this row fails the run.
    pub matters: bool,
    /// What happened (the failure, the refusal and its way out, the warning).
    pub note: Option<String>,
    /// Why the check exists, for ECHO's clients, in one line.
    pub explanation: &'static str,
}
