//! `type = "set"`: acknowledged writes, Jepsen's set. Clients add unique values to a few sets
//! (`SADD`); at the end one read (`SSCAN`) takes every value back. An acknowledged add missing
//! from the read is a **lost** write; an add that failed ambiguously (timeout, broken connection)
//! may or may not be there (**indeterminate**); an add the server refused that is there anyway,
//! or a value nobody wrote, is a safety failure too. Values carry a per-run nonce, so old runs'
//! values on a shared server are not mistaken for this run's.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::ctx::Ctx;
use crate::plan::rollout::Clients;
use crate::plan::{SetCounter as C, SetPlan, WorkloadPlan};
use crate::rng::Rng;
use crate::valkey::{Client, Cmd, Value};
use crate::workload::pacing::Pacer;

const OP_ADD: usize = 0;
const OP_READ: usize = 1;

/// What each add ended as.
#[derive(Default)]
struct Book {
    /// value → when the add was acknowledged.
    acked: HashMap<String, Instant>,
    /// Adds that failed ambiguously.
    unknown: HashSet<String>,
    /// Adds the server refused.
    refused: HashSet<String>,
}

pub struct State {
    plan: SetPlan,
    keys: Vec<String>,
    /// Values of this run start with it.
    nonce: String,
    book: Mutex<Book>,
}

pub fn spawn(plan: &WorkloadPlan, p: &SetPlan, ctx: Ctx, tasks: &mut JoinSet<()>) -> Arc<State> {
    let keys: Vec<String> = (0..p.keys)
        .map(|n| match &p.key_pattern {
            Some(pat) => pat.replace("{n}", &n.to_string()),
            None => format!("{}{}:set:{n}", ctx.key_prefix, ctx.metrics.id),
        })
        .collect();
    // A nonce of this process and run (seeds repeat across runs; wall time and pid do not).
    let mut r = Rng::new(
        ctx.seed
            ^ crate::clock::wall_ms().rotate_left(20)
            ^ u64::from(std::process::id()).rotate_left(44),
    );
    let st = Arc::new(State {
        plan: p.clone(),
        keys,
        nonce: format!("{:08x}", r.next_u64() as u32),
        book: Mutex::new(Book::default()),
    });
    for i in 0..plan.clients {
        let pacer = Pacer::new(
            &plan.load,
            i,
            plan.clients,
            1,
            ctx.start,
            ctx.end,
            Some(ctx.metrics.clone()),
        );
        tasks.spawn(client(st.clone(), ctx.clone(), i, pacer));
    }
    st
}

async fn client(st: Arc<State>, ctx: Ctx, idx: u32, mut pacer: Pacer) {
    let mut rng = Rng::derive(ctx.seed, &ctx.metrics.id, idx as u64);
    let rec = ctx.metrics.recorder(idx as usize);
    let mut c = Client::new(ctx.client_route(Clients::All, idx));
    let mut seq: u64 = 0;
    while let Some(intended) = pacer.next(&ctx.cancel).await {
        seq += 1;
        let value = format!("{}:{idx}:{seq}", st.nonce);
        let key = &st.keys[rng.below(st.keys.len() as u64) as usize];
        let sent = Instant::now();
        let r = c
            .request(&Cmd::new("SADD").arg(key.as_str()).arg(value.as_str()))
            .await;
        let end = Instant::now();
        let start = if pacer.is_open() { intended } else { sent };
        let mut b = st.book.lock().expect("book lock");
        match r {
            Ok(_) => {
                rec.record(OP_ADD, start, sent, end, Ok(()));
                b.acked.insert(value, end);
                ctx.metrics.counters.add(C::Written.i(), 1);
            }
            Err(e) => {
                rec.record(OP_ADD, start, sent, end, Err(e.kind));
                if e.is_ambiguous() {
                    b.unknown.insert(value);
                    ctx.metrics.counters.add(C::Indeterminate.i(), 1);
                } else {
                    b.refused.insert(value);
                }
            }
        }
    }
}

impl State {
    /// The final read: every value of this run in every set, retried (bounded) if the server is
    /// still settling after a fault. `None` when it could not be read.
    async fn read_all(&self, ctx: &Ctx) -> Option<HashSet<String>> {
        let rec = ctx.metrics.recorder(usize::MAX / 2);
        let mut c = Client::new(ctx.route.clone());
        let prefix = format!("{}:", self.nonce);
        for _attempt in 0..20 {
            let t0 = Instant::now();
            let r = async {
                let mut seen = HashSet::new();
                for k in &self.keys {
                    let mut cursor = "0".to_string();
                    for _page in 0..1_000_000 {
                        let v = c
                            .request(
                                &Cmd::new("SSCAN")
                                    .arg(k.as_str())
                                    .arg(cursor.as_str())
                                    .arg("COUNT")
                                    .arg(1000u64),
                            )
                            .await?;
                        let mut parts = v.into_array().unwrap_or_default().into_iter();
                        cursor = parts
                            .next()
                            .and_then(|x| x.as_str().map(str::to_string))
                            .unwrap_or_else(|| "0".into());
                        for m in parts.next().and_then(Value::into_array).unwrap_or_default() {
                            if let Some(s) = m.as_str().filter(|s| s.starts_with(&prefix)) {
                                seen.insert(s.to_string());
                            }
                        }
                        if cursor == "0" {
                            break;
                        }
                    }
                }
                Ok::<_, crate::valkey::Error>(seen)
            }
            .await;
            let end = Instant::now();
            rec.record(
                OP_READ,
                t0,
                t0,
                end,
                r.as_ref().map(|_| ()).map_err(|e| e.kind),
            );
            match r {
                Ok(seen) => return Some(seen),
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        None
    }

    /// Read every value back and account for each add.
    pub async fn finish(&self, ctx: &Ctx) {
        let seen = self.read_all(ctx).await;
        let cs = &ctx.metrics.counters;
        let Some(seen) = seen else {
            ctx.events.push(
                crate::events::EventKind::Note,
                format!(
                    "{}: the final read failed 20 times: no add could be checked",
                    ctx.metrics.id
                ),
            );
            return;
        };
        {
            let b = self.book.lock().expect("book lock");
            cs.set(C::Checked.i(), b.acked.len() as u64);
            for (v, at) in &b.acked {
                if !seen.contains(v) {
                    cs.add_at(C::Lost.i(), 1, *at);
                }
            }
            cs.set(
                C::IndeterminatePresent.i(),
                b.unknown.iter().filter(|v| seen.contains(*v)).count() as u64,
            );
            cs.set(
                C::FailedPresent.i(),
                b.refused.iter().filter(|v| seen.contains(*v)).count() as u64,
            );
            let unexpected = seen
                .iter()
                .filter(|v| {
                    !b.acked.contains_key(*v) && !b.unknown.contains(*v) && !b.refused.contains(*v)
                })
                .count();
            cs.set(C::Unexpected.i(), unexpected as u64);
        }
        if self.plan.cleanup {
            // Only this run's values: other agents may share the sets and read them later.
            let mut c = Client::new(ctx.route.clone());
            let mine: Vec<&String> = seen.iter().collect();
            for k in &self.keys {
                for chunk in mine.chunks(1000) {
                    let mut cmd = Cmd::new("SREM").arg(k.as_str());
                    for v in chunk {
                        cmd.push(v.as_str());
                    }
                    let _ = c.request(&cmd).await;
                }
            }
        }
    }
}
