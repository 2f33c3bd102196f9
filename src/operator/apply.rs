//! Applies the engine's [`Decisions`] to the API server with the fewest writes.
//!
//! Every write is compared first with what the store holds, and sent only when it
//! changes something:
//!
//! - statuses: a JSON merge patch on `/status` holding only what differs (`null` for a
//!   field that goes away);
//! - new rollouts: `create`, owned by their policy (an existing one is fine);
//! - plan changes: one merge patch per device on the main resource, holding only the
//!   plan keys that change (`null` removes a key), so rollouts writing other keys of the
//!   same device never race;
//! - device `status.compliance`: a merge patch on `/status`;
//! - Events: events.k8s.io/v1, through kube's [`Recorder`];
//! - the catalog: each Patch's `status.firstReleasedAt` and `status.severity`.
//!
//! A write that fails does not stop the others; the failures are returned so the
//! reconcile is retried.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch as KubePatch, PatchParams, PostParams};
use kube::core::object::HasStatus;
use kube::runtime::events::{self, Recorder, Reporter};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tracing::{debug, warn};

use crate::api::{ManagedDevice, Patch, PatchRollout, PatchStatus};
use crate::engine::{self, Decisions, EventType, PlanList};

use super::metrics::Metrics;
use super::stores::Objects;
use super::{CONTROLLER, FIELD_MANAGER, ObjectKind};

/// The most writes in flight at once within one reconcile.
const CONCURRENT_WRITES: usize = 32;
/// The longest Event note the API server accepts.
const NOTE_MAX: usize = 1024;

/// One object written: its resource version before (from the store) and after each
/// write, so the caller can wait for the store to catch up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The kind.
    pub kind: ObjectKind,
    /// The name.
    pub name: String,
    /// The resource version the store held before the write (None: created).
    pub before: Option<String>,
    /// The resource version the write produced.
    pub after: String,
}

/// What applying decisions sent.
#[derive(Debug, Default)]
pub struct Applied {
    /// Writes sent (including those that failed).
    pub writes: u64,
    /// Objects written successfully, in order.
    pub written: Vec<Written>,
    /// Writes that failed, in words.
    pub failures: Vec<String>,
}

impl Applied {
    fn add(&mut self, s: Sent) {
        if s.sent {
            self.writes += 1;
        }
        match s.result {
            Ok(Some(after)) => self.written.push(Written {
                kind: s.kind,
                name: s.name,
                before: s.before,
                after,
            }),
            Ok(None) => {}
            Err(e) => self.failures.push(e),
        }
    }
}

/// One write's outcome.
struct Sent {
    kind: ObjectKind,
    name: String,
    before: Option<String>,
    sent: bool,
    /// The new resource version (None: nothing to wait for, e.g. the object is gone).
    result: Result<Option<String>, String>,
}

/// The install and uninstall keys of one device's plan patch.
type PlanPatch = (Map<String, Value>, Map<String, Value>);

type WriteFuture<'a> = Pin<Box<dyn Future<Output = Option<Sent>> + Send + 'a>>;

/// Sends the operator's writes.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    metrics: Arc<Metrics>,
    reporter: Reporter,
}

/// The RFC 7386 merge patch that turns `old` into `new`, or None when they are equal:
/// changed keys recursively, `null` for keys that go away, whole values elsewhere.
pub fn merge_patch(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(d) = merge_patch(ov, nv) {
                            out.insert(k.clone(), d);
                        }
                    }
                    None => {
                        out.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            Some(Value::Object(out))
        }
        _ => Some(new.clone()),
    }
}

/// The merge patch from `old` to `new`, serialized; None when equal.
fn diff<T: Serialize + PartialEq>(old: Option<&T>, new: &T) -> Result<Option<Value>, String> {
    if old == Some(new) {
        return Ok(None);
    }
    let old = serde_json::to_value(old).map_err(|e| e.to_string())?;
    let new = serde_json::to_value(new).map_err(|e| e.to_string())?;
    Ok(merge_patch(&old, &new))
}

fn by_name<K: Resource>(objs: &[Arc<K>]) -> HashMap<&str, &K> {
    objs.iter()
        .filter_map(|o| Some((o.meta().name.as_deref()?, o.as_ref())))
        .collect()
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    }
}

impl Applier {
    /// An applier whose Events name `instance` (the pod) as their reporting instance.
    pub fn new(client: Client, metrics: Arc<Metrics>, instance: Option<String>) -> Self {
        Self {
            client,
            metrics,
            reporter: Reporter {
                controller: CONTROLLER.to_string(),
                instance,
            },
        }
    }

    /// Applies one namespace's decisions, comparing with `objects` (what the engine saw).
    pub async fn apply(&self, objects: &Objects, d: &Decisions) -> Applied {
        let ns = objects.namespace.as_str();
        let mut out = Applied::default();
        let policies = by_name(&objects.policies);
        let rings = by_name(&objects.rings);
        let exceptions = by_name(&objects.exceptions);
        let devices = by_name(&objects.devices);
        let rollouts = by_name(&objects.rollouts);

        // 1. Rollouts to create, owned by their policy.
        let rollout_api: Api<PatchRollout> = Api::namespaced(self.client.clone(), ns);
        let mut created: HashMap<&str, PatchRollout> = HashMap::new();
        let mut not_created: HashSet<&str> = HashSet::new();
        for new in &d.new_rollouts {
            if rollouts.contains_key(new.name.as_str()) {
                continue;
            }
            let uid = policies
                .get(new.spec.policy.as_str())
                .and_then(|p| p.metadata.uid.clone());
            let Some(uid) = uid else {
                warn!(namespace = ns, kind = "PatchRollout", name = %new.name, policy = %new.spec.policy,
                    "not creating the rollout: its policy is not in the store");
                not_created.insert(new.name.as_str());
                continue;
            };
            let mut r = PatchRollout::new(&new.name, new.spec.clone());
            r.metadata.namespace = Some(ns.to_string());
            r.metadata.owner_references = Some(vec![OwnerReference {
                api_version: format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
                kind: "PatchPolicy".into(),
                name: new.spec.policy.clone(),
                uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]);
            self.metrics.write(ObjectKind::PatchRollout, "create");
            let pp = PostParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..PostParams::default()
            };
            let result = match rollout_api.create(&pp, &r).await {
                Ok(obj) => {
                    debug!(namespace = ns, kind = "PatchRollout", name = %new.name, "created");
                    let rv = obj.metadata.resource_version.clone();
                    created.insert(new.name.as_str(), obj);
                    Ok(rv)
                }
                Err(kube::Error::Api(s)) if s.is_already_exists() => {
                    debug!(namespace = ns, kind = "PatchRollout", name = %new.name, "already exists");
                    Ok(None)
                }
                Err(e) => {
                    not_created.insert(new.name.as_str());
                    Err(format!("creating PatchRollout {ns}/{}: {e}", new.name))
                }
            };
            out.add(Sent {
                kind: ObjectKind::PatchRollout,
                name: new.name.clone(),
                before: None,
                sent: true,
                result,
            });
        }

        // 2. Statuses of rollouts, policies, rings and exceptions.
        let mut writes: Vec<WriteFuture<'_>> = Vec::new();
        for (name, status) in &d.rollouts {
            let (old, rv) = match (rollouts.get(name.as_str()), created.get(name.as_str())) {
                (Some(r), _) => (r.status.as_ref(), r.metadata.resource_version.clone()),
                (None, Some(r)) => (None, r.metadata.resource_version.clone()),
                (None, None) => {
                    let exists = d.new_rollouts.iter().any(|n| &n.name == name)
                        && !not_created.contains(name.as_str());
                    if !exists {
                        continue;
                    }
                    (None, None)
                }
            };
            writes.push(Box::pin(self.status(
                rollout_api.clone(),
                ObjectKind::PatchRollout,
                name,
                rv,
                old,
                status,
            )));
        }
        self.status_writes(
            ns,
            ObjectKind::PatchPolicy,
            &policies,
            &d.policies,
            &mut writes,
        );
        self.status_writes(
            ns,
            ObjectKind::DeploymentRing,
            &rings,
            &d.rings,
            &mut writes,
        );
        self.status_writes(
            ns,
            ObjectKind::PatchException,
            &exceptions,
            &d.exceptions,
            &mut writes,
        );

        // 3. Plan changes: one merge patch per device with only the keys that change.
        let device_api: Api<ManagedDevice> = Api::namespaced(self.client.clone(), ns);
        let mut plans: BTreeMap<&str, PlanPatch> = BTreeMap::new();
        for c in &d.plan {
            if let Some(e) = &c.entry
                && (not_created.contains(e.rollout.as_str()))
            {
                continue;
            }
            let Some(dev) = devices.get(c.device.as_str()) else {
                continue;
            };
            let stored = match c.list {
                PlanList::Install => dev.spec.plan.install.get(&c.patch),
                PlanList::Uninstall => dev.spec.plan.uninstall.get(&c.patch),
            };
            let value = match (&c.entry, stored) {
                (Some(e), s) => match diff(s, e) {
                    Ok(Some(v)) => v,
                    Ok(None) => continue,
                    Err(err) => {
                        out.failures.push(format!("plan entry {}: {err}", c.patch));
                        continue;
                    }
                },
                (None, Some(_)) => Value::Null,
                (None, None) => continue,
            };
            let lists = plans.entry(c.device.as_str()).or_default();
            let list = match c.list {
                PlanList::Install => &mut lists.0,
                PlanList::Uninstall => &mut lists.1,
            };
            list.insert(c.patch.clone(), value);
        }
        for (device, (install, uninstall)) in plans {
            let mut plan = Map::new();
            if !install.is_empty() {
                plan.insert("install".into(), Value::Object(install));
            }
            if !uninstall.is_empty() {
                plan.insert("uninstall".into(), Value::Object(uninstall));
            }
            let body = json!({ "spec": { "plan": plan } });
            let before = devices
                .get(device)
                .and_then(|d| d.metadata.resource_version.clone());
            let api = device_api.clone();
            writes.push(Box::pin(async move {
                self.metrics.write(ObjectKind::ManagedDevice, "patch");
                let result = match api.patch(device, &params(), &KubePatch::Merge(&body)).await {
                    Ok(obj) => Ok(obj.metadata.resource_version),
                    Err(kube::Error::Api(s)) if s.is_not_found() => Ok(None),
                    Err(e) => Err(format!(
                        "patching the plan of ManagedDevice {ns}/{device}: {e}"
                    )),
                };
                Some(Sent {
                    kind: ObjectKind::ManagedDevice,
                    name: device.to_string(),
                    before,
                    sent: true,
                    result,
                })
            }));
        }

        // 4. Device compliance summaries.
        for (name, compliance) in &d.devices {
            let Some(dev) = devices.get(name.as_str()) else {
                continue;
            };
            let old = dev.status.as_ref().and_then(|s| s.compliance.as_ref());
            let patch = match diff(old, compliance) {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(err) => {
                    out.failures.push(format!("compliance of {name}: {err}"));
                    continue;
                }
            };
            let body = json!({ "status": { "compliance": patch } });
            let before = dev.metadata.resource_version.clone();
            let api = device_api.clone();
            writes.push(Box::pin(async move {
                self.metrics.write(ObjectKind::ManagedDevice, "patch");
                let result = match api
                    .patch_status(name, &params(), &KubePatch::Merge(&body))
                    .await
                {
                    Ok(obj) => Ok(obj.metadata.resource_version),
                    Err(kube::Error::Api(s)) if s.is_not_found() => Ok(None),
                    Err(e) => Err(format!(
                        "patching the status of ManagedDevice {ns}/{name}: {e}"
                    )),
                };
                Some(Sent {
                    kind: ObjectKind::ManagedDevice,
                    name: name.clone(),
                    before,
                    sent: true,
                    result,
                })
            }));
        }
        let results: Vec<Option<Sent>> = futures::stream::iter(writes)
            .buffer_unordered(CONCURRENT_WRITES)
            .collect()
            .await;
        for s in results.into_iter().flatten() {
            out.add(s);
        }

        // 5. Events, each about its object (with the uid the store or the create gave).
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        let uid_of = |kind: engine::Kind, name: &str| -> Option<String> {
            let meta = match kind {
                engine::Kind::PatchPolicy => policies.get(name).map(|o| &o.metadata),
                engine::Kind::DeploymentRing => rings.get(name).map(|o| &o.metadata),
                engine::Kind::PatchException => exceptions.get(name).map(|o| &o.metadata),
                engine::Kind::ManagedDevice => devices.get(name).map(|o| &o.metadata),
                engine::Kind::PatchRollout => rollouts
                    .get(name)
                    .map(|o| &o.metadata)
                    .or_else(|| created.get(name).map(|o| &o.metadata)),
            };
            meta.and_then(|m| m.uid.clone())
        };
        let mut sends: Vec<WriteFuture<'_>> = Vec::new();
        for ev in &d.events {
            let reference = ObjectReference {
                api_version: Some(format!("{}/{}", crate::api::GROUP, crate::api::VERSION)),
                kind: Some(ev.kind.as_str().to_string()),
                name: Some(ev.name.clone()),
                namespace: Some(ns.to_string()),
                uid: uid_of(ev.kind, &ev.name),
                ..ObjectReference::default()
            };
            let event = events::Event {
                type_: match ev.type_ {
                    EventType::Normal => events::EventType::Normal,
                    EventType::Warning => events::EventType::Warning,
                },
                reason: ev.reason.to_string(),
                note: Some(truncate(&ev.message, NOTE_MAX)),
                action: ev.reason.to_string(),
                secondary: None,
            };
            let recorder = recorder.clone();
            sends.push(Box::pin(async move {
                self.metrics.write(ObjectKind::Event, "create");
                let result = recorder
                    .publish(&event, &reference)
                    .await
                    .map(|()| None)
                    .map_err(|e| {
                        format!(
                            "recording Event {} about {} {ns}/{}: {e}",
                            ev.reason,
                            ev.kind.as_str(),
                            ev.name
                        )
                    });
                Some(Sent {
                    kind: ObjectKind::Event,
                    name: ev.name.clone(),
                    before: None,
                    sent: true,
                    result,
                })
            }));
        }
        let results: Vec<Option<Sent>> = futures::stream::iter(sends)
            .buffer_unordered(CONCURRENT_WRITES)
            .collect()
            .await;
        for s in results.into_iter().flatten() {
            out.add(s);
        }
        out
    }

    /// Writes each Patch's status where it differs: the first release time seen (a
    /// re-release keeps it) and the severity the engine derives.
    pub async fn apply_catalog(&self, patches: &[Arc<Patch>]) -> Applied {
        let api: Api<Patch> = Api::all(self.client.clone());
        let wanted: Vec<(&Patch, &str, PatchStatus)> = patches
            .iter()
            .filter_map(|p| {
                let name = p.metadata.name.as_deref()?;
                Some((p.as_ref(), name, engine::severity::patch_status(p)))
            })
            .collect();
        let mut writes: Vec<WriteFuture<'_>> = Vec::new();
        for (p, name, status) in &wanted {
            writes.push(Box::pin(self.status(
                api.clone(),
                ObjectKind::Patch,
                name,
                p.metadata.resource_version.clone(),
                p.status.as_ref(),
                status,
            )));
        }
        let mut out = Applied::default();
        let results: Vec<Option<Sent>> = futures::stream::iter(writes)
            .buffer_unordered(CONCURRENT_WRITES)
            .collect()
            .await;
        for s in results.into_iter().flatten() {
            out.add(s);
        }
        out
    }

    /// Queues the status writes for one namespaced kind: each decided status is compared
    /// with the stored object's and sent only when it differs.
    fn status_writes<'a, K>(
        &'a self,
        ns: &str,
        kind: ObjectKind,
        stored: &HashMap<&str, &'a K>,
        decided: &'a [(String, K::Status)],
        writes: &mut Vec<WriteFuture<'a>>,
    ) where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + HasStatus
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'a,
        K::Status: Serialize + PartialEq + Sync,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        for (name, status) in decided {
            if let Some(obj) = stored.get(name.as_str()) {
                writes.push(Box::pin(self.status(
                    api.clone(),
                    kind,
                    name,
                    obj.meta().resource_version.clone(),
                    obj.status(),
                    status,
                )));
            }
        }
    }

    /// A merge patch of `status` when `old` differs from `new`; None when nothing is sent.
    async fn status<K, S>(
        &self,
        api: Api<K>,
        kind: ObjectKind,
        name: &str,
        before: Option<String>,
        old: Option<&S>,
        new: &S,
    ) -> Option<Sent>
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        S: Serialize + PartialEq,
    {
        let patch = match diff(old, new) {
            Ok(Some(p)) => p,
            Ok(None) => return None,
            Err(e) => {
                return Some(Sent {
                    kind,
                    name: name.to_string(),
                    before,
                    sent: false,
                    result: Err(format!(
                        "serializing the status of {} {name}: {e}",
                        kind.as_str()
                    )),
                });
            }
        };
        let body = json!({ "status": patch });
        self.metrics.write(kind, "patch");
        let result = match api
            .patch_status(name, &params(), &KubePatch::Merge(&body))
            .await
        {
            Ok(obj) => Ok(obj.meta().resource_version.clone()),
            Err(kube::Error::Api(s)) if s.is_not_found() => {
                debug!(
                    kind = kind.as_str(),
                    name, "gone before its status was written"
                );
                Ok(None)
            }
            Err(e) => Err(format!(
                "patching the status of {} {name}: {e}",
                kind.as_str()
            )),
        };
        Some(Sent {
            kind,
            name: name.to_string(),
            before,
            sent: true,
            result,
        })
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_patch_holds_only_changes_and_nulls_for_removals() {
        let old = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2], "gone": "x"});
        let new = json!({"a": 1, "b": {"c": 2, "d": 4}, "e": [1], "f": true});
        assert_eq!(
            merge_patch(&old, &new),
            Some(json!({"b": {"d": 4}, "e": [1], "f": true, "gone": null}))
        );
        assert_eq!(merge_patch(&new, &new), None);
        assert_eq!(merge_patch(&Value::Null, &new), Some(new.clone()));
    }

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
