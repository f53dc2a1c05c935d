//! Baseline against candidate: one [`Row`] per check, its status, and whether it matters.
//!
//! What matters (fails the run, exit 1) is only what breaks ECHO's clients: a behaviour check
//! that fails or is refused on the candidate where the baseline works (or with no baseline), and
//! a risky setting the baseline does not have. Changed error texts matter only under
//! [`Policy::error_text_matters`]: redis-py 5.0.6, Dramatiq and ECHO's code match error codes
//! (`BUSY`, `LOADING`, `NOSCRIPT`), never the words after them.

use super::outcome::{Outcome, Probe, Refusal};
use super::policy::Policy;
use super::row::{Row, Status};
use super::weight::Weight;

/// Pair the columns and judge each row.
pub fn compare(baseline: Option<&[Probe]>, candidate: &[Probe], policy: Policy) -> Vec<Row> {
    candidate
        .iter()
        .map(|c| {
            let b = baseline.and_then(|bs| bs.iter().find(|b| b.check == c.check));
            judge(b, c, policy)
        })
        .collect()
}

/// The refusal in one line, with the provider's way out when it has one.
fn refused(r: &Refusal) -> String {
    let reply: String = r.reply.trim_end().chars().take(80).collect();
    let mut s = format!("forbidden by the target: {} ({reply})", r.command);
    if let Some(p) = r.provider {
        if let Some(w) = p.way_out(&r.command) {
            s.push_str("; ");
            s.push_str(w);
        } else if p.forbids(&r.command) {
            s.push_str(&format!("; on {p}'s list of refused commands"));
        }
    }
    s
}

fn judge(b: Option<&Probe>, c: &Probe, policy: Policy) -> Row {
    use Outcome as O;
    let weight = c.check.weight();
    let counts = policy.counts(weight);
    let (mut status, mut matters, mut note) = match b.map(|b| &b.outcome) {
        None => match &c.outcome {
            O::Ok(_) => (Status::Ok, false, None),
            O::Skipped(_) => (Status::Skipped, false, None),
            O::Failed(e) => (
                Status::Failed,
                counts,
                Some(format!("fails on the candidate: {e}")),
            ),
            O::Forbidden(r) => (Status::Forbidden, counts, Some(refused(r))),
        },
        Some(bo) => match (bo, &c.outcome) {
            (O::Ok(x), O::Ok(y)) if x == y => (Status::Same, false, None),
            (O::Ok(x), O::Ok(y)) => {
                // A changed value is information, except an error text under the policy.
                let text = weight == Weight::ErrorText;
                (
                    Status::Different,
                    text && counts,
                    text.then(|| format!("the text changed: {x:?} became {y:?}")),
                )
            }
            (O::Ok(_), O::Failed(e)) => (
                Status::Failed,
                counts,
                Some(format!(
                    "works on the baseline, fails on the candidate: {e}"
                )),
            ),
            (O::Forbidden(x), O::Forbidden(y)) => (
                if x.command == y.command {
                    Status::Same
                } else {
                    Status::Different
                },
                false,
                None,
            ),
            (_, O::Forbidden(r)) => (Status::Forbidden, counts, Some(refused(r))),
            (O::Failed(x), O::Failed(y)) => (
                if x == y {
                    Status::Same
                } else {
                    Status::Different
                },
                false,
                None,
            ),
            (O::Failed(_) | O::Forbidden(_), O::Ok(_)) => (Status::Different, false, None),
            (_, O::Failed(e)) => (
                Status::Failed,
                counts,
                Some(format!("fails on the candidate: {e}")),
            ),
            (_, O::Skipped(_)) | (O::Skipped(_), _) => (Status::Skipped, false, None),
        },
    };
    if !matters && matches!(status, Status::Failed | Status::Forbidden) {
        if let Some(n) = &mut note {
            n.push_str("; informational, does not fail the run");
        }
    }
    if let Some(w) = &c.warning {
        if b.and_then(|b| b.warning.as_ref()).is_none() {
            matters = true;
            note = Some(w.clone());
            status = if b.is_some() {
                Status::Different
            } else {
                Status::Warning
            };
        }
    }
    Row {
        check: c.check,
        name: c.check.name(),
        weight,
        baseline: b.map(|b| b.outcome.clone()),
        candidate: c.outcome.clone(),
        status,
        matters,
        note,
        explanation: c.check.why(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Check;
    use super::*;
    use crate::plan::provider::Provider;

    fn p(check: Check, outcome: Outcome) -> Probe {
        Probe {
            check,
            outcome,
            warning: None,
        }
    }
    fn ok(v: &str) -> Outcome {
        Outcome::Ok(v.into())
    }
    fn failed(v: &str) -> Outcome {
        Outcome::Failed(v.into())
    }
    fn forbidden(cmd: &str, provider: Option<Provider>) -> Outcome {
        Outcome::Forbidden(Refusal {
            command: cmd.into(),
            provider,
            reply: format!("ERR unknown command '{}'", cmd.to_lowercase()),
        })
    }
    fn verdicts(rows: &[Row]) -> Vec<(&'static str, &'static str, bool)> {
        rows.iter()
            .map(|r| (r.name, r.status.name(), r.matters))
            .collect()
    }

    #[test]
    fn judges_rows() {
        // Eval, SetNxPx, Undeclared, Scan: behaviour; InfoRedisVersion, ClientSetinfo: info.
        let base = vec![
            p(Check::Eval, ok("x")),
            p(Check::SetNxPx, ok("x")),
            p(Check::Undeclared, failed("ERR")),
            p(Check::InfoRedisVersion, ok("7.0")),
            p(Check::ClientSetinfo, ok("x")),
            p(Check::Scan, failed("ERR")),
        ];
        let cand = vec![
            p(Check::Eval, ok("x")),
            p(Check::SetNxPx, failed("ERR nope")),
            p(Check::Undeclared, ok("x")),
            p(Check::InfoRedisVersion, ok("9.1")),
            p(Check::ClientSetinfo, failed("ERR")),
            p(Check::Scan, failed("ERR")),
        ];
        let rows = compare(Some(&base), &cand, Policy::default());
        assert_eq!(
            verdicts(&rows),
            [
                ("eval", "same", false),
                ("set nx px", "failed", true),
                ("eval undeclared keys", "different", false),
                ("info redis_version", "different", false),
                ("client setinfo", "failed", false),
                ("scan match count", "same", false),
            ]
        );
        assert!(rows[1]
            .note
            .as_deref()
            .unwrap()
            .contains("works on the baseline"));
        assert!(rows[4]
            .note
            .as_deref()
            .unwrap()
            .ends_with("informational, does not fail the run"));
        // Every row carries its one-line explanation.
        assert!(rows.iter().all(|r| !r.explanation.is_empty()));
        // Without a baseline any behaviour failure matters, info rows never do.
        let rows = compare(None, &cand, Policy::default());
        assert_eq!(rows[1].status, Status::Failed);
        assert!(rows[1].matters);
        assert_eq!((rows[4].status, rows[4].matters), (Status::Failed, false));
        assert_eq!((rows[0].status, rows[0].matters), (Status::Ok, false));
    }

    #[test]
    fn forbidden_is_its_own_status_and_matters_only_for_behaviour() {
        let aiven = Some(Provider::Aiven);
        let base = vec![
            p(Check::KeysInScript, ok("3 keys")),
            p(Check::ClientSetinfo, ok("OK")),
            p(Check::ConfigTimeout, ok("0")),
            p(Check::Keys, forbidden("KEYS", None)),
            p(Check::ConfigMaxclients, forbidden("CONFIG", None)),
        ];
        let cand = vec![
            p(Check::KeysInScript, forbidden("KEYS", None)),
            p(Check::ClientSetinfo, forbidden("CLIENT SETINFO", None)),
            p(Check::ConfigTimeout, forbidden("CONFIG", aiven)),
            p(Check::Keys, ok("3 keys")),
            p(Check::ConfigMaxclients, forbidden("CONFIG", aiven)),
        ];
        let rows = compare(Some(&base), &cand, Policy::default());
        assert_eq!(
            verdicts(&rows),
            [
                ("keys in script", "forbidden", true),
                ("client setinfo", "forbidden", false),
                ("config timeout", "forbidden", false),
                ("keys", "different", false),
                ("config maxclients", "same", false),
            ]
        );
        let n = rows[0].note.as_deref().unwrap();
        assert!(
            n.starts_with("forbidden by the target: KEYS (ERR unknown"),
            "{n}"
        );
        // The provider's way out follows a refusal of an admin command on its list.
        let n = rows[2].note.as_deref().unwrap();
        assert!(n.contains("advanced configuration"), "{n}");
        assert_eq!(rows[2].candidate.cell(), "forbidden: CONFIG (Aiven)");
        assert_eq!(rows[0].candidate.cell(), "forbidden: KEYS");
        // A refusal is never a failure, with or without a baseline.
        let rows = compare(None, &cand, Policy::default());
        assert_eq!(
            (
                rows[0].status,
                rows[0].matters,
                rows[1].status,
                rows[1].matters
            ),
            (Status::Forbidden, true, Status::Forbidden, false)
        );
    }

    #[test]
    fn error_texts_matter_only_under_the_policy() {
        let base = [p(
            Check::BusyScript,
            ok("BUSY Redis is busy running a script."),
        )];
        let cand = [p(
            Check::BusyScript,
            ok("BUSY Valkey is busy running a script."),
        )];
        let r = &compare(Some(&base), &cand, Policy::default())[0];
        assert_eq!((r.status, r.matters), (Status::Different, false));
        assert!(r.explanation.contains("Redis is busy"), "{}", r.explanation);
        let strict = Policy {
            error_text_matters: true,
        };
        let r = &compare(Some(&base), &cand, strict)[0];
        assert_eq!((r.status, r.matters), (Status::Different, true));
        assert!(r.note.as_deref().unwrap().contains("Valkey is busy"));
        // The same text, or a text not provoked, never matters.
        let r = &compare(Some(&base), &base, strict)[0];
        assert_eq!((r.status, r.matters), (Status::Same, false));
        let skipped = [p(Check::Loading, Outcome::Skipped("not provoked".into()))];
        let r = &compare(Some(&skipped), &skipped, strict)[0];
        assert_eq!((r.status, r.matters), (Status::Skipped, false));
        // A behaviour value that differs is information, whatever the policy.
        let r = &compare(
            Some(&[p(Check::Hello3, ok("map, server=redis 7.0.15"))]),
            &[p(Check::Hello3, ok("map, server=valkey 8.1.8"))],
            strict,
        )[0];
        assert_eq!((r.status, r.matters), (Status::Different, false));
    }

    #[test]
    fn eviction_policy_warning_matters_unless_the_baseline_has_it_too() {
        let mut c = p(Check::ConfigMaxmemoryPolicy, ok("allkeys-lru"));
        c.warning = Some("evicts".into());
        let b = p(Check::ConfigMaxmemoryPolicy, ok("noeviction"));
        let pol = Policy::default();
        let r = compare(
            Some(std::slice::from_ref(&b)),
            std::slice::from_ref(&c),
            pol,
        );
        assert_eq!((r[0].status, r[0].matters), (Status::Different, true));
        let r = compare(None, std::slice::from_ref(&c), pol);
        assert_eq!((r[0].status, r[0].matters), (Status::Warning, true));
        let r = compare(
            Some(std::slice::from_ref(&c)),
            std::slice::from_ref(&c),
            pol,
        );
        assert_eq!((r[0].status, r[0].matters), (Status::Same, false));
    }
}
