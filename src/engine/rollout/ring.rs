//! One ring of one rollout, decided once per pass: the ring's state machine.
//!
//! A ring's phase moves by this table (each row checked in order, several rows may fire
//! in one pass: a ring whose last device finished can soak out and pass at once):
//!
//! | from | when | to |
//! | --- | --- | --- |
//! | Passed | always (late joiners are still admitted) | Passed |
//! | Halted | `spec.promote` names the ring | Passed |
//! | Halted | otherwise | Halted |
//! | any other | the ring before it has not passed | Pending |
//! | any other | the ring is missing or invalid | Pending |
//! | any other | otherwise | Deploying |
//! | Deploying | the halt rule fires, or failures exceed `maxFailures` | Halted |
//! | Deploying | no reachable targeted device and none in progress | Passed |
//! | Deploying | every reachable targeted device has finished | Soaking |
//! | Soaking | the success-rate or max-failures gate fails | Halted |
//! | Soaking | paused (the rollout or this ring) or held | Soaking |
//! | Soaking | soak over and (if required) promoted by a person | Passed |
//! | Soaking | promoted by a person (`spec.promote`) before the soak is over | Passed |
//! | Deploying, Soaking | the rollout or this ring is paused | Paused (shown; re-judged next pass) |
//!
//! The rollout-level phases that stop every ring (Aborted, RollingBack, RolledBack) are
//! decided in [`super::finish`].

use jiff::Timestamp;

use crate::api::{DeploymentRingSpec, Duration, GateResult, RingPhase, RingProgress, RolloutPhase};

use super::members::{Counts, Tallied, tally};
use super::{Halt, Pass, earlier, unreachable_after, whole_seconds};
use crate::engine::decision::{EventType, Reason};

impl<'i, 'a> Pass<'i, 'a> {
    /// Decides ring `idx`: counts its members, moves its phase and admits devices.
    pub(super) fn ring(&mut self, idx: usize, previous_passed: bool) -> RingProgress {
        let input = self.input;
        let ring = &input.rings[idx];
        let old = self.old_ring(ring.name);
        let spec = ring.ring.as_ref().ok().map(|(spec, _)| *spec);
        let unreachable_after = unreachable_after(spec);
        let mut t = tally(ring, self.input.name, unreachable_after, old, self.now);
        self.out.plan.append(&mut t.releases);
        self.wake.push(t.wake);
        self.turns = earlier(self.turns, t.turns);
        let mut rp = progress(ring.name, old, &t);
        if self.stopped() {
            // Rollback and abort are handled after the rings; their phases stay.
            return rp;
        }
        let old_phase = old.map_or(RingPhase::Pending, |r| r.phase);
        let mut phase = self.enter(idx, old_phase, previous_passed, &mut rp);
        if let (RingPhase::Deploying, Some(spec)) = (phase, spec) {
            phase = self.deploying(idx, spec, &t.counts, old, &mut rp);
        }
        if let (RingPhase::Soaking, Some(spec)) = (phase, spec) {
            phase = self.soaking(idx, spec, &t, &mut rp);
        }
        if phase == RingPhase::Halted {
            self.halted(idx, old_phase, old, &mut rp);
        }
        self.admission(idx, phase, &t, &mut rp);
        rp.phase = self.settle(phase, old_phase, &mut rp);
        self.ring_pause_events(old_phase, rp.phase, &rp.name);
        rp
    }

    /// A person paused or resumed this ring alone (`spec.pausedRings`): the whole
    /// rollout's pause and resumption have their own Events.
    fn ring_pause_events(&mut self, old: RingPhase, new: RingPhase, name: &str) {
        let ring_alone = |pass: &Self| {
            !pass.input.spec.paused
                && pass.input.old.and_then(|s| s.phase) != Some(RolloutPhase::Paused)
        };
        if new == RingPhase::Paused && old != RingPhase::Paused && ring_alone(self) {
            let message = format!("ring {name} paused by {} (spec.pausedRings)", self.person());
            self.event(EventType::Normal, Reason::RingPaused, Some(name), message);
        } else if old == RingPhase::Paused && new != RingPhase::Paused && ring_alone(self) {
            let message = format!("ring {name} resumed by {}", self.person());
            self.event(EventType::Normal, Reason::RingResumed, Some(name), message);
        }
    }

    /// The first rows of the table: where the ring starts this pass.
    fn enter(
        &mut self,
        idx: usize,
        old: RingPhase,
        previous_passed: bool,
        rp: &mut RingProgress,
    ) -> RingPhase {
        let input = self.input;
        let ring = &input.rings[idx];
        let promoted = self.promoted(ring.name);
        let phase = match old {
            RingPhase::Passed => RingPhase::Passed,
            RingPhase::Halted if promoted => {
                self.event(
                    EventType::Normal,
                    Reason::RingPromoted,
                    Some(ring.name),
                    format!(
                        "ring {} promoted by {} despite its halt",
                        ring.name,
                        self.person()
                    ),
                );
                rp.passed_at = Some(self.now);
                RingPhase::Passed
            }
            RingPhase::Halted => RingPhase::Halted,
            _ if !previous_passed => RingPhase::Pending,
            _ => match &ring.ring {
                Ok(_) => RingPhase::Deploying,
                Err(problem) => {
                    rp.waiting_for = Some(problem.clone());
                    self.out.invalid_spec = true;
                    RingPhase::Pending
                }
            },
        };
        if phase == RingPhase::Pending && rp.waiting_for.is_none() {
            rp.waiting_for = Some(match idx.checked_sub(1).map(|i| &self.input.rings[i]) {
                Some(prev) => format!("waiting for ring {} to pass", prev.name),
                None => "waiting".into(),
            });
        }
        phase
    }

    /// Deploying: started, then halted, passed (nothing to do) or soaking.
    fn deploying(
        &mut self,
        idx: usize,
        spec: &DeploymentRingSpec,
        c: &Counts,
        old: Option<&RingProgress>,
        rp: &mut RingProgress,
    ) -> RingPhase {
        let input = self.input;
        let name = input.rings[idx].name;
        if rp.started_at.is_none() {
            rp.started_at = Some(self.now);
        }
        let reachable = c.targeted - c.unreachable;
        if old.and_then(|o| o.started_at).is_none() && reachable > 0 {
            self.event(
                EventType::Normal,
                Reason::RingStarted,
                Some(name),
                format!("ring {name} started: {} devices targeted", c.targeted),
            );
        }
        if let Some(reason) = halt_reason(spec, c) {
            let on_failure = spec.halt.as_ref().map(|h| h.on_failure).unwrap_or_default();
            self.halted_now = Some(Halt {
                ring: idx,
                on_failure,
                reason,
            });
            return RingPhase::Halted;
        }
        if reachable == 0 && c.in_progress == 0 {
            rp.passed_at = Some(self.now);
            rp.waiting_for = None;
            self.event(
                EventType::Normal,
                Reason::RingPassed,
                Some(name),
                format!("ring {name} passed: no targeted devices"),
            );
            return RingPhase::Passed;
        }
        if c.waiting == 0 && c.in_progress == 0 {
            return RingPhase::Soaking;
        }
        RingPhase::Deploying
    }

    /// Soaking: the promotion gates, then halted, passed or still soaking.
    fn soaking(
        &mut self,
        idx: usize,
        spec: &DeploymentRingSpec,
        t: &Tallied,
        rp: &mut RingProgress,
    ) -> RingPhase {
        let input = self.input;
        let name = input.rings[idx].name;
        let g = Gates::judge(self, spec, t, rp.started_at, self.promoted(name));
        if !g.soak_ok {
            // Even while held or paused: the soak gate's status changes then.
            self.wake.push(Some(g.soak_end));
        }
        rp.gates = g.results(name, &t.counts, spec);
        if !g.rate_ok || !g.fail_ok {
            let failing: Vec<&str> = rp
                .gates
                .iter()
                .filter(|g| !g.passed && g.name != "soak" && g.name != "manualApproval")
                .map(|g| g.message.as_str())
                .collect();
            self.halted_now = Some(Halt {
                ring: idx,
                on_failure: spec.halt.as_ref().map(|h| h.on_failure).unwrap_or_default(),
                reason: format!("promotion gate failed: {}", failing.join("; ")),
            });
            return RingPhase::Halted;
        }
        if self.paused(name).is_some() || self.held {
            // Held or paused rollouts (and paused rings) do not promote.
            return RingPhase::Soaking;
        }
        if g.soak_ok && g.manual_ok && !g.soak_over {
            rp.passed_at = Some(self.now);
            let c = &t.counts;
            let message = format!(
                "ring {name} promoted by {} before its {} of {} ended: {}/{} installed, {} failed",
                self.person(),
                g.label,
                g.soak,
                c.installed,
                c.targeted - c.unreachable,
                c.failed,
            );
            self.event(EventType::Normal, Reason::RingPromoted, Some(name), message);
            return RingPhase::Passed;
        }
        if g.soak_ok && g.manual_ok {
            rp.passed_at = Some(self.now);
            let c = &t.counts;
            self.event(
                EventType::Normal,
                Reason::RingPassed,
                Some(name),
                format!(
                    "ring {name} passed: {}/{} installed, {} failed, {} of {} done",
                    c.installed,
                    c.targeted - c.unreachable,
                    c.failed,
                    g.label,
                    g.soak
                ),
            );
            return RingPhase::Passed;
        }
        rp.waiting_for = Some(if !g.soak_ok {
            format!("{} ends at {}", g.label, whole_seconds(g.soak_end))
        } else {
            format!("waiting for manual promotion: add {name} to spec.promote")
        });
        RingPhase::Soaking
    }

    /// Halted: when, and why in words.
    fn halted(
        &mut self,
        idx: usize,
        old_phase: RingPhase,
        old: Option<&RingProgress>,
        rp: &mut RingProgress,
    ) {
        self.any_halted = true;
        if old_phase != RingPhase::Halted {
            rp.halted_at = Some(self.now);
        }
        if let Some(h) = self.halted_now.as_ref().filter(|h| h.ring == idx) {
            rp.waiting_for = Some(format!("halted: {}", h.reason));
        }
        if rp.waiting_for.is_none() {
            rp.waiting_for = old
                .and_then(|o| o.waiting_for.clone())
                .or(Some("halted".into()));
        }
    }

    /// The last rows of the table: the paused overlay, and what the status says.
    fn settle(&self, phase: RingPhase, old_phase: RingPhase, rp: &mut RingProgress) -> RingPhase {
        let mut phase = phase;
        if phase == RingPhase::Passed && old_phase != RingPhase::Passed {
            rp.waiting_for = None;
        }
        if matches!(phase, RingPhase::Deploying | RingPhase::Soaking)
            && let Some(why) = self.paused(&rp.name)
        {
            phase = RingPhase::Paused;
            rp.waiting_for = Some(why);
        }
        if phase == RingPhase::Passed && rp.waiting > 0 && rp.waiting_for.is_none() {
            rp.waiting_for = Some(format!("{} late joiner(s) waiting", rp.waiting));
        }
        if phase != RingPhase::Passed && phase != RingPhase::Halted {
            rp.passed_at = None;
        }
        phase
    }

    fn promoted(&self, ring: &str) -> bool {
        self.input.spec.promote.iter().any(|p| p == ring)
    }
}

/// The ring's progress before its phase moves: this pass's counts, the old timestamps.
fn progress(name: &str, old: Option<&RingProgress>, t: &Tallied) -> RingProgress {
    let c = &t.counts;
    RingProgress {
        name: name.to_string(),
        phase: old.map_or(RingPhase::Pending, |r| r.phase),
        targeted: c.targeted,
        installed: c.installed,
        failed: c.failed,
        timed_out: c.timed_out,
        in_progress: c.in_progress,
        waiting: c.waiting,
        excepted: c.excepted,
        unreachable: c.unreachable,
        rolled_back: c.rolled_back,
        started_at: old.and_then(|r| r.started_at),
        last_install_at: t.last_install,
        passed_at: old.and_then(|r| r.passed_at),
        halted_at: old.and_then(|r| r.halted_at),
        waiting_for: None,
        gates: Vec::new(),
    }
}

/// Why a deploying ring halts, if it does: the halt rule's failure rate over enough
/// finished attempts, or more failures than `promotion.maxFailures`.
fn halt_reason(spec: &DeploymentRingSpec, c: &Counts) -> Option<String> {
    let rate = spec
        .halt
        .as_ref()
        .filter(|h| c.finished() >= h.min_samples && c.failure_rate() > h.failure_rate);
    if let Some(h) = rate {
        return Some(format!(
            "{} of {} finished installs failed ({:.1}% > halt.failureRate {}%)",
            c.failed_words(),
            c.finished(),
            c.failure_rate(),
            h.failure_rate
        ));
    }
    let max = spec.promotion.max_failures?;
    (c.failed > max).then(|| {
        format!(
            "{} failed installs exceed promotion.maxFailures {max}",
            c.failed_words()
        )
    })
}

/// The promotion gates of a soaking ring.
struct Gates {
    soak: Duration,
    soak_end: Timestamp,
    label: &'static str,
    /// The soak has run its course.
    soak_over: bool,
    /// The soak gate is passed: over, or skipped by a person's promotion.
    soak_ok: bool,
    rate: Option<f64>,
    rate_ok: bool,
    fail_ok: bool,
    manual_ok: bool,
}

impl Gates {
    fn judge(
        pass: &Pass<'_, '_>,
        spec: &DeploymentRingSpec,
        t: &Tallied,
        started_at: Option<Timestamp>,
        promoted: bool,
    ) -> Self {
        let promo = &spec.promotion;
        let emergency = pass.input.approval.emergency;
        let soak = if emergency {
            promo.emergency_soak.or(promo.soak)
        } else {
            promo.soak
        }
        .unwrap_or(Duration::from_secs(0));
        let now = pass.now;
        let basis = t.last_install.or(started_at).unwrap_or(now);
        let soak_end = basis.checked_add(soak.span()).unwrap_or(basis);
        let rate = t.counts.success_rate();
        Self {
            soak,
            soak_end,
            label: if emergency && promo.emergency_soak.is_some() {
                "emergency soak"
            } else {
                "soak"
            },
            soak_over: now >= soak_end,
            // A person's promotion skips what is left of the soak.
            soak_ok: now >= soak_end || promoted,
            rate,
            rate_ok: rate.is_none_or(|r| r >= promo.min_success_rate),
            fail_ok: promo.max_failures.is_none_or(|m| t.counts.failed <= m),
            manual_ok: !promo.require_manual_approval || promoted,
        }
    }

    /// The gates as the status shows them.
    fn results(&self, ring: &str, c: &Counts, spec: &DeploymentRingSpec) -> Vec<GateResult> {
        let promo = &spec.promotion;
        let (label, soak, end) = (self.label, self.soak, whole_seconds(self.soak_end));
        let mut gates = vec![
            GateResult {
                name: "soak".into(),
                passed: self.soak_ok,
                message: if self.soak_over {
                    format!("{label} of {soak} done at {end}")
                } else if self.soak_ok {
                    format!("{label} of {soak} skipped by a person (spec.promote)")
                } else {
                    format!("{label} of {soak} ends at {end}")
                },
            },
            GateResult {
                name: "successRate".into(),
                passed: self.rate_ok,
                message: match self.rate {
                    Some(r) => format!(
                        "{}/{} succeeded ({r:.1}%, needs {}%)",
                        c.installed,
                        c.finished(),
                        promo.min_success_rate
                    ),
                    None => "no finished installs".into(),
                },
            },
        ];
        if let Some(m) = promo.max_failures {
            gates.push(GateResult {
                name: "maxFailures".into(),
                passed: self.fail_ok,
                message: format!("{} failed, at most {m} allowed", c.failed_words()),
            });
        }
        if promo.require_manual_approval {
            gates.push(GateResult {
                name: "manualApproval".into(),
                passed: self.manual_ok,
                message: if self.manual_ok {
                    "promoted by a person".into()
                } else {
                    format!("waiting for a person: add {ring} to spec.promote")
                },
            });
        }
        gates
    }
}
