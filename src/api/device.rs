//! `ManagedDevice`: one device. Its agent writes `status`; the operator writes `spec.plan`
//! and `status.compliance`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One device under patch management: its agent reports its patch state in `status`,
/// the operator tells it what to install or uninstall in `spec.plan`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "patching.ringmaster.dev",
    version = "v1alpha1",
    kind = "ManagedDevice",
    namespaced,
    status = "ManagedDeviceStatus",
    shortname = "mdev",
    category = "patching",
    doc = "One device under patch management: the agent reports in status, the operator plans in spec.plan.",
    printcolumn(name = "Tier", type_ = "string", json_path = ".status.compliance.tier"),
    printcolumn(name = "Ring", type_ = "string", json_path = ".status.compliance.ring"),
    printcolumn(
        name = "Last-Report",
        type_ = "date",
        json_path = ".status.lastSeen",
        description = "When its agent last wrote its status; its check-ins renew its Lease (kubectl get lease -l ringmaster.dev/device)"
    ),
    printcolumn(
        name = "Overdue",
        type_ = "integer",
        json_path = ".status.compliance.overdue"
    ),
    printcolumn(
        name = "Due-Soon",
        type_ = "integer",
        json_path = ".status.compliance.dueSoon",
        description = "Applicable patches due within the policy's margin"
    ),
    printcolumn(
        name = "OS",
        type_ = "string",
        json_path = ".spec.os.family",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ManagedDeviceSpec {
    /// The device's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The device's operating system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsInfo>,
    /// Written by the operator only: what to install or uninstall, and when.
    #[serde(default)]
    pub plan: DevicePlan,
}

/// An operating system.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OsInfo {
    /// `windows`, `linux`, `macos`, …
    pub family: String,
    /// The release, e.g. `11 24H2` or `12 (bookworm)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The operator's instructions to the device's agent, keyed by patch id so concurrent
/// rollouts each write only their own entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevicePlan {
    /// Patches to install, by patch id.
    #[serde(default)]
    pub install: BTreeMap<String, PlanEntry>,
    /// Patches to uninstall, by patch id.
    #[serde(default)]
    pub uninstall: BTreeMap<String, PlanEntry>,
}

/// One instruction. An agent starts it only between `notBefore` and `notAfter`, and makes
/// its attempt once: it copies `attempt` into its report when it starts, and does not
/// start again while its report answers that attempt (see `docs/agent-contract.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanEntry {
    /// The PatchRollout that assigned it.
    pub rollout: String,
    /// Do not start before this instant.
    #[schemars(with = "Time")]
    pub not_before: jiff::Timestamp,
    /// Do not start after this instant (the end of the maintenance window), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub not_after: Option<jiff::Timestamp>,
    /// The SLA deadline for this device and patch, if the policy sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub deadline: Option<jiff::Timestamp>,
    /// The attempt this entry asks for. An agent copies it into
    /// `status.patches[].attempt` when it starts the install; a report carrying it
    /// answers this attempt. It stays the same when an unstarted entry moves to a later
    /// window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 300))]
    pub attempt: Option<String>,
    /// A digest of the device's report for this patch when the entry was written. A
    /// report without `attempt` answers this entry once it differs from that (agents need
    /// not compute it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub basis: Option<String>,
    /// The agent must report a result for this attempt (Installed, PendingReboot or
    /// Failed) by this instant; otherwise the attempt counts as failed with reason
    /// TimedOut. Set from the ring's `attemptTimeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub answer_by: Option<jiff::Timestamp>,
}

/// The state of one patch on one device, as its agent reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PatchState {
    /// Applicable and not installed.
    Missing,
    /// Being installed now.
    Installing,
    /// Installed.
    Installed,
    /// The last attempt failed.
    Failed,
    /// Installed, waiting for a reboot to take effect.
    PendingReboot,
    /// Uninstalled after a rollback.
    RolledBack,
}

/// Written by the device's agent (and `compliance` by the operator).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedDeviceStatus {
    /// When the agent last checked in by writing its status. Agents that renew the
    /// device's check-in Lease (named as the device, labelled `ringmaster.dev/device`)
    /// write it only with a status that changed; the device was last seen at the later of
    /// the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub last_seen: Option<jiff::Timestamp>,
    /// Every patch applicable to the device, with its state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
    pub patches: Vec<DevicePatchStatus>,
    /// The device waits for a reboot.
    #[serde(default)]
    pub reboot_pending: bool,
    /// The agent that reports for the device, e.g. `ringmaster-agent/0.1.0 (simulated)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Written by the operator: the device's policy, ring and SLA counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<DeviceCompliance>,
}

/// One applicable patch on a device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevicePatchStatus {
    /// The patch id (as in `Patch.spec.id`).
    pub id: String,
    /// Its state on the device.
    pub state: PatchState,
    /// Install attempts made so far.
    #[serde(default)]
    pub attempts: u32,
    /// When the last attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub last_attempt_at: Option<jiff::Timestamp>,
    /// When it was installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub installed_at: Option<jiff::Timestamp>,
    /// The installer's last word (an error code, a log line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The plan entry's `attempt` this report answers, copied from
    /// `spec.plan.install[id].attempt` when the install started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
}

impl DevicePatchStatus {
    /// A report of no patch (an empty id), missing and never attempted.
    pub const NONE: Self = Self {
        id: String::new(),
        state: PatchState::Missing,
        attempts: 0,
        last_attempt_at: None,
        installed_at: None,
        message: None,
        attempt: None,
    };

    /// A patch the device needs and has not attempted yet.
    pub fn missing(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::NONE
        }
    }
}

/// The operator's summary of a device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCompliance {
    /// The PatchPolicy that governs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The ring it belongs to under that policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<String>,
    /// Its tier, read from the policy's `tierLabel` (`default` when the label is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Applicable patches past their SLA deadline.
    #[serde(default)]
    pub overdue: u32,
    /// Applicable patches due within the policy's margin.
    #[serde(default)]
    pub due_soon: u32,
    /// Why it gets no assignments, when it gets none (conflict, no ring, no policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
