//! The steps a switch takes that are commands of their own, handed to the fault timeline: the
//! way back's key-by-key compare (`verify`'s), and a rolling switch's drain step (`valkey-chaos
//! drain`'s own mover). At the stop it remembers every message id the old side holds (the copy carried
//! them); after the roll it moves what Dramatiq left there since — queued messages, the ack sets
//! of workers that moved (every pod has: none is alive on the old side), dead letters — to the
//! destination, skipping what the copy carried and what is already there.

use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::migration::Rehearsal;
use super::options::RunOptions;
use crate::drain::{self, Options, Side};
use crate::fault::env::{Handover, HandoverFuture};
use crate::plan::{Plan, WorkloadKind};
use crate::summary::MigrationVerify;
use crate::valkey::url::TargetUrl;
use crate::valkey::Route;

pub struct SwitchSteps {
    opts: Mutex<Options>,
    /// The two sides' URLs and the run's options, for the compare.
    urls: (String, String),
    run: RunOptions,
}

impl SwitchSteps {
    /// The rehearsal's two sides, the plan's Dramatiq namespace (Dramatiq's default without a
    /// Dramatiq workload).
    pub fn new(plan: &Plan, r: &Rehearsal, run: &RunOptions) -> SwitchSteps {
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
        SwitchSteps {
            opts: Mutex::new(o),
            urls: (r.source_url.clone(), r.destination_url.clone()),
            run: run.clone(),
        }
    }

    fn opts(&self) -> Options {
        self.opts.lock().expect("switch steps lock").clone()
    }
}

impl Handover for SwitchSteps {
    fn remember(&self) -> HandoverFuture<'_, u64> {
        Box::pin(async move {
            let copied = drain::copied(&self.opts())
                .await
                .map_err(|e| e.to_string())?;
            let n = copied.len() as u64;
            self.opts.lock().expect("switch steps lock").copied = Some(copied);
            Ok(n)
        })
    }

    fn verify(&self) -> HandoverFuture<'_, MigrationVerify> {
        Box::pin(async move {
            // Every key: nothing writes while the way back compares.
            super::migration::verify(&self.urls.0, &self.urls.1, &self.run, None)
                .await
                .ok_or_else(|| "the compare did not run".to_string())
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
