//! `PatchException`: a documented, owned, expiring permission for devices to skip patches.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ExceptionHistoryEntry, HISTORY_LIMIT};

/// "These devices may skip these patches until `expiresAt`", with a reason, an owner,
/// an approver, compensating controls and a ticket.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, kube::KubeSchema)]
#[kube(
    group = "patching.ringmaster.dev",
    version = "v1alpha1",
    kind = "PatchException",
    namespaced,
    status = "PatchExceptionStatus",
    shortname = "pex",
    category = "patching",
    doc = "A documented, owned, expiring permission for some devices to skip some patches.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Owner", type_ = "string", json_path = ".spec.owner"),
    printcolumn(name = "Expires", type_ = "string", json_path = ".spec.expiresAt"),
    printcolumn(
        name = "Devices",
        type_ = "integer",
        json_path = ".status.coveredDevices",
        description = "Devices it covers now"
    ),
    printcolumn(
        name = "Ticket",
        type_ = "string",
        json_path = ".spec.ticket",
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
pub struct PatchExceptionSpec {
    /// The patch ids (as in `Patch.spec.id`) the devices may skip.
    #[schemars(length(min = 1))]
    pub patches: Vec<String>,
    /// Which devices it covers: named devices and/or a label selector.
    pub devices: ExceptionDevices,
    /// Why the devices may skip the patches.
    #[schemars(length(min = 1, max = 2048))]
    pub reason: String,
    /// Who is accountable for the exception.
    #[schemars(length(min = 1, max = 253))]
    pub owner: String,
    /// Who approved it; required when the policy says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub approved_by: Option<String>,
    /// When the exception stops covering the devices (RFC 3339).
    #[schemars(with = "Time")]
    pub expires_at: jiff::Timestamp,
    /// What reduces the risk while the patches are missing (firewall rules, isolation, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compensating_controls: Vec<String>,
    /// The change or risk ticket that records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// What happens at expiry (default `Enforce`).
    #[serde(default)]
    pub on_expiry: OnExpiry,
}

/// The devices an exception covers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, kube::KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("(has(self.names) && size(self.names) > 0) || has(self.selector)").message("devices needs names or a selector"))]
pub struct ExceptionDevices {
    /// ManagedDevice names in this namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// A label selector over ManagedDevices in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// What an exception does when it expires.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OnExpiry {
    /// Coverage ends and the patches are assigned in the next window.
    #[default]
    Enforce,
    /// Coverage for assignment stays until a person acts, but the SLA clock runs again
    /// and a Warning Event is raised on every reconcile of the expired exception.
    Escalate,
}

/// Where an exception stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ExceptionPhase {
    /// The policy requires an approver and none is set.
    PendingApproval,
    /// It covers its devices.
    Active,
    /// Its `expiresAt` has passed.
    Expired,
    /// It breaks the policy's limits; the message says why. It covers nothing.
    Invalid,
}

/// What the operator observed for an exception.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchExceptionStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling and Stalled, in the kstatus sense.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Where the exception stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ExceptionPhase>,
    /// Why it is in that phase, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it first became Active (the SLA clock of covered pairs pauses from then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub active_since: Option<jiff::Timestamp>,
    /// Devices it covers now.
    #[serde(default)]
    pub covered_devices: u32,
    /// The last expiry reminder sent (`7d` or `1d`), so a restart does not repeat it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reminder: Option<String>,
    /// The exception's phase changes, oldest first, each at the instant the operator
    /// decided it and with its Event's reason and message (expiry reminders are not
    /// kept). Unlike Events, which expire, it lasts as long as the exception. At most 128
    /// entries: when full, the oldest entries after the first are dropped, and the first
    /// is always kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = HISTORY_LIMIT))]
    pub history: Vec<ExceptionHistoryEntry>,
}
