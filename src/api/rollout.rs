//! `PatchRollout`: one approved patch under one policy, moving ring by ring.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{HISTORY_LIMIT, RolloutHistoryEntry};

/// One approved patch under one policy, moving ring by ring. Created and owned by the
/// operator; people use its spec as levers (pause, promote a ring, abort).
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, kube::KubeSchema)]
#[kube(
    group = "patching.ringmaster.dev",
    version = "v1alpha1",
    kind = "PatchRollout",
    namespaced,
    status = "PatchRolloutStatus",
    shortname = "prl",
    category = "patching",
    doc = "One approved patch under one policy, moving ring by ring through promotion gates.",
    printcolumn(name = "Patch", type_ = "string", json_path = ".spec.patch"),
    printcolumn(name = "Policy", type_ = "string", json_path = ".spec.policy"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Ring", type_ = "string", json_path = ".status.currentRing"),
    printcolumn(
        name = "Installed",
        type_ = "string",
        json_path = ".status.progress",
        description = "Installed of targeted devices"
    ),
    printcolumn(
        name = "Waiting-For",
        type_ = "string",
        json_path = ".status.message",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PatchRolloutSpec {
    /// The PatchPolicy this rollout runs under (immutable).
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("policy is immutable"))]
    pub policy: String,
    /// The patch id, as in `Patch.spec.id` (immutable).
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("patch is immutable"))]
    pub patch: String,
    /// Stop admitting devices and promoting rings until set back to false.
    #[serde(default)]
    pub paused: bool,
    /// Rings paused by a person: they admit no device and are not promoted until removed
    /// from the list; the other rings go on (late joiners of passed rings are admitted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub paused_rings: Vec<String>,
    /// Rings a person approves for promotion: a ring listed here passes its manual gate
    /// and skips what is left of its soak (its success-rate and failure gates still
    /// hold), and a halted ring listed here is passed despite its failures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promote: Vec<String>,
    /// Stop the rollout for good; devices that have not started are released.
    #[serde(default)]
    pub abort: bool,
}

/// The rollout as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RolloutPhase {
    /// Moving through the rings.
    Progressing,
    /// Paused by a person (`spec.paused`).
    Paused,
    /// Held: the patch fails across the policy's fleet (`approval.hold`).
    Held,
    /// A ring halted; a person decides.
    Halted,
    /// Uninstalling the patch.
    RollingBack,
    /// Uninstalled from every device that had it.
    RolledBack,
    /// Stopped for good (by a person, a halt rule, or a rejection).
    Aborted,
    /// Every ring has passed (late joiners are still admitted).
    Completed,
}

/// One ring's part of a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RingPhase {
    /// Waiting for the ring before it to pass.
    Pending,
    /// Admitting devices and installing.
    Deploying,
    /// Every reachable targeted device has finished; waiting out the soak and gates.
    Soaking,
    /// Passed its gates; the next ring may start.
    Passed,
    /// Failed its halt rule or gates.
    Halted,
    /// Uninstalling from its devices.
    RollingBack,
    /// Uninstalled.
    RolledBack,
    /// The rollout is paused.
    Paused,
}

/// Where a rollout's approval stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ApprovalState {
    /// Approved: the rollout may admit devices.
    Approved,
    /// Approved, but held because it fails too often across the fleet (`approval.hold`):
    /// no ring admits new devices for it.
    Held,
    /// Rejected after the rollout began: it is aborted.
    Rejected,
}

impl ApprovalState {
    /// The name, as the status, metrics and Events say it.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Approved => "Approved",
            ApprovalState::Held => "Held",
            ApprovalState::Rejected => "Rejected",
        }
    }
}

/// How a patch came to be approved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRecord {
    /// `Approved`, `Held` (the fleet's failure rate passed `approval.hold`) or `Rejected`.
    pub state: ApprovalState,
    /// When it was approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub approved_at: Option<jiff::Timestamp>,
    /// The rule (by name) or the explicit list that approved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Approved by an emergency rule: rings use their emergency soak.
    #[serde(default)]
    pub emergency: bool,
    /// Why it is held or rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The result of one promotion gate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateResult {
    /// `soak`, `successRate`, `maxFailures` or `manualApproval`.
    pub name: String,
    /// Whether the gate is passed.
    pub passed: bool,
    /// Why, in words.
    pub message: String,
}

/// One ring's progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RingProgress {
    /// The DeploymentRing.
    pub name: String,
    /// Where the ring stands.
    pub phase: RingPhase,
    /// Devices in the ring that report the patch applicable, less those excepted.
    #[serde(default)]
    pub targeted: u32,
    /// Targeted devices that have it installed.
    #[serde(default)]
    pub installed: u32,
    /// Targeted devices whose attempt in this rollout failed (timed out ones included).
    #[serde(default)]
    pub failed: u32,
    /// Failed attempts that failed by timing out: no result by the entry's `answerBy`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timed_out: u32,
    /// Admitted devices still installing (or not yet started).
    #[serde(default)]
    pub in_progress: u32,
    /// Targeted devices not yet admitted.
    #[serde(default)]
    pub waiting: u32,
    /// Devices covered by an active exception (not targeted).
    #[serde(default)]
    pub excepted: u32,
    /// Targeted devices not seen for the ring's `unreachableAfter`.
    #[serde(default)]
    pub unreachable: u32,
    /// Devices the patch was uninstalled from.
    #[serde(default)]
    pub rolled_back: u32,
    /// When the ring started deploying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub started_at: Option<jiff::Timestamp>,
    /// When the ring's last install finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub last_install_at: Option<jiff::Timestamp>,
    /// When the ring passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub passed_at: Option<jiff::Timestamp>,
    /// When the ring halted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub halted_at: Option<jiff::Timestamp>,
    /// What the ring waits for, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// The promotion gates, once the ring is soaking.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateResult>,
}

/// What the operator decided for a rollout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchRolloutStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling and Stalled, in the kstatus sense.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// How the patch was approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRecord>,
    /// Where the rollout stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RolloutPhase>,
    /// The ring being deployed (the last ring once all have passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_ring: Option<String>,
    /// `installed/targeted` over every ring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// What the rollout waits for, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Per-ring progress, in the policy's ring order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rings: Vec<RingProgress>,
    /// The rollout's audit-worthy transitions, oldest first, each at the instant the
    /// operator decided it and with its Event's reason and message: the approval that
    /// created it, rings started, passed, promoted and halted, holds, pauses and resumes,
    /// abort, rollback and completion. Unlike Events, which expire, it lasts as long as
    /// the rollout. At most 128 entries: when full, the oldest entries after the first
    /// are dropped, and the first is always kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = HISTORY_LIMIT))]
    pub history: Vec<RolloutHistoryEntry>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
