//! The project's task runner (the "xtask" pattern): `cargo xtask TASK` through the aliases in
//! `.cargo/config.toml` (`cargo chaos`, `cargo suite`, …). Standard library only, so it compiles in
//! a second on a fresh clone; the `justfile` recipes are one-liners that call it.
//!
//! Every task prints its steps, runs them from the repository root with `.tools/bin` first in
//! PATH, and stops at the first failing step. Exit codes:
//! - the last step's exit code passes through unchanged (for `chaos`, `chaos-quick`, `bench` and
//!   `up` that is the agent's: 0 pass, 1 a check failed, 2 usage, 3 target/runtime);
//! - a failing earlier step ends the task with that step's code, except that in those agent tasks
//!   a failed preparation (set-up, plugin or agent build) exits 3, so it never reads as a failed
//!   gate;
//! - a child killed by a signal gives 128 + the signal number; a usage error of xtask itself, 2.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The tasks: name, arguments, one line of help. `--list` prints the names.
const TASKS: &[(&str, &str, &str)] = &[
    (
        "setup",
        "",
        "install valkey-server 9.x and 8.1, Debian's redis, helm, the Python venv and the wasm target under .tools/ (idempotent)",
    ),
    (
        "plugins",
        "",
        "build the example and fixture WASM plugins (plugins/target/wasm32-wasip2/release/*.wasm)",
    ),
    (
        "lint",
        "",
        "cargo fmt --check, clippy with warnings as errors (workspace and plugins), the module layering",
    ),
    (
        "test",
        "[CARGO_TEST_ARGS] [-- TEST_ARGS]",
        "every test against real servers; e.g. `test -- shard::` filters, `test -p valkey-chaos-tests --test it` narrows",
    ),
    (
        "chaos",
        "[TARGET] [-- RUN_ARGS]",
        "the cutover gate: scenarios/cutover/*.toml with faults; exit 0 = safe to cut over (TARGET: rediss://… for staging)",
    ),
    (
        "chaos-quick",
        "[TARGET] [-- RUN_ARGS]",
        "a one-minute smoke version of the gate: typical day, failover, latency, connection storm",
    ),
    (
        "bench",
        "[-- BENCH_ARGS]",
        "the agent against peers measured in the same run (redis-benchmark, redis-py, Python Dramatiq)",
    ),
    (
        "up",
        "[REPLICAS] [SENTINELS]",
        "a local topology for poking around (`up 1 3`), stopped with Ctrl-C",
    ),
    (
        "report-check",
        "[REPORT]",
        "render a report.html in headless Chromium (installed with apt-get if missing) into a .png; fail on console errors",
    ),
    ("ci", "", "what CI runs: setup, lint, test"),
];

/// The cutover gate's scenarios and arguments (glob patterns expanded here, sorted).
const CHAOS_GLOB: &str = "scenarios/cutover/*.toml";
const CHAOS_QUICK_GLOB: &str = "scenarios/cutover/0[1347]-*.toml";
/// The gate's scenarios for a target that grants no admin command, by the name they replace.
const MANAGED_DIR: &str = "scenarios/cutover/managed";

/// Why a task stopped: the exit code to give and what to say.
#[derive(Debug, PartialEq)]
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

type Result<T = ()> = std::result::Result<T, Failure>;

fn main() -> ExitCode {
    sigint::leave_to_children();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match Xtask::new().and_then(|mut x| x.main(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("xtask: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

struct Xtask {
    root: PathBuf,
    /// PATH for children: `.tools/bin` first.
    path: OsString,
    cargo: OsString,
    dry_run: bool,
    setup_done: bool,
    plugins_done: bool,
}

impl Xtask {
    fn new() -> Result<Xtask> {
        // tests/ is this package; the repository root is its parent.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .ok_or_else(|| Failure::usage("no repository root"))?
            .to_path_buf();
        let mut dirs = vec![root.join(".tools/bin")];
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let path = std::env::join_paths(dirs)
            .map_err(|e| Failure::usage(format!("cannot build PATH: {e}")))?;
        Ok(Xtask {
            root,
            path,
            cargo: std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
            dry_run: false,
            setup_done: false,
            plugins_done: false,
        })
    }

    fn main(&mut self, mut args: Vec<String>) -> Result {
        // `--dry-run` may come anywhere before a `--`: `cargo chaos --dry-run` prints the steps.
        let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
        let before = args.len();
        args = args
            .iter()
            .enumerate()
            .filter(|(i, a)| *i >= end || !matches!(a.as_str(), "-n" | "--dry-run"))
            .map(|(_, a)| a.clone())
            .collect();
        self.dry_run = args.len() < before;
        if let Some(flag) = args.first().filter(|a| a.starts_with('-')) {
            return match flag.as_str() {
                "--list" => {
                    for (name, _, _) in TASKS {
                        println!("{name}");
                    }
                    Ok(())
                }
                "-h" | "--help" => {
                    print!("{}", help());
                    Ok(())
                }
                other => Err(Failure::usage(format!(
                    "unknown option {other}\n{}",
                    help()
                ))),
            };
        }
        let Some(task) = args.first().cloned() else {
            print!("{}", help());
            return Ok(());
        };
        let rest = &args[1..];
        match task.as_str() {
            "help" => {
                print!("{}", help());
                Ok(())
            }
            "setup" => {
                no_args(&task, rest)?;
                self.setup()
            }
            "plugins" => {
                no_args(&task, rest)?;
                self.plugins()
            }
            "lint" => {
                no_args(&task, rest)?;
                self.lint()
            }
            "test" => self.test(rest),
            "chaos" => self.chaos(CHAOS_GLOB, &[], "out/chaos", rest),
            "chaos-quick" => self.chaos(
                CHAOS_QUICK_GLOB,
                &["--duration", "15s"],
                "out/chaos-quick",
                rest,
            ),
            "bench" => self.bench(rest),
            "up" => self.up(rest),
            "report-check" => self.report_check(rest),
            "ci" => {
                no_args(&task, rest)?;
                self.setup()?;
                self.lint()?;
                self.test(&[])
            }
            other => Err(Failure::usage(format!(
                "unknown task {other:?}\n{}",
                help()
            ))),
        }
    }

    // --- the tasks ---

    fn setup(&mut self) -> Result {
        if !self.setup_done {
            self.run(".", "bash", &[".ci/setup"])?;
            self.setup_done = true;
        }
        Ok(())
    }

    fn plugins(&mut self) -> Result {
        self.setup()?;
        if !self.plugins_done {
            self.cargo(
                "plugins",
                &["build", "--release", "--target", "wasm32-wasip2", "-q"],
            )?;
            self.plugins_done = true;
        }
        Ok(())
    }

    fn lint(&mut self) -> Result {
        self.cargo(".", &["fmt", "--all", "--", "--check"])?;
        self.cargo(
            ".",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "-q",
                "--",
                "-D",
                "warnings",
            ],
        )?;
        // Lower layers never import higher ones (checked from the source).
        self.cargo(
            ".",
            &["test", "-q", "-p", "valkey-chaos", "--lib", "layering"],
        )?;
        self.cargo("plugins", &["fmt", "--all", "--", "--check"])
    }

    fn test(&mut self, args: &[String]) -> Result {
        let (cargo_args, test_args) = split_dashes(args);
        self.setup()?;
        self.plugins()?;
        // The integration tests run the agent binary.
        self.cargo(".", &["build", "-p", "valkey-chaos", "-q"])?;
        let mut a: Vec<&str> = vec!["test"];
        if cargo_args.is_empty() {
            a.push("--workspace");
        }
        a.extend(cargo_args.iter().map(String::as_str));
        a.extend(["-q", "--", "--test-threads", "2"]);
        a.extend(test_args.iter().map(String::as_str));
        self.cargo(".", &a)
    }

    /// `chaos` and `chaos-quick`: `[TARGET] [-- RUN_ARGS]`; `TARGET=URL` is accepted too.
    fn chaos(&mut self, glob: &str, fixed: &[&str], out: &str, args: &[String]) -> Result {
        let (pos, extra) = split_dashes(args);
        let target = match pos {
            [] => None,
            [t] if !t.starts_with('-') => Some(t.strip_prefix("TARGET=").unwrap_or(t).to_string()),
            _ => {
                return Err(Failure::usage(
                    "usage: chaos [TARGET] [-- RUN_ARGS] (quote a URL with & or ?)",
                ))
            }
        };
        let mut files = expand(&self.root, glob)?;
        if target.as_deref().is_some_and(|t| !t.is_empty()) {
            files = self.managed_gate(files);
        }
        self.prepare_agent()?;
        let mut a: Vec<&str> = vec!["run"];
        a.extend(files.iter().map(String::as_str));
        a.extend(fixed);
        a.extend(["--out", out]);
        if let Some(t) = target.as_deref().filter(|t| !t.is_empty()) {
            a.extend(["--target", t]);
        }
        a.extend(extra.iter().map(String::as_str));
        self.run(".", "./target/release/valkey-chaos", &a)
    }

    /// Against a target URL, each gate scenario that needs the server's cooperation (a failover,
    /// `CONFIG`) runs as its managed version (`scenarios/cutover/managed/`, same name): the same
    /// failure class through the agent's proxy. Says which ran in place of which.
    fn managed_gate(&self, files: Vec<String>) -> Vec<String> {
        files
            .into_iter()
            .map(|f| {
                let name = f.rsplit('/').next().unwrap_or(&f);
                let managed = format!("{MANAGED_DIR}/{name}");
                if self.root.join(&managed).is_file() {
                    eprintln!(
                        "chaos: {managed} runs in place of {f}: a target grants no failover or \
                         CONFIG, so the agent's proxy imitates it"
                    );
                    managed
                } else {
                    f
                }
            })
            .collect()
    }

    fn bench(&mut self, args: &[String]) -> Result {
        let (pos, extra) = split_dashes(args);
        if !pos.is_empty() {
            return Err(Failure::usage("usage: bench [-- BENCH_ARGS]"));
        }
        self.prepare_agent()?;
        let mut a = vec!["bench", "--out", "out/bench"];
        a.extend(extra.iter().map(String::as_str));
        self.run(".", "./target/release/valkey-chaos", &a)
    }

    fn up(&mut self, args: &[String]) -> Result {
        let (replicas, sentinels) = match args {
            [] => ("0", "0"),
            [r] => (r.as_str(), "0"),
            [r, s] => (r.as_str(), s.as_str()),
            _ => return Err(Failure::usage("usage: up [REPLICAS] [SENTINELS]")),
        };
        for n in [replicas, sentinels] {
            if n.parse::<u32>().is_err() {
                return Err(Failure::usage(format!("up: {n:?} is not a count")));
            }
        }
        self.setup().map_err(preparation)?;
        self.cargo(
            ".",
            &[
                "run",
                "--release",
                "-q",
                "-p",
                "valkey-chaos",
                "--",
                "up",
                "--replicas",
                replicas,
                "--sentinels",
                sentinels,
            ],
        )
    }

    fn report_check(&mut self, args: &[String]) -> Result {
        let report = match args {
            [] => "out/report-check/report.html",
            [r] if !r.starts_with('-') => r.as_str(),
            _ => return Err(Failure::usage("usage: report-check [REPORT]")),
        };
        if self.find_program("chromium").is_none() {
            let sudo = !self.dry_run && !is_root();
            let (apt, pre): (&str, Vec<&str>) = if sudo {
                ("sudo", vec!["apt-get"])
            } else {
                ("apt-get", vec![])
            };
            let with = |rest: &[&'static str]| -> Vec<&str> {
                pre.iter().copied().chain(rest.iter().copied()).collect()
            };
            self.run(".", apt, &with(&["update", "-q"]))?;
            self.run_env(
                ".",
                apt,
                &with(&["install", "-y", "-q", "chromium"]),
                &[("DEBIAN_FRONTEND", "noninteractive")],
            )?;
        }
        let report_path = self.root.join(report);
        if !report_path.is_file() {
            let dir = Path::new(report)
                .parent()
                .map(|d| d.to_string_lossy().into_owned())
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| ".".into());
            self.cargo(".", &["build", "-q", "-p", "valkey-chaos"])?;
            // A report with a failed check (exit 1) is as good a page as a passing one.
            let args = [
                "run",
                "scenarios/cache-smoke.toml",
                "--duration",
                "3s",
                "-q",
                "--out",
                &dir,
            ];
            match self.run(".", "./target/debug/valkey-chaos", &args) {
                Err(f) if f.code == 1 => {}
                other => other?,
            }
        }
        let png = report_path.with_extension("png");
        let scratch =
            std::env::temp_dir().join(format!("xtask-report-check-{}", std::process::id()));
        let profile = scratch.join("profile");
        let flags = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            format!("--user-data-dir={}", profile.display()),
            "--enable-logging=stderr".into(),
            "--v=0".into(),
            "--window-size=1200,2600".into(),
            format!("--screenshot={}", png.display()),
            format!("file://{}", report_path.display()),
        ];
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        self.announce(".", "chromium", &flags, "2>chromium.log");
        if self.dry_run {
            return Ok(());
        }
        std::fs::create_dir_all(&profile)
            .map_err(|e| Failure::usage(format!("{}: {e}", profile.display())))?;
        let log = scratch.join("chromium.log");
        let result = self.chromium(&flags, &log, Duration::from_secs(120));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&scratch);
        result?;
        let errors: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(":CONSOLE") || l.contains("net::ERR_"))
            .collect();
        if !errors.is_empty() {
            for l in &errors {
                eprintln!("{l}");
            }
            return Err(Failure {
                code: 1,
                message: format!("report-check: console errors in {report}"),
            });
        }
        println!(
            "report-check: {report} rendered cleanly to {}",
            png.display()
        );
        Ok(())
    }

    fn chromium(&self, flags: &[&str], log: &Path, limit: Duration) -> Result {
        let stderr = std::fs::File::create(log)
            .map_err(|e| Failure::usage(format!("{}: {e}", log.display())))?;
        let mut child = self
            .command(".", "chromium", flags)
            .stdin(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| runtime(format!("cannot start chromium: {e}")))?;
        let deadline = Instant::now() + limit;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return check("chromium", status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(runtime(format!("chromium did not finish within {limit:?}")));
                }
                Err(e) => return Err(runtime(format!("waiting for chromium: {e}"))),
            }
        }
    }

    // --- steps ---

    /// Set-up, plugins (scenarios may use them) and the release agent; a failure here is a
    /// runtime failure (3), never a gate verdict.
    fn prepare_agent(&mut self) -> Result {
        self.plugins()
            .and_then(|()| self.cargo(".", &["build", "--release", "-q", "-p", "valkey-chaos"]))
            .map_err(preparation)
    }

    fn cargo(&self, dir: &str, args: &[&str]) -> Result {
        let cargo = self.cargo.to_string_lossy().into_owned();
        self.announce(dir, "cargo", args, "");
        if self.dry_run {
            return Ok(());
        }
        self.wait(&cargo, self.command(dir, &cargo, args).status())
    }

    fn run(&self, dir: &str, program: &str, args: &[&str]) -> Result {
        self.run_env(dir, program, args, &[])
    }

    fn run_env(&self, dir: &str, program: &str, args: &[&str], env: &[(&str, &str)]) -> Result {
        self.announce(dir, program, args, "");
        if self.dry_run {
            return Ok(());
        }
        let mut cmd = self.command(dir, program, args);
        cmd.envs(env.iter().copied());
        self.wait(program, cmd.status())
    }

    fn wait(&self, program: &str, status: std::io::Result<ExitStatus>) -> Result {
        match status {
            Ok(s) => check(program, s),
            Err(e) => Err(runtime(format!("cannot run {program}: {e}"))),
        }
    }

    fn command(&self, dir: &str, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(self.root.join(dir))
            .env("PATH", &self.path);
        cmd
    }

    /// Print a step the way a shell would read it.
    fn announce(&self, dir: &str, program: &str, args: &[&str], suffix: &str) {
        let mut line = String::from("xtask: ");
        if dir != "." {
            let _ = write!(line, "(cd {dir} && ");
        }
        line.push_str(program);
        for a in args {
            line.push(' ');
            line.push_str(&quote(a));
        }
        if dir != "." {
            line.push(')');
        }
        if !suffix.is_empty() {
            line.push(' ');
            line.push_str(suffix);
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }

    fn find_program(&self, name: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        std::env::split_paths(&self.path)
            .map(|d| d.join(name))
            .find(|p| {
                p.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    }
}

fn help() -> String {
    let mut s = String::from(
        "usage: cargo xtask [--dry-run] TASK [ARGS]   (aliases: cargo chaos, cargo chaos-quick, cargo suite)\n\ntasks:\n",
    );
    for (name, args, what) in TASKS {
        let left = format!("{name} {args}");
        let _ = writeln!(s, "  {left:<38} {what}");
    }
    s
}

fn no_args(task: &str, rest: &[String]) -> Result {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "{task} takes no arguments, got {rest:?}"
        )))
    }
}

/// Arguments before and after the first `--`.
fn split_dashes(args: &[String]) -> (&[String], &[String]) {
    match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[]),
    }
}

fn runtime(message: String) -> Failure {
    Failure { code: 3, message }
}

/// A failed preparation step of an agent task: exit 3, naming the step's own code.
fn preparation(f: Failure) -> Failure {
    Failure {
        code: 3,
        message: format!("{} (preparation failed: exit 3, not a verdict)", f.message),
    }
}

/// A child's exit status as this process's: its code unchanged, or 128 + the signal.
fn check(program: &str, status: ExitStatus) -> Result {
    use std::os::unix::process::ExitStatusExt;
    if status.success() {
        return Ok(());
    }
    let (code, how) = match (status.code(), status.signal()) {
        (Some(c), _) => (c, format!("exit {c}")),
        (None, Some(sig)) => (128 + sig, format!("killed by signal {sig}")),
        (None, None) => (3, "an unknown status".into()),
    };
    let name = Path::new(program)
        .file_name()
        .map_or(program.into(), |n| n.to_string_lossy());
    Err(Failure {
        code: u8::try_from(code).unwrap_or(u8::MAX),
        message: format!("{name} ended with {how}"),
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,+@%[]*".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Expand `dir/pattern` (wildcards in the last component only: `*`, `?`, `[...]`) relative to
/// `root`, sorted, as a shell would; no match is a usage error.
fn expand(root: &Path, glob: &str) -> Result<Vec<String>> {
    let (dir, pattern) = glob.rsplit_once('/').unwrap_or((".", glob));
    let entries =
        std::fs::read_dir(root.join(dir)).map_err(|e| Failure::usage(format!("{dir}: {e}")))?;
    let mut out: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.') && matches(pattern.as_bytes(), name.as_bytes()))
        .map(|name| format!("{dir}/{name}"))
        .collect();
    out.sort();
    if out.is_empty() {
        return Err(Failure::usage(format!("no file matches {glob}")));
    }
    Ok(out)
}

/// Shell wildcard matching of one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!a]`.
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.first() {
        None => name.is_empty(),
        Some(b'*') => (0..=name.len()).any(|i| matches(&pattern[1..], &name[i..])),
        Some(b'?') => !name.is_empty() && matches(&pattern[1..], &name[1..]),
        Some(b'[') => {
            let Some(close) = pattern.iter().skip(2).position(|&b| b == b']') else {
                return name.first() == Some(&b'[') && matches(&pattern[1..], &name[1..]);
            };
            let set = &pattern[1..close + 2];
            let (negate, set) = match set.first() {
                Some(b'!' | b'^') => (true, &set[1..]),
                _ => (false, set),
            };
            let Some(&c) = name.first() else {
                return false;
            };
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negate && matches(&pattern[close + 3..], &name[1..])
        }
        Some(&p) => name.first() == Some(&p) && matches(&pattern[1..], &name[1..]),
    }
}

/// Ctrl-C reaches the whole foreground process group: the running step (the agent heals its
/// faults and writes partial results) decides, and xtask then passes its exit code on. A handler
/// that does nothing (rather than ignoring SIGINT) keeps the children's default: an exec resets
/// caught signals, but would inherit an ignored one.
mod sigint {
    use std::os::raw::c_int;

    const SIGINT: c_int = 2;

    extern "C" fn nothing(_: c_int) {}

    extern "C" {
        fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
    }

    pub fn leave_to_children() {
        // SAFETY: installs a handler that touches nothing; signal(2) is async-signal-safe to
        // call here, before any thread is started.
        unsafe {
            signal(SIGINT, nothing);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_a_shell() {
        let m = |p: &str, n: &str| matches(p.as_bytes(), n.as_bytes());
        assert!(m("*.toml", "01-typical-day.toml"));
        assert!(!m("*.toml", "01-typical-day.toml.bak"));
        assert!(m("0[1347]-*.toml", "03-failover-under-load.toml"));
        assert!(!m("0[1347]-*.toml", "02-large-live-event.toml"));
        assert!(!m("0[1347]-*.toml", "13-x.toml"));
        assert!(m("0[1-3]?x", "02ax"));
        assert!(!m("0[!1-3]?x", "02ax"));
        assert!(m("0[!1-3]?x", "05ax"));
        assert!(!m("?", ""));
        assert!(m("", ""));
        assert!(m("a[b", "a[b"));
    }

    #[test]
    fn the_gate_globs_expand_sorted_and_an_empty_glob_is_a_usage_error() {
        let x = Xtask::new().unwrap();
        let all = expand(&x.root, CHAOS_GLOB).unwrap();
        assert!(all.len() >= 7, "{all:?}");
        assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
        let quick = expand(&x.root, CHAOS_QUICK_GLOB).unwrap();
        let prefixes: Vec<&str> = quick
            .iter()
            .map(|f| &f["scenarios/cutover/".len()..][..2])
            .collect();
        assert_eq!(prefixes, ["01", "03", "04", "07"], "{quick:?}");
        let none = expand(&x.root, "scenarios/cutover/9*.toml").unwrap_err();
        assert_eq!(none.code, 2, "{none:?}");
    }

    #[test]
    fn exit_codes_pass_through_and_signals_become_128_plus() {
        let x = Xtask::new().unwrap();
        assert_eq!(x.run(".", "sh", &["-c", "exit 0"]), Ok(()));
        for code in [1u8, 2, 3, 101] {
            let f = x
                .run(".", "sh", &["-c", &format!("exit {code}")])
                .unwrap_err();
            assert_eq!(f.code, code, "{f:?}");
        }
        let f = x.run(".", "sh", &["-c", "kill -KILL $$"]).unwrap_err();
        assert_eq!(f.code, 128 + 9, "{f:?}");
        let f = x.run(".", "no-such-program-here", &[]).unwrap_err();
        assert_eq!(f.code, 3, "{f:?}");
        // A failed preparation of an agent task is a runtime failure, never a verdict.
        assert_eq!(preparation(Failure::usage("x")).code, 3);
        assert_eq!(
            preparation(x.run(".", "sh", &["-c", "exit 1"]).unwrap_err()).code,
            3
        );
    }

    #[test]
    fn ctrl_c_is_left_to_the_running_step_whose_code_passes_through() {
        sigint::leave_to_children();
        let x = Xtask::new().unwrap();
        // SIGINT to xtask itself (the terminal sends it to the whole group): xtask lives on and
        // gives the step's own exit code.
        let f = x
            .run(".", "sh", &["-c", "kill -INT $PPID; sleep 0.2; exit 7"])
            .unwrap_err();
        assert_eq!(f.code, 7, "{f:?}");
        // The step keeps the default action: SIGINT ends it (an inherited "ignore" would not).
        let f = x
            .run(".", "sh", &["-c", "kill -INT $$; sleep 5; exit 0"])
            .unwrap_err();
        assert_eq!(f.code, 128 + 2, "{f:?}");
    }

    #[test]
    fn children_see_the_project_tools_first_in_path() {
        let x = Xtask::new().unwrap();
        let first = format!("{}/.tools/bin", x.root.display());
        let script = format!("[ \"${{PATH%%:*}}\" = '{first}' ]");
        assert_eq!(x.run(".", "sh", &["-c", &script]), Ok(()));
        assert!(x
            .run(".", "sh", &["-c", "[ \"${PATH%%:*}\" = /nowhere ]"])
            .is_err());
    }

    #[test]
    fn arguments_split_at_the_first_double_dash() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let a = v(&["-p", "x", "--", "shard::", "--", "y"]);
        let (l, r) = split_dashes(&a);
        assert_eq!((l, r), (&a[..2], &a[3..]));
        let b = v(&["url"]);
        assert_eq!(split_dashes(&b), (&b[..], &[][..]));
    }

    #[test]
    fn steps_print_as_a_shell_reads_them() {
        assert_eq!(
            quote("scenarios/cutover/0[1347]-*.toml"),
            "scenarios/cutover/0[1347]-*.toml"
        );
        assert_eq!(quote("cache.get.p99 < 5ms"), "'cache.get.p99 < 5ms'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
