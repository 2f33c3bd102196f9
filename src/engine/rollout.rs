//! The per-ring rollout state machine: admission under maxConcurrent, windows, freezes
//! and exceptions; soak and gates; halt with Pause, Abort or Rollback; manual levers.
//!
//! The function here is pure: it reads the rollout's previous status and the devices of
//! the policy that report the patch, and returns the new status, the plan changes, the
//! Events and the next instant it needs to run again.

use jiff::Timestamp;

use crate::api::{
    ApprovalRecord, ApprovalState, DeploymentRingSpec, DevicePatchStatus, Duration, Freeze,
    GateResult, ManagedDevice, OnFailure, PatchRolloutSpec, PatchRolloutStatus, PatchState,
    PlanEntry, RingPhase, RingProgress, RolloutPhase,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::contract;

use super::decision::{Event, EventType, Kind, PlanChange, PlanList, Reason};
use super::windows::{Schedule, active_freeze, next_freeze_change};

/// Devices not seen for this long are Unreachable unless the ring says otherwise.
pub const DEFAULT_UNREACHABLE_AFTER: Duration = Duration::hours(72);

/// One device of the policy that reports the patch, as the rollout sees it.
#[derive(Clone, Debug)]
pub struct Member<'a> {
    /// The device (its name is read only where a decision names it).
    pub device: &'a ManagedDevice,
    /// Its report for this patch.
    pub report: &'a DevicePatchStatus,
    /// The report's state (`report.state`, copied where the caller has it at hand: a
    /// rollout reads every member's, and most need nothing else of the report).
    pub state: PatchState,
    /// The report's install time (`report.installed_at`, likewise).
    pub installed_at: Option<Timestamp>,
    /// Its plan's install entry for this patch, if any.
    pub install: Option<&'a PlanEntry>,
    /// Its plan's uninstall entry for this patch, if any.
    pub uninstall: Option<&'a PlanEntry>,
    /// When its agent last checked in.
    pub last_seen: Option<Timestamp>,
    /// An exception keeps it from being assigned this patch.
    pub excepted: bool,
    /// Its SLA deadline for this patch.
    pub deadline: Option<Timestamp>,
}

impl<'a> Member<'a> {
    /// The device name.
    pub fn name(&self) -> &'a str {
        self.device.metadata.name.as_deref().unwrap_or("")
    }
}

/// A ring of the policy, with its members for this patch.
#[derive(Clone, Debug)]
pub struct RingInput<'a> {
    /// The ring's name.
    pub name: &'a str,
    /// Its spec and compiled windows, or why it cannot be used.
    pub ring: Result<(&'a DeploymentRingSpec, &'a Schedule), String>,
    /// Its members that report the patch.
    pub members: Vec<Member<'a>>,
}

/// Everything one rollout decision reads.
#[derive(Clone, Debug)]
pub struct RolloutInput<'a> {
    /// The rollout's name.
    pub name: &'a str,
    /// Its spec (the levers).
    pub spec: &'a PatchRolloutSpec,
    /// Its status as last written (None for a new rollout).
    pub old: Option<&'a PatchRolloutStatus>,
    /// The approval as of now: state `Approved`, `Held` or `Rejected`.
    pub approval: ApprovalRecord,
    /// The patch can be uninstalled.
    pub uninstallable: bool,
    /// The policy's freezes.
    pub policy_freezes: &'a [Freeze],
    /// The policy's rings, in order.
    pub rings: Vec<RingInput<'a>>,
    /// Why the policy cannot drive rollouts now (a missing ring, a conflict…), if so.
    pub blocked: Option<String>,
}

/// What one rollout decision produces.
#[derive(Clone, Debug, Default)]
pub struct RolloutOutcome {
    /// The new status.
    pub status: PatchRolloutStatus,
    /// Plan changes.
    pub plan: Vec<PlanChange>,
    /// Events.
    pub events: Vec<Event>,
    /// The earliest instant after now at which this rollout must be decided again.
    pub wake: Option<Timestamp>,
    /// A ring cannot deploy because a spec is unusable (a ring missing or invalid, or the
    /// policy blocked): the rollout is Stalled until a person fixes it.
    pub invalid_spec: bool,
}

/// How a member stands in this rollout: apart (excepted, unreachable), or as the device
/// contract judges its report against this rollout's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    Excepted,
    Unreachable,
    Judged(contract::Standing),
}

fn standing(
    m: &Member<'_>,
    rollout: &str,
    unreachable_after: Duration,
    now: Timestamp,
) -> Standing {
    if m.excepted {
        return Standing::Excepted;
    }
    let seen_recently = m
        .last_seen
        .is_none_or(|seen| now.duration_since(seen) < unreachable_after.span());
    if !seen_recently {
        return Standing::Unreachable;
    }
    Standing::Judged(contract::judge_state(
        m.state,
        m.report,
        m.install.filter(|e| e.rollout == rollout),
        now,
    ))
}

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    targeted: u32,
    installed: u32,
    failed: u32,
    timed_out: u32,
    in_progress: u32,
    waiting: u32,
    excepted: u32,
    unreachable: u32,
    rolled_back: u32,
}

impl Counts {
    /// The failure count for people: `3`, or `3 (2 timed out)`.
    fn failed_words(&self) -> String {
        match self.timed_out {
            0 => self.failed.to_string(),
            n => format!("{} ({n} timed out)", self.failed),
        }
    }

    fn finished(&self) -> u32 {
        self.installed + self.failed
    }

    fn success_rate(&self) -> Option<f64> {
        (self.finished() > 0)
            .then(|| f64::from(self.installed) * 100.0 / f64::from(self.finished()))
    }

    fn failure_rate(&self) -> f64 {
        self.success_rate().map_or(0.0, |s| 100.0 - s)
    }
}

/// One ring's members counted for this rollout.
struct Tallied {
    counts: Counts,
    /// Each member's standing, in member order.
    standings: Vec<Standing>,
    /// When the ring's last install finished.
    last_install: Option<Timestamp>,
    /// Entries to release: unreachable or excepted devices that have not started, and
    /// finished installs (the plan holds only what is still to do).
    releases: Vec<PlanChange>,
    /// The first instant a member's standing changes by time alone: it becomes
    /// unreachable, or its attempt times out.
    wake: Option<Timestamp>,
}

fn tally(
    ring: &RingInput<'_>,
    rollout: &str,
    unreachable_after: Duration,
    old: Option<&RingProgress>,
    now: Timestamp,
) -> Tallied {
    let mut c = Counts::default();
    let mut standings = Vec::with_capacity(ring.members.len());
    let mut releases = Vec::new();
    let mut last_install: Option<Timestamp> = None;
    let mut untimed = false;
    let mut wake: Option<Timestamp> = None;
    let mut sooner = |t: Option<Timestamp>| {
        if let Some(t) = t.filter(|t| *t > now) {
            wake = Some(wake.map_or(t, |w| w.min(t)));
        }
    };
    // The earliest check-in of a member that can still become unreachable: every such
    // member turns at its own `last_seen + unreachable_after`, so the first to turn is the
    // one seen first (one addition per ring instead of one per member).
    let mut earliest_seen: Option<Timestamp> = None;
    for m in &ring.members {
        let s = standing(m, rollout, unreachable_after, now);
        let ours = m.install.filter(|e| e.rollout == rollout);
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
                c.targeted += 1;
                match j {
                    contract::Standing::Installed => {
                        c.installed += 1;
                        match m.installed_at {
                            Some(at) => {
                                let at = at.min(now);
                                last_install = Some(last_install.map_or(at, |l| l.max(at)));
                            }
                            None => untimed = true,
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
                        sooner(ours.and_then(contract::times_out_at));
                    }
                    contract::Standing::Waiting => c.waiting += 1,
                    contract::Standing::RolledBack => c.rolled_back += 1,
                }
                j == contract::Standing::Installed
            }
        };
        if release && ours.is_some() {
            releases.push(remove(m.name(), PlanList::Install, &m.report.id));
        }
        if let (Standing::Judged(_), Some(seen)) = (s, m.last_seen) {
            earliest_seen = Some(earliest_seen.map_or(seen, |e| e.min(seen)));
        }
        standings.push(s);
    }
    if untimed {
        // An install reported without a time counts as finished when the operator first
        // saw it: now, unless the ring's count of installs has not grown since last time.
        let at = match old {
            Some(o) if o.installed >= c.installed => o.last_install_at.unwrap_or(now),
            _ => now,
        };
        last_install = Some(last_install.map_or(at, |l| l.max(at)));
    }
    // After `now`: a member seen that long ago would be Unreachable already.
    sooner(earliest_seen.and_then(|seen| seen.checked_add(unreachable_after.span()).ok()));
    Tallied {
        counts: c,
        standings,
        last_install,
        releases,
        wake,
    }
}

/// The number of installs a ring allows in progress at once.
pub fn max_concurrent(value: &IntOrString, targeted: u32) -> u32 {
    match value {
        IntOrString::Int(n) => u32::try_from(*n).unwrap_or(0).max(1),
        IntOrString::String(s) => match s.strip_suffix('%') {
            Some(p) => {
                let pct: u64 = p.trim().parse().unwrap_or(100).min(100);
                let n = (u64::from(targeted) * pct).div_ceil(100);
                u32::try_from(n).unwrap_or(u32::MAX).max(1)
            }
            None => s.trim().parse::<u32>().unwrap_or(1).max(1),
        },
    }
}

fn is_terminal(phase: Option<RolloutPhase>) -> bool {
    matches!(
        phase,
        Some(RolloutPhase::Aborted | RolloutPhase::RolledBack)
    )
}

/// Decides one rollout at `now`.
pub fn decide(input: &RolloutInput<'_>, now: Timestamp) -> RolloutOutcome {
    let mut out = RolloutOutcome::default();
    let name = input.name;
    let old_phase = input.old.and_then(|s| s.phase);
    let old_ring = |ring: &str| {
        input
            .old
            .and_then(|s| s.rings.iter().find(|r| r.name == ring))
    };
    let event = |type_, reason, message: String| Event {
        kind: Kind::PatchRollout,
        name: name.to_string(),
        type_,
        reason,
        message,
    };

    let mut wake: Vec<Option<Timestamp>> = Vec::new();
    let held = input.approval.state == ApprovalState::Held;
    let rejected = input.approval.state == ApprovalState::Rejected;

    // Terminal or lever-driven states first.
    let aborting = !is_terminal(old_phase) && (input.spec.abort || rejected);
    let old_rolling_back = matches!(
        old_phase,
        Some(RolloutPhase::RollingBack | RolloutPhase::RolledBack)
    );

    // Per-ring evaluation.
    let mut rings_out: Vec<RingProgress> = Vec::with_capacity(input.rings.len());
    let mut prev_passed = true;
    let mut halted_now: Option<(usize, OnFailure, String)> = None;
    let mut any_halted = false;
    let emergency = input.approval.emergency;
    let freeze_policy = active_freeze(input.policy_freezes.iter(), now);

    for (idx, ring) in input.rings.iter().enumerate() {
        let old = old_ring(ring.name);
        let old_rphase = old.map(|r| r.phase).unwrap_or(RingPhase::Pending);
        let (spec, schedule) = match &ring.ring {
            Ok((spec, schedule)) => (Some(*spec), Some(*schedule)),
            Err(_) => (None, None),
        };
        let unreachable_after = spec
            .and_then(|s| s.unreachable_after)
            .unwrap_or(DEFAULT_UNREACHABLE_AFTER);

        let t = tally(ring, name, unreachable_after, old, now);
        out.plan.extend(t.releases);
        wake.push(t.wake);
        let (c, standings, last_install) = (t.counts, t.standings, t.last_install);
        let reachable_targeted = c.targeted - c.unreachable;

        let mut rp = RingProgress {
            name: ring.name.to_string(),
            phase: old_rphase,
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
            last_install_at: last_install,
            passed_at: old.and_then(|r| r.passed_at),
            halted_at: old.and_then(|r| r.halted_at),
            waiting_for: None,
            gates: Vec::new(),
        };

        // Rollback and abort are handled after the loop; keep ring phases as they were.
        if old_rolling_back || is_terminal(old_phase) || aborting {
            rings_out.push(rp);
            prev_passed = false;
            continue;
        }

        let promoted = input.spec.promote.iter().any(|p| p == ring.name);
        let mut phase = match old_rphase {
            RingPhase::Passed => RingPhase::Passed,
            RingPhase::Halted if promoted => {
                out.events.push(event(
                    EventType::Normal,
                    Reason::RingPromoted,
                    format!("ring {} promoted by a person despite its halt", ring.name),
                ));
                rp.passed_at = Some(now);
                RingPhase::Passed
            }
            RingPhase::Halted => RingPhase::Halted,
            _ if !prev_passed => RingPhase::Pending,
            _ => RingPhase::Deploying,
        };

        if phase == RingPhase::Deploying && spec.is_none() {
            rp.waiting_for = ring.ring.as_ref().err().cloned();
            out.invalid_spec = true;
            phase = RingPhase::Pending;
        }
        if phase == RingPhase::Pending && rp.waiting_for.is_none() {
            rp.waiting_for = Some(match input.rings.get(idx.wrapping_sub(1)) {
                Some(prev) if idx > 0 => format!("waiting for ring {} to pass", prev.name),
                _ => "waiting".into(),
            });
        }

        if let (RingPhase::Deploying, Some(spec)) = (phase, spec) {
            if rp.started_at.is_none() {
                rp.started_at = Some(now);
            }
            if old.and_then(|o| o.started_at).is_none() && reachable_targeted > 0 {
                out.events.push(event(
                    EventType::Normal,
                    Reason::RingStarted,
                    format!(
                        "ring {} started: {} devices targeted",
                        ring.name, c.targeted
                    ),
                ));
            }
            let halt = spec.halt.as_ref();
            let rate_halt =
                halt.filter(|h| c.finished() >= h.min_samples && c.failure_rate() > h.failure_rate);
            let max_fail_halt = spec.promotion.max_failures.is_some_and(|m| c.failed > m);
            if rate_halt.is_some() || max_fail_halt {
                let reason = if let Some(h) = rate_halt {
                    format!(
                        "{} of {} finished installs failed ({:.1}% > halt.failureRate {}%)",
                        c.failed_words(),
                        c.finished(),
                        c.failure_rate(),
                        h.failure_rate
                    )
                } else {
                    format!(
                        "{} failed installs exceed promotion.maxFailures {}",
                        c.failed_words(),
                        spec.promotion.max_failures.unwrap_or(0)
                    )
                };
                phase = RingPhase::Halted;
                halted_now = Some((idx, halt.map(|h| h.on_failure).unwrap_or_default(), reason));
            } else if reachable_targeted == 0 && c.in_progress == 0 {
                phase = RingPhase::Passed;
                rp.passed_at = Some(now);
                rp.waiting_for = None;
                out.events.push(event(
                    EventType::Normal,
                    Reason::RingPassed,
                    format!("ring {} passed: no targeted devices", ring.name),
                ));
            } else if c.waiting == 0 && c.in_progress == 0 {
                phase = RingPhase::Soaking;
            }
        }

        if let (RingPhase::Soaking, Some(spec)) = (phase, spec) {
            let promo = &spec.promotion;
            let soak = if emergency {
                promo.emergency_soak.or(promo.soak)
            } else {
                promo.soak
            }
            .unwrap_or(Duration::from_secs(0));
            let basis = last_install.or(rp.started_at).unwrap_or(now);
            let soak_end = basis.checked_add(soak.span()).unwrap_or(basis);
            let soak_ok = now >= soak_end;
            if !soak_ok {
                // Even while held or paused: the soak gate's status changes then.
                wake.push(Some(soak_end));
            }
            let rate = c.success_rate();
            let rate_ok = rate.is_none_or(|r| r >= promo.min_success_rate);
            let fail_ok = promo.max_failures.is_none_or(|m| c.failed <= m);
            let manual_ok = !promo.require_manual_approval || promoted;
            let soak_label = if emergency && promo.emergency_soak.is_some() {
                "emergency soak"
            } else {
                "soak"
            };
            rp.gates = vec![
                GateResult {
                    name: "soak".into(),
                    passed: soak_ok,
                    message: if soak_ok {
                        format!("{soak_label} of {soak} done at {}", whole_seconds(soak_end))
                    } else {
                        format!("{soak_label} of {soak} ends at {}", whole_seconds(soak_end))
                    },
                },
                GateResult {
                    name: "successRate".into(),
                    passed: rate_ok,
                    message: match rate {
                        Some(r) => format!(
                            "{}/{} succeeded ({:.1}%, needs {}%)",
                            c.installed,
                            c.finished(),
                            r,
                            promo.min_success_rate
                        ),
                        None => "no finished installs".into(),
                    },
                },
            ];
            if let Some(m) = promo.max_failures {
                rp.gates.push(GateResult {
                    name: "maxFailures".into(),
                    passed: fail_ok,
                    message: format!("{} failed, at most {m} allowed", c.failed_words()),
                });
            }
            if promo.require_manual_approval {
                rp.gates.push(GateResult {
                    name: "manualApproval".into(),
                    passed: manual_ok,
                    message: if manual_ok {
                        "promoted by a person".into()
                    } else {
                        format!("waiting for a person: add {} to spec.promote", ring.name)
                    },
                });
            }
            if !rate_ok || !fail_ok {
                let failing: Vec<&str> = rp
                    .gates
                    .iter()
                    .filter(|g| !g.passed && g.name != "soak" && g.name != "manualApproval")
                    .map(|g| g.message.as_str())
                    .collect();
                phase = RingPhase::Halted;
                halted_now = Some((
                    idx,
                    spec.halt.as_ref().map(|h| h.on_failure).unwrap_or_default(),
                    format!("promotion gate failed: {}", failing.join("; ")),
                ));
            } else if input.spec.paused || held {
                // Held or paused rollouts do not promote.
            } else if soak_ok && manual_ok {
                phase = RingPhase::Passed;
                rp.passed_at = Some(now);
                out.events.push(event(
                    EventType::Normal,
                    Reason::RingPassed,
                    format!(
                        "ring {} passed: {}/{} installed, {} failed, {soak_label} of {soak} done",
                        ring.name, c.installed, reachable_targeted, c.failed
                    ),
                ));
            } else {
                rp.waiting_for = Some(if !soak_ok {
                    format!("{soak_label} ends at {}", whole_seconds(soak_end))
                } else {
                    format!(
                        "waiting for manual promotion: add {} to spec.promote",
                        ring.name
                    )
                });
            }
        }

        if phase == RingPhase::Halted {
            any_halted = true;
            if old_rphase != RingPhase::Halted {
                rp.halted_at = Some(now);
            }
            if let Some((_, _, reason)) = halted_now.as_ref().filter(|(i, ..)| *i == idx) {
                rp.waiting_for = Some(format!("halted: {reason}"));
            }
            if rp.waiting_for.is_none() {
                rp.waiting_for = old
                    .and_then(|o| o.waiting_for.clone())
                    .or(Some("halted".into()));
            }
        }

        // Admission: Deploying rings, and Passed rings for late joiners.
        let admitting = matches!(phase, RingPhase::Deploying | RingPhase::Passed);
        if admitting && (c.waiting > 0 || members_need_refresh(ring, name, now)) {
            if let (Some(spec), Some(schedule)) = (spec, schedule) {
                let blocked = if input.spec.paused {
                    Some("rollout paused (spec.paused)".to_string())
                } else if held {
                    Some(
                        input
                            .approval
                            .reason
                            .clone()
                            .unwrap_or_else(|| "held".into()),
                    )
                } else if let Some(b) = &input.blocked {
                    Some(b.clone())
                } else if any_halted || halted_now.is_some() {
                    Some("another ring halted".into())
                } else {
                    freeze_message(
                        freeze_policy.or_else(|| active_freeze(spec.freezes.iter(), now)),
                    )
                };
                let window = if schedule.is_always() {
                    None
                } else {
                    schedule.open_at(now)
                };
                let window_open = schedule.is_always() || window.is_some();
                if let Some(b) = blocked {
                    if phase == RingPhase::Deploying {
                        rp.waiting_for = Some(b);
                        out.invalid_spec |= !input.spec.paused && !held && input.blocked.is_some();
                    }
                    wake.push(next_freeze_change(
                        input.policy_freezes.iter().chain(spec.freezes.iter()),
                        now,
                    ));
                } else if !window_open {
                    if phase == RingPhase::Deploying {
                        rp.waiting_for = Some(match schedule.describe_next(now) {
                            Some(when) => format!("maintenance window opens {when}"),
                            None => "no maintenance window opens within a year".into(),
                        });
                    }
                    wake.push(schedule.next_open_after(now));
                } else {
                    let limit = max_concurrent(&spec.max_concurrent, reachable_targeted);
                    let not_after = window.map(|w| w.end);
                    let answer_by = contract::answer_by(
                        now,
                        spec.attempt_timeout
                            .unwrap_or(contract::DEFAULT_ATTEMPT_TIMEOUT),
                    );
                    // A new attempt for this window.
                    let assign = |m: &Member<'_>| {
                        set(
                            m.name(),
                            PlanList::Install,
                            &m.report.id,
                            PlanEntry {
                                rollout: name.to_string(),
                                not_before: now,
                                not_after,
                                deadline: m.deadline,
                                attempt: Some(contract::attempt_id(name, now)),
                                basis: Some(contract::digest(m.report)),
                                answer_by,
                            },
                        )
                    };
                    wake.push(not_after);
                    // Entries whose window ended before the device started resume in this
                    // one: the same attempt, in a new window.
                    for m in &ring.members {
                        if let Some(e) = m.install.filter(|e| e.rollout == name)
                            && !m.excepted
                            && contract::needs_renewal(m.report, e, now)
                        {
                            let renewed = contract::renew(e, m.last_seen, now, not_after);
                            out.plan.push(set(
                                m.name(),
                                PlanList::Install,
                                &m.report.id,
                                PlanEntry {
                                    deadline: m.deadline,
                                    ..renewed
                                },
                            ));
                        }
                    }
                    let slots = limit.saturating_sub(c.in_progress) as usize;
                    let mut candidates: Vec<&Member<'_>> = if slots == 0 {
                        Vec::new()
                    } else {
                        ring.members
                            .iter()
                            .zip(&standings)
                            .filter(|(_, s)| **s == Standing::Judged(contract::Standing::Waiting))
                            .map(|(m, _)| m)
                            .collect()
                    };
                    let order = |a: &&Member<'_>, b: &&Member<'_>| {
                        a.deadline
                            .unwrap_or(Timestamp::MAX)
                            .cmp(&b.deadline.unwrap_or(Timestamp::MAX))
                            .then(a.name().cmp(b.name()))
                    };
                    // Only the first `slots` in order matter: select them, then sort those.
                    if candidates.len() > slots {
                        candidates.select_nth_unstable_by(slots, order);
                        candidates.truncate(slots);
                    }
                    candidates.sort_by(order);
                    let admitted: Vec<&str> = candidates.iter().map(|m| m.name()).collect();
                    for m in &candidates {
                        out.plan.push(assign(m));
                    }
                    let n = admitted.len() as u32;
                    rp.in_progress += n;
                    rp.waiting -= n;
                    if n > 0 {
                        let until = not_after
                            .map(|t| format!(" (window open until {t})"))
                            .unwrap_or_default();
                        out.events.push(event(
                            EventType::Normal,
                            Reason::DevicesAdmitted,
                            format!(
                                "admitted {n} device(s) to ring {}{until}: {}",
                                ring.name,
                                preview(&admitted)
                            ),
                        ));
                    }
                    if phase == RingPhase::Deploying {
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
            }
        } else if phase == RingPhase::Deploying && rp.waiting_for.is_none() {
            rp.waiting_for = Some(format!("{} install(s) in progress", c.in_progress));
        }

        if phase == RingPhase::Passed && old_rphase != RingPhase::Passed {
            rp.waiting_for = None;
        }
        if matches!(phase, RingPhase::Deploying | RingPhase::Soaking) && input.spec.paused {
            phase = RingPhase::Paused;
            rp.waiting_for = Some("rollout paused (spec.paused)".into());
        }
        if phase == RingPhase::Passed && rp.waiting > 0 && rp.waiting_for.is_none() {
            rp.waiting_for = Some(format!("{} late joiner(s) waiting", rp.waiting));
        }
        if phase != RingPhase::Passed && phase != RingPhase::Halted {
            rp.passed_at = None;
        }
        prev_passed = phase == RingPhase::Passed;
        rp.phase = phase;
        rings_out.push(rp);
    }

    // Rollout-level phase.
    let mut phase = if is_terminal(old_phase) {
        old_phase.unwrap_or(RolloutPhase::Aborted)
    } else if aborting {
        let why = if input.spec.abort {
            "aborted by a person (spec.abort)".to_string()
        } else {
            format!(
                "rejected by {}",
                input.approval.by.clone().unwrap_or_default()
            )
        };
        out.events
            .push(event(EventType::Warning, Reason::RolloutAborted, why));
        RolloutPhase::Aborted
    } else if old_rolling_back {
        RolloutPhase::RollingBack
    } else if let Some((idx, on_failure, reason)) = &halted_now {
        let ring = &input.rings[*idx];
        out.events.push(event(
            EventType::Warning,
            Reason::RingHalted,
            format!("ring {} halted: {reason}", ring.name),
        ));
        match on_failure {
            OnFailure::Abort => {
                out.events.push(event(
                    EventType::Warning,
                    Reason::RolloutAborted,
                    format!(
                        "aborted by ring {}'s halt rule (onFailure: Abort)",
                        ring.name
                    ),
                ));
                RolloutPhase::Aborted
            }
            OnFailure::Rollback if input.uninstallable => {
                out.events.push(event(EventType::Warning, Reason::RollbackStarted, format!("rolling back the patch from every device that has it, after ring {} halted", ring.name)));
                RolloutPhase::RollingBack
            }
            OnFailure::Rollback => {
                if let Some(rp) = rings_out.get_mut(*idx) {
                    rp.waiting_for = Some(format!(
                        "halted: {reason}; the patch is not uninstallable, so it cannot be rolled back: a person decides"
                    ));
                }
                RolloutPhase::Halted
            }
            OnFailure::Pause => RolloutPhase::Halted,
        }
    } else if any_halted {
        RolloutPhase::Halted
    } else if input.spec.paused {
        RolloutPhase::Paused
    } else if held {
        RolloutPhase::Held
    } else if !rings_out.is_empty() && rings_out.iter().all(|r| r.phase == RingPhase::Passed) {
        RolloutPhase::Completed
    } else {
        RolloutPhase::Progressing
    };

    // Abort: release every assignment of this rollout that has not started.
    if phase == RolloutPhase::Aborted {
        for ring in &input.rings {
            for m in &ring.members {
                if m.install.is_some_and(|e| e.rollout == name)
                    && !matches!(m.state, PatchState::Installing | PatchState::PendingReboot)
                {
                    push_unique(
                        &mut out.plan,
                        remove(m.name(), PlanList::Install, &m.report.id),
                    );
                }
            }
        }
    }

    // Rollback: uninstall from every device that has it; done when none has it any more.
    if phase == RolloutPhase::RollingBack {
        let mut remaining = 0u32;
        for (ring, rp) in input.rings.iter().zip(rings_out.iter_mut()) {
            let mut ring_remaining = 0u32;
            for m in &ring.members {
                if m.install.is_some_and(|e| e.rollout == name) {
                    push_unique(
                        &mut out.plan,
                        remove(m.name(), PlanList::Install, &m.report.id),
                    );
                }
                let has_it = matches!(
                    m.state,
                    PatchState::Installed | PatchState::PendingReboot | PatchState::Installing
                );
                if has_it {
                    ring_remaining += 1;
                    if m.uninstall.is_none_or(|e| e.rollout != name) {
                        out.plan.push(set(
                            m.name(),
                            PlanList::Uninstall,
                            &m.report.id,
                            PlanEntry {
                                rollout: name.to_string(),
                                not_before: now,
                                not_after: None,
                                deadline: None,
                                attempt: None,
                                basis: None,
                                answer_by: None,
                            },
                        ));
                    }
                } else if m.uninstall.is_some_and(|e| e.rollout == name) {
                    out.plan
                        .push(remove(m.name(), PlanList::Uninstall, &m.report.id));
                }
            }
            remaining += ring_remaining;
            let touched = rp.started_at.is_some();
            if touched {
                rp.phase = if ring_remaining > 0 {
                    RingPhase::RollingBack
                } else {
                    RingPhase::RolledBack
                };
                rp.waiting_for = (ring_remaining > 0)
                    .then(|| format!("{ring_remaining} device(s) still to uninstall"));
            }
        }
        if remaining == 0 {
            phase = RolloutPhase::RolledBack;
            let n: u32 = rings_out.iter().map(|r| r.rolled_back).sum();
            out.events.push(event(
                EventType::Warning,
                Reason::RolledBack,
                format!("rolled back: uninstalled from {n} device(s)"),
            ));
        }
    }

    if phase == RolloutPhase::Completed && old_phase != Some(RolloutPhase::Completed) {
        out.events.push(event(
            EventType::Normal,
            Reason::RolloutCompleted,
            "every ring passed".into(),
        ));
    }
    if phase == RolloutPhase::Held && old_phase != Some(RolloutPhase::Held) {
        out.events.push(event(
            EventType::Warning,
            Reason::PatchHeld,
            input
                .approval
                .reason
                .clone()
                .unwrap_or_else(|| "held".into()),
        ));
    }
    if phase == RolloutPhase::Paused && old_phase != Some(RolloutPhase::Paused) {
        out.events.push(event(
            EventType::Normal,
            Reason::RolloutPaused,
            "paused by a person (spec.paused)".into(),
        ));
    }
    if old_phase == Some(RolloutPhase::Paused) && phase == RolloutPhase::Progressing {
        out.events.push(event(
            EventType::Normal,
            Reason::RolloutResumed,
            "resumed".into(),
        ));
    }

    let current = rings_out
        .iter()
        .find(|r| r.phase != RingPhase::Passed)
        .or(rings_out.last());
    let installed: u32 = rings_out.iter().map(|r| r.installed).sum();
    let targeted: u32 = rings_out.iter().map(|r| r.targeted).sum();
    let message = match phase {
        RolloutPhase::Completed => format!("every ring passed; {installed}/{targeted} installed"),
        RolloutPhase::RolledBack => "rolled back".to_string(),
        RolloutPhase::Aborted => input
            .old
            .and_then(|o| o.message.clone())
            .filter(|_| is_terminal(old_phase))
            .unwrap_or_else(|| {
                if input.spec.abort {
                    "aborted by a person (spec.abort)".into()
                } else if rejected {
                    format!(
                        "rejected by {}",
                        input.approval.by.clone().unwrap_or_default()
                    )
                } else {
                    halted_now
                        .as_ref()
                        .map(|h| format!("aborted: {}", h.2))
                        .unwrap_or_else(|| "aborted".into())
                }
            }),
        _ => current
            .and_then(|r| r.waiting_for.clone().map(|w| format!("{}: {w}", r.name)))
            .unwrap_or_default(),
    };

    out.wake = wake.into_iter().flatten().filter(|t| *t > now).min();
    if matches!(phase, RolloutPhase::Aborted | RolloutPhase::RolledBack) {
        out.wake = None;
    }
    out.status = PatchRolloutStatus {
        observed_generation: None,
        conditions: Vec::new(),
        approval: Some(input.approval.clone()),
        phase: Some(phase),
        current_ring: current.map(|r| r.name.clone()),
        progress: Some(format!("{installed}/{targeted}")),
        message: Some(message),
        rings: rings_out,
    };
    out
}

fn members_need_refresh(ring: &RingInput<'_>, rollout: &str, now: Timestamp) -> bool {
    ring.members.iter().any(|m| {
        m.install
            .filter(|e| e.rollout == rollout)
            .is_some_and(|e| !m.excepted && contract::needs_renewal(m.report, e, now))
    })
}

fn freeze_message(f: Option<&Freeze>) -> Option<String> {
    f.map(|f| {
        format!(
            "change freeze until {} ({}, owner {})",
            f.until, f.reason, f.owner
        )
    })
}

fn set(device: &str, list: PlanList, patch: &str, entry: PlanEntry) -> PlanChange {
    PlanChange {
        device: device.to_string(),
        list,
        patch: patch.to_string(),
        entry: Some(entry),
    }
}

fn remove(device: &str, list: PlanList, patch: &str) -> PlanChange {
    PlanChange {
        device: device.to_string(),
        list,
        patch: patch.to_string(),
        entry: None,
    }
}

fn push_unique(plan: &mut Vec<PlanChange>, change: PlanChange) {
    if !plan
        .iter()
        .any(|c| c.device == change.device && c.list == change.list && c.patch == change.patch)
    {
        plan.push(change);
    }
}

fn preview(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

/// An instant for people to read: agents report installs to the millisecond, but a soak
/// that ends at 12:46:07.057 is said to end at 12:46:08 (never earlier than it does).
fn whole_seconds(t: Timestamp) -> Timestamp {
    t.round(
        jiff::TimestampRound::new()
            .smallest(jiff::Unit::Second)
            .mode(jiff::RoundMode::Ceil),
    )
    .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_in_messages_are_whole_seconds_never_early() {
        let t = |s: &str| s.parse::<Timestamp>().expect("timestamp");
        assert_eq!(
            whole_seconds(t("2026-11-22T12:46:07.05697746Z")).to_string(),
            "2026-11-22T12:46:08Z"
        );
        assert_eq!(
            whole_seconds(t("2026-11-22T12:46:07Z")).to_string(),
            "2026-11-22T12:46:07Z"
        );
    }
}
