//! The reconcilers: one namespace (tenant) at a time, and the shared Patch catalog.
//!
//! A tenant reconcile takes a snapshot of the namespace from the stores, with which of
//! its devices changed since its last pass, runs [`engine::decide_changed`] at the
//! current instant with the tenant's [`engine::Cache`] (work in proportion to what
//! changed), applies the decisions, waits briefly until the stores have seen its own
//! writes (so the next pass never decides on a world older than what it wrote), updates
//! the metrics and asks to be woken at the engine's `wake_at`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::engine::{self, Decisions};

use super::apply::{Applied, Applier, Written};
use super::changes::Pending;
use super::metrics::Metrics;
use super::queue::{Reconciler, RunFuture};
use super::reports::Reports;
use super::stores::{Objects, Stores};
use super::{Error, ObjectKind};

pub use super::objects::Key;

/// How long a reconcile waits for the stores to show its own writes.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often it looks.
const SETTLE_POLL: Duration = Duration::from_millis(10);
/// Timers fire this long after the engine's instant, so that `now` is past it.
const WAKE_MARGIN: Duration = Duration::from_millis(2);

/// The outcome of deciding and applying one namespace.
#[derive(Debug)]
pub struct Pass {
    /// The objects the engine saw.
    pub objects: Objects,
    /// What it decided.
    pub decisions: Decisions,
    /// What was sent.
    pub applied: Applied,
}

/// Decides one namespace's objects at `now` and applies the decisions: the whole
/// reconcile but for where the objects come from. The engine runs on a blocking thread,
/// and a panic in it is returned as an error.
pub async fn reconcile_objects(
    applier: &Applier,
    objects: Objects,
    now: Timestamp,
) -> Result<Pass, Error> {
    let (objects, decisions) = tokio::task::spawn_blocking(move || {
        let d = engine::decide(&objects.snapshot(), now);
        (objects, d)
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))?;
    let applied = applier.apply(&objects, &decisions).await;
    Ok(Pass {
        objects,
        decisions,
        applied,
    })
}

/// An object's resource version before a reconcile's writes, and after each of them.
type Versions<'a> = (Option<&'a str>, Vec<&'a str>);

/// Decides a namespace's objects at `now` with its cache, told which devices changed
/// since the cache's last pass; the engine runs on a blocking thread. The cache comes
/// back with the decisions (none when the engine panicked: the next pass starts afresh).
async fn decide_changed(
    objects: Objects,
    changed: Pending,
    mut cache: engine::Cache,
    now: Timestamp,
) -> Result<(Objects, Decisions, engine::Cache), Error> {
    tokio::task::spawn_blocking(move || {
        let told = match changed.everything {
            true => engine::Changed::Everything,
            false => engine::Changed::Devices(&changed.devices),
        };
        let d = engine::decide_changed(&objects.snapshot(), told, now, &mut cache);
        (objects, d, cache)
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))
}

/// What reconciles share.
pub struct Context {
    /// The stores.
    pub stores: Stores,
    /// The writer.
    pub applier: Applier,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The report controller.
    pub reports: Reports,
    /// Each tenant's engine cache between its passes (out of the map while a pass runs:
    /// a tenant's passes never overlap).
    pub caches: Mutex<HashMap<String, engine::Cache>>,
}

impl Context {
    /// Reconciles one namespace; returns when the engine wants to run again.
    pub async fn reconcile_tenant(&self, ns: &str) -> Result<Option<Timestamp>, Error> {
        // The changes are taken with the objects: a change after this is in the next pass.
        let (objects, changed) = self.stores.objects_changed(ns);
        let cache = self.take_cache(ns);
        let now = Timestamp::now();
        let (objects, decisions, cache) = decide_changed(objects, changed, cache, now).await?;
        self.put_cache(ns, &objects, cache);
        let applied = self.applier.apply(&objects, &decisions).await;
        let mut pass = Pass {
            objects,
            decisions,
            applied,
        };
        self.metrics.tenant(&pass.objects, &pass.decisions, now);
        self.settle(Some(ns), &pass.applied.written).await;
        let a = &pass.applied;
        if a.writes > 0 {
            info!(
                namespace = ns,
                writes = a.writes,
                failed = a.failures.len(),
                new_rollouts = pass.decisions.new_rollouts.len(),
                plan_changes = pass.decisions.plan.len(),
                events = pass.decisions.events.len(),
                "applied decisions"
            );
        } else {
            debug!(namespace = ns, "nothing to write");
        }
        failures(&mut pass.applied)?;
        Ok(pass.decisions.wake_at)
    }

    /// The tenant's cache, or a new one (its first pass, or after a panic).
    fn take_cache(&self, ns: &str) -> engine::Cache {
        let mut caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
        match caches.remove(ns) {
            Some(cache) => cache,
            // Not `Cache::default()`, which keeps nothing between passes.
            None => engine::Cache::new(),
        }
    }

    /// Keeps the tenant's cache for its next pass, unless the namespace holds nothing to
    /// decide any more (deleted, or emptied): then its memory is given back.
    fn put_cache(&self, ns: &str, objects: &Objects, cache: engine::Cache) {
        let mut caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
        if objects.devices.is_empty() && objects.policies.is_empty() {
            drop(caches);
            self.stores.forget_changes(ns);
            return;
        }
        caches.insert(ns.to_string(), cache);
    }

    /// Forgets what is kept between passes for the tenants `gone` names (their shard went
    /// to another replica): their caches and the notes of their changes. Were they kept,
    /// they would only grow stale; a shard taken back starts with full passes.
    pub fn forget_tenants(&self, gone: impl Fn(&str) -> bool) {
        let forgotten = {
            let mut caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
            take_gone(&mut caches, gone)
        };
        for ns in forgotten {
            self.stores.forget_changes(&ns);
        }
    }

    /// Writes the catalog's statuses where they differ.
    pub async fn reconcile_catalog(&self) -> Result<(), Error> {
        let patches = self.stores.patches.state();
        let mut applied = self.applier.apply_catalog(&patches).await;
        self.settle(None, &applied.written).await;
        if applied.writes > 0 {
            info!(writes = applied.writes, "wrote Patch statuses");
        }
        failures(&mut applied)
    }

    /// Waits (briefly) until the stores show every object this reconcile wrote.
    async fn settle(&self, ns: Option<&str>, written: &[Written]) {
        // Per object: the version before its first write and after each write.
        let mut wanted: BTreeMap<(ObjectKind, &str), Versions<'_>> = BTreeMap::new();
        for w in written {
            let entry = wanted
                .entry((w.kind, w.name.as_str()))
                .or_insert((w.before.as_deref(), Vec::new()));
            entry.1.push(w.after.as_str());
        }
        if wanted.is_empty() {
            return;
        }
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            wanted.retain(|(kind, name), (before, after)| {
                let current = self.version(ns, *kind, name);
                !caught_up(current.as_deref(), *before, after)
            });
            if wanted.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                warn!(
                    namespace = ns.unwrap_or(""),
                    objects = wanted.len(),
                    "the watch has not shown this reconcile's writes yet; going on"
                );
                return;
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    /// The resource version the store holds for an object.
    fn version(&self, ns: Option<&str>, kind: ObjectKind, name: &str) -> Option<String> {
        let ns = ns.unwrap_or("");
        let rv = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            m.resource_version.clone()
        };
        match kind {
            ObjectKind::PatchPolicy => self
                .stores
                .policies
                .get(ns, name)
                .and_then(|o| rv(o.meta())),
            ObjectKind::DeploymentRing => {
                self.stores.rings.get(ns, name).and_then(|o| rv(o.meta()))
            }
            ObjectKind::PatchException => self
                .stores
                .exceptions
                .get(ns, name)
                .and_then(|o| rv(o.meta())),
            ObjectKind::ManagedDevice => {
                self.stores.devices.get(ns, name).and_then(|o| rv(o.meta()))
            }
            ObjectKind::PatchRollout => self
                .stores
                .rollouts
                .get(ns, name)
                .and_then(|o| rv(o.meta())),
            ObjectKind::Patch => self
                .stores
                .patches
                .get(&ObjectRef::new(name))
                .and_then(|o| rv(o.meta())),
            ObjectKind::PatchApproval => self
                .stores
                .approvals
                .get(ns, name)
                .and_then(|o| rv(o.meta())),
            ObjectKind::PatchFreeze => self.stores.freezes.get(ns, name).and_then(|o| rv(o.meta())),
            ObjectKind::Event => None,
        }
    }
}

/// Whether a store holding `current` has seen writes that produced `after`, starting from
/// `before`. Resource versions are compared as numbers where they are numbers (as every
/// etcd-backed API server gives them); otherwise the store must show one of them, or at
/// least something other than `before`.
fn caught_up(current: Option<&str>, before: Option<&str>, after: &[&str]) -> bool {
    let Some(current) = current else {
        // Not in the store (yet, or any more: deleted objects are not waited for).
        return before.is_some();
    };
    let numbers: Option<Vec<u64>> = after.iter().map(|v| v.parse::<u64>().ok()).collect();
    match (current.parse::<u64>().ok(), numbers) {
        (Some(c), Some(n)) => n.iter().all(|n| c >= *n),
        _ => after.contains(&current) || Some(current) != before,
    }
}

fn failures(a: &mut Applied) -> Result<(), Error> {
    if a.failures.is_empty() {
        return Ok(());
    }
    let failed = a.failures.len();
    let first = a.failures.swap_remove(0);
    Err(Error::Writes {
        failed,
        attempted: a.writes,
        first: Box::new(first),
    })
}

/// The queue's reconciler: tenants and the catalog.
pub struct TenantReconciler {
    ctx: Arc<Context>,
}

impl TenantReconciler {
    /// A reconciler over a context.
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }

    /// The context its reconciles share.
    pub fn context(&self) -> &Context {
        &self.ctx
    }
}

/// Takes out of `caches` those of the tenants `gone` names; returns their names.
fn take_gone(
    caches: &mut HashMap<String, engine::Cache>,
    gone: impl Fn(&str) -> bool,
) -> Vec<String> {
    let names: Vec<String> = caches.keys().filter(|ns| gone(ns)).cloned().collect();
    for ns in &names {
        caches.remove(ns);
    }
    names
}

fn controller(key: &Key) -> &'static str {
    match key {
        Key::Catalog => "catalog",
        Key::Tenant(_) => "tenant",
        Key::Reports(_) => "reports",
    }
}

/// The tokio instant of an instant of a clock that reads `now` (now, if it has passed).
fn instant_of(at: Timestamp, now: Timestamp) -> Instant {
    let delta = at.duration_since(now);
    let wait = Duration::try_from(delta).unwrap_or(Duration::ZERO);
    Instant::now() + wait + WAKE_MARGIN
}

impl Reconciler<Key> for TenantReconciler {
    fn reconcile(&self, key: Key) -> RunFuture {
        let ctx = Arc::clone(&self.ctx);
        Box::pin(async move {
            let started = std::time::Instant::now();
            let result = match &key {
                Key::Tenant(ns) => ctx.reconcile_tenant(ns).await,
                Key::Reports(ns) => ctx.reports.reconcile(&ctx.stores, ns).await.map(Some),
                Key::Catalog => ctx.reconcile_catalog().await.map(|()| None),
            };
            ctx.metrics
                .reconciled(controller(&key), result.is_ok(), started.elapsed());
            match result {
                Ok(wake) => {
                    if let (Key::Tenant(ns), Some(at)) = (&key, wake) {
                        debug!(namespace = %ns, wake_at = %at, "next wake-up");
                    }
                    // Months are closed by the report controller's clock.
                    let now = match &key {
                        Key::Reports(_) => ctx.reports.now(),
                        Key::Tenant(_) | Key::Catalog => Timestamp::now(),
                    };
                    Ok(wake.map(|at| instant_of(at, now)))
                }
                Err(e) => {
                    match &key {
                        Key::Tenant(ns) => {
                            warn!(namespace = %ns, error = %e, "reconcile failed; retrying with backoff")
                        }
                        Key::Reports(ns) => {
                            warn!(namespace = %ns, kind = "PatchReport", error = %e, "closing months failed; retrying with backoff")
                        }
                        Key::Catalog => {
                            warn!(kind = "Patch", error = %e, "catalog reconcile failed; retrying with backoff")
                        }
                    }
                    Err(e)
                }
            }
        })
    }

    fn panicked(&self, key: &Key, message: &str) {
        self.ctx
            .metrics
            .reconciled(controller(key), false, Duration::ZERO);
        match key {
            Key::Tenant(ns) | Key::Reports(ns) => {
                error!(namespace = %ns, controller = controller(key), panic = message, "reconcile panicked; retrying with backoff")
            }
            Key::Catalog => error!(
                panic = message,
                "catalog reconcile panicked; retrying with backoff"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_has_caught_up_once_it_shows_the_newest_write() {
        assert!(!caught_up(Some("10"), Some("10"), &["12", "11"]));
        assert!(!caught_up(Some("11"), Some("10"), &["12", "11"]));
        assert!(caught_up(Some("12"), Some("10"), &["12", "11"]));
        assert!(
            caught_up(Some("15"), Some("10"), &["12"]),
            "a later write by someone else"
        );
        assert!(
            !caught_up(None, None, &["3"]),
            "a created object not yet seen"
        );
        assert!(caught_up(None, Some("3"), &["4"]), "deleted meanwhile");
        assert!(caught_up(Some("b"), Some("a"), &["b"]), "opaque versions");
        assert!(!caught_up(Some("a"), Some("a"), &["b"]));
    }

    #[test]
    fn the_caches_of_tenants_that_went_elsewhere_are_taken_out() {
        let mut caches: HashMap<String, engine::Cache> = ["a", "b", "c"]
            .into_iter()
            .map(|ns| (ns.to_string(), engine::Cache::new()))
            .collect();
        let mut gone = take_gone(&mut caches, |ns| ns != "b");
        gone.sort();
        assert_eq!(gone, ["a", "c"]);
        assert_eq!(caches.keys().collect::<Vec<_>>(), ["b"]);
    }
}
