//! End-to-end scenarios against a real cluster (the one in `KUBECONFIG`). They run only
//! with `RINGMASTER_E2E=1`; otherwise each test says it was skipped and passes.
//!
//! Each scenario applies the CRDs (server-side apply of `ringmaster::api::crds()`),
//! creates a namespace of its own, runs the operator in-process scoped to that namespace
//! (the same code `ringmaster run` runs, without its servers and lease), creates a
//! tenant, checks what the operator does, and deletes the namespace and its Patches.
//!
//! ```sh
//! RINGMASTER_E2E=1 cargo test --test e2e -- --test-threads=2
//! ```

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch as KubePatch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};
use ringmaster::api::*;
use ringmaster::operator::metrics::Metrics;
use ringmaster::operator::{Operator, OperatorConfig};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Whether the suite runs; prints why not.
fn enabled(test: &str) -> bool {
    if std::env::var("RINGMASTER_E2E").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("{test}: skipped (set RINGMASTER_E2E=1 to run against the cluster in KUBECONFIG)");
    false
}

/// A namespace with an operator watching it.
struct Env {
    client: Client,
    ns: String,
    /// A suffix that makes this scenario's patch ids and names unique in the cluster.
    suffix: String,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    _leader: watch::Sender<bool>,
    operator: JoinHandle<Result<(), ringmaster::operator::Error>>,
}

fn unique(test: &str) -> String {
    let nanos = Timestamp::now().as_nanosecond();
    format!("{test}-{:x}", nanos % 0xff_ffff)
}

async fn apply_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in ringmaster::api::crds() {
        let name = crd.metadata.name.clone().expect("CRD name");
        api.patch(
            &name,
            &PatchParams::apply("ringmaster-e2e").force(),
            &KubePatch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not established within 30s"))
        .unwrap_or_else(|e| panic!("waiting for CRD {name}: {e}"));
    }
}

async fn setup(test: &str) -> Env {
    let client = Client::try_default()
        .await
        .expect("a cluster in KUBECONFIG");
    apply_crds(&client).await;
    let suffix = unique(test);
    let ns = format!("rm-e2e-{suffix}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(ns.clone());
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("creating the test namespace");

    let operator = Operator::new(
        client.clone(),
        OperatorConfig {
            namespaces: Some(vec![ns.clone()]),
            instance: Some(format!("e2e-{suffix}")),
            ..OperatorConfig::default()
        },
    );
    let metrics = operator.metrics();
    let ready = operator.readiness();
    let (stop, stop_rx) = watch::channel(false);
    let (leader, leader_rx) = watch::channel(true);
    let handle = tokio::spawn(async move { operator.run(leader_rx, stop_rx).await });
    let env = Env {
        client,
        ns,
        suffix,
        metrics,
        stop,
        _leader: leader,
        operator: handle,
    };
    eventually("the operator is ready", Duration::from_secs(60), || {
        let ready = Arc::clone(&ready);
        async move { ready.load(Ordering::Relaxed).then_some(()) }
    })
    .await;
    env
}

impl Env {
    fn patch_id(&self) -> String {
        format!("E2E-{}", self.suffix.to_ascii_uppercase())
    }

    fn patch_name(&self) -> String {
        format!("e2e-{}", self.suffix)
    }

    async fn teardown(self) {
        let patch_name = self.patch_name();
        let _ = self.stop.send(true);
        match tokio::time::timeout(Duration::from_secs(30), self.operator).await {
            Ok(Ok(Ok(()))) => {}
            other => eprintln!("the operator did not stop cleanly: {other:?}"),
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        if let Err(e) = namespaces.delete(&self.ns, &DeleteParams::default()).await {
            eprintln!("deleting namespace {}: {e}", self.ns);
        }
        let patches: Api<Patch> = Api::all(self.client.clone());
        if let Err(e) = patches.delete(&patch_name, &DeleteParams::default()).await {
            eprintln!("deleting Patch {patch_name}: {e}");
        }
    }

    /// Creates an object of a namespaced kind from YAML in the test namespace.
    async fn create<K>(&self, yaml: &str) -> K
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let obj: K = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        Api::<K>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("creating {yaml}: {e}"))
    }

    /// The tenant: policy `ws`, ring `it` (maxConcurrent as given) and `pilot`, the
    /// scenario's Critical patch, and `n` devices in ring `it` reporting it Missing.
    async fn tenant(&self, max_concurrent: u32, n: usize) {
        let id = self.patch_id();
        self.create::<PatchPolicy>(
            r#"
apiVersion: patching.ringmaster.dev/v1alpha1
kind: PatchPolicy
metadata: {name: ws}
spec:
  deviceSelector: {matchLabels: {class: ws}}
  sla:
    - {tier: default, critical: 7d, high: 14d, medium: 60d, low: 120d}
  approval:
    rules:
      - {match: {severities: [Critical]}, action: Approve}
    default: Manual
  rings: [it, pilot]
"#,
        )
        .await;
        self.create::<DeploymentRing>(&format!(
            r#"
apiVersion: patching.ringmaster.dev/v1alpha1
kind: DeploymentRing
metadata: {{name: it}}
spec:
  deviceSelector: {{matchLabels: {{ring: it}}}}
  maxConcurrent: {max_concurrent}
  promotion: {{soak: 24h, minSuccessRate: 90}}
"#
        ))
        .await;
        self.create::<DeploymentRing>(
            r#"
apiVersion: patching.ringmaster.dev/v1alpha1
kind: DeploymentRing
metadata: {name: pilot}
spec:
  deviceSelector: {matchLabels: {ring: pilot}}
  maxConcurrent: 50%
"#,
        )
        .await;
        let released = Timestamp::now() - SignedDuration::from_hours(24);
        let patch: Patch = serde_yaml::from_str(&format!(
            r#"
apiVersion: patching.ringmaster.dev/v1alpha1
kind: Patch
metadata: {{name: {name}}}
spec:
  id: {id}
  vendor: Microsoft
  classification: Security
  cvssScore: 9.8
  releasedAt: "{released}"
"#,
            name = self.patch_name()
        ))
        .expect("patch yaml");
        Api::<Patch>::all(self.client.clone())
            .create(&PostParams::default(), &patch)
            .await
            .expect("creating the Patch");
        let devices: Api<ManagedDevice> = Api::namespaced(self.client.clone(), &self.ns);
        for i in 0..n {
            let name = format!("it-{i}");
            self.create::<ManagedDevice>(&format!(
                r#"
apiVersion: patching.ringmaster.dev/v1alpha1
kind: ManagedDevice
metadata: {{name: {name}, labels: {{class: ws, ring: it}}}}
spec: {{hostname: {name}.e2e.local}}
"#
            ))
            .await;
            // The agent's report.
            let status = json!({"status": {
                "lastSeen": Timestamp::now().to_string(),
                "patches": [{"id": id, "state": "Missing"}]
            }});
            devices
                .patch_status(&name, &PatchParams::default(), &KubePatch::Merge(&status))
                .await
                .unwrap_or_else(|e| panic!("reporting for {name}: {e}"));
        }
    }

    /// Devices whose plan asks them to install the scenario's patch.
    async fn planned(&self) -> Vec<String> {
        let id = self.patch_id();
        let devices: Api<ManagedDevice> = Api::namespaced(self.client.clone(), &self.ns);
        let mut names: Vec<String> = devices
            .list(&ListParams::default())
            .await
            .expect("listing devices")
            .items
            .into_iter()
            .filter(|d| d.spec.plan.install.contains_key(&id))
            .filter_map(|d| d.metadata.name)
            .collect();
        names.sort();
        names
    }
}

/// Polls `check` every 100 ms until it gives a value, or panics after `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a scenario and always tears its namespace down, even when it fails.
async fn scenario<F>(test: &str, body: F)
where
    F: AsyncFnOnce(&Env),
{
    let env = setup(test).await;
    let outcome = AssertUnwindSafe(body(&env)).catch_unwind().await;
    env.teardown().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_admits_ring_zero_within_max_concurrent() {
    if !enabled("approval_admits_ring_zero_within_max_concurrent") {
        return;
    }
    scenario("admit", async |env| {
        env.tenant(2, 5).await;
        let planned = eventually(
            "ring it admits devices",
            Duration::from_secs(30),
            || async {
                let p = env.planned().await;
                (!p.is_empty()).then_some(p)
            },
        )
        .await;
        assert!(planned.len() <= 2, "maxConcurrent 2: {planned:?}");
        // Give it time to (wrongly) admit more.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let planned = env.planned().await;
        assert_eq!(planned, vec!["it-0", "it-1"], "maxConcurrent 2, by name");

        let rollouts: Api<PatchRollout> = Api::namespaced(env.client.clone(), &env.ns);
        let name = format!("ws.{}", env.patch_id().to_ascii_lowercase());
        let rollout = rollouts.get(&name).await.expect("the rollout exists");
        let owner = rollout
            .metadata
            .owner_references
            .as_ref()
            .and_then(|o| o.first())
            .expect("an owner");
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("PatchPolicy", "ws")
        );
        assert_eq!(owner.controller, Some(true));
        let status = rollout.status.expect("a status");
        assert_eq!(status.phase, Some(RolloutPhase::Progressing));
        let ring = &status.rings[0];
        assert_eq!((ring.targeted, ring.in_progress, ring.waiting), (5, 2, 3));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exception_expiry_frees_its_devices_within_two_seconds() {
    if !enabled("exception_expiry_frees_its_devices_within_two_seconds") {
        return;
    }
    scenario("expiry", async |env| {
        let expires = Timestamp::now() + SignedDuration::from_secs(25);
        env.create::<PatchException>(&format!(
            r#"
apiVersion: patching.ringmaster.dev/v1alpha1
kind: PatchException
metadata: {{name: hold-two}}
spec:
  patches: [{id}]
  devices: {{names: [it-0, it-1]}}
  reason: e2e
  owner: e2e@ringmaster.dev
  expiresAt: "{expires}"
"#,
            id = env.patch_id()
        ))
        .await;
        env.tenant(10, 4).await;
        let planned = eventually(
            "the devices without exception are admitted",
            Duration::from_secs(20),
            || async {
                let p = env.planned().await;
                (p.len() >= 2).then_some(p)
            },
        )
        .await;
        assert_eq!(planned, vec!["it-2", "it-3"]);
        let exceptions: Api<PatchException> = Api::namespaced(env.client.clone(), &env.ns);
        let exc = exceptions.get("hold-two").await.expect("the exception");
        assert_eq!(
            exc.status.as_ref().and_then(|s| s.phase),
            Some(ExceptionPhase::Active)
        );
        assert!(
            Timestamp::now() < expires,
            "setup took too long for this scenario"
        );

        let freed_at = eventually(
            "the excepted devices are admitted after expiry",
            Duration::from_secs(40),
            || async {
                let p = env.planned().await;
                (p.len() == 4).then(Timestamp::now)
            },
        )
        .await;
        let late = freed_at.duration_since(expires);
        assert!(
            late <= SignedDuration::from_secs(2),
            "freed {late} after expiry"
        );
        assert!(late >= SignedDuration::ZERO, "freed before expiry: {late}");
        let exc = exceptions.get("hold-two").await.expect("the exception");
        assert_eq!(
            exc.status.as_ref().and_then(|s| s.phase),
            Some(ExceptionPhase::Expired),
            "kept as an audit record"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_sends_no_writes() {
    if !enabled("steady_state_sends_no_writes") {
        return;
    }
    scenario("steady", async |env| {
        env.tenant(2, 3).await;
        eventually(
            "ring it admits devices",
            Duration::from_secs(30),
            || async { (env.planned().await.len() == 2).then_some(()) },
        )
        .await;
        // Let the reconciles triggered by its own writes run.
        let mut last = env.metrics.writes_total();
        eventually("writes settle", Duration::from_secs(30), || {
            let now = env.metrics.writes_total();
            let settled = now == last;
            last = now;
            async move {
                if settled {
                    Some(())
                } else {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    None
                }
            }
        })
        .await;
        let before = env.metrics.writes_total();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            env.metrics.writes_total(),
            before,
            "no writes in steady state"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_status_records_first_release_and_severity() {
    if !enabled("patch_status_records_first_release_and_severity") {
        return;
    }
    scenario("catalog", async |env| {
        env.tenant(1, 1).await;
        let patches: Api<Patch> = Api::all(env.client.clone());
        let name = env.patch_name();
        let status = eventually(
            "the Patch gets a status",
            Duration::from_secs(30),
            || async {
                patches.get(&name).await.ok().and_then(|p| {
                    let released = p.spec.released_at;
                    p.status.filter(|s| s.first_released_at == Some(released))
                })
            },
        )
        .await;
        assert_eq!(status.severity, Some(Severity::Critical));

        // A re-release keeps the first release time.
        let later = json!({"spec": {"releasedAt": Timestamp::now().to_string()}});
        let first = status.first_released_at;
        patches
            .patch(&name, &PatchParams::default(), &KubePatch::Merge(&later))
            .await
            .expect("re-releasing");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let p = patches.get(&name).await.expect("the Patch");
        assert_eq!(p.status.and_then(|s| s.first_released_at), first);
    })
    .await;
}
