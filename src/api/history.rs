//! Event reasons, and the history a rollout's or an exception's status keeps of its
//! audit-worthy transitions.
//!
//! Kubernetes Events expire (after an hour, by default), so they cannot be an audit
//! trail. Every transition the operator announces with an audit-worthy Event is also
//! kept, with the same reason and message, in the object's `status.history`, which lasts
//! as long as the object. Which reasons are audit-worthy, and how an entry is appended, is
//! decided in one place: `crate::engine::history`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ExceptionPhase;

/// The most entries a status history holds. When a new entry would pass it, the oldest
/// entries after the first are dropped: the first (how the object's story began) is
/// always kept.
pub const HISTORY_LIMIT: usize = 128;

/// Why the operator recorded an Event, CamelCase as Kubernetes Events have it. A status's
/// history names its transitions with the same reasons.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Reason {
    /// A patch was approved and its rollout created.
    PatchApproved,
    /// A rollout's patch fails too often across the fleet and is held.
    PatchHeld,
    /// More device–patch pairs are past their SLA deadline than before.
    SLABreached,
    /// Devices are selected by two policies at the same priority.
    PolicyConflict,
    /// A change freeze began.
    FreezeStarted,
    /// A change freeze ended.
    FreezeEnded,
    /// An exception covers its devices.
    ExceptionActive,
    /// An exception waits for its approver.
    ExceptionPendingApproval,
    /// An exception expires soon (7 days, 1 day).
    ExceptionExpiring,
    /// An exception expired.
    ExceptionExpired,
    /// An exception breaks its policy's limits.
    ExceptionInvalid,
    /// A ring started deploying.
    RingStarted,
    /// Devices were given the patch to install.
    DevicesAdmitted,
    /// A ring passed its gates.
    RingPassed,
    /// A person passed a halted ring.
    RingPromoted,
    /// A ring halted on its failure rule or gates.
    RingHalted,
    /// A rollout was aborted.
    RolloutAborted,
    /// A rollout began uninstalling its patch.
    RollbackStarted,
    /// A rollout's patch was uninstalled everywhere.
    RolledBack,
    /// Every ring passed.
    RolloutCompleted,
    /// A person paused a rollout.
    RolloutPaused,
    /// A paused rollout resumed.
    RolloutResumed,
    /// A person paused one ring (`spec.pausedRings`).
    RingPaused,
    /// A paused ring resumed.
    RingResumed,
}

impl Reason {
    /// The reason as Events, metrics and status histories name it (its serialized form).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::PatchApproved => "PatchApproved",
            Reason::PatchHeld => "PatchHeld",
            Reason::SLABreached => "SLABreached",
            Reason::PolicyConflict => "PolicyConflict",
            Reason::FreezeStarted => "FreezeStarted",
            Reason::FreezeEnded => "FreezeEnded",
            Reason::ExceptionActive => "ExceptionActive",
            Reason::ExceptionPendingApproval => "ExceptionPendingApproval",
            Reason::ExceptionExpiring => "ExceptionExpiring",
            Reason::ExceptionExpired => "ExceptionExpired",
            Reason::ExceptionInvalid => "ExceptionInvalid",
            Reason::RingStarted => "RingStarted",
            Reason::DevicesAdmitted => "DevicesAdmitted",
            Reason::RingPassed => "RingPassed",
            Reason::RingPromoted => "RingPromoted",
            Reason::RingHalted => "RingHalted",
            Reason::RolloutAborted => "RolloutAborted",
            Reason::RollbackStarted => "RollbackStarted",
            Reason::RolledBack => "RolledBack",
            Reason::RolloutCompleted => "RolloutCompleted",
            Reason::RolloutPaused => "RolloutPaused",
            Reason::RolloutResumed => "RolloutResumed",
            Reason::RingPaused => "RingPaused",
            Reason::RingResumed => "RingResumed",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One audit-worthy transition of a rollout, as its Event announced it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutHistoryEntry {
    /// When it happened: the instant of the operator's pass that decided it.
    #[schemars(with = "Time")]
    pub at: jiff::Timestamp,
    /// What happened, as the Event's reason: PatchApproved, RingStarted, RingPassed,
    /// RingPromoted, RingHalted, RolloutAborted, RollbackStarted, RolledBack,
    /// RolloutCompleted, RolloutPaused, RolloutResumed, RingPaused, RingResumed or
    /// PatchHeld.
    pub reason: Reason,
    /// The ring, for a ring's transitions (RingStarted, RingPassed, RingPromoted,
    /// RingHalted, RingPaused, RingResumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<String>,
    /// What happened, in words: the Event's message.
    pub message: String,
}

/// One phase change of an exception, as its Event announced it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionHistoryEntry {
    /// When it happened: the instant of the operator's pass that decided it.
    #[schemars(with = "Time")]
    pub at: jiff::Timestamp,
    /// What happened, as the Event's reason: ExceptionPendingApproval, ExceptionActive,
    /// ExceptionExpired or ExceptionInvalid (expiry reminders are not kept here;
    /// `lastReminder` says the last one sent).
    pub reason: Reason,
    /// The phase the exception entered.
    pub phase: ExceptionPhase,
    /// Why, in words: the Event's message.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant, from the schema: its serialized name is the one Events carry.
    #[test]
    fn a_reason_serializes_as_its_event_reason() {
        let schema = serde_json::to_value(schemars::schema_for!(Reason)).expect("schema");
        let names: Vec<String> = match schema.get("enum") {
            Some(list) => serde_json::from_value(list.clone()).expect("names"),
            None => schema["oneOf"]
                .as_array()
                .expect("oneOf")
                .iter()
                .flat_map(|v| match v.get("enum") {
                    Some(list) => {
                        serde_json::from_value::<Vec<String>>(list.clone()).expect("names")
                    }
                    None => vec![v["const"].as_str().expect("const").to_string()],
                })
                .collect(),
        };
        assert_eq!(names.len(), 24, "{names:?}");
        for name in names {
            let reason: Reason =
                serde_json::from_value(serde_json::Value::String(name.clone())).expect("reason");
            assert_eq!(reason.as_str(), name);
            assert_eq!(
                serde_json::to_value(reason).expect("serializes"),
                serde_json::Value::String(name)
            );
        }
    }
}
