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

#[tokio::test(start_paused = true)]
async fn pods_that_cannot_be_listed_fail_the_drain_as_such_and_take_the_cordon_off() {
    let fake = cluster();
    fake.break_path("/api/v1/pods");
    let err = guard(&fake)
        .prepare(NODE, Duration::from_secs(30))
        .await
        .expect_err("the API server fails every list");
    assert!(
        matches!(
            &err,
            NodeError::ListPods {
                uncordoned: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(!unschedulable(&fake, NODE));
    assert!(evictions(&fake).is_empty());
    let lists = fake
        .sent()
        .iter()
        .filter(|s| s.path == "/api/v1/pods")
        .count();
    assert!(lists > 1, "a failed list is tried again: {lists}");
}

// ---- against a real API server ----

/// Panics unless `RINGMASTER_E2E=1` (the e2e suite's rule): run with `--ignored` without
/// it, the test fails saying what to set rather than touching whatever cluster
/// `KUBECONFIG` names.
fn require_cluster() {
    if std::env::var("RINGMASTER_E2E").as_deref() != Ok("1") {
        panic!(
            "this test needs an API server it may create Nodes, namespaces and Pods in: \
             set RINGMASTER_E2E=1 and KUBECONFIG and run \
             `RINGMASTER_E2E=1 cargo test --test it agent_node -- --ignored`"
        );
    }
}

mod real {
    use std::panic::AssertUnwindSafe;

    use futures::FutureExt;
    use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use kube::Api;
    use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};

    use super::*;

    fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).expect("a valid object")
    }

    /// Creates a pod bound to `node` and sets its phase (no kubelet runs here).
    async fn running_pod(client: &Client, mut pod: Value, phase: &str) {
        let ns = pod["metadata"]["namespace"]
            .as_str()
            .expect("ns")
            .to_string();
        let name = pod["metadata"]["name"].as_str().expect("name").to_string();
        if pod["metadata"].get("labels").is_none() {
            pod["metadata"]["labels"] = json!({"app": name.clone()});
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        api.create(&PostParams::default(), &from(pod))
            .await
            .unwrap_or_else(|e| panic!("creating pod {ns}/{name}: {e}"));
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": phase}})),
        )
        .await
        .unwrap_or_else(|e| panic!("setting pod {ns}/{name} {phase}: {e}"));
    }

    /// What the kubelet does with a terminating pod once its containers stopped: deletes
    /// it for good.
    fn kubelet(client: Client, node: String) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let pods: Api<Pod> = Api::all(client.clone());
            loop {
                let on_node = ListParams::default().fields(&format!("spec.nodeName={node}"));
                for p in pods
                    .list(&on_node)
                    .await
                    .map(|l| l.items)
                    .unwrap_or_default()
                {
                    if p.metadata.deletion_timestamp.is_some() {
                        let (Some(ns), Some(name)) = (p.metadata.namespace, p.metadata.name) else {
                            continue;
                        };
                        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                        let _ = api
                            .delete(&name, &DeleteParams::default().grace_period(0))
                            .await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    }

    async fn cleanup(client: &Client, ns: &str, node: &str) {
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        if let Ok(list) = pods.list(&ListParams::default()).await {
            for p in list.items {
                if let Some(name) = p.metadata.name {
                    let _ = pods
                        .delete(&name, &DeleteParams::default().grace_period(0))
                        .await;
                }
            }
        }
        let _ = Api::<Namespace>::all(client.clone())
            .delete(ns, &DeleteParams::default())
            .await;
        let _ = Api::<Node>::all(client.clone())
            .delete(node, &DeleteParams::default())
            .await;
    }

    #[tokio::test]
    #[ignore = "needs an API server: RINGMASTER_E2E=1 and KUBECONFIG"]
    async fn on_a_real_api_server_a_budget_holds_the_drain_and_release_uncordons() {
        require_cluster();
        let client = Client::try_default()
            .await
            .expect("a cluster in KUBECONFIG");
        let id = format!("{:x}", jiff::Timestamp::now().as_nanosecond() % 0xff_ffff);
        let ns = format!("ringmaster-node-{id}");
        let node_name = format!("ringmaster-node-{id}");
        let outcome = AssertUnwindSafe(scenario(&client, &ns, &node_name))
            .catch_unwind()
            .await;
        cleanup(&client, &ns, &node_name).await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    async fn scenario(client: &Client, ns: &str, node_name: &str) {
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &from(json!({"metadata": {"name": ns}})),
            )
            .await
            .expect("namespace");
        Api::<Node>::all(client.clone())
            .create(
                &PostParams::default(),
                &from(node(node_name, false, json!({}))),
            )
            .await
            .expect("node");
        let ds: Value = json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                // The DaemonSet controller runs: it must not replace the pod made here.
                "updateStrategy": {"type": "OnDelete"},
                "template": {"metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "a", "image": "example/agent:1"}]}}}
        });
        let ds: k8s_openapi::api::apps::v1::DaemonSet = Api::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &from(ds))
            .await
            .expect("daemon set");
        let ds_uid = ds.metadata.uid.expect("uid");
        running_pod(client, pod(ns, "web", node_name, json!([])), "Running").await;
        running_pod(client, pod(ns, "db", node_name, json!([])), "Running").await;
        let owners = json!([{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent",
            "uid": ds_uid, "controller": true}]);
        let mut agent = pod(ns, "agent-x", node_name, owners);
        agent["metadata"]["labels"] = json!({"app": "agent"});
        running_pod(client, agent, "Running").await;
        let mut mirror = pod(ns, "static-web", node_name, json!([]));
        mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "3f1c"});
        running_pod(client, mirror, "Running").await;
        running_pod(client, pod(ns, "done", node_name, json!([])), "Succeeded").await;
        // No disruption controller runs here: the budget is never processed, so every
        // eviction it covers is refused with 429, as a budget at its limit refuses them.
        let pdb = json!({"metadata": {"name": "db", "namespace": ns},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}});
        let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
        pdbs.create(&PostParams::default(), &from(pdb))
            .await
            .expect("pdb");

        let kubelet = kubelet(client.clone(), node_name.to_string());
        let config = kube::Config::infer().await.expect("a kubeconfig");
        let guard = NodeGuard::from_config(config, DEFAULT_AGENT)
            .expect("a client")
            .with_pacing(Pacing {
                first: Duration::from_millis(200),
                max: Duration::from_secs(1),
            });
        let err = guard
            .prepare(node_name, Duration::from_secs(8))
            .await
            .expect_err("the budget refuses");
        eprintln!("{err}");
        let NodeError::DrainTimedOut {
            stuck, uncordoned, ..
        } = &err
        else {
            panic!("not a timeout: {err}");
        };
        assert_eq!(stuck.len(), 1, "{err}");
        assert_eq!(stuck[0].pod, pod_ref(ns, "db"));
        assert!(
            matches!(stuck[0].reason, StuckReason::EvictionRefused { .. }),
            "{err}"
        );
        assert!(*uncordoned, "{err}");
        let state = guard.state(node_name).await.expect("state");
        assert!(
            !state.unschedulable && state.cordoned_by.is_none(),
            "{state:?}"
        );

        pdbs.delete("db", &DeleteParams::default())
            .await
            .expect("pdb deleted");
        let prepared = guard
            .prepare(node_name, Duration::from_secs(30))
            .await
            .expect("drains without the budget");
        eprintln!("{prepared:?}");
        assert_eq!(prepared.cordon, Cordon::Placed);
        assert_eq!(prepared.evicted, vec![pod_ref(ns, "db")]);
        let skipped: Vec<_> = prepared
            .skipped
            .iter()
            .map(|(p, why)| (p.name.as_str(), *why))
            .collect();
        assert_eq!(
            skipped,
            vec![
                ("agent-x", SkipReason::DaemonSet),
                ("done", SkipReason::Finished),
                ("static-web", SkipReason::Mirror)
            ]
        );
        let state = guard.state(node_name).await.expect("state");
        assert!(
            state.unschedulable && state.held_by(DEFAULT_AGENT),
            "{state:?}"
        );

        let again = NodeGuard::new(client.clone(), DEFAULT_AGENT);
        assert_eq!(
            again.release(node_name).await.expect("release"),
            Released::Uncordoned
        );
        let state = again.state(node_name).await.expect("state");
        assert!(
            !state.unschedulable && state.cordoned_by.is_none(),
            "{state:?}"
        );
        kubelet.abort();
    }
}
