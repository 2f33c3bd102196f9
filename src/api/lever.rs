//! The levers' own small objects: `PatchApproval` (a person approves or rejects a patch
//! for a policy) and `PatchFreeze` (a person freezes a tenant or some of its rings until
//! a set time).
//!
//! They exist so that a lever never writes a field a GitOps tool owns: policies and rings
//! stay exactly as Git has them, and a lever is an object of its own, visible with
//! `kubectl get`, that a sync neither reverts nor fights. Their specs are immutable (a
//! decision is changed by deleting it and making another), and who made one is recorded
//! by the API server itself: the chart's admission policy requires the annotation
//! [`CREATED_BY`] to name the requesting user. The operator reads both; it writes to
//! neither.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The annotation that names who created an object, set by the client and checked by the
/// chart's admission policies against the API server's own word on the user (on
/// PatchApprovals, PatchFreezes and PatchExceptions).
pub const CREATED_BY: &str = "ringmaster.dev/created-by";

/// The annotation that names who last pulled a lever of a PatchRollout (its `spec`),
/// checked by the chart's admission policy against the requesting user whenever the spec
/// changes; the rollout's history names this person.
pub const LEVER_BY: &str = "ringmaster.dev/lever-by";

/// A person's approval or rejection of one patch under one policy: what adding the patch
/// to the policy's `approval.approve` or `approval.reject` does, without editing the
/// policy Git keeps.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, kube::KubeSchema)]
#[kube(
    group = "patching.ringmaster.dev",
    version = "v1alpha1",
    kind = "PatchApproval",
    namespaced,
    shortname = "papr",
    category = "patching",
    doc = "A person's approval or rejection of one patch under one policy, kept apart from the policy so GitOps never reverts it.",
    printcolumn(name = "Policy", type_ = "string", json_path = ".spec.policy"),
    printcolumn(name = "Patch", type_ = "string", json_path = ".spec.patch"),
    printcolumn(name = "Decision", type_ = "string", json_path = ".spec.decision"),
    printcolumn(
        name = "By",
        type_ = "string",
        json_path = ".metadata.annotations.ringmaster\\.dev/created-by"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".spec.reason",
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
#[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec is immutable: delete the approval and make another"))]
pub struct PatchApprovalSpec {
    /// The PatchPolicy (in this namespace) the decision is for.
    #[schemars(length(min = 1, max = 253))]
    pub policy: String,
    /// The patch id, as in `Patch.spec.id` (compared without regard to case).
    #[schemars(length(min = 1, max = 253))]
    pub patch: String,
    /// `Approve` or `Reject`. A rejection wins over any approval of the same patch.
    pub decision: Decision,
    /// Why (the change board's decision, the ticket, …).
    #[schemars(length(min = 1, max = 2048))]
    pub reason: String,
}

/// What a person decided about a patch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Decision {
    /// Roll it out now, whatever the policy's rules say.
    Approve,
    /// Never roll it out; a rollout already under way is aborted.
    Reject,
}

/// A change freeze a person puts on a tenant, or on some of its rings, until a set time:
/// no ring it covers admits new devices while it is in force, and it lifts itself at
/// `until`.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, kube::KubeSchema)]
#[kube(
    group = "patching.ringmaster.dev",
    version = "v1alpha1",
    kind = "PatchFreeze",
    namespaced,
    shortname = "pfz",
    category = "patching",
    doc = "A change freeze on a tenant or some of its rings, with an owner and a reason, that lifts itself at its end.",
    printcolumn(
        name = "Rings",
        type_ = "string",
        json_path = ".spec.rings",
        description = "The rings it freezes; empty: every ring of the tenant"
    ),
    printcolumn(name = "Until", type_ = "string", json_path = ".spec.until"),
    printcolumn(name = "Owner", type_ = "string", json_path = ".spec.owner"),
    printcolumn(
        name = "By",
        type_ = "string",
        json_path = ".metadata.annotations.ringmaster\\.dev/created-by"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".spec.reason",
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
#[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec is immutable: delete the freeze to lift it early, or make another"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.from) || self.until > self.from").message("from must be before until"))]
pub struct PatchFreezeSpec {
    /// The DeploymentRings (in this namespace) it freezes; empty or absent: every ring of
    /// every policy in the namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub rings: Vec<String>,
    /// When it begins (RFC 3339); absent: when it was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub from: Option<jiff::Timestamp>,
    /// When it lifts itself (RFC 3339). Required: a freeze that nobody remembers to lift
    /// would stop patching for good.
    #[schemars(with = "Time")]
    pub until: jiff::Timestamp,
    /// Why (incident, holiday, DR test, …).
    #[schemars(length(min = 1, max = 2048))]
    pub reason: String,
    /// Who is accountable for it.
    #[schemars(length(min = 1, max = 253))]
    pub owner: String,
}

/// Who made a lever object, as its [`CREATED_BY`] annotation records.
pub fn created_by(meta: &kube::api::ObjectMeta) -> Option<&str> {
    annotation(meta, CREATED_BY)
}

/// Who last pulled a PatchRollout's levers, as its [`LEVER_BY`] annotation records.
pub fn lever_by(meta: &kube::api::ObjectMeta) -> Option<&str> {
    annotation(meta, LEVER_BY)
}

fn annotation<'m>(meta: &'m kube::api::ObjectMeta, key: &str) -> Option<&'m str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}
