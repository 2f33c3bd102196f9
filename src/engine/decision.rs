//! What the engine decides: statuses to write, plan entries to set or clear, rollouts to
//! create, Events to record, and when to be woken next. The shells apply these.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{
    DeploymentRingStatus, DeviceCompliance, PatchExceptionStatus, PatchPolicyStatus,
    PatchRolloutSpec, PatchRolloutStatus, PlanEntry, Severity,
};

/// Why an Event was recorded: its `reason`. The type lives in `crate::api` because a
/// status's history names its transitions with the same reasons.
pub use crate::api::Reason;

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
    /// A PatchApproval.
    PatchApproval,
    /// A PatchFreeze.
    PatchFreeze,
}

impl Kind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PatchPolicy => "PatchPolicy",
            Kind::DeploymentRing => "DeploymentRing",
            Kind::PatchException => "PatchException",
            Kind::ManagedDevice => "ManagedDevice",
            Kind::PatchApproval => "PatchApproval",
            Kind::PatchFreeze => "PatchFreeze",
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

/// Pairs of one policy, tier and severity whose deadline is within the policy's
/// `dueSoonMargin` (DueSoon). Not written anywhere: the operator exports it as a metric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueSoon {
    /// The policy.
    pub policy: String,
    /// The device tier.
    pub tier: String,
    /// The patch severity.
    pub severity: Severity,
    /// Device–patch pairs DueSoon.
    pub pairs: u32,
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
    /// Desired status per rollout, existing or new. Shared: a rollout whose decision
    /// changed nothing is given its kept status again without a copy (most rollouts, most
    /// passes).
    pub rollouts: Vec<(String, Arc<PatchRolloutStatus>)>,
    /// Device plan changes (only real changes: setting an equal entry is not listed).
    pub plan: Vec<PlanChange>,
    /// `status.compliance` for the devices whose summary changed (unchanged ones are not
    /// listed, so applying this list is all the work there is).
    pub devices: Vec<(String, DeviceCompliance)>,
    /// DueSoon pairs per policy, tier and severity (every cell of every policy's SLA
    /// table, zeros included), for the metrics.
    pub due_soon: Vec<DueSoon>,
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
