//! People's levers as the engine sees them: PatchApprovals, PatchFreezes, a ring paused
//! alone, and who pulled each lever in the Events and history.

use crate::common::*;
use ringmaster::api::*;

const NOW: &str = "2026-11-11T00:00:00Z";

/// BASE plus a High patch (KB2) that the policy's default leaves to a person.
fn manual_world() -> ringmaster::sim::World {
    let kb2 = r#"
---
kind: Patch
metadata: {name: kb2}
spec:
  id: KB2
  vendor: Microsoft
  classification: Security
  cvssScore: 7.5
  releasedAt: "2026-11-10T18:00:00Z"
"#;
    let yaml = format!(
        "{BASE}{kb2}{}",
        devices("it", "it", "tier-1", 3, NOW).replace("KB1", "KB2")
    );
    world(&yaml)
}

fn approval(name: &str, decision: &str, by: &str, created: &str) -> String {
    format!(
        r#"
---
kind: PatchApproval
metadata:
  name: {name}
  creationTimestamp: "{created}"
  annotations: {{ringmaster.dev/created-by: {by}}}
spec: {{policy: ws, patch: kb2, decision: {decision}, reason: CAB 2026-11-12}}
"#
    )
}

fn add(w: &mut ringmaster::sim::World, yaml: &str) {
    let extra = world(yaml);
    w.approvals.extend(extra.approvals);
    w.freezes.extend(extra.freezes);
}

#[test]
fn a_patchapproval_starts_what_the_rules_left_to_a_person_and_a_rejection_aborts_it() {
    let mut w = manual_world();
    let t0 = ts(NOW);
    let d = w.step(t0);
    assert!(d.new_rollouts.is_empty(), "KB2 waits for a person");
    let approvals = &w.policies["ws"].status.as_ref().unwrap().approvals;
    assert_eq!(approvals.awaiting_manual, 1);
    assert!(
        approvals
            .pending
            .iter()
            .any(|p| p.patch == "KB2" && p.state == PendingState::AwaitingManual),
        "{approvals:?}"
    );

    add(
        &mut w,
        &approval("kb2-yes", "Approve", "alice@example.com", NOW),
    );
    let t1 = ts("2026-11-11T01:00:00Z");
    let d = w.step(t1);
    assert_eq!(d.new_rollouts.len(), 1);
    assert_eq!(d.new_rollouts[0].name, "ws.kb2");
    let r = rollout(&w, "ws.kb2");
    let approval_record = r.approval.as_ref().unwrap();
    assert_eq!(
        approval_record.by.as_deref(),
        Some("PatchApproval kb2-yes (by alice@example.com)")
    );
    assert_eq!(planned(&w, "KB2", t1), vec!["it-0", "it-1"]);

    // A later rejection wins over the approval: the rollout is aborted and releases its
    // devices.
    add(
        &mut w,
        &approval(
            "kb2-no",
            "Reject",
            "bob@example.com",
            "2026-11-11T02:00:00Z",
        ),
    );
    let t2 = ts("2026-11-11T02:00:00Z");
    w.step(t2);
    assert_eq!(rollout(&w, "ws.kb2").phase, Some(RolloutPhase::Aborted));
    assert!(planned(&w, "KB2", t2).is_empty());
    let aborted = &w.events_with("RolloutAborted")[0].1.message;
    assert!(
        aborted.contains("PatchApproval kb2-no (by bob@example.com)"),
        "{aborted}"
    );
}

#[test]
fn a_tenant_freeze_blocks_every_ring_and_lifts_itself_on_the_second() {
    let mut w = world(&format!("{BASE}{}", devices("it", "it", "tier-1", 3, NOW)));
    add(
        &mut w,
        r#"
kind: PatchFreeze
metadata:
  name: inc-42
  creationTimestamp: "2026-11-10T00:00:00Z"
  annotations: {ringmaster.dev/created-by: carol@example.com}
spec: {until: "2026-11-11T06:00:00Z", reason: incident INC-42, owner: noc@example.com}
"#,
    );
    let t0 = ts(NOW);
    let d = w.step(t0);
    assert_eq!(d.new_rollouts.len(), 1, "approval goes on; admission waits");
    assert!(planned(&w, "KB1", t0).is_empty(), "frozen: nobody admitted");
    let it = ring(&w, "ws.kb1", "it");
    let waiting = it.waiting_for.as_deref().unwrap_or_default();
    assert!(
        waiting.contains("change freeze until 2026-11-11T06:00:00Z")
            && waiting.contains("incident INC-42 (PatchFreeze inc-42)")
            && waiting.contains("noc@example.com, set by carol@example.com"),
        "{waiting}"
    );
    let policy = w.policies["ws"].status.as_ref().unwrap();
    assert!(
        policy
            .freeze
            .as_deref()
            .unwrap_or_default()
            .contains("INC-42")
    );
    assert_eq!(
        d.wake_at,
        Some(ts("2026-11-11T06:00:00Z")),
        "wakes when it lifts"
    );

    let lifted = ts("2026-11-11T06:00:00Z");
    w.step(lifted);
    assert_eq!(planned(&w, "KB1", lifted), vec!["it-0", "it-1"]);
    assert!(w.policies["ws"].status.as_ref().unwrap().freeze.is_none());
    assert_eq!(w.events_with("FreezeEnded").len(), 1);
}

#[test]
fn a_ring_freeze_holds_only_that_ring() {
    let mut w = world(&format!(
        "{BASE}{}{}",
        devices("it", "it", "tier-1", 2, NOW),
        devices("pc", "pilot", "tier-2", 2, NOW)
    ));
    add(
        &mut w,
        r#"
kind: PatchFreeze
metadata: {name: pilot-dr-test, annotations: {ringmaster.dev/created-by: carol@example.com}}
spec: {rings: [pilot], from: "2026-11-01T00:00:00Z", until: "2026-12-01T00:00:00Z", reason: DR test, owner: carol@example.com}
"#,
    );
    let t0 = ts(NOW);
    w.step(t0);
    assert_eq!(
        planned(&w, "KB1", t0),
        vec!["it-0", "it-1"],
        "ring it is not frozen"
    );
    assert!(w.policies["ws"].status.as_ref().unwrap().freeze.is_none());
    let pilot = w.rings["pilot"].status.as_ref().unwrap();
    assert!(
        pilot
            .freeze
            .as_deref()
            .unwrap_or_default()
            .contains("DR test")
    );
    // it passes; pilot starts but admits nobody while frozen.
    let t1 = ts("2026-11-11T01:00:00Z");
    agents_install(&mut w, "KB1", t1, &[]);
    let t2 = ts("2026-11-12T02:00:00Z");
    w.step(t2);
    assert_eq!(ring(&w, "ws.kb1", "pilot").phase, RingPhase::Deploying);
    assert!(planned(&w, "KB1", t2).is_empty());
}

#[test]
fn a_ring_paused_alone_admits_nobody_while_the_others_go_on_and_names_who_paused_it() {
    let mut w = world(&format!("{BASE}{}", devices("it", "it", "tier-1", 4, NOW)));
    let t0 = ts(NOW);
    w.step(t0);
    assert_eq!(planned(&w, "KB1", t0), vec!["it-0", "it-1"]);
    let r = w.rollouts.get_mut("ws.kb1").unwrap();
    r.spec.paused_rings = vec!["it".into()];
    r.metadata.annotations = Some([(LEVER_BY.to_string(), "dave@example.com".to_string())].into());
    let t1 = ts("2026-11-11T01:00:00Z");
    agents_install(&mut w, "KB1", t1, &[]);
    w.step(t1);
    let it = ring(&w, "ws.kb1", "it");
    assert_eq!(it.phase, RingPhase::Paused);
    assert_eq!(
        it.waiting_for.as_deref(),
        Some("ring it paused (spec.pausedRings)")
    );
    assert!(
        planned(&w, "KB1", t1).is_empty(),
        "no new admission in a paused ring"
    );
    assert_eq!(rollout(&w, "ws.kb1").phase, Some(RolloutPhase::Progressing));
    let paused = w.events_with("RingPaused");
    assert_eq!(paused.len(), 1);
    assert_eq!(
        paused[0].1.message,
        "ring it paused by dave@example.com (spec.pausedRings)"
    );
    let history = &rollout(&w, "ws.kb1").history;
    assert!(
        history
            .iter()
            .any(|h| h.reason == Reason::RingPaused && h.ring.as_deref() == Some("it")),
        "{history:?}"
    );

    w.rollouts
        .get_mut("ws.kb1")
        .unwrap()
        .spec
        .paused_rings
        .clear();
    let t2 = ts("2026-11-11T02:00:00Z");
    w.step(t2);
    assert_eq!(planned(&w, "KB1", t2), vec!["it-2", "it-3"]);
    assert_eq!(w.events_with("RingResumed").len(), 1);
}

#[test]
fn pausing_and_aborting_name_the_caller() {
    let mut w = world(&format!("{BASE}{}", devices("it", "it", "tier-1", 4, NOW)));
    w.step(ts(NOW));
    let r = w.rollouts.get_mut("ws.kb1").unwrap();
    r.spec.paused = true;
    r.metadata.annotations = Some([(LEVER_BY.to_string(), "erin@example.com".to_string())].into());
    w.step(ts("2026-11-11T01:00:00Z"));
    assert_eq!(
        w.events_with("RolloutPaused")[0].1.message,
        "paused by erin@example.com (spec.paused)"
    );
    assert!(
        w.events_with("RingPaused").is_empty(),
        "the whole rollout's pause only"
    );
    w.rollouts.get_mut("ws.kb1").unwrap().spec.abort = true;
    w.step(ts("2026-11-11T02:00:00Z"));
    assert_eq!(
        w.events_with("RolloutAborted")[0].1.message,
        "aborted by erin@example.com (spec.abort)"
    );
}

#[test]
fn promoting_a_soaking_ring_skips_the_rest_of_its_soak_but_not_its_gates() {
    let mut w = world(&format!(
        "{BASE}{}{}",
        devices("it", "it", "tier-1", 2, NOW),
        devices("pc", "pilot", "tier-2", 2, NOW)
    ));
    w.step(ts(NOW));
    let t1 = ts("2026-11-11T01:00:00Z");
    agents_install(&mut w, "KB1", t1, &[]);
    w.step(t1);
    assert_eq!(ring(&w, "ws.kb1", "it").phase, RingPhase::Soaking);
    let r = w.rollouts.get_mut("ws.kb1").unwrap();
    r.spec.promote = vec!["it".into()];
    r.metadata.annotations = Some([(LEVER_BY.to_string(), "frank@example.com".to_string())].into());
    let t2 = ts("2026-11-11T02:00:00Z");
    w.step(t2);
    let it = ring(&w, "ws.kb1", "it");
    assert_eq!(it.phase, RingPhase::Passed, "23h of soak left, skipped");
    let soak = it.gates.iter().find(|g| g.name == "soak").unwrap();
    assert_eq!(
        soak.message,
        "soak of 1d skipped by a person (spec.promote)"
    );
    let promoted = w.events_with("RingPromoted");
    assert!(
        promoted[0]
            .1
            .message
            .starts_with("ring it promoted by frank@example.com before its soak of 1d ended"),
        "{promoted:?}"
    );
    assert_eq!(planned(&w, "KB1", t2), vec!["pc-0"], "pilot starts at once");

    // A promotion does not override a failing gate: a ring whose installs fail halts.
    let mut w = world(&format!("{BASE}{}", devices("it", "it", "tier-1", 2, NOW)));
    w.step(ts(NOW));
    w.rollouts.get_mut("ws.kb1").unwrap().spec.promote = vec!["it".into()];
    agents_install(&mut w, "KB1", t1, &["it-0", "it-1"]);
    w.step(t1);
    assert_ne!(ring(&w, "ws.kb1", "it").phase, RingPhase::Passed);
}
