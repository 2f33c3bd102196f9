//! The whole operator (`Operator::run`: CRD check, watchers, stores, triggers, queue,
//! timers, leadership, shutdown) against a fake API server that serves list and watch,
//! in real time. No cluster needed.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use ringmaster::operator::metrics::Metrics;
use ringmaster::operator::{Operator, OperatorConfig};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::common::{BASE, devices};
use crate::fake_api::Fake;

/// Loads YAML documents into the fake, in namespace `ns` (Patches cluster-wide).
fn load(fake: &Fake, ns: &str, yaml: &str) {
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let mut v: Value = serde::Deserialize::deserialize(doc).expect("yaml");
        if v.is_null() {
            continue;
        }
        let kind = v["kind"].as_str().expect("kind").to_string();
        if kind != "Patch" {
            v["metadata"]["namespace"] = ns.into();
        }
        fake.insert(&kind, &v);
    }
}

/// The common tenant (policy `ws`, rings `it` with maxConcurrent 2 and `pilot`, KB1)
/// with `it` devices in ring `it` and 2 in `pilot`, all seen just now.
pub(crate) fn tenant(fake: &Fake, ns: &str, it: usize) {
    let seen = Timestamp::now().to_string();
    let yaml = format!(
        "{BASE}{}{}",
        devices("it", "it", "tier-1", it, &seen),
        devices("pc", "pilot", "tier-2", 2, &seen)
    );
    load(fake, ns, &yaml);
}

struct Running {
    metrics: Arc<Metrics>,
    ready: Arc<ringmaster::operator::health::Readiness>,
    stop: watch::Sender<bool>,
    leader: watch::Sender<bool>,
    task: JoinHandle<Result<(), ringmaster::operator::Error>>,
}

fn start(fake: &Fake, namespaces: Option<Vec<String>>, leading: bool) -> Running {
    let operator = Operator::new(
        fake.client(),
        OperatorConfig {
            namespaces,
            ..OperatorConfig::default()
        },
    );
    let metrics = operator.metrics();
    let ready = operator.readiness();
    let (stop, stop_rx) = watch::channel(false);
    let (leader, leader_rx) = watch::channel(leading);
    let task = tokio::spawn(async move { operator.run(leader_rx, stop_rx).await });
    Running {
        metrics,
        ready,
        stop,
        leader,
        task,
    }
}

impl Running {
    async fn shutdown(self) {
        let _ = self.stop.send(true);
        let result = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("stops within 10 s")
            .expect("no panic");
        assert!(result.is_ok(), "{result:?}");
    }
}

pub(crate) async fn eventually<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Devices of `ns` whose plan asks them to install `patch`, by name.
fn planned(fake: &Fake, ns: &str, patch: &str) -> Vec<String> {
    let mut names: Vec<String> = fake
        .objects(ns)
        .devices
        .iter()
        .filter(|d| d.spec.plan.install.contains_key(patch))
        .filter_map(|d| d.metadata.name.clone())
        .collect();
    names.sort();
    names
}

/// `device`'s agent reports KB1 installed now (and, if `seen`, that it checked in now).
fn report_installed(fake: &Fake, device: &str, seen: bool) {
    let t = Timestamp::now().to_string();
    let mut status = json!({"patches": [
        {"id": "KB1", "state": "Installed", "attempts": 1, "lastAttemptAt": t, "installedAt": t}
    ]});
    if seen {
        status["lastSeen"] = json!(t);
    }
    fake.merge(
        "ManagedDevice",
        Some("acme"),
        device,
        json!({ "status": status }),
    );
}

/// Tenant `acme` (three devices in ring `it`, two in `pilot`) and an operator leading
/// it, once ring `it` has admitted two of them to KB1 and the writes have settled; with
/// their count.
async fn admitting_two(fake: &Fake) -> (Running, usize) {
    tenant(fake, "acme", 3);
    let op = start(fake, None, true);
    eventually("ring it admits", Duration::from_secs(10), || {
        (planned(fake, "acme", "KB1").len() == 2).then_some(())
    })
    .await;
    let writes = settled(fake, Duration::from_millis(800)).await;
    (op, writes)
}

/// Waits until the operator has sent no write for `quiet`.
async fn settled(fake: &Fake, quiet: Duration) -> usize {
    let mut last = fake.writes().len();
    loop {
        tokio::time::sleep(quiet).await;
        let now = fake.writes().len();
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_becomes_ready_admits_ring_zero_and_then_writes_nothing() {
    let fake = Fake::default();
    tenant(&fake, "acme", 3);
    let op = start(&fake, None, true);
    eventually("ready", Duration::from_secs(10), || {
        op.ready.is_ready().then_some(())
    })
    .await;
    let crd_checks = fake
        .sent()
        .iter()
        .filter(|s| s.path.contains("/customresourcedefinitions/"))
        .count();
    assert_eq!(crd_checks, 9, "the nine CRDs are checked");

    // The two plan entries are two writes: wait for both before judging which devices
    // were admitted (reading between them saw one, and failed under load).
    let admitted = eventually("ring it admits", Duration::from_secs(10), || {
        let p = planned(&fake, "acme", "KB1");
        (p.len() >= 2).then_some(p)
    })
    .await;
    assert_eq!(admitted, vec!["it-0", "it-1"]);
    let rollout = fake
        .get("PatchRollout", Some("acme"), "ws.kb1")
        .expect("the rollout was created");
    assert_eq!(rollout["metadata"]["ownerReferences"][0]["uid"], "uid-ws");
    assert_eq!(rollout["status"]["phase"], "Progressing");
    let patch = fake.get("Patch", None, "kb1").expect("the patch");
    assert_eq!(patch["status"]["severity"], "Critical");

    let writes = settled(&fake, Duration::from_millis(1500)).await;
    let counted = op.metrics.writes_total();
    assert_eq!(counted as usize, writes, "every write is counted");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        fake.writes().len(),
        writes,
        "steady state: {:#?}",
        &fake.writes()[writes..]
    );
    let text = op.metrics.encode();
    assert!(
        text.contains(
            r#"ringmaster_devices{namespace="acme",policy="ws",tier="tier-1",ring="it"} 3"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"ringmaster_reconcile_total{controller="tenant",result="success"}"#));
    op.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_report_frees_a_slot_and_the_next_device_is_admitted() {
    let fake = Fake::default();
    let (op, _) = admitting_two(&fake).await;

    // it-0's agent installs KB1.
    report_installed(&fake, "it-0", true);
    let reported = tokio::time::Instant::now();
    eventually("it-2 is admitted", Duration::from_secs(5), || {
        planned(&fake, "acme", "KB1")
            .contains(&"it-2".to_string())
            .then_some(())
    })
    .await;
    assert!(
        reported.elapsed() < Duration::from_secs(2),
        "debounced, not delayed: {:?}",
        reported.elapsed()
    );
    let rollout = fake
        .get("PatchRollout", Some("acme"), "ws.kb1")
        .expect("rollout");
    assert_eq!(rollout["status"]["rings"][0]["installed"], 1);
    let text = op.metrics.encode();
    let count = r#"ringmaster_time_to_install_seconds_count{namespace="acme",policy="ws",tier="tier-1",severity="Critical"} 1"#;
    assert!(
        text.contains(count),
        "the install is observed once:\n{text}"
    );
    op.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_stops_covering_its_device_within_a_second_of_expiry() {
    let fake = Fake::default();
    let expires = Timestamp::now() + SignedDuration::from_secs(4);
    load(
        &fake,
        "acme",
        &format!(
            r#"
kind: PatchException
metadata: {{name: hold}}
spec:
  patches: [KB1]
  devices: {{names: [it-0]}}
  reason: test
  owner: someone
  expiresAt: "{expires}"
"#
        ),
    );
    tenant(&fake, "acme", 3);
    let op = start(&fake, None, true);
    let first = eventually("ring it admits", Duration::from_secs(3), || {
        let p = planned(&fake, "acme", "KB1");
        (p.len() == 2).then_some(p)
    })
    .await;
    assert_eq!(first, vec!["it-1", "it-2"], "it-0 is excepted");
    assert!(Timestamp::now() < expires, "too slow to test expiry");

    // it-1 finishes, freeing a slot only it-0 can take once the exception expires.
    report_installed(&fake, "it-1", false);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!planned(&fake, "acme", "KB1").contains(&"it-0".to_string()));

    let freed = eventually("it-0 is admitted", Duration::from_secs(10), || {
        planned(&fake, "acme", "KB1")
            .contains(&"it-0".to_string())
            .then(Timestamp::now)
    })
    .await;
    let late = freed.duration_since(expires);
    eprintln!("it-0 admitted {late} after the exception expired");
    assert!(
        late >= SignedDuration::ZERO && late <= SignedDuration::from_secs(1),
        "admitted {late} after expiry"
    );
    let exc = fake
        .get("PatchException", Some("acme"), "hold")
        .expect("kept");
    assert_eq!(exc["status"]["phase"], "Expired", "{exc:#}");
    op.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_is_ready_but_writes_nothing_until_it_leads() {
    let fake = Fake::default();
    tenant(&fake, "acme", 2);
    let op = start(&fake, None, false);
    eventually("ready while following", Duration::from_secs(10), || {
        op.ready.is_ready().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(fake.writes().is_empty(), "{:#?}", fake.writes());

    op.leader.send(true).expect("leader channel");
    eventually("the new leader admits", Duration::from_secs(5), || {
        (planned(&fake, "acme", "KB1").len() == 2).then_some(())
    })
    .await;

    // Losing the lead stops the writing.
    settled(&fake, Duration::from_millis(800)).await;
    op.leader.send(false).expect("leader channel");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writes = fake.writes().len();
    report_installed(&fake, "it-0", false);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fake.writes().len(), writes, "a follower does not write");
    op.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_namespaces_given_only_those_are_watched_and_written() {
    let fake = Fake::default();
    tenant(&fake, "acme", 2);
    tenant(&fake, "globex", 2);
    let op = start(&fake, Some(vec!["acme".into()]), true);
    eventually("acme is reconciled", Duration::from_secs(10), || {
        (planned(&fake, "acme", "KB1").len() == 2).then_some(())
    })
    .await;
    settled(&fake, Duration::from_millis(800)).await;
    assert!(planned(&fake, "globex", "KB1").is_empty());
    for s in fake.sent() {
        assert!(
            !s.path.contains("/namespaces/globex/"),
            "{} {}",
            s.method,
            s.path
        );
        if s.query.contains("watch=true") && !s.path.ends_with("/patches") {
            assert!(s.path.contains("/namespaces/acme/"), "{}", s.path);
        }
    }
    op.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_operator_leaves_no_watch_or_queue_behind() {
    let fake = Fake::default();
    let (op, before) = admitting_two(&fake).await;
    assert!(fake.open_watches() > 0, "it watches while it runs");

    // Killed: its future is dropped, not stopped.
    op.task.abort();
    let _ = op.task.await;
    eventually("its watches are closed", Duration::from_secs(2), || {
        (fake.open_watches() == 0).then_some(())
    })
    .await;

    // A report that would free a slot: a live operator admits it-2 within a second.
    report_installed(&fake, "it-0", true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fake.writes().len(),
        before,
        "nothing of the killed operator still writes"
    );
    assert_eq!(planned(&fake, "acme", "KB1"), vec!["it-0", "it-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_api_server_and_liveness_does_not() {
    use ringmaster::operator::health::{Health, NotReady, health_routes};
    use tower::ServiceExt;

    let fake = Fake::default();
    tenant(&fake, "acme", 2);
    let op = start(&fake, None, true);
    eventually("ready", Duration::from_secs(10), || {
        op.ready.is_ready().then_some(())
    })
    .await;
    let routes = health_routes().with_state(Health {
        ready: Arc::clone(&op.ready),
        metrics: Arc::clone(&op.metrics),
    });
    let get = |path: &'static str| {
        let routes = routes.clone();
        async move {
            let request = http::Request::get(path)
                .body(axum::body::Body::empty())
                .expect("a request");
            let response = routes.oneshot(request).await.expect("an answer");
            let status = response.status();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .expect("a body")
                .to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    assert_eq!(
        get("/readyz").await,
        (http::StatusCode::OK, "ready\n".into())
    );

    // The API server stops answering: the watches resume without an event, so only the
    // active check can tell.
    fake.break_path("/version");
    eventually(
        "not ready while the API server fails",
        Duration::from_secs(10),
        || matches!(op.ready.why_not(), Some(NotReady::ApiUnreachable(_))).then_some(()),
    )
    .await;
    let (status, body) = get("/readyz").await;
    assert_eq!(status, http::StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.starts_with("not ready: the API server is unreachable"),
        "{body}"
    );
    assert_eq!(
        get("/healthz").await.0,
        http::StatusCode::OK,
        "liveness stays"
    );

    fake.fix_path("/version");
    eventually("ready again", Duration::from_secs(10), || {
        op.ready.is_ready().then_some(())
    })
    .await;
    assert_eq!(get("/readyz").await.0, http::StatusCode::OK);
    op.shutdown().await;
}

/// Two tenant names in different shards of two.
fn one_per_shard() -> (String, String) {
    use ringmaster::operator::shards::shard_of;
    let first = "acme".to_string();
    let other = (0..)
        .map(|i| format!("globex-{i}"))
        .find(|ns| shard_of(ns, 2) != shard_of(&first, 2))
        .unwrap_or_default();
    (first, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_reconciles_only_the_shards_it_holds_and_stops_when_one_goes() {
    use ringmaster::operator::shards::{Held, shard_of};
    use tokio::time::Instant;

    let fake = Fake::default();
    let (acme, other) = one_per_shard();
    tenant(&fake, &acme, 3);
    tenant(&fake, &other, 3);
    let operator = Operator::new(fake.client(), OperatorConfig::default());
    let metrics = operator.metrics();
    let (held_tx, held_rx) = watch::channel(Held::new());
    let (acting_tx, mut acting) = watch::channel(std::collections::BTreeSet::new());
    let (stop, stop_rx) = watch::channel(false);
    let task =
        tokio::spawn(async move { operator.run_shards(2, held_rx, acting_tx, stop_rx).await });
    let hour = Duration::from_secs(3600);

    // Holding acme's shard: acme is admitted, the other tenant is not touched.
    let acme_shard = shard_of(&acme, 2);
    held_tx.send_replace(Held::from([(acme_shard, Instant::now() + hour)]));
    eventually("acme is admitted", Duration::from_secs(10), || {
        (planned(&fake, &acme, "KB1").len() == 2).then_some(())
    })
    .await;
    settled(&fake, Duration::from_millis(800)).await;
    assert!(planned(&fake, &other, "KB1").is_empty());
    assert!(
        fake.writes()
            .iter()
            .all(|w| !w.path.contains(&format!("/namespaces/{other}/"))),
        "nothing of the other shard is written"
    );
    assert!(
        metrics.encode().contains("ringmaster_shards_held 1"),
        "{}",
        metrics.encode()
    );

    // The shard moves: the new one gets a full reconcile at once, the old one nothing.
    held_tx.send_replace(Held::from([(1 - acme_shard, Instant::now() + hour)]));
    eventually(
        "the other tenant is admitted",
        Duration::from_secs(10),
        || (planned(&fake, &other, "KB1").len() == 2).then_some(()),
    )
    .await;
    acting
        .wait_for(|a| !a.contains(&acme_shard))
        .await
        .expect("acting is published");
    let writes = settled(&fake, Duration::from_millis(800)).await;
    report_installed(&fake, "it-0", true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fake.writes().len(), writes, "a shard let go is not written");

    // A shard past its time stops without being told.
    held_tx.send_replace(Held::from([
        (acme_shard, Instant::now() + Duration::from_millis(1500)),
        (1 - acme_shard, Instant::now() + hour),
    ]));
    acting
        .wait_for(|a| a.contains(&acme_shard))
        .await
        .expect("acting is published");
    acting
        .wait_for(|a| !a.contains(&acme_shard))
        .await
        .expect("acting is published");
    let _ = stop.send(true);
    let result = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops within 10 s")
        .expect("no panic");
    assert!(result.is_ok(), "{result:?}");
}

/// Stores device `device`'s check-in Lease in `ns`, renewed at `at`, as its agent's
/// renewal leaves it (created, or updated in place).
fn renew_lease(fake: &Fake, ns: &str, device: &str, at: Timestamp) {
    let lease = json!({
        "metadata": {"name": device, "namespace": ns,
            "labels": {"ringmaster.dev/device": device}},
        "spec": {"holderIdentity": "agent", "leaseDurationSeconds": 900,
            "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(at)},
    });
    fake.insert("Lease", &lease);
}

/// The tenant reconciles that succeeded so far, from the metrics.
fn tenant_reconciles(op: &Running) -> u64 {
    let text = op.metrics.encode();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(r#"ringmaster_reconcile_total{controller="tenant",result="success"} "#)
        })
        .and_then(|n| n.trim().parse::<f64>().ok())
        .map_or(0, |n| n as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_renewal_in_time_is_no_reconcile_and_no_write() {
    let fake = Fake::default();
    let (op, writes) = admitting_two(&fake).await;
    // Every device renews its Lease: the first check-ins by Lease are seen at once.
    let now = Timestamp::now();
    for d in ["it-0", "it-1", "it-2", "pc-0", "pc-1"] {
        renew_lease(&fake, "acme", d, now);
    }
    let writes = writes.max(settled(&fake, Duration::from_millis(800)).await);
    let reconciles = tenant_reconciles(&op);
    assert!(reconciles > 0, "the tenant was reconciled");
    // Renewals in time: the next pass reads them, none triggers one.
    for round in 1..=3 {
        let at = now + SignedDuration::from_secs(60 * round);
        for d in ["it-0", "it-1", "it-2", "pc-0", "pc-1"] {
            renew_lease(&fake, "acme", d, at);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        tenant_reconciles(&op),
        reconciles,
        "a renewal in time triggers no reconcile"
    );
    // The namespace's newest check-in moves all the same.
    let newest = op
        .metrics
        .encode()
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"ringmaster_devices_last_seen_timestamp_seconds{namespace="acme"} "#)
                .and_then(|n| n.trim().parse::<f64>().ok())
        })
        .expect("the last-seen metric");
    let last = (now + SignedDuration::from_secs(180)).as_second() as f64;
    assert!(newest >= last, "{newest} < {last}");
    assert_eq!(
        fake.writes().len(),
        writes,
        "nor any write: {:#?}",
        &fake.writes()[writes..]
    );
    op.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_comes_back_by_its_lease_is_seen_at_once() {
    let fake = Fake::default();
    // it-0 and it-1 were last seen (lastSeen) four days ago: unreachable; it-2 just now.
    let long_ago = (Timestamp::now() - SignedDuration::from_hours(96)).to_string();
    let yaml = format!(
        "{BASE}{}{}",
        devices("it", "it", "tier-1", 3, &long_ago),
        devices("pc", "pilot", "tier-2", 2, &Timestamp::now().to_string())
    );
    load(&fake, "acme", &yaml);
    fake.merge(
        "ManagedDevice",
        Some("acme"),
        "it-2",
        json!({"status": {"lastSeen": Timestamp::now().to_string()}}),
    );
    let op = start(&fake, None, true);
    eventually("ring it admits it-2", Duration::from_secs(10), || {
        (planned(&fake, "acme", "KB1") == ["it-2"]).then_some(())
    })
    .await;
    settled(&fake, Duration::from_millis(800)).await;
    assert_eq!(
        planned(&fake, "acme", "KB1"),
        ["it-2"],
        "the others are away"
    );

    // it-0's agent is back: it renews its Lease, and writes no status.
    renew_lease(&fake, "acme", "it-0", Timestamp::now());
    eventually("it-0 is admitted", Duration::from_secs(5), || {
        planned(&fake, "acme", "KB1")
            .contains(&"it-0".to_string())
            .then_some(())
    })
    .await;
    assert_eq!(planned(&fake, "acme", "KB1"), ["it-0", "it-2"]);
    let status = fake
        .get("ManagedDevice", Some("acme"), "it-0")
        .expect("it-0");
    assert_eq!(status["status"]["lastSeen"], long_ago.as_str(), "untouched");
    op.shutdown().await;
}
