//! Scenario file → [`Plan`]: resolve defaults and cross-references, report every problem at once.
//! Never touches the network.
//!
//! `compile_root` reads the top-level sections in a fixed order (the order decides the order of
//! the diagnostics), one function per section, then checks what spans sections.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use toml::de::DeTable;

use super::diag::{Diagnostics, Source};
use super::load::read_load;
use super::reader::{At, Ctx, Obj};
use super::threshold::{self, Catalog, Part};
use super::workload;
use crate::plan::fault::{topology_needs, FaultPlan, SwitchProcedure};
use crate::plan::migration::{Migration, Mode};
use crate::plan::*;

/// Compile one scenario text. `file` is used for messages and to resolve relative plugin paths.
pub fn compile_str(file: &Path, text: &str) -> Result<Plan, Diagnostics> {
    let src = Source { file, text };
    let (doc, parse_errors) = DeTable::parse_recoverable(text);
    if !parse_errors.is_empty() {
        let diags = parse_errors
            .iter()
            .map(|e| {
                let off = e.span().map(|s| s.start).unwrap_or(0);
                src.diag(
                    off,
                    format!("TOML syntax: {}", e.message().trim()),
                    Some("fix the TOML syntax first".into()),
                )
            })
            .collect();
        return Err(Diagnostics(diags));
    }
    let ctx = Ctx::new(src);
    let root = Obj::new(&ctx, doc.get_ref(), doc.span(), "");
    let plan = compile_root(&root, file);
    root.finish();
    let diags = ctx.diags.into_inner();
    match plan {
        Some(p) if diags.is_empty() => Ok(p),
        _ => Err(Diagnostics(diags)),
    }
}

fn compile_root(root: &Obj, file: &Path) -> Option<Plan> {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scenario".into());
    let name = root.str("name").map(|s| s.value).unwrap_or(stem);
    let _ = root.str("description");
    let seed = root
        .uint("seed", u64::MAX >> 1)
        .map(|s| s.value)
        .unwrap_or(1);
    let duration = read_duration(root);
    let recover_within = root
        .duration("recover_within")
        .map(|d| d.value)
        .unwrap_or(crate::plan::DEFAULT_RECOVER_WITHIN);
    let allow_destructive = root
        .bool("allow_destructive")
        .map(|b| b.value)
        .unwrap_or(false);
    let target = read_target(root);
    let mut topology = read_topology(root);
    let (workloads, broken) = read_workloads(root, file);
    let migration = root.table("migration").map(|t| {
        let m = super::migration::read(&t);
        t.finish();
        m
    });
    let mut faults = read_faults(root);
    expand_rollouts(root, &workloads, &mut faults);
    if let Some(d) = &duration {
        check_fault_times(root, &faults, d.value);
    }
    check_migration_faults(root, migration.as_ref(), &faults);
    // Faults that need replicas or sentinels grow the embedded topology.
    if migration.is_none() {
        let need = topology_needs(&faults);
        topology.replicas = topology.replicas.max(need.replicas);
        topology.sentinels = topology.sentinels.max(need.sentinels);
        topology.replication_proxy = need.replication_proxy;
    }
    let thresholds = read_thresholds(root, &workloads, &faults, &broken);
    Some(Plan {
        name,
        source: file.to_path_buf(),
        seed,
        duration: duration?.value,
        target_url: target.url,
        key_prefix: target.key_prefix,
        topology,
        request_timeout: target.request_timeout,
        workloads,
        faults,
        thresholds,
        allow_destructive,
        shard: None,
        migration,
        recover_within,
    })
}

/// `duration`: required and more than 0s.
fn read_duration(root: &Obj) -> Option<At<Duration>> {
    let duration = root.duration("duration");
    if duration.is_none() && !root.has("duration") {
        root.missing("duration", Some("add e.g. duration = \"30s\"".into()));
    }
    if let Some(d) = &duration {
        if d.value.is_zero() {
            root.ctx
                .error(&d.span, "`duration` must be more than 0s", None);
        }
    }
    duration
}

/// What `[target]` sets, with its defaults.
struct TargetSettings {
    url: Option<String>,
    key_prefix: String,
    request_timeout: Duration,
}

/// `[target]`: url, key prefix, request timeout.
fn read_target(root: &Obj) -> TargetSettings {
    let mut out = TargetSettings {
        url: None,
        key_prefix: "vc:".to_string(),
        request_timeout: Duration::from_secs(2),
    };
    if let Some(t) = root.table("target") {
        if let Some(u) = t.str("url") {
            if let Err(e) = crate::valkey::url::TargetUrl::parse(&u.value) {
                t.ctx.error(
                    &u.span,
                    e,
                    Some("write redis://[user:password@]host:port[/db] or rediss://…".into()),
                );
            }
            out.url = Some(u.value);
        }
        if let Some(p) = t.str("key_prefix") {
            out.key_prefix = p.value;
        }
        if let Some(d) = t.duration("timeout") {
            out.request_timeout = d.value;
        }
        t.finish();
    }
    out
}

/// `[topology]`: replicas and sentinels of the embedded target (faults may grow it later).
fn read_topology(root: &Obj) -> Topology {
    let mut topology = Topology::default();
    if let Some(t) = root.table("topology") {
        if let Some(r) = t.uint("replicas", 5) {
            topology.replicas = r.value as u8;
        }
        if let Some(s) = t.uint("sentinels", 5) {
            topology.sentinels = s.value as u8;
        }
        t.finish();
    }
    topology
}

/// Every `[[workload]]`, and the ids of those that failed to compile (thresholds on them are
/// not reported again).
fn read_workloads(root: &Obj, file: &Path) -> (Vec<WorkloadPlan>, HashSet<String>) {
    let mut workloads = vec![];
    let mut ids: HashSet<String> = HashSet::new();
    let mut broken: HashSet<String> = HashSet::new();
    let wl_objs = root.tables("workload");
    if wl_objs.is_empty() && !root.has("workload") {
        root.missing(
            "workload",
            Some("add at least one [[workload]] section with an `id` and a `type`".into()),
        );
    }
    for w in wl_objs {
        let wid = w.table_str("id");
        let compiled = compile_workload(&w, file);
        if compiled.is_none() {
            broken.extend(wid);
        }
        if let Some(wp) = compiled {
            if !ids.insert(wp.id.clone()) {
                w.ctx.error(
                    &w.span,
                    format!("duplicate workload id {:?}", wp.id),
                    Some("every [[workload]] needs its own id".into()),
                );
            }
            workloads.push(wp);
        }
        w.finish();
    }
    (workloads, broken)
}

/// Every `[[fault]]` that compiled, indexed in file order.
fn read_faults(root: &Obj) -> Vec<FaultPlan> {
    let mut faults: Vec<FaultPlan> = vec![];
    for f in root.tables("fault") {
        if let Some(fp) = super::fault::read(&f, faults.len()) {
            faults.push(fp);
        }
        f.finish();
    }
    faults
}

/// Every fault starts before the run ends.
fn check_fault_times(root: &Obj, faults: &[FaultPlan], duration: Duration) {
    for f in faults {
        if f.at >= duration {
            root.ctx.error(
                &f.span,
                format!(
                    "fault {:?} starts at {:?}, after the run ends ({:?})",
                    f.name, f.at, duration
                ),
                Some("lower `at` or raise `duration`".into()),
            );
        }
    }
}

/// A rolling switch gets one group per workload and kind of client, now that the workloads are
/// known; a group named for no workload is an error at the fault.
fn expand_rollouts(root: &Obj, workloads: &[WorkloadPlan], faults: &mut [FaultPlan]) {
    use crate::plan::rollout::Clients;
    let kinds: Vec<(String, Vec<(Clients, u32)>)> = workloads
        .iter()
        .map(|w| {
            let k = match &w.kind {
                WorkloadKind::Dramatiq(d) => vec![
                    (Clients::Producers, d.producers),
                    (Clients::Consumers, d.consumers),
                ],
                _ => vec![(Clients::All, w.clients)],
            };
            (w.id.clone(), k)
        })
        .collect();
    for f in faults.iter_mut() {
        if let FaultKind::Switch {
            procedure: SwitchProcedure::Rolling(r),
        } = &mut f.kind
        {
            if let Err(e) = r.expand(&kinds) {
                root.ctx.error(
                    &f.span,
                    format!("fault {:?}: {e}", f.name),
                    Some("name a workload of this scenario in [[fault.switch.rollout]]".into()),
                );
            }
        }
    }
}

/// A switch needs a migration; a migration takes the faults that make sense around a cutover.
fn check_migration_faults(root: &Obj, migration: Option<&Migration>, faults: &[FaultPlan]) {
    for f in faults {
        let ok = match (migration, &f.kind) {
            (None, FaultKind::Switch { .. } | FaultKind::SwitchBack { .. }) => {
                root.ctx.error(
                    &f.span,
                    format!(
                        "fault {:?} is a {}, but the scenario has no [migration]",
                        f.name,
                        f.kind.type_name()
                    ),
                    Some("add [migration] (source, destination) to rehearse a cutover".into()),
                );
                continue;
            }
            (None, _) => true,
            (Some(_), k) => {
                matches!(
                    k,
                    FaultKind::Switch { .. }
                        | FaultKind::SwitchBack { .. }
                        | FaultKind::ConsumerCrash { .. }
                        | FaultKind::ConsumerStall { .. }
                ) || k.network()
            }
        };
        if !ok {
            root.ctx.error(
                &f.span,
                format!(
                    "fault {:?} ({}) does not apply to a migration rehearsal",
                    f.name,
                    f.kind.type_name()
                ),
                Some(
                    "a [migration] scenario takes `switch`, network faults (latency, partition, …) \
                     and replication faults on the destination's link"
                        .into(),
                ),
            );
        }
    }
    if let Some(m) = migration {
        check_switches(root, m, faults);
    }
}

/// The switches a migration's mode allows: none for an external one, one for `replicaof`.
fn check_switches(root: &Obj, m: &Migration, faults: &[FaultPlan]) {
    // With a provider copying, the agent cannot promote the destination: the team's own
    // `at-promotion` step (the provider's "stop the migration") does.
    let promotes = m
        .steps
        .iter()
        .any(|s| s.at == crate::plan::migration::StepPoint::AtPromotion);
    if m.mode == Mode::External && !promotes {
        for f in faults
            .iter()
            .filter(|f| matches!(f.kind, FaultKind::Switch { .. }))
        {
            root.ctx.error(
                &f.span,
                "mode = \"external\": the provider stops its migration, and this scenario has no \
                 step that does",
                Some(
                    "add [[migration.step]] at = \"at-promotion\" with the provider's command (e.g. \
                     command = \"doctl databases migration stop …\"), or remove the switch and \
                     follow docs/migration.md: Migration runbook"
                        .into(),
                ),
            );
        }
    }
    // The way back follows a switch, once.
    let switch_at = faults
        .iter()
        .find(|f| matches!(f.kind, FaultKind::Switch { .. }))
        .map(|f| f.at);
    let backs: Vec<&FaultPlan> = faults
        .iter()
        .filter(|f| matches!(f.kind, FaultKind::SwitchBack { .. }))
        .collect();
    for (i, f) in backs.iter().enumerate() {
        let problem = if i > 0 {
            Some("a migration has one switch-back".to_string())
        } else if m.mode == Mode::External {
            Some("mode = \"external\": the way back is the provider's".to_string())
        } else {
            match switch_at {
                Some(at) if at < f.at => None,
                _ => Some(format!(
                    "fault {:?} switches back, but no switch comes before it",
                    f.name
                )),
            }
        };
        if let Some(p) = problem {
            root.ctx.error(
                &f.span,
                p,
                Some("a switch-back follows the scenario's `switch`: at = \"…\" after it".into()),
            );
        }
    }
    if m.mode == Mode::ReplicaOf
        && faults
            .iter()
            .filter(|f| matches!(f.kind, FaultKind::Switch { .. }))
            .count()
            > 1
    {
        root.ctx
            .error(&root.span, "a migration has one switch", None);
    }
}

/// `[thresholds]`, checked against the workloads and faults of the plan; thresholds on a
/// workload that failed to compile are skipped.
fn read_thresholds(
    root: &Obj,
    workloads: &[WorkloadPlan],
    faults: &[FaultPlan],
    broken: &HashSet<String>,
) -> Vec<Threshold> {
    let mut thresholds = vec![];
    if let Some(t) = root.table("thresholds") {
        let cat = Catalog::of_plan(workloads, faults);
        for (k, v) in t.entries() {
            if broken.contains(k.value.split(['.', '{']).next().unwrap_or("")) {
                continue;
            }
            let toml::de::DeValue::String(cond) = v.get_ref() else {
                t.ctx.error(
                    &v.span(),
                    format!(
                        "threshold {:?} must be a condition string like \"< 5ms\"",
                        k.value
                    ),
                    None,
                );
                continue;
            };
            match threshold::parse(&k.value, cond, &cat) {
                Ok(th) => thresholds.push(th),
                Err(e) => {
                    let span = match e.part {
                        Part::Metric => k.span.clone(),
                        Part::Condition => v.span(),
                    };
                    t.ctx.error(&span, e.message, e.hint);
                }
            }
        }
    }
    thresholds
}

fn compile_workload(w: &Obj, file: &Path) -> Option<WorkloadPlan> {
    let id = w.req_str("id", "give each workload a short id such as id = \"cache\"");
    if let Some(id) = &id {
        let ok = !id.value.is_empty()
            && id
                .value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !ok {
            w.ctx.error(
                &id.span,
                format!(
                    "workload id {:?} must be lowercase letters, digits, '_' or '-'",
                    id.value
                ),
                Some("ids appear in metric names like <id>.<op>.p99".into()),
            );
        }
    }
    let ty = w.choice("type", TYPES);
    if ty.is_none() && !w.has("type") {
        w.missing("type", Some(format!("one of: {}", TYPES.join(", "))));
    }
    // A table named after another type is a mistake worth naming.
    for other in TYPES {
        if ty.as_ref().is_none_or(|t| t.value == *other) {
            continue;
        }
        if let Some(v) = w.raw(other) {
            let hint = match &ty {
                Some(t) => format!(
                    "this workload has type = \"{}\": put its settings in [workload.{}]",
                    t.value, t.value
                ),
                None => "set `type` to match the table".into(),
            };
            w.ctx.error(
                &v.span(),
                format!("[workload.{other}] does not match the workload's type"),
                Some(hint),
            );
        }
    }
    let clients = w.uint("clients", 100_000).map(|c| c.value as u32);
    // ECHO keeps caches and limiters in DB 0, Dramatiq in DB 1, coordination in DB 2.
    let db = w.uint("db", 15).map(|d| d.value as u32);
    let recover_within = w.duration("recover_within").map(|d| d.value);
    let load = read_load(w);
    let ty = ty?;
    let kt: &'static str = TYPES.iter().find(|t| **t == ty.value).copied()?;
    let kobj = w.table(kt);
    let (kind, clients, load) = match kt {
        "commands" => {
            let k = kobj.as_ref();
            (
                WorkloadKind::Commands(workload::commands::read(w, k)?),
                clients.unwrap_or(10),
                load?,
            )
        }
        "dramatiq" => {
            let k = kobj.as_ref();
            let (p, load) = workload::dramatiq::read(w, k, load)?;
            let c = p.producers + p.consumers * p.threads;
            (WorkloadKind::Dramatiq(p), c, load)
        }
        "lock" => {
            let k = kobj.as_ref();
            let (p, c, load) = workload::lock::read(w, k, clients, load)?;
            (WorkloadKind::Lock(p), c, load)
        }
        "rate_limit" => {
            let k = kobj.as_ref();
            let (p, c, load) = workload::rate_limit::read(w, k, clients, load)?;
            (WorkloadKind::RateLimit(p), c, load)
        }
        "plugin" => {
            let k = kobj.as_ref();
            let (p, c) = workload::plugin::read(w, k, clients, file)?;
            (WorkloadKind::Plugin(p), c, load?)
        }
        "set" => {
            let k = kobj.as_ref();
            let (p, c, load) = workload::set::read(w, k, clients, load)?;
            (WorkloadKind::Set(p), c, load)
        }
        _ => return None,
    };
    if let Some(k) = kobj {
        k.finish();
    }
    Some(WorkloadPlan {
        id: id?.value,
        clients,
        load,
        kind,
        db,
        recover_within,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<String> {
        match compile_str(Path::new("t.toml"), text) {
            Ok(_) => vec![],
            Err(d) => {
                d.0.iter()
                    .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
                    .collect()
            }
        }
    }

    const GOOD: &str = r#"
name = "cache-smoke"
seed = 7
duration = "10s"
[[workload]]
id = "cache"
type = "commands"
clients = 50
rate_per_sec = 20000
[workload.commands]
mix = { get = 9, set = 1 }
keys = 10000
value_bytes = 100
pipeline = 1
[thresholds]
"cache.get.p99" = "< 5ms"
"cache.error_rate" = "< 1%"
"#;

    #[test]
    fn compiles_the_contract_example() {
        let p = compile_str(Path::new("t.toml"), GOOD).unwrap();
        assert_eq!(p.name, "cache-smoke");
        assert_eq!(p.seed, 7);
        assert_eq!(p.workloads[0].clients, 50);
        assert_eq!(
            p.workloads[0].load,
            LoadModel::Open(RateSchedule::constant(20000.0))
        );
        assert_eq!(p.thresholds[0].value, 5000.0);
        assert_eq!(p.thresholds[1].value, 0.01);
    }

    #[test]
    fn reports_all_errors_at_once_with_positions() {
        let text = GOOD
            .replace("clients = 50", "clinets = 50")
            .replace("duration = \"10s\"", "duration = \"10 parsecs\"")
            .replace("\"cache.get.p99\"", "\"cache.gte.p99\"")
            .replace("keys = 10000", "keys = -3");
        let e = errs(&text);
        assert_eq!(e.len(), 4, "{e:#?}");
        assert!(
            e.iter()
                .any(|m| m.starts_with("4:12: `duration` is not a duration")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("8:1: unknown key `workload.clinets`")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("keys") && m.contains("between 0")),
            "{e:#?}"
        );
        assert!(
            e.iter().any(|m| m.contains("no operation \"gte\"")),
            "{e:#?}"
        );
    }

    #[test]
    fn hints_suggest_the_near_name() {
        let d = compile_str(
            Path::new("t.toml"),
            &GOOD.replace("clients = 50", "clinets = 50"),
        )
        .unwrap_err();
        assert_eq!(d.0[0].hint.as_deref(), Some("did you mean `clients`?"));
    }

    #[test]
    fn bad_rates_and_types() {
        let e = errs(&GOOD.replace("rate_per_sec = 20000", "rate_per_sec = 0"));
        assert!(
            e.iter()
                .any(|m| m.contains("`rate_per_sec` must be more than 0")),
            "{e:#?}"
        );
        let e = errs(&GOOD.replace("type = \"commands\"", "type = \"comands\""));
        assert!(
            e.iter()
                .any(|m| m.contains("unknown `workload.type` \"comands\"")),
            "{e:#?}"
        );
        let e = errs(&GOOD.replace("\"< 5ms\"", "\"< 5\""));
        assert!(e.iter().any(|m| m.contains("needs a unit")), "{e:#?}");
        let e = errs("duration = \"1s\"\n");
        assert!(e.iter().any(|m| m.contains("missing `workload`")), "{e:#?}");
        let e = errs("duration = \"1s\n");
        assert!(e.iter().any(|m| m.contains("TOML syntax")), "{e:#?}");
    }

    #[test]
    fn migration_faults_are_checked_against_the_mode() {
        let switch = "[[fault]]\ntype = \"switch\"\nat = \"2s\"\n";
        let mig = |mode: &str| {
            format!(
                "{GOOD}[migration]\nsource = \"redis://10.0.0.1:6379\"\n\
                 destination = \"redis://10.0.0.2:6379\"\nmode = \"{mode}\"\n"
            )
        };
        let e = errs(&format!("{}{switch}", mig("external")));
        assert!(e.iter().any(|m| m.contains("no step that does")), "{e:#?}");
        // With the provider's own promotion step, an external migration takes a switch.
        let step = "[[migration.step]]\nat = \"at-promotion\"\ncommand = \"true\"\n";
        assert_eq!(
            errs(&format!("{}{step}{switch}", mig("external"))),
            Vec::<String>::new()
        );
        assert_eq!(
            errs(&format!("{}{switch}", mig("replicaof"))),
            Vec::<String>::new()
        );
        let e = errs(&format!("{}{switch}{switch}", mig("replicaof")));
        assert!(e.iter().any(|m| m.contains("one switch")), "{e:#?}");
        let e = errs(&format!(
            "{}[[fault]]\ntype = \"kill\"\nat = \"2s\"\n",
            mig("replicaof")
        ));
        assert!(
            e.iter()
                .any(|m| m.contains("does not apply to a migration")),
            "{e:#?}"
        );
    }

    #[test]
    fn stages_compile() {
        let p = compile_str(Path::new("t.toml"), &GOOD.replace("rate_per_sec = 20000", "stages = [{ duration = \"10s\", target = 1000 }, { duration = \"20s\", target = 5000 }]")).unwrap();
        let LoadModel::Open(s) = &p.workloads[0].load else {
            panic!()
        };
        assert_eq!(s.stages.len(), 2);
        assert_eq!(s.start, 0.0);
    }
}
