//! The device contract: what a device's report means, in one place.
//!
//! `ManagedDevice` is the whole interface between the operator and whatever patches a
//! device (the simulated fleet, the simulator's agents, a real agent, an RMM bridge). The
//! operator writes `spec.plan` — one entry per patch — and the agent writes
//! `status.patches` — one report per applicable patch. This module holds every rule that
//! reads the two together, for both sides:
//!
//! - the agent's side: which entry to act on next ([`next_action`]), and how a report
//!   changes when an attempt starts and ends ([`start`], [`finish`]);
//! - the operator's side: whether a report answers the entry's current attempt
//!   ([`answers`]) and so where the device stands with the patch ([`judge`]), when an
//!   unanswered attempt times out, and which of several reports for one patch counts
//!   ([`winner`]).
//!
//! **Matching without trusting the agent's clock.** Each install entry carries an
//! `attempt` id. An agent echoes it in its report (`status.patches[].attempt`) when it
//! starts the entry; a report with that id answers this attempt, a report with another
//! id answers an earlier one. A report without an id (an agent that does not know the
//! field) answers the attempt once it differs from the report as it was when the entry
//! was written, whose digest the entry keeps in `basis`. Entries written before these
//! fields existed fall back to the agent's `lastAttemptAt` (at or after `notBefore`).
//!
//! **Deadlines.** An entry's `answerBy` is the instant by which the agent must have
//! reported a result (Installed, PendingReboot or Failed) for the attempt; past it the
//! attempt counts as failed with [`FailReason::TimedOut`], and the ring's gates count it
//! like any other failure. A result that comes later is still taken.
//!
//! **Liveness.** A device checks in by renewing its Lease (see [`CheckIns`]): a small
//! write that is not a `ManagedDevice` write. Its agent writes `status` only when
//! something changed, with `lastSeen`. When the device was last seen is the later of the
//! two ([`last_seen`]).
//!
//! `docs/agent-contract.md` says the same for agent authors, with a complete agent in
//! shell. Everything here is pure: `now` is a parameter.

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use sha2::{Digest, Sha256};

use crate::api::{DevicePatchStatus, DevicePlan, Duration, ManagedDevice, PatchState, PlanEntry};

/// The label on a device's check-in Lease; its value is the device's name, as is the
/// Lease's own name (the operator watches only Leases with this label).
pub const CHECK_IN_LABEL: &str = "ringmaster.dev/device";

/// How many heartbeats a check-in Lease lasts (`spec.leaseDurationSeconds`): a device
/// that misses this many renewals in a row has let its Lease expire.
pub const LEASE_HEARTBEATS: i32 = 3;

/// The devices' check-ins by Lease: per device name, when its agent last renewed the
/// device's Lease (`coordination.k8s.io/v1`, in the device's namespace, named as the
/// device and labelled [`CHECK_IN_LABEL`] with the same name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckIns {
    by_device: HashMap<String, Timestamp>,
}

/// No check-ins at all (a world without Leases: the simulator, reports from files).
static NO_CHECK_INS: std::sync::LazyLock<CheckIns> = std::sync::LazyLock::new(CheckIns::default);

impl CheckIns {
    /// No check-ins at all, to borrow.
    pub fn none() -> &'static CheckIns {
        &NO_CHECK_INS
    }

    /// The check-in of the device named `device`, if its Lease was ever renewed.
    pub fn get(&self, device: &str) -> Option<Timestamp> {
        self.by_device.get(device).copied()
    }

    /// Notes a device's check-in; returns the one it replaces.
    pub fn insert(&mut self, device: String, at: Timestamp) -> Option<Timestamp> {
        self.by_device.insert(device, at)
    }

    /// Forgets a device's check-in (its Lease was deleted).
    pub fn remove(&mut self, device: &str) -> Option<Timestamp> {
        self.by_device.remove(device)
    }

    /// How many devices have a check-in.
    pub fn len(&self) -> usize {
        self.by_device.len()
    }

    /// Whether no device has one.
    pub fn is_empty(&self) -> bool {
        self.by_device.is_empty()
    }

    /// The check-ins of these Leases (each one's [`check_in`]; others are left out).
    pub fn from_leases<'l>(leases: impl IntoIterator<Item = &'l Lease>) -> Self {
        let by_device = leases
            .into_iter()
            .filter_map(check_in)
            .map(|(name, at)| (name.to_string(), at))
            .collect();
        Self { by_device }
    }
}

/// The device a Lease is the check-in of, and when it was last renewed
/// (`spec.renewTime`, else `spec.acquireTime`): None for a Lease that is not a device's
/// check-in (not labelled [`CHECK_IN_LABEL`] with its own name) or was never renewed.
pub fn check_in(lease: &Lease) -> Option<(&str, Timestamp)> {
    let name = lease.metadata.name.as_deref()?;
    let labelled = lease.metadata.labels.as_ref()?.get(CHECK_IN_LABEL)?;
    if labelled != name {
        return None;
    }
    let spec = lease.spec.as_ref()?;
    let at = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?;
    Some((name, at.0))
}

/// When a device was last seen: the later of its agent's `status.lastSeen` and its
/// Lease's last renewal. The one rule for it, read by the engine, the metrics, `why` and
/// the simulator. None if it never checked in either way.
pub fn last_seen(device: &ManagedDevice, check_ins: &CheckIns) -> Option<Timestamp> {
    let reported = device.status.as_ref().and_then(|s| s.last_seen);
    if check_ins.is_empty() {
        // No Lease at all (the name, elsewhere in memory, is not read).
        return reported;
    }
    let leased = device
        .metadata
        .name
        .as_deref()
        .and_then(|name| check_ins.get(name));
    reported.max(leased)
}

/// Whether a check-in Lease renewed at `renewed` for `duration_seconds` had expired by
/// `at`: its agent missed its renewals (the device may have been judged unreachable, so
/// its next renewal matters at once). A Lease without a duration never expires.
pub fn lease_expired(renewed: Timestamp, duration_seconds: Option<i32>, at: Timestamp) -> bool {
    duration_seconds.is_some_and(|d| at.duration_since(renewed).as_secs() >= i64::from(d))
}

/// How long an agent has to answer an attempt when its ring does not say (`attemptTimeout`):
/// a day of maintenance-window time.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::hours(24);

/// The id of a new attempt by `rollout`, issued at `now` (the operator's clock):
/// `<rollout>@<unix seconds>`. Unique per device and patch, since a rollout issues at
/// most one attempt per device and patch at one instant.
pub fn attempt_id(rollout: &str, now: Timestamp) -> String {
    format!("{rollout}@{}", now.as_second())
}

/// Why an attempt counts as failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// The agent reported `Failed` for it.
    Reported,
    /// The agent reported no result by the entry's `answerBy`.
    TimedOut,
}

/// Where a device stands with one patch, judged from its report and the install entry
/// of the rollout asking (if it has one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Standing {
    /// The patch is installed: a fact, whichever attempt it came from.
    Installed,
    /// The device is working on it: installing, waiting for a reboot, or holding an
    /// entry whose attempt it has not answered yet (and whose time is not up).
    InProgress,
    /// The entry's attempt failed.
    Failed(FailReason),
    /// Uninstalled by a rollback, with no entry asking for it again.
    RolledBack,
    /// Applicable, not installed, and no entry asks for it: waiting to be admitted.
    Waiting,
}

/// Whether `report` answers the attempt of `entry` (see the module documentation).
pub fn answers(report: &DevicePatchStatus, entry: &PlanEntry) -> bool {
    match (&report.attempt, &entry.attempt, &entry.basis) {
        (Some(echoed), Some(attempt), _) => echoed == attempt,
        (None, Some(_), Some(basis)) => digest_hex(report) != basis.as_bytes(),
        _ => report
            .last_attempt_at
            .is_some_and(|t| t >= entry.not_before),
    }
}

/// Where the device stands with the patch, given its report and the install entry of the
/// rollout asking (None when that rollout has not admitted it).
pub fn judge(report: &DevicePatchStatus, entry: Option<&PlanEntry>, now: Timestamp) -> Standing {
    judge_state(report.state, || report, entry, now)
}

/// [`judge`] with the report's state at hand: the report itself (`report`) is read only
/// when an entry asks for an attempt (most devices of a large ring have none, and a
/// rollout judges every member at every pass).
pub fn judge_state<'r>(
    state: PatchState,
    report: impl Fn() -> &'r DevicePatchStatus,
    entry: Option<&PlanEntry>,
    now: Timestamp,
) -> Standing {
    judge_timed(state, report, entry, now).0
}

/// [`judge_state`], and for a device with an entry that is in progress, when the entry's
/// attempt times out unless answered ([`times_out_at`], weighed once for both).
pub fn judge_timed<'r>(
    state: PatchState,
    report: impl Fn() -> &'r DevicePatchStatus,
    entry: Option<&PlanEntry>,
    now: Timestamp,
) -> (Standing, Option<Timestamp>) {
    match (state, entry) {
        (PatchState::Installed, _) => (Standing::Installed, None),
        (PatchState::PendingReboot, Some(e)) => (Standing::InProgress, times_out_at(report(), e)),
        (PatchState::PendingReboot | PatchState::Installing, None) => (Standing::InProgress, None),
        (PatchState::RolledBack, None) => (Standing::RolledBack, None),
        (PatchState::Missing | PatchState::Failed, None) => (Standing::Waiting, None),
        (PatchState::Failed, Some(e)) if answers(report(), e) => {
            (Standing::Failed(FailReason::Reported), None)
        }
        (_, Some(e)) => match times_out_at(report(), e) {
            Some(at) if now >= at => (Standing::Failed(FailReason::TimedOut), None),
            at => (Standing::InProgress, at),
        },
    }
}

/// Whether the entry's time to answer is up at `now` (see [`times_out_at`]).
pub fn timed_out(report: &DevicePatchStatus, entry: &PlanEntry, now: Timestamp) -> bool {
    times_out_at(report, entry).is_some_and(|at| now >= at)
}

/// The instant the entry's attempt times out unless the agent answers. An attempt the
/// agent has started times out at `answerBy` wherever the window ends (the install runs
/// on after it); one it has not started only if `answerBy` comes before its window ends:
/// otherwise the window closes first and the entry moves to the next window with the time
/// it has left ([`renew`]).
pub fn times_out_at(report: &DevicePatchStatus, entry: &PlanEntry) -> Option<Timestamp> {
    let by = entry.answer_by?;
    let in_window = entry.not_after.is_none_or(|end| by <= end);
    (in_window || started(report, entry)).then_some(by)
}

/// Whether the agent has started the entry's attempt (or already has the patch): an
/// entry started is never renewed into a later window.
pub fn started(report: &DevicePatchStatus, entry: &PlanEntry) -> bool {
    matches!(
        report.state,
        PatchState::Installing | PatchState::PendingReboot | PatchState::Installed
    ) || answers(report, entry)
}

/// Whether an entry whose window closed before its device started it moves to the next
/// window: not started, the window over, and the time to answer not up.
pub fn needs_renewal(report: &DevicePatchStatus, entry: &PlanEntry, now: Timestamp) -> bool {
    entry.not_after.is_some_and(|end| end <= now)
        && !started(report, entry)
        && !timed_out(report, entry, now)
}

/// The entry for a new attempt issued at `now`, open until `not_after`: its time to
/// answer is `timeout` from now.
pub fn answer_by(now: Timestamp, timeout: Duration) -> Option<Timestamp> {
    now.checked_add(timeout.span()).ok()
}

/// The entry moved to a new window `[now, not_after)`: the same attempt, with what is left
/// of its time to answer. Time counts only inside the windows an entry was given, and
/// only those the device was there for: a window the device was seen in (busy, or not
/// listening) uses up its length, one it was away for (its `lastSeen` before the window
/// opened: an absence is the ring's `unreachableAfter` to judge) uses up nothing.
pub fn renew(
    entry: &PlanEntry,
    last_seen: Option<Timestamp>,
    now: Timestamp,
    not_after: Option<Timestamp>,
) -> PlanEntry {
    let away = last_seen.is_some_and(|seen| seen < entry.not_before);
    let used = match (away, entry.not_after) {
        (false, Some(end)) => end.duration_since(entry.not_before),
        _ => jiff::SignedDuration::ZERO,
    };
    let answer_by = entry.answer_by.and_then(|by| {
        let left = by.duration_since(entry.not_before) - used;
        now.checked_add(left.max(jiff::SignedDuration::ZERO)).ok()
    });
    PlanEntry {
        not_before: now,
        not_after,
        answer_by,
        ..entry.clone()
    }
}

/// The install time the operator counts, from a report's `installedAt`: the agent's, but
/// never later than `now` (an agent's clock may run ahead). None when the report has none.
pub fn install_time(installed_at: Option<Timestamp>, now: Timestamp) -> Option<Timestamp> {
    installed_at.map(|t| t.min(now))
}

/// A digest of what a report says, for an entry's `basis`: 16 hex digits over the state,
/// attempt count, times, message and echoed attempt.
pub fn digest(report: &DevicePatchStatus) -> String {
    digest_hex(report).iter().map(|&b| char::from(b)).collect()
}

/// [`digest`]'s 16 hex digits, without building a string (a rollout compares one with
/// the basis of every entry in progress, at every pass).
fn digest_hex(report: &DevicePatchStatus) -> [u8; 16] {
    use std::fmt::Write as _;
    // Each part is written straight into the hash, followed by a zero byte: no string is
    // built for it (an admission digests one report per admitted device).
    let mut h = Hashing(Sha256::new());
    let when = |h: &mut Hashing, t: Option<Timestamp>| match t {
        Some(t) => write!(h, "{t}"),
        None => Ok(()),
    };
    // Writing into a hash cannot fail.
    let _ = write!(h, "{:?}", report.state);
    h.end_part();
    let _ = write!(h, "{}", report.attempts);
    h.end_part();
    let _ = when(&mut h, report.last_attempt_at);
    h.end_part();
    let _ = when(&mut h, report.installed_at);
    h.end_part();
    h.0.update(report.message.as_deref().unwrap_or_default().as_bytes());
    h.end_part();
    h.0.update(report.attempt.as_deref().unwrap_or_default().as_bytes());
    h.end_part();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0; 16];
    for (i, b) in h.0.finalize()[..8].iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    out
}

/// A hash that formatted text is written into.
struct Hashing(Sha256);

impl Hashing {
    fn end_part(&mut self) {
        self.0.update([0]);
    }
}

impl std::fmt::Write for Hashing {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

/// How far a state has got, to choose between two reports for one patch: a device that
/// reports a patch twice is taken at its most advanced word.
fn precedence(state: PatchState) -> u8 {
    match state {
        PatchState::Missing => 0,
        PatchState::RolledBack => 1,
        PatchState::Failed => 2,
        PatchState::Installing => 3,
        PatchState::PendingReboot => 4,
        PatchState::Installed => 5,
    }
}

/// Of two reports for the same patch, whether `candidate` counts instead of `current`
/// (the more advanced state wins; on a tie, the first listed).
pub fn winner(current: &DevicePatchStatus, candidate: &DevicePatchStatus) -> bool {
    precedence(candidate.state) > precedence(current.state)
}

/// What an agent should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Uninstall this patch (a rollback).
    Uninstall(&'a str, &'a PlanEntry),
    /// Install this patch: start the entry's attempt.
    Install(&'a str, &'a PlanEntry),
}

/// Whether the entry's window is open at `now`: `notBefore <= now < notAfter`.
pub fn window_open(entry: &PlanEntry, now: Timestamp) -> bool {
    entry.not_before <= now && entry.not_after.is_none_or(|end| now < end)
}

/// Whether an agent may start installing `entry` now: its window is open, the patch is
/// not on the device or being installed, and the report does not already answer this
/// attempt (an attempt is made once).
pub fn may_install(report: &DevicePatchStatus, entry: &PlanEntry, now: Timestamp) -> bool {
    window_open(entry, now)
        && matches!(
            report.state,
            PatchState::Missing | PatchState::RolledBack | PatchState::Failed
        )
        && !answers(report, entry)
}

/// Whether an agent may start uninstalling: the entry's time has come and the device has
/// the patch. Uninstalls are not bound to a window (they undo harm).
pub fn may_uninstall(report: &DevicePatchStatus, entry: &PlanEntry, now: Timestamp) -> bool {
    entry.not_before <= now
        && matches!(
            report.state,
            PatchState::Installed | PatchState::PendingReboot
        )
}

/// The next thing an agent that is not busy should do: uninstalls first (they undo harm),
/// then installs, each in patch id order. `report` finds the device's report for an id.
pub fn next_action<'p, 'r>(
    plan: &'p DevicePlan,
    report: impl Fn(&str) -> Option<&'r DevicePatchStatus>,
    now: Timestamp,
) -> Option<Action<'p>> {
    let uninstall = plan
        .uninstall
        .iter()
        .find(|(id, e)| report(id.as_str()).is_some_and(|r| may_uninstall(r, e, now)));
    if let Some((id, e)) = uninstall {
        return Some(Action::Uninstall(id, e));
    }
    plan.install
        .iter()
        .find(|(id, e)| report(id.as_str()).is_some_and(|r| may_install(r, e, now)))
        .map(|(id, e)| Action::Install(id, e))
}

/// The report when an agent starts an install: Installing, one more attempt, started at
/// `now` (the agent's clock), the entry's attempt echoed, the last message cleared.
pub fn start(report: &mut DevicePatchStatus, entry: Option<&PlanEntry>, now: Timestamp) {
    report.state = PatchState::Installing;
    report.attempts += 1;
    report.last_attempt_at = Some(now);
    report.attempt = entry.and_then(|e| e.attempt.clone());
    report.message = None;
}

/// How an install or uninstall ended, as an agent tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Installed (re-read from the package database, for a real agent).
    Installed,
    /// Installed; it takes effect after a reboot.
    PendingReboot,
    /// The install failed, with the installer's last word.
    Failed(String),
    /// Uninstalled.
    Uninstalled,
}

/// The report when an attempt ends at `now` (the agent's clock).
pub fn finish(report: &mut DevicePatchStatus, outcome: Outcome, now: Timestamp) {
    match outcome {
        Outcome::Installed => {
            report.state = PatchState::Installed;
            report.installed_at = Some(now);
            report.message = None;
        }
        Outcome::PendingReboot => {
            report.state = PatchState::PendingReboot;
            report.message = None;
        }
        Outcome::Failed(message) => {
            report.state = PatchState::Failed;
            report.message = Some(message);
        }
        Outcome::Uninstalled => {
            report.state = PatchState::RolledBack;
            report.installed_at = None;
            report.message = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    const ISSUED: &str = "2026-11-24T21:00:00Z";
    const LATER: &str = "2026-11-24T21:30:00Z";
    const PAST_ANSWER_BY: &str = "2026-11-25T21:00:00Z";

    /// What the device reported when the operator wrote the entry.
    fn before() -> DevicePatchStatus {
        DevicePatchStatus::missing("KB1")
    }

    /// The entry of a ring whose window is open from 21:00 to 03:00.
    fn windowed(basis: &DevicePatchStatus) -> PlanEntry {
        PlanEntry {
            not_after: Some(t("2026-11-25T03:00:00Z")),
            ..entry_for(basis)
        }
    }

    /// The entry of a ring that is always open.
    fn entry_for(basis: &DevicePatchStatus) -> PlanEntry {
        PlanEntry {
            rollout: "ws.kb1".into(),
            not_before: t(ISSUED),
            not_after: None,
            deadline: None,
            attempt: Some(attempt_id("ws.kb1", t(ISSUED))),
            basis: Some(digest(basis)),
            answer_by: answer_by(t(ISSUED), Duration::hours(24)),
        }
    }

    fn report(
        state: PatchState,
        attempt: Option<&str>,
        edit: impl FnOnce(&mut DevicePatchStatus),
    ) -> DevicePatchStatus {
        let mut r = DevicePatchStatus {
            state,
            attempt: attempt.map(str::to_string),
            ..before()
        };
        edit(&mut r);
        r
    }

    const OURS: Option<&str> = Some("ws.kb1@1795554000");

    #[test]
    fn the_attempt_id_is_the_rollout_and_the_issue_second() {
        assert_eq!(attempt_id("ws.kb1", t(ISSUED)), OURS.unwrap_or_default());
    }

    /// Each awkward report a real agent may send, and where the device then stands, at a
    /// time before the entry's `answerBy` and at one after it.
    #[test]
    fn awkward_reports_and_their_standing() {
        use FailReason::*;
        use Standing::*;
        let none = |_: &mut DevicePatchStatus| {};
        let failed_before = report(PatchState::Failed, None, |r| {
            r.attempts = 2;
            r.message = Some("0x800f0922".into());
        });
        let cases: Vec<(&str, DevicePatchStatus, PlanEntry, Standing, Standing)> = vec![
            (
                "Failed without lastAttemptAt, attempt or times (the design's own example)",
                report(PatchState::Failed, None, |r| {
                    r.message = Some("0x800f0922".into())
                }),
                entry_for(&before()),
                Failed(Reported),
                Failed(Reported),
            ),
            (
                "Failed with the attempt echoed",
                report(PatchState::Failed, OURS, none),
                entry_for(&before()),
                Failed(Reported),
                Failed(Reported),
            ),
            (
                "Failed with the attempt echoed, the agent's clock 10 minutes behind",
                report(PatchState::Failed, OURS, |r| {
                    r.last_attempt_at = Some(t("2026-11-24T20:50:00Z"));
                }),
                entry_for(&before()),
                Failed(Reported),
                Failed(Reported),
            ),
            (
                "Failed for an earlier attempt (another id echoed)",
                report(PatchState::Failed, Some("ws.kb1@1"), none),
                entry_for(&before()),
                InProgress,
                Failed(TimedOut),
            ),
            (
                "Failed from before the entry, unchanged since (no id)",
                failed_before.clone(),
                entry_for(&failed_before),
                InProgress,
                Failed(TimedOut),
            ),
            (
                "Failed from before the entry, then failed again (the report changed)",
                report(PatchState::Failed, None, |r| {
                    r.attempts = 3;
                    r.message = Some("0x800f0922".into());
                }),
                entry_for(&failed_before),
                Failed(Reported),
                Failed(Reported),
            ),
            (
                "no answer at all: the agent never acts",
                before(),
                entry_for(&before()),
                InProgress,
                Failed(TimedOut),
            ),
            (
                "Installing for ever (a hung package manager)",
                report(PatchState::Installing, OURS, none),
                entry_for(&before()),
                InProgress,
                Failed(TimedOut),
            ),
            (
                "PendingReboot is an answer: it does not time out",
                report(PatchState::PendingReboot, OURS, none),
                entry_for(&before()),
                InProgress,
                InProgress,
            ),
            (
                "Installed without installedAt",
                report(PatchState::Installed, None, none),
                entry_for(&before()),
                Installed,
                Installed,
            ),
            (
                "Failed, then Installed for the same attempt",
                report(PatchState::Installed, OURS, |r| {
                    r.message = Some("0x800f0922".into());
                }),
                entry_for(&before()),
                Installed,
                Installed,
            ),
            (
                "an entry written before attempts existed: lastAttemptAt decides",
                report(PatchState::Failed, None, |r| {
                    r.last_attempt_at = Some(t(LATER))
                }),
                PlanEntry {
                    attempt: None,
                    basis: None,
                    answer_by: None,
                    ..entry_for(&before())
                },
                Failed(Reported),
                Failed(Reported),
            ),
            (
                "an entry written before attempts existed never times out",
                before(),
                PlanEntry {
                    attempt: None,
                    basis: None,
                    answer_by: None,
                    ..entry_for(&before())
                },
                InProgress,
                InProgress,
            ),
        ];
        for (what, report, entry, early, late) in cases {
            assert_eq!(
                judge(&report, Some(&entry), t(LATER)),
                early,
                "{what}, early"
            );
            assert_eq!(
                judge(&report, Some(&entry), t(PAST_ANSWER_BY)),
                late,
                "{what}, after answerBy"
            );
        }
    }

    #[test]
    fn without_an_entry_a_report_says_whether_the_device_waits() {
        let at = t(LATER);
        let judged = |state| judge(&report(state, None, |_| {}), None, at);
        assert_eq!(judged(PatchState::Missing), Standing::Waiting);
        assert_eq!(judged(PatchState::Failed), Standing::Waiting);
        assert_eq!(judged(PatchState::RolledBack), Standing::RolledBack);
        assert_eq!(judged(PatchState::Installing), Standing::InProgress);
        assert_eq!(judged(PatchState::PendingReboot), Standing::InProgress);
        assert_eq!(judged(PatchState::Installed), Standing::Installed);
    }

    #[test]
    fn an_agent_attempts_an_entry_once_and_a_renewed_entry_still_once() {
        let e = windowed(&before());
        let mut r = before();
        assert!(
            !may_install(&r, &e, t("2026-11-24T20:59:59Z")),
            "before the window"
        );
        assert!(
            !may_install(&r, &e, t("2026-11-25T03:00:00Z")),
            "after the window"
        );
        assert!(may_install(&r, &e, t(LATER)));
        start(&mut r, Some(&e), t(LATER));
        assert_eq!(r.attempt, e.attempt, "the attempt is echoed");
        assert_eq!((r.state, r.attempts), (PatchState::Installing, 1));
        finish(
            &mut r,
            Outcome::Failed("E: dpkg was interrupted".into()),
            t(LATER),
        );
        assert!(!may_install(&r, &e, t(LATER)), "attempted once");
        // The same attempt moved to the next window (it was not started) is still once.
        let renewed = PlanEntry {
            not_before: t("2026-11-25T21:00:00Z"),
            not_after: None,
            ..e.clone()
        };
        assert!(!may_install(&r, &renewed, t("2026-11-25T22:00:00Z")));
        // A new attempt may be made.
        let next = PlanEntry {
            attempt: Some(attempt_id("ws.kb1", t("2026-11-26T21:00:00Z"))),
            basis: Some(digest(&r)),
            not_before: t("2026-11-26T21:00:00Z"),
            not_after: None,
            ..e
        };
        assert!(may_install(&r, &next, t("2026-11-26T21:00:00Z")));
    }

    #[test]
    fn an_unstarted_entry_is_renewed_until_its_time_is_up() {
        let e = windowed(&before());
        let closed = t("2026-11-25T03:00:00Z");
        assert!(!needs_renewal(&before(), &e, t(LATER)), "window still open");
        assert!(needs_renewal(&before(), &e, closed));
        let started_ = report(PatchState::Installing, OURS, |_| {});
        assert!(!needs_renewal(&started_, &e, closed), "started");
        let short = PlanEntry {
            answer_by: Some(t("2026-11-25T01:00:00Z")),
            ..e
        };
        assert!(timed_out(&before(), &short, closed));
        assert!(!needs_renewal(&before(), &short, closed), "timed out");
    }

    #[test]
    fn time_to_answer_counts_only_in_windows_the_device_was_there_for() {
        // Issued at 21:00 with 24h to answer, in a window until 03:00 (6h).
        let e = windowed(&before());
        assert!(
            !timed_out(&before(), &e, t(PAST_ANSWER_BY)),
            "24h lies past the window's end"
        );
        let next_window = t("2026-11-25T21:00:00Z");
        let seen_in_window = Some(t("2026-11-24T23:00:00Z"));
        let kept = renew(
            &e,
            seen_in_window,
            next_window,
            Some(t("2026-11-26T03:00:00Z")),
        );
        assert_eq!(kept.attempt, e.attempt, "the same attempt");
        assert_eq!(kept.not_before, next_window);
        assert_eq!(kept.answer_by, Some(t("2026-11-26T15:00:00Z")), "18h left");
        let away = Some(t("2026-11-24T20:00:00Z"));
        let fresh = renew(&e, away, next_window, None);
        assert_eq!(fresh.answer_by, Some(t("2026-11-26T21:00:00Z")), "24h left");
        assert!(
            timed_out(&before(), &fresh, t("2026-11-26T21:00:00Z")),
            "no window end"
        );
        let never_seen = renew(&e, None, next_window, None);
        assert_eq!(
            never_seen.answer_by,
            Some(t("2026-11-26T15:00:00Z")),
            "the time runs"
        );
    }

    #[test]
    fn a_started_attempt_times_out_even_past_its_window() {
        // 24h to answer from 21:00, in a window that closes at 03:00.
        let e = windowed(&before());
        let installing = report(PatchState::Installing, OURS, |_| {});
        assert_eq!(
            times_out_at(&before(), &e),
            None,
            "unstarted: renewed instead"
        );
        assert_eq!(times_out_at(&installing, &e), e.answer_by);
        assert_eq!(
            judge(&installing, Some(&e), t(PAST_ANSWER_BY)),
            Standing::Failed(FailReason::TimedOut),
            "a hung install does not hold its slot for ever"
        );
    }

    #[test]
    fn uninstalls_come_before_installs() {
        let mut plan = DevicePlan::default();
        plan.install.insert("KB2".into(), entry_for(&before()));
        plan.uninstall.insert("KB1".into(), entry_for(&before()));
        let installed = report(PatchState::Installed, None, |r| r.id = "KB1".into());
        let missing = DevicePatchStatus::missing("KB2");
        let reports = [installed, missing];
        let find = |id: &str| reports.iter().find(|r| r.id == id);
        assert!(matches!(
            next_action(&plan, find, t(LATER)),
            Some(Action::Uninstall("KB1", _))
        ));
        plan.uninstall.clear();
        assert!(matches!(
            next_action(&plan, find, t(LATER)),
            Some(Action::Install("KB2", _))
        ));
        let unknown = |_: &str| None;
        assert_eq!(next_action(&plan, unknown, t(LATER)), None, "not reported");
    }

    #[test]
    fn a_patch_reported_twice_counts_at_its_most_advanced_word() {
        let missing = before();
        let installed = report(PatchState::Installed, None, |_| {});
        let failed = report(PatchState::Failed, None, |_| {});
        assert!(winner(&missing, &installed));
        assert!(winner(&failed, &installed));
        assert!(!winner(&installed, &failed));
        assert!(!winner(&failed, &failed.clone()), "a tie keeps the first");
    }

    #[test]
    fn an_install_time_from_a_clock_ahead_counts_as_now() {
        let r = report(PatchState::Installed, None, |r| {
            r.installed_at = Some(t("2026-11-24T22:00:00Z"));
        });
        assert_eq!(install_time(r.installed_at, t(LATER)), Some(t(LATER)));
        assert_eq!(
            install_time(r.installed_at, t(PAST_ANSWER_BY)),
            Some(t("2026-11-24T22:00:00Z"))
        );
    }

    /// The basis digest is the first 8 bytes of SHA-256 over the report's parts, each
    /// followed by a zero byte: stored entries carry it, so it must never change.
    #[test]
    fn digest_is_sha256_of_the_parts() {
        let reference = |r: &DevicePatchStatus| {
            let when = |t: Option<Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
            let mut h = Sha256::new();
            for part in [
                format!("{:?}", r.state),
                r.attempts.to_string(),
                when(r.last_attempt_at),
                when(r.installed_at),
                r.message.clone().unwrap_or_default(),
                r.attempt.clone().unwrap_or_default(),
            ] {
                h.update(part.as_bytes());
                h.update([0]);
            }
            h.finalize()[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let bare = DevicePatchStatus::missing("KB1");
        let full = DevicePatchStatus {
            state: PatchState::Failed,
            attempts: 12,
            last_attempt_at: Some(t("2026-11-24T21:00:00.5Z")),
            installed_at: Some(t(LATER)),
            message: Some("dpkg: error ✗".into()),
            attempt: Some("fleet.kb1@1764018000".into()),
            ..bare.clone()
        };
        for r in [&bare, &full] {
            assert_eq!(digest(r), reference(r));
            assert_eq!(digest(r).len(), 16);
        }
        assert_ne!(digest(&bare), digest(&full));
    }

    fn lease(name: &str, label: Option<&str>, renewed: Option<&str>) -> Lease {
        use k8s_openapi::api::coordination::v1::LeaseSpec;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
        let mut l = Lease::default();
        l.metadata.name = Some(name.into());
        l.metadata.labels = label.map(|v| [(CHECK_IN_LABEL.to_string(), v.to_string())].into());
        l.spec = Some(LeaseSpec {
            renew_time: renewed.map(|r| MicroTime(t(r))),
            lease_duration_seconds: Some(900),
            ..LeaseSpec::default()
        });
        l
    }

    fn device_seen(name: &str, seen: Option<&str>) -> ManagedDevice {
        let mut d = ManagedDevice::new(name, crate::api::ManagedDeviceSpec::default());
        d.status = Some(crate::api::ManagedDeviceStatus {
            last_seen: seen.map(t),
            ..Default::default()
        });
        d
    }

    #[test]
    fn a_device_was_last_seen_at_the_later_of_its_status_and_its_lease() {
        let ins = CheckIns::from_leases(&[
            lease("ws-1", Some("ws-1"), Some(LATER)),
            lease("ws-2", Some("ws-2"), Some(ISSUED)),
        ]);
        assert_eq!(ins.len(), 2);
        let lease_newer = device_seen("ws-1", Some(ISSUED));
        assert_eq!(last_seen(&lease_newer, &ins), Some(t(LATER)), "lease newer");
        let status_newer = device_seen("ws-2", Some(LATER));
        assert_eq!(
            last_seen(&status_newer, &ins),
            Some(t(LATER)),
            "status newer"
        );
        let lease_only = device_seen("ws-2", None);
        assert_eq!(last_seen(&lease_only, &ins), Some(t(ISSUED)), "lease only");
        let neither = device_seen("ws-3", None);
        assert_eq!(last_seen(&neither, &ins), None, "neither");
        let status_only = device_seen("ws-3", Some(ISSUED));
        assert_eq!(
            last_seen(&status_only, &ins),
            Some(t(ISSUED)),
            "status only"
        );
        assert_eq!(
            last_seen(&status_only, CheckIns::none()),
            Some(t(ISSUED)),
            "no leases at all: lastSeen as before"
        );
    }

    #[test]
    fn only_a_lease_labelled_with_its_own_name_is_a_check_in() {
        let other = lease("ws-1", Some("ws-9"), Some(LATER));
        assert_eq!(check_in(&other), None, "labelled for another device");
        assert_eq!(
            check_in(&lease("ws-1", None, Some(LATER))),
            None,
            "no label"
        );
        assert_eq!(
            check_in(&lease("ws-1", Some("ws-1"), None)),
            None,
            "never renewed"
        );
        assert_eq!(
            check_in(&lease("ws-1", Some("ws-1"), Some(LATER))),
            Some(("ws-1", t(LATER)))
        );
        // Another device's Lease says nothing of this one.
        let ins = CheckIns::from_leases(&[other, lease("ws-2", Some("ws-2"), Some(LATER))]);
        let d = device_seen("ws-1", Some(ISSUED));
        assert_eq!(last_seen(&d, &ins), Some(t(ISSUED)));
    }

    #[test]
    fn a_lease_expires_after_its_duration() {
        let renewed = t(ISSUED);
        assert!(!lease_expired(
            renewed,
            Some(1800),
            t("2026-11-24T21:29:59Z")
        ));
        assert!(lease_expired(
            renewed,
            Some(1800),
            t("2026-11-24T21:30:00Z")
        ));
        assert!(lease_expired(renewed, Some(60), t(LATER)));
        assert!(
            !lease_expired(renewed, None, t(PAST_ANSWER_BY)),
            "no duration"
        );
    }
}
