//! The store of one namespaced kind, by namespace and then by name.
//!
//! kube's reflector store is one map of every object the watch sees: a tenant's objects
//! are found by walking all of them, so with every namespace watched each reconcile of
//! one tenant cost time in proportion to the whole cluster's devices. This store applies
//! the same watch events (a relist's objects are gathered apart and replace the old ones
//! at its end, as kube's does) into one map per namespace, so that a tenant's snapshot
//! costs what the tenant holds, and comes in name order (the order the engine walks).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kube::Resource;
use kube::runtime::watcher;
use tokio::sync::watch;

use super::changes::{Pending, Tracker};

/// Objects by namespace, then by name.
type ByNamespace<K> = HashMap<String, BTreeMap<String, Arc<K>>>;

struct State<K> {
    live: ByNamespace<K>,
    /// A relist's objects so far, while one runs.
    relist: Option<ByNamespace<K>>,
    /// Which objects changed since their namespace last took its notes, when tracked.
    tracker: Option<Tracker>,
}

/// Reads the store; clones share it.
pub struct Indexed<K> {
    state: Arc<RwLock<State<K>>>,
    ready: watch::Receiver<bool>,
}

impl<K> Clone for Indexed<K> {
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
            ready: self.ready.clone(),
        }
    }
}

/// Applies a watch's events to the store.
pub struct IndexWriter<K> {
    state: Arc<RwLock<State<K>>>,
    ready: watch::Sender<bool>,
}

/// An empty store and the writer that fills it.
pub fn indexed<K>() -> (Indexed<K>, IndexWriter<K>) {
    let state = Arc::new(RwLock::new(State {
        live: HashMap::new(),
        relist: None,
        tracker: None,
    }));
    let (tx, rx) = watch::channel(false);
    (
        Indexed {
            state: Arc::clone(&state),
            ready: rx,
        },
        IndexWriter { state, ready: tx },
    )
}

fn read<K>(state: &RwLock<State<K>>) -> RwLockReadGuard<'_, State<K>> {
    // A panic while holding the lock leaves maps that are whole (every change is one
    // insert or remove): go on with them.
    state.read().unwrap_or_else(|p| p.into_inner())
}

fn write<K>(state: &RwLock<State<K>>) -> RwLockWriteGuard<'_, State<K>> {
    state.write().unwrap_or_else(|p| p.into_inner())
}

/// The objects of a namespace, in name order.
fn objects_of<K>(live: &ByNamespace<K>, ns: &str) -> Vec<Arc<K>> {
    live.get(ns)
        .map(|objects| objects.values().cloned().collect())
        .unwrap_or_default()
}

/// Where an object goes: its namespace and name (None for one without a name).
fn place<K: Resource>(obj: &K) -> Option<(String, String)> {
    let meta = obj.meta();
    Some((
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone()?,
    ))
}

impl<K: Resource + Clone> IndexWriter<K> {
    /// Notes from now on which objects each event changes, for
    /// [`Indexed::in_namespace_changed`].
    pub fn track_changes(&mut self) {
        write(&self.state).tracker = Some(Tracker::default());
    }

    /// Applies one watch event.
    pub fn apply(&mut self, ev: &watcher::Event<K>) {
        let mut s = write(&self.state);
        if let (Some(t), watcher::Event::Apply(obj) | watcher::Event::Delete(obj)) =
            (s.tracker.as_mut(), ev)
            && let Some((ns, name)) = place(obj)
        {
            t.note(&ns, &name);
        }
        match ev {
            watcher::Event::Apply(obj) => {
                if let Some((ns, name)) = place(obj) {
                    s.live
                        .entry(ns)
                        .or_default()
                        .insert(name, Arc::new(obj.clone()));
                }
            }
            watcher::Event::Delete(obj) => {
                if let Some((ns, name)) = place(obj)
                    && let Some(objects) = s.live.get_mut(&ns)
                {
                    objects.remove(&name);
                    if objects.is_empty() {
                        s.live.remove(&ns);
                    }
                }
            }
            watcher::Event::Init => s.relist = Some(HashMap::new()),
            watcher::Event::InitApply(obj) => {
                if let (Some((ns, name)), Some(relist)) = (place(obj), s.relist.as_mut()) {
                    relist
                        .entry(ns)
                        .or_default()
                        .insert(name, Arc::new(obj.clone()));
                }
            }
            watcher::Event::InitDone => {
                if let Some(relist) = s.relist.take() {
                    s.live = relist;
                }
                if let Some(t) = s.tracker.as_mut() {
                    t.relisted();
                }
                drop(s);
                self.ready.send_replace(true);
            }
        }
    }
}

impl<K> Indexed<K> {
    /// The objects of a namespace, in name order.
    pub fn in_namespace(&self, ns: &str) -> Vec<Arc<K>> {
        objects_of(&read(&self.state).live, ns)
    }

    /// The objects of a namespace, in name order, with the notes of which changed since
    /// the last call for it, taken under the same lock (so the notes are of exactly
    /// these objects). Everything changed when changes are not tracked.
    pub fn in_namespace_changed(&self, ns: &str) -> (Vec<Arc<K>>, Pending) {
        let mut s = write(&self.state);
        let pending = s.tracker.as_mut().map_or(
            Pending {
                everything: true,
                ..Pending::default()
            },
            |t| t.take(ns),
        );
        (objects_of(&s.live, ns), pending)
    }

    /// Forgets the notes of a namespace no longer reconciled here
    /// ([`super::changes::Tracker::forget`]).
    pub fn forget_changes(&self, ns: &str) {
        if let Some(t) = write(&self.state).tracker.as_mut() {
            t.forget(ns);
        }
    }

    /// One object.
    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<K>> {
        read(&self.state).live.get(ns)?.get(name).cloned()
    }

    /// How many objects it holds.
    pub fn len(&self) -> usize {
        read(&self.state).live.values().map(BTreeMap::len).sum()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until the first list has been applied; false when the writer is gone first.
    pub async fn wait_until_ready(&self) -> bool {
        let mut ready = self.ready.clone();
        ready.wait_for(|r| *r).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    fn cm(ns: &str, name: &str, value: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.namespace = Some(ns.into());
        c.metadata.name = Some(name.into());
        c.data = Some([("v".to_string(), value.to_string())].into());
        c
    }

    fn names(objects: &[Arc<ConfigMap>]) -> Vec<&str> {
        objects
            .iter()
            .filter_map(|c| c.metadata.name.as_deref())
            .collect()
    }

    fn value(c: &ConfigMap) -> &str {
        c.data
            .as_ref()
            .and_then(|d| d.get("v"))
            .map_or("", String::as_str)
    }

    #[tokio::test]
    async fn a_namespace_holds_only_its_own_objects_in_name_order() {
        let (store, mut w) = indexed::<ConfigMap>();
        w.apply(&watcher::Event::Init);
        for (ns, name) in [("b", "z"), ("a", "y"), ("b", "x"), ("a", "w")] {
            w.apply(&watcher::Event::InitApply(cm(ns, name, "1")));
        }
        assert!(
            store.in_namespace("a").is_empty(),
            "not before the list ends"
        );
        w.apply(&watcher::Event::InitDone);
        assert!(store.wait_until_ready().await);
        assert_eq!(names(&store.in_namespace("a")), ["w", "y"]);
        assert_eq!(names(&store.in_namespace("b")), ["x", "z"]);
        assert!(store.in_namespace("c").is_empty());
        assert_eq!(store.len(), 4);

        w.apply(&watcher::Event::Apply(cm("a", "y", "2")));
        w.apply(&watcher::Event::Apply(cm("c", "v", "1")));
        w.apply(&watcher::Event::Delete(cm("b", "x", "1")));
        assert_eq!(
            store
                .get("a", "y")
                .map(|c| value(&c).to_string())
                .as_deref(),
            Some("2")
        );
        assert_eq!(names(&store.in_namespace("b")), ["z"]);
        assert_eq!(names(&store.in_namespace("c")), ["v"]);
        assert!(store.get("b", "x").is_none());
    }

    #[tokio::test]
    async fn a_relist_replaces_everything_at_its_end() {
        let (store, mut w) = indexed::<ConfigMap>();
        w.apply(&watcher::Event::Init);
        w.apply(&watcher::Event::InitApply(cm("a", "gone", "1")));
        w.apply(&watcher::Event::InitApply(cm("a", "kept", "1")));
        w.apply(&watcher::Event::InitDone);
        // The watch broke; objects were deleted meanwhile, leaving no Delete event.
        w.apply(&watcher::Event::Init);
        w.apply(&watcher::Event::InitApply(cm("a", "kept", "2")));
        assert_eq!(
            names(&store.in_namespace("a")),
            ["gone", "kept"],
            "the old list stands while the new one comes"
        );
        w.apply(&watcher::Event::InitDone);
        assert_eq!(names(&store.in_namespace("a")), ["kept"]);
        assert_eq!(
            store
                .get("a", "kept")
                .map(|c| value(&c).to_string())
                .as_deref(),
            Some("2")
        );
    }

    #[test]
    fn a_tracked_store_hands_over_the_changes_its_objects_hold() {
        let (store, mut w) = indexed::<ConfigMap>();
        w.track_changes();
        w.apply(&watcher::Event::Init);
        w.apply(&watcher::Event::InitApply(cm("a", "d1", "1")));
        w.apply(&watcher::Event::InitApply(cm("a", "d2", "1")));
        w.apply(&watcher::Event::InitDone);
        let (objects, first) = store.in_namespace_changed("a");
        assert_eq!(names(&objects), ["d1", "d2"]);
        assert!(first.everything, "a first pass reads everything");

        w.apply(&watcher::Event::Apply(cm("a", "d2", "2")));
        w.apply(&watcher::Event::Apply(cm("a", "d3", "1")));
        w.apply(&watcher::Event::Delete(cm("a", "d1", "1")));
        w.apply(&watcher::Event::Apply(cm("b", "other", "1")));
        let (objects, p) = store.in_namespace_changed("a");
        assert_eq!(names(&objects), ["d2", "d3"]);
        assert!(!p.everything);
        let changed: Vec<&str> = p.devices.iter().map(String::as_str).collect();
        assert_eq!(changed, ["d1", "d2", "d3"], "changed, added and removed");
        let (_, again) = store.in_namespace_changed("a");
        assert_eq!(again, Pending::default(), "handed over once");

        // A relist may have changed anything.
        w.apply(&watcher::Event::Init);
        w.apply(&watcher::Event::InitApply(cm("a", "d2", "3")));
        w.apply(&watcher::Event::InitDone);
        assert!(store.in_namespace_changed("a").1.everything);
        assert!(!store.in_namespace_changed("a").1.everything);
    }

    #[test]
    fn an_untracked_store_says_everything_changed() {
        let (store, mut w) = indexed::<ConfigMap>();
        w.apply(&watcher::Event::Apply(cm("a", "d1", "1")));
        assert!(store.in_namespace_changed("a").1.everything);
        assert!(store.in_namespace_changed("a").1.everything);
    }

    #[tokio::test]
    async fn not_ready_until_the_first_list_ends() {
        let (store, mut w) = indexed::<ConfigMap>();
        w.apply(&watcher::Event::Init);
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { store.wait_until_ready().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        w.apply(&watcher::Event::InitDone);
        assert!(waiting.await.expect("joined"));
        drop(w);
        let (never, w) = indexed::<ConfigMap>();
        drop(w);
        assert!(!never.wait_until_ready().await, "the writer is gone");
    }
}
