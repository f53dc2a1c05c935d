//! The one integration-test binary: real servers on free loopback ports, the real agent binary.

mod support;

mod barrier;
mod chart;
mod compat;
mod drain;
mod dramatiq;
mod faults;
mod foundation;
mod generator;
mod headroom;
mod interop;
mod judge;
mod locks;
mod managed;
mod migration;
mod netns;
mod oracles;
mod otlp;
mod plugins;
mod proxy;
mod readme;
mod recovery;
mod reports;
mod rollback;
mod rolling;
mod scenarios;
mod shard;
mod tls;
mod tools;
mod verify;
mod xtask;
