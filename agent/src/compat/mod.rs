//! Phase 1 of the migration as a command: probe, on a candidate server (and optionally on a
//! baseline), each protocol feature the ECHO stack's clients rely on (redis-py 5.0.6, Dramatiq's
//! broker scripts, the locks, the rate limiters, cross-DB pub/sub) and what a managed Valkey 8+
//! answers differently (its name in HELLO, INFO and error texts, the Lua API, refused commands),
//! as named checks with a short observed value, then compare the two columns.
//!
//! - [`probes`] opens the session against one server and runs every [`Check`];
//! - [`judge`] pairs baseline and candidate into [`Row`]s and decides which ones matter;
//! - [`render`] turns a [`Report`] into the text table or JSON.
//!
//! The types they share are leaf files of their own, which those three import and this file
//! re-exports: `check.rs` (every [`Check`]), `weight.rs`, `outcome.rs` (what a check observed),
//! `row.rs`, `policy.rs`, `report.rs`, `options.rs` and `error.rs`.
//!
//! A probe never stops the others: a failed command is that check's outcome, and a command the
//! target refuses (`unknown command` after `rename-command`, `NOPERM`, a provider's block list) is
//! [`Outcome::Forbidden`], not a failure. Every key lives under [`KEY_PREFIX`] plus a per-run
//! nonce and is deleted at the end. Scripts stay in the script cache (`SCRIPT FLUSH` is never
//! sent: it would hit the application's scripts too).
//!
//! One probe stalls the server on purpose: `busy script error` runs a script that spins until
//! `SCRIPT KILL` (bounded by the script's own clock) so a third connection reads the `-BUSY` text.
//! Where `CONFIG SET` works it lowers `busy-reply-threshold` to 100 ms for that moment and
//! restores it; where `CONFIG` is refused it waits out the default 5 s. `--no-stall` skips it.
//! `-LOADING` and `-MISCONF` are not provoked: a server only loads at start-up or during a full
//! resync (`DEBUG RELOAD` would block and reload the whole dataset), and `MISCONF` needs a failed
//! `BGSAVE`, which refuses every write on the server; both rows say so.

mod check;
mod error;
mod judge;
mod options;
mod outcome;
mod policy;
mod probes;
mod render;
mod report;
mod row;
mod weight;

use crate::plan::provider::Provider;
use crate::valkey::target::TargetUrl;

pub use check::Check;
pub use error::CompatError;
pub use judge::compare;
pub use options::Options;
pub use outcome::{Outcome, Probe, Refusal};
pub use policy::Policy;
pub use probes::{probe, KEY_PREFIX, UNPACK_ELEMENTS};
pub use report::{Report, Side};
pub use row::{Row, Status};
pub use weight::Weight;

/// Probe the candidate (and the baseline first, when given) and compare them.
pub async fn run(
    candidate: &str,
    baseline: Option<&str>,
    opts: &Options,
) -> Result<Report, CompatError> {
    let mut curl = TargetUrl::parse(candidate).map_err(CompatError::Usage)?;
    if curl.password.is_none() {
        curl.password = opts.candidate_password.clone();
    }
    let burl = baseline
        .map(TargetUrl::parse)
        .transpose()
        .map_err(CompatError::Usage)?;
    let b = match &burl {
        Some(u) => Some(probe(u, Provider::detect(&u.host), opts, "baseline").await?),
        None => None,
    };
    let cprov = opts.provider.or_else(|| Provider::detect(&curl.host));
    let c = probe(&curl, cprov, opts, "candidate").await?;
    let rows = compare(
        b.as_ref().map(|s| s.probes.as_slice()),
        &c.probes,
        opts.policy,
    );
    Ok(Report {
        baseline: b,
        candidate: c,
        rows,
        policy: opts.policy,
    })
}
