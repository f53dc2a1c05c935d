//! The end of a Dramatiq workload: drain (bounded), stop the consumers, then read back what is
//! still in Valkey and account for every message in the counters and the run's events.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::ledger::{HeldSet, Reconciled};
use super::message::Message;
use super::state::{State, C_DEPTH, C_DUPLICATED, C_LEFT, C_LOST, C_STUCK, C_TAKEN, C_UNFINISHED};
use crate::events::{EventKind, FaultSpan};
use crate::plan::DramatiqCounter as C;
use crate::valkey::{Client, Cmd};
use crate::workload::Ctx;

impl State {
    /// Drain (bounded by `drain_timeout`), stop the consumers, then account for every message;
    /// `faults` explain repeated deliveries.
    pub async fn finish(&self, ctx: &Ctx, faults: &[FaultSpan]) {
        let d = &self.plan;
        let deadline = Instant::now() + d.drain_timeout;
        let mut c = Client::new(ctx.route.clone());
        let mut old = ctx.old_side.as_ref().map(|r| Client::new(r.clone()));
        if d.consumers > 0 {
            self.drain(&mut c, old.as_mut(), deadline).await;
        }
        self.stop_consumers().await;
        ctx.metrics
            .counters
            .set(C_DEPTH, self.depth_max.load(Ordering::Relaxed));
        // What is still in Valkey decides lost (gone) vs stuck (still there) vs stranded.
        let present = present_message_ids(&mut c, &d.namespace, &d.queue).await;
        let stranded = self.ledger.strand(&self.held_sets(&mut c).await);
        // A migration's old side: what is only there was left behind by the switch.
        let old_side = match old.as_mut() {
            Some(o) => present_message_ids(o, &d.namespace, &d.queue).await,
            None => None,
        };
        let r = self
            .ledger
            .reconcile_sides(present.as_ref(), &stranded, old_side.as_ref(), faults);
        self.count(ctx, &r);
        self.explain(ctx, &r, faults);
        if present.is_none() {
            ctx.events.push(
                EventKind::Note,
                format!(
                    "{}: could not read the queues back; lost/stuck counted as stuck",
                    ctx.metrics.id
                ),
            );
        }
    }

    /// Wait until the consumers are done with the workload's messages, or `deadline`. With
    /// our own producers, messages stranded in a live worker's ack set (read back once a second)
    /// do not hold it up: no handler of this run will see them.
    async fn drain(&self, c: &mut Client, mut old: Option<&mut Client>, deadline: Instant) {
        let own = own_queue(&self.plan);
        let mut next_look = Instant::now();
        loop {
            if self.drained(c).await || Instant::now() >= deadline {
                break;
            }
            let stranding = !self.strandings.lock().expect("strandings lock").is_empty();
            if own && (stranding || old.is_some()) && Instant::now() >= next_look {
                next_look = Instant::now() + Duration::from_secs(1);
                let mut held = self.ledger.strand(&self.held_sets(c).await);
                // What only the old side of a migration holds, no worker of this run will see.
                if let Some(o) = old.as_deref_mut() {
                    let d = &self.plan;
                    let here = present_message_ids(c, &d.namespace, &d.queue).await;
                    let there = present_message_ids(o, &d.namespace, &d.queue).await;
                    if let (Some(here), Some(there)) = (here, there) {
                        for mid in there.difference(&here) {
                            held.entry(mid.clone()).or_insert_with(Instant::now);
                        }
                    }
                }
                if self.ledger.pending_except(&held) == 0 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the ack sets that fetches lost their replies into hold now, as message ids (the
    /// payloads say which), one set per (broker, queue); a set that cannot be read is left out,
    /// so its messages stay stuck.
    async fn held_sets(&self, c: &mut Client) -> Vec<HeldSet> {
        let ns = &self.plan.namespace;
        let mut by_set: BTreeMap<(String, String), (u64, Instant)> = BTreeMap::new();
        for s in self.strandings.lock().expect("strandings lock").iter() {
            let e = by_set
                .entry((s.broker.clone(), s.queue.clone()))
                .or_insert((0, s.at));
            e.0 += s.up_to;
            e.1 = e.1.min(s.at);
        }
        let mut out = vec![];
        for ((broker, queue), (up_to, at)) in by_set {
            let acks = format!("{ns}:__acks__.{broker}.{queue}");
            let Some(rids) = c
                .request(&Cmd::new("SMEMBERS").arg(acks.as_str()))
                .await
                .ok()
                .and_then(|v| v.into_array())
            else {
                continue;
            };
            if rids.is_empty() {
                continue;
            }
            let mut get = Cmd::new("HMGET").arg(format!("{ns}:{queue}.msgs"));
            for r in &rids {
                get = get.arg(r.as_bytes().unwrap_or_default());
            }
            let Some(payloads) = c.request(&get).await.ok().and_then(|v| v.into_array()) else {
                continue;
            };
            let mids = payloads
                .iter()
                .filter_map(|p| Message::decode(p.as_bytes()?).ok())
                .map(|m| m.message_id)
                .collect();
            out.push(HeldSet { mids, up_to, at });
        }
        out
    }

    /// With our own producers on our own queue: every produced message is accounted for.
    /// Consume-only or shared: the queue, its payloads and the delay queue are empty and nothing
    /// is in flight here.
    async fn drained(&self, c: &mut Client) -> bool {
        let d = &self.plan;
        if own_queue(d) {
            return self.ledger.pending() == 0;
        }
        let q = format!("{}:{}", d.namespace, d.queue);
        let len = int_or_one(c, Cmd::new("LLEN").arg(q.as_str())).await;
        let dq = int_or_one(c, Cmd::new("HLEN").arg(format!("{q}.DQ.msgs"))).await;
        let msgs = int_or_one(c, Cmd::new("HLEN").arg(format!("{q}.msgs"))).await;
        len == 0
            && dq == 0
            && msgs == 0
            && self.inflight.load(Ordering::Relaxed) == 0
            && self.delayed_held.load(Ordering::Relaxed) == 0
    }

    /// Stop every consumer (they requeue what they hold; 15 s at most) and flush the trace.
    async fn stop_consumers(&self) {
        self.stop.cancel();
        let mut cs = std::mem::take(&mut *self.consumers.lock().expect("consumers lock"));
        let _ = tokio::time::timeout(Duration::from_secs(15), async {
            while cs.join_next().await.is_some() {}
        })
        .await;
        cs.abort_all();
        if let Some(t) = &self.trace {
            use std::io::Write;
            let _ = t.lock().expect("trace lock").flush();
        }
    }

    /// The reconciliation's findings, into the counters (at the instants they happened).
    fn count(&self, ctx: &Ctx, r: &Reconciled) {
        let d = &self.plan;
        let cs = &ctx.metrics.counters;
        let put = |idx: usize, at: &[Instant]| {
            for t in at {
                cs.add_at(idx, 1, *t);
            }
        };
        if d.consumers == 0 {
            // Produce-only: somebody else consumes; what is still there is just queued.
            cs.set(C_LEFT, r.stuck.len() as u64);
        } else {
            if d.shared_queue {
                // Other workers took what we never saw: not lost by us.
                cs.set(C_TAKEN, r.lost.len() as u64);
            } else {
                put(C_LOST, &r.lost);
            }
            put(C_STUCK, &r.stuck);
            put(C::Stranded.i(), &r.stranded);
            put(C::LeftBehind.i(), &r.left_behind);
            put(C_UNFINISHED, &r.unfinished);
        }
        let rep = &r.repeats;
        put(C_DUPLICATED, &rep.duplicated);
        for (idx, list) in [
            (C::Redelivered.i(), &rep.redelivered),
            (C::Resurrected.i(), &rep.resurrected),
        ] {
            for (t, _) in list {
                cs.add_at(idx, 1, *t);
            }
        }
        cs.set(C::AmbiguousLanded.i(), r.ambiguous_landed);
        put(C::AckFailed.i(), &r.ack_failed);
        cs.set(C::AckUnconfirmed.i(), r.ack_unconfirmed);
        cs.set(C::Checked.i(), r.checked);
    }

    /// The reconciliation's findings, as notes: failed acks, the fault each repeated delivery is
    /// put down to, the stranded messages, and an example of each kind of loss.
    fn explain(&self, ctx: &Ctx, r: &Reconciled, faults: &[FaultSpan]) {
        let d = &self.plan;
        let id = &ctx.metrics.id;
        if !r.ack_failed.is_empty() {
            ctx.events.push(
                EventKind::Note,
                format!(
                    "{id}: {} processed messages whose ack failed are still in their worker's ack \
                     set: Dramatiq redelivers them when that worker's heartbeat expires (checked: \
                     still present; not observed: the redelivery)",
                    r.ack_failed.len()
                ),
            );
        }
        if !r.left_behind.is_empty() {
            ctx.events.push(
                EventKind::Note,
                format!(
                    "{id}: {} acknowledged messages were never delivered and are still on the \
                     migration's old side: enqueued there after the copy stopped, by producers \
                     that had not moved yet, when no worker consumed there any more (stranded; \
                     `valkey-chaos drain` moves them, or a drain step in the switch)",
                    r.left_behind.len()
                ),
            );
        }
        if !r.stranded.is_empty() {
            let first = r.stranded.iter().min().copied().unwrap_or(ctx.start);
            let fault = super::ledger::explain(first, first, faults)
                .flatten()
                .map(|f| format!(" (fault #{f})"))
                .unwrap_or_default();
            ctx.events.push(
                EventKind::Note,
                format!(
                    "{id}: {} messages were never delivered: fetches that lost their replies from \
                     {:.1}s{fault} left them in their live worker's ack set, where Dramatiq leaves \
                     them until that worker stops and its heartbeat ({:?}) expires (checked: still \
                     in Valkey; not observed: the late delivery)",
                    r.stranded.len(),
                    first.saturating_duration_since(ctx.start).as_secs_f64(),
                    d.heartbeat_timeout,
                ),
            );
        }
        // Say which fault each repeated delivery is put down to.
        let rep = &r.repeats;
        let mut by_fault: BTreeMap<usize, (usize, usize)> = Default::default();
        for (_, f) in &rep.redelivered {
            by_fault.entry(f.unwrap_or(usize::MAX)).or_default().0 += 1;
        }
        for (_, f) in &rep.resurrected {
            by_fault.entry(f.unwrap_or(usize::MAX)).or_default().1 += 1;
        }
        for (f, (re, res)) in by_fault {
            ctx.events.push(
                EventKind::Note,
                format!(
                    "{id}: {re} redelivered and {res} resurrected after fault #{f} (at-least-once: \
                     the fault lost a fetch, an ack or a worker)"
                ),
            );
        }
        for (kind, mid) in &r.examples {
            // Produce-only: what is left is queued; a shared queue: others took what we missed.
            if (d.consumers == 0 && *kind == "stuck") || (d.shared_queue && *kind == "lost") {
                continue;
            }
            ctx.events.push(
                EventKind::Note,
                format!("{id}: {kind}: {}", self.ledger.describe(mid, ctx.start)),
            );
        }
    }
}

/// Our own producers on our own queue: the ledger knows every message.
fn own_queue(d: &crate::plan::DramatiqPlan) -> bool {
    d.producers > 0 && !d.shared_queue
}

/// An integer reply, or 1 (not drained) when the request failed.
async fn int_or_one(c: &mut Client, cmd: Cmd) -> i64 {
    c.request(&cmd)
        .await
        .ok()
        .and_then(|v| v.as_int())
        .unwrap_or(1)
}

/// Message ids still held anywhere in Valkey for this queue (queue, delay queue, payload hashes, ack sets).
async fn present_message_ids(c: &mut Client, ns: &str, q: &str) -> Option<HashSet<String>> {
    let mut ids = HashSet::new();
    for h in [format!("{ns}:{q}.msgs"), format!("{ns}:{q}.DQ.msgs")] {
        let mut cursor = "0".to_string();
        loop {
            let v = c
                .request(
                    &Cmd::new("HSCAN")
                        .arg(h.as_str())
                        .arg(cursor.as_str())
                        .arg("COUNT")
                        .arg(1000u64),
                )
                .await
                .ok()?;
            let mut parts = v.into_array()?.into_iter();
            cursor = parts.next()?.as_str()?.to_string();
            let kv = parts.next()?.into_array()?;
            for (i, x) in kv.iter().enumerate() {
                if i % 2 == 1 {
                    if let Some(m) = x.as_bytes().and_then(|b| Message::decode(b).ok()) {
                        ids.insert(m.message_id);
                    }
                }
            }
            if cursor == "0" {
                break;
            }
        }
    }
    Some(ids)
}
