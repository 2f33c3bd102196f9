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
//! reconcile is retried. Every request goes through the operator's one
//! [`Pace`](super::pace::Pace): how many are in flight, how fast they start, and a pause
//! for all of them when the API server throttles one.

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

use crate::api::{
    DeploymentRing, DeviceCompliance, ManagedDevice, Patch, PatchException, PatchPolicy,
    PatchRollout, PatchStatus,
};
use crate::engine::writes::{PlanKeys, Stored, Write};
use crate::engine::{self, Decisions, Event, EventType, NewRollout};

use super::metrics::Metrics;
use super::objects::Objects;
use super::pace::{Pace, PaceConfig};
use super::{CONTROLLER, FIELD_MANAGER, ObjectKind};

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
    /// Writes that failed.
    pub failures: Vec<WriteError>,
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

/// Why one write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Creating a PatchRollout failed.
    #[error("creating PatchRollout {namespace}/{name}: {source}")]
    Create {
        /// The namespace.
        namespace: String,
        /// The rollout.
        name: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Patching an object's status failed.
    #[error("patching the status of {} {namespace}/{name}: {source}", kind.as_str())]
    Status {
        /// The kind.
        kind: ObjectKind,
        /// The namespace (empty for the cluster-scoped catalog).
        namespace: String,
        /// The object.
        name: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Patching a device's plan failed.
    #[error("patching the plan of ManagedDevice {namespace}/{name}: {source}")]
    Plan {
        /// The namespace.
        namespace: String,
        /// The device.
        name: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Recording an Event failed.
    #[error("recording Event {reason} about {} {namespace}/{name}: {source}", kind.as_str())]
    Event {
        /// The Event's reason.
        reason: engine::Reason,
        /// The kind of the object it is about.
        kind: engine::Kind,
        /// The namespace.
        namespace: String,
        /// The object.
        name: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// A value to send could not be serialized.
    #[error("serializing a write to {} {name}: {source}", kind.as_str())]
    Serialize {
        /// The kind.
        kind: ObjectKind,
        /// The object.
        name: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
}

impl WriteError {
    /// The variant's name, as a metric label.
    pub fn label(&self) -> &'static str {
        match self {
            WriteError::Create { .. } => "create",
            WriteError::Status { .. } => "status",
            WriteError::Plan { .. } => "plan",
            WriteError::Event { .. } => "event",
            WriteError::Serialize { .. } => "serialize",
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
    result: Result<Option<String>, WriteError>,
}

type WriteFuture<'a> = Pin<Box<dyn Future<Output = Option<Sent>> + Send + 'a>>;

/// Sends the operator's writes.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    metrics: Arc<Metrics>,
    reporter: Reporter,
    pace: Pace,
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
fn diff<T: Serialize + PartialEq>(
    old: Option<&T>,
    new: &T,
) -> Result<Option<Value>, serde_json::Error> {
    if old == Some(new) {
        return Ok(None);
    }
    let old = serde_json::to_value(old)?;
    let new = serde_json::to_value(new)?;
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
    /// Its writes are paced as [`PaceConfig::default`] says until [`Applier::paced`].
    pub fn new(client: Client, metrics: Arc<Metrics>, instance: Option<String>) -> Self {
        let pace = Pace::new(PaceConfig::default(), Arc::clone(&metrics));
        Self {
            client,
            metrics,
            reporter: Reporter {
                controller: CONTROLLER.to_string(),
                instance,
            },
            pace,
        }
    }

    /// The same applier with its writes paced by `pace` (shared with its other clones).
    pub fn paced(self, pace: Pace) -> Self {
        Self { pace, ..self }
    }

    /// Applies one namespace's decisions, comparing with `objects` (what the engine saw):
    /// the writes [`engine::writes`] says they take, each as one request.
    pub async fn apply(&self, objects: &Objects, d: &Decisions) -> Applied {
        let stored = ByName::new(objects);
        let planned = engine::writes::writes(&stored, d);
        let (creates, rest): (Vec<Write>, Vec<Write>) = planned
            .into_iter()
            .partition(|w| matches!(w, Write::CreateRollout(_)));
        let (events, rest): (Vec<Write>, Vec<Write>) =
            rest.into_iter().partition(|w| matches!(w, Write::Event(_)));
        let mut out = Applied::default();
        let mut created: HashMap<String, PatchRollout> = HashMap::new();
        let mut not_created: HashSet<String> = HashSet::new();
        for w in creates {
            if let Write::CreateRollout(new) = w {
                let done = self.create(&stored, &new, &mut created).await;
                if !done.exists {
                    not_created.insert(new.name.clone());
                }
                out.add(done.sent);
            }
        }
        let sends: Vec<WriteFuture<'_>> = rest
            .iter()
            .filter_map(|w| self.send(&stored, &created, &not_created, w))
            .collect();
        self.collect(sends, &mut out).await;
        let sends: Vec<WriteFuture<'_>> = events
            .iter()
            .filter_map(|w| match w {
                Write::Event(ev) => Some(self.event(&stored, &created, ev)),
                _ => None,
            })
            .collect();
        self.collect(sends, &mut out).await;
        out
    }

    async fn collect(&self, sends: Vec<WriteFuture<'_>>, out: &mut Applied) {
        let results: Vec<Option<Sent>> = futures::stream::iter(sends)
            .buffer_unordered(self.pace.concurrent())
            .collect()
            .await;
        for s in results.into_iter().flatten() {
            out.add(s);
        }
    }

    fn api<K>(&self, ns: &str) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Creates a rollout owned by its policy (one that exists already is fine).
    async fn create(
        &self,
        stored: &ByName<'_>,
        new: &NewRollout,
        created: &mut HashMap<String, PatchRollout>,
    ) -> Created {
        let ns = stored.namespace;
        let sent = |result, sent| Sent {
            kind: ObjectKind::PatchRollout,
            name: new.name.clone(),
            before: None,
            sent,
            result,
        };
        let Some(uid) = stored
            .policy(&new.spec.policy)
            .and_then(|p| p.metadata.uid.clone())
        else {
            warn!(namespace = ns, kind = "PatchRollout", name = %new.name, policy = %new.spec.policy,
                "not creating the rollout: its policy is not in the store");
            return Created {
                sent: sent(Ok(None), false),
                exists: false,
            };
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
        let api: Api<PatchRollout> = Api::namespaced(self.client.clone(), ns);
        match self.pace.send(|| api.create(&pp, &r)).await {
            Ok(obj) => {
                debug!(namespace = ns, kind = "PatchRollout", name = %new.name, "created");
                let rv = obj.metadata.resource_version.clone();
                created.insert(new.name.clone(), obj);
                Created {
                    sent: sent(Ok(rv), true),
                    exists: true,
                }
            }
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                debug!(namespace = ns, kind = "PatchRollout", name = %new.name, "already exists");
                Created {
                    sent: sent(Ok(None), true),
                    exists: true,
                }
            }
            Err(e) => Created {
                sent: sent(
                    Err(WriteError::Create {
                        namespace: ns.to_string(),
                        name: new.name.clone(),
                        source: Box::new(e),
                    }),
                    true,
                ),
                exists: false,
            },
        }
    }

    /// The request for one status, plan or summary write.
    fn send<'a>(
        &'a self,
        stored: &'a ByName<'a>,
        created: &HashMap<String, PatchRollout>,
        not_created: &HashSet<String>,
        w: &'a Write,
    ) -> Option<WriteFuture<'a>> {
        let ns = stored.namespace;
        match w {
            Write::RolloutStatus(name, status) => {
                let (old, rv) = match (stored.rollout(name), created.get(name)) {
                    (Some(r), _) => (r.status.as_ref(), r.metadata.resource_version.clone()),
                    (None, Some(r)) => (None, r.metadata.resource_version.clone()),
                    (None, None) if not_created.contains(name) => return None,
                    (None, None) => (None, None),
                };
                Some(Box::pin(self.status(
                    self.api::<PatchRollout>(ns),
                    ObjectKind::PatchRollout,
                    name,
                    rv,
                    old,
                    status,
                )))
            }
            Write::PolicyStatus(name, status) => Some(self.stored_status(
                ns,
                ObjectKind::PatchPolicy,
                name,
                stored.policy(name)?,
                status,
            )),
            Write::RingStatus(name, status) => Some(self.stored_status(
                ns,
                ObjectKind::DeploymentRing,
                name,
                stored.ring(name)?,
                status,
            )),
            Write::ExceptionStatus(name, status) => Some(self.stored_status(
                ns,
                ObjectKind::PatchException,
                name,
                stored.exception(name)?,
                status,
            )),
            Write::Plan(device, keys) => {
                let dev = stored.device(device)?;
                self.plan(ns, dev, device, keys, not_created)
            }
            Write::Compliance(device, compliance) => {
                let dev = stored.device(device)?;
                Some(Box::pin(self.compliance(ns, dev, device, compliance)))
            }
            Write::CreateRollout(_) | Write::Event(_) => None,
        }
    }

    /// The status write of an object the store holds.
    fn stored_status<'a, K>(
        &'a self,
        ns: &str,
        kind: ObjectKind,
        name: &'a str,
        obj: &'a K,
        new: &'a K::Status,
    ) -> WriteFuture<'a>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + HasStatus
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync,
        K::Status: Serialize + PartialEq + Sync,
    {
        let before = obj.meta().resource_version.clone();
        Box::pin(self.status(self.api::<K>(ns), kind, name, before, obj.status(), new))
    }

    /// One merge patch of a device's plan with only the keys that change (entries of a
    /// rollout that could not be created are left out).
    fn plan<'a>(
        &'a self,
        ns: &'a str,
        dev: &ManagedDevice,
        device: &'a str,
        keys: &PlanKeys,
        not_created: &HashSet<String>,
    ) -> Option<WriteFuture<'a>> {
        let list = |stored: &BTreeMap<String, crate::api::PlanEntry>,
                    keys: &BTreeMap<String, Option<crate::api::PlanEntry>>| {
            let mut out = Map::new();
            for (id, entry) in keys {
                let value = match entry {
                    Some(e) if not_created.contains(&e.rollout) => continue,
                    Some(e) => match diff(stored.get(id), e) {
                        Ok(Some(v)) => v,
                        Ok(None) => continue,
                        // A plan entry is plain strings and instants: it always serializes.
                        Err(_) => continue,
                    },
                    None => Value::Null,
                };
                out.insert(id.clone(), value);
            }
            out
        };
        let install = list(&dev.spec.plan.install, &keys.install);
        let uninstall = list(&dev.spec.plan.uninstall, &keys.uninstall);
        let mut plan = Map::new();
        if !install.is_empty() {
            plan.insert("install".into(), Value::Object(install));
        }
        if !uninstall.is_empty() {
            plan.insert("uninstall".into(), Value::Object(uninstall));
        }
        if plan.is_empty() {
            return None;
        }
        let body = json!({ "spec": { "plan": plan } });
        let before = dev.metadata.resource_version.clone();
        let api: Api<ManagedDevice> = Api::namespaced(self.client.clone(), ns);
        Some(Box::pin(async move {
            self.metrics.write(ObjectKind::ManagedDevice, "patch");
            let (pp, merge) = (params(), KubePatch::Merge(&body));
            let patch = || api.patch(device, &pp, &merge);
            let result = match self.pace.send(patch).await {
                Ok(obj) => Ok(obj.metadata.resource_version),
                Err(kube::Error::Api(s)) if s.is_not_found() => Ok(None),
                Err(e) => Err(WriteError::Plan {
                    namespace: ns.to_string(),
                    name: device.to_string(),
                    source: Box::new(e),
                }),
            };
            Some(Sent {
                kind: ObjectKind::ManagedDevice,
                name: device.to_string(),
                before,
                sent: true,
                result,
            })
        }))
    }

    /// A merge patch of a device's `status.compliance` with what changed.
    async fn compliance(
        &self,
        ns: &str,
        dev: &ManagedDevice,
        name: &str,
        compliance: &DeviceCompliance,
    ) -> Option<Sent> {
        let old = dev.status.as_ref().and_then(|s| s.compliance.as_ref());
        let before = dev.metadata.resource_version.clone();
        let patch = match diff(old, compliance) {
            Ok(Some(p)) => p,
            Ok(None) => return None,
            Err(err) => {
                return Some(Sent {
                    kind: ObjectKind::ManagedDevice,
                    name: name.to_string(),
                    before,
                    sent: false,
                    result: Err(WriteError::Serialize {
                        kind: ObjectKind::ManagedDevice,
                        name: name.to_string(),
                        source: err,
                    }),
                });
            }
        };
        let body = json!({ "status": { "compliance": patch } });
        let api: Api<ManagedDevice> = Api::namespaced(self.client.clone(), ns);
        self.metrics.write(ObjectKind::ManagedDevice, "patch");
        let (pp, merge) = (params(), KubePatch::Merge(&body));
        let patch = || api.patch_status(name, &pp, &merge);
        let result = match self.pace.send(patch).await {
            Ok(obj) => Ok(obj.metadata.resource_version),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(None),
            Err(e) => Err(WriteError::Status {
                kind: ObjectKind::ManagedDevice,
                namespace: ns.to_string(),
                name: name.to_string(),
                source: Box::new(e),
            }),
        };
        Some(Sent {
            kind: ObjectKind::ManagedDevice,
            name: name.to_string(),
            before,
            sent: true,
            result,
        })
    }

    /// An Event about its object (with the uid the store or the create gave).
    fn event<'a>(
        &'a self,
        stored: &ByName<'_>,
        created: &HashMap<String, PatchRollout>,
        ev: &'a Event,
    ) -> WriteFuture<'a> {
        let ns = stored.namespace.to_string();
        let meta = match ev.kind {
            engine::Kind::PatchPolicy => stored.policy(&ev.name).map(|o| &o.metadata),
            engine::Kind::DeploymentRing => stored.ring(&ev.name).map(|o| &o.metadata),
            engine::Kind::PatchException => stored.exception(&ev.name).map(|o| &o.metadata),
            engine::Kind::ManagedDevice => stored.device(&ev.name).map(|o| &o.metadata),
            engine::Kind::PatchRollout => stored
                .rollout(&ev.name)
                .map(|o| &o.metadata)
                .or_else(|| created.get(&ev.name).map(|o| &o.metadata)),
            // The engine makes no Event about people's lever objects.
            engine::Kind::PatchApproval | engine::Kind::PatchFreeze => None,
        };
        let reference = ObjectReference {
            api_version: Some(format!("{}/{}", crate::api::GROUP, crate::api::VERSION)),
            kind: Some(ev.kind.as_str().to_string()),
            name: Some(ev.name.clone()),
            namespace: Some(ns.clone()),
            uid: meta.and_then(|m| m.uid.clone()),
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
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        Box::pin(async move {
            self.metrics.write(ObjectKind::Event, "create");
            let result = self
                .pace
                .send(|| recorder.publish(&event, &reference))
                .await
                .map(|()| None)
                .map_err(|e| WriteError::Event {
                    reason: ev.reason,
                    kind: ev.kind,
                    namespace: ns.clone(),
                    name: ev.name.clone(),
                    source: Box::new(e),
                });
            Some(Sent {
                kind: ObjectKind::Event,
                name: ev.name.clone(),
                before: None,
                sent: true,
                result,
            })
        })
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
            .buffer_unordered(self.pace.concurrent())
            .collect()
            .await;
        for s in results.into_iter().flatten() {
            out.add(s);
        }
        out
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
                    result: Err(WriteError::Serialize {
                        kind,
                        name: name.to_string(),
                        source: e,
                    }),
                });
            }
        };
        let body = json!({ "status": patch });
        self.metrics.write(kind, "patch");
        let (pp, merge) = (params(), KubePatch::Merge(&body));
        let patch = || api.patch_status(name, &pp, &merge);
        let result = match self.pace.send(patch).await {
            Ok(obj) => Ok(obj.meta().resource_version.clone()),
            Err(kube::Error::Api(s)) if s.is_not_found() => {
                debug!(
                    kind = kind.as_str(),
                    name, "gone before its status was written"
                );
                Ok(None)
            }
            Err(e) => Err(WriteError::Status {
                kind,
                namespace: api.namespace().unwrap_or_default().to_string(),
                name: name.to_string(),
                source: Box::new(e),
            }),
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

/// A rollout's creation: what was sent, and whether the rollout now exists.
struct Created {
    sent: Sent,
    exists: bool,
}

/// One namespace's stored objects by name, as [`engine::writes`] looks them up.
struct ByName<'a> {
    namespace: &'a str,
    policies: HashMap<&'a str, &'a PatchPolicy>,
    rings: HashMap<&'a str, &'a DeploymentRing>,
    exceptions: HashMap<&'a str, &'a PatchException>,
    devices: HashMap<&'a str, &'a ManagedDevice>,
    rollouts: HashMap<&'a str, &'a PatchRollout>,
}

impl<'a> ByName<'a> {
    fn new(objects: &'a Objects) -> Self {
        Self {
            namespace: objects.namespace.as_str(),
            policies: by_name(&objects.policies),
            rings: by_name(&objects.rings),
            exceptions: by_name(&objects.exceptions),
            devices: by_name(&objects.devices),
            rollouts: by_name(&objects.rollouts),
        }
    }
}

impl Stored for ByName<'_> {
    fn policy(&self, name: &str) -> Option<&PatchPolicy> {
        self.policies.get(name).copied()
    }

    fn ring(&self, name: &str) -> Option<&DeploymentRing> {
        self.rings.get(name).copied()
    }

    fn exception(&self, name: &str) -> Option<&PatchException> {
        self.exceptions.get(name).copied()
    }

    fn device(&self, name: &str) -> Option<&ManagedDevice> {
        self.devices.get(name).copied()
    }

    fn rollout(&self, name: &str) -> Option<&PatchRollout> {
        self.rollouts.get(name).copied()
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
