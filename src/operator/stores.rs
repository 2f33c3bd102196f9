//! Reflector stores of the nine kinds, the snapshot of one namespace they give the engine,
//! and which reconcile each watch event triggers. The devices' check-in Leases are watched
//! beside them into a store of their own ([`super::check_ins`]).
//!
//! Namespaced kinds are watched in every namespace, or with one watcher per namespace
//! given with `--namespace`; the Patch catalog is cluster-scoped and always watched
//! whole. A change to an object triggers its namespace; a change to a Patch triggers the
//! catalog and every known namespace. The namespaced kinds are kept by namespace
//! ([`super::index`]), so that a tenant's snapshot costs what the tenant holds, not what
//! the cluster holds; the catalog in kube's reflector store.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::api::{
    DEFAULT_TIER, DeploymentRing, ManagedDevice, Patch, PatchApproval, PatchException, PatchFreeze,
    PatchPolicy, PatchReport, PatchRollout, PatchState,
};
use crate::engine;
use crate::watch::{self, Pace};

use super::changes::Pending;
use super::check_ins::{self, Change, CheckInStore};
use super::index::{Indexed, indexed};
use super::metrics::Metrics;
use super::objects::Key;
use super::queue::Sink;
use super::shards::Ownership;

pub use super::objects::Objects;

/// The stores of one namespaced kind: one for all namespaces, or one per watched namespace.
#[derive(Clone)]
pub struct Scoped<K: Resource<DynamicType = ()> + Clone + 'static> {
    stores: Vec<(Option<String>, Indexed<K>)>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Scoped<K> {
    /// The objects of a namespace, in name order.
    pub fn in_namespace(&self, ns: &str) -> Vec<Arc<K>> {
        let mut out = Vec::new();
        for (scope, store) in &self.stores {
            if scope.as_deref().is_none_or(|s| s == ns) {
                out.extend(store.in_namespace(ns));
            }
        }
        out
    }

    /// Forgets the notes of a namespace's changes ([`Indexed::forget_changes`]).
    pub fn forget_changes(&self, ns: &str) {
        for (scope, store) in &self.stores {
            if scope.as_deref().is_none_or(|s| s == ns) {
                store.forget_changes(ns);
            }
        }
    }

    /// The objects of a namespace, in name order, with the notes of which changed since
    /// the last call for it ([`Indexed::in_namespace_changed`]).
    pub fn in_namespace_changed(&self, ns: &str) -> (Vec<Arc<K>>, Pending) {
        let mut out = Vec::new();
        let mut pending: Option<Pending> = None;
        for (scope, store) in &self.stores {
            if scope.as_deref().is_none_or(|s| s == ns) {
                let (objects, p) = store.in_namespace_changed(ns);
                out.extend(objects);
                match pending.as_mut() {
                    Some(all) => all.merge(p),
                    None => pending = Some(p),
                }
            }
        }
        let everything = Pending {
            everything: true,
            ..Pending::default()
        };
        (out, pending.unwrap_or(everything))
    }

    /// One object.
    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<K>> {
        self.stores
            .iter()
            .filter(|(scope, _)| scope.as_deref().is_none_or(|s| s == ns))
            .find_map(|(_, store)| store.get(ns, name))
    }

    async fn wait_until_ready(&self) -> bool {
        for (_, store) in &self.stores {
            if !store.wait_until_ready().await {
                return false;
            }
        }
        true
    }
}

/// Readers of every store.
#[derive(Clone)]
pub struct Stores {
    /// PatchPolicies.
    pub policies: Scoped<PatchPolicy>,
    /// DeploymentRings.
    pub rings: Scoped<DeploymentRing>,
    /// PatchExceptions.
    pub exceptions: Scoped<PatchException>,
    /// ManagedDevices.
    pub devices: Scoped<ManagedDevice>,
    /// PatchRollouts.
    pub rollouts: Scoped<PatchRollout>,
    /// The Patch catalog.
    pub patches: Store<Patch>,
    /// PatchReports.
    pub reports: Scoped<PatchReport>,
    /// PatchApprovals.
    pub approvals: Scoped<PatchApproval>,
    /// PatchFreezes.
    pub freezes: Scoped<PatchFreeze>,
    /// The devices' check-ins (their Leases' renewals).
    pub check_ins: CheckInStore,
}

impl Stores {
    /// What the stores hold for one namespace, plus the catalog.
    pub fn objects(&self, ns: &str) -> Objects {
        Objects {
            devices: self.devices.in_namespace(ns),
            check_ins: self.check_ins.in_namespace(ns),
            ..self.objects_but_devices(ns)
        }
    }

    /// A namespace's objects but its devices and their check-ins.
    fn objects_but_devices(&self, ns: &str) -> Objects {
        Objects {
            namespace: ns.to_string(),
            policies: self.policies.in_namespace(ns),
            rings: self.rings.in_namespace(ns),
            exceptions: self.exceptions.in_namespace(ns),
            devices: Vec::new(),
            rollouts: self.rollouts.in_namespace(ns),
            patches: self.patches.state(),
            approvals: self.approvals.in_namespace(ns),
            freezes: self.freezes.in_namespace(ns),
            check_ins: Arc::default(),
        }
    }

    /// A namespace's objects, with which of its devices changed (their objects or their
    /// check-ins) since the last call for it.
    pub fn objects_changed(&self, ns: &str) -> (Objects, Pending) {
        let (devices, mut pending) = self.devices.in_namespace_changed(ns);
        let (check_ins, leased) = self.check_ins.in_namespace_changed(ns);
        pending.merge(leased);
        let objects = Objects {
            devices,
            check_ins,
            ..self.objects_but_devices(ns)
        };
        (objects, pending)
    }

    /// Forgets which of a namespace's devices changed: its tenant is no longer reconciled
    /// here (its next pass, if any, is told everything changed).
    pub fn forget_changes(&self, ns: &str) {
        self.devices.forget_changes(ns);
        self.check_ins.forget_changes(ns);
    }

    /// Waits until every store has listed its objects once; false if a watcher is gone.
    pub async fn wait_until_ready(&self) -> bool {
        self.policies.wait_until_ready().await
            && self.rings.wait_until_ready().await
            && self.exceptions.wait_until_ready().await
            && self.devices.wait_until_ready().await
            && self.rollouts.wait_until_ready().await
            && self.patches.wait_until_ready().await.is_ok()
            && self.reports.wait_until_ready().await
            && self.approvals.wait_until_ready().await
            && self.freezes.wait_until_ready().await
            && self.check_ins.wait_until_ready().await
    }
}

/// Turns watch events into queue keys, each sent to the queue of its shard: a
/// namespace's keys to the queue of [`shard_of`](super::shards::shard_of) its name, the
/// catalog to shard 0's. With one shard there is one queue.
#[derive(Debug)]
pub struct Triggers {
    sinks: Vec<Arc<Sink<Key>>>,
    fixed: Option<BTreeSet<String>>,
    known: Mutex<BTreeSet<String>>,
}

impl Triggers {
    /// Triggers for the given namespaces (`None`: every namespace that has objects), all
    /// to one queue.
    pub fn new(sink: Arc<Sink<Key>>, namespaces: Option<&[String]>) -> Self {
        Self::sharded(vec![sink], namespaces)
    }

    /// Triggers to one queue per shard (`sinks[i]` is shard i's; at least one).
    pub fn sharded(sinks: Vec<Arc<Sink<Key>>>, namespaces: Option<&[String]>) -> Self {
        let sinks = if sinks.is_empty() {
            vec![Arc::new(Sink::default())]
        } else {
            sinks
        };
        Self {
            sinks,
            fixed: namespaces.map(|n| n.iter().cloned().collect()),
            known: Mutex::new(BTreeSet::new()),
        }
    }

    /// The queue end of shard `shard`.
    pub fn sink(&self, shard: u32) -> Option<&Arc<Sink<Key>>> {
        self.sinks.get(shard as usize)
    }

    fn shards(&self) -> u32 {
        u32::try_from(self.sinks.len()).unwrap_or(u32::MAX)
    }

    /// The shard a key belongs to.
    pub fn shard_of(&self, key: &Key) -> u32 {
        match key {
            Key::Catalog => 0,
            Key::Tenant(ns) | Key::Reports(ns) => super::shards::shard_of(ns, self.shards()),
        }
    }

    fn send(&self, key: Key) {
        if let Some(sink) = self.sinks.get(self.shard_of(&key) as usize) {
            sink.send(key);
        }
    }

    /// Every namespace the operator reconciles (that it watches, or has seen objects in).
    pub fn namespaces(&self) -> Vec<String> {
        match &self.fixed {
            Some(f) => f.iter().cloned().collect(),
            None => self
                .known
                .lock()
                .map(|k| k.iter().cloned().collect())
                .unwrap_or_default(),
        }
    }

    fn note(&self, ns: &str) {
        if self.fixed.is_none()
            && let Ok(mut known) = self.known.lock()
            && !known.contains(ns)
        {
            known.insert(ns.to_string());
        }
    }

    /// An object of a namespace changed.
    pub fn namespace(&self, ns: &str) {
        self.note(ns);
        self.send(Key::Tenant(ns.to_string()));
    }

    /// A PatchReport of a namespace changed.
    pub fn reports(&self, ns: &str) {
        self.note(ns);
        self.send(Key::Reports(ns.to_string()));
    }

    /// Everything may have changed (a relist, a new leader): every namespace, its months,
    /// and the catalog, without waiting out the backoffs of earlier failures (after an
    /// outage every key has failed, and the watches listing again mean it is over).
    pub fn everything(&self) {
        for sink in &self.sinks {
            sink.resync();
        }
        self.catalog();
        for ns in self.namespaces() {
            self.send(Key::Reports(ns));
        }
    }

    /// Everything of one shard, as when this replica has just taken it: its namespaces,
    /// their months, and the catalog for shard 0.
    pub fn everything_of(&self, shard: u32) {
        let Some(sink) = self.sinks.get(shard as usize) else {
            return;
        };
        sink.resync();
        if shard == 0 {
            sink.send(Key::Catalog);
        }
        for ns in self.namespaces() {
            if super::shards::shard_of(&ns, self.shards()) == shard {
                sink.send(Key::Tenant(ns.clone()));
                sink.send(Key::Reports(ns));
            }
        }
    }

    /// The catalog changed: its statuses, and every namespace's decisions (not its
    /// months: a closed month never changes, and the others wait for their end).
    pub fn catalog(&self) {
        self.send(Key::Catalog);
        for ns in self.namespaces() {
            self.send(Key::Tenant(ns));
        }
    }
}

/// Observes each device–patch pair that becomes Installed, once, into the
/// time-to-install histogram; only for the namespaces this replica reconciles (it leads,
/// or holds their shard), so that replicas do not count the same install twice.
pub struct InstallObserver {
    metrics: Arc<Metrics>,
    ownership: Arc<Ownership>,
    policies: Scoped<PatchPolicy>,
    patches: Store<Patch>,
}

impl InstallObserver {
    fn observe(&self, old: &ManagedDevice, new: &ManagedDevice) {
        let ns = new.namespace().unwrap_or_default();
        if !self.ownership.owns(&ns) {
            return;
        }
        let fresh = newly_installed(old, new);
        if fresh.is_empty() {
            return;
        }
        let Some(policy_name) = new
            .status
            .as_ref()
            .and_then(|s| s.compliance.as_ref())
            .and_then(|c| c.policy.clone())
        else {
            return;
        };
        let Some(policy) = self.policies.get(&ns, &policy_name) else {
            return;
        };
        let tier = new
            .labels()
            .get(&policy.spec.tier_label)
            .cloned()
            .unwrap_or_else(|| DEFAULT_TIER.to_string());
        for (id, installed_at) in fresh {
            let Some(patch) = self.patches.find(|p| p.spec.id == id) else {
                continue;
            };
            let released = engine::severity::release_time(&patch);
            let seconds = installed_at.duration_since(released).as_secs_f64();
            if seconds < 0.0 {
                continue;
            }
            let severity = engine::severity::severity_of(&patch);
            self.metrics
                .observe_install(&ns, &policy_name, &tier, severity, seconds);
        }
    }
}

/// The patches `new` reports Installed (with an install time) that `old` did not.
pub fn newly_installed(old: &ManagedDevice, new: &ManagedDevice) -> Vec<(String, Timestamp)> {
    let Some(status) = new.status.as_ref() else {
        return Vec::new();
    };
    let before: HashMap<&str, PatchState> = old
        .status
        .as_ref()
        .map(|s| s.patches.iter().map(|p| (p.id.as_str(), p.state)).collect())
        .unwrap_or_default();
    status
        .patches
        .iter()
        .filter(|p| p.state == PatchState::Installed)
        .filter(|p| before.get(p.id.as_str()) != Some(&PatchState::Installed))
        .filter_map(|p| p.installed_at.map(|at| (p.id.clone(), at)))
        .collect()
}

/// Drops what the operator never reads and costs memory per object.
fn slim<K: ResourceExt>(obj: &mut K) {
    obj.managed_fields_mut().clear();
    obj.annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// The running watchers and the readers of their stores.
pub struct Watchers {
    /// The stores.
    pub stores: Stores,
    /// The watch tasks (they run until aborted).
    pub tasks: Vec<JoinHandle<()>>,
}

impl Watchers {
    /// Stops every watcher.
    pub fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The watchers stop with the operator that started them, even when its future is
/// dropped rather than finished (a cancelled or killed task).
impl Drop for Watchers {
    fn drop(&mut self) {
        self.abort();
    }
}

/// Starts a watcher and reflector for each kind (and each namespace, when given).
pub fn start(
    client: &Client,
    namespaces: Option<&[String]>,
    triggers: Arc<Triggers>,
    metrics: Arc<Metrics>,
    ownership: Arc<Ownership>,
) -> Watchers {
    let mut tasks = Vec::new();
    let mut watch = Watch {
        client,
        namespaces,
        triggers: &triggers,
        tasks: &mut tasks,
        track_changes: false,
    };
    let policies = watch.scoped::<PatchPolicy>(Triggers::namespace, |_| None);
    let rings = watch.scoped::<DeploymentRing>(Triggers::namespace, |_| None);
    let exceptions = watch.scoped::<PatchException>(Triggers::namespace, |_| None);
    let rollouts = watch.scoped::<PatchRollout>(Triggers::namespace, |_| None);
    let reports = watch.scoped::<PatchReport>(Triggers::reports, |_| None);
    let approvals = watch.scoped::<PatchApproval>(Triggers::namespace, |_| None);
    let freezes = watch.scoped::<PatchFreeze>(Triggers::namespace, |_| None);

    let (patches, patch_writer) = reflector::store::<Patch>();
    {
        let triggers = Arc::clone(&triggers);
        let mut patch_writer = patch_writer;
        watch.tasks.push(spawn_watch(
            Api::<Patch>::all(client.clone()),
            move |ev| patch_writer.apply_watcher_event(ev),
            move |ev| match ev {
                watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone => {
                    triggers.catalog()
                }
                watcher::Event::Init | watcher::Event::InitApply(_) => {}
            },
        ));
    }

    let observer = Arc::new(InstallObserver {
        metrics: Arc::clone(&metrics),
        ownership,
        policies: policies.clone(),
        patches: patches.clone(),
    });
    let check_ins = {
        let triggers = Arc::clone(&triggers);
        let metrics = Arc::clone(&metrics);
        let rings = rings.clone();
        let hooks = check_ins::Hooks {
            changed: move |change| match change {
                Change::Quiet => {}
                Change::Trigger(ns) => triggers.namespace(&ns),
                Change::Relisted(list) => list.iter().for_each(|ns| triggers.namespace(ns)),
            },
            renewed: move |ns: &str, at| metrics.checked_in(ns, at),
            unreachable_after: move |ns: &str| {
                rings
                    .in_namespace(ns)
                    .iter()
                    .map(|r| engine::rollout::unreachable_after(Some(&r.spec)).span())
                    .min()
            },
        };
        let (store, check_in_tasks) = check_ins::start(client, namespaces, hooks);
        watch.tasks.extend(check_in_tasks);
        store
    };
    watch.track_changes = true;
    let devices = watch.scoped::<ManagedDevice>(Triggers::namespace, |reader| {
        let observer = Arc::clone(&observer);
        Some(Box::new(move |ev: &watcher::Event<ManagedDevice>| {
            if let watcher::Event::Apply(new) | watcher::Event::InitApply(new) = ev
                && let Some(old) = reader.get(
                    new.metadata.namespace.as_deref().unwrap_or_default(),
                    new.metadata.name.as_deref().unwrap_or_default(),
                )
            {
                observer.observe(&old, new);
            }
        }))
    });

    Watchers {
        stores: Stores {
            policies,
            rings,
            exceptions,
            devices,
            rollouts,
            patches,
            reports,
            approvals,
            freezes,
            check_ins,
        },
        tasks,
    }
}

/// A hook that sees each watch event before its store applies it.
type Before<K> = Box<dyn FnMut(&watcher::Event<K>) + Send>;

/// What starting a namespaced kind's watchers needs.
struct Watch<'a> {
    client: &'a Client,
    namespaces: Option<&'a [String]>,
    triggers: &'a Arc<Triggers>,
    tasks: &'a mut Vec<JoinHandle<()>>,
    /// The stores started next note which objects change
    /// ([`IndexWriter::track_changes`](super::index::IndexWriter::track_changes)).
    track_changes: bool,
}

impl Watch<'_> {
    /// Starts a kind's watchers (one, or one per namespace); a change to an object calls
    /// `trigger` with its namespace.
    fn scoped<K>(
        &mut self,
        trigger: fn(&Triggers, &str),
        before: impl Fn(Indexed<K>) -> Option<Before<K>>,
    ) -> Scoped<K>
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug
            + Send
            + Sync
            + 'static,
    {
        let scopes: Vec<Option<String>> = match self.namespaces {
            Some(list) => list.iter().cloned().map(Some).collect(),
            None => vec![None],
        };
        let mut stores = Vec::new();
        for scope in scopes {
            let api = match &scope {
                Some(ns) => Api::<K>::namespaced(self.client.clone(), ns),
                None => Api::<K>::all(self.client.clone()),
            };
            let (reader, mut writer) = indexed::<K>();
            if self.track_changes {
                writer.track_changes();
            }
            let mut hook = before(reader.clone());
            let triggers = Arc::clone(self.triggers);
            let mut listed: BTreeSet<String> = BTreeSet::new();
            self.tasks.push(spawn_watch(
                api,
                move |ev| {
                    // The hook sees the object the store holds before the event.
                    if let Some(h) = hook.as_mut() {
                        h(ev)
                    }
                    writer.apply(ev);
                },
                move |ev| match ev {
                    watcher::Event::Apply(o) | watcher::Event::Delete(o) => {
                        if let Some(ns) = o.meta().namespace.as_deref() {
                            trigger(&triggers, ns);
                        }
                    }
                    watcher::Event::Init => listed.clear(),
                    watcher::Event::InitApply(o) => {
                        if let Some(ns) = o.meta().namespace.as_deref() {
                            listed.insert(ns.to_string());
                        }
                    }
                    watcher::Event::InitDone => {
                        // Objects deleted while the watch was down leave no Delete event:
                        // every namespace is looked at again.
                        for ns in std::mem::take(&mut listed) {
                            triggers.note(&ns);
                        }
                        triggers.everything();
                    }
                },
            ));
            stores.push((scope, reader));
        }
        Scoped { stores }
    }
}

/// A watch of `api` that comes back by itself after an outage, at the operator's pace
/// (every watch of the operator's is one of these; see [`crate::watch`]).
pub(super) fn recovering_watch<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watch::recovering(watcher(api, config), Pace::Operator)
}

/// Watches `api`: each event is given to `apply` (the store) and then to `after`.
fn spawn_watch<K>(
    api: Api<K>,
    mut apply: impl FnMut(&watcher::Event<K>) + Send + 'static,
    mut after: impl FnMut(&watcher::Event<K>) + Send + 'static,
) -> JoinHandle<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let kind = K::kind(&()).to_string();
    tokio::spawn(async move {
        let stream = recovering_watch(api, watcher::Config::default())
            .modify(slim::<K>)
            .inspect_ok(move |ev| apply(ev));
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => {
                    debug!(kind = %kind, event = %ev, "watch event");
                    after(&ev);
                }
                Err(e) => warn!(kind = %kind, error = %e, "watch failed; retrying with backoff"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DevicePatchStatus, ManagedDeviceSpec, ManagedDeviceStatus};

    fn device(states: &[(&str, PatchState, Option<&str>)]) -> ManagedDevice {
        let mut d = ManagedDevice::new("ws-1", ManagedDeviceSpec::default());
        d.status = Some(ManagedDeviceStatus {
            patches: states
                .iter()
                .map(|(id, state, at)| DevicePatchStatus {
                    id: id.to_string(),
                    state: *state,
                    attempts: 1,
                    last_attempt_at: None,
                    installed_at: at.and_then(|a| a.parse().ok()),
                    message: None,
                    attempt: None,
                })
                .collect(),
            ..ManagedDeviceStatus::default()
        });
        d
    }

    #[test]
    fn a_pair_counts_as_newly_installed_only_on_its_transition() {
        let at = "2026-11-12T00:00:00Z";
        let old = device(&[
            ("KB1", PatchState::Installing, None),
            ("KB2", PatchState::Installed, Some(at)),
        ]);
        let new = device(&[
            ("KB1", PatchState::Installed, Some(at)),
            ("KB2", PatchState::Installed, Some(at)),
            ("KB3", PatchState::Installed, None),
        ]);
        let fresh = newly_installed(&old, &new);
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0].0, "KB1");
        assert!(newly_installed(&new, &new).is_empty());
    }
}
