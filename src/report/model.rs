//! The evidence of one tenant's month: what every renderer draws from, and what
//! `report.json` holds (its schema is [`SCHEMA`], published as `report.schema.json`).
//!
//! Everything here comes from durable state (object specs and statuses, device reports,
//! the histories rollouts and exceptions keep), read as of the month's last instant. No
//! field holds the time the report was made: the same inputs give the same report.

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::Severity;

/// The schema `report.json` follows. A change that removes or renames a field makes a
/// new version.
pub const SCHEMA: &str = "https://ringmaster.dev/schemas/evidence/v1";

/// One tenant's month.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonthReport {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The tenant (its namespace).
    pub tenant: String,
    /// The month, `YYYY-MM`.
    pub month: String,
    /// The IANA time zone the month's boundaries are in.
    pub time_zone: String,
    /// The month's first instant.
    #[schemars(with = "String")]
    pub start: Timestamp,
    /// The first instant of the next month: the month covers `[start, end)`.
    #[schemars(with = "String")]
    pub end: Timestamp,
    /// The instant the figures are taken at: `end` for a closed month, earlier for a
    /// month still running.
    #[schemars(with = "String")]
    pub as_of: Timestamp,
    /// Whether the month had ended at `asOf`.
    pub closed: bool,
    /// The figures on the front page.
    pub headline: Headline,
    /// SLA compliance per policy, tier and severity.
    pub sla: Vec<SlaRow>,
    /// The headline figures of this month and the months before it, oldest first.
    pub trend: Vec<TrendPoint>,
    /// Per ring: how the month's rollouts went there.
    pub rings: Vec<RingFunnel>,
    /// Every device–patch pair open at some time in the month.
    pub pairs: Vec<PairRow>,
    /// Every approval of a patch that had a rollout in the month.
    pub approvals: Vec<ApprovalRow>,
    /// Every halt, rollback, abort, pause and promotion in the month.
    pub interventions: Vec<InterventionRow>,
    /// Every change freeze that overlapped the month.
    pub freezes: Vec<FreezeRow>,
    /// Every exception in force at some time in the month, or that changed in it.
    pub exceptions: Vec<ExceptionRow>,
    /// Who keeps missing the SLA.
    pub laggards: Laggards,
}

/// The period a report covers: a month, or (for the preview) a simulated run.
#[derive(Clone, Copy, Debug)]
pub struct Period<'a> {
    /// What stands in the `month` field.
    pub label: &'a str,
    /// The IANA time zone, carried.
    pub time_zone: &'a str,
    /// The first instant.
    pub start: Timestamp,
    /// The first instant after it.
    pub end: Timestamp,
}

impl MonthReport {
    /// A month with nothing in it yet: the frame [`super::build::build`] fills.
    pub fn empty(tenant: &str, month: &super::month::Month, as_of: Timestamp) -> Self {
        let period = Period {
            label: &month.label(),
            time_zone: month.time_zone(),
            start: month.start(),
            end: month.end(),
        };
        Self::empty_period(tenant, &period, as_of)
    }

    /// Any period `[start, end)` with nothing in it yet, `label` in the `month` field.
    pub fn empty_period(tenant: &str, period: &Period<'_>, as_of: Timestamp) -> Self {
        MonthReport {
            schema: SCHEMA.to_string(),
            tenant: tenant.to_string(),
            month: period.label.to_string(),
            time_zone: period.time_zone.to_string(),
            start: period.start,
            end: period.end,
            as_of,
            closed: as_of >= period.end,
            headline: Headline::default(),
            sla: Vec::new(),
            trend: Vec::new(),
            rings: Vec::new(),
            pairs: Vec::new(),
            approvals: Vec::new(),
            interventions: Vec::new(),
            freezes: Vec::new(),
            exceptions: Vec::new(),
            laggards: Laggards::default(),
        }
    }
}

/// The figures on the front page: the same a closed month's `PatchReport` records in its
/// status.
pub use crate::api::Headline;

/// SLA compliance of one policy's tier × severity cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlaRow {
    /// The policy.
    pub policy: String,
    /// The asset tier.
    pub tier: String,
    /// The severity.
    pub severity: Severity,
    /// The install-within the policy sets for the cell, as written (`72h`), if any.
    pub within: Option<String>,
    /// Installed by the deadline.
    pub installed_on_time: u32,
    /// Installed after the deadline.
    pub installed_late: u32,
    /// Not installed, past the deadline.
    pub overdue: u32,
    /// Not installed, not yet due.
    pub open: u32,
    /// Covered by an active exception.
    pub exempt: u32,
    /// Pairs in good standing (installed on time, not yet due, exempt) of all, percent.
    pub compliance_percent: Option<f64>,
    /// Median release-to-install time of the cell's pairs installed in the month, in
    /// seconds.
    pub median_time_to_install_seconds: Option<i64>,
}

/// One month's headline figures, for the trend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrendPoint {
    /// The month, `YYYY-MM`.
    pub month: String,
    /// Its compliance, percent.
    pub compliance_percent: Option<f64>,
    /// Pairs overdue at its end.
    pub overdue: u32,
    /// Its median time to install, seconds.
    pub median_time_to_install_seconds: Option<i64>,
}

/// How the month's rollouts went in one ring.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RingFunnel {
    /// The ring.
    pub ring: String,
    /// Rollouts that reached the ring (it left Pending) and were active in the month.
    pub rollouts: u32,
    /// Devices targeted, summed over those rollouts.
    pub targeted: u32,
    /// Installed.
    pub installed: u32,
    /// Failed (timed-out attempts included).
    pub failed: u32,
    /// Of the failures, attempts no agent answered in time.
    pub timed_out: u32,
    /// Patches rolled back from devices.
    pub rolled_back: u32,
    /// Times the ring halted.
    pub halts: u32,
    /// Installed of installed + failed, percent.
    pub success_rate_percent: Option<f64>,
}

/// Where a device–patch pair stands against its SLA at `asOf`: the engine's own clock
/// states.
pub use crate::engine::sla::ClockState as SlaState;

/// Why a pair is not installed at `asOf`: the engine's own reasons.
pub use crate::engine::ledger::Unpatched;

/// One device–patch pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PairRow {
    /// The device.
    pub device: String,
    /// The patch id.
    pub patch: String,
    /// The patch's vendor.
    pub vendor: String,
    /// The patch's title, if the catalog has one.
    pub title: Option<String>,
    /// The policy governing the device.
    pub policy: String,
    /// The device's ring, if it is in one.
    pub ring: Option<String>,
    /// The device's asset tier.
    pub tier: String,
    /// The severity the policy graded the patch at.
    pub severity: Severity,
    /// The patch's highest CVSS score, if any.
    pub cvss: Option<f64>,
    /// Whether CISA lists the patch's flaws as known exploited.
    pub known_exploited: bool,
    /// When the finding started: the patch's first release.
    #[schemars(with = "String")]
    pub found_at: Timestamp,
    /// The SLA deadline (moved by the time an exception stopped the clock), if the
    /// policy sets one.
    #[schemars(with = "Option<String>")]
    pub due_at: Option<Timestamp>,
    /// When it was installed, if it was by `asOf`.
    #[schemars(with = "Option<String>")]
    pub installed_at: Option<Timestamp>,
    /// Its SLA state at `asOf`.
    pub state: SlaState,
    /// Whether it counts in the SLA figures (a rejected or superseded patch does not).
    pub counted: bool,
    /// For a pair not installed: why.
    pub reason: Option<Unpatched>,
    /// A few words more on the reason (the ring waited for, the failure message, the
    /// window's opening).
    pub detail: Option<String>,
    /// The exception covering it, if any.
    pub exception: Option<String>,
}

/// One approval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRow {
    /// The rollout.
    pub rollout: String,
    /// The policy.
    pub policy: String,
    /// The patch id.
    pub patch: String,
    /// The patch's severity under the policy.
    pub severity: Option<Severity>,
    /// When it was approved.
    #[schemars(with = "Option<String>")]
    pub at: Option<Timestamp>,
    /// The rule or person that approved it.
    pub by: String,
    /// Approved by an emergency rule.
    pub emergency: bool,
    /// Where the rollout stood at `asOf`.
    pub phase: String,
}

/// What a person or a gate did to a rollout.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum InterventionKind {
    /// A ring halted on its failure rule or gates.
    Halted,
    /// A rollback began.
    RollbackStarted,
    /// The patch was uninstalled everywhere it was.
    RolledBack,
    /// The rollout was aborted.
    Aborted,
    /// A person paused the rollout.
    Paused,
    /// The rollout resumed.
    Resumed,
    /// A person passed a ring.
    Promoted,
    /// The patch was held for failing across the fleet.
    Held,
}

/// One halt, rollback, abort, pause, resume, promotion or hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InterventionRow {
    /// When.
    #[schemars(with = "String")]
    pub at: Timestamp,
    /// What.
    pub kind: InterventionKind,
    /// The rollout.
    pub rollout: String,
    /// The patch id.
    pub patch: String,
    /// The ring, when it was about one.
    pub ring: Option<String>,
    /// What the operator recorded.
    pub message: String,
}

/// A change freeze.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreezeRow {
    /// Where it is declared: `PatchPolicy/NAME` or `DeploymentRing/NAME`.
    pub scope: String,
    /// Its first instant.
    #[schemars(with = "String")]
    pub from: Timestamp,
    /// Its end.
    #[schemars(with = "String")]
    pub until: Timestamp,
    /// Why.
    pub reason: String,
    /// Who owns it.
    pub owner: String,
}

/// A phase an exception entered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhaseChange {
    /// When.
    #[schemars(with = "String")]
    pub at: Timestamp,
    /// The phase entered.
    pub phase: String,
    /// What the operator recorded.
    pub message: String,
}

/// One exception.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionRow {
    /// The PatchException.
    pub name: String,
    /// The patch ids it names.
    pub patches: Vec<String>,
    /// Devices it covered at `asOf`.
    pub covered_devices: u32,
    /// Who owns it.
    pub owner: String,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// Why.
    pub reason: String,
    /// The compensating controls.
    pub compensating_controls: Vec<String>,
    /// The ticket.
    pub ticket: Option<String>,
    /// When it became active.
    #[schemars(with = "Option<String>")]
    pub active_since: Option<Timestamp>,
    /// When it expires.
    #[schemars(with = "String")]
    pub expires_at: Timestamp,
    /// Its phase at `asOf`.
    pub phase: String,
    /// Every phase it entered, oldest first.
    pub history: Vec<PhaseChange>,
}

/// Who keeps missing the SLA.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Laggards {
    /// Devices with the most pairs overdue or installed late, most first (at most 20).
    pub devices: Vec<Laggard>,
    /// Vendors likewise.
    pub vendors: Vec<Laggard>,
    /// Tiers likewise.
    pub tiers: Vec<Laggard>,
}

/// One device, vendor or tier that missed its SLA.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Laggard {
    /// The device, vendor or tier.
    pub name: String,
    /// Pairs overdue at `asOf` or installed late.
    pub missed: u32,
    /// Of those, overdue at `asOf`.
    pub overdue: u32,
    /// Its counted pairs in the month.
    pub pairs: u32,
}
