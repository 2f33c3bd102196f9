//! Admission: which waiting devices of a ring get the patch now, under `maxConcurrent`,
//! inside a maintenance window, outside freezes, never while paused, held, blocked or
//! halted; and unstarted entries moved into the window that is open now.

use jiff::Timestamp;

use crate::api::{DeploymentRingSpec, PlanEntry, RingPhase, RingProgress};
use crate::contract;
use crate::engine::decision::{EventType, PlanList, Reason};
use crate::engine::windows::{Occurrence, Schedule, active_freeze, next_freeze_change};

use super::members::{Standing, Tallied};
use super::{Member, Pass, RingInput, freeze_message, max_concurrent, preview, set};

impl<'i, 'a> Pass<'i, 'a> {
    /// Admits devices to ring `idx` (Deploying, or Passed for late joiners) and says in
    /// `rp.waitingFor` what a deploying ring waits for.
    pub(super) fn admission(
        &mut self,
        idx: usize,
        phase: RingPhase,
        t: &Tallied,
        rp: &mut RingProgress,
    ) {
        let input = self.input;
        let ring = &input.rings[idx];
        let admitting = matches!(phase, RingPhase::Deploying | RingPhase::Passed);
        let deploying = phase == RingPhase::Deploying;
        if !admitting || (t.counts.waiting == 0 && !needs_renewal(ring, self.input.name, self.now))
        {
            if deploying && rp.waiting_for.is_none() {
                rp.waiting_for = Some(format!("{} install(s) in progress", t.counts.in_progress));
            }
            return;
        }
        let Ok((spec, schedule)) = &ring.ring else {
            return;
        };
        if let Some(why) = self.blocked(ring) {
            if deploying {
                rp.waiting_for = Some(why);
                self.out.invalid_spec |=
                    self.paused(ring.name).is_none() && !self.held && self.input.blocked.is_some();
            }
            self.wake.push(next_freeze_change(
                self.input.policy_freezes.iter().chain(ring.freezes),
                self.now,
            ));
            return;
        }
        let window = (!schedule.is_always()).then(|| schedule.open_at(self.now));
        match window {
            Some(None) => self.closed(schedule, deploying, rp),
            Some(Some(open)) => self.admit(ring, spec, Some(open), t, deploying, rp),
            None => self.admit(ring, spec, None, t, deploying, rp),
        }
    }

    /// Why no device may be admitted now, if none may.
    fn blocked(&self, ring: &RingInput<'_>) -> Option<String> {
        let input = self.input;
        if let Some(why) = self.paused(ring.name) {
            return Some(why);
        }
        if self.held {
            return Some(
                input
                    .approval
                    .reason
                    .clone()
                    .unwrap_or_else(|| "held".into()),
            );
        }
        if let Some(b) = &input.blocked {
            return Some(b.clone());
        }
        if self.any_halted || self.halted_now.is_some() {
            return Some("another ring halted".into());
        }
        freeze_message(
            self.freeze
                .or_else(|| active_freeze(ring.freezes.iter(), self.now)),
        )
    }

    /// No window is open: wait for the next.
    fn closed(&mut self, schedule: &Schedule, deploying: bool, rp: &mut RingProgress) {
        if deploying {
            rp.waiting_for = Some(match schedule.describe_next(self.now) {
                Some(when) => format!("maintenance window opens {when}"),
                None => "no maintenance window opens within a year".into(),
            });
        }
        self.wake.push(schedule.next_open_after(self.now));
    }

    /// A window is open (or the ring has none): renew unstarted entries into it and fill
    /// the free slots, earliest SLA deadline first, then by name.
    fn admit(
        &mut self,
        ring: &RingInput<'_>,
        spec: &DeploymentRingSpec,
        window: Option<Occurrence>,
        t: &Tallied,
        deploying: bool,
        rp: &mut RingProgress,
    ) {
        let (name, now) = (self.input.name, self.now);
        let not_after = window.map(|w| w.end);
        self.wake.push(not_after);
        self.renew(ring, not_after);
        let c = &t.counts;
        let limit = max_concurrent(&spec.max_concurrent, c.targeted - c.unreachable);
        let slots = limit.saturating_sub(c.in_progress) as usize;
        let candidates = candidates(ring, &t.standings, slots);
        let timeout = spec
            .attempt_timeout
            .unwrap_or(contract::DEFAULT_ATTEMPT_TIMEOUT);
        let attempt = contract::attempt_id(name, now);
        for m in &candidates {
            let entry = PlanEntry {
                rollout: name.to_string(),
                not_before: now,
                not_after,
                deadline: m.deadline(),
                attempt: Some(attempt.clone()),
                basis: Some(contract::digest(m.report())),
                answer_by: contract::answer_by(now, timeout),
            };
            self.out
                .plan
                .push(set(m.name(), PlanList::Install, &m.report().id, entry));
        }
        let admitted: Vec<&str> = candidates.iter().map(|m| m.name()).collect();
        let n = admitted.len() as u32;
        rp.in_progress += n;
        rp.waiting -= n;
        if n > 0 {
            let until = not_after
                .map(|t| format!(" (window open until {t})"))
                .unwrap_or_default();
            self.event(
                EventType::Normal,
                Reason::DevicesAdmitted,
                Some(ring.name),
                format!(
                    "admitted {n} device(s) to ring {}{until}: {}",
                    ring.name,
                    preview(&admitted)
                ),
            );
        }
        if deploying {
            rp.waiting_for = Some(if rp.waiting > 0 {
                format!(
                    "{} of {limit} installs in progress (maxConcurrent); {} device(s) waiting",
                    rp.in_progress, rp.waiting
                )
            } else {
                format!("{} install(s) in progress", rp.in_progress)
            });
        }
    }

    /// Entries whose window ended before their device started move into this one: the
    /// same attempt, in a new window.
    fn renew(&mut self, ring: &RingInput<'_>, not_after: Option<Timestamp>) {
        let (name, now) = (self.input.name, self.now);
        for m in &ring.members {
            if let Some(e) = m.install().filter(|e| e.rollout == name)
                && !m.excepted
                && contract::needs_renewal(m.report(), e, now)
            {
                let renewed = PlanEntry {
                    deadline: m.deadline(),
                    ..contract::renew(e, m.last_seen(), now, not_after)
                };
                self.out
                    .plan
                    .push(set(m.name(), PlanList::Install, &m.report().id, renewed));
            }
        }
    }
}

/// Whether an entry of this rollout in the ring waits to be moved to a new window.
fn needs_renewal(ring: &RingInput<'_>, rollout: &str, now: Timestamp) -> bool {
    ring.members.iter().any(|m| {
        m.install()
            .filter(|e| e.rollout == rollout)
            .is_some_and(|e| !m.excepted && contract::needs_renewal(m.report(), e, now))
    })
}

/// The first `slots` waiting members, earliest SLA deadline first, then by name.
fn candidates<'r, 'a>(
    ring: &'r RingInput<'a>,
    standings: &[Standing],
    slots: usize,
) -> Vec<&'r Member<'a>> {
    if slots == 0 {
        return Vec::new();
    }
    let mut candidates: Vec<&Member<'_>> = ring
        .members
        .iter()
        .zip(standings)
        .filter(|(_, s)| **s == Standing::Judged(contract::Standing::Waiting))
        .map(|(m, _)| m)
        .collect();
    let order = |a: &&Member<'_>, b: &&Member<'_>| {
        a.deadline()
            .unwrap_or(Timestamp::MAX)
            .cmp(&b.deadline().unwrap_or(Timestamp::MAX))
            .then(a.name().cmp(b.name()))
    };
    // Only the first `slots` in order matter: select them, then sort those.
    if candidates.len() > slots {
        candidates.select_nth_unstable_by(slots, order);
        candidates.truncate(slots);
    }
    candidates.sort_by(order);
    candidates
}
