//! One reader per workload kind: each reads its `[workload.<kind>]` table into the kind's plan
//! (plain data in `plan::workload`), reporting every problem with its position.

pub mod commands;
pub mod dramatiq;
pub mod lock;
pub mod plugin;
pub mod rate_limit;
pub mod set;
