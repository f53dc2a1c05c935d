//! Faults on a timeline: each occurrence waits for its time, injects, and returns a guard whose
//! heal runs at the fault's end, at the end of the run, on error and on Ctrl-C. Kinds (plain data
//! in `plan::fault`): topology (`failover`, `kill`, `pause`), server (`client-pause`,
//! `client-kill`, `debug-sleep`, `memory`, `idle-timeout`) and network through the proxy
//! (`latency`, `bandwidth`, `reset`, `blackhole`, `slow-close`, `limit-data`, `partition`).
//!
//! [`env`] refuses what may not run and starts the proxies, `plan::schedule` lists the occurrences (a
//! pure function of the plan), [`timeline`] runs them, [`inject`] injects one and returns its
//! healing guard, [`nodes`] resolves which node a fault hits, [`proxy`] carries the network
//! toxics. What a fault did is measured afterwards from the
//! recorded metrics (`summary::impact`), not here.

mod admin;
pub mod command;
mod copy_cost;
pub mod env;
mod failover;
mod glob;
pub mod inject;
pub mod nodes;
mod pods;
mod pressure;
mod pressure_fault;
pub mod proxy;
pub mod replies;
mod resp_proxy;
pub mod rolled;
mod rolling;
mod steps;
pub mod switch;
mod switch_back;
pub mod timeline;
mod toxic;
mod upstream;
mod way_back;
mod wire;

pub use env::{prepare, DestructivePolicy, FaultEnv, PrepareError, Prepared};
pub use timeline::spawn_timeline;
