//! What the engine decides: statuses to write, plan entries to set or clear, rollouts to
//! create, Events to record, and when to be woken next. The shells apply these.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{
    DeploymentRingStatus, DeviceCompliance, PatchExceptionStatus, PatchPolicyStatus,
    PatchRolloutSpec, PatchRolloutStatus, PlanEntry,
};

/// The kind of object an Event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A PatchPolicy.
    PatchPolicy,
    /// A DeploymentRing.
    DeploymentRing,
    /// A PatchException.
    PatchException,
    /// A ManagedDevice.
    ManagedDevice,
    /// A PatchRollout.
    PatchRollout,
}

impl Kind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PatchPolicy => "PatchPolicy",
            Kind::DeploymentRing => "DeploymentRing",
            Kind::PatchException => "PatchException",
            Kind::ManagedDevice => "ManagedDevice",
            Kind::PatchRollout => "PatchRollout",
        }
    }
}

/// Normal or Warning, as Kubernetes Events have it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    /// Something went as it should.
    Normal,
    /// Something a person should look at.
    Warning,
}

/// Why an Event was recorded: its `reason`, CamelCase as Kubernetes Events have it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Reason {
    /// The reason as Events and metrics name it.
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

/// A decision a person would want to see, recorded as a Kubernetes Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The kind of the object the Event is about.
    pub kind: Kind,
    /// Its name (in the snapshot's namespace).
    pub name: String,
    /// Normal or Warning.
    pub type_: EventType,
    /// Why it was recorded, e.g. `RingPassed`.
    pub reason: Reason,
    /// What happened, in words.
    pub message: String,
}

/// Which list of a device's plan an entry belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlanList {
    /// `spec.plan.install`.
    Install,
    /// `spec.plan.uninstall`.
    Uninstall,
}

/// One change to one key of one device's plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanChange {
    /// The device.
    pub device: String,
    /// The list.
    pub list: PlanList,
    /// The patch id (the map key).
    pub patch: String,
    /// The entry to set, or None to remove the key.
    pub entry: Option<PlanEntry>,
}

/// A rollout the engine wants created.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRollout {
    /// Its name, `<policy>.<patch id, lower-cased>`.
    pub name: String,
    /// Its spec.
    pub spec: PatchRolloutSpec,
}

/// Everything the engine decided for one tenant (namespace) at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decisions {
    /// Desired status per policy (by name).
    pub policies: Vec<(String, PatchPolicyStatus)>,
    /// Desired status per ring.
    pub rings: Vec<(String, DeploymentRingStatus)>,
    /// Desired status per exception.
    pub exceptions: Vec<(String, PatchExceptionStatus)>,
    /// Rollouts to create (their status is in `rollouts`).
    pub new_rollouts: Vec<NewRollout>,
    /// Desired status per rollout, existing or new.
    pub rollouts: Vec<(String, PatchRolloutStatus)>,
    /// Device plan changes (only real changes: setting an equal entry is not listed).
    pub plan: Vec<PlanChange>,
    /// `status.compliance` for the devices whose summary changed (unchanged ones are not
    /// listed, so applying this list is all the work there is).
    pub devices: Vec<(String, DeviceCompliance)>,
    /// Events to record.
    pub events: Vec<Event>,
    /// The earliest instant after `now` at which a decision changes by time alone.
    pub wake_at: Option<Timestamp>,
}

impl Decisions {
    /// Records a candidate wake-up instant, keeping the earliest one after `now`.
    pub fn wake(&mut self, at: Option<Timestamp>, now: Timestamp) {
        if let Some(at) = at.filter(|t| *t > now) {
            self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
        }
    }
}

/// The kstatus conditions for an object.
#[derive(Clone, Debug)]
pub struct Health {
    /// Ready's status.
    pub ready: bool,
    /// The CamelCase reason.
    pub reason: &'static str,
    /// A sentence.
    pub message: String,
    /// Still moving towards its desired state.
    pub reconciling: bool,
    /// Cannot progress without a person.
    pub stalled: bool,
}

impl Health {
    /// Ready, not reconciling, not stalled.
    pub fn ready(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            ready: true,
            reason,
            message: message.into(),
            reconciling: false,
            stalled: false,
        }
    }

    /// Ready and still moving.
    pub fn progressing(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reconciling: true,
            ..Self::ready(reason, message)
        }
    }

    /// Not ready and stalled.
    pub fn stalled(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            ready: false,
            reason,
            message: message.into(),
            reconciling: false,
            stalled: true,
        }
    }

    /// Builds the conditions, keeping each condition's `lastTransitionTime` from `old`
    /// when its status did not change (so an unchanged object yields an equal status).
    pub fn conditions(
        &self,
        old: &[Condition],
        generation: Option<i64>,
        now: Timestamp,
    ) -> Vec<Condition> {
        let make = |type_: &str, on: bool, reason: &str, message: &str| {
            let status = if on { "True" } else { "False" };
            let since = old
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: reason.to_string(),
                message: message.to_string(),
                observed_generation: generation,
                last_transition_time: since,
            }
        };
        let quiet = |on: bool| if on { self.reason } else { "Idle" };
        vec![
            make(
                crate::api::condition::READY,
                self.ready,
                self.reason,
                &self.message,
            ),
            make(
                crate::api::condition::RECONCILING,
                self.reconciling,
                quiet(self.reconciling),
                if self.reconciling { &self.message } else { "" },
            ),
            make(
                crate::api::condition::STALLED,
                self.stalled,
                quiet(self.stalled),
                if self.stalled { &self.message } else { "" },
            ),
        ]
    }
}
