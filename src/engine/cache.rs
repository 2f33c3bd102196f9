//! What one decision pass can reuse from the pass before it.
//!
//! Most of a pass's work is per device and per device–patch pair: which policy and ring
//! govern the device, which exceptions cover each pair, and each pair's SLA clock. Those
//! depend only on the device's labels and reports and on the tenant's policies, rings,
//! exceptions and catalog — not on when the agent last checked in — and an SLA clock
//! only changes at the instant it names. A [`Cache`] keeps them from one pass to the
//! next, keyed by exactly those inputs (a device's as a 64-bit hash: `Derived`), so a
//! pass re-derives only what changed.
//!
//! The cache is plain data the caller owns; the engine stays pure. A pass with a cache
//! decides exactly what a pass without one decides (`tests/it/engine_props.rs`), on the
//! assumption `Derived` says.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroU32;

use jiff::Timestamp;

use crate::api::{
    DeploymentRingSpec, DevicePatchStatus, ExceptionPhase, ManagedDevice, PatchExceptionSpec,
    PatchPolicySpec, PatchState,
};

use super::approval::Decided;
use super::severity::Risk;
use super::sla::{Clock, ClockState};

/// Per-device results one decision pass can reuse in the next.
///
/// Create one per tenant with [`Cache::new`] and hand it to every
/// [`decide_cached`](super::decide_cached) for that tenant. An entry is reused only
/// while the device's labels and patch reports and the tenant's policies, rings,
/// exceptions (and their phases) and catalog are unchanged, so no caller has to say
/// what changed. It holds a 64-bit hash of each device's inputs, not a copy of them
/// (`Derived` says what that assumes).
#[derive(Clone, Default)]
pub struct Cache {
    /// Whether entries are kept for the next pass (false for a one-off pass).
    pub(super) keep: bool,
    /// The tenant-wide inputs the entries were derived under.
    pub(super) tenant: Option<TenantKey>,
    /// One entry per device, in name order.
    pub(super) devices: Vec<Derived>,
    /// Tier names, interned; entries refer to them by index.
    pub(super) tiers: Vec<String>,
    /// Per (policy, patch) slot of the previous pass, the members of each ring.
    pub(super) member_counts: Vec<Vec<usize>>,
    /// The instant of the previous pass (a clock run then is only reused later).
    pub(super) last_now: Option<Timestamp>,
    /// Whether the walk records every pair it counts (for the ledger).
    pub(super) record: bool,
    /// What the last pass kept for an incremental pass ([`super::decide_changed`]).
    pub(super) kept: Option<Box<super::tenant::kept::Kept>>,
    /// How many passes with this cache were incremental.
    pub(super) incremental: u64,
}

impl Cache {
    /// An empty cache that keeps what each pass derives for the next one.
    pub fn new() -> Self {
        Self {
            keep: true,
            ..Self::default()
        }
    }

    /// A cache for a single pass: nothing is copied to be compared later.
    pub(super) fn one_pass() -> Self {
        Self::default()
    }

    /// Puts the entries in the order of `names`: an entry for each name, the previous
    /// one where there was one (found by its name's hash), an empty one otherwise.
    pub(super) fn align<'n>(&mut self, names: impl ExactSizeIterator<Item = &'n str>) {
        let mut previous = std::mem::take(&mut self.devices);
        let by_name: HashMap<u64, usize> = previous
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kept)
            .map(|(i, e)| (e.name, i))
            .collect();
        // Kept for every device: no room left over from growing the list.
        self.devices.reserve_exact(names.len());
        for name in names {
            let entry = by_name
                .get(&name_hash(name))
                .map(|&i| std::mem::take(&mut previous[i]))
                .unwrap_or_default();
            self.devices.push(entry);
        }
    }

    /// How many passes with this cache were incremental ([`super::decide_changed`]
    /// counted only what changed instead of every device).
    pub fn incremental_passes(&self) -> u64 {
        self.incremental
    }

    /// How many devices have an entry.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether no device has an entry.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// The index of a tier name, interning it.
    pub(super) fn tier(tiers: &mut Vec<String>, name: &str) -> usize {
        match tiers.iter().position(|t| t == name) {
            Some(i) => i,
            None => {
                tiers.push(name.to_string());
                tiers.len() - 1
            }
        }
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("keep", &self.keep)
            .field("devices", &self.devices.len())
            .finish_non_exhaustive()
    }
}

/// The tenant-wide inputs of the per-device results: a change to any of them drops
/// every entry. Objects are listed in the order the pass indexes them.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct TenantKey {
    /// Policies by name, with their specs and people's decisions under them.
    pub policies: Vec<(String, PatchPolicySpec, Vec<Decided>)>,
    /// Rings by name, with their specs.
    pub rings: Vec<(String, DeploymentRingSpec)>,
    /// Exceptions by name, with their specs and what the pass made of them.
    pub exceptions: Vec<ExceptionKey>,
    /// The catalog in the pass's order: id, risk inputs, release time.
    pub catalog: Vec<(String, Risk, Timestamp)>,
}

/// One exception as the per-device results depend on it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct ExceptionKey {
    pub name: String,
    pub spec: PatchExceptionSpec,
    pub phase: ExceptionPhase,
    pub active_since: Option<Timestamp>,
    pub blocks_assignment: bool,
}

/// What one device contributes to a pass.
///
/// An entry keeps 64-bit SipHashes of the device's name and of the inputs it was derived
/// from, not a copy of them (which would be a few hundred bytes a device), and is
/// reused on one assumption, the one the incremental pass makes of reports
/// (`tenant::kept`): different inputs (name, labels and report ids) never share a hash.
/// (Two names that shared one would only cost their entries being derived again: the
/// inputs' hash holds the name too, and no two objects share a `resourceVersion`.) What a later pass must read back exactly is kept as
/// it is: report states and install times in `pairs`; unknown report ids and what
/// covers each pair in `rare`. Indices are [`Ix`]s, and what few devices have is boxed
/// apart ([`Rare`]): a pass keeps an entry per device.
#[derive(Clone, Debug, Default)]
pub(super) struct Derived {
    /// Holds the hashes of its inputs (`name`, `inputs`) and its unknown report ids, and
    /// can be reused while they match.
    pub kept: bool,
    /// The hash of the device's name ([`name_hash`]): lines the entry up with its
    /// device.
    name: u64,
    /// The hash of the inputs it was derived from besides its reports' states and
    /// install times, which are in `pairs` ([`inputs_hash`]): the device's name, its
    /// labels and, when a policy governs it, each report's id.
    inputs: u64,
    /// The governing policy (index in the pass's policy list).
    policy: Option<Ix>,
    /// Position of its ring in the policy's ring list.
    ring: Option<Ix>,
    /// The ring it counts as a member of (index in the pass's ring list).
    member_of: Option<Ix>,
    /// Its tier (index into [`Cache::tiers`]), when governed.
    tier: Option<Ix>,
    /// What few devices have: a conflict, other rings that select it, reports the
    /// catalog does not know, exceptions that cover its pairs.
    rare: Option<Box<Rare>>,
    /// One per patch report, in report order (empty when no policy governs it).
    pub pairs: Vec<Pair>,
    /// This pass trusts the device to be as the previous pass saw it: its
    /// `resourceVersion` is the one `version` holds.
    pub trusted: bool,
    /// The device's `metadata.resourceVersion` when the previous pass read it (none when
    /// it had none: then it is compared every pass).
    pub version: Version,
    /// The compliance summary the previous pass gave it, as far as the entry does not
    /// say it already, and whether the device's stored summary equalled it (none once
    /// derived again).
    pub summary: Option<Shown>,
}

/// What few devices' entries have, boxed apart from the entry.
#[derive(Clone, Debug, Default)]
struct Rare {
    /// Policies of equal priority that all select it.
    conflict: Vec<usize>,
    /// Later rings of its policy that also select it.
    claimed_elsewhere: Vec<usize>,
    /// The ids of its reports the catalog does not know, in report order (recorded when
    /// a policy governs it): what a later pass takes out of its policy's unknown ids.
    unknown: Vec<Box<str>>,
    /// The exceptions that cover its pairs, by the pairs' positions, in order (those
    /// pairs are marked, [`Pair::exempt`]).
    exempt: Vec<(u32, Exempt)>,
}

/// An index into one of a pass's lists (policies, rings, tiers) in four bytes, and so is
/// an `Option` of it (where an `Option<usize>` takes sixteen).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Ix(NonZeroU32);

impl Ix {
    /// The index `i`; none past `u32::MAX - 1`, which no list of objects a pass holds in
    /// memory reaches.
    pub fn new(i: usize) -> Option<Ix> {
        u32::try_from(i)
            .ok()
            .and_then(|i| i.checked_add(1))
            .and_then(NonZeroU32::new)
            .map(Ix)
    }

    /// The index.
    pub fn get(self) -> usize {
        (self.0.get() - 1) as usize
    }
}

/// A `resourceVersion`, kept in the entry itself when it is short (etcd's are decimal
/// numbers of at most 20 digits): a pass compares every device's, and a copy on the heap
/// would be one more read far away in memory per device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) enum Version {
    /// The object had none.
    #[default]
    None,
    /// Up to [`INLINE_VERSION`] bytes.
    Inline {
        len: u8,
        bytes: [u8; INLINE_VERSION],
    },
    /// A longer one.
    Heap(Box<str>),
}

/// The longest `resourceVersion` kept inline.
const INLINE_VERSION: usize = 22;

impl Version {
    /// The version `v` (an object's `metadata.resourceVersion`).
    pub fn of(v: Option<&str>) -> Self {
        match v {
            None => Version::None,
            Some(v) if v.len() <= INLINE_VERSION => {
                let mut bytes = [0; INLINE_VERSION];
                bytes[..v.len()].copy_from_slice(v.as_bytes());
                Version::Inline {
                    len: v.len() as u8,
                    bytes,
                }
            }
            Some(v) => Version::Heap(v.into()),
        }
    }

    /// Whether `v` is this version; no version is ever equal to another, not even none.
    pub fn is(&self, v: Option<&str>) -> bool {
        match (self, v) {
            (Version::Inline { len, bytes }, Some(v)) => {
                v.len() == usize::from(*len) && v.as_bytes() == &bytes[..v.len()]
            }
            (Version::Heap(h), Some(v)) => **h == *v,
            _ => false,
        }
    }
}

/// The compliance summary a pass gave a device, as far as its entry does not say it:
/// the policy, ring, tier and conflict it shows are the entry's (an entry derived again
/// forgets its summary), and these are its counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Shown {
    pub overdue: u32,
    pub due_soon: u32,
    /// The device's stored summary equalled it.
    pub matched: bool,
}

impl Derived {
    /// Whether this entry was kept for the device named `name`.
    pub fn is_named(&self, name: &str) -> bool {
        self.kept && self.name == name_hash(name)
    }

    /// Whether this entry was kept for `dev`: its name is the entry's.
    pub fn is_for(&self, dev: &ManagedDevice) -> bool {
        self.is_named(dev.metadata.name.as_deref().unwrap_or(""))
    }

    /// Whether `dev` is, to the byte, the object this entry last read: the same
    /// `resourceVersion` (an API server gives every change of every object a version of
    /// its own, so an equal version is the same object, unchanged). An object without one
    /// is never taken as unchanged.
    pub fn unchanged(&self, dev: &ManagedDevice) -> bool {
        self.kept && self.version.is(dev.metadata.resource_version.as_deref())
    }

    /// Forgets what it was derived from (its pairs keep their room), to be derived again;
    /// with `kept`, it will record its inputs.
    pub fn forget(&mut self, kept: bool) {
        self.kept = kept;
        self.summary = None;
        self.policy = None;
        self.ring = None;
        self.member_of = None;
        self.tier = None;
        self.rare = None;
        self.pairs.clear();
    }

    /// Governed by the policy at `policy`, in the tier at `tier`.
    pub fn govern(&mut self, policy: usize, tier: usize) {
        self.policy = Ix::new(policy);
        self.tier = Ix::new(tier);
    }

    /// Selected by the ring at `ring` in the pass's list, at `pos` in its policy's: the
    /// first such ring is its own, later ones claim it elsewhere.
    pub fn claim(&mut self, pos: usize, ring: usize) {
        if self.member_of.is_some() {
            self.rare().claimed_elsewhere.push(ring);
        } else {
            self.ring = Ix::new(pos);
            self.member_of = Ix::new(ring);
        }
    }

    /// Selected by all of `policies`, of equal priority.
    pub fn set_conflict(&mut self, policies: &[usize]) {
        if !policies.is_empty() {
            self.rare().conflict = policies.to_vec();
        }
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Records the exceptions that cover its pair at `pos`, the last pair made.
    pub fn cover(&mut self, pos: usize, exempt: Exempt) {
        let (Some(pair), Ok(at)) = (self.pairs.get_mut(pos), u32::try_from(pos)) else {
            return;
        };
        pair.flags |= EXEMPT;
        self.rare().exempt.push((at, exempt));
    }

    /// What exceptions cover its pairs.
    pub fn covered(&self) -> Covered<'_> {
        Covered(self.rare.as_deref().map_or(&[], |r| &r.exempt))
    }

    /// Its pairs, to count them and keep their clocks, and what exceptions cover them.
    pub fn pairs_mut(&mut self) -> (&mut [Pair], Covered<'_>) {
        let covered = self.rare.as_deref().map_or(&[][..], |r| &r.exempt);
        (&mut self.pairs, Covered(covered))
    }

    /// The governing policy (index in the pass's policy list).
    pub fn policy(&self) -> Option<usize> {
        self.policy.map(Ix::get)
    }

    /// Position of its ring in the policy's ring list.
    pub fn ring(&self) -> Option<usize> {
        self.ring.map(Ix::get)
    }

    /// The ring it counts as a member of (index in the pass's ring list).
    pub fn member_of(&self) -> Option<usize> {
        self.member_of.map(Ix::get)
    }

    /// Its tier (index into [`Cache::tiers`]); 0 when not governed.
    pub fn tier(&self) -> usize {
        self.tier.map_or(0, Ix::get)
    }

    /// Policies of equal priority that all select it.
    pub fn conflict(&self) -> &[usize] {
        self.rare.as_ref().map_or(&[], |r| &r.conflict)
    }

    /// Later rings of its policy that also select it.
    pub fn claimed_elsewhere(&self) -> &[usize] {
        self.rare.as_ref().map_or(&[], |r| &r.claimed_elsewhere)
    }

    /// Records the inputs of `dev` this entry is derived from (once derived).
    pub fn record(&mut self, dev: &ManagedDevice) {
        let governed = self.policy.is_some();
        self.name = name_hash(dev.metadata.name.as_deref().unwrap_or(""));
        self.inputs = inputs_hash(dev, governed);
        let unknown: Vec<Box<str>> = if governed {
            reports(dev)
                .iter()
                .zip(&self.pairs)
                .filter(|(_, p)| p.ix().is_none())
                .map(|(r, _)| r.id.as_str().into())
                .collect()
        } else {
            Vec::new()
        };
        if !unknown.is_empty() {
            self.rare().unknown = unknown;
        } else if let Some(rare) = self.rare.as_mut() {
            rare.unknown.clear();
        }
    }

    /// The ids of its reports the catalog does not know, in report order (none when no
    /// policy governs it: then they are not recorded).
    pub fn unknown_ids(&self) -> &[Box<str>] {
        self.rare.as_ref().map_or(&[], |r| &r.unknown)
    }

    /// Whether this entry was derived from the inputs `dev` has now: the same name and
    /// labels and, when governed, the same reports.
    pub fn same_inputs(&self, dev: &ManagedDevice) -> bool {
        if !self.kept {
            return false;
        }
        let governed = self.policy.is_some();
        if governed {
            let reports = reports(dev);
            let same_reports = self.pairs.len() == reports.len()
                && self
                    .pairs
                    .iter()
                    .zip(reports)
                    .all(|(p, r)| p.state == r.state && p.installed_at() == r.installed_at);
            if !same_reports {
                return false;
            }
        }
        // Ungoverned: its reports are not read.
        self.inputs == inputs_hash(dev, governed)
    }
}

/// A device's reports.
fn reports(dev: &ManagedDevice) -> &[DevicePatchStatus] {
    dev.status.as_ref().map_or(&[], |s| &s.patches)
}

/// The 64-bit SipHash of a device's name.
fn name_hash(name: &str) -> u64 {
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    h.finish()
}

/// The 64-bit SipHash of what a device's entry is derived from besides its reports'
/// states and install times: its name, its labels (none and an empty map apart) and,
/// when a policy governs it, its reports' ids in order.
fn inputs_hash(dev: &ManagedDevice, governed: bool) -> u64 {
    let mut h = DefaultHasher::new();
    dev.metadata.name.as_deref().unwrap_or("").hash(&mut h);
    dev.metadata.labels.hash(&mut h);
    if governed {
        let reports = reports(dev);
        h.write_usize(reports.len());
        for r in reports {
            r.id.hash(&mut h);
        }
    }
    h.finish()
}

/// One device–patch pair: its report's key fields, whether exceptions cover it, and its
/// SLA clock. A pass reads every pair of every device, and keeps them all, so it is kept
/// small (44 bytes): instants as [`When`], flags as bits, and what covers it (few pairs)
/// in its entry ([`Derived::covered`]).
#[derive(Clone, Debug)]
pub(super) struct Pair {
    /// The report's install time.
    installed_at: When,
    /// Its clock's deadline.
    deadline: When,
    /// The next instant its clock changes by time alone.
    next_change: When,
    /// The patch's index in the catalog; [`NO_PATCH`] when the catalog does not know it.
    ix: u32,
    /// The report's state (its id is in the device's inputs hash).
    pub state: PatchState,
    /// Its clock's state, once run (with `deadline` and `next_change`).
    clock: Option<ClockState>,
    /// [`BLOCKS`], [`IN_INSTALL`], [`IN_UNINSTALL`], [`DUPLICATE`], [`EXEMPT`].
    flags: u8,
}

impl Pair {
    /// Reads its install time and its flags, which the compiler lays out 40 bytes apart
    /// (a pair may straddle two cache lines: both are brought in), so that a loop of
    /// nothing else brings many pairs into cache at once. The layout is the compiler's
    /// choice: a reordering would only make this read less, never wrongly.
    pub(super) fn touch(&self) {
        std::hint::black_box((self.installed_at, self.flags));
    }
}

/// A pair's patch index when the catalog does not know the patch.
const NO_PATCH: u32 = u32::MAX;
/// An exception keeps the pair from being assigned.
const BLOCKS: u8 = 1;
/// The device's plan had an install entry for it (as of the last pass that read the plan).
const IN_INSTALL: u8 = 2;
/// The device's plan had an uninstall entry for it (likewise).
const IN_UNINSTALL: u8 = 4;
/// Another report of the device for the same patch counts instead (the device contract's
/// [`winner`](crate::contract::winner)): this one is passed over.
const DUPLICATE: u8 = 8;
/// Exceptions cover it (which, its entry says).
const EXEMPT: u8 = 16;

/// An optional instant in 12 bytes, aligned to 4, where an `Option<Timestamp>` takes 24
/// (aligned to 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct When {
    /// The instant's seconds, high half (an `i64` field would align the whole to 8).
    second_hi: i32,
    /// The seconds' low half.
    second_lo: u32,
    /// The instant's nanoseconds (negative before 1970, as jiff has them); `i32::MIN`
    /// for none.
    nanosecond: i32,
}

impl Default for When {
    fn default() -> Self {
        Self::new(None)
    }
}

impl When {
    pub(crate) fn new(t: Option<Timestamp>) -> Self {
        match t {
            Some(t) => {
                let second = t.as_second();
                Self {
                    second_hi: (second >> 32) as i32,
                    second_lo: second as u32,
                    nanosecond: t.subsec_nanosecond(),
                }
            }
            None => Self {
                second_hi: 0,
                second_lo: 0,
                nanosecond: i32::MIN,
            },
        }
    }

    pub(crate) fn get(self) -> Option<Timestamp> {
        if self.nanosecond == i32::MIN {
            return None;
        }
        let second = (i64::from(self.second_hi) << 32) | i64::from(self.second_lo);
        // Taken apart from a valid instant, so always valid again.
        Timestamp::new(second, self.nanosecond).ok()
    }
}

/// The exceptions covering one pair.
#[derive(Clone, Debug, Default)]
pub(super) struct Exempt {
    /// Active ones (indices in the pass's exception list): the clock is stopped.
    pub active: Vec<usize>,
    /// When they paused its clock.
    pub intervals: Vec<(Timestamp, Timestamp)>,
}

impl Exempt {
    /// Whether the clock it covers moves with time at `now`: an exception is active (the
    /// clock is stopped), or an interval it paused the clock for has not ended (its
    /// length grows while it lasts). Once every interval has ended, the time it took
    /// off the clock is fixed.
    pub fn moves_at(&self, now: Timestamp) -> bool {
        !self.active.is_empty() || self.intervals.iter().any(|(_, to)| now < *to)
    }

    /// The first instant after `now` at which one of its intervals ends.
    fn settles_after(&self, now: Timestamp) -> Option<Timestamp> {
        self.intervals
            .iter()
            .map(|(_, to)| *to)
            .filter(|to| now < *to)
            .min()
    }
}

/// The exceptions covering a device's pairs.
#[derive(Clone, Copy, Debug)]
pub(super) struct Covered<'e>(&'e [(u32, Exempt)]);

impl<'e> Covered<'e> {
    /// The exceptions that cover the pair at `pos`, if any do.
    pub fn at(self, pos: usize) -> Option<&'e Exempt> {
        let pos = u32::try_from(pos).ok()?;
        let k = self.0.binary_search_by_key(&pos, |(p, _)| *p).ok()?;
        Some(&self.0[k].1)
    }

    /// The active exceptions that cover the pair at `pos`.
    pub fn active(self, pos: usize) -> &'e [usize] {
        self.at(pos).map_or(&[], |e| &e.active)
    }
}

// Kept small: a field added here must not make it larger.
const _: () = assert!(std::mem::size_of::<Pair>() == 44);

impl Pair {
    /// A pair for a report of the patch at `ix` in the catalog (None: not in it).
    pub fn new(ix: Option<usize>, state: PatchState, installed_at: Option<Timestamp>) -> Self {
        Self {
            installed_at: When::new(installed_at),
            deadline: When::new(None),
            next_change: When::new(None),
            // A catalog past u32::MAX patches could not be held in memory.
            ix: ix
                .and_then(|ix| u32::try_from(ix).ok())
                .filter(|ix| *ix != NO_PATCH)
                .unwrap_or(NO_PATCH),
            state,
            clock: None,
            flags: 0,
        }
    }

    /// The patch's index in the catalog; None when the catalog does not know it.
    pub fn ix(&self) -> Option<usize> {
        (self.ix != NO_PATCH).then_some(self.ix as usize)
    }

    /// The report's install time.
    pub fn installed_at(&self) -> Option<Timestamp> {
        self.installed_at.get()
    }

    /// The report's install time, as kept.
    pub fn installed_when(&self) -> When {
        self.installed_at
    }

    /// Its clock's deadline, as kept (once the clock has run).
    pub fn deadline_when(&self) -> When {
        self.deadline
    }

    /// The state of the clock last run for it, if one was.
    pub fn clock_state(&self) -> Option<ClockState> {
        self.clock
    }

    /// An exception keeps it from being assigned.
    pub fn blocks(&self) -> bool {
        self.flags & BLOCKS != 0
    }

    /// Marks it as kept from assignment by an exception.
    pub fn set_blocks(&mut self) {
        self.flags |= BLOCKS;
    }

    /// Another report of the device for the same patch counts instead of this one.
    pub fn duplicate(&self) -> bool {
        self.flags & DUPLICATE != 0
    }

    /// Marks it as passed over for another report of the same patch.
    pub fn set_duplicate(&mut self, on: bool) {
        if on {
            self.flags |= DUPLICATE;
        } else {
            self.flags &= !DUPLICATE;
        }
    }

    /// Whether the device's plan had an install and an uninstall entry for it (as of
    /// the last pass that read the plan).
    pub fn in_plan(&self) -> (bool, bool) {
        (self.flags & IN_INSTALL != 0, self.flags & IN_UNINSTALL != 0)
    }

    /// Records which of the device's plan lists have an entry for it.
    pub fn set_in_plan(&mut self, install: bool, uninstall: bool) {
        self.flags &= !(IN_INSTALL | IN_UNINSTALL);
        if install {
            self.flags |= IN_INSTALL;
        }
        if uninstall {
            self.flags |= IN_UNINSTALL;
        }
    }

    /// Exceptions cover it (which, its entry says: [`Derived::covered`]).
    pub fn exempt(&self) -> bool {
        self.flags & EXEMPT != 0
    }

    /// The install time the clock counts: only an Installed report has one, and an
    /// Installed report without a time counts as installed now.
    pub fn installed_for_clock(&self, now: Timestamp) -> Option<Timestamp> {
        // An agent's clock may run ahead: an install is never later than now.
        (self.state == PatchState::Installed)
            .then(|| crate::contract::install_time(self.installed_at(), now).unwrap_or(now))
    }

    /// Keeps a clock run at `now`, the pair covered by `exempt`. A clock run while an
    /// exemption's interval lasts is kept only until that interval ends (it is run
    /// again then, with the time the interval took off fixed).
    pub fn set_clock(&mut self, clock: Clock, exempt: Option<&Exempt>, now: Timestamp) {
        self.clock = Some(clock.state);
        self.deadline = When::new(clock.deadline);
        let settles = exempt.and_then(|e| e.settles_after(now));
        self.next_change = When::new(crate::engine::rollout::earlier(clock.next_change, settles));
    }

    /// Whether its clock at `now` moves with time itself, not only at the instant it
    /// names: an exemption that lasts (its length grows while it does), or an install
    /// time taken from `now` (none reported, or one ahead of `now`). `exempt` is what
    /// covers it ([`Derived::covered`]).
    #[inline]
    pub fn moves_with_time(&self, now: Timestamp, exempt: Option<&Exempt>) -> bool {
        (self.exempt() && exempt.is_none_or(|e| e.moves_at(now)))
            || (self.state == PatchState::Installed && self.installed_at().is_none_or(|t| t > now))
    }

    /// The clock run at an earlier pass, if it is still the clock at `now`: time has
    /// not gone back since (`rewound`), `now` is before the instant it said it changes,
    /// and nothing else in it moves with time (no exemption that lasts, whose length
    /// grows while it does, and no install time taken from `now`).
    #[inline]
    pub fn clock_at(
        &self,
        now: Timestamp,
        rewound: bool,
        exempt: Option<&Exempt>,
    ) -> Option<Clock> {
        let state = self.clock?;
        if rewound || self.moves_with_time(now, exempt) {
            return None;
        }
        let next_change = self.next_change.get();
        next_change.is_none_or(|t| now < t).then(|| Clock {
            state,
            deadline: self.deadline.get(),
            next_change,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_equals_only_itself() {
        let long = "9".repeat(INLINE_VERSION + 5);
        for v in ["1", "18446744073709551615", "2026-12-01", long.as_str()] {
            let kept = Version::of(Some(v));
            assert!(kept.is(Some(v)), "{v}");
            assert!(!kept.is(Some(&format!("{v}0"))), "{v}");
            assert!(!kept.is(Some(&v[..v.len() - 1])), "{v}");
            assert!(!kept.is(None), "{v}");
        }
        assert!(matches!(Version::of(Some(&long)), Version::Heap(_)));
        assert!(
            !Version::of(None).is(None),
            "an object without a version is compared"
        );
        assert!(!Version::of(Some("")).is(Some("1")));
    }

    #[test]
    fn an_instant_kept_in_twelve_bytes_comes_back_the_same() {
        let instants = [
            None,
            Some(Timestamp::UNIX_EPOCH),
            Some(Timestamp::MIN),
            Some(Timestamp::MAX),
            Some(Timestamp::new(1_700_000_000, 123_456_789).expect("valid")),
            // Before 1970 jiff's nanoseconds are negative.
            Some(Timestamp::new(-1, -500_000_000).expect("valid")),
        ];
        for t in instants {
            assert_eq!(When::new(t).get(), t, "{t:?}");
        }
        assert_eq!(std::mem::size_of::<When>(), 12);
    }

    #[test]
    fn what_covers_a_pair_is_found_at_its_position() {
        let mut entry = Derived::default();
        for _ in 0..3 {
            entry
                .pairs
                .push(Pair::new(Some(1), PatchState::Missing, None));
        }
        let exempt = Exempt {
            active: vec![4],
            intervals: Vec::new(),
        };
        entry.cover(1, exempt);
        entry.cover(2, Exempt::default());
        let marked: Vec<bool> = entry.pairs.iter().map(Pair::exempt).collect();
        assert_eq!(marked, [false, true, true]);
        let covered = entry.covered();
        assert!(covered.at(0).is_none());
        assert_eq!(covered.active(1), [4]);
        assert!(covered.at(2).is_some_and(|e| e.active.is_empty()));
        let now = Timestamp::UNIX_EPOCH;
        let later = |s: i64| Timestamp::from_second(s).expect("in range");
        let moves =
            |pos: usize, exempt: Option<&Exempt>| entry.pairs[pos].moves_with_time(now, exempt);
        // Covered by an active exception: its clock is stopped, so it moves with time.
        assert!(moves(1, covered.at(1)));
        // Covered by none active, and no interval: its clock is fixed.
        assert!(!moves(2, covered.at(2)));
        // An interval that has not ended grows; one that has, does not.
        let lasting = Exempt {
            active: Vec::new(),
            intervals: vec![(later(-10), later(10))],
        };
        let ended = Exempt {
            active: Vec::new(),
            intervals: vec![(later(-10), later(-5))],
        };
        assert!(moves(2, Some(&lasting)));
        assert!(!moves(2, Some(&ended)));
        assert!(!moves(0, None));
    }

    #[test]
    fn a_clock_run_while_an_exemption_lasts_is_run_again_once_it_ends() {
        let at = |s: i64| Timestamp::from_second(s).expect("in range");
        let lasting = Exempt {
            active: Vec::new(),
            intervals: vec![(at(0), at(100))],
        };
        let mut pair = Pair::new(Some(0), PatchState::Missing, None);
        pair.flags |= EXEMPT;
        let clock = Clock {
            state: ClockState::NotDue,
            deadline: Some(at(1_000)),
            next_change: Some(at(900)),
        };
        pair.set_clock(clock, Some(&lasting), at(50));
        // While the interval lasts, the clock moves with time: never reused.
        assert!(pair.clock_at(at(60), false, Some(&lasting)).is_none());
        // Once it ended, the clock kept from before its end is not the clock: run again.
        assert!(pair.clock_at(at(150), false, Some(&lasting)).is_none());
        // One run after its end is kept until its own next change.
        pair.set_clock(clock, Some(&lasting), at(150));
        assert_eq!(pair.clock_at(at(200), false, Some(&lasting)), Some(clock));
        assert!(pair.clock_at(at(900), false, Some(&lasting)).is_none());
    }

    #[test]
    fn a_pair_keeps_its_flags_apart() {
        let mut pair = Pair::new(Some(3), PatchState::Missing, None);
        assert_eq!(
            (pair.ix(), pair.blocks(), pair.in_plan()),
            (Some(3), false, (false, false))
        );
        pair.set_in_plan(true, false);
        pair.set_blocks();
        assert_eq!((pair.blocks(), pair.in_plan()), (true, (true, false)));
        pair.set_in_plan(false, true);
        assert_eq!((pair.blocks(), pair.in_plan()), (true, (false, true)));
        assert_eq!(Pair::new(None, PatchState::Missing, None).ix(), None);
        // An index a pair cannot hold reads as unknown, never as another patch.
        assert_eq!(
            Pair::new(Some(u32::MAX as usize), PatchState::Missing, None).ix(),
            None
        );
    }
}
