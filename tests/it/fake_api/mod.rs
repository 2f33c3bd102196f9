//! A small fake API server for the operator's tests: the ringmaster kinds and Leases
//! (`coordination.k8s.io/v1`, the devices' check-ins) by path, label selectors on lists and
//! watches, JSON
//! merge patches (with the status subresource), status replaces (409 on a stale
//! resourceVersion), creations (409 when the name is taken),
//! Events, the seven CRDs (Established), and list + watch with a replayable event log.
//!
//! The built-in kinds enrollment writes (Namespaces, ServiceAccounts and their tokens,
//! RBAC, SubjectAccessReviews) are served by [`builtin`].
//! The core paths node mode uses (Nodes, Pods on a node, pod evictions) are in [`core_v1`].
//!
//! Three ways in: [`Fake::mock_client`] through `tower_test::mock::pair` (no watches),
//! [`Fake::client`] through a `tower::service_fn` whose watch responses stream, and
//! [`serve::serve`] over HTTP on a local port, for the `ringmaster` binary (no watches).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use kube::Client;
use kube::client::Body;
use ringmaster::contract::CheckIns;
use ringmaster::operator::stores::Objects;
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub mod builtin;
mod core_v1;
pub mod serve;
pub use core_v1::OnEvict;

pub const GROUP_PATH: &str = "/apis/patching.ringmaster.dev/v1alpha1";
/// The group of Leases (the devices' check-ins), served like the ringmaster kinds.
pub const LEASE_GROUP_PATH: &str = "/apis/coordination.k8s.io/v1";

/// The API path of a kind's group.
fn group_path(kind: &str) -> &'static str {
    match kind {
        "Lease" => LEASE_GROUP_PATH,
        _ => GROUP_PATH,
    }
}

/// The `apiVersion` of a kind.
fn api_version(kind: &str) -> &'static str {
    match kind {
        "Lease" => "coordination.k8s.io/v1",
        _ => "patching.ringmaster.dev/v1alpha1",
    }
}

/// Whether an object's labels match a `labelSelector` of `key` and `key=value` terms.
fn selected(obj: &Value, selector: Option<&str>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    let labels = &obj["metadata"]["labels"];
    selector.split(',').all(|term| match term.split_once('=') {
        Some((k, v)) => labels[k].as_str() == Some(v),
        None => labels.get(term).is_some(),
    })
}

/// The `labelSelector` of a query, decoded.
fn label_selector(query: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("labelSelector="))
        .map(|v| {
            v.replace("%2F", "/")
                .replace("%3D", "=")
                .replace("%2C", ",")
        })
}

/// One request the operator sent (reads are kept apart from writes).
#[derive(Clone, Debug)]
pub struct Sent {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub body: Value,
}

impl Sent {
    pub fn is_write(&self) -> bool {
        self.method != Method::GET
    }
}

struct Watch {
    plural: String,
    namespace: Option<String>,
    selector: Option<String>,
    tx: mpsc::UnboundedSender<Bytes>,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    sent: Vec<Sent>,
    version: u64,
    broken: Vec<String>,
    /// Requests answered 403 Forbidden, as RBAC refuses them: (method, path).
    forbidden: Vec<(Method, String)>,
    /// Paths answered 429 (as priority and fairness does) so many more times.
    throttled: Vec<(String, usize)>,
    /// (version, plural, namespace, event JSON line)
    log: Vec<(u64, String, Option<String>, Bytes)>,
    watches: Vec<Watch>,
    core: core_v1::Core,
    /// Who a SelfSubjectReview says the caller is (default `alice@example.com`).
    caller: Option<String>,
    /// Names given to objects created with `generateName`.
    generated: u64,
}

/// The fake server; clones share it.
#[derive(Clone, Default)]
pub struct Fake(Arc<Mutex<State>>);

pub fn plural(kind: &str) -> &'static str {
    match kind {
        "PatchPolicy" => "patchpolicies",
        "DeploymentRing" => "deploymentrings",
        "PatchException" => "patchexceptions",
        "ManagedDevice" => "manageddevices",
        "PatchRollout" => "patchrollouts",
        "Patch" => "patches",
        "PatchReport" => "patchreports",
        "PatchApproval" => "patchapprovals",
        "PatchFreeze" => "patchfreezes",
        "Lease" => "leases",
        other => panic!("unknown kind {other}"),
    }
}

fn kind_of(plural: &str) -> &'static str {
    match plural {
        "patchpolicies" => "PatchPolicy",
        "deploymentrings" => "DeploymentRing",
        "patchexceptions" => "PatchException",
        "manageddevices" => "ManagedDevice",
        "patchrollouts" => "PatchRollout",
        "patches" => "Patch",
        "patchreports" => "PatchReport",
        "patchapprovals" => "PatchApproval",
        "patchfreezes" => "PatchFreeze",
        "leases" => "Lease",
        other => panic!("unknown resource {other}"),
    }
}

pub fn path_of(kind: &str, ns: Option<&str>, name: &str) -> String {
    let group = group_path(kind);
    match ns {
        Some(ns) => format!("{group}/namespaces/{ns}/{}/{name}", plural(kind)),
        None => format!("{group}/{}/{name}", plural(kind)),
    }
}

/// RFC 7386.
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Some(t) = target.as_object_mut() {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// What an API server puts in `creationTimestamp`: now, to the second.
fn created_now() -> Value {
    let now = jiff::Timestamp::now();
    let secs = jiff::Timestamp::from_second(now.as_second()).unwrap_or(now);
    secs.to_string().into()
}

fn from<T: serde::de::DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).expect("a valid object")
}

/// What a request gets back.
pub enum Reply {
    Json(StatusCode, Value),
    Watch(mpsc::UnboundedReceiver<Bytes>),
}

fn failure(code: u16, reason: &str) -> Reply {
    Reply::Json(
        StatusCode::from_u16(code).expect("code"),
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": reason, "reason": reason, "code": code}),
    )
}

/// What a path names.
struct Target {
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn parse(path: &str) -> Option<Target> {
    let rest = path
        .strip_prefix(GROUP_PATH)
        .or_else(|| path.strip_prefix(LEASE_GROUP_PATH))?
        .trim_start_matches('/');
    let parts: Vec<&str> = rest.split('/').collect();
    let (namespace, parts) = match parts.as_slice() {
        ["namespaces", ns, rest @ ..] => (Some(ns.to_string()), rest.to_vec()),
        other => (None, other.to_vec()),
    };
    match parts.as_slice() {
        [plural] => Some(Target {
            plural: plural.to_string(),
            namespace,
            name: None,
            status: false,
        }),
        [plural, name] => Some(Target {
            plural: plural.to_string(),
            namespace,
            name: Some(name.to_string()),
            status: false,
        }),
        [plural, name, "status"] => Some(Target {
            plural: plural.to_string(),
            namespace,
            name: Some(name.to_string()),
            status: true,
        }),
        _ => None,
    }
}

impl State {
    /// Records a change in the log and tells the watches.
    fn changed(&mut self, type_: &str, obj: &Value) {
        let plural = plural(obj["kind"].as_str().expect("kind")).to_string();
        let ns = obj["metadata"]["namespace"].as_str().map(str::to_string);
        let line = Bytes::from(format!("{}\n", json!({"type": type_, "object": obj})));
        self.log
            .push((self.version, plural.clone(), ns.clone(), line.clone()));
        self.watches.retain(|w| {
            if w.plural != plural
                || (w.namespace.is_some() && w.namespace != ns)
                || !selected(obj, w.selector.as_deref())
            {
                return !w.tx.is_closed();
            }
            w.tx.send(line.clone()).is_ok()
        });
    }

    fn store(&mut self, path: String, mut obj: Value, type_: &str) -> Value {
        self.version += 1;
        obj["metadata"]["resourceVersion"] = self.version.to_string().into();
        self.objects.insert(path, obj.clone());
        self.changed(type_, &obj);
        obj
    }
}

impl Fake {
    /// Who SelfSubjectReviews say the caller is from now on.
    pub fn set_caller(&self, user: &str) {
        self.0.lock().expect("lock").caller = Some(user.to_string());
    }

    /// Stores an object as its owner would create or replace it.
    pub fn insert<T: serde::Serialize>(&self, kind: &str, obj: &T) {
        let mut v = serde_json::to_value(obj).expect("json");
        let ns = v["metadata"]["namespace"].as_str().map(str::to_string);
        let name = v["metadata"]["name"].as_str().expect("name").to_string();
        v["apiVersion"] = api_version(kind).into();
        v["kind"] = kind.into();
        if v["metadata"].get("uid").is_none() {
            v["metadata"]["uid"] = format!("uid-{name}").into();
        }
        if v["metadata"].get("generation").is_none() {
            v["metadata"]["generation"] = 1.into();
        }
        if v["metadata"].get("creationTimestamp").is_none() {
            v["metadata"]["creationTimestamp"] = created_now();
        }
        let path = path_of(kind, ns.as_deref(), &name);
        let mut s = self.0.lock().expect("lock");
        let type_ = if s.objects.contains_key(&path) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        s.store(path, v, type_);
    }

    /// Merges `patch` into an object, as an agent or a person would (no request logged).
    pub fn merge(&self, kind: &str, ns: Option<&str>, name: &str, patch: Value) {
        let path = path_of(kind, ns, name);
        let mut s = self.0.lock().expect("lock");
        let mut obj = s.objects.get(&path).cloned().expect("the object exists");
        merge(&mut obj, &patch);
        s.store(path, obj, "MODIFIED");
    }

    /// Deletes the object at an API path, as someone else would (no request logged).
    pub fn remove_path(&self, path: &str) {
        let mut s = self.0.lock().expect("lock");
        if let Some(obj) = s.objects.remove(path) {
            s.version += 1;
            s.changed("DELETED", &obj);
        }
    }

    /// The stored object at an API path (any kind, built-in ones included).
    pub fn get_path(&self, path: &str) -> Option<Value> {
        self.0.lock().expect("lock").objects.get(path).cloned()
    }

    /// The stored object.
    pub fn get(&self, kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        let s = self.0.lock().expect("lock");
        s.objects.get(&path_of(kind, ns, name)).cloned()
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.0.lock().expect("lock").sent.clone()
    }

    pub fn writes(&self) -> Vec<Sent> {
        self.sent().into_iter().filter(Sent::is_write).collect()
    }

    /// Watches whose client is still listening.
    pub fn open_watches(&self) -> usize {
        let s = self.0.lock().expect("lock");
        s.watches.iter().filter(|w| !w.tx.is_closed()).count()
    }

    pub fn clear(&self) {
        self.0.lock().expect("lock").sent.clear();
    }

    pub fn break_path(&self, path: &str) {
        self.0.lock().expect("lock").broken.push(path.to_string());
    }

    /// Answers `method` on `path` with 403 Forbidden from now on, as RBAC refuses a verb.
    pub fn forbid(&self, method: Method, path: &str) {
        self.0
            .lock()
            .expect("lock")
            .forbidden
            .push((method, path.to_string()));
    }

    /// Answers the next `times` requests to `path` with 429 Too Many Requests.
    pub fn throttle(&self, path: &str, times: usize) {
        self.0
            .lock()
            .expect("lock")
            .throttled
            .push((path.to_string(), times));
    }

    /// Answers a path broken by [`break_path`](Self::break_path) again.
    pub fn fix_path(&self, path: &str) {
        self.0.lock().expect("lock").broken.retain(|p| p != path);
    }

    /// What the server holds for a namespace, as the stores would give it.
    pub fn objects(&self, ns: &str) -> Objects {
        let s = self.0.lock().expect("lock");
        let mut o = Objects {
            namespace: ns.to_string(),
            ..Objects::default()
        };
        let mut leases: Vec<k8s_openapi::api::coordination::v1::Lease> = Vec::new();
        for v in s.objects.values() {
            let in_ns = v["metadata"]["namespace"].as_str() == Some(ns);
            match v["kind"].as_str() {
                Some("PatchPolicy") if in_ns => o.policies.push(Arc::new(from(v))),
                Some("DeploymentRing") if in_ns => o.rings.push(Arc::new(from(v))),
                Some("PatchException") if in_ns => o.exceptions.push(Arc::new(from(v))),
                Some("ManagedDevice") if in_ns => o.devices.push(Arc::new(from(v))),
                Some("PatchRollout") if in_ns => o.rollouts.push(Arc::new(from(v))),
                Some("Patch") => o.patches.push(Arc::new(from(v))),
                Some("PatchApproval") if in_ns => o.approvals.push(Arc::new(from(v))),
                Some("PatchFreeze") if in_ns => o.freezes.push(Arc::new(from(v))),
                Some("Lease") if in_ns => leases.push(from(v)),
                _ => {}
            }
        }
        o.check_ins = Arc::new(CheckIns::from_leases(&leases));
        o
    }

    /// A client through `tower_test::mock::pair` (watches are not served).
    pub fn mock_client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = self.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let response = match fake.handle(request).await {
                    Reply::Json(code, v) => Response::builder()
                        .status(code)
                        .body(Body::from(serde_json::to_vec(&v).expect("json")))
                        .expect("response"),
                    Reply::Watch(_) => panic!("the mock client serves no watches"),
                };
                respond.send_response(response);
            }
        });
        Client::new(service, "default")
    }

    /// A client whose watches stream.
    pub fn client(&self) -> Client {
        let fake = self.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let fake = fake.clone();
            async move {
                let response: Response<BoxBody<Bytes, Infallible>> = match fake
                    .handle(request)
                    .await
                {
                    Reply::Json(code, v) => Response::builder()
                        .status(code)
                        .body(Full::new(Bytes::from(serde_json::to_vec(&v).expect("json"))).boxed())
                        .expect("response"),
                    Reply::Watch(rx) => {
                        let stream = futures::stream::unfold(rx, |mut rx| async move {
                            rx.recv().await.map(|b| (b, rx))
                        })
                        .map(|b| Ok::<_, Infallible>(Frame::data(b)));
                        Response::builder()
                            .status(StatusCode::OK)
                            .body(BodyExt::boxed(StreamBody::new(stream)))
                            .expect("response")
                    }
                };
                Ok::<_, Infallible>(response)
            }
        });
        Client::new(service, "default")
    }

    pub async fn handle(&self, request: Request<Body>) -> Reply {
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or("").to_string();
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON body")
        };
        let mut s = self.0.lock().expect("lock");
        s.sent.push(Sent {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            content_type,
            body: body.clone(),
        });
        if s.broken.contains(&path) {
            return failure(500, "InternalError");
        }
        if s.forbidden.iter().any(|(m, p)| *m == method && *p == path) {
            return failure(403, "Forbidden");
        }
        if let Some((_, left)) = s.throttled.iter_mut().find(|(p, n)| *p == path && *n > 0) {
            *left -= 1;
            return failure(429, "TooManyRequests");
        }
        if path == "/version" {
            return Reply::Json(
                StatusCode::OK,
                json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake",
                    "gitCommit": "", "gitTreeState": "clean", "buildDate": "",
                    "goVersion": "", "compiler": "gc", "platform": "linux/amd64"}),
            );
        }
        if let Some(name) =
            path.strip_prefix("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/")
        {
            let Some(crd) = ringmaster::api::crds()
                .into_iter()
                .find(|c| c.metadata.name.as_deref() == Some(name))
            else {
                return failure(404, "NotFound");
            };
            let mut v = serde_json::to_value(crd).expect("json");
            v["status"] = json!({"conditions": [{"type": "Established", "status": "True"}],
                "acceptedNames": {"kind": "", "plural": ""}, "storedVersions": ["v1alpha1"]});
            return Reply::Json(StatusCode::OK, v);
        }
        if let Some(reply) = core_v1::handle(&mut s, &method, &path, &query, &body) {
            return reply;
        }
        if path.starts_with("/apis/events.k8s.io/") {
            assert!(
                method == Method::POST || method == Method::PATCH,
                "Events are created or patched"
            );
            return Reply::Json(StatusCode::CREATED, body);
        }
        if path == "/apis/authentication.k8s.io/v1/selfsubjectreviews" {
            let user = s
                .caller
                .clone()
                .unwrap_or_else(|| "alice@example.com".into());
            let mut review = body.clone();
            review["status"] =
                json!({"userInfo": {"username": user, "groups": ["system:authenticated"]}});
            return Reply::Json(StatusCode::CREATED, review);
        }
        if builtin::serves(&path) {
            return builtin::handle(&mut s, &method, &path, &body);
        }
        let Some(target) = parse(&path) else {
            return failure(404, "NotFound");
        };
        match (method, &target.name) {
            (Method::GET, None) => {
                let watch = query
                    .split('&')
                    .any(|kv| kv == "watch=true" || kv == "watch=1");
                if watch {
                    let since: u64 = query
                        .split('&')
                        .find_map(|kv| kv.strip_prefix("resourceVersion="))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let (tx, rx) = mpsc::unbounded_channel();
                    let selector = label_selector(&query);
                    for (v, plural, ns, line) in &s.log {
                        if *v > since
                            && *plural == target.plural
                            && (target.namespace.is_none() || target.namespace == *ns)
                        {
                            let event: Value = serde_json::from_slice(line).expect("event");
                            if selected(&event["object"], selector.as_deref()) {
                                let _ = tx.send(line.clone());
                            }
                        }
                    }
                    s.watches.push(Watch {
                        plural: target.plural.clone(),
                        namespace: target.namespace.clone(),
                        selector,
                        tx,
                    });
                    return Reply::Watch(rx);
                }
                let kind = kind_of(&target.plural);
                let selector = label_selector(&query);
                let items: Vec<Value> = s
                    .objects
                    .values()
                    .filter(|v| v["kind"] == kind)
                    .filter(|v| selected(v, selector.as_deref()))
                    .filter(|v| {
                        target.namespace.is_none()
                            || v["metadata"]["namespace"].as_str() == target.namespace.as_deref()
                    })
                    .cloned()
                    .collect();
                Reply::Json(
                    StatusCode::OK,
                    json!({"kind": format!("{kind}List"), "apiVersion": api_version(kind),
                        "metadata": {"resourceVersion": s.version.to_string()}, "items": items}),
                )
            }
            (Method::GET, Some(name)) => {
                let key = path_of(kind_of(&target.plural), target.namespace.as_deref(), name);
                match s.objects.get(&key) {
                    Some(v) => Reply::Json(StatusCode::OK, v.clone()),
                    None => failure(404, "NotFound"),
                }
            }
            (Method::POST, None) => {
                let name = match (
                    body["metadata"]["name"].as_str(),
                    body["metadata"]["generateName"].as_str(),
                ) {
                    (Some(name), _) => name.to_string(),
                    (None, Some(prefix)) => {
                        s.generated += 1;
                        format!("{prefix}{:05}", s.generated)
                    }
                    (None, None) => panic!("a created object has a name or a generateName"),
                };
                let key = format!("{path}/{name}");
                if s.objects.contains_key(&key) {
                    return failure(409, "AlreadyExists");
                }
                let mut obj = body.clone();
                obj["metadata"]["name"] = name.clone().into();
                obj["metadata"]["uid"] = format!("uid-{name}").into();
                obj["metadata"]["generation"] = 1.into();
                obj["metadata"]["creationTimestamp"] = created_now();
                if let Some(o) = obj.as_object_mut() {
                    o.remove("status");
                }
                let obj = s.store(key, obj, "ADDED");
                Reply::Json(StatusCode::CREATED, obj)
            }
            (Method::PATCH, Some(name)) => {
                let key = path_of(kind_of(&target.plural), target.namespace.as_deref(), name);
                let Some(old) = s.objects.get(&key).cloned() else {
                    return failure(404, "NotFound");
                };
                // A merge patch that names a resourceVersion is a precondition.
                let sent = body["metadata"]["resourceVersion"].as_str();
                if sent.is_some_and(|v| Some(v) != old["metadata"]["resourceVersion"].as_str()) {
                    return failure(409, "Conflict");
                }
                let mut obj = old.clone();
                if target.status {
                    let mut st = obj.get("status").cloned().unwrap_or(Value::Null);
                    merge(&mut st, &body["status"]);
                    obj["status"] = st;
                } else {
                    let mut spec = obj.get("spec").cloned().unwrap_or(json!({}));
                    // A patch without `spec` leaves it alone (one of metadata only).
                    if let Some(change) = body.get("spec") {
                        merge(&mut spec, change);
                    }
                    if obj["spec"] != spec {
                        let g = obj["metadata"]["generation"].as_i64().unwrap_or(1);
                        obj["metadata"]["generation"] = (g + 1).into();
                    }
                    obj["spec"] = spec;
                    // Labels and annotations, as a person or enrollment changes them.
                    for field in ["labels", "annotations"] {
                        let change = &body["metadata"][field];
                        if !change.is_null() {
                            merge(&mut obj["metadata"][field], change);
                        }
                    }
                }
                if obj == old {
                    // A patch that changes nothing is not a change (no new version).
                    return Reply::Json(StatusCode::OK, obj);
                }
                let obj = s.store(key, obj, "MODIFIED");
                Reply::Json(StatusCode::OK, obj)
            }
            (Method::PUT, Some(name)) if target.status => {
                let key = path_of(kind_of(&target.plural), target.namespace.as_deref(), name);
                let Some(old) = s.objects.get(&key).cloned() else {
                    return failure(404, "NotFound");
                };
                // A replace names the version it read: a stale one is a conflict.
                let sent = body["metadata"]["resourceVersion"].as_str();
                if sent.is_some_and(|v| Some(v) != old["metadata"]["resourceVersion"].as_str()) {
                    return failure(409, "Conflict");
                }
                let mut obj = old.clone();
                obj["status"] = body["status"].clone();
                if obj == old {
                    return Reply::Json(StatusCode::OK, obj);
                }
                let obj = s.store(key, obj, "MODIFIED");
                Reply::Json(StatusCode::OK, obj)
            }
            (m, _) => panic!("unexpected {m} {path}"),
        }
    }
}
