//! Status: what each policy, ring, exception and device says about itself after a pass,
//! with the Events of what changed (SLA breaches, conflicts, freezes, exception phases)
//! and, for exceptions, the history those Events leave (`crate::engine::history`).

use jiff::Timestamp;

use crate::api::{
    ApprovalSummary, DeploymentRingStatus, DeviceCompliance, ExceptionHistoryEntry, ExceptionPhase,
    ManagedDevice, PatchException, PatchExceptionStatus, PatchPolicyStatus, PolicyConflict,
};
use crate::engine::cache::{Cache, Shown, Version};
use crate::engine::decision::{Decisions, DueSoon, Event, EventType, Health, Kind, Reason};
use crate::engine::{exceptions, history, sla, windows};

use super::gather::Tenant;
use super::name_of;
use super::walk::{DeviceView, Walked};

/// The most conflicts a policy status lists.
const CONFLICTS_LISTED: usize = 20;

/// Per policy, counted in one walk over the devices: governed, in no ring. (The devices
/// in conflict are [`Walked::conflicts`].)
#[derive(Clone)]
pub(super) struct Governed {
    by: Vec<u32>,
    in_no_ring: Vec<u32>,
}

impl Governed {
    pub fn count(t: &Tenant<'_>, w: &Walked<'_>) -> Self {
        let mut g = Governed {
            by: vec![0; t.policies.len()],
            in_no_ring: vec![0; t.policies.len()],
        };
        for v in &w.views {
            g.add(v);
        }
        g
    }

    /// Counts a device in as `v` has it (for a kept count: it was not in it).
    pub fn add(&mut self, v: &DeviceView) {
        if let Some(pi) = v.policy() {
            self.by[pi] += 1;
            if v.ring().is_none() {
                self.in_no_ring[pi] += 1;
            }
        }
    }

    /// Takes a device out, as `v` had it when it was counted in.
    pub fn remove(&mut self, v: &DeviceView) {
        if let Some(pi) = v.policy() {
            self.by[pi] = self.by[pi].saturating_sub(1);
            if v.ring().is_none() {
                self.in_no_ring[pi] = self.in_no_ring[pi].saturating_sub(1);
            }
        }
    }
}

/// Policy `pi`'s status, and the Events of what changed in it.
pub(super) fn policy(
    t: &Tenant<'_>,
    w: &Walked<'_>,
    g: &Governed,
    pi: usize,
    summary: ApprovalSummary,
    d: &mut Decisions,
    now: Timestamp,
) {
    let (pv, policy) = (&t.policies[pi], t.policies[pi].policy);
    let governed = g.by[pi];
    let conflicts = conflicts(t, w, pi);
    let tally = &w.tallies[pi];
    let (ok, all) = tally.totals();
    let old = policy.status.as_ref();
    let overdue = tally.overdue();
    policy_events(pv.name, old, overdue, &conflicts, policy.spec.priority, d);
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
    let freeze = freeze_status(&pv.freezes, now);
    freeze_events(
        d,
        Kind::PatchPolicy,
        pv.name,
        old.and_then(|s| s.freeze.as_deref()),
        freeze.as_deref(),
    );
    d.wake(windows::next_freeze_change(pv.freezes.iter(), now), now);
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
        devices_in_no_ring: g.in_no_ring[pi],
        conflicts,
        compliance: sla::percent(ok, all).map(|p| format!("{p:.1}%")),
        overdue,
        approvals: summary,
        sla: tally.cells(),
    };
    d.due_soon.extend(
        tally
            .due_soon()
            .into_iter()
            .map(|(tier, severity, pairs)| DueSoon {
                policy: pv.name.to_string(),
                tier,
                severity,
                pairs,
            }),
    );
    d.policies.push((pv.name.to_string(), status));
}

/// The devices policy `pi` shares with another policy of its priority (the first few).
fn conflicts(t: &Tenant<'_>, w: &Walked<'_>, pi: usize) -> Vec<PolicyConflict> {
    w.conflicts
        .iter()
        .filter(|(_, policies)| policies.contains(&pi))
        .take(CONFLICTS_LISTED)
        .map(|(&di, policies)| PolicyConflict {
            device: name_of(&w.devices[di].metadata).to_string(),
            policies: policies
                .iter()
                .filter(|o| **o != pi)
                .map(|o| t.policies[*o].name.to_string())
                .collect(),
        })
        .collect()
}

/// SLABreached when more pairs are overdue than the status said; PolicyConflict when
/// conflicts appear.
fn policy_events(
    name: &str,
    old: Option<&PatchPolicyStatus>,
    overdue: u32,
    conflicts: &[PolicyConflict],
    priority: i32,
    d: &mut Decisions,
) {
    let was = old.map_or(0, |s| s.overdue);
    if overdue > was {
        d.events.push(Event {
            kind: Kind::PatchPolicy,
            name: name.to_string(),
            type_: EventType::Warning,
            reason: Reason::SLABreached,
            message: format!(
                "{overdue} device-patch pair(s) are past their SLA deadline (was {was})"
            ),
        });
    }
    if !conflicts.is_empty() && old.is_none_or(|s| s.conflicts.is_empty()) {
        d.events.push(Event {
            kind: Kind::PatchPolicy,
            name: name.to_string(),
            type_: EventType::Warning,
            reason: Reason::PolicyConflict,
            message: format!(
                "{} device(s) are also selected by another policy at priority {priority}; they get no new assignments",
                conflicts.len()
            ),
        });
    }
}

/// Every ring's status, and the Events of its freezes.
pub(super) fn rings(
    t: &Tenant<'_>,
    w: &Walked<'_>,
    ring_active: &[u32],
    d: &mut Decisions,
    now: Timestamp,
) {
    let (rings, policies) = (&t.rings, &t.policies);
    let (ring_members, ring_claimed_elsewhere) = (&w.ring_members, &w.ring_claimed_elsewhere);
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
        let freeze = freeze_status(&rv.freezes, now);
        freeze_events(
            d,
            Kind::DeploymentRing,
            rv.name,
            old.and_then(|s| s.freeze.as_deref()),
            freeze.as_deref(),
        );
        d.wake(windows::next_freeze_change(rv.freezes.iter(), now), now);
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
}

/// Every exception's status, and the Events of its phases and reminders.
pub(super) fn exceptions(t: &Tenant<'_>, w: &Walked<'_>, d: &mut Decisions, now: Timestamp) {
    let (excs, evals, exc_covered) = (&t.excs, &t.evals, &w.exc_covered);
    for (ei, (exc, ev)) in excs.iter().zip(evals.iter()).enumerate() {
        let name = name_of(&exc.metadata).to_string();
        let old = exc.status.as_ref();
        let reminder = exceptions::due_reminder(exc, ev, now);
        let history = exception_events(exc, ev, reminder, d, now);
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
                history,
            },
        ));
    }
}

/// An exception's Events (a reminder due, a phase change), and its history: the stored
/// one with this pass's audit-worthy Events ([`history::record_exception`]). Every Event
/// the engine makes about an exception is made here.
fn exception_events(
    exc: &PatchException,
    ev: &exceptions::Evaluated,
    reminder: Option<&str>,
    d: &mut Decisions,
    now: Timestamp,
) -> Vec<ExceptionHistoryEntry> {
    let old = exc.status.as_ref();
    let mut history = old.map(|s| s.history.clone()).unwrap_or_default();
    let mut emit = |type_: EventType, reason: Reason, message: String| {
        let event = Event {
            kind: Kind::PatchException,
            name: name_of(&exc.metadata).to_string(),
            type_,
            reason,
            message,
        };
        history::record_exception(&mut history, now, &event, ev.phase);
        d.events.push(event);
    };
    if let Some(r) = reminder {
        emit(
            EventType::Warning,
            Reason::ExceptionExpiring,
            format!(
                "expires in {r} at {} (owner {})",
                exc.spec.expires_at, exc.spec.owner
            ),
        );
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
        emit(type_, reason, ev.message.clone());
    }
    history
}

/// The compliance summaries of the devices whose summary changed. A summary holds only
/// what the device's own object does not say (its plan is in its spec), so that a plan
/// change is one write, not a plan write and a summary write.
pub(super) fn devices(
    t: &Tenant<'_>,
    w: &Walked<'_>,
    cache: &mut Cache,
    d: &mut Decisions,
    at: impl Iterator<Item = usize>,
) {
    let at: Vec<usize> = at.collect();
    for (i, &di) in at.iter().enumerate() {
        if i % READ_AHEAD == 0 {
            // The stored summaries a block compares with, read in a loop of nothing else
            // (objects far apart in memory, whose reads then wait on memory together).
            for &dj in at.iter().skip(i).take(READ_AHEAD) {
                let trusted = cache.keep && cache.devices.get(dj).is_some_and(|e| e.trusted);
                if let (false, Some(dev)) = (trusted, w.devices.get(dj)) {
                    touch_summary(dev);
                }
            }
        }
        let (Some(dev), Some(v)) = (w.devices.get(di), w.views.get(di)) else {
            continue;
        };
        let conflict = w.conflicts.get(&di).map_or(&[][..], Vec::as_slice);
        let names = Names::of(t, v, conflict, &cache.tiers);
        let counts = (v.overdue, v.due_soon);
        let compare = || stored_matches(dev, v, &names);
        let unchanged = match cache.keep.then(|| &mut cache.devices[di]) {
            Some(e) => {
                // A trusted device's stored summary is the one the previous pass compared
                // with: the same summary compares the same. (Its policy, ring, tier and
                // conflict are the entry's, which a trusted entry keeps.)
                let unchanged = match e.summary {
                    Some(last) if e.trusted && (last.overdue, last.due_soon) == counts => {
                        debug_assert_eq!(
                            last.matched,
                            compare(),
                            "device {}'s summary",
                            name_of(&dev.metadata)
                        );
                        last.matched
                    }
                    _ => compare(),
                };
                e.summary = Some(Shown {
                    overdue: v.overdue,
                    due_soon: v.due_soon,
                    matched: unchanged,
                });
                if !e.trusted {
                    e.version = Version::of(dev.metadata.resource_version.as_deref());
                }
                unchanged
            }
            None => compare(),
        };
        if !unchanged {
            let compliance = compliance(t, v, &names);
            d.devices
                .push((name_of(&dev.metadata).to_string(), compliance));
        }
    }
}

/// What a device's summary names: its policy, ring and tier, or the policies in
/// conflict over it.
struct Names<'a> {
    policy: Option<&'a str>,
    ring: Option<&'a str>,
    tier: Option<&'a str>,
    /// The policies in conflict over it (indices in the pass's list).
    conflict: &'a [usize],
}

impl<'a> Names<'a> {
    fn of(t: &Tenant<'a>, v: &DeviceView, conflict: &'a [usize], tiers: &'a [String]) -> Self {
        let policy = v.policy().map(|pi| &t.policies[pi]);
        Names {
            policy: policy.map(|p| p.name),
            ring: policy.and_then(|p| v.ring().and_then(|pos| p.rings.get(pos)).map(|(n, _)| *n)),
            tier: v.policy().map(|_| tiers[v.tier()].as_str()),
            conflict,
        }
    }
}

/// How many devices' stored summaries [`devices`] reads ahead.
const READ_AHEAD: usize = 64;

/// Reads the strings of a device's stored summary that [`stored_matches`] compares.
fn touch_summary(dev: &ManagedDevice) {
    if let Some(o) = dev.status.as_ref().and_then(|st| st.compliance.as_ref()) {
        for s in [&o.policy, &o.ring, &o.tier].into_iter().flatten() {
            std::hint::black_box(s.as_bytes().first().copied());
        }
    }
}

/// Whether the device's stored summary already says this (compared in place: most
/// devices' summaries do not change between passes, and only those that do are built).
fn stored_matches(dev: &ManagedDevice, v: &DeviceView, n: &Names<'_>) -> bool {
    dev.status
        .as_ref()
        .and_then(|st| st.compliance.as_ref())
        .is_some_and(|o| {
            o.policy.as_deref() == n.policy
                && o.ring.as_deref() == n.ring
                && o.tier.as_deref() == n.tier
                && o.overdue == v.overdue
                && o.due_soon == v.due_soon
                && o.message.is_some() == (n.ring.is_none() || n.policy.is_none())
                && n.conflict.is_empty()
        })
}

/// A device's summary, with why it gets no assignments when it gets none.
fn compliance(t: &Tenant<'_>, v: &DeviceView, n: &Names<'_>) -> DeviceCompliance {
    let message = match (n.policy, n.conflict.is_empty()) {
        (Some(policy), _) => n
            .ring
            .is_none()
            .then(|| format!("matches none of policy {policy}'s rings: it gets no patches")),
        (None, false) => {
            let names: Vec<&str> = n.conflict.iter().map(|p| t.policies[*p].name).collect();
            Some(format!(
                "conflict: policies {} select it at the same priority; it gets no new assignments",
                names.join(", ")
            ))
        }
        (None, true) => Some("no PatchPolicy selects this device".to_string()),
    };
    DeviceCompliance {
        tier: n.tier.map(str::to_string),
        policy: n.policy.map(str::to_string),
        ring: n.ring.map(str::to_string),
        overdue: v.overdue,
        due_soon: v.due_soon,
        message,
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
