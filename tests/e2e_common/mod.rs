//! Helpers shared by the end-to-end test binaries (`tests/e2e.rs`, `tests/e2e_outage.rs`):
//! the cluster check, a scenario's namespace and tenant, the in-process operator and
//! fleet, `ringmaster run` child processes, and polling. Each binary uses part of them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch as KubePatch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};
use ringmaster::agent::{Behaviour, Fleet, FleetConfig};
use ringmaster::api::*;
use ringmaster::operator::metrics::Metrics;
use ringmaster::operator::{Operator, OperatorConfig, ReportConfig};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Panics unless `RINGMASTER_E2E=1`: a scenario run with `--ignored` without it (say by
/// `cargo test -- --include-ignored`) fails saying what to set, instead of passing or
/// touching whatever cluster `KUBECONFIG` happens to name.
pub(crate) fn require_cluster() {
    if std::env::var("RINGMASTER_E2E").as_deref() != Ok("1") {
        panic!(
            "the e2e suite needs a cluster: set RINGMASTER_E2E=1 and KUBECONFIG \
             (a kubeconfig for a cluster it may create namespaces and CRDs in) and run \
             `RINGMASTER_E2E=1 cargo test --test e2e -- --ignored`"
        );
    }
}

/// A namespace with an operator watching it.
pub(crate) struct Env {
    pub(crate) client: Client,
    pub(crate) ns: String,
    /// A suffix that makes this scenario's patch ids and names unique in the cluster.
    pub(crate) suffix: String,
    pub(crate) metrics: Arc<Metrics>,
    /// The test's own user name (as the API server sees it).
    pub(crate) user: String,
    pub(crate) operator: tokio::sync::Mutex<Option<Running>>,
    pub(crate) fleets: tokio::sync::Mutex<Vec<Running>>,
}

/// A task running until its stop channel says so.
pub(crate) struct Running {
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) task: JoinHandle<Result<(), String>>,
}

impl Running {
    pub(crate) async fn stop(self, what: &str) {
        let _ = self.stop.send(true);
        match tokio::time::timeout(Duration::from_secs(30), self.task).await {
            Ok(Ok(Ok(()))) => {}
            other => eprintln!("{what} did not stop cleanly: {other:?}"),
        }
    }
}

/// The operator's client: the identity in `RINGMASTER_E2E_OPERATOR_KUBECONFIG` when set
/// (e.g. the Helm chart's ServiceAccount, to prove its RBAC is enough), else the same
/// identity as the test.
pub(crate) async fn operator_client() -> Client {
    let Ok(path) = std::env::var("RINGMASTER_E2E_OPERATOR_KUBECONFIG") else {
        return Client::try_default()
            .await
            .expect("a cluster in KUBECONFIG");
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("reading RINGMASTER_E2E_OPERATOR_KUBECONFIG {path}: {e}"));
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("RINGMASTER_E2E_OPERATOR_KUBECONFIG {path}: {e}"));
    Client::try_from(config).expect("the operator's client")
}

/// The user name the API server knows `client` by (a SelfSubjectReview).
pub(crate) async fn user_name(client: &Client) -> String {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("a SelfSubjectReview");
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .expect("the API server names the client's user")
}

pub(crate) fn unique(test: &str) -> String {
    let nanos = Timestamp::now().as_nanosecond();
    format!("{test}-{:x}", nanos % 0xff_ffff)
}

pub(crate) async fn apply_crds(client: &Client) {
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

/// Logs what runs in the test process (the simulated fleets, an in-process operator)
/// to stderr, filtered by `RINGMASTER_E2E_LOG`, when that is set; once per process.
fn log_in_process() {
    if let Ok(filter) = std::env::var("RINGMASTER_E2E_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}

pub(crate) async fn setup(test: &str, with_operator: bool) -> Env {
    require_cluster();
    log_in_process();
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

    let metrics = Arc::new(Metrics::new());
    let user = user_name(&client).await;
    let env = Env {
        client,
        ns,
        suffix,
        metrics,
        user,
        operator: tokio::sync::Mutex::new(None),
        fleets: tokio::sync::Mutex::new(Vec::new()),
    };
    if with_operator {
        env.start_operator().await;
    }
    env
}

impl Env {
    pub(crate) fn patch_id(&self) -> String {
        format!("E2E-{}", self.suffix.to_ascii_uppercase())
    }

    pub(crate) fn patch_name(&self) -> String {
        format!("e2e-{}", self.suffix)
    }

    /// Starts the operator (the same code `ringmaster run` runs, without its servers
    /// and lease) and waits until it is ready.
    pub(crate) async fn start_operator(&self) {
        self.start_operator_with(ReportConfig::default()).await;
    }

    /// Starts the operator with a way of closing months, and waits until it is ready.
    pub(crate) async fn start_operator_with(&self, reports: ReportConfig) {
        let operator = Operator::with_metrics(
            operator_client().await,
            OperatorConfig {
                namespaces: Some(vec![self.ns.clone()]),
                instance: Some(format!("e2e-{}", self.suffix)),
                reports,
                ..OperatorConfig::default()
            },
            Arc::clone(&self.metrics),
        );
        let ready = operator.readiness();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            // The lead is held for good: the channel's sender lives in the task.
            let (_leader, leader_rx) = watch::channel(true);
            operator
                .run(leader_rx, stop_rx)
                .await
                .map_err(|e| e.to_string())
        });
        *self.operator.lock().await = Some(Running { stop, task });
        eventually("the operator is ready", Duration::from_secs(60), || {
            let ready = Arc::clone(&ready);
            async move { ready.is_ready().then_some(()) }
        })
        .await;
    }

    /// Kills the operator's task at once, as a crash would (nothing in flight finishes).
    pub(crate) async fn kill_operator(&self) {
        if let Some(op) = self.operator.lock().await.take() {
            op.task.abort();
            let _ = op.task.await;
        }
    }

    /// Stops the operator, letting the reconciles in flight finish.
    pub(crate) async fn stop_operator(&self) {
        if let Some(op) = self.operator.lock().await.take() {
            op.stop("the operator").await;
        }
    }

    /// Starts a simulated fleet (`ringmaster agent --simulate`) in this namespace,
    /// reporting the scenario's patch; waits until its devices are registered.
    pub(crate) async fn fleet(
        &self,
        prefix: &str,
        n: u32,
        labels: &[(&str, &str)],
        behaviour: Behaviour,
    ) {
        let config = FleetConfig {
            namespace: self.ns.clone(),
            devices: n,
            prefix: prefix.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            patches: vec![self.patch_id()],
            behaviour,
            check_in: SignedDuration::from_secs(1),
            heartbeat: SignedDuration::from_secs(30),
            ..FleetConfig::default()
        };
        let fleet = Fleet::new(self.client.clone(), config);
        let stats = fleet.stats();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move { fleet.run(stop_rx).await.map_err(|e| e.to_string()) });
        self.fleets.lock().await.push(Running { stop, task });
        eventually("the fleet registers", Duration::from_secs(30), || {
            let stats = Arc::clone(&stats);
            async move { (stats.writes.load(Ordering::Relaxed) >= u64::from(n)).then_some(()) }
        })
        .await;
    }

    pub(crate) async fn teardown(self) {
        self.delete_chart_policies().await;
        let patch_name = self.patch_name();
        for fleet in self.fleets.lock().await.drain(..) {
            fleet.stop("a fleet").await;
        }
        self.stop_operator().await;
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
    pub(crate) async fn create<K>(&self, yaml: &str) -> K
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
    pub(crate) async fn tenant(&self, max_concurrent: u32, n: usize) {
        let id = self.patch_id();
        self.policy_and_rings(
            &format!(
                "{{deviceSelector: {{matchLabels: {{ring: it}}}}, maxConcurrent: {max_concurrent}, promotion: {{soak: 24h, minSuccessRate: 90}}}}"
            ),
            "{deviceSelector: {matchLabels: {ring: pilot}}, maxConcurrent: 50%}",
        )
        .await;
        self.catalog_patch("").await;
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
    pub(crate) async fn planned(&self) -> Vec<String> {
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

impl Env {
    /// Creates the scenario's Patch (Critical, released a day ago) with extra spec fields.
    pub(crate) async fn catalog_patch(&self, extra: &str) {
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
  {extra}
"#,
            name = self.patch_name(),
            id = self.patch_id(),
        ))
        .expect("patch yaml");
        Api::<Patch>::all(self.client.clone())
            .create(&PostParams::default(), &patch)
            .await
            .expect("creating the Patch");
    }

    /// Policy `ws` (Critical patches approved at once) over rings `it` then `pilot`,
    /// with the given ring specs (YAML flow mappings).
    pub(crate) async fn policy_and_rings(&self, it: &str, pilot: &str) {
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
        for (name, spec) in [("it", it), ("pilot", pilot)] {
            self.create::<DeploymentRing>(&format!(
                "apiVersion: patching.ringmaster.dev/v1alpha1\nkind: DeploymentRing\nmetadata: {{name: {name}}}\nspec: {spec}\n"
            ))
            .await;
        }
    }

    /// The scenario's patch on every device: (state, attempts, installedAt), by name.
    pub(crate) async fn reports(&self) -> BTreeMap<String, (PatchState, u32, Option<Timestamp>)> {
        let id = self.patch_id();
        let devices: Api<ManagedDevice> = Api::namespaced(self.client.clone(), &self.ns);
        devices
            .list(&ListParams::default())
            .await
            .expect("listing devices")
            .items
            .into_iter()
            .filter_map(|d| {
                let name = d.metadata.name.clone()?;
                let r = d.status?.patches.into_iter().find(|p| p.id == id)?;
                Some((name, (r.state, r.attempts, r.installed_at)))
            })
            .collect()
    }

    /// Watches until all `n` devices have installed the scenario's patch, and checks
    /// that no more than `max_concurrent` were ever seen installing at once and that each
    /// was attempted once.
    pub(crate) async fn every_device_installs_once(&self, n: usize, max_concurrent: usize) {
        self.every_device_installs_once_within(n, max_concurrent, Duration::from_secs(90))
            .await;
    }

    /// [`Env::every_device_installs_once`], waiting up to `limit`.
    pub(crate) async fn every_device_installs_once_within(
        &self,
        n: usize,
        max_concurrent: usize,
        limit: Duration,
    ) {
        let most_in_progress = std::sync::atomic::AtomicUsize::new(0);
        eventually("every device installs", limit, || {
            let most = &most_in_progress;
            async move {
                let r = self.reports().await;
                let busy = r.values().filter(|s| s.0 == PatchState::Installing).count();
                most.fetch_max(busy, Ordering::Relaxed);
                (r.len() == n && r.values().all(|s| s.0 == PatchState::Installed)).then_some(())
            }
        })
        .await;
        let most = most_in_progress.load(Ordering::Relaxed);
        assert!(
            most <= max_concurrent,
            "maxConcurrent {max_concurrent}: saw {most}"
        );
        let reports = self.reports().await;
        for (name, (_, attempts, _)) in &reports {
            assert_eq!(*attempts, 1, "{name} was admitted once: {reports:?}");
        }
    }

    /// The scenario's rollout under policy `ws`, once it exists.
    pub(crate) async fn rollout(&self) -> Option<PatchRollout> {
        let name = format!("ws.{}", self.patch_id().to_ascii_lowercase());
        Api::<PatchRollout>::namespaced(self.client.clone(), &self.ns)
            .get_opt(&name)
            .await
            .expect("reading the rollout")
    }
}

pub(crate) fn quick(failure_rate: f64) -> Behaviour {
    Behaviour {
        install_min: SignedDuration::from_secs(1),
        install_max: SignedDuration::from_secs(2),
        failure_rate,
        ..Behaviour::default()
    }
}

/// The operator's API writes by kind and verb, from its metrics, except to the shared
/// Patch catalog: scenarios running side by side create Patches, and every operator
/// stamps a new Patch's status (a write it owes, not a steady-state one).
pub(crate) fn writes_by_kind(metrics: &Metrics) -> Vec<String> {
    metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("ringmaster_api_writes_total{"))
        .filter(|l| !l.contains("kind=\"Patch\""))
        .map(str::to_string)
        .collect()
}

/// Polls `check` every 100 ms until it gives a value, or panics after `limit`.
pub(crate) async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
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
pub(crate) async fn scenario<F>(test: &str, body: F)
where
    F: AsyncFnOnce(&Env),
{
    scenario_with(test, true, body).await;
}

/// A scenario whose operator (if any) the body starts itself.
pub(crate) async fn scenario_with<F>(test: &str, with_operator: bool, body: F)
where
    F: AsyncFnOnce(&Env),
{
    let env = setup(test, with_operator).await;
    let outcome = AssertUnwindSafe(body(&env)).catch_unwind().await;
    env.teardown().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A `ringmaster run --leader-elect` child process, killed when dropped.
pub(crate) struct Replica {
    pub(crate) name: String,
    pub(crate) child: std::process::Child,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free local port.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Env {
    /// Where the replicas hold their Lease: `RINGMASTER_E2E_LEASE` (`namespace/name`,
    /// e.g. the chart's release namespace and lease name when the operator runs as the
    /// chart's ServiceAccount), else this scenario's namespace.
    pub(crate) fn lease(&self) -> (String, String) {
        match std::env::var("RINGMASTER_E2E_LEASE") {
            Ok(v) => {
                let (ns, name) = v
                    .split_once('/')
                    .expect("RINGMASTER_E2E_LEASE is namespace/name");
                (ns.to_string(), name.to_string())
            }
            Err(_) => (self.ns.clone(), "ringmaster-e2e-leader".to_string()),
        }
    }

    /// Starts `ringmaster run --leader-elect` as a separate process named `name`.
    pub(crate) fn replica(&self, name: &str) -> Replica {
        let (lease_ns, lease_name) = self.lease();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ringmaster"));
        cmd.args(["run", "--leader-elect", "--log-format", "text"])
            .args(["--namespace", &self.ns, "--lease-name", &lease_name])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--health-addr", &format!("127.0.0.1:{}", free_port())])
            .env("POD_NAMESPACE", &lease_ns)
            .env("POD_NAME", name)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null());
        if let Ok(k) = std::env::var("RINGMASTER_E2E_OPERATOR_KUBECONFIG") {
            cmd.env("KUBECONFIG", k);
        }
        Replica {
            name: name.to_string(),
            child: cmd.spawn().expect("starting a replica"),
        }
    }

    /// The Lease's holder, if any.
    pub(crate) async fn lease_holder(&self) -> Option<String> {
        let (ns, name) = self.lease();
        lease_holder(&self.client, &ns, &name).await
    }
}

/// The holder of Lease `ns/name`, if it exists and is held.
pub(crate) async fn lease_holder(client: &Client, ns: &str, name: &str) -> Option<String> {
    Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

impl Env {
    /// Deletes every policy [`chart_policy`] made for this scenario, and its binding
    /// (at teardown, so a failed scenario leaves none behind to refuse another's writes).
    pub(crate) async fn delete_chart_policies(&self) {
        use k8s_openapi::api::admissionregistration::v1::{
            ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
        };
        let prefix = format!("rm-e2e-{}-", self.suffix);
        let dp = DeleteParams::default();
        let bindings = Api::<ValidatingAdmissionPolicyBinding>::all(self.client.clone());
        let policies = Api::<ValidatingAdmissionPolicy>::all(self.client.clone());
        let names = |list: Result<Vec<Option<String>>, kube::Error>| -> Vec<String> {
            list.unwrap_or_default()
                .into_iter()
                .flatten()
                .filter(|n| n.starts_with(&prefix))
                .collect()
        };
        let listed = bindings.list(&ListParams::default()).await;
        for name in names(listed.map(|l| l.items.into_iter().map(|b| b.metadata.name).collect())) {
            if let Err(e) = bindings.delete(&name, &dp).await {
                eprintln!("deleting binding {name}: {e}");
            }
        }
        let listed = policies.list(&ListParams::default()).await;
        for name in names(listed.map(|l| l.items.into_iter().map(|p| p.metadata.name).collect())) {
            if let Err(e) = policies.delete(&name, &dp).await {
                eprintln!("deleting policy {name}: {e}");
            }
        }
    }
}
