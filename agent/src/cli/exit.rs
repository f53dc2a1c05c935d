//! How a command ended, and the one mapping from that to the process exit code: handlers return
//! `Result<Outcome, CliError>` and never name a number.

use crate::scenario::{Diagnostics, LoadError};
use crate::valkey::embedded::VersionError;

/// The process exit codes, ordered by severity: a command that goes on past a problem (several
/// scenarios, several files) ends with the worst it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Every check and threshold passed (also `--help` and `--version`).
    Pass = 0,
    /// A check or threshold failed.
    Failed = 1,
    /// A usage or scenario error: bad arguments, a scenario that does not compile, a run
    /// refused as asked.
    Usage = 2,
    /// The target or the run failed: unreachable, refused us, a missing binary, an unwritable
    /// `--out`.
    Runtime = 3,
    /// The run cannot vouch for anything: interrupted (Ctrl-C, SIGTERM), its drain cut short, a
    /// fault not healed, nothing checked (verdict `incomplete`). Never a pass; not a failed check.
    Incomplete = 4,
}

/// The code of a second Ctrl-C, which quits at once without healing or writing: what a shell
/// reports for a process killed by SIGINT (128 + 2).
pub const QUIT_AT_ONCE: i32 = 130;

impl Exit {
    /// The number the process exits with.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// clap's own exits: `--help` and `--version` print on stdout and pass; anything else is a
    /// usage error.
    pub fn of_clap(e: &clap::Error) -> Exit {
        if e.use_stderr() {
            Exit::Usage
        } else {
            Exit::Pass
        }
    }
}

/// What a command that ran to its end found: its verdict, and the errors it carried on past
/// (printed where they happened, e.g. one scenario of several that could not run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use]
pub struct Outcome {
    /// The worst verdict seen: none (pass), a failed check, an incomplete run.
    worst: Judged,
    carried: Option<ErrorKind>,
}

/// A verdict, ordered by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
enum Judged {
    #[default]
    Pass,
    Failed,
    Incomplete,
}

impl Outcome {
    /// Every check passed.
    pub const PASS: Outcome = Outcome {
        worst: Judged::Pass,
        carried: None,
    };

    /// The verdict of a judged report: pass, or a check failed.
    pub fn judged(passed: bool) -> Outcome {
        Outcome {
            worst: if passed { Judged::Pass } else { Judged::Failed },
            carried: None,
        }
    }

    /// A run's verdict: pass, fail, or incomplete.
    pub fn verdict(v: crate::summary::Verdict) -> Outcome {
        use crate::summary::Verdict;
        Outcome {
            worst: match v {
                Verdict::Pass => Judged::Pass,
                Verdict::Fail => Judged::Failed,
                Verdict::Incomplete => Judged::Incomplete,
            },
            carried: None,
        }
    }

    /// Fold in one item of several: its verdict, or its error, printed now because the command
    /// goes on with the next item.
    pub fn and(self, item: Result<Outcome, CliError>) -> Outcome {
        match item {
            Ok(o) => Outcome {
                worst: self.worst.max(o.worst),
                carried: self.carried.max(o.carried),
            },
            Err(e) => {
                e.print();
                Outcome {
                    carried: self.carried.max(Some(e.kind())),
                    ..self
                }
            }
        }
    }

    fn exit(self) -> Exit {
        let judged = match self.worst {
            Judged::Pass => Exit::Pass,
            Judged::Failed => Exit::Failed,
            Judged::Incomplete => Exit::Incomplete,
        };
        // An error carried past outranks a failed check; an incomplete run outranks everything.
        match self.carried {
            Some(kind) => kind.exit().max(judged),
            None => judged,
        }
    }
}

/// Which kind of error stopped a command (or one item of it), ordered by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The command line or the scenario is wrong (exit 2).
    Usage,
    /// The target, the machine or the run failed (exit 3).
    Runtime,
}

impl ErrorKind {
    fn exit(self) -> Exit {
        match self {
            ErrorKind::Usage => Exit::Usage,
            ErrorKind::Runtime => Exit::Runtime,
        }
    }
}

/// Why a command stopped without a verdict. Printed once, at the edge, as `error: {:#}` (a
/// scenario's diagnostics as they are).
#[derive(Debug)]
pub enum CliError {
    /// Bad arguments, or a run refused as asked (exit 2).
    Usage(anyhow::Error),
    /// A scenario that does not compile: `file:line:col` diagnostics (exit 2).
    Scenario(Diagnostics),
    /// The target, the machine or the run failed (exit 3).
    Runtime(anyhow::Error),
}

impl CliError {
    /// A usage error with this message.
    pub fn usage(msg: impl std::fmt::Display) -> CliError {
        CliError::Usage(anyhow::anyhow!("{msg}"))
    }

    /// A runtime error with this message.
    pub fn runtime(msg: impl std::fmt::Display) -> CliError {
        CliError::Runtime(anyhow::anyhow!("{msg}"))
    }

    /// The same error with `what` in front of its message (`error: what: message`); a
    /// scenario's diagnostics already name their file.
    pub fn context(self, what: impl std::fmt::Display + Send + Sync + 'static) -> CliError {
        match self {
            CliError::Usage(e) => CliError::Usage(e.context(what)),
            CliError::Runtime(e) => CliError::Runtime(e.context(what)),
            d @ CliError::Scenario(_) => d,
        }
    }

    /// Which exit it leads to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CliError::Usage(_) | CliError::Scenario(_) => ErrorKind::Usage,
            CliError::Runtime(_) => ErrorKind::Runtime,
        }
    }

    /// Print it on stderr.
    pub fn print(&self) {
        match self {
            CliError::Usage(e) | CliError::Runtime(e) => eprintln!("error: {e:#}"),
            CliError::Scenario(d) => eprintln!("{d}"),
        }
    }
}

impl From<LoadError> for CliError {
    fn from(e: LoadError) -> CliError {
        match e {
            LoadError::Scenario(d) => CliError::Scenario(d),
            LoadError::Flag(m) => CliError::usage(m),
        }
    }
}

impl From<crate::run::RunError> for CliError {
    fn from(e: crate::run::RunError) -> CliError {
        use crate::run::RunError;
        match e {
            RunError::Refused(_) => CliError::Usage(e.into()),
            RunError::Target(_) | RunError::Runtime(_) => CliError::Runtime(e.into()),
        }
    }
}

impl From<crate::compat::CompatError> for CliError {
    fn from(e: crate::compat::CompatError) -> CliError {
        use crate::compat::CompatError;
        match e {
            CompatError::Usage(_) => CliError::Usage(e.into()),
            CompatError::Target(_) => CliError::Runtime(e.into()),
        }
    }
}

impl From<crate::verify::VerifyError> for CliError {
    fn from(e: crate::verify::VerifyError) -> CliError {
        use crate::verify::VerifyError;
        match e {
            VerifyError::Usage(_) => CliError::Usage(e.into()),
            VerifyError::Target(_) => CliError::Runtime(e.into()),
        }
    }
}

impl From<crate::drain::DrainError> for CliError {
    fn from(e: crate::drain::DrainError) -> CliError {
        use crate::drain::DrainError;
        match e {
            DrainError::Usage(_) => CliError::Usage(e.into()),
            DrainError::Target(_) | DrainError::Runtime(_) => CliError::Runtime(e.into()),
        }
    }
}

impl From<crate::merge::MergeError> for CliError {
    /// Inputs `merge` cannot use are the command line's fault (a shard that never wrote its
    /// output is judged as missing instead, exit 1).
    fn from(e: crate::merge::MergeError) -> CliError {
        CliError::Usage(e.into())
    }
}

impl From<crate::plugin::PluginError> for CliError {
    /// A plugin that does not load or breaks the contract is the command line's fault.
    fn from(e: crate::plugin::PluginError) -> CliError {
        CliError::Usage(e.into())
    }
}

impl From<VersionError> for CliError {
    fn from(e: VersionError) -> CliError {
        match e {
            VersionError::Unknown(_) => CliError::Usage(e.into()),
            VersionError::Missing(_) => CliError::Runtime(e.into()),
        }
    }
}

/// Print what stopped the command, if anything, and choose the exit code: the one place that
/// turns how a command ended into a number.
pub fn exit(ended: Result<Outcome, CliError>) -> Exit {
    match ended {
        Ok(o) => o.exit(),
        Err(e) => {
            e.print();
            e.kind().exit()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage() -> CliError {
        CliError::usage("bad flag")
    }

    fn runtime() -> CliError {
        CliError::runtime("unreachable")
    }

    #[test]
    fn every_ending_has_its_exit_code() {
        let cases: Vec<(Result<Outcome, CliError>, i32)> = vec![
            (Ok(Outcome::PASS), 0),
            (Ok(Outcome::judged(true)), 0),
            (Ok(Outcome::judged(false)), 1),
            (Err(usage()), 2),
            (Err(CliError::Scenario(Diagnostics(vec![]))), 2),
            (Err(runtime()), 3),
            (Ok(Outcome::verdict(crate::summary::Verdict::Incomplete)), 4),
            (Ok(Outcome::verdict(crate::summary::Verdict::Fail)), 1),
            (Ok(Outcome::verdict(crate::summary::Verdict::Pass)), 0),
        ];
        for (ended, code) in cases {
            let shown = format!("{ended:?}");
            assert_eq!(exit(ended).code(), code, "{shown}");
        }
    }

    #[test]
    fn several_items_end_with_the_worst() {
        let pass = || Ok(Outcome::PASS);
        let failed = || Ok(Outcome::judged(false));
        let incomplete = || Ok(Outcome::verdict(crate::summary::Verdict::Incomplete));
        let cases: Vec<(Vec<Result<Outcome, CliError>>, Exit)> = vec![
            (vec![], Exit::Pass),
            (vec![pass(), pass()], Exit::Pass),
            (vec![pass(), failed()], Exit::Failed),
            (vec![failed(), Err(usage())], Exit::Usage),
            (vec![Err(usage()), failed()], Exit::Usage),
            (vec![Err(runtime()), Err(usage()), failed()], Exit::Runtime),
            (vec![pass(), Err(runtime())], Exit::Runtime),
            (vec![failed(), incomplete()], Exit::Incomplete),
            (vec![incomplete(), Err(runtime())], Exit::Incomplete),
        ];
        for (items, want) in cases {
            let shown = format!("{items:?}");
            let o = items.into_iter().fold(Outcome::PASS, Outcome::and);
            assert_eq!(exit(Ok(o)), want, "{shown}");
        }
    }

    #[test]
    fn a_version_error_is_usage_only_when_the_version_is_unknown() {
        let unknown = CliError::from(VersionError::Unknown("7".into()));
        let missing = CliError::from(VersionError::Missing("no valkey-server".into()));
        assert_eq!(unknown.kind(), ErrorKind::Usage);
        assert_eq!(missing.kind(), ErrorKind::Runtime);
    }

    #[test]
    fn context_goes_in_front_of_the_message() {
        let e = CliError::from(crate::run::RunError::Target("unreachable".into())).context("smoke");
        match e {
            CliError::Runtime(e) => assert_eq!(format!("{e:#}"), "smoke: unreachable"),
            other => panic!("{other:?}"),
        }
    }
}
