//! Decide: per policy, each reported patch's approval, and for each approved one its
//! rollout (created when it is new), decided ring by ring by [`rollout::decide`].

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::Timestamp;

use crate::api::{
    ApprovalRecord, ApprovalState, ApprovalSummary, Patch, PatchRollout, PatchRolloutSpec,
    PatchRolloutStatus, PendingApproval, PendingState, RingPhase, RolloutPhase, lever_by,
};
use crate::engine::approval::{self, Approval};
use crate::engine::decision::{Decisions, Health, NewRollout};
use crate::engine::rollout::{self, RingInput, RolloutInput};

use super::gather::{PolicyView, Tenant};
use super::kept::{self, Memo, Replay};
use super::walk::{self, Slot, Walked};
use super::{name_of, rollout_name};

/// The most pending approvals a policy status lists.
pub(super) const PENDING_LISTED: usize = 20;

/// Decides every rollout of policy `pi`, into `d`; counts each ring's active rollouts
/// into `ring_active`, and returns the policy's approval summary. With `replay`, a
/// rollout that nothing it reads has changed for is replayed from its memo, and the
/// others are decided from the members their slots keep and memoized.
pub(super) fn policy_rollouts<'a>(
    t: &Tenant<'a>,
    w: &mut Walked<'a>,
    pi: usize,
    ring_active: &mut [u32],
    d: &mut Decisions,
    now: Timestamp,
    mut replay: Option<&mut Replay<'_>>,
) -> ApprovalSummary {
    let pv = &t.policies[pi];
    let mut summary = ApprovalSummary::default();
    let mut pending: Vec<PendingApproval> = Vec::new();
    for id in patch_ids(t, w, pi) {
        let ix = t.catalog.get(id).copied();
        let slot = ix.map(|ix| w.slot(t, pi, ix, &[], now));
        let appr = slot.as_ref().map_or(
            Approval::AwaitingManual {
                by: "unknown patch".into(),
            },
            |s| s.approval.clone(),
        );
        let existing_rollout = t.existing.get(&(pv.name, id)).copied();
        if existing_rollout.is_none() {
            let superseded = slot.as_ref().is_some_and(|s| s.superseded_by.is_some());
            if !waits(&appr, superseded, id, &mut summary, &mut pending, d, now) {
                continue;
            }
        }
        let Some(ix) = ix else {
            // A rollout for a patch the catalog no longer has: leave it as it stands.
            continue;
        };
        let patch = t.patches[ix];
        let at = pi * t.patches.len() + ix;
        let old = existing_rollout.and_then(|r| r.status.as_ref());
        let record = record(pv, &appr, w.slots[at].as_ref(), old, now);
        match record.state {
            ApprovalState::Held => summary.held += 1,
            ApprovalState::Rejected => summary.rejected += 1,
            ApprovalState::Approved => summary.rolling_out += 1,
        }
        let one = One {
            t,
            pv,
            id,
            patch,
            existing: existing_rollout,
            record,
        };
        let mut replay = replay.as_deref_mut();
        if let Some(r) = replay.as_deref_mut().filter(|r| r.reuse) {
            let (slot, dirt) = (w.slots[at].as_ref(), w.dirty.get(at).copied());
            if let Some(m) = r.replayable(at, &one, slot, dirt, &w.views, now) {
                one.replay(m, ring_active, d, now);
                continue;
            }
            let members = walk::members(w, r.cache, at, &mut r.pool.borrow_mut());
            if let Some(s) = w.slots[at].as_mut() {
                s.members = members;
            }
        }
        let keep = replay.map(|r| (at, r));
        one.decide(w.slots[at].as_mut(), ring_active, d, now, keep);
    }
    pending.sort_by(|a, b| {
        a.at.unwrap_or(Timestamp::MAX)
            .cmp(&b.at.unwrap_or(Timestamp::MAX))
            .then(a.patch.cmp(&b.patch))
    });
    pending.truncate(PENDING_LISTED);
    summary.pending = pending;
    summary.unknown_patches = w.unknown[pi].keys().take(PENDING_LISTED).cloned().collect();
    summary
}

/// The patch ids a policy decides: those its devices report, and those it has rollouts for.
fn patch_ids<'a>(t: &Tenant<'a>, w: &Walked<'a>, pi: usize) -> BTreeSet<&'a str> {
    let n = t.patches.len();
    let pv = &t.policies[pi];
    let mut ids: BTreeSet<&str> = (0..n)
        .filter(|ix| {
            w.slots[pi * n + ix]
                .as_ref()
                .is_some_and(|s| s.reported > 0)
        })
        .map(|ix| t.patches[ix].spec.id.as_str())
        .collect();
    for (pol, patch) in t.existing.keys() {
        if *pol == pv.name {
            ids.insert(patch);
        }
    }
    ids
}

/// For a patch with no rollout yet: counts it as superseded, rejected, scheduled or
/// awaiting a person, and says whether it goes on to a rollout (it is approved).
fn waits(
    appr: &Approval,
    superseded: bool,
    id: &str,
    summary: &mut ApprovalSummary,
    pending: &mut Vec<PendingApproval>,
    d: &mut Decisions,
    now: Timestamp,
) -> bool {
    if superseded {
        summary.superseded += 1;
        return false;
    }
    match appr {
        Approval::Rejected { .. } => summary.rejected += 1,
        Approval::Scheduled { at, by } => {
            summary.scheduled += 1;
            pending.push(PendingApproval {
                patch: id.to_string(),
                state: PendingState::Scheduled,
                at: Some(*at),
                by: by.clone(),
            });
            d.wake(Some(*at), now);
        }
        Approval::AwaitingManual { by } => {
            summary.awaiting_manual += 1;
            pending.push(PendingApproval {
                patch: id.to_string(),
                state: PendingState::AwaitingManual,
                at: None,
                by: by.clone(),
            });
        }
        Approval::Approved { .. } => return true,
    }
    false
}

/// The rollout's approval record: when and by what it was first approved (kept from its
/// status), and whether it is now held (the fleet's failures) or rejected.
fn record(
    pv: &PolicyView<'_>,
    appr: &Approval,
    slot: Option<&Slot<'_>>,
    old: Option<&PatchRolloutStatus>,
    now: Timestamp,
) -> ApprovalRecord {
    let hold = approval::hold_reason(
        pv.policy.spec.approval.hold.as_ref(),
        slot.map(|s| s.outcomes).unwrap_or_default(),
    );
    let (approved_at, by, emergency) = match (appr, old.and_then(|s| s.approval.as_ref())) {
        (_, Some(rec)) if rec.approved_at.is_some() => {
            (rec.approved_at, rec.by.clone(), rec.emergency)
        }
        (Approval::Approved { at, by, emergency }, _) => {
            (Some(at.unwrap_or(now)), Some(by.clone()), *emergency)
        }
        _ => (Some(now), None, false),
    };
    let (state, reason) = match (appr, hold) {
        (Approval::Rejected { by }, _) => {
            (ApprovalState::Rejected, Some(format!("rejected by {by}")))
        }
        (_, Some(h)) => (ApprovalState::Held, Some(h)),
        _ => (ApprovalState::Approved, None),
    };
    ApprovalRecord {
        state,
        approved_at,
        by,
        emergency,
        reason,
    }
}

/// One approved patch under one policy: its rollout, existing or to create.
pub(super) struct One<'s, 'a> {
    pub(super) t: &'s Tenant<'a>,
    pub(super) pv: &'s PolicyView<'a>,
    id: &'a str,
    patch: &'a Patch,
    pub(super) existing: Option<&'a PatchRollout>,
    pub(super) record: ApprovalRecord,
}

impl<'s, 'a> One<'s, 'a> {
    /// Puts a memoized decision in `d`: the status, which its last decision found already
    /// stored (so no plan change and no Event), and its wake-up.
    fn replay(&self, m: &Memo, ring_active: &mut [u32], d: &mut Decisions, now: Timestamp) {
        let name = self.existing.map_or("", |r| name_of(&r.metadata));
        count_active(self.pv, &m.status, ring_active);
        d.wake(m.wake(), now);
        d.rollouts.push((name.to_string(), Arc::clone(&m.status)));
    }

    /// Decides the rollout and puts its status, plan changes, Events and wake-up in `d`;
    /// with `keep`, leaves in the memo of slot `at` what a later pass may replay (none
    /// unless the decision changed nothing), and the member lists' room for reuse.
    fn decide(
        self,
        slot: Option<&mut Slot<'a>>,
        ring_active: &mut [u32],
        d: &mut Decisions,
        now: Timestamp,
        keep: Option<(usize, &mut Replay<'_>)>,
    ) {
        let (pv, id) = (self.pv, self.id);
        let name = self.existing.map_or_else(
            || rollout_name(pv.name, id),
            |r| name_of(&r.metadata).to_string(),
        );
        let spec = self.existing.map_or_else(
            || PatchRolloutSpec {
                policy: pv.name.to_string(),
                patch: id.to_string(),
                paused: false,
                paused_rings: vec![],
                promote: vec![],
                abort: false,
            },
            |r| r.spec.clone(),
        );
        let old = self.existing.and_then(|r| r.status.as_ref());
        let input = RolloutInput {
            name: &name,
            spec: &spec,
            lever_by: self.existing.and_then(|r| lever_by(&r.metadata)),
            old,
            created: self.existing.is_none(),
            approval: self.record.clone(),
            uninstallable: self.patch.spec.uninstallable,
            policy_freezes: &pv.freezes,
            rings: self.ring_inputs(slot),
            blocked: pv.blocked(),
        };
        let mut outcome = rollout::decide(&input, now);
        let rings = input.rings;
        // A created object starts at generation 1.
        let generation = self.existing.map_or(Some(1), |r| r.metadata.generation);
        outcome.status.observed_generation = generation;
        let health = rollout_health(&outcome.status, outcome.invalid_spec);
        outcome.status.conditions = health.conditions(
            old.map(|s| s.conditions.as_slice()).unwrap_or(&[]),
            generation,
            now,
        );
        count_active(pv, &outcome.status, ring_active);
        let status = Arc::new(std::mem::take(&mut outcome.status));
        if let Some((at, r)) = keep {
            if let Some(memo) = r.memos.get_mut(at) {
                *memo = Memo::of(&self, &outcome, &status, &rings, now);
            }
            let mut pool = r.pool.borrow_mut();
            pool.extend(rings.into_iter().map(|ring| kept::recycle(ring.members)));
        }
        if self.existing.is_none() {
            // Its PatchApproved Event is the rollout's own (`rollout::decide`).
            d.new_rollouts.push(NewRollout {
                name: name.clone(),
                spec,
            });
        }
        d.plan.extend(outcome.plan);
        d.events.extend(outcome.events);
        d.wake(outcome.wake, now);
        d.rollouts.push((name, status));
    }

    /// The policy's rings, each with its spec (or why it cannot be used) and the members
    /// the walk found for this patch.
    fn ring_inputs(&self, mut slot: Option<&mut Slot<'a>>) -> Vec<RingInput<'s>> {
        let rings = &self.t.rings;
        self.pv
            .rings
            .iter()
            .enumerate()
            .map(|(pos, (ring_name, ri))| {
                let ring = match ri {
                    Some(ri) => match &rings[*ri].problem {
                        None => Ok((&rings[*ri].ring.spec, &rings[*ri].schedule)),
                        Some(p) => Err(format!("DeploymentRing {ring_name} is invalid: {p}")),
                    },
                    None => Err(format!("DeploymentRing {ring_name} not found")),
                };
                let members = slot
                    .as_mut()
                    .and_then(|s| s.members.get_mut(pos))
                    .map(std::mem::take)
                    .unwrap_or_default();
                RingInput {
                    name: ring_name,
                    ring,
                    freezes: ri.map_or(&[][..], |ri| &rings[ri].freezes),
                    members,
                }
            })
            .collect()
    }
}

/// Counts the rings a rollout is deploying to or soaking in as active.
fn count_active(pv: &PolicyView<'_>, status: &PatchRolloutStatus, ring_active: &mut [u32]) {
    for (pos, rp) in status.rings.iter().enumerate() {
        let active = matches!(rp.phase, RingPhase::Deploying | RingPhase::Soaking);
        if let (true, Some((_, Some(ri)))) = (active, pv.rings.get(pos)) {
            ring_active[*ri] += 1;
        }
    }
}

/// A rollout's kstatus conditions, from its phase.
fn rollout_health(status: &PatchRolloutStatus, invalid_spec: bool) -> Health {
    let msg = status.message.clone().unwrap_or_default();
    match status.phase {
        Some(RolloutPhase::Completed) => Health::ready("Completed", msg),
        Some(RolloutPhase::RolledBack) => Health::ready("RolledBack", msg),
        Some(RolloutPhase::Aborted) => Health::ready("Aborted", msg),
        Some(RolloutPhase::Halted) => Health::stalled("Halted", msg),
        Some(RolloutPhase::Held) => Health::stalled("Held", msg),
        Some(RolloutPhase::Paused) => Health::ready("Paused", msg),
        Some(RolloutPhase::RollingBack) => Health::progressing("RollingBack", msg),
        Some(RolloutPhase::Progressing) | None if invalid_spec => {
            Health::stalled("InvalidSpec", msg)
        }
        Some(RolloutPhase::Progressing) | None => Health::progressing("Progressing", msg),
    }
}
