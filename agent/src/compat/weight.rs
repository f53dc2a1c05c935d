//! How much a check weighs: whether it can fail the run, and under which policy.

/// Whether a check can fail the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// Behaviour the clients depend on: failing or refused where the baseline works (or without
    /// a baseline) fails the run.
    Behaviour,
    /// An error reply's text. ECHO's clients match error codes, never texts, so a changed text
    /// fails the run only under [`crate::compat::Policy::error_text_matters`].
    ErrorText,
    /// Reported for the record (versions, settings, calls whose refusal the clients ignore);
    /// never fails the run, except the eviction-policy warning.
    Info,
}

impl Weight {
    pub fn name(self) -> &'static str {
        match self {
            Weight::Behaviour => "behaviour",
            Weight::ErrorText => "error-text",
            Weight::Info => "info",
        }
    }
}
