//! A small tenant for engine tests, built from YAML, and helpers to drive it.

use jiff::Timestamp;
use ringmaster::api::*;
use ringmaster::contract;
use ringmaster::sim::World;

/// CVE references by id alone, as a Patch lists them before any feed scored them.
pub fn cve_refs(ids: &[&str]) -> Vec<CveRef> {
    ids.iter()
        .map(|id| CveRef {
            id: id.to_string(),
            cvss_score: None,
            cvss_vector: None,
            epss: None,
        })
        .collect()
}

pub fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

/// Loads multi-document YAML of the ringmaster kinds into a world for namespace `acme`.
pub fn world(yaml: &str) -> World {
    let mut w = World::new("acme");
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value: serde_json::Value = serde::Deserialize::deserialize(doc).expect("yaml");
        if value.is_null() {
            continue;
        }
        let kind = value["kind"].as_str().expect("kind").to_string();
        let name = value["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        let mut value = value;
        if kind != "Patch" {
            value["metadata"]["namespace"] = "acme".into();
        }
        if value["metadata"].get("creationTimestamp").is_none() {
            value["metadata"]["creationTimestamp"] = "2026-11-01T00:00:00Z".into();
        }
        value["metadata"]["generation"] = 1.into();
        match kind.as_str() {
            "PatchPolicy" => {
                w.policies
                    .insert(name, serde_json::from_value(value).expect("policy"));
            }
            "DeploymentRing" => {
                w.rings
                    .insert(name, serde_json::from_value(value).expect("ring"));
            }
            "PatchException" => {
                w.exceptions
                    .insert(name, serde_json::from_value(value).expect("exception"));
            }
            "ManagedDevice" => {
                w.devices
                    .insert(name, serde_json::from_value(value).expect("device"));
            }
            "Patch" => {
                let p: Patch = serde_json::from_value(value).expect("patch");
                w.patches.insert(p.spec.id.clone(), p);
            }
            "PatchApproval" => {
                w.approvals
                    .insert(name, serde_json::from_value(value).expect("approval"));
            }
            "PatchFreeze" => {
                w.freezes
                    .insert(name, serde_json::from_value(value).expect("freeze"));
            }
            other => panic!("unknown kind {other}"),
        }
    }
    w
}

/// A policy with two rings (it, pilot) and one Critical patch released at 2026-11-10T18:00Z.
pub const BASE: &str = r#"
kind: PatchPolicy
metadata: {name: ws}
spec:
  deviceSelector: {matchLabels: {class: ws}}
  sla:
    - {tier: tier-1, critical: 2d, high: 7d, medium: 30d, low: 90d}
    - {tier: default, critical: 7d, high: 14d, medium: 60d, low: 120d}
  approval:
    rules:
      - {match: {severities: [Critical]}, action: Approve}
    default: Manual
  rings: [it, pilot]
---
kind: DeploymentRing
metadata: {name: it}
spec:
  deviceSelector: {matchLabels: {ring: it}}
  maxConcurrent: 2
  promotion: {soak: 24h, minSuccessRate: 90}
  halt: {failureRate: 50, minSamples: 2, onFailure: Rollback}
---
kind: DeploymentRing
metadata: {name: pilot}
spec:
  deviceSelector: {matchLabels: {ring: pilot}}
  maxConcurrent: 50%
  promotion: {soak: 48h, minSuccessRate: 95}
---
kind: Patch
metadata: {name: kb1}
spec:
  id: KB1
  vendor: Microsoft
  classification: Security
  cvssScore: 9.8
  releasedAt: "2026-11-10T18:00:00Z"
  uninstallable: true
"#;

/// `n` devices named `<prefix>-<i>` in a ring, all reporting KB1 Missing, seen at `seen`.
pub fn devices(prefix: &str, ring: &str, tier: &str, n: usize, seen: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                "---\nkind: ManagedDevice\nmetadata: {{name: {prefix}-{i}, labels: {{class: ws, ring: {ring}, ringmaster.dev/tier: {tier}}}}}\nspec: {{}}\nstatus: {{lastSeen: \"{seen}\", patches: [{{id: KB1, state: Missing}}]}}\n"
            )
        })
        .collect()
}

/// Devices whose plan asks them to install `patch`, with an entry that is open at `now`.
pub fn planned(w: &World, patch: &str, now: Timestamp) -> Vec<String> {
    w.devices
        .values()
        .filter(|d| {
            d.spec
                .plan
                .install
                .get(patch)
                .is_some_and(|e| e.not_before <= now && e.not_after.is_none_or(|na| now < na))
        })
        .map(|d| d.metadata.name.clone().unwrap_or_default())
        .collect()
}

/// A well-behaved agent: every device whose open plan entry for `patch` the device
/// contract lets it start ([`contract::may_install`]) installs it at `at`, echoing the
/// entry's attempt, and ends it through the contract ([`contract::finish`]; success
/// unless listed in `fail`).
pub fn agents_install(w: &mut World, patch: &str, at: Timestamp, fail: &[&str]) -> Vec<String> {
    let todo: Vec<(String, PlanEntry)> = planned(w, patch, at)
        .into_iter()
        .filter_map(|d| {
            let dev = &w.devices[&d];
            let entry = dev.spec.plan.install.get(patch)?;
            let report = dev
                .status
                .as_ref()?
                .patches
                .iter()
                .find(|p| p.id == patch)?;
            contract::may_install(report, entry, at).then(|| (d.clone(), entry.clone()))
        })
        .collect();
    for (d, entry) in &todo {
        w.start(d, patch, entry, at);
        let end = if fail.contains(&d.as_str()) {
            contract::Outcome::Failed("install failed".into())
        } else {
            contract::Outcome::Installed
        };
        w.finish(d, patch, end, at);
    }
    todo.into_iter().map(|(d, _)| d).collect()
}

/// A well-behaved agent for uninstall entries.
pub fn agents_uninstall(w: &mut World, patch: &str, at: Timestamp) -> Vec<String> {
    let todo: Vec<String> = w
        .devices
        .values()
        .filter(|d| d.spec.plan.uninstall.contains_key(patch))
        .map(|d| d.metadata.name.clone().unwrap_or_default())
        .collect();
    for d in &todo {
        w.report(d, patch, PatchState::RolledBack, at);
    }
    todo
}

pub fn rollout<'a>(w: &'a World, name: &str) -> &'a PatchRolloutStatus {
    w.rollouts
        .get(name)
        .and_then(|r| r.status.as_ref())
        .unwrap_or_else(|| panic!("rollout {name} has a status"))
}

pub fn ring<'a>(w: &'a World, rollout_name: &str, ring: &str) -> &'a RingProgress {
    rollout(w, rollout_name)
        .rings
        .iter()
        .find(|r| r.name == ring)
        .expect("ring progress")
}

/// Runs the `ringmaster` binary with `args`.
pub fn ringmaster(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(args)
        .output()
        .expect("run ringmaster")
}

/// A process's output as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
