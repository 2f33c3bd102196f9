//! The operator under load, against a real cluster (the one in `KUBECONFIG`).
//!
//! ```sh
//! RINGMASTER_LOAD=1 cargo bench --bench load                  # 1,000 then 10,000 devices
//! RINGMASTER_LOAD=1 RINGMASTER_LOAD_DEVICES=500 cargo bench --bench load
//! ```
//!
//! For each size it creates a namespace with one policy over three rings (IT 10%, pilot
//! 30%, broad 60%; ring IT admits everyone at once), registers that many simulated
//! devices that report one Critical patch as missing and never act on their plans, and
//! starts `ringmaster run` as a child process for that namespace. Once the operator has
//! settled, a person approves the patch (`spec.approval.approve`). It measures:
//!
//! - the time from the approval until every ring-IT device has its plan entry;
//! - the operator's API writes from the approval until it settles again, by kind, next
//!   to the fewest that could do the job;
//! - the operator's peak resident memory (`VmHWM`) and its memory once settled;
//! - the operator's CPU time from the approval until it settles;
//! - then, with the operator stopped, a bare client (this process) sending the same
//!   number of merge patches to the same devices, as many at once as the operator sends
//!   (`--max-concurrent-writes`, 32), timed the same way (until a watch has seen every
//!   one): the server's own pace for that many writes, and the ratio of the two times
//!   (1.0: the operator is as fast as a client that decides nothing).
//!
//! Without `RINGMASTER_LOAD=1` it says so and does nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch as KubePatch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use ringmaster::agent::{Behaviour, Fleet, FleetConfig};
use ringmaster::api::{DeploymentRing, ManagedDevice, Patch, PatchPolicy};
use serde_json::json;
use tokio::sync::watch;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> Result<()> {
    if std::env::var("RINGMASTER_LOAD").as_deref() != Ok("1") {
        eprintln!("load: skipped (set RINGMASTER_LOAD=1 to run against the cluster in KUBECONFIG)");
        return Ok(());
    }
    let sizes: Vec<u32> = match std::env::var("RINGMASTER_LOAD_DEVICES") {
        Ok(v) => v
            .split(',')
            .map(|s| s.trim().parse())
            .collect::<std::result::Result<_, _>>()?,
        Err(_) => vec![1_000, 10_000],
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = Client::try_default().await?;
        apply_crds(&client).await?;
        println!(
            "| devices | ring-IT devices | approval → all planned | bare client, same writes | ratio | writes (by kind) | minimum | operator CPU | peak memory | settled memory |"
        );
        println!("| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |");
        for n in sizes {
            let row = run_one(&client, n).await?;
            println!("{row}");
        }
        Ok(())
    })
}

async fn apply_crds(client: &Client) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in ringmaster::api::crds() {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply("ringmaster-load").force(),
            &KubePatch::Apply(&crd),
        )
        .await?;
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await??;
    }
    Ok(())
}

/// The operator child process; killed when dropped.
struct Operator {
    child: Child,
    metrics: u16,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Operator {
    fn start(ns: &str, port: u16, health: u16) -> Result<Self> {
        let child = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
            .args(["run", "--namespace", ns, "--log-format", "json"])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(["--health-addr", &format!("127.0.0.1:{health}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        Ok(Self {
            child,
            metrics: port,
        })
    }

    /// The CPU time it has used (user and system), from /proc.
    fn cpu(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // The fields after the command (which may hold spaces) in parentheses.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // USER_HZ is 100 on every Linux this runs on.
        Some(Duration::from_millis(ticks * 10))
    }

    /// `VmHWM` and `VmRSS` in MiB, from /proc.
    fn memory(&self) -> Option<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map(|kb| kb / 1024.0)
        };
        Some((field("VmHWM:")?, field("VmRSS:")?))
    }

    /// The operator's `/metrics`; None until it serves.
    fn scrape(&self) -> Option<String> {
        use std::io::{Read, Write};
        // A local scrape of a few kilobytes: a blocking read is fine in a bench.
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.metrics)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        conn.read_to_string(&mut body).ok()?;
        Some(body)
    }

    /// The tenant reconciles that succeeded so far.
    async fn reconciles(&self) -> Option<u64> {
        let body = self.scrape()?;
        body.lines().find_map(|l| {
            l.strip_prefix(r#"ringmaster_reconcile_total{controller="tenant",result="success"} "#)
                .and_then(|n| n.trim().parse::<f64>().ok())
                .map(|n| n as u64)
        })
    }

    /// The operator's API writes by kind, from its `/metrics`; None until it serves.
    async fn writes(&self) -> Option<BTreeMap<String, u64>> {
        let body = self.scrape()?;
        let mut by_kind = BTreeMap::new();
        for line in body.lines() {
            let Some(rest) = line.strip_prefix("ringmaster_api_writes_total{") else {
                continue;
            };
            let kind = rest
                .split("kind=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or("?");
            let n: u64 = rest
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0) as u64;
            *by_kind.entry(kind.to_string()).or_default() += n;
        }
        Some(by_kind)
    }

    /// Waits until the operator has reconciled its tenant once and its write count has
    /// not moved for `quiet` since; returns the counts. (Before its first reconcile the
    /// count is still for a while: at 100,000 devices the first list takes minutes.)
    async fn settle(&self, quiet: Duration, limit: Duration) -> Result<BTreeMap<String, u64>> {
        let began = Instant::now();
        while self.reconciles().await.unwrap_or(0) == 0 {
            if began.elapsed() > limit {
                return Err(format!("the operator did not reconcile within {limit:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let mut last = None;
        let mut since = Instant::now();
        loop {
            let now = self.writes().await;
            if now.is_some() && now == last {
                if since.elapsed() >= quiet {
                    return Ok(now.unwrap_or_default());
                }
            } else {
                last = now;
                since = Instant::now();
            }
            if began.elapsed() > limit {
                return Err(format!("the operator did not settle within {limit:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// A local port nobody listens on now.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn diff(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

async fn run_one(client: &Client, n: u32) -> Result<String> {
    let suffix = format!("{:x}", Timestamp::now().as_nanosecond() % 0xff_ffff);
    let ns = format!("rm-load-{n}-{suffix}");
    let id = format!("LOAD-{}", suffix.to_ascii_uppercase());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(ns.clone());
    namespaces
        .create(&PostParams::default(), &namespace)
        .await?;
    let outcome = measure(client, n, &ns, &id).await;
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
    let _ = Api::<Patch>::all(client.clone())
        .delete(&format!("load-{suffix}"), &DeleteParams::default())
        .await;
    outcome
}

async fn measure(client: &Client, n: u32, ns: &str, id: &str) -> Result<String> {
    let policy: PatchPolicy = serde_yaml::from_str(&format!(
        r#"
apiVersion: patching.ringmaster.dev/v1alpha1
kind: PatchPolicy
metadata: {{name: ws, namespace: {ns}}}
spec:
  deviceSelector: {{matchLabels: {{class: ws}}}}
  sla:
    - {{tier: default, critical: 7d, high: 14d, medium: 60d, low: 120d}}
  approval: {{default: Manual}}
  rings: [it, pilot, broad]
"#
    ))?;
    let policies: Api<PatchPolicy> = Api::namespaced(client.clone(), ns);
    policies.create(&PostParams::default(), &policy).await?;
    let rings: Api<DeploymentRing> = Api::namespaced(client.clone(), ns);
    for (name, max) in [("it", "100%"), ("pilot", "25%"), ("broad", "10%")] {
        let ring: DeploymentRing = serde_yaml::from_str(&format!(
            "apiVersion: patching.ringmaster.dev/v1alpha1\nkind: DeploymentRing\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{deviceSelector: {{matchLabels: {{ring: {name}}}}}, maxConcurrent: \"{max}\"}}\n"
        ))?;
        rings.create(&PostParams::default(), &ring).await?;
    }
    let patch: Patch = serde_json::from_value(json!({
        "apiVersion": "patching.ringmaster.dev/v1alpha1",
        "kind": "Patch",
        "metadata": {"name": format!("load-{}", id.trim_start_matches("LOAD-").to_ascii_lowercase())},
        "spec": {
            "id": id, "vendor": "Microsoft", "classification": "Security", "cvssScore": 9.8,
            "releasedAt": (Timestamp::now() - SignedDuration::from_hours(1)).to_string()
        }
    }))?;
    Api::<Patch>::all(client.clone())
        .create(&PostParams::default(), &patch)
        .await?;

    // The fleet: 10% IT, 30% pilot, 60% broad; report-only.
    let it = (n / 10).max(1);
    let pilot = (n * 3 / 10).max(1);
    let broad = n.saturating_sub(it + pilot).max(1);
    let (stop, stop_rx) = watch::channel(false);
    let mut fleets = Vec::new();
    let registering = Instant::now();
    for (prefix, count) in [("it", it), ("pilot", pilot), ("broad", broad)] {
        let fleet = Fleet::new(
            client.clone(),
            FleetConfig {
                namespace: ns.into(),
                devices: count,
                prefix: prefix.into(),
                labels: [
                    ("class".into(), "ws".into()),
                    ("ring".into(), prefix.into()),
                ]
                .into(),
                patches: vec![id.into()],
                behaviour: Behaviour::default(),
                check_in: SignedDuration::from_mins(5),
                heartbeat: SignedDuration::from_mins(30),
                concurrency: 64,
                follow_plans: false,
                ..FleetConfig::default()
            },
        );
        let stats = fleet.stats();
        let rx = stop_rx.clone();
        fleets.push((
            tokio::spawn(async move { fleet.run(rx).await }),
            stats,
            count,
        ));
    }
    for (_, stats, count) in &fleets {
        while stats.writes.load(std::sync::atomic::Ordering::Relaxed) < u64::from(*count) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    eprintln!(
        "load: {n} devices registered and reporting in {:.1}s",
        registering.elapsed().as_secs_f64()
    );

    let operator = Operator::start(ns, free_port()?, free_port()?)?;
    let before = operator
        .settle(Duration::from_secs(5), Duration::from_secs(600))
        .await?;
    let settled_memory = operator.memory();
    eprintln!("load: the operator settled after {before:?} writes");

    // Count ring-IT devices with an entry, from a watch.
    let id_owned = id.to_string();
    let (watch_task, mut planned_rx) = count_devices(client, ns, move |d| {
        d.spec.plan.install.contains_key(&id_owned)
    });
    let cpu_before = operator.cpu();

    let approved = Instant::now();
    policies
        .patch(
            "ws",
            &PatchParams::default(),
            &KubePatch::Merge(json!({"spec": {"approval": {"approve": [id]}}})),
        )
        .await?;
    let target = it as usize;
    tokio::time::timeout(
        Duration::from_secs(600),
        planned_rx.wait_for(|&p| p >= target),
    )
    .await??;
    let all_planned = approved.elapsed();
    let after = operator
        .settle(Duration::from_secs(5), Duration::from_secs(600))
        .await?;
    let memory = operator.memory();
    let cpu = operator
        .cpu()
        .zip(cpu_before)
        .map(|(a, b)| a.saturating_sub(b));
    watch_task.abort();
    let _ = stop.send(true);
    for (task, _, _) in fleets {
        let _ = task.await;
    }
    drop(operator);
    let bare = bare_client(client, ns, target).await?;

    let writes = diff(&after, &before);
    let total: u64 = writes.values().sum();
    // Fewest writes: the rollout's creation and its status, the policy's status, and one
    // plan entry per ring-IT device.
    let minimum = 3 + u64::from(it);
    let by_kind = writes
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mib = |m: Option<(f64, f64)>, peak: bool| {
        m.map(|(hwm, rss)| format!("{:.0} MiB", if peak { hwm } else { rss }))
            .unwrap_or_else(|| "?".into())
    };
    Ok(format!(
        "| {n} | {it} | {:.2} s | {:.2} s | {:.2} | {total} ({by_kind}) | {minimum} | {} | {} | {} |",
        all_planned.as_secs_f64(),
        bare.as_secs_f64(),
        bare.as_secs_f64() / all_planned.as_secs_f64(),
        cpu.map_or_else(|| "?".into(), |c| format!("{:.2} s", c.as_secs_f64())),
        mib(memory, true),
        mib(settled_memory, false),
    ))
}

/// A watch of the ring-IT devices that counts those for which `holds` is true.
fn count_devices(
    client: &Client,
    ns: &str,
    holds: impl Fn(&ManagedDevice) -> bool + Send + 'static,
) -> (tokio::task::JoinHandle<()>, watch::Receiver<usize>) {
    let devices: Api<ManagedDevice> = Api::namespaced(client.clone(), ns);
    let (tx, rx) = watch::channel(0usize);
    let task = tokio::spawn(async move {
        let mut yes = BTreeSet::new();
        let mut stream = watcher(devices, watcher::Config::default().labels("ring=it"))
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(Ok(d)) = stream.next().await {
            if holds(&d) {
                yes.insert(d.name_any());
            } else {
                yes.remove(&d.name_any());
            }
            let _ = tx.send(yes.len());
        }
    });
    (task, rx)
}

/// The server's own pace: one merge patch to each ring-IT device (an annotation), as
/// many in flight as the operator sends, from the first request until a watch has seen
/// every one.
async fn bare_client(client: &Client, ns: &str, target: usize) -> Result<Duration> {
    const MARK: &str = "load.ringmaster.dev/bare";
    let (watch_task, mut seen) = count_devices(client, ns, |d| d.annotations().contains_key(MARK));
    let devices: Api<ManagedDevice> = Api::namespaced(client.clone(), ns);
    let names: Vec<String> = devices
        .list(&kube::api::ListParams::default().labels("ring=it"))
        .await?
        .items
        .iter()
        .map(|d| d.name_any())
        .collect();
    // The watch has listed before the first write goes out.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let began = Instant::now();
    let body = json!({"metadata": {"annotations": {MARK: "1"}}});
    let sent: Vec<kube::Result<ManagedDevice>> = futures::stream::iter(names.iter())
        .map(|name| {
            let (devices, body) = (devices.clone(), body.clone());
            async move {
                devices
                    .patch(name, &PatchParams::default(), &KubePatch::Merge(&body))
                    .await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for result in sent {
        result?;
    }
    tokio::time::timeout(Duration::from_secs(600), seen.wait_for(|&p| p >= target)).await??;
    let took = began.elapsed();
    watch_task.abort();
    Ok(took)
}
