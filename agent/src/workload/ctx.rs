//! What every worker of a workload is handed: the route to the server, the load's cancellation
//! and clock, its seed and key prefix, its metrics, the event sink and the fault switches. A leaf,
//! so the workload files import it without importing their parent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::check::Clock;
use crate::clock::instant_of_mono;
use crate::control::Controls;
use crate::events::{EventKind, Events};
use crate::history::History;
use crate::metrics::WorkloadMetrics;
use crate::plan::rollout::Clients;
use crate::plan::WorkloadType;
use crate::valkey::pod::PodRoutes;
use crate::valkey::Route;

/// What every worker of a workload gets.
#[derive(Clone)]
pub struct Ctx {
    pub route: Arc<Route>,
    /// Cancelled when the load phase ends (duration reached or Ctrl-C).
    pub cancel: CancellationToken,
    pub start: Instant,
    pub end: Instant,
    pub seed: u64,
    pub key_prefix: String,
    pub metrics: Arc<WorkloadMetrics>,
    pub events: Events,
    /// Switches the fault timeline flips (consumer crashes).
    pub controls: Controls,
    /// This agent's id in histories (the run id).
    pub agent: String,
    /// A rolling switch's pods: each client's own address map (none without one).
    pub pods: Option<Arc<PodRoutes>>,
    /// A migration's source, read directly (never through a proxy): where the final accounting
    /// looks for what was left on the old side.
    pub old_side: Option<Arc<Route>>,
    /// One share of a sharded run: other agents' clients work the same keys, so what this agent's
    /// history alone cannot explain (an orphaned lock name) may be theirs.
    pub sharded: bool,
}

impl Ctx {
    /// The route of this workload's client `index` of kind `clients`: in a rolling switch its
    /// pod's, which moves to the destination when its batch rolls; otherwise the workload's.
    /// Observers (a drain, a final read) keep [`Ctx::route`].
    pub fn client_route(&self, clients: Clients, index: u32) -> Arc<Route> {
        let via = self
            .pods
            .as_ref()
            .and_then(|p| p.via(&self.metrics.id, clients.name(), index));
        match via {
            Some(via) => Arc::new(Route {
                via,
                ..(*self.route).clone()
            }),
            None => self.route.clone(),
        }
    }

    /// Judge this agent's history with its kind's oracle (`check::judge`, on this host's
    /// monotonic clock) and count what it found: each event at its time, so a fault's impact
    /// window can say what it counted, the levels as they are, the oracle's note as an event.
    /// `alone`: nobody outside this history works the same keys, so what it found not served
    /// (an orphaned lock name) holds the workload's recovery back.
    pub fn judge_history(&self, ty: WorkloadType, history: &History, alone: bool) {
        let entries = history.entries();
        let Some(f) = crate::check::judge(ty, &entries, Clock::Mono) else {
            return;
        };
        let cs = &self.metrics.counters;
        for (idx, times) in &f.events {
            for t in times {
                cs.add_at(*idx, 1, instant_of_mono(*t));
            }
        }
        for (idx, v) in &f.levels {
            cs.set(*idx, *v);
        }
        // Another agent's hold would explain what looks orphaned here: the merge judges it.
        if alone && !self.sharded {
            for o in f.outages {
                cs.not_served(instant_of_mono(o.from), o.to.map(instant_of_mono), o.what);
            }
        }
        if let Some(note) = f.note {
            self.events
                .push(EventKind::Note, format!("{}: {note}", self.metrics.id));
        }
    }

    /// Sleep unless cancelled first; returns false when cancelled.
    pub async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.cancel.cancelled() => false,
        }
    }
}
