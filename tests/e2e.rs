//! End-to-end scenarios against a real cluster (the one in `KUBECONFIG`). Every test is
//! `#[ignore]`d, so a plain `cargo test` reports them as ignored rather than passed; they
//! run with `--ignored` and `RINGMASTER_E2E=1`, and `--ignored` without the variable
//! fails each test saying what to set (a scenario never reports passed without running).
//!
//! Each scenario applies the CRDs (server-side apply of `ringmaster::api::crds()`),
//! creates a namespace of its own, runs the operator in-process scoped to that namespace
//! (the same code `ringmaster run` runs, without its servers and lease), creates a
//! tenant, checks what the operator does, and deletes the namespace and its Patches.
//!
//! ```sh
//! RINGMASTER_E2E=1 cargo test --test e2e -- --ignored --test-threads=2
//! ```
//!
//! With `RINGMASTER_E2E_OPERATOR_KUBECONFIG` set, the operator runs as the identity in
//! that kubeconfig (the Helm chart's ServiceAccount, say) while the test itself (CRDs,
//! namespaces, tenants, the simulated fleet) keeps the identity in `KUBECONFIG`: that
//! proves the chart's RBAC is all the operator needs. Scenarios that need devices use
//! the simulated fleet of `ringmaster agent --simulate`, in-process. The leader-election
//! scenario starts two `ringmaster run --leader-elect` processes holding a Lease in its
//! namespace, or at `RINGMASTER_E2E_LEASE` (`namespace/name`: the chart's release
//! namespace and lease name, when the operator runs as the chart's ServiceAccount).

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ListParams, Patch as KubePatch, PatchParams, PostParams};
use kube::{Api, Client};
use ringmaster::agent::Behaviour;
use ringmaster::api::*;
use ringmaster::operator::{Clock, ReportConfig};
use serde_json::json;
use tokio::sync::watch;

mod e2e_common;
use e2e_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
async fn approval_admits_ring_zero_within_max_concurrent() {
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
#[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
async fn exception_expiry_frees_its_devices_within_two_seconds() {
    scenario("expiry", async |env| {
        let expires = Timestamp::now() + SignedDuration::from_secs(25);
        env.create::<PatchException>(&format!(
            r#"
apiVersion: patching.ringmaster.dev/v1alpha1
kind: PatchException
metadata:
  name: hold-two
  # The chart's admission policy wants the creator named.
  annotations: {{ringmaster.dev/created-by: "{user}"}}
spec:
  patches: [{id}]
  devices: {{names: [it-0, it-1]}}
  reason: e2e
  owner: e2e@ringmaster.dev
  expiresAt: "{expires}"
"#,
            id = env.patch_id(),
            user = env.user,
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
        // The same pass writes the plans and the exception's status, in that order: the
        // status may show a moment after the plans do.
        eventually(
            "the exception is Active",
            Duration::from_secs(5),
            || async {
                let exc = exceptions.get("hold-two").await.ok()?;
                (exc.status.as_ref().and_then(|s| s.phase) == Some(ExceptionPhase::Active))
                    .then_some(())
            },
        )
        .await;
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
#[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
async fn steady_state_sends_no_writes() {
    scenario("steady", async |env| {
        env.tenant(2, 3).await;
        eventually(
            "ring it admits devices",
            Duration::from_secs(30),
            || async { (env.planned().await.len() == 2).then_some(()) },
        )
        .await;
        // Let the reconciles triggered by its own writes run: settled once two seconds
        // pass without a write.
        let last = std::sync::atomic::AtomicU64::new(env.metrics.writes_total());
        eventually("writes settle", Duration::from_secs(30), || {
            let last = &last;
            async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let now = env.metrics.writes_total();
                (last.swap(now, Ordering::Relaxed) == now).then_some(())
            }
        })
        .await;
        let before = writes_by_kind(&env.metrics);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            writes_by_kind(&env.metrics),
            before,
            "no writes in steady state"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
async fn patch_status_records_first_release_and_severity() {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
async fn promotion_waits_for_the_soak_and_the_success_gate() {
    scenario("promote", async |env| {
        env.policy_and_rings(
            "{deviceSelector: {matchLabels: {ring: it}}, maxConcurrent: 100%, promotion: {soak: 8s, minSuccessRate: 100}}",
            "{deviceSelector: {matchLabels: {ring: pilot}}, maxConcurrent: 100%}",
        )
        .await;
        env.catalog_patch("").await;
        env.fleet("it", 3, &[("class", "ws"), ("ring", "it")], quick(0.0))
            .await;
        env.fleet("pilot", 3, &[("class", "ws"), ("ring", "pilot")], quick(0.0))
            .await;

        // Ring it installs everywhere; pilot gets nothing meanwhile.
        let last_install = eventually(
            "ring it installs the patch",
            Duration::from_secs(60),
            || async {
                let r = env.reports().await;
                let it: Vec<_> = r.iter().filter(|(n, _)| n.starts_with("it-")).collect();
                (it.len() == 3 && it.iter().all(|(_, s)| s.0 == PatchState::Installed))
                    .then(|| it.iter().filter_map(|(_, s)| s.2).max())
                    .flatten()
            },
        )
        .await;
        let pilot_planned = eventually(
            "pilot is admitted after the soak",
            Duration::from_secs(40),
            || async {
                let p = env.planned().await;
                p.iter()
                    .any(|n| n.starts_with("pilot-"))
                    .then(Timestamp::now)
            },
        )
        .await;
        let waited = pilot_planned.duration_since(last_install);
        assert!(
            waited >= SignedDuration::from_secs(8),
            "pilot admitted {waited} after ring it's last install: before the 8s soak"
        );
        assert!(
            waited <= SignedDuration::from_secs(12),
            "pilot admitted {waited} after ring it's last install: the soak's end was missed"
        );
        let status = env.rollout().await.and_then(|r| r.status).expect("status");
        assert_eq!(status.rings[0].phase, RingPhase::Passed);
        let passed_at = status.rings[0].passed_at.expect("passedAt");
        assert!(passed_at.duration_since(last_install) >= SignedDuration::from_secs(8));
        eventually(
            "the rollout completes",
            Duration::from_secs(40),
            || async {
                let r = env.rollout().await?.status?;
                (r.phase == Some(RolloutPhase::Completed)).then_some(())
            },
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
async fn the_success_gate_keeps_the_next_ring_out() {
    scenario("gate", async |env| {
        env.policy_and_rings(
            "{deviceSelector: {matchLabels: {ring: it}}, maxConcurrent: 100%, promotion: {soak: 1s, minSuccessRate: 90}}",
            "{deviceSelector: {matchLabels: {ring: pilot}}, maxConcurrent: 100%}",
        )
        .await;
        env.catalog_patch("").await;
        env.fleet("good", 2, &[("class", "ws"), ("ring", "it")], quick(0.0))
            .await;
        env.fleet("bad", 1, &[("class", "ws"), ("ring", "it")], quick(1.0))
            .await;
        env.fleet("pilot", 2, &[("class", "ws"), ("ring", "pilot")], quick(0.0))
            .await;
        eventually("ring it finishes", Duration::from_secs(60), || async {
            let r = env.reports().await;
            let done = r
                .iter()
                .filter(|(n, s)| {
                    !n.starts_with("pilot-")
                        && matches!(s.0, PatchState::Installed | PatchState::Failed)
                })
                .count();
            (done == 3).then_some(())
        })
        .await;
        // Two of three succeeded (67%): well past the 1s soak, pilot stays out.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let planned = env.planned().await;
        assert!(
            planned.iter().all(|n| !n.starts_with("pilot-")),
            "pilot admitted below the success gate: {planned:?}"
        );
        let status = env.rollout().await.and_then(|r| r.status).expect("status");
        let it = &status.rings[0];
        assert_ne!(it.phase, RingPhase::Passed);
        assert_eq!((it.installed, it.failed), (2, 1));
        let why = it.waiting_for.as_deref().unwrap_or_default();
        assert!(why.contains("needs 90%"), "says why it waits: {why:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
async fn a_bad_patch_halts_in_its_ring_and_is_rolled_back() {
    scenario("rollback", async |env| {
        env.policy_and_rings(
            "{deviceSelector: {matchLabels: {ring: it}}, maxConcurrent: 100%, halt: {failureRate: 30, minSamples: 3, onFailure: Rollback}}",
            "{deviceSelector: {matchLabels: {ring: pilot}}, maxConcurrent: 100%}",
        )
        .await;
        env.catalog_patch("uninstallable: true").await;
        // The good devices finish first; then the bad ones fail.
        env.fleet("good", 2, &[("class", "ws"), ("ring", "it")], quick(0.0))
            .await;
        let slow_failures = Behaviour {
            install_min: SignedDuration::from_secs(4),
            install_max: SignedDuration::from_secs(5),
            failure_rate: 1.0,
            ..Behaviour::default()
        };
        env.fleet("bad", 2, &[("class", "ws"), ("ring", "it")], slow_failures)
            .await;
        env.fleet("pilot", 2, &[("class", "ws"), ("ring", "pilot")], quick(0.0))
            .await;
        eventually("the rollout is rolled back", Duration::from_secs(90), || async {
            let r = env.rollout().await?.status?;
            (r.phase == Some(RolloutPhase::RolledBack)).then_some(())
        })
        .await;
        let reports = env.reports().await;
        for name in ["good-001", "good-002"] {
            assert_eq!(
                reports.get(name).map(|s| s.0),
                Some(PatchState::RolledBack),
                "{name} uninstalled the patch: {reports:?}"
            );
        }
        for name in ["bad-001", "bad-002"] {
            assert_eq!(reports.get(name).map(|s| s.0), Some(PatchState::Failed));
        }
        for name in ["pilot-001", "pilot-002"] {
            assert_eq!(
                reports.get(name).map(|s| (s.0, s.1)),
                Some((PatchState::Missing, 0)),
                "the next ring never got the bad patch"
            );
        }
        let status = env.rollout().await.and_then(|r| r.status).expect("status");
        assert!(status.rings[0].halted_at.is_some());
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(env.client.clone(), &env.ns);
        let reasons: Vec<String> = events
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .filter_map(|e| e.reason)
            .collect();
        assert!(
            reasons.iter().any(|r| r.contains("Halt")),
            "a Halted Event: {reasons:?}"
        );
        evidence_of_a_rollback(env).await;
    })
    .await;
}

/// `ringmaster report` on the tenant of a rolled-back patch: the packet is written from
/// the cluster's objects in the tenant's time zone, verifies, and its registers hold the
/// halt and the rollback the rollout's history recorded.
async fn evidence_of_a_rollback(env: &Env) {
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let zone = serde_json::json!({"metadata": {"annotations": {
        "patching.ringmaster.dev/time-zone": "Europe/Berlin"}}});
    namespaces
        .patch(&env.ns, &PatchParams::default(), &KubePatch::Merge(&zone))
        .await
        .expect("annotating the tenant's time zone");
    let month = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Europe/Berlin").expect("zone"))
        .strftime("%Y-%m")
        .to_string();
    let dir = std::env::temp_dir().join(format!("ringmaster-e2e-evidence-{}", env.suffix));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(["report", "--namespace", &env.ns, "--month", &month, "--out"])
        .arg(&dir)
        .output()
        .expect("running ringmaster report");
    assert!(out.status.success(), "{out:?}");
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(["report", "verify"])
        .arg(&dir)
        .output()
        .expect("running ringmaster report verify");
    assert!(verify.status.success(), "{verify:?}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("report.json"))
            .expect("report.json is JSON");
    assert_eq!(json["timeZone"], "Europe/Berlin");
    assert_eq!(json["closed"], false, "the month is still running");
    let kinds: Vec<&str> = json["interventions"]
        .as_array()
        .expect("interventions")
        .iter()
        .filter_map(|i| i["kind"].as_str())
        .collect();
    for kind in ["Halted", "RollbackStarted", "RolledBack"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let pairs = json["pairs"].as_array().expect("pairs");
    assert_eq!(pairs.len(), 6, "one pair per device: {pairs:?}");
    assert!(pairs.iter().all(|p| p["reason"] == "Halted"), "{pairs:?}");
    let inputs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("inputs.json")).expect("inputs.json"))
            .expect("inputs.json is JSON");
    let objects = inputs["objects"].as_array().expect("objects");
    assert!(
        objects
            .iter()
            .filter(|o| o["kind"] == "ManagedDevice")
            .all(|o| o["uid"].is_string() && o["resourceVersion"].is_string()),
        "{objects:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The month in `zone` that `at` falls in.
fn month_in(zone: &str, at: Timestamp) -> ringmaster::report::month::Month {
    ringmaster::report::month::Month::containing(at, zone).expect("a zone")
}

/// A PatchReport's status once it is closed.
async fn closed_report(env: &Env, name: &str, limit: Duration) -> PatchReportStatus {
    let reports: Api<PatchReport> = Api::namespaced(env.client.clone(), &env.ns);
    eventually(&format!("PatchReport {name} is closed"), limit, || async {
        let r = reports.get_opt(name).await.ok().flatten()?;
        let status = r.status?;
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        (ready && status.phase == Some(ReportPhase::Closed)).then_some(status)
    })
    .await
}

/// `ringmaster report verify ARGS…` as a process, with the test's KUBECONFIG.
fn verify_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(["report", "verify"])
        .args(args)
        .output()
        .expect("running ringmaster report verify")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
async fn the_operator_closes_a_month_at_its_boundary_and_the_packet_verifies() {
    scenario_with("months", false, async |env| {
        const ZONE: &str = "Pacific/Auckland";
        let namespaces: Api<Namespace> = Api::all(env.client.clone());
        let zone = json!({"metadata": {"annotations": {
            "patching.ringmaster.dev/time-zone": ZONE}}});
        namespaces
            .patch(&env.ns, &PatchParams::default(), &KubePatch::Merge(&zone))
            .await
            .expect("annotating the tenant's time zone");
        env.tenant(2, 3).await;
        // The report controller's clock stands 5 s before the running month ends in
        // Auckland; the rest of the operator keeps the real time.
        let now = Timestamp::now();
        let running = month_in(ZONE, now);
        let lead = SignedDuration::from_secs(5);
        let offset = running.end().duration_since(now) - lead;
        let store_dir = std::env::temp_dir().join(format!("ringmaster-e2e-months-{}", env.suffix));
        let store = ringmaster::report::store::Store::parse(&store_dir.display().to_string())
            .expect("a store");
        env.start_operator_with(ReportConfig {
            store: Some(store),
            sign_key: None,
            clock: Clock::offset(offset),
        })
        .await;

        // The boundary passes: the operator makes the month's PatchReport and closes it.
        let label = running.label();
        let status = closed_report(env, &label, Duration::from_secs(60)).await;
        assert_eq!(status.end, Some(running.end()));
        assert_eq!(status.time_zone.as_deref(), Some(ZONE));
        let headline = status.headline.clone().expect("the headline figures");
        assert_eq!(headline.devices, 3, "{headline:?}");
        let location = status.location.clone().expect("a location");
        let digest = status.digest.clone().expect("a digest");
        assert!(
            location.ends_with(&format!("/{}/{label}", env.ns)),
            "{location}"
        );

        // It verifies against what the cluster records; a changed byte does not.
        let report = format!("{}/{label}", env.ns);
        let ok = verify_cli(&["--report", &report]);
        let stdout = String::from_utf8_lossy(&ok.stdout);
        assert!(ok.status.success(), "{ok:?}");
        assert!(stdout.contains("digest: matches"), "{stdout}");
        assert!(
            stdout.contains(&format!("PatchReport {report} records")),
            "{stdout}"
        );
        let copy = store_dir.join("tampered");
        std::fs::create_dir_all(&copy).expect("a copy");
        for entry in std::fs::read_dir(&location).expect("the packet") {
            let entry = entry.expect("an entry");
            std::fs::copy(entry.path(), copy.join(entry.file_name())).expect("copied");
        }
        let sums = std::fs::read_to_string(copy.join("SHA256SUMS")).expect("sums");
        let rewritten = sums.replacen('0', "1", 1);
        std::fs::write(copy.join("SHA256SUMS"), rewritten).expect("rewritten");
        let bad = verify_cli(&[&copy.display().to_string(), "--report", &report]);
        assert_eq!(bad.status.code(), Some(1), "{bad:?}");

        // On demand: a person asks for the month before; the tenant did not exist then,
        // so the operator made no report of its own for it, but it closes this one.
        let previous = running.previous().label();
        let reports: Api<PatchReport> = Api::namespaced(env.client.clone(), &env.ns);
        let mut asked = PatchReport::new(
            "audit-previous",
            PatchReportSpec {
                month: previous.clone(),
                time_zone: None,
            },
        );
        asked.metadata.namespace = Some(env.ns.clone());
        reports
            .create(&PostParams::default(), &asked)
            .await
            .expect("a person's PatchReport");
        let before = closed_report(env, "audit-previous", Duration::from_secs(30)).await;
        let verified = ringmaster::report::packet::verify_dir(
            std::path::Path::new(&before.location.clone().expect("a location")),
            None,
            before.digest.as_deref(),
        )
        .expect("the previous month verifies");
        assert_eq!(verified.inputs.expect("inputs").month, previous);
        assert!(
            reports.get_opt(&previous).await.expect("a read").is_none(),
            "no report of the operator's own for a month before the tenant"
        );
        // A closed month never changes: its spec cannot be edited.
        let edit = json!({"spec": {"month": "2020-01"}});
        let refused = reports
            .patch(&label, &PatchParams::default(), &KubePatch::Merge(&edit))
            .await;
        assert!(refused.is_err(), "{refused:?}");
        assert_eq!(
            closed_report(env, &label, Duration::from_secs(5))
                .await
                .digest,
            Some(digest)
        );
        let _ = std::fs::remove_dir_all(&store_dir);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
async fn a_spec_that_makes_no_sense_is_not_ready_while_others_carry_on() {
    scenario("invalid", async |env| {
        // Valid for the schema, but it names a ring that does not exist.
        env.create::<PatchPolicy>(
            r#"
apiVersion: patching.ringmaster.dev/v1alpha1
kind: PatchPolicy
metadata: {name: broken}
spec:
  deviceSelector: {matchLabels: {class: kiosk}}
  sla:
    - {tier: default, critical: 7d, high: 14d, medium: 60d, low: 120d}
  approval:
    rules:
      - {match: {severities: [Critical]}, action: Approve}
  rings: [no-such-ring]
"#,
        )
        .await;
        env.tenant(2, 2).await;
        let policies: Api<PatchPolicy> = Api::namespaced(env.client.clone(), &env.ns);
        let ready = eventually(
            "the broken policy says why it is not ready",
            Duration::from_secs(30),
            || async {
                let p = policies.get("broken").await.ok()?;
                let s = p.status?;
                s.conditions.into_iter().find(|c| c.type_ == "Ready")
            },
        )
        .await;
        assert_eq!(ready.status, "False");
        assert!(
            ready.message.contains("no-such-ring"),
            "the message names the missing ring: {:?}",
            ready.message
        );
        // The other policy's rollout goes ahead.
        let planned = eventually(
            "the valid policy still admits",
            Duration::from_secs(30),
            || async {
                let p = env.planned().await;
                (p.len() == 2).then_some(p)
            },
        )
        .await;
        assert_eq!(planned, vec!["it-0", "it-1"]);
        let ws = policies.get("ws").await.expect("ws");
        let ready = ws
            .status
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
            .expect("ws Ready");
        assert_eq!(ready.status, "True", "{ready:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
async fn a_kill_and_restart_mid_rollout_loses_nothing_and_admits_no_device_twice() {
    scenario("restart", async |env| {
        env.policy_and_rings(
            "{deviceSelector: {matchLabels: {ring: it}}, maxConcurrent: 2}",
            "{deviceSelector: {matchLabels: {ring: pilot}}, maxConcurrent: 100%}",
        )
        .await;
        env.catalog_patch("").await;
        let slow = Behaviour {
            install_min: SignedDuration::from_secs(3),
            install_max: SignedDuration::from_secs(4),
            ..Behaviour::default()
        };
        env.fleet("it", 6, &[("class", "ws"), ("ring", "it")], slow)
            .await;
        eventually(
            "the first devices install",
            Duration::from_secs(30),
            || async {
                let r = env.reports().await;
                r.values()
                    .any(|s| s.0 == PatchState::Installing)
                    .then_some(())
            },
        )
        .await;
        // Killed, not stopped: reconciles and writes in flight are cut short.
        env.kill_operator().await;
        // Work goes on without the operator: the devices finish what they started.
        tokio::time::sleep(Duration::from_secs(6)).await;
        env.start_operator().await;

        // Watch the rollout to its end: never more than 2 in progress.
        env.every_device_installs_once(6, 2).await;
        eventually(
            "the rollout counts every install",
            Duration::from_secs(10),
            || async {
                let s = env.rollout().await?.status?;
                (s.rings.first()?.installed == 6).then_some(())
            },
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
async fn two_replicas_elect_one_leader_and_hand_over_when_it_dies() {
    scenario_with("leader", false, async |env| {
        env.policy_and_rings(
            "{deviceSelector: {matchLabels: {ring: it}}, maxConcurrent: 1}",
            "{deviceSelector: {matchLabels: {ring: pilot}}, maxConcurrent: 100%}",
        )
        .await;
        env.catalog_patch("").await;
        let slow = Behaviour {
            install_min: SignedDuration::from_secs(2),
            install_max: SignedDuration::from_secs(3),
            ..Behaviour::default()
        };
        env.fleet("it", 4, &[("class", "ws"), ("ring", "it")], slow)
            .await;
        let mut replicas = vec![env.replica("replica-a"), env.replica("replica-b")];
        let leader = eventually("a leader is elected", Duration::from_secs(60), || {
            env.lease_holder()
        })
        .await;
        assert!(leader == "replica-a" || leader == "replica-b", "{leader}");
        eventually(
            "the leader admits a device",
            Duration::from_secs(60),
            || async { (!env.planned().await.is_empty()).then_some(()) },
        )
        .await;

        // The leader dies without releasing its Lease.
        let i = replicas
            .iter()
            .position(|r| r.name == leader)
            .expect("the leader is one of ours");
        let dead = replicas.remove(i);
        drop(dead);
        let killed = Timestamp::now();
        let survivor = replicas[0].name.clone();
        eventually(
            "the other replica takes over",
            Duration::from_secs(60),
            || async {
                (env.lease_holder().await.as_deref() == Some(survivor.as_str())).then_some(())
            },
        )
        .await;
        let took = Timestamp::now().duration_since(killed);
        assert!(
            took <= SignedDuration::from_secs(25),
            "took {took} to take over a 15s lease"
        );

        // The rollout carries on under the new leader, one device at a time, each once.
        env.every_device_installs_once(4, 1).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Devices played by the shell agent of docs/agent-contract.md.

mod agent_sh;

/// Scenarios whose devices are played by the shell agent that `docs/agent-contract.md`
/// shows (extracted from the doc at test time and run with `sh`, one process per device,
/// kubectl from `PATH` or `RINGMASTER_E2E_KUBECTL`, as the test's identity in
/// `KUBECONFIG`).
mod shell_agent {
    use std::collections::{BTreeSet, HashMap};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};

    use super::*;

    /// The shell agents of one scenario, each in a process group of its own, sharing a
    /// temp dir (their kubectl's cache and home, their logs, what their commands write).
    /// Dropping it kills every process they started (the agents, their kubectl and
    /// `timeout`, the commands under it) and removes the dir, whether the scenario
    /// passed or not.
    struct ShellAgents {
        dir: agent_sh::TempDir,
        script: PathBuf,
        agents: Vec<(String, Child)>,
    }

    impl ShellAgents {
        fn new(test: &str) -> Self {
            let dir = agent_sh::TempDir::new(&format!("e2e-{test}"));
            let script = agent_sh::write_to(&dir.0);
            ShellAgents {
                dir,
                script,
                agents: Vec::new(),
            }
        }

        /// A file in the agents' dir, for their commands to leave a trace in.
        fn file(&self, name: &str) -> PathBuf {
            self.dir.0.join(name)
        }

        /// Starts the agent of `device` in the scenario's namespace, reporting the
        /// scenario's patch, checking in every second, with `settings` (INSTALL, TERSE…).
        fn start(&mut self, env: &Env, device: &str, settings: &[(&str, String)]) {
            let kubectl = std::env::var("RINGMASTER_E2E_KUBECTL").unwrap_or("kubectl".into());
            let kubeconfig = std::env::var_os("KUBECONFIG")
                .or_else(|| {
                    std::env::var_os("HOME")
                        .map(|h| PathBuf::from(h).join(".kube/config").into_os_string())
                })
                .expect("KUBECONFIG or HOME");
            let home = self.dir.0.join("home");
            std::fs::create_dir_all(&home).expect("the agents' home");
            let log = std::fs::File::create(self.file(&format!("{device}.log")))
                .expect("the agent's log");
            let mut cmd = Command::new("sh");
            cmd.arg(&self.script)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", &home)
                .env("TMPDIR", &self.dir.0)
                .env("KUBECONFIG", kubeconfig)
                .env("KUBECACHEDIR", self.dir.0.join("kube-cache"))
                .env("KUBECTL", kubectl)
                .env("NAMESPACE", &env.ns)
                .env("DEVICE", device)
                .env("PATCHES", env.patch_id())
                .env("INTERVAL", "1")
                .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log);
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            let child = cmd.spawn().expect("starting sh");
            self.agents.push((device.to_string(), child));
        }

        /// Every agent's log, for a failing scenario's message.
        fn logs(&self) -> String {
            self.agents
                .iter()
                .map(|(d, _)| {
                    let log =
                        std::fs::read_to_string(self.file(&format!("{d}.log"))).unwrap_or_default();
                    format!("--- {d}\n{log}")
                })
                .collect()
        }

        /// Fails if an agent has exited (they loop until killed).
        fn all_running(&mut self) {
            for (device, child) in &mut self.agents {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = std::fs::read_to_string(self.dir.0.join(format!("{device}.log")))
                        .unwrap_or_default();
                    panic!("the agent of {device} exited ({status}):\n{log}");
                }
            }
        }
    }

    impl Drop for ShellAgents {
        fn drop(&mut self) {
            if std::thread::panicking() {
                eprintln!("shell agents' logs:\n{}", self.logs());
            }
            for (_, child) in &mut self.agents {
                kill_tree(child);
            }
        }
    }

    /// Every process in `/proc` with its parent and process group.
    fn processes() -> HashMap<u32, (u32, u32)> {
        let mut all = HashMap::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return all;
        };
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid pgrp …`; comm may hold anything but the last `)`.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let mut f = rest.split_whitespace().skip(1);
            if let (Some(Ok(ppid)), Some(Ok(pgrp))) =
                (f.next().map(str::parse), f.next().map(str::parse))
            {
                all.insert(pid, (ppid, pgrp));
            }
        }
        all
    }

    fn signal(signal: &str, targets: &[String]) {
        if targets.is_empty() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-s", signal, "--"])
            .args(targets)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Kills an agent and everything it started: its process group (its own, from
    /// `process_group(0)`), stopped first so it forks no more, then every descendant and
    /// their groups (GNU `timeout` puts itself and its command in a group of its own).
    fn kill_tree(child: &mut Child) {
        let root = child.id();
        if root <= 1 {
            return;
        }
        signal("STOP", &[format!("-{root}")]);
        let all = processes();
        let mut tree = BTreeSet::from([root]);
        loop {
            let more: Vec<u32> = all
                .iter()
                .filter(|(pid, (ppid, _))| tree.contains(ppid) && !tree.contains(pid))
                .map(|(pid, _)| *pid)
                .collect();
            if more.is_empty() {
                break;
            }
            tree.extend(more);
        }
        let groups: BTreeSet<u32> = tree
            .iter()
            .filter_map(|pid| all.get(pid).map(|(_, pgrp)| *pgrp))
            .chain([root])
            .filter(|g| *g > 1 && tree.contains(g))
            .collect();
        let mut targets: Vec<String> = groups.iter().map(|g| format!("-{g}")).collect();
        targets.extend(tree.iter().map(u32::to_string));
        signal("KILL", &targets);
        let _ = child.wait();
    }

    impl Env {
        /// Creates a device of ring `ring` (labels `class: ws`, `ring`), annotated as the
        /// test user's (the chart's admission convention), with no status.
        async fn device(&self, name: &str, ring: &str) {
            self.create::<ManagedDevice>(&format!(
                r#"
apiVersion: patching.ringmaster.dev/v1alpha1
kind: ManagedDevice
metadata:
  name: {name}
  labels: {{class: ws, ring: {ring}}}
  annotations: {{ringmaster.dev/agent: "{user}"}}
spec: {{hostname: {name}.e2e.local}}
"#,
                user = self.user,
            ))
            .await;
        }

        /// A device that reports the scenario's patch Missing once, and never again: no
        /// agent at all.
        async fn silent_device(&self, name: &str, ring: &str) {
            self.device(name, ring).await;
            let status = json!({"status": {
                "lastSeen": Timestamp::now().to_string(),
                "patches": [{"id": self.patch_id(), "state": "Missing"}]
            }});
            Api::<ManagedDevice>::namespaced(self.client.clone(), &self.ns)
                .patch_status(name, &PatchParams::default(), &KubePatch::Merge(&status))
                .await
                .unwrap_or_else(|e| panic!("reporting for {name}: {e}"));
        }

        /// Waits until `n` devices report the scenario's patch.
        async fn every_device_reports(&self, n: usize) {
            eventually(
                "every device reports the patch",
                Duration::from_secs(30),
                || async { (self.reports().await.len() == n).then_some(()) },
            )
            .await;
        }

        async fn devices(&self) -> BTreeMap<String, ManagedDevice> {
            Api::<ManagedDevice>::namespaced(self.client.clone(), &self.ns)
                .list(&ListParams::default())
                .await
                .expect("listing devices")
                .items
                .into_iter()
                .filter_map(|d| Some((d.metadata.name.clone()?, d)))
                .collect()
        }

        /// The scenario's patch as `device` reports it.
        async fn report_of(&self, device: &str) -> Option<DevicePatchStatus> {
            let id = self.patch_id();
            Api::<ManagedDevice>::namespaced(self.client.clone(), &self.ns)
                .get(device)
                .await
                .ok()?
                .status?
                .patches
                .into_iter()
                .find(|p| p.id == id)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
    async fn the_shell_agent_reports_failed_without_timestamps_and_the_ring_halts_and_rolls_back() {
        scenario("sh-rollback", async |env| {
            env.policy_and_rings(
                "{deviceSelector: {matchLabels: {ring: it}}, maxConcurrent: 100%, halt: {failureRate: 30, minSamples: 2, onFailure: Rollback}}",
                "{deviceSelector: {matchLabels: {ring: pilot}}, maxConcurrent: 100%}",
            )
            .await;
            let id = env.patch_id();
            let good = "it-good";
            let bad = ["it-bad-1", "it-bad-2"];
            for name in [good].iter().chain(&bad) {
                env.device(name, "it").await;
            }
            env.silent_device("pilot-1", "pilot").await;

            let mut agents = ShellAgents::new("sh-rollback");
            let installed = agents.file("installed");
            let uninstalled = agents.file("uninstalled");
            let terse = |install: String| {
                vec![
                    ("TERSE", "1".to_string()),
                    ("INSTALL", install),
                    (
                        "UNINSTALL",
                        format!(
                            "sleep 2; echo \"$1 from $DEVICE\" >>'{}'; echo removed",
                            uninstalled.display()
                        ),
                    ),
                ]
            };
            // The good device installs at once; the bad ones fail a little later, so
            // the ring halts after the good one installed.
            agents.start(
                env,
                good,
                &terse(format!(
                    "echo \"$1 on $DEVICE\" >>'{}'; echo done",
                    installed.display()
                )),
            );
            for name in bad {
                agents.start(
                    env,
                    name,
                    &terse(
                        "echo 'Reading package lists...'; sleep 3; echo 'E: dpkg was interrupted' >&2; exit 100"
                            .into(),
                    ),
                );
            }
            // The patch reaches the catalog once every device reports it applicable
            // (a ring no device of which reports the patch yet passes at once).
            env.every_device_reports(4).await;
            env.catalog_patch("uninstallable: true").await;

            eventually("ring it halts", Duration::from_secs(90), || async {
                let s = env.rollout().await?.status?;
                s.rings.first()?.halted_at.map(|_| ())
            })
            .await;
            agents.all_running();
            // Why, in the Event (the ring's waitingFor turns to the uninstalls at once).
            let halt = eventually("a RingHalted Event", Duration::from_secs(10), || async {
                let events: Api<k8s_openapi::api::events::v1::Event> =
                    Api::namespaced(env.client.clone(), &env.ns);
                events
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .find(|e| e.reason.as_deref() == Some("RingHalted"))?
                    .note
            })
            .await;
            assert!(
                halt.contains("halt.failureRate") && !halt.contains("timed out"),
                "halted by failed reports: {halt:?}"
            );
            // The rollback asks the device that has the patch to uninstall it.
            eventually(
                "an uninstall entry for the device that installed it",
                Duration::from_secs(30),
                || async {
                    let d = env.devices().await;
                    d.get(good)?.spec.plan.uninstall.get(&id).map(|_| ())
                },
            )
            .await;
            eventually("the rollout is rolled back", Duration::from_secs(60), || async {
                let r = env.rollout().await?.status?;
                (r.phase == Some(RolloutPhase::RolledBack)).then_some(())
            })
            .await;
            agents.all_running();

            // What the terse agents reported: no times, no attempt echoed.
            let r = env.report_of(good).await.expect("the good device's report");
            assert_eq!((r.state, r.attempts), (PatchState::RolledBack, 1), "{r:?}");
            for name in bad {
                let r = env.report_of(name).await.expect("a bad device's report");
                assert_eq!((r.state, r.attempts), (PatchState::Failed, 1), "{name}: {r:?}");
                assert_eq!(r.message.as_deref(), Some("E: dpkg was interrupted"));
            }
            for name in [good].iter().chain(&bad) {
                let r = env.report_of(name).await.expect("a report");
                assert_eq!(
                    (r.last_attempt_at, r.installed_at, r.attempt.as_deref()),
                    (None, None, None),
                    "{name} is terse: {r:?}"
                );
                let d = &env.devices().await[*name];
                assert_eq!(d.status.as_ref().and_then(|s| s.last_seen), None);
            }
            let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
            assert_eq!(read(&installed), format!("{id} on {good}\n"), "installed once");
            assert_eq!(
                read(&uninstalled),
                format!("{id} from {good}\n"),
                "uninstalled once, where it was installed"
            );
            let status = env.rollout().await.and_then(|r| r.status).expect("status");
            let it = &status.rings[0];
            assert_eq!((it.rolled_back, it.timed_out), (1, 0), "{it:?}");
            assert_eq!(status.rings[1].phase, RingPhase::Pending, "pilot never started");
            eventually("the plans are empty", Duration::from_secs(10), || async {
                env.devices()
                    .await
                    .values()
                    .all(|d| d.spec.plan.install.is_empty() && d.spec.plan.uninstall.is_empty())
                    .then_some(())
            })
            .await;
            drop(agents);
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
    async fn a_device_whose_agent_never_answers_times_out_and_the_gate_counts_it() {
        scenario("sh-timeout", async |env| {
            env.policy_and_rings(
                "{deviceSelector: {matchLabels: {ring: it}}, maxConcurrent: 100%, attemptTimeout: 20s, promotion: {maxFailures: 0}}",
                "{deviceSelector: {matchLabels: {ring: pilot}}, maxConcurrent: 100%}",
            )
            .await;
            let id = env.patch_id();
            env.device("it-agent", "it").await;
            env.silent_device("it-silent", "it").await;
            env.silent_device("pilot-1", "pilot").await;
            let mut agents = ShellAgents::new("sh-timeout");
            agents.start(env, "it-agent", &[("INSTALL", "echo installed".into())]);
            env.every_device_reports(3).await;
            env.catalog_patch("").await;

            let entry = eventually(
                "the silent device is admitted",
                Duration::from_secs(60),
                || async { env.devices().await.get("it-silent")?.spec.plan.install.get(&id).cloned() },
            )
            .await;
            let answer_by = entry.answer_by.expect("the entry has answerBy");
            assert_eq!(
                answer_by.duration_since(entry.not_before),
                SignedDuration::from_secs(20),
                "attemptTimeout 20s: {entry:?}"
            );
            assert!(entry.attempt.is_some() && entry.basis.is_some(), "{entry:?}");
            let r = eventually("the agent's device installs", Duration::from_secs(30), || async {
                env.report_of("it-agent")
                    .await
                    .filter(|r| r.state == PatchState::Installed)
            })
            .await;
            assert!(
                r.attempt.as_deref().is_some_and(|a| a.starts_with("ws.")),
                "the attempt echoed: {r:?}"
            );
            assert!(r.last_attempt_at.is_some() && r.installed_at.is_some(), "{r:?}");
            let before = env.rollout().await.and_then(|r| r.status).expect("status");
            if Timestamp::now() < answer_by {
                assert_eq!(before.rings[0].timed_out, 0, "{:?}", before.rings[0]);
            }

            let (seen_at, status) = eventually(
                "the silent device's attempt times out",
                Duration::from_secs(40),
                || async {
                    let s = env.rollout().await?.status?;
                    (s.rings.first()?.timed_out == 1).then(|| (Timestamp::now(), s))
                },
            )
            .await;
            agents.all_running();
            assert!(
                seen_at >= answer_by,
                "timed out at {seen_at}, before its answerBy {answer_by}"
            );
            let late = seen_at.duration_since(answer_by);
            assert!(
                late <= SignedDuration::from_secs(5),
                "timed out {late} after its answerBy"
            );
            let it = &status.rings[0];
            assert_eq!(
                (it.installed, it.failed, it.timed_out, it.in_progress),
                (1, 1, 1, 0),
                "{it:?}"
            );
            // promotion.maxFailures 0: the timed-out attempt halts the ring.
            let halted = eventually("ring it halts", Duration::from_secs(10), || async {
                let s = env.rollout().await?.status?;
                (s.rings.first()?.phase == RingPhase::Halted).then_some(s)
            })
            .await;
            let why = halted.rings[0].waiting_for.clone().unwrap_or_default();
            assert!(
                why.contains("1 timed out") && why.contains("maxFailures"),
                "says why: {why:?}"
            );
            assert_eq!(halted.phase, Some(RolloutPhase::Halted));
            assert_eq!(halted.rings[1].phase, RingPhase::Pending, "pilot never started");
            let silent = env.report_of("it-silent").await.expect("a report");
            assert_eq!((silent.state, silent.attempts), (PatchState::Missing, 0));

            // With nothing new to report, the agent checks in by its Lease: renewed every
            // second, while the device's status (and its lastSeen) stays as it was.
            let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
                Api::namespaced(env.client.clone(), &env.ns);
            let renewed_at = |l: &k8s_openapi::api::coordination::v1::Lease| {
                ringmaster::contract::check_in(l).map(|(_, at)| at)
            };
            let first = eventually("the agent's check-in Lease", Duration::from_secs(20), || async {
                renewed_at(&leases.get("it-agent").await.ok()?)
            })
            .await;
            let seen = |d: &ManagedDevice| d.status.as_ref().and_then(|s| s.last_seen);
            let status_before = env.devices().await.get("it-agent").and_then(seen);
            let later = eventually("the Lease is renewed", Duration::from_secs(20), || async {
                renewed_at(&leases.get("it-agent").await.ok()?).filter(|t| *t > first)
            })
            .await;
            agents.all_running();
            let device = env.devices().await["it-agent"].clone();
            assert_eq!(seen(&device), status_before, "no status write for a heartbeat");
            assert!(status_before < Some(later), "the Lease is the later check-in");
            drop(agents);
        })
        .await;
    }
}

/// Runs `ringmaster catalog import` as a process (the identity in
/// `RINGMASTER_E2E_CATALOG_KUBECONFIG` when set, e.g. the chart's catalog
/// ServiceAccount), and returns its exit code and JSON summary.
fn catalog_import(source: &str, inputs: &[&std::path::Path]) -> (i32, serde_json::Value) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ringmaster"));
    cmd.args(["catalog", "import", source, "-o", "json"])
        .args(inputs);
    if let Ok(k) = std::env::var("RINGMASTER_E2E_CATALOG_KUBECONFIG") {
        cmd.env("KUBECONFIG", k);
    }
    let out = cmd.output().expect("running ringmaster catalog import");
    let summary = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "catalog import printed no JSON summary ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), summary)
}

/// An OSV record of a Debian 12 advisory, in the feed's shape.
fn osv_record(id: &str, cve: &str, fixed: &str) -> serde_json::Value {
    json!({
        "id": id,
        "summary": "openssl - security update",
        "aliases": [cve],
        "published": "2026-11-20T00:00:00Z",
        "modified": "2026-11-20T10:00:00Z",
        "affected": [{
            "package": {"ecosystem": "Debian:12", "name": "openssl"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]
        }]
    })
}

fn resource_versions(patches: &[Patch]) -> Vec<(String, String)> {
    patches
        .iter()
        .map(|p| {
            (
                p.metadata.name.clone().unwrap_or_default(),
                p.metadata.resource_version.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
async fn a_catalog_reimport_sends_no_write_and_keeps_what_people_added() {
    scenario_with("catalog-import", false, async |env| {
        let n = u32::from_str_radix(env.suffix.rsplit('-').next().unwrap_or("1"), 16).unwrap_or(1);
        let ids = [format!("DSA-{n}-1"), format!("DSA-{n}-2")];
        let dir = std::env::temp_dir().join(format!("rm-e2e-osv-{}", env.suffix));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let write = |fixed: &str| {
            for (i, id) in ids.iter().enumerate() {
                let record = osv_record(id, &format!("CVE-2099-{n}{i}"), fixed);
                std::fs::write(dir.join(format!("{id}.json")), record.to_string())
                    .expect("a record");
            }
        };
        write("3.0.15-1~deb12u1");
        let (code, summary) = catalog_import("osv", &[&dir]);
        assert_eq!(code, 0, "{summary}");
        assert_eq!(
            summary["created"].as_array().map(Vec::len),
            Some(2),
            "{summary}"
        );

        let api: Api<Patch> = Api::all(env.client.clone());
        let names: Vec<String> = ids.iter().map(|i| i.to_lowercase()).collect();
        let get_all = async || {
            let mut all = Vec::new();
            for name in &names {
                all.push(api.get(name).await.expect("the imported Patch"));
            }
            all
        };
        let first = get_all().await;
        assert_eq!(first[0].spec.packages[0].fixed, "3.0.15-1~deb12u1");
        assert_eq!(first[0].spec.cves[0].id, format!("CVE-2099-{n}0"));

        // The same import again: nothing is sent, nothing changes.
        let (code, summary) = catalog_import("osv", &[&dir]);
        assert_eq!(code, 0, "{summary}");
        assert_eq!(summary["unchanged"], 2, "{summary}");
        assert_eq!(
            resource_versions(&get_all().await),
            resource_versions(&first)
        );

        // A person adds a field the feed does not provide; a changed record re-imports
        // over the feed's own fields and leaves the person's alone.
        let added = json!({"apiVersion": "patching.ringmaster.dev/v1alpha1", "kind": "Patch",
            "metadata": {"name": names[0]}, "spec": {"supersedes": ["DSA-1-1"]}});
        api.patch(
            &names[0],
            &PatchParams::apply("a-person"),
            &KubePatch::Apply(&added),
        )
        .await
        .expect("a person's field");
        write("3.0.15-1~deb12u2");
        let (code, summary) = catalog_import("osv", &[&dir]);
        assert_eq!(code, 0, "{summary}");
        assert_eq!(
            summary["updated"].as_array().map(Vec::len),
            Some(2),
            "{summary}"
        );
        let after = api.get(&names[0]).await.expect("the Patch");
        assert_eq!(after.spec.packages[0].fixed, "3.0.15-1~deb12u2");
        assert_eq!(after.spec.supersedes, vec!["DSA-1-1".to_string()]);

        // A bad record is skipped and said; the rest still go in (exit 1 for alerting).
        std::fs::write(dir.join("broken.json"), r#"{"id": 5}"#).expect("a bad record");
        let (code, summary) = catalog_import("osv", &[&dir]);
        assert_eq!(code, 1, "{summary}");
        assert_eq!(
            summary["skipped"].as_array().map(Vec::len),
            Some(1),
            "{summary}"
        );
        assert_eq!(summary["unchanged"], 2, "{summary}");
        for name in &names {
            let _ = api.delete(name, &DeleteParams::default()).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
async fn a_kev_import_marks_the_example_patches_that_fix_listed_cves() {
    scenario_with("catalog-kev", false, async |env| {
        let api: Api<Patch> = Api::all(env.client.clone());
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/msp-tenant/patches.yaml"
        ))
        .expect("the example's patches");
        let mut example = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let p: Patch = serde::Deserialize::deserialize(doc).expect("a Patch");
            let name = p.metadata.name.clone().expect("a name");
            let mut body = serde_json::to_value(&p).expect("json");
            body["metadata"] = json!({"name": name});
            api.patch(&name, &PatchParams::apply("ringmaster-e2e").force(), &KubePatch::Apply(&body))
                .await
                .expect("applying an example Patch");
            example.push(p);
        }
        // CISA's catalog, in its shape, listing one CVE that KB5032190 fixes.
        let kev = json!({
            "title": "CISA Catalog of Known Exploited Vulnerabilities",
            "catalogVersion": "2023.11.14", "dateReleased": "2023-11-14T17:00:00.0000Z",
            "count": 1,
            "vulnerabilities": [{
                "cveID": "CVE-2023-36033", "vendorProject": "Microsoft", "product": "Windows",
                "vulnerabilityName": "Microsoft Windows Desktop Window Manager (DWM) Core Library Privilege Escalation Vulnerability",
                "dateAdded": "2023-11-14", "shortDescription": "…", "requiredAction": "Apply mitigations per vendor instructions or discontinue use of the product if mitigations are unavailable.",
                "dueDate": "2023-12-05", "knownRansomwareCampaignUse": "Unknown", "notes": "", "cwes": []
            }]
        });
        let file = std::env::temp_dir().join(format!("rm-e2e-kev-{}.json", env.suffix));
        std::fs::write(&file, kev.to_string()).expect("the KEV file");
        let (code, summary) = catalog_import("kev", &[&file]);
        assert_eq!(code, 0, "{summary}");
        let fixing: Vec<&Patch> = example
            .iter()
            .filter(|p| p.spec.cves.iter().any(|c| c.id == "CVE-2023-36033"))
            .collect();
        assert!(fixing.len() >= 2, "the example has patches fixing the CVE");
        for p in &example {
            let name = p.metadata.name.as_deref().expect("name");
            let now = api.get(name).await.expect("the Patch");
            let listed = fixing.iter().any(|f| f.metadata.name.as_deref() == Some(name));
            match now.spec.kev {
                Some(kev) => {
                    assert!(listed, "{name} fixes no listed CVE but was marked");
                    assert!(now.spec.known_exploited);
                    assert_eq!(kev.cves, vec!["CVE-2023-36033".to_string()]);
                    assert_eq!(kev.due_at, "2023-12-06T00:00:00Z".parse::<Timestamp>().expect("ts"));
                }
                None => assert!(!listed, "{name} fixes a listed CVE but was not marked"),
            }
        }
        let (code, summary) = catalog_import("kev", &[&file]);
        assert_eq!(code, 0, "{summary}");
        assert_eq!(summary["unchanged"], fixing.len(), "a re-import writes nothing: {summary}");
        let _ = std::fs::remove_file(&file);
    })
    .await;
}

/// The chart's device-agent ValidatingAdmissionPolicy (its CEL from
/// `charts/ringmaster/files/admission/device-agent.yaml`, the variables the template
/// defines first), counting the ServiceAccounts of `agents_ns` as agents, bound to the
/// scenario's namespace only. Returns its name (the policy's and the binding's).
async fn device_agent_policy(env: &Env, agents_ns: &str) -> String {
    chart_policy(
        env,
        "device-agent",
        agent_variables(agents_ns),
        &["manageddevices", "manageddevices/status"],
    )
    .await
}

/// The chart's device-lease policy (agents' check-in Leases), with the same idea of who
/// is an agent as [`device_agent_policy`], bound to the scenario's namespace only.
async fn device_lease_policy(env: &Env, agents_ns: &str) -> String {
    chart_policy_on(
        env,
        "device-lease",
        agent_variables(agents_ns),
        ("coordination.k8s.io", "v1"),
        &["leases"],
    )
    .await
}

/// The variables the template defines before the agent policies' own, counting the
/// ServiceAccounts of `agents_ns` as agents.
fn agent_variables(agents_ns: &str) -> Vec<serde_json::Value> {
    let quoted = |s: &str| serde_json::to_string(s).expect("a string");
    vec![
        json!({"name": "agentUsernamePrefix", "expression": quoted("system:serviceaccount:")}),
        json!({"name": "agentGroup", "expression": quoted(&format!("system:serviceaccounts:{agents_ns}"))}),
        json!({"name": "operatorUsername", "expression": quoted("system:serviceaccount:ringmaster-system:ringmaster")}),
        // Node mode is off here: no node agent.
        json!({"name": "nodeAgentUsername", "expression": quoted("")}),
    ]
}

/// One of the chart's ValidatingAdmissionPolicies (its CEL from
/// `charts/ringmaster/files/admission/<file>.yaml`, after `variables` as the template
/// defines them from values), on `resources` of ours, bound to the scenario's namespace
/// only. Returns its name (the policy's and the binding's).
async fn chart_policy(
    env: &Env,
    file: &str,
    variables: Vec<serde_json::Value>,
    resources: &[&str],
) -> String {
    let ours = ("patching.ringmaster.dev", "v1alpha1");
    chart_policy_on(env, file, variables, ours, resources).await
}

/// [`chart_policy`] on `resources` of the API group and version `on`.
async fn chart_policy_on(
    env: &Env,
    file: &str,
    mut variables: Vec<serde_json::Value>,
    (group, version): (&str, &str),
    resources: &[&str],
) -> String {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("charts/ringmaster/files/admission/{file}.yaml"));
    let text = std::fs::read_to_string(&path).expect("the chart's policy file");
    let parsed: serde_json::Value = serde_yaml::from_str(&text).expect("the policy file parses");
    let name = format!("rm-e2e-{}-{file}", env.suffix);
    variables.extend(
        parsed["variables"]
            .as_array()
            .expect("variables")
            .iter()
            .cloned(),
    );
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": [group],
                "apiVersions": [version], "operations": ["CREATE", "UPDATE"],
                "resources": resources}]},
            "matchConditions": parsed.get("matchConditions").cloned().unwrap_or(json!([])),
            "variables": variables,
            "validations": parsed["validations"],
        }
    }))
    .expect("a ValidatingAdmissionPolicy");
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": env.ns}}}}
    }))
    .expect("a binding");
    Api::<ValidatingAdmissionPolicy>::all(env.client.clone())
        .create(&PostParams::default(), &policy)
        .await
        .unwrap_or_else(|e| panic!("creating the {file} policy: {e}"));
    Api::<ValidatingAdmissionPolicyBinding>::all(env.client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap_or_else(|e| panic!("binding the {file} policy: {e}"));
    name
}

/// Deletes what an enrollment scenario made outside its namespace.
async fn enrollment_teardown(env: &Env, agents_ns: &str, policy: &str) {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    let dp = DeleteParams::default();
    let c = &env.client;
    let results = [
        Api::<ValidatingAdmissionPolicyBinding>::all(c.clone())
            .delete(policy, &dp)
            .await
            .map(drop),
        Api::<ValidatingAdmissionPolicy>::all(c.clone())
            .delete(policy, &dp)
            .await
            .map(drop),
        Api::<Namespace>::all(c.clone())
            .delete(agents_ns, &dp)
            .await
            .map(drop),
        Api::<ClusterRoleBinding>::all(c.clone())
            .delete(&ringmaster::enroll::catalog_binding_name(agents_ns), &dp)
            .await
            .map(drop),
    ];
    for r in results {
        if let Err(e) = r {
            eprintln!("enrollment teardown: {e}");
        }
    }
}

/// The enrolled agent of `web-1` (its client `agent`) checks in by its Lease: enrollment
/// created the one named as its device, held in the agent's name and not renewed yet, and
/// the agent renews it; RBAC keeps it off another device's and lets it create no Lease,
/// and the device-lease policy refuses a renewal it would not hold.
async fn enrolled_check_in(env: &Env, agent: &Client) {
    use k8s_openapi::api::coordination::v1::Lease;
    use ringmaster::agent::lease::{CheckIn, RenewError};
    let device = Api::<ManagedDevice>::namespaced(env.client.clone(), &env.ns)
        .get("web-1")
        .await
        .expect("the device");
    let me = device
        .metadata
        .annotations
        .and_then(|a| a.get(ringmaster::agent::AGENT_ANNOTATION).cloned())
        .expect("the agent annotation");
    let admin_leases = Api::<Lease>::namespaced(env.client.clone(), &env.ns);
    let enrolled = admin_leases.get("web-1").await.expect("the enrolled Lease");
    assert_eq!(
        enrolled
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref()),
        Some(me.as_str())
    );
    assert_eq!(
        ringmaster::contract::check_in(&enrolled),
        None,
        "not renewed yet"
    );
    let leases: Api<Lease> = Api::namespaced(agent.clone(), &env.ns);
    let heartbeat = Duration::from_secs(60);
    let mine = CheckIn::new(leases.clone(), "web-1", &me, heartbeat);
    let first = Timestamp::now();
    // The device-lease policy may take a moment to load; RBAC and it must both admit.
    eventually(
        "the agent renews its enrolled check-in Lease",
        Duration::from_secs(30),
        || {
            let mine = mine.clone();
            async move { mine.renew(first).await.ok() }
        },
    )
    .await;
    let later = first + SignedDuration::from_secs(1);
    mine.renew(later).await.expect("the agent renews its Lease");
    let lease = Api::<Lease>::namespaced(env.client.clone(), &env.ns)
        .get("web-1")
        .await
        .expect("the Lease");
    let (device_name, renewed) = ringmaster::contract::check_in(&lease).expect("a check-in");
    assert_eq!(device_name, "web-1");
    assert_eq!(renewed.as_microsecond(), later.as_microsecond());
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some(me.as_str())
    );
    // Another device's Lease: RBAC lets it get, update or patch only its own.
    let theirs = CheckIn::new(leases.clone(), "other", &me, heartbeat);
    match theirs.renew(later).await {
        Err(RenewError::Kube(e)) => {
            assert!(
                matches!(*e, kube::Error::Api(ref s) if s.code == 403),
                "{e}"
            )
        }
        other => panic!("renewing another device's Lease: {other:?}"),
    }
    // No Lease of any name may be created: enrollment grants no create on leases.
    let forged = CheckIn::new(leases.clone(), "web-1-forged", &me, heartbeat);
    match leases
        .create(&PostParams::default(), &forged.lease(Timestamp::now()))
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("creating a Lease: {other:?}"),
    }
    // Its own check-in renewed in another agent's name: the policy refuses it.
    let theirs = CheckIn::new(leases.clone(), "web-1", "someone-else", heartbeat);
    eventually(
        "the device-lease policy refuses a renewal held by another",
        Duration::from_secs(30),
        || {
            let theirs = theirs.clone();
            let (admin, me) = (admin_leases.clone(), me.clone());
            async move {
                match theirs.renew(Timestamp::now()).await {
                    Err(RenewError::Kube(e)) => match *e {
                        kube::Error::Api(s) if s.code == 403 && s.message.contains("it holds") => {
                            Some(())
                        }
                        _ => None,
                    },
                    // Admitted before the policy loaded: given back, to be tried again.
                    Ok(()) => {
                        let back = json!({"spec": {"holderIdentity": me}});
                        let _ = admin
                            .patch("web-1", &PatchParams::default(), &KubePatch::Merge(&back))
                            .await;
                        None
                    }
                    Err(_) => None,
                }
            }
        },
    )
    .await;
}

/// A client with the identity of a kubeconfig file.
async fn client_from(path: &std::path::Path) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(path).expect("the agent's kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("a client configuration");
    Client::try_from(config).expect("the agent's client")
}

fn status_code(r: Result<ManagedDevice, kube::Error>) -> Option<u16> {
    match r {
        Err(kube::Error::Api(s)) => Some(s.code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
async fn an_enrolled_agent_reports_for_its_own_device_only_and_renews_its_token() {
    scenario_with("enroll", false, async |env| {
        let agents_ns = format!("{}-agents", env.ns);
        let policy = device_agent_policy(env, &agents_ns).await;
        // Deleted with the scenario's other chart policies at its teardown.
        device_lease_policy(env, &agents_ns).await;
        let outcome = AssertUnwindSafe(enrolled_agent(env, &agents_ns))
            .catch_unwind()
            .await;
        enrollment_teardown(env, &agents_ns, &policy).await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    })
    .await;
}

async fn enrolled_agent(env: &Env, agents_ns: &str) {
    use ringmaster::enroll::{Change, EnrollOptions, renew_token, run_with, token_expiry};
    // Another device, another agent's.
    env.create::<ManagedDevice>(
        r#"
apiVersion: patching.ringmaster.dev/v1alpha1
kind: ManagedDevice
metadata: {name: other, labels: {ring: it}, annotations: {ringmaster.dev/agent: "system:serviceaccount:elsewhere:other"}}
spec: {hostname: other}
"#,
    )
    .await;
    let dir = std::env::temp_dir().join(format!("rm-e2e-enroll-{}", env.suffix));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let path = dir.join("web-1.kubeconfig");
    let opts = EnrollOptions {
        namespace: env.ns.clone(),
        name: "web-1".into(),
        labels: vec![("class".into(), "ws".into()), ("ring".into(), "it".into())],
        os_family: "linux".into(),
        agents_namespace: agents_ns.to_string(),
        token_ttl: "1h".parse().expect("a duration"),
        server: None,
        certificate_authority: None,
        out: Some(path.display().to_string()),
    };
    let config = || async {
        kube::Config::infer()
            .await
            .expect("the test's configuration")
    };
    let first = run_with(config().await, &opts).await.expect("enrolled");
    // Everything is new but the ClusterRole every agent shares, which an earlier
    // enrollment in this cluster may have made.
    let shared = format!("ClusterRole {}", ringmaster::enroll::CATALOG_CLUSTER_ROLE);
    assert!(
        first.steps.iter().all(|s| s.change == Change::Created
            || (s.object == shared && s.change == Change::Unchanged)),
        "{:?}",
        first.steps
    );
    assert_eq!(first.steps.len(), 10, "{:?}", first.steps);
    let devices: Api<ManagedDevice> = Api::namespaced(env.client.clone(), &env.ns);
    let version = |d: ManagedDevice| d.metadata.resource_version;
    let before = version(devices.get("web-1").await.expect("the device"));
    let second = run_with(config().await, &opts)
        .await
        .expect("enrolled again");
    assert!(
        second
            .steps
            .iter()
            .all(|s| matches!(s.change, Change::Unchanged | Change::Granted)),
        "a second enrollment changes nothing: {:?}",
        second.steps
    );
    assert_eq!(
        version(devices.get("web-1").await.expect("the device")),
        before
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&path)
            .expect("the kubeconfig")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let agent = client_from(&path).await;
    let mine: Api<ManagedDevice> = Api::namespaced(agent.clone(), &env.ns);
    // Reads: its device, by name or listed with the name selected; its rings; the catalog.
    mine.get("web-1").await.expect("the agent reads its device");
    let listed = mine
        .list(&ListParams::default().fields("metadata.name=web-1"))
        .await
        .expect("the agent lists its device by name");
    assert_eq!(listed.items.len(), 1);
    let err = mine
        .list(&ListParams::default())
        .await
        .expect_err("no list of every device");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err}"
    );
    Api::<DeploymentRing>::namespaced(agent.clone(), &env.ns)
        .list(&ListParams::default())
        .await
        .expect("the agent reads the rings");
    Api::<Patch>::all(agent.clone())
        .list(&ListParams::default().limit(1))
        .await
        .expect("the agent reads the catalog");

    // Writes: its own status, and nothing else.
    let report = json!({"status": {"lastSeen": Timestamp::now().to_string(), "agent": "e2e/enrolled",
        "patches": [{"id": "KB-E2E", "state": "Missing"}]}});
    let written = mine
        .patch_status("web-1", &PatchParams::default(), &KubePatch::Merge(&report))
        .await
        .expect("the agent reports on its device");
    assert_eq!(
        written.status.expect("status").agent.as_deref(),
        Some("e2e/enrolled")
    );
    let code = status_code(
        mine.patch_status("other", &PatchParams::default(), &KubePatch::Merge(&report))
            .await,
    );
    assert_eq!(code, Some(403), "another device's status is refused");
    let spec = json!({"spec": {"hostname": "taken-over"}});
    let code = status_code(
        mine.patch("web-1", &PatchParams::default(), &KubePatch::Merge(&spec))
            .await,
    );
    assert_eq!(code, Some(403), "its device's spec is refused");
    // RBAC lets it patch its status; the admission policy keeps status.compliance the
    // operator's (a new value each try: the policy may take a moment to load).
    eventually("the admission policy refuses a forged compliance", Duration::from_secs(30), || {
        let mine = mine.clone();
        async move {
            let forged = json!({"status": {"compliance": {"message": format!("forged {}", Timestamp::now())}}});
            match mine.patch_status("web-1", &PatchParams::default(), &KubePatch::Merge(&forged)).await {
                Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("status.compliance") => Some(()),
                _ => None,
            }
        }
    })
    .await;

    enrolled_check_in(env, &agent).await;

    // The agent renews its token as itself, and the new one works.
    let old = std::fs::read_to_string(&path).expect("the kubeconfig");
    let expires = renew_token(&agent, &path, ringmaster::api::Duration::hours(2))
        .await
        .expect("the agent renews its token");
    assert_ne!(std::fs::read_to_string(&path).expect("the kubeconfig"), old);
    assert_eq!(token_expiry(&path).expect("the expiry"), Some(expires));
    let left = expires.duration_since(Timestamp::now());
    assert!(
        left > SignedDuration::from_mins(110) && left <= SignedDuration::from_hours(2),
        "{left:?}"
    );
    Api::<ManagedDevice>::namespaced(client_from(&path).await, &env.ns)
        .get("web-1")
        .await
        .expect("the renewed token works");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// The real Linux agent, apt on a confined root.

#[path = "it/agent_apt_fixture.rs"]
#[allow(dead_code)]
mod agent_apt_fixture;

/// An enrolled device whose agent (`ringmaster agent --backend apt`, in-process, as the
/// enrolled identity) drives real apt-get and dpkg on a confined root: an approved patch
/// is installed by the ring (the package at the fixed version, read back), and a patch
/// whose install script fails halts the ring while the agent puts the old version back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
async fn the_linux_agent_installs_a_real_package_and_rolls_back_a_broken_one() {
    scenario("agent", async |env| {
        let agents_ns = format!("{}-agents", env.ns);
        let policy = device_agent_policy(env, &agents_ns).await;
        let outcome = AssertUnwindSafe(apt_agent(env, &agents_ns))
            .catch_unwind()
            .await;
        enrollment_teardown(env, &agents_ns, &policy).await;
        let bad = format!("{}-broken", env.patch_name());
        if let Err(e) = Api::<Patch>::all(env.client.clone())
            .delete(&bad, &DeleteParams::default())
            .await
        {
            eprintln!("deleting Patch {bad}: {e}");
        }
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    })
    .await;
}

/// A Debian 12 advisory fixing `ringmaster-demo` in `fixed`, Critical, released an hour
/// ago, under the scenario's Patch name (plus `suffix`).
async fn debian_patch(env: &Env, suffix: &str, id: &str, fixed: &str) {
    let released = Timestamp::now() - SignedDuration::from_hours(1);
    let patch: Patch = serde_yaml::from_str(&format!(
        r#"
apiVersion: patching.ringmaster.dev/v1alpha1
kind: Patch
metadata: {{name: {name}{suffix}}}
spec:
  id: {id}
  vendor: Debian
  product: Debian 12
  classification: Security
  cvssScore: 9.8
  releasedAt: "{released}"
  uninstallable: true
  packages:
    - {{ecosystem: "Debian:12", name: ringmaster-demo, kind: Source, fixed: "{fixed}"}}
"#,
        name = env.patch_name(),
    ))
    .expect("patch yaml");
    Api::<Patch>::all(env.client.clone())
        .create(&PostParams::default(), &patch)
        .await
        .expect("creating the Patch");
}

async fn apt_agent(env: &Env, agents_ns: &str) {
    use agent_apt_fixture::{DEMO, Fixture, POSTINST_FAILS_WITH, missing_tools};
    use ringmaster::agent::linux::backend::{Backend, Pin};
    use ringmaster::agent::linux::run::{BackendKind, Options, run};
    if let Some(missing) = missing_tools() {
        panic!("the apt agent scenario needs the package tools: {missing}");
    }
    env.policy_and_rings(
        "{deviceSelector: {matchLabels: {ring: it}}, maxConcurrent: 100%, halt: {failureRate: 30, minSamples: 1, onFailure: Rollback}}",
        "{deviceSelector: {matchLabels: {ring: pilot}}, maxConcurrent: 100%}",
    )
    .await;
    // The host: ringmaster-demo 1.0-1 installed from its repository (which offers 1.0-2
    // and 1.0-3, whose postinst fails).
    let fixture = Fixture::new("e2e");
    let apt = fixture.apt(fixture.config());
    apt.available(&[DEMO.to_string()], true)
        .expect("the repository reads");
    apt.install(&[Pin {
        package: DEMO.into(),
        version: "1.0-1".into(),
    }])
    .expect("1.0-1 installs");
    // Enrolled as an MSP operator would.
    let kubeconfig = fixture.dir.0.join("db-1.kubeconfig");
    let opts = ringmaster::enroll::EnrollOptions {
        namespace: env.ns.clone(),
        name: "db-1".into(),
        labels: vec![("class".into(), "ws".into()), ("ring".into(), "it".into())],
        os_family: "linux".into(),
        agents_namespace: agents_ns.to_string(),
        token_ttl: "1h".parse().expect("a duration"),
        server: None,
        certificate_authority: None,
        out: Some(kubeconfig.display().to_string()),
    };
    let admin = kube::Config::infer()
        .await
        .expect("the test's configuration");
    ringmaster::enroll::run_with(admin, &opts)
        .await
        .expect("enrolled");
    let good = env.patch_id();
    let bad = format!("{}-B", env.patch_id());
    debian_patch(env, "", &good, "1.0-2").await;
    // The agent, as the enrolled identity.
    let state = fixture.dir.0.join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    std::fs::write(state.join("boot_id"), "boot-1\n").expect("boot id");
    let options = Options {
        namespace: env.ns.clone(),
        name: "db-1".into(),
        backend: BackendKind::Apt,
        root: Some(fixture.root.clone()),
        host_exec: Vec::new(),
        host_root: None,
        state_dir: state.clone(),
        check_in: Duration::from_secs(2),
        heartbeat: Duration::from_secs(30),
        install_timeout: Duration::from_secs(60),
        metadata_timeout: Duration::from_secs(60),
        reboot: ringmaster::agent::linux::reboot::Config {
            command: Some("true".into()),
            boot_id_file: state.join("boot_id"),
        },
        once: false,
        node_mode: false,
        drain_timeout: Duration::from_secs(60),
        kubeconfig: Some(kubeconfig.clone()),
    };
    let (stop, stopped) = watch::channel(false);
    let agent = tokio::spawn(async move { run(options, stopped).await.map_err(|e| e.to_string()) });
    let devices: Api<ManagedDevice> = Api::namespaced(env.client.clone(), &env.ns);
    let report = |id: String| {
        let devices = devices.clone();
        async move {
            let device = devices.get("db-1").await.ok()?;
            device.status?.patches.into_iter().find(|p| p.id == id)
        }
    };
    let installed = eventually(
        "the ring installs the fix",
        Duration::from_secs(120),
        || async {
            report(good.clone())
                .await
                .filter(|r| r.state == PatchState::Installed)
        },
    )
    .await;
    assert_eq!(installed.attempts, 1);
    assert!(installed.installed_at.is_some() && installed.attempt.is_some());
    assert_eq!(
        fixture.dpkg_status(DEMO),
        ("1.0-2".into(), "ii".into()),
        "the package is at the fixed version"
    );
    let device = devices.get("db-1").await.expect("the device");
    let status = device.status.expect("status");
    assert!(status.agent.unwrap_or_default().contains("(apt)"));
    assert!(status.last_seen.is_some());
    // A fix whose install script fails.
    debian_patch(env, "-broken", &bad, "1.0-3").await;
    let failed = eventually("the broken fix fails", Duration::from_secs(120), || async {
        report(bad.clone())
            .await
            .filter(|r| r.state == PatchState::Failed)
    })
    .await;
    let message = failed.message.unwrap_or_default();
    assert!(message.contains(POSTINST_FAILS_WITH), "{message}");
    assert!(
        message.contains("rolled back to ringmaster-demo 1.0-2"),
        "{message}"
    );
    assert_eq!(
        fixture.dpkg_status(DEMO),
        ("1.0-2".into(), "ii".into()),
        "the agent put the old version back"
    );
    let rollouts: Api<PatchRollout> = Api::namespaced(env.client.clone(), &env.ns);
    let name = format!("ws.{}", bad.to_ascii_lowercase());
    eventually("the ring halts", Duration::from_secs(60), || async {
        let r = rollouts.get_opt(&name).await.ok()??;
        r.status?.rings.first()?.halted_at.map(|_| ())
    })
    .await;
    // The good fix stays installed: a failed attempt of another patch took nothing away.
    assert_eq!(
        report(good.clone()).await.map(|r| r.state),
        Some(PatchState::Installed)
    );
    let _ = stop.send(true);
    match tokio::time::timeout(Duration::from_secs(30), agent).await {
        Ok(Ok(Ok(()))) => {}
        other => panic!("the agent did not stop cleanly: {other:?}"),
    }
}

/// The Git manifests of the lever scenario: policy `ws` (everything waits for a person)
/// over rings `it` (one device at a time, a long soak) and `pilot`.
fn git_manifests() -> Vec<serde_json::Value> {
    vec![
        json!({"apiVersion": "patching.ringmaster.dev/v1alpha1", "kind": "PatchPolicy",
            "metadata": {"name": "ws"},
            "spec": {"deviceSelector": {"matchLabels": {"class": "ws"}},
                "sla": [{"tier": "default", "critical": "7d", "high": "14d", "medium": "60d", "low": "120d"}],
                "approval": {"default": "Manual"}, "rings": ["it", "pilot"]}}),
        json!({"apiVersion": "patching.ringmaster.dev/v1alpha1", "kind": "DeploymentRing",
            "metadata": {"name": "it"},
            "spec": {"deviceSelector": {"matchLabels": {"ring": "it"}}, "maxConcurrent": 1,
                "promotion": {"soak": "24h", "minSuccessRate": 90}}}),
        json!({"apiVersion": "patching.ringmaster.dev/v1alpha1", "kind": "DeploymentRing",
            "metadata": {"name": "pilot"},
            "spec": {"deviceSelector": {"matchLabels": {"ring": "pilot"}}, "maxConcurrent": "100%"}}),
    ]
}

/// Applies the Git manifests as a GitOps controller would (server-side apply, its own
/// field manager, forced); returns each object's (kind/name, resourceVersion,
/// generation) as the apply left it.
async fn git_sync(env: &Env) -> Vec<(String, String, i64)> {
    git_objects(env, true).await
}

/// The Git manifests' objects as stored: (kind/name, resourceVersion, generation).
async fn git_versions(env: &Env) -> Vec<(String, String, i64)> {
    git_objects(env, false).await
}

/// Each Git manifest's object, applied first when `apply`, as (kind/name,
/// resourceVersion, generation).
async fn git_objects(env: &Env, apply: bool) -> Vec<(String, String, i64)> {
    async fn one<K>(env: &Env, m: &serde_json::Value, apply: bool) -> kube::api::ObjectMeta
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let name = m["metadata"]["name"].as_str().expect("name");
        let api = Api::<K>::namespaced(env.client.clone(), &env.ns);
        let params = PatchParams::apply("argocd-controller").force();
        let object = if apply {
            api.patch(name, &params, &KubePatch::Apply(m)).await
        } else {
            api.get(name).await
        };
        let object = object.unwrap_or_else(|e| panic!("{name}: {e}"));
        object.meta().clone()
    }
    let mut out = Vec::new();
    for m in git_manifests() {
        let kind = m["kind"].as_str().unwrap_or_default().to_string();
        let meta = if kind == "PatchPolicy" {
            one::<PatchPolicy>(env, &m, apply).await
        } else {
            one::<DeploymentRing>(env, &m, apply).await
        };
        out.push((
            format!("{kind}/{}", meta.name.unwrap_or_default()),
            meta.resource_version.unwrap_or_default(),
            meta.generation.unwrap_or_default(),
        ));
    }
    out
}

/// A ServiceAccount of the scenario's namespace allowed what the chart's edit role
/// allows on ringmaster's objects, and a client with its token: a person at a terminal.
async fn lever_user(env: &Env) -> (Client, String) {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let name = "lever-user";
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some(name.into());
    Api::<ServiceAccount>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &sa)
        .await
        .expect("creating the lever user");
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": name},
        "rules": [
            {"apiGroups": ["patching.ringmaster.dev"], "verbs": ["get", "list", "watch"],
             "resources": ["patchpolicies", "deploymentrings", "patchrollouts", "patchapprovals", "patchfreezes"]},
            {"apiGroups": ["patching.ringmaster.dev"], "verbs": ["create", "delete"],
             "resources": ["patchapprovals", "patchfreezes", "patchexceptions"]},
            {"apiGroups": ["patching.ringmaster.dev"], "verbs": ["patch"], "resources": ["patchrollouts"]}
        ]
    }))
    .expect("a Role");
    Api::<Role>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("creating the Role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": env.ns}]
    }))
    .expect("a RoleBinding");
    Api::<RoleBinding>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding the Role");
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(3600),
            bound_object_ref: None,
        },
        ..TokenRequest::default()
    };
    let token = Api::<ServiceAccount>::namespaced(env.client.clone(), &env.ns)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("a token for the lever user")
        .status
        .expect("a token")
        .token;
    let mut config = kube::Config::infer().await.expect("the cluster's config");
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..kube::config::AuthInfo::default()
    };
    let client = Client::try_from(config).expect("the lever user's client");
    (client, format!("system:serviceaccount:{}:{name}", env.ns))
}

/// The Events about the scenario's rollout with `reason`, their notes.
async fn rollout_events(env: &Env, reason: &str) -> Vec<String> {
    use k8s_openapi::api::events::v1::Event;
    Api::<Event>::namespaced(env.client.clone(), &env.ns)
        .list(&ListParams::default())
        .await
        .expect("listing Events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
async fn levers_steer_the_operator_in_the_callers_name_and_git_stays_as_git_has_it() {
    use ringmaster::lever::pull::{self, RolloutLever};
    scenario("levers", async |env| {
        let objects = ["patchapprovals", "patchfreezes"];
        chart_policy(env, "lever-objects", vec![], &objects).await;
        chart_policy(env, "rollout-levers", vec![], &["patchrollouts"]).await;
        let synced = git_sync(env).await;
        env.catalog_patch("").await;
        env.fleet("it", 3, &[("class", "ws"), ("ring", "it")], quick(0.0))
            .await;
        env.fleet(
            "pilot",
            2,
            &[("class", "ws"), ("ring", "pilot")],
            quick(0.0),
        )
        .await;
        let (lever, user) = lever_user(env).await;
        let id = env.patch_id();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            env.rollout().await.is_none(),
            "the policy leaves it to a person"
        );

        // approve: a PatchApproval in the caller's name starts the rollout.
        pull::decide(
            &lever,
            &env.ns,
            "ws",
            &id,
            Decision::Approve,
            "CAB 2026-12-07",
        )
        .await
        .expect("approve");
        let approved = eventually(
            "the approval starts a rollout",
            Duration::from_secs(30),
            || async { env.rollout().await?.status?.approval },
        )
        .await;
        let by = approved.by.unwrap_or_default();
        assert!(by.contains(&user), "the approval names the caller: {by}");
        let approval: PatchApproval = Api::namespaced(env.client.clone(), &env.ns)
            .get(&format!("ws.{}.approve", id.to_ascii_lowercase()))
            .await
            .expect("the PatchApproval");
        assert_eq!(created_by(&approval.metadata), Some(user.as_str()));

        // Nobody may write someone else's name: the admission policies refuse it.
        let mut forged = approval.clone();
        forged.metadata = kube::api::ObjectMeta {
            name: Some("forged".into()),
            annotations: Some([(CREATED_BY.to_string(), env.user.clone())].into()),
            ..Default::default()
        };
        let refused = Api::<PatchApproval>::namespaced(lever.clone(), &env.ns)
            .create(&PostParams::default(), &forged)
            .await;
        assert!(
            matches!(refused, Err(kube::Error::Api(ref s)) if s.code == 403),
            "{refused:?}"
        );

        // pause: no device is admitted while it holds.
        eventually(
            "ring it admits one device",
            Duration::from_secs(30),
            || async { (!env.planned().await.is_empty()).then_some(()) },
        )
        .await;
        let name = format!("ws.{}", id.to_ascii_lowercase());
        pull::rollout(&lever, &env.ns, &name, &RolloutLever::Pause(None))
            .await
            .expect("pause");
        eventually("the rollout is paused", Duration::from_secs(30), || async {
            (env.rollout().await?.status?.phase == Some(RolloutPhase::Paused)).then_some(())
        })
        .await;
        let seen = |r: &BTreeMap<String, (PatchState, u32, Option<Timestamp>)>| {
            r.values().filter(|s| s.1 > 0).count()
        };
        let attempted = seen(&env.reports().await);
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(
            seen(&env.reports().await),
            attempted,
            "no device admitted while paused"
        );
        assert!(env.planned().await.is_empty(), "no plan entry while paused");
        // The plugin's read-only verbs say so, as the lever user.
        let plugin = |args: &[&str]| {
            std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ringmaster"))
                .args(args)
                .args(["-n", &env.ns])
                .output()
                .expect("running kubectl-ringmaster")
        };
        let why = plugin(&["why", "rollout", &name, "-o", "json"]);
        assert!(
            why.status.success(),
            "{}",
            String::from_utf8_lossy(&why.stderr)
        );
        let why: serde_json::Value = serde_json::from_slice(&why.stdout).expect("why as JSON");
        assert!(
            why.to_string().contains("rollout paused (spec.paused)"),
            "{why}"
        );
        let status = plugin(&["status"]);
        let text = String::from_utf8_lossy(&status.stdout);
        assert!(
            status.status.success() && text.contains(&name) && text.contains("Paused"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "no colour off a terminal");
        let missing = plugin(&["why", "device", "no-such-device"]);
        assert_eq!(missing.status.code(), Some(1));
        let paused = rollout_events(env, "RolloutPaused").await;
        assert!(
            paused
                .iter()
                .any(|n| n.contains(&format!("paused by {user}"))),
            "{paused:?}"
        );
        let raw = Api::<PatchRollout>::namespaced(lever.clone(), &env.ns);
        let forged_lever =
            json!({"metadata": {"annotations": {LEVER_BY: env.user}}, "spec": {"paused": false}});
        let refused = raw
            .patch(
                &name,
                &PatchParams::default(),
                &KubePatch::Merge(&forged_lever),
            )
            .await;
        assert!(
            matches!(refused, Err(kube::Error::Api(ref s)) if s.code == 403),
            "{refused:?}"
        );

        // resume: ring it finishes, then soaks for a day…
        pull::rollout(&lever, &env.ns, &name, &RolloutLever::Resume(None))
            .await
            .expect("resume");
        eventually("ring it soaks", Duration::from_secs(90), || async {
            let s = env.rollout().await?.status?;
            (s.rings.first()?.phase == RingPhase::Soaking).then_some(())
        })
        .await;

        // …freeze pilot for 10 s (with the binary, as the admin), then promote: pilot
        // starts at once, but admits nobody until the freeze lifts itself.
        let freeze = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ringmaster"))
            .args(["freeze", "-n", &env.ns, "--ring", "pilot", "--for", "10s"])
            .args(["--reason", "e2e freeze", "-o", "json"])
            .output()
            .expect("running kubectl-ringmaster");
        assert!(
            freeze.status.success(),
            "{}",
            String::from_utf8_lossy(&freeze.stderr)
        );
        let made: PatchFreeze = serde_json::from_slice(&freeze.stdout).expect("the freeze as JSON");
        assert_eq!(created_by(&made.metadata), Some(env.user.as_str()));
        let until = made.spec.until;
        pull::rollout(&lever, &env.ns, &name, &RolloutLever::Promote(None))
            .await
            .expect("promote");
        eventually(
            "ring it is promoted past its soak",
            Duration::from_secs(30),
            || async {
                let s = env.rollout().await?.status?;
                (s.rings.first()?.phase == RingPhase::Passed).then_some(())
            },
        )
        .await;
        let first_pilot = eventually(
            "pilot is admitted once the freeze lifts",
            Duration::from_secs(60),
            || async {
                env.planned()
                    .await
                    .iter()
                    .any(|n| n.starts_with("pilot-"))
                    .then(Timestamp::now)
            },
        )
        .await;
        assert!(
            first_pilot >= until,
            "pilot admitted at {first_pilot}, before the freeze's end {until}"
        );
        env.every_device_installs_once(5, 5).await;
        let history = env
            .rollout()
            .await
            .and_then(|r| r.status)
            .map(|s| s.history)
            .unwrap_or_default();
        for reason in [Reason::RolloutPaused, Reason::RolloutResumed] {
            assert!(
                history
                    .iter()
                    .any(|h| h.reason == reason && h.message.contains(&user)),
                "{reason:?} by {user} in {history:?}"
            );
        }

        // A sync of the unchanged Git manifests changes nothing: no new generation, and
        // the apply itself writes nothing (the versions it returns are those just read;
        // the operator's own status writes may come between, so it is tried again then).
        let generations = |v: &[(String, String, i64)]| {
            v.iter()
                .map(|(n, _, g)| (n.clone(), *g))
                .collect::<Vec<_>>()
        };
        eventually(
            "a GitOps sync changes nothing",
            Duration::from_secs(30),
            || async {
                let before = git_versions(env).await;
                let after = git_sync(env).await;
                (after == before).then_some(())
            },
        )
        .await;
        assert_eq!(generations(&git_versions(env).await), generations(&synced));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: RINGMASTER_E2E=1 and KUBECONFIG, run with --ignored"]
async fn the_preview_reads_a_live_tenant_and_plays_a_change_against_it() {
    scenario_with("preview", false, async |env| {
        env.tenant(1, 6).await;
        // The head: the cluster's policy and rings as a repository holds them, once as
        // they are and once with ring it open one hour a week.
        let policy: PatchPolicy = Api::namespaced(env.client.clone(), &env.ns)
            .get("ws")
            .await
            .expect("the policy");
        let rings: Vec<DeploymentRing> = Api::namespaced(env.client.clone(), &env.ns)
            .list(&ListParams::default())
            .await
            .expect("the rings")
            .items;
        let head = |dir: &str, slow: bool| {
            let dir = std::env::temp_dir().join(format!("rm-e2e-{}-{dir}", env.suffix));
            std::fs::create_dir_all(&dir).expect("a head directory");
            let manifest = |kind: &str, name: &str, spec: serde_json::Value| {
                serde_yaml::to_string(&json!({
                    "apiVersion": "patching.ringmaster.dev/v1alpha1", "kind": kind,
                    "metadata": {"name": name, "namespace": env.ns}, "spec": spec
                }))
                .expect("yaml")
            };
            let mut docs = vec![manifest("PatchPolicy", "ws", json!(policy.spec))];
            for r in &rings {
                let name = r.metadata.name.clone().unwrap_or_default();
                let mut spec = json!(r.spec);
                if slow && name == "it" {
                    spec["maintenanceWindows"] =
                        json!([{"days": ["Mon"], "start": "03:00", "end": "04:00"}]);
                }
                docs.push(manifest("DeploymentRing", &name, spec));
            }
            std::fs::write(dir.join("tenant.yaml"), docs.join("---\n")).expect("the head");
            dir
        };
        let preview = |head: &std::path::Path| {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringmaster"))
                .args(["simulate", head.to_str().expect("utf-8"), "--from-cluster"])
                .args(["-n", &env.ns, "--days", "10", "--format", "json"])
                .args(["--max-compliance-drop", "1"])
                .output()
                .expect("running ringmaster");
            let json = serde_json::from_slice(&out.stdout).unwrap_or_default();
            (out, json)
        };
        let same = head("same", false);
        let (out, v): (_, serde_json::Value) = preview(&same);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert_eq!(v["compliance"]["difference"], 0.0, "{}", v["compliance"]);
        assert!(
            v["notes"].to_string().contains("ManagedDevices 6"),
            "the live inventory: {}",
            v["notes"]
        );

        // Ring it admits one device at a time, one hour a week: the preview says the
        // change lowers compliance, and the gate fails.
        let slow = head("slow", true);
        let (out, v): (_, serde_json::Value) = preview(&slow);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}\n{}",
            v["compliance"],
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(v["compliance"]["difference"].as_f64().unwrap_or(0.0) < -1.0);
        let _ = std::fs::remove_dir_all(&same);
        let _ = std::fs::remove_dir_all(&slow);
    })
    .await;
}
