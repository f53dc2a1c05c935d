//! Moving one database's Dramatiq leftovers from the source to the destination, batch by batch:
//! each batch is taken off the source (`LPOP`, `SPOP`, `ZRANGE`), written to the destination
//! (payload first, then the id: `HSET` then `RPUSH`, the order Dramatiq documents for other
//! languages' producers) unless it is already there or the copy carried it, and only then removed
//! from the source's payloads. A batch cut short leaves its payloads on the source, where the next
//! drain finds them unreferenced and moves them: running it again is safe.

use std::collections::{HashMap, HashSet};

use tokio_util::sync::CancellationToken;

use super::error::DrainError;
use super::layout::{self, Names, Namespace};
use super::options::Options;
use super::report::{LiveAcks, Moved, Report};
use crate::valkey::{cursor, Cmd, Conn, Value};

/// Which count a batch of messages adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bucket {
    Ready,
    Requeued,
    Unreferenced,
}

/// One source database and the destination database it drains into.
pub(super) struct Mover<'a> {
    pub src: Conn,
    pub dst: Conn,
    pub db: u32,
    pub dst_db: u32,
    pub opts: &'a Options,
    pub report: &'a mut Report,
    pub shutdown: &'a CancellationToken,
}

fn src_err(e: crate::valkey::Error, what: &str) -> DrainError {
    DrainError::Target(format!("source: {what}: {}", e.msg))
}

fn dst_err(e: crate::valkey::Error, what: &str) -> DrainError {
    DrainError::Target(format!("destination: {what}: {}", e.msg))
}

/// Every key of namespace `ns` in the connection's database (`SCAN MATCH ns:*`), the walk bounded
/// by the database's size; one it could not finish is an error, not a short list.
pub(super) async fn namespace_keys(
    c: &mut Conn,
    ns: &str,
) -> Result<Vec<String>, crate::valkey::Error> {
    let size = c
        .request(&Cmd::new("DBSIZE"))
        .await?
        .as_int()
        .unwrap_or(0)
        .max(0) as u64;
    let pattern = format!("{ns}:*");
    let raw = cursor::walk(c, size / 100 + 1000, |cur| {
        Cmd::new("SCAN")
            .arg(cur)
            .arg("MATCH")
            .arg(pattern.as_str())
            .arg("COUNT")
            .arg(1000u64)
    })
    .await?;
    let mut keys: Vec<String> = raw
        .into_iter()
        .filter_map(|k| String::from_utf8(k).ok())
        .collect();
    keys.sort();
    keys.dedup();
    Ok(keys)
}

fn strings(v: Value) -> Vec<String> {
    v.into_array()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

impl Mover<'_> {
    fn ns(&self) -> &str {
        &self.opts.namespace
    }

    fn stopped(&mut self) -> bool {
        if self.shutdown.is_cancelled() {
            self.report.interrupted = true;
        }
        self.report.interrupted
    }

    /// Every queue of the namespace in this database, then its dead letters.
    pub async fn run(&mut self) -> Result<(), DrainError> {
        let keys = self.scan().await?;
        let n = Namespace::of(self.ns(), keys.iter().map(String::as_str));
        if n.is_empty() {
            return Ok(());
        }
        let now = self.source_ms().await?;
        let beats = self.heartbeats().await?;
        let live = |w: &str| {
            beats.get(w).is_some_and(|t| {
                now.saturating_sub(*t) < self.opts.heartbeat_timeout.as_millis() as u64
            })
        };
        let mut held: HashMap<String, HashSet<String>> = HashMap::new();
        let mut gone = vec![];
        for (w, q) in &n.acks {
            if live(w) {
                let ids = self.members(&layout::acks_key(self.ns(), w, q)).await?;
                let age = beats.get(w).map(|t| now.saturating_sub(*t)).unwrap_or(0);
                self.report
                    .queue(self.db, self.dst_db, q)
                    .held_by_live_workers += ids.len() as u64;
                self.report.live_workers.push(LiveAcks {
                    db: self.db,
                    worker: w.clone(),
                    queue: q.clone(),
                    messages: ids.len() as u64,
                    heartbeat_age_ms: age,
                });
                held.entry(q.clone()).or_default().extend(ids);
            } else {
                gone.push((w.clone(), q.clone()));
            }
        }
        for q in &n.queues {
            if self.stopped() {
                return Ok(());
            }
            let mut referenced = held.remove(q).unwrap_or_default();
            referenced.extend(self.ready(q).await?);
            for (w, _) in gone.iter().filter(|(_, gq)| gq == q) {
                referenced.extend(self.acks(w, q).await?);
            }
            self.unreferenced(q, &referenced).await?;
        }
        for q in &n.dead {
            if self.stopped() {
                return Ok(());
            }
            self.dead(q).await?;
        }
        Ok(())
    }

    /// Every key of the namespace (`SCAN MATCH ns:*`), bounded by the database's size.
    async fn scan(&mut self) -> Result<Vec<String>, DrainError> {
        let ns = self.opts.namespace.clone();
        namespace_keys(&mut self.src, &ns)
            .await
            .map_err(|e| src_err(e, "SCAN"))
    }

    /// The source's clock (heartbeats are judged by it), in ms.
    async fn source_ms(&mut self) -> Result<u64, DrainError> {
        let v = self
            .src
            .request(&Cmd::new("TIME"))
            .await
            .map_err(|e| src_err(e, "TIME"))?;
        let p = strings(v);
        let secs: u64 = p.first().and_then(|s| s.parse().ok()).unwrap_or(0);
        let micros: u64 = p.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok(secs * 1000 + micros / 1000)
    }

    async fn heartbeats(&mut self) -> Result<HashMap<String, u64>, DrainError> {
        let v = self
            .src
            .request(
                &Cmd::new("ZRANGE")
                    .arg(layout::heartbeats_key(self.ns()))
                    .arg(0u64)
                    .arg(-1i64)
                    .arg("WITHSCORES"),
            )
            .await
            .map_err(|e| src_err(e, "ZRANGE heartbeats"))?;
        let flat = strings(v);
        Ok(flat
            .chunks(2)
            .filter_map(|p| Some((p[0].clone(), p.get(1)?.parse::<f64>().ok()? as u64)))
            .collect())
    }

    async fn members(&mut self, key: &str) -> Result<Vec<String>, DrainError> {
        let v = self
            .src
            .request(&Cmd::new("SMEMBERS").arg(key))
            .await
            .map_err(|e| src_err(e, "SMEMBERS"))?;
        Ok(strings(v))
    }

    /// The ready list: taken off the source batch by batch (read only, in a dry run). Returns
    /// the ids met.
    async fn ready(&mut self, q: &str) -> Result<HashSet<String>, DrainError> {
        let names = Names::of(self.ns(), q);
        let len = self.len("LLEN", &names.queue).await?;
        let batch = self.opts.batch.max(1) as u64;
        let mut seen = HashSet::new();
        let mut taken = 0u64;
        while taken < len && !self.stopped() {
            let ids = if self.opts.dry_run {
                let v = self
                    .src
                    .request(
                        &Cmd::new("LRANGE")
                            .arg(names.queue.as_str())
                            .arg(taken)
                            .arg(taken + batch - 1),
                    )
                    .await
                    .map_err(|e| src_err(e, "LRANGE"))?;
                strings(v)
            } else {
                let v = self
                    .src
                    .request(&Cmd::new("LPOP").arg(names.queue.as_str()).arg(batch))
                    .await
                    .map_err(|e| src_err(e, "LPOP"))?;
                strings(v)
            };
            if ids.is_empty() {
                break;
            }
            taken += ids.len() as u64;
            seen.extend(ids.iter().cloned());
            self.put(q, &names, ids, Bucket::Ready).await?;
        }
        Ok(seen)
    }

    /// A gone worker's ack set: requeued on the destination. Returns the ids met.
    async fn acks(&mut self, w: &str, q: &str) -> Result<HashSet<String>, DrainError> {
        let key = layout::acks_key(self.ns(), w, q);
        let names = Names::of(self.ns(), q);
        let mut seen = HashSet::new();
        if self.opts.dry_run {
            let ids = self.members(&key).await?;
            seen.extend(ids.iter().cloned());
            for chunk in ids.chunks(self.opts.batch.max(1)) {
                self.put(q, &names, chunk.to_vec(), Bucket::Requeued)
                    .await?;
            }
            return Ok(seen);
        }
        let len = self.len("SCARD", &key).await?;
        let mut taken = 0u64;
        while taken < len && !self.stopped() {
            let v = self
                .src
                .request(
                    &Cmd::new("SPOP")
                        .arg(key.as_str())
                        .arg(self.opts.batch.max(1) as u64),
                )
                .await
                .map_err(|e| src_err(e, "SPOP"))?;
            let ids = strings(v);
            if ids.is_empty() {
                break;
            }
            taken += ids.len() as u64;
            seen.extend(ids.iter().cloned());
            self.put(q, &names, ids, Bucket::Requeued).await?;
        }
        Ok(seen)
    }

    /// Payloads nothing refers to (after the list and the ack sets), requeued.
    async fn unreferenced(
        &mut self,
        q: &str,
        referenced: &HashSet<String>,
    ) -> Result<(), DrainError> {
        let names = Names::of(self.ns(), q);
        let len = self.len("HLEN", &names.payloads).await?;
        let flat = cursor::walk(&mut self.src, len / 100 + 1000, |cur| {
            Cmd::new("HSCAN")
                .arg(names.payloads.as_str())
                .arg(cur)
                .arg("COUNT")
                .arg(1000u64)
        })
        .await
        .map_err(|e| src_err(e, "HSCAN"))?;
        // Field, value, field, value…: the fields are the ids.
        let mut found: Vec<String> = flat
            .chunks(2)
            .filter_map(|p| String::from_utf8(p[0].clone()).ok())
            .filter(|rid| !referenced.contains(rid))
            .collect();
        found.sort();
        found.dedup();
        for chunk in found.chunks(self.opts.batch.max(1)) {
            if self.stopped() {
                break;
            }
            self.put(q, &names, chunk.to_vec(), Bucket::Unreferenced)
                .await?;
        }
        Ok(())
    }

    async fn len(&mut self, cmd: &str, key: &str) -> Result<u64, DrainError> {
        let v = self
            .src
            .request(&Cmd::new(cmd).arg(key))
            .await
            .map_err(|e| src_err(e, cmd))?;
        Ok(v.as_int().unwrap_or(0).max(0) as u64)
    }

    async fn payloads(
        &mut self,
        key: &str,
        ids: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, DrainError> {
        let mut c = Cmd::new("HMGET").arg(key);
        for id in ids {
            c.push(id.as_str());
        }
        let v = self
            .src
            .request(&c)
            .await
            .map_err(|e| src_err(e, "HMGET"))?;
        Ok(v.into_array()
            .unwrap_or_default()
            .into_iter()
            .map(|x| x.as_bytes().map(<[u8]>::to_vec))
            .collect())
    }

    /// Which of `ids` the destination already holds in `key` (a hash).
    async fn present(&mut self, key: &str, ids: &[&String]) -> Result<Vec<bool>, DrainError> {
        let cmds: Vec<Cmd> = ids
            .iter()
            .map(|id| Cmd::new("HEXISTS").arg(key).arg(id.as_str()))
            .collect();
        let replies = self
            .dst
            .pipeline(&cmds)
            .await
            .map_err(|e| dst_err(e, "HEXISTS"))?;
        replies
            .into_iter()
            .map(|r| {
                r.map(|v| v.as_int() == Some(1))
                    .map_err(|e| dst_err(e, "HEXISTS"))
            })
            .collect()
    }

    /// Put a batch of queue `q`'s ids on the destination's queue (those with a payload, not
    /// there yet, not carried by the copy), then drop them from the source's payloads.
    async fn put(
        &mut self,
        q: &str,
        names: &Names,
        ids: Vec<String>,
        bucket: Bucket,
    ) -> Result<(), DrainError> {
        let payloads = self.payloads(&names.payloads, &ids).await?;
        let (db, dst_db) = (self.db, self.dst_db);
        let mut candidates = vec![];
        for (rid, p) in ids.iter().zip(payloads) {
            let c = self.report.queue(db, dst_db, q);
            match p {
                None => c.missing_payload += 1,
                Some(_)
                    if self
                        .opts
                        .copied
                        .as_ref()
                        .is_some_and(|x| x.contains(db, rid)) =>
                {
                    c.copied += 1
                }
                Some(p) => candidates.push((rid, p)),
            }
        }
        let there = self
            .present(
                &names.payloads,
                &candidates.iter().map(|c| c.0).collect::<Vec<_>>(),
            )
            .await?;
        let mut write = vec![];
        for ((rid, p), there) in candidates.into_iter().zip(there) {
            let c = self.report.queue(db, dst_db, q);
            if there {
                c.already_there += 1;
                continue;
            }
            match bucket {
                Bucket::Ready => c.ready += 1,
                Bucket::Requeued => c.requeued += 1,
                Bucket::Unreferenced => c.unreferenced += 1,
            }
            if self.report.moved.len() < self.opts.keep {
                self.report.moved.push(Moved {
                    db,
                    queue: q.to_string(),
                    rid: rid.clone(),
                    message_id: layout::message_id(&p),
                });
            }
            write.push(
                Cmd::new("HSET")
                    .arg(names.payloads.as_str())
                    .arg(rid.as_str())
                    .arg(&p[..]),
            );
            write.push(
                Cmd::new("RPUSH")
                    .arg(names.queue.as_str())
                    .arg(rid.as_str()),
            );
        }
        if self.opts.dry_run {
            return Ok(());
        }
        self.write(&write).await?;
        self.forget(&names.payloads, &ids).await
    }

    /// Run a pipeline on the destination; any error stops the drain.
    async fn write(&mut self, cmds: &[Cmd]) -> Result<(), DrainError> {
        if cmds.is_empty() {
            return Ok(());
        }
        let replies = self
            .dst
            .pipeline(cmds)
            .await
            .map_err(|e| dst_err(e, "writing the moved messages"))?;
        for r in replies {
            r.map_err(|e| dst_err(e, "writing the moved messages"))?;
        }
        Ok(())
    }

    /// Drop ids from a hash on the source, once the destination has them.
    async fn forget(&mut self, key: &str, ids: &[String]) -> Result<(), DrainError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut c = Cmd::new("HDEL").arg(key);
        for id in ids {
            c.push(id.as_str());
        }
        self.src
            .request(&c)
            .await
            .map(|_| ())
            .map_err(|e| src_err(e, "HDEL"))
    }

    /// Dead letters of queue `q`: to the destination's dead-letter queue, with their time.
    async fn dead(&mut self, q: &str) -> Result<(), DrainError> {
        let names = Names::of(self.ns(), q);
        let len = self.len("ZCARD", &names.dead).await?;
        let batch = self.opts.batch.max(1) as u64;
        let mut taken = 0u64;
        while taken < len && !self.stopped() {
            let start = if self.opts.dry_run { taken } else { 0 };
            let v = self
                .src
                .request(
                    &Cmd::new("ZRANGE")
                        .arg(names.dead.as_str())
                        .arg(start)
                        .arg(start + batch - 1)
                        .arg("WITHSCORES"),
                )
                .await
                .map_err(|e| src_err(e, "ZRANGE"))?;
            let flat = strings(v);
            if flat.is_empty() {
                break;
            }
            let items: Vec<(String, String)> = flat
                .chunks(2)
                .filter_map(|p| Some((p[0].clone(), p.get(1)?.clone())))
                .collect();
            taken += items.len() as u64;
            self.put_dead(q, &names, items).await?;
        }
        Ok(())
    }

    async fn put_dead(
        &mut self,
        q: &str,
        names: &Names,
        items: Vec<(String, String)>,
    ) -> Result<(), DrainError> {
        let ids: Vec<String> = items.iter().map(|i| i.0.clone()).collect();
        let payloads = self.payloads(&names.dead_payloads, &ids).await?;
        let refs: Vec<&String> = ids.iter().collect();
        let there = self.present(&names.dead_payloads, &refs).await?;
        let (db, dst_db) = (self.db, self.dst_db);
        let mut write = vec![];
        for (((rid, score), p), there) in items.iter().zip(payloads).zip(there) {
            let c = self.report.queue(db, dst_db, q);
            match p {
                None => c.missing_payload += 1,
                Some(_) if there => c.already_there += 1,
                Some(_)
                    if self
                        .opts
                        .copied
                        .as_ref()
                        .is_some_and(|x| x.contains(db, rid)) =>
                {
                    c.copied += 1
                }
                Some(p) => {
                    c.dead_letters += 1;
                    write.push(
                        Cmd::new("HSET")
                            .arg(names.dead_payloads.as_str())
                            .arg(rid.as_str())
                            .arg(&p[..]),
                    );
                    write.push(
                        Cmd::new("ZADD")
                            .arg(names.dead.as_str())
                            .arg(score.as_str())
                            .arg(rid.as_str()),
                    );
                }
            }
        }
        if self.opts.dry_run {
            return Ok(());
        }
        self.write(&write).await?;
        let mut zrem = Cmd::new("ZREM").arg(names.dead.as_str());
        for id in &ids {
            zrem.push(id.as_str());
        }
        self.src
            .request(&zrem)
            .await
            .map_err(|e| src_err(e, "ZREM"))?;
        self.forget(&names.dead_payloads, &ids).await
    }
}
