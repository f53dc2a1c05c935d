//! Phase 1 of the migration as a command: probe, on a candidate server (and optionally on a
//! baseline), each protocol feature the ECHO stack's clients rely on (redis-py 5.0.6, Dramatiq's
//! broker scripts, the locks, the rate limiters, cross-DB pub/sub), as named checks with a short
//! observed value, then compare the two columns.
//!
//! A probe never stops the others: a failed command is that check's outcome. Every key lives
//! under [`KEY_PREFIX`] plus a per-run nonce and is deleted at the end. Scripts stay in the
//! script cache (`SCRIPT FLUSH` is never sent: it would hit the application's scripts too).

use std::fmt::Write;
use std::time::{Duration, Instant};

use crate::valkey::target::{TargetUrl, TlsChoice};
use crate::valkey::{Cmd, Conn, ErrorKind, Route, Script, Value};

/// Every key a compat run writes starts with this (then a per-run nonce).
pub const KEY_PREFIX: &str = "vc:compat:";

/// Element count of the `unpack` probe: what Dramatiq's stack probe finds on Redis and Valkey.
pub const UNPACK_ELEMENTS: usize = 7992;

/// Whether a check can fail the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// Behaviour the clients depend on: failing where the baseline works (or failing without a
    /// baseline) fails the run.
    Behaviour,
    /// Reported for the record (versions, settings, calls whose refusal the clients ignore);
    /// never fails the run, except the eviction-policy warning.
    Info,
}

/// What one check observed on one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Worked as the clients expect; the short observed value.
    Ok(String),
    /// Did not behave as expected; what happened instead.
    Failed(String),
    /// Not applicable here (e.g. the AUTH check when the URL has no password).
    Skipped(String),
}

impl Outcome {
    fn from(r: Result<String, String>) -> Outcome {
        match r {
            Ok(v) => Outcome::Ok(v),
            Err(e) => Outcome::Failed(e),
        }
    }
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok(_))
    }
    pub fn is_failed(&self) -> bool {
        matches!(self, Outcome::Failed(_))
    }
    /// The cell text: the value, `failed: why` or `skipped: why`.
    pub fn cell(&self) -> String {
        match self {
            Outcome::Ok(v) => v.clone(),
            Outcome::Failed(e) => format!("failed: {e}"),
            Outcome::Skipped(e) => format!("skipped: {e}"),
        }
    }
}

/// One check on one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub name: &'static str,
    pub weight: Weight,
    pub outcome: Outcome,
    /// A risk found in a working setting (an `allkeys-*` eviction policy).
    pub warning: Option<String>,
}

/// A row's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Works (no baseline).
    Ok,
    /// Same value on both (or failed on both).
    Same,
    /// Both work with different values, or the candidate works where the baseline fails, or
    /// the candidate's setting carries a warning the baseline's does not.
    Different,
    /// Fails on the candidate where the baseline works, or fails without a baseline.
    Failed,
    /// Not applicable on either side.
    Skipped,
    /// Works, with a warning (no baseline).
    Warning,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Same => "same",
            Status::Different => "different",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Warning => "warning",
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: &'static str,
    pub weight: Weight,
    pub baseline: Option<Outcome>,
    pub candidate: Outcome,
    pub status: Status,
    /// Whether this row fails the run.
    pub matters: bool,
    /// Why it matters (or the warning), for the lines under the table.
    pub note: Option<String>,
}

/// One probed server.
#[derive(Debug, Clone)]
pub struct Side {
    /// The URL without its password.
    pub label: String,
    /// `valkey 9.1.2` / `redis 7.0.15`.
    pub server: String,
    pub probes: Vec<Probe>,
}

/// The result of a compat run.
#[derive(Debug, Clone)]
pub struct Report {
    pub baseline: Option<Side>,
    pub candidate: Side,
    pub rows: Vec<Row>,
}

impl Report {
    /// Whether a row fails the run (exit 1).
    pub fn failed(&self) -> bool {
        self.rows.iter().any(|r| r.matters)
    }
    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }
    /// The terminal table and the notes under it.
    pub fn render(&self) -> String {
        render(self)
    }
}

/// Why a compat run could not produce a table.
#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    /// A malformed URL or TLS option (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A server is unreachable or refused the connection (exit 3).
    #[error("{0}")]
    Target(String),
}

/// Connection choices shared by both sides.
#[derive(Debug, Clone)]
pub struct Options {
    pub tls: TlsChoice,
    /// Per request deadline.
    pub timeout: Duration,
    /// Fills the candidate URL's missing password (`VALKEY_PASSWORD`).
    pub candidate_password: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tls: TlsChoice::default(),
            timeout: Duration::from_secs(5),
            candidate_password: None,
        }
    }
}

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
        Some(u) => Some(probe(u, opts, "baseline").await?),
        None => None,
    };
    let c = probe(&curl, opts, "candidate").await?;
    let rows = compare(b.as_ref().map(|s| s.probes.as_slice()), &c.probes);
    Ok(Report {
        baseline: b,
        candidate: c,
        rows,
    })
}

/// Run every check against one server. `role` names it in connection errors.
pub async fn probe(url: &TargetUrl, opts: &Options, role: &str) -> Result<Side, CompatError> {
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
    };
    // Reachability first (connect, TLS, AUTH): a target we cannot talk to is exit 3, not a
    // table of failures. INFO itself may be disabled by a provider: then its rows fail.
    s.conn()
        .await
        .map_err(|e| CompatError::Target(format!("{role} {url}: {e}")))?;
    let info = s
        .q(Cmd::new("INFO").arg("server"))
        .await
        .map(|v| v.as_str().unwrap_or_default().to_string());
    let field = |f: &str| {
        info.as_ref()
            .ok()
            .and_then(|i| crate::valkey::embedded::parse_info(i, f))
    };
    let server = match (&info, field("valkey_version")) {
        (Err(_), _) => "INFO unavailable".to_string(),
        (Ok(_), Some(v)) => format!(
            "{} {v}",
            field("server_name").unwrap_or_else(|| "valkey".into())
        ),
        (Ok(_), None) => format!("redis {}", field("redis_version").unwrap_or_default()),
    };

    let mut out = vec![];
    let mut push = |name: &'static str, weight: Weight, outcome: Outcome| {
        out.push(Probe {
            name,
            weight,
            outcome,
            warning: None,
        })
    };
    let present = |f: &str| match &info {
        Ok(_) => Outcome::Ok(field(f).unwrap_or_else(|| "(absent)".into())),
        Err(e) => Outcome::Failed(format!("INFO server: {e}")),
    };
    push("info redis_version", Weight::Info, present("redis_version"));
    push(
        "info valkey_version",
        Weight::Info,
        present("valkey_version"),
    );
    push("info server_name", Weight::Info, present("server_name"));

    use Weight::{Behaviour as B, Info as I};
    push("resp2 default", B, Outcome::from(s.resp2_default().await));
    push("hello 3", B, Outcome::from(s.hello3().await));
    push("client setinfo", I, Outcome::from(s.client_setinfo().await));
    push("select 1", B, Outcome::from(s.select(1).await));
    push("select 2", B, Outcome::from(s.select(2).await));
    push("auth wrong password", B, s.auth_wrong_password().await);
    push("eval", B, Outcome::from(s.eval().await));
    push(
        "evalsha noscript recovery",
        B,
        Outcome::from(s.noscript().await),
    );
    push(
        "eval undeclared keys",
        B,
        Outcome::from(s.undeclared().await),
    );
    push("keys in script", B, Outcome::from(s.keys_in_script().await));
    push("lua unpack 7992", B, Outcome::from(s.unpack().await));
    push("lua unpack limit", I, Outcome::from(s.unpack_limit().await));
    push("multi exec", B, Outcome::from(s.multi_exec().await));
    push("watch exec abort", B, Outcome::from(s.watch_abort().await));
    push("set nx px", B, Outcome::from(s.set_nx("PX", 10_000).await));
    push("set nx ex", B, Outcome::from(s.set_nx("EX", 10).await));
    push("setnx expire", B, Outcome::from(s.setnx().await));
    push("incr incrby decr", B, Outcome::from(s.incr().await));
    push("incrbyfloat", B, Outcome::from(s.incrbyfloat().await));
    push("pexpire pttl", B, Outcome::from(s.pexpire().await));
    push(
        "zadd zremrange zrangebyscore",
        B,
        Outcome::from(s.zset().await),
    );
    push("lpush lindex lpop rpush", B, Outcome::from(s.lists().await));
    push("brpoplpush", B, Outcome::from(s.brpoplpush().await));
    push("sadd smembers srem", B, Outcome::from(s.sets().await));
    push("hset hmget hdel", B, Outcome::from(s.hashes().await));
    push("mget", B, Outcome::from(s.mget().await));
    push("scan match count", B, Outcome::from(s.scan().await));
    push("pubsub across dbs", B, Outcome::from(s.pubsub().await));
    for p in ["maxmemory-policy", "timeout", "maxclients"] {
        let name = match p {
            "maxmemory-policy" => "config maxmemory-policy",
            "timeout" => "config timeout",
            _ => "config maxclients",
        };
        push(name, I, Outcome::from(s.config_get(p).await));
    }
    if let Some(p) = out.iter_mut().find(|p| p.name == "config maxmemory-policy") {
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
        server,
        probes: out,
    })
}

/// Pair the columns and judge each row.
pub fn compare(baseline: Option<&[Probe]>, candidate: &[Probe]) -> Vec<Row> {
    candidate
        .iter()
        .map(|c| {
            let b = baseline.and_then(|bs| bs.iter().find(|b| b.name == c.name));
            judge(b, c)
        })
        .collect()
}

fn judge(b: Option<&Probe>, c: &Probe) -> Row {
    use Outcome as O;
    let behaviour = c.weight == Weight::Behaviour;
    let (status, mut matters, mut note) = match b.map(|b| &b.outcome) {
        None => match &c.outcome {
            O::Ok(_) => (Status::Ok, false, None),
            O::Skipped(_) => (Status::Skipped, false, None),
            O::Failed(e) => (
                Status::Failed,
                behaviour,
                behaviour.then(|| format!("fails on the candidate: {e}")),
            ),
        },
        Some(bo) => match (bo, &c.outcome) {
            (O::Ok(x), O::Ok(y)) => (
                if x == y {
                    Status::Same
                } else {
                    Status::Different
                },
                false,
                None,
            ),
            (O::Ok(_), O::Failed(e)) => (
                Status::Failed,
                behaviour,
                behaviour.then(|| format!("works on the baseline, fails on the candidate: {e}")),
            ),
            (O::Failed(x), O::Failed(y)) => (
                if x == y {
                    Status::Same
                } else {
                    Status::Different
                },
                false,
                None,
            ),
            (O::Failed(_), O::Ok(_)) => (Status::Different, false, None),
            (_, O::Failed(e)) => (
                Status::Failed,
                behaviour,
                behaviour.then(|| format!("fails on the candidate: {e}")),
            ),
            (_, O::Skipped(_)) | (O::Skipped(_), _) => (Status::Skipped, false, None),
        },
    };
    let mut status = status;
    if note.is_none() && status == Status::Failed {
        if let O::Failed(e) = &c.outcome {
            note = Some(format!("informational, does not fail the run: {e}"));
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
        name: c.name,
        weight: c.weight,
        baseline: b.map(|b| b.outcome.clone()),
        candidate: c.outcome.clone(),
        status,
        matters,
        note,
    }
}

const CELL: usize = 38;

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn render(r: &Report) -> String {
    let mut o = String::new();
    let with_base = r.baseline.is_some();
    if let Some(b) = &r.baseline {
        let _ = writeln!(o, "baseline   {} ({})", b.label, b.server);
    }
    let _ = writeln!(
        o,
        "candidate  {} ({})",
        r.candidate.label, r.candidate.server
    );
    let _ = writeln!(o);
    let w = r
        .rows
        .iter()
        .map(|x| x.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    if with_base {
        let _ = writeln!(
            o,
            "{:<w$}  {:<CELL$}  {:<CELL$}  status",
            "check", "baseline", "candidate"
        );
    } else {
        let _ = writeln!(o, "{:<w$}  {:<CELL$}  status", "check", "candidate");
    }
    for row in &r.rows {
        let c = clip(&row.candidate.cell(), CELL);
        let mark = if row.matters { "  <-" } else { "" };
        match &row.baseline {
            Some(b) => {
                let _ = writeln!(
                    o,
                    "{:<w$}  {:<CELL$}  {:<CELL$}  {}{mark}",
                    row.name,
                    clip(&b.cell(), CELL),
                    c,
                    row.status.name()
                );
            }
            None if with_base => {
                let _ = writeln!(
                    o,
                    "{:<w$}  {:<CELL$}  {:<CELL$}  {}{mark}",
                    row.name,
                    "-",
                    c,
                    row.status.name()
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "{:<w$}  {:<CELL$}  {}{mark}",
                    row.name,
                    c,
                    row.status.name()
                );
            }
        }
    }
    let _ = writeln!(o);
    let bad: Vec<&Row> = r.rows.iter().filter(|x| x.matters).collect();
    for row in r.rows.iter().filter(|x| x.note.is_some()) {
        let _ = writeln!(
            o,
            "{} {}: {}",
            if row.matters {
                "matters: "
            } else {
                "note:    "
            },
            row.name,
            row.note.as_deref().unwrap_or_default()
        );
    }
    if bad.is_empty() {
        let _ = writeln!(
            o,
            "compat: pass ({} checks{})",
            r.rows.len(),
            if with_base {
                format!(
                    ", {} different",
                    r.rows
                        .iter()
                        .filter(|x| x.status == Status::Different)
                        .count()
                )
            } else {
                String::new()
            }
        );
    } else {
        let _ = writeln!(
            o,
            "compat: fail ({} of {} checks matter)",
            bad.len(),
            r.rows.len()
        );
    }
    o
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

fn expect(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what())
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

/// One server under probe: the main connection (reopened when broken) and the keys written.
struct Session {
    url: TargetUrl,
    route: Route,
    conn: Option<Conn>,
    prefix: String,
    keys: Vec<String>,
}

impl Session {
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

    async fn q(&mut self, cmd: Cmd) -> Result<Value, String> {
        let c = self.conn().await?;
        c.request(&cmd).await.map_err(|e| e.msg)
    }

    async fn resp2_default(&mut self) -> Result<String, String> {
        let k = self.key("resp2");
        let mut c = self.open(None).await?;
        let r = async {
            c.request(&Cmd::new("HSET").arg(k.as_str()).arg("f").arg("v"))
                .await
                .map_err(|e| e.msg)?;
            let v = c
                .request(&Cmd::new("HGETALL").arg(k.as_str()))
                .await
                .map_err(|e| e.msg)?;
            match v {
                Value::Array(a) if a.len() == 2 => Ok("array replies without HELLO".to_string()),
                other => Err(format!("HGETALL replied {other:?} without HELLO")),
            }
        }
        .await;
        r
    }

    async fn hello3(&mut self) -> Result<String, String> {
        let k = self.key("resp3");
        let mut c = self.open_unauthenticated().await?;
        let mut hello = Cmd::new("HELLO").arg("3");
        if let Some(p) = &self.url.password {
            hello.push("AUTH");
            hello.push(self.url.username.as_deref().unwrap_or("default"));
            hello.push(p.as_str());
        }
        let v = c.request(&hello).await.map_err(|e| e.msg)?;
        let Value::Map(m) = v else {
            return Err(format!(
                "HELLO 3 replied {}, not a map",
                clip(&text(&v), 40)
            ));
        };
        let server = map_get(&m, "server").map(text).unwrap_or_default();
        let version = map_get(&m, "version").map(text).unwrap_or_default();
        let proto = map_get(&m, "proto").and_then(|v| v.as_int());
        expect(proto == Some(3), || format!("proto {proto:?} in HELLO 3"))?;
        expect(!server.is_empty() && !version.is_empty(), || {
            "HELLO 3 map lacks server/version".into()
        })?;
        c.request(&Cmd::new("HSET").arg(k.as_str()).arg("f").arg("v"))
            .await
            .map_err(|e| e.msg)?;
        let h = c
            .request(&Cmd::new("HGETALL").arg(k.as_str()))
            .await
            .map_err(|e| e.msg)?;
        expect(matches!(h, Value::Map(_)), || {
            format!("HGETALL after HELLO 3 is not a map: {h:?}")
        })?;
        Ok(format!("map, server={server} {version}"))
    }

    async fn client_setinfo(&mut self) -> Result<String, String> {
        let mut c = self.open(None).await?;
        for (k, v) in [("LIB-NAME", "redis-py"), ("LIB-VER", "5.0.6")] {
            c.request(&Cmd::new("CLIENT").arg("SETINFO").arg(k).arg(v))
                .await
                .map_err(|e| format!("{} (redis-py 5.0.6 ignores this refusal)", e.msg))?;
        }
        let info = c
            .request(&Cmd::new("CLIENT").arg("INFO"))
            .await
            .map_err(|e| e.msg)?;
        let info = info.as_str().unwrap_or_default().to_string();
        expect(info.contains("lib-name=redis-py"), || {
            "CLIENT INFO does not show lib-name=redis-py".into()
        })?;
        Ok("OK, shown in CLIENT INFO".into())
    }

    async fn select(&mut self, db: u32) -> Result<String, String> {
        let k = format!("{}db", self.prefix);
        let mut c = self.open(Some(0)).await?;
        let r = async {
            let sel = |n: u32| Cmd::new("SELECT").arg(n as u64);
            let v = c.request(&sel(db)).await.map_err(|e| e.msg)?;
            expect(v.is_ok(), || format!("SELECT {db} replied {v}"))?;
            c.request(&Cmd::new("SET").arg(k.as_str()).arg("x"))
                .await
                .map_err(|e| e.msg)?;
            c.request(&sel(0)).await.map_err(|e| e.msg)?;
            let n = c
                .request(&Cmd::new("EXISTS").arg(k.as_str()))
                .await
                .map_err(|e| e.msg)?;
            expect(n.as_int() == Some(0), || {
                format!("a key written in db {db} is visible in db 0")
            })?;
            c.request(&sel(db)).await.map_err(|e| e.msg)?;
            Ok::<_, String>("OK, isolated from db 0".to_string())
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

    async fn eval(&mut self) -> Result<String, String> {
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

    async fn noscript(&mut self) -> Result<String, String> {
        // A body nobody else has loaded: its SHA is unknown to the server.
        let script = Script::new(&format!("return '{}'", self.prefix));
        let evalsha = || Cmd::new("EVALSHA").arg(script.sha.as_str()).arg("0");
        let c = self.conn().await?;
        match c.request(&evalsha()).await {
            Err(e) if e.kind == ErrorKind::NoScript => {}
            Err(e) => return Err(format!("unknown sha gave {:?}, not NOSCRIPT", e.msg)),
            Ok(v) => return Err(format!("unknown sha ran ({v})")),
        }
        let sha = c
            .request(&Cmd::new("SCRIPT").arg("LOAD").arg(script.body.as_str()))
            .await
            .map_err(|e| e.msg)?;
        expect(sha.as_str() == Some(script.sha.as_str()), || {
            format!(
                "SCRIPT LOAD returned {sha}, expected the SHA1 {}",
                script.sha
            )
        })?;
        let v = c.request(&evalsha()).await.map_err(|e| e.msg)?;
        expect(v.as_str() == Some(self.prefix.as_str()), || {
            format!("EVALSHA after SCRIPT LOAD returned {v}")
        })?;
        Ok("NOSCRIPT, SCRIPT LOAD, EVALSHA ok".into())
    }

    async fn undeclared(&mut self) -> Result<String, String> {
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

    async fn keys_in_script(&mut self) -> Result<String, String> {
        for i in 0..3 {
            let k = self.key(&format!("k:{i}"));
            self.q(Cmd::new("SET").arg(k.as_str()).arg("x")).await?;
        }
        let pattern = format!("{}k:*", self.prefix);
        let v = self
            .q(Cmd::new("EVAL")
                .arg("return #redis.call('KEYS', ARGV[1])")
                .arg("0")
                .arg(pattern.as_str()))
            .await?;
        expect(v.as_int() == Some(3), || {
            format!("KEYS in a script found {v}, not 3")
        })?;
        Ok("3 keys".into())
    }

    async fn unpack(&mut self) -> Result<String, String> {
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

    async fn unpack_limit(&mut self) -> Result<String, String> {
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

    async fn multi_exec(&mut self) -> Result<String, String> {
        let k = self.key("tx");
        let c = self.conn().await?;
        let r = c
            .pipeline(&[
                Cmd::new("MULTI"),
                Cmd::new("INCR").arg(k.as_str()),
                Cmd::new("INCRBY").arg(k.as_str()).arg(2u64),
                Cmd::new("EXEC"),
            ])
            .await
            .map_err(|e| e.msg)?;
        let exec = r
            .into_iter()
            .last()
            .unwrap_or(Ok(Value::Nil))
            .map_err(|e| e.msg)?;
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

    async fn watch_abort(&mut self) -> Result<String, String> {
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
        let exec_of =
            |r: Result<Vec<Result<Value, crate::valkey::Error>>, crate::valkey::Error>| {
                r.map_err(|e| e.msg)?
                    .into_iter()
                    .last()
                    .unwrap_or(Ok(Value::Nil))
                    .map_err(|e| e.msg)
            };
        // Untouched: EXEC applies.
        c.request(&Cmd::new("WATCH").arg(k.as_str()))
            .await
            .map_err(|e| e.msg)?;
        let e1 = exec_of(c.pipeline(&tx("a")).await)?;
        expect(!e1.is_nil(), || {
            "EXEC of an untouched WATCH returned nil".into()
        })?;
        // A second connection writes the watched key: EXEC must return nil.
        c.request(&Cmd::new("WATCH").arg(k.as_str()))
            .await
            .map_err(|e| e.msg)?;
        c.request(&Cmd::new("GET").arg(k.as_str()))
            .await
            .map_err(|e| e.msg)?;
        other
            .request(&Cmd::new("SET").arg(k.as_str()).arg("other"))
            .await
            .map_err(|e| e.msg)?;
        let e2 = exec_of(c.pipeline(&tx("b")).await)?;
        expect(e2.is_nil(), || {
            format!("EXEC after a concurrent write returned {e2}, not nil")
        })?;
        let v = c
            .request(&Cmd::new("GET").arg(k.as_str()))
            .await
            .map_err(|e| e.msg)?;
        expect(v.as_str() == Some("other"), || {
            format!("the aborted transaction wrote anyway ({v})")
        })?;
        Ok("nil after a concurrent write".into())
    }

    async fn set_nx(&mut self, unit: &str, ttl: u64) -> Result<String, String> {
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

    async fn setnx(&mut self) -> Result<String, String> {
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

    async fn incr(&mut self) -> Result<String, String> {
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

    async fn incrbyfloat(&mut self) -> Result<String, String> {
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

    async fn pexpire(&mut self) -> Result<String, String> {
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

    async fn zset(&mut self) -> Result<String, String> {
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

    async fn lists(&mut self) -> Result<String, String> {
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

    async fn brpoplpush(&mut self) -> Result<String, String> {
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

    async fn sets(&mut self) -> Result<String, String> {
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

    async fn hashes(&mut self) -> Result<String, String> {
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

    async fn mget(&mut self) -> Result<String, String> {
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

    async fn scan(&mut self) -> Result<String, String> {
        const N: usize = 25;
        let mut cmds = vec![];
        for i in 0..N {
            let k = self.key(&format!("scan:{i}"));
            cmds.push(Cmd::new("SET").arg(k.as_str()).arg("x"));
        }
        let pattern = format!("{}scan:*", self.prefix);
        let c = self.conn().await?;
        for r in c.pipeline(&cmds).await.map_err(|e| e.msg)? {
            r.map_err(|e| e.msg)?;
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = "0".to_string();
        let mut calls = 0u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = c
                .request(
                    &Cmd::new("SCAN")
                        .arg(cursor.as_str())
                        .arg("MATCH")
                        .arg(pattern.as_str())
                        .arg("COUNT")
                        .arg("1000"),
                )
                .await
                .map_err(|e| e.msg)?;
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
                return Err(format!("SCAN did not finish within 60s ({calls} calls)"));
            }
        }
        expect(seen.len() == N, || {
            format!("SCAN MATCH found {} of {N} keys", seen.len())
        })?;
        Ok(format!("{N} of {N} keys"))
    }

    async fn pubsub(&mut self) -> Result<String, String> {
        let chan = format!("{}chan", self.prefix);
        let mut sub = self.open(Some(0)).await?;
        let v = sub
            .request(&Cmd::new("SUBSCRIBE").arg(chan.as_str()))
            .await
            .map_err(|e| e.msg)?;
        expect(
            v.clone()
                .into_array()
                .and_then(|a| a.first().map(text))
                .as_deref()
                == Some("subscribe"),
            || format!("SUBSCRIBE replied {v}"),
        )?;
        let mut publ = self.open(Some(2)).await?;
        let n = publ
            .request(&Cmd::new("PUBLISH").arg(chan.as_str()).arg("hello"))
            .await
            .map_err(|e| e.msg)?;
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

    async fn config_get(&mut self, name: &str) -> Result<String, String> {
        let v = self.q(Cmd::new("CONFIG").arg("GET").arg(name)).await?;
        match v {
            Value::Array(a) if a.len() >= 2 => Ok(text(&a[1])),
            Value::Map(m) if !m.is_empty() => Ok(text(&m[0].1)),
            other => Err(format!("CONFIG GET {name} replied {other}")),
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

    fn p(name: &'static str, weight: Weight, outcome: Outcome) -> Probe {
        Probe {
            name,
            weight,
            outcome,
            warning: None,
        }
    }

    #[test]
    fn judges_rows() {
        let ok = |v: &str| Outcome::Ok(v.into());
        let failed = |v: &str| Outcome::Failed(v.into());
        let base = vec![
            p("a", Weight::Behaviour, ok("x")),
            p("b", Weight::Behaviour, ok("x")),
            p("c", Weight::Behaviour, failed("ERR")),
            p("d", Weight::Info, ok("7.0")),
            p("e", Weight::Info, ok("x")),
            p("f", Weight::Behaviour, failed("ERR")),
        ];
        let cand = vec![
            p("a", Weight::Behaviour, ok("x")),
            p("b", Weight::Behaviour, failed("ERR nope")),
            p("c", Weight::Behaviour, ok("x")),
            p("d", Weight::Info, ok("9.1")),
            p("e", Weight::Info, failed("ERR")),
            p("f", Weight::Behaviour, failed("ERR")),
        ];
        let rows = compare(Some(&base), &cand);
        let got: Vec<(&str, bool)> = rows.iter().map(|r| (r.status.name(), r.matters)).collect();
        assert_eq!(
            got,
            [
                ("same", false),
                ("failed", true),
                ("different", false),
                ("different", false),
                ("failed", false),
                ("same", false)
            ]
        );
        // Without a baseline any behaviour failure matters, info rows never do.
        let rows = compare(None, &cand);
        let got: Vec<(&str, bool)> = rows.iter().map(|r| (r.status.name(), r.matters)).collect();
        assert_eq!(got[1], ("failed", true));
        assert_eq!(got[4], ("failed", false));
        assert_eq!(got[0], ("ok", false));
    }

    #[test]
    fn eviction_policy_warning_matters_unless_the_baseline_has_it_too() {
        let mut c = p(
            "config maxmemory-policy",
            Weight::Info,
            Outcome::Ok("allkeys-lru".into()),
        );
        c.warning = Some("evicts".into());
        let b = p(
            "config maxmemory-policy",
            Weight::Info,
            Outcome::Ok("noeviction".into()),
        );
        let r = compare(Some(std::slice::from_ref(&b)), std::slice::from_ref(&c));
        assert_eq!((r[0].status, r[0].matters), (Status::Different, true));
        let r = compare(None, std::slice::from_ref(&c));
        assert_eq!((r[0].status, r[0].matters), (Status::Warning, true));
        let r = compare(Some(std::slice::from_ref(&c)), std::slice::from_ref(&c));
        assert_eq!((r[0].status, r[0].matters), (Status::Same, false));
    }

    #[test]
    fn clips_cells() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }
}
