//! The operator's writes, checked against a fake API server (no cluster): exactly which
//! requests a decision sends, and that a second pass over an unchanged world sends none.

use std::sync::Arc;

use http::Method;
use jiff::Timestamp;
use ringmaster::api::*;
use ringmaster::engine::{Decisions, Event, EventType, Kind, NewRollout, PlanChange, PlanList};
use ringmaster::operator::apply::Applier;
use ringmaster::operator::metrics::Metrics;
use ringmaster::operator::tenant::reconcile_objects;
use serde_json::json;

use crate::common::*;
use crate::fake_api::{Fake, Sent};

fn applier(fake: &Fake) -> (Applier, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    (
        Applier::new(
            fake.mock_client(),
            Arc::clone(&metrics),
            Some("test-pod".into()),
        ),
        metrics,
    )
}

fn entry(rollout: &str, at: &str) -> PlanEntry {
    PlanEntry {
        rollout: rollout.into(),
        not_before: ts(at),
        not_after: None,
        deadline: Some(ts("2026-11-12T18:00:00Z")),
        attempt: None,
        basis: None,
        answer_by: None,
    }
}

/// The tenant of tests/it/common (policy `ws`, rings `it` and `pilot`, patch KB1) with
/// three devices in ring `it` and two in `pilot`, stored in a fake API server.
fn tenant(fake: &Fake) {
    store(fake, &tenant_world());
}

/// The world of [`tenant`]: three devices in ring `it`, two in `pilot`.
fn tenant_world() -> ringmaster::sim::World {
    let yaml = format!(
        "{BASE}{}{}",
        devices("it", "it", "tier-1", 3, "2026-11-11T00:00:00Z"),
        devices("pc", "pilot", "tier-2", 2, "2026-11-11T00:00:00Z")
    );
    world(&yaml)
}

/// Stores a world's policies, rings, devices and patches in the fake API server.
fn store(fake: &Fake, w: &ringmaster::sim::World) {
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
                paused_rings: vec![],
                promote: vec![],
                abort: false,
            },
        }],
        rollouts: vec![(
            "ws.kb1".into(),
            std::sync::Arc::new(PatchRolloutStatus {
                observed_generation: Some(1),
                phase: Some(RolloutPhase::Progressing),
                current_ring: Some("it".into()),
                ..PatchRolloutStatus::default()
            }),
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
        overdue: 1,
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
        json!({"status": {"compliance": {"policy": "ws", "ring": "it", "overdue": 1, "dueSoon": 0}}})
    );
    fake.clear();
    applier.apply(&fake.objects("acme"), &d).await;
    assert!(
        fake.sent().is_empty(),
        "equal compliance is not written again"
    );
}

/// Priority and fairness turning a write away (429) delays it; it is not lost.
#[tokio::test(start_paused = true)]
async fn a_throttled_write_is_sent_again_after_a_pause() {
    let fake = Fake::default();
    fake.insert("ManagedDevice", &device("ws-1", &[]));
    fake.throttle(&format!("{DEVICE_PATH}/status"), 2);
    let (applier, metrics) = applier(&fake);
    let d = Decisions {
        devices: vec![(
            "ws-1".into(),
            DeviceCompliance {
                overdue: 2,
                ..DeviceCompliance::default()
            },
        )],
        ..Decisions::default()
    };
    let applied = applier.apply(&fake.objects("acme"), &d).await;
    assert!(applied.failures.is_empty(), "{:?}", applied.failures);
    assert_eq!(fake.sent().len(), 3, "twice turned away, then written");
    let stored = fake
        .get("ManagedDevice", Some("acme"), "ws-1")
        .expect("the device");
    assert_eq!(stored["status"]["compliance"]["overdue"], 2);
    assert!(
        metrics
            .encode()
            .contains("ringmaster_api_throttled_total 2")
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
            reason: ringmaster::engine::Reason::SLABreached,
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
    assert!(
        applied.failures[0]
            .to_string()
            .contains("ManagedDevice acme/ws-1")
    );
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

/// The request an API server would get for a write (Events aside).
fn request_of(w: &ringmaster::engine::writes::Write) -> Option<(Method, String)> {
    use ringmaster::engine::writes::Write;
    let at = |kind: &str, name: &str| crate::fake_api::path_of(kind, Some("acme"), name);
    Some(match w {
        Write::CreateRollout(_) => (
            Method::POST,
            format!(
                "{}/namespaces/acme/patchrollouts",
                crate::fake_api::GROUP_PATH
            ),
        ),
        Write::RolloutStatus(n, _) => (Method::PATCH, at("PatchRollout", n) + "/status"),
        Write::PolicyStatus(n, _) => (Method::PATCH, at("PatchPolicy", n) + "/status"),
        Write::RingStatus(n, _) => (Method::PATCH, at("DeploymentRing", n) + "/status"),
        Write::ExceptionStatus(n, _) => (Method::PATCH, at("PatchException", n) + "/status"),
        Write::Plan(n, _) => (Method::PATCH, at("ManagedDevice", n)),
        Write::Compliance(n, _) => (Method::PATCH, at("ManagedDevice", n) + "/status"),
        Write::Event(_) => return None,
    })
}

/// What an object holds that the writes change: its spec and status, as JSON.
fn written_parts<T: serde::Serialize>(obj: &T) -> serde_json::Value {
    let v = serde_json::to_value(obj).expect("json");
    json!({"spec": v["spec"], "status": v["status"]})
}

/// One scenario played through the simulator's world and through the operator against
/// the fake API server: each step's decisions produce the same requests and leave both
/// holding the same objects.
#[tokio::test]
async fn the_simulator_and_the_operator_write_the_same() {
    let mut w = tenant_world();
    for p in w.policies.values_mut() {
        p.metadata.uid = Some(format!(
            "uid-{}",
            p.metadata.name.clone().unwrap_or_default()
        ));
    }
    let fake = Fake::default();
    store(&fake, &w);
    let (applier, _) = applier(&fake);
    let steps = [
        ("2026-11-11T00:00:00Z", &[][..]),
        ("2026-11-11T01:00:00Z", &["it-1"][..]),
        ("2026-11-11T02:00:00Z", &[][..]),
        ("2026-11-12T02:00:00Z", &[][..]),
    ];
    let mut total = 0;
    for (at, fail) in steps {
        let now = ts(at);
        for d in agents_install(&mut w, "KB1", now, fail) {
            let status = serde_json::to_value(&w.devices[&d].status).expect("json");
            fake.merge(
                "ManagedDevice",
                Some("acme"),
                &d,
                json!({ "status": status }),
            );
        }
        w.record_patch_releases();
        let decisions = ringmaster::engine::decide(&w.snapshot(), now);
        let planned = ringmaster::engine::writes::writes(&w, &decisions);
        w.apply(&decisions, now);
        fake.clear();
        let applied = applier.apply(&fake.objects("acme"), &decisions).await;
        assert!(applied.failures.is_empty(), "{:?}", applied.failures);

        let mut expected: Vec<(Method, String)> = planned.iter().filter_map(request_of).collect();
        let mut sent: Vec<(Method, String)> = fake
            .writes()
            .into_iter()
            .filter(|s| !s.path.starts_with("/apis/events.k8s.io/"))
            .map(|s| (s.method, s.path))
            .collect();
        expected.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
        sent.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
        assert_eq!(sent, expected, "at {at}");
        let events = planned
            .iter()
            .filter(|w| matches!(w, ringmaster::engine::writes::Write::Event(_)))
            .count();
        let event_posts = fake
            .writes()
            .iter()
            .filter(|s| s.path.starts_with("/apis/events.k8s.io/"))
            .count();
        assert_eq!(event_posts, events, "Events at {at}");
        total += expected.len();

        for (name, d) in &w.devices {
            let held = fake
                .get("ManagedDevice", Some("acme"), name)
                .expect("device");
            assert_eq!(
                json!({"spec": held["spec"], "status": held["status"]}),
                written_parts(d),
                "device {name} at {at}"
            );
        }
        for (name, r) in &w.rollouts {
            let held = fake
                .get("PatchRollout", Some("acme"), name)
                .expect("rollout");
            assert_eq!(
                held["status"],
                written_parts(r)["status"],
                "rollout {name} at {at}"
            );
        }
        for (name, p) in &w.policies {
            let held = fake.get("PatchPolicy", Some("acme"), name).expect("policy");
            assert_eq!(
                held["status"],
                written_parts(p)["status"],
                "policy {name} at {at}"
            );
        }
        for (name, r) in &w.rings {
            let held = fake
                .get("DeploymentRing", Some("acme"), name)
                .expect("ring");
            assert_eq!(
                held["status"],
                written_parts(r)["status"],
                "ring {name} at {at}"
            );
        }
    }
    assert!(total > 10, "the scenario writes something: {total}");
}
