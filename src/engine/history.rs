//! The durable history statuses keep: which transitions are audit-worthy, and how an
//! entry joins a history.
//!
//! Events expire; an auditor reads statuses. The rule is one: an Event the engine makes
//! about a rollout (or about a rollout's creation) or an exception, whose reason is
//! [`audited`], also appends an entry to that object's new `status.history`, at the
//! pass's `now`, with the Event's reason and message, after the stored history (which is
//! otherwise carried over unchanged). The engine makes those Events in two places, each
//! of which calls [`record_rollout`] or [`record_exception`] with the Event it makes:
//! `rollout::Pass::emit` and `tenant::status::exception_events`.
//!
//! Because Events come only from transitions, a pass over an unchanged world appends
//! nothing, and its statuses equal the stored ones.

use jiff::Timestamp;

use crate::api::{
    ExceptionHistoryEntry, ExceptionPhase, HISTORY_LIMIT, Reason, RolloutHistoryEntry,
};

use super::decision::Event;

/// Whether a transition announced with `reason` is kept in its object's status history.
/// Admissions are too frequent (each device's attempt is on the device), reminders leave
/// the phase as it is (`status.lastReminder` keeps the last), and policies and rings keep
/// no history.
pub fn audited(reason: Reason) -> bool {
    match reason {
        Reason::PatchApproved
        | Reason::PatchHeld
        | Reason::RingStarted
        | Reason::RingPassed
        | Reason::RingPromoted
        | Reason::RingHalted
        | Reason::RolloutAborted
        | Reason::RollbackStarted
        | Reason::RolledBack
        | Reason::RolloutCompleted
        | Reason::RolloutPaused
        | Reason::RolloutResumed
        | Reason::RingPaused
        | Reason::RingResumed
        | Reason::ExceptionActive
        | Reason::ExceptionPendingApproval
        | Reason::ExceptionExpired
        | Reason::ExceptionInvalid => true,
        Reason::DevicesAdmitted
        | Reason::ExceptionExpiring
        | Reason::SLABreached
        | Reason::PolicyConflict
        | Reason::FreezeStarted
        | Reason::FreezeEnded => false,
    }
}

/// Appends `event`'s entry to a rollout's history when it is [`audited`]; `ring` names
/// the ring of a ring's transition.
pub fn record_rollout(
    history: &mut Vec<RolloutHistoryEntry>,
    now: Timestamp,
    event: &Event,
    ring: Option<&str>,
) {
    if audited(event.reason) {
        append(
            history,
            RolloutHistoryEntry {
                at: now,
                reason: event.reason,
                ring: ring.map(str::to_string),
                message: event.message.clone(),
            },
        );
    }
}

/// Appends `event`'s entry to an exception's history when it is [`audited`]; `phase` is
/// the phase the exception is in after the transition.
pub fn record_exception(
    history: &mut Vec<ExceptionHistoryEntry>,
    now: Timestamp,
    event: &Event,
    phase: ExceptionPhase,
) {
    if audited(event.reason) {
        append(
            history,
            ExceptionHistoryEntry {
                at: now,
                reason: event.reason,
                phase,
                message: event.message.clone(),
            },
        );
    }
}

/// Appends `entry`, then keeps the history within [`HISTORY_LIMIT`] by dropping the
/// oldest entries after the first (the first, how the story began, is always kept).
pub fn append<E>(history: &mut Vec<E>, entry: E) {
    history.push(entry);
    let over = history.len().saturating_sub(HISTORY_LIMIT.max(1));
    if over > 0 {
        history.drain(1..=over);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_history_drops_its_oldest_entries_but_never_the_first() {
        let mut h: Vec<usize> = (0..HISTORY_LIMIT).collect();
        append(&mut h, HISTORY_LIMIT);
        assert_eq!(h.len(), HISTORY_LIMIT);
        assert_eq!(&h[..3], &[0, 2, 3], "the first kept, the second dropped");
        assert_eq!(h.last(), Some(&HISTORY_LIMIT));

        // A stored history already over the limit (written by hand) is cut back to it.
        let mut h: Vec<usize> = (0..HISTORY_LIMIT + 5).collect();
        append(&mut h, 999);
        assert_eq!(h.len(), HISTORY_LIMIT);
        assert_eq!(&h[..2], &[0, 7]);
        assert_eq!(h.last(), Some(&999));
    }

    #[test]
    fn a_short_history_only_grows() {
        let mut h = vec![1, 2];
        append(&mut h, 3);
        assert_eq!(h, vec![1, 2, 3]);
    }
}
