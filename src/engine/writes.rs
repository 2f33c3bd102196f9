//! From decisions to writes: the one place that says what a shell sends.
//!
//! [`Decisions`] are desired state: every status, every plan change the rollouts want.
//! [`writes`] compares them with the objects as the shell holds them (its reflector
//! stores, or the simulator's world) and returns only what changes something, one
//! [`Write`] per request an API server would get. The operator turns each into a request
//! (`operator::apply`); the simulator applies each to its world (`sim::World::apply`), so
//! the two cannot disagree on what is written.

use std::collections::BTreeMap;

use crate::api::{
    DeploymentRing, DeploymentRingStatus, DeviceCompliance, ManagedDevice, PatchException,
    PatchExceptionStatus, PatchPolicy, PatchPolicyStatus, PatchRollout, PatchRolloutStatus,
    PlanEntry,
};

use super::decision::{Decisions, Event, NewRollout, PlanList};

/// The objects a shell holds, looked up by name (in the decisions' namespace).
pub trait Stored {
    /// A PatchPolicy.
    fn policy(&self, name: &str) -> Option<&PatchPolicy>;
    /// A DeploymentRing.
    fn ring(&self, name: &str) -> Option<&DeploymentRing>;
    /// A PatchException.
    fn exception(&self, name: &str) -> Option<&PatchException>;
    /// A ManagedDevice.
    fn device(&self, name: &str) -> Option<&ManagedDevice>;
    /// A PatchRollout.
    fn rollout(&self, name: &str) -> Option<&PatchRollout>;
}

/// The keys of one device's plan to set (`Some`) or remove (`None`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanKeys {
    /// `spec.plan.install` keys.
    pub install: BTreeMap<String, Option<PlanEntry>>,
    /// `spec.plan.uninstall` keys.
    pub uninstall: BTreeMap<String, Option<PlanEntry>>,
}

impl PlanKeys {
    /// How many keys it sets or removes.
    pub fn len(&self) -> usize {
        self.install.len() + self.uninstall.len()
    }

    /// Whether it sets or removes nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One write: what one request to an API server would carry.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Create a PatchRollout, owned by the policy its spec names.
    CreateRollout(NewRollout),
    /// A rollout's status (existing, or created by a `CreateRollout` before it).
    RolloutStatus(String, PatchRolloutStatus),
    /// A policy's status.
    PolicyStatus(String, PatchPolicyStatus),
    /// A ring's status.
    RingStatus(String, DeploymentRingStatus),
    /// An exception's status.
    ExceptionStatus(String, PatchExceptionStatus),
    /// Plan keys of one device (`spec.plan`, only the keys that change).
    Plan(String, PlanKeys),
    /// A device's `status.compliance`.
    Compliance(String, DeviceCompliance),
    /// An Event.
    Event(Event),
}

/// The writes that take `stored` to what `d` decided, in the order they are sent:
/// creations, statuses, plans, device summaries, Events. A status equal to the stored
/// one, a plan key already as decided and anything about an object the shell does not
/// hold are left out.
pub fn writes(stored: &impl Stored, d: &Decisions) -> Vec<Write> {
    let mut out = Vec::new();
    for new in &d.new_rollouts {
        if stored.rollout(&new.name).is_none() {
            out.push(Write::CreateRollout(new.clone()));
        }
    }
    for (name, status) in &d.rollouts {
        let created = d.new_rollouts.iter().any(|n| &n.name == name);
        let old = match stored.rollout(name) {
            Some(r) => r.status.as_ref(),
            None if created => None,
            None => continue,
        };
        if old != Some(&**status) {
            out.push(Write::RolloutStatus(
                name.clone(),
                PatchRolloutStatus::clone(status),
            ));
        }
    }
    statuses(
        &mut out,
        &d.policies,
        |n| stored.policy(n).map(|o| o.status.as_ref()),
        Write::PolicyStatus,
    );
    statuses(
        &mut out,
        &d.rings,
        |n| stored.ring(n).map(|o| o.status.as_ref()),
        Write::RingStatus,
    );
    statuses(
        &mut out,
        &d.exceptions,
        |n| stored.exception(n).map(|o| o.status.as_ref()),
        Write::ExceptionStatus,
    );
    out.extend(
        plans(stored, d)
            .into_iter()
            .map(|(device, keys)| Write::Plan(device, keys)),
    );
    for (name, compliance) in &d.devices {
        let Some(dev) = stored.device(name) else {
            continue;
        };
        if dev.status.as_ref().and_then(|s| s.compliance.as_ref()) != Some(compliance) {
            out.push(Write::Compliance(name.clone(), compliance.clone()));
        }
    }
    out.extend(d.events.iter().cloned().map(Write::Event));
    out
}

/// A status write for each decided status that differs from its stored object's.
fn statuses<'s, S: PartialEq + Clone + 's>(
    out: &mut Vec<Write>,
    decided: &[(String, S)],
    stored: impl Fn(&str) -> Option<Option<&'s S>>,
    write: impl Fn(String, S) -> Write,
) {
    for (name, status) in decided {
        if let Some(old) = stored(name)
            && old != Some(status)
        {
            out.push(write(name.clone(), status.clone()));
        }
    }
}

/// The plan keys that change, by device in name order.
fn plans(stored: &impl Stored, d: &Decisions) -> BTreeMap<String, PlanKeys> {
    let mut out: BTreeMap<String, PlanKeys> = BTreeMap::new();
    for c in &d.plan {
        let Some(dev) = stored.device(&c.device) else {
            continue;
        };
        let map = match c.list {
            PlanList::Install => &dev.spec.plan.install,
            PlanList::Uninstall => &dev.spec.plan.uninstall,
        };
        let changes = match &c.entry {
            Some(e) => map.get(&c.patch) != Some(e),
            None => map.contains_key(&c.patch),
        };
        if !changes {
            continue;
        }
        let keys = out.entry(c.device.clone()).or_default();
        let list = match c.list {
            PlanList::Install => &mut keys.install,
            PlanList::Uninstall => &mut keys.uninstall,
        };
        list.insert(c.patch.clone(), c.entry.clone());
    }
    out
}
