//! The offline manifest loader and validator, as a user sees it: the exact messages for
//! each kind of mistake, all-or-nothing loading, and deterministic output.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ringmaster::manifest::{
    Document, LoadError, Object, Problem, Source, load_paths, parse_documents, parse_yaml,
};

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ringmaster-manifest-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.0.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(&path, text).expect("write fixture");
        path
    }

    /// Problems as printed, with the temp dir left out of file names.
    fn shown(&self, problems: &[Problem]) -> Vec<String> {
        let prefix = format!("{}/", self.0.display());
        problems
            .iter()
            .map(|p| p.to_string().replacen(&prefix, "", 1))
            .collect()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const POLICY: &str = r#"apiVersion: patching.ringmaster.dev/v1alpha1
kind: PatchPolicy
metadata:
  name: workstations
  namespace: acme
spec:
  deviceSelector:
    matchLabels: {ringmaster.dev/role: workstation}
  rings: [pilot, broad]
  sla:
    - {tier: default, critical: 3d, high: 7d, medium: 14d, low: 30d}
  approval:
    rules:
      - name: security
        match: {classifications: [Security]}
        action: Approve
        delay: 2d
"#;

const RING: &str = r#"apiVersion: patching.ringmaster.dev/v1alpha1
kind: DeploymentRing
metadata: {name: pilot, namespace: acme}
spec:
  deviceSelector: {matchLabels: {ring: pilot}}
  maxConcurrent: 25%
  maintenanceWindows:
    - {days: [Tue, Wed], start: "22:00", end: "04:00", timeZone: Europe/Berlin}
  promotion: {soak: 24h, minSuccessRate: 95}
  halt: {failureRate: 10, onFailure: Pause}
"#;

const EXCEPTION: &str = r#"apiVersion: patching.ringmaster.dev/v1alpha1
kind: PatchException
metadata: {name: kiosk-legacy, namespace: acme}
spec:
  patches: [KB5036893]
  devices: {names: [kiosk-01]}
  reason: vendor app breaks
  owner: ops@acme.example
  expiresAt: "2026-12-15T00:00:00Z"
"#;

const DEVICE: &str = r#"apiVersion: patching.ringmaster.dev/v1alpha1
kind: ManagedDevice
metadata:
  name: kiosk-01
  labels: {ringmaster.dev/tier: kiosk}
spec:
  hostname: kiosk-01.acme.example
  os: {family: windows, version: 11 24H2}
"#;

const PATCH: &str = r#"apiVersion: patching.ringmaster.dev/v1alpha1
kind: Patch
metadata: {name: kb5036893}
spec:
  id: KB5036893
  vendor: Microsoft
  classification: Security
  cvssScore: 8.8
  cves: [{id: CVE-2026-21345, cvssScore: 8.8}]
  releasedAt: "2026-04-14T17:00:00Z"
"#;

const ROLLOUT: &str = r#"apiVersion: patching.ringmaster.dev/v1alpha1
kind: PatchRollout
metadata: {name: workstations-kb5036893, namespace: acme}
spec: {policy: workstations, patch: KB5036893}
"#;

const FLEET: &str = r#"apiVersion: sim.ringmaster.dev/v1alpha1
kind: Fleet
size: 500
whatever: {is: [kept, as, written]}
"#;

/// Parses YAML text as if it were the file `file`.
fn docs(file: &str, text: &str) -> Vec<Document> {
    parse_yaml(Path::new(file), text).expect("fixture is valid YAML")
}

/// Checks YAML text as the file `file` and returns the problems as printed.
fn problems(file: &str, text: &str) -> Vec<String> {
    let (_, problems) = parse_documents(docs(file, text));
    problems.iter().map(ToString::to_string).collect()
}

/// `base` with the line holding `from` replaced by `to` (`to` may span lines).
fn edit(base: &str, from: &str, to: &str) -> String {
    assert!(base.contains(from), "fixture has no {from:?}");
    base.replacen(from, to, 1)
}

#[test]
fn valid_documents_of_every_kind_decode_with_defaults() {
    let text = [POLICY, RING, EXCEPTION, DEVICE, PATCH, ROLLOUT, FLEET].join("---\n");
    let (objects, problems) = parse_documents(docs("all.yaml", &text));
    assert_eq!(problems, vec![]);
    let summary: Vec<String> = objects
        .iter()
        .map(|(s, o)| {
            format!(
                "#{} line {}: {} {:?}/{:?}",
                s.document,
                s.line,
                o.kind(),
                o.namespace(),
                o.name()
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            "#1 line 1: PatchPolicy Some(\"acme\")/Some(\"workstations\")",
            "#2 line 19: DeploymentRing Some(\"acme\")/Some(\"pilot\")",
            "#3 line 30: PatchException Some(\"acme\")/Some(\"kiosk-legacy\")",
            "#4 line 40: ManagedDevice Some(\"default\")/Some(\"kiosk-01\")",
            "#5 line 49: Patch None/Some(\"kb5036893\")",
            "#6 line 60: PatchRollout Some(\"acme\")/Some(\"workstations-kb5036893\")",
            "#7 line 65: Fleet None/None",
        ]
    );
    // Schema defaults are applied, as an API server would.
    let Object::Policy(policy) = &objects[0].1 else {
        panic!("not a policy")
    };
    assert_eq!(policy.spec.tier_label, "ringmaster.dev/tier");
    assert_eq!(
        policy.spec.approval.rules[0].delay.map(|d| d.to_string()),
        Some("2d".into())
    );
    let Object::Ring(ring) = &objects[1].1 else {
        panic!("not a ring")
    };
    assert_eq!(ring.spec.halt.as_ref().map(|h| h.min_samples), Some(1));
    assert_eq!(ring.spec.maintenance_windows[0].time_zone, "Europe/Berlin");
    // Extensions are passed through untouched.
    let Object::Extension {
        api_version,
        kind,
        value,
    } = &objects[6].1
    else {
        panic!("not an extension")
    };
    assert_eq!(api_version, "sim.ringmaster.dev/v1alpha1");
    assert_eq!(kind, "Fleet");
    assert_eq!(
        value,
        &serde_json::json!({
            "apiVersion": "sim.ringmaster.dev/v1alpha1",
            "kind": "Fleet",
            "size": 500,
            "whatever": {"is": ["kept", "as", "written"]}
        })
    );
}

#[test]
fn a_pattern_violation_names_file_line_object_field_and_pattern() {
    let text = format!(
        "# Acme's workstation policy.\n\n{}",
        edit(POLICY, "delay: 2d", "delay: 7 days")
    );
    assert_eq!(
        problems("examples/msp-tenant/policies.yaml", &text),
        vec![
            "examples/msp-tenant/policies.yaml:3: PatchPolicy acme/workstations: \
             spec.approval.rules[0].delay: must match ^[0-9]{1,7}(s|m|h|d|w)$"
        ]
    );
}

#[test]
fn an_empty_defaulted_field_takes_its_default() {
    let text = edit(RING, "maxConcurrent: 25%", "maxConcurrent:");
    let (objects, problems) = parse_documents(docs("r.yaml", &text));
    assert_eq!(problems, vec![]);
    let Some((_, Object::Ring(ring))) = objects.first() else {
        panic!("not a ring: {objects:?}")
    };
    assert_eq!(
        ring.spec.max_concurrent,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1)
    );
}

#[test]
fn an_explicit_null_in_an_optional_field_is_no_value() {
    // As an API server's CEL sees it: the field is absent, its rules do not run.
    let text = edit(POLICY, "delay: 2d", "delay:");
    let (objects, problems) = parse_documents(docs("p.yaml", &text));
    assert_eq!(problems, vec![]);
    let Some((_, Object::Policy(policy))) = objects.first() else {
        panic!("not a policy: {objects:?}")
    };
    assert_eq!(policy.spec.approval.rules[0].delay, None);
}

#[test]
fn a_missing_required_field_is_named() {
    let text = edit(POLICY, "  rings: [pilot, broad]\n", "");
    assert_eq!(
        problems("p.yaml", &text),
        vec!["p.yaml:1: PatchPolicy acme/workstations: spec.rings: required field is missing"]
    );
    // An empty value is no value (as the API server treats a null).
    let text = edit(POLICY, "  rings: [pilot, broad]\n", "  rings:\n");
    assert_eq!(
        problems("p.yaml", &text),
        vec!["p.yaml:1: PatchPolicy acme/workstations: spec.rings: required field is missing"]
    );
}

#[test]
fn a_bad_enum_value_lists_the_allowed_ones() {
    let text = edit(POLICY, "action: Approve", "action: Approved");
    assert_eq!(
        problems("p.yaml", &text),
        vec![
            "p.yaml:1: PatchPolicy acme/workstations: spec.approval.rules[0].action: \
             \"Approved\" is not one of Approve, Manual, Reject"
        ]
    );
}

#[test]
fn a_bad_date_time_is_refused() {
    let text = edit(EXCEPTION, "\"2026-12-15T00:00:00Z\"", "2026-12-15");
    assert_eq!(
        problems("e.yaml", &text),
        vec![
            "e.yaml:1: PatchException acme/kiosk-legacy: spec.expiresAt: \
             must be an RFC 3339 date-time such as 2026-01-31T22:00:00Z"
        ]
    );
}

#[test]
fn an_out_of_range_number_gives_the_bound() {
    let text = edit(RING, "minSuccessRate: 95", "minSuccessRate: 120");
    assert_eq!(
        problems("r.yaml", &text),
        vec![
            "r.yaml:1: DeploymentRing acme/pilot: spec.promotion.minSuccessRate: must be at most 100"
        ]
    );
    let text = edit(PATCH, "cvssScore: 8.8}", "cvssScore: -1}");
    assert_eq!(
        problems("p.yaml", &text),
        vec!["p.yaml:1: Patch kb5036893: spec.cves[0].cvssScore: must be at least 0"]
    );
}

#[test]
fn an_unknown_field_is_refused_with_a_suggestion() {
    let text = edit(RING, "maxConcurrent: 25%", "maxConcurent: 25%");
    assert_eq!(
        problems("r.yaml", &text),
        vec![
            "r.yaml:1: DeploymentRing acme/pilot: spec.maxConcurent: \
             unknown field (did you mean maxConcurrent?)"
        ]
    );
    let text = edit(DEVICE, "  labels:", "  lables:");
    assert_eq!(
        problems("d.yaml", &text),
        vec![
            "d.yaml:1: ManagedDevice default/kiosk-01: metadata.lables: \
             unknown field (did you mean labels?)"
        ]
    );
    let text = format!("{RING}extra: 1\n");
    assert_eq!(
        problems("r.yaml", &text),
        vec!["r.yaml:1: DeploymentRing acme/pilot: extra: unknown field"]
    );
}

#[test]
fn wrong_types_say_what_was_expected_and_found() {
    let text = edit(POLICY, "rings: [pilot, broad]", "rings: pilot");
    assert_eq!(
        problems("p.yaml", &text),
        vec!["p.yaml:1: PatchPolicy acme/workstations: spec.rings: must be a list, found a string"]
    );
    let text = edit(RING, "maxConcurrent: 25%", "maxConcurrent: [1]");
    assert_eq!(
        problems("r.yaml", &text),
        vec![
            "r.yaml:1: DeploymentRing acme/pilot: spec.maxConcurrent: \
             must be an integer or a string, found a list"
        ]
    );
}

#[test]
fn cel_rules_run_after_the_schema() {
    let freeze = "  freezes:\n    - {from: \"2027-01-02T00:00:00Z\", until: \"2026-12-23T00:00:00Z\", reason: holidays, owner: cab}\n";
    let text = format!("{POLICY}{freeze}");
    assert_eq!(
        problems("p.yaml", &text),
        vec!["p.yaml:1: PatchPolicy acme/workstations: spec.freezes[0]: until must be after from"]
    );
    let text = edit(RING, "maxConcurrent: 25%", "maxConcurrent: 0");
    assert_eq!(
        problems("r.yaml", &text),
        vec![
            "r.yaml:1: DeploymentRing acme/pilot: spec.maxConcurrent: \
             maxConcurrent is a count of at least 1 or a percentage from 1% to 100%"
        ]
    );
    let text = edit(POLICY, "delay: 2d", "delay: 31d");
    assert_eq!(
        problems("p.yaml", &text),
        vec![
            "p.yaml:1: PatchPolicy acme/workstations: spec.approval.rules[0]: \
             delay may be at most 30d, or 365d when the rule matches only Feature updates"
        ]
    );
}

#[test]
fn unknown_kinds_and_versions_are_problems() {
    let deployment =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n";
    assert_eq!(
        problems("d.yaml", deployment),
        vec![
            "d.yaml:1: Deployment shop/web: kind: unknown kind apps/v1 Deployment (expected \
             patching.ringmaster.dev/v1alpha1 PatchPolicy, DeploymentRing, PatchException, \
             ManagedDevice, Patch, PatchRollout, PatchReport, PatchApproval, PatchFreeze or a \
             sim.ringmaster.dev kind)"
        ]
    );
    let typo = edit(POLICY, "kind: PatchPolicy", "kind: PatchPolcy");
    assert_eq!(
        problems("p.yaml", &typo),
        vec![
            "p.yaml:1: PatchPolcy acme/workstations: kind: unknown kind \
             patching.ringmaster.dev/v1alpha1 PatchPolcy (did you mean PatchPolicy?)"
        ]
    );
    let version = edit(POLICY, "/v1alpha1", "/v1");
    assert_eq!(
        problems("p.yaml", &version),
        vec![
            "p.yaml:1: PatchPolicy acme/workstations: apiVersion: unknown kind \
             patching.ringmaster.dev/v1 PatchPolicy (PatchPolicy is patching.ringmaster.dev/v1alpha1)"
        ]
    );
    assert_eq!(
        problems("x.yaml", "metadata: {name: x}\n---\n- a list\n"),
        vec![
            "x.yaml:1: document 1: apiVersion: required field is missing",
            "x.yaml:1: document 1: kind: required field is missing",
            "x.yaml:3: document 2: a manifest must be a mapping with apiVersion, kind and \
             metadata, found a list",
        ]
    );
}

#[test]
fn metadata_needs_a_name_and_a_patch_takes_no_namespace() {
    let unnamed = edit(ROLLOUT, "name: workstations-kb5036893, ", "");
    assert_eq!(
        problems("r.yaml", &unnamed),
        vec!["r.yaml:1: document 1: metadata.name: required field is missing"]
    );
    let no_meta = edit(
        ROLLOUT,
        "metadata: {name: workstations-kb5036893, namespace: acme}\n",
        "",
    );
    assert_eq!(
        problems("r.yaml", &no_meta),
        vec!["r.yaml:1: document 1: metadata.name: required field is missing"]
    );
    let namespaced_patch = edit(
        PATCH,
        "{name: kb5036893}",
        "{name: kb5036893, namespace: acme}",
    );
    assert_eq!(
        problems("p.yaml", &namespaced_patch),
        vec![
            "p.yaml:1: Patch kb5036893: metadata.namespace: Patch is cluster-scoped and takes no namespace"
        ]
    );
    let upper = edit(PATCH, "{name: kb5036893}", "{name: KB5036893}");
    assert_eq!(
        problems("p.yaml", &upper),
        vec![
            "p.yaml:1: Patch KB5036893: metadata.name: must be a lowercase RFC 1123 subdomain: \
             lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, \
             at most 253 characters"
        ]
    );
}

#[test]
fn typed_decoding_errors_name_the_field() {
    // Labels are strings; the schema does not look into metadata, decoding does.
    let text = edit(
        DEVICE,
        "{ringmaster.dev/tier: kiosk}",
        "{ringmaster.dev/tier: 1}",
    );
    assert_eq!(
        problems("d.yaml", &text),
        vec![
            "d.yaml:1: ManagedDevice default/kiosk-01: metadata.labels.ringmaster.dev/tier: \
             invalid type: integer `1`, expected a string"
        ]
    );
}

#[test]
fn duplicates_are_reported_on_the_second_object() {
    let same_default_ns = edit(
        DEVICE,
        "  name: kiosk-01\n",
        "  name: kiosk-01\n  namespace: default\n",
    );
    let other_ns = edit(
        DEVICE,
        "  name: kiosk-01\n",
        "  name: kiosk-01\n  namespace: other\n",
    );
    let text = [DEVICE, other_ns.as_str(), same_default_ns.as_str()].join("---\n");
    let (objects, problems) = parse_documents(docs("d.yaml", &text));
    assert_eq!(
        problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![
            "d.yaml:20: ManagedDevice default/kiosk-01: metadata.name: \
             duplicate object, first defined at d.yaml:1"
        ]
    );
    let kept: Vec<(usize, Option<&str>)> = objects
        .iter()
        .map(|(s, o)| (s.document, o.namespace()))
        .collect();
    assert_eq!(kept, vec![(1, Some("default")), (2, Some("other"))]);
}

#[test]
fn malformed_yaml_fails_the_whole_load_naming_file_and_line() {
    let dir = TempDir::new("malformed");
    dir.write("a-good.yaml", POLICY);
    dir.write(
        "b-bad.yaml",
        &format!("{RING}---\nkind: Patch\nspec:\n  id: [KB1\n  vendor: x\n"),
    );
    dir.write("c-worse.yml", "a: b: c\n");
    let errors = load_paths(std::slice::from_ref(&dir.0))
        .expect_err("nothing is returned from a malformed set")
        .into_vec();
    let prefix = format!("{}/", dir.0.display());
    let shown: Vec<String> = errors
        .iter()
        .map(|e| e.to_string().replacen(&prefix, "", 1))
        .collect();
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert!(
        shown[0].starts_with("b-bad.yaml:15:") && shown[0].contains(": invalid YAML: "),
        "{shown:?}"
    );
    assert!(
        shown[1].starts_with("c-worse.yml:1:") && shown[1].contains(": invalid YAML: "),
        "{shown:?}"
    );
    assert!(matches!(&errors[0], LoadError::Syntax { line: 15, .. }));
}

#[test]
fn unreadable_paths_are_load_errors() {
    let dir = TempDir::new("missing");
    let missing = dir.0.join("nope.yaml");
    let errors = load_paths(&[missing]).expect_err("missing file").into_vec();
    assert_eq!(errors.len(), 1);
    let shown = errors[0]
        .to_string()
        .replacen(&format!("{}/", dir.0.display()), "", 1);
    assert!(shown.starts_with("nope.yaml: cannot read: "), "{shown}");
}

#[test]
fn a_directory_with_one_bad_document_keeps_the_others() {
    let dir = TempDir::new("tree");
    dir.write("tenants/acme/policy.yaml", POLICY);
    dir.write(
        "tenants/acme/rings.yaml",
        &format!(
            "# rings\n{RING}---\n{}---\n\n",
            edit(RING, "name: pilot", "name: broad")
                .replace("minSuccessRate: 95", "minSuccessRate: 120")
        ),
    );
    dir.write("catalog/patches.yml", &format!("---\n{PATCH}"));
    dir.write("fleet.yaml", FLEET);
    dir.write("README.md", "not yaml: [");
    let docs = load_paths(std::slice::from_ref(&dir.0)).expect("all files parse");
    let files: Vec<String> = docs
        .iter()
        .map(|d| {
            format!(
                "{}#{}@{}",
                d.source
                    .file
                    .strip_prefix(&dir.0)
                    .unwrap_or(&d.source.file)
                    .display(),
                d.source.document,
                d.source.line
            )
        })
        .collect();
    assert_eq!(
        files,
        vec![
            "catalog/patches.yml#1@2",
            "fleet.yaml#1@1",
            "tenants/acme/policy.yaml#1@1",
            "tenants/acme/rings.yaml#1@2",
            "tenants/acme/rings.yaml#2@13",
        ]
    );
    let (objects, problems) = parse_documents(docs);
    assert_eq!(
        dir.shown(&problems),
        vec![
            "tenants/acme/rings.yaml:13: DeploymentRing acme/broad: spec.promotion.minSuccessRate: \
             must be at most 100"
        ]
    );
    let kinds: Vec<&str> = objects.iter().map(|(_, o)| o.kind()).collect();
    assert_eq!(
        kinds,
        vec!["Patch", "Fleet", "PatchPolicy", "DeploymentRing"]
    );
}

#[test]
fn problems_are_sorted_and_output_is_deterministic() {
    let dir = TempDir::new("order");
    let bad_policy =
        edit(POLICY, "delay: 2d", "delay: soon").replace("rings: [pilot, broad]", "rings: []");
    dir.write(
        "b.yaml",
        &format!(
            "{bad_policy}---\n{}",
            edit(RING, "maxConcurrent: 25%", "maxConcurent: 2")
        ),
    );
    dir.write(
        "a.yaml",
        &edit(PATCH, "classification: Security", "classification: Hotfix"),
    );
    let load = || load_paths(std::slice::from_ref(&dir.0)).expect("valid YAML");
    let (_, first) = parse_documents(load());
    let expected = vec![
        "a.yaml:1: Patch kb5036893: spec.classification: \"Hotfix\" is not one of Security, \
         Critical, Feature, Driver, Firmware, Definition, Rollup, Other",
        "b.yaml:1: PatchPolicy acme/workstations: spec.approval.rules[0].delay: \
         must match ^[0-9]{1,7}(s|m|h|d|w)$",
        "b.yaml:1: PatchPolicy acme/workstations: spec.rings: must have at least 1 item",
        "b.yaml:19: DeploymentRing acme/pilot: spec.maxConcurent: \
         unknown field (did you mean maxConcurrent?)",
    ];
    assert_eq!(dir.shown(&first), expected);
    // The same documents in another order give the same problems in the same order.
    let mut reversed = load();
    reversed.reverse();
    let (_, second) = parse_documents(reversed);
    assert_eq!(second, first);
    let sources: Vec<&Source> = first.iter().map(|p| &p.source).collect();
    assert!(sources.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn a_patch_report_needs_a_month_and_a_time_zone_that_exist() {
    let report = "apiVersion: patching.ringmaster.dev/v1alpha1\nkind: PatchReport\n\
                  metadata: {name: november, namespace: acme}\n\
                  spec: {month: \"2026-11\", timeZone: Europe/Paris}\n";
    let now: jiff::Timestamp = "2026-12-07T00:00:00Z".parse().expect("t");
    let check = |text: &str| -> Vec<String> {
        ringmaster::validate::check(docs("r.yaml", text), None, now)
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(check(report), Vec::<String>::new());
    let bad_month = edit(report, "\"2026-11\"", "\"2026-13\"");
    let shown = check(&bad_month);
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(
        shown[0].starts_with("r.yaml:1: PatchReport acme/november: spec.month:"),
        "{shown:?}"
    );
    let bad_zone = edit(report, "Europe/Paris", "Mars/Olympus");
    assert_eq!(
        check(&bad_zone),
        vec![
            "r.yaml:1: PatchReport acme/november: spec.timeZone: time zone \"Mars/Olympus\": \
             not an IANA time zone name (e.g. Europe/Berlin, UTC)"
        ]
    );
}

#[test]
fn levers_that_name_nothing_are_problems() {
    let text = format!(
        "{POLICY}---
apiVersion: patching.ringmaster.dev/v1alpha1
kind: PatchApproval
metadata: {{name: kb1-yes, namespace: acme}}
spec: {{policy: laptops, patch: KB1, decision: Approve, reason: CAB}}
---
apiVersion: patching.ringmaster.dev/v1alpha1
kind: PatchFreeze
metadata: {{name: inc-42, namespace: acme}}
spec: {{rings: [nope], until: \"2027-01-01T00:00:00Z\", reason: incident, owner: noc}}
---
apiVersion: patching.ringmaster.dev/v1alpha1
kind: PatchFreeze
metadata: {{name: no-end, namespace: acme}}
spec: {{reason: incident, owner: noc}}
"
    );
    let now: jiff::Timestamp = "2026-12-07T00:00:00Z".parse().expect("t");
    let found: Vec<String> = ringmaster::validate::check(docs("levers.yaml", &text), None, now)
        .iter()
        .map(ToString::to_string)
        .filter(|p| p.contains("PatchApproval") || p.contains("PatchFreeze"))
        .collect();
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(
        found[0]
            .contains("PatchApproval acme/kb1-yes: spec.policy: PatchPolicy \"laptops\" not found"),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|p| p
            .contains("PatchFreeze acme/inc-42: spec.rings[0]: DeploymentRing \"nope\" not found")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("PatchFreeze acme/no-end: spec.until")),
        "{found:#?}"
    );
}
