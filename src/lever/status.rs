//! `status`: one tenant at a glance, the way the operator sees it at an instant.
//!
//! [`status`] runs the engine's pass (and its ledger, for the pairs at risk) over the
//! tenant's objects and gathers what a person looks at first: the rings × active
//! rollouts matrix, what stands still and why, the SLA at risk, approvals waiting,
//! freezes, exceptions about to expire and devices that stopped checking in.
//! [`render_status`] prints it like `kubectl get`.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::api::{
    ExceptionPhase, Freeze, GateResult, PatchRolloutStatus, PendingApproval, PendingState, Reason,
    RingPhase, RingProgress, RolloutPhase, Severity,
};
use crate::engine::ledger::{self, Unpatched};
use crate::engine::sla::ClockState;
use crate::engine::windows::{active_freeze, patch_freeze};
use crate::report::cluster::Objects;

use super::{
    Pass, RolloutRef, Table, Tone, halt_words, paint, phase_name, relative, ring_tone,
    rollout_tone, when, when_relative,
};

/// The most device–patch pairs at risk the view lists (the worst first).
pub const WORST_PAIRS: usize = 10;
/// The most unreachable devices the view lists (the longest silent first).
pub const UNREACHABLE_LISTED: usize = 10;
/// Exceptions expiring within this long are listed.
pub const EXPIRING_WITHIN: SignedDuration = SignedDuration::from_hours(7 * 24);
/// Aborted and rolled-back rollouts are listed as stopped for this long after they
/// ended; after that they are only counted.
pub const RECENTLY_ENDED: SignedDuration = SignedDuration::from_hours(7 * 24);

/// One tenant at a glance: the `status` verb's output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    /// The tenant (namespace).
    pub namespace: String,
    /// The instant the view was computed at.
    pub at: Timestamp,
    /// How many objects of each kind the tenant has.
    pub counts: Counts,
    /// Each policy in one line, by name.
    pub policies: Vec<PolicyLine>,
    /// Rings × active rollouts.
    pub rollouts: RolloutMatrix,
    /// Rollouts that stand still (halted, rolling back, paused, held) or ended recently
    /// without completing (aborted, rolled back), and why.
    pub stopped: Vec<StoppedRollout>,
    /// Device–patch pairs overdue or due soon.
    pub sla: SlaAtRisk,
    /// Per policy, the patches waiting for a person or for a rule's delay.
    pub approvals: Vec<PolicyApprovals>,
    /// Change freezes in force or still to come, of policies and of rings.
    pub freezes: Vec<FreezeLine>,
    /// Exceptions (Active or PendingApproval) expiring within [`EXPIRING_WITHIN`].
    pub expiring_exceptions: Vec<ExpiringException>,
    /// Devices not seen for their ring's `unreachableAfter`.
    pub unreachable: UnreachableDevices,
}

/// How many objects of each kind the tenant has.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// PatchPolicies.
    pub policies: u32,
    /// DeploymentRings.
    pub rings: u32,
    /// ManagedDevices.
    pub devices: u32,
    /// PatchExceptions.
    pub exceptions: u32,
    /// PatchRollouts (with those the operator's pass would create now).
    pub rollouts: u32,
}

/// One policy, as its status says after the pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyLine {
    /// The policy.
    pub name: String,
    /// Devices it governs.
    pub devices: u32,
    /// Governed devices in none of its rings (they get no patches).
    pub devices_in_no_ring: u32,
    /// Devices also selected by another policy at the same priority (listed ones).
    pub conflicts: u32,
    /// Share of due or installed pairs within their SLA, e.g. `97.5%`.
    pub compliance: Option<String>,
    /// Pairs past their deadline.
    pub overdue: u32,
    /// Pairs within the policy's due-soon margin of their deadline.
    pub due_soon: u32,
    /// Patches being rolled out.
    pub rolling_out: u32,
    /// Whether its Ready condition is True.
    pub ready: bool,
    /// Its status's one line.
    pub message: Option<String>,
}

/// Rings × active rollouts: per rollout not yet completed, aborted or rolled back, each
/// ring's phase and counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutMatrix {
    /// The columns: every ring of the listed rollouts, in their policies' order.
    pub rings: Vec<String>,
    /// One row per active rollout, by name.
    pub rows: Vec<RolloutRow>,
    /// Completed rollouts (not listed).
    pub completed: u32,
    /// Aborted or rolled-back rollouts (not listed here).
    pub ended: u32,
}

/// One active rollout across the rings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRow {
    /// The rollout.
    pub name: String,
    /// Its policy.
    pub policy: String,
    /// Its patch id.
    pub patch: String,
    /// Its phase.
    pub phase: Option<RolloutPhase>,
    /// `installed/targeted` over every ring.
    pub progress: Option<String>,
    /// Per column of [`RolloutMatrix::rings`]: this rollout's part in that ring (None:
    /// the ring is not one of its policy's).
    pub cells: Vec<Option<RingCell>>,
}

/// One ring's part of one rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RingCell {
    /// The ring's phase.
    pub phase: RingPhase,
    /// Devices targeted.
    pub targeted: u32,
    /// Targeted devices that have it installed.
    pub installed: u32,
    /// Targeted devices whose attempt failed.
    pub failed: u32,
    /// Devices admitted and still installing.
    pub in_progress: u32,
    /// Devices the patch was uninstalled from.
    pub rolled_back: u32,
}

impl RingCell {
    fn of(r: &RingProgress) -> Self {
        Self {
            phase: r.phase,
            targeted: r.targeted,
            installed: r.installed,
            failed: r.failed,
            in_progress: r.in_progress,
            rolled_back: r.rolled_back,
        }
    }

    /// The cell in words: `-` (not started), `Deploying 12/40`, `Passed`, `Halted 3✗`.
    pub fn label(&self) -> String {
        let counts = format!("{}/{}", self.installed, self.targeted);
        match self.phase {
            RingPhase::Pending => "-".into(),
            RingPhase::Passed | RingPhase::RolledBack => phase_name(&self.phase),
            RingPhase::Halted => format!("Halted {}✗", self.failed),
            RingPhase::RollingBack => format!("RollingBack {}↩", self.rolled_back),
            RingPhase::Deploying | RingPhase::Soaking | RingPhase::Paused => {
                format!("{} {counts}", phase_name(&self.phase))
            }
        }
    }
}

/// A rollout that stands still, or ended without completing, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoppedRollout {
    /// The rollout.
    pub name: String,
    /// Its policy.
    pub policy: String,
    /// Its patch id.
    pub patch: String,
    /// Halted, RollingBack, RolledBack, Paused, Held or Aborted.
    pub phase: RolloutPhase,
    /// The ring that halted, or the ring the rollout stands in.
    pub ring: Option<String>,
    /// When it entered this phase, from its history.
    pub since: Option<Timestamp>,
    /// Why, in the operator's words.
    pub reason: String,
    /// The ring's promotion gates that failed (when the halt came from a gate).
    pub failed_gates: Vec<GateResult>,
}

/// Device–patch pairs overdue or due soon.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlaAtRisk {
    /// Pairs past their deadline, over every policy.
    pub overdue: u32,
    /// Pairs within their policy's due-soon margin, over every policy.
    pub due_soon: u32,
    /// Per policy × tier × severity with any pair at risk.
    pub cells: Vec<SlaRisk>,
    /// The worst pairs: overdue first, earliest deadline first (at most [`WORST_PAIRS`]).
    pub worst: Vec<PairAtRisk>,
    /// Pairs at risk not in `worst`.
    pub not_listed: u32,
}

/// Pairs at risk of one policy, tier and severity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlaRisk {
    /// The policy.
    pub policy: String,
    /// The device tier.
    pub tier: String,
    /// The severity the policy grades the patches at.
    pub severity: Severity,
    /// Pairs past their deadline.
    pub overdue: u32,
    /// Pairs due soon.
    pub due_soon: u32,
}

/// One device–patch pair at risk, with why it is not installed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairAtRisk {
    /// The device.
    pub device: String,
    /// The patch id.
    pub patch: String,
    /// The governing policy.
    pub policy: String,
    /// The device's ring in that policy.
    pub ring: Option<String>,
    /// The device's tier.
    pub tier: String,
    /// The severity the policy grades the patch at.
    pub severity: Severity,
    /// Overdue or DueSoon.
    pub state: ClockState,
    /// The pair's deadline.
    pub deadline: Option<Timestamp>,
    /// Why it is not installed (the engine's ledger).
    pub reason: Option<Unpatched>,
    /// The ledger's words on it (a rule, a ring, a message).
    pub detail: Option<String>,
}

/// One policy's patches waiting for approval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyApprovals {
    /// The policy.
    pub policy: String,
    /// Patches waiting for a person.
    pub awaiting_manual: u32,
    /// Patches a rule approves once its delay has passed.
    pub scheduled: u32,
    /// The first of them, soonest first (as the policy's status lists them).
    pub pending: Vec<PendingApproval>,
}

/// What a freeze belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FreezeOwner {
    /// A PatchPolicy's freeze: no ring of the policy admits devices.
    PatchPolicy,
    /// A DeploymentRing's own freeze.
    DeploymentRing,
    /// A person's PatchFreeze: on the rings it names, or on every ring of the tenant.
    PatchFreeze,
}

/// A change freeze in force or to come.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FreezeLine {
    /// The kind of object it belongs to.
    pub kind: FreezeOwner,
    /// That object's name.
    pub name: String,
    /// The rings a PatchFreeze names (empty: every ring of the tenant; always empty for
    /// the other kinds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rings: Vec<String>,
    /// When it begins.
    pub from: Timestamp,
    /// When it ends.
    pub until: Timestamp,
    /// Why.
    pub reason: String,
    /// Who asked for it.
    pub owner: String,
    /// In force now.
    pub active: bool,
}

/// An exception about to expire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiringException {
    /// The exception.
    pub name: String,
    /// Its phase.
    pub phase: Option<ExceptionPhase>,
    /// Who is accountable for it.
    pub owner: String,
    /// When it expires.
    pub expires_at: Timestamp,
    /// The patches it lets devices skip.
    pub patches: Vec<String>,
    /// Devices it covers now.
    pub covered_devices: u32,
    /// Its ticket.
    pub ticket: Option<String>,
}

/// Devices that stopped checking in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnreachableDevices {
    /// How many.
    pub total: u32,
    /// The longest silent first (at most [`UNREACHABLE_LISTED`]).
    pub devices: Vec<UnreachableDevice>,
}

/// One unreachable device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnreachableDevice {
    /// The device.
    pub name: String,
    /// When its agent last checked in.
    pub last_seen: Option<Timestamp>,
    /// Its policy.
    pub policy: Option<String>,
    /// Its ring.
    pub ring: Option<String>,
}

impl StatusView {
    /// Whether the tenant has nothing to show: no policy, device or rollout.
    pub fn is_empty(&self) -> bool {
        self.counts.policies == 0 && self.counts.devices == 0 && self.counts.rollouts == 0
    }
}

/// The tenant at a glance at `now`, as the operator's pass over `objects` sees it.
pub fn status(objects: &Objects, now: Timestamp) -> StatusView {
    let pass = Pass::run(objects, now);
    let rollouts = pass.rollouts();
    StatusView {
        namespace: objects.namespace.clone(),
        at: now,
        counts: Counts {
            policies: count(objects.policies.len()),
            rings: count(objects.rings.len()),
            devices: count(objects.devices.len()),
            exceptions: count(objects.exceptions.len()),
            rollouts: count(rollouts.len()),
        },
        policies: policies(&pass),
        rollouts: matrix(&pass, &rollouts),
        stopped: stopped(&rollouts, now),
        sla: sla(&pass),
        approvals: approvals(&pass),
        freezes: freezes(objects, now),
        expiring_exceptions: expiring(&pass),
        unreachable: unreachable(&pass),
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn sorted_names<'a>(names: impl Iterator<Item = Option<&'a String>>) -> Vec<&'a str> {
    let mut names: Vec<&str> = names.flatten().map(String::as_str).collect();
    names.sort_unstable();
    names
}

fn policies(pass: &Pass<'_>) -> Vec<PolicyLine> {
    let objects = pass.objects();
    sorted_names(objects.policies.iter().map(|p| p.metadata.name.as_ref()))
        .into_iter()
        .map(|name| {
            let s = pass.policy_status(name).cloned().unwrap_or_default();
            let ready = s
                .conditions
                .iter()
                .any(|c| c.type_ == crate::api::condition::READY && c.status == "True");
            PolicyLine {
                name: name.to_string(),
                devices: s.devices,
                devices_in_no_ring: s.devices_in_no_ring,
                conflicts: count(s.conflicts.len()),
                compliance: s.compliance,
                overdue: s.overdue,
                due_soon: due_soon_of(pass, name),
                rolling_out: s.approvals.rolling_out,
                ready,
                message: s.message,
            }
        })
        .collect()
}

fn due_soon_of(pass: &Pass<'_>, policy: &str) -> u32 {
    pass.decisions()
        .due_soon
        .iter()
        .filter(|d| d.policy == policy)
        .map(|d| d.pairs)
        .sum()
}

fn is_active(phase: Option<RolloutPhase>) -> bool {
    !matches!(
        phase,
        Some(RolloutPhase::Completed | RolloutPhase::Aborted | RolloutPhase::RolledBack)
    )
}

fn matrix(pass: &Pass<'_>, rollouts: &[RolloutRef<'_>]) -> RolloutMatrix {
    let phase = |r: &RolloutRef<'_>| r.status.and_then(|s| s.phase);
    let active: Vec<&RolloutRef<'_>> = rollouts.iter().filter(|r| is_active(phase(r))).collect();
    let mut rings: Vec<String> = Vec::new();
    for r in &active {
        for ring in rings_of(pass, r) {
            if !rings.contains(&ring) {
                rings.push(ring);
            }
        }
    }
    let rows = active
        .iter()
        .map(|r| RolloutRow {
            name: r.name.to_string(),
            policy: r.spec.policy.clone(),
            patch: r.spec.patch.clone(),
            phase: phase(r),
            progress: r.status.and_then(|s| s.progress.clone()),
            cells: rings
                .iter()
                .map(|ring| {
                    let s = r.status?;
                    s.rings.iter().find(|p| &p.name == ring).map(RingCell::of)
                })
                .collect(),
        })
        .collect();
    let ended = |p: RolloutPhase| rollouts.iter().filter(|r| phase(r) == Some(p)).count();
    RolloutMatrix {
        rings,
        rows,
        completed: count(ended(RolloutPhase::Completed)),
        ended: count(ended(RolloutPhase::Aborted) + ended(RolloutPhase::RolledBack)),
    }
}

/// A rollout's rings: its policy's list, else those its status names.
fn rings_of(pass: &Pass<'_>, r: &RolloutRef<'_>) -> Vec<String> {
    let policy = pass
        .objects()
        .policies
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(r.spec.policy.as_str()));
    match policy {
        Some(p) => p.spec.rings.clone(),
        None => r
            .status
            .map(|s| s.rings.iter().map(|p| p.name.clone()).collect())
            .unwrap_or_default(),
    }
}

fn stopped(rollouts: &[RolloutRef<'_>], now: Timestamp) -> Vec<StoppedRollout> {
    rollouts
        .iter()
        .filter_map(|r| {
            let s = r.status?;
            let phase = s.phase?;
            let entered = entered_by(phase)?;
            let since = s
                .history
                .iter()
                .rev()
                .find(|h| h.reason == entered)
                .map(|h| h.at);
            let ended = matches!(phase, RolloutPhase::Aborted | RolloutPhase::RolledBack);
            if ended && since.is_some_and(|t| now.duration_since(t) > RECENTLY_ENDED) {
                return None;
            }
            let ring = stopped_ring(s, phase);
            Some(StoppedRollout {
                name: r.name.to_string(),
                policy: r.spec.policy.clone(),
                patch: r.spec.patch.clone(),
                phase,
                reason: stopped_reason(s, phase),
                failed_gates: ring
                    .map(|p| p.gates.iter().filter(|g| !g.passed).cloned().collect())
                    .unwrap_or_default(),
                ring: ring.map(|p| p.name.clone()),
                since,
            })
        })
        .collect()
}

/// The history reason with which a rollout enters a phase that stands still.
fn entered_by(phase: RolloutPhase) -> Option<Reason> {
    match phase {
        RolloutPhase::Halted => Some(Reason::RingHalted),
        RolloutPhase::RollingBack => Some(Reason::RollbackStarted),
        RolloutPhase::RolledBack => Some(Reason::RolledBack),
        RolloutPhase::Paused => Some(Reason::RolloutPaused),
        RolloutPhase::Held => Some(Reason::PatchHeld),
        RolloutPhase::Aborted => Some(Reason::RolloutAborted),
        RolloutPhase::Progressing | RolloutPhase::Completed => None,
    }
}

/// The ring a stopped rollout stands in: the halted one, else the current one.
fn stopped_ring(s: &PatchRolloutStatus, phase: RolloutPhase) -> Option<&RingProgress> {
    let current = || {
        s.current_ring
            .as_deref()
            .and_then(|c| s.rings.iter().find(|r| r.name == c))
    };
    match phase {
        RolloutPhase::Halted | RolloutPhase::RollingBack | RolloutPhase::RolledBack => s
            .rings
            .iter()
            .find(|r| r.phase == RingPhase::Halted)
            .or_else(|| s.rings.iter().find(|r| r.halted_at.is_some()))
            .or_else(current),
        _ => current(),
    }
}

/// Why a rollout stands still, in the operator's words: the halt, the hold, or the
/// rollout's message.
fn stopped_reason(s: &PatchRolloutStatus, phase: RolloutPhase) -> String {
    let words = match phase {
        RolloutPhase::Halted | RolloutPhase::RollingBack | RolloutPhase::RolledBack => {
            halt_words(s)
        }
        RolloutPhase::Held => s.approval.as_ref().and_then(|a| a.reason.clone()),
        _ => None,
    };
    words
        .or_else(|| s.message.clone())
        .unwrap_or_else(|| phase_name(&phase))
}

fn sla(pass: &Pass<'_>) -> SlaAtRisk {
    let mut cells: BTreeMap<RiskKey, SlaRisk> = BTreeMap::new();
    let mut overdue = 0;
    for line in policies(pass) {
        overdue += line.overdue;
        let Some(s) = pass.policy_status(&line.name) else {
            continue;
        };
        for c in s.sla.iter().filter(|c| c.overdue > 0) {
            risk(&mut cells, &line.name, &c.tier, c.severity).overdue += c.overdue;
        }
    }
    let mut due_soon = 0;
    for d in pass.decisions().due_soon.iter().filter(|d| d.pairs > 0) {
        due_soon += d.pairs;
        risk(&mut cells, &d.policy, &d.tier, d.severity).due_soon += d.pairs;
    }
    let mut pairs = at_risk(pass);
    let not_listed = count(pairs.len().saturating_sub(WORST_PAIRS));
    pairs.truncate(WORST_PAIRS);
    for p in &mut pairs {
        p.detail = waiting_detail(pass, p);
    }
    SlaAtRisk {
        overdue,
        due_soon,
        cells: cells.into_values().collect(),
        worst: pairs,
        not_listed,
    }
}

/// A policy, a severity (most urgent first) and a tier.
type RiskKey = (String, Reverse<Severity>, String);

fn risk<'c>(
    cells: &'c mut BTreeMap<RiskKey, SlaRisk>,
    policy: &str,
    tier: &str,
    severity: Severity,
) -> &'c mut SlaRisk {
    // Keyed so that each policy's cells come most severe first, then by tier.
    let key = (policy.to_string(), Reverse(severity), tier.to_string());
    cells.entry(key).or_insert_with(|| SlaRisk {
        policy: policy.to_string(),
        tier: tier.to_string(),
        severity,
        overdue: 0,
        due_soon: 0,
    })
}

/// Every counted pair overdue or due soon, the worst first, from the engine's ledger.
fn at_risk(pass: &Pass<'_>) -> Vec<PairAtRisk> {
    let snapshot = pass.objects().snapshot();
    let mut pairs: Vec<PairAtRisk> = ledger::ledger(&snapshot, pass.now())
        .into_iter()
        .filter(|r| r.counted)
        .filter(|r| matches!(r.clock.state, ClockState::Overdue | ClockState::DueSoon))
        .map(|r| PairAtRisk {
            device: r.device.metadata.name.clone().unwrap_or_default(),
            patch: r.patch.spec.id.clone(),
            policy: r.policy.to_string(),
            ring: r.ring.map(str::to_string),
            tier: r.tier,
            severity: r.severity,
            state: r.clock.state,
            deadline: r.clock.deadline,
            reason: r.why.as_ref().map(|w| w.reason),
            detail: r.why.and_then(|w| w.detail),
        })
        .collect();
    pairs.sort_by(|a, b| {
        (b.state == ClockState::Overdue)
            .cmp(&(a.state == ClockState::Overdue))
            .then(
                a.deadline
                    .unwrap_or(Timestamp::MAX)
                    .cmp(&b.deadline.unwrap_or(Timestamp::MAX)),
            )
            .then_with(|| a.device.cmp(&b.device))
            .then_with(|| a.patch.cmp(&b.patch))
    });
    pairs
}

/// A waiting pair's detail: what its ring waits for, in the operator's words, where the
/// ledger names no more than the ring.
fn waiting_detail(pass: &Pass<'_>, p: &PairAtRisk) -> Option<String> {
    let ring_words = || pass.ring_waiting_for(&p.policy, &p.patch, p.ring.as_deref()?);
    match p.reason {
        Some(Unpatched::WaitingForRing) => ring_words().or_else(|| p.detail.clone()),
        Some(Unpatched::WaitingForWindow) => p.detail.clone().or_else(ring_words),
        _ => p.detail.clone(),
    }
}

fn approvals(pass: &Pass<'_>) -> Vec<PolicyApprovals> {
    policies(pass)
        .into_iter()
        .filter_map(|line| {
            let a = &pass.policy_status(&line.name)?.approvals;
            (a.awaiting_manual + a.scheduled > 0).then(|| PolicyApprovals {
                policy: line.name.clone(),
                awaiting_manual: a.awaiting_manual,
                scheduled: a.scheduled,
                pending: a.pending.clone(),
            })
        })
        .collect()
}

fn freezes(objects: &Objects, now: Timestamp) -> Vec<FreezeLine> {
    let policies = objects
        .policies
        .iter()
        .map(|p| (FreezeOwner::PatchPolicy, &p.metadata, &p.spec.freezes));
    let rings = objects
        .rings
        .iter()
        .map(|r| (FreezeOwner::DeploymentRing, &r.metadata, &r.spec.freezes));
    let mut out: Vec<FreezeLine> = policies
        .chain(rings)
        .flat_map(|(kind, meta, freezes)| {
            let name = meta.name.clone().unwrap_or_default();
            freezes
                .iter()
                .filter(move |f| f.until > now)
                .map(move |f| freeze_line(kind, &name, f, now))
        })
        .collect();
    out.extend(
        objects
            .freezes
            .iter()
            .filter(|f| f.spec.until > now)
            .map(|f| {
                let name = f.metadata.name.clone().unwrap_or_default();
                let mut line = freeze_line(FreezeOwner::PatchFreeze, &name, &patch_freeze(f), now);
                line.rings = f.spec.rings.clone();
                line
            }),
    );
    out.sort_by(|a, b| (a.from, a.kind as u8, &a.name).cmp(&(b.from, b.kind as u8, &b.name)));
    out
}

fn freeze_line(kind: FreezeOwner, name: &str, f: &Freeze, now: Timestamp) -> FreezeLine {
    FreezeLine {
        kind,
        name: name.to_string(),
        rings: Vec::new(),
        from: f.from,
        until: f.until,
        reason: f.reason.clone(),
        owner: f.owner.clone(),
        active: active_freeze([f], now).is_some(),
    }
}

fn expiring(pass: &Pass<'_>) -> Vec<ExpiringException> {
    let now = pass.now();
    let mut out: Vec<ExpiringException> = pass
        .objects()
        .exceptions
        .iter()
        .filter(|e| {
            let left = e.spec.expires_at.duration_since(now);
            left.is_positive() && left <= EXPIRING_WITHIN
        })
        .filter_map(|e| {
            let name = e.metadata.name.clone()?;
            let s = pass.exception_status(&name);
            let phase = s.and_then(|s| s.phase);
            matches!(
                phase,
                Some(ExceptionPhase::Active | ExceptionPhase::PendingApproval)
            )
            .then(|| ExpiringException {
                phase,
                owner: e.spec.owner.clone(),
                expires_at: e.spec.expires_at,
                patches: e.spec.patches.clone(),
                covered_devices: s.map_or(0, |s| s.covered_devices),
                ticket: e.spec.ticket.clone(),
                name,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.expires_at, &a.name).cmp(&(b.expires_at, &b.name)));
    out
}

fn unreachable(pass: &Pass<'_>) -> UnreachableDevices {
    let mut devices: Vec<UnreachableDevice> = pass
        .objects()
        .devices
        .iter()
        .filter(|d| pass.unreachable(d))
        .map(|d| {
            let c = pass.compliance(d);
            UnreachableDevice {
                name: d.metadata.name.clone().unwrap_or_default(),
                last_seen: pass.last_seen(d),
                policy: c.and_then(|c| c.policy.clone()),
                ring: c.and_then(|c| c.ring.clone()),
            }
        })
        .collect();
    devices.sort_by(|a, b| (a.last_seen, &a.name).cmp(&(b.last_seen, &b.name)));
    let total = count(devices.len());
    devices.truncate(UNREACHABLE_LISTED);
    UnreachableDevices { total, devices }
}

/// The view as text for a person, coloured (red halted or overdue, yellow waiting or due
/// soon, green passed) only when `color` is set.
pub fn render_status(view: &StatusView, color: bool) -> String {
    if view.is_empty() {
        return format!(
            "No ringmaster objects in namespace {}: no PatchPolicy, ManagedDevice or PatchRollout.\n",
            view.namespace
        );
    }
    let mut out = String::new();
    header(&mut out, view);
    policy_section(&mut out, view, color);
    matrix_section(&mut out, &view.rollouts, color);
    stopped_section(&mut out, view, color);
    sla_section(&mut out, view, color);
    approvals_section(&mut out, view, color);
    freezes_section(&mut out, view, color);
    exceptions_section(&mut out, view, color);
    unreachable_section(&mut out, view, color);
    out
}

fn header(out: &mut String, v: &StatusView) {
    let c = &v.counts;
    let _ = writeln!(
        out,
        "Tenant {} at {}: {} policies, {} rings, {} devices, {} exceptions, {} rollouts",
        v.namespace,
        when(v.at),
        c.policies,
        c.rings,
        c.devices,
        c.exceptions,
        c.rollouts
    );
}

fn policy_section(out: &mut String, v: &StatusView, color: bool) {
    out.push('\n');
    if v.policies.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            paint(
                &format!(
                    "No PatchPolicy: the {} devices get no patches.",
                    v.counts.devices
                ),
                Tone::Warn,
                color
            )
        );
        return;
    }
    let mut t = Table::new([
        "POLICY",
        "DEVICES",
        "NO-RING",
        "CONFLICTS",
        "COMPLIANCE",
        "OVERDUE",
        "DUE-SOON",
        "ROLLOUTS",
        "READY",
    ]);
    for p in &v.policies {
        t.toned([
            (p.name.clone(), Tone::Plain),
            (p.devices.to_string(), Tone::Plain),
            (
                p.devices_in_no_ring.to_string(),
                warn_if(p.devices_in_no_ring > 0),
            ),
            (p.conflicts.to_string(), bad_if(p.conflicts > 0)),
            (dash(p.compliance.clone()), Tone::Plain),
            (p.overdue.to_string(), bad_if(p.overdue > 0)),
            (p.due_soon.to_string(), warn_if(p.due_soon > 0)),
            (p.rolling_out.to_string(), Tone::Plain),
            (
                if p.ready { "True" } else { "False" }.to_string(),
                bad_if(!p.ready),
            ),
        ]);
    }
    out.push_str(&t.render(0, color));
    for p in v.policies.iter().filter(|p| !p.ready) {
        let why = format!(
            "policy {}: {}",
            p.name,
            p.message.as_deref().unwrap_or("not ready")
        );
        let _ = writeln!(out, "{}", paint(&why, Tone::Bad, color));
    }
}

fn matrix_section(out: &mut String, m: &RolloutMatrix, color: bool) {
    out.push('\n');
    let not_listed = format!(
        "{} completed, {} aborted or rolled back",
        m.completed, m.ended
    );
    if m.rows.is_empty() {
        let _ = writeln!(out, "No active rollouts ({not_listed}).");
        return;
    }
    let mut t = Table::new(
        ["ROLLOUT", "PATCH", "PHASE", "PROGRESS"]
            .into_iter()
            .map(String::from)
            .chain(m.rings.iter().cloned()),
    );
    for r in &m.rows {
        let cells = r.cells.iter().map(|c| match c {
            Some(c) => (c.label(), cell_tone(c)),
            None => (String::new(), Tone::Plain),
        });
        t.toned(
            [
                (r.name.clone(), Tone::Plain),
                (r.patch.clone(), Tone::Plain),
                (
                    r.phase.map_or("-".into(), |p| phase_name(&p)),
                    rollout_tone(r.phase),
                ),
                (dash(r.progress.clone()), Tone::Plain),
            ]
            .into_iter()
            .chain(cells),
        );
    }
    out.push_str(&t.render(0, color));
    if m.completed + m.ended > 0 {
        let _ = writeln!(out, "({not_listed}: not listed)");
    }
}

fn cell_tone(c: &RingCell) -> Tone {
    match c.phase {
        RingPhase::Pending => Tone::Plain,
        phase => ring_tone(phase),
    }
}

fn stopped_section(out: &mut String, v: &StatusView, color: bool) {
    if v.stopped.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nSTOPPED");
    let mut t = Table::new(["ROLLOUT", "PHASE", "RING", "SINCE", "WHY"]);
    for s in &v.stopped {
        let mut why = s.reason.clone();
        for g in &s.failed_gates {
            let _ = write!(why, "; gate {} failed: {}", g.name, g.message);
        }
        t.toned([
            (s.name.clone(), Tone::Plain),
            (phase_name(&s.phase), rollout_tone(Some(s.phase))),
            (dash(s.ring.clone()), Tone::Plain),
            (
                s.since.map_or("-".into(), |t| relative(t, v.at)),
                Tone::Plain,
            ),
            (why, Tone::Plain),
        ]);
    }
    out.push_str(&t.render(0, color));
}

fn sla_section(out: &mut String, v: &StatusView, color: bool) {
    let s = &v.sla;
    out.push('\n');
    if s.overdue + s.due_soon == 0 {
        let _ = writeln!(out, "SLA: no pair overdue or due soon.");
        return;
    }
    let _ = writeln!(
        out,
        "SLA AT RISK: {}, {}",
        paint(
            &format!("{} overdue", s.overdue),
            bad_if(s.overdue > 0),
            color
        ),
        paint(
            &format!("{} due soon", s.due_soon),
            warn_if(s.due_soon > 0),
            color
        )
    );
    let mut t = Table::new(["POLICY", "TIER", "SEVERITY", "OVERDUE", "DUE-SOON"]);
    for c in &s.cells {
        t.toned([
            (c.policy.clone(), Tone::Plain),
            (c.tier.clone(), Tone::Plain),
            (c.severity.as_str().to_string(), Tone::Plain),
            (c.overdue.to_string(), bad_if(c.overdue > 0)),
            (c.due_soon.to_string(), warn_if(c.due_soon > 0)),
        ]);
    }
    out.push_str(&t.render(0, color));
    if s.worst.is_empty() {
        return;
    }
    let mut t = Table::new([
        "DEVICE", "PATCH", "POLICY", "RING", "STATE", "DEADLINE", "WHY",
    ]);
    for p in &s.worst {
        let state_tone = if p.state == ClockState::Overdue {
            Tone::Bad
        } else {
            Tone::Warn
        };
        t.toned([
            (p.device.clone(), Tone::Plain),
            (p.patch.clone(), Tone::Plain),
            (p.policy.clone(), Tone::Plain),
            (dash(p.ring.clone()), Tone::Plain),
            (p.state.as_str().to_string(), state_tone),
            (
                p.deadline.map_or("-".into(), |d| relative(d, v.at)),
                Tone::Plain,
            ),
            (reason_words(p.reason, p.detail.as_deref()), Tone::Plain),
        ]);
    }
    out.push('\n');
    out.push_str(&t.render(0, color));
    if s.not_listed > 0 {
        let _ = writeln!(out, "({} more pair(s) at risk not listed)", s.not_listed);
    }
}

fn reason_words(reason: Option<Unpatched>, detail: Option<&str>) -> String {
    match (reason, detail) {
        (Some(r), Some(d)) => format!("{}: {d}", r.as_str()),
        (Some(r), None) => r.as_str().to_string(),
        (None, _) => "-".into(),
    }
}

fn approvals_section(out: &mut String, v: &StatusView, color: bool) {
    if v.approvals.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nAWAITING APPROVAL");
    let mut t = Table::new(["POLICY", "PATCH", "WAITS FOR", "RULE", "APPROVED AT"]);
    for p in &v.approvals {
        for a in &p.pending {
            let (what, tone) = match a.state {
                PendingState::AwaitingManual => ("a person", Tone::Warn),
                PendingState::Scheduled => ("its delay", Tone::Plain),
            };
            t.toned([
                (p.policy.clone(), Tone::Plain),
                (a.patch.clone(), Tone::Plain),
                (what.to_string(), tone),
                (a.by.clone(), Tone::Plain),
                (
                    a.at.map_or("-".into(), |t| when_relative(t, v.at)),
                    Tone::Plain,
                ),
            ]);
        }
        let listed = count(p.pending.len());
        if p.awaiting_manual + p.scheduled > listed {
            t.row([
                p.policy.clone(),
                format!("(+{} more)", p.awaiting_manual + p.scheduled - listed),
            ]);
        }
    }
    out.push_str(&t.render(0, color));
}

fn freezes_section(out: &mut String, v: &StatusView, color: bool) {
    if v.freezes.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nFREEZES");
    let mut t = Table::new(["ON", "FROM", "UNTIL", "STATE", "REASON", "OWNER"]);
    for f in &v.freezes {
        let on = match f.kind {
            FreezeOwner::PatchPolicy => format!("ppol/{}", f.name),
            FreezeOwner::DeploymentRing => format!("ring/{}", f.name),
            FreezeOwner::PatchFreeze if f.rings.is_empty() => format!("pfz/{} (tenant)", f.name),
            FreezeOwner::PatchFreeze => format!("pfz/{} ({})", f.name, f.rings.join(", ")),
        };
        let (state, tone) = if f.active {
            ("in force", Tone::Warn)
        } else {
            ("upcoming", Tone::Plain)
        };
        t.toned([
            (on, Tone::Plain),
            (when(f.from), Tone::Plain),
            (when_relative(f.until, v.at), Tone::Plain),
            (state.to_string(), tone),
            (f.reason.clone(), Tone::Plain),
            (f.owner.clone(), Tone::Plain),
        ]);
    }
    out.push_str(&t.render(0, color));
}

fn exceptions_section(out: &mut String, v: &StatusView, color: bool) {
    if v.expiring_exceptions.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nEXCEPTIONS EXPIRING WITHIN 7D");
    let mut t = Table::new([
        "EXCEPTION",
        "PHASE",
        "EXPIRES",
        "DEVICES",
        "PATCHES",
        "OWNER",
    ]);
    for e in &v.expiring_exceptions {
        t.toned([
            (e.name.clone(), Tone::Plain),
            (e.phase.map_or("-".into(), |p| phase_name(&p)), Tone::Plain),
            (when_relative(e.expires_at, v.at), Tone::Warn),
            (e.covered_devices.to_string(), Tone::Plain),
            (e.patches.join(","), Tone::Plain),
            (e.owner.clone(), Tone::Plain),
        ]);
    }
    out.push_str(&t.render(0, color));
}

fn unreachable_section(out: &mut String, v: &StatusView, color: bool) {
    let u = &v.unreachable;
    if u.total == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "\n{}",
        paint(
            &format!("UNREACHABLE DEVICES: {}", u.total),
            Tone::Bad,
            color
        )
    );
    let mut t = Table::new(["DEVICE", "LAST SEEN", "POLICY", "RING"]);
    for d in &u.devices {
        t.row([
            d.name.clone(),
            d.last_seen.map_or("never".into(), |t| relative(t, v.at)),
            dash(d.policy.clone()),
            dash(d.ring.clone()),
        ]);
    }
    out.push_str(&t.render(0, color));
    if u.total > count(u.devices.len()) {
        let _ = writeln!(
            out,
            "({} more not listed)",
            u.total - count(u.devices.len())
        );
    }
}

fn dash(s: Option<String>) -> String {
    s.unwrap_or_else(|| "-".into())
}

fn bad_if(b: bool) -> Tone {
    if b { Tone::Bad } else { Tone::Plain }
}

fn warn_if(b: bool) -> Tone {
    if b { Tone::Warn } else { Tone::Plain }
}
