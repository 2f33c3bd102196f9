//! Status: what each policy, ring, exception and device says about itself after a pass,
//! with the Events of what changed (SLA breaches, conflicts, freezes, exception phases).

use jiff::Timestamp;

use crate::api::{
    ApprovalSummary, DeploymentRingStatus, DeviceCompliance, ExceptionPhase, PatchExceptionStatus,
    PatchPolicyStatus, PolicyConflict,
};
use crate::engine::cache::{Cache, Summary};
use crate::engine::decision::{Decisions, Event, EventType, Health, Kind, PlanList, Reason};
use crate::engine::{exceptions, sla, windows};

use super::gather::Tenant;
use super::name_of;
use super::walk::Walked;

/// The most conflicts a policy status lists.
const CONFLICTS_LISTED: usize = 20;

/// Per policy, counted in one walk over the devices: governed, in no ring; and the
/// devices in conflict (few), in order.
pub(super) struct Governed {
    by: Vec<u32>,
    in_no_ring: Vec<u32>,
    conflicted: Vec<usize>,
}

impl Governed {
    pub fn count(t: &Tenant<'_>, w: &Walked<'_>) -> Self {
        let mut g = Governed {
            by: vec![0; t.policies.len()],
            in_no_ring: vec![0; t.policies.len()],
            conflicted: Vec::new(),
        };
        for (di, v) in w.views.iter().enumerate() {
            if let Some(pi) = v.policy {
                g.by[pi] += 1;
                if v.ring.is_none() {
                    g.in_no_ring[pi] += 1;
                }
            }
            if !v.conflict.is_empty() {
                g.conflicted.push(di);
            }
        }
        g
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
    let (policies, views, devices) = (&t.policies, &w.views, &w.devices);
    let tallies = &w.tallies;
    let (governed_by, in_no_ring_of, conflicted) = (&g.by, &g.in_no_ring, &g.conflicted);
    let governed = governed_by[pi];
    let in_no_ring = in_no_ring_of[pi];
    let conflicts: Vec<PolicyConflict> = conflicted
        .iter()
        .map(|&di| (di, &views[di]))
        .filter(|(_, v)| v.conflict.contains(&pi))
        .take(CONFLICTS_LISTED)
        .map(|(di, v)| PolicyConflict {
            device: name_of(&devices[di].metadata).to_string(),
            policies: v
                .conflict
                .iter()
                .filter(|o| **o != pi)
                .map(|o| policies[*o].name.to_string())
                .collect(),
        })
        .collect();
    let tally = &tallies[pi];
    let (ok, all) = tally.totals();
    let old = policy.status.as_ref();
    let overdue = tally.overdue();
    if overdue > old.map_or(0, |s| s.overdue) {
        d.events.push(Event {
            kind: Kind::PatchPolicy,
            name: pv.name.to_string(),
            type_: EventType::Warning,
            reason: Reason::SLABreached,
            message: format!(
                "{overdue} device-patch pair(s) are past their SLA deadline (was {})",
                old.map_or(0, |s| s.overdue)
            ),
        });
    }
    if !conflicts.is_empty() && old.is_none_or(|s| s.conflicts.is_empty()) {
        d.events.push(Event {
            kind: Kind::PatchPolicy,
            name: pv.name.to_string(),
            type_: EventType::Warning,
            reason: Reason::PolicyConflict,
            message: format!("{} device(s) are also selected by another policy at priority {}; they get no new assignments", conflicts.len(), policy.spec.priority),
        });
    }
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
    let freeze = freeze_status(&policy.spec.freezes, now);
    freeze_events(
        d,
        Kind::PatchPolicy,
        pv.name,
        old.and_then(|s| s.freeze.as_deref()),
        freeze.as_deref(),
    );
    d.wake(
        windows::next_freeze_change(policy.spec.freezes.iter(), now),
        now,
    );
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
        devices_in_no_ring: in_no_ring,
        conflicts,
        compliance: sla::percent(ok, all).map(|p| format!("{p:.1}%")),
        overdue,
        approvals: summary,
        sla: tally.cells(),
    };
    d.policies.push((pv.name.to_string(), status));
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
        let freeze = freeze_status(&rv.ring.spec.freezes, now);
        freeze_events(
            d,
            Kind::DeploymentRing,
            rv.name,
            old.and_then(|s| s.freeze.as_deref()),
            freeze.as_deref(),
        );
        d.wake(
            windows::next_freeze_change(rv.ring.spec.freezes.iter(), now),
            now,
        );
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
        if let Some(r) = reminder {
            d.events.push(Event {
                kind: Kind::PatchException,
                name: name.clone(),
                type_: EventType::Warning,
                reason: Reason::ExceptionExpiring,
                message: format!(
                    "expires in {r} at {} (owner {})",
                    exc.spec.expires_at, exc.spec.owner
                ),
            });
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
            d.events.push(Event {
                kind: Kind::PatchException,
                name: name.clone(),
                type_,
                reason,
                message: ev.message.clone(),
            });
        }
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
            },
        ));
    }
}

/// The compliance summaries of the devices whose summary changed.
pub(super) fn devices(t: &Tenant<'_>, w: &Walked<'_>, cache: &mut Cache, d: &mut Decisions) {
    let (devices, views, policies) = (&w.devices, &w.views, &t.policies);
    let keep = cache.keep;
    // `devices` is sorted by name: find a device by binary search, not a per-pass map.
    let by_name = |name: &str| {
        devices
            .binary_search_by(|d| name_of(&d.metadata).cmp(name))
            .ok()
    };
    // Per device (by position): how many install entries this pass adds or removes.
    let mut plan_delta: Vec<i64> = vec![0; devices.len()];
    for c in d.plan.iter().filter(|c| c.list == PlanList::Install) {
        let name = c.device.as_str();
        let Some(found) = by_name(name) else {
            continue;
        };
        let had = devices[found].spec.plan.install.contains_key(&c.patch);
        let delta = match (&c.entry, had) {
            (Some(_), false) => 1,
            (None, true) => -1,
            _ => 0,
        };
        let first = devices.partition_point(|d| name_of(&d.metadata) < name);
        for (di, dev) in devices.iter().enumerate().skip(first) {
            if name_of(&dev.metadata) != name {
                break;
            }
            plan_delta[di] += delta;
        }
    }
    for (di, dev) in devices.iter().enumerate() {
        let v = &views[di];
        // A trusted device's plan is as the previous pass saw it.
        let install_len = match keep.then(|| &cache.devices[di]) {
            Some(e) if e.trusted => {
                debug_assert_eq!(e.install_len, dev.spec.plan.install.len());
                e.install_len
            }
            _ => dev.spec.plan.install.len(),
        };
        let install_after = (install_len as i64 + plan_delta[di]).max(0);
        let planned = install_after as u32;
        // Most devices' summaries do not change between passes: compare in place and only
        // build (and list) the ones that do.
        let policy_name = v.policy.map(|pi| policies[pi].name);
        let ring_name = v.policy.and_then(|pi| {
            v.ring
                .and_then(|pos| policies[pi].rings.get(pos))
                .map(|(n, _)| *n)
        });
        let tier_name = v.policy.map(|_| cache.tiers[v.tier].as_str());
        let compare = || {
            dev.status
                .as_ref()
                .and_then(|st| st.compliance.as_ref())
                .is_some_and(|o| {
                    o.policy.as_deref() == policy_name
                        && o.ring.as_deref() == ring_name
                        && o.tier.as_deref() == tier_name
                        && o.overdue == v.overdue
                        && o.due_soon == v.due_soon
                        && o.planned == planned
                        && o.message.is_some() == (ring_name.is_none() || policy_name.is_none())
                        && v.conflict.is_empty()
                })
        };
        let summary = Summary {
            policy: v.policy,
            ring: v.ring,
            tier: v.tier,
            overdue: v.overdue,
            due_soon: v.due_soon,
            planned,
            conflict: !v.conflict.is_empty(),
        };
        let unchanged = match keep.then(|| &mut cache.devices[di]) {
            Some(e) => {
                // A trusted device's stored summary is the one the previous pass compared
                // with: the same summary compares the same.
                let unchanged = match e.summary {
                    Some((last, matched)) if e.trusted && last == summary => {
                        debug_assert_eq!(
                            matched,
                            compare(),
                            "device {}'s summary",
                            name_of(&dev.metadata)
                        );
                        matched
                    }
                    _ => compare(),
                };
                e.summary = Some((summary, unchanged));
                if !e.trusted {
                    e.version.clone_from(&dev.metadata.resource_version);
                }
                unchanged
            }
            None => compare(),
        };
        if unchanged {
            continue;
        }
        let (policy, ring, message) = match (v.policy, v.conflict.is_empty()) {
            (Some(pi), _) => {
                let pv = &policies[pi];
                let ring = v
                    .ring
                    .and_then(|pos| pv.rings.get(pos))
                    .map(|(n, _)| n.to_string());
                let msg = ring.is_none().then(|| {
                    format!(
                        "matches none of policy {}'s rings: it gets no patches",
                        pv.name
                    )
                });
                (Some(pv.name.to_string()), ring, msg)
            }
            (None, false) => {
                let names: Vec<&str> = v.conflict.iter().map(|p| policies[*p].name).collect();
                (
                    None,
                    None,
                    Some(format!(
                        "conflict: policies {} select it at the same priority; it gets no new assignments",
                        names.join(", ")
                    )),
                )
            }
            (None, true) => (
                None,
                None,
                Some("no PatchPolicy selects this device".to_string()),
            ),
        };
        d.devices.push((
            name_of(&dev.metadata).to_string(),
            DeviceCompliance {
                tier: tier_name.map(str::to_string),
                policy,
                ring,
                overdue: v.overdue,
                due_soon: v.due_soon,
                planned,
                message,
            },
        ));
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
