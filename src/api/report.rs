//! `PatchReport`: one tenant's month of patching evidence, closed by the operator.
//!
//! The operator makes one by itself for each month that ends (named `YYYY-MM`), and a
//! person may create one for any month to have it closed on demand. When the month has
//! ended, the operator builds the month's evidence packet, keeps it in its store (a
//! volume or an S3-compatible bucket), and records here the headline figures, the
//! packet's digest and files, and where it is. A closed month never changes: the status
//! of a `Closed` report is never rewritten, and the stored packet never overwritten.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One tenant's month of patching evidence: the month to close, and (in its status) the
/// figures, digest and location of the packet the operator made for it.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, kube::KubeSchema)]
#[kube(
    group = "patching.ringmaster.dev",
    version = "v1alpha1",
    kind = "PatchReport",
    namespaced,
    status = "PatchReportStatus",
    shortname = "prep",
    category = "patching",
    doc = "One tenant's month of patching evidence: the month to close and, once closed, the packet's headline figures, digest and location.",
    printcolumn(name = "Month", type_ = "string", json_path = ".spec.month"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Compliance",
        type_ = "number",
        json_path = ".status.headline.compliancePercent",
        description = "Pairs in good standing of all counted pairs, in percent"
    ),
    printcolumn(
        name = "Overdue",
        type_ = "integer",
        json_path = ".status.headline.overdue"
    ),
    printcolumn(
        name = "Location",
        type_ = "string",
        json_path = ".status.location",
        priority = 1
    ),
    printcolumn(
        name = "Digest",
        type_ = "string",
        json_path = ".status.digest",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    cel
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec is immutable: a report is for one month"))]
pub struct PatchReportSpec {
    /// The month to close, `YYYY-MM`, in the tenant's time zone.
    #[schemars(regex(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$"))]
    pub month: String,
    /// The IANA time zone the month's boundaries are in (e.g. `Europe/Paris`). Default:
    /// the Namespace's annotation `patching.ringmaster.dev/time-zone`, else UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: Option<String>,
}

/// Where a report stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ReportPhase {
    /// The month has not ended yet; it is closed at its end.
    Pending,
    /// The month is closed: its packet is stored and recorded here. Final.
    Closed,
    /// The month has ended but could not be closed; the message says why, and the
    /// operator tries again.
    Failed,
}

/// Why a report is in its phase: the reason of its Ready condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ReportReason {
    /// The packet is stored and recorded.
    Closed,
    /// The month has not ended.
    MonthNotEnded,
    /// The month or time zone is not one (the time zone is not in the tz database).
    InvalidMonth,
    /// The operator runs without a store (`--report-store`), so it cannot keep packets.
    NoStore,
    /// The store could not be read or written.
    StoreFailed,
    /// The store already holds another packet for the month that does not verify, or
    /// that is of another month or tenant: it is left as it is.
    StoredPacketInvalid,
    /// The packet could not be assembled.
    PacketFailed,
}

impl ReportReason {
    /// The CamelCase reason, as in the Ready condition.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportReason::Closed => "Closed",
            ReportReason::MonthNotEnded => "MonthNotEnded",
            ReportReason::InvalidMonth => "InvalidMonth",
            ReportReason::NoStore => "NoStore",
            ReportReason::StoreFailed => "StoreFailed",
            ReportReason::StoredPacketInvalid => "StoredPacketInvalid",
            ReportReason::PacketFailed => "PacketFailed",
        }
    }
}

/// One file of a stored packet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportFile {
    /// Its path inside the packet (`/` between directories).
    pub name: String,
    /// Its sha256, in hex, as `SHA256SUMS` lists it.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What the operator observed and recorded for a report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchReportStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (True once the month is closed), Reconciling and Stalled, in the kstatus
    /// sense.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Where the report stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ReportPhase>,
    /// Why, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The time zone the month was taken in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The month's first instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub start: Option<jiff::Timestamp>,
    /// The first instant after the month: when it closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub end: Option<jiff::Timestamp>,
    /// When the operator stored the packet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub closed_at: Option<jiff::Timestamp>,
    /// The month's headline figures, as the packet's `report.json` has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<Headline>,
    /// The packet digest: `sha256:` and the sha256 of its `SHA256SUMS`.
    /// `ringmaster report verify --report NS/NAME` checks a packet against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Whether the packet carries an ed25519 signature (`SHA256SUMS.sig`).
    #[serde(default)]
    pub signed: bool,
    /// Where the packet is kept: a directory of the operator's volume, or an `s3://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The packet's files, as its `SHA256SUMS` lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ReportFile>,
    /// The ringmaster version that made the packet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ringmaster_version: Option<String>,
}

/// The headline figures of a month: the front page of its packet, and what its
/// `PatchReport` records.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Headline {
    /// Devices the tenant's policies govern, as their statuses count them.
    pub devices: u32,
    /// Device–patch pairs open at some time in the month.
    pub pairs: u32,
    /// Pairs in good standing (installed on time, not yet due, or exempt) of all counted
    /// pairs, in percent, as the policies' status counts it. None when there is none.
    pub compliance_percent: Option<f64>,
    /// Pairs installed by their deadline.
    pub installed_on_time: u32,
    /// Pairs installed after their deadline.
    pub installed_late: u32,
    /// Pairs past their deadline and not installed at `asOf`.
    pub overdue: u32,
    /// Pairs not installed and not yet due at `asOf`.
    pub open: u32,
    /// Pairs an active exception covers at `asOf`.
    pub exempt: u32,
    /// Pairs installed within the month.
    pub installed_in_month: u32,
    /// The median time from a patch's release to its install, over the pairs installed
    /// within the month, in seconds.
    pub median_time_to_install_seconds: Option<i64>,
    /// Rings halted within the month.
    pub halts: u32,
    /// Rollbacks started within the month.
    pub rollbacks: u32,
    /// Exceptions active at `asOf`.
    pub active_exceptions: u32,
}
