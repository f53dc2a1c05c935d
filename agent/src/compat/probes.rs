//! The session against one server and every probe: [`probe`] runs every [`Check`] (named,
//! weighed and explained in `check.rs`) in table order, each key under [`KEY_PREFIX`].
//!
//! A server error reply that refuses the command itself — `unknown command` (a command removed
//! with `rename-command`, or a provider's block), `NOPERM` (an ACL), or the same inside a script —
//! becomes a refusal naming the command, never a failure. The commands probed exist in every
//! Redis ≥ 7 and Valkey, so `unknown command` there means removed, not too old (an unknown
//! *subcommand*, like `CLIENT SETINFO` on Redis 7.0, is a failure: the version lacks it).

use std::time::{Duration, Instant};

use super::check::Check;
use super::error::CompatError;
use super::options::Options;
use super::outcome::{Outcome, Probe, Refusal};
use super::render::clip;
use super::report::Side;
use crate::plan::provider::Provider;
use crate::valkey::target::TargetUrl;
use crate::valkey::{Cmd, Conn, Error, ErrorKind, Route, Script, Value};

/// Every key a compat run writes starts with this (then a per-run nonce).
pub const KEY_PREFIX: &str = "vc:compat:";

/// Element count of the `unpack` probe: what Dramatiq's stack probe finds on Redis and Valkey.
pub const UNPACK_ELEMENTS: usize = 7992;

/// `busy-reply-threshold` while the busy probe runs, where `CONFIG SET` is allowed.
const BUSY_THRESHOLD_MS: u64 = 100;
/// The server default, waited out where `CONFIG` is refused.
const DEFAULT_BUSY_THRESHOLD_MS: u64 = 5000;
/// The longest threshold the probe waits out: beyond it the probe does not run.
const MAX_BUSY_WAIT_MS: u64 = 5000;
/// How long the busy script spins past the threshold at most, should `SCRIPT KILL` not end it.
const BUSY_SCRIPT_MARGIN_MS: u64 = 2000;

/// A script that spins until `ARGV[1]` milliseconds have passed on the server's clock: it
/// writes nothing, so `SCRIPT KILL` can end it, and it ends by itself if nothing does.
const SPIN: &str = "local t = redis.call('TIME') \
    local stop = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1]) * 1000 \
    repeat t = redis.call('TIME') until tonumber(t[1]) * 1000000 + tonumber(t[2]) >= stop \
    return 'ended'";

const LOADING_NOT_PROVOKED: &str = "not provoked: a server loads only at start-up or full resync \
     (DEBUG RELOAD would block and reload the whole dataset)";
const MISCONF_NOT_PROVOKED: &str = "not provoked: it needs a failed BGSAVE, which refuses every \
     write on the server";

/// Why a probe did not produce its value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fail {
    /// Did not behave as expected.
    Failed(String),
    /// The server refused a command the probe needs.
    Forbidden { command: String, reply: String },
}

impl From<String> for Fail {
    fn from(s: String) -> Fail {
        Fail::Failed(s)
    }
}

type Probed = Result<String, Fail>;

/// How an error reply refuses a command, if it does.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    No,
    /// The command itself, with its name when the reply gives it (`CLIENT SETINFO`).
    Command(Option<String>),
    /// A command called from inside a script.
    InScript,
}

/// The name quoted after `marker` in `msg` ('keys', `CONFIG`, 'client|setinfo').
fn quoted_after(msg: &str, marker: &str) -> Option<String> {
    let rest = &msg[msg.to_ascii_lowercase().find(marker)? + marker.len()..];
    let q = rest.chars().next().filter(|c| *c == '\'' || *c == '`')?;
    let name = rest[1..].split(q).next()?;
    (!name.is_empty()).then(|| name.replace('|', " ").to_ascii_uppercase())
}

fn classify(msg: &str) -> Refused {
    let lower = msg.to_ascii_lowercase();
    if lower.contains("command called from script") || lower.contains("acl failure in script") {
        Refused::InScript
    } else if lower.starts_with("noperm") || lower.contains("no permissions to run the ") {
        Refused::Command(quoted_after(msg, "no permissions to run the "))
    } else if lower.starts_with("err unknown command") {
        Refused::Command(quoted_after(msg, "unknown command "))
    } else {
        Refused::No
    }
}

/// A failed request as the probe sees it: a refusal of `cmd` (or of the command the reply
/// names), or a failure with the server's words.
fn fail(cmd: &Cmd, e: Error) -> Fail {
    match classify(&e.msg) {
        Refused::No => Fail::Failed(e.msg),
        Refused::Command(name) => Fail::Forbidden {
            command: name.unwrap_or_else(|| cmd.name()),
            reply: e.msg,
        },
        Refused::InScript => Fail::Forbidden {
            command: format!("a command called from {}", cmd.name()),
            reply: e.msg,
        },
    }
}

/// As [`fail`], naming `inner` when the refusal came from inside the script.
fn fail_in_script(cmd: &Cmd, inner: &str, e: Error) -> Fail {
    match classify(&e.msg) {
        Refused::InScript => Fail::Forbidden {
            command: inner.to_string(),
            reply: e.msg,
        },
        _ => fail(cmd, e),
    }
}

async fn rq(c: &mut Conn, cmd: &Cmd) -> Result<Value, Fail> {
    c.request(cmd).await.map_err(|e| fail(cmd, e))
}

/// Run every check against one server. `role` names it in connection errors; `provider`
/// labels the commands it refuses.
pub async fn probe(
    url: &TargetUrl,
    provider: Option<Provider>,
    opts: &Options,
    role: &str,
) -> Result<Side, CompatError> {
    let mut co = url
        .connect_options(&opts.tls, opts.timeout)
        .map_err(CompatError::Usage)?;
    co.lib_info = None;
    let mut s = Session {
        url: url.clone(),
        route: Route::direct(url.host_port(), co),
        conn: None,
        prefix: format!("{KEY_PREFIX}{}:", nonce()),
        keys: vec![],
        provider,
        stall: opts.stall,
        info: Err(Fail::Failed("INFO not read yet".into())),
    };
    // Reachability first (connect, TLS, AUTH): a target we cannot talk to is exit 3, not a
    // table of failures. INFO itself may be refused by a provider: then its rows say so.
    s.conn()
        .await
        .map_err(|e| CompatError::Target(format!("{role} {url}: {e}")))?;
    let info_cmd = Cmd::new("INFO").arg("server");
    s.info = s
        .q(info_cmd.clone())
        .await
        .map(|v| v.as_str().unwrap_or_default().to_string());
    let (server_name, version) = match &s.info {
        Err(_) => (None, None),
        Ok(_) => match s.info_field("valkey_version") {
            Some(v) => (
                Some(
                    s.info_field("server_name")
                        .unwrap_or_else(|| "valkey".into()),
                ),
                Some(v),
            ),
            None => (Some("redis".to_string()), s.info_field("redis_version")),
        },
    };

    let mut out = Vec::with_capacity(Check::ALL.len());
    for check in Check::ALL {
        let outcome = s.run(check).await;
        out.push(Probe {
            check,
            outcome,
            warning: None,
        });
    }
    if let Some(p) = out
        .iter_mut()
        .find(|p| p.check == Check::ConfigMaxmemoryPolicy)
    {
        if let Outcome::Ok(v) = &p.outcome {
            if v.starts_with("allkeys-") {
                p.warning = Some(format!(
                    "maxmemory-policy {v} can evict broker keys, which have no TTL: \
                     use noeviction or volatile-*"
                ));
            }
        }
    }
    s.cleanup().await;
    Ok(Side {
        label: url.to_string(),
        server_name,
        version,
        provider,
        probes: out,
    })
}

/// A per-run nonce so two compat runs (or a rerun after a crash) never share keys.
fn nonce() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut r = crate::rng::Rng::new(t ^ ((std::process::id() as u64) << 32));
    format!("{:08x}", r.next_u64() as u32)
}

fn expect(cond: bool, what: impl FnOnce() -> String) -> Result<(), Fail> {
    if cond {
        Ok(())
    } else {
        Err(Fail::Failed(what()))
    }
}

fn text(v: &Value) -> String {
    v.to_string()
}

/// Map lookups in a RESP3 map reply, by string key.
fn map_get<'a>(m: &'a [(Value, Value)], k: &str) -> Option<&'a Value> {
    m.iter()
        .find(|(x, _)| x.as_str() == Some(k))
        .map(|(_, v)| v)
}

/// The threshold the busy probe waits for, and what to restore afterwards.
enum Threshold {
    /// Lowered to [`BUSY_THRESHOLD_MS`] with `CONFIG SET param`; `old` goes back.
    Lowered { param: &'static str, old: String },
    /// Left as it is (`CONFIG` refused): this many milliseconds.
    Kept(u64),
}

/// One server under probe: the main connection (reopened when broken) and the keys written.
struct Session {
    url: TargetUrl,
    route: Route,
    conn: Option<Conn>,
    prefix: String,
    keys: Vec<String>,
    provider: Option<Provider>,
    stall: bool,
    /// `INFO server`, read once.
    info: Result<String, Fail>,
}

impl Session {
    async fn run(&mut self, check: Check) -> Outcome {
        use Check::*;
        let r = match check {
            AuthWrongPassword => return self.auth_wrong_password().await,
            BusyScript => return self.busy().await,
            Loading => return Outcome::Skipped(LOADING_NOT_PROVOKED.into()),
            Misconf => return Outcome::Skipped(MISCONF_NOT_PROVOKED.into()),
            InfoRedisVersion => self.info_present("redis_version"),
            InfoValkeyVersion => self.info_present("valkey_version"),
            InfoServerName => self.info_present("server_name"),
            InfoMode => self.info_mode(),
            Resp2Default => self.resp2_default().await,
            Hello3 => self.hello3().await,
            ClientSetinfo => self.client_setinfo().await,
            Select1 => self.select(1).await,
            Select2 => self.select(2).await,
            Eval => self.eval().await,
            EvalshaNoscript => self.noscript().await,
            NoscriptViaEval => self.noscript_via_eval().await,
            NoscriptText => self.noscript_text().await,
            Undeclared => self.undeclared().await,
            KeysInScript => self.keys_in_script().await,
            Keys => self.keys().await,
            LuaServerCall => self.lua_server_call().await,
            LuaPcallError => self.lua_pcall_error().await,
            LuaRedisVersion => self.lua_redis_version().await,
            Unpack => self.unpack().await,
            UnpackLimit => self.unpack_limit().await,
            MultiExec => self.multi_exec().await,
            WatchAbort => self.watch_abort().await,
            SetNxPx => self.set_nx("PX", 10_000).await,
            SetNxEx => self.set_nx("EX", 10).await,
            SetnxExpire => self.setnx().await,
            Incr => self.incr().await,
            Incrbyfloat => self.incrbyfloat().await,
            Pexpire => self.pexpire().await,
            Zset => self.zset().await,
            Lists => self.lists().await,
            Brpoplpush => self.brpoplpush().await,
            Sets => self.sets().await,
            Hashes => self.hashes().await,
            Mget => self.mget().await,
            Scan => self.scan().await,
            Pubsub => self.pubsub().await,
            ReadonlyStandalone => self.readonly_readwrite().await,
            Lolwut => self.lolwut().await,
            ConfigExtendedCompat => self
                .config_value("extended-redis-compatibility")
                .await
                .map(|v| v.unwrap_or_else(|| "(absent)".into())),
            ConfigMaxmemoryPolicy => self.config_get("maxmemory-policy").await,
            ConfigTimeout => self.config_get("timeout").await,
            ConfigMaxclients => self.config_get("maxclients").await,
        };
        self.outcome(r)
    }

    fn outcome(&self, r: Probed) -> Outcome {
        match r {
            Ok(v) => Outcome::Ok(v),
            Err(Fail::Failed(e)) => Outcome::Failed(e),
            Err(Fail::Forbidden { command, reply }) => Outcome::Forbidden(Refusal {
                command,
                provider: self.provider,
                reply,
            }),
        }
    }

    async fn conn(&mut self) -> Result<&mut Conn, String> {
        if self.conn.as_ref().is_some_and(|c| c.is_broken()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            self.conn = Some(self.open(None).await?);
        }
        Ok(self.conn.as_mut().expect("connection just set"))
    }

    /// A fresh connection (the URL's database unless `db` says otherwise).
    async fn open(&self, db: Option<u32>) -> Result<Conn, String> {
        let mut route = self.route.clone();
        if let Some(db) = db {
            route.opts.db = db;
        }
        route.connect().await.map_err(|e| e.msg)
    }

    /// A fresh connection that has not authenticated.
    async fn open_unauthenticated(&self) -> Result<Conn, String> {
        let mut route = self.route.clone();
        route.opts.password = None;
        route.opts.username = None;
        route.opts.db = 0;
        route.connect().await.map_err(|e| e.msg)
    }

    fn key(&mut self, name: &str) -> String {
        let k = format!("{}{name}", self.prefix);
        if !self.keys.contains(&k) {
            self.keys.push(k.clone());
        }
        k
    }

    async fn q(&mut self, cmd: Cmd) -> Result<Value, Fail> {
        let c = self.conn().await?;
        rq(c, &cmd).await
    }

    /// Run a script whose refusal from inside names `inner`.
    async fn q_script(&mut self, cmd: Cmd, inner: &str) -> Result<Value, Fail> {
        let c = self.conn().await?;
        c.request(&cmd)
            .await
            .map_err(|e| fail_in_script(&cmd, inner, e))
    }

    fn info_field(&self, f: &str) -> Option<String> {
        self.info
            .as_ref()
            .ok()
            .and_then(|i| crate::valkey::embedded::parse_info(i, f))
    }

    fn info_present(&self, f: &str) -> Probed {
        match &self.info {
            Ok(_) => Ok(self.info_field(f).unwrap_or_else(|| "(absent)".into())),
            Err(Fail::Failed(e)) => Err(Fail::Failed(format!("INFO server: {e}"))),
            Err(e) => Err(e.clone()),
        }
    }

    /// Which of `redis_mode` / `server_mode` INFO reports, with its value.
    fn info_mode(&self) -> Probed {
        self.info_present("redis_mode")?;
        let found: Vec<String> = ["redis_mode", "server_mode"]
            .into_iter()
            .filter_map(|f| self.info_field(f).map(|v| format!("{f}:{v}")))
            .collect();
        Ok(if found.is_empty() {
            "(absent)".into()
        } else {
            found.join(", ")
        })
    }

    async fn resp2_default(&mut self) -> Probed {
        let k = self.key("resp2");
        let mut c = self.open(None).await?;
        rq(&mut c, &Cmd::new("HSET").arg(k.as_str()).arg("f").arg("v")).await?;
        let v = rq(&mut c, &Cmd::new("HGETALL").arg(k.as_str())).await?;
        match v {
            Value::Array(a) if a.len() == 2 => Ok("array replies without HELLO".to_string()),
            other => Err(Fail::Failed(format!(
                "HGETALL replied {other:?} without HELLO"
            ))),
        }
    }

    async fn hello3(&mut self) -> Probed {
        let k = self.key("resp3");
        let mut c = self.open_unauthenticated().await?;
        let mut hello = Cmd::new("HELLO").arg("3");
        if let Some(p) = &self.url.password {
            hello.push("AUTH");
            hello.push(self.url.username.as_deref().unwrap_or("default"));
            hello.push(p.as_str());
        }
        let v = rq(&mut c, &hello).await?;
        let Value::Map(m) = v else {
            return Err(Fail::Failed(format!(
                "HELLO 3 replied {}, not a map",
                clip(&text(&v), 40)
            )));
        };
        let server = map_get(&m, "server").map(text).unwrap_or_default();
        let version = map_get(&m, "version").map(text).unwrap_or_default();
        let proto = map_get(&m, "proto").and_then(|v| v.as_int());
        expect(proto == Some(3), || format!("proto {proto:?} in HELLO 3"))?;
        expect(!server.is_empty() && !version.is_empty(), || {
            "HELLO 3 map lacks server/version".into()
        })?;
        rq(&mut c, &Cmd::new("HSET").arg(k.as_str()).arg("f").arg("v")).await?;
        let h = rq(&mut c, &Cmd::new("HGETALL").arg(k.as_str())).await?;
        expect(matches!(h, Value::Map(_)), || {
            format!("HGETALL after HELLO 3 is not a map: {h:?}")
        })?;
        Ok(format!("map, server={server} {version}"))
    }

    async fn client_setinfo(&mut self) -> Probed {
        let mut c = self.open(None).await?;
        for (k, v) in [("LIB-NAME", "redis-py"), ("LIB-VER", "5.0.6")] {
            rq(&mut c, &Cmd::new("CLIENT").arg("SETINFO").arg(k).arg(v))
                .await
                .map_err(|e| match e {
                    Fail::Failed(m) => {
                        Fail::Failed(format!("{m} (redis-py 5.0.6 ignores this refusal)"))
                    }
                    refused => refused,
                })?;
        }
        let info = rq(&mut c, &Cmd::new("CLIENT").arg("INFO")).await?;
        let info = info.as_str().unwrap_or_default().to_string();
        expect(info.contains("lib-name=redis-py"), || {
            "CLIENT INFO does not show lib-name=redis-py".into()
        })?;
        Ok("OK, shown in CLIENT INFO".into())
    }

    /// `READONLY` then `READWRITE` on a connection of its own (the second undoes the first
    /// where the server keeps the flag).
    async fn readonly_readwrite(&mut self) -> Probed {
        let mut c = self.open(None).await?;
        for name in ["READONLY", "READWRITE"] {
            let v = rq(&mut c, &Cmd::new(name)).await?;
            expect(v.as_str() == Some("OK"), || {
                format!("{name} returned {}", text(&v))
            })?;
        }
        Ok("OK, OK".into())
    }

    /// The last line of `LOLWUT`'s art: the engine's banner and version.
    async fn lolwut(&mut self) -> Probed {
        let v = self.q(Cmd::new("LOLWUT")).await?;
        let art = v.as_str().map(str::to_string).unwrap_or_else(|| text(&v));
        let Some(line) = art.lines().rev().map(str::trim).find(|l| !l.is_empty()) else {
            return Err(Fail::Failed("LOLWUT returned nothing".into()));
        };
        // "… 1968. Redis ver. 7.0.15" → "Redis ver. 7.0.15": the engine word and its version.
        let banner = match line.find(" ver. ") {
            Some(i) => &line[line[..i].rfind(' ').map_or(0, |j| j + 1)..],
            None => line,
        };
        Ok(clip(banner, 38))
    }

    async fn select(&mut self, db: u32) -> Probed {
        let k = format!("{}db", self.prefix);
        let mut c = self.open(Some(0)).await?;
        let r = async {
            let sel = |n: u32| Cmd::new("SELECT").arg(n as u64);
            let v = rq(&mut c, &sel(db)).await?;
            expect(v.is_ok(), || format!("SELECT {db} replied {v}"))?;
            rq(&mut c, &Cmd::new("SET").arg(k.as_str()).arg("x")).await?;
            rq(&mut c, &sel(0)).await?;
            let n = rq(&mut c, &Cmd::new("EXISTS").arg(k.as_str())).await?;
            expect(n.as_int() == Some(0), || {
                format!("a key written in db {db} is visible in db 0")
            })?;
            rq(&mut c, &sel(db)).await?;
            Ok::<_, Fail>("OK, isolated from db 0".to_string())
        }
        .await;
        let _ = c.request(&Cmd::new("DEL").arg(k.as_str())).await;
        r
    }

    async fn auth_wrong_password(&mut self) -> Outcome {
        if self.url.password.is_none() {
            return Outcome::Skipped("no password in the URL".into());
        }
        let mut c = match self.open_unauthenticated().await {
            Ok(c) => c,
            Err(e) => return Outcome::Failed(e),
        };
        let mut cmd = Cmd::new("AUTH");
        if let Some(u) = &self.url.username {
            cmd.push(u.as_str());
        }
        cmd.push("vc-compat-wrong-password");
        match c.request(&cmd).await {
            Ok(v) => Outcome::Failed(format!("a wrong password was accepted ({v})")),
            Err(e) if matches!(e.kind, ErrorKind::Timeout | ErrorKind::Connection) => {
                Outcome::Failed(e.msg)
            }
            Err(e) => Outcome::Ok(format!(
                "refused: {}",
                e.msg.split(' ').next().unwrap_or_default()
            )),
        }
    }

    async fn eval(&mut self) -> Probed {
        let k = self.key("eval");
        let v = self
            .q(Cmd::new("EVAL")
                .arg("redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])")
                .arg("1")
                .arg(k.as_str())
                .arg("hello"))
            .await?;
        expect(v.as_str() == Some("hello"), || format!("EVAL returned {v}"))?;
        Ok("ok".into())
    }

    /// A script body nobody else has loaded: its SHA is unknown to the server.
    fn unknown_script(&self, tag: &str) -> Script {
        Script::new(&format!("return '{}{tag}'", self.prefix))
    }

    /// `EVALSHA` of `script` must answer NOSCRIPT; the error text.
    async fn expect_noscript(&mut self, script: &Script) -> Result<String, Fail> {
        let evalsha = Cmd::new("EVALSHA").arg(script.sha.as_str()).arg("0");
        let c = self.conn().await?;
        match c.request(&evalsha).await {
            Err(e) if e.kind == ErrorKind::NoScript => Ok(e.msg),
            Err(e) => match fail(&evalsha, e) {
                Fail::Failed(m) => Err(Fail::Failed(format!(
                    "unknown sha gave {m:?}, not NOSCRIPT"
                ))),
                refused => Err(refused),
            },
            Ok(v) => Err(Fail::Failed(format!("unknown sha ran ({v})"))),
        }
    }

    async fn noscript(&mut self) -> Probed {
        let script = self.unknown_script("");
        let want = self.prefix.clone();
        self.expect_noscript(&script).await?;
        let sha = self
            .q(Cmd::new("SCRIPT").arg("LOAD").arg(script.body.as_str()))
            .await?;
        expect(sha.as_str() == Some(script.sha.as_str()), || {
            format!(
                "SCRIPT LOAD returned {sha}, expected the SHA1 {}",
                script.sha
            )
        })?;
        let v = self
            .q(Cmd::new("EVALSHA").arg(script.sha.as_str()).arg("0"))
            .await?;
        expect(v.as_str() == Some(want.as_str()), || {
            format!("EVALSHA after SCRIPT LOAD returned {v}")
        })?;
        Ok("NOSCRIPT, SCRIPT LOAD, EVALSHA ok".into())
    }

    async fn noscript_via_eval(&mut self) -> Probed {
        let script = self.unknown_script("eval");
        let want = format!("{}eval", self.prefix);
        self.expect_noscript(&script).await?;
        let v = self
            .q(Cmd::new("EVAL").arg(script.body.as_str()).arg("0"))
            .await?;
        expect(v.as_str() == Some(want.as_str()), || {
            format!("EVAL returned {v}")
        })?;
        let c = self.conn().await?;
        let evalsha = Cmd::new("EVALSHA").arg(script.sha.as_str()).arg("0");
        match c.request(&evalsha).await {
            Ok(v) if v.as_str() == Some(want.as_str()) => Ok("NOSCRIPT, EVAL, EVALSHA ok".into()),
            Ok(v) => Err(Fail::Failed(format!("EVALSHA after EVAL returned {v}"))),
            Err(e) if e.kind == ErrorKind::NoScript => Err(Fail::Failed(
                "EVAL did not cache the script: EVALSHA still NOSCRIPT".into(),
            )),
            Err(e) => Err(fail(&evalsha, e)),
        }
    }

    async fn noscript_text(&mut self) -> Probed {
        let script = self.unknown_script("text");
        self.expect_noscript(&script).await
    }

    async fn undeclared(&mut self) -> Probed {
        let a = self.key("undeclared:a");
        let b = self.key("undeclared:b");
        let v = self
            .q(Cmd::new("EVAL")
                .arg(
                    "redis.call('SET', ARGV[1], 'x') redis.call('RPUSH', ARGV[2], 'y') \
                     return redis.call('LLEN', ARGV[2]) + redis.call('STRLEN', ARGV[1])",
                )
                .arg("0")
                .arg(a.as_str())
                .arg(b.as_str()))
            .await?;
        expect(v.as_int() == Some(2), || format!("script returned {v}"))?;
        Ok("ok".into())
    }

    /// Three keys under `k:` for the KEYS probes; the pattern that finds them.
    async fn three_keys(&mut self) -> Result<String, Fail> {
        for i in 0..3 {
            let k = self.key(&format!("k:{i}"));
            self.q(Cmd::new("SET").arg(k.as_str()).arg("x")).await?;
        }
        Ok(format!("{}k:*", self.prefix))
    }

    async fn keys_in_script(&mut self) -> Probed {
        let pattern = self.three_keys().await?;
        let v = self
            .q_script(
                Cmd::new("EVAL")
                    .arg("return #redis.call('KEYS', ARGV[1])")
                    .arg("0")
                    .arg(pattern.as_str()),
                "KEYS",
            )
            .await?;
        expect(v.as_int() == Some(3), || {
            format!("KEYS in a script found {v}, not 3")
        })?;
        Ok("3 keys".into())
    }

    async fn keys(&mut self) -> Probed {
        let pattern = self.three_keys().await?;
        let v = self.q(Cmd::new("KEYS").arg(pattern.as_str())).await?;
        let n = v.into_array().map(|a| a.len());
        expect(n == Some(3), || format!("KEYS found {n:?}, not 3"))?;
        Ok("3 keys".into())
    }

    async fn lua_server_call(&mut self) -> Probed {
        match self
            .q(Cmd::new("EVAL").arg("return server.call('PING')").arg("0"))
            .await
        {
            Ok(v) => {
                let v = text(&v);
                expect(v == "PONG", || format!("server.call('PING') returned {v}"))?;
                Ok("server.call works".into())
            }
            Err(Fail::Failed(e)) if e.contains("nonexistent global variable 'server'") => {
                Err(Fail::Failed("no global 'server', only redis.*".into()))
            }
            Err(e) => Err(e),
        }
    }

    async fn lua_pcall_error(&mut self) -> Probed {
        let k = self.key("pcall");
        self.q(Cmd::new("SET").arg(k.as_str()).arg("not a number"))
            .await?;
        let v = self
            .q(Cmd::new("EVAL")
                .arg(
                    "local r = redis.pcall('INCR', KEYS[1]) \
                     if type(r) ~= 'table' or r.err == nil then return 'no error table' end \
                     return r.err",
                )
                .arg("1")
                .arg(k.as_str()))
            .await?;
        let v = text(&v);
        expect(v.starts_with("ERR "), || {
            format!("redis.pcall of a failing INCR gave {v:?}")
        })?;
        Ok(format!("table, err={v}"))
    }

    async fn lua_redis_version(&mut self) -> Probed {
        let v = self
            .q(Cmd::new("EVAL").arg("return redis.REDIS_VERSION").arg("0"))
            .await?;
        Ok(text(&v))
    }

    async fn unpack(&mut self) -> Probed {
        let v = self
            .q(Cmd::new("EVAL")
                .arg(
                    "local t = {} for i = 1, tonumber(ARGV[1]) do t[i] = i end \
                     return select('#', unpack(t))",
                )
                .arg("0")
                .arg(UNPACK_ELEMENTS as u64))
            .await?;
        expect(v.as_int() == Some(UNPACK_ELEMENTS as i64), || {
            format!("unpack returned {v} values")
        })?;
        Ok(format!("{UNPACK_ELEMENTS} values"))
    }

    async fn unpack_limit(&mut self) -> Probed {
        let v = self
            .q(Cmd::new("EVAL")
                .arg(
                    "local n = 20000 local t = {} for i = 1, n do t[i] = i end \
                     local lo, hi = 1, n while lo < hi do \
                       local mid = math.floor((lo + hi + 1) / 2) \
                       if pcall(unpack, t, 1, mid) then lo = mid else hi = mid - 1 end \
                     end return lo",
                )
                .arg("0"))
            .await?;
        Ok(format!("{} values (pcall probe)", text(&v)))
    }

    async fn multi_exec(&mut self) -> Probed {
        let k = self.key("tx");
        let c = self.conn().await?;
        let cmds = [
            Cmd::new("MULTI"),
            Cmd::new("INCR").arg(k.as_str()),
            Cmd::new("INCRBY").arg(k.as_str()).arg(2u64),
            Cmd::new("EXEC"),
        ];
        let r = c.pipeline(&cmds).await.map_err(|e| fail(&cmds[0], e))?;
        let exec = r
            .into_iter()
            .last()
            .unwrap_or(Ok(Value::Nil))
            .map_err(|e| fail(&cmds[3], e))?;
        let got: Vec<Option<i64>> = exec
            .clone()
            .into_array()
            .unwrap_or_default()
            .iter()
            .map(|v| v.as_int())
            .collect();
        expect(got == [Some(1), Some(3)], || {
            format!("EXEC returned {exec}")
        })?;
        Ok("EXEC [1, 3]".into())
    }

    async fn watch_abort(&mut self) -> Probed {
        let k = self.key("watch");
        let mut other = self.open(None).await?;
        let c = self.conn().await?;
        let tx = |val: &str| {
            [
                Cmd::new("MULTI"),
                Cmd::new("SET").arg(k.as_str()).arg(val),
                Cmd::new("EXEC"),
            ]
        };
        let exec_of = |r: Result<Vec<Result<Value, Error>>, Error>| {
            let exec = Cmd::new("EXEC");
            r.map_err(|e| fail(&exec, e))?
                .into_iter()
                .last()
                .unwrap_or(Ok(Value::Nil))
                .map_err(|e| fail(&exec, e))
        };
        // Untouched: EXEC applies.
        rq(c, &Cmd::new("WATCH").arg(k.as_str())).await?;
        let e1 = exec_of(c.pipeline(&tx("a")).await)?;
        expect(!e1.is_nil(), || {
            "EXEC of an untouched WATCH returned nil".into()
        })?;
        // A second connection writes the watched key: EXEC must return nil.
        rq(c, &Cmd::new("WATCH").arg(k.as_str())).await?;
        rq(c, &Cmd::new("GET").arg(k.as_str())).await?;
        rq(&mut other, &Cmd::new("SET").arg(k.as_str()).arg("other")).await?;
        let e2 = exec_of(c.pipeline(&tx("b")).await)?;
        expect(e2.is_nil(), || {
            format!("EXEC after a concurrent write returned {e2}, not nil")
        })?;
        let v = rq(c, &Cmd::new("GET").arg(k.as_str())).await?;
        expect(v.as_str() == Some("other"), || {
            format!("the aborted transaction wrote anyway ({v})")
        })?;
        Ok("nil after a concurrent write".into())
    }

    async fn set_nx(&mut self, unit: &str, ttl: u64) -> Probed {
        let k = self.key(&format!("setnx{unit}"));
        let set = || {
            Cmd::new("SET")
                .arg(k.as_str())
                .arg("x")
                .arg("NX")
                .arg(unit)
                .arg(ttl)
        };
        let a = self.q(set()).await?;
        let b = self.q(set()).await?;
        let pttl = self.q(Cmd::new("PTTL").arg(k.as_str())).await?;
        expect(a.is_ok() && b.is_nil(), || {
            format!("SET NX replied {a}, then {b} (expected OK, then nil)")
        })?;
        let limit = if unit == "EX" { ttl * 1000 } else { ttl } as i64;
        expect(
            matches!(pttl.as_int(), Some(p) if p > 0 && p <= limit),
            || format!("PTTL {pttl} after SET NX {unit} {ttl}"),
        )?;
        Ok("OK, then nil; ttl set".into())
    }

    async fn setnx(&mut self) -> Probed {
        let k = self.key("setnx");
        let a = self.q(Cmd::new("SETNX").arg(k.as_str()).arg("x")).await?;
        let b = self.q(Cmd::new("SETNX").arg(k.as_str()).arg("y")).await?;
        let e = self
            .q(Cmd::new("EXPIRE").arg(k.as_str()).arg(10u64))
            .await?;
        let got = (a.as_int(), b.as_int(), e.as_int());
        expect(got == (Some(1), Some(0), Some(1)), || {
            format!("SETNX {a}, {b}; EXPIRE {e}")
        })?;
        Ok("1, then 0; EXPIRE 1".into())
    }

    async fn incr(&mut self) -> Probed {
        let k = self.key("incr");
        let a = self.q(Cmd::new("INCR").arg(k.as_str())).await?;
        let b = self.q(Cmd::new("INCRBY").arg(k.as_str()).arg(5u64)).await?;
        let c = self.q(Cmd::new("DECR").arg(k.as_str())).await?;
        let got = (a.as_int(), b.as_int(), c.as_int());
        expect(got == (Some(1), Some(6), Some(5)), || {
            format!("INCR {a}, INCRBY {b}, DECR {c}")
        })?;
        Ok("1, 6, 5".into())
    }

    async fn incrbyfloat(&mut self) -> Probed {
        let k = self.key("float");
        let a = self
            .q(Cmd::new("INCRBYFLOAT").arg(k.as_str()).arg("1.5"))
            .await?;
        let b = self
            .q(Cmd::new("INCRBYFLOAT").arg(k.as_str()).arg("0.25"))
            .await?;
        let (a, b) = (text(&a), text(&b));
        expect(a == "1.5" && b == "1.75", || format!("{a}, then {b}"))?;
        Ok(format!("{a}, {b}"))
    }

    async fn pexpire(&mut self) -> Probed {
        let k = self.key("pexpire");
        self.q(Cmd::new("SET").arg(k.as_str()).arg("x")).await?;
        let a = self
            .q(Cmd::new("PEXPIRE").arg(k.as_str()).arg(10_000u64))
            .await?;
        let p = self.q(Cmd::new("PTTL").arg(k.as_str())).await?;
        expect(
            a.as_int() == Some(1) && matches!(p.as_int(), Some(x) if x > 0 && x <= 10_000),
            || format!("PEXPIRE {a}, PTTL {p}"),
        )?;
        Ok("1, pttl set".into())
    }

    async fn zset(&mut self) -> Probed {
        let k = self.key("zset");
        let added = self
            .q(Cmd::new("ZADD")
                .arg(k.as_str())
                .arg("1")
                .arg("a")
                .arg("2")
                .arg("b")
                .arg("3")
                .arg("c")
                .arg("4")
                .arg("d"))
            .await?;
        let by_rank = self
            .q(Cmd::new("ZREMRANGEBYRANK")
                .arg(k.as_str())
                .arg("0")
                .arg("0"))
            .await?;
        let by_score = self
            .q(Cmd::new("ZREMRANGEBYSCORE")
                .arg(k.as_str())
                .arg("4")
                .arg("+inf"))
            .await?;
        let range = self
            .q(Cmd::new("ZRANGEBYSCORE")
                .arg(k.as_str())
                .arg("-inf")
                .arg("+inf")
                .arg("LIMIT")
                .arg("0")
                .arg("10"))
            .await?;
        let got = format!("{added}, {by_rank}, {by_score}, {range}");
        expect(got == "4, 1, 1, [b, c]", || got.clone())?;
        Ok(got)
    }

    async fn lists(&mut self) -> Probed {
        let k = self.key("list");
        let n = self
            .q(Cmd::new("RPUSH").arg(k.as_str()).arg("a").arg("b"))
            .await?;
        let m = self.q(Cmd::new("LPUSH").arg(k.as_str()).arg("z")).await?;
        let first = self.q(Cmd::new("LINDEX").arg(k.as_str()).arg("0")).await?;
        let last = self.q(Cmd::new("LINDEX").arg(k.as_str()).arg("-1")).await?;
        let popped = self.q(Cmd::new("LPOP").arg(k.as_str())).await?;
        let got = format!("{n}, {m}, {first}, {last}, {popped}");
        expect(got == "2, 3, z, b, z", || got.clone())?;
        Ok(got)
    }

    async fn brpoplpush(&mut self) -> Probed {
        let src = self.key("brpoplpush:src");
        let dst = self.key("brpoplpush:dst");
        self.q(Cmd::new("RPUSH").arg(src.as_str()).arg("m")).await?;
        let moved = self
            .q(Cmd::new("BRPOPLPUSH")
                .arg(src.as_str())
                .arg(dst.as_str())
                .arg("1"))
            .await?;
        let t0 = Instant::now();
        let empty = self
            .q(Cmd::new("BRPOPLPUSH")
                .arg(src.as_str())
                .arg(dst.as_str())
                .arg("0.1"))
            .await?;
        let waited = t0.elapsed();
        let head = self
            .q(Cmd::new("LINDEX").arg(dst.as_str()).arg("0"))
            .await?;
        expect(
            moved.as_str() == Some("m") && head.as_str() == Some("m"),
            || format!("moved {moved}, destination head {head}"),
        )?;
        expect(empty.is_nil(), || format!("empty source returned {empty}"))?;
        expect(waited >= Duration::from_millis(50), || {
            format!("an empty source returned after {waited:?}, not after the 0.1s timeout")
        })?;
        Ok("moved; nil after 0.1s timeout".into())
    }

    async fn sets(&mut self) -> Probed {
        let k = self.key("set");
        let a = self
            .q(Cmd::new("SADD").arg(k.as_str()).arg("a").arg("b").arg("c"))
            .await?;
        let r = self.q(Cmd::new("SREM").arg(k.as_str()).arg("b")).await?;
        let m = self.q(Cmd::new("SMEMBERS").arg(k.as_str())).await?;
        let mut members: Vec<String> = m
            .into_array()
            .unwrap_or_default()
            .iter()
            .map(text)
            .collect();
        members.sort();
        let got = format!("{a}, {r}, [{}]", members.join(", "));
        expect(got == "3, 1, [a, c]", || got.clone())?;
        Ok(got)
    }

    async fn hashes(&mut self) -> Probed {
        let k = self.key("hash");
        let a = self
            .q(Cmd::new("HSET")
                .arg(k.as_str())
                .arg("f1")
                .arg("v1")
                .arg("f2")
                .arg("v2"))
            .await?;
        let m = self
            .q(Cmd::new("HMGET")
                .arg(k.as_str())
                .arg("f1")
                .arg("f2")
                .arg("f3"))
            .await?;
        let d = self.q(Cmd::new("HDEL").arg(k.as_str()).arg("f1")).await?;
        let got = format!("{a}, {m}, {d}");
        expect(got == "2, [v1, v2, (nil)], 1", || got.clone())?;
        Ok(got)
    }

    async fn mget(&mut self) -> Probed {
        let a = self.key("mget:a");
        let b = self.key("other:b");
        let missing = format!("{}missing", self.prefix);
        self.q(Cmd::new("SET").arg(a.as_str()).arg("1")).await?;
        self.q(Cmd::new("SET").arg(b.as_str()).arg("2")).await?;
        let v = self
            .q(Cmd::new("MGET")
                .arg(a.as_str())
                .arg(b.as_str())
                .arg(missing.as_str()))
            .await?;
        let got = text(&v);
        expect(got == "[1, 2, (nil)]", || got.clone())?;
        Ok(got)
    }

    async fn scan(&mut self) -> Probed {
        const N: usize = 25;
        let mut cmds = vec![];
        for i in 0..N {
            let k = self.key(&format!("scan:{i}"));
            cmds.push(Cmd::new("SET").arg(k.as_str()).arg("x"));
        }
        let pattern = format!("{}scan:*", self.prefix);
        let c = self.conn().await?;
        for r in c.pipeline(&cmds).await.map_err(|e| fail(&cmds[0], e))? {
            r.map_err(|e| fail(&cmds[0], e))?;
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = "0".to_string();
        let mut calls = 0u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = rq(
                c,
                &Cmd::new("SCAN")
                    .arg(cursor.as_str())
                    .arg("MATCH")
                    .arg(pattern.as_str())
                    .arg("COUNT")
                    .arg("1000"),
            )
            .await?;
            calls += 1;
            let mut parts = v.into_array().unwrap_or_default().into_iter();
            cursor = parts.next().map(|c| text(&c)).unwrap_or_else(|| "0".into());
            for k in parts
                .next()
                .and_then(|k| k.into_array())
                .unwrap_or_default()
            {
                seen.insert(text(&k));
            }
            if cursor == "0" {
                break;
            }
            if Instant::now() > deadline {
                return Err(Fail::Failed(format!(
                    "SCAN did not finish within 60s ({calls} calls)"
                )));
            }
        }
        expect(seen.len() == N, || {
            format!("SCAN MATCH found {} of {N} keys", seen.len())
        })?;
        Ok(format!("{N} of {N} keys"))
    }

    async fn pubsub(&mut self) -> Probed {
        let chan = format!("{}chan", self.prefix);
        let mut sub = self.open(Some(0)).await?;
        let v = rq(&mut sub, &Cmd::new("SUBSCRIBE").arg(chan.as_str())).await?;
        expect(
            v.clone()
                .into_array()
                .and_then(|a| a.first().map(text))
                .as_deref()
                == Some("subscribe"),
            || format!("SUBSCRIBE replied {v}"),
        )?;
        let mut publ = self.open(Some(2)).await?;
        let n = rq(
            &mut publ,
            &Cmd::new("PUBLISH").arg(chan.as_str()).arg("hello"),
        )
        .await?;
        sub.set_timeout(Duration::from_secs(2));
        let m = sub.read_value().await.map_err(|e| e.msg)?;
        let parts: Vec<String> = m
            .into_array()
            .unwrap_or_default()
            .iter()
            .map(text)
            .collect();
        expect(
            parts.first().map(String::as_str) == Some("message")
                && parts.get(2).map(String::as_str) == Some("hello"),
            || format!("subscriber got {parts:?}"),
        )?;
        Ok(format!("received ({n} receiver)"))
    }

    /// `CONFIG GET name`: the value, `None` when the server has no such parameter.
    async fn config_value(&mut self, name: &str) -> Result<Option<String>, Fail> {
        let v = self.q(Cmd::new("CONFIG").arg("GET").arg(name)).await?;
        match v {
            Value::Array(a) if a.len() >= 2 => Ok(Some(text(&a[1]))),
            Value::Map(m) if !m.is_empty() => Ok(Some(text(&m[0].1))),
            Value::Array(a) if a.is_empty() => Ok(None),
            Value::Map(_) => Ok(None),
            other => Err(Fail::Failed(format!("CONFIG GET {name} replied {other}"))),
        }
    }

    async fn config_get(&mut self, name: &str) -> Probed {
        self.config_value(name)
            .await?
            .ok_or_else(|| Fail::Failed(format!("CONFIG GET {name} replied []")))
    }

    /// Lower the busy threshold where `CONFIG SET` is allowed; otherwise the server's own.
    async fn busy_threshold(&mut self) -> Result<Threshold, Fail> {
        for param in ["busy-reply-threshold", "lua-time-limit"] {
            let old = match self.config_value(param).await {
                Ok(Some(v)) => v,
                Ok(None) => continue,
                Err(Fail::Forbidden { .. }) => {
                    return Ok(Threshold::Kept(DEFAULT_BUSY_THRESHOLD_MS))
                }
                Err(e) => return Err(e),
            };
            let set = Cmd::new("CONFIG")
                .arg("SET")
                .arg(param)
                .arg(BUSY_THRESHOLD_MS);
            return match self.q(set).await {
                Ok(_) => Ok(Threshold::Lowered { param, old }),
                Err(Fail::Forbidden { .. }) => Ok(Threshold::Kept(
                    old.parse().unwrap_or(DEFAULT_BUSY_THRESHOLD_MS),
                )),
                Err(e) => Err(e),
            };
        }
        Ok(Threshold::Kept(DEFAULT_BUSY_THRESHOLD_MS))
    }

    /// The `-BUSY` text a third connection reads while a second one runs a script past the
    /// busy threshold; the script is then ended with `SCRIPT KILL` (or by its own clock).
    async fn busy(&mut self) -> Outcome {
        if !self.stall {
            return Outcome::Skipped("--no-stall".into());
        }
        let threshold = match self.busy_threshold().await {
            Ok(t) => t,
            Err(e) => return self.outcome(Err(e)),
        };
        let wait_ms = match &threshold {
            Threshold::Lowered { .. } => BUSY_THRESHOLD_MS,
            Threshold::Kept(ms) => *ms,
        };
        if wait_ms > MAX_BUSY_WAIT_MS {
            return Outcome::Skipped(format!(
                "not runnable: the busy threshold is {wait_ms} ms and CONFIG SET is refused; \
                 waiting it out would stall the server too long"
            ));
        }
        let r = self.provoke_busy(wait_ms).await;
        if let Threshold::Lowered { param, old } = threshold {
            let restore = Cmd::new("CONFIG").arg("SET").arg(param).arg(old.as_str());
            if let Err(e) = self.q(restore).await {
                return Outcome::Failed(format!(
                    "could not restore {param} to {old}: {}",
                    match e {
                        Fail::Failed(m) | Fail::Forbidden { reply: m, .. } => m,
                    }
                ));
            }
        }
        self.outcome(r)
    }

    async fn provoke_busy(&mut self, wait_ms: u64) -> Probed {
        let spin_ms = wait_ms + BUSY_SCRIPT_MARGIN_MS;
        let limit = Duration::from_millis(spin_ms + 3000);
        let key = self.key("busy");
        let mut runner = self.open(None).await?;
        let mut other = self.open(None).await?;
        runner.set_timeout(limit);
        other.set_timeout(limit);
        let script = Cmd::new("EVAL").arg(SPIN).arg("0").arg(spin_ms);
        let spin = script.clone();
        let task = tokio::spawn(async move { runner.request(&spin).await });
        let get = Cmd::new("GET").arg(key.as_str());
        let mut seen = Err(Fail::Failed(format!(
            "no BUSY reply while a script ran for {spin_ms} ms"
        )));
        // Bounded twice: the script ends by its own clock after spin_ms (or its connection
        // times out), and the polls are counted.
        let polls = limit.as_millis() as u64 / 20 + 1;
        for _ in 0..polls {
            if task.is_finished() {
                break;
            }
            // Give the script a moment to start; a GET served before it is just a miss.
            tokio::time::sleep(Duration::from_millis(20)).await;
            match other.request(&get).await {
                Err(e) if e.kind == ErrorKind::Busy => {
                    let _ = other.request(&Cmd::new("SCRIPT").arg("KILL")).await;
                    seen = Ok(e.msg);
                    break;
                }
                Err(e) => {
                    seen = Err(fail(&get, e));
                    break;
                }
                Ok(_) => {}
            }
        }
        let ran = task
            .await
            .map_err(|e| Fail::Failed(format!("the busy script's task failed: {e}")))?;
        match ran {
            Err(e) if seen.is_err() && !e.msg.contains("SCRIPT KILL") => {
                Err(fail_in_script(&script, "TIME", e))
            }
            _ => seen,
        }
    }

    /// Delete every key this run wrote (the URL's database, and db 1/2 of the SELECT checks).
    async fn cleanup(&mut self) {
        let keys = std::mem::take(&mut self.keys);
        if let Ok(c) = self.conn().await {
            for chunk in keys.chunks(100) {
                let mut del = Cmd::new("DEL");
                for k in chunk {
                    del.push(k.as_str());
                }
                let _ = c.request(&del).await;
            }
        }
        let k = format!("{}db", self.prefix);
        for db in [1u32, 2] {
            if let Ok(mut c) = self.open(Some(db)).await {
                let _ = c.request(&Cmd::new("DEL").arg(k.as_str())).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_refusals_from_real_replies() {
        // Replies recorded from Redis 7.0.15, Valkey 8.1.8 and 9.1.2 with rename-command / ACLs.
        let cases = [
            (
                "ERR unknown command 'keys', with args beginning with: 'x*' ",
                Refused::Command(Some("KEYS".into())),
            ),
            (
                "ERR unknown command `CONFIG`, with args beginning with: `GET`, `*`, ",
                Refused::Command(Some("CONFIG".into())),
            ),
            (
                "NOPERM User lim has no permissions to run the 'client|setinfo' command",
                Refused::Command(Some("CLIENT SETINFO".into())),
            ),
            (
                "NOPERM this user has no permissions to run the 'config|get' command",
                Refused::Command(Some("CONFIG GET".into())),
            ),
            (
                "ERR Unknown Redis command called from script script: ac94…, on @user_script:1.",
                Refused::InScript,
            ),
            (
                "ERR Unknown command called from script script: ac94…, on @user_script:1.",
                Refused::InScript,
            ),
            (
                "ERR ACL failure in script: User lim has no permissions to run the 'keys' command",
                Refused::InScript,
            ),
            // A version without the subcommand is a failure, not a refusal.
            (
                "ERR unknown subcommand 'setinfo'. Try CLIENT HELP.",
                Refused::No,
            ),
            ("WRONGTYPE Operation against a key", Refused::No),
            (
                "BUSY Valkey is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
                Refused::No,
            ),
        ];
        for (msg, want) in cases {
            assert_eq!(classify(msg), want, "{msg}");
        }
    }

    #[test]
    fn names_the_refused_command() {
        let keys = Cmd::new("keys").arg("x*");
        let e = Error::server("ERR unknown command 'keys', with args beginning with: 'x*' ".into());
        assert!(matches!(fail(&keys, e), Fail::Forbidden { command, .. } if command == "KEYS"));
        // Without a name in the reply, the command sent.
        let info = Cmd::new("INFO").arg("server");
        let e = Error::server("NOPERM not allowed".into());
        assert!(matches!(fail(&info, e), Fail::Forbidden { command, .. } if command == "INFO"));
        // From inside a script: the command the probe called there.
        let eval = Cmd::new("EVAL")
            .arg("return redis.call('KEYS', '*')")
            .arg("0");
        let e = Error::server("ERR Unknown command called from script script: x".into());
        assert!(
            matches!(fail_in_script(&eval, "KEYS", e.clone()), Fail::Forbidden { command, .. } if command == "KEYS")
        );
        assert!(
            matches!(fail(&eval, e), Fail::Forbidden { command, .. } if command == "a command called from EVAL")
        );
        let e = Error::server("ERR value is not an integer or out of range".into());
        assert_eq!(
            fail(&eval, e),
            Fail::Failed("ERR value is not an integer or out of range".into())
        );
    }
}
