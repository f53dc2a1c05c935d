//! The drain step of a rolling switch: `valkey-chaos drain`'s own mover, handed to the fault
//! timeline. At the stop it remembers every message id the old side holds (the copy carried
//! them); after the roll it moves what Dramatiq left there since — queued messages, the ack sets
//! of workers that moved (every pod has: none is alive on the old side), dead letters — to the
//! destination, skipping what the copy carried and what is already there.

use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::migration::Rehearsal;
use crate::drain::{self, Options, Side};
use crate::fault::env::{Handover, HandoverFuture};
use crate::plan::{Plan, WorkloadKind};
use crate::valkey::url::TargetUrl;
use crate::valkey::Route;

pub struct DrainStep {
    opts: Mutex<Options>,
}

impl DrainStep {
    /// The rehearsal's two sides, the plan's Dramatiq namespace (Dramatiq's default without a
    /// Dramatiq workload).
    pub fn new(plan: &Plan, r: &Rehearsal) -> DrainStep {
        let side = |url: &str, addr: std::net::SocketAddr| Side {
            label: TargetUrl::parse(url)
                .map(|u| u.to_string())
                .unwrap_or_else(|_| addr.to_string()),
            route: Route::direct(addr.to_string(), r.source_opts.clone()),
        };
        let mut o = Options::new(
            side(&r.source_url, r.source),
            side(&r.destination_url, r.destination),
        );
        if let Some(ns) = plan.workloads.iter().find_map(|w| match &w.kind {
            WorkloadKind::Dramatiq(d) => Some(d.namespace.clone()),
            _ => None,
        }) {
            o.namespace = ns;
        }
        // Every pod has moved when it runs: no worker is alive on the old side.
        o.heartbeat_timeout = Duration::ZERO;
        DrainStep {
            opts: Mutex::new(o),
        }
    }

    fn opts(&self) -> Options {
        self.opts.lock().expect("drain step lock").clone()
    }
}

impl Handover for DrainStep {
    fn remember(&self) -> HandoverFuture<'_, u64> {
        Box::pin(async move {
            let copied = drain::copied(&self.opts())
                .await
                .map_err(|e| e.to_string())?;
            let n = copied.len() as u64;
            self.opts.lock().expect("drain step lock").copied = Some(copied);
            Ok(n)
        })
    }

    fn drain(&self) -> HandoverFuture<'_, (u64, String)> {
        Box::pin(async move {
            let r = drain::run(&self.opts(), &CancellationToken::new())
                .await
                .map_err(|e| e.to_string())?;
            let sum =
                |f: fn(&drain::report::QueueCount) -> u64| -> u64 { r.queues.iter().map(f).sum() };
            Ok((
                r.moved_total(),
                format!(
                    "{} ready, {} from gone workers' ack sets, {} dead letters; skipped {} the \
                     copy carried and {} already there",
                    sum(|q| q.ready),
                    sum(|q| q.requeued + q.unreferenced),
                    sum(|q| q.dead_letters),
                    sum(|q| q.copied),
                    sum(|q| q.already_there)
                ),
            ))
        })
    }
}
