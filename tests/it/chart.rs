//! The Helm chart in `deploy/` proven without a cluster: every committed rendering and fresh
//! `helm template` renderings of several value combinations validate against the Kubernetes
//! OpenAPI schemas (strict: unknown fields rejected) of the oldest release the chart supports and
//! of the newest the validator knows; the validator is shown to reject broken manifests; and the
//! chart's `values.schema.json` makes Helm itself refuse bad values, naming the field.
//! (The drift check, committed rendering vs chart, is in `shard.rs`.)

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::support::*;

/// The newest Kubernetes release the pinned `kubernetes-validate` (`.ci/setup`) has schemas for.
const CURRENT_KUBERNETES: &str = "1.37.0";

fn chart_dir() -> PathBuf {
    repo_root().join("deploy/helm/valkey-chaos")
}

/// `helm`: `$HELM`, else the pinned `.tools/bin/helm` set-up installs, else `helm` on PATH. Fails
/// (never skips) when none runs.
pub fn helm() -> PathBuf {
    let candidates: Vec<PathBuf> = std::env::var_os("HELM")
        .map(PathBuf::from)
        .into_iter()
        .chain([repo_root().join(".tools/bin/helm"), PathBuf::from("helm")])
        .collect();
    for c in &candidates {
        if Command::new(c)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c.clone();
        }
    }
    panic!("no working helm in {candidates:?}: `cargo xtask setup` installs .tools/bin/helm (or set HELM)")
}

/// `helm template chaos <chart> --namespace staging-chaos ARGS…`.
fn helm_template(args: &[&str]) -> Output {
    Command::new(helm())
        .args(["template", "chaos"])
        .arg(chart_dir())
        .args(["--namespace", "staging-chaos"])
        .args(args)
        .output()
        .expect("run helm template")
}

/// The oldest Kubernetes the chart declares (`kubeVersion: ">=1.29.0-0"` → "1.29.0").
fn oldest_kubernetes() -> String {
    let chart = std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap();
    let line = chart
        .lines()
        .find_map(|l| l.strip_prefix("kubeVersion:"))
        .expect("Chart.yaml declares kubeVersion");
    let v = line.trim().trim_matches('"').trim_start_matches(">=");
    let v = v.split('-').next().unwrap();
    assert_eq!(v.split('.').count(), 3, "kubeVersion {line}");
    v.to_string()
}

/// `kubernetes-validate --strict` of `files` against Kubernetes `version`.
fn validate(version: &str, files: &[PathBuf]) -> Output {
    let bin = repo_root().join(".tools/venv/bin/kubernetes-validate");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo xtask setup`",
        bin.display()
    );
    Command::new(bin)
        .args(["--strict", "--kubernetes-version", version])
        .args(files)
        .output()
        .expect("run kubernetes-validate")
}

/// Every resource of `files` is valid for the oldest supported and the current Kubernetes.
fn assert_valid(files: &[PathBuf]) {
    for version in [oldest_kubernetes(), CURRENT_KUBERNETES.to_string()] {
        let o = validate(&version, files);
        let log = show(&o);
        assert_eq!(o.status.code(), Some(0), "Kubernetes {version}:\n{log}");
        assert!(!log.contains("ERROR"), "{log}");
        // Each file's Jobs were looked at, not skipped as unknown.
        let checked = log.matches("passed for resource job/").count();
        assert!(checked >= files.len(), "{log}");
    }
}

#[test]
fn committed_renderings_validate_against_kubernetes_schemas() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("deploy/helm/rendered"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    assert_valid(&files);
}

#[test]
fn fresh_renderings_of_other_values_validate_too() {
    let dir = scratch("chart-render");
    let combos: &[(&str, &[&str])] = &[
        (
            "defaults",
            &["--set", "target.url=redis://valkey.staging.svc:6379"],
        ),
        (
            "limits-and-scheduling",
            &[
                "--set",
                "target.url=rediss://valkey.staging.svc:6380/0?insecure=true",
                "--set",
                "target.password=secret",
                "--set",
                "target.tlsInsecure=true",
                "--set",
                "agents=1",
                "--set",
                "activeDeadlineSeconds=3600",
                "--set",
                "ttlSecondsAfterFinished=600",
                "--set",
                "spreadAcrossNodes=false",
                "--set",
                "nodeSelector.pool=load",
                "--set",
                "tolerations[0].key=dedicated",
                "--set",
                "tolerations[0].operator=Exists",
                "--set",
                "imagePullSecrets[0].name=regcred",
                "--set",
                "podLabels.team=platform",
                "--set",
                "otlp.endpoint=http://otel:4318",
                "--set",
                "otlp.protocol=http",
                "--set",
                "extraArgs={--trace-sample,0.001}",
            ],
        ),
        (
            "existing-claim-no-merge",
            &[
                "--set",
                "target.existingSecret=valkey-staging",
                "--set",
                "scenarios.existingConfigMap=chaos-scenarios",
                "--set",
                "results.existingClaim=shared-results",
                "--set",
                "merge.enabled=false",
                "--set",
                "fullnameOverride=chaos",
            ],
        ),
        (
            "emptydir",
            &[
                "--set",
                "target.existingSecret=valkey-staging",
                "--set",
                "results.persistence=emptyDir",
                "--set",
                "seed=42",
                "--set",
                "duration=90s",
            ],
        ),
    ];
    let mut files = vec![];
    for (name, args) in combos {
        let o = helm_template(args);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", show(&o));
        let p = dir.join(format!("{name}.yaml"));
        std::fs::write(&p, &o.stdout).unwrap();
        files.push(p);
    }
    // The values reached the manifests (so the validation above saw them).
    let limits = std::fs::read_to_string(&files[1]).unwrap();
    for want in [
        "activeDeadlineSeconds: 3600",
        "ttlSecondsAfterFinished: 600",
        "key: dedicated",
        "- name: regcred",
    ] {
        assert!(limits.contains(want), "{want} in\n{limits}");
    }
    assert!(!std::fs::read_to_string(&files[0])
        .unwrap()
        .contains("activeDeadlineSeconds"));
    assert_valid(&files);
}

/// The agents Job of the default rendering, as its own file.
fn agents_job() -> String {
    let text =
        std::fs::read_to_string(repo_root().join("deploy/helm/rendered/default.yaml")).unwrap();
    text.split("\n---\n")
        .find(|d| d.contains("\nkind: Job\n") && d.contains("-agents\n"))
        .expect("the agents Job")
        .to_string()
}

#[test]
fn the_validator_rejects_broken_manifests() {
    let dir = scratch("chart-broken");
    let job = agents_job();
    let write = |name: &str, text: String| -> PathBuf {
        let p: PathBuf = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let good = write("good.yaml", job.clone());
    let image = "image: valkey-chaos:0.1.0\n";
    assert!(job.contains(image), "{job}");
    let cases: [(PathBuf, &str); 3] = [
        (
            write("image-number.yaml", job.replacen(image, "image: 5\n", 1)),
            "spec.template.spec.containers.0.image: 5 is not of type",
        ),
        (
            write(
                "unknown-field.yaml",
                job.replacen(
                    "  completionMode: Indexed\n",
                    "  completionMode: Indexed\n  completionMod: Indexed\n",
                    1,
                ),
            ),
            "'completionMod' was unexpected",
        ),
        (
            write(
                "missing-containers.yaml",
                job.replacen("      containers:\n", "      containerz:\n", 1),
            ),
            "containers",
        ),
    ];
    let o = validate(CURRENT_KUBERNETES, std::slice::from_ref(&good));
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    for (file, says) in &cases {
        let o = validate(CURRENT_KUBERNETES, std::slice::from_ref(file));
        let log = show(&o);
        assert_eq!(o.status.code(), Some(1), "{}: {log}", file.display());
        assert!(
            log.contains(says),
            "{}: {says:?} not in {log}",
            file.display()
        );
    }
}

/// Helm's own schema error names the field: `target.url` (Helm 3) or `/target/url` (Helm 4).
fn assert_refused(args: &[&str], field: &str) {
    let mut all = vec!["--set", "target.url=redis://valkey.staging.svc:6379"];
    all.extend(args);
    let o = helm_template(&all);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{args:?} rendered: {}", show(&o));
    assert!(
        err.contains("schema"),
        "{args:?}: not Helm's schema check:\n{err}"
    );
    let slashed = format!("/{}", field.replace('.', "/"));
    assert!(
        err.contains(field) || err.contains(&slashed),
        "{args:?}: the error does not name {field}:\n{err}"
    );
}

#[test]
fn values_schema_refuses_bad_values_and_names_the_field() {
    assert_refused(&["--set", "agents=0"], "agents");
    assert_refused(&["--set", "agents=-1"], "agents");
    assert_refused(&["--set", "agents=two"], "agents");
    assert_refused(
        &["--set", "target.url=valkey.staging.svc:6379"],
        "target.url",
    );
    assert_refused(&["--set", "target.url=http://valkey:6379"], "target.url");
    assert_refused(
        &["--set", "results.persistence=hostPath"],
        "results.persistence",
    );
    assert_refused(
        &["--set", "results.accessMode=ReadWriteAll"],
        "results.accessMode",
    );
    assert_refused(&["--set", "duration=soon"], "duration");
    assert_refused(&["--set", "seed=-1"], "seed");
    assert_refused(&["--set", "otlp.endpoint=otel:4317"], "otlp.endpoint");
    assert_refused(&["--set", "runId=a/b"], "runId");
    assert_refused(
        &["--set", "activeDeadlineSeconds=-5"],
        "activeDeadlineSeconds",
    );
    // A misspelt key is refused rather than silently ignored.
    assert_refused(&["--set", "agent=3"], "agent");
    assert_refused(&["--set", "target.existingsecret=x"], "existingsecret");
    assert_refused(
        &["--set-string", "scenarios.files.notes\\.txt=x"],
        "notes.txt",
    );

    // The defaults (with a target) and the documented alternatives render.
    for args in [
        &["--set", "target.url=redis://valkey.staging.svc:6379"][..],
        &[
            "--set",
            "target.existingSecret=s",
            "--set",
            "seed=7",
            "--set",
            "duration=1h 30m",
        ],
        &[
            "--set",
            "target.existingSecret=s",
            "--set-string",
            "seed=7",
            "--set",
            "otlp.protocol=grpc",
        ],
    ] {
        let o = helm_template(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", show(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("kind: Job"));
    }
}

/// The chart directory has what `helm lint` wants; lint runs the schema on the defaults too.
#[test]
fn helm_lint_passes() {
    let o = Command::new(helm())
        .arg("lint")
        .arg(chart_dir())
        .args([
            "--strict",
            "--set",
            "target.url=redis://valkey.staging.svc:6379",
        ])
        .output()
        .expect("helm lint");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}
