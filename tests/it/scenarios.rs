//! Every shipped scenario validates; every invalid fixture fails with the message it expects.

use crate::support::*;

fn toml_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            toml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn every_shipped_scenario_validates() {
    let mut files = vec![];
    toml_files(&repo_root().join("scenarios"), &mut files);
    assert!(files.len() >= 3, "expected scenarios, found {files:?}");
    for f in &files {
        if let Err(d) = valkey_chaos::scenario::load_plain(f) {
            panic!("{} does not validate:\n{d}", f.display());
        }
    }
}

/// Each fixture starts with `# expect: <file>:<line>:<col>: <message start>` lines, one per problem.
#[test]
fn invalid_fixtures_report_every_problem_with_position() {
    let mut files = vec![];
    toml_files(&repo_root().join("tests/fixtures/invalid"), &mut files);
    assert!(files.len() >= 4);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let expected: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(str::to_string)
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no # expect: lines",
            f.display()
        );
        let d = match valkey_chaos::scenario::load_plain(&f) {
            Err(valkey_chaos::scenario::LoadError::Scenario(d)) => d,
            other => panic!(
                "{}: fixture must fail to compile, got {other:?}",
                f.display()
            ),
        };
        let got: Vec<String> =
            d.0.iter()
                .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
                .collect();
        assert_eq!(got.len(), expected.len(), "{}: got {got:#?}", f.display());
        for e in &expected {
            assert!(
                got.iter().any(|g| g.starts_with(e.as_str())),
                "{}: expected {e:?} in {got:#?}",
                f.display()
            );
        }
        assert!(
            d.0.iter().all(|d| d.hint.is_some()),
            "{}: every problem needs a hint: {d}",
            f.display()
        );
    }
}

#[test]
fn validate_command_prints_file_line_col() {
    let f = repo_root().join("tests/fixtures/invalid/typos.toml");
    let o = agent(
        &["validate", f.to_str().unwrap()],
        std::time::Duration::from_secs(20),
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("typos.toml:8:1: unknown key `workload.clinets`"),
        "{err}"
    );
    assert!(err.contains("hint: did you mean `clients`?"), "{err}");
}
