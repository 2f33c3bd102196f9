//! `ringmaster validate`: the schema and CEL checks of [`crate::manifest`] plus the
//! cross-object checks the engine makes (missing or unusable rings, overlapping
//! policies at one priority, exceptions beyond their policy's limits).

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::engine::{self, Kind};
use crate::manifest::{Document, Object, Problem, Source, parse_documents};
use crate::sim::World;

/// Every problem in a set of documents, sorted by file, document and field.
///
/// Time-dependent checks (an exception's length, whether it has already expired) are
/// judged at `at`; without it, at the `spec.start` of a simulator Fleet among the
/// documents (the instant they describe), else at `now`.
pub fn check(docs: Vec<Document>, at: Option<Timestamp>, now: Timestamp) -> Vec<Problem> {
    let (objects, mut problems) = parse_documents(docs);
    let fleet_start = objects.iter().find_map(|(_, o)| match o {
        Object::Extension { kind, value, .. } if kind == "Fleet" => value["spec"]["start"]
            .as_str()
            .and_then(|s| s.parse::<Timestamp>().ok()),
        _ => None,
    });
    problems.extend(cross_check(&objects, at.or(fleet_start).unwrap_or(now)));
    problems
        .sort_by(|a, b| (&a.source, &a.field, &a.message).cmp(&(&b.source, &b.field, &b.message)));
    problems
}

/// The cross-object problems among objects that passed their schema, judged at `now`,
/// per namespace (tenant).
pub fn cross_check(objects: &[(Source, Object)], now: Timestamp) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut sources: BTreeMap<(Kind, String, String), Source> = BTreeMap::new();
    let mut worlds: BTreeMap<String, World> = BTreeMap::new();
    let mut patches = Vec::new();
    for (source, object) in objects {
        let ns = object.namespace().unwrap_or("").to_string();
        let name = object.name().unwrap_or("").to_string();
        let world = || World::new(&ns);
        match object {
            Object::Policy(p) => {
                sources.insert(
                    (Kind::PatchPolicy, ns.clone(), name.clone()),
                    source.clone(),
                );
                worlds
                    .entry(ns.clone())
                    .or_insert_with(world)
                    .policies
                    .insert(name, p.clone());
            }
            Object::Ring(r) => {
                sources.insert(
                    (Kind::DeploymentRing, ns.clone(), name.clone()),
                    source.clone(),
                );
                worlds
                    .entry(ns.clone())
                    .or_insert_with(world)
                    .rings
                    .insert(name, r.clone());
            }
            Object::Exception(e) => {
                sources.insert(
                    (Kind::PatchException, ns.clone(), name.clone()),
                    source.clone(),
                );
                worlds
                    .entry(ns.clone())
                    .or_insert_with(world)
                    .exceptions
                    .insert(name, e.clone());
            }
            Object::Approval(a) => {
                sources.insert(
                    (Kind::PatchApproval, ns.clone(), name.clone()),
                    source.clone(),
                );
                worlds
                    .entry(ns.clone())
                    .or_insert_with(world)
                    .approvals
                    .insert(name, a.clone());
            }
            Object::Freeze(f) => {
                sources.insert(
                    (Kind::PatchFreeze, ns.clone(), name.clone()),
                    source.clone(),
                );
                worlds
                    .entry(ns.clone())
                    .or_insert_with(world)
                    .freezes
                    .insert(name, f.clone());
            }
            Object::Patch(p) => patches.push(p.clone()),
            Object::Report(r) => problems.extend(report_problem(source, &ns, &name, r)),
            Object::Device(_) | Object::Rollout(_) | Object::Extension { .. } => {}
        }
    }
    for (ns, mut world) in worlds {
        for p in &patches {
            world.patches.insert(p.spec.id.clone(), p.clone());
        }
        for sp in engine::spec_problems(&world.snapshot(), now) {
            let Some(source) = sources.get(&(sp.kind, ns.clone(), sp.name.clone())) else {
                continue;
            };
            problems.push(Problem {
                source: source.clone(),
                object: format!("{} {ns}/{}", sp.kind.as_str(), sp.name),
                field: sp.field,
                message: sp.message,
            });
        }
    }
    problems
        .sort_by(|a, b| (&a.source, &a.field, &a.message).cmp(&(&b.source, &b.field, &b.message)));
    problems
}

/// A PatchReport whose own time zone is not one (the schema has checked the month's
/// form; a report without a zone takes its Namespace's, which is not in the manifests).
fn report_problem(
    source: &Source,
    ns: &str,
    name: &str,
    r: &crate::api::PatchReport,
) -> Option<Problem> {
    let zone = r.spec.time_zone.as_deref()?;
    let error = crate::report::month::Month::parse(&r.spec.month, zone).err()?;
    let field = match error {
        crate::report::month::MonthError::TimeZone(_) => "spec.timeZone",
        crate::report::month::MonthError::Month(_) => "spec.month",
    };
    Some(Problem {
        source: source.clone(),
        object: format!("PatchReport {ns}/{name}"),
        field: field.to_string(),
        message: error.to_string(),
    })
}
