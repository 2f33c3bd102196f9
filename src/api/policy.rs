//! `PatchPolicy`: which devices a tenant patches, how fast, which patches it approves,
//! and through which rings.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Classification, Duration, Freeze, Severity, cel_duration_seconds};

/// The label that holds a device's tier unless a policy names another.
pub const DEFAULT_TIER_LABEL: &str = "ringmaster.dev/tier";
/// The SLA row that applies to devices whose tier has no row of its own.
pub const DEFAULT_TIER: &str = "default";

/// How a tenant patches a group of devices: SLAs by tier and severity, approval rules,
/// the rings a patch moves through, limits on exceptions and change freezes.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, kube::KubeSchema)]
#[kube(
    group = "patching.ringmaster.dev",
    version = "v1alpha1",
    kind = "PatchPolicy",
    namespaced,
    status = "PatchPolicyStatus",
    shortname = "ppol",
    category = "patching",
    doc = "How a tenant patches a group of devices: SLAs, approval rules, rings, exception limits and freezes.",
    printcolumn(
        name = "Devices",
        type_ = "integer",
        json_path = ".status.devices",
        description = "Devices this policy governs"
    ),
    printcolumn(
        name = "Compliance",
        type_ = "string",
        json_path = ".status.compliance",
        description = "Share of due patch installs done within their SLA"
    ),
    printcolumn(
        name = "Overdue",
        type_ = "integer",
        json_path = ".status.overdue",
        description = "Device-patch pairs past their SLA deadline"
    ),
    printcolumn(
        name = "Rollouts",
        type_ = "integer",
        json_path = ".status.approvals.rollingOut",
        description = "Patches being rolled out"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    cel
)]
#[serde(rename_all = "camelCase")]
pub struct PatchPolicySpec {
    /// The devices (ManagedDevices in this namespace) this policy governs. A device
    /// selected by several policies follows the one with the highest `priority`.
    pub device_selector: LabelSelector,
    /// Decides between policies that select the same device: the highest wins; a tie
    /// is a conflict and the device gets no new assignments until it is resolved.
    #[serde(default)]
    pub priority: i32,
    /// The device label holding the device's tier (default `ringmaster.dev/tier`).
    #[serde(default = "default_tier_label")]
    #[schemars(length(min = 1, max = 317))]
    pub tier_label: String,
    /// Install-within durations per tier and severity. A device–patch pair's deadline is
    /// the patch's release time plus the duration for the device's tier and the patch's
    /// severity; the row named `default` covers tiers without a row of their own.
    #[serde(default)]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new("self.all(r, self.exists_one(s, s.tier == r.tier))").message("each tier may appear only once in sla"))]
    pub sla: Vec<SlaTier>,
    /// How long before its deadline a pair counts as DueSoon (default 24h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_soon_margin: Option<Duration>,
    /// Which patches are approved, when, and which are held back.
    #[serde(default)]
    pub approval: ApprovalSpec,
    /// The DeploymentRings (in this namespace) a patch moves through, in order. A device
    /// belongs to the first ring whose selector matches it.
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 253)))]
    #[x_kube(validation = kube::core::Rule::new("self.all(r, self.exists_one(s, s == r))").message("rings must not repeat"))]
    pub rings: Vec<String>,
    /// Limits on the exceptions that may cover this policy's devices.
    #[serde(default)]
    pub exceptions: ExceptionLimits,
    /// Change freezes: no ring of this policy admits new devices inside one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub freezes: Vec<Freeze>,
    /// How exploitation data (CISA's KEV listing, EPSS scores) raises a patch's urgency
    /// under this policy, beyond its CVSS severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskSpec>,
}

/// Exploitation data as urgency: a patch known to be exploited, or likely to be, is
/// treated as more severe than its CVSS score says, and a KEV due date caps its deadlines.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RiskSpec {
    /// The severity a patch known to be exploited (`spec.knownExploited`) has at least,
    /// whatever its CVSS score: usually Critical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_exploited: Option<Severity>,
    /// Cap every SLA deadline of a KEV-listed patch at its KEV due date
    /// (`spec.kev.dueAt`, which CISA counts from the day it listed the CVE), when that
    /// comes before the deadline the SLA gives.
    #[serde(default)]
    pub kev_due_dates: bool,
    /// Severity raised by EPSS score: a patch whose highest EPSS score (`spec.epss`) is
    /// at least `atLeast` has at least `severity`. The highest band that matches counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub epss: Vec<EpssBand>,
}

/// One EPSS band of a policy's risk rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EpssBand {
    /// The lowest EPSS score (0 to 1) of the band.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub at_least: f64,
    /// The severity a patch in the band has at least.
    pub severity: Severity,
}

fn default_tier_label() -> String {
    DEFAULT_TIER_LABEL.to_string()
}

/// Install-within durations for one tier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlaTier {
    /// The tier (the value of the policy's tier label), or `default`.
    #[schemars(length(min = 1, max = 63))]
    pub tier: String,
    /// Install-within for Critical patches.
    pub critical: Duration,
    /// Install-within for High patches.
    pub high: Duration,
    /// Install-within for Medium patches.
    pub medium: Duration,
    /// Install-within for Low patches.
    pub low: Duration,
}

impl SlaTier {
    /// The install-within duration for a severity.
    pub fn within(&self, severity: Severity) -> Duration {
        match severity {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
        }
    }
}

/// What happens to a patch that no rule (or explicit list) decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApprovalAction {
    /// Approve it (after the rule's delay).
    Approve,
    /// Wait for a person to approve it.
    #[default]
    Manual,
    /// Never roll it out.
    Reject,
}

/// Approval rules and explicit decisions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalSpec {
    /// Ordered rules; the first whose match fits the patch decides.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub rules: Vec<ApprovalRule>,
    /// What applies when no rule matches (default `Manual`).
    #[serde(default)]
    pub default: ApprovalAction,
    /// Patch ids approved by a person, whatever the rules say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approve: Vec<String>,
    /// Patch ids rejected by a person, whatever the rules say (wins over `approve`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reject: Vec<String>,
    /// Holds an approved patch when the fleet itself shows it failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<HoldSpec>,
}

/// One approval rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, kube::KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(approval_delay_rule()).message("delay may be at most 30d, or 365d when the rule matches only Feature updates"))]
pub struct ApprovalRule {
    /// A name for the rule, used in approval records (default `rule N`, counted from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub name: Option<String>,
    /// Which patches the rule applies to; every criterion given must hold.
    #[serde(default, rename = "match")]
    pub matches: RuleMatch,
    /// What the rule does with a matching patch.
    pub action: ApprovalAction,
    /// For `Approve`: how long after the patch's release it is approved (at most 30d,
    /// or 365d for Feature updates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    /// Fast-track what this rule approves: rings use their `emergencySoak`.
    #[serde(default)]
    pub emergency: bool,
}

fn approval_delay_rule() -> String {
    let secs = cel_duration_seconds("self.delay");
    format!(
        "!has(self.delay) || {secs} <= 2592000 || ({secs} <= 31536000 && has(self.match) && has(self.match.classifications) && size(self.match.classifications) > 0 && self.match.classifications.all(c, c == 'Feature'))"
    )
}

/// Criteria a patch must meet for a rule to apply. Empty criteria match everything.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleMatch {
    /// The patch's classification is one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub classifications: Vec<Classification>,
    /// The patch's severity is one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severities: Vec<Severity>,
    /// The patch's highest CVSS score is at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 10.0))]
    pub min_cvss: Option<f64>,
    /// The patch's vendor is one of these (exact, case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vendors: Vec<String>,
    /// The patch's product is one of these (exact, case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<String>,
    /// The patch is (or is not) known to be exploited in the wild.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_exploited: Option<bool>,
    /// The patch's highest EPSS score (`spec.epss.score`) is at least this (0 to 1); a
    /// patch without an EPSS score does not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_epss: Option<f64>,
}

/// Fleet-failure hold: stops new admissions for a patch failing across the policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HoldSpec {
    /// Percentage of failed install attempts above which the patch is held.
    #[schemars(range(min = 0.0, max = 100.0))]
    pub failure_rate: f64,
    /// Attempts (installed plus failed) needed before the rate counts.
    #[schemars(range(min = 1))]
    pub min_samples: u32,
}

/// Limits on exceptions covering this policy's devices.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionLimits {
    /// The longest an exception may run, from its creation to its `expiresAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<Duration>,
    /// Exceptions cover nothing until `approvedBy` is set.
    #[serde(default)]
    pub require_approval: bool,
    /// Exceptions for patches of these severities must list compensating controls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require_compensating_controls_for: Vec<Severity>,
}

/// What the operator observed and decided for a policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchPolicyStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling and Stalled, in the kstatus sense.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// One line on the policy's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The change freeze in force, if any (`reason until …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze: Option<String>,
    /// Devices this policy governs.
    #[serde(default)]
    pub devices: u32,
    /// Governed devices that match none of the policy's rings (they get no patches).
    #[serde(default)]
    pub devices_in_no_ring: u32,
    /// Devices also selected by another policy at the same priority (no new assignments).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<PolicyConflict>,
    /// Share of due or installed pairs that were installed within their SLA or are not yet
    /// overdue, as a percentage with one decimal (e.g. `97.5%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<String>,
    /// Device–patch pairs past their deadline and not installed.
    #[serde(default)]
    pub overdue: u32,
    /// Approval decisions over the patches this policy's devices report.
    #[serde(default)]
    pub approvals: ApprovalSummary,
    /// SLA figures per tier and severity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sla: Vec<SlaCell>,
}

/// A device that two policies claim at the same priority.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyConflict {
    /// The device.
    pub device: String,
    /// The other policies claiming it at the same priority.
    pub policies: Vec<String>,
}

/// Counts of approval decisions, and the patches waiting for one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalSummary {
    /// Patches approved and being rolled out (a PatchRollout exists).
    #[serde(default)]
    pub rolling_out: u32,
    /// Patches approved by a rule whose delay has not yet passed.
    #[serde(default)]
    pub scheduled: u32,
    /// Patches waiting for a person to approve them.
    #[serde(default)]
    pub awaiting_manual: u32,
    /// Patches rejected.
    #[serde(default)]
    pub rejected: u32,
    /// Patches held because they fail across the fleet.
    #[serde(default)]
    pub held: u32,
    /// Patches superseded by another approved patch.
    #[serde(default)]
    pub superseded: u32,
    /// The first patches waiting (for a person or for a delay), soonest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingApproval>,
    /// Patch ids devices report that the catalog does not know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_patches: Vec<String>,
}

/// A patch waiting for approval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingApproval {
    /// The patch id.
    pub patch: String,
    /// `Scheduled` (a rule's delay) or `AwaitingManual`.
    pub state: PendingState,
    /// For scheduled approvals, when the patch will be approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>")]
    pub at: Option<jiff::Timestamp>,
    /// The rule that decided (or `default`).
    pub by: String,
}

/// Why an approval is not yet given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PendingState {
    /// A rule approves it once its delay has passed (`at`).
    Scheduled,
    /// A person must approve it (listed in `approval.approve`).
    AwaitingManual,
}

/// SLA figures for one tier and severity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlaCell {
    /// The tier.
    pub tier: String,
    /// The severity.
    pub severity: Severity,
    /// Pairs installed by their deadline.
    pub installed_on_time: u32,
    /// Pairs installed after their deadline.
    pub installed_late: u32,
    /// Pairs past their deadline and not installed.
    pub overdue: u32,
    /// Pairs not installed, still within their deadline (including DueSoon).
    pub open: u32,
    /// Pairs covered by an active exception.
    pub exempt: u32,
    /// Percentage of pairs that are compliant: installed on time, or open and not due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_percent: Option<f64>,
    /// Median time from release to install, for installed pairs (e.g. `2d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_time_to_install: Option<Duration>,
}
