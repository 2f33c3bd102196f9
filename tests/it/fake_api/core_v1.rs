//! The few core (`/api/v1`) paths node mode uses: get and merge-patch a Node (with the
//! `metadata.resourceVersion` precondition, 409 when it is stale), list Pods with a
//! `spec.nodeName=` field selector, and the `pods/eviction` subresource, whose answer a
//! test chooses per pod ([`OnEvict`]).

use std::collections::BTreeMap;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Fake, Reply, State, created_now, failure, merge};

/// What an eviction of one pod does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnEvict {
    /// The pod is gone at once (the default).
    Delete,
    /// The pod gets a `deletionTimestamp` and stays until the test removes it.
    Terminate,
    /// 429, as when a PodDisruptionBudget would be violated: `times` times, then
    /// [`OnEvict::Delete`]; for ever when None.
    Refuse { times: Option<u32> },
}

/// The core objects and the eviction answers.
#[derive(Default)]
pub(super) struct Core {
    objects: BTreeMap<String, Value>,
    on_evict: BTreeMap<String, OnEvict>,
}

fn node_path(name: &str) -> String {
    format!("/api/v1/nodes/{name}")
}

fn pod_path(ns: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{ns}/pods/{name}")
}

fn path_of(obj: &Value) -> String {
    let name = obj["metadata"]["name"].as_str().expect("name");
    match obj["kind"].as_str() {
        Some("Node") => node_path(name),
        Some("Pod") => pod_path(
            obj["metadata"]["namespace"].as_str().expect("namespace"),
            name,
        ),
        other => panic!("the fake serves no core kind {other:?}"),
    }
}

/// `spec.nodeName=NAME` from a query string, percent-decoded as far as node names need.
fn node_selector(query: &str) -> Option<String> {
    let raw = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("fieldSelector="))?;
    let decoded = raw.replace("%3D", "=").replace("%3d", "=");
    Some(
        decoded
            .strip_prefix("spec.nodeName=")
            .unwrap_or_else(|| panic!("unexpected field selector {decoded}"))
            .to_string(),
    )
}

fn refused() -> Reply {
    Reply::Json(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "reason": "TooManyRequests", "code": 429,
            "details": {"causes": [{"reason": "DisruptionBudget",
                "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}]}}),
    )
}

impl Core {
    fn store(&mut self, version: &mut u64, mut obj: Value) -> Value {
        *version += 1;
        obj["metadata"]["resourceVersion"] = version.to_string().into();
        self.objects.insert(path_of(&obj), obj.clone());
        obj
    }

    fn patch_node(&mut self, version: &mut u64, name: &str, body: &Value) -> Reply {
        let Some(mut node) = self.objects.get(&node_path(name)).cloned() else {
            return failure(404, "NotFound");
        };
        if let Some(rv) = body["metadata"]["resourceVersion"].as_str()
            && Some(rv) != node["metadata"]["resourceVersion"].as_str()
        {
            return failure(409, "Conflict");
        }
        merge(&mut node, body);
        Reply::Json(StatusCode::OK, self.store(version, node))
    }

    fn list_pods(&self, version: u64, query: &str) -> Reply {
        let node = node_selector(query);
        let items: Vec<Value> = self
            .objects
            .values()
            .filter(|v| v["kind"] == "Pod")
            .filter(|v| node.is_none() || v["spec"]["nodeName"].as_str() == node.as_deref())
            .cloned()
            .collect();
        Reply::Json(
            StatusCode::OK,
            json!({"kind": "PodList", "apiVersion": "v1",
                "metadata": {"resourceVersion": version.to_string()}, "items": items}),
        )
    }

    fn evict(&mut self, version: &mut u64, ns: &str, name: &str, body: &Value) -> Reply {
        assert_eq!(
            body["apiVersion"], "policy/v1",
            "an Eviction of policy/v1: {body}"
        );
        assert_eq!(body["kind"], "Eviction", "an Eviction: {body}");
        assert_eq!(
            body["metadata"]["name"], name,
            "the Eviction names its pod: {body}"
        );
        let path = pod_path(ns, name);
        let Some(pod) = self.objects.get(&path).cloned() else {
            return failure(404, "NotFound");
        };
        let key = format!("{ns}/{name}");
        match self.on_evict.get(&key).cloned().unwrap_or(OnEvict::Delete) {
            OnEvict::Refuse { times: None } => return refused(),
            OnEvict::Refuse { times: Some(n) } if n > 0 => {
                self.on_evict
                    .insert(key, OnEvict::Refuse { times: Some(n - 1) });
                return refused();
            }
            OnEvict::Terminate => {
                let mut pod = pod;
                if pod["metadata"].get("deletionTimestamp").is_none() {
                    pod["metadata"]["deletionTimestamp"] = created_now();
                    self.store(version, pod);
                }
            }
            OnEvict::Refuse { .. } | OnEvict::Delete => {
                self.objects.remove(&path);
            }
        }
        Reply::Json(
            StatusCode::CREATED,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        )
    }
}

/// Serves a core path; None when the fake does not know it.
pub(super) fn handle(
    s: &mut State,
    method: &Method,
    path: &str,
    query: &str,
    body: &Value,
) -> Option<Reply> {
    let parts: Vec<&str> = path.strip_prefix("/api/v1/")?.split('/').collect();
    let State { core, version, .. } = s;
    let reply = match (method, parts.as_slice()) {
        (&Method::GET, ["nodes", name]) => match core.objects.get(&node_path(name)) {
            Some(n) => Reply::Json(StatusCode::OK, n.clone()),
            None => failure(404, "NotFound"),
        },
        (&Method::PATCH, ["nodes", name]) => core.patch_node(version, name, body),
        (&Method::GET, ["pods"]) => core.list_pods(*version, query),
        (&Method::POST, ["namespaces", ns, "pods", name, "eviction"]) => {
            core.evict(version, ns, name, body)
        }
        _ => return None,
    };
    Some(reply)
}

impl Fake {
    /// Stores a Node or a Pod (JSON with `kind`), as the cluster would hold it.
    pub fn insert_core(&self, mut obj: Value) {
        if obj["metadata"].get("uid").is_none() {
            let name = obj["metadata"]["name"].as_str().expect("name");
            obj["metadata"]["uid"] = format!("uid-{name}").into();
        }
        let mut s = self.0.lock().expect("lock");
        let State { core, version, .. } = &mut *s;
        core.store(version, obj);
    }

    /// A stored Node.
    pub fn node(&self, name: &str) -> Option<Value> {
        let s = self.0.lock().expect("lock");
        s.core.objects.get(&node_path(name)).cloned()
    }

    /// A stored Pod.
    pub fn pod(&self, ns: &str, name: &str) -> Option<Value> {
        let s = self.0.lock().expect("lock");
        s.core.objects.get(&pod_path(ns, name)).cloned()
    }

    /// Removes a Pod, as the kubelet does once a terminating pod has stopped.
    pub fn remove_pod(&self, ns: &str, name: &str) {
        let mut s = self.0.lock().expect("lock");
        s.core.objects.remove(&pod_path(ns, name));
    }

    /// What evicting the pod `ns/name` does from now on.
    pub fn on_evict(&self, ns: &str, name: &str, what: OnEvict) {
        let mut s = self.0.lock().expect("lock");
        s.core.on_evict.insert(format!("{ns}/{name}"), what);
    }
}
