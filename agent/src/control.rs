//! Switches in the agent's own simulated clients that the fault timeline flips: a Dramatiq
//! worker process that dies mid-message (`consumer-crash`) and comes back, or one that stays
//! alive but stops fetching (`consumer-stall`). Workloads register
//! their switches when they start; faults find them by workload id. A leaf: plain data and
//! atomics, no I/O.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The switches of one workload's consumers (its "worker processes").
pub struct ConsumerSwitch {
    crashed: Vec<AtomicBool>,
    stalled: Vec<AtomicBool>,
    /// Wakes consumers when a switch flips.
    pub changed: Notify,
}

impl ConsumerSwitch {
    pub fn new(consumers: u32) -> Arc<ConsumerSwitch> {
        Arc::new(ConsumerSwitch {
            crashed: (0..consumers).map(|_| AtomicBool::new(false)).collect(),
            stalled: (0..consumers).map(|_| AtomicBool::new(false)).collect(),
            changed: Notify::new(),
        })
    }

    /// Kill consumer `i`: it stops at once, holding whatever it had fetched.
    pub fn crash(&self, i: u32) -> Result<String, String> {
        let s = self.crashed.get(i as usize).ok_or_else(|| {
            format!(
                "no consumer {i} (the workload has {} consumers)",
                self.crashed.len()
            )
        })?;
        s.store(true, Ordering::SeqCst);
        self.changed.notify_waiters();
        Ok(format!("consumer {i} crashed"))
    }

    /// Bring consumer `i` back (as a new worker, with a new broker id).
    pub fn revive(&self, i: u32) -> Result<(), String> {
        let s = self
            .crashed
            .get(i as usize)
            .ok_or_else(|| format!("no consumer {i}"))?;
        s.store(false, Ordering::SeqCst);
        self.changed.notify_waiters();
        Ok(())
    }

    /// Stall consumer `i` (`None`: every one), or let it go on (`stalled = false`); returns what
    /// it did.
    pub fn set_stalled(&self, i: Option<u32>, stalled: bool) -> Result<String, String> {
        let n = self.stalled.len();
        let which: Vec<usize> = match i {
            Some(i) if (i as usize) < n => vec![i as usize],
            Some(i) => return Err(format!("no consumer {i} (the workload has {n} consumers)")),
            None => (0..n).collect(),
        };
        for w in &which {
            self.stalled[*w].store(stalled, Ordering::SeqCst);
        }
        self.changed.notify_waiters();
        Ok(match i {
            Some(i) => format!("consumer {i} stalled"),
            None => format!("all {n} consumers stalled"),
        })
    }

    pub fn is_stalled(&self, i: u32) -> bool {
        self.stalled
            .get(i as usize)
            .is_some_and(|s| s.load(Ordering::SeqCst))
    }

    pub fn is_crashed(&self, i: u32) -> bool {
        self.crashed
            .get(i as usize)
            .is_some_and(|s| s.load(Ordering::SeqCst))
    }
}

/// Every workload's switches, by workload id.
#[derive(Clone, Default)]
pub struct Controls {
    consumers: Arc<Mutex<HashMap<String, Arc<ConsumerSwitch>>>>,
}

impl Controls {
    pub fn register_consumers(&self, workload: &str, sw: Arc<ConsumerSwitch>) {
        self.consumers
            .lock()
            .expect("controls lock")
            .insert(workload.to_string(), sw);
    }

    pub fn consumers(&self, workload: &str) -> Option<Arc<ConsumerSwitch>> {
        self.consumers
            .lock()
            .expect("controls lock")
            .get(workload)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_and_revive() {
        let c = Controls::default();
        c.register_consumers("tasks", ConsumerSwitch::new(2));
        let sw = c.consumers("tasks").unwrap();
        assert!(!sw.is_crashed(1));
        sw.crash(1).unwrap();
        assert!(sw.is_crashed(1) && !sw.is_crashed(0));
        sw.revive(1).unwrap();
        assert!(!sw.is_crashed(1));
        assert!(sw.crash(2).unwrap_err().contains("2 consumers"));
        assert!(c.consumers("nope").is_none());
        assert_eq!(
            sw.set_stalled(None, true).unwrap(),
            "all 2 consumers stalled"
        );
        assert!(sw.is_stalled(0) && sw.is_stalled(1));
        sw.set_stalled(Some(1), false).unwrap();
        assert!(sw.is_stalled(0) && !sw.is_stalled(1));
        assert!(sw.set_stalled(Some(5), true).is_err());
    }
}
