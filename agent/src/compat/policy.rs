//! How to judge a compat run: which weights of check can fail it.

use super::weight::Weight;

/// How to judge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Treat a changed error text (`Redis is busy` → `Valkey is busy`) as breaking: for
    /// applications that match error messages.
    pub error_text_matters: bool,
}

impl Policy {
    /// Whether a check of this weight can fail the run.
    pub(super) fn counts(self, w: Weight) -> bool {
        match w {
            Weight::Behaviour => true,
            Weight::ErrorText => self.error_text_matters,
            Weight::Info => false,
        }
    }
}
