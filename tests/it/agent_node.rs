//! Node mode against the fake API server: cordon and drain before a reboot (through the
//! Eviction API, skipping DaemonSet, mirror and finished pods, retrying a
//! PodDisruptionBudget's refusal until the time limit), and uncordon only the agent's own
//! cordon, across restarts. Time is paused: the waits between rounds pass at once.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use kube::Client;
use kube::client::Body;
use ringmaster::agent::linux::node::{
    CORDONED_BY, Cordon, DEFAULT_AGENT, NodeError, NodeGuard, Pacing, PodRef, Released, SkipReason,
    StuckReason,
};
use serde_json::{Value, json};

use crate::fake_api::{Fake, OnEvict, Reply};

const NODE: &str = "worker-1";

fn node(name: &str, unschedulable: bool, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": annotations, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"unschedulable": unschedulable, "podCIDR": "10.244.1.0/24"}
    })
}

fn owner(kind: &str, name: &str) -> Value {
    let api = if kind == "ReplicaSet" || kind == "StatefulSet" || kind == "DaemonSet" {
        "apps/v1"
    } else {
        "batch/v1"
    };
    json!([{"apiVersion": api, "kind": kind, "name": name, "uid": format!("uid-{name}"), "controller": true}])
}

fn pod(ns: &str, name: &str, on: &str, owners: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "ownerReferences": owners},
        "spec": {"nodeName": on, "containers": [{"name": "main", "image": "example/app:1"}]},
        "status": {"phase": "Running"}
    })
}

/// A node with everything a drain meets: two pods to evict (a ReplicaSet's, a
/// StatefulSet's), one bare pod, a DaemonSet's pod (the agent), a static pod's mirror, a
/// finished Job's pod, and a pod on another node.
fn cluster() -> Fake {
    let fake = Fake::default();
    fake.insert_core(node(NODE, false, json!({})));
    fake.insert_core(node("worker-2", false, json!({})));
    fake.insert_core(pod(
        "shop",
        "web-5d9-abcde",
        NODE,
        owner("ReplicaSet", "web-5d9"),
    ));
    fake.insert_core(pod("shop", "db-0", NODE, owner("StatefulSet", "db")));
    fake.insert_core(pod("lab", "scratch", NODE, json!([])));
    fake.insert_core(pod(
        "ringmaster-system",
        "ringmaster-node-agent-x7k2p",
        NODE,
        owner("DaemonSet", "ringmaster-node-agent"),
    ));
    let mut mirror = pod("kube-system", "kube-proxy-worker-1", NODE, json!([]));
    mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "3f1c"});
    fake.insert_core(mirror);
    let mut done = pod(
        "batch",
        "report-29170-q8x",
        NODE,
        owner("Job", "report-29170"),
    );
    done["status"]["phase"] = json!("Succeeded");
    fake.insert_core(done);
    fake.insert_core(pod(
        "shop",
        "web-5d9-zzzzz",
        "worker-2",
        owner("ReplicaSet", "web-5d9"),
    ));
    fake
}

fn guard(fake: &Fake) -> NodeGuard {
    NodeGuard::new(fake.mock_client(), DEFAULT_AGENT).with_pacing(Pacing {
        first: Duration::from_secs(1),
        max: Duration::from_secs(8),
    })
}

fn pod_ref(ns: &str, name: &str) -> PodRef {
    PodRef {
        namespace: ns.into(),
        name: name.into(),
    }
}

fn evictions(fake: &Fake) -> Vec<String> {
    fake.sent()
        .into_iter()
        .filter(|s| s.method == Method::POST && s.path.ends_with("/eviction"))
        .map(|s| s.path)
        .collect()
}

fn eviction_path(ns: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{ns}/pods/{name}/eviction")
}

fn node_writes(fake: &Fake) -> usize {
    fake.writes()
        .iter()
        .filter(|s| s.path.starts_with("/api/v1/nodes/"))
        .count()
}

fn cordoned_by(fake: &Fake, name: &str) -> Option<String> {
    let n = fake.node(name).expect("the node");
    n["metadata"]["annotations"][CORDONED_BY]
        .as_str()
        .map(str::to_string)
}

fn unschedulable(fake: &Fake, name: &str) -> bool {
    let n = fake.node(name).expect("the node");
    n["spec"]["unschedulable"].as_bool().unwrap_or(false)
}

#[tokio::test(start_paused = true)]
async fn prepare_cordons_and_evicts_the_right_pods() {
    let fake = cluster();
    let prepared = guard(&fake)
        .prepare(NODE, Duration::from_secs(300))
        .await
        .expect("the node drains");

    assert_eq!(prepared.cordon, Cordon::Placed);
    assert!(unschedulable(&fake, NODE));
    assert_eq!(cordoned_by(&fake, NODE).as_deref(), Some(DEFAULT_AGENT));
    assert_eq!(
        prepared.evicted,
        vec![
            pod_ref("lab", "scratch"),
            pod_ref("shop", "db-0"),
            pod_ref("shop", "web-5d9-abcde")
        ]
    );
    assert_eq!(
        prepared.skipped,
        vec![
            (pod_ref("batch", "report-29170-q8x"), SkipReason::Finished),
            (
                pod_ref("kube-system", "kube-proxy-worker-1"),
                SkipReason::Mirror
            ),
            (
                pod_ref("ringmaster-system", "ringmaster-node-agent-x7k2p"),
                SkipReason::DaemonSet
            ),
        ]
    );
    // Exactly one eviction per evicted pod, and none of anything else.
    let mut sent = evictions(&fake);
    sent.sort();
    assert_eq!(
        sent,
        vec![
            eviction_path("lab", "scratch"),
            eviction_path("shop", "db-0"),
            eviction_path("shop", "web-5d9-abcde"),
        ]
    );
    for (ns, name) in [
        ("ringmaster-system", "ringmaster-node-agent-x7k2p"),
        ("kube-system", "kube-proxy-worker-1"),
        ("batch", "report-29170-q8x"),
        ("shop", "web-5d9-zzzzz"),
    ] {
        assert!(fake.pod(ns, name).is_some(), "{ns}/{name} stays");
    }
    // The other node is not touched.
    assert!(!unschedulable(&fake, "worker-2"));
    assert_eq!(cordoned_by(&fake, "worker-2"), None);
}

#[tokio::test(start_paused = true)]
async fn a_disruption_budget_refusal_is_retried_until_the_pod_may_go() {
    let fake = cluster();
    fake.on_evict("shop", "db-0", OnEvict::Refuse { times: Some(3) });
    let prepared = guard(&fake)
        .prepare(NODE, Duration::from_secs(300))
        .await
        .expect("the budget yields on the fourth try");
    assert!(prepared.evicted.contains(&pod_ref("shop", "db-0")));
    assert!(fake.pod("shop", "db-0").is_none());
    let tries = evictions(&fake)
        .iter()
        .filter(|p| **p == eviction_path("shop", "db-0"))
        .count();
    assert_eq!(tries, 4, "three refusals, then the eviction");
}

#[tokio::test(start_paused = true)]
async fn a_budget_that_never_yields_times_out_naming_the_pod_and_uncordons() {
    let fake = cluster();
    fake.on_evict("shop", "db-0", OnEvict::Refuse { times: None });
    let started = tokio::time::Instant::now();
    let err = guard(&fake)
        .prepare(NODE, Duration::from_secs(60))
        .await
        .expect_err("the budget never yields");
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(60),
        "it tries until the limit"
    );
    let NodeError::DrainTimedOut {
        node,
        limit,
        stuck,
        uncordoned,
    } = &err
    else {
        panic!("not a timeout: {err}");
    };
    assert_eq!(node, NODE);
    assert_eq!(*limit, Duration::from_secs(60));
    assert_eq!(stuck.len(), 1, "{err}");
    assert_eq!(stuck[0].pod, pod_ref("shop", "db-0"));
    assert!(
        matches!(&stuck[0].reason, StuckReason::EvictionRefused { message } if message.contains("disruption budget")),
        "{err}"
    );
    assert!(err.to_string().contains("shop/db-0"), "{err}");
    // The node will not reboot: its cordon (ours) is off again, the annotation gone.
    assert!(*uncordoned);
    assert!(!unschedulable(&fake, NODE));
    assert_eq!(cordoned_by(&fake, NODE), None);
    // The other pods were evicted all the same, and the refused one tried again and again.
    assert!(fake.pod("shop", "web-5d9-abcde").is_none());
    let tries = evictions(&fake)
        .iter()
        .filter(|p| **p == eviction_path("shop", "db-0"))
        .count();
    assert!(tries >= 5, "retried with back-off: {tries} tries in 60s");
    assert!(
        tries <= 20,
        "with back-off, not a busy loop: {tries} tries in 60s"
    );
}

#[tokio::test(start_paused = true)]
async fn evicted_pods_are_waited_for_until_they_are_gone() {
    let fake = cluster();
    fake.on_evict("shop", "db-0", OnEvict::Terminate);
    let kubelet = {
        let fake = fake.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(20)).await;
            fake.remove_pod("shop", "db-0");
        })
    };
    let started = tokio::time::Instant::now();
    let prepared = guard(&fake)
        .prepare(NODE, Duration::from_secs(300))
        .await
        .expect("the pod stops after 20s");
    assert!(
        started.elapsed() >= Duration::from_secs(20),
        "it waited for the pod"
    );
    assert!(prepared.evicted.contains(&pod_ref("shop", "db-0")));
    // Terminating, it was not evicted a second time.
    let tries = evictions(&fake)
        .iter()
        .filter(|p| **p == eviction_path("shop", "db-0"))
        .count();
    assert_eq!(tries, 1);
    kubelet.await.expect("the kubelet task");
}

#[tokio::test(start_paused = true)]
async fn a_pod_that_never_stops_times_out_as_terminating() {
    let fake = cluster();
    fake.on_evict("shop", "web-5d9-abcde", OnEvict::Terminate);
    let err = guard(&fake)
        .prepare(NODE, Duration::from_secs(30))
        .await
        .expect_err("the pod never stops");
    let NodeError::DrainTimedOut { stuck, .. } = &err else {
        panic!("not a timeout: {err}");
    };
    assert_eq!(stuck.len(), 1, "{err}");
    assert_eq!(stuck[0].pod, pod_ref("shop", "web-5d9-abcde"));
    assert_eq!(stuck[0].reason, StuckReason::Terminating);
}

#[tokio::test(start_paused = true)]
async fn release_uncordons_only_the_agents_own_cordon() {
    let fake = cluster();
    let g = guard(&fake);
    g.prepare(NODE, Duration::from_secs(300))
        .await
        .expect("drains");
    assert_eq!(
        g.release(NODE).await.expect("release"),
        Released::Uncordoned
    );
    assert!(!unschedulable(&fake, NODE));
    assert_eq!(cordoned_by(&fake, NODE), None);
    // Again: nothing to do, and nothing written.
    let writes = node_writes(&fake);
    assert_eq!(
        g.release(NODE).await.expect("release"),
        Released::NothingToRelease
    );
    assert_eq!(node_writes(&fake), writes);
}

#[tokio::test(start_paused = true)]
async fn a_node_cordoned_by_someone_else_is_drained_but_never_claimed_or_uncordoned() {
    let fake = cluster();
    fake.insert_core(node(
        NODE,
        true,
        json!({"ops.example.com/reason": "disk swap"}),
    ));
    let g = guard(&fake);
    let prepared = g
        .prepare(NODE, Duration::from_secs(300))
        .await
        .expect("drains");
    assert_eq!(prepared.cordon, Cordon::Others);
    assert_eq!(prepared.evicted.len(), 3);
    assert_eq!(cordoned_by(&fake, NODE), None, "not claimed");
    assert_eq!(node_writes(&fake), 0, "the node is not written at all");
    assert_eq!(g.release(NODE).await.expect("release"), Released::NotOurs);
    assert!(unschedulable(&fake, NODE), "still cordoned");

    // Nor when the drain fails.
    fake.insert_core(pod("shop", "db-1", NODE, owner("StatefulSet", "db")));
    fake.on_evict("shop", "db-1", OnEvict::Refuse { times: None });
    let err = g
        .prepare(NODE, Duration::from_secs(20))
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            NodeError::DrainTimedOut {
                uncordoned: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(unschedulable(&fake, NODE), "still cordoned");
    assert_eq!(node_writes(&fake), 0);
}

#[tokio::test(start_paused = true)]
async fn another_agents_cordon_is_not_ours() {
    let fake = cluster();
    guard(&fake)
        .prepare(NODE, Duration::from_secs(300))
        .await
        .expect("drains");
    let other = NodeGuard::new(fake.mock_client(), "another-ringmaster");
    assert_eq!(
        other.release(NODE).await.expect("release"),
        Released::NotOurs
    );
    assert!(unschedulable(&fake, NODE));
    assert_eq!(
        other
            .prepare(NODE, Duration::from_secs(10))
            .await
            .expect("drained")
            .cordon,
        Cordon::Others
    );
    assert_eq!(cordoned_by(&fake, NODE).as_deref(), Some(DEFAULT_AGENT));
}

#[tokio::test(start_paused = true)]
async fn a_restarted_agent_finds_its_own_cordon_and_releases_it() {
    let fake = cluster();
    // The first agent cordons, evicts, and dies while it waits for a pod to stop.
    fake.on_evict("shop", "db-0", OnEvict::Terminate);
    let first = guard(&fake);
    let dying = tokio::spawn(async move { first.prepare(NODE, Duration::from_secs(300)).await });
    tokio::time::sleep(Duration::from_secs(5)).await;
    dying.abort();
    assert!(dying.await.expect_err("aborted").is_cancelled());
    assert!(unschedulable(&fake, NODE));
    assert_eq!(evictions(&fake).len(), 3);

    // A new process, a new client: the annotation is its memory.
    let again = guard(&fake);
    let state = again.state(NODE).await.expect("state");
    assert!(state.unschedulable && state.held_by(DEFAULT_AGENT));
    let writes = node_writes(&fake);
    fake.remove_pod("shop", "db-0");
    let prepared = again
        .prepare(NODE, Duration::from_secs(300))
        .await
        .expect("drains");
    assert_eq!(prepared.cordon, Cordon::Resumed);
    assert!(
        prepared.evicted.is_empty(),
        "nothing left to evict: {prepared:?}"
    );
    assert_eq!(
        node_writes(&fake),
        writes,
        "the cordon is not written again"
    );
    assert_eq!(evictions(&fake).len(), 3, "no pod is evicted twice");

    // After the reboot: yet another process releases it, once.
    let after_reboot = guard(&fake);
    assert_eq!(
        after_reboot.release(NODE).await.expect("release"),
        Released::Uncordoned
    );
    assert!(!unschedulable(&fake, NODE));
    assert_eq!(cordoned_by(&fake, NODE), None);
    assert_eq!(
        after_reboot.release(NODE).await.expect("release"),
        Released::NothingToRelease
    );
}

#[tokio::test(start_paused = true)]
async fn someone_uncordoning_the_agents_cordon_leaves_only_the_annotation_to_remove() {
    let fake = cluster();
    let g = guard(&fake);
    g.cordon(NODE).await.expect("cordon");
    // An admin runs `kubectl uncordon`: the annotation stays behind.
    let mut n = fake.node(NODE).expect("node");
    n["spec"]["unschedulable"] = json!(false);
    fake.insert_core(n);
    assert_eq!(
        g.release(NODE).await.expect("release"),
        Released::AnnotationRemoved
    );
    assert_eq!(cordoned_by(&fake, NODE), None);
    assert!(!unschedulable(&fake, NODE));
}

/// A client of `fake` that, just before the first PATCH of the node, lets `meddle`
/// change the node as another writer would (so the patch's resourceVersion is stale).
fn racing_client(fake: &Fake, meddle: impl Fn(&Fake) + Send + Sync + 'static) -> Client {
    let fake = fake.clone();
    let raced = Arc::new(AtomicBool::new(false));
    let meddle = Arc::new(meddle);
    let service = tower::service_fn(move |request: Request<Body>| {
        let (fake, raced, meddle) = (fake.clone(), raced.clone(), meddle.clone());
        async move {
            if request.method() == Method::PATCH
                && request.uri().path().starts_with("/api/v1/nodes/")
                && !raced.swap(true, Ordering::SeqCst)
            {
                meddle(&fake);
            }
            let Reply::Json(code, v) = fake.handle(request).await else {
                panic!("no watches here");
            };
            let body = Full::new(Bytes::from(serde_json::to_vec(&v).expect("json"))).boxed();
            Ok::<_, Infallible>(
                Response::builder()
                    .status(code)
                    .body(body)
                    .expect("response"),
            )
        }
    });
    Client::new(service, "default")
}

#[tokio::test(start_paused = true)]
async fn a_cordon_placed_by_someone_else_between_read_and_write_is_not_claimed() {
    let fake = cluster();
    let client = racing_client(&fake, |f| {
        let mut n = f.node(NODE).expect("node");
        n["spec"]["unschedulable"] = json!(true);
        f.insert_core(n);
    });
    let g = NodeGuard::new(client, DEFAULT_AGENT);
    assert_eq!(g.cordon(NODE).await.expect("cordon"), Cordon::Others);
    assert_eq!(cordoned_by(&fake, NODE), None);
    let conflicts = fake
        .sent()
        .iter()
        .filter(|s| s.method == Method::PATCH)
        .count();
    assert_eq!(conflicts, 1, "one patch, refused as stale");
}

#[tokio::test(start_paused = true)]
async fn an_unrelated_change_between_read_and_write_is_retried() {
    let fake = cluster();
    let client = racing_client(&fake, |f| {
        let mut n = f.node(NODE).expect("node");
        n["metadata"]["labels"]["topology.kubernetes.io/zone"] = json!("b");
        f.insert_core(n);
    });
    let g = NodeGuard::new(client, DEFAULT_AGENT);
    assert_eq!(g.cordon(NODE).await.expect("cordon"), Cordon::Placed);
    assert!(unschedulable(&fake, NODE));
    assert_eq!(cordoned_by(&fake, NODE).as_deref(), Some(DEFAULT_AGENT));
    let node = fake.node(NODE).expect("node");
    assert_eq!(
        node["metadata"]["labels"]["topology.kubernetes.io/zone"],
        "b"
    );
}

#[tokio::test(start_paused = true)]
async fn a_node_that_does_not_exist_is_a_typed_error() {
    let fake = cluster();
    let err = guard(&fake)
        .prepare("worker-9", Duration::from_secs(10))
        .await
        .expect_err("no such node");
    assert!(
        matches!(&err, NodeError::NotFound { node } if node == "worker-9"),
        "{err}"
    );
    assert!(evictions(&fake).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failing_eviction_stops_the_drain_and_takes_the_cordon_off() {
    let fake = cluster();
    fake.break_path(&eviction_path("shop", "db-0"));
    let err = guard(&fake)
        .prepare(NODE, Duration::from_secs(300))
        .await
        .expect_err("the API server fails the eviction");
    assert!(
        matches!(&err, NodeError::Evict { pod, uncordoned: true, .. } if *pod == pod_ref("shop", "db-0")),
        "{err}"
    );
    assert!(!unschedulable(&fake, NODE));
    assert_eq!(cordoned_by(&fake, NODE), None);
}
