//! One decision pass over a tenant (a namespace): membership, exceptions, SLA clocks,
//! approvals and every rollout, from a snapshot of its objects and an instant.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;

use crate::api::{
    ApprovalRecord, ApprovalState, ApprovalSummary, DEFAULT_TIER, DeploymentRing,
    DeploymentRingStatus, DeviceCompliance, DevicePatchStatus, Duration, ExceptionPhase,
    ManagedDevice, Patch, PatchException, PatchExceptionStatus, PatchPolicy, PatchPolicyStatus,
    PatchRollout, PatchRolloutSpec, PatchState, PendingApproval, PendingState, PolicyConflict,
    RingPhase, RolloutPhase, Severity, SlaTier,
};

use crate::contract;

use super::approval::{self, Approval, Outcomes};
use super::cache::{Cache, Derived, ExceptionKey, Pair, Summary, TenantKey};
use super::decision::{Decisions, Event, EventType, Health, Kind, NewRollout, PlanList, Reason};
use super::exceptions::{self, Evaluated, Limits};
use super::rollout::{self, Member, RingInput, RolloutInput};
use super::selector::Selector;
use super::severity::{release_time, severity_of};
use super::sla::{self, ClockState, PairFacts, Tally};
use super::windows::{self, Schedule};

/// The objects one decision pass reads: a namespace's objects and the shared catalog.
#[derive(Clone, Debug, Default)]
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
}

/// The most pending approvals a policy status lists.
const PENDING_LISTED: usize = 20;
/// The most conflicts a policy status lists.
const CONFLICTS_LISTED: usize = 20;
/// The DueSoon margin when a policy sets none.
const DEFAULT_MARGIN: Duration = Duration::hours(24);
/// How many devices the walk reads ahead of the one it is on.
const READ_AHEAD: usize = 64;
/// How many devices ahead the walk has the processor fetch cached pairs.
const PAIRS_AHEAD: usize = 4;

/// The rollout name for a patch under a policy: `<policy>.<patch id>`, lower-cased, with
/// characters a Kubernetes name cannot hold replaced by `-`.
pub fn rollout_name(policy: &str, patch: &str) -> String {
    let id: String = patch
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
    let id = id.trim_matches(|c| c == '-' || c == '.');
    let mut name = format!("{policy}.{id}");
    name.truncate(253);
    name.trim_end_matches(['-', '.']).to_string()
}

struct RingView<'a> {
    ring: &'a DeploymentRing,
    name: &'a str,
    selector: Option<Selector>,
    schedule: Schedule,
    problem: Option<String>,
}

struct PolicyView<'a> {
    policy: &'a PatchPolicy,
    name: &'a str,
    selector: Option<Selector>,
    /// Ring indices into `rings`, in the policy's order; None for a missing ring.
    rings: Vec<(&'a str, Option<usize>)>,
    problems: Vec<String>,
}

impl PolicyView<'_> {
    fn blocked(&self) -> Option<String> {
        (!self.problems.is_empty())
            .then(|| format!("policy cannot roll out: {}", self.problems.join("; ")))
    }
}

/// What one pass knows about one patch under one policy.
struct Slot<'a> {
    approval: Approval,
    superseded_by: Option<String>,
    outcomes: Outcomes,
    /// Members per ring position of the policy.
    members: Vec<Vec<Member<'a>>>,
    /// Some governed device reports the patch.
    reported: bool,
}

/// FNV-1a: patch ids are short and trusted to be few, so a fast hasher beats SipHash here.
#[derive(Clone, Copy, Default)]
struct Fnv(u64);

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

type FastHash = std::hash::BuildHasherDefault<Fnv>;

#[derive(Clone, Default)]
struct DeviceView {
    policy: Option<usize>,
    conflict: Vec<usize>,
    /// Position in the policy's ring list.
    ring: Option<usize>,
    /// The tier (index into the cache's tier names), when governed.
    tier: usize,
    overdue: u32,
    due_soon: u32,
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

    // The catalog, by id, interned: every per-patch table below is indexed by position.
    let patches: Vec<&Patch> = snap.patches.clone();
    let catalog: HashMap<&str, usize, FastHash> = patches
        .iter()
        .enumerate()
        .map(|(i, p)| (p.spec.id.as_str(), i))
        .collect();
    let severity: Vec<Severity> = patches.iter().map(|p| severity_of(p)).collect();
    let released: Vec<Timestamp> = patches.iter().map(|p| release_time(p)).collect();

    let rings = compile_rings(snap);
    let policies = compile_policies(snap, &rings);

    // Exceptions.
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

    // What the cache holds was derived under the tenant's specs: when they change, it
    // is derived again.
    if cache.keep {
        let unchanged = cache.tenant.as_ref().is_some_and(|key| {
            tenant_unchanged(
                key, &policies, &rings, &excs, &evals, &patches, &severity, &released,
            )
        });
        if !unchanged {
            cache.tenant = Some(tenant_key(
                &policies, &rings, &excs, &evals, &patches, &severity, &released,
            ));
            cache.devices.clear();
            cache.tiers.clear();
            cache.member_counts.clear();
        }
    }

    // Per policy and patch (indexed `policy * patches + patch`): approval, supersession,
    // outcomes and the members of each ring.
    let n_patches = patches.len();
    // Which patches supersede each id, indexed once: a catalog of thousands stays linear.
    let mut superseders: HashMap<&str, Vec<usize>, FastHash> = HashMap::default();
    for (i, p) in patches.iter().enumerate() {
        for old in &p.spec.supersedes {
            superseders.entry(old.as_str()).or_default().push(i);
        }
    }
    let superseded_by = |pi: usize, id: &str| -> Option<String> {
        superseders
            .get(id)?
            .iter()
            .map(|&i| patches[i])
            .find(|other| approval::evaluate(&policies[pi].policy.spec, other, now).is_approved())
            .map(|other| other.spec.id.clone())
    };
    // The previous pass's member counts size this pass's lists: no list grows by copying.
    let last_counts = std::mem::take(&mut cache.member_counts);
    let slot_for = |pi: usize, ix: usize| Slot {
        approval: approval::evaluate(&policies[pi].policy.spec, patches[ix], now),
        superseded_by: superseded_by(pi, &patches[ix].spec.id),
        outcomes: Outcomes::default(),
        members: (0..policies[pi].rings.len())
            .map(|pos| {
                let count = last_counts
                    .get(pi * n_patches + ix)
                    .and_then(|c| c.get(pos))
                    .copied()
                    .unwrap_or(0);
                Vec::with_capacity(count)
            })
            .collect(),
        reported: false,
    };
    let seen = std::cell::RefCell::new(Seen::new(patches.len()));
    let inputs = DeviceInputs {
        policies: &policies,
        rings: &rings,
        catalog: &catalog,
        excs: &excs,
        evals: &evals,
        exc_by_patch: &exc_by_patch,
        seen: &seen,
    };

    // Devices: which policy governs each and which ring of it, what covers each of its
    // pairs, and each pair's SLA clock — taken from the cache when the device's inputs
    // are the ones it was derived from — then counted into this pass.
    let keep = cache.keep;
    let mut devices: Vec<&ManagedDevice> = snap.devices.clone();
    if !keep && !devices.is_sorted_by(|a, b| name_of(&a.metadata) <= name_of(&b.metadata)) {
        devices.sort_by(|a, b| name_of(&a.metadata).cmp(name_of(&b.metadata)));
    }
    // The devices the shell says changed are marked; with no word from it, every device
    // is compared.
    cache.pass += 1;
    let pass = cache.pass;
    // Clocks run at a later instant than this pass's are not reused.
    let rewound = cache.last_now.is_some_and(|last| now < last);
    cache.last_now = Some(now);
    let hinted = match cache.changed.take() {
        Some(changed) => {
            for name in &changed {
                let first = cache
                    .devices
                    .partition_point(|e| e.name() < name.as_bytes());
                for e in cache.devices[first..].iter_mut() {
                    if e.name() != name.as_bytes() {
                        break;
                    }
                    e.listed_in = pass;
                }
            }
            true
        }
        None => false,
    };
    let mut scratch = Derived::default();
    // Entries are in name order, each for the device at its position in the previous
    // pass: the count first assumes the same devices in the same order and checks each
    // name as it goes. On the first that differs, the devices are put in name order, the
    // entries aligned with them, and the count starts again.
    let mut check_alignment = keep;
    let (views, ring_members, ring_claimed_elsewhere, mut slots, tallies, unknown, exc_covered) = loop {
        let mut views: Vec<DeviceView> = vec![DeviceView::default(); devices.len()];
        let mut ring_members: Vec<u32> = vec![0; rings.len()];
        let mut ring_claimed_elsewhere: Vec<u32> = vec![0; rings.len()];
        let mut slots: Vec<Option<Slot<'_>>> = Vec::new();
        slots.resize_with(policies.len() * n_patches, || None);
        let mut tallies: Vec<Tally> = vec![Tally::default(); policies.len()];
        // Per policy, by `tier * 4 + severity`: the tally cell.
        let mut tally_cells: Vec<Vec<Option<usize>>> = vec![Vec::new(); policies.len()];
        let mut unknown: Vec<BTreeSet<String>> = vec![BTreeSet::new(); policies.len()];
        let mut exc_covered: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); excs.len()];
        d.wake_at = None;
        let mut misaligned = false;
        // What the walk reads of each device object, read ahead a block at a time in a
        // loop of nothing else: those reads are of objects far apart in memory, and so
        // they wait on memory together instead of one after another.
        let mut ahead: Vec<Option<(&[DevicePatchStatus], Option<Timestamp>)>> =
            Vec::with_capacity(READ_AHEAD);
        for (di, dev) in devices.iter().enumerate() {
            if di % READ_AHEAD == 0 {
                ahead.clear();
                ahead.extend(
                    devices[di..devices.len().min(di + READ_AHEAD)]
                        .iter()
                        .map(|d| d.status.as_ref().map(|s| (&s.patches[..], s.last_seen))),
                );
            }
            // The cached pairs of a device a few places on are fetched while this one is
            // worked on.
            if let Some(e) = cache.devices.get(di + PAIRS_AHEAD) {
                super::cache::prefetch(&e.pairs);
            }
            let status = ahead[di % READ_AHEAD];
            let reports: &[DevicePatchStatus] = status.map_or(&[], |(r, _)| r);
            let reports_at = (reports.as_ptr() as usize, reports.len());
            let entry = if keep {
                match cache.devices.get_mut(di) {
                    Some(e) if !check_alignment || e.is_for(dev, reports_at, hinted, pass) => e,
                    _ => {
                        misaligned = true;
                        break;
                    }
                }
            } else {
                &mut scratch
            };
            // A device the shell did not list as changed is trusted to be as it was
            // (debug builds check); any other is compared with what its entry was
            // derived from.
            entry.trusted = hinted && entry.kept && entry.listed_in != pass;
            if entry.trusted {
                debug_assert!(
                    entry.same_inputs(dev),
                    "device {} changed but the shell did not list it as changed",
                    name_of(&dev.metadata)
                );
            } else {
                if !entry.same_inputs(dev) {
                    derive(entry, dev, keep, &inputs, &mut cache.tiers);
                }
                entry.install_len = dev.spec.plan.install.len();
            }
            entry.reports_at = reports_at;

            let view = &mut views[di];
            view.policy = entry.policy;
            view.conflict.clone_from(&entry.conflict);
            view.ring = entry.ring;
            view.tier = entry.tier;
            if let Some(ri) = entry.member_of {
                ring_members[ri] += 1;
            }
            for &ri in &entry.claimed_elsewhere {
                ring_claimed_elsewhere[ri] += 1;
            }
            let (Some(pi), Some((reports, last_seen))) = (entry.policy, status) else {
                continue;
            };
            let tier = cache.tiers[entry.tier].as_str();
            let margin = policies[pi]
                .policy
                .spec
                .due_soon_margin
                .unwrap_or(DEFAULT_MARGIN);
            let ring_pos = entry.ring;
            let plan = &dev.spec.plan;
            // The policy's SLA row for the device's tier, found when a clock must run.
            let mut row = None;
            for (report, pair) in reports.iter().zip(entry.pairs.iter_mut()) {
                if pair.duplicate() {
                    continue;
                }
                let Some(ix) = pair.ix() else {
                    unknown[pi].insert(report.id.clone());
                    continue;
                };
                let slot = slots[pi * n_patches + ix].get_or_insert_with(|| slot_for(pi, ix));
                slot.reported = true;
                let counted = !matches!(slot.approval, Approval::Rejected { .. })
                    && slot.superseded_by.is_none();
                for &ei in pair.active() {
                    exc_covered[ei].insert(di);
                }
                let installed_at = pair.installed_for_clock(now);
                let clock = match pair.clock_at(now, rewound) {
                    Some(clock) => clock,
                    None => {
                        let row = *row.get_or_insert_with(|| sla_row(policies[pi].policy, tier));
                        let clock = sla::clock(
                            PairFacts {
                                released: released[ix],
                                within: row.map(|r| r.within(severity[ix])),
                                margin,
                                installed_at,
                                exempt_now: pair.exempt_now(),
                                exempt_intervals: pair.intervals(),
                            },
                            now,
                        );
                        pair.set_clock(clock);
                        clock
                    }
                };
                if counted {
                    let tti = installed_at.map(|i| i.duration_since(released[ix]));
                    // Cells found once per tier and severity, not by name per pair.
                    let key = entry.tier * 4 + severity[ix] as usize;
                    let cells = &mut tally_cells[pi];
                    if cells.len() <= key {
                        cells.resize(key + 1, None);
                    }
                    let cell =
                        *cells[key].get_or_insert_with(|| tallies[pi].cell(tier, severity[ix]));
                    tallies[pi].add_at(cell, clock.state, tti);
                    match clock.state {
                        ClockState::Overdue => view.overdue += 1,
                        ClockState::DueSoon => view.due_soon += 1,
                        _ => {}
                    }
                    d.wake(clock.next_change, now);
                }
                // The pair's state is the report's (compared, or trusted).
                match pair.state {
                    PatchState::Installed | PatchState::PendingReboot => {
                        slot.outcomes.installed += 1
                    }
                    PatchState::Failed => slot.outcomes.failed += 1,
                    _ => {}
                }
                // Built here, while the device is in cache, rather than looked up again
                // per rollout. A trusted device's plan is as it was: its entries are only
                // looked up where there were some.
                if let Some(pos) = ring_pos {
                    if !entry.trusted {
                        pair.set_in_plan(
                            plan.install.contains_key(&report.id),
                            plan.uninstall.contains_key(&report.id),
                        );
                    }
                    let (install, uninstall) = pair.in_plan();
                    slot.members[pos].push(Member {
                        device: dev,
                        report,
                        state: pair.state,
                        installed_at: pair.installed_at(),
                        install: if install {
                            plan.install.get(&report.id)
                        } else {
                            None
                        },
                        uninstall: if uninstall {
                            plan.uninstall.get(&report.id)
                        } else {
                            None
                        },
                        last_seen,
                        excepted: pair.blocks(),
                        deadline: clock.deadline,
                    });
                }
            }
        }
        if !misaligned {
            break (
                views,
                ring_members,
                ring_claimed_elsewhere,
                slots,
                tallies,
                unknown,
                exc_covered,
            );
        }
        if !devices.is_sorted_by(|a, b| name_of(&a.metadata) <= name_of(&b.metadata)) {
            devices.sort_by(|a, b| name_of(&a.metadata).cmp(name_of(&b.metadata)));
        }
        cache.align(devices.iter().map(|d| name_of(&d.metadata)));
        check_alignment = false;
    };
    // Every device had its entry in order: entries past the last device are for devices
    // that are gone (removed from the end of the list). Left in place, one could be taken
    // for a device added there later.
    cache.devices.truncate(devices.len());
    let member_counts: Vec<Vec<usize>> = if keep {
        slots
            .iter()
            .map(|s| {
                s.as_ref()
                    .map_or(Vec::new(), |s| s.members.iter().map(Vec::len).collect())
            })
            .collect()
    } else {
        Vec::new()
    };

    // Existing rollouts by policy and patch.
    let mut existing: BTreeMap<(&str, &str), &PatchRollout> = BTreeMap::new();
    for r in &snap.rollouts {
        existing.insert((r.spec.policy.as_str(), r.spec.patch.as_str()), *r);
    }

    // Per policy, counted in one walk over the devices: governed, in no ring; and the
    // devices in conflict (few), in order.
    let mut governed_by: Vec<u32> = vec![0; policies.len()];
    let mut in_no_ring_of: Vec<u32> = vec![0; policies.len()];
    let mut conflicted: Vec<usize> = Vec::new();
    for (di, v) in views.iter().enumerate() {
        if let Some(pi) = v.policy {
            governed_by[pi] += 1;
            if v.ring.is_none() {
                in_no_ring_of[pi] += 1;
            }
        }
        if !v.conflict.is_empty() {
            conflicted.push(di);
        }
    }

    // Per policy: approvals, rollouts, status.
    let mut ring_active: Vec<u32> = vec![0; rings.len()];
    for (pi, pv) in policies.iter().enumerate() {
        let policy = pv.policy;
        let mut summary = ApprovalSummary::default();
        let mut pending: Vec<PendingApproval> = Vec::new();
        let mut patch_ids: BTreeSet<&str> = (0..n_patches)
            .filter(|ix| {
                slots[pi * n_patches + ix]
                    .as_ref()
                    .is_some_and(|s| s.reported)
            })
            .map(|ix| patches[ix].spec.id.as_str())
            .collect();
        for ((pol, patch), _) in existing.iter() {
            if *pol == pv.name {
                patch_ids.insert(patch);
            }
        }
        for id in patch_ids {
            let ix = catalog.get(id).copied();
            if let Some(ix) = ix {
                slots[pi * n_patches + ix].get_or_insert_with(|| slot_for(pi, ix));
            }
            let mut slot = ix.and_then(|ix| slots[pi * n_patches + ix].as_mut());
            let patch = ix.map(|ix| patches[ix]);
            let appr = slot.as_ref().map_or(
                Approval::AwaitingManual {
                    by: "unknown patch".into(),
                },
                |s| s.approval.clone(),
            );
            let existing_rollout = existing.get(&(pv.name, id)).copied();
            let sup = slot.as_ref().and_then(|s| s.superseded_by.clone());
            if existing_rollout.is_none() {
                match (&appr, &sup) {
                    (_, Some(_)) => {
                        summary.superseded += 1;
                        continue;
                    }
                    (Approval::Rejected { .. }, _) => {
                        summary.rejected += 1;
                        continue;
                    }
                    (Approval::Scheduled { at, by }, _) => {
                        summary.scheduled += 1;
                        pending.push(PendingApproval {
                            patch: id.to_string(),
                            state: PendingState::Scheduled,
                            at: Some(*at),
                            by: by.clone(),
                        });
                        d.wake(Some(*at), now);
                        continue;
                    }
                    (Approval::AwaitingManual { by }, _) => {
                        summary.awaiting_manual += 1;
                        pending.push(PendingApproval {
                            patch: id.to_string(),
                            state: PendingState::AwaitingManual,
                            at: None,
                            by: by.clone(),
                        });
                        continue;
                    }
                    (Approval::Approved { .. }, _) => {}
                }
            }
            let Some(patch) = patch else {
                // A rollout for a patch the catalog no longer has: leave it as it stands.
                continue;
            };
            let name = existing_rollout
                .map(|r| name_of(&r.metadata).to_string())
                .unwrap_or_else(|| rollout_name(pv.name, id));
            let old = existing_rollout.and_then(|r| r.status.as_ref());
            let old_record = old.and_then(|s| s.approval.as_ref());
            let hold = approval::hold_reason(
                policy.spec.approval.hold.as_ref(),
                slot.as_ref().map(|s| s.outcomes).unwrap_or_default(),
            );
            let (approved_at, by, emergency) = match (&appr, old_record) {
                (_, Some(rec)) if rec.approved_at.is_some() => {
                    (rec.approved_at, rec.by.clone(), rec.emergency)
                }
                (Approval::Approved { at, by, emergency }, _) => {
                    (Some(at.unwrap_or(now)), Some(by.clone()), *emergency)
                }
                _ => (Some(now), None, false),
            };
            let (state, reason) = match (&appr, &hold) {
                (Approval::Rejected { by }, _) => {
                    (ApprovalState::Rejected, Some(format!("rejected by {by}")))
                }
                (_, Some(h)) => (ApprovalState::Held, Some(h.clone())),
                _ => (ApprovalState::Approved, None),
            };
            let record = ApprovalRecord {
                state,
                approved_at,
                by: by.clone(),
                emergency,
                reason,
            };
            match state {
                ApprovalState::Held => summary.held += 1,
                ApprovalState::Rejected => summary.rejected += 1,
                ApprovalState::Approved => summary.rolling_out += 1,
            }
            let default_spec;
            let spec = match existing_rollout {
                Some(r) => &r.spec,
                None => {
                    default_spec = PatchRolloutSpec {
                        policy: pv.name.to_string(),
                        patch: id.to_string(),
                        paused: false,
                        promote: vec![],
                        abort: false,
                    };
                    &default_spec
                }
            };
            let ring_inputs: Vec<RingInput<'_>> = pv
                .rings
                .iter()
                .enumerate()
                .map(|(pos, (ring_name, ri))| {
                    let ring = match ri {
                        Some(ri) => match &rings[*ri].problem {
                            None => Ok((&rings[*ri].ring.spec, &rings[*ri].schedule)),
                            Some(p) => Err(format!("DeploymentRing {ring_name} is invalid: {p}")),
                        },
                        None => Err(format!("DeploymentRing {ring_name} not found")),
                    };
                    let ring_members = slot
                        .as_mut()
                        .and_then(|s| s.members.get_mut(pos))
                        .map(std::mem::take)
                        .unwrap_or_default();
                    RingInput {
                        name: ring_name,
                        ring,
                        members: ring_members,
                    }
                })
                .collect();
            let input = RolloutInput {
                name: &name,
                spec,
                old,
                approval: record,
                uninstallable: patch.spec.uninstallable,
                policy_freezes: &policy.spec.freezes,
                rings: ring_inputs,
                blocked: pv.blocked(),
            };
            let mut outcome = rollout::decide(&input, now);
            // A created object starts at generation 1.
            let generation = existing_rollout.map_or(Some(1), |r| r.metadata.generation);
            outcome.status.observed_generation = generation;
            let health = rollout_health(&outcome.status, outcome.invalid_spec);
            outcome.status.conditions = health.conditions(
                old.map(|s| s.conditions.as_slice()).unwrap_or(&[]),
                generation,
                now,
            );
            for (pos, rp) in outcome.status.rings.iter().enumerate() {
                let active = matches!(rp.phase, RingPhase::Deploying | RingPhase::Soaking);
                if let (true, Some((_, Some(ri)))) = (active, pv.rings.get(pos)) {
                    ring_active[*ri] += 1;
                }
            }
            if existing_rollout.is_none() {
                d.new_rollouts.push(NewRollout {
                    name: name.clone(),
                    spec: spec.clone(),
                });
                d.events.push(Event {
                    kind: Kind::PatchPolicy,
                    name: pv.name.to_string(),
                    type_: if emergency {
                        EventType::Warning
                    } else {
                        EventType::Normal
                    },
                    reason: Reason::PatchApproved,
                    message: format!(
                        "{id} approved by {}{}; rollout {name} created",
                        by.as_deref().unwrap_or("policy"),
                        if emergency { " (emergency)" } else { "" }
                    ),
                });
            }
            d.plan.extend(outcome.plan);
            d.events.extend(outcome.events);
            d.wake(outcome.wake, now);
            d.rollouts.push((name, outcome.status));
        }
        pending.sort_by(|a, b| {
            a.at.unwrap_or(Timestamp::MAX)
                .cmp(&b.at.unwrap_or(Timestamp::MAX))
                .then(a.patch.cmp(&b.patch))
        });
        pending.truncate(PENDING_LISTED);
        summary.pending = pending;
        summary.unknown_patches = unknown[pi].iter().take(PENDING_LISTED).cloned().collect();

        // Policy status.
        let governed = governed_by[pi];
        let in_no_ring = in_no_ring_of[pi];
        let conflicts: Vec<PolicyConflict> = conflicted
            .iter()
            .map(|&di| (di, &views[di]))
            .filter(|(_, v)| v.conflict.contains(&pi))
            .take(CONFLICTS_LISTED)
            .map(|(di, v)| PolicyConflict {
                device: name_of(&devices[di].metadata).to_string(),
                policies: v
                    .conflict
                    .iter()
                    .filter(|o| **o != pi)
                    .map(|o| policies[*o].name.to_string())
                    .collect(),
            })
            .collect();
        let tally = &tallies[pi];
        let (ok, all) = tally.totals();
        let old = policy.status.as_ref();
        let overdue = tally.overdue();
        if overdue > old.map_or(0, |s| s.overdue) {
            d.events.push(Event {
                kind: Kind::PatchPolicy,
                name: pv.name.to_string(),
                type_: EventType::Warning,
                reason: Reason::SLABreached,
                message: format!(
                    "{overdue} device-patch pair(s) are past their SLA deadline (was {})",
                    old.map_or(0, |s| s.overdue)
                ),
            });
        }
        if !conflicts.is_empty() && old.is_none_or(|s| s.conflicts.is_empty()) {
            d.events.push(Event {
                kind: Kind::PatchPolicy,
                name: pv.name.to_string(),
                type_: EventType::Warning,
                reason: Reason::PolicyConflict,
                message: format!("{} device(s) are also selected by another policy at priority {}; they get no new assignments", conflicts.len(), policy.spec.priority),
            });
        }
        let health = if let Some(blocked) = pv.blocked() {
            Health::stalled("InvalidSpec", blocked)
        } else if !conflicts.is_empty() {
            Health::stalled(
                "Conflict",
                format!(
                    "{} device(s) claimed by another policy at the same priority",
                    conflicts.len()
                ),
            )
        } else {
            Health::ready(
                "Reconciled",
                format!(
                    "{governed} devices, {} rollout(s), {overdue} overdue pair(s)",
                    summary.rolling_out
                ),
            )
        };
        let freeze = freeze_status(&policy.spec.freezes, now);
        freeze_events(
            &mut d,
            Kind::PatchPolicy,
            pv.name,
            old.and_then(|s| s.freeze.as_deref()),
            freeze.as_deref(),
        );
        d.wake(
            windows::next_freeze_change(policy.spec.freezes.iter(), now),
            now,
        );
        let generation = policy.metadata.generation;
        let status = PatchPolicyStatus {
            freeze,
            observed_generation: generation,
            conditions: health.conditions(
                old.map(|s| s.conditions.as_slice()).unwrap_or(&[]),
                generation,
                now,
            ),
            message: Some(health.message.clone()),
            devices: governed,
            devices_in_no_ring: in_no_ring,
            conflicts,
            compliance: sla::percent(ok, all).map(|p| format!("{p:.1}%")),
            overdue,
            approvals: summary,
            sla: tally.cells(),
        };
        d.policies.push((pv.name.to_string(), status));
    }

    // Ring statuses.
    for (ri, rv) in rings.iter().enumerate() {
        let listed_by: Vec<String> = policies
            .iter()
            .filter(|p| p.rings.iter().any(|(_, r)| *r == Some(ri)))
            .map(|p| p.name.to_string())
            .collect();
        let window = if rv.schedule.is_always() {
            "Always".to_string()
        } else if let Some(o) = rv.schedule.open_at(now) {
            d.wake(Some(o.end), now);
            format!("Open until {}", o.end)
        } else {
            d.wake(rv.schedule.next_open_after(now), now);
            rv.schedule.describe_next(now).map_or_else(
                || "None within a year".to_string(),
                |w| format!("Opens {w}"),
            )
        };
        let health = match &rv.problem {
            Some(p) => Health::stalled("InvalidSpec", p.clone()),
            None if listed_by.is_empty() => {
                Health::ready("Unused", "no PatchPolicy lists this ring")
            }
            None => Health::ready(
                "Reconciled",
                format!(
                    "{} member(s), {} active rollout(s)",
                    ring_members[ri], ring_active[ri]
                ),
            ),
        };
        let old = rv.ring.status.as_ref();
        let freeze = freeze_status(&rv.ring.spec.freezes, now);
        freeze_events(
            &mut d,
            Kind::DeploymentRing,
            rv.name,
            old.and_then(|s| s.freeze.as_deref()),
            freeze.as_deref(),
        );
        d.wake(
            windows::next_freeze_change(rv.ring.spec.freezes.iter(), now),
            now,
        );
        let generation = rv.ring.metadata.generation;
        d.rings.push((
            rv.name.to_string(),
            DeploymentRingStatus {
                observed_generation: generation,
                conditions: health.conditions(
                    old.map(|s| s.conditions.as_slice()).unwrap_or(&[]),
                    generation,
                    now,
                ),
                message: Some(health.message.clone()),
                freeze,
                members: ring_members[ri],
                claimed_elsewhere: ring_claimed_elsewhere[ri],
                policies: listed_by,
                active_rollouts: ring_active[ri],
                window: Some(window),
            },
        ));
    }

    // Exception statuses and their Events.
    for (ei, (exc, ev)) in excs.iter().zip(&evals).enumerate() {
        let name = name_of(&exc.metadata).to_string();
        let old = exc.status.as_ref();
        let reminder = exceptions::due_reminder(exc, ev, now);
        if let Some(r) = reminder {
            d.events.push(Event {
                kind: Kind::PatchException,
                name: name.clone(),
                type_: EventType::Warning,
                reason: Reason::ExceptionExpiring,
                message: format!(
                    "expires in {r} at {} (owner {})",
                    exc.spec.expires_at, exc.spec.owner
                ),
            });
        }
        if old.and_then(|s| s.phase) != Some(ev.phase) {
            let (type_, reason) = match ev.phase {
                ExceptionPhase::Active => (EventType::Normal, Reason::ExceptionActive),
                ExceptionPhase::PendingApproval => {
                    (EventType::Normal, Reason::ExceptionPendingApproval)
                }
                ExceptionPhase::Expired => (EventType::Warning, Reason::ExceptionExpired),
                ExceptionPhase::Invalid => (EventType::Warning, Reason::ExceptionInvalid),
            };
            d.events.push(Event {
                kind: Kind::PatchException,
                name: name.clone(),
                type_,
                reason,
                message: ev.message.clone(),
            });
        }
        d.wake(exceptions::next_change(exc, ev, now), now);
        let health = match ev.phase {
            ExceptionPhase::Active => Health::ready("Active", ev.message.clone()),
            ExceptionPhase::Expired => Health::ready("Expired", ev.message.clone()),
            ExceptionPhase::PendingApproval => {
                Health::stalled("PendingApproval", ev.message.clone())
            }
            ExceptionPhase::Invalid => Health::stalled("Invalid", ev.message.clone()),
        };
        let generation = exc.metadata.generation;
        d.exceptions.push((
            name,
            PatchExceptionStatus {
                observed_generation: generation,
                conditions: health.conditions(
                    old.map(|s| s.conditions.as_slice()).unwrap_or(&[]),
                    generation,
                    now,
                ),
                phase: Some(ev.phase),
                message: Some(ev.message.clone()),
                active_since: ev.active_since,
                covered_devices: exc_covered[ei].len() as u32,
                last_reminder: reminder
                    .map(str::to_string)
                    .or_else(|| old.and_then(|s| s.last_reminder.clone())),
            },
        ));
    }

    cache.member_counts = member_counts;
    let tiers = &cache.tiers;

    // Device compliance summaries.
    // `devices` is sorted by name: find a device by binary search, not a per-pass map.
    let by_name = |name: &str| {
        devices
            .binary_search_by(|d| name_of(&d.metadata).cmp(name))
            .ok()
    };
    // Per device (by position): how many install entries this pass adds or removes.
    let mut plan_delta: Vec<i64> = vec![0; devices.len()];
    for c in d.plan.iter().filter(|c| c.list == PlanList::Install) {
        let name = c.device.as_str();
        let Some(found) = by_name(name) else {
            continue;
        };
        let had = devices[found].spec.plan.install.contains_key(&c.patch);
        let delta = match (&c.entry, had) {
            (Some(_), false) => 1,
            (None, true) => -1,
            _ => 0,
        };
        let first = devices.partition_point(|d| name_of(&d.metadata) < name);
        for (di, dev) in devices.iter().enumerate().skip(first) {
            if name_of(&dev.metadata) != name {
                break;
            }
            plan_delta[di] += delta;
        }
    }
    for (di, dev) in devices.iter().enumerate() {
        let v = &views[di];
        // A trusted device's plan is as the previous pass saw it.
        let install_len = match keep.then(|| &cache.devices[di]) {
            Some(e) if e.trusted => {
                debug_assert_eq!(e.install_len, dev.spec.plan.install.len());
                e.install_len
            }
            _ => dev.spec.plan.install.len(),
        };
        let install_after = (install_len as i64 + plan_delta[di]).max(0);
        let planned = install_after as u32;
        // Most devices' summaries do not change between passes: compare in place and only
        // build (and list) the ones that do.
        let policy_name = v.policy.map(|pi| policies[pi].name);
        let ring_name = v.policy.and_then(|pi| {
            v.ring
                .and_then(|pos| policies[pi].rings.get(pos))
                .map(|(n, _)| *n)
        });
        let tier_name = v.policy.map(|_| tiers[v.tier].as_str());
        let compare = || {
            dev.status
                .as_ref()
                .and_then(|st| st.compliance.as_ref())
                .is_some_and(|o| {
                    o.policy.as_deref() == policy_name
                        && o.ring.as_deref() == ring_name
                        && o.tier.as_deref() == tier_name
                        && o.overdue == v.overdue
                        && o.due_soon == v.due_soon
                        && o.planned == planned
                        && o.message.is_some() == (ring_name.is_none() || policy_name.is_none())
                        && v.conflict.is_empty()
                })
        };
        let summary = Summary {
            policy: v.policy,
            ring: v.ring,
            tier: v.tier,
            overdue: v.overdue,
            due_soon: v.due_soon,
            planned,
            conflict: !v.conflict.is_empty(),
        };
        let unchanged = match keep.then(|| &mut cache.devices[di]) {
            Some(e) => {
                // A trusted device's stored summary is the one the previous pass compared
                // with: the same summary compares the same.
                let unchanged = match e.summary {
                    Some((last, matched)) if e.trusted && last == summary => {
                        debug_assert_eq!(
                            matched,
                            compare(),
                            "device {}'s summary",
                            name_of(&dev.metadata)
                        );
                        matched
                    }
                    _ => compare(),
                };
                e.summary = Some((summary, unchanged));
                unchanged
            }
            None => compare(),
        };
        if unchanged {
            continue;
        }
        let (policy, ring, message) = match (v.policy, v.conflict.is_empty()) {
            (Some(pi), _) => {
                let pv = &policies[pi];
                let ring = v
                    .ring
                    .and_then(|pos| pv.rings.get(pos))
                    .map(|(n, _)| n.to_string());
                let msg = ring.is_none().then(|| {
                    format!(
                        "matches none of policy {}'s rings: it gets no patches",
                        pv.name
                    )
                });
                (Some(pv.name.to_string()), ring, msg)
            }
            (None, false) => {
                let names: Vec<&str> = v.conflict.iter().map(|p| policies[*p].name).collect();
                (
                    None,
                    None,
                    Some(format!(
                        "conflict: policies {} select it at the same priority; it gets no new assignments",
                        names.join(", ")
                    )),
                )
            }
            (None, true) => (
                None,
                None,
                Some("no PatchPolicy selects this device".to_string()),
            ),
        };
        d.devices.push((
            name_of(&dev.metadata).to_string(),
            DeviceCompliance {
                tier: tier_name.map(str::to_string),
                policy,
                ring,
                overdue: v.overdue,
                due_soon: v.due_soon,
                planned,
                message,
            },
        ));
    }

    // Grouped by object, each object's Events in the order they happened.
    d.events
        .sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    d
}

/// What deriving a device's results reads besides the device.
struct DeviceInputs<'s, 'a> {
    policies: &'s [PolicyView<'a>],
    rings: &'s [RingView<'a>],
    catalog: &'s HashMap<&'a str, usize, FastHash>,
    excs: &'s [&'a PatchException],
    evals: &'s [Evaluated],
    exc_by_patch: &'s [Vec<usize>],
    /// Which patches the device being derived has reported so far.
    seen: &'s std::cell::RefCell<Seen>,
}

/// Per catalog patch, the device (by a stamp) and the report position that last reported
/// it: finds a device's duplicate reports in one look each.
#[derive(Default)]
struct Seen {
    at: Vec<(u64, usize)>,
    stamp: u64,
}

impl Seen {
    fn new(patches: usize) -> Self {
        Self {
            at: vec![(0, 0); patches],
            stamp: 0,
        }
    }

    /// A stamp for the next device.
    fn next_device(&mut self) -> u64 {
        self.stamp += 1;
        self.stamp
    }

    /// The position of the device's earlier report of patch `ix`, if any; records `pos`
    /// otherwise.
    fn first(&mut self, ix: usize, stamp: u64, pos: usize) -> Option<usize> {
        let slot = self.at.get_mut(ix)?;
        if slot.0 == stamp {
            return Some(slot.1);
        }
        *slot = (stamp, pos);
        None
    }

    fn set(&mut self, ix: usize, stamp: u64, pos: usize) {
        if let Some(slot) = self.at.get_mut(ix) {
            *slot = (stamp, pos);
        }
    }
}

/// Derives what a device contributes to a pass: the policy that governs it and its ring
/// (or the policies in conflict over it), its tier, and per reported patch what covers
/// it and its SLA terms. The clocks are run when the pass counts the pairs. With
/// `keep`, the entry also records the inputs it came from.
fn derive(
    e: &mut Derived,
    dev: &ManagedDevice,
    keep: bool,
    inputs: &DeviceInputs<'_, '_>,
    tiers: &mut Vec<String>,
) {
    let DeviceInputs {
        policies,
        rings,
        catalog,
        excs,
        evals,
        exc_by_patch,
        seen,
    } = inputs;
    let dev_name = name_of(&dev.metadata);
    let labels = dev.metadata.labels.as_ref();
    e.kept = keep;
    e.summary = None;
    e.key.clear();
    e.policy = None;
    e.conflict.clear();
    e.ring = None;
    e.member_of = None;
    e.claimed_elsewhere.clear();
    e.tier = 0;
    e.pairs.clear();

    let mut best: Option<i32> = None;
    let mut chosen: Vec<usize> = Vec::new();
    for (pi, p) in policies.iter().enumerate() {
        if p.selector.as_ref().is_some_and(|s| s.matches(labels)) {
            let prio = p.policy.spec.priority;
            match best {
                Some(b) if prio < b => {}
                Some(b) if prio == b => chosen.push(pi),
                _ => {
                    best = Some(prio);
                    chosen = vec![pi];
                }
            }
        }
    }
    let pi = match chosen.as_slice() {
        [one] => *one,
        many => {
            e.conflict.extend_from_slice(many);
            if keep {
                e.record(dev);
            }
            return;
        }
    };
    e.policy = Some(pi);
    if keep {
        e.record(dev);
    }
    for (pos, (_, ri)) in policies[pi].rings.iter().enumerate() {
        let Some(ri) = ri else { continue };
        if rings[*ri]
            .selector
            .as_ref()
            .is_some_and(|s| s.matches(labels))
        {
            if e.member_of.is_some() {
                e.claimed_elsewhere.push(*ri);
            } else {
                e.ring = Some(pos);
                e.member_of = Some(*ri);
            }
        }
    }

    let policy = policies[pi].policy;
    let tier = labels
        .and_then(|l| l.get(&policy.spec.tier_label))
        .map(String::as_str)
        .unwrap_or(DEFAULT_TIER);
    e.tier = Cache::tier(tiers, tier);
    let Some(status) = dev.status.as_ref() else {
        return;
    };
    let mut seen = seen.borrow_mut();
    let stamp = seen.next_device();
    for (pos, report) in status.patches.iter().enumerate() {
        let id = report.id.as_str();
        let ix = catalog.get(id).copied();
        let mut pair = Pair::new(ix, report.state, report.installed_at);
        // A patch reported twice counts once, at the report the contract prefers.
        if let Some(ix) = ix
            && let Some(first) = seen.first(ix, stamp, pos)
        {
            let prefer = contract::winner(&status.patches[first], report);
            if prefer {
                e.pairs[first].set_duplicate(true);
                seen.set(ix, stamp, pos);
            }
            pair.set_duplicate(!prefer);
        }
        if let Some(ix) = ix {
            // Exceptions covering this pair.
            for &ei in &exc_by_patch[ix] {
                if exceptions::covers(excs[ei], &evals[ei], dev_name, labels, id) {
                    if evals[ei].blocks_assignment {
                        pair.set_blocks();
                    }
                    let exempt = pair.exempt.get_or_insert_with(Box::default);
                    if evals[ei].phase == ExceptionPhase::Active {
                        exempt.active.push(ei);
                    }
                    if let Some(iv) = exceptions::exempt_interval(excs[ei], &evals[ei]) {
                        exempt.intervals.push(iv);
                    }
                }
            }
        }
        e.pairs.push(pair);
    }
}

/// The policy's SLA row for a tier, or its default row.
fn sla_row<'p>(policy: &'p PatchPolicy, tier: &str) -> Option<&'p SlaTier> {
    policy
        .spec
        .sla
        .iter()
        .find(|r| r.tier == tier)
        .or_else(|| policy.spec.sla.iter().find(|r| r.tier == DEFAULT_TIER))
}

/// Whether the tenant-wide inputs of the cached device results are the ones this pass
/// sees (compared in place: a pass over an unchanged tenant copies nothing).
#[allow(clippy::too_many_arguments)]
fn tenant_unchanged(
    key: &TenantKey,
    policies: &[PolicyView<'_>],
    rings: &[RingView<'_>],
    excs: &[&PatchException],
    evals: &[Evaluated],
    patches: &[&Patch],
    severity: &[Severity],
    released: &[Timestamp],
) -> bool {
    key.policies.len() == policies.len()
        && key
            .policies
            .iter()
            .zip(policies)
            .all(|((n, s), p)| n == p.name && *s == p.policy.spec)
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
            .zip(patches.iter().zip(severity.iter().zip(released)))
            .all(|((id, sev, rel), (p, (s, r)))| id == &p.spec.id && sev == s && rel == r)
}

/// The tenant-wide inputs of the device results this pass derives, to compare the next
/// pass's with.
fn tenant_key(
    policies: &[PolicyView<'_>],
    rings: &[RingView<'_>],
    excs: &[&PatchException],
    evals: &[Evaluated],
    patches: &[&Patch],
    severity: &[Severity],
    released: &[Timestamp],
) -> TenantKey {
    TenantKey {
        policies: policies
            .iter()
            .map(|p| (p.name.to_string(), p.policy.spec.clone()))
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
            .zip(severity.iter().zip(released))
            .map(|(p, (s, r))| (p.spec.id.clone(), *s, *r))
            .collect(),
    }
}

/// The freeze in force at `now`, in words for a status.
fn freeze_status(freezes: &[crate::api::Freeze], now: Timestamp) -> Option<String> {
    windows::active_freeze(freezes.iter(), now)
        .map(|f| format!("{} until {} (owner {})", f.reason, f.until, f.owner))
}

/// FreezeStarted / FreezeEnded Events from the change between two freeze statuses.
fn freeze_events(d: &mut Decisions, kind: Kind, name: &str, old: Option<&str>, new: Option<&str>) {
    if old == new {
        return;
    }
    let (reason, type_, message) = match (old, new) {
        (_, Some(n)) => (
            Reason::FreezeStarted,
            EventType::Warning,
            format!("change freeze began: {n}; no ring admits new devices"),
        ),
        (Some(o), None) => (
            Reason::FreezeEnded,
            EventType::Normal,
            format!("change freeze ended: {o}"),
        ),
        (None, None) => return,
    };
    d.events.push(Event {
        kind,
        name: name.to_string(),
        type_,
        reason,
        message,
    });
}

/// Compiles every ring's selector and windows, sorted by name; a ring that cannot be
/// used carries its problem.
fn compile_rings<'a>(snap: &Snapshot<'a>) -> Vec<RingView<'a>> {
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
            RingView {
                ring: r,
                name: name_of(&r.metadata),
                selector,
                schedule,
                problem,
            }
        })
        .collect();
    rings.sort_by(|a, b| a.name.cmp(b.name));
    rings
}

/// Compiles every policy's selector and resolves its rings, sorted by name; what makes
/// a policy unusable is in its `problems`.
fn compile_policies<'a>(snap: &Snapshot<'a>, rings: &[RingView<'a>]) -> Vec<PolicyView<'a>> {
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
            PolicyView {
                policy: p,
                name: name_of(&p.metadata),
                selector,
                rings: rings_of,
                problems,
            }
        })
        .collect();
    policies.sort_by(|a, b| a.name.cmp(b.name));

    policies
}

/// A spec that passes the schema but cannot be used, found by the same checks a
/// decision pass makes (for `ringmaster validate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecProblem {
    /// The kind.
    pub kind: Kind,
    /// The object's name.
    pub name: String,
    /// The field, e.g. `spec.rings[1]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem with the tenant's policies, rings and exceptions at `now`: missing or
/// unusable rings, malformed selectors and windows, exceptions that break the policies'
/// limits, and policies of equal priority whose selectors can claim the same device.
pub fn spec_problems(snap: &Snapshot<'_>, now: Timestamp) -> Vec<SpecProblem> {
    let split = |kind: Kind, name: &str, text: &str| {
        let (field, message) = text.split_once(": ").unwrap_or(("spec", text));
        SpecProblem {
            kind,
            name: name.to_string(),
            field: field.to_string(),
            message: message.to_string(),
        }
    };
    let rings = compile_rings(snap);
    let policies = compile_policies(snap, &rings);
    let mut out: Vec<SpecProblem> = Vec::new();
    for r in &rings {
        if let Some(p) = &r.problem {
            out.push(split(Kind::DeploymentRing, r.name, p));
        }
    }
    for p in &policies {
        for problem in &p.problems {
            out.push(split(Kind::PatchPolicy, p.name, problem));
        }
    }
    for (i, a) in policies.iter().enumerate() {
        for b in &policies[i + 1..] {
            if a.policy.spec.priority == b.policy.spec.priority
                && may_overlap(
                    &a.policy.spec.device_selector,
                    &b.policy.spec.device_selector,
                )
            {
                out.push(SpecProblem {
                    kind: Kind::PatchPolicy,
                    name: b.name.to_string(),
                    field: "spec.deviceSelector".into(),
                    message: format!(
                        "can select the same devices as PatchPolicy {} at the same priority {}; such devices get no assignments (give one a higher priority)",
                        a.name, b.policy.spec.priority
                    ),
                });
            }
        }
    }
    let severity: HashMap<&str, Severity> = snap
        .patches
        .iter()
        .map(|p| (p.spec.id.as_str(), severity_of(p)))
        .collect();
    let limits = Limits::combined(snap.policies.iter().copied());
    for e in &snap.exceptions {
        let ev = exceptions::evaluate(e, &limits, |id| severity.get(id).copied(), now);
        if let Some((field, message)) = ev.invalid {
            out.push(SpecProblem {
                kind: Kind::PatchException,
                name: name_of(&e.metadata).to_string(),
                field: field.into(),
                message,
            });
        }
    }
    out
}

/// Whether two selectors certainly can match one device: one selects everything, or
/// their `matchLabels` agree on every key they share. Selectors that differ only in
/// expressions cannot be judged without devices and are not reported here (the
/// operator reports the devices two policies really claim).
fn may_overlap(
    a: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    b: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> bool {
    let everything = |s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector| {
        s.match_labels.as_ref().is_none_or(|l| l.is_empty())
            && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    };
    if everything(a) || everything(b) {
        return true;
    }
    match (a.match_labels.as_ref(), b.match_labels.as_ref()) {
        (Some(la), Some(lb)) if !la.is_empty() && !lb.is_empty() => {
            la.iter().all(|(k, v)| lb.get(k).is_none_or(|w| w == v))
        }
        _ => false,
    }
}

fn rollout_health(status: &crate::api::PatchRolloutStatus, invalid_spec: bool) -> Health {
    let msg = status.message.clone().unwrap_or_default();
    match status.phase {
        Some(RolloutPhase::Completed) => Health::ready("Completed", msg),
        Some(RolloutPhase::RolledBack) => Health::ready("RolledBack", msg),
        Some(RolloutPhase::Aborted) => Health::ready("Aborted", msg),
        Some(RolloutPhase::Halted) => Health::stalled("Halted", msg),
        Some(RolloutPhase::Held) => Health::stalled("Held", msg),
        Some(RolloutPhase::Paused) => Health::ready("Paused", msg),
        Some(RolloutPhase::RollingBack) => Health::progressing("RollingBack", msg),
        Some(RolloutPhase::Progressing) | None if invalid_spec => {
            Health::stalled("InvalidSpec", msg)
        }
        Some(RolloutPhase::Progressing) | None => Health::progressing("Progressing", msg),
    }
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}
