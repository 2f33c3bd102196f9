//! The rollout state machine, driven through whole scenarios with virtual time.

use crate::common::*;
use ringmaster::api::*;

const NOW: &str = "2026-11-11T00:00:00Z";

fn base_world(it: usize, pilot: usize) -> ringmaster::sim::World {
    let yaml = format!(
        "{BASE}{}{}",
        devices("it", "it", "tier-1", it, NOW),
        devices("pc", "pilot", "tier-2", pilot, NOW)
    );
    world(&yaml)
}

#[test]
fn approval_admits_ring_zero_within_max_concurrent_then_promotes_after_soak() {
    let mut w = base_world(5, 4);
    let t0 = ts(NOW);
    let d = w.step(t0);
    assert_eq!(
        d.new_rollouts.len(),
        1,
        "a Critical patch is approved by rule 1"
    );
    assert_eq!(d.new_rollouts[0].name, "ws.kb1");
    assert_eq!(
        planned(&w, "KB1", t0),
        vec!["it-0", "it-1"],
        "maxConcurrent 2, earliest deadline then name first"
    );
    let r = ring(&w, "ws.kb1", "it");
    assert_eq!(
        (r.phase, r.targeted, r.in_progress, r.waiting),
        (RingPhase::Deploying, 5, 2, 3)
    );
    assert_eq!(ring(&w, "ws.kb1", "pilot").phase, RingPhase::Pending);
    assert!(
        w.events_with("PatchApproved")[0]
            .1
            .message
            .contains("KB1 approved by rule 1")
    );

    // Installs finish one batch at a time; each step admits the next batch.
    let mut t = t0;
    for _ in 0..3 {
        t = t.checked_add(jiff::SignedDuration::from_hours(1)).unwrap();
        agents_install(&mut w, "KB1", t, &[]);
        w.step(t);
    }
    let r = ring(&w, "ws.kb1", "it");
    assert_eq!((r.phase, r.installed), (RingPhase::Soaking, 5));
    assert_eq!(
        r.waiting_for.as_deref(),
        Some("soak ends at 2026-11-12T03:00:00Z")
    );
    assert!(
        w.devices["it-0"].spec.plan.install.is_empty(),
        "a finished install leaves the plan"
    );

    // Not a second early.
    let d = w.step(ts("2026-11-12T02:59:59Z"));
    assert_eq!(d.wake_at, Some(ts("2026-11-12T03:00:00Z")));
    assert_eq!(ring(&w, "ws.kb1", "it").phase, RingPhase::Soaking);
    w.step(ts("2026-11-12T03:00:00Z"));
    assert_eq!(ring(&w, "ws.kb1", "it").phase, RingPhase::Passed);
    let pilot = ring(&w, "ws.kb1", "pilot");
    assert_eq!(pilot.phase, RingPhase::Deploying);
    assert_eq!(pilot.in_progress, 2, "50% of 4 targeted devices");
    assert_eq!(rollout(&w, "ws.kb1").current_ring.as_deref(), Some("pilot"));
}

#[test]
fn a_failing_patch_halts_and_rolls_back_everywhere_it_was_installed() {
    let mut w = base_world(4, 2);
    let t0 = ts(NOW);
    w.step(t0);
    let t1 = ts("2026-11-11T01:00:00Z");
    agents_install(&mut w, "KB1", t1, &["it-0", "it-1"]);
    w.step(t1);
    assert!(
        w.events_with("RingHalted")[0]
            .1
            .message
            .contains("2 of 2 finished installs failed (100.0% > halt.failureRate 50%)")
    );
    assert_eq!(w.events_with("RollbackStarted").len(), 1);
    assert!(
        planned(&w, "KB1", t1).is_empty(),
        "no new admissions, and the failed entries are released"
    );
    assert!(
        w.devices.values().all(|d| d.spec.plan.uninstall.is_empty()),
        "nothing installed yet, nothing to uninstall"
    );
    assert_eq!(
        rollout(&w, "ws.kb1").phase,
        Some(RolloutPhase::RolledBack),
        "nothing to uninstall: rolled back at once"
    );
    assert_eq!(ring(&w, "ws.kb1", "it").phase, RingPhase::RolledBack);
    assert_eq!(
        ring(&w, "ws.kb1", "pilot").phase,
        RingPhase::Pending,
        "the next ring never started"
    );
}

#[test]
fn rollback_uninstalls_from_devices_that_installed_it() {
    let mut w = base_world(4, 0);
    w.devices
        .get_mut("it-0")
        .unwrap()
        .status
        .as_mut()
        .unwrap()
        .patches[0]
        .state = PatchState::Installed;
    let t0 = ts(NOW);
    w.step(t0);
    let t1 = ts("2026-11-11T01:00:00Z");
    // it-1 and it-2 admitted; both fail: 2 of 3 finished failed (66.7% > 50%).
    agents_install(&mut w, "KB1", t1, &["it-1", "it-2"]);
    w.step(t1);
    assert_eq!(rollout(&w, "ws.kb1").phase, Some(RolloutPhase::RollingBack));
    assert!(
        w.devices["it-0"].spec.plan.uninstall.contains_key("KB1"),
        "the device that has it gets an uninstall"
    );
    assert_eq!(w.events_with("RollbackStarted").len(), 1);
    let t2 = ts("2026-11-11T02:00:00Z");
    assert_eq!(agents_uninstall(&mut w, "KB1", t2), vec!["it-0"]);
    w.step(t2);
    let s = rollout(&w, "ws.kb1");
    assert_eq!(s.phase, Some(RolloutPhase::RolledBack));
    assert_eq!(ring(&w, "ws.kb1", "it").phase, RingPhase::RolledBack);
    assert!(
        w.devices["it-0"].spec.plan.uninstall.is_empty(),
        "finished uninstalls leave the plan"
    );
    assert_eq!(w.events_with("RolledBack").len(), 1);
}

#[test]
fn rollback_of_a_patch_that_cannot_be_uninstalled_pauses_instead() {
    let mut w = base_world(2, 0);
    w.patches.get_mut("KB1").unwrap().spec.uninstallable = false;
    w.step(ts(NOW));
    agents_install(&mut w, "KB1", ts("2026-11-11T01:00:00Z"), &["it-0", "it-1"]);
    w.step(ts("2026-11-11T01:00:00Z"));
    let s = rollout(&w, "ws.kb1");
    assert_eq!(s.phase, Some(RolloutPhase::Halted));
    assert!(
        s.message.as_deref().unwrap().contains("not uninstallable"),
        "{:?}",
        s.message
    );
    let ready = s.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(ready.status, "True");
}

#[test]
fn success_gate_below_threshold_halts_instead_of_passing() {
    // Pilot needs 95%; 1 of 4 fails (75%) and the halt rule alone would not trigger.
    let mut w = base_world(0, 4);
    let mut t = ts(NOW);
    w.step(t);
    assert_eq!(
        ring(&w, "ws.kb1", "it").phase,
        RingPhase::Passed,
        "an empty ring passes at once"
    );
    for _ in 0..3 {
        t = t.checked_add(jiff::SignedDuration::from_hours(1)).unwrap();
        agents_install(&mut w, "KB1", t, &["pc-3"]);
        w.step(t);
    }
    let r = ring(&w, "ws.kb1", "pilot");
    assert_eq!(r.phase, RingPhase::Halted, "{r:?}");
    assert!(
        r.waiting_for
            .as_deref()
            .unwrap()
            .contains("3/4 succeeded (75.0%, needs 95%)"),
        "{:?}",
        r.waiting_for
    );
    assert_eq!(
        rollout(&w, "ws.kb1").phase,
        Some(RolloutPhase::Halted),
        "onFailure defaults to Pause"
    );
    // A person accepts the risk.
    w.rollouts.get_mut("ws.kb1").unwrap().spec.promote = vec!["pilot".into()];
    w.step(t);
    assert_eq!(ring(&w, "ws.kb1", "pilot").phase, RingPhase::Passed);
    assert_eq!(rollout(&w, "ws.kb1").phase, Some(RolloutPhase::Completed));
}

#[test]
fn manual_gate_waits_for_spec_promote() {
    let mut w = base_world(1, 0);
    w.rings
        .get_mut("it")
        .unwrap()
        .spec
        .promotion
        .require_manual_approval = true;
    w.rings.get_mut("it").unwrap().spec.promotion.soak = None;
    w.step(ts(NOW));
    agents_install(&mut w, "KB1", ts("2026-11-11T01:00:00Z"), &[]);
    w.step(ts("2026-11-11T01:00:00Z"));
    let r = ring(&w, "ws.kb1", "it");
    assert_eq!(r.phase, RingPhase::Soaking);
    assert_eq!(
        r.waiting_for.as_deref(),
        Some("waiting for manual promotion: add it to spec.promote")
    );
    w.rollouts.get_mut("ws.kb1").unwrap().spec.promote = vec!["it".into()];
    w.step(ts("2026-11-11T02:00:00Z"));
    assert_eq!(ring(&w, "ws.kb1", "it").phase, RingPhase::Passed);
}

#[test]
fn pause_stops_admission_and_promotion_and_resume_continues() {
    let mut w = base_world(4, 0);
    w.step(ts(NOW));
    w.rollouts.get_mut("ws.kb1").unwrap().spec.paused = true;
    let t1 = ts("2026-11-11T01:00:00Z");
    agents_install(&mut w, "KB1", t1, &[]);
    let d = w.step(t1);
    assert!(
        d.plan.iter().all(|c| c.entry.is_none()),
        "paused: no admissions, only finished entries cleared"
    );
    assert_eq!(rollout(&w, "ws.kb1").phase, Some(RolloutPhase::Paused));
    assert_eq!(ring(&w, "ws.kb1", "it").phase, RingPhase::Paused);
    w.rollouts.get_mut("ws.kb1").unwrap().spec.paused = false;
    w.step(ts("2026-11-11T02:00:00Z"));
    assert_eq!(
        planned(&w, "KB1", ts("2026-11-11T02:00:00Z")),
        vec!["it-2", "it-3"]
    );
    assert_eq!(w.events_with("RolloutResumed").len(), 1);
}

#[test]
fn abort_releases_devices_that_have_not_started() {
    let mut w = base_world(4, 0);
    w.step(ts(NOW));
    assert_eq!(planned(&w, "KB1", ts(NOW)).len(), 2);
    w.rollouts.get_mut("ws.kb1").unwrap().spec.abort = true;
    w.step(ts("2026-11-11T00:10:00Z"));
    assert_eq!(rollout(&w, "ws.kb1").phase, Some(RolloutPhase::Aborted));
    assert!(w.devices.values().all(|d| d.spec.plan.install.is_empty()));
    // Terminal: nothing more happens.
    let d = w.step(ts("2026-11-12T00:00:00Z"));
    assert!(d.plan.is_empty());
    assert_eq!(rollout(&w, "ws.kb1").phase, Some(RolloutPhase::Aborted));
}

#[test]
fn exception_keeps_devices_out_until_it_expires_to_the_second() {
    let yaml = format!(
        "{BASE}{}---\nkind: PatchException\nmetadata: {{name: lob}}\nspec: {{patches: [KB1], devices: {{names: [it-0]}}, reason: r, owner: alice, expiresAt: \"2026-11-11T06:00:00Z\"}}\n",
        devices("it", "it", "tier-1", 1, NOW)
    );
    let mut w = world(&yaml);
    let d = w.step(ts(NOW));
    assert!(planned(&w, "KB1", ts(NOW)).is_empty());
    let r = ring(&w, "ws.kb1", "it");
    assert_eq!(
        (r.excepted, r.targeted, r.phase),
        (1, 0, RingPhase::Passed),
        "an excepted device is not targeted"
    );
    assert_eq!(
        d.wake_at,
        Some(ts("2026-11-11T06:00:00Z")),
        "woken exactly at expiry"
    );
    assert_eq!(
        w.exceptions["lob"].status.as_ref().unwrap().phase,
        Some(ExceptionPhase::Active)
    );
    w.touch("it-0", ts("2026-11-11T05:59:59Z"));
    w.step(ts("2026-11-11T05:59:59Z"));
    assert!(planned(&w, "KB1", ts("2026-11-11T05:59:59Z")).is_empty());
    w.step(ts("2026-11-11T06:00:00Z"));
    assert_eq!(
        planned(&w, "KB1", ts("2026-11-11T06:00:00Z")),
        vec!["it-0"],
        "a late joiner of a passed ring"
    );
    assert_eq!(
        w.exceptions["lob"].status.as_ref().unwrap().phase,
        Some(ExceptionPhase::Expired)
    );
    assert_eq!(w.events_with("ExceptionExpired").len(), 1);
}

#[test]
fn unreachable_devices_are_left_out_and_release_their_slot() {
    let mut w = base_world(3, 0);
    w.step(ts(NOW));
    assert_eq!(planned(&w, "KB1", ts(NOW)), vec!["it-0", "it-1"]);
    // it-1 goes dark; 72h later its slot is released and it-2 is admitted.
    let later = ts("2026-11-14T00:00:00Z");
    w.touch("it-0", later);
    w.touch("it-2", later);
    let d = w.step(later);
    let r = ring(&w, "ws.kb1", "it");
    assert_eq!(r.unreachable, 1);
    assert!(
        d.plan
            .iter()
            .any(|c| c.device == "it-1" && c.entry.is_none()),
        "its assignment is released"
    );
    assert!(planned(&w, "KB1", later).contains(&"it-2".to_string()));
}

#[test]
fn a_device_that_renews_its_lease_stays_reachable_without_a_status_write() {
    let mut w = base_world(3, 0);
    w.step(ts(NOW));
    assert_eq!(planned(&w, "KB1", ts(NOW)), vec!["it-0", "it-1"]);
    // As in the test above, but it-0 and it-2 check in by their Leases alone: their
    // status lastSeen stays 72h old.
    let later = ts("2026-11-14T00:00:00Z");
    w.renew("it-0", later);
    w.renew("it-2", later);
    let d = w.step(later);
    let r = ring(&w, "ws.kb1", "it");
    assert_eq!(r.unreachable, 1, "it-1 only");
    assert!(
        d.plan
            .iter()
            .any(|c| c.device == "it-1" && c.entry.is_none()),
        "its assignment is released"
    );
    assert!(
        !d.plan
            .iter()
            .any(|c| c.device == "it-0" && c.entry.is_none()),
        "it-0's is not"
    );
    assert!(planned(&w, "KB1", later).contains(&"it-2".to_string()));
    assert_eq!(
        w.devices["it-0"].status.as_ref().and_then(|s| s.last_seen),
        Some(ts(NOW)),
        "no status write was needed"
    );
}

#[test]
fn a_device_whose_lease_is_stale_too_turns_unreachable() {
    let mut w = base_world(3, 0);
    w.step(ts(NOW));
    // it-0's last renewal is as old as its lastSeen give or take an hour: 72h after it,
    // it is unreachable like it-1.
    let renewed = ts("2026-11-11T01:00:00Z");
    w.renew("it-0", renewed);
    let later = ts("2026-11-14T01:00:00Z");
    w.touch("it-2", later);
    let d = w.step(later);
    let r = ring(&w, "ws.kb1", "it");
    assert_eq!(r.unreachable, 2, "it-0 and it-1");
    for gone in ["it-0", "it-1"] {
        assert!(
            d.plan.iter().any(|c| c.device == gone && c.entry.is_none()),
            "{gone}'s assignment is released"
        );
    }
    // An hour earlier it-0 was still reachable by its Lease alone.
    let mut w = base_world(3, 0);
    w.step(ts(NOW));
    w.renew("it-0", renewed);
    w.touch("it-2", ts("2026-11-14T00:30:00Z"));
    w.step(ts("2026-11-14T00:30:00Z"));
    assert_eq!(ring(&w, "ws.kb1", "it").unreachable, 1, "it-1 only");
}

#[test]
fn freeze_blocks_admission_and_ends_by_itself() {
    let mut w = base_world(2, 0);
    w.policies.get_mut("ws").unwrap().spec.freezes = vec![Freeze {
        from: ts("2026-11-10T00:00:00Z"),
        until: ts("2026-11-12T00:00:00Z"),
        reason: "DR test".into(),
        owner: "cab@acme.example".into(),
    }];
    let d = w.step(ts(NOW));
    assert!(planned(&w, "KB1", ts(NOW)).is_empty());
    assert!(
        d.wake_at.is_some_and(|t| t <= ts("2026-11-12T00:00:00Z")),
        "woken by the freeze's end at the latest"
    );
    assert!(
        ring(&w, "ws.kb1", "it")
            .waiting_for
            .as_deref()
            .unwrap()
            .starts_with("change freeze until 2026-11-12T00:00:00Z (DR test")
    );
    w.step(ts("2026-11-12T00:00:00Z"));
    assert_eq!(planned(&w, "KB1", ts("2026-11-12T00:00:00Z")).len(), 2);
    let started = w.events_with("FreezeStarted");
    assert_eq!(started.len(), 1);
    assert!(
        started[0]
            .1
            .message
            .contains("DR test until 2026-11-12T00:00:00Z"),
        "{}",
        started[0].1.message
    );
    assert_eq!(w.events_with("FreezeEnded").len(), 1);
    assert_eq!(w.policies["ws"].status.as_ref().unwrap().freeze, None);
}

#[test]
fn fleet_failures_hold_the_patch() {
    let mut w = base_world(4, 0);
    w.policies.get_mut("ws").unwrap().spec.approval.hold = Some(HoldSpec {
        failure_rate: 10.0,
        min_samples: 2,
    });
    w.rings.get_mut("it").unwrap().spec.halt = None;
    w.step(ts(NOW));
    agents_install(&mut w, "KB1", ts("2026-11-11T01:00:00Z"), &["it-0"]);
    w.step(ts("2026-11-11T01:00:00Z"));
    let s = rollout(&w, "ws.kb1");
    assert_eq!(s.phase, Some(RolloutPhase::Held), "{s:?}");
    assert!(
        s.approval
            .as_ref()
            .unwrap()
            .reason
            .as_deref()
            .unwrap()
            .contains("1 of 2 attempts failed")
    );
    let planned_now = planned(&w, "KB1", ts("2026-11-11T01:00:00Z"));
    assert!(
        !planned_now.contains(&"it-2".to_string()) && !planned_now.contains(&"it-3".to_string()),
        "no new admissions while held: {planned_now:?}"
    );
}

#[test]
fn steady_state_writes_nothing() {
    let mut w = base_world(3, 2);
    w.step(ts(NOW));
    let (plan, status) = (w.plan_writes, w.status_writes);
    let d = w.step(ts("2026-11-11T00:00:30Z"));
    assert!(d.plan.is_empty());
    assert!(d.new_rollouts.is_empty());
    assert_eq!(
        (w.plan_writes, w.status_writes),
        (plan, status),
        "nothing changed, nothing written"
    );
    assert!(d.events.is_empty(), "{:?}", d.events);
}

/// A plan entry is the only write a device gets when it is admitted: its compliance
/// summary says nothing its plan does not (issue "Scale": one write per device per
/// change).
#[test]
fn an_admission_is_one_write_per_device() {
    let mut w = base_world(5, 4);
    let t0 = ts(NOW);
    w.step(t0);
    let t1 = t0.checked_add(jiff::SignedDuration::from_hours(1)).unwrap();
    agents_install(&mut w, "KB1", t1, &[]);
    let d = w.step(t1);
    let admitted: Vec<&str> = d
        .plan
        .iter()
        .filter(|c| c.list == ringmaster::engine::PlanList::Install && c.entry.is_some())
        .map(|c| c.device.as_str())
        .collect();
    assert_eq!(admitted, ["it-2", "it-3"], "the next batch");
    let summaries: Vec<&str> = d.devices.iter().map(|(n, _)| n.as_str()).collect();
    for name in &admitted {
        assert!(
            !summaries.contains(name),
            "{name} was admitted and also got a status write: {summaries:?}"
        );
    }
}

#[test]
fn a_policy_naming_a_missing_ring_admits_nothing_and_says_why() {
    let mut w = base_world(2, 2);
    w.policies.get_mut("ws").unwrap().spec.rings = vec!["it".into(), "pilott".into()];
    w.step(ts(NOW));
    assert!(planned(&w, "KB1", ts(NOW)).is_empty());
    let st = w.policies["ws"].status.as_ref().unwrap();
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert!(
        ready
            .message
            .contains("spec.rings[1]: DeploymentRing \"pilott\" not found"),
        "{}",
        ready.message
    );
}

#[test]
fn an_exception_expiring_mid_window_frees_its_device_in_that_same_window() {
    // The IT ring opens 22:00-04:00 UTC; the exception expires at 01:30, inside it.
    let yaml = format!(
        "{BASE}{}---\nkind: PatchException\nmetadata: {{name: lob}}\nspec: {{patches: [KB1], devices: {{names: [it-0]}}, reason: r, owner: alice, expiresAt: \"2026-11-12T01:30:00Z\"}}\n",
        devices("it", "it", "tier-1", 1, NOW)
    );
    let mut w = world(&yaml);
    w.rings.get_mut("it").unwrap().spec.maintenance_windows = vec![MaintenanceWindow {
        days: Some(vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ]),
        weeks_of_month: None,
        patch_tuesday_offset_days: None,
        start: "22:00".into(),
        end: "04:00".into(),
        time_zone: "UTC".into(),
    }];
    w.step(ts("2026-11-11T23:00:00Z"));
    assert!(
        planned(&w, "KB1", ts("2026-11-11T23:00:00Z")).is_empty(),
        "covered while the exception is active"
    );
    let expiry = ts("2026-11-12T01:30:00Z");
    w.touch("it-0", expiry);
    w.step(expiry);
    let entry = w.devices["it-0"]
        .spec
        .plan
        .install
        .get("KB1")
        .cloned()
        .expect("assigned at the instant of expiry");
    assert_eq!(entry.not_before, expiry);
    assert_eq!(
        entry.not_after,
        Some(ts("2026-11-12T04:00:00Z")),
        "in the window that is open now"
    );
}

#[test]
fn a_ring_that_empties_mid_rollout_passes_and_the_next_ring_starts() {
    let mut w = base_world(2, 2);
    w.step(ts(NOW));
    assert_eq!(ring(&w, "ws.kb1", "it").phase, RingPhase::Deploying);
    // Both IT devices are relabelled out of the ring before installing anything.
    for d in ["it-0", "it-1"] {
        let dev = w.devices.get_mut(d).unwrap();
        dev.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("ring".into(), "elsewhere".into());
    }
    w.step(ts("2026-11-11T00:10:00Z"));
    let it = ring(&w, "ws.kb1", "it");
    assert_eq!((it.phase, it.targeted), (RingPhase::Passed, 0), "{it:?}");
    assert_eq!(ring(&w, "ws.kb1", "pilot").phase, RingPhase::Deploying);
    let st = w.policies["ws"].status.as_ref().unwrap();
    assert_eq!(
        st.devices_in_no_ring, 2,
        "the relabelled devices are reported, not silently dropped"
    );
}

#[test]
fn a_re_released_patch_keeps_its_first_release_time_and_deadlines() {
    let mut w = base_world(1, 0);
    w.step(ts(NOW));
    let deadline = w.devices["it-0"].spec.plan.install["KB1"].deadline;
    assert_eq!(
        deadline,
        Some(ts("2026-11-12T18:00:00Z")),
        "tier-1 Critical: release + 2d"
    );
    // The vendor re-releases KB1 a week later under the same id.
    w.patches.get_mut("KB1").unwrap().spec.released_at = ts("2026-11-17T18:00:00Z");
    w.step(ts("2026-11-13T00:00:00Z"));
    assert_eq!(
        w.patches["KB1"].status.as_ref().unwrap().first_released_at,
        Some(ts("2026-11-10T18:00:00Z"))
    );
    let st = w.devices["it-0"]
        .status
        .as_ref()
        .unwrap()
        .compliance
        .as_ref()
        .unwrap();
    assert_eq!(
        st.overdue, 1,
        "still overdue against the first release, not reset by the re-release"
    );
}

#[test]
fn a_superseded_patch_gets_no_rollout_and_leaves_the_sla_figures() {
    let mut w = base_world(2, 0);
    let mut newer = w.patches["KB1"].clone();
    newer.metadata.name = Some("kb2".into());
    newer.spec.id = "KB2".into();
    newer.spec.supersedes = vec!["KB1".into()];
    w.patches.insert("KB2".into(), newer);
    for d in ["it-0", "it-1"] {
        w.report(d, "KB2", PatchState::Missing, ts(NOW));
    }
    w.step(ts(NOW));
    assert!(w.rollouts.contains_key("ws.kb2"));
    assert!(!w.rollouts.contains_key("ws.kb1"), "KB2 replaces KB1");
    let st = w.policies["ws"].status.as_ref().unwrap();
    assert_eq!(st.approvals.superseded, 1);
    let pairs: u32 = st
        .sla
        .iter()
        .map(|c| c.installed_on_time + c.installed_late + c.overdue + c.open + c.exempt)
        .sum();
    assert_eq!(pairs, 2, "only the KB2 pairs count towards the SLA");
}

/// Sets what a device reports for KB1 the way a terse agent would: a state, nothing else
/// (no times, no attempt count, no attempt id).
fn terse_report(w: &mut ringmaster::sim::World, device: &str, state: PatchState) {
    let status = w
        .devices
        .get_mut(device)
        .and_then(|d| d.status.as_mut())
        .expect("status");
    status.patches = vec![DevicePatchStatus {
        state,
        ..DevicePatchStatus::missing("KB1")
    }];
}

#[test]
fn failed_reports_without_any_time_halt_the_ring_and_roll_it_back() {
    let mut w = base_world(4, 0);
    let t0 = ts(NOW);
    w.step(t0);
    assert_eq!(planned(&w, "KB1", t0), vec!["it-0", "it-1"]);
    let t1 = ts("2026-11-11T01:00:00Z");
    terse_report(&mut w, "it-0", PatchState::Installed);
    terse_report(&mut w, "it-1", PatchState::Failed);
    w.step(t1);
    let r = ring(&w, "ws.kb1", "it");
    assert_eq!(
        (r.installed, r.failed, r.in_progress),
        (1, 1, 2),
        "the Failed report answers its attempt; two more admitted"
    );
    let t2 = ts("2026-11-11T02:00:00Z");
    terse_report(&mut w, "it-2", PatchState::Failed);
    w.step(t2);
    assert!(
        w.events_with("RingHalted")[0]
            .1
            .message
            .contains("2 of 3 finished installs failed"),
        "{:?}",
        w.events_with("RingHalted")
    );
    assert_eq!(rollout(&w, "ws.kb1").phase, Some(RolloutPhase::RollingBack));
    assert!(w.devices["it-0"].spec.plan.uninstall.contains_key("KB1"));
    terse_report(&mut w, "it-0", PatchState::RolledBack);
    w.step(ts("2026-11-11T03:00:00Z"));
    assert_eq!(rollout(&w, "ws.kb1").phase, Some(RolloutPhase::RolledBack));
}

#[test]
fn a_device_whose_agent_never_answers_times_out_and_the_gate_counts_it() {
    let mut w = base_world(2, 0);
    let t0 = ts(NOW);
    w.step(t0);
    let entry = w.devices["it-1"].spec.plan.install["KB1"].clone();
    assert_eq!(
        entry.answer_by,
        Some(ts("2026-11-12T00:00:00Z")),
        "24h to answer by default"
    );
    assert_eq!(entry.attempt.as_deref(), Some("ws.kb1@1794355200"));
    // it-0 installs; it-1's agent checks in but never acts on its entry.
    let t1 = ts("2026-11-11T01:00:00Z");
    agents_install(&mut w, "KB1", t1, &["it-1"]);
    terse_report(&mut w, "it-1", PatchState::Missing);
    w.step(t1);
    assert_eq!(ring(&w, "ws.kb1", "it").in_progress, 1);
    let d = w.step(ts("2026-11-11T23:59:59Z"));
    assert_eq!(
        ring(&w, "ws.kb1", "it").in_progress,
        1,
        "not a second early"
    );
    assert_eq!(
        d.wake_at,
        Some(ts("2026-11-12T00:00:00Z")),
        "woken when it times out"
    );
    w.step(ts("2026-11-12T00:00:00Z"));
    let r = ring(&w, "ws.kb1", "it");
    assert_eq!((r.installed, r.failed, r.timed_out), (1, 1, 1));
    let halted = &w.events_with("RingHalted")[0].1.message;
    assert!(
        halted.contains("promotion gate failed") && halted.contains("1/2 succeeded"),
        "{halted}"
    );
}

#[test]
fn a_patch_reported_twice_counts_once_at_its_most_advanced_state() {
    let mut w = base_world(2, 0);
    let status = w
        .devices
        .get_mut("it-0")
        .and_then(|d| d.status.as_mut())
        .expect("status");
    status.patches.push(DevicePatchStatus {
        state: PatchState::Installed,
        installed_at: Some(ts("2026-11-10T20:00:00Z")),
        ..DevicePatchStatus::missing("KB1")
    });
    w.step(ts(NOW));
    let r = ring(&w, "ws.kb1", "it");
    assert_eq!((r.targeted, r.installed, r.in_progress), (2, 1, 1));
    assert_eq!(planned(&w, "KB1", ts(NOW)), vec!["it-1"]);
}

#[test]
fn an_install_time_from_a_clock_running_ahead_does_not_lengthen_the_soak() {
    let mut w = base_world(1, 0);
    let t0 = ts(NOW);
    w.step(t0);
    let t1 = ts("2026-11-11T01:00:00Z");
    agents_install(&mut w, "KB1", t1, &[]);
    // The agent's clock is ten minutes ahead.
    w.devices
        .get_mut("it-0")
        .and_then(|d| d.status.as_mut())
        .expect("status")
        .patches[0]
        .installed_at = Some(ts("2026-11-11T01:10:00Z"));
    w.step(t1);
    let r = ring(&w, "ws.kb1", "it");
    assert_eq!(r.last_install_at, Some(t1));
    assert_eq!(
        r.waiting_for.as_deref(),
        Some("soak ends at 2026-11-12T01:00:00Z")
    );
}

#[test]
fn a_rollout_status_claiming_more_devices_than_there_are_is_only_a_hint() {
    let mut w = base_world(2, 1);
    let t0 = ts(NOW);
    w.step(t0);
    // Hand-edited counts, as large as they go: a pass sizes its member lists from them.
    for rp in &mut w
        .rollouts
        .get_mut("ws.kb1")
        .and_then(|r| r.status.as_mut())
        .expect("status")
        .rings
    {
        (rp.targeted, rp.excepted) = (u32::MAX, u32::MAX);
    }
    w.step(ts("2026-11-11T00:05:00Z"));
    let r = ring(&w, "ws.kb1", "it");
    assert_eq!(
        (r.targeted, r.excepted),
        (2, 0),
        "recounted from the devices"
    );
}
