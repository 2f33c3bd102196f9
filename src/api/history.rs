//! Event reasons: what the operator names its Events with. They live in the API because
//! they are part of it: people filter Events by them, and statuses will name their
//! transitions with the same reasons.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
        assert_eq!(names.len(), 22, "{names:?}");
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
