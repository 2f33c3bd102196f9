//! The CEL rules in the CRDs accept what they should and reject what they should,
//! evaluated offline exactly as written into the schemas.

use ringmaster::api::{DeploymentRing, PatchException, PatchPolicy};

fn policy(extra_approval: &str, freezes: &str) -> PatchPolicy {
    let yaml = format!(
        r#"
apiVersion: patching.ringmaster.dev/v1alpha1
kind: PatchPolicy
metadata: {{name: p, namespace: t}}
spec:
  deviceSelector: {{}}
  rings: [a, b]
  approval:
    rules:
{extra_approval}
  freezes: {freezes}
"#
    );
    serde_yaml::from_str(&yaml).expect("test policy parses")
}

fn ring(max: &str, windows: &str) -> DeploymentRing {
    let yaml = format!(
        r#"
apiVersion: patching.ringmaster.dev/v1alpha1
kind: DeploymentRing
metadata: {{name: r, namespace: t}}
spec:
  deviceSelector: {{}}
  maxConcurrent: {max}
  maintenanceWindows: {windows}
"#
    );
    serde_yaml::from_str(&yaml).expect("test ring parses")
}

fn errors<T: kube::CustomResourceExt + serde::Serialize>(obj: &T) -> Vec<String> {
    match kube::core::cel::validate_cel(obj) {
        Ok(()) => vec![],
        Err(errs) => errs.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn approval_delay_is_capped_at_30_days_except_for_feature_updates() {
    let ok = policy(
        "      - {match: {classifications: [Security]}, action: Approve, delay: 30d}",
        "[]",
    );
    assert_eq!(errors(&ok), Vec::<String>::new());
    let too_long = policy(
        "      - {match: {classifications: [Security]}, action: Approve, delay: 31d}",
        "[]",
    );
    let errs = errors(&too_long);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("at most 30d"), "{errs:?}");
    let hours = policy(
        "      - {match: {classifications: [Security]}, action: Approve, delay: 721h}",
        "[]",
    );
    assert_eq!(errors(&hours).len(), 1);
    let feature = policy(
        "      - {match: {classifications: [Feature]}, action: Approve, delay: 52w}",
        "[]",
    );
    assert_eq!(errors(&feature), Vec::<String>::new());
    let feature_too_long = policy(
        "      - {match: {classifications: [Feature]}, action: Approve, delay: 366d}",
        "[]",
    );
    assert_eq!(errors(&feature_too_long).len(), 1);
    let mixed = policy(
        "      - {match: {classifications: [Feature, Security]}, action: Approve, delay: 60d}",
        "[]",
    );
    assert_eq!(
        errors(&mixed).len(),
        1,
        "a rule that also matches Security is capped at 30d"
    );
}

#[test]
fn freezes_must_end_after_they_begin() {
    let rules = "      - {action: Approve}";
    let ok = policy(
        rules,
        r#"[{from: "2026-12-23T00:00:00Z", until: "2027-01-02T00:00:00Z", reason: x, owner: y}]"#,
    );
    assert_eq!(errors(&ok), Vec::<String>::new());
    let backwards = policy(
        rules,
        r#"[{from: "2027-01-02T00:00:00Z", until: "2026-12-23T00:00:00Z", reason: x, owner: y}]"#,
    );
    let errs = errors(&backwards);
    assert!(
        errs.iter().any(|e| e.contains("until must be after from")),
        "{errs:?}"
    );
}

#[test]
fn max_concurrent_is_a_positive_count_or_a_percentage() {
    for good in ["1", "250", "'25%'", "'100%'", "'1%'", "'25'"] {
        assert_eq!(errors(&ring(good, "[]")), Vec::<String>::new(), "{good}");
    }
    for bad in ["0", "-3", "'0%'", "'101%'", "'abc'", "'5.5'"] {
        let errs = errors(&ring(bad, "[]"));
        assert!(
            errs.iter().any(|e| e.contains("maxConcurrent")),
            "{bad} should be refused, got {errs:?}"
        );
    }
}

#[test]
fn windows_name_days_or_a_patch_tuesday_offset() {
    let ok = ring(
        "1",
        "[{days: [Tue, Wed], start: '22:00', end: '04:00', timeZone: Europe/Berlin}]",
    );
    assert_eq!(errors(&ok), Vec::<String>::new());
    let offset = ring(
        "1",
        "[{patchTuesdayOffsetDays: 3, start: '20:00', end: '23:00'}]",
    );
    assert_eq!(errors(&offset), Vec::<String>::new());
    let both = ring(
        "1",
        "[{days: [Tue], patchTuesdayOffsetDays: 3, start: '20:00', end: '23:00'}]",
    );
    assert!(errors(&both).iter().any(|e| e.contains("exactly one")));
    let neither = ring("1", "[{start: '20:00', end: '23:00'}]");
    assert!(errors(&neither).iter().any(|e| e.contains("exactly one")));
    let repeated = ring("1", "[{days: [Tue, Tue], start: '20:00', end: '23:00'}]");
    assert!(
        errors(&repeated)
            .iter()
            .any(|e| e.contains("must not repeat"))
    );
    let weeks = ring(
        "1",
        "[{days: [Sat], weeksOfMonth: [1, 6], start: '20:00', end: '23:00'}]",
    );
    assert!(errors(&weeks).iter().any(|e| e.contains("weeksOfMonth")));
}

#[test]
fn rings_and_sla_tiers_must_not_repeat() {
    let mut p = policy("      - {action: Approve}", "[]");
    p.spec.rings = vec!["a".into(), "b".into(), "a".into()];
    assert!(
        errors(&p)
            .iter()
            .any(|e| e.contains("rings must not repeat"))
    );
}

#[test]
fn exceptions_need_devices() {
    let yaml = r#"
apiVersion: patching.ringmaster.dev/v1alpha1
kind: PatchException
metadata: {name: e, namespace: t}
spec:
  patches: [KB1]
  devices: {}
  reason: r
  owner: o
  expiresAt: "2026-12-15T00:00:00Z"
"#;
    let pex: PatchException = serde_yaml::from_str(yaml).expect("parses");
    assert!(
        errors(&pex)
            .iter()
            .any(|e| e.contains("names or a selector"))
    );
}

#[test]
fn a_rollouts_policy_and_patch_cannot_change() {
    use ringmaster::api::{PatchRollout, PatchRolloutSpec};
    let spec = PatchRolloutSpec {
        policy: "ws".into(),
        patch: "KB1".into(),
        paused: false,
        paused_rings: vec![],
        promote: vec![],
        abort: false,
    };
    let old = PatchRollout::new("ws.kb1", spec.clone());
    let mut lever = old.clone();
    lever.spec.paused = true;
    assert!(
        kube::core::cel::validate_cel_update(&lever, &old).is_ok(),
        "the levers may change"
    );
    let mut moved = old.clone();
    moved.spec.patch = "KB2".into();
    let errs = kube::core::cel::validate_cel_update(&moved, &old).expect_err("patch is immutable");
    assert!(
        errs.iter()
            .any(|e| e.to_string().contains("patch is immutable")),
        "{errs:?}"
    );
}
