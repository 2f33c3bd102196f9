//! One rollout, one pass: its rings' state machine, admission, gates, halts, rollback.
//!
//! [`decide`] is pure: it reads the rollout's previous status and the devices of the
//! policy that report the patch, and returns the new status, the plan changes, the Events
//! and the next instant it needs to run again. It goes ring by ring, in the policy's
//! order, then judges the rollout as a whole:
//!
//! | module | holds |
//! | --- | --- |
//! | [`members`] | each member's standing (the device contract's judgement, or excepted, unreachable) and the ring's counts |
//! | [`ring`] | the ring's state machine (its transition table is there) and its gates |
//! | [`admit`] | admission: slots, windows, freezes, blocks, renewals |
//! | [`finish`] | the rollout's phase, abort, rollback, its Events and status |

mod admit;
mod finish;
mod members;
mod ring;

use jiff::Timestamp;

use crate::api::{
    ApprovalRecord, ApprovalState, DeploymentRingSpec, DevicePatchStatus, Duration, Freeze,
    ManagedDevice, OnFailure, PatchRolloutSpec, PatchRolloutStatus, PatchState, PlanEntry,
    RingProgress, RolloutHistoryEntry, RolloutPhase,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::cache::When;
use super::decision::{Event, EventType, Kind, PlanChange, PlanList, Reason};
use super::history;
use super::windows::{Schedule, active_freeze};

/// Devices not seen for this long are Unreachable unless the ring says otherwise.
pub const DEFAULT_UNREACHABLE_AFTER: Duration = Duration::hours(72);

/// A ring's `unreachableAfter`, else [`DEFAULT_UNREACHABLE_AFTER`].
pub fn unreachable_after(ring: Option<&DeploymentRingSpec>) -> Duration {
    ring.and_then(|r| r.unreachable_after)
        .unwrap_or(DEFAULT_UNREACHABLE_AFTER)
}

/// Whether a device last seen at `seen` is unreachable at `now` in a ring that waits
/// `after`: it has checked in, but not for `after`. One that never checked in is not.
pub fn unreachable(seen: Option<Timestamp>, after: Duration, now: Timestamp) -> bool {
    seen.is_some_and(|seen| now.duration_since(seen) >= after.span())
}

/// One device of the policy that reports the patch, as the rollout sees it. A pass makes
/// one per device–patch pair of a rollout's rings, so it is kept small (one 64-byte cache
/// line): what every member's standing needs is copied in; the device object itself (its
/// report, its plan's entries) is read only for members that have an entry or are named.
#[derive(Clone, Debug)]
pub struct Member<'a> {
    /// The device (its name is read only where a decision names it).
    pub device: &'a ManagedDevice,
    /// Where its report for this patch is in the device's `status.patches`
    /// ([`Member::report`]).
    pub(crate) report_at: u32,
    /// The report's state (`report.state`, copied where the caller has it at hand: a
    /// rollout reads every member's, and most need nothing else of the report).
    pub state: PatchState,
    /// An exception keeps it from being assigned this patch.
    pub excepted: bool,
    /// Its plan has an install entry for this patch.
    pub(crate) in_install: bool,
    /// That entry, when the pass that made the member read the device's plan (the device
    /// changed since the pass before); looked up by [`Member::install`] otherwise.
    pub(crate) install_entry: Option<&'a PlanEntry>,
    /// Its plan has an uninstall entry for this patch.
    pub(crate) in_uninstall: bool,
    /// The report's install time (`report.installed_at`, likewise).
    pub(crate) installed_at: When,
    /// When its agent last checked in.
    pub(crate) last_seen: When,
    /// Its SLA deadline for this patch.
    pub(crate) deadline: When,
}

/// The report a member whose device lost its reports would have (it cannot: a member is
/// made from its report, and the objects of a pass do not change).
static NO_REPORT: DevicePatchStatus = DevicePatchStatus::NONE;

impl<'a> Member<'a> {
    /// Its report for this patch.
    pub fn report(&self) -> &'a DevicePatchStatus {
        self.device
            .status
            .as_ref()
            .and_then(|s| s.patches.get(self.report_at as usize))
            .unwrap_or(&NO_REPORT)
    }

    /// The device name.
    pub fn name(&self) -> &'a str {
        self.device.metadata.name.as_deref().unwrap_or("")
    }

    /// Its plan's install entry for this patch, if any.
    pub fn install(&self) -> Option<&'a PlanEntry> {
        if !self.in_install {
            return None;
        }
        self.install_entry
            .or_else(|| self.device.spec.plan.install.get(&self.report().id))
    }

    /// Its plan's uninstall entry for this patch, if any.
    pub fn uninstall(&self) -> Option<&'a PlanEntry> {
        let plan = &self.device.spec.plan;
        self.in_uninstall
            .then(|| plan.uninstall.get(&self.report().id))
            .flatten()
    }

    /// The report's install time.
    pub fn installed_at(&self) -> Option<Timestamp> {
        self.installed_at.get()
    }

    /// When its agent last checked in.
    pub fn last_seen(&self) -> Option<Timestamp> {
        self.last_seen.get()
    }

    /// Its SLA deadline for this patch.
    pub fn deadline(&self) -> Option<Timestamp> {
        self.deadline.get()
    }
}

const _: () = assert!(std::mem::size_of::<Member<'static>>() <= 64);

/// A ring of the policy, with its members for this patch.
#[derive(Clone, Debug)]
pub struct RingInput<'a> {
    /// The ring's name.
    pub name: &'a str,
    /// Its spec and compiled windows, or why it cannot be used.
    pub ring: Result<(&'a DeploymentRingSpec, &'a Schedule), String>,
    /// Its freezes: its spec's and people's (`PatchFreeze`s naming it).
    pub freezes: &'a [Freeze],
    /// Its members that report the patch.
    pub members: Vec<Member<'a>>,
}

/// Everything one rollout decision reads.
#[derive(Clone, Debug)]
pub struct RolloutInput<'a> {
    /// The rollout's name.
    pub name: &'a str,
    /// Its spec (the levers).
    pub spec: &'a PatchRolloutSpec,
    /// Who last pulled a lever (the annotation `ringmaster.dev/lever-by`, checked by the
    /// chart's admission policy), named by the Events and history of what they did.
    pub lever_by: Option<&'a str>,
    /// Its status as last written (None for a new rollout).
    pub old: Option<&'a PatchRolloutStatus>,
    /// This pass creates it: its approval is announced (`PatchApproved`, about the
    /// policy) and is the first entry of its history.
    pub created: bool,
    /// The approval as of now: state `Approved`, `Held` or `Rejected`.
    pub approval: ApprovalRecord,
    /// The patch can be uninstalled.
    pub uninstallable: bool,
    /// The policy's freezes: its spec's and people's tenant-wide ones.
    pub policy_freezes: &'a [Freeze],
    /// The policy's rings, in order.
    pub rings: Vec<RingInput<'a>>,
    /// Why the policy cannot drive rollouts now (a missing ring, a conflict…), if so.
    pub blocked: Option<String>,
}

/// What one rollout decision produces.
#[derive(Clone, Debug, Default)]
pub struct RolloutOutcome {
    /// The new status.
    pub status: PatchRolloutStatus,
    /// Plan changes.
    pub plan: Vec<PlanChange>,
    /// Events.
    pub events: Vec<Event>,
    /// The earliest instant after now at which this rollout must be decided again.
    pub wake: Option<Timestamp>,
    /// The earliest instant after now at which this decision changes by time alone, even
    /// where nothing need act on it: a finished rollout asks for no wake-up, but its
    /// rings' counts still move as entries time out and members turn unreachable.
    pub changes_at: Option<Timestamp>,
    /// The first instant after now at which a member counted as reachable turns
    /// unreachable (the earliest `lastSeen` plus its ring's `unreachableAfter`); part of
    /// `changes_at`, and kept apart because check-ins alone move it, and only later.
    pub unreachable_at: Option<Timestamp>,
    /// `changes_at` but for `unreachable_at`: what check-ins do not move.
    pub changes_else: Option<Timestamp>,
    /// A ring cannot deploy because a spec is unusable (a ring missing or invalid, or the
    /// policy blocked): the rollout is Stalled until a person fixes it.
    pub invalid_spec: bool,
}

/// A ring that halted this pass: which, what its `onFailure` says, and why.
#[derive(Clone, Debug)]
struct Halt {
    ring: usize,
    on_failure: OnFailure,
    reason: String,
}

/// One rollout's pass: what it reads, and what it has decided so far.
struct Pass<'i, 'a> {
    input: &'i RolloutInput<'a>,
    now: Timestamp,
    out: RolloutOutcome,
    wake: Vec<Option<Timestamp>>,
    /// The first instant a member counted as reachable turns unreachable.
    turns: Option<Timestamp>,
    old_phase: Option<RolloutPhase>,
    held: bool,
    rejected: bool,
    /// Aborted by a person or by a rejection, this pass.
    aborting: bool,
    /// Rolling back (or rolled back) since an earlier pass.
    rolling_back: bool,
    /// The policy's freeze in force.
    freeze: Option<&'a Freeze>,
    halted_now: Option<Halt>,
    any_halted: bool,
    /// The status's history: the stored one, and this pass's audit-worthy transitions.
    history: Vec<RolloutHistoryEntry>,
}

/// Decides one rollout at `now`.
pub fn decide(input: &RolloutInput<'_>, now: Timestamp) -> RolloutOutcome {
    let old_phase = input.old.and_then(|s| s.phase);
    let rejected = input.approval.state == ApprovalState::Rejected;
    let mut pass = Pass {
        input,
        now,
        out: RolloutOutcome::default(),
        wake: Vec::new(),
        turns: None,
        old_phase,
        held: input.approval.state == ApprovalState::Held,
        rejected,
        aborting: !is_terminal(old_phase) && (input.spec.abort || rejected),
        rolling_back: matches!(
            old_phase,
            Some(RolloutPhase::RollingBack | RolloutPhase::RolledBack)
        ),
        freeze: active_freeze(input.policy_freezes.iter(), now),
        halted_now: None,
        any_halted: false,
        history: input.old.map(|s| s.history.clone()).unwrap_or_default(),
    };
    if input.created {
        pass.approved();
    }
    let mut rings: Vec<RingProgress> = Vec::with_capacity(input.rings.len());
    let mut previous_passed = true;
    for idx in 0..input.rings.len() {
        let rp = pass.ring(idx, previous_passed);
        previous_passed = !pass.stopped() && rp.phase == crate::api::RingPhase::Passed;
        rings.push(rp);
    }
    let mut phase = pass.rollout_phase(&mut rings);
    if phase == RolloutPhase::Aborted {
        pass.release_unstarted();
    }
    if phase == RolloutPhase::RollingBack {
        phase = pass.roll_back(&mut rings);
    }
    pass.phase_events(phase);
    let changes_else = pass
        .wake
        .iter()
        .flatten()
        .filter(|t| **t > now)
        .min()
        .copied();
    pass.out.changes_else = changes_else;
    pass.out.unreachable_at = pass.turns;
    pass.out.changes_at = earlier(changes_else, pass.turns);
    pass.out.wake = asks_wake(phase).then_some(pass.out.changes_at).flatten();
    pass.out.status = pass.status(phase, rings);
    pass.out
}

impl<'a> Pass<'_, 'a> {
    /// The rings are not moved this pass: the rollout is over, aborting or rolling back.
    fn stopped(&self) -> bool {
        self.rolling_back || is_terminal(self.old_phase) || self.aborting
    }

    /// Who pulled the levers, for Events: the recorded user, else "a person".
    fn person(&self) -> &'a str {
        self.input.lever_by.unwrap_or("a person")
    }

    /// Why a person has paused `ring`, if they have: the whole rollout (`spec.paused`) or
    /// this ring (`spec.pausedRings`). A paused ring admits no device and is not promoted.
    fn paused(&self, ring: &str) -> Option<String> {
        let spec = self.input.spec;
        if spec.paused {
            Some("rollout paused (spec.paused)".into())
        } else if spec.paused_rings.iter().any(|r| r == ring) {
            Some(format!("ring {ring} paused (spec.pausedRings)"))
        } else {
            None
        }
    }

    /// The ring's progress as the old status has it.
    fn old_ring(&self, ring: &str) -> Option<&'a RingProgress> {
        self.input
            .old
            .and_then(|s| s.rings.iter().find(|r| r.name == ring))
    }

    /// Records an Event about this rollout; `ring` names the ring of a ring's transition.
    fn event(&mut self, type_: EventType, reason: Reason, ring: Option<&str>, message: String) {
        let event = Event {
            kind: Kind::PatchRollout,
            name: self.input.name.to_string(),
            type_,
            reason,
            message,
        };
        self.emit(event, ring);
    }

    /// Records an Event of this rollout's pass and, when it is audit-worthy, its entry in
    /// the rollout's history ([`history::record_rollout`]). Every Event a rollout's pass
    /// makes comes through here.
    fn emit(&mut self, event: Event, ring: Option<&str>) {
        history::record_rollout(&mut self.history, self.now, &event, ring);
        self.out.events.push(event);
    }
}

/// The number of installs a ring allows in progress at once.
pub fn max_concurrent(value: &IntOrString, targeted: u32) -> u32 {
    match value {
        IntOrString::Int(n) => u32::try_from(*n).unwrap_or(0).max(1),
        IntOrString::String(s) => match s.strip_suffix('%') {
            Some(p) => {
                let pct: u64 = p.trim().parse().unwrap_or(100).min(100);
                let n = (u64::from(targeted) * pct).div_ceil(100);
                u32::try_from(n).unwrap_or(u32::MAX).max(1)
            }
            None => s.trim().parse::<u32>().unwrap_or(1).max(1),
        },
    }
}

/// Whether a rollout in `phase` asks to be decided again when its decision changes by
/// time: all but one that is over (aborted, rolled back).
pub fn asks_wake(phase: RolloutPhase) -> bool {
    !matches!(phase, RolloutPhase::Aborted | RolloutPhase::RolledBack)
}

/// The earlier of two instants, either of which may be none.
pub(crate) fn earlier(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn is_terminal(phase: Option<RolloutPhase>) -> bool {
    matches!(
        phase,
        Some(RolloutPhase::Aborted | RolloutPhase::RolledBack)
    )
}

fn freeze_message(f: Option<&Freeze>) -> Option<String> {
    f.map(|f| {
        format!(
            "change freeze until {} ({}, owner {})",
            f.until, f.reason, f.owner
        )
    })
}

fn set(device: &str, list: PlanList, patch: &str, entry: PlanEntry) -> PlanChange {
    PlanChange {
        device: device.to_string(),
        list,
        patch: patch.to_string(),
        entry: Some(entry),
    }
}

fn remove(device: &str, list: PlanList, patch: &str) -> PlanChange {
    PlanChange {
        device: device.to_string(),
        list,
        patch: patch.to_string(),
        entry: None,
    }
}

fn push_unique(plan: &mut Vec<PlanChange>, change: PlanChange) {
    if !plan
        .iter()
        .any(|c| c.device == change.device && c.list == change.list && c.patch == change.patch)
    {
        plan.push(change);
    }
}

fn preview(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

/// An instant for people to read: agents report installs to the millisecond, but a soak
/// that ends at 12:46:07.057 is said to end at 12:46:08 (never earlier than it does).
fn whole_seconds(t: Timestamp) -> Timestamp {
    t.round(
        jiff::TimestampRound::new()
            .smallest(jiff::Unit::Second)
            .mode(jiff::RoundMode::Ceil),
    )
    .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_in_messages_are_whole_seconds_never_early() {
        let t = |s: &str| s.parse::<Timestamp>().expect("timestamp");
        assert_eq!(
            whole_seconds(t("2026-11-22T12:46:07.05697746Z")).to_string(),
            "2026-11-22T12:46:08Z"
        );
        assert_eq!(
            whole_seconds(t("2026-11-22T12:46:07Z")).to_string(),
            "2026-11-22T12:46:07Z"
        );
    }
}
