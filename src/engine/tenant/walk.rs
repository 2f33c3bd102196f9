//! Gather, per device: which policy governs each device and which ring of it, what covers
//! each of its device–patch pairs, each pair's SLA clock, and the rollouts' members —
//! taken from the cache where the device is the one it was derived from — counted into
//! the policies' SLA tallies as the walk goes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;

use crate::api::{
    DEFAULT_TIER, DevicePatchStatus, Duration, ExceptionPhase, ManagedDevice, PatchPolicy,
    PatchState, PlanEntry, SlaTier,
};
use crate::contract::{self, CheckIns};
use crate::engine::approval::{self, Approval, Outcomes};
use crate::engine::cache::{Cache, Derived, Exempt, Ix, Pair, When};
use crate::engine::exceptions;
use crate::engine::rollout::Member;
use crate::engine::sla::{self, ClockState, PairFacts, Tally};

use super::gather::{FastHash, Tenant};
use super::name_of;

/// The DueSoon margin when a policy sets none.
const DEFAULT_MARGIN: Duration = Duration::hours(24);
/// How many devices the walk reads ahead of the one it is on.
const READ_AHEAD: usize = 64;

/// What one pass knows about one patch under one policy.
#[derive(Clone)]
pub(super) struct Slot<'a> {
    pub approval: Approval,
    pub superseded_by: Option<String>,
    pub outcomes: Outcomes,
    /// Members per ring position of the policy; filled only when `decided`.
    pub members: Vec<Vec<Member<'a>>>,
    /// The same members as (device position, report position), in device order, when
    /// the pass keeps its results for an incremental pass ([`super::kept`]).
    pub at: Vec<Vec<(u32, u32)>>,
    /// A rollout will be decided for the patch under the policy this pass.
    pub decided: bool,
    /// How many governed devices report the patch (each once).
    pub reported: u32,
}

impl Slot<'_> {
    /// The slot with no members: what a pass keeps of it for the next.
    pub fn detach(self) -> Slot<'static> {
        Slot {
            approval: self.approval,
            superseded_by: self.superseded_by,
            outcomes: self.outcomes,
            members: Vec::new(),
            at: self.at,
            decided: self.decided,
            reported: self.reported,
        }
    }

    /// The patch counts in the SLA figures: it is neither rejected nor superseded.
    pub fn counted(&self) -> bool {
        !matches!(self.approval, Approval::Rejected { .. }) && self.superseded_by.is_none()
    }
}

/// One device as the pass sees it (a pass that keeps its walk keeps one per device, so
/// it is kept small: indices as [`Ix`], instants as [`When`], the few devices' conflicts
/// in [`Walked::conflicts`]).
#[derive(Clone, Default)]
pub(super) struct DeviceView {
    /// The governing policy (index in the pass's policy list).
    policy: Option<Ix>,
    /// Position in the policy's ring list.
    ring: Option<Ix>,
    /// The tier (index into the cache's tier names), when governed.
    tier: Option<Ix>,
    /// How many of its counted pairs are overdue.
    pub overdue: u32,
    /// How many are due soon.
    pub due_soon: u32,
    /// The first instant after the pass at which one of its counted clocks changes.
    next: When,
    /// One of its clocks moves with time itself (an exemption, or an install time taken
    /// from `now`): it is counted again at every pass.
    pub volatile: bool,
    /// When it was last seen (kept for an incremental pass's members).
    pub seen: When,
}

impl DeviceView {
    /// The governing policy (index in the pass's policy list).
    pub fn policy(&self) -> Option<usize> {
        self.policy.map(Ix::get)
    }

    /// Position in the policy's ring list.
    pub fn ring(&self) -> Option<usize> {
        self.ring.map(Ix::get)
    }

    /// The tier (index into the cache's tier names); 0 when not governed.
    pub fn tier(&self) -> usize {
        self.tier.map_or(0, Ix::get)
    }

    /// The first instant after the pass at which one of its counted clocks changes.
    pub fn next(&self) -> Option<Timestamp> {
        self.next.get()
    }
}

/// What the walk over the devices found.
#[derive(Clone)]
pub(super) struct Walked<'a> {
    /// The devices, in name order.
    pub devices: Vec<&'a ManagedDevice>,
    /// One view per device, in the same order.
    pub views: Vec<DeviceView>,
    /// The devices several policies of equal priority select (few), with those policies.
    pub conflicts: BTreeMap<usize, Vec<usize>>,
    /// Per ring: the devices it claims.
    pub ring_members: Vec<u32>,
    /// Per ring: devices it selects that an earlier ring of a policy claims.
    pub ring_claimed_elsewhere: Vec<u32>,
    /// Per (policy, patch), at `policy * patches + patch`.
    pub slots: Vec<Option<Slot<'a>>>,
    /// Per policy: its SLA tally.
    pub tallies: Vec<Tally>,
    /// Per policy: patch ids its devices report that the catalog does not know, with
    /// how many devices report each.
    pub unknown: Vec<BTreeMap<String, u32>>,
    /// Per exception: the devices it covers now.
    pub exc_covered: Vec<BTreeSet<usize>>,
    /// The first instant an SLA clock changes.
    pub wake: Option<Timestamp>,
    /// Every pair the walk counted, when the cache asks for them (the ledger's).
    pub facts: Vec<Fact>,
    /// Per (policy, patch), like `slots`: what an incremental pass changed of its
    /// members.
    pub dirty: Vec<Dirt>,
}

/// One device–patch pair as the walk counted it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Fact {
    /// The device's position in [`Walked::devices`].
    pub di: usize,
    /// The governing policy.
    pub pi: usize,
    /// The patch's position in the catalog.
    pub ix: usize,
    /// The report's position in the device's `status.patches`.
    pub report: usize,
    /// The tier (index into the cache's tier names).
    pub tier: usize,
    /// The pair's clock.
    pub clock: sla::Clock,
    /// Counted in the SLA figures (the patch is neither rejected nor superseded).
    pub counted: bool,
}

impl<'a> Walked<'a> {
    fn new(t: &Tenant<'_>, devices: Vec<&'a ManagedDevice>) -> Self {
        let (policies, rings) = (t.policies.len(), t.rings.len());
        let mut slots = Vec::new();
        slots.resize_with(policies * t.patches.len(), || None);
        Walked {
            views: vec![DeviceView::default(); devices.len()],
            conflicts: BTreeMap::new(),
            devices,
            ring_members: vec![0; rings],
            ring_claimed_elsewhere: vec![0; rings],
            slots,
            tallies: vec![Tally::default(); policies],
            unknown: vec![BTreeMap::new(); policies],
            exc_covered: vec![BTreeSet::new(); t.excs.len()],
            wake: None,
            facts: Vec::new(),
            dirty: Vec::new(),
        }
    }

    /// What a pass keeps of its walk for the next one: all but the devices and the
    /// members themselves (their positions are kept in each slot's `at`).
    pub fn detach(self) -> Walked<'static> {
        Walked {
            devices: Vec::new(),
            views: self.views,
            conflicts: self.conflicts,
            ring_members: self.ring_members,
            ring_claimed_elsewhere: self.ring_claimed_elsewhere,
            slots: self
                .slots
                .into_iter()
                .map(|s| s.map(Slot::detach))
                .collect(),
            tallies: self.tallies,
            unknown: self.unknown,
            exc_covered: self.exc_covered,
            wake: self.wake,
            facts: Vec::new(),
            dirty: Vec::new(),
        }
    }

    /// The slot of a patch under a policy, made on first use.
    #[inline]
    pub fn slot(
        &mut self,
        t: &Tenant<'a>,
        pi: usize,
        ix: usize,
        sizes: &[Vec<usize>],
        now: Timestamp,
    ) -> &mut Slot<'a> {
        self.slots[pi * t.patches.len() + ix].get_or_insert_with(|| new_slot(t, pi, ix, sizes, now))
    }
}

/// A slot for a patch under a policy: its approval and supersession at `now`, and member
/// lists when a rollout will be decided for it (one exists, or the patch is approved and
/// not superseded), sized as the previous pass found them (`sizes`) or as the rollout's
/// status counted them, so that none grows by copying. (Made once per slot and pass, and
/// kept out of line so that the lookup every pair makes twice stays small.)
#[inline(never)]
pub(super) fn new_slot<'a>(
    t: &Tenant<'a>,
    pi: usize,
    ix: usize,
    sizes: &[Vec<usize>],
    now: Timestamp,
) -> Slot<'a> {
    let (policy, people) = (&t.policies[pi].policy.spec, &t.policies[pi].people);
    let patch = t.patches[ix];
    let superseded_by = t.superseders.get(patch.spec.id.as_str()).and_then(|by| {
        by.iter()
            .map(|&i| t.patches[i])
            .find(|other| approval::evaluate(policy, people, other, now).is_approved())
            .map(|other| other.spec.id.clone())
    });
    let approval = approval::evaluate(policy, people, patch, now);
    let at = pi * t.patches.len() + ix;
    let rollout = t.rollouts.get(at).copied().flatten();
    let decided = rollout.is_some() || (approval.is_approved() && superseded_by.is_none());
    let size = |pos: usize, ring: &str| {
        let counted = rollout
            .and_then(|r| r.status.as_ref())
            .and_then(|s| s.rings.iter().find(|r| r.name == ring))
            // A stored status is only a hint: never more than the devices there are.
            .map(|r| (r.targeted.saturating_add(r.excepted) as usize).min(t.devices));
        sizes
            .get(at)
            .and_then(|c| c.get(pos))
            .copied()
            .filter(|n| *n > 0)
            .or(counted)
            .unwrap_or(0)
    };
    let rings = &t.policies[pi].rings;
    Slot {
        approval,
        superseded_by,
        outcomes: Outcomes::default(),
        members: rings
            .iter()
            .enumerate()
            .map(|(pos, (ring, _))| Vec::with_capacity(size(pos, ring)))
            .collect(),
        at: vec![Vec::new(); rings.len()],
        decided,
        reported: 0,
    }
}

/// Walks every device: membership, coverage, clocks, tallies and rollout members.
/// Entries are in name order, each for the device at its position in the previous pass:
/// the walk first assumes the same devices in the same order and checks each name as it
/// goes; on the first that differs, the devices are put in name order, the entries aligned
/// with them, and the walk starts again.
pub(super) fn walk<'a>(
    t: &Tenant<'a>,
    devices: &[&'a ManagedDevice],
    cache: &mut Cache,
    now: Timestamp,
    kept: bool,
) -> Walked<'a> {
    let keep = cache.keep;
    let mut devices: Vec<&ManagedDevice> = devices.to_vec();
    if !keep && !devices.is_sorted_by(|a, b| name_of(&a.metadata) <= name_of(&b.metadata)) {
        devices.sort_by(|a, b| name_of(&a.metadata).cmp(name_of(&b.metadata)));
    }
    // Clocks run at a later instant than this pass's are not reused.
    let rewound = cache.last_now.is_some_and(|last| now < last);
    cache.last_now = Some(now);
    let sizes = std::mem::take(&mut cache.member_counts);
    let seen = std::cell::RefCell::new(Seen::new(t.patches.len()));
    let mut pass = Walk {
        t,
        inputs: DeviceInputs {
            tenant: t,
            seen: &seen,
        },
        sizes: &sizes,
        tally_cells: vec![Vec::new(); t.policies.len()],
        rewound,
        record: cache.record,
        kept,
        incremental: false,
        now,
        planned: Vec::new(),
    };
    let mut check_alignment = keep;
    let walked = loop {
        match pass.all(Walked::new(t, devices.clone()), cache, check_alignment) {
            Some(w) => break w,
            None => {
                if !devices.is_sorted_by(|a, b| name_of(&a.metadata) <= name_of(&b.metadata)) {
                    devices.sort_by(|a, b| name_of(&a.metadata).cmp(name_of(&b.metadata)));
                }
                cache.align(devices.iter().map(|d| name_of(&d.metadata)));
                check_alignment = false;
            }
        }
    };
    // Every device had its entry in order: entries past the last device are for devices
    // that are gone (removed from the end of the list).
    cache.devices.truncate(walked.devices.len());
    if keep {
        cache.member_counts = walked
            .slots
            .iter()
            .map(|s| {
                s.as_ref()
                    .map_or(Vec::new(), |s| s.members.iter().map(Vec::len).collect())
            })
            .collect();
    }
    walked
}

/// The walk's fixed inputs and its scratch space.
struct Walk<'s, 'a> {
    t: &'s Tenant<'a>,
    inputs: DeviceInputs<'s, 'a>,
    sizes: &'s [Vec<usize>],
    /// Per policy, by `tier * 4 + severity`: the tally cell.
    tally_cells: Vec<Vec<Option<usize>>>,
    rewound: bool,
    /// Record every pair counted in [`Walked::facts`].
    record: bool,
    /// Record the members' positions in their slots' `at`, for an incremental pass.
    kept: bool,
    /// This walk updates a kept one ([`rewalk`]): members are put in their slots' `at`
    /// in device order, the tallies' samples kept in order.
    incremental: bool,
    now: Timestamp,
    /// Scratch space for [`Planned`], kept from device to device.
    planned: Vec<(usize, &'a PlanEntry)>,
}

/// A device's install entries by catalog position (a device has a few at most).
struct Planned<'a>(Vec<(usize, &'a PlanEntry)>);

impl<'a> Planned<'a> {
    /// The entries of `install` (none when not read) whose patch the catalog knows, in
    /// `scratch`'s space.
    fn of(
        mut scratch: Vec<(usize, &'a PlanEntry)>,
        install: Option<&'a BTreeMap<String, PlanEntry>>,
        catalog: &HashMap<&str, usize, FastHash>,
    ) -> Self {
        scratch.clear();
        for (id, e) in install.into_iter().flatten() {
            if let Some(&ix) = catalog.get(id.as_str()) {
                scratch.push((ix, e));
            }
        }
        Self(scratch)
    }

    /// The entry for the patch at `ix`.
    fn install(&self, ix: usize) -> Option<&'a PlanEntry> {
        self.0.iter().find(|(i, _)| *i == ix).map(|(_, e)| *e)
    }

    /// Its space, for the next device.
    fn done(self) -> Vec<(usize, &'a PlanEntry)> {
        self.0
    }
}

/// What the walk reads of one device object first: its reports and its check-in.
type Ahead<'a> = Option<(&'a [DevicePatchStatus], When)>;

impl<'a> Walk<'_, 'a> {
    /// One walk over every device; None as soon as a device is not at its entry's place.
    fn all(
        &mut self,
        mut w: Walked<'a>,
        cache: &mut Cache,
        check_alignment: bool,
    ) -> Option<Walked<'a>> {
        let keep = cache.keep;
        let mut scratch = Derived::default();
        for tc in &mut self.tally_cells {
            tc.clear();
        }
        // What the walk reads of each device object, read ahead a block at a time in a
        // loop of nothing else: those reads are of objects far apart in memory, and so they
        // wait on memory together instead of one after another.
        // Whether each device is the very object its entry last read is judged in the same
        // loop, for the same reason.
        // The entries' pairs are read there too, for the same reason (`black_box` keeps the
        // compiler from dropping reads whose result the loop does not use).
        let mut ahead: Vec<(Ahead<'a>, bool)> = Vec::with_capacity(READ_AHEAD);
        for di in 0..w.devices.len() {
            if di % READ_AHEAD == 0 {
                ahead.clear();
                let end = w.devices.len().min(di + READ_AHEAD);
                ahead.extend((di..end).map(|j| {
                    let d = w.devices[j];
                    let same = keep && cache.devices.get(j).is_some_and(|e| e.unchanged(d));
                    if !same {
                        touch_derived(d);
                    }
                    (read_ahead(d, self.t.check_ins), same)
                }));
                if keep {
                    for e in cache.devices.iter().take(end).skip(di) {
                        std::hint::black_box(e.pairs.iter().any(Pair::duplicate));
                    }
                }
            }
            let dev = w.devices[di];
            let (status, same) = ahead[di % READ_AHEAD];
            let entry = if keep {
                match cache.devices.get_mut(di) {
                    Some(e) => {
                        // The very object the entry last read is the entry's device: an
                        // unchanged version needs no name compared.
                        e.trusted = same;
                        if check_alignment && !e.trusted && !e.is_for(dev) {
                            return None;
                        }
                        e
                    }
                    None => return None,
                }
            } else {
                scratch.trusted = false;
                &mut scratch
            };
            self.refresh(entry, dev, keep, &mut cache.tiers);
            self.device(&mut w, di, entry, status, &cache.tiers);
        }
        Some(w)
    }

    /// Brings a device's entry up to date: trusted when the device is the very object it
    /// last read, else compared, and derived again when its inputs changed.
    fn refresh(
        &self,
        entry: &mut Derived,
        dev: &ManagedDevice,
        keep: bool,
        tiers: &mut Vec<String>,
    ) {
        if entry.trusted {
            debug_assert!(
                entry.same_inputs(dev),
                "device {} changed but kept its resourceVersion",
                name_of(&dev.metadata)
            );
            return;
        }
        if !entry.same_inputs(dev) {
            derive(entry, dev, keep, &self.inputs, tiers);
        }
        // Its version is recorded with its summary, at the end of the pass (a walk that
        // starts again after a misaligned entry must judge the same devices trusted).
    }

    /// Counts one device into the walk: its view, its ring, and each of its pairs.
    fn device(
        &mut self,
        w: &mut Walked<'a>,
        di: usize,
        entry: &mut Derived,
        status: Ahead<'a>,
        tiers: &[String],
    ) {
        let view = &mut w.views[di];
        view.next = When::new(None);
        view.volatile = false;
        view.seen = status.map_or(When::new(None), |(_, seen)| seen);
        view.policy = entry.policy().and_then(Ix::new);
        view.ring = entry.ring().and_then(Ix::new);
        view.tier = Ix::new(entry.tier());
        if !entry.conflict().is_empty() {
            w.conflicts.insert(di, entry.conflict().to_vec());
        }
        if let Some(ri) = entry.member_of() {
            w.ring_members[ri] += 1;
        }
        for &ri in entry.claimed_elsewhere() {
            w.ring_claimed_elsewhere[ri] += 1;
        }
        let (Some(pi), Some((reports, last_seen))) = (entry.policy(), status) else {
            return;
        };
        let dev = w.devices[di];
        let tier = tiers[entry.tier()].as_str();
        let trusted = entry.trusted;
        let ring_pos = entry.ring();
        let tier_ix = entry.tier();
        // The policy's SLA row for the device's tier, found when a clock must run.
        let mut row = None;
        // The first instant after `now` at which one of its counted clocks changes.
        let mut next = None;
        // The install entries of a device that changed, by patch, read once here: each
        // pair finds its own without comparing ids, and its member carries it.
        let planned = Planned::of(
            std::mem::take(&mut self.planned),
            (ring_pos.is_some() && !trusted).then_some(&dev.spec.plan.install),
            &self.t.catalog,
        );
        let (pairs, covered) = entry.pairs_mut();
        for (pos, (report, pair)) in reports.iter().zip(pairs.iter_mut()).enumerate() {
            if pair.duplicate() {
                continue;
            }
            let Some(ix) = pair.ix() else {
                match w.unknown[pi].get_mut(report.id.as_str()) {
                    Some(n) => *n += 1,
                    None => {
                        w.unknown[pi].insert(report.id.clone(), 1);
                    }
                }
                continue;
            };
            let at = PairAt {
                di,
                pi,
                ix,
                tier,
                tier_ix,
                exempt: covered.at(pos),
            };
            let clock = self.count(w, &at, pair, &mut row, &mut next);
            if self.record {
                self.record_fact(w, &at, pos, clock);
            }
            w.views[di].volatile |= pair.moves_with_time(self.now, at.exempt);
            let slot = w.slot(self.t, pi, ix, self.sizes, self.now);
            // The pair's state is the report's (compared, or trusted).
            match pair.state {
                PatchState::Installed | PatchState::PendingReboot => slot.outcomes.installed += 1,
                PatchState::Failed => slot.outcomes.failed += 1,
                _ => {}
            }
            // Built here, while the device is in cache, rather than looked up again per
            // rollout. A trusted device's plan is as it was: its entries are only looked up
            // where there were some.
            // (Read for every pair, so that what a trusted device's pairs say of its plan
            // holds when a rollout starts for a patch later.)
            let mut entry = None;
            if ring_pos.is_some() && !trusted {
                entry = planned.install(ix);
                let uninstall = &dev.spec.plan.uninstall;
                pair.set_in_plan(
                    entry.is_some(),
                    !uninstall.is_empty() && uninstall.contains_key(&report.id),
                );
            }
            let Some(ring) = ring_pos.filter(|_| slot.decided) else {
                continue;
            };
            if self.incremental {
                // Its place among the members is moved by `rewalk`, only if it moved.
                continue;
            }
            if self.kept {
                slot.at[ring].push((di as u32, pos as u32));
            }
            // The pair keeps the clock just counted: its deadline is the clock's.
            debug_assert_eq!(pair.deadline_when(), When::new(clock.deadline));
            slot.members[ring].push(member_of(dev, pos, pair, last_seen, entry));
        }
        w.views[di].next = When::new(next);
        self.planned = planned.done();
    }

    /// One pair's SLA clock (kept from an earlier pass while it holds), counted into its
    /// policy's tally, its device's view and the device's `next` clock change unless the
    /// patch is rejected or superseded.
    fn count(
        &mut self,
        w: &mut Walked<'a>,
        at: &PairAt<'_>,
        pair: &mut Pair,
        row: &mut Option<Option<&'a SlaTier>>,
        next: &mut Option<Timestamp>,
    ) -> sla::Clock {
        let (t, now) = (self.t, self.now);
        let slot = w.slot(t, at.pi, at.ix, self.sizes, now);
        slot.reported += 1;
        let counted = slot.counted();
        let (active, intervals) = at.exempt.map_or((&[][..], &[][..]), |e| {
            (e.active.as_slice(), e.intervals.as_slice())
        });
        for &ei in active {
            w.exc_covered[ei].insert(at.di);
        }
        let installed_at = pair.installed_for_clock(now);
        let policy = t.policies[at.pi].policy;
        let clock = match pair.clock_at(now, self.rewound, at.exempt) {
            Some(clock) => clock,
            None => {
                let row = *row.get_or_insert_with(|| sla_row(policy, at.tier));
                let (severity, cap) = t.graded[at.pi * t.patches.len() + at.ix];
                let clock = sla::clock(
                    PairFacts {
                        released: t.released[at.ix],
                        within: row.map(|r| r.within(severity)),
                        cap,
                        margin: policy.spec.due_soon_margin.unwrap_or(DEFAULT_MARGIN),
                        installed_at,
                        exempt_now: !active.is_empty(),
                        exempt_intervals: intervals,
                    },
                    now,
                );
                pair.set_clock(clock, at.exempt, now);
                clock
            }
        };
        if counted {
            self.tally(w, at, clock.state, installed_at);
            if let Some(change) = clock.next_change.filter(|n| *n > now) {
                w.wake = Some(w.wake.map_or(change, |w| w.min(change)));
                *next = Some(next.map_or(change, |n| n.min(change)));
            }
        }
        clock
    }

    /// Records a pair for the ledger, as counted.
    #[cold]
    fn record_fact(&self, w: &mut Walked<'a>, at: &PairAt<'_>, report: usize, clock: sla::Clock) {
        let counted = w.slot(self.t, at.pi, at.ix, self.sizes, self.now).counted();
        w.facts.push(Fact {
            di: at.di,
            pi: at.pi,
            ix: at.ix,
            report,
            tier: at.tier_ix,
            clock,
            counted,
        });
    }

    /// Adds a pair to its policy's SLA tally and its device's overdue and due-soon counts.
    fn tally(
        &mut self,
        w: &mut Walked<'a>,
        at: &PairAt<'_>,
        state: ClockState,
        installed_at: Option<Timestamp>,
    ) {
        let t = self.t;
        let severity = t.graded[at.pi * t.patches.len() + at.ix].0;
        let tti = installed_at.map(|i| i.duration_since(t.released[at.ix]));
        // Cells found once per tier and severity, not by name per pair.
        let key = at.tier_ix * 4 + severity as usize;
        let cells = &mut self.tally_cells[at.pi];
        if cells.len() <= key {
            cells.resize(key + 1, None);
        }
        let tally = &mut w.tallies[at.pi];
        let cell = *cells[key].get_or_insert_with(|| tally.cell(at.tier, severity));
        if self.incremental {
            tally.insert_at(cell, state, tti);
        } else {
            tally.add_at(cell, state, tti);
        }
        let view = &mut w.views[at.di];
        match state {
            ClockState::Overdue => view.overdue += 1,
            ClockState::DueSoon => view.due_soon += 1,
            _ => {}
        }
    }
}

impl<'a> Walk<'_, 'a> {
    /// Takes out of `w` what the device at `di` added to it when it was last counted (at
    /// `last_now`, for a clock that moves with time), as its entry still says; returns
    /// the device's view as it was.
    fn uncount(
        &self,
        w: &mut Walked<'a>,
        di: usize,
        entry: &Derived,
        tiers: &[String],
        last_now: Timestamp,
    ) -> DeviceView {
        let old = std::mem::take(&mut w.views[di]);
        w.conflicts.remove(&di);
        if let Some(ri) = entry.member_of() {
            w.ring_members[ri] = w.ring_members[ri].saturating_sub(1);
        }
        for &ri in entry.claimed_elsewhere() {
            w.ring_claimed_elsewhere[ri] = w.ring_claimed_elsewhere[ri].saturating_sub(1);
        }
        let Some(pi) = entry.policy() else {
            return old;
        };
        let tier = tiers.get(entry.tier()).map_or("", String::as_str);
        let mut unknown = entry.unknown_ids().iter();
        let covered = entry.covered();
        for (pos, pair) in entry.pairs.iter().enumerate() {
            let Some(ix) = pair.ix() else {
                // The catalog does not know it, so no other report of it counts instead.
                if let Some(id) = unknown.next() {
                    uncount_unknown(&mut w.unknown[pi], id);
                }
                continue;
            };
            if pair.duplicate() {
                continue;
            }
            for &ei in covered.active(pos) {
                w.exc_covered[ei].remove(&di);
            }
            self.uncount_pair(w, pi, ix, pair, tier, last_now);
        }
        old
    }

    /// Takes one counted pair out of its slot and its policy's tally (its place among
    /// the members is moved by `rewalk`).
    fn uncount_pair(
        &self,
        w: &mut Walked<'a>,
        pi: usize,
        ix: usize,
        pair: &Pair,
        tier: &str,
        last_now: Timestamp,
    ) {
        let t = self.t;
        let at = pi * t.patches.len() + ix;
        let Some(slot) = w.slots[at].as_mut() else {
            return;
        };
        slot.reported = slot.reported.saturating_sub(1);
        let o = &mut slot.outcomes;
        match pair.state {
            PatchState::Installed | PatchState::PendingReboot => {
                o.installed = o.installed.saturating_sub(1);
            }
            PatchState::Failed => o.failed = o.failed.saturating_sub(1),
            _ => {}
        }
        if let (true, Some(state)) = (slot.counted(), pair.clock_state()) {
            let severity = t.graded[at].0;
            let tti = pair
                .installed_for_clock(last_now)
                .map(|i| i.duration_since(t.released[ix]));
            let tally = &mut w.tallies[pi];
            let cell = tally.cell(tier, severity);
            tally.remove_at(cell, state, tti);
        }
    }
}

/// One device fewer reports an unknown patch id.
fn uncount_unknown(unknown: &mut BTreeMap<String, u32>, id: &str) {
    if let Some(n) = unknown.get_mut(id) {
        *n -= 1;
        if *n == 0 {
            unknown.remove(id);
        }
    }
}

/// Updates a walk kept from the last pass (at `last_now`) for the devices at `dis`, in
/// ascending order: each one's earlier contribution taken out, its entry brought up to
/// date, and what it contributes now counted in. Returns each one's earlier view.
pub(super) fn rewalk<'a>(
    t: &Tenant<'a>,
    w: &mut Walked<'a>,
    cache: &mut Cache,
    prints: &mut [Prints],
    dis: &[usize],
    last_now: Timestamp,
    now: Timestamp,
) -> Vec<(usize, DeviceView)> {
    let seen = std::cell::RefCell::new(Seen::new(t.patches.len()));
    let mut pass = Walk {
        t,
        inputs: DeviceInputs {
            tenant: t,
            seen: &seen,
        },
        sizes: &[],
        tally_cells: vec![Vec::new(); t.policies.len()],
        rewound: false,
        record: false,
        kept: true,
        incremental: true,
        now,
        planned: Vec::new(),
    };
    w.dirty.clear();
    w.dirty.resize(w.slots.len(), Dirt::Clean);
    let mut old = Vec::with_capacity(dis.len());
    for &di in dis {
        let (Some(&dev), Some(entry)) = (w.devices.get(di), cache.devices.get_mut(di)) else {
            continue;
        };
        let print = prints.get_mut(di).map(std::mem::take).unwrap_or_default();
        let before = memberships(t, w, di, entry, &print);
        old.push((di, pass.uncount(w, di, entry, &cache.tiers, last_now)));
        entry.trusted = false;
        pass.refresh(entry, dev, true, &mut cache.tiers);
        let status = read_ahead(dev, t.check_ins);
        pass.device(w, di, entry, status, &cache.tiers);
        let print = fingerprints(dev);
        let after = memberships(t, w, di, entry, &print);
        for (at, dirt) in changed_memberships(&before, &after) {
            w.dirty[at] = w.dirty[at].and(dirt);
        }
        move_members(w, di, &before, &after);
        if let Some(slot) = prints.get_mut(di) {
            *slot = print;
        }
    }
    old
}

/// Per report of a device, a fingerprint of everything of it a rollout reads beyond
/// what its entry keeps and when the device was last seen: the report, and the plan's
/// install and uninstall entries for its patch. (An incremental pass compares them to
/// find the rollouts one of whose members changed; none kept means unknown: all did.)
pub(super) type Prints = Box<[u64]>;

/// What an incremental pass changed of a slot's members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Dirt {
    /// Nothing.
    #[default]
    Clean,
    /// Only when some were last seen: none of them, before or after, turns unreachable
    /// before this instant (a check-in matters to a rollout only near that).
    Seen(Timestamp),
    /// A member came, went or is not the same.
    Changed,
}

impl Dirt {
    /// Both changes.
    fn and(self, other: Dirt) -> Dirt {
        match (self, other) {
            (Dirt::Changed, _) | (_, Dirt::Changed) => Dirt::Changed,
            (Dirt::Seen(a), Dirt::Seen(b)) => Dirt::Seen(a.min(b)),
            (Dirt::Seen(a), Dirt::Clean) | (Dirt::Clean, Dirt::Seen(a)) => Dirt::Seen(a),
            (Dirt::Clean, Dirt::Clean) => Dirt::Clean,
        }
    }
}

fn fingerprints(dev: &ManagedDevice) -> Prints {
    use std::hash::{Hash, Hasher};
    let Some(status) = dev.status.as_ref() else {
        return Box::default();
    };
    let plan = &dev.spec.plan;
    status
        .patches
        .iter()
        .map(|r| {
            let mut h = std::hash::DefaultHasher::new();
            (
                &r.id,
                r.state,
                r.attempts,
                r.last_attempt_at,
                r.installed_at,
            )
                .hash(&mut h);
            (&r.message, &r.attempt).hash(&mut h);
            for entry in [plan.install.get(&r.id), plan.uninstall.get(&r.id)] {
                entry
                    .map(|e| (&e.rollout, e.not_before, e.not_after, e.deadline))
                    .hash(&mut h);
                entry
                    .map(|e| (&e.attempt, &e.basis, e.answer_by))
                    .hash(&mut h);
            }
            h.finish()
        })
        .collect()
}

/// A device's place in a rollout's members, and what its member is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Membership {
    ring: usize,
    report: usize,
    state: PatchState,
    excepted: bool,
    in_plan: (bool, bool),
    installed_at: When,
    deadline: When,
    /// None when unknown.
    print: Option<u64>,
    /// When the device was last seen, and when that makes it unreachable in this ring.
    seen: When,
    turns: Option<Timestamp>,
}

/// The device's memberships, by slot (policy × patch), as its entry and `prints` say.
fn memberships(
    t: &Tenant<'_>,
    w: &Walked<'_>,
    di: usize,
    entry: &Derived,
    prints: &[u64],
) -> Vec<(usize, Membership)> {
    let (Some(pi), Some(ring)) = (entry.policy(), entry.ring()) else {
        return Vec::new();
    };
    let seen = w.views.get(di).map(|v| v.seen).unwrap_or_default();
    let turns = turns_unreachable(t, pi, ring, seen);
    let mut out: Vec<(usize, Membership)> = member_slots(t, &w.slots, pi, entry)
        .map(|(pos, p, at)| {
            let m = Membership {
                ring,
                report: pos,
                state: p.state,
                excepted: p.blocks(),
                in_plan: p.in_plan(),
                installed_at: p.installed_when(),
                deadline: p.deadline_when(),
                print: prints.get(pos).copied(),
                seen,
                turns,
            };
            (at, m)
        })
        .collect();
    out.sort_by_key(|(at, _)| *at);
    out
}

/// The device's reports that make it a member of a rollout (of policy `pi`, which
/// governs it): each one's position, pair and slot (policy × patch), in report order.
fn member_slots<'e>(
    t: &Tenant<'_>,
    slots: &'e [Option<Slot<'_>>],
    pi: usize,
    entry: &'e Derived,
) -> impl Iterator<Item = (usize, &'e Pair, usize)> + 'e {
    let n = t.patches.len();
    entry
        .pairs
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.duplicate())
        .filter_map(move |(pos, p)| Some((pos, p, pi * n + p.ix()?)))
        .filter(|(_, _, at)| {
            slots
                .get(*at)
                .and_then(Option::as_ref)
                .is_some_and(|s| s.decided)
        })
}

/// When a device last seen at `seen` turns unreachable in the ring at position `ring` of
/// policy `pi` (none: never, or not seen).
fn turns_unreachable(t: &Tenant<'_>, pi: usize, ring: usize, seen: When) -> Option<Timestamp> {
    let after = unreachable_after(t, pi, ring);
    seen.get().and_then(|s| s.checked_add(after.span()).ok())
}

/// Brings up to date when the devices at `dis` were last seen, devices whose objects are
/// as the last pass (at `last_now`) counted them (so that nothing else of them can have
/// changed: a check-in by Lease, or a `lastSeen` stamped without a new version). Nothing
/// is counted again; the slots they are members of are marked as seen ([`Dirt::Seen`]),
/// or as changed where a member's standing may have moved (it was unreachable, it went
/// back in time, or a sighting that never turns unreachable cannot be told apart).
///
/// With `coarse` (every device may have checked in), a check-in that moves no standing
/// marks every slot of its device's policy instead of finding the device's own: a
/// rollout then counts again from its members' check-ins when the first of them turns
/// unreachable ([`super::kept`]), which costs less than finding ten thousand devices'
/// slots.
pub(super) fn reseen(
    t: &Tenant<'_>,
    w: &mut Walked<'_>,
    cache: &Cache,
    dis: &[usize],
    last_now: Timestamp,
    coarse: bool,
) {
    w.dirty.resize(w.slots.len(), Dirt::Clean);
    // Read first in a loop of nothing else, so that the reads wait on memory together.
    let now_seen: Vec<When> = dis
        .iter()
        .map(|&di| {
            let dev = w.devices.get(di);
            When::new(dev.and_then(|d| contract::last_seen(d, t.check_ins)))
        })
        .collect();
    let mut by_policy: Vec<Option<Timestamp>> = vec![None; t.policies.len()];
    for (&di, seen) in dis.iter().zip(now_seen) {
        let Some(view) = w.views.get_mut(di) else {
            continue;
        };
        let before = std::mem::replace(&mut view.seen, seen);
        let (Some(pi), Some(ring), false) = (view.policy(), view.ring(), before == seen) else {
            continue;
        };
        let dirt = match (
            turns_unreachable(t, pi, ring, before),
            turns_unreachable(t, pi, ring, seen),
        ) {
            (Some(x), Some(y)) if x > last_now => Dirt::Seen(x.min(y)),
            _ => Dirt::Changed,
        };
        match (coarse, dirt) {
            (true, Dirt::Seen(at)) => {
                by_policy[pi] = crate::engine::rollout::earlier(by_policy[pi], Some(at));
            }
            _ => mark_member_slots(t, w, cache, di, pi, dirt),
        }
    }
    let n = t.patches.len();
    for (pi, at) in by_policy.into_iter().enumerate() {
        let Some(at) = at else { continue };
        for k in pi * n..(pi + 1) * n {
            if w.slots[k].as_ref().is_some_and(|s| s.decided) {
                w.dirty[k] = w.dirty[k].and(Dirt::Seen(at));
            }
        }
    }
}

/// Marks the slots the device at `di` (governed by policy `pi`) is a member of.
fn mark_member_slots(
    t: &Tenant<'_>,
    w: &mut Walked<'_>,
    cache: &Cache,
    di: usize,
    pi: usize,
    dirt: Dirt,
) {
    let Some(entry) = cache.devices.get(di) else {
        return;
    };
    for (_, _, at) in member_slots(t, &w.slots, pi, entry) {
        w.dirty[at] = w.dirty[at].and(dirt);
    }
}

/// The slots in which a device's membership changed between `before` and `after` (both
/// in slot order), and how: it came, went, or its member is not the same (or not known
/// to be); or only its check-in moved.
fn changed_memberships(
    before: &[(usize, Membership)],
    after: &[(usize, Membership)],
) -> Vec<(usize, Dirt)> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < before.len() || j < after.len() {
        match (before.get(i), after.get(j)) {
            (Some(b), Some(a)) if b.0 == a.0 => {
                if let Some(dirt) = member_change(&b.1, &a.1) {
                    out.push((b.0, dirt));
                }
                i += 1;
                j += 1;
            }
            (Some(b), Some(a)) if b.0 < a.0 => {
                out.push((b.0, Dirt::Changed));
                i += 1;
            }
            (Some(b), None) => {
                out.push((b.0, Dirt::Changed));
                i += 1;
            }
            (_, Some(a)) => {
                out.push((a.0, Dirt::Changed));
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

/// Moves the device at `di` in its slots' member positions from where `before` has it
/// to where `after` has it (both in slot order): out of the slots it left, into those it
/// joined, to its new ring or report where those moved. Untouched where it stayed.
fn move_members(
    w: &mut Walked<'_>,
    di: usize,
    before: &[(usize, Membership)],
    after: &[(usize, Membership)],
) {
    let place = |m: &Membership| (m.ring, m.report);
    let key = di as u32;
    for (at, b) in before {
        let stays = after
            .binary_search_by_key(at, |(a, _)| *a)
            .is_ok_and(|k| place(&after[k].1) == place(b));
        if let (false, Some(slot)) = (stays, w.slots.get_mut(*at).and_then(Option::as_mut))
            && let Some(list) = slot.at.get_mut(b.ring)
            && let Ok(k) = list.binary_search_by_key(&key, |m| m.0)
        {
            list.remove(k);
        }
    }
    for (at, a) in after {
        let stayed = before
            .binary_search_by_key(at, |(b, _)| *b)
            .is_ok_and(|k| place(&before[k].1) == place(a));
        if let (false, Some(slot)) = (stayed, w.slots.get_mut(*at).and_then(Option::as_mut))
            && let Some(list) = slot.at.get_mut(a.ring)
        {
            let k = list.partition_point(|m| m.0 < key);
            list.insert(k, (key, a.report as u32));
        }
    }
}

/// How a member changed, if it did.
fn member_change(b: &Membership, a: &Membership) -> Option<Dirt> {
    let same_but_seen = Membership {
        seen: a.seen,
        turns: a.turns,
        ..*b
    };
    if b.print.is_none() || same_but_seen != *a {
        return Some(Dirt::Changed);
    }
    if b.seen == a.seen {
        return None;
    }
    // A sighting that never turns unreachable (none) cannot be told from one that turns
    // far off by the memo's wake-up: count it as changed.
    match (b.turns, a.turns) {
        (Some(x), Some(y)) => Some(Dirt::Seen(x.min(y))),
        _ => Some(Dirt::Changed),
    }
}

/// The `unreachableAfter` of the ring at position `ring` of policy `pi`.
fn unreachable_after(t: &Tenant<'_>, pi: usize, ring: usize) -> crate::api::Duration {
    let spec = t.policies[pi]
        .rings
        .get(ring)
        .and_then(|(_, ri)| *ri)
        .map(|ri| &t.rings[ri].ring.spec);
    crate::engine::rollout::unreachable_after(spec)
}

/// The members of the slot at `at` (policy × patch), per ring position, made again from
/// the positions the slot keeps and the devices of this pass.
pub(super) fn members<'a>(
    w: &Walked<'a>,
    cache: &Cache,
    at: usize,
    pool: &mut Vec<Vec<Member<'static>>>,
) -> Vec<Vec<Member<'a>>> {
    let Some(slot) = w.slots.get(at).and_then(Option::as_ref) else {
        return Vec::new();
    };
    slot.at
        .iter()
        .map(|list| {
            let mut members: Vec<Member<'a>> = pool.pop().unwrap_or_default();
            // Each block's pairs are read while the block before is made, so that their
            // reads wait on memory together and behind work.
            let block = |k: usize| &list[k.min(list.len())..(k + READ_AHEAD).min(list.len())];
            touch_pairs(cache, block(0));
            for (k, &(di, pos)) in list.iter().enumerate() {
                if k % READ_AHEAD == 0 {
                    touch_pairs(cache, block(k + READ_AHEAD));
                }
                members.extend(member(w, cache, di as usize, pos as usize));
            }
            members
        })
        .collect()
}

/// Reads the pairs of the members at `at` (device and report positions), each in its
/// device's list elsewhere on the heap: in a loop of nothing else, those reads wait on
/// memory together.
fn touch_pairs(cache: &Cache, at: &[(u32, u32)]) {
    for &(di, pos) in at {
        let pair = cache
            .devices
            .get(di as usize)
            .and_then(|e| e.pairs.get(pos as usize));
        if let Some(p) = pair {
            p.touch();
        }
    }
}

/// One member, from its device's position and its report's (the device object itself is
/// not read: its entry's pair says what a member needs of the report).
fn member<'a>(w: &Walked<'a>, cache: &Cache, di: usize, pos: usize) -> Option<Member<'a>> {
    let dev = *w.devices.get(di)?;
    let pair = cache.devices.get(di)?.pairs.get(pos)?;
    Some(member_of(dev, pos, pair, w.views.get(di)?.seen, None))
}

/// The member a device–patch pair makes, its clock counted, the device last seen at
/// `last_seen`.
fn member_of<'a>(
    device: &'a ManagedDevice,
    report: usize,
    pair: &Pair,
    last_seen: When,
    install_entry: Option<&'a PlanEntry>,
) -> Member<'a> {
    let (in_install, in_uninstall) = pair.in_plan();
    Member {
        device,
        // A device's reports are in memory: far fewer than u32::MAX.
        report_at: report as u32,
        state: pair.state,
        excepted: pair.blocks(),
        in_install,
        install_entry,
        in_uninstall,
        installed_at: pair.installed_when(),
        last_seen,
        deadline: pair.deadline_when(),
    }
}

/// Where a pair is: its device, policy, patch and tier; and what exceptions cover it.
struct PairAt<'t> {
    di: usize,
    pi: usize,
    ix: usize,
    tier: &'t str,
    tier_ix: usize,
    exempt: Option<&'t Exempt>,
}

/// Reads a device's reports and when it was last seen (its `lastSeen` or its Lease's
/// check-in, whichever is later).
fn read_ahead<'a>(d: &'a ManagedDevice, check_ins: &CheckIns) -> Ahead<'a> {
    d.status
        .as_ref()
        .map(|s| (&s.patches[..], When::new(contract::last_seen(d, check_ins))))
}

/// Reads what deriving a device reads first, each in a string of its own elsewhere on the
/// heap: its labels (the selectors), its reports' patch ids (the catalog) and its plan's
/// (its entries). Done in the read-ahead loop, so that those reads wait on memory together.
fn touch_derived(d: &ManagedDevice) {
    let first = |s: &String| std::hint::black_box(s.as_bytes().first().copied());
    for (k, v) in d.metadata.labels.iter().flatten() {
        first(k);
        first(v);
    }
    for r in d.status.iter().flat_map(|s| &s.patches) {
        first(&r.id);
    }
    for id in d.spec.plan.install.keys() {
        first(id);
    }
}

/// What deriving a device's results reads besides the device.
struct DeviceInputs<'s, 'a> {
    tenant: &'s Tenant<'a>,
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
    let t = inputs.tenant;
    let labels = dev.metadata.labels.as_ref();
    e.forget(keep);
    let pi = match governing(t, labels).as_slice() {
        [one] => *one,
        many => {
            e.set_conflict(many);
            if keep {
                e.record(dev);
            }
            return;
        }
    };
    let tier = labels
        .and_then(|l| l.get(&t.policies[pi].policy.spec.tier_label))
        .map(String::as_str)
        .unwrap_or(DEFAULT_TIER);
    e.govern(pi, Cache::tier(tiers, tier));
    for (pos, (_, ri)) in t.policies[pi].rings.iter().enumerate() {
        let Some(ri) = ri else { continue };
        if t.rings[*ri]
            .selector
            .as_ref()
            .is_some_and(|s| s.matches(labels))
        {
            e.claim(pos, *ri);
        }
    }
    if let Some(status) = dev.status.as_ref() {
        // Kept for every device until it changes: exactly one pair a report, no room
        // left over from growing the list (a third of a pair list's memory otherwise).
        e.pairs.reserve_exact(status.patches.len());
        pairs(e, dev, &status.patches, inputs);
        e.pairs.shrink_to_fit();
    }
    if keep {
        e.record(dev);
    }
}

/// The policies that govern a device with these labels: the one of highest priority
/// that selects it, or all of them when several tie (a conflict).
fn governing(t: &Tenant<'_>, labels: Option<&BTreeMap<String, String>>) -> Vec<usize> {
    let mut best: Option<i32> = None;
    let mut chosen: Vec<usize> = Vec::new();
    for (pi, p) in t.policies.iter().enumerate() {
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
    chosen
}

/// One pair per report: its patch, which exceptions cover it, and, for a patch reported
/// twice, which report counts.
fn pairs(
    e: &mut Derived,
    dev: &ManagedDevice,
    reports: &[DevicePatchStatus],
    inputs: &DeviceInputs<'_, '_>,
) {
    let t = inputs.tenant;
    let mut seen = inputs.seen.borrow_mut();
    let stamp = seen.next_device();
    for (pos, report) in reports.iter().enumerate() {
        let ix = t.catalog.get(report.id.as_str()).copied();
        let mut pair = Pair::new(ix, report.state, report.installed_at);
        let mut exempt = None;
        if let Some(ix) = ix {
            // A patch reported twice counts once, at the report the contract prefers.
            if let Some(first) = seen.first(ix, stamp, pos) {
                let prefer = contract::winner(&reports[first], report);
                if prefer {
                    e.pairs[first].set_duplicate(true);
                    seen.set(ix, stamp, pos);
                }
                pair.set_duplicate(!prefer);
            }
            exempt = cover(&mut pair, t, ix, dev, &report.id);
        }
        e.pairs.push(pair);
        if let Some(exempt) = exempt {
            e.cover(pos, exempt);
        }
    }
}

/// The exceptions that cover a pair, if any do: which are active, and when they paused
/// its clock; marks the pair when one keeps it from being assigned.
fn cover(
    pair: &mut Pair,
    t: &Tenant<'_>,
    ix: usize,
    dev: &ManagedDevice,
    id: &str,
) -> Option<Exempt> {
    let (name, labels) = (name_of(&dev.metadata), dev.metadata.labels.as_ref());
    let mut covering = None;
    for &ei in &t.exc_by_patch[ix] {
        let (exc, ev) = (t.excs[ei], &t.evals[ei]);
        if !exceptions::covers(exc, ev, name, labels, id) {
            continue;
        }
        if ev.blocks_assignment {
            pair.set_blocks();
        }
        let exempt = covering.get_or_insert_with(Exempt::default);
        if ev.phase == ExceptionPhase::Active {
            exempt.active.push(ei);
        }
        if let Some(iv) = exceptions::exempt_interval(exc, ev) {
            exempt.intervals.push(iv);
        }
    }
    covering
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
