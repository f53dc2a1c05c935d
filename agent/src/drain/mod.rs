//! After a cutover: move what Dramatiq left on the old side to the new one (`valkey-chaos
//! drain`). A rolling restart moves producers and consumers at different times, so messages
//! enqueued on the old side after the copy stopped sit there with no consumer ("stranded"), and
//! workers that were stopped uncleanly leave their ack sets behind. Queue by queue, in every
//! database that holds keys (`--db` to narrow, a URL's `/N` only N): the ready lists, the delay
//! queues, the dead letters, and the ack sets of workers gone from the old side (requeued, as
//! Dramatiq's own maintenance does) are moved to the destination; a message already there, or
//! carried by the copy when it stopped ([`Copied`]), is skipped and dropped from the old side.
//!
//! [`layout`] names Dramatiq's keys (pure), [`mover`] moves one database, [`report`] counts it.
//! Invariants: the destination only gets `HEXISTS`, `HSET`, `RPUSH`, `ZADD` on the namespace's
//! keys; the source loses a message only after the destination holds it; every loop is bounded
//! by a count read first; `--dry-run` writes nothing on either side.

pub mod error;
pub mod layout;
mod mover;
pub mod options;
pub mod render;
pub mod report;

use std::collections::BTreeSet;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

pub use error::DrainError;
pub use options::{Copied, Options, Side};
pub use report::{Report, Verdict};

use crate::valkey::{Cmd, Conn};
use crate::verify::databases::{parse_keyspace, Plan};

/// Move (or, dry, count) what Dramatiq left on the source, database by database. `shutdown`
/// stops it between batches with a partial, `interrupted` report.
pub async fn run(opts: &Options, shutdown: &CancellationToken) -> Result<Report, DrainError> {
    let t0 = Instant::now();
    let mut report = Report {
        source: opts.source.label.clone(),
        destination: opts.destination.label.clone(),
        namespace: opts.namespace.clone(),
        dry_run: opts.dry_run,
        copied_ids: opts.copied.as_ref().map(|c| c.len() as u64).unwrap_or(0),
        ..Report::default()
    };
    for (db, dst_db) in databases(opts).await? {
        if shutdown.is_cancelled() {
            report.interrupted = true;
            break;
        }
        report.databases.push(db);
        let mut m = mover::Mover {
            src: opts.source.connect("source", db).await?,
            dst: opts.destination.connect("destination", dst_db).await?,
            db,
            dst_db,
            opts,
            report: &mut report,
            shutdown,
        };
        m.run().await?;
    }
    report.tidy();
    report.elapsed_secs = t0.elapsed().as_secs_f64();
    Ok(report)
}

/// What the copy carried: every message id the source's Dramatiq keys hold now, per database.
/// Read-only; meant for the moment the copy stops, while writes are stopped.
pub async fn copied(opts: &Options) -> Result<Copied, DrainError> {
    let mut out = Copied::default();
    for (db, _) in databases(opts).await? {
        let mut c = opts.source.connect("source", db).await?;
        let ids = ids_in(&mut c, &opts.namespace).await?;
        if !ids.is_empty() {
            out.by_db.insert(db, ids);
        }
    }
    Ok(out)
}

/// Every message id under the namespace: list entries, payload fields, ack set and dead-letter
/// members.
async fn ids_in(c: &mut Conn, ns: &str) -> Result<BTreeSet<String>, DrainError> {
    let err = |e: crate::valkey::Error| DrainError::Target(format!("source: {}", e.msg));
    let keys = mover::namespace_keys(c, ns).await.map_err(err)?;
    let mut ids = BTreeSet::new();
    for k in keys {
        let cmd = match layout::classify(ns, &k) {
            Some(layout::Key::Queue(_)) => Cmd::new("LRANGE").arg(k.as_str()).arg(0u64).arg(-1i64),
            Some(layout::Key::Payloads(_)) | Some(layout::Key::DeadPayloads(_)) => {
                Cmd::new("HKEYS").arg(k.as_str())
            }
            Some(layout::Key::Acks { .. }) => Cmd::new("SMEMBERS").arg(k.as_str()),
            Some(layout::Key::Dead(_)) => Cmd::new("ZRANGE").arg(k.as_str()).arg(0u64).arg(-1i64),
            _ => continue,
        };
        for v in c
            .request(&cmd)
            .await
            .map_err(err)?
            .into_array()
            .unwrap_or_default()
        {
            if let Some(s) = v.as_str() {
                ids.insert(s.to_string());
            }
        }
    }
    Ok(ids)
}

/// The (source, destination) database pairs: as listed, as the URLs name them, or every
/// database holding keys on the source (none: 0).
async fn databases(opts: &Options) -> Result<Vec<(u32, u32)>, DrainError> {
    match &opts.databases {
        Plan::Listed(v) => Ok(v.iter().map(|d| (*d, *d)).collect()),
        Plan::Url(p) => Ok(vec![(p.source, p.destination)]),
        Plan::Keyspace => {
            let mut c = opts.source.connect("source", 0).await?;
            let v = c
                .request(&Cmd::new("INFO").arg("keyspace"))
                .await
                .map_err(|e| DrainError::Target(format!("source: INFO keyspace: {}", e.msg)))?;
            let dbs: Vec<u32> = parse_keyspace(v.as_str().unwrap_or(""))
                .into_keys()
                .collect();
            Ok(if dbs.is_empty() { vec![0] } else { dbs }
                .into_iter()
                .map(|d| (d, d))
                .collect())
        }
    }
}
