//! Gather: the tenant's specs and the catalog compiled once per pass — patch ids
//! interned, severities and release times, rings' selectors and windows, policies' rings
//! resolved, exceptions evaluated — and whether the per-device results cached from the
//! previous pass were derived under these very specs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;

use crate::api::{
    DeploymentRing, Freeze, Patch, PatchException, PatchFreeze, PatchPolicy, PatchRollout, Severity,
};
use crate::contract::CheckIns;
use crate::engine::approval::{self, Decided};
use crate::engine::cache::{Cache, ExceptionKey, TenantKey};
use crate::engine::exceptions::{self, Evaluated, Limits};
use crate::engine::selector::Selector;
use crate::engine::severity::{Risk, release_time, risk_of};
use crate::engine::windows::{self, Schedule};

use super::{Snapshot, name_of};

/// A tenant's specs and the catalog, compiled for one pass. Every per-patch table is
/// indexed by the patch's position in `patches`.
pub(super) struct Tenant<'a> {
    /// The catalog.
    pub patches: Vec<&'a Patch>,
    /// Patch id to position.
    pub catalog: HashMap<&'a str, usize, FastHash>,
    /// Each patch's risk inputs: severity and exploitation data.
    pub risk: Vec<Risk>,
    /// Per (policy, patch), at `policy * patches.len() + patch`: the severity under the
    /// policy's risk rules, and the latest its deadlines may be.
    pub graded: Vec<(Severity, Option<Timestamp>)>,
    /// Each patch's SLA release time.
    pub released: Vec<Timestamp>,
    /// Rings, by name.
    pub rings: Vec<RingView<'a>>,
    /// Policies, by name.
    pub policies: Vec<PolicyView<'a>>,
    /// Exceptions, by name, and what they are at `now`.
    pub excs: Vec<&'a PatchException>,
    /// Each exception evaluated.
    pub evals: Vec<Evaluated>,
    /// Per patch, the exceptions that name it.
    pub exc_by_patch: Vec<Vec<usize>>,
    /// Per patch id, the patches that supersede it.
    pub superseders: HashMap<&'a str, Vec<usize>, FastHash>,
    /// The rollouts that exist, by policy name and patch id.
    pub existing: Existing<'a>,
    /// The same, per (policy, patch) of the pass, at `policy * patches.len() + patch`.
    pub rollouts: Vec<Option<&'a PatchRollout>>,
    /// How many devices the pass reads (no member list is longer).
    pub devices: usize,
    /// The devices' check-ins by Lease (read with [`crate::contract::last_seen`]).
    pub check_ins: &'a CheckIns,
}

/// Compiles the tenant's specs and the catalog at `now`.
pub(super) fn gather<'a>(snap: &Snapshot<'a>, now: Timestamp) -> Tenant<'a> {
    let patches: Vec<&Patch> = snap.patches.clone();
    let catalog: HashMap<&str, usize, FastHash> = patches
        .iter()
        .enumerate()
        .map(|(i, p)| (p.spec.id.as_str(), i))
        .collect();
    let risk: Vec<Risk> = patches.iter().map(|p| risk_of(p)).collect();
    let severity: Vec<Severity> = risk.iter().map(|r| r.base).collect();
    let released: Vec<Timestamp> = patches.iter().map(|p| release_time(p)).collect();
    let rings = compile_rings(snap);
    let policies = compile_policies(snap, &rings);
    let graded = policies
        .iter()
        .flat_map(|p| {
            let rules = p.policy.spec.risk.as_ref();
            risk.iter()
                .map(move |r| (r.severity(rules), r.deadline_cap(rules)))
        })
        .collect();
    let limits = Limits::combined(snap.policies.iter().copied());
    let mut excs: Vec<&PatchException> = snap.exceptions.clone();
    excs.sort_by(|a, b| name_of(&a.metadata).cmp(name_of(&b.metadata)));
    let evals: Vec<Evaluated> = excs
        .iter()
        .map(|e| exceptions::evaluate(e, &limits, |id| catalog.get(id).map(|i| severity[*i]), now))
        .collect();
    let mut exc_by_patch: Vec<Vec<usize>> = vec![Vec::new(); patches.len()];
    for (i, e) in excs.iter().enumerate() {
        for p in &e.spec.patches {
            if let Some(pi) = catalog.get(p.as_str()) {
                exc_by_patch[*pi].push(i);
            }
        }
    }
    // Which patches supersede each id, indexed once: a catalog of thousands stays linear.
    let mut superseders: HashMap<&str, Vec<usize>, FastHash> = HashMap::default();
    for (i, p) in patches.iter().enumerate() {
        for old in &p.spec.supersedes {
            superseders.entry(old.as_str()).or_default().push(i);
        }
    }
    let existing: Existing<'a> = snap
        .rollouts
        .iter()
        .map(|r| ((r.spec.policy.as_str(), r.spec.patch.as_str()), *r))
        .collect();
    let rollouts = index_rollouts(&existing, &policies, &catalog, patches.len());
    Tenant {
        patches,
        catalog,
        risk,
        graded,
        released,
        rings,
        policies,
        excs,
        evals,
        exc_by_patch,
        superseders,
        existing,
        rollouts,
        devices: snap.devices.len(),
        check_ins: snap.check_ins,
    }
}

/// The rollouts that exist, by policy name and patch id.
pub(super) type Existing<'a> = BTreeMap<(&'a str, &'a str), &'a PatchRollout>;

/// The rollouts that exist, by (policy, patch) position; those of a policy or patch the
/// pass does not know are left out.
fn index_rollouts<'a>(
    existing: &Existing<'a>,
    policies: &[PolicyView<'a>],
    catalog: &HashMap<&str, usize, FastHash>,
    patches: usize,
) -> Vec<Option<&'a PatchRollout>> {
    let by_name: HashMap<&str, usize> = policies
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name, i))
        .collect();
    let mut at = vec![None; policies.len() * patches];
    for ((policy, patch), r) in existing {
        if let (Some(pi), Some(ix)) = (by_name.get(policy), catalog.get(patch)) {
            at[pi * patches + ix] = Some(*r);
        }
    }
    at
}

impl Tenant<'_> {
    /// Whether the cache's entries were derived under these very specs.
    pub fn unchanged_for(&self, cache: &Cache) -> bool {
        cache.tenant.as_ref().is_some_and(|key| self.unchanged(key))
    }

    /// Drops what `cache` holds when it was derived under other specs than these (a
    /// cache that keeps nothing is left alone).
    pub fn revalidate(&self, cache: &mut Cache) {
        if !cache.keep {
            return;
        }
        let unchanged = cache.tenant.as_ref().is_some_and(|key| self.unchanged(key));
        if !unchanged {
            cache.tenant = Some(self.key());
            cache.devices.clear();
            cache.tiers.clear();
            cache.member_counts.clear();
        }
    }
}

pub(super) struct RingView<'a> {
    pub(super) ring: &'a DeploymentRing,
    pub(super) name: &'a str,
    pub(super) selector: Option<Selector>,
    pub(super) schedule: Schedule,
    /// Its own freezes and people's (`PatchFreeze`s naming it or the whole tenant).
    pub(super) freezes: Vec<Freeze>,
    pub(super) problem: Option<String>,
}

pub(super) struct PolicyView<'a> {
    pub(super) policy: &'a PatchPolicy,
    pub(super) name: &'a str,
    pub(super) selector: Option<Selector>,
    /// Ring indices into `rings`, in the policy's order; None for a missing ring.
    pub(super) rings: Vec<(&'a str, Option<usize>)>,
    /// People's decisions about patches under it (`PatchApproval`s naming it).
    pub(super) people: Vec<Decided>,
    /// Its own freezes and people's tenant-wide ones (`PatchFreeze`s naming no ring).
    pub(super) freezes: Vec<Freeze>,
    pub(super) problems: Vec<String>,
}

impl PolicyView<'_> {
    pub(super) fn blocked(&self) -> Option<String> {
        (!self.problems.is_empty())
            .then(|| format!("policy cannot roll out: {}", self.problems.join("; ")))
    }
}

/// A spec's own freezes followed by the `PatchFreeze`s that `covers` selects, each as
/// [`windows::patch_freeze`] makes it a [`Freeze`].
fn with_levers(
    own: &[Freeze],
    levers: &[&PatchFreeze],
    covers: impl Fn(&PatchFreeze) -> bool,
) -> Vec<Freeze> {
    let mut levers: Vec<&&PatchFreeze> = levers.iter().filter(|f| covers(f)).collect();
    levers.sort_by(|a, b| name_of(&a.metadata).cmp(name_of(&b.metadata)));
    own.iter()
        .cloned()
        .chain(levers.into_iter().map(|f| windows::patch_freeze(f)))
        .collect()
}

/// FNV-1a: patch ids are short and trusted to be few, so a fast hasher beats SipHash here.
#[derive(Clone, Copy, Default)]
pub(super) struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

pub(super) type FastHash = std::hash::BuildHasherDefault<Fnv>;

impl Tenant<'_> {
    /// Whether the tenant-wide inputs of the cached device results are the ones this pass
    /// sees (compared in place: a pass over an unchanged tenant copies nothing).
    fn unchanged(&self, key: &TenantKey) -> bool {
        let Tenant {
            policies,
            rings,
            excs,
            evals,
            patches,
            risk,
            released,
            ..
        } = self;
        key.policies.len() == policies.len()
            && key
                .policies
                .iter()
                .zip(policies)
                .all(|((n, s, people), p)| {
                    n == p.name && *s == p.policy.spec && *people == p.people
                })
            && key.rings.len() == rings.len()
            && key
                .rings
                .iter()
                .zip(rings)
                .all(|((n, s), r)| n == r.name && *s == r.ring.spec)
            && key.exceptions.len() == excs.len()
            && key
                .exceptions
                .iter()
                .zip(excs.iter().zip(evals))
                .all(|(k, (e, ev))| {
                    k.name == name_of(&e.metadata)
                        && k.phase == ev.phase
                        && k.active_since == ev.active_since
                        && k.blocks_assignment == ev.blocks_assignment
                        && k.spec == e.spec
                })
            && key.catalog.len() == patches.len()
            && key
                .catalog
                .iter()
                .zip(patches.iter().zip(risk.iter().zip(released)))
                .all(|((id, k, rel), (p, (r, at)))| id == &p.spec.id && k == r && rel == at)
    }

    /// The tenant-wide inputs of the device results this pass derives, to compare the next
    /// pass's with.
    fn key(&self) -> TenantKey {
        let Tenant {
            policies,
            rings,
            excs,
            evals,
            patches,
            risk,
            released,
            ..
        } = self;
        TenantKey {
            policies: policies
                .iter()
                .map(|p| (p.name.to_string(), p.policy.spec.clone(), p.people.clone()))
                .collect(),
            rings: rings
                .iter()
                .map(|r| (r.name.to_string(), r.ring.spec.clone()))
                .collect(),
            exceptions: excs
                .iter()
                .zip(evals)
                .map(|(e, ev)| ExceptionKey {
                    name: name_of(&e.metadata).to_string(),
                    spec: e.spec.clone(),
                    phase: ev.phase,
                    active_since: ev.active_since,
                    blocks_assignment: ev.blocks_assignment,
                })
                .collect(),
            catalog: patches
                .iter()
                .zip(risk.iter().zip(released))
                .map(|(p, (r, at))| (p.spec.id.clone(), *r, *at))
                .collect(),
        }
    }
}

/// Compiles every ring's selector and windows, sorted by name; a ring that cannot be
/// used carries its problem.
pub(super) fn compile_rings<'a>(snap: &Snapshot<'a>) -> Vec<RingView<'a>> {
    let mut rings: Vec<RingView<'_>> = snap
        .rings
        .iter()
        .map(|r| {
            let mut problem = None;
            let selector = match Selector::compile(&r.spec.device_selector) {
                Ok(s) => Some(s),
                Err(e) => {
                    problem = Some(format!("spec.deviceSelector.{e}"));
                    None
                }
            };
            let schedule = match Schedule::compile(&r.spec.maintenance_windows) {
                Ok(s) => s,
                Err(e) => {
                    problem.get_or_insert(format!("spec.{e}"));
                    Schedule::always()
                }
            };
            let name = name_of(&r.metadata);
            RingView {
                ring: r,
                name,
                selector,
                schedule,
                freezes: with_levers(&r.spec.freezes, &snap.freezes, |f| {
                    f.spec.rings.iter().any(|n| n == name)
                }),
                problem,
            }
        })
        .collect();
    rings.sort_by(|a, b| a.name.cmp(b.name));
    rings
}

/// Compiles every policy's selector and resolves its rings, sorted by name; what makes
/// a policy unusable is in its `problems`.
pub(super) fn compile_policies<'a>(
    snap: &Snapshot<'a>,
    rings: &[RingView<'a>],
) -> Vec<PolicyView<'a>> {
    let ring_index: HashMap<&str, usize> =
        rings.iter().enumerate().map(|(i, r)| (r.name, i)).collect();
    let mut policies: Vec<PolicyView<'_>> = snap
        .policies
        .iter()
        .map(|p| {
            let mut problems = Vec::new();
            let selector = match Selector::compile(&p.spec.device_selector) {
                Ok(s) => Some(s),
                Err(e) => {
                    problems.push(format!("spec.deviceSelector.{e}"));
                    None
                }
            };
            let mut seen = BTreeSet::new();
            let rings_of = p
                .spec
                .rings
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let idx = ring_index.get(name.as_str()).copied();
                    match idx {
                        None => problems.push(format!(
                            "spec.rings[{i}]: DeploymentRing {name:?} not found"
                        )),
                        Some(r) => {
                            if let Some(problem) = &rings[r].problem {
                                problems.push(format!(
                                    "spec.rings[{i}]: DeploymentRing {name:?} is invalid: {problem}"
                                ));
                            }
                        }
                    }
                    if !seen.insert(name.as_str()) {
                        problems.push(format!("spec.rings[{i}]: {name:?} is listed twice"));
                    }
                    (name.as_str(), idx)
                })
                .collect();
            if p.spec.rings.is_empty() {
                problems.push("spec.rings: no rings".into());
            }
            let name = name_of(&p.metadata);
            PolicyView {
                policy: p,
                name,
                selector,
                rings: rings_of,
                people: approval::decided_for(snap.approvals.iter().copied(), name),
                freezes: with_levers(&p.spec.freezes, &snap.freezes, |f| f.spec.rings.is_empty()),
                problems,
            }
        })
        .collect();
    policies.sort_by(|a, b| a.name.cmp(b.name));

    policies
}
