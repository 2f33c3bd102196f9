//! The durable history statuses keep: every audit-worthy transition of a rollout or an
//! exception, at the instant it was decided, with its Event's reason and message; nothing
//! more on a pass that changes nothing; bounded, keeping the first entry.

use crate::common::*;
use jiff::Timestamp;
use ringmaster::api::*;
use ringmaster::engine::history::audited;
use ringmaster::engine::{Kind, Reason};
use ringmaster::sim::World;

const NOW: &str = "2026-11-11T00:00:00Z";

fn base_world(it: usize, pilot: usize) -> World {
    let yaml = format!(
        "{BASE}{}{}",
        devices("it", "it", "tier-1", it, NOW),
        devices("pc", "pilot", "tier-2", pilot, NOW)
    );
    world(&yaml)
}

/// A rollout's history as (instant, reason, ring).
fn rollout_story(w: &World, name: &str) -> Vec<(Timestamp, Reason, Option<String>)> {
    rollout(w, name)
        .history
        .iter()
        .map(|h| (h.at, h.reason, h.ring.clone()))
        .collect()
}

/// The audit-worthy Events the world recorded about a rollout (its creation's included),
/// as (instant, reason, message).
fn rollout_events(w: &World, name: &str) -> Vec<(Timestamp, Reason, String)> {
    w.events
        .iter()
        .filter(|(_, e)| audited(e.reason))
        .filter(|(_, e)| {
            (e.kind == Kind::PatchRollout && e.name == name)
                || (e.reason == Reason::PatchApproved
                    && e.message.ends_with(&format!("rollout {name} created")))
        })
        .map(|(at, e)| (*at, e.reason, e.message.clone()))
        .collect()
}

fn rollout_entries(w: &World, name: &str) -> Vec<(Timestamp, Reason, String)> {
    rollout(w, name)
        .history
        .iter()
        .map(|h| (h.at, h.reason, h.message.clone()))
        .collect()
}

fn exception(w: &World, name: &str) -> PatchExceptionStatus {
    w.exceptions[name].status.clone().expect("exception status")
}

#[test]
fn a_ring_that_halts_and_rolls_back_leaves_each_step_at_its_instant() {
    let mut w = base_world(4, 0);
    let status = w.devices.get_mut("it-0").unwrap().status.as_mut().unwrap();
    status.patches[0].state = PatchState::Installed;
    let t0 = ts(NOW);
    w.step(t0);
    // it-1 and it-2 admitted; both fail: 2 of 3 finished failed (66.7% > 50%).
    let t1 = ts("2026-11-11T01:00:00Z");
    agents_install(&mut w, "KB1", t1, &["it-1", "it-2"]);
    w.step(t1);
    let t2 = ts("2026-11-11T02:00:00Z");
    assert_eq!(agents_uninstall(&mut w, "KB1", t2), vec!["it-0"]);
    w.step(t2);
    assert_eq!(rollout(&w, "ws.kb1").phase, Some(RolloutPhase::RolledBack));

    let it = Some("it".to_string());
    assert_eq!(
        rollout_story(&w, "ws.kb1"),
        vec![
            (t0, Reason::PatchApproved, None),
            (t0, Reason::RingStarted, it.clone()),
            (t1, Reason::RingHalted, it),
            (t1, Reason::RollbackStarted, None),
            (t2, Reason::RolledBack, None),
        ]
    );
    assert_eq!(
        rollout_entries(&w, "ws.kb1"),
        rollout_events(&w, "ws.kb1"),
        "the same reasons and messages the Events carried, at the same instants"
    );
    assert!(
        !w.events_with("DevicesAdmitted").is_empty(),
        "admissions are Events, not history"
    );

    // Terminal: a later pass appends nothing, and leaves the rollout's status as it was.
    let before = rollout(&w, "ws.kb1").clone();
    let d = w.step(ts("2026-11-12T00:00:00Z"));
    assert!(d.events.is_empty(), "{:?}", d.events);
    assert_eq!(rollout(&w, "ws.kb1"), &before);
}

#[test]
fn a_pause_and_its_resume_are_recorded_once_each() {
    let mut w = base_world(4, 0);
    w.step(ts(NOW));
    let t1 = ts("2026-11-11T01:00:00Z");
    w.rollouts.get_mut("ws.kb1").unwrap().spec.paused = true;
    w.step(t1);
    w.step(ts("2026-11-11T01:30:00Z"));
    let t2 = ts("2026-11-11T02:00:00Z");
    w.rollouts.get_mut("ws.kb1").unwrap().spec.paused = false;
    w.step(t2);
    w.step(ts("2026-11-11T02:30:00Z"));

    let story = rollout_story(&w, "ws.kb1");
    let of = |r: Reason| -> Vec<Timestamp> {
        story
            .iter()
            .filter(|(_, reason, _)| *reason == r)
            .map(|(at, _, _)| *at)
            .collect()
    };
    assert_eq!(of(Reason::RolloutPaused), vec![t1]);
    assert_eq!(of(Reason::RolloutResumed), vec![t2]);
    let paused = &rollout(&w, "ws.kb1").history[2];
    assert_eq!(
        (paused.reason, paused.message.as_str()),
        (Reason::RolloutPaused, "paused by a person (spec.paused)")
    );
    assert_eq!(rollout_entries(&w, "ws.kb1"), rollout_events(&w, "ws.kb1"));
}

#[test]
fn an_exception_keeps_each_phase_it_entered_and_not_its_reminders() {
    // The policy requires an approver; the exception has none yet and ends in 36 hours.
    let yaml = format!(
        "{}{}---\nkind: PatchException\nmetadata: {{name: lob}}\nspec: {{patches: [KB1], devices: {{names: [it-0]}}, reason: r, owner: alice, expiresAt: \"2026-11-12T12:00:00Z\"}}\n",
        BASE.replace(
            "  rings: [it, pilot]",
            "  rings: [it, pilot]\n  exceptions: {requireApproval: true}"
        ),
        devices("it", "it", "tier-1", 1, NOW)
    );
    let mut w = world(&yaml);
    let t0 = ts(NOW);
    w.step(t0);
    assert_eq!(
        exception(&w, "lob").phase,
        Some(ExceptionPhase::PendingApproval)
    );
    let t1 = ts("2026-11-11T08:00:00Z");
    w.exceptions.get_mut("lob").unwrap().spec.approved_by = Some("ciso".into());
    w.step(t1);
    let t2 = ts("2026-11-12T12:00:00Z");
    w.touch("it-0", t2);
    w.step(t2);

    let s = exception(&w, "lob");
    let story: Vec<(Timestamp, Reason, ExceptionPhase)> = s
        .history
        .iter()
        .map(|h| (h.at, h.reason, h.phase))
        .collect();
    assert_eq!(
        story,
        vec![
            (
                t0,
                Reason::ExceptionPendingApproval,
                ExceptionPhase::PendingApproval
            ),
            (t1, Reason::ExceptionActive, ExceptionPhase::Active),
            (t2, Reason::ExceptionExpired, ExceptionPhase::Expired),
        ]
    );
    let events: Vec<(Timestamp, Reason, String)> = w
        .events
        .iter()
        .filter(|(_, e)| e.kind == Kind::PatchException && audited(e.reason))
        .map(|(at, e)| (*at, e.reason, e.message.clone()))
        .collect();
    let entries: Vec<(Timestamp, Reason, String)> = s
        .history
        .iter()
        .map(|h| (h.at, h.reason, h.message.clone()))
        .collect();
    assert_eq!(entries, events);
    assert!(
        !w.events_with("ExceptionExpiring").is_empty(),
        "a reminder was sent, and is not history"
    );
}

#[test]
fn a_later_pass_over_an_unchanged_world_appends_nothing() {
    let yaml = format!(
        "{BASE}{}{}---\nkind: PatchException\nmetadata: {{name: lob}}\nspec: {{patches: [KB1], devices: {{names: [it-0]}}, reason: r, owner: alice, expiresAt: \"2026-12-30T00:00:00Z\"}}\n",
        devices("it", "it", "tier-1", 3, NOW),
        devices("pc", "pilot", "tier-2", 2, NOW)
    );
    let mut w = world(&yaml);
    w.step(ts(NOW));
    let rollout_before = rollout(&w, "ws.kb1").history.clone();
    let exception_before = exception(&w, "lob").history;
    assert_eq!(rollout_before.len(), 2, "{rollout_before:?}");
    assert_eq!(exception_before.len(), 1, "{exception_before:?}");
    let writes = (w.plan_writes, w.status_writes);

    let d = w.step(ts("2026-11-11T06:00:00Z"));
    assert!(d.events.is_empty(), "{:?}", d.events);
    assert_eq!(rollout(&w, "ws.kb1").history, rollout_before);
    assert_eq!(exception(&w, "lob").history, exception_before);
    assert_eq!((w.plan_writes, w.status_writes), writes);
}

#[test]
fn a_full_history_drops_its_oldest_entries_but_keeps_the_first() {
    let mut w = base_world(2, 0);
    w.step(ts(NOW));
    // Fill the stored history to the limit, as a long-lived rollout would.
    let status = w
        .rollouts
        .get_mut("ws.kb1")
        .unwrap()
        .status
        .as_mut()
        .unwrap();
    assert_eq!(status.history.len(), 2);
    let filler = |i: usize| RolloutHistoryEntry {
        at: ts(NOW),
        reason: Reason::RingPassed,
        ring: Some(format!("filler-{i}")),
        message: format!("filler {i}"),
    };
    let first = status.history[0].clone();
    let second = status.history[1].clone();
    status.history.extend((2..HISTORY_LIMIT).map(filler));
    assert_eq!(status.history.len(), HISTORY_LIMIT);

    let t1 = ts("2026-11-11T01:00:00Z");
    w.rollouts.get_mut("ws.kb1").unwrap().spec.paused = true;
    w.step(t1);
    let h = &rollout(&w, "ws.kb1").history;
    assert_eq!(h.len(), HISTORY_LIMIT);
    assert_eq!(h[0], first, "the approval that created the rollout is kept");
    assert_ne!(h[1], second, "the oldest after it is dropped");
    assert_eq!(h[1], filler(2));
    let last = h.last().unwrap();
    assert_eq!((last.at, last.reason), (t1, Reason::RolloutPaused));
}
