//! One decision pass over a tenant (a namespace), in stages:
//!
//! | stage | module | what it does |
//! | --- | --- | --- |
//! | gather | [`gather`] | compiles the tenant's specs and the catalog; checks the cache against them |
//! | gather | [`walk`] | walks the devices: membership, coverage, SLA clocks, tallies, rollout members |
//! | decide | [`rollouts`] | approvals, and every rollout ring by ring ([`crate::engine::rollout`]) |
//! | status | [`status`] | the statuses of policies, rings, exceptions and devices, and their Events |
//!
//! What comes out ([`Decisions`]) is turned into writes by [`crate::engine::writes`]; the
//! shells apply those. [`spec_problems`] runs the same checks for `ringmaster validate`.

mod gather;
pub mod ledger;
mod problems;
mod rollouts;
mod status;
mod walk;

use jiff::Timestamp;

use crate::api::{
    DeploymentRing, ManagedDevice, Patch, PatchApproval, PatchException, PatchFreeze, PatchPolicy,
    PatchRollout,
};

use crate::contract::CheckIns;

use super::cache::Cache;
use super::decision::Decisions;

pub use problems::{SpecProblem, spec_problems};

/// The objects one decision pass reads: a namespace's objects and the shared catalog.
#[derive(Clone, Debug)]
pub struct Snapshot<'a> {
    /// The namespace (tenant).
    pub namespace: &'a str,
    /// Its PatchPolicies.
    pub policies: Vec<&'a PatchPolicy>,
    /// Its DeploymentRings.
    pub rings: Vec<&'a DeploymentRing>,
    /// Its PatchExceptions.
    pub exceptions: Vec<&'a PatchException>,
    /// Its ManagedDevices.
    pub devices: Vec<&'a ManagedDevice>,
    /// Its PatchRollouts.
    pub rollouts: Vec<&'a PatchRollout>,
    /// The cluster's Patch catalog.
    pub patches: Vec<&'a Patch>,
    /// Its PatchApprovals: people's decisions about patches, per policy.
    pub approvals: Vec<&'a PatchApproval>,
    /// Its PatchFreezes: people's change freezes on the tenant or some rings.
    pub freezes: Vec<&'a PatchFreeze>,
    /// Its devices' check-ins by Lease ([`CheckIns::none`] where there are none): a
    /// device was last seen at the later of its `status.lastSeen` and its check-in
    /// ([`crate::contract::last_seen`]).
    pub check_ins: &'a CheckIns,
}

impl Default for Snapshot<'_> {
    fn default() -> Self {
        Self {
            namespace: "",
            policies: Vec::new(),
            rings: Vec::new(),
            exceptions: Vec::new(),
            devices: Vec::new(),
            rollouts: Vec::new(),
            patches: Vec::new(),
            approvals: Vec::new(),
            freezes: Vec::new(),
            check_ins: CheckIns::none(),
        }
    }
}

/// Decides everything for one tenant at `now`.
pub fn decide(snap: &Snapshot<'_>, now: Timestamp) -> Decisions {
    decide_cached(snap, now, &mut Cache::one_pass())
}

/// Decides everything for one tenant at `now`, reusing what `cache` holds from earlier
/// passes over the same tenant where its inputs are unchanged, and leaving in it what
/// this pass derived. Decides exactly what [`decide`] decides.
pub fn decide_cached(snap: &Snapshot<'_>, now: Timestamp, cache: &mut Cache) -> Decisions {
    let mut d = Decisions::default();
    let t = gather::gather(snap, now);
    t.revalidate(cache);
    let mut w = walk::walk(&t, &snap.devices, cache, now);
    d.wake(w.wake, now);
    let governed = status::Governed::count(&t, &w);
    let mut ring_active: Vec<u32> = vec![0; t.rings.len()];
    for pi in 0..t.policies.len() {
        let summary = rollouts::policy_rollouts(&t, &mut w, pi, &mut ring_active, &mut d, now);
        status::policy(&t, &w, &governed, pi, summary, &mut d, now);
    }
    status::rings(&t, &w, &ring_active, &mut d, now);
    status::exceptions(&t, &w, &mut d, now);
    status::devices(&t, &w, cache, &mut d);
    // Grouped by object, each object's Events in the order they happened.
    d.events
        .sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    d
}

/// A patch id as part of an object name: lower-cased, with the characters a Kubernetes
/// name cannot hold replaced by `-` (`ALSA-2024:1234` → `alsa-2024-1234`).
pub fn name_part(id: &str) -> String {
    let part: String = id
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    part.trim_matches(|c| c == '-' || c == '.').to_string()
}

/// The rollout name for a patch under a policy: `<policy>.<patch id>`, lower-cased, with
/// characters a Kubernetes name cannot hold replaced by `-`.
pub fn rollout_name(policy: &str, patch: &str) -> String {
    let mut name = format!("{policy}.{}", name_part(patch));
    name.truncate(253);
    name.trim_end_matches(['-', '.']).to_string()
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}
