//! Turning checked manifests into a simulation's world and fleet.

use crate::manifest::{Object, Source};

use super::fleet::{FleetSpec, SIM_API_VERSION};
use super::world::World;

/// Why a set of manifests cannot be simulated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimLoadError {
    /// The manifests span several namespaces.
    #[error("simulate plays one tenant, but the manifests use namespaces {0}")]
    SeveralNamespaces(String),
    /// No namespaced object at all.
    #[error(
        "no PatchPolicy, DeploymentRing, PatchException or ManagedDevice found: nothing to simulate"
    )]
    Empty,
    /// More than one Fleet file.
    #[error("{0}: a second Fleet; a tenant has one fleet behaviour file")]
    SecondFleet(String),
    /// The Fleet file does not parse.
    #[error("{location}: Fleet {name}: spec{message}")]
    BadFleet {
        /// Where it is.
        location: String,
        /// Its name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// An unknown simulator kind.
    #[error("{0}: unknown kind {1} in {SIM_API_VERSION} (expected Fleet)")]
    UnknownKind(String, String),
}

/// Builds the world (one namespace) and the fleet behaviour from checked objects.
pub fn world_from(objects: Vec<(Source, Object)>) -> Result<(World, FleetSpec), SimLoadError> {
    let mut namespaces: Vec<String> = objects
        .iter()
        .filter_map(|(_, o)| match o {
            Object::Policy(p) => p.metadata.namespace.clone(),
            Object::Ring(r) => r.metadata.namespace.clone(),
            Object::Exception(e) => e.metadata.namespace.clone(),
            Object::Device(d) => d.metadata.namespace.clone(),
            Object::Rollout(r) => r.metadata.namespace.clone(),
            Object::Report(r) => r.metadata.namespace.clone(),
            Object::Approval(a) => a.metadata.namespace.clone(),
            Object::Freeze(f) => f.metadata.namespace.clone(),
            Object::Patch(_) | Object::Extension { .. } => None,
        })
        .collect();
    namespaces.sort();
    namespaces.dedup();
    let namespace = match namespaces.as_slice() {
        [] => return Err(SimLoadError::Empty),
        [one] => one.clone(),
        many => return Err(SimLoadError::SeveralNamespaces(many.join(", "))),
    };
    let mut world = World::new(&namespace);
    let mut fleet: Option<(String, FleetSpec)> = None;
    for (source, object) in objects {
        match object {
            Object::Policy(mut p) => {
                stamp(&mut p.metadata);
                world
                    .policies
                    .insert(p.metadata.name.clone().unwrap_or_default(), p);
            }
            Object::Ring(mut r) => {
                stamp(&mut r.metadata);
                world
                    .rings
                    .insert(r.metadata.name.clone().unwrap_or_default(), r);
            }
            Object::Exception(mut e) => {
                stamp(&mut e.metadata);
                world
                    .exceptions
                    .insert(e.metadata.name.clone().unwrap_or_default(), e);
            }
            Object::Device(mut d) => {
                stamp(&mut d.metadata);
                world
                    .devices
                    .insert(d.metadata.name.clone().unwrap_or_default(), d);
            }
            Object::Rollout(mut r) => {
                stamp(&mut r.metadata);
                world
                    .rollouts
                    .insert(r.metadata.name.clone().unwrap_or_default(), r);
            }
            Object::Patch(mut p) => {
                stamp(&mut p.metadata);
                world.patches.insert(p.spec.id.clone(), p);
            }
            Object::Approval(mut a) => {
                stamp(&mut a.metadata);
                world
                    .approvals
                    .insert(a.metadata.name.clone().unwrap_or_default(), a);
            }
            Object::Freeze(mut f) => {
                stamp(&mut f.metadata);
                world
                    .freezes
                    .insert(f.metadata.name.clone().unwrap_or_default(), f);
            }
            // The simulation closes every month it crosses (`--report`) by itself.
            Object::Report(_) => {}
            Object::Extension { kind, value, .. } => {
                if kind != "Fleet" {
                    return Err(SimLoadError::UnknownKind(source.to_string(), kind));
                }
                if fleet.is_some() {
                    return Err(SimLoadError::SecondFleet(source.to_string()));
                }
                let name = value["metadata"]["name"].as_str().unwrap_or("").to_string();
                let spec = value.get("spec").cloned().unwrap_or_default();
                let mut parsed: FleetSpec =
                    serde_json::from_value(spec).map_err(|e| SimLoadError::BadFleet {
                        location: source.to_string(),
                        name: name.clone(),
                        message: format!(": {e}"),
                    })?;
                catalog_paths(&mut parsed, &source.file)
                    .and_then(|()| behaviour_selectors(&parsed))
                    .map_err(|message| SimLoadError::BadFleet {
                        location: source.to_string(),
                        name: name.clone(),
                        message,
                    })?;
                fleet = Some((name, parsed));
            }
        }
    }
    Ok((world, fleet.map(|(_, f)| f).unwrap_or_default()))
}

/// Gives an object what an API server would: a generation and a uid. The creation time
/// is left to the simulation (its start), unless the manifest set one.
fn stamp(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
    meta.generation.get_or_insert(1);
    if meta.uid.is_none() {
        meta.uid = Some(format!("sim-{}", meta.name.as_deref().unwrap_or("")));
    }
}

/// Checks that every `behaviours` selector compiles; the message names the first that
/// does not (a rule that could never match would silently leave its devices on the
/// defaults).
fn behaviour_selectors(fleet: &FleetSpec) -> Result<(), String> {
    for (i, rule) in fleet.behaviours.iter().enumerate() {
        crate::engine::selector::Selector::compile(&rule.selector)
            .map_err(|e| format!(".behaviours[{i}].selector.{e}"))?;
    }
    Ok(())
}

/// Resolves the actions' catalog files against the Fleet file's directory; the message
/// names the first that cannot be read.
fn catalog_paths(fleet: &mut FleetSpec, file: &std::path::Path) -> Result<(), String> {
    let dir = file.parent().unwrap_or(std::path::Path::new("."));
    for (i, action) in fleet.actions.iter_mut().enumerate() {
        for (j, path) in action.catalog.iter_mut().enumerate() {
            let resolved = dir.join(&*path);
            if !resolved.exists() {
                return Err(format!(
                    ".actions[{i}].catalog[{j}]: {} does not exist",
                    resolved.display()
                ));
            }
            *path = resolved;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(fleet_spec: &str) -> Result<(World, FleetSpec), SimLoadError> {
        let yaml = format!(
            "apiVersion: patching.ringmaster.dev/v1alpha1
kind: DeploymentRing
metadata: {{name: broad, namespace: acme}}
spec: {{deviceSelector: {{}}, maxConcurrent: 5}}
---
apiVersion: sim.ringmaster.dev/v1alpha1
kind: Fleet
metadata: {{name: f, namespace: acme}}
spec: {fleet_spec}
"
        );
        let docs =
            crate::manifest::parse_yaml(std::path::Path::new("fleet.yaml"), &yaml).expect("yaml");
        let (objects, problems) = crate::manifest::parse_documents(docs);
        assert!(problems.is_empty(), "{problems:?}");
        world_from(objects)
    }

    #[test]
    fn a_behaviour_rule_whose_selector_cannot_match_is_refused_by_place() {
        let ok = load(
            "{behaviours: [{selector: {matchLabels: {class: server}}, behaviour: {checkIn: 1h}}]}",
        );
        assert_eq!(ok.expect("loads").1.behaviours.len(), 1);
        let bad = load(
            "{behaviours: [{selector: {matchLabels: {class: server}}, behaviour: {}},
              {selector: {matchExpressions: [{key: class, operator: Maybe}]}, behaviour: {}}]}",
        );
        let message = bad.expect_err("refused").to_string();
        assert!(
            message.starts_with(
                "fleet.yaml:6: Fleet f: spec.behaviours[1].selector.matchExpressions[0].operator: unknown operator \"Maybe\""
            ),
            "{message}"
        );
    }
}
