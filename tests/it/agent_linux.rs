//! The Linux agent's check-in loop (`ringmaster::agent::linux::agent`) against the fake
//! API server and a package manager kept in memory: what it reports, in which order it
//! writes, and what it does for each plan entry — install, fail, roll back a failed
//! attempt, fail a health check, wait for and finish a reboot, roll back on an uninstall
//! entry. The real apt and dnf backends have their own tests (agent_apt, agent_dnf).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use ringmaster::agent::linux::agent::{Agent, Config};
use ringmaster::agent::linux::applicability::Candidate;
use ringmaster::agent::linux::backend::{Backend, BackendError, Pin, RebootNeed};
use ringmaster::agent::linux::inventory::{Ecosystem, Flavour, InstalledPackage, Inventory};
use ringmaster::agent::linux::reboot;
use ringmaster::agent::linux::runner::SystemRunner;
use ringmaster::agent::linux::state::{Phase, Store};
use ringmaster::api::*;
use serde_json::{Value, json};

use crate::fake_api::Fake;

const NS: &str = "acme";
const DEVICE: &str = "db-1";
const ECO: &str = "Debian:12";

/// A package manager in memory: installed versions, versions offered, and what the next
/// install does.
#[derive(Default)]
struct Pm {
    installed: BTreeMap<String, String>,
    offered: BTreeMap<String, Vec<String>>,
    /// The install puts the packages at their pins but fails (a failing postinst).
    fail_after_unpack: bool,
    /// The install fails before changing anything, as a held lock would.
    locked: bool,
    reboot: bool,
    calls: Vec<String>,
    /// Binary → source package, for binaries built from a source of another name; the
    /// source version is the binary's without its epoch (as `bsdutils 1:2.38.1-5` is
    /// built from `util-linux 2.38.1-5`).
    sources: BTreeMap<String, String>,
}

/// A binary's version without its epoch.
fn no_epoch(v: &str) -> String {
    v.split_once(':').map_or(v, |(_, rest)| rest).to_string()
}

#[derive(Clone, Default)]
struct FakePm(Arc<Mutex<Pm>>);

impl FakePm {
    fn with(&self, f: impl FnOnce(&mut Pm)) {
        f(&mut self.0.lock().expect("lock"));
    }
    fn version(&self, package: &str) -> Option<String> {
        self.0.lock().expect("lock").installed.get(package).cloned()
    }
    fn calls(&self) -> Vec<String> {
        self.0.lock().expect("lock").calls.clone()
    }
}

fn pins(p: &[Pin]) -> String {
    p.iter()
        .map(|p| format!("{}={}", p.package, p.version))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Backend for FakePm {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn ecosystem(&self) -> Result<Ecosystem, BackendError> {
        Ok(Ecosystem(ECO.into()))
    }
    fn inventory(&self) -> Result<Inventory, BackendError> {
        let pm = self.0.lock().expect("lock");
        Ok(Inventory {
            flavour: Some(Flavour::Deb),
            packages: pm
                .installed
                .iter()
                .map(|(name, version)| InstalledPackage {
                    name: name.clone(),
                    arch: "all".into(),
                    version: version.clone(),
                    source: pm.sources.get(name).unwrap_or(name).clone(),
                    source_version: no_epoch(version),
                })
                .collect(),
        })
    }
    fn available(
        &self,
        packages: &[String],
        _refresh: bool,
    ) -> Result<BTreeMap<String, Vec<Candidate>>, BackendError> {
        let pm = self.0.lock().expect("lock");
        let candidate = |v: &String| Candidate {
            version: v.clone(),
            source_version: no_epoch(v),
        };
        Ok(packages
            .iter()
            .filter_map(|p| {
                let offered = pm.offered.get(p)?;
                Some((p.clone(), offered.iter().map(candidate).collect()))
            })
            .collect())
    }
    fn install(&self, p: &[Pin]) -> Result<String, BackendError> {
        let mut pm = self.0.lock().expect("lock");
        pm.calls.push(format!("install {}", pins(p)));
        if pm.locked {
            return Err(BackendError::Locked {
                tail: "E: Could not get lock /var/lib/dpkg/lock-frontend".into(),
            });
        }
        for pin in p {
            pm.installed
                .insert(pin.package.clone(), pin.version.clone());
        }
        if pm.fail_after_unpack {
            return Err(BackendError::Failed {
                command: "apt-get install".into(),
                code: Some(100),
                tail: "dpkg: error processing package demo (--configure): installed demo package post-installation script subprocess returned error exit status 1".into(),
            });
        }
        Ok("Setting up demo".into())
    }
    fn downgrade(&self, p: &[Pin]) -> Result<String, BackendError> {
        let mut pm = self.0.lock().expect("lock");
        pm.calls.push(format!("downgrade {}", pins(p)));
        for pin in p {
            pm.installed
                .insert(pin.package.clone(), pin.version.clone());
        }
        Ok(String::new())
    }
    fn reboot_required(&self) -> Result<RebootNeed, BackendError> {
        let pm = self.0.lock().expect("lock");
        Ok(if pm.reboot {
            RebootNeed::Required(vec!["demo".into()])
        } else {
            RebootNeed::None
        })
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("time")
}

fn patch(id: &str, package: &str, fixed: &str) -> Patch {
    let mut p: Patch = serde_json::from_value(json!({
        "apiVersion": "patching.ringmaster.dev/v1alpha1",
        "kind": "Patch",
        "metadata": {"name": id.to_lowercase()},
        "spec": {
            "id": id, "vendor": "Debian", "product": "Debian 12", "classification": "Security",
            "releasedAt": "2026-11-01T00:00:00Z",
            "packages": [{"ecosystem": ECO, "name": package, "kind": "Source", "fixed": fixed}],
        }
    }))
    .expect("patch");
    p.metadata.resource_version = Some("1".into());
    p
}

/// The world: the device in ring `servers` (with `ring` as its spec), a catalog, a fake
/// package manager, and an agent whose state lives in a fresh temp dir.
struct World {
    fake: Fake,
    pm: FakePm,
    agent: Agent,
    dir: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ring(extra: Value) -> Value {
    let mut spec = json!({"deviceSelector": {}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    json!({
        "apiVersion": "patching.ringmaster.dev/v1alpha1", "kind": "DeploymentRing",
        "metadata": {"name": "servers", "namespace": NS},
        "spec": spec,
    })
}

fn world(name: &str, ring_spec: Value, catalog: Vec<Patch>, pm: Pm) -> World {
    let fake = Fake::default();
    let device: ManagedDevice = serde_json::from_value(json!({
        "apiVersion": "patching.ringmaster.dev/v1alpha1", "kind": "ManagedDevice",
        "metadata": {"name": DEVICE, "namespace": NS},
        "spec": {},
        "status": {"compliance": {"ring": "servers"}},
    }))
    .expect("device");
    fake.insert("ManagedDevice", &device);
    fake.insert("DeploymentRing", &ring(ring_spec));
    let dir = std::env::temp_dir().join(format!(
        "ringmaster-agent-linux-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("boot_id"), "boot-1\n").expect("boot id");
    let pm = FakePm(Arc::new(Mutex::new(pm)));
    let reboot = reboot::Config {
        command: Some(format!("echo boot-2 > {}", dir.join("boot_id").display())),
        boot_id_file: dir.join("boot_id"),
    };
    let agent = agent_over(&fake, &pm, &dir, catalog, reboot);
    World {
        fake,
        pm,
        agent,
        dir,
    }
}

/// An agent process for the device in `fake`, with its state in `dir/state`, the
/// package manager `pm` and this catalog.
fn agent_over(
    fake: &Fake,
    pm: &FakePm,
    dir: &std::path::Path,
    catalog: Vec<Patch>,
    reboot: reboot::Config,
) -> Agent {
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&Event::Init);
    for p in catalog {
        writer.apply_watcher_event(&Event::InitApply(p));
    }
    writer.apply_watcher_event(&Event::InitDone);
    let config = Config {
        namespace: NS.into(),
        name: DEVICE.into(),
        agent: "ringmaster-agent/test (fake)".into(),
        heartbeat: Duration::from_secs(300),
        retry_uninstall: Duration::from_secs(600),
        reboot,
        drain_timeout: Duration::from_secs(60),
    };
    Agent::new(
        fake.mock_client(),
        config,
        reader,
        Arc::new(pm.clone()),
        Arc::new(SystemRunner),
        Ecosystem(ECO.into()),
        Store::new(&dir.join("state")),
    )
    .expect("agent")
}

fn demo_pm(installed: &str, offered: &[&str]) -> Pm {
    Pm {
        installed: BTreeMap::from([("demo".to_string(), installed.to_string())]),
        offered: BTreeMap::from([(
            "demo".to_string(),
            offered.iter().map(|s| s.to_string()).collect(),
        )]),
        ..Pm::default()
    }
}

impl World {
    fn plan(&self, id: &str, attempt: &str) {
        self.fake.merge(
            "ManagedDevice",
            Some(NS),
            DEVICE,
            json!({"spec": {"plan": {"install": {id: {
                "rollout": "servers.x", "notBefore": "2026-11-24T00:00:00Z",
                "attempt": attempt, "answerBy": "2026-11-30T00:00:00Z",
            }}}}}),
        );
    }

    fn uninstall(&self, id: &str) {
        self.fake.merge(
            "ManagedDevice",
            Some(NS),
            DEVICE,
            json!({"spec": {"plan": {"install": null, "uninstall": {id: {
                "rollout": "servers.x", "notBefore": "2026-11-24T00:00:00Z",
            }}}}}),
        );
    }

    fn reports(&self) -> Vec<DevicePatchStatus> {
        let device = self
            .fake
            .get("ManagedDevice", Some(NS), DEVICE)
            .expect("device");
        serde_json::from_value(device["status"]["patches"].clone()).unwrap_or_default()
    }

    fn report(&self, id: &str) -> DevicePatchStatus {
        self.reports()
            .into_iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no report for {id}: {:?}", self.reports()))
    }

    /// The states the agent wrote for `id`, in order.
    fn written_states(&self, id: &str) -> Vec<String> {
        self.fake
            .writes()
            .iter()
            .filter_map(|w| {
                w.body["status"]["patches"]
                    .as_array()?
                    .iter()
                    .find(|r| r["id"] == id)
                    .and_then(|r| r["state"].as_str().map(str::to_string))
            })
            .collect()
    }
}

const NOW: &str = "2026-11-24T21:00:00Z";

#[tokio::test]
async fn it_reports_what_applies_and_nothing_else() {
    let catalog = vec![
        patch("DSA-1", "demo", "1.0-2"),
        patch("DSA-2", "demo", "0.9-1"),
        patch("DSA-3", "absent", "1.0-1"),
    ];
    let mut w = world("reports", json!({}), catalog, demo_pm("1.0-1", &["1.0-2"]));
    w.agent.check_in(ts(NOW)).await.expect("check-in");
    let reports = w.reports();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].id, "DSA-1");
    assert_eq!(reports[0].state, PatchState::Missing);
    let device = w
        .fake
        .get("ManagedDevice", Some(NS), DEVICE)
        .expect("device");
    assert_eq!(device["status"]["lastSeen"], NOW);
    assert_eq!(device["status"]["agent"], "ringmaster-agent/test (fake)");
    assert!(
        device["status"]["compliance"].is_object(),
        "compliance untouched"
    );
    // Nothing changed: a second check-in writes nothing.
    w.fake.clear();
    w.agent
        .check_in(ts("2026-11-24T21:01:00Z"))
        .await
        .expect("check-in");
    assert!(w.fake.writes().is_empty(), "{:?}", w.fake.writes());
}

#[tokio::test]
async fn a_heartbeat_with_nothing_new_renews_the_lease_and_writes_no_status() {
    let catalog = vec![patch("DSA-1", "demo", "1.0-2")];
    let mut w = world(
        "heartbeat",
        json!({}),
        catalog,
        demo_pm("1.0-1", &["1.0-2"]),
    );
    w.agent.check_in(ts(NOW)).await.expect("check-in");
    let lease_path = "/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{DEVICE}"
        .replace("{NS}", NS)
        .replace("{DEVICE}", DEVICE);
    assert!(
        w.fake.get_path(&lease_path).is_none(),
        "a status write is a check-in"
    );
    // Five minutes on, nothing new: the heartbeat is the Lease, created.
    w.fake.clear();
    let beat = "2026-11-24T21:05:00Z";
    w.agent.check_in(ts(beat)).await.expect("check-in");
    let writes = w.fake.writes();
    assert!(
        writes.iter().all(|s| s.path.contains("/leases")),
        "no ManagedDevice write: {writes:#?}"
    );
    let lease = w.fake.get_path(&lease_path).expect("the Lease");
    assert_eq!(lease["metadata"]["labels"]["ringmaster.dev/device"], DEVICE);
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 900);
    assert_eq!(
        lease["spec"]["renewTime"].as_str().map(ts),
        Some(ts(beat)),
        "{lease:#}"
    );
    // And renewed in place at the next one.
    w.fake.clear();
    let next = "2026-11-24T21:10:00Z";
    w.agent.check_in(ts(next)).await.expect("check-in");
    let writes = w.fake.writes();
    assert_eq!(writes.len(), 1, "one renewal: {writes:#?}");
    assert_eq!(
        (writes[0].method.as_str(), writes[0].path.as_str()),
        ("PATCH", lease_path.as_str())
    );
    let lease = w.fake.get_path(&lease_path).expect("the Lease");
    assert_eq!(lease["spec"]["renewTime"].as_str().map(ts), Some(ts(next)));
    let device = w
        .fake
        .get("ManagedDevice", Some(NS), DEVICE)
        .expect("device");
    assert_eq!(device["status"]["lastSeen"], NOW, "status untouched since");
}

#[tokio::test]
async fn a_heartbeat_whose_lease_cannot_be_renewed_writes_last_seen_as_before() {
    let catalog = vec![patch("DSA-1", "demo", "1.0-2")];
    let mut w = world("no-lease", json!({}), catalog, demo_pm("1.0-1", &["1.0-2"]));
    w.agent.check_in(ts(NOW)).await.expect("check-in");
    // The agent may not write Leases (its RBAC predates them), or the server fails.
    let lease_path = format!("/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{DEVICE}");
    w.fake.break_path(&lease_path);
    let beat = "2026-11-24T21:05:00Z";
    w.agent.check_in(ts(beat)).await.expect("check-in");
    let device = w
        .fake
        .get("ManagedDevice", Some(NS), DEVICE)
        .expect("device");
    assert_eq!(device["status"]["lastSeen"], beat, "checked in by status");
}

#[tokio::test]
async fn a_heartbeat_whose_missing_lease_may_not_be_created_writes_last_seen() {
    let catalog = vec![patch("DSA-1", "demo", "1.0-2")];
    let mut w = world(
        "lease-forbidden",
        json!({}),
        catalog,
        demo_pm("1.0-1", &["1.0-2"]),
    );
    w.agent.check_in(ts(NOW)).await.expect("check-in");
    // Enrolled agents may not create Leases (enroll creates theirs); this one is gone.
    let leases = format!("/apis/coordination.k8s.io/v1/namespaces/{NS}/leases");
    w.fake.forbid(http::Method::POST, &leases);
    w.fake.clear();
    let beat = "2026-11-24T21:05:00Z";
    w.agent
        .check_in(ts(beat))
        .await
        .expect("a refused create is no error");
    let writes: Vec<(String, String)> = w
        .fake
        .writes()
        .iter()
        .map(|s| (s.method.to_string(), s.path.clone()))
        .collect();
    let device_status = format!(
        "/apis/patching.ringmaster.dev/v1alpha1/namespaces/{NS}/manageddevices/{DEVICE}/status"
    );
    assert_eq!(
        writes,
        [
            ("PATCH".to_string(), format!("{leases}/{DEVICE}")),
            ("POST".to_string(), leases.clone()),
            ("PATCH".to_string(), device_status),
        ],
        "the renewal, the refused create, then lastSeen"
    );
    let device = w
        .fake
        .get("ManagedDevice", Some(NS), DEVICE)
        .expect("device");
    assert_eq!(device["status"]["lastSeen"], beat, "checked in by status");
    // And again at the next heartbeat: it keeps trying, and keeps checking in.
    let next = "2026-11-24T21:10:00Z";
    w.agent.check_in(ts(next)).await.expect("check-in");
    let device = w
        .fake
        .get("ManagedDevice", Some(NS), DEVICE)
        .expect("device");
    assert_eq!(device["status"]["lastSeen"], next);
}

#[tokio::test]
async fn an_install_is_announced_first_pinned_to_the_smallest_fixed_version_and_read_back() {
    let catalog = vec![patch("DSA-1", "demo", "1.0-2")];
    let mut w = world(
        "install",
        json!({}),
        catalog,
        demo_pm("1.0-1", &["1.0-3", "1.0-2", "1.0-1"]),
    );
    w.agent.check_in(ts(NOW)).await.expect("first");
    w.plan("DSA-1", "servers.x@1");
    w.agent
        .check_in(ts("2026-11-24T21:01:00Z"))
        .await
        .expect("install");
    assert_eq!(w.pm.calls(), ["install demo=1.0-2"]);
    assert_eq!(w.pm.version("demo").as_deref(), Some("1.0-2"));
    assert_eq!(
        w.written_states("DSA-1"),
        ["Missing", "Installing", "Installed"]
    );
    let r = w.report("DSA-1");
    assert_eq!(r.state, PatchState::Installed);
    assert_eq!(r.attempt.as_deref(), Some("servers.x@1"));
    assert_eq!(r.attempts, 1);
    assert!(r.installed_at.is_some());
    assert!(w.agent.state().work.is_none());
    // The entry is answered: it is not attempted again.
    w.agent
        .check_in(ts("2026-11-24T21:05:00Z"))
        .await
        .expect("again");
    assert_eq!(w.pm.calls().len(), 1);
}

#[tokio::test]
async fn a_failed_install_script_fails_the_attempt_and_the_old_version_comes_back() {
    let catalog = vec![patch("DSA-1", "demo", "1.0-2")];
    let mut pm = demo_pm("1.0-1", &["1.0-2", "1.0-1"]);
    pm.fail_after_unpack = true;
    let mut w = world("fail", json!({}), catalog, pm);
    w.plan("DSA-1", "servers.x@1");
    w.agent.check_in(ts(NOW)).await.expect("check-in");
    assert_eq!(w.pm.calls(), ["install demo=1.0-2", "downgrade demo=1.0-1"]);
    assert_eq!(w.pm.version("demo").as_deref(), Some("1.0-1"));
    let r = w.report("DSA-1");
    assert_eq!(r.state, PatchState::Failed);
    let message = r.message.unwrap_or_default();
    assert!(message.contains("post-installation script"), "{message}");
    assert!(message.contains("rolled back to demo 1.0-1"), "{message}");
    // The failure stands at the next check-ins, and the attempt is not made again.
    w.agent
        .check_in(ts("2026-11-24T21:10:00Z"))
        .await
        .expect("again");
    assert_eq!(w.report("DSA-1").state, PatchState::Failed);
    assert_eq!(w.pm.calls().len(), 2);
}

#[tokio::test]
async fn a_held_lock_is_a_failure_with_the_package_managers_word() {
    let catalog = vec![patch("DSA-1", "demo", "1.0-2")];
    let mut pm = demo_pm("1.0-1", &["1.0-2"]);
    pm.locked = true;
    let mut w = world("locked", json!({}), catalog, pm);
    w.plan("DSA-1", "servers.x@1");
    w.agent.check_in(ts(NOW)).await.expect("check-in");
    let r = w.report("DSA-1");
    assert_eq!(r.state, PatchState::Failed);
    assert!(
        r.message.unwrap_or_default().contains("Could not get lock"),
        "the lock is named"
    );
    assert_eq!(w.pm.calls(), ["install demo=1.0-2"], "nothing to roll back");
}

#[tokio::test]
async fn no_fixed_version_offered_is_a_failure_naming_what_is_offered() {
    let catalog = vec![patch("DSA-1", "demo", "1.0-2")];
    let mut w = world(
        "unavailable",
        json!({}),
        catalog,
        demo_pm("1.0-1", &["1.0-1"]),
    );
    w.plan("DSA-1", "servers.x@1");
    w.agent.check_in(ts(NOW)).await.expect("check-in");
    let r = w.report("DSA-1");
    assert_eq!(r.state, PatchState::Failed);
    let message = r.message.unwrap_or_default();
    assert!(
        message.contains(">= 1.0-2") && message.contains("offered: 1.0-1"),
        "{message}"
    );
    assert!(w.pm.calls().is_empty());
}

#[tokio::test]
async fn a_failed_health_check_fails_the_install_and_rolls_it_back() {
    let catalog = vec![patch("DSA-1", "demo", "1.0-2")];
    let checks = json!({"healthChecks": {"commands": ["echo 'ledger is down' >&2; exit 3"]}});
    let mut w = world(
        "health",
        checks,
        catalog,
        demo_pm("1.0-1", &["1.0-2", "1.0-1"]),
    );
    w.plan("DSA-1", "servers.x@1");
    w.agent.check_in(ts(NOW)).await.expect("check-in");
    let r = w.report("DSA-1");
    assert_eq!(r.state, PatchState::Failed);
    let message = r.message.unwrap_or_default();
    assert!(message.contains("ledger is down"), "{message}");
    assert!(message.contains("rolled back"), "{message}");
    assert_eq!(w.pm.version("demo").as_deref(), Some("1.0-1"));
}

#[tokio::test]
async fn an_install_that_needs_a_reboot_waits_for_the_window_reboots_and_finishes_after_boot() {
    let catalog = vec![patch("DSA-1", "demo", "1.0-2")];
    // Windows 22:00–04:00 UTC every day; the install happens at 21:00, outside it (the
    // entry itself has no window).
    let ring_spec = json!({
        "maintenanceWindows": [{"days": ["Mon","Tue","Wed","Thu","Fri","Sat","Sun"],
                                "start": "22:00", "end": "04:00"}],
        "reboot": {"policy": "IfRequired", "gracePeriod": "0m"},
    });
    let mut pm = demo_pm("1.0-1", &["1.0-2"]);
    pm.reboot = true;
    let mut w = world("reboot", ring_spec, catalog, pm);
    w.plan("DSA-1", "servers.x@1");
    w.agent.check_in(ts(NOW)).await.expect("install");
    assert_eq!(w.report("DSA-1").state, PatchState::PendingReboot);
    let device = w
        .fake
        .get("ManagedDevice", Some(NS), DEVICE)
        .expect("device");
    assert_eq!(device["status"]["rebootPending"], true);
    assert!(matches!(
        w.agent.state().work.as_ref().map(|w| &w.phase),
        Some(Phase::AwaitingReboot {
            requested_at: None,
            ..
        })
    ));
    // Still outside the window: no reboot.
    w.agent
        .check_in(ts("2026-11-24T21:30:00Z"))
        .await
        .expect("wait");
    assert_eq!(
        std::fs::read_to_string(w.dir.join("boot_id")).expect("boot id"),
        "boot-1\n"
    );
    // In the window: the reboot command runs (here it writes a new boot id).
    w.agent
        .check_in(ts("2026-11-24T22:05:00Z"))
        .await
        .expect("reboot");
    assert_eq!(
        std::fs::read_to_string(w.dir.join("boot_id")).expect("boot id"),
        "boot-2\n"
    );
    assert_eq!(w.report("DSA-1").state, PatchState::PendingReboot);
    // After the boot: validated and Installed; the work is done and the state saved.
    w.agent
        .check_in(ts("2026-11-24T22:10:00Z"))
        .await
        .expect("after boot");
    let r = w.report("DSA-1");
    assert_eq!(r.state, PatchState::Installed);
    assert!(w.agent.state().work.is_none());
    let device = w
        .fake
        .get("ManagedDevice", Some(NS), DEVICE)
        .expect("device");
    assert_eq!(device["status"]["rebootPending"], false);
}

#[tokio::test]
async fn an_uninstall_entry_returns_the_packages_to_the_versions_the_install_replaced() {
    let catalog = vec![patch("DSA-1", "demo", "1.0-2")];
    let mut w = world(
        "rollback",
        json!({}),
        catalog,
        demo_pm("1.0-1", &["1.0-2", "1.0-1"]),
    );
    w.plan("DSA-1", "servers.x@1");
    w.agent.check_in(ts(NOW)).await.expect("install");
    assert_eq!(w.report("DSA-1").state, PatchState::Installed);
    w.uninstall("DSA-1");
    w.agent
        .check_in(ts("2026-11-24T22:00:00Z"))
        .await
        .expect("rollback");
    assert_eq!(w.pm.version("demo").as_deref(), Some("1.0-1"));
    assert_eq!(w.report("DSA-1").state, PatchState::RolledBack);
    assert!(w.agent.state().replaced.is_empty());
}

#[tokio::test]
async fn a_patch_it_did_not_install_cannot_be_rolled_back_and_says_so() {
    let catalog = vec![patch("DSA-1", "demo", "1.0-2")];
    let mut w = world(
        "norollback",
        json!({}),
        catalog,
        demo_pm("1.0-2", &["1.0-2", "1.0-1"]),
    );
    w.plan("DSA-1", "servers.x@1");
    w.agent.check_in(ts(NOW)).await.expect("found installed");
    assert_eq!(w.report("DSA-1").state, PatchState::Installed);
    w.uninstall("DSA-1");
    w.agent
        .check_in(ts("2026-11-24T22:00:00Z"))
        .await
        .expect("rollback");
    let r = w.report("DSA-1");
    assert_eq!(
        r.state,
        PatchState::Installed,
        "a failed uninstall keeps Installed"
    );
    assert!(
        r.message
            .unwrap_or_default()
            .contains("does not know the versions"),
        "says why"
    );
    assert!(w.pm.calls().is_empty());
}

#[tokio::test]
async fn an_install_cut_short_by_a_restart_is_judged_from_the_package_database() {
    let catalog = vec![patch("DSA-1", "demo", "1.0-2")];
    let w = world("restart", json!({}), catalog, demo_pm("1.0-1", &["1.0-2"]));
    w.plan("DSA-1", "servers.x@1");
    // The agent wrote Installing and saved its work, then died while the package manager
    // finished the install.
    w.fake.merge(
        "ManagedDevice",
        Some(NS),
        DEVICE,
        json!({"status": {"patches": [{"id": "DSA-1", "state": "Installing", "attempts": 1,
                                       "attempt": "servers.x@1"}]}}),
    );
    let state = json!({"work": {"patch": "DSA-1", "attempt": "servers.x@1",
                               "phase": {"phase": "installing"},
                               "startedAt": "2026-11-24T20:59:00Z"}});
    std::fs::create_dir_all(w.dir.join("state")).expect("dir");
    std::fs::write(w.dir.join("state/state.json"), state.to_string()).expect("state");
    w.pm.with(|pm| {
        pm.installed.insert("demo".into(), "1.0-2".into());
    });
    // A new agent process over the same state directory.
    let catalog = vec![patch("DSA-1", "demo", "1.0-2")];
    let mut agent = agent_over(&w.fake, &w.pm, &w.dir, catalog, reboot::Config::default());
    assert!(agent.state().work.is_some(), "the work is remembered");
    agent.check_in(ts(NOW)).await.expect("check-in");
    assert_eq!(w.report("DSA-1").state, PatchState::Installed);
    assert!(agent.state().work.is_none());
    assert!(w.pm.calls().is_empty(), "nothing installed twice");
}

/// Node mode: the device is a cluster node. An install cordons and drains it first (its
/// pods evicted), and the validated install uncordons it; the cordon is the agent's own.
#[tokio::test]
async fn in_node_mode_an_install_drains_the_node_first_and_uncordons_it_after() {
    use ringmaster::agent::linux::node::{DEFAULT_AGENT, NodeGuard};
    let catalog = vec![patch("DSA-1", "demo", "1.0-2")];
    let mut w = world("node", json!({}), catalog, demo_pm("1.0-1", &["1.0-2"]));
    w.fake.insert_core(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": DEVICE}, "spec": {"unschedulable": false},
    }));
    w.fake.insert_core(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "shop", "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "uid-web",
            "controller": true}]},
        "spec": {"nodeName": DEVICE, "containers": [{"name": "web", "image": "web:1"}]},
        "status": {"phase": "Running"},
    }));
    let guard = NodeGuard::new(w.fake.mock_client(), DEFAULT_AGENT);
    let catalog = vec![patch("DSA-1", "demo", "1.0-2")];
    w.agent =
        agent_over(&w.fake, &w.pm, &w.dir, catalog, reboot::Config::default()).with_node(guard);
    w.plan("DSA-1", "servers.x@1");
    w.agent.check_in(ts(NOW)).await.expect("install");
    assert_eq!(w.report("DSA-1").state, PatchState::Installed);
    assert!(w.fake.pod("shop", "web-1").is_none(), "the pod was evicted");
    let node = w.fake.node(DEVICE).expect("node");
    assert_ne!(
        node["spec"]["unschedulable"], true,
        "uncordoned after: {node}"
    );
    // The cordon came after Installing was reported and before the result; the validated
    // install was then uncordoned.
    let writes = w.fake.writes();
    let at = |pred: &dyn Fn(&crate::fake_api::Sent) -> bool| writes.iter().position(pred);
    let cordon = at(&|s| {
        s.path.ends_with(&format!("/nodes/{DEVICE}"))
            && s.body.to_string().contains("\"unschedulable\":true")
    });
    let installed = at(&|s| {
        s.body["status"]["patches"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["state"] == "Installed"))
    });
    let uncordon = writes
        .iter()
        .rposition(|s| s.path.ends_with(&format!("/nodes/{DEVICE}")));
    assert!(cordon.is_some() && installed.is_some(), "{writes:?}");
    let installing = at(&|s| {
        s.body["status"]["patches"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["state"] == "Installing"))
    });
    assert!(
        installing < cordon && cordon < installed && cordon < uncordon,
        "{installing:?} {cordon:?} {installed:?} {uncordon:?}"
    );
}

/// A Debian advisory's fixed version is its source's: a binary with an epoch of its own
/// (`bsdutils 1:…`, built from `util-linux`) is pinned by its source version, not taken
/// as fixed for its epoch.
#[tokio::test]
async fn a_binary_with_an_epoch_of_its_own_is_pinned_by_its_source_version() {
    let mut p = patch("DSA-UL", "util-linux", "2.38.1-5+deb12u3");
    p.metadata.name = Some("dsa-ul".into());
    let pm = Pm {
        installed: BTreeMap::from([("bsdutils".to_string(), "1:2.38.1-5+deb12u1".to_string())]),
        offered: BTreeMap::from([(
            "bsdutils".to_string(),
            vec![
                "1:2.38.1-5+deb12u4".to_string(),
                "1:2.38.1-5+deb12u3".to_string(),
                "1:2.38.1-5+deb12u1".to_string(),
            ],
        )]),
        sources: BTreeMap::from([("bsdutils".to_string(), "util-linux".to_string())]),
        ..Pm::default()
    };
    let mut w = world("epoch", json!({}), vec![p], pm);
    w.agent.check_in(ts(NOW)).await.expect("first");
    assert_eq!(w.report("DSA-UL").state, PatchState::Missing);
    w.plan("DSA-UL", "servers.x@1");
    w.agent
        .check_in(ts("2026-11-24T21:01:00Z"))
        .await
        .expect("install");
    assert_eq!(w.pm.calls(), ["install bsdutils=1:2.38.1-5+deb12u3"]);
    assert_eq!(w.report("DSA-UL").state, PatchState::Installed);
}
