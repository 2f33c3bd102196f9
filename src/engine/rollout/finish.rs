//! The rollout as a whole, once its rings are decided: its phase (aborted, rolling back,
//! halted, paused, held, completed, progressing), what aborting and rolling back write,
//! the Events of its transitions (and of its creation), and its status.

use crate::api::{
    OnFailure, PatchRolloutStatus, PatchState, PlanEntry, RingPhase, RingProgress, RolloutPhase,
};
use crate::engine::decision::{Event, EventType, Kind, PlanList, Reason};

use super::{Pass, RolloutInput, is_terminal, push_unique, remove, set};

impl<'i, 'a> Pass<'i, 'a> {
    /// A rollout this pass creates: its approval, announced on its policy.
    pub(super) fn approved(&mut self) {
        let input = self.input;
        let a = &input.approval;
        let event = Event {
            kind: Kind::PatchPolicy,
            name: input.spec.policy.clone(),
            type_: if a.emergency {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: Reason::PatchApproved,
            message: format!(
                "{} approved by {}{}; rollout {} created",
                input.spec.patch,
                a.by.as_deref().unwrap_or("policy"),
                if a.emergency { " (emergency)" } else { "" },
                input.name
            ),
        };
        self.emit(event, None);
    }

    /// The rollout's phase, from the old one, the levers and the rings' outcome.
    pub(super) fn rollout_phase(&mut self, rings: &mut [RingProgress]) -> RolloutPhase {
        let input = self.input;
        if is_terminal(self.old_phase) {
            return self.old_phase.unwrap_or(RolloutPhase::Aborted);
        }
        if self.aborting {
            let why = if input.spec.abort {
                format!("aborted by {} (spec.abort)", self.person())
            } else {
                rejection(input)
            };
            self.event(EventType::Warning, Reason::RolloutAborted, None, why);
            return RolloutPhase::Aborted;
        }
        if self.rolling_back {
            return RolloutPhase::RollingBack;
        }
        if self.halted_now.is_some() {
            return self.halt(rings);
        }
        if self.any_halted {
            RolloutPhase::Halted
        } else if input.spec.paused {
            RolloutPhase::Paused
        } else if self.held {
            RolloutPhase::Held
        } else if !rings.is_empty() && rings.iter().all(|r| r.phase == RingPhase::Passed) {
            RolloutPhase::Completed
        } else {
            RolloutPhase::Progressing
        }
    }

    /// A ring halted this pass: what its `onFailure` makes of the rollout.
    fn halt(&mut self, rings: &mut [RingProgress]) -> RolloutPhase {
        let Some(h) = self.halted_now.clone() else {
            return RolloutPhase::Halted;
        };
        let input = self.input;
        let ring = input.rings[h.ring].name;
        self.event(
            EventType::Warning,
            Reason::RingHalted,
            Some(ring),
            format!("ring {ring} halted: {}", h.reason),
        );
        match h.on_failure {
            OnFailure::Abort => {
                self.event(
                    EventType::Warning,
                    Reason::RolloutAborted,
                    None,
                    format!("aborted by ring {ring}'s halt rule (onFailure: Abort)"),
                );
                RolloutPhase::Aborted
            }
            OnFailure::Rollback if self.input.uninstallable => {
                self.event(
                    EventType::Warning,
                    Reason::RollbackStarted,
                    None,
                    format!(
                        "rolling back the patch from every device that has it, after ring {ring} halted"
                    ),
                );
                RolloutPhase::RollingBack
            }
            OnFailure::Rollback => {
                if let Some(rp) = rings.get_mut(h.ring) {
                    rp.waiting_for = Some(format!(
                        "halted: {}; the patch is not uninstallable, so it cannot be rolled back: a person decides",
                        h.reason
                    ));
                }
                RolloutPhase::Halted
            }
            OnFailure::Pause => RolloutPhase::Halted,
        }
    }

    /// Aborted: every assignment of this rollout that has not started is released.
    pub(super) fn release_unstarted(&mut self) {
        let name = self.input.name;
        let input = self.input;
        for ring in &input.rings {
            for m in &ring.members {
                if m.install().is_some_and(|e| e.rollout == name)
                    && !matches!(m.state, PatchState::Installing | PatchState::PendingReboot)
                {
                    push_unique(
                        &mut self.out.plan,
                        remove(m.name(), PlanList::Install, &m.report().id),
                    );
                }
            }
        }
    }

    /// Rolling back: uninstall from every device that has it; RolledBack when none has it
    /// any more.
    pub(super) fn roll_back(&mut self, rings: &mut [RingProgress]) -> RolloutPhase {
        let mut remaining = 0u32;
        for (idx, rp) in rings.iter_mut().enumerate() {
            let left = self.roll_back_ring(idx);
            remaining += left;
            if rp.started_at.is_some() {
                rp.phase = if left > 0 {
                    RingPhase::RollingBack
                } else {
                    RingPhase::RolledBack
                };
                rp.waiting_for = (left > 0).then(|| format!("{left} device(s) still to uninstall"));
            }
        }
        if remaining > 0 {
            return RolloutPhase::RollingBack;
        }
        let n: u32 = rings.iter().map(|r| r.rolled_back).sum();
        self.event(
            EventType::Warning,
            Reason::RolledBack,
            None,
            format!("rolled back: uninstalled from {n} device(s)"),
        );
        RolloutPhase::RolledBack
    }

    /// The uninstall entries of one ring; how many of its devices still have the patch.
    fn roll_back_ring(&mut self, idx: usize) -> u32 {
        let (name, now) = (self.input.name, self.now);
        let mut left = 0;
        let input = self.input;
        for m in &input.rings[idx].members {
            if m.install().is_some_and(|e| e.rollout == name) {
                push_unique(
                    &mut self.out.plan,
                    remove(m.name(), PlanList::Install, &m.report().id),
                );
            }
            let has_it = matches!(
                m.state,
                PatchState::Installed | PatchState::PendingReboot | PatchState::Installing
            );
            if has_it {
                left += 1;
                if m.uninstall().is_none_or(|e| e.rollout != name) {
                    let entry = PlanEntry {
                        rollout: name.to_string(),
                        not_before: now,
                        not_after: None,
                        deadline: None,
                        attempt: None,
                        basis: None,
                        answer_by: None,
                    };
                    self.out
                        .plan
                        .push(set(m.name(), PlanList::Uninstall, &m.report().id, entry));
                }
            } else if m.uninstall().is_some_and(|e| e.rollout == name) {
                self.out
                    .plan
                    .push(remove(m.name(), PlanList::Uninstall, &m.report().id));
            }
        }
        left
    }

    /// Events for the rollout's own transitions.
    pub(super) fn phase_events(&mut self, phase: RolloutPhase) {
        let old = self.old_phase;
        let changed_to = |p: RolloutPhase| phase == p && old != Some(p);
        if changed_to(RolloutPhase::Completed) {
            self.event(
                EventType::Normal,
                Reason::RolloutCompleted,
                None,
                "every ring passed".into(),
            );
        }
        if changed_to(RolloutPhase::Held) {
            let why = self.input.approval.reason.clone();
            self.event(
                EventType::Warning,
                Reason::PatchHeld,
                None,
                why.unwrap_or_else(|| "held".into()),
            );
        }
        if changed_to(RolloutPhase::Paused) {
            self.event(
                EventType::Normal,
                Reason::RolloutPaused,
                None,
                format!("paused by {} (spec.paused)", self.person()),
            );
        }
        if old == Some(RolloutPhase::Paused) && phase == RolloutPhase::Progressing {
            self.event(
                EventType::Normal,
                Reason::RolloutResumed,
                None,
                format!("resumed by {}", self.person()),
            );
        }
    }

    /// The status: the phase, the current ring, progress, what it waits for, and its
    /// history (the stored one and this pass's entries).
    pub(super) fn status(
        &mut self,
        phase: RolloutPhase,
        rings: Vec<RingProgress>,
    ) -> PatchRolloutStatus {
        let current = rings
            .iter()
            .find(|r| r.phase != RingPhase::Passed)
            .or(rings.last());
        let installed: u32 = rings.iter().map(|r| r.installed).sum();
        let targeted: u32 = rings.iter().map(|r| r.targeted).sum();
        let message = match phase {
            RolloutPhase::Completed => {
                format!("every ring passed; {installed}/{targeted} installed")
            }
            RolloutPhase::RolledBack => "rolled back".to_string(),
            RolloutPhase::Aborted => self.aborted_message(),
            _ => current
                .and_then(|r| r.waiting_for.clone().map(|w| format!("{}: {w}", r.name)))
                .unwrap_or_default(),
        };
        PatchRolloutStatus {
            observed_generation: None,
            conditions: Vec::new(),
            approval: Some(self.input.approval.clone()),
            phase: Some(phase),
            current_ring: current.map(|r| r.name.clone()),
            progress: Some(format!("{installed}/{targeted}")),
            message: Some(message),
            rings,
            history: std::mem::take(&mut self.history),
        }
    }

    fn aborted_message(&self) -> String {
        let input = self.input;
        if let Some(m) = input.old.and_then(|o| o.message.clone())
            && is_terminal(self.old_phase)
        {
            return m;
        }
        if input.spec.abort {
            format!("aborted by {} (spec.abort)", self.person())
        } else if self.rejected {
            rejection(input)
        } else {
            self.halted_now
                .as_ref()
                .map(|h| format!("aborted: {}", h.reason))
                .unwrap_or_else(|| "aborted".into())
        }
    }
}

/// Who rejected the patch, as the approval record's reason says (the rule, the list or
/// the PatchApproval that rejected it; not whoever approved it first).
fn rejection(input: &RolloutInput<'_>) -> String {
    input
        .approval
        .reason
        .clone()
        .unwrap_or_else(|| "rejected".into())
}
