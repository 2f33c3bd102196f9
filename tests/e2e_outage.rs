//! End-to-end scenarios of the issue "Scale" against a real API server (the one in
//! `KUBECONFIG`): sharding across replicas, and recovery after an API server outage.
//! Every test is `#[ignore]`d; with `--ignored` and without `RINGMASTER_E2E=1` (or, for
//! the outage, without `RINGMASTER_E2E_APISERVER_CTL`) each fails saying what to set.
//!
//! ```sh
//! RINGMASTER_E2E=1 KUBECONFIG=~/.local/share/kube-dev/admin.kubeconfig \
//!   cargo test --test e2e_outage -- --ignored --test-threads=1 shards
//! # stops the API server for 30 s: everyone using it sees the outage
//! RINGMASTER_E2E=1 KUBECONFIG=… RINGMASTER_E2E_APISERVER_CTL=/work/shared/tools/apiserver \
//!   cargo test --test e2e_outage -- --ignored outage
//! ```
//!
//! The replicas are `ringmaster run` child processes (as in a Deployment); the devices
//! are the simulated fleet, in-process.

mod e2e_common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::FutureExt;
use jiff::{SignedDuration, Timestamp};
use ringmaster::agent::Behaviour;
use ringmaster::operator::shards::{lease_name, shard_of};
use tokio::time::Instant;

use e2e_common::*;

/// The shard Leases' base name in the scenario's namespace.
const LEASES: &str = "rm-e2e-shards";
/// The documented goal: reconciling again within 5 s of the API server's return.
const RECOVERY_GOAL: Duration = Duration::from_secs(5);

/// A `ringmaster run` child process with its health and metrics addresses.
struct Child {
    name: String,
    process: std::process::Child,
    health: String,
    metrics: String,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Starts `ringmaster run` on `namespaces` as `name` (env POD_NAME; POD_NAMESPACE is
/// the first namespace, where Leases are held), with extra flags.
fn operator_process(name: &str, namespaces: &[String], extra: &[&str]) -> Child {
    let health = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringmaster"));
    cmd.args(["run", "--log-format", "text"])
        .args(["--health-addr", &health, "--metrics-addr", &metrics])
        .args(extra)
        .env("POD_NAMESPACE", &namespaces[0])
        .env("POD_NAME", name)
        .env(
            "RUST_LOG",
            std::env::var("RINGMASTER_E2E_LOG")
                .unwrap_or_else(|_| "warn,ringmaster::operator::shards=info".into()),
        )
        .stdout(Stdio::null());
    for ns in namespaces {
        cmd.args(["--namespace", ns]);
    }
    if let Ok(k) = std::env::var("RINGMASTER_E2E_OPERATOR_KUBECONFIG") {
        cmd.env("KUBECONFIG", k);
    }
    Child {
        name: name.to_string(),
        process: cmd.spawn().expect("starting ringmaster run"),
        health,
        metrics,
    }
}

/// GETs a local URL: its status code and body, or None if nothing answered.
async fn http_get(url: &str) -> Option<(u16, String)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .ok()?;
    let response = client.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// The successful tenant reconciles a child process has counted.
async fn tenant_successes(child: &Child) -> Option<u64> {
    let (_, text) = http_get(&format!("http://{}/metrics", child.metrics)).await?;
    text.lines()
        .find(|l| {
            l.starts_with("ringmaster_reconcile_total{")
                && l.contains("controller=\"tenant\"")
                && l.contains("result=\"success\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Runs a scenario over `n` tenants (namespaces), tearing them all down even when it
/// fails.
async fn tenants_scenario<F>(test: &str, n: usize, body: F)
where
    F: AsyncFnOnce(&[Env]),
{
    let mut envs = Vec::new();
    for _ in 0..n {
        envs.push(setup(test, false).await);
    }
    let outcome = std::panic::AssertUnwindSafe(body(&envs))
        .catch_unwind()
        .await;
    for env in envs {
        env.teardown().await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A tenant mid-rollout: ring `it` admits one device at a time out of `devices` slow ones.
async fn rollout_tenant(env: &Env, devices: u32, max_concurrent: u32) {
    env.policy_and_rings(
        &format!(
            "{{deviceSelector: {{matchLabels: {{ring: it}}}}, maxConcurrent: {max_concurrent}}}"
        ),
        "{deviceSelector: {matchLabels: {ring: pilot}}, maxConcurrent: 100%}",
    )
    .await;
    env.catalog_patch("").await;
    let slow = Behaviour {
        install_min: SignedDuration::from_secs(2),
        install_max: SignedDuration::from_secs(3),
        ..Behaviour::default()
    };
    env.fleet("it", devices, &[("class", "ws"), ("ring", "it")], slow)
        .await;
}

/// How many devices of a tenant have started or finished installing its patch.
async fn admitted(env: &Env) -> usize {
    env.reports()
        .await
        .values()
        .filter(|r| r.1 > 0 || r.0 == ringmaster::api::PatchState::Installed)
        .count()
}

/// The holder of shard `shard`'s Lease in `ns`, if any.
async fn shard_holder(env: &Env, shard: u32) -> Option<String> {
    lease_holder(&env.client, &env.ns, &lease_name(LEASES, shard)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
async fn three_replicas_with_shards_take_over_a_dead_ones_tenants() {
    tenants_scenario("shards", 3, async |envs| {
        for env in envs {
            rollout_tenant(env, 6, 1).await;
        }
        let namespaces: Vec<String> = envs.iter().map(|e| e.ns.clone()).collect();
        allow_shard_leases(&envs[0]).await;
        let flags = ["--shards", "3", "--lease-name", LEASES];
        let mut replicas: Vec<Child> = ["replica-a", "replica-b", "replica-c"]
            .iter()
            .map(|name| operator_process(name, &namespaces, &flags))
            .collect();
        shards_spread_out(envs).await;
        a_killed_holders_tenant_goes_on(envs, &mut replicas).await;
        for env in envs {
            env.every_device_installs_once(6, 1).await;
        }
        a_terminated_replica_lets_go(&envs[0], replicas).await;
    })
    .await;
}

/// Lets the operator's identity (`RINGMASTER_E2E_OPERATOR_KUBECONFIG`, when set) write
/// the shard Leases in `env`'s namespace, which the replicas take as their own
/// (`POD_NAMESPACE`): what the chart's leader-election Role grants in the release
/// namespace.
async fn allow_shard_leases(env: &Env) {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    use kube::Api;
    use kube::api::PostParams;
    if std::env::var_os("RINGMASTER_E2E_OPERATOR_KUBECONFIG").is_none() {
        return;
    }
    let user = user_name(&operator_client().await).await;
    let names: Vec<String> = (0..3).map(|shard| lease_name(LEASES, shard)).collect();
    let role: Role = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "shard-leases"},
        "rules": [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": names, "verbs": ["get", "update", "patch"]}
        ]
    }))
    .expect("a Role");
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "shard-leases"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "shard-leases"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
    }))
    .expect("a RoleBinding");
    Api::<Role>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("creating the shard Leases' Role");
    Api::<RoleBinding>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding the shard Leases' Role");
}

/// Every shard Lease's holder, once all three are held.
async fn holders(lease_env: &Env) -> Option<Vec<String>> {
    let mut holders = Vec::new();
    for shard in 0..3 {
        holders.push(shard_holder(lease_env, shard).await?);
    }
    Some(holders)
}

/// Waits until every shard is held, every tenant has admitted a device, and each replica
/// holds one shard.
async fn shards_spread_out(envs: &[Env]) {
    let lease_env = &envs[0];
    let first = eventually("every shard is held", Duration::from_secs(60), || {
        holders(lease_env)
    })
    .await;
    eprintln!("shard holders: {first:?}");
    for env in envs {
        eventually(
            "each tenant admits a device",
            Duration::from_secs(60),
            || async { (!env.planned().await.is_empty()).then_some(()) },
        )
        .await;
    }
    let balanced = eventually("the shards spread out", Duration::from_secs(60), || async {
        let holders = holders(lease_env).await?;
        let mut distinct = holders.clone();
        distinct.sort();
        distinct.dedup();
        (distinct.len() == 3).then_some(holders)
    })
    .await;
    eprintln!("balanced: {balanced:?}");
}

/// Kills (SIGKILL: no release) the replica holding the first tenant's shard; checks
/// that another takes the shard within 25 s and admits the tenant's next device.
async fn a_killed_holders_tenant_goes_on(envs: &[Env], replicas: &mut Vec<Child>) {
    let lease_env = &envs[0];
    let shard = shard_of(&envs[0].ns, 3);
    let victim = shard_holder(lease_env, shard).await.expect("a holder");
    let i = replicas
        .iter()
        .position(|r| r.name == victim)
        .expect("the holder is one of ours");
    // Without an operator at most one more device starts (one admitted, maxConcurrent
    // 1): two more than now started means the heir admitted one.
    let started = admitted(&envs[0]).await;
    assert!(
        started <= 4,
        "the first tenant's rollout is still under way: {started} of 6 started"
    );
    drop(replicas.remove(i));
    let killed = Timestamp::now();
    let survivors: Vec<String> = replicas.iter().map(|r| r.name.clone()).collect();
    let heir = eventually(
        "another replica takes the shard",
        Duration::from_secs(60),
        || async {
            shard_holder(lease_env, shard)
                .await
                .filter(|h| survivors.contains(h))
        },
    )
    .await;
    let took = Timestamp::now().duration_since(killed);
    eprintln!("shard {shard} of {victim}: taken over by {heir} after {took:#}");
    assert!(
        took <= SignedDuration::from_secs(25),
        "took {took:#} to take over a 15 s shard Lease"
    );
    // The dead replica's tenant goes on under the heir.
    eventually(
        "the first tenant admits again",
        Duration::from_secs(60),
        || async { (admitted(&envs[0]).await >= started + 2).then_some(()) },
    )
    .await;
    let resumed = Timestamp::now().duration_since(killed);
    eprintln!("the first tenant started a device the heir admitted {resumed:#} after the kill");
}

/// Sends SIGTERM to the first of two replicas: it lets its shards go at once, and the
/// last one holds all three within a few rounds, not a Lease duration.
async fn a_terminated_replica_lets_go(lease_env: &Env, mut replicas: Vec<Child>) {
    let leaving = replicas.remove(0);
    let last = replicas[0].name.clone();
    let pid = i32::try_from(leaving.process.id()).expect("a pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let terminated = Timestamp::now();
    eventually(
        "the last replica holds every shard",
        Duration::from_secs(60),
        || async {
            for shard in 0..3 {
                if shard_holder(lease_env, shard).await.as_deref() != Some(last.as_str()) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    let took = Timestamp::now().duration_since(terminated);
    eprintln!(
        "after a SIGTERM to {}: {last} held every shard after {took:#}",
        leaving.name
    );
    assert!(
        took <= SignedDuration::from_secs(12),
        "took {took:#} to take over released shards"
    );
    drop(leaving);
}

/// The API server's control scripts, from `RINGMASTER_E2E_APISERVER_CTL`.
fn apiserver_ctl() -> PathBuf {
    require_cluster();
    match std::env::var("RINGMASTER_E2E_APISERVER_CTL") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => panic!(
            "the outage scenario stops and starts the API server: set \
             RINGMASTER_E2E_APISERVER_CTL to the directory of its stop.sh and start.sh \
             (e.g. /work/shared/tools/apiserver)"
        ),
    }
}

/// The API server stopped; started again when dropped, whatever happened.
struct Outage {
    ctl: PathBuf,
    started: bool,
}

impl Outage {
    fn begin(ctl: PathBuf) -> Self {
        let status = Command::new(ctl.join("stop.sh"))
            .arg("kube-apiserver")
            .status()
            .expect("running stop.sh");
        let outage = Self {
            ctl,
            started: false,
        };
        assert!(status.success(), "stop.sh kube-apiserver: {status}");
        outage
    }

    fn end(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        let status = Command::new(self.ctl.join("start.sh")).status();
        assert!(
            matches!(status, Ok(s) if s.success()),
            "start.sh: {status:?}; start the API server by hand"
        );
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if !self.started {
            self.started = true;
            match Command::new(self.ctl.join("start.sh")).status() {
                Ok(s) if s.success() => {}
                other => eprintln!("start.sh after a failed scenario: {other:?}; start it by hand"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: RINGMASTER_E2E=1, KUBECONFIG and RINGMASTER_E2E_APISERVER_CTL, run with --ignored"]
async fn after_a_30s_api_server_outage_it_reconciles_again_within_5s() {
    let ctl = apiserver_ctl();
    tenants_scenario("outage", 1, async |envs| {
        let env = &envs[0];
        rollout_tenant(env, 6, 2).await;
        let op = operator_process("outage-operator", std::slice::from_ref(&env.ns), &[]);
        let ready = format!("http://{}/readyz", op.health);
        eventually("the operator is ready", Duration::from_secs(60), || async {
            (http_get(&ready).await?.0 == 200).then_some(())
        })
        .await;
        eventually("the first devices install", Duration::from_secs(60), || async {
            let r = env.reports().await;
            r.values()
                .any(|s| s.0 == ringmaster::api::PatchState::Installing)
                .then_some(())
        })
        .await;

        let mut outage = Outage::begin(ctl.clone());
        let down = Instant::now();
        let (code, body) = eventually("not ready during the outage", Duration::from_secs(20), || async {
            http_get(&ready).await.filter(|(c, _)| *c == 503)
        })
        .await;
        eprintln!("readyz {code} {:.1?} after the stop: {}", down.elapsed(), body.trim());
        assert!(body.contains("API server is unreachable"), "{body}");
        let liveness = http_get(&format!("http://{}/healthz", op.health)).await;
        assert_eq!(liveness.map(|l| l.0), Some(200), "liveness does not follow the API server");
        tokio::time::sleep(Duration::from_secs(30).saturating_sub(down.elapsed())).await;
        let before = tenant_successes(&op)
            .await
            .expect("the operator's metrics answer");
        outage.end();
        let back = Instant::now();

        // Both watched at once, every 100 ms, for up to a minute.
        let (mut reconciled, mut ready_again) = (None, None);
        while (reconciled.is_none() || ready_again.is_none()) && back.elapsed() < Duration::from_secs(60) {
            if reconciled.is_none() && tenant_successes(&op).await.is_some_and(|n| n > before) {
                reconciled = Some(back.elapsed());
            }
            if ready_again.is_none() && http_get(&ready).await.is_some_and(|r| r.0 == 200) {
                ready_again = Some(back.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let reconciled = reconciled.expect("reconciling again within a minute");
        let ready_again = ready_again.expect("ready again within a minute");
        eprintln!(
            "after the API server's return: reconciled after {reconciled:.1?}, ready after {ready_again:.1?}"
        );
        assert!(
            reconciled <= RECOVERY_GOAL,
            "reconciling again took {reconciled:?}, over the goal of {RECOVERY_GOAL:?}"
        );
        assert!(
            ready_again <= RECOVERY_GOAL,
            "ready again after {ready_again:?}, over the goal of {RECOVERY_GOAL:?}"
        );
        // The simulated agents watch at an agent's pace (`watch::Pace::Agent`): a watch
        // that failed just before the server came back may wait up to a minute more.
        env.every_device_installs_once_within(6, 2, Duration::from_secs(150))
            .await;
        drop(op);
    })
    .await;
}
