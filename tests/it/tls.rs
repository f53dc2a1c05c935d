//! TLS and AUTH for real: a CA and a server certificate made with `openssl` in a scratch dir,
//! Debian's `redis-server` (7.0) listening on TLS with `requirepass` or an ACL user, and the agent
//! binary pointed at it with every way of trusting (or not) the certificate.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use valkey_chaos::valkey::embedded::free_port;
use valkey_chaos::valkey::target::{TargetUrl, TlsChoice};
use valkey_chaos::valkey::{Cmd, Conn};

use crate::support::*;

const PASSWORD: &str = "s3cret-pw";
const ACL_USER: &str = "app";
const ACL_PASSWORD: &str = "app-pw";

/// Debian's redis-server (the TLS-enabled build); installed by `.ci/setup`.
pub fn redis_bin() -> PathBuf {
    valkey_chaos::compare::locate_redis(None).unwrap_or_else(|e| panic!("{e}"))
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (apt-get install openssl): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 and localhost signed by it.
pub fn make_certs(dir: &Path) {
    let p256 = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(p256);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=valkey-chaos test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-new"];
    csr.extend(p256);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

/// How the test server authenticates clients.
enum Auth {
    /// `requirepass`: `rediss://:pw@…`.
    Password,
    /// An ACL user (and the default user disabled), plus a plain-text port for `redis://`.
    AclUser,
}

/// Debian's redis-server on TLS, killed and reaped on drop.
struct TlsRedis {
    child: Option<Child>,
    tls_port: u16,
    plain_port: Option<u16>,
    dir: PathBuf,
}

impl TlsRedis {
    fn start(dir: &Path, auth: Auth) -> TlsRedis {
        make_certs(dir);
        let tls_port = free_port();
        let plain_port = matches!(auth, Auth::AclUser).then(free_port);
        let d = dir.display();
        let mut conf = format!(
            "port {}\ntls-port {tls_port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\n\
             dir {d}\nlogfile {d}/server.log\ntls-cert-file {d}/server.pem\n\
             tls-key-file {d}/server.key\ntls-ca-cert-file {d}/ca.pem\ntls-auth-clients no\n",
            plain_port.unwrap_or(0)
        );
        match auth {
            Auth::Password => conf.push_str(&format!("requirepass {PASSWORD}\n")),
            Auth::AclUser => conf.push_str(&format!(
                "user default off\nuser {ACL_USER} on >{ACL_PASSWORD} ~* &* +@all\n"
            )),
        }
        let conf_path = dir.join("redis.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut cmd = Command::new(redis_bin());
        cmd.arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn redis-server");
        let mut r = TlsRedis {
            child: Some(child),
            tls_port,
            plain_port,
            dir: dir.to_path_buf(),
        };
        r.wait_ready(match auth {
            Auth::Password => format!("rediss://:{PASSWORD}@127.0.0.1:{tls_port}"),
            Auth::AclUser => format!("rediss://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{tls_port}"),
        });
        r
    }

    fn wait_ready(&mut self, url: String) {
        let t = TargetUrl::parse(&url).unwrap();
        let ca = self.dir.join("ca.pem");
        let opts = t
            .connect_options(
                &TlsChoice {
                    insecure: false,
                    ca_file: Some(ca),
                },
                Duration::from_secs(2),
            )
            .unwrap();
        let addr = ([127, 0, 0, 1], self.tls_port).into();
        let deadline = Instant::now() + Duration::from_secs(15);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        loop {
            let ok = rt.block_on(async {
                match Conn::connect(addr, &opts).await {
                    Ok(mut c) => c.request(&Cmd::new("PING")).await.is_ok(),
                    Err(_) => false,
                }
            });
            if ok {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            assert!(!exited, "redis-server exited during start-up:\n{log}");
            assert!(
                Instant::now() < deadline,
                "redis-server TLS port {} not ready within 15s:\n{log}",
                self.tls_port
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

const SMOKE: &str = r#"
name = "tls-smoke"
seed = 11
duration = "700ms"

[[workload]]
id = "cache"
type = "commands"
clients = 2
rate_per_sec = 300
[workload.commands]
mix = { get = 3, set = 1 }
keys = 100
value_bytes = 16
"#;

/// Run the smoke scenario against `url` with `extra` flags and environment.
fn smoke(dir: &Path, url: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let sc = scenario(dir, "tls-smoke", SMOKE);
    let out = dir.join(format!("out-{}", free_port()));
    let mut args = vec![
        "run",
        sc.to_str().unwrap(),
        "--quiet",
        "--target",
        url,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    let o = agent_env(&args, env, Duration::from_secs(60));
    if o.status.code() == Some(0) {
        let s = summary(&out);
        let ops = op(&s, "cache", "get")["ok"].as_u64().unwrap()
            + op(&s, "cache", "set")["ok"].as_u64().unwrap();
        assert!(ops > 0, "no operation succeeded over TLS\n{}", show(&o));
        assert_eq!(s["server"]["server_name"], "redis", "{}", show(&o));
    }
    o
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn rediss_with_a_private_ca_password_and_every_trust_option() {
    let dir = scratch("tls-password");
    let srv = TlsRedis::start(&dir, Auth::Password);
    let port = srv.tls_port;
    let ca = dir.join("ca.pem");
    let ca = ca.to_str().unwrap();
    let url = format!("rediss://:{PASSWORD}@127.0.0.1:{port}");

    // Verified against the private CA.
    let o = smoke(&dir, &url, &["--tls-ca", ca], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));

    // Without the CA the handshake is refused, and the message says where and why.
    let o = smoke(&dir, &url, &[], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let err = stderr(&o);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(
        err.contains("certificate") && err.contains("unknown issuer"),
        "{err}"
    );
    assert!(
        err.contains("--tls-ca"),
        "the message should say what to do: {err}"
    );

    // Skipping verification: in the URL (redis-py's ssl_cert_reqs=none too) or on the command line.
    for u in [
        format!("{url}?insecure=true"),
        format!("{url}?ssl_cert_reqs=none"),
    ] {
        let o = smoke(&dir, &u, &[], &[]);
        assert_eq!(o.status.code(), Some(0), "{u}: {}", show(&o));
    }
    let o = smoke(&dir, &url, &["--tls-insecure"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));

    // A wrong password: exit 3, an AUTH message, and the password never printed.
    let o = smoke(
        &dir,
        &format!("rediss://:wrong-pw@127.0.0.1:{port}"),
        &["--tls-ca", ca],
        &[],
    );
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let err = stderr(&o);
    assert!(err.contains("AUTH") && err.contains("WRONGPASS"), "{err}");
    assert!(!err.contains("wrong-pw"), "password leaked: {err}");

    // No password at all: the server says NOAUTH, exit 3.
    let bare = format!("rediss://localhost:{port}");
    let o = smoke(&dir, &bare, &["--tls-ca", ca], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(stderr(&o).contains("NOAUTH"), "{}", show(&o));

    // VALKEY_PASSWORD fills a URL without one (and the certificate names localhost too).
    let o = smoke(
        &dir,
        &bare,
        &["--tls-ca", ca],
        &[("VALKEY_PASSWORD", PASSWORD)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    // … but never overrides the URL's own.
    let o = smoke(
        &dir,
        &format!("rediss://:wrong-pw@localhost:{port}"),
        &["--tls-ca", ca],
        &[("VALKEY_PASSWORD", PASSWORD)],
    );
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    drop(srv);
}

#[test]
fn acl_user_urls_plain_and_tls() {
    let dir = scratch("tls-acl");
    let srv = TlsRedis::start(&dir, Auth::AclUser);
    let plain = srv.plain_port.unwrap();
    let ca = dir.join("ca.pem");
    let ca = ca.to_str().unwrap();

    let o = smoke(
        &dir,
        &format!("redis://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{plain}"),
        &[],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let o = smoke(
        &dir,
        &format!(
            "rediss://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{}",
            srv.tls_port
        ),
        &["--tls-ca", ca],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    // The user with a wrong password, and the disabled default user.
    for u in [
        format!("redis://{ACL_USER}:nope@127.0.0.1:{plain}"),
        format!("redis://default:{ACL_PASSWORD}@127.0.0.1:{plain}"),
    ] {
        let o = smoke(&dir, &u, &[], &[]);
        assert_eq!(o.status.code(), Some(3), "{u}: {}", show(&o));
        assert!(stderr(&o).contains("AUTH"), "{u}: {}", show(&o));
    }
    // The user name is shown, its password never.
    let o = smoke(
        &dir,
        &format!("redis://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{plain}"),
        &[],
        &[],
    );
    let all = show(&o);
    assert!(
        all.contains(&format!("redis://{ACL_USER}@127.0.0.1")),
        "{all}"
    );
    assert!(!all.contains(ACL_PASSWORD), "password leaked: {all}");

    // compat with the ACL user: the wrong-password probe sends `AUTH app <wrong>`.
    let o = agent_env(
        &[
            "compat",
            "--target",
            &format!("redis://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{plain}"),
        ],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with("auth wrong password"))
        .unwrap();
    assert!(
        row.contains("refused: WRONGPASS") && row.ends_with("ok"),
        "{row}"
    );
    drop(srv);
}

#[test]
fn compat_over_tls_with_a_password() {
    let dir = scratch("tls-compat");
    let srv = TlsRedis::start(&dir, Auth::Password);
    let url = format!("rediss://:{PASSWORD}@127.0.0.1:{}", srv.tls_port);
    let ca = dir.join("ca.pem");
    let t0 = Instant::now();
    let o = agent_env(
        &["compat", "--target", &url, "--tls-ca", ca.to_str().unwrap()],
        &[],
        Duration::from_secs(60),
    );
    let took = t0.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row {name:?}:\n{table}"))
            .to_string()
    };
    assert!(
        row("auth wrong password").contains("refused: WRONGPASS"),
        "{table}"
    );
    assert!(row("hello 3").contains("server=redis 7.0"), "{table}");
    assert!(row("pubsub across dbs").ends_with(" ok"), "{table}");
    assert!(row("watch exec abort").ends_with(" ok"), "{table}");
    // Redis 7.0 has no CLIENT SETINFO: shown as failed, but redis-py ignores it, so it passes.
    assert!(row("client setinfo").contains("failed"), "{table}");
    assert!(!row("client setinfo").contains("<-"), "{table}");
    assert!(table.contains("compat: pass"), "{table}");
    assert!(password_free(&table), "password leaked:\n{table}");
    assert!(took < Duration::from_secs(20), "compat took {took:?}");

    // Without the CA: exit 3 with the handshake message.
    let o = agent_env(&["compat", "--target", &url], &[], Duration::from_secs(60));
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(stderr(&o).contains("unknown issuer"), "{}", show(&o));
    // A wrong password: exit 3 naming AUTH.
    let bad = format!("rediss://:nope@127.0.0.1:{}", srv.tls_port);
    let o = agent_env(
        &["compat", "--target", &bad, "--tls-insecure"],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(stderr(&o).contains("AUTH"), "{}", show(&o));
    // A malformed URL is a usage error.
    let o = agent_env(
        &["compat", "--target", "http://x"],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    drop(srv);
}

fn password_free(s: &str) -> bool {
    !s.contains(PASSWORD)
}
