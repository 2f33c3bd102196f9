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
pub(in crate::engine) mod kept;
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

pub use kept::Changed;
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
    full(snap, gather::gather(snap, now), now, cache, false)
}

/// Decides everything for one tenant at `now`, told which devices changed since the
/// last pass with this `cache` ([`Changed`]); decides exactly what [`decide`] decides.
///
/// When nothing else that is kept changed, the pass does work in proportion to what
/// changed ([`kept`]): it counts only those devices again, re-decides only the rollouts
/// they are members of, and gives only their summaries. Otherwise (the first pass, a
/// spec, the catalog, a device added or removed) it is a full pass that keeps what the
/// next one needs. `snap.devices` must be in name order.
pub fn decide_changed(
    snap: &Snapshot<'_>,
    changed: Changed<'_>,
    now: Timestamp,
    cache: &mut Cache,
) -> Decisions {
    let t = gather::gather(snap, now);
    let resumed = match changed {
        Changed::Devices(names) => kept::resume(snap, &t, names, false, now, cache),
        Changed::DevicesAndCheckIns(names) => kept::resume(snap, &t, names, true, now, cache),
        Changed::Everything => None,
    };
    let Some(mut r) = resumed else {
        return full(snap, t, now, cache, true);
    };
    cache.incremental += 1;
    let mut d = Decisions::default();
    d.wake(r.w.wake, now);
    let mut replay = kept::Replay {
        memos: &mut r.memos,
        cache,
        reuse: true,
        pool: &r.pool,
    };
    let ring_active = decide_rollouts(&t, &mut r.w, &r.governed, Some(&mut replay), &mut d, now);
    statuses(&t, &r.w, &ring_active, &mut d, now);
    status::devices(&t, &r.w, cache, &mut d, r.summaries.iter().copied());
    kept::keep(cache, r);
    finish(d)
}

/// A pass over every device; with `keep_all`, one that keeps in `cache` what an
/// incremental pass starts from.
fn full(
    snap: &Snapshot<'_>,
    t: gather::Tenant<'_>,
    now: Timestamp,
    cache: &mut Cache,
    keep_all: bool,
) -> Decisions {
    let mut d = Decisions::default();
    let keep_all = keep_all && cache.keep && !cache.record;
    cache.kept = None;
    t.revalidate(cache);
    let mut w = walk::walk(&t, &snap.devices, cache, now, keep_all);
    d.wake(w.wake, now);
    let governed = status::Governed::count(&t, &w);
    let mut memos = vec![None; if keep_all { w.slots.len() } else { 0 }];
    let pool = std::cell::RefCell::default();
    let ring_active = {
        let mut replay = kept::Replay {
            memos: &mut memos,
            cache,
            reuse: false,
            pool: &pool,
        };
        let replay = keep_all.then_some(&mut replay);
        decide_rollouts(&t, &mut w, &governed, replay, &mut d, now)
    };
    statuses(&t, &w, &ring_active, &mut d, now);
    status::devices(&t, &w, cache, &mut d, 0..w.devices.len());
    if keep_all {
        let kept = kept::Kept::new(w, governed, memos, pool, cache);
        cache.kept = Some(Box::new(kept));
    }
    finish(d)
}

/// Decides every policy's rollouts and gives its status; returns each ring's count of
/// active rollouts.
fn decide_rollouts<'a>(
    t: &gather::Tenant<'a>,
    w: &mut walk::Walked<'a>,
    governed: &status::Governed,
    mut replay: Option<&mut kept::Replay<'_>>,
    d: &mut Decisions,
    now: Timestamp,
) -> Vec<u32> {
    let mut ring_active: Vec<u32> = vec![0; t.rings.len()];
    for pi in 0..t.policies.len() {
        let replay = replay.as_deref_mut();
        let summary = rollouts::policy_rollouts(t, w, pi, &mut ring_active, d, now, replay);
        status::policy(t, w, governed, pi, summary, d, now);
    }
    ring_active
}

/// The rings' and exceptions' statuses.
fn statuses(
    t: &gather::Tenant<'_>,
    w: &walk::Walked<'_>,
    ring_active: &[u32],
    d: &mut Decisions,
    now: Timestamp,
) {
    status::rings(t, w, ring_active, d, now);
    status::exceptions(t, w, d, now);
}

/// The decisions in their order: grouped by object, each object's Events in the order
/// they happened.
fn finish(mut d: Decisions) -> Decisions {
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
