//! The devices' check-ins: the Leases agents renew instead of writing `status`, kept as
//! one instant per device (not the Leases themselves: at 100,000 devices the objects
//! would cost far more than the instants), and which renewals trigger a reconcile.
//!
//! A renewal is the most frequent write in a large fleet (every device every few
//! minutes), so it does not trigger its namespace: the next pass, whatever wakes it,
//! reads the instant from here (the engine wakes itself when the first member could turn
//! unreachable, and sees the renewals made since). Only a renewal that matters at once
//! triggers: the first check-in of a device, and one after its Lease had expired or after
//! a gap as long as the shortest `unreachableAfter` of its namespace's rings (the device
//! may be unreachable now and must be seen back). A deleted Lease triggers too (the
//! device may now be seen later than the engine assumed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::contract::{self, CHECK_IN_LABEL, CheckIns};

use super::changes::{Pending, Tracker};

/// How long a Lease without `leaseDurationSeconds` counts as lasting, for the trigger.
pub const UNTIMED_LEASE_SECONDS: i32 = 3600;

/// Whether a renewal of a device's check-in to `renewed` (its Lease lasting
/// `duration_seconds`) must be seen at once: the device had none, or its last one
/// (`before`) had expired by this renewal, or was so old that the device may have been
/// judged unreachable (`unreachable_after`: the shortest `unreachableAfter` of the
/// namespace's rings, for rings that wait less than a Lease lasts). A renewal that moves
/// nothing forward never matters.
pub fn renewal_matters(
    before: Option<Timestamp>,
    renewed: Timestamp,
    duration_seconds: Option<i32>,
    unreachable_after: Option<SignedDuration>,
) -> bool {
    match before {
        None => true,
        Some(before) => {
            let lasts = duration_seconds.unwrap_or(UNTIMED_LEASE_SECONDS);
            let away = unreachable_after.is_some_and(|a| renewed.duration_since(before) >= a);
            renewed > before && (contract::lease_expired(before, Some(lasts), renewed) || away)
        }
    }
}

/// The check-ins of every namespace watched, shared by the watch tasks and the
/// reconcilers. Each namespace's are behind an `Arc`: a pass holds them while the watch
/// goes on (a renewal then copies the namespace's map once).
#[derive(Clone, Default)]
pub struct CheckInStore {
    by_namespace: Arc<RwLock<HashMap<String, Arc<CheckIns>>>>,
    /// Which devices' check-ins changed, noted under the lock of `by_namespace`.
    tracker: Arc<Mutex<Tracker>>,
    ready: Vec<watch::Receiver<bool>>,
}

impl std::fmt::Debug for CheckInStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckInStore").finish_non_exhaustive()
    }
}

/// The tracker, whole even after a panic elsewhere (every note is one insert).
fn lock(tracker: &Mutex<Tracker>) -> std::sync::MutexGuard<'_, Tracker> {
    tracker.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one watch event did to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing the engine must see at once.
    Quiet,
    /// The namespace must be reconciled.
    Trigger(String),
    /// A relist is complete: these namespaces must be reconciled.
    Relisted(Vec<String>),
}

impl CheckInStore {
    /// The check-ins of a namespace (none if it has no Leases).
    pub fn in_namespace(&self, ns: &str) -> Arc<CheckIns> {
        self.by_namespace
            .read()
            .ok()
            .and_then(|m| m.get(ns).cloned())
            .unwrap_or_default()
    }

    /// The check-ins of a namespace, with the notes of which devices' check-ins changed
    /// since the last call for it, taken under the same lock.
    pub fn in_namespace_changed(&self, ns: &str) -> (Arc<CheckIns>, Pending) {
        let Ok(map) = self.by_namespace.read() else {
            let everything = Pending {
                everything: true,
                ..Pending::default()
            };
            return (Arc::default(), everything);
        };
        let pending = lock(&self.tracker).take(ns);
        (map.get(ns).cloned().unwrap_or_default(), pending)
    }

    /// Forgets the notes of a namespace no longer reconciled here
    /// ([`super::changes::Tracker::forget`]).
    pub fn forget_changes(&self, ns: &str) {
        lock(&self.tracker).forget(ns);
    }

    /// Notes a Lease as applied (created or renewed); `unreachable_after` is the shortest
    /// `unreachableAfter` of its namespace's rings (see [`renewal_matters`]).
    pub fn apply(&self, lease: &Lease, unreachable_after: Option<SignedDuration>) -> Change {
        let (Some(ns), Some((device, renewed))) = (
            lease.metadata.namespace.as_deref(),
            contract::check_in(lease),
        ) else {
            return Change::Quiet;
        };
        let Ok(mut map) = self.by_namespace.write() else {
            return Change::Quiet;
        };
        let ins = map.entry(ns.to_string()).or_default();
        let before = ins.get(device);
        if before == Some(renewed) {
            return Change::Quiet;
        }
        Arc::make_mut(ins).insert(device.to_string(), renewed);
        lock(&self.tracker).note(ns, device);
        let lasts = lease.spec.as_ref().and_then(|s| s.lease_duration_seconds);
        if renewal_matters(before, renewed, lasts, unreachable_after) {
            Change::Trigger(ns.to_string())
        } else {
            Change::Quiet
        }
    }

    /// Forgets a deleted Lease.
    pub fn delete(&self, lease: &Lease) -> Change {
        let (Some(ns), Some(name)) = (
            lease.metadata.namespace.as_deref(),
            lease.metadata.name.as_deref(),
        ) else {
            return Change::Quiet;
        };
        let Ok(mut map) = self.by_namespace.write() else {
            return Change::Quiet;
        };
        match map.get_mut(ns) {
            Some(ins) if ins.get(name).is_some() => {
                Arc::make_mut(ins).remove(name);
                lock(&self.tracker).note(ns, name);
                Change::Trigger(ns.to_string())
            }
            _ => Change::Quiet,
        }
    }

    /// Replaces what a watch of `scope` (one namespace, or all) holds by a complete list.
    pub fn relisted(&self, scope: Option<&str>, listed: HashMap<String, CheckIns>) -> Change {
        let Ok(mut map) = self.by_namespace.write() else {
            return Change::Quiet;
        };
        let mut touched: Vec<String> = listed.keys().cloned().collect();
        match scope {
            Some(ns) => {
                let ins = listed.get(ns).cloned().unwrap_or_default();
                map.insert(ns.to_string(), Arc::new(ins));
                touched = vec![ns.to_string()];
            }
            None => {
                touched.extend(map.keys().cloned());
                *map = listed.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
            }
        }
        touched.sort();
        touched.dedup();
        lock(&self.tracker).relisted();
        Change::Relisted(touched)
    }

    /// Waits until every watch has listed its Leases once; false if one is gone.
    pub async fn wait_until_ready(&self) -> bool {
        for r in &self.ready {
            let mut r = r.clone();
            if r.wait_for(|ready| *ready).await.is_err() {
                return false;
            }
        }
        true
    }
}

/// What the Lease watches tell, and what they ask.
pub struct Hooks<C, R, U> {
    /// Told what each event means for reconciles.
    pub changed: C,
    /// Told of every check-in seen (namespace, instant), reconciled or not.
    pub renewed: R,
    /// Asked for the shortest `unreachableAfter` of a namespace's rings.
    pub unreachable_after: U,
}

/// Starts the Lease watches (one, or one per namespace), labelled [`CHECK_IN_LABEL`].
pub fn start<C, R, U>(
    client: &Client,
    namespaces: Option<&[String]>,
    hooks: Hooks<C, R, U>,
) -> (CheckInStore, Vec<JoinHandle<()>>)
where
    C: Fn(Change) + Clone + Send + Sync + 'static,
    R: Fn(&str, Timestamp) + Clone + Send + Sync + 'static,
    U: Fn(&str) -> Option<SignedDuration> + Clone + Send + Sync + 'static,
{
    let mut store = CheckInStore::default();
    let scopes: Vec<Option<String>> = match namespaces {
        Some(list) => list.iter().cloned().map(Some).collect(),
        None => vec![None],
    };
    let mut tasks = Vec::new();
    for scope in scopes {
        let api: Api<Lease> = match &scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let (ready_tx, ready_rx) = watch::channel(false);
        store.ready.push(ready_rx);
        let store = store.clone();
        let (changed, renewed) = (hooks.changed.clone(), hooks.renewed.clone());
        let unreachable_after = hooks.unreachable_after.clone();
        tasks.push(tokio::spawn(async move {
            let config = watcher::Config::default().labels(CHECK_IN_LABEL);
            let stream = super::stores::recovering_watch(api, config);
            let mut stream = std::pin::pin!(stream);
            let mut listing: HashMap<String, CheckIns> = HashMap::new();
            while let Some(item) = stream.next().await {
                let ev = match item {
                    Ok(ev) => ev,
                    Err(e) => {
                        warn!(kind = "Lease", error = %e, "watch failed; retrying with backoff");
                        continue;
                    }
                };
                debug!(kind = "Lease", event = %ev, "watch event");
                let change = match ev {
                    watcher::Event::Apply(l) => {
                        let ns = l.metadata.namespace.as_deref().unwrap_or_default();
                        if let Some((_, at)) = contract::check_in(&l) {
                            renewed(ns, at);
                        }
                        store.apply(&l, unreachable_after(ns))
                    }
                    watcher::Event::Delete(l) => store.delete(&l),
                    watcher::Event::Init => {
                        listing.clear();
                        Change::Quiet
                    }
                    watcher::Event::InitApply(l) => {
                        if let (Some(ns), Some((device, at))) =
                            (l.metadata.namespace.clone(), contract::check_in(&l))
                        {
                            listing
                                .entry(ns)
                                .or_default()
                                .insert(device.to_string(), at);
                        }
                        Change::Quiet
                    }
                    watcher::Event::InitDone => {
                        let change = store.relisted(scope.as_deref(), std::mem::take(&mut listing));
                        let _ = ready_tx.send(true);
                        change
                    }
                };
                changed(change);
            }
        }));
    }
    (store, tasks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn lease(name: &str, renewed: &str) -> Lease {
        let mut l = Lease::default();
        l.metadata.name = Some(name.into());
        l.metadata.namespace = Some("fleet".into());
        l.metadata.labels = Some([(CHECK_IN_LABEL.to_string(), name.to_string())].into());
        l.spec = Some(LeaseSpec {
            renew_time: Some(MicroTime(t(renewed))),
            lease_duration_seconds: Some(900),
            ..LeaseSpec::default()
        });
        l
    }

    #[test]
    fn only_a_first_check_in_or_one_after_an_expired_lease_triggers() {
        let store = CheckInStore::default();
        let first = store.apply(&lease("ws-1", "2026-11-24T21:00:00Z"), None);
        assert_eq!(first, Change::Trigger("fleet".into()), "first check-in");
        let renewed = store.apply(&lease("ws-1", "2026-11-24T21:05:00Z"), None);
        assert_eq!(renewed, Change::Quiet, "a renewal in time");
        assert_eq!(
            store.in_namespace("fleet").get("ws-1"),
            Some(t("2026-11-24T21:05:00Z")),
            "kept for the next pass"
        );
        let again = store.apply(&lease("ws-1", "2026-11-24T21:05:00Z"), None);
        assert_eq!(again, Change::Quiet, "nothing moved");
        let back = store.apply(&lease("ws-1", "2026-11-24T21:20:00Z"), None);
        assert_eq!(back, Change::Trigger("fleet".into()), "15 minutes: expired");
        let gone = store.delete(&lease("ws-1", "2026-11-24T21:20:00Z"));
        assert_eq!(gone, Change::Trigger("fleet".into()));
        assert_eq!(store.in_namespace("fleet").get("ws-1"), None);
        assert_eq!(
            store.delete(&lease("ws-1", "2026-11-24T21:20:00Z")),
            Change::Quiet
        );
    }

    #[test]
    fn a_renewal_after_a_rings_unreachable_after_triggers_even_within_the_lease() {
        // A ring that gives up after 5 minutes, Leases that last 15.
        let store = CheckInStore::default();
        let five = Some(SignedDuration::from_mins(5));
        store.apply(&lease("ws-1", "2026-11-24T21:00:00Z"), five);
        let soon = store.apply(&lease("ws-1", "2026-11-24T21:04:00Z"), five);
        assert_eq!(soon, Change::Quiet);
        let back = store.apply(&lease("ws-1", "2026-11-24T21:10:00Z"), five);
        assert_eq!(
            back,
            Change::Trigger("fleet".into()),
            "maybe unreachable meanwhile"
        );
        let (at_nine, four_past, quarter_past) = (
            t("2026-11-24T21:00:00Z"),
            t("2026-11-24T21:04:00Z"),
            t("2026-11-24T21:15:00Z"),
        );
        assert!(!renewal_matters(Some(at_nine), four_past, Some(900), None));
        assert!(
            renewal_matters(Some(at_nine), quarter_past, Some(900), None),
            "expired"
        );
        assert!(renewal_matters(None, at_nine, Some(900), None), "the first");
        assert!(
            !renewal_matters(Some(quarter_past), at_nine, Some(900), five),
            "a renewal that goes back"
        );
    }

    #[test]
    fn a_lease_that_is_no_check_in_is_ignored() {
        let store = CheckInStore::default();
        let mut other = lease("ws-1", "2026-11-24T21:00:00Z");
        other.metadata.labels = Some([(CHECK_IN_LABEL.to_string(), "ws-2".into())].into());
        assert_eq!(store.apply(&other, None), Change::Quiet);
        assert!(store.in_namespace("fleet").is_empty());
    }

    #[test]
    fn every_check_in_that_moved_is_handed_to_the_next_pass_even_a_quiet_one() {
        let store = CheckInStore::default();
        assert!(store.in_namespace_changed("fleet").1.everything, "first");
        store.apply(&lease("ws-1", "2026-11-24T21:00:00Z"), None);
        // Quiet (no reconcile of its own), but the next pass must see where it moved.
        let quiet = store.apply(&lease("ws-1", "2026-11-24T21:05:00Z"), None);
        assert_eq!(quiet, Change::Quiet);
        store.apply(&lease("ws-2", "2026-11-24T21:05:00Z"), None);
        let (ins, p) = store.in_namespace_changed("fleet");
        assert_eq!(ins.get("ws-1"), Some(t("2026-11-24T21:05:00Z")));
        let changed: Vec<&str> = p.devices.iter().map(String::as_str).collect();
        assert_eq!((p.everything, changed), (false, vec!["ws-1", "ws-2"]));
        store.apply(&lease("ws-1", "2026-11-24T21:05:00Z"), None);
        assert_eq!(
            store.in_namespace_changed("fleet").1,
            Pending::default(),
            "a renewal to the same instant moved nothing"
        );
        store.delete(&lease("ws-2", "2026-11-24T21:05:00Z"));
        let gone = store.in_namespace_changed("fleet").1;
        assert_eq!(gone.devices.iter().collect::<Vec<_>>(), ["ws-2"]);
        store.relisted(None, HashMap::new());
        assert!(store.in_namespace_changed("fleet").1.everything);
    }

    #[test]
    fn a_relist_replaces_what_its_scope_held() {
        let store = CheckInStore::default();
        store.apply(&lease("ws-1", "2026-11-24T21:00:00Z"), None);
        let mut listed = CheckIns::default();
        listed.insert("ws-2".into(), t("2026-11-24T21:00:00Z"));
        let change = store.relisted(None, [("fleet".to_string(), listed)].into());
        assert_eq!(change, Change::Relisted(vec!["fleet".into()]));
        let ins = store.in_namespace("fleet");
        assert_eq!((ins.get("ws-1"), ins.len()), (None, 1));
    }
}
