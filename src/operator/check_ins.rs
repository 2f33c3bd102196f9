//! The devices' check-ins: the Leases agents renew instead of writing `status`, kept as
//! one instant per device (not the Leases themselves: at 100,000 devices the objects
//! would cost far more than the instants), and which renewals trigger a reconcile.
//!
//! A renewal is the most frequent write in a large fleet (every device every few
//! minutes), so it does not trigger its namespace: the next pass, whatever wakes it,
//! reads the instant from here (the engine wakes itself when the first member could turn
//! unreachable, and sees the renewals made since). Only a renewal that matters at once
//! triggers: the first check-in of a device, and one after its Lease had expired (the
//! device may be unreachable now and must be seen back). A deleted Lease triggers too
//! (the device may now be seen later than the engine assumed).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::contract::{self, CHECK_IN_LABEL, CheckIns};

/// How long a Lease without `leaseDurationSeconds` counts as lasting, for the trigger.
pub const UNTIMED_LEASE_SECONDS: i32 = 3600;

/// Whether a renewal of a device's check-in to `renewed` (its Lease lasting
/// `duration_seconds`) must be seen at once: the device had none, or its last one
/// (`before`) had expired by this renewal. A renewal that moves nothing forward never
/// matters.
pub fn renewal_matters(
    before: Option<Timestamp>,
    renewed: Timestamp,
    duration_seconds: Option<i32>,
) -> bool {
    match before {
        None => true,
        Some(before) => {
            let lasts = duration_seconds.unwrap_or(UNTIMED_LEASE_SECONDS);
            renewed > before && contract::lease_expired(before, Some(lasts), renewed)
        }
    }
}

/// The check-ins of every namespace watched, shared by the watch tasks and the
/// reconcilers. Each namespace's are behind an `Arc`: a pass holds them while the watch
/// goes on (a renewal then copies the namespace's map once).
#[derive(Clone, Default)]
pub struct CheckInStore {
    by_namespace: Arc<RwLock<HashMap<String, Arc<CheckIns>>>>,
    ready: Vec<watch::Receiver<bool>>,
}

impl std::fmt::Debug for CheckInStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckInStore").finish_non_exhaustive()
    }
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

    /// Notes a Lease as applied (created or renewed).
    pub fn apply(&self, lease: &Lease) -> Change {
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
        let lasts = lease.spec.as_ref().and_then(|s| s.lease_duration_seconds);
        if renewal_matters(before, renewed, lasts) {
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

/// Starts the Lease watches (one, or one per namespace), labelled [`CHECK_IN_LABEL`];
/// `changed` is told what each event means for reconciles, and `renewed` of every
/// check-in seen (namespace, instant), reconciled or not.
pub fn start(
    client: &Client,
    namespaces: Option<&[String]>,
    changed: impl Fn(Change) + Clone + Send + Sync + 'static,
    renewed: impl Fn(&str, Timestamp) + Clone + Send + Sync + 'static,
) -> (CheckInStore, Vec<JoinHandle<()>>) {
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
        let (store, changed, renewed) = (store.clone(), changed.clone(), renewed.clone());
        tasks.push(tokio::spawn(async move {
            let config = watcher::Config::default().labels(CHECK_IN_LABEL);
            let stream = watcher(api, config).backoff(super::stores::watch_backoff());
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
                        if let (Some(ns), Some((_, at))) =
                            (l.metadata.namespace.as_deref(), contract::check_in(&l))
                        {
                            renewed(ns, at);
                        }
                        store.apply(&l)
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
        let first = store.apply(&lease("ws-1", "2026-11-24T21:00:00Z"));
        assert_eq!(first, Change::Trigger("fleet".into()), "first check-in");
        let renewed = store.apply(&lease("ws-1", "2026-11-24T21:05:00Z"));
        assert_eq!(renewed, Change::Quiet, "a renewal in time");
        assert_eq!(
            store.in_namespace("fleet").get("ws-1"),
            Some(t("2026-11-24T21:05:00Z")),
            "kept for the next pass"
        );
        let again = store.apply(&lease("ws-1", "2026-11-24T21:05:00Z"));
        assert_eq!(again, Change::Quiet, "nothing moved");
        let back = store.apply(&lease("ws-1", "2026-11-24T21:20:00Z"));
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
    fn a_lease_that_is_no_check_in_is_ignored() {
        let store = CheckInStore::default();
        let mut other = lease("ws-1", "2026-11-24T21:00:00Z");
        other.metadata.labels = Some([(CHECK_IN_LABEL.to_string(), "ws-2".into())].into());
        assert_eq!(store.apply(&other), Change::Quiet);
        assert!(store.in_namespace("fleet").is_empty());
    }

    #[test]
    fn a_relist_replaces_what_its_scope_held() {
        let store = CheckInStore::default();
        store.apply(&lease("ws-1", "2026-11-24T21:00:00Z"));
        let mut listed = CheckIns::default();
        listed.insert("ws-2".into(), t("2026-11-24T21:00:00Z"));
        let change = store.relisted(None, [("fleet".to_string(), listed)].into());
        assert_eq!(change, Change::Relisted(vec!["fleet".into()]));
        let ins = store.in_namespace("fleet");
        assert_eq!((ins.get("ws-1"), ins.len()), (None, 1));
    }
}
