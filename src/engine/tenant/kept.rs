//! An incremental pass: what a pass keeps for the next, and a pass that starts from it
//! and does work in proportion to what changed.
//!
//! A full pass ([`super::decide_cached`]) visits every device and every pair and decides
//! every rollout over all its members. [`super::decide_changed`] is told which devices
//! changed since the last pass (the shell's watch events say so), and, when nothing
//! tenant-wide changed, starts from what the last pass kept:
//!
//! | kept | updated by |
//! | --- | --- |
//! | the SLA tallies, ring counts, exception coverage, unknown ids | taking out a device's old contribution, adding its new one |
//! | each (policy, patch) slot's members, as device and report positions | the same, in device order |
//! | per device, the first instant one of its clocks changes (a heap) | devices whose clock changes by now are counted again |
//! | per rollout, its last decision when it changed nothing (a memo) | replayed while its members, object, approval, freezes and wake-up are as they were |
//! | the devices whose stored summary differs from theirs | their summaries are given again, as a full pass would |
//! | per device, when it was last seen | a changed device whose object is the one counted (its `resourceVersion`) only checked in: that is updated, nothing is counted again |
//!
//! Whatever it cannot update this way (a spec, the catalog, people's decisions, a device
//! added or removed, time going back, an approval or supersession that moved with time,
//! more than a quarter of the devices to count again) makes it run a full pass instead,
//! which keeps anew. It decides what a full pass decides (`tests/it/engine_props.rs`, and
//! the bundled example played through it in `tests/it/sim_example.rs`), on one
//! assumption: that a report changed with its plan entries never keeps its 64-bit
//! fingerprint (SipHash), which is how a changed member is told from an unchanged one.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::sync::Arc;

use jiff::Timestamp;

use crate::api::Duration;
use crate::api::{ApprovalRecord, Freeze, PatchRolloutStatus};
use crate::engine::cache::{Cache, Version};
use crate::engine::rollout::{self, Member, RingInput, RolloutOutcome};
use crate::engine::windows::next_freeze_change;

use super::gather::Tenant;
use super::rollouts::One;
use super::status::Governed;
use super::walk::{self, DeviceView, Dirt, Prints, Slot, Walked};
use super::{Snapshot, name_of};

/// What a pass keeps for an incremental pass.
#[derive(Clone)]
pub(crate) struct Kept {
    /// The walk, without its devices and members (each slot keeps its members'
    /// positions).
    walked: Walked<'static>,
    /// The policies' device counts.
    governed: Governed,
    /// Per device with a counted clock, the first instant one changes (entries whose
    /// instant is no longer the device's are skipped when they come up).
    clocks: Clocks,
    /// Devices counted again at every pass ([`DeviceView::volatile`]).
    volatile: BTreeSet<u32>,
    /// Devices whose stored summary is not the one the last pass computed.
    unmatched: BTreeSet<u32>,
    /// Per (policy, patch) slot: its rollout's last decision, when it changed nothing.
    memos: Vec<Option<Memo>>,
    /// Per device, its reports' fingerprints as last counted (none until an incremental
    /// pass counts it: then every rollout it is a member of is decided again).
    prints: Vec<Prints>,
    /// Member lists' room.
    pool: std::cell::RefCell<Pool>,
}

/// A rollout's decision that changed nothing (its status was the stored one; no plan
/// change, no Event), with what it read besides its members, to be replayed while
/// those are unchanged and `now` is before its wake-up.
#[derive(Clone, Debug)]
pub(super) struct Memo {
    /// The rollout object's `resourceVersion`.
    version: Version,
    record: ApprovalRecord,
    policy_freezes: Vec<Freeze>,
    ring_freezes: Vec<Vec<Freeze>>,
    blocked: Option<String>,
    /// Its status (the stored one), shared with the decisions that gave it.
    pub(super) status: Arc<PatchRolloutStatus>,
    /// When the decision was made.
    made: Timestamp,
    /// It asks to be decided again when it changes by time (it is not over).
    asks_wake: bool,
    /// Its first change by time alone but for a member turning unreachable
    /// ([`RolloutOutcome::changes_else`]).
    changes_else: Option<Timestamp>,
    /// The first instant a member counted as reachable turns unreachable, as the members'
    /// check-ins now have it ([`RolloutOutcome::unreachable_at`], counted again when the
    /// member who turns first checks in).
    turns: Option<Timestamp>,
    /// Until when the decision holds by time, but for `turns`: its first other change by
    /// time alone, and the next instant a window or a freeze of its rings opens or
    /// closes, or one of its entries' windows ends (a ring that waits on no device says
    /// nothing of those, but they change what it says).
    until: Option<Timestamp>,
    /// Per ring: its `unreachableAfter`, and the positions (in its member list) of the
    /// members excepted when it was decided.
    rings: Vec<(Duration, Vec<u32>)>,
}

impl Memo {
    /// The memo of a rollout's decision at `now` over `rings`, if it changed nothing.
    /// `status` is the outcome's status, taken out of it.
    pub(super) fn of(
        one: &One<'_, '_>,
        outcome: &RolloutOutcome,
        status: &Arc<PatchRolloutStatus>,
        rings: &[RingInput<'_>],
        now: Timestamp,
    ) -> Option<Memo> {
        let existing = one.existing?;
        let settled = outcome.plan.is_empty()
            && outcome.events.is_empty()
            && existing.status.as_ref() == Some(&**status);
        let name = name_of(&existing.metadata);
        settled.then(|| Memo {
            until: until(outcome.changes_else, &one.pv.freezes, rings, name, now),
            version: Version::of(existing.metadata.resource_version.as_deref()),
            record: one.record.clone(),
            policy_freezes: one.pv.freezes.clone(),
            ring_freezes: ring_freezes(one).map(<[Freeze]>::to_vec).collect(),
            blocked: one.pv.blocked(),
            status: Arc::clone(status),
            made: now,
            asks_wake: status.phase.is_none_or(rollout::asks_wake),
            changes_else: outcome.changes_else,
            turns: outcome.unreachable_at,
            rings: rings.iter().map(excepted).collect(),
        })
    }

    /// Whether the decision still holds for `one` at `now`: the same rollout object, the
    /// same approval, freezes and blocks, and not yet time to wake.
    fn holds(&self, one: &One<'_, '_>, now: Timestamp) -> bool {
        one.existing
            .is_some_and(|r| self.version.is(r.metadata.resource_version.as_deref()))
            && self.until.is_none_or(|w| now < w)
            && self.turns.is_none_or(|w| now < w)
            && self.record == one.record
            && self.policy_freezes == one.pv.freezes
            && self.ring_freezes.len() == one.pv.rings.len()
            && ring_freezes(one)
                .zip(&self.ring_freezes)
                .all(|(now, then)| now == then.as_slice())
            && self.blocked == one.pv.blocked()
    }

    /// Its wake-up, as deciding it again would ask.
    pub(super) fn wake(&self) -> Option<Timestamp> {
        self.asks_wake
            .then(|| rollout::earlier(self.changes_else, self.turns))
            .flatten()
    }

    /// Counts again, from when the members of `slot` were last seen (`views`), when the
    /// first of those it counted as reachable turns unreachable; false if one has by
    /// `now` (the decision no longer holds). A member it counted as unreachable was last
    /// seen `unreachableAfter` or more before it was made, and still was (one seen since
    /// is a changed member, for which no memo is replayed).
    fn recount_turns(&mut self, slot: &Slot<'_>, views: &[DeviceView], now: Timestamp) -> bool {
        let mut turns = None;
        for ((after, excepted), list) in self.rings.iter().zip(&slot.at) {
            let gone_by = self.made.checked_sub(after.span()).ok();
            let mut excepted = excepted.iter().copied().peekable();
            let mut earliest: Option<Timestamp> = None;
            for (k, (di, _)) in list.iter().enumerate() {
                if excepted.next_if_eq(&(k as u32)).is_some() {
                    continue;
                }
                let seen = views.get(*di as usize).and_then(|v| v.seen.get());
                if seen.is_some_and(|s| gone_by.is_none_or(|g| s > g)) {
                    earliest = rollout::earlier(earliest, seen);
                }
            }
            let turn = earliest.and_then(|seen| seen.checked_add(after.span()).ok());
            turns = rollout::earlier(turns, turn);
        }
        self.turns = turns;
        turns.is_none_or(|t| t > now)
    }
}

/// A ring's `unreachableAfter`, and the positions of its excepted members.
fn excepted(ring: &RingInput<'_>) -> (Duration, Vec<u32>) {
    let after = rollout::unreachable_after(ring.ring.as_ref().ok().map(|(spec, _)| *spec));
    let excepted = ring
        .members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.excepted)
        .map(|(k, _)| k as u32)
        .collect();
    (after, excepted)
}

/// The first instant after `now` at which a decision that asked to wake at `wake` may
/// change by time alone: that, or a window or freeze of its rings (or its policy's
/// freezes) opening or closing, or one of its entries' windows ending.
fn until(
    wake: Option<Timestamp>,
    policy_freezes: &[Freeze],
    rings: &[RingInput<'_>],
    rollout: &str,
    now: Timestamp,
) -> Option<Timestamp> {
    let later = |t: Option<Timestamp>| t.filter(|t| *t > now);
    let mut at = [wake, next_freeze_change(policy_freezes.iter(), now)]
        .into_iter()
        .filter_map(later)
        .min();
    let mut sooner = |t: Option<Timestamp>| {
        if let Some(t) = later(t) {
            at = Some(at.map_or(t, |a| a.min(t)));
        }
    };
    for ring in rings {
        if let Ok((_, schedule)) = &ring.ring
            && !schedule.is_always()
        {
            sooner(match schedule.open_at(now) {
                Some(open) => Some(open.end),
                None => schedule.next_open_after(now),
            });
        }
        sooner(next_freeze_change(ring.freezes.iter(), now));
        for m in &ring.members {
            sooner(
                m.install()
                    .filter(|e| e.rollout == rollout)
                    .and_then(|e| e.not_after),
            );
        }
    }
    at
}

/// The freezes of each of a rollout's policy's rings, in its order.
fn ring_freezes<'s>(one: &'s One<'_, '_>) -> impl Iterator<Item = &'s [Freeze]> {
    let rings = &one.t.rings;
    one.pv
        .rings
        .iter()
        .map(|(_, ri)| ri.map_or(&[][..], |ri| rings[ri].freezes.as_slice()))
}

/// The rollout stage's access to the memos: replayed from (`reuse`, an incremental
/// pass) or only recorded (a full pass that keeps).
pub(super) struct Replay<'k> {
    pub(super) memos: &'k mut Vec<Option<Memo>>,
    /// The cache, whose entries the members are made from again.
    pub(super) cache: &'k Cache,
    pub(super) reuse: bool,
    /// Member lists' room, kept from one rollout (and pass) to the next.
    pub(super) pool: &'k std::cell::RefCell<Pool>,
}

/// Empty member lists with room, so that making a rollout's members again allocates
/// nothing (a ring of 10,000 members is 720 kB, which `malloc` would map and unmap).
pub(crate) type Pool = Vec<Vec<Member<'static>>>;

/// An emptied member list, kept with its room (the same allocation: a list of members of
/// this pass becomes an empty one of no pass).
#[allow(clippy::unnecessary_filter_map)] // `filter` cannot change the lifetime
pub(super) fn recycle(members: Vec<Member<'_>>) -> Vec<Member<'static>> {
    // Collected in place: std reuses the allocation of a list it maps into one of the
    // same layout.
    members.into_iter().filter_map(|_| None).collect()
}

/// Keeps the roomiest lists of a pool, as many as a rollout of `w` takes at once: one per
/// ring of its policy (a rollout's lists are back in the pool before the next takes any).
fn trim(pool: &mut Pool, w: &Walked<'_>) {
    let most = w
        .slots
        .iter()
        .flatten()
        .map(|s| s.at.len())
        .max()
        .unwrap_or(0);
    pool.retain(|v| v.capacity() > 0);
    if pool.len() > most {
        pool.sort_by_key(|v| std::cmp::Reverse(v.capacity()));
        pool.truncate(most);
    }
}

impl Replay<'_> {
    /// The memo of the slot at `at`, if its rollout may be replayed: the memo holds, and
    /// none of its members changed (`dirt`) but for check-ins of members it counted as
    /// reachable (so no standing moves; when the first of them to turn unreachable
    /// checked in, when one next does is counted again from `views`).
    pub(super) fn replayable(
        &mut self,
        at: usize,
        one: &One<'_, '_>,
        slot: Option<&Slot<'_>>,
        dirt: Option<Dirt>,
        views: &[DeviceView],
        now: Timestamp,
    ) -> Option<&Memo> {
        let memo = self.memos.get_mut(at)?.as_mut()?;
        let fresh = match dirt? {
            Dirt::Clean => true,
            // A member unreachable when it was decided was seen again.
            Dirt::Seen(turned) if turned <= memo.made => false,
            // None of those seen again was the first to turn.
            Dirt::Seen(turned) if memo.turns.is_some_and(|t| turned > t) => true,
            Dirt::Seen(_) => slot.is_some_and(|s| memo.recount_turns(s, views, now)),
            Dirt::Changed => false,
        };
        (fresh && memo.holds(one, now)).then_some(&*memo)
    }
}

impl Kept {
    /// What a full pass keeps: its walk, counts and memos, and which devices' clocks
    /// change when, are counted again every pass, or have a stored summary not theirs.
    pub(super) fn new(
        w: Walked<'_>,
        governed: Governed,
        memos: Vec<Option<Memo>>,
        mut pool: std::cell::RefCell<Pool>,
        cache: &Cache,
    ) -> Kept {
        trim(pool.get_mut(), &w);
        let mut walked = w.detach();
        for tally in &mut walked.tallies {
            tally.settle();
        }
        fit_positions(&mut walked);
        let mut clocks = Vec::new();
        let mut volatile = BTreeSet::new();
        for (di, v) in walked.views.iter().enumerate() {
            if let Some(next) = v.next() {
                clocks.push(Reverse(Due::new(next, di)));
            }
            if v.volatile {
                volatile.insert(di as u32);
            }
        }
        let unmatched = cache
            .devices
            .iter()
            .enumerate()
            .filter(|(_, e)| e.summary.is_some_and(|s| !s.matched))
            .map(|(di, _)| di as u32)
            .collect();
        let prints = vec![Prints::default(); walked.views.len()];
        // Kept until the next full pass: no room left over from growing it.
        clocks.shrink_to_fit();
        Kept {
            walked,
            governed,
            clocks: BinaryHeap::from(clocks),
            volatile,
            unmatched,
            memos,
            prints,
            pool,
        }
    }
}

/// Gives each slot's member positions, made by pushing, no more room than they take: they
/// are kept until the next full pass, and an incremental pass moves few of them.
fn fit_positions(w: &mut Walked<'_>) {
    for slot in w.slots.iter_mut().flatten() {
        for list in &mut slot.at {
            list.shrink_to_fit();
        }
    }
}

/// What changed since the last pass over a tenant, as the shell saw it.
#[derive(Clone, Copy, Debug)]
pub enum Changed<'c> {
    /// Unknown (the first pass, a relist): every object is read again.
    Everything,
    /// Only these devices (by name) changed: their objects, their check-ins, or they
    /// came or went. Every other object may have changed too: they are few and compared.
    Devices(&'c BTreeSet<String>),
    /// These devices changed, as with [`Changed::Devices`], and any other may have
    /// checked in besides: its `lastSeen` stamped without a new `resourceVersion`, or its
    /// Lease renewed (a simulated fleet, every agent of which checks in between two
    /// passes). Every device's check-in is compared, in one walk that reads nothing else,
    /// and one that moves no standing marks its policy's rollouts rather than finding
    /// the device's own.
    DevicesAndCheckIns(&'c BTreeSet<String>),
}

/// An incremental pass under way: the kept state brought up to date for the devices
/// that changed, ready for the rollout and status stages, and kept again by [`keep`].
pub(super) struct Resumed<'a> {
    /// The walk, as a full pass at `now` would have it.
    pub(super) w: Walked<'a>,
    pub(super) governed: Governed,
    pub(super) memos: Vec<Option<Memo>>,
    /// The devices whose summaries this pass gives (in order): those counted again and
    /// those whose stored summary is not theirs.
    pub(super) summaries: Vec<usize>,
    clocks: Clocks,
    volatile: BTreeSet<u32>,
    unmatched: BTreeSet<u32>,
    prints: Vec<Prints>,
    pub(super) pool: std::cell::RefCell<Pool>,
}

/// Starts an incremental pass from the kept state, if it allows one; None (the kept
/// state dropped, the cache otherwise as it was) when a full pass must run.
pub(super) fn resume<'a>(
    snap: &Snapshot<'a>,
    t: &Tenant<'a>,
    changed: &BTreeSet<String>,
    any_seen: bool,
    now: Timestamp,
    cache: &mut Cache,
) -> Option<Resumed<'a>> {
    let last_now = cache.last_now.filter(|last| *last <= now)?;
    if !cache.keep || cache.record || !t.unchanged_for(cache) {
        return None;
    }
    let kept = cache.kept.take()?;
    let changed = positions(snap, cache, changed)?;
    let Kept {
        walked,
        mut governed,
        mut clocks,
        mut volatile,
        unmatched,
        memos,
        mut prints,
        pool,
    } = *kept;
    let mut w: Walked<'a> = walked;
    w.devices = snap.devices.clone();
    if !slots_hold(t, &w, now) {
        return None;
    }
    // A changed device whose object is the one counted last (its version) was only
    // seen again: its check-in is all there is to update.
    let (seen, changed): (Vec<usize>, Vec<usize>) = changed
        .into_iter()
        .partition(|&di| cache.devices[di].unchanged(w.devices[di]));
    let mut dis: BTreeSet<usize> = changed.into_iter().collect();
    dis.extend(volatile.iter().map(|&di| di as usize));
    due(&mut clocks, &w.views, now, &mut dis);
    if dis.len() > (w.views.len() / 4).max(1024) {
        // Counting a device again costs more than walking it: past a quarter of them (of
        // a tenant of some size), a full pass is cheaper.
        return None;
    }
    let dis: Vec<usize> = dis.into_iter().collect();
    cache.last_now = Some(now);
    for (di, old) in walk::rewalk(t, &mut w, cache, &mut prints, &dis, last_now, now) {
        governed.remove(&old);
        governed.add(&w.views[di]);
        recounted(di, &w.views[di], &mut clocks, &mut volatile);
    }
    let seen: Vec<usize> = match any_seen {
        true => (0..w.devices.len()).collect(),
        false => seen,
    };
    let seen: Vec<usize> = seen
        .into_iter()
        .filter(|di| dis.binary_search(di).is_err())
        .collect();
    walk::reseen(t, &mut w, cache, &seen, last_now, any_seen);
    if clocks.len() > 2 * w.views.len() + 1024 {
        // Entries a device's later count replaced: start afresh rather than let them pile.
        clocks = w
            .views
            .iter()
            .enumerate()
            .filter_map(|(di, v)| v.next().map(|next| Reverse(Due::new(next, di))))
            .collect();
    }
    w.wake = due(&mut clocks, &w.views, now, &mut BTreeSet::new());
    let mut summaries: BTreeSet<usize> = dis.into_iter().collect();
    summaries.extend(unmatched.iter().map(|&di| di as usize));
    Some(Resumed {
        w,
        governed,
        memos,
        summaries: summaries.into_iter().collect(),
        clocks,
        volatile,
        unmatched,
        prints,
        pool,
    })
}

/// Notes when the device counted again at `di` (now `view`) next has a clock change, and
/// whether it must be counted at every pass.
fn recounted(di: usize, view: &DeviceView, clocks: &mut Clocks, volatile: &mut BTreeSet<u32>) {
    if let Some(next) = view.next() {
        clocks.push(Reverse(Due::new(next, di)));
    }
    let di = di as u32;
    if view.volatile {
        volatile.insert(di);
    } else {
        volatile.remove(&di);
    }
}

/// Keeps an incremental pass's state for the next pass, with which devices' stored
/// summaries are not theirs brought up to date.
pub(super) fn keep(cache: &mut Cache, r: Resumed<'_>) {
    let mut unmatched = r.unmatched;
    for &di in &r.summaries {
        let matched = cache
            .devices
            .get(di)
            .and_then(|e| e.summary)
            .is_none_or(|s| s.matched);
        if matched {
            unmatched.remove(&(di as u32));
        } else {
            unmatched.insert(di as u32);
        }
    }
    let mut pool = r.pool;
    trim(pool.get_mut(), &r.w);
    cache.kept = Some(Box::new(Kept {
        walked: r.w.detach(),
        governed: r.governed,
        clocks: r.clocks,
        volatile: r.volatile,
        unmatched,
        memos: r.memos,
        prints: r.prints,
        pool,
    }));
}

/// The positions of the changed devices, which must be where the last pass had them:
/// None when one came or went (or the devices are not those of the last pass).
fn positions(snap: &Snapshot<'_>, cache: &Cache, changed: &BTreeSet<String>) -> Option<Vec<usize>> {
    if snap.devices.len() != cache.devices.len() {
        return None;
    }
    debug_assert!(
        snap.devices
            .is_sorted_by(|a, b| name_of(&a.metadata) <= name_of(&b.metadata)),
        "an incremental pass reads the devices in name order"
    );
    // Both in name order: each name is looked for from where the last one was found,
    // in steps that double (one look each when most devices changed, a few dozen when
    // one did).
    let mut from = 0;
    changed
        .iter()
        .map(|name| {
            let di = from
                + gallop(&snap.devices[from..], |d| {
                    name_of(&d.metadata) < name.as_str()
                });
            let dev = snap.devices.get(di)?;
            from = di + 1;
            (name_of(&dev.metadata) == name && cache.devices.get(di)?.is_named(name)).then_some(di)
        })
        .collect()
}

/// The first position in `list` at which `before` is false (`before` holds for a prefix
/// of it), found by looking at positions 0, 1, 3, 7, … and then halving.
fn gallop<T>(list: &[T], before: impl Fn(&T) -> bool) -> usize {
    let mut end = 1;
    while end < list.len() && before(&list[end - 1]) {
        end *= 2;
    }
    let end = end.min(list.len());
    let start = end / 2;
    start + list[start..end].partition_point(before)
}

/// Whether every kept slot's approval, supersession and decision to roll out are what
/// they are at `now` (they move with time and with people's decisions).
fn slots_hold(t: &Tenant<'_>, w: &Walked<'_>, now: Timestamp) -> bool {
    let n = t.patches.len();
    w.slots.iter().enumerate().all(|(at, slot)| {
        let Some(kept) = slot else { return true };
        let fresh = walk::new_slot(t, at / n, at % n, &[], now);
        fresh.approval == kept.approval
            && fresh.superseded_by == kept.superseded_by
            && fresh.decided == kept.decided
    })
}

/// Pops the devices whose next clock change is at or before `now` into `dis`; returns
/// the first change after `now`.
fn due(
    clocks: &mut Clocks,
    views: &[DeviceView],
    now: Timestamp,
    dis: &mut BTreeSet<usize>,
) -> Option<Timestamp> {
    while let Some(&Reverse(first)) = clocks.peek() {
        let di = first.device as usize;
        // Still the device's next change (a later count may have replaced it).
        let current = views
            .get(di)
            .and_then(DeviceView::next)
            .filter(|at| Due::new(*at, di) == first);
        if let Some(at) = current
            && at > now
        {
            return Some(at);
        }
        clocks.pop();
        if current.is_some() {
            dis.insert(di);
        }
    }
    None
}

/// Per device with a counted clock, the first instant one changes, soonest first.
type Clocks = BinaryHeap<Reverse<Due>>;

/// A device's next clock change, in 16 bytes where a `(Timestamp, u32)` takes 24.
/// Ordered by instant, then device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    /// The instant's seconds.
    second: i64,
    /// Its nanoseconds, of the seconds' sign (as jiff has them), so that the two order
    /// as the instants do.
    nanosecond: i32,
    /// The device's position.
    device: u32,
}

impl Due {
    fn new(at: Timestamp, device: usize) -> Due {
        Due {
            second: at.as_second(),
            nanosecond: at.subsec_nanosecond(),
            device: device as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gallop_finds_the_first_position_not_before() {
        for len in 0..40 {
            let list: Vec<usize> = (0..len).collect();
            for cut in 0..=len {
                assert_eq!(gallop(&list, |&x| x < cut), cut, "len {len}, cut {cut}");
            }
        }
    }

    #[test]
    fn a_clock_change_kept_in_sixteen_bytes_orders_as_its_instant() {
        let at = |s: i64, ns: i32| Timestamp::new(s, ns).expect("valid");
        // Before 1970 jiff's nanoseconds are negative.
        let mut instants = vec![
            at(-2, 0),
            at(-1, -500_000_000),
            at(-1, -200_000_000),
            at(0, -500_000_000),
            at(0, 0),
            at(0, 300_000_000),
            at(1, 0),
            at(1_700_000_000, 123_456_789),
            Timestamp::MIN,
            Timestamp::MAX,
        ];
        instants.sort();
        let dues: Vec<Due> = instants.iter().map(|t| Due::new(*t, 7)).collect();
        assert!(dues.is_sorted(), "{dues:?}");
        assert!(Due::new(at(5, 0), 1) < Due::new(at(5, 0), 2));
        assert_eq!(std::mem::size_of::<Due>(), 16);
    }
}
