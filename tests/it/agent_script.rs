//! The shell agent of `docs/agent-contract.md`, the very script the doc shows, run with
//! `sh` against a stand-in for kubectl that serves one ManagedDevice from a file and
//! applies the agent's merge patches of its status. Each check-in is one run with
//! `ONCE=1`; what the agent wrote is then judged by `ringmaster::contract`, the rules the
//! operator applies. Needs `sh`, `jq` and GNU coreutils, as the script does.

use std::path::{Path, PathBuf};
use std::process::Command;

use jiff::{SignedDuration, Timestamp};
use ringmaster::api::{DevicePatchStatus, Duration, PatchState, PlanEntry};
use ringmaster::contract::{self, FailReason, Standing};
use serde_json::{Value, json};

use crate::agent_sh::{self, TempDir};

/// kubectl as far as the agent uses it: `get` of its device, and merge patches of its
/// status (applied with jq, RFC 7396), each logged to `patches`, one a line; and its
/// Lease: `create -f -` when there is none (`lease.json`), merge patches of it (NotFound
/// when there is none), each logged to `renewals`.
const FAKE_KUBECTL: &str = r#"#!/bin/sh
set -eu
dev=$FAKE_DIR/device.json
lease=$FAKE_DIR/lease.json
unexpected() { echo "fake kubectl: unexpected: $*" >&2; exit 2; }
mp='def mp($p): if ($p | type) == "object"
    then reduce ($p | to_entries[]) as $e (if type == "object" then . else {} end;
      if $e.value == null then del(.[$e.key]) else .[$e.key] |= mp($e.value) end)
    else $p end; mp($p)'
case "$1 $2 $3 $4" in
  "-n ns patch lease")
    [ "$5 $6 $7 $9" = "dev-1 --type=merge -p --request-timeout=30s" ] || unexpected "$@"
    if [ ! -f "$lease" ]; then
      echo 'Error from server (NotFound): leases.coordination.k8s.io "dev-1" not found' >&2
      exit 1
    fi
    printf '%s\n' "$8" >>"$FAKE_DIR/renewals"
    jq --argjson p "$8" "$mp" "$lease" >"$lease.new"; mv "$lease.new" "$lease"; exit 0 ;;
  "-n ns create -f")
    [ "$5 $6" = "- --request-timeout=30s" ] || unexpected "$@"
    [ ! -f "$lease" ] || { echo 'Error from server (AlreadyExists)' >&2; exit 1; }
    cat >"$lease"; echo created >>"$FAKE_DIR/renewals"; exit 0 ;;
esac
[ "$1 $2 $4 $5" = "-n ns manageddevices.patching.ringmaster.dev dev-1" ] || unexpected "$@"
case "$3" in
  get) [ "$6 $7" = "-o json" ] || unexpected "$@"; cat "$dev" ;;
  patch)
    [ "$6 $7 $8 ${10} ${11}" = "--subresource=status --type=merge -p -o json" ] || unexpected "$@"
    printf '%s\n' "$9" >>"$FAKE_DIR/patches"
    jq --argjson p "$9" "$mp" "$dev" >"$dev.new"
    mv "$dev.new" "$dev"; cat "$dev" ;;
  *) unexpected "$@" ;;
esac
"#;

/// One device, its agent's script and the stand-in kubectl, in a temp dir.
struct Device {
    dir: TempDir,
    script: PathBuf,
}

impl Device {
    /// A device with these plan entries (`install`, `uninstall`: patch id → entry) and
    /// reports.
    fn new(test: &str, install: Value, uninstall: Value, patches: Value) -> Self {
        let dir = TempDir::new(&format!("agent-sh-{test}"));
        let kubectl = dir.0.join("kubectl");
        std::fs::write(&kubectl, FAKE_KUBECTL).expect("writing the fake kubectl");
        let exec = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&kubectl, exec).expect("making the fake kubectl executable");
        let script = agent_sh::write_to(&dir.0);
        let device = Device { dir, script };
        device.set(json!({
            "apiVersion": "patching.ringmaster.dev/v1alpha1",
            "kind": "ManagedDevice",
            "metadata": {"name": "dev-1", "namespace": "ns"},
            "spec": {"plan": {"install": install, "uninstall": uninstall}},
            "status": {"patches": patches},
        }));
        device
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    fn set(&self, device: Value) {
        std::fs::write(self.path("device.json"), device.to_string()).expect("writing the device");
    }

    fn get(&self) -> Value {
        let text = std::fs::read_to_string(self.path("device.json")).expect("reading the device");
        serde_json::from_str(&text).expect("the device is JSON")
    }

    /// Replaces the plan (as the operator would).
    fn plan(&self, install: Value, uninstall: Value) {
        let mut d = self.get();
        d["spec"]["plan"] = json!({"install": install, "uninstall": uninstall});
        self.set(d);
    }

    /// The agent's report for `id`.
    fn report(&self, id: &str) -> DevicePatchStatus {
        let d = self.get();
        let r = d["status"]["patches"]
            .as_array()
            .and_then(|p| p.iter().find(|r| r["id"] == id))
            .unwrap_or_else(|| panic!("no report for {id}: {d}"));
        serde_json::from_value(r.clone()).unwrap_or_else(|e| panic!("{e}: {r}"))
    }

    /// The status patches the agent sent, in order.
    fn patches(&self) -> Vec<Value> {
        std::fs::read_to_string(self.path("patches"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON patch body"))
            .collect()
    }

    /// One check-in of the agent (`ONCE=1`) with these settings; returns its stderr.
    fn check_in(&self, env: &[(&str, &str)]) -> String {
        let out = Command::new("sh")
            .arg(&self.script)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TMPDIR", &self.dir.0)
            .env("FAKE_DIR", &self.dir.0)
            .env("KUBECTL", self.path("kubectl"))
            .env("NAMESPACE", "ns")
            .env("DEVICE", "dev-1")
            .env("ONCE", "1")
            .envs(env.iter().copied())
            .output()
            .expect("running sh");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "the agent failed: {stderr}");
        stderr
    }
}

fn entry(
    not_before: Timestamp,
    not_after: Option<Timestamp>,
    basis: &DevicePatchStatus,
) -> PlanEntry {
    PlanEntry {
        rollout: "ws.kb1".into(),
        not_before,
        not_after,
        deadline: None,
        attempt: Some(contract::attempt_id("ws.kb1", not_before)),
        basis: Some(contract::digest(basis)),
        answer_by: contract::answer_by(not_before, Duration::hours(24)),
    }
}

/// Now, less a bit, with nanoseconds (as the operator writes times).
fn issued() -> Timestamp {
    Timestamp::now() - SignedDuration::from_millis(60_500) + SignedDuration::from_nanos(123_456_789)
}

fn whole_second_now(t: Option<Timestamp>) -> bool {
    t.is_some_and(|t| {
        t.subsec_nanosecond() == 0
            && Timestamp::now().duration_since(t).abs() < SignedDuration::from_secs(30)
    })
}

fn failing(message: &str) -> String {
    format!("echo 'reading the package lists'; echo '{message}' >&2; exit 100")
}

#[test]
fn a_terse_agent_attempts_an_entry_once_and_is_matched_by_the_basis_digest() {
    let missing = DevicePatchStatus::missing("KB1");
    let e = entry(issued(), None, &missing);
    let d = Device::new(
        "terse",
        json!({"KB1": e}),
        json!({}),
        json!([{"id": "KB1", "state": "Missing", "attempts": 0}]),
    );
    let terse = [
        ("TERSE", "1"),
        ("PATCHES", "KB1"),
        ("INSTALL", &*failing("E: dpkg was interrupted")),
    ];
    d.check_in(&terse);
    let r = d.report("KB1");
    assert_eq!((r.state, r.attempts), (PatchState::Failed, 1));
    assert_eq!(r.message.as_deref(), Some("E: dpkg was interrupted"));
    assert_eq!(
        (r.attempt.as_ref(), r.last_attempt_at, r.installed_at),
        (None, None, None),
        "terse: no echo, no times"
    );
    let patches = d.patches();
    assert_eq!(patches.len(), 2, "Installing, then Failed: {patches:?}");
    assert_eq!(patches[0]["status"]["patches"][0]["state"], "Installing");
    for p in &patches {
        assert!(
            p["status"].get("lastSeen").is_none(),
            "terse: no lastSeen: {p}"
        );
        assert!(p.get("spec").is_none() && p["status"].get("compliance").is_none());
    }
    let now = Timestamp::now();
    assert_eq!(
        contract::judge(&r, Some(&e), now),
        Standing::Failed(FailReason::Reported),
        "the operator takes the terse Failed as this attempt's answer"
    );

    // Attempted once: the next check-ins leave it, and write nothing (no lastSeen).
    d.check_in(&terse);
    assert_eq!(d.report("KB1").attempts, 1);
    assert_eq!(d.patches().len(), 2, "nothing to write");

    // A new attempt, its basis the Failed report: tried again.
    let again = entry(issued() + SignedDuration::from_secs(30), None, &r);
    d.plan(json!({"KB1": again}), json!({}));
    d.check_in(&[("TERSE", "1"), ("PATCHES", "KB1"), ("INSTALL", "echo ok")]);
    let r = d.report("KB1");
    assert_eq!((r.state, r.attempts), (PatchState::Installed, 2));
    assert_eq!(r.installed_at, None);
    assert_eq!(contract::judge(&r, Some(&again), now), Standing::Installed);
}

#[test]
fn an_agent_echoes_the_attempt_and_reports_whole_second_times() {
    let missing = DevicePatchStatus::missing("KB1");
    let e = entry(issued(), None, &missing);
    let d = Device::new(
        "echo",
        json!({"KB1": e}),
        json!({}),
        json!([{"id": "KB1", "state": "Missing", "attempts": 0}]),
    );
    d.check_in(&[("PATCHES", "KB1"), ("INSTALL", "echo installed \"$1\"")]);
    let r = d.report("KB1");
    assert_eq!((r.state, r.attempts), (PatchState::Installed, 1));
    assert_eq!(r.attempt, e.attempt, "the attempt echoed");
    assert_eq!(r.message, None);
    assert!(whole_second_now(r.last_attempt_at), "{r:?}");
    assert!(whole_second_now(r.installed_at), "{r:?}");
    assert!(r.last_attempt_at >= Some(e.not_before));
    let patches = d.patches();
    assert_eq!(
        patches.len(),
        3,
        "check-in, Installing, Installed: {patches:?}"
    );
    let installing = &patches[1]["status"]["patches"][0];
    assert_eq!(
        (installing["state"].as_str(), installing["attempt"].as_str()),
        (Some("Installing"), e.attempt.as_deref())
    );
    for p in &patches {
        let seen: Timestamp = p["status"]["lastSeen"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("lastSeen on every write: {p}"));
        assert!(whole_second_now(Some(seen)));
        assert_eq!(p["status"]["agent"], "ringmaster-agent.sh/0.1");
    }
    assert_eq!(
        contract::judge(&r, Some(&e), Timestamp::now()),
        Standing::Installed
    );
}

/// The script's digest is the operator's, times and message included: with the basis of
/// the report as it is, the entry is unanswered and the agent starts; with any other, the
/// report answers it and the agent leaves it.
#[test]
fn the_scripts_digest_is_the_operators() {
    let report = json!({"id": "KB1", "state": "Failed", "attempts": 2,
        "lastAttemptAt": "2026-11-24T21:03:00Z", "installedAt": "2026-11-20T08:00:00Z",
        "message": "0x800f0922: ünïcödé, \"quoted\"\ttab"});
    let typed: DevicePatchStatus = serde_json::from_value(report.clone()).expect("a report");
    let unchanged = entry(issued(), None, &typed);
    let mut other = typed.clone();
    other.message = Some("0x800f0922".into());
    let changed = entry(issued(), None, &other);
    for (e, starts) in [(changed, false), (unchanged, true)] {
        let d = Device::new("digest", json!({"KB1": e}), json!({}), json!([report]));
        d.check_in(&[("PATCHES", "KB1"), ("INSTALL", "echo ok")]);
        let r = d.report("KB1");
        assert_eq!(
            r.state == PatchState::Installed,
            starts,
            "basis {:?} of {typed:?}: {r:?}",
            e.basis
        );
    }
}

#[test]
fn an_install_starts_only_inside_its_window() {
    let now = Timestamp::now();
    let missing = |id: &str| json!({"id": id, "state": "Missing", "attempts": 0});
    let m = DevicePatchStatus::missing("x");
    let hour = SignedDuration::from_hours(1);
    let nanos = SignedDuration::from_nanos(250_000_000);
    let d = Device::new(
        "window",
        json!({
            // Not yet.
            "KB1": entry(now + SignedDuration::from_secs(5), None, &m),
            // Closed.
            "KB2": entry(now - hour, Some(now - nanos), &m),
            // Open.
            "KB3": entry(now - hour, Some(now + hour), &m),
            "KB4": entry(now - hour, None, &m),
        }),
        json!({}),
        json!([
            missing("KB1"),
            missing("KB2"),
            missing("KB3"),
            missing("KB4")
        ]),
    );
    d.check_in(&[("PATCHES", "KB1 KB2 KB3 KB4"), ("INSTALL", "echo ok")]);
    let states: Vec<_> = ["KB1", "KB2", "KB3", "KB4"]
        .iter()
        .map(|id| d.report(id).state)
        .collect();
    use PatchState::*;
    assert_eq!(
        states,
        [Missing, Missing, Installed, Missing],
        "one install a check-in, inside its window"
    );
}

#[test]
fn uninstalls_come_first_and_a_failed_uninstall_keeps_the_patch() {
    let now = Timestamp::now();
    let m = DevicePatchStatus::missing("x");
    let back =
        json!({"rollout": "ws.kb1", "notBefore": (now - SignedDuration::from_secs(5)).to_string()});
    let installed = |id: &str| {
        json!({"id": id, "state": "Installed", "attempts": 1,
               "installedAt": "2026-11-24T21:03:00Z", "attempt": "ws.kb1@1"})
    };
    let d = Device::new(
        "uninstall",
        json!({"KB3": entry(now - SignedDuration::from_secs(5), None, &m)}),
        json!({"KB1": back, "KB2": back}),
        json!([installed("KB1"), installed("KB2"),
               {"id": "KB3", "state": "Missing", "attempts": 0}]),
    );
    let log = d.dir.0.join("uninstalled");
    let uninstall = format!(
        "echo \"$1\" >>'{}'; [ \"$1\" = KB1 ] || {{ echo 'E: no older version'; exit 1; }}",
        log.display()
    );
    d.check_in(&[
        ("PATCHES", "KB1,KB2,KB3"),
        ("INSTALL", "echo ok"),
        ("UNINSTALL", &uninstall),
    ]);
    assert_eq!(
        std::fs::read_to_string(&log).expect("the uninstall log"),
        "KB1\nKB2\n"
    );
    let kb1 = d.report("KB1");
    assert_eq!(
        (kb1.state, kb1.installed_at),
        (PatchState::RolledBack, None)
    );
    let kb2 = d.report("KB2");
    assert_eq!(
        kb2.state,
        PatchState::Installed,
        "a failed uninstall keeps the patch"
    );
    assert_eq!(
        kb2.message.as_deref(),
        Some("uninstall failed: E: no older version")
    );
    assert_eq!(d.report("KB3").state, PatchState::Installed);
    let states: Vec<String> = d
        .patches()
        .iter()
        .map(|p| {
            let list = p["status"]["patches"].as_array().expect("patches");
            list.iter()
                .map(|r| {
                    format!(
                        "{}={}",
                        r["id"].as_str().unwrap_or("?"),
                        r["state"].as_str().unwrap_or("?")
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let first_install = states.iter().position(|s| s.contains("KB3=Installing"));
    let rolled_back = states.iter().position(|s| s.contains("KB1=RolledBack"));
    assert!(
        rolled_back < first_install && rolled_back.is_some(),
        "the uninstall before the install: {states:#?}"
    );
}

#[test]
fn a_restart_mid_install_reports_failed_and_the_inventory_adds_missing_patches() {
    let d = Device::new(
        "restart",
        json!({}),
        json!({}),
        json!([{"id": "KB1", "state": "Installing", "attempts": 1, "attempt": "ws.kb1@1"}]),
    );
    d.check_in(&[
        ("INVENTORY", "printf 'KB1\\nKB9\\n\\nKB9\\n'"),
        ("INSTALL", "false"),
    ]);
    let kb1 = d.report("KB1");
    assert_eq!((kb1.state, kb1.attempts), (PatchState::Failed, 1));
    assert_eq!(
        kb1.message.as_deref(),
        Some("interrupted: the agent restarted during the install")
    );
    assert_eq!(d.report("KB9"), DevicePatchStatus::missing("KB9"));
    let list = &d.get()["status"]["patches"];
    assert_eq!(list.as_array().map(Vec::len), Some(2), "KB9 once: {list}");
}

#[test]
fn an_install_that_runs_past_its_timeout_fails_with_the_reason() {
    let e = entry(issued(), None, &DevicePatchStatus::missing("KB1"));
    let d = Device::new(
        "timeout",
        json!({"KB1": e}),
        json!({}),
        json!([{"id": "KB1", "state": "Missing", "attempts": 0}]),
    );
    d.check_in(&[
        ("PATCHES", "KB1"),
        ("INSTALL", "echo 'downloading'; sleep 5"),
        ("INSTALL_TIMEOUT", "1"),
    ]);
    let r = d.report("KB1");
    assert_eq!(r.state, PatchState::Failed);
    assert_eq!(
        r.message.as_deref(),
        Some("timed out after 1s: downloading")
    );
}

/// The agent reads no more than its own temp dir and the device: it leaves nothing
/// behind there.
#[test]
fn the_agent_cleans_up_its_temp_dir() {
    let d = Device::new("tmp", json!({}), json!({}), json!([]));
    d.check_in(&[("PATCHES", "KB1"), ("INSTALL", "true")]);
    let left: Vec<_> = std::fs::read_dir(&d.dir.0)
        .expect("the dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tmp."))
        .collect();
    assert!(left.is_empty(), "mktemp dirs left: {left:?}");
    assert!(Path::new(&d.path("device.json")).exists());
}

/// With nothing new to report, a check-in is the device's Lease: created the first time,
/// renewed after, and no status write; a report that changes is a status write again.
#[test]
fn a_check_in_with_nothing_new_renews_the_lease_instead_of_writing_status() {
    let d = Device::new(
        "lease",
        json!({}),
        json!({}),
        json!([{"id": "KB1", "state": "Missing", "attempts": 0}]),
    );
    let env = [
        ("PATCHES", "KB1"),
        ("INSTALL", "echo ok"),
        ("INTERVAL", "60"),
    ];
    d.check_in(&env);
    assert_eq!(d.patches().len(), 1, "the first check-in writes its agent");
    assert!(
        !d.path("lease.json").exists(),
        "a status write is a check-in"
    );
    d.check_in(&env);
    assert_eq!(d.patches().len(), 1, "nothing new: no status write");
    let lease: Value = serde_json::from_str(
        &std::fs::read_to_string(d.path("lease.json")).expect("the Lease was created"),
    )
    .expect("JSON");
    let lease: k8s_openapi::api::coordination::v1::Lease =
        serde_json::from_value(lease).expect("a Lease");
    let (device, created) = contract::check_in(&lease).expect("the device's check-in");
    assert_eq!(device, "dev-1");
    assert!(whole_second_now(Some(created)), "{created}");
    let spec = lease.spec.expect("spec");
    assert_eq!(spec.lease_duration_seconds, Some(180), "three intervals");
    assert_eq!(
        spec.holder_identity.as_deref(),
        Some("ringmaster-agent.sh/0.1")
    );
    d.check_in(&env);
    let renewals = std::fs::read_to_string(d.path("renewals")).expect("renewals");
    let lines: Vec<&str> = renewals.lines().collect();
    assert_eq!(lines.len(), 2, "created, then renewed: {renewals}");
    let renewal: Value = serde_json::from_str(lines[1]).expect("a merge patch");
    assert!(renewal["spec"]["renewTime"].is_string(), "{renewal}");
    assert_eq!(d.patches().len(), 1, "still no status write");
    // A new applicable patch is a change: a status write, with lastSeen.
    d.check_in(&[("PATCHES", "KB1 KB2"), ("INSTALL", "echo ok")]);
    let patches = d.patches();
    assert_eq!(patches.len(), 2, "{patches:?}");
    assert!(patches[1]["status"]["lastSeen"].is_string());
    assert_eq!(d.report("KB2"), DevicePatchStatus::missing("KB2"));
}
