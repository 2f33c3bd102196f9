//! What one reconcile reads: one namespace's objects as the stores held them, and the
//! keys the work queue runs. Every other operator module depends on this one, and it on
//! none of them.

use std::sync::Arc;

use crate::api::{
    DeploymentRing, ManagedDevice, Patch, PatchApproval, PatchException, PatchFreeze, PatchPolicy,
    PatchRollout,
};
use crate::contract::CheckIns;
use crate::engine::Snapshot;

/// What the queue reconciles.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// The statuses of the cluster-scoped Patch catalog.
    Catalog,
    /// One namespace (tenant).
    Tenant(String),
    /// One namespace's months: its `PatchReport`s.
    Reports(String),
}

/// One namespace's objects and the whole catalog, as the stores held them at one moment.
/// The engine's [`Snapshot`] borrows from it, and the writer compares against it.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    /// The namespace.
    pub namespace: String,
    /// Its PatchPolicies.
    pub policies: Vec<Arc<PatchPolicy>>,
    /// Its DeploymentRings.
    pub rings: Vec<Arc<DeploymentRing>>,
    /// Its PatchExceptions.
    pub exceptions: Vec<Arc<PatchException>>,
    /// Its ManagedDevices.
    pub devices: Vec<Arc<ManagedDevice>>,
    /// Its PatchRollouts.
    pub rollouts: Vec<Arc<PatchRollout>>,
    /// Every Patch of the catalog.
    pub patches: Vec<Arc<Patch>>,
    /// Its PatchApprovals.
    pub approvals: Vec<Arc<PatchApproval>>,
    /// Its PatchFreezes.
    pub freezes: Vec<Arc<PatchFreeze>>,
    /// Its devices' check-ins by Lease, as the check-in store held them.
    pub check_ins: Arc<CheckIns>,
}

impl Objects {
    /// The engine's view of these objects.
    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            namespace: &self.namespace,
            policies: self.policies.iter().map(Arc::as_ref).collect(),
            rings: self.rings.iter().map(Arc::as_ref).collect(),
            exceptions: self.exceptions.iter().map(Arc::as_ref).collect(),
            devices: self.devices.iter().map(Arc::as_ref).collect(),
            rollouts: self.rollouts.iter().map(Arc::as_ref).collect(),
            patches: self.patches.iter().map(Arc::as_ref).collect(),
            approvals: self.approvals.iter().map(Arc::as_ref).collect(),
            freezes: self.freezes.iter().map(Arc::as_ref).collect(),
            check_ins: &self.check_ins,
        }
    }
}
