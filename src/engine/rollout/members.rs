//! A ring's members as one rollout counts them: each one's standing (excepted,
//! unreachable, or as the device contract judges its report), the ring's counts, the
//! entries to release, and when a standing next changes by time alone.

use jiff::Timestamp;

use crate::api::{Duration, PatchState, PlanEntry, RingProgress};
use crate::contract;

use super::{Member, RingInput, remove, unreachable};
use crate::engine::decision::{PlanChange, PlanList};

/// How a member stands in this rollout: apart (excepted, unreachable), or as the device
/// contract judges its report against this rollout's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Standing {
    Excepted,
    Unreachable,
    Judged(contract::Standing),
}

/// `ours` is the member's install entry when it is this rollout's; `seen`, its check-in.
/// With the standing, when an entry in progress times out unless answered.
fn standing(
    m: &Member<'_>,
    ours: Option<&PlanEntry>,
    seen: Option<Timestamp>,
    unreachable_after: Duration,
    now: Timestamp,
) -> (Standing, Option<Timestamp>) {
    if m.excepted {
        return (Standing::Excepted, None);
    }
    if unreachable(seen, unreachable_after, now) {
        return (Standing::Unreachable, None);
    }
    let (judged, times_out) = contract::judge_timed(m.state, || m.report(), ours, now);
    (Standing::Judged(judged), times_out)
}

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Counts {
    pub(super) targeted: u32,
    pub(super) installed: u32,
    pub(super) failed: u32,
    pub(super) timed_out: u32,
    pub(super) in_progress: u32,
    pub(super) waiting: u32,
    pub(super) excepted: u32,
    pub(super) unreachable: u32,
    pub(super) rolled_back: u32,
}

impl Counts {
    /// The failure count for people: `3`, or `3 (2 timed out)`.
    pub(super) fn failed_words(&self) -> String {
        match self.timed_out {
            0 => self.failed.to_string(),
            n => format!("{} ({n} timed out)", self.failed),
        }
    }

    pub(super) fn finished(&self) -> u32 {
        self.installed + self.failed
    }

    pub(super) fn success_rate(&self) -> Option<f64> {
        (self.finished() > 0)
            .then(|| f64::from(self.installed) * 100.0 / f64::from(self.finished()))
    }

    pub(super) fn failure_rate(&self) -> f64 {
        self.success_rate().map_or(0.0, |s| 100.0 - s)
    }
}

/// One ring's members counted for this rollout.
pub(super) struct Tallied {
    pub(super) counts: Counts,
    /// Each member's standing, in member order.
    pub(super) standings: Vec<Standing>,
    /// When the ring's last install finished.
    pub(super) last_install: Option<Timestamp>,
    /// Entries to release: unreachable or excepted devices that have not started, and
    /// finished installs (the plan holds only what is still to do).
    pub(super) releases: Vec<PlanChange>,
    /// The first instant a member's attempt in progress times out (after now).
    pub(super) wake: Option<Timestamp>,
    /// The first instant a member counted as reachable turns unreachable (after now).
    pub(super) turns: Option<Timestamp>,
}

pub(super) fn tally(
    ring: &RingInput<'_>,
    rollout: &str,
    unreachable_after: Duration,
    old: Option<&RingProgress>,
    now: Timestamp,
) -> Tallied {
    let mut t = Tallied {
        counts: Counts::default(),
        standings: Vec::with_capacity(ring.members.len()),
        last_install: None,
        releases: Vec::new(),
        wake: None,
        turns: None,
    };
    let mut untimed = false;
    // The earliest check-in of a member that can still become unreachable: every such
    // member turns at its own `last_seen + unreachable_after`, so the first to turn is the
    // one seen first (one addition per ring instead of one per member).
    let mut earliest_seen: Option<Timestamp> = None;
    for (i, m) in ring.members.iter().enumerate() {
        if i % READ_AHEAD == 0 {
            ring.members[i..].iter().take(READ_AHEAD).for_each(touch);
        }
        let ours = m.install().filter(|e| e.rollout == rollout);
        let last_seen = m.last_seen();
        let (s, times_out) = standing(m, ours, last_seen, unreachable_after, now);
        let c = &mut t.counts;
        let release = match s {
            Standing::Excepted => {
                c.excepted += 1;
                !matches!(m.state, PatchState::Installing | PatchState::PendingReboot)
            }
            Standing::Unreachable => {
                c.targeted += 1;
                c.unreachable += 1;
                // Its unfinished assignment is released, to be given again when it returns.
                m.state != PatchState::Installed
            }
            Standing::Judged(j) => {
                t.judged(j, m, times_out, now, &mut untimed);
                j == contract::Standing::Installed
            }
        };
        if release && ours.is_some() {
            t.releases
                .push(remove(m.name(), PlanList::Install, &m.report().id));
        }
        if let (Standing::Judged(_), Some(seen)) = (s, last_seen) {
            earliest_seen = Some(earliest_seen.map_or(seen, |e| e.min(seen)));
        }
        t.standings.push(s);
    }
    if untimed {
        // An install reported without a time counts as finished when the operator first
        // saw it: now, unless the ring's count of installs has not grown since last time.
        let at = match old {
            Some(o) if o.installed >= t.counts.installed => o.last_install_at.unwrap_or(now),
            _ => now,
        };
        t.last_install = Some(t.last_install.map_or(at, |l| l.max(at)));
    }
    // After `now`: a member seen that long ago would be Unreachable already.
    t.turns = earliest_seen
        .and_then(|seen| seen.checked_add(unreachable_after.span()).ok())
        .filter(|t| *t > now);
    t
}

/// How many members [`tally`] reads ahead.
const READ_AHEAD: usize = 32;

/// Reads what judging a member with an install entry reads first, far from the member:
/// the entry's rollout name and times, and the report. In a loop of nothing else, those
/// reads wait on memory together. (A member whose entry is not at hand, or that has
/// none, is left alone: most members of a large ring have none.)
fn touch(m: &Member<'_>) {
    if let Some(e) = m.install_entry {
        std::hint::black_box((e.rollout.as_bytes().first().copied(), e.answer_by));
        std::hint::black_box(m.report().attempt.as_ref().map(String::len));
    }
}

impl Tallied {
    /// Counts a member as the device contract judged it (`times_out`: when its entry in
    /// progress times out).
    fn judged(
        &mut self,
        j: contract::Standing,
        m: &Member<'_>,
        times_out: Option<Timestamp>,
        now: Timestamp,
        untimed: &mut bool,
    ) {
        let c = &mut self.counts;
        c.targeted += 1;
        match j {
            contract::Standing::Installed => {
                c.installed += 1;
                match contract::install_time(m.installed_at(), now) {
                    Some(at) => {
                        self.last_install = Some(self.last_install.map_or(at, |l| l.max(at)));
                    }
                    None => *untimed = true,
                }
            }
            contract::Standing::Failed(why) => {
                c.failed += 1;
                if why == contract::FailReason::TimedOut {
                    c.timed_out += 1;
                }
            }
            contract::Standing::InProgress => {
                c.in_progress += 1;
                self.sooner(times_out, now);
            }
            contract::Standing::Waiting => c.waiting += 1,
            contract::Standing::RolledBack => c.rolled_back += 1,
        }
    }

    /// Keeps the earlier of the wake-up so far and `t`, if `t` is after `now`.
    fn sooner(&mut self, t: Option<Timestamp>, now: Timestamp) {
        if let Some(t) = t.filter(|t| *t > now) {
            self.wake = Some(self.wake.map_or(t, |w| w.min(t)));
        }
    }
}
