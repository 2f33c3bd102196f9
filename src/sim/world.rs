//! An in-memory world of one tenant's objects that applies the engine's decisions the
//! way the operator applies them to an API server: statuses replaced, plan keys set or
//! removed one by one, rollouts created with an owner, Events recorded.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

use crate::api::{
    DeploymentRing, DevicePatchStatus, ManagedDevice, ManagedDeviceStatus, Patch, PatchApproval,
    PatchException, PatchFreeze, PatchPolicy, PatchRollout, PatchState, PlanEntry,
};
use crate::contract;
use crate::engine::writes::{Stored, Write, writes};
use crate::engine::{self, Cache, Changed, Decisions, Event, NewRollout, Snapshot};

/// One tenant's objects plus the shared catalog, keyed by name.
#[derive(Clone, Debug, Default)]
pub struct World {
    /// The tenant's namespace.
    pub namespace: String,
    /// PatchPolicies by name.
    pub policies: BTreeMap<String, PatchPolicy>,
    /// DeploymentRings by name.
    pub rings: BTreeMap<String, DeploymentRing>,
    /// PatchExceptions by name.
    pub exceptions: BTreeMap<String, PatchException>,
    /// ManagedDevices by name.
    pub devices: BTreeMap<String, ManagedDevice>,
    /// PatchRollouts by name.
    pub rollouts: BTreeMap<String, PatchRollout>,
    /// The Patch catalog by patch id.
    pub patches: BTreeMap<String, Patch>,
    /// PatchApprovals by name.
    pub approvals: BTreeMap<String, PatchApproval>,
    /// PatchFreezes by name.
    pub freezes: BTreeMap<String, PatchFreeze>,
    /// The devices' check-ins by Lease. The simulated agents check in by `lastSeen`
    /// ([`World::touch`]) and leave this empty; [`World::renew`] fills it, as an agent
    /// renewing its Lease would.
    pub check_ins: crate::contract::CheckIns,
    /// Every Event recorded, with the instant it was recorded at.
    pub events: Vec<(Timestamp, Event)>,
    /// Plan keys written (set or removed) so far: what an operator would send.
    pub plan_writes: u64,
    /// Status objects written so far (only those that changed).
    pub status_writes: u64,
    /// The last `resourceVersion` given to a device: like an API server, the world gives
    /// every change of a device a version of its own. A check-in that only moves
    /// `lastSeen` is not a change here (liveness is not an object write).
    pub version: u64,
    /// The devices changed (their objects, or added or removed) since the last
    /// [`World::step_changed`]; None when anything may have (before the first): what the
    /// world tells the engine's incremental pass. Every method of the world that changes
    /// a device notes it here; code that changes `devices` itself calls
    /// [`World::changed_device`] ([`World::step_changed`] relies on it). A check-in
    /// alone (`lastSeen`, a Lease) need not be noted: the engine compares every device's.
    pub changed: Option<BTreeSet<String>>,
}

impl World {
    /// An empty world for a namespace.
    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            ..Self::default()
        }
    }

    /// The evidence of `month` from the world as it stands, taken at `as_of`.
    pub fn month_report(
        &self,
        month: &crate::report::month::Month,
        as_of: Timestamp,
        previous: &[crate::report::model::TrendPoint],
    ) -> crate::report::model::MonthReport {
        crate::report::build::build(&self.snapshot(), month, as_of, previous)
    }

    /// The engine's view of the world.
    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            namespace: &self.namespace,
            policies: self.policies.values().collect(),
            rings: self.rings.values().collect(),
            exceptions: self.exceptions.values().collect(),
            devices: self.devices.values().collect(),
            rollouts: self.rollouts.values().collect(),
            patches: self.patches.values().collect(),
            approvals: self.approvals.values().collect(),
            freezes: self.freezes.values().collect(),
            check_ins: &self.check_ins,
        }
    }

    /// Runs the engine at `now` and applies what it decided; returns the decisions.
    pub fn step(&mut self, now: Timestamp) -> Decisions {
        self.record_patch_releases();
        let decisions = engine::decide(&self.snapshot(), now);
        self.apply(&decisions, now);
        decisions
    }

    /// [`World::step`] with a cache kept from earlier steps over this world, so the
    /// engine re-derives only the devices that changed (the same decisions).
    pub fn step_cached(&mut self, now: Timestamp, cache: &mut Cache) -> Decisions {
        self.record_patch_releases();
        let decisions = engine::decide_cached(&self.snapshot(), now, cache);
        self.apply(&decisions, now);
        decisions
    }

    /// [`World::step`] with the engine's incremental pass, told which devices changed
    /// since the last ([`World::changed`]), as the operator runs it (the same decisions:
    /// a debug build checks them against a full pass).
    pub fn step_changed(&mut self, now: Timestamp, cache: &mut Cache) -> Decisions {
        self.record_patch_releases();
        let told = self.changed.replace(BTreeSet::new());
        // The fleet stamps `lastSeen` on every agent that checked in, without telling.
        let changed = told
            .as_ref()
            .map_or(Changed::Everything, Changed::DevicesAndCheckIns);
        let decisions = engine::decide_changed(&self.snapshot(), changed, now, cache);
        debug_assert_eq!(
            decisions,
            engine::decide(&self.snapshot(), now),
            "an incremental pass decides what a full pass decides"
        );
        self.apply(&decisions, now);
        decisions
    }

    /// Notes that a device changed (or was added or removed) outside the world's own
    /// methods, for the next [`World::step_changed`].
    pub fn changed_device(&mut self, name: &str) {
        if let Some(changed) = self.changed.as_mut() {
            changed.insert(name.to_string());
        }
    }

    /// Gives a rollout changed outside the world's own methods a new `resourceVersion`,
    /// as an API server would (the engine replays a rollout's decision only while its
    /// version is the one it decided on).
    pub fn changed_rollout(&mut self, name: &str) {
        let version = self.next_version();
        if let Some(r) = self.rollouts.get_mut(name) {
            r.metadata.resource_version = Some(version);
        }
    }

    /// Records each patch's first release time, as the operator does in `Patch.status`.
    pub fn record_patch_releases(&mut self) {
        for patch in self.patches.values_mut() {
            patch.status = Some(engine::severity::patch_status(patch));
        }
    }

    /// Applies decisions as the operator would: the writes [`writes`] says they take,
    /// each applied as an API server would apply its request.
    pub fn apply(&mut self, d: &Decisions, now: Timestamp) {
        for write in writes(self, d) {
            self.apply_write(write, now);
        }
    }

    fn apply_write(&mut self, write: Write, now: Timestamp) {
        match write {
            Write::CreateRollout(new) => self.create_rollout(new, now),
            Write::RolloutStatus(name, status) => {
                let version = self.next_version();
                if let Some(r) = self.rollouts.get_mut(&name) {
                    r.metadata.resource_version = Some(version);
                    r.status = Some(status);
                    self.status_writes += 1;
                }
            }
            Write::PolicyStatus(name, status) => {
                if let Some(p) = self.policies.get_mut(&name) {
                    p.status = Some(status);
                    self.status_writes += 1;
                }
            }
            Write::RingStatus(name, status) => {
                if let Some(r) = self.rings.get_mut(&name) {
                    r.status = Some(status);
                    self.status_writes += 1;
                }
            }
            Write::ExceptionStatus(name, status) => {
                if let Some(e) = self.exceptions.get_mut(&name) {
                    e.status = Some(status);
                    self.status_writes += 1;
                }
            }
            Write::Plan(device, keys) => {
                self.changed_device(&device);
                let version = self.next_version();
                if let Some(dev) = self.devices.get_mut(&device) {
                    dev.metadata.resource_version = Some(version);
                    self.plan_writes += keys.len() as u64;
                    set_keys(&mut dev.spec.plan.install, keys.install);
                    set_keys(&mut dev.spec.plan.uninstall, keys.uninstall);
                }
            }
            Write::Compliance(device, compliance) => {
                self.changed_device(&device);
                let version = self.next_version();
                if let Some(dev) = self.devices.get_mut(&device) {
                    dev.metadata.resource_version = Some(version);
                    let status = dev.status.get_or_insert_with(ManagedDeviceStatus::default);
                    status.compliance = Some(compliance);
                    self.status_writes += 1;
                }
            }
            Write::Event(e) => self.events.push((now, e)),
        }
    }

    /// A rollout created as an API server creates it: generation 1, owned by its policy.
    fn create_rollout(&mut self, new: NewRollout, now: Timestamp) {
        let mut r = PatchRollout::new(&new.name, new.spec);
        r.metadata.namespace = Some(self.namespace.clone());
        r.metadata.generation = Some(1);
        r.metadata.creation_timestamp = Some(Time(now));
        r.metadata.resource_version = Some(self.next_version());
        r.metadata.owner_references = self.policies.get(&r.spec.policy).map(|p| {
            vec![OwnerReference {
                api_version: "patching.ringmaster.dev/v1alpha1".into(),
                kind: "PatchPolicy".into(),
                name: r.spec.policy.clone(),
                uid: p.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]
        });
        self.rollouts.insert(new.name, r);
    }

    /// Sets what a device's agent reports for one patch (adding the patch if new) and
    /// marks the device seen at `at`.
    pub fn report(&mut self, device: &str, patch: &str, state: PatchState, at: Timestamp) {
        let Some(entry) = self.report_of(device, patch, at) else {
            return;
        };
        if matches!(state, PatchState::Installing) {
            entry.attempts += 1;
            entry.last_attempt_at = Some(at);
        }
        if matches!(state, PatchState::Installed) && entry.installed_at.is_none() {
            entry.installed_at = Some(at);
        }
        if matches!(state, PatchState::RolledBack | PatchState::Missing) {
            entry.installed_at = None;
        }
        entry.state = state;
    }

    /// An agent starting the install `entry` asks for: the report as the device contract
    /// has it ([`contract::start`]), and the device seen at `at`.
    pub fn start(&mut self, device: &str, patch: &str, entry: &PlanEntry, at: Timestamp) {
        if let Some(r) = self.report_of(device, patch, at) {
            contract::start(r, Some(entry), at);
        }
    }

    /// An agent ending an attempt: the report as the device contract has it
    /// ([`contract::finish`]), and the device seen at `at`.
    pub fn finish(&mut self, device: &str, patch: &str, outcome: contract::Outcome, at: Timestamp) {
        if let Some(r) = self.report_of(device, patch, at) {
            contract::finish(r, outcome, at);
        }
    }

    /// The device's report for `patch` (added as Missing if new), the device seen at `at`.
    fn report_of(
        &mut self,
        device: &str,
        patch: &str,
        at: Timestamp,
    ) -> Option<&mut DevicePatchStatus> {
        self.changed_device(device);
        let version = self.next_version();
        let dev = self.devices.get_mut(device)?;
        dev.metadata.resource_version = Some(version);
        let status = dev.status.get_or_insert_with(ManagedDeviceStatus::default);
        status.last_seen = Some(at);
        let i = match status.patches.iter().position(|p| p.id == patch) {
            Some(i) => i,
            None => {
                status.patches.push(DevicePatchStatus::missing(patch));
                status.patches.len() - 1
            }
        };
        status.patches.get_mut(i)
    }

    /// A new `resourceVersion`.
    fn next_version(&mut self) -> String {
        self.version += 1;
        self.version.to_string()
    }

    /// Gives every device without a `resourceVersion` one (as an API server has them).
    pub fn version_devices(&mut self) {
        for dev in self.devices.values_mut() {
            if dev.metadata.resource_version.is_none() {
                self.version += 1;
                dev.metadata.resource_version = Some(self.version.to_string());
            }
        }
    }

    /// Marks a device as seen at `at` without changing its patches.
    pub fn touch(&mut self, device: &str, at: Timestamp) {
        self.changed_device(device);
        if let Some(dev) = self.devices.get_mut(device) {
            dev.status
                .get_or_insert_with(ManagedDeviceStatus::default)
                .last_seen = Some(at);
        }
    }

    /// Device `device` checks in at `at` by renewing its Lease: no object of the world
    /// changes (liveness is not an object write).
    pub fn renew(&mut self, device: &str, at: Timestamp) {
        self.changed_device(device);
        self.check_ins.insert(device.to_string(), at);
    }

    /// The Events recorded with a reason, in order.
    pub fn events_with(&self, reason: &str) -> Vec<&(Timestamp, Event)> {
        self.events
            .iter()
            .filter(|(_, e)| e.reason.as_str() == reason)
            .collect()
    }
}

/// Sets (`Some`) or removes (`None`) plan keys, as a merge patch of the map does.
fn set_keys(map: &mut BTreeMap<String, PlanEntry>, keys: BTreeMap<String, Option<PlanEntry>>) {
    for (id, entry) in keys {
        match entry {
            Some(e) => map.insert(id, e),
            None => map.remove(&id),
        };
    }
}

impl Stored for World {
    fn policy(&self, name: &str) -> Option<&PatchPolicy> {
        self.policies.get(name)
    }

    fn ring(&self, name: &str) -> Option<&DeploymentRing> {
        self.rings.get(name)
    }

    fn exception(&self, name: &str) -> Option<&PatchException> {
        self.exceptions.get(name)
    }

    fn device(&self, name: &str) -> Option<&ManagedDevice> {
        self.devices.get(name)
    }

    fn rollout(&self, name: &str) -> Option<&PatchRollout> {
        self.rollouts.get(name)
    }
}
