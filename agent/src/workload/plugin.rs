//! PLACEHOLDER (replaced before commit).
use super::{Ctx, Figures};
use crate::plan::{LoadModel, WorkloadPlan};
use crate::scenario::reader::Obj;
use std::sync::Arc;
use tokio::task::JoinSet;
pub const OPS: &[&str] = &["op"];
pub const COUNTERS: &[&str] = &[];
#[derive(Debug, Clone)]
pub struct PluginPlan;
pub struct State;
impl State {
    pub async fn finish(&self, _ctx: &Ctx) -> Figures {
        vec![]
    }
}
#[allow(clippy::type_complexity)]
pub fn read_placeholder(w: &Obj) -> Option<(PluginPlan, u32, LoadModel)> {
    w.ctx.error(&w.span, "not yet", None);
    None
}
pub fn spawn_placeholder(
    _p: &WorkloadPlan,
    _x: &PluginPlan,
    _c: Ctx,
    _t: &mut JoinSet<()>,
) -> Arc<State> {
    Arc::new(State)
}
pub fn read(
    w: &Obj,
    _k: Option<&Obj>,
    _c: Option<u32>,
    _f: &std::path::Path,
) -> Option<(PluginPlan, u32)> {
    read_placeholder(w).map(|x| (x.0, x.1))
}
pub async fn spawn(
    p: &WorkloadPlan,
    x: &PluginPlan,
    c: Ctx,
    t: &mut JoinSet<()>,
) -> Result<Arc<State>, String> {
    Ok(spawn_placeholder(p, x, c, t))
}
