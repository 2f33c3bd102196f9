//! The ledger: every device–patch pair a pass counts, with its SLA clock and, for a pair
//! not installed, why not. The evidence packet's rows, and the answer to "why has this
//! device not got this patch".
//!
//! It runs the very stages a decision pass runs (gather, walk, rollouts), so a pair's
//! clock, governing policy and ring are the ones the engine decides with; the reason is
//! read from what that pass decided (the approval, the rollout's and the ring's phase)
//! and from the device (its plan entry, its report, its last check-in).

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::{
    DevicePatchStatus, ManagedDevice, Patch, PatchRolloutStatus, PatchState, RingPhase,
    RolloutPhase, Severity,
};
use crate::engine::approval::Approval;
use crate::engine::cache::Cache;
use crate::engine::decision::Decisions;
use crate::engine::exceptions;
use crate::engine::rollout::{unreachable, unreachable_after};
use crate::engine::sla::{Clock, ClockState};

use super::gather::{self, Tenant};
use super::walk::{self, Fact, Walked};
use super::{Snapshot, name_of, rollout_name, rollouts};

/// Why a device–patch pair is not installed.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Unpatched {
    /// An exception covers it.
    Exception,
    /// The device is in none of its policy's rings.
    NotInRing,
    /// A rule approves the patch once its delay has passed.
    AwaitingApproval,
    /// A person must approve the patch.
    AwaitingManualApproval,
    /// The patch was rejected.
    Rejected,
    /// A newer approved patch replaces it.
    Superseded,
    /// The patch fails too often across the fleet and is held.
    Held,
    /// The rollout was aborted.
    Aborted,
    /// The rollout is halted, rolling back or rolled back.
    Halted,
    /// The rollout is paused by a person.
    Paused,
    /// The device has not checked in for longer than its ring allows.
    DeviceUnreachable,
    /// The device's last attempt failed.
    Failed,
    /// The device has been given the patch and has not finished.
    Installing,
    /// The device waits for its maintenance window, a slot in its ring, or the end of a
    /// freeze.
    WaitingForWindow,
    /// The device's ring waits for the rings before it.
    WaitingForRing,
}

impl Unpatched {
    /// The name reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Unpatched::Exception => "Exception",
            Unpatched::NotInRing => "NotInRing",
            Unpatched::AwaitingApproval => "AwaitingApproval",
            Unpatched::AwaitingManualApproval => "AwaitingManualApproval",
            Unpatched::Rejected => "Rejected",
            Unpatched::Superseded => "Superseded",
            Unpatched::Held => "Held",
            Unpatched::Aborted => "Aborted",
            Unpatched::Halted => "Halted",
            Unpatched::Paused => "Paused",
            Unpatched::DeviceUnreachable => "DeviceUnreachable",
            Unpatched::Failed => "Failed",
            Unpatched::Installing => "Installing",
            Unpatched::WaitingForWindow => "WaitingForWindow",
            Unpatched::WaitingForRing => "WaitingForRing",
        }
    }
}

/// Why not, and a few words more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Why {
    /// The reason.
    pub reason: Unpatched,
    /// The exception, ring, rule or message it comes from.
    pub detail: Option<String>,
    /// The exception that covers the pair, for [`Unpatched::Exception`].
    pub exception: Option<String>,
}

/// One device–patch pair, as a pass at `now` counts it.
#[derive(Clone, Debug)]
pub struct Row<'a> {
    /// The device.
    pub device: &'a ManagedDevice,
    /// Its report of the patch (the one that counts, when it reports the patch twice).
    pub report: &'a DevicePatchStatus,
    /// The patch.
    pub patch: &'a Patch,
    /// The governing policy.
    pub policy: &'a str,
    /// The device's ring in that policy.
    pub ring: Option<&'a str>,
    /// The device's tier.
    pub tier: String,
    /// The severity the policy grades the patch at.
    pub severity: Severity,
    /// The patch's SLA release time.
    pub released: Timestamp,
    /// The pair's clock at `now`.
    pub clock: Clock,
    /// Whether it counts in the SLA figures (neither rejected nor superseded).
    pub counted: bool,
    /// For a pair not installed at `now`: why.
    pub why: Option<Why>,
}

/// Every device–patch pair of the tenant at `now` (devices in name order, each device's
/// pairs in report order), with its clock and, when not installed, why not.
pub fn ledger<'a>(snap: &Snapshot<'a>, now: Timestamp) -> Vec<Row<'a>> {
    let mut cache = Cache::one_pass();
    cache.record = true;
    let t = gather::gather(snap, now);
    let mut w = walk::walk(&t, &snap.devices, &mut cache, now, false);
    let mut d = Decisions::default();
    let mut ring_active: Vec<u32> = vec![0; t.rings.len()];
    for pi in 0..t.policies.len() {
        rollouts::policy_rollouts(&t, &mut w, pi, &mut ring_active, &mut d, now, None);
    }
    let facts = std::mem::take(&mut w.facts);
    facts
        .iter()
        .filter_map(|f| row(&t, &w, &d, &cache.tiers, f, now))
        .collect()
}

fn row<'a>(
    t: &Tenant<'a>,
    w: &Walked<'a>,
    d: &Decisions,
    tiers: &[String],
    f: &Fact,
    now: Timestamp,
) -> Option<Row<'a>> {
    let device = w.devices[f.di];
    let report = device.status.as_ref()?.patches.get(f.report)?;
    let pv = &t.policies[f.pi];
    let ring = w.views[f.di].ring().map(|pos| pv.rings[pos].0);
    let installed = matches!(
        f.clock.state,
        ClockState::InstalledOnTime | ClockState::InstalledLate
    );
    let why = (!installed).then(|| why(t, w, d, f, ring, now));
    Some(Row {
        device,
        report,
        patch: t.patches[f.ix],
        policy: pv.name,
        ring,
        tier: tiers.get(f.tier).cloned().unwrap_or_default(),
        severity: t.graded[f.pi * t.patches.len() + f.ix].0,
        released: t.released[f.ix],
        clock: f.clock,
        counted: f.counted,
        why,
    })
}

/// Why a pair is not installed, the first that holds of: an exception, no ring, the
/// approval, the rollout, the device (unreachable, failed, given the patch), the ring.
fn why(
    t: &Tenant<'_>,
    w: &Walked<'_>,
    d: &Decisions,
    f: &Fact,
    ring: Option<&str>,
    now: Timestamp,
) -> Why {
    let device = w.devices[f.di];
    if let Some(name) = covering_exception(t, device, f) {
        return because(Unpatched::Exception, None).with_exception(name);
    }
    let Some(ring) = ring else {
        return because(Unpatched::NotInRing, None);
    };
    if let Some(why) = approval_why(t, w, f) {
        return why;
    }
    let name = rollout_name(t.policies[f.pi].name, &t.patches[f.ix].spec.id);
    let status = rollout_status(t, d, f, &name);
    if let Some(why) = status.and_then(|s| rollout_why(s, ring)) {
        return why;
    }
    if let Some(why) = device_why(t, device, f, ring, now) {
        return why;
    }
    match status.and_then(|s| s.rings.iter().find(|r| r.name == ring)) {
        Some(r) if r.phase == RingPhase::Pending => because(
            Unpatched::WaitingForRing,
            status.and_then(|s| s.current_ring.clone()),
        ),
        // The ring alone is paused (`spec.pausedRings`); the rollout's pause is above.
        Some(r) if r.phase == RingPhase::Paused => {
            because(Unpatched::Paused, r.waiting_for.clone())
        }
        Some(_) => because(Unpatched::WaitingForWindow, None),
        None => because(Unpatched::WaitingForRing, None),
    }
}

fn because(reason: Unpatched, detail: Option<String>) -> Why {
    Why {
        reason,
        detail,
        exception: None,
    }
}

impl Why {
    fn with_exception(mut self, name: &str) -> Self {
        self.detail = Some(name.to_string());
        self.exception = Some(name.to_string());
        self
    }
}

/// The first exception (by name) that covers the pair and keeps it from being assigned
/// or stops its clock now.
fn covering_exception<'a>(t: &Tenant<'a>, device: &ManagedDevice, f: &Fact) -> Option<&'a str> {
    let id = t.patches[f.ix].spec.id.as_str();
    let (name, labels) = (name_of(&device.metadata), device.metadata.labels.as_ref());
    t.exc_by_patch[f.ix]
        .iter()
        .map(|&ei| (t.excs[ei], &t.evals[ei]))
        .filter(|(_, ev)| ev.blocks_assignment || ev.phase == crate::api::ExceptionPhase::Active)
        .find(|(exc, ev)| exceptions::covers(exc, ev, name, labels, id))
        .map(|(exc, _)| name_of(&exc.metadata))
}

/// Why not, when the patch is not approved under the policy (or is superseded).
fn approval_why(t: &Tenant<'_>, w: &Walked<'_>, f: &Fact) -> Option<Why> {
    let slot = w.slots[f.pi * t.patches.len() + f.ix].as_ref()?;
    if let Some(by) = &slot.superseded_by {
        return Some(because(Unpatched::Superseded, Some(by.clone())));
    }
    match &slot.approval {
        Approval::Approved { .. } => None,
        Approval::Scheduled { at, by } => Some(because(
            Unpatched::AwaitingApproval,
            Some(format!("{by} approves it at {at}")),
        )),
        Approval::AwaitingManual { by } => {
            Some(because(Unpatched::AwaitingManualApproval, Some(by.clone())))
        }
        Approval::Rejected { by } => Some(because(Unpatched::Rejected, Some(by.clone()))),
    }
}

/// The rollout's status as this pass decided it, else as stored.
fn rollout_status<'d>(
    t: &Tenant<'d>,
    d: &'d Decisions,
    f: &Fact,
    name: &str,
) -> Option<&'d PatchRolloutStatus> {
    d.rollouts
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| &**s)
        .or_else(|| t.rollouts[f.pi * t.patches.len() + f.ix].and_then(|r| r.status.as_ref()))
}

/// Why not, when the rollout as a whole stands still.
fn rollout_why(s: &PatchRolloutStatus, ring: &str) -> Option<Why> {
    let halted_ring = || {
        s.rings
            .iter()
            .find(|r| r.halted_at.is_some())
            .map(|r| r.name.clone())
            .or_else(|| Some(ring.to_string()))
    };
    match s.phase? {
        RolloutPhase::Aborted => Some(because(Unpatched::Aborted, s.message.clone())),
        RolloutPhase::Halted | RolloutPhase::RollingBack | RolloutPhase::RolledBack => {
            Some(because(Unpatched::Halted, halted_ring()))
        }
        RolloutPhase::Paused => Some(because(Unpatched::Paused, None)),
        RolloutPhase::Held => Some(because(Unpatched::Held, s.message.clone())),
        RolloutPhase::Progressing | RolloutPhase::Completed => None,
    }
}

/// Why not, from the device: it is unreachable, its attempt failed, or it has the patch
/// in its plan.
fn device_why(
    t: &Tenant<'_>,
    device: &ManagedDevice,
    f: &Fact,
    ring: &str,
    now: Timestamp,
) -> Option<Why> {
    let id = t.patches[f.ix].spec.id.as_str();
    let after = unreachable_after(
        t.rings
            .iter()
            .find(|r| r.name == ring)
            .map(|r| &r.ring.spec),
    );
    let status = device.status.as_ref()?;
    if let Some(seen) = crate::contract::last_seen(device, t.check_ins)
        && unreachable(Some(seen), after, now)
    {
        return Some(because(
            Unpatched::DeviceUnreachable,
            Some(format!("last seen {seen}")),
        ));
    }
    let report = status.patches.get(f.report)?;
    if report.state == PatchState::Failed {
        return Some(because(Unpatched::Failed, report.message.clone()));
    }
    let entry = device.spec.plan.install.get(id)?;
    if entry.not_before > now {
        return Some(because(
            Unpatched::WaitingForWindow,
            Some(format!("window opens {}", entry.not_before)),
        ));
    }
    let detail = (report.state == PatchState::PendingReboot).then(|| "waiting for a reboot".into());
    Some(because(Unpatched::Installing, detail))
}
