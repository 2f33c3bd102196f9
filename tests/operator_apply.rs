//! The operator's writes, checked against a fake API server (no cluster): exactly which
//! requests a decision sends, and that a second pass over an unchanged world sends none.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use jiff::Timestamp;
use kube::Client;
use kube::client::Body;
use ringmaster::api::*;
use ringmaster::engine::{Decisions, Event, EventType, Kind, NewRollout, PlanChange, PlanList};
use ringmaster::operator::apply::Applier;
use ringmaster::operator::metrics::Metrics;
use ringmaster::operator::stores::Objects;
use ringmaster::operator::tenant::reconcile_objects;
use serde_json::{Value, json};

use common::*;

const BASE_PATH: &str = "/apis/patching.ringmaster.dev/v1alpha1";

/// One request the operator sent.
#[derive(Clone, Debug)]
struct Sent {
    method: Method,
    path: String,
    content_type: Option<String>,
    body: Value,
}

/// A tiny API server: objects by path, JSON merge patches, creations, Events.
#[derive(Default)]
struct FakeState {
    objects: BTreeMap<String, Value>,
    sent: Vec<Sent>,
    version: u64,
    /// Paths whose writes fail with a 500.
    broken: Vec<String>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<FakeState>>);

fn plural(kind: &str) -> &'static str {
    match kind {
        "PatchPolicy" => "patchpolicies",
        "DeploymentRing" => "deploymentrings",
        "PatchException" => "patchexceptions",
        "ManagedDevice" => "manageddevices",
        "PatchRollout" => "patchrollouts",
        "Patch" => "patches",
        other => panic!("unknown kind {other}"),
    }
}

fn path_of(kind: &str, ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!("{BASE_PATH}/namespaces/{ns}/{}/{name}", plural(kind)),
        None => format!("{BASE_PATH}/{}/{name}", plural(kind)),
    }
}

/// RFC 7386.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn status_response(code: u16, reason: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": reason, "reason": reason, "code": code});
    Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(&body).expect("json")))
        .expect("response")
}

impl Fake {
    fn insert<T: serde::Serialize>(&self, kind: &str, obj: &T) {
        let mut v = serde_json::to_value(obj).expect("json");
        let ns = v["metadata"]["namespace"].as_str().map(str::to_string);
        let name = v["metadata"]["name"].as_str().expect("name").to_string();
        let mut s = self.0.lock().expect("lock");
        s.version += 1;
        v["apiVersion"] = "patching.ringmaster.dev/v1alpha1".into();
        v["kind"] = kind.into();
        v["metadata"]["resourceVersion"] = s.version.to_string().into();
        if v["metadata"].get("uid").is_none() {
            v["metadata"]["uid"] = format!("uid-{name}").into();
        }
        s.objects.insert(path_of(kind, ns.as_deref(), &name), v);
    }

    fn sent(&self) -> Vec<Sent> {
        self.0.lock().expect("lock").sent.clone()
    }

    fn clear(&self) {
        self.0.lock().expect("lock").sent.clear();
    }

    fn break_path(&self, path: &str) {
        self.0.lock().expect("lock").broken.push(path.to_string());
    }

    /// What the server holds for a namespace, as the stores would give it.
    fn objects(&self, ns: &str) -> Objects {
        let s = self.0.lock().expect("lock");
        let mut o = Objects {
            namespace: ns.to_string(),
            ..Objects::default()
        };
        for v in s.objects.values() {
            let in_ns = v["metadata"]["namespace"].as_str() == Some(ns);
            match v["kind"].as_str() {
                Some("PatchPolicy") if in_ns => o.policies.push(Arc::new(from(v))),
                Some("DeploymentRing") if in_ns => o.rings.push(Arc::new(from(v))),
                Some("PatchException") if in_ns => o.exceptions.push(Arc::new(from(v))),
                Some("ManagedDevice") if in_ns => o.devices.push(Arc::new(from(v))),
                Some("PatchRollout") if in_ns => o.rollouts.push(Arc::new(from(v))),
                Some("Patch") => o.patches.push(Arc::new(from(v))),
                _ => {}
            }
        }
        o
    }

    fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = self.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let response = fake.handle(request).await;
                respond.send_response(response);
            }
        });
        Client::new(service, "default")
    }

    async fn handle(&self, request: Request<Body>) -> Response<Body> {
        let method = request.method().clone();
        let path = request.uri().path().to_string();
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
            content_type,
            body: body.clone(),
        });
        if s.broken.contains(&path) {
            return status_response(500, "InternalError");
        }
        s.version += 1;
        let version = s.version.to_string();
        let respond = |code: StatusCode, v: &Value| {
            Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(v).expect("json")))
                .expect("response")
        };
        if path.starts_with("/apis/events.k8s.io/") {
            assert_eq!(method, Method::POST, "Events are created");
            return respond(StatusCode::CREATED, &body);
        }
        match method {
            Method::POST => {
                let name = body["metadata"]["name"].as_str().expect("name");
                let full = format!("{path}/{name}");
                if s.objects.contains_key(&full) {
                    return status_response(409, "AlreadyExists");
                }
                let mut obj = body.clone();
                obj["metadata"]["resourceVersion"] = version.into();
                obj["metadata"]["uid"] = format!("uid-{name}").into();
                obj["metadata"]["generation"] = 1.into();
                if let Some(o) = obj.as_object_mut() {
                    o.remove("status");
                }
                s.objects.insert(full, obj.clone());
                respond(StatusCode::CREATED, &obj)
            }
            Method::PATCH => {
                let (key, status) = match path.strip_suffix("/status") {
                    Some(k) => (k.to_string(), true),
                    None => (path.clone(), false),
                };
                let Some(obj) = s.objects.get_mut(&key) else {
                    return status_response(404, "NotFound");
                };
                if status {
                    let mut st = obj.get("status").cloned().unwrap_or(Value::Null);
                    merge(&mut st, &body["status"]);
                    obj["status"] = st;
                } else {
                    let mut spec = obj.get("spec").cloned().unwrap_or(json!({}));
                    merge(&mut spec, &body["spec"]);
                    if obj["spec"] != spec {
                        let g = obj["metadata"]["generation"].as_i64().unwrap_or(1);
                        obj["metadata"]["generation"] = (g + 1).into();
                    }
                    obj["spec"] = spec;
                }
                obj["metadata"]["resourceVersion"] = version.into();
                let obj = obj.clone();
                respond(StatusCode::OK, &obj)
            }
            other => panic!("unexpected {other} {path}"),
        }
    }
}

fn from<T: serde::de::DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).expect("a valid object")
}

fn applier(fake: &Fake) -> (Applier, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    (
        Applier::new(fake.client(), Arc::clone(&metrics), Some("test-pod".into())),
        metrics,
    )
}

fn entry(rollout: &str, at: &str) -> PlanEntry {
    PlanEntry {
        rollout: rollout.into(),
        not_before: ts(at),
        not_after: None,
        deadline: Some(ts("2026-11-12T18:00:00Z")),
    }
}

/// The tenant of tests/common (policy `ws`, rings `it` and `pilot`, patch KB1) with
/// three devices in ring `it` and two in `pilot`, stored in a fake API server.
fn tenant(fake: &Fake) {
    let yaml = format!(
        "{BASE}{}{}",
        devices("it", "it", "tier-1", 3, "2026-11-11T00:00:00Z"),
        devices("pc", "pilot", "tier-2", 2, "2026-11-11T00:00:00Z")
    );
    let w = world(&yaml);
    for p in w.policies.values() {
        fake.insert("PatchPolicy", p);
    }
    for r in w.rings.values() {
        fake.insert("DeploymentRing", r);
    }
    for d in w.devices.values() {
        fake.insert("ManagedDevice", d);
    }
    for p in w.patches.values() {
        fake.insert("Patch", p);
    }
}

fn device(name: &str, install: &[(&str, PlanEntry)]) -> ManagedDevice {
    let mut d = ManagedDevice::new(name, ManagedDeviceSpec::default());
    d.metadata.namespace = Some("acme".into());
    for (id, e) in install {
        d.spec.plan.install.insert(id.to_string(), e.clone());
    }
    d
}

const DEVICE_PATH: &str =
    "/apis/patching.ringmaster.dev/v1alpha1/namespaces/acme/manageddevices/ws-1";

#[tokio::test]
async fn an_admission_sends_one_merge_patch_with_only_that_plan_key() {
    let fake = Fake::default();
    fake.insert(
        "ManagedDevice",
        &device("ws-1", &[("KB0", entry("ws.kb0", "2026-11-01T00:00:00Z"))]),
    );
    let (applier, metrics) = applier(&fake);
    let d = Decisions {
        plan: vec![PlanChange {
            device: "ws-1".into(),
            list: PlanList::Install,
            patch: "KB1".into(),
            entry: Some(entry("ws.kb1", "2026-11-11T00:00:00Z")),
        }],
        ..Decisions::default()
    };
    let applied = applier.apply(&fake.objects("acme"), &d).await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].method, Method::PATCH);
    assert_eq!(sent[0].path, DEVICE_PATH);
    assert_eq!(
        sent[0].content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(
        sent[0].body,
        json!({"spec": {"plan": {"install": {"KB1": {
            "rollout": "ws.kb1",
            "notBefore": "2026-11-11T00:00:00Z",
            "deadline": "2026-11-12T18:00:00Z"
        }}}}})
    );
    assert_eq!(applied.writes, 1);
    assert!(applied.failures.is_empty());
    assert_eq!(metrics.writes_total(), 1);
}

#[tokio::test]
async fn a_removal_sends_null_for_its_key_and_a_changed_entry_only_what_changed() {
    let fake = Fake::default();
    let mut windowed = entry("ws.kb2", "2026-11-01T22:00:00Z");
    windowed.not_after = Some(ts("2026-11-02T04:00:00Z"));
    fake.insert(
        "ManagedDevice",
        &device(
            "ws-1",
            &[
                ("KB1", entry("ws.kb1", "2026-11-01T00:00:00Z")),
                ("KB2", windowed),
            ],
        ),
    );
    let (applier, _) = applier(&fake);
    let d = Decisions {
        plan: vec![
            PlanChange {
                device: "ws-1".into(),
                list: PlanList::Install,
                patch: "KB1".into(),
                entry: None,
            },
            // Renewed in the next window: only notBefore changes, and notAfter goes.
            PlanChange {
                device: "ws-1".into(),
                list: PlanList::Install,
                patch: "KB2".into(),
                entry: Some(entry("ws.kb2", "2026-11-02T22:00:00Z")),
            },
            // Removing a key the device does not have sends nothing.
            PlanChange {
                device: "ws-1".into(),
                list: PlanList::Uninstall,
                patch: "KB3".into(),
                entry: None,
            },
        ],
        ..Decisions::default()
    };
    applier.apply(&fake.objects("acme"), &d).await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 1, "one patch per device: {sent:#?}");
    assert_eq!(
        sent[0].body,
        json!({"spec": {"plan": {"install": {
            "KB1": null,
            "KB2": {"notBefore": "2026-11-02T22:00:00Z", "notAfter": null}
        }}}})
    );
    let after = fake.objects("acme");
    let plan = &after.devices[0].spec.plan;
    assert_eq!(plan.install.len(), 1);
    assert_eq!(plan.install["KB2"], entry("ws.kb2", "2026-11-02T22:00:00Z"));
}

fn policy() -> PatchPolicy {
    let w = world(BASE);
    let mut p = w.policies["ws"].clone();
    p.metadata.uid = Some("policy-uid".into());
    p
}

fn new_rollout_decisions() -> Decisions {
    Decisions {
        new_rollouts: vec![NewRollout {
            name: "ws.kb1".into(),
            spec: PatchRolloutSpec {
                policy: "ws".into(),
                patch: "KB1".into(),
                paused: false,
                promote: vec![],
                abort: false,
            },
        }],
        rollouts: vec![(
            "ws.kb1".into(),
            PatchRolloutStatus {
                observed_generation: Some(1),
                phase: Some(RolloutPhase::Progressing),
                current_ring: Some("it".into()),
                ..PatchRolloutStatus::default()
            },
        )],
        ..Decisions::default()
    }
}

#[tokio::test]
async fn a_new_rollout_is_created_owned_by_its_policy_and_then_given_its_status() {
    let fake = Fake::default();
    fake.insert("PatchPolicy", &policy());
    let (applier, _) = applier(&fake);
    let applied = applier
        .apply(&fake.objects("acme"), &new_rollout_decisions())
        .await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_eq!(sent[0].method, Method::POST);
    assert_eq!(
        sent[0].path,
        "/apis/patching.ringmaster.dev/v1alpha1/namespaces/acme/patchrollouts"
    );
    assert_eq!(sent[0].body["metadata"]["name"], "ws.kb1");
    assert_eq!(
        sent[0].body["metadata"]["ownerReferences"],
        json!([{
            "apiVersion": "patching.ringmaster.dev/v1alpha1",
            "kind": "PatchPolicy",
            "name": "ws",
            "uid": "policy-uid",
            "controller": true,
            "blockOwnerDeletion": true
        }])
    );
    assert_eq!(sent[0].body["spec"]["patch"], "KB1");
    assert_eq!(sent[1].method, Method::PATCH);
    assert_eq!(
        sent[1].path,
        "/apis/patching.ringmaster.dev/v1alpha1/namespaces/acme/patchrollouts/ws.kb1/status"
    );
    assert_eq!(
        sent[1].body,
        json!({"status": {"observedGeneration": 1, "phase": "Progressing", "currentRing": "it"}})
    );
    assert_eq!(applied.writes, 2);
    assert_eq!(applied.written.len(), 2, "both writes are waited for");
}

#[tokio::test]
async fn a_rollout_that_already_exists_is_not_an_error() {
    let fake = Fake::default();
    fake.insert("PatchPolicy", &policy());
    let (applier, _) = applier(&fake);
    // The store has not seen it yet, but the server has it.
    let objects = fake.objects("acme");
    let mut existing = PatchRollout::new(
        "ws.kb1",
        new_rollout_decisions().new_rollouts[0].spec.clone(),
    );
    existing.metadata.namespace = Some("acme".into());
    fake.insert("PatchRollout", &existing);
    let applied = applier.apply(&objects, &new_rollout_decisions()).await;
    assert!(applied.failures.is_empty(), "{:?}", applied.failures);
    let sent = fake.sent();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert!(sent[1].path.ends_with("/patchrollouts/ws.kb1/status"));
}

#[tokio::test]
async fn an_unchanged_status_sends_nothing_and_a_changed_one_only_its_difference() {
    let fake = Fake::default();
    let mut p = policy();
    let status = PatchPolicyStatus {
        observed_generation: Some(1),
        message: Some("5 devices".into()),
        freeze: Some("year-end".into()),
        devices: 5,
        ..PatchPolicyStatus::default()
    };
    p.status = Some(status.clone());
    fake.insert("PatchPolicy", &p);
    let (applier, metrics) = applier(&fake);

    let same = Decisions {
        policies: vec![("ws".into(), status.clone())],
        ..Decisions::default()
    };
    let applied = applier.apply(&fake.objects("acme"), &same).await;
    assert!(fake.sent().is_empty(), "{:#?}", fake.sent());
    assert_eq!(applied.writes, 0);
    assert_eq!(metrics.writes_total(), 0);

    let changed = Decisions {
        policies: vec![(
            "ws".into(),
            PatchPolicyStatus {
                devices: 6,
                freeze: None,
                ..status
            },
        )],
        ..Decisions::default()
    };
    applier.apply(&fake.objects("acme"), &changed).await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, Method::PATCH);
    assert_eq!(
        sent[0].path,
        "/apis/patching.ringmaster.dev/v1alpha1/namespaces/acme/patchpolicies/ws/status"
    );
    assert_eq!(
        sent[0].body,
        json!({"status": {"devices": 6, "freeze": null}})
    );
}

#[tokio::test]
async fn device_compliance_is_patched_on_status_alone() {
    let fake = Fake::default();
    fake.insert("ManagedDevice", &device("ws-1", &[]));
    let (applier, _) = applier(&fake);
    let compliance = DeviceCompliance {
        policy: Some("ws".into()),
        ring: Some("it".into()),
        planned: 1,
        ..DeviceCompliance::default()
    };
    let d = Decisions {
        devices: vec![("ws-1".into(), compliance.clone())],
        ..Decisions::default()
    };
    applier.apply(&fake.objects("acme"), &d).await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, format!("{DEVICE_PATH}/status"));
    assert_eq!(
        sent[0].body,
        json!({"status": {"compliance": {"policy": "ws", "ring": "it", "overdue": 0, "dueSoon": 0, "planned": 1}}})
    );
    fake.clear();
    applier.apply(&fake.objects("acme"), &d).await;
    assert!(
        fake.sent().is_empty(),
        "equal compliance is not written again"
    );
}

#[tokio::test]
async fn events_are_created_in_events_k8s_io_about_their_object() {
    let fake = Fake::default();
    fake.insert("PatchPolicy", &policy());
    let (applier, metrics) = applier(&fake);
    let d = Decisions {
        events: vec![Event {
            kind: Kind::PatchPolicy,
            name: "ws".into(),
            type_: EventType::Warning,
            reason: "SLABreached",
            message: "2 device-patch pair(s) are past their SLA deadline (was 0)".into(),
        }],
        ..Decisions::default()
    };
    applier.apply(&fake.objects("acme"), &d).await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].method, Method::POST);
    assert_eq!(
        sent[0].path,
        "/apis/events.k8s.io/v1/namespaces/acme/events"
    );
    let ev = &sent[0].body;
    assert_eq!(ev["reportingController"], "ringmaster.dev/operator");
    assert_eq!(ev["reportingInstance"], "test-pod");
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["reason"], "SLABreached");
    assert_eq!(ev["action"], "SLABreached");
    assert_eq!(
        ev["note"],
        "2 device-patch pair(s) are past their SLA deadline (was 0)"
    );
    assert_eq!(
        ev["regarding"],
        json!({
            "apiVersion": "patching.ringmaster.dev/v1alpha1",
            "kind": "PatchPolicy",
            "name": "ws",
            "namespace": "acme",
            "uid": "policy-uid"
        })
    );
    assert_eq!(metrics.writes_total(), 1);
}

#[tokio::test]
async fn a_failed_write_does_not_stop_the_others_and_is_reported() {
    let fake = Fake::default();
    fake.insert("ManagedDevice", &device("ws-1", &[]));
    fake.insert("ManagedDevice", &device("ws-2", &[]));
    fake.break_path(DEVICE_PATH);
    let (applier, _) = applier(&fake);
    let change = |dev: &str| PlanChange {
        device: dev.into(),
        list: PlanList::Install,
        patch: "KB1".into(),
        entry: Some(entry("ws.kb1", "2026-11-11T00:00:00Z")),
    };
    let d = Decisions {
        plan: vec![change("ws-1"), change("ws-2")],
        ..Decisions::default()
    };
    let applied = applier.apply(&fake.objects("acme"), &d).await;
    assert_eq!(applied.writes, 2);
    assert_eq!(applied.failures.len(), 1, "{:?}", applied.failures);
    assert!(applied.failures[0].contains("ManagedDevice acme/ws-1"));
    assert_eq!(applied.written.len(), 1);
    assert_eq!(applied.written[0].name, "ws-2");
}

#[tokio::test]
async fn catalog_statuses_are_written_once() {
    let fake = Fake::default();
    tenant(&fake);
    let (applier, _) = applier(&fake);
    let applied = applier.apply_catalog(&fake.objects("acme").patches).await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].path,
        "/apis/patching.ringmaster.dev/v1alpha1/patches/kb1/status"
    );
    assert_eq!(
        sent[0].body,
        json!({"status": {"firstReleasedAt": "2026-11-10T18:00:00Z", "severity": "Critical"}})
    );
    assert_eq!(applied.writes, 1);
    fake.clear();
    applier.apply_catalog(&fake.objects("acme").patches).await;
    assert!(fake.sent().is_empty());
}

#[tokio::test]
async fn a_full_reconcile_writes_the_first_time_and_nothing_the_second() {
    let fake = Fake::default();
    tenant(&fake);
    let (applier, metrics) = applier(&fake);
    let now: Timestamp = ts("2026-11-11T00:00:00Z");

    let pass = reconcile_objects(&applier, fake.objects("acme"), now)
        .await
        .expect("first pass");
    assert!(
        pass.applied.failures.is_empty(),
        "{:?}",
        pass.applied.failures
    );
    let sent = fake.sent();
    let count = |method: Method, suffix: &str| {
        sent.iter()
            .filter(|s| s.method == method && s.path.ends_with(suffix))
            .count()
    };
    assert_eq!(count(Method::POST, "/patchrollouts"), 1, "the rollout");
    let plan_patches: Vec<&Sent> = sent
        .iter()
        .filter(|s| {
            s.method == Method::PATCH
                && s.path.contains("/manageddevices/")
                && !s.path.ends_with("/status")
        })
        .collect();
    assert_eq!(plan_patches.len(), 2, "maxConcurrent 2 of ring it");
    for p in &plan_patches {
        let install = p.body["spec"]["plan"]["install"]
            .as_object()
            .expect("install");
        assert_eq!(install.keys().collect::<Vec<_>>(), vec!["KB1"]);
    }
    assert_eq!(count(Method::PATCH, "/patchrollouts/ws.kb1/status"), 1);
    assert_eq!(count(Method::PATCH, "/patchpolicies/ws/status"), 1);
    assert_eq!(
        sent.iter()
            .filter(|s| s.path.contains("/deploymentrings/"))
            .count(),
        2
    );
    assert_eq!(
        sent.iter()
            .filter(|s| s.path.ends_with("/status") && s.path.contains("/manageddevices/"))
            .count(),
        5,
        "every device gets its compliance"
    );
    assert!(
        count(Method::POST, "/events") >= 1,
        "PatchApproved at least"
    );
    let first = metrics.writes_total();
    assert_eq!(first, sent.len() as u64);
    assert_eq!(pass.applied.writes, first);

    // The world as the server now has it: nothing to do.
    fake.clear();
    let pass = reconcile_objects(&applier, fake.objects("acme"), now)
        .await
        .expect("second pass");
    assert!(fake.sent().is_empty(), "steady state: {:#?}", fake.sent());
    assert_eq!(pass.applied.writes, 0);
    assert!(pass.decisions.events.is_empty());
    assert_eq!(metrics.writes_total(), first);

    // Nor a minute later: statuses hold no relative times.
    let later = ts("2026-11-11T00:01:00Z");
    reconcile_objects(&applier, fake.objects("acme"), later)
        .await
        .expect("third pass");
    assert!(fake.sent().is_empty(), "{:#?}", fake.sent());
}
