//! `why`: why a device has no plan entry for a patch ([`why_device`]), and why a
//! rollout's ring does not move ([`why_rollout`]).
//!
//! Both run the engine's pass over the tenant at an instant and read its answers: the
//! ledger's reason for each device–patch pair ([`Unpatched`]), the policy's approval
//! (`engine::approval::evaluate`), the exceptions that name the pair
//! (`engine::exceptions::covers`), the rollout's and its rings' decided statuses. Every
//! message shown is the engine's own.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};

use crate::api::{
    ApprovalRecord, ApprovalState, DevicePatchStatus, ExceptionPhase, GateResult, ManagedDevice,
    PatchState, PlanEntry, RingPhase, RingProgress, RolloutHistoryEntry, RolloutPhase, Severity,
};
use crate::engine::approval::{self, Approval};
use crate::engine::decision::PlanList;
use crate::engine::exceptions::{self, Limits};
use crate::engine::ledger::{self, Row, Unpatched};
use crate::engine::selector::Selector;
use crate::engine::sla::ClockState;
use crate::report::cluster::Objects;

use super::{
    Pass, RolloutRef, Table, Tone, halt_words, paint, phase_name, relative, ring_tone,
    rollout_tone, when, when_relative,
};

/// How many entries of a rollout's history [`WhyRollout::recent`] keeps.
pub const RECENT_HISTORY: usize = 5;

/// What `why` cannot answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WhyError {
    /// No ManagedDevice of that name in the namespace.
    #[error("ManagedDevice {device} not found in namespace {namespace}")]
    DeviceNotFound {
        /// The namespace.
        namespace: String,
        /// The device asked about.
        device: String,
    },
    /// No PatchRollout of that name in the namespace (nor one the operator would create).
    #[error("PatchRollout {rollout} not found in namespace {namespace}")]
    RolloutNotFound {
        /// The namespace.
        namespace: String,
        /// The rollout asked about.
        rollout: String,
    },
    /// The ring is not one of the rollout's.
    #[error(
        "DeploymentRing {ring} is not a ring of PatchRollout {rollout} in namespace {namespace} (its rings: {})",
        .rings.join(", ")
    )]
    RingNotInRollout {
        /// The namespace.
        namespace: String,
        /// The rollout.
        rollout: String,
        /// The ring asked about.
        ring: String,
        /// The rollout's rings.
        rings: Vec<String>,
    },
    /// The device's agent does not report the patch: it does not apply to the device.
    #[error(
        "patch {patch} is not applicable to ManagedDevice {device} in namespace {namespace}: its agent does not report it"
    )]
    PatchNotApplicable {
        /// The namespace.
        namespace: String,
        /// The device.
        device: String,
        /// The patch asked about.
        patch: String,
    },
}

/// Why a device has (or has no) plan entry for its patches: the `why device` output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WhyDevice {
    /// The tenant (namespace).
    pub namespace: String,
    /// The device.
    pub device: String,
    /// The instant of the answer.
    pub at: Timestamp,
    /// When its agent last checked in.
    pub last_seen: Option<Timestamp>,
    /// Not seen for its ring's `unreachableAfter`: it is given no new work.
    pub unreachable: bool,
    /// Which policy governs it, and its ring.
    pub governance: Governance,
    /// The patch asked about; without one, every applicable patch not installed, in
    /// the order the agent reports them.
    pub patches: Vec<PatchWhy>,
    /// Applicable patches installed and so not listed (0 when a patch was asked about).
    pub installed_not_listed: u32,
}

/// Which policy governs a device and which of its rings claims it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Governance {
    /// The governing PatchPolicy.
    pub policy: Option<String>,
    /// Its ring under that policy.
    pub ring: Option<String>,
    /// Its tier.
    pub tier: Option<String>,
    /// Policies that select it at the same priority, when they conflict.
    pub conflict: Vec<String>,
    /// The operator's words when it gets no assignments (no policy, a conflict, no ring).
    pub message: Option<String>,
    /// The device's labels.
    pub labels: BTreeMap<String, String>,
    /// When it has no policy: every policy's selector; when it has no ring: its policy's
    /// rings' selectors.
    pub selectors: Vec<SelectorMatch>,
}

/// The kind of object a selector belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorOf {
    /// A PatchPolicy's `deviceSelector`.
    PatchPolicy,
    /// A DeploymentRing's `deviceSelector`.
    DeploymentRing,
}

/// One selector, and whether it selects the device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectorMatch {
    /// The kind of object.
    pub kind: SelectorOf,
    /// Its name.
    pub name: String,
    /// The selector, as `kubectl` writes one (`k=v,k2 in (a,b)`).
    pub selector: String,
    /// Whether it selects the device's labels.
    pub matches: bool,
    /// Why it cannot be used, if it cannot (or the object does not exist).
    pub problem: Option<String>,
}

/// Why one device–patch pair stands as it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PairReason {
    /// It is installed.
    Installed,
    /// No PatchPolicy selects the device.
    NoPolicy,
    /// Several PatchPolicies select the device at the same priority.
    PolicyConflict,
    /// The catalog has no Patch of this id.
    NotInCatalog,
    /// Why the engine's ledger says it is not installed.
    #[serde(untagged)]
    Unpatched(Unpatched),
}

impl PairReason {
    /// The name, as the JSON output has it.
    pub fn as_str(self) -> &'static str {
        match self {
            PairReason::Installed => "Installed",
            PairReason::NoPolicy => "NoPolicy",
            PairReason::PolicyConflict => "PolicyConflict",
            PairReason::NotInCatalog => "NotInCatalog",
            PairReason::Unpatched(u) => u.as_str(),
        }
    }
}

/// One device–patch pair: its reason and every fact behind it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchWhy {
    /// The patch id.
    pub patch: String,
    /// Its state as the device's agent reports it.
    pub state: PatchState,
    /// Why it stands so.
    pub reason: PairReason,
    /// The answer in one sentence, in the operator's words where it has them.
    pub summary: String,
    /// The ledger's words on the reason (a rule, a ring, a message).
    pub detail: Option<String>,
    /// The severity its policy grades it at.
    pub severity: Option<Severity>,
    /// Its SLA clock.
    pub clock: Option<ClockView>,
    /// Exceptions that name this device and patch, whether or not they cover it now.
    pub exceptions: Vec<ExceptionCoverage>,
    /// The patch's approval under the device's policy.
    pub approval: Option<ApprovalView>,
    /// The rollout of the patch under the device's policy, and the device's ring in it.
    pub rollout: Option<RolloutStanding>,
    /// The device's plan entry for it (`spec.plan.install`).
    pub plan: Option<PlanEntry>,
    /// What the operator's pass at this instant writes to that entry, if anything.
    pub next_write: Option<PlanWrite>,
    /// The device's attempts at it.
    pub last_attempt: Option<LastAttempt>,
}

/// A pair's SLA clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockView {
    /// Where the pair stands against its deadline.
    pub state: ClockState,
    /// The deadline, when the policy sets one.
    pub deadline: Option<Timestamp>,
    /// Counted in the SLA figures (neither rejected nor superseded).
    pub counted: bool,
}

/// An exception that names a device and a patch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionCoverage {
    /// The exception.
    pub name: String,
    /// Its phase.
    pub phase: Option<ExceptionPhase>,
    /// It is the exception that keeps the pair from being assigned now (or stops its
    /// clock).
    pub covers: bool,
    /// When it expires.
    pub expires_at: Timestamp,
    /// Who is accountable for it.
    pub owner: String,
    /// Its status's words (why it is in its phase).
    pub message: Option<String>,
}

/// Where a patch's approval stands under a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApprovalStanding {
    /// Approved.
    Approved,
    /// A rule approves it once its delay has passed.
    Scheduled,
    /// A person must approve it.
    AwaitingManual,
    /// Rejected.
    Rejected,
    /// Approved, but held: it fails too often across the policy's fleet.
    Held,
}

/// A patch's approval under the device's policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalView {
    /// Where it stands.
    pub state: ApprovalStanding,
    /// The rule (by name) or list that decided.
    pub by: Option<String>,
    /// When it was approved, or will be (Scheduled).
    pub at: Option<Timestamp>,
    /// Approved by an emergency rule.
    pub emergency: bool,
    /// Why it is held or rejected.
    pub reason: Option<String>,
    /// The approved patch that replaces it, if one does.
    pub superseded_by: Option<String>,
}

/// The rollout of a device's patch, and the device's ring in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStanding {
    /// The rollout.
    pub name: String,
    /// Whether it exists (false: the operator's pass at this instant creates it).
    pub exists: bool,
    /// Its phase.
    pub phase: Option<RolloutPhase>,
    /// What it waits for, in words.
    pub message: Option<String>,
    /// `spec.paused`.
    pub paused: bool,
    /// Why it halted, when it did (`ring <ring> halted: <why>`).
    pub halt: Option<String>,
    /// The policy's change freeze in force.
    pub policy_freeze: Option<String>,
    /// The device's ring in it.
    pub ring: Option<RingStanding>,
}

/// One ring of a rollout, as a device of it sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RingStanding {
    /// The ring.
    pub name: String,
    /// Its phase in the rollout.
    pub phase: RingPhase,
    /// What it waits for, in words.
    pub waiting_for: Option<String>,
    /// Targeted devices with it installed.
    pub installed: u32,
    /// Devices targeted.
    pub targeted: u32,
    /// Its promotion gates that fail.
    pub failed_gates: Vec<GateResult>,
    /// Its maintenance window now (`Open until …`, `Opens …`, `Always`).
    pub window: Option<String>,
    /// Its own change freeze in force.
    pub freeze: Option<String>,
}

/// What a pass writes to a plan entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanWrite {
    /// The entry set, or None when the entry is removed.
    pub entry: Option<PlanEntry>,
}

/// A device's attempts at a patch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastAttempt {
    /// Attempts made so far.
    pub attempts: u32,
    /// When the last started.
    pub at: Option<Timestamp>,
    /// Whether it failed.
    pub failed: bool,
    /// The installer's last word.
    pub message: Option<String>,
}

/// Why a device has (or has no) plan entry for `patch`, or for each applicable patch
/// it has not installed, at `now`.
pub fn why_device(
    objects: &Objects,
    device: &str,
    patch: Option<&str>,
    now: Timestamp,
) -> Result<WhyDevice, WhyError> {
    let namespace = objects.namespace.clone();
    let dev = objects
        .devices
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some(device))
        .ok_or_else(|| WhyError::DeviceNotFound {
            namespace: namespace.clone(),
            device: device.to_string(),
        })?;
    let reports = dev.status.as_ref().map_or(&[][..], |s| &s.patches[..]);
    let asked = match patch {
        Some(p) => vec![
            find_report(reports, p).ok_or_else(|| WhyError::PatchNotApplicable {
                namespace: namespace.clone(),
                device: device.to_string(),
                patch: p.to_string(),
            })?,
        ],
        None => first_reports(reports),
    };
    let pass = Pass::run(objects, now);
    let snapshot = objects.snapshot();
    let rows: Vec<Row<'_>> = ledger::ledger(&snapshot, now)
        .into_iter()
        .filter(|r| r.device.metadata.name.as_deref() == Some(device))
        .collect();
    let governance = governance(&pass, dev);
    let mut patches = Vec::new();
    let mut installed_not_listed = 0;
    for report in asked {
        let row = rows.iter().find(|r| r.report.id == report.id);
        let why = pair(&pass, dev, &governance, report, row);
        if patch.is_none() && why.reason == PairReason::Installed {
            installed_not_listed += 1;
            continue;
        }
        patches.push(why);
    }
    Ok(WhyDevice {
        namespace,
        device: device.to_string(),
        at: now,
        last_seen: pass.last_seen(dev),
        unreachable: pass.unreachable(dev),
        governance,
        patches,
        installed_not_listed,
    })
}

/// The device's report of a patch: by exact id, else ignoring case.
fn find_report<'d>(reports: &'d [DevicePatchStatus], id: &str) -> Option<&'d DevicePatchStatus> {
    reports
        .iter()
        .find(|r| r.id == id)
        .or_else(|| reports.iter().find(|r| r.id.eq_ignore_ascii_case(id)))
}

/// Each patch's first report, in report order.
fn first_reports(reports: &[DevicePatchStatus]) -> Vec<&DevicePatchStatus> {
    let mut seen = std::collections::BTreeSet::new();
    reports
        .iter()
        .filter(|r| seen.insert(r.id.as_str()))
        .collect()
}

fn governance(pass: &Pass<'_>, dev: &ManagedDevice) -> Governance {
    let c = pass.compliance(dev).cloned().unwrap_or_default();
    let name = dev.metadata.name.as_deref().unwrap_or("");
    let labels = dev.metadata.labels.clone().unwrap_or_default();
    let conflict = conflicting(pass, name);
    let selectors = match (&c.policy, &c.ring) {
        (None, _) => policy_selectors(pass, &labels),
        (Some(p), None) => ring_selectors(pass, p, &labels),
        _ => Vec::new(),
    };
    Governance {
        policy: c.policy,
        ring: c.ring,
        tier: c.tier,
        conflict,
        message: c.message,
        labels,
        selectors,
    }
}

/// The policies whose statuses list the device as claimed at the same priority.
fn conflicting(pass: &Pass<'_>, device: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in &pass.objects().policies {
        let Some(name) = p.metadata.name.as_deref() else {
            continue;
        };
        let Some(s) = pass.policy_status(name) else {
            continue;
        };
        for c in s.conflicts.iter().filter(|c| c.device == device) {
            for n in std::iter::once(name).chain(c.policies.iter().map(String::as_str)) {
                if !out.iter().any(|o| o == n) {
                    out.push(n.to_string());
                }
            }
        }
    }
    out.sort();
    out
}

fn policy_selectors(pass: &Pass<'_>, labels: &BTreeMap<String, String>) -> Vec<SelectorMatch> {
    pass.objects()
        .policies
        .iter()
        .map(|p| {
            let name = p.metadata.name.clone().unwrap_or_default();
            selector_match(
                SelectorOf::PatchPolicy,
                name,
                Some(&p.spec.device_selector),
                labels,
            )
        })
        .collect()
}

fn ring_selectors(
    pass: &Pass<'_>,
    policy: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<SelectorMatch> {
    let Some(p) = pass
        .objects()
        .policies
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(policy))
    else {
        return Vec::new();
    };
    p.spec
        .rings
        .iter()
        .map(|r| {
            let sel = pass.ring(r).map(|r| &r.spec.device_selector);
            selector_match(SelectorOf::DeploymentRing, r.clone(), sel, labels)
        })
        .collect()
}

fn selector_match(
    kind: SelectorOf,
    name: String,
    sel: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> SelectorMatch {
    let Some(sel) = sel else {
        return SelectorMatch {
            kind,
            name,
            selector: String::new(),
            matches: false,
            problem: Some("not found".into()),
        };
    };
    let (matches, problem) = match Selector::compile(sel) {
        Ok(s) => (s.matches(Some(labels)), None),
        Err(e) => (false, Some(e.to_string())),
    };
    SelectorMatch {
        kind,
        name,
        selector: selector_text(sel),
        matches,
        problem,
    }
}

/// A label selector as `kubectl` writes one.
fn selector_text(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => format!("{} {other} ({values})", e.key),
        });
    }
    if parts.is_empty() {
        "(everything)".into()
    } else {
        parts.join(",")
    }
}

/// One pair: the ledger's reason, or why the ledger has no row for it.
fn pair(
    pass: &Pass<'_>,
    dev: &ManagedDevice,
    gov: &Governance,
    report: &DevicePatchStatus,
    row: Option<&Row<'_>>,
) -> PatchWhy {
    let report = row.map_or(report, |r| r.report);
    let reason = match row {
        Some(r) => r
            .why
            .as_ref()
            .map_or(PairReason::Installed, |w| PairReason::Unpatched(w.reason)),
        // The ledger counts every reported patch the catalog knows on a governed device.
        None if report.state == PatchState::Installed => PairReason::Installed,
        None if !gov.conflict.is_empty() || is_conflict(gov) => PairReason::PolicyConflict,
        None if gov.policy.is_none() => PairReason::NoPolicy,
        None => PairReason::NotInCatalog,
    };
    let policy = row.map(|r| r.policy).or(gov.policy.as_deref());
    let rollout = policy.and_then(|p| pass.rollout_of(p, &report.id));
    let mut why = PatchWhy {
        patch: report.id.clone(),
        state: report.state,
        reason,
        summary: String::new(),
        detail: row
            .and_then(|r| r.why.as_ref())
            .and_then(|w| w.detail.clone()),
        severity: row.map(|r| r.severity),
        clock: row.map(|r| ClockView {
            state: r.clock.state,
            deadline: r.clock.deadline,
            counted: r.counted,
        }),
        exceptions: exception_coverage(pass, dev, &report.id, row),
        approval: policy.and_then(|p| approval_view(pass, p, &report.id, rollout.as_ref(), row)),
        rollout: rollout
            .as_ref()
            .map(|r| standing(pass, r, row.and_then(|r| r.ring))),
        plan: dev.spec.plan.install.get(&report.id).cloned(),
        next_write: next_write(pass, dev, &report.id),
        last_attempt: last_attempt(report),
    };
    why.summary = summary(&why, gov);
    why
}

/// Whether the device's summary says policies conflict over it (the policies' statuses
/// list only their first conflicts).
fn is_conflict(gov: &Governance) -> bool {
    gov.policy.is_none()
        && gov
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("conflict"))
}

/// The exceptions that name the device and the patch (the engine's `covers`), with
/// their phases as the pass decides them.
fn exception_coverage(
    pass: &Pass<'_>,
    dev: &ManagedDevice,
    patch: &str,
    row: Option<&Row<'_>>,
) -> Vec<ExceptionCoverage> {
    let objects = pass.objects();
    let limits = Limits::combined(objects.policies.iter());
    let name = dev.metadata.name.as_deref().unwrap_or("");
    let labels = dev.metadata.labels.as_ref();
    let covering = row
        .and_then(|r| r.why.as_ref())
        .and_then(|w| w.exception.as_deref());
    objects
        .exceptions
        .iter()
        .filter_map(|e| {
            // Only the compiled selector of this evaluation is used: the phase is the
            // pass's.
            let eval = exceptions::evaluate(e, &limits, |_| None, pass.now());
            if !exceptions::covers(e, &eval, name, labels, patch) {
                return None;
            }
            let ename = e.metadata.name.clone().unwrap_or_default();
            let s = pass.exception_status(&ename);
            Some(ExceptionCoverage {
                covers: covering == Some(ename.as_str()),
                phase: s.and_then(|s| s.phase),
                expires_at: e.spec.expires_at,
                owner: e.spec.owner.clone(),
                message: s.and_then(|s| s.message.clone()),
                name: ename,
            })
        })
        .collect()
}

/// The patch's approval under the policy: the rollout's record when it has one (held
/// and rejected included), else the policy's rules at this instant.
fn approval_view(
    pass: &Pass<'_>,
    policy: &str,
    patch: &str,
    rollout: Option<&RolloutRef<'_>>,
    row: Option<&Row<'_>>,
) -> Option<ApprovalView> {
    let superseded_by = row
        .and_then(|r| r.why.as_ref())
        .filter(|w| w.reason == Unpatched::Superseded)
        .and_then(|w| w.detail.clone());
    if let Some(rec) = rollout
        .and_then(|r| r.status)
        .and_then(|s| s.approval.as_ref())
    {
        return Some(from_record(rec, superseded_by));
    }
    let p = pass
        .objects()
        .policies
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(policy))?;
    let catalog = pass.objects().patches.iter().find(|c| c.spec.id == patch)?;
    let people = approval::decided_for(pass.objects().approvals.iter(), policy);
    let (state, by, at, emergency) = match approval::evaluate(&p.spec, &people, catalog, pass.now())
    {
        Approval::Approved { at, by, emergency } => (ApprovalStanding::Approved, by, at, emergency),
        Approval::Scheduled { at, by } => (ApprovalStanding::Scheduled, by, Some(at), false),
        Approval::AwaitingManual { by } => (ApprovalStanding::AwaitingManual, by, None, false),
        Approval::Rejected { by } => (ApprovalStanding::Rejected, by, None, false),
    };
    Some(ApprovalView {
        state,
        by: Some(by),
        at,
        emergency,
        reason: None,
        superseded_by,
    })
}

fn from_record(rec: &ApprovalRecord, superseded_by: Option<String>) -> ApprovalView {
    ApprovalView {
        state: match rec.state {
            ApprovalState::Approved => ApprovalStanding::Approved,
            ApprovalState::Held => ApprovalStanding::Held,
            ApprovalState::Rejected => ApprovalStanding::Rejected,
        },
        by: rec.by.clone(),
        at: rec.approved_at,
        emergency: rec.emergency,
        reason: rec.reason.clone(),
        superseded_by,
    }
}

fn standing(pass: &Pass<'_>, r: &RolloutRef<'_>, ring: Option<&str>) -> RolloutStanding {
    let policy_freeze = pass
        .policy_status(&r.spec.policy)
        .and_then(|s| s.freeze.clone());
    let ring = ring.and_then(|ring| {
        let p = r.status?.rings.iter().find(|p| p.name == ring)?;
        let rs = pass.ring_status(ring);
        Some(RingStanding {
            name: p.name.clone(),
            phase: p.phase,
            waiting_for: p.waiting_for.clone(),
            installed: p.installed,
            targeted: p.targeted,
            failed_gates: p.gates.iter().filter(|g| !g.passed).cloned().collect(),
            window: rs.and_then(|s| s.window.clone()),
            freeze: rs.and_then(|s| s.freeze.clone()),
        })
    });
    RolloutStanding {
        name: r.name.to_string(),
        exists: r.exists,
        phase: r.status.and_then(|s| s.phase),
        message: r.status.and_then(|s| s.message.clone()),
        paused: r.spec.paused,
        halt: r.status.and_then(halt_words),
        policy_freeze,
        ring,
    }
}

/// What the pass writes to the device's install entry for the patch.
fn next_write(pass: &Pass<'_>, dev: &ManagedDevice, patch: &str) -> Option<PlanWrite> {
    let name = dev.metadata.name.as_deref()?;
    pass.decisions()
        .plan
        .iter()
        .find(|c| c.device == name && c.patch == patch && c.list == PlanList::Install)
        .map(|c| PlanWrite {
            entry: c.entry.clone(),
        })
}

fn last_attempt(report: &DevicePatchStatus) -> Option<LastAttempt> {
    (report.attempts > 0 || report.last_attempt_at.is_some()).then(|| LastAttempt {
        attempts: report.attempts,
        at: report.last_attempt_at,
        failed: report.state == PatchState::Failed,
        message: report.message.clone(),
    })
}

/// The answer in one sentence, from the reason and the engine's words behind it.
fn summary(w: &PatchWhy, gov: &Governance) -> String {
    let detail = w.detail.as_deref().unwrap_or("");
    let rollout = w.rollout.as_ref();
    let ring_words = || rollout.and_then(|r| r.ring.as_ref()?.waiting_for.clone());
    let rollout_name = rollout.map_or("", |r| r.name.as_str());
    let gov_words = || gov.message.clone().unwrap_or_default();
    let u = match w.reason {
        PairReason::Installed => return "installed".into(),
        PairReason::NoPolicy | PairReason::PolicyConflict => return gov_words(),
        PairReason::NotInCatalog => {
            return format!(
                "the catalog has no Patch {}: no policy can approve it",
                w.patch
            );
        }
        PairReason::Unpatched(u) => u,
    };
    match u {
        Unpatched::Exception => exception_words(w, detail),
        Unpatched::NotInRing => gov_words(),
        Unpatched::AwaitingApproval => format!("not approved yet: {detail}"),
        Unpatched::AwaitingManualApproval => format!(
            "waiting for a person to approve it ({detail}): add it to spec.approval.approve of PatchPolicy {}",
            gov.policy.as_deref().unwrap_or("?")
        ),
        Unpatched::Rejected => format!("rejected by {detail}"),
        Unpatched::Superseded => format!("superseded by {detail}, which is approved"),
        Unpatched::Held => format!("rollout {rollout_name} is held: {detail}"),
        Unpatched::Aborted => format!("rollout {rollout_name} was aborted: {detail}"),
        Unpatched::Halted => halted_words(w, detail),
        Unpatched::Paused => format!("rollout {rollout_name} is paused (spec.paused)"),
        Unpatched::DeviceUnreachable => {
            format!("the device is unreachable ({detail}): it is given no new work")
        }
        Unpatched::Failed => format!("its last attempt failed: {detail}"),
        Unpatched::Installing => installing_words(w, detail),
        Unpatched::WaitingForWindow => waiting_words(w, ring_words(), detail),
        Unpatched::WaitingForRing => {
            ring_words().unwrap_or_else(|| format!("waiting for ring {detail} to pass"))
        }
    }
}

fn exception_words(w: &PatchWhy, name: &str) -> String {
    match w.exceptions.iter().find(|e| e.name == name) {
        Some(e) => format!(
            "covered by exception {name} ({}, expires {})",
            e.phase.map_or("-".into(), |p| phase_name(&p)),
            when(e.expires_at)
        ),
        None => format!("covered by exception {name}"),
    }
}

fn halted_words(w: &PatchWhy, ring: &str) -> String {
    let r = w.rollout.as_ref();
    let name = r.map_or("", |r| r.name.as_str());
    let phase = r
        .and_then(|r| r.phase)
        .map_or("halted".into(), |p| phase_name(&p));
    match r.and_then(|r| r.halt.as_deref()) {
        Some(halt) => format!("rollout {name} is {phase}: {halt}"),
        None => format!("rollout {name} is {phase}: ring {ring} halted"),
    }
}

fn installing_words(w: &PatchWhy, detail: &str) -> String {
    let mut s = match &w.plan {
        Some(e) => format!(
            "given the patch by rollout {} (from {}{}); not finished",
            e.rollout,
            when(e.not_before),
            e.not_after
                .map(|t| format!(" until {}", when(t)))
                .unwrap_or_default()
        ),
        None => "given the patch; not finished".to_string(),
    };
    if !detail.is_empty() {
        let _ = write!(s, ": {detail}");
    }
    s
}

fn waiting_words(w: &PatchWhy, ring: Option<String>, detail: &str) -> String {
    if let Some(PlanWrite { entry: Some(e) }) = &w.next_write {
        return format!(
            "admitted by the operator's pass at this instant (rollout {}, window until {})",
            e.rollout,
            e.not_after.map_or("-".into(), when)
        );
    }
    if !detail.is_empty() {
        return detail.to_string();
    }
    ring.unwrap_or_else(|| "waiting for its maintenance window, a slot or a freeze to end".into())
}

/// Why a rollout's rings stand as they do: the `why rollout` output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WhyRollout {
    /// The tenant (namespace).
    pub namespace: String,
    /// The rollout.
    pub rollout: String,
    /// The instant of the answer.
    pub at: Timestamp,
    /// Whether it exists (false: the operator's pass at this instant creates it).
    pub exists: bool,
    /// Its policy.
    pub policy: String,
    /// Its patch id.
    pub patch: String,
    /// Its phase.
    pub phase: Option<RolloutPhase>,
    /// What it waits for, in words.
    pub message: Option<String>,
    /// How the patch was approved, and whether it is held or rejected.
    pub approval: Option<ApprovalRecord>,
    /// The levers a person holds.
    pub levers: Levers,
    /// The policy's change freeze in force.
    pub policy_freeze: Option<String>,
    /// The ring being deployed.
    pub current_ring: Option<String>,
    /// The ring asked about, or every ring in order.
    pub rings: Vec<RingWhy>,
    /// Its latest history entries, oldest first (at most [`RECENT_HISTORY`]).
    pub recent: Vec<RolloutHistoryEntry>,
}

/// A rollout's levers (`spec`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Levers {
    /// `spec.paused`.
    pub paused: bool,
    /// `spec.abort`.
    pub abort: bool,
    /// `spec.promote`: rings a person promoted.
    pub promote: Vec<String>,
}

/// Why one ring of a rollout stands as it does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RingWhy {
    /// The ring.
    pub name: String,
    /// Its phase in the rollout.
    pub phase: RingPhase,
    /// Why it is not moving (or that it passed), in one sentence.
    pub verdict: String,
    /// What it waits for, in the operator's words.
    pub waiting_for: Option<String>,
    /// Its devices by standing.
    pub counts: RingCounts,
    /// Its promotion gates (while soaking, and on the pass that halts it).
    pub gates: Vec<GateResult>,
    /// When its soak ends (or ended), read from the soak gate.
    pub soak_ends_at: Option<Timestamp>,
    /// Its maintenance window now (`Open until …`, `Opens …`, `Always`).
    pub window: Option<String>,
    /// Its own change freeze in force.
    pub freeze: Option<String>,
    /// Its `maxConcurrent`, as written.
    pub max_concurrent: Option<String>,
    /// A person listed it in `spec.promote`.
    pub promoted: bool,
    /// When it started deploying.
    pub started_at: Option<Timestamp>,
    /// When its last install finished.
    pub last_install_at: Option<Timestamp>,
    /// When it passed.
    pub passed_at: Option<Timestamp>,
    /// When it halted.
    pub halted_at: Option<Timestamp>,
}

/// A ring's devices by standing in a rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RingCounts {
    /// Devices that report the patch applicable, less those excepted.
    pub targeted: u32,
    /// Installed.
    pub installed: u32,
    /// Failed (timed out included).
    pub failed: u32,
    /// Failed by timing out.
    pub timed_out: u32,
    /// Admitted and not finished.
    pub in_progress: u32,
    /// Not admitted yet.
    pub waiting: u32,
    /// Covered by an active exception.
    pub excepted: u32,
    /// Not seen for the ring's `unreachableAfter`.
    pub unreachable: u32,
    /// Uninstalled by a rollback.
    pub rolled_back: u32,
}

/// Why `rollout`'s `ring` (or each of its rings) stands as it does at `now`.
pub fn why_rollout(
    objects: &Objects,
    rollout: &str,
    ring: Option<&str>,
    now: Timestamp,
) -> Result<WhyRollout, WhyError> {
    let namespace = objects.namespace.clone();
    let pass = Pass::run(objects, now);
    let r = pass
        .rollout(rollout)
        .ok_or_else(|| WhyError::RolloutNotFound {
            namespace: namespace.clone(),
            rollout: rollout.to_string(),
        })?;
    let progress: &[RingProgress] = r.status.map_or(&[], |s| &s.rings);
    let chosen: Vec<&RingProgress> = match ring {
        Some(name) => vec![progress.iter().find(|p| p.name == name).ok_or_else(|| {
            WhyError::RingNotInRollout {
                namespace: namespace.clone(),
                rollout: rollout.to_string(),
                ring: name.to_string(),
                rings: progress.iter().map(|p| p.name.clone()).collect(),
            }
        })?],
        None => progress.iter().collect(),
    };
    let rings = chosen.into_iter().map(|p| ring_why(&pass, &r, p)).collect();
    let history = r.status.map_or(&[][..], |s| &s.history[..]);
    Ok(WhyRollout {
        namespace,
        rollout: rollout.to_string(),
        at: now,
        exists: r.exists,
        policy: r.spec.policy.clone(),
        patch: r.spec.patch.clone(),
        phase: r.status.and_then(|s| s.phase),
        message: r.status.and_then(|s| s.message.clone()),
        approval: r.status.and_then(|s| s.approval.clone()),
        levers: Levers {
            paused: r.spec.paused,
            abort: r.spec.abort,
            promote: r.spec.promote.clone(),
        },
        policy_freeze: pass
            .policy_status(&r.spec.policy)
            .and_then(|s| s.freeze.clone()),
        current_ring: r.status.and_then(|s| s.current_ring.clone()),
        rings,
        recent: history[history.len().saturating_sub(RECENT_HISTORY)..].to_vec(),
    })
}

fn ring_why(pass: &Pass<'_>, r: &RolloutRef<'_>, p: &RingProgress) -> RingWhy {
    let rs = pass.ring_status(&p.name);
    let spec = pass.ring(&p.name).map(|r| &r.spec);
    RingWhy {
        name: p.name.clone(),
        phase: p.phase,
        verdict: verdict(r, p),
        waiting_for: p.waiting_for.clone(),
        counts: RingCounts {
            targeted: p.targeted,
            installed: p.installed,
            failed: p.failed,
            timed_out: p.timed_out,
            in_progress: p.in_progress,
            waiting: p.waiting,
            excepted: p.excepted,
            unreachable: p.unreachable,
            rolled_back: p.rolled_back,
        },
        gates: p.gates.clone(),
        soak_ends_at: soak_end(&p.gates),
        window: rs.and_then(|s| s.window.clone()),
        freeze: rs.and_then(|s| s.freeze.clone()),
        max_concurrent: spec.map(|s| match &s.max_concurrent {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
        }),
        promoted: r.spec.promote.iter().any(|n| n == &p.name),
        started_at: p.started_at,
        last_install_at: p.last_install_at,
        passed_at: p.passed_at,
        halted_at: p.halted_at,
    }
}

/// The instant the soak gate names (`soak of 2d ends at <instant>` or `… done at
/// <instant>`): the status has it only in the gate's words.
fn soak_end(gates: &[GateResult]) -> Option<Timestamp> {
    let g = gates.iter().find(|g| g.name == "soak")?;
    g.message.rsplit(' ').next()?.parse().ok()
}

/// Why a ring is not moving, in one sentence of the operator's words: the rollout's
/// state when it stops every ring, else the ring's own.
fn verdict(r: &RolloutRef<'_>, p: &RingProgress) -> String {
    let s = r.status;
    let message = || s.and_then(|s| s.message.clone());
    let phase = s.and_then(|s| s.phase);
    let held = || {
        s.and_then(|s| s.approval.as_ref())
            .and_then(|a| a.reason.clone())
            .map(|why| format!("held: {why}"))
    };
    let own = || p.waiting_for.clone();
    let words = match (phase, p.phase) {
        (Some(RolloutPhase::Aborted), _) => message(),
        (_, RingPhase::Passed) => Some(match (p.passed_at, own()) {
            (Some(at), Some(w)) => format!("passed at {}; {w}", when(at)),
            (Some(at), None) => format!("passed at {}", when(at)),
            (None, w) => w.unwrap_or_else(|| "passed".into()),
        }),
        (Some(RolloutPhase::Held), _) => held().or_else(own),
        (Some(RolloutPhase::RollingBack | RolloutPhase::RolledBack), _) => {
            own().or_else(|| s.and_then(halt_words)).or_else(message)
        }
        (_, RingPhase::Halted) => own().or_else(|| s.and_then(halt_words)),
        _ => own(),
    };
    words
        .or_else(message)
        .unwrap_or_else(|| phase_name(&p.phase))
}

/// The answer for a device, as text for a person; coloured only when `color` is set.
pub fn render_why_device(view: &WhyDevice, color: bool) -> String {
    let mut out = String::new();
    device_header(&mut out, view, color);
    if view.patches.is_empty() {
        let _ = writeln!(
            out,
            "\n{}",
            paint(
                &format!(
                    "Nothing to explain: its {} applicable patch(es) are installed.",
                    view.installed_not_listed
                ),
                Tone::Good,
                color
            )
        );
        return out;
    }
    for p in &view.patches {
        out.push('\n');
        patch_block(&mut out, p, view.at, color);
    }
    if view.installed_not_listed > 0 {
        let _ = writeln!(
            out,
            "\n({} installed patch(es) not listed)",
            view.installed_not_listed
        );
    }
    out
}

fn device_header(out: &mut String, v: &WhyDevice, color: bool) {
    let seen = match v.last_seen {
        Some(t) => format!("last seen {}", when_relative(t, v.at)),
        None => "never checked in".into(),
    };
    let reach = if v.unreachable {
        format!(", {}", paint("unreachable", Tone::Bad, color))
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "ManagedDevice {}/{} at {}: {seen}{reach}",
        v.namespace,
        v.device,
        when(v.at)
    );
    let g = &v.governance;
    let mut kv = Table::new(Vec::<String>::new());
    kv.row([
        "policy".to_string(),
        g.policy.clone().unwrap_or_else(|| "none".into()),
    ]);
    kv.row([
        "ring".to_string(),
        g.ring.clone().unwrap_or_else(|| "none".into()),
    ]);
    if let Some(t) = &g.tier {
        kv.row(["tier".to_string(), t.clone()]);
    }
    if !g.conflict.is_empty() {
        kv.row(["conflict".to_string(), g.conflict.join(", ")]);
    }
    if let Some(m) = &g.message {
        kv.toned([("why".to_string(), Tone::Plain), (m.clone(), Tone::Warn)]);
    }
    out.push_str(&kv.render(2, color));
    if !g.selectors.is_empty() {
        let labels: Vec<String> = g.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "  labels   {}", labels.join(","));
        let mut t = Table::new(["SELECTOR OF", "SELECTOR", "MATCHES"]);
        for s in &g.selectors {
            let kind = match s.kind {
                SelectorOf::PatchPolicy => "ppol",
                SelectorOf::DeploymentRing => "ring",
            };
            let matches = match &s.problem {
                Some(p) => (format!("no ({p})"), Tone::Bad),
                None if s.matches => ("yes".into(), Tone::Good),
                None => ("no".into(), Tone::Plain),
            };
            t.toned([
                (format!("{kind}/{}", s.name), Tone::Plain),
                (s.selector.clone(), Tone::Plain),
                matches,
            ]);
        }
        out.push_str(&t.render(2, color));
    }
}

fn pair_tone(r: PairReason) -> Tone {
    match r {
        PairReason::Installed => Tone::Good,
        PairReason::Unpatched(
            Unpatched::Halted
            | Unpatched::Aborted
            | Unpatched::Failed
            | Unpatched::DeviceUnreachable
            | Unpatched::Rejected,
        )
        | PairReason::PolicyConflict => Tone::Bad,
        _ => Tone::Warn,
    }
}

fn patch_block(out: &mut String, p: &PatchWhy, now: Timestamp, color: bool) {
    let _ = writeln!(
        out,
        "{}   {}   {}",
        p.patch,
        phase_name(&p.state),
        paint(p.reason.as_str(), pair_tone(p.reason), color)
    );
    let mut kv = Table::new(Vec::<String>::new());
    kv.row(["why".to_string(), p.summary.clone()]);
    if let Some(c) = &p.clock {
        let tone = match c.state {
            ClockState::Overdue => Tone::Bad,
            ClockState::DueSoon => Tone::Warn,
            _ => Tone::Plain,
        };
        let deadline = c.deadline.map_or("no deadline".into(), |d| {
            format!("deadline {}", when_relative(d, now))
        });
        let severity = p.severity.map_or(String::new(), |s| format!(", {s}"));
        let counted = if c.counted { "" } else { " (not counted)" };
        kv.toned([
            ("sla".to_string(), Tone::Plain),
            (
                format!("{}, {deadline}{severity}{counted}", c.state.as_str()),
                tone,
            ),
        ]);
    }
    if let Some(a) = &p.approval {
        kv.row(["approval".to_string(), approval_words(a, now)]);
    }
    for e in &p.exceptions {
        kv.row(["exception".to_string(), coverage_words(e, now)]);
    }
    if let Some(r) = &p.rollout {
        rollout_rows(&mut kv, r);
    }
    kv.row(["plan".to_string(), plan_words(p, now)]);
    if let Some(a) = &p.last_attempt {
        let at = a.at.map_or(String::new(), |t| {
            format!(", last {}", when_relative(t, now))
        });
        let failed = if a.failed {
            format!(", failed: {}", a.message.as_deref().unwrap_or("-"))
        } else {
            String::new()
        };
        kv.row([
            "attempts".to_string(),
            format!("{}{at}{failed}", a.attempts),
        ]);
    }
    out.push_str(&kv.render(2, color));
}

fn approval_words(a: &ApprovalView, now: Timestamp) -> String {
    let mut s = phase_name(&a.state);
    if let Some(by) = &a.by {
        let _ = write!(s, " by {by}");
    }
    if let Some(at) = a.at {
        let _ = write!(s, " at {}", when_relative(at, now));
    }
    if a.emergency {
        s.push_str(" (emergency)");
    }
    if let Some(r) = &a.reason {
        let _ = write!(s, ": {r}");
    }
    if let Some(by) = &a.superseded_by {
        let _ = write!(s, "; superseded by {by}");
    }
    s
}

fn coverage_words(e: &ExceptionCoverage, now: Timestamp) -> String {
    let phase = e.phase.map_or("-".into(), |p| phase_name(&p));
    let covers = if e.covers {
        "covers it"
    } else {
        "does not cover it now"
    };
    format!(
        "{} ({phase}, {covers}, expires {}, owner {}){}",
        e.name,
        when_relative(e.expires_at, now),
        e.owner,
        e.message
            .as_ref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    )
}

fn rollout_rows(kv: &mut Table, r: &RolloutStanding) {
    let phase = r.phase.map_or("-".into(), |p| phase_name(&p));
    let created = if r.exists {
        ""
    } else {
        " (created at this pass)"
    };
    let paused = if r.paused { ", spec.paused" } else { "" };
    kv.toned([
        ("rollout".to_string(), Tone::Plain),
        (
            format!("{} {phase}{created}{paused}", r.name),
            rollout_tone(r.phase),
        ),
    ]);
    if let Some(f) = &r.policy_freeze {
        kv.row(["freeze".to_string(), format!("policy: {f}")]);
    }
    let Some(g) = &r.ring else { return };
    let waiting = g
        .waiting_for
        .as_ref()
        .map(|w| format!(": {w}"))
        .unwrap_or_default();
    kv.toned([
        ("ring".to_string(), Tone::Plain),
        (
            format!(
                "{} {} {}/{}{waiting}",
                g.name,
                phase_name(&g.phase),
                g.installed,
                g.targeted
            ),
            ring_tone(g.phase),
        ),
    ]);
    for gate in &g.failed_gates {
        kv.toned([
            ("gate".to_string(), Tone::Plain),
            (format!("{} failed: {}", gate.name, gate.message), Tone::Bad),
        ]);
    }
    if let Some(w) = &g.window {
        kv.row(["window".to_string(), w.clone()]);
    }
    if let Some(f) = &g.freeze {
        kv.row(["freeze".to_string(), format!("ring: {f}")]);
    }
}

fn plan_words(p: &PatchWhy, now: Timestamp) -> String {
    let entry = |e: &PlanEntry| {
        format!(
            "rollout {}, from {}{}",
            e.rollout,
            when_relative(e.not_before, now),
            e.not_after
                .map(|t| format!(" until {}", when(t)))
                .unwrap_or_default()
        )
    };
    let mut s = p.plan.as_ref().map_or("no entry".into(), entry);
    match &p.next_write {
        Some(PlanWrite { entry: Some(e) }) => {
            let _ = write!(s, "; this pass sets: {}", entry(e));
        }
        Some(PlanWrite { entry: None }) => s.push_str("; this pass removes it"),
        None => {}
    }
    s
}

/// The answer for a rollout, as text for a person; coloured only when `color` is set.
pub fn render_why_rollout(view: &WhyRollout, color: bool) -> String {
    let mut out = String::new();
    let phase = view.phase.map_or("-".into(), |p| phase_name(&p));
    let created = if view.exists {
        ""
    } else {
        " (created at this pass)"
    };
    let _ = writeln!(
        out,
        "PatchRollout {}/{} at {}: {}{created}, patch {}, policy {}",
        view.namespace,
        view.rollout,
        when(view.at),
        paint(&phase, rollout_tone(view.phase), color),
        view.patch,
        view.policy
    );
    let mut kv = Table::new(Vec::<String>::new());
    if let Some(m) = &view.message {
        kv.row(["message".to_string(), m.clone()]);
    }
    if let Some(a) = &view.approval {
        let approval = from_record(a, None);
        kv.row(["approval".to_string(), approval_words(&approval, view.at)]);
    }
    let l = &view.levers;
    kv.row([
        "levers".to_string(),
        format!(
            "paused={} abort={} promote=[{}]",
            l.paused,
            l.abort,
            l.promote.join(",")
        ),
    ]);
    if let Some(f) = &view.policy_freeze {
        kv.toned([
            ("freeze".to_string(), Tone::Plain),
            (format!("policy: {f}"), Tone::Warn),
        ]);
    }
    out.push_str(&kv.render(2, color));
    rings_table(&mut out, view, color);
    for r in &view.rings {
        ring_detail(&mut out, r, view.at, color);
    }
    if !view.recent.is_empty() {
        let _ = writeln!(out, "\nRECENT");
        let mut t = Table::new(["AT", "REASON", "RING", "MESSAGE"]);
        for h in &view.recent {
            t.row([
                when(h.at),
                phase_name(&h.reason),
                h.ring.clone().unwrap_or_else(|| "-".into()),
                h.message.clone(),
            ]);
        }
        out.push_str(&t.render(0, color));
    }
    out
}

fn rings_table(out: &mut String, view: &WhyRollout, color: bool) {
    if view.rings.is_empty() {
        let _ = writeln!(out, "\nNo ring has been decided yet.");
        return;
    }
    out.push('\n');
    let mut t = Table::new([
        "RING",
        "PHASE",
        "INSTALLED",
        "FAILED",
        "IN-PROGRESS",
        "WAITING",
        "EXCEPTED",
        "UNREACHABLE",
        "WHY",
    ]);
    for r in &view.rings {
        let c = &r.counts;
        let current = view.current_ring.as_deref() == Some(r.name.as_str());
        t.toned([
            (
                format!("{}{}", r.name, if current { " *" } else { "" }),
                Tone::Plain,
            ),
            (phase_name(&r.phase), ring_tone(r.phase)),
            (format!("{}/{}", c.installed, c.targeted), Tone::Plain),
            (
                c.failed.to_string(),
                if c.failed > 0 { Tone::Bad } else { Tone::Plain },
            ),
            (c.in_progress.to_string(), Tone::Plain),
            (c.waiting.to_string(), Tone::Plain),
            (c.excepted.to_string(), Tone::Plain),
            (
                c.unreachable.to_string(),
                if c.unreachable > 0 {
                    Tone::Warn
                } else {
                    Tone::Plain
                },
            ),
            (r.verdict.clone(), Tone::Plain),
        ]);
    }
    out.push_str(&t.render(0, color));
}

/// The facts behind one ring that the table has no room for: gates, soak, window,
/// freeze, pace. Rings that passed or have not started show none.
fn ring_detail(out: &mut String, r: &RingWhy, now: Timestamp, color: bool) {
    let quiet = matches!(
        r.phase,
        RingPhase::Passed | RingPhase::Pending | RingPhase::RolledBack
    ) && r.gates.is_empty();
    if quiet {
        return;
    }
    let _ = writeln!(out, "\nring {}:", r.name);
    let mut kv = Table::new(Vec::<String>::new());
    for g in &r.gates {
        let (mark, tone) = if g.passed {
            ("passed", Tone::Good)
        } else {
            ("failed", Tone::Bad)
        };
        kv.toned([
            (format!("gate {}", g.name), Tone::Plain),
            (format!("{mark}: {}", g.message), tone),
        ]);
    }
    if let Some(end) = r.soak_ends_at.filter(|e| *e > now) {
        kv.row(["soak".to_string(), format!("ends {}", relative(end, now))]);
    }
    if let Some(w) = &r.window {
        kv.row(["window".to_string(), w.clone()]);
    }
    if let Some(f) = &r.freeze {
        kv.toned([("freeze".to_string(), Tone::Plain), (f.clone(), Tone::Warn)]);
    }
    if let Some(m) = &r.max_concurrent {
        kv.row(["maxConcurrent".to_string(), m.clone()]);
    }
    if r.promoted {
        kv.row(["promoted".to_string(), "listed in spec.promote".to_string()]);
    }
    if let Some(t) = r.halted_at {
        kv.toned([
            ("halted".to_string(), Tone::Plain),
            (when_relative(t, now), Tone::Bad),
        ]);
    }
    out.push_str(&kv.render(2, color));
}
