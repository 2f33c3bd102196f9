//! One tenant's month built from durable state: the objects as they stand at the month's
//! end (or earlier, for a month still running), read through the engine's own ledger so
//! that every clock, policy and ring is the one the engine decides with.

use std::borrow::Cow;
use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::api::{
    DevicePatchStatus, ExceptionPhase, ManagedDevice, PatchPolicy, PatchState, Reason,
};
use crate::engine::Snapshot;
use crate::engine::ledger::{self, Row};
use crate::engine::sla::{self, ClockState, Tally};

use super::model::{
    ApprovalRow, ExceptionRow, FreezeRow, Headline, InterventionKind, InterventionRow, Laggard,
    Laggards, MonthReport, PairRow, PhaseChange, RingFunnel, SlaRow, TrendPoint,
};
use super::month::Month;

/// Builds the report of `month` as the objects stand at `as_of` (the month's end when
/// `as_of` is later). `previous` holds earlier months' figures for the trend.
pub fn build(
    src: &Snapshot<'_>,
    month: &Month,
    as_of: Timestamp,
    previous: &[TrendPoint],
) -> MonthReport {
    let frame = MonthReport::empty(src.namespace, month, as_of);
    build_in(src, frame, previous)
}

/// Builds the same report over any period `[start, end)` as the objects stand at `end`:
/// the figures of a simulated run as a whole (the preview compares two). `label` stands
/// in the `month` field; `time_zone` is only carried. There is no trend.
pub fn build_period(
    src: &Snapshot<'_>,
    label: &str,
    time_zone: &str,
    start: Timestamp,
    end: Timestamp,
) -> MonthReport {
    let period = super::model::Period {
        label,
        time_zone,
        start,
        end,
    };
    let frame = MonthReport::empty_period(src.namespace, &period, end);
    build_in(src, frame, &[])
}

/// Fills `frame` (a report with its period set and nothing else) from `src`.
fn build_in(src: &Snapshot<'_>, frame: MonthReport, previous: &[TrendPoint]) -> MonthReport {
    let (start, end, label) = (frame.start, frame.end, frame.month.clone());
    let as_of = frame.as_of.min(end);
    let devices = rewound(src, as_of);
    let rows = period_rows(src, &devices, start, end, as_of);
    let pairs: Vec<PairRow> = rows.iter().map(|r| pair_row(r, as_of)).collect();
    let sla = sla_rows(&src.policies, &rows, start);
    let rings = funnel(src, &rows, start, end);
    let interventions = interventions(src, start, end);
    let headline = Headline {
        devices: src
            .policies
            .iter()
            .filter_map(|p| p.status.as_ref())
            .map(|s| s.devices)
            .sum(),
        halts: rings.iter().map(|r| r.halts).sum(),
        rollbacks: interventions
            .iter()
            .filter(|i| i.kind == InterventionKind::RollbackStarted)
            .count() as u32,
        active_exceptions: src
            .exceptions
            .iter()
            .filter(|e| e.status.as_ref().and_then(|s| s.phase) == Some(ExceptionPhase::Active))
            .count() as u32,
        ..headline(&rows, &sla, start, end)
    };
    let mut trend: Vec<TrendPoint> = previous
        .iter()
        .filter(|p| p.month < label)
        .cloned()
        .collect();
    trend.push(point(&label, &headline));
    MonthReport {
        headline,
        sla,
        trend,
        rings,
        laggards: laggards(&pairs),
        pairs,
        approvals: approvals(src, &rows, start, end),
        interventions,
        freezes: freezes(src, start, end),
        exceptions: exceptions(src, start, end),
        as_of,
        ..frame
    }
}

/// The headline figures of up to `months` months before `month`, oldest first, rebuilt
/// from the same objects as they stood at each month's end (for a packet made without
/// the earlier months' own records). Months without a pair are left out. Only the
/// figures the trend shows are computed, not whole reports.
pub fn trend_before(src: &Snapshot<'_>, month: &Month, months: usize) -> Vec<TrendPoint> {
    let mut out = Vec::new();
    let mut m = month.previous();
    for _ in 0..months {
        let (start, end) = (m.start(), m.end());
        let devices = rewound(src, end);
        let rows = period_rows(src, &devices, start, end, end);
        if !rows.is_empty() {
            let sla = sla_rows(&src.policies, &rows, start);
            out.push(point(&m.label(), &headline(&rows, &sla, start, end)));
        }
        m = m.previous();
    }
    out.reverse();
    out
}

/// A month's point on the trend.
fn point(month: &str, h: &Headline) -> TrendPoint {
    TrendPoint {
        month: month.to_string(),
        compliance_percent: h.compliance_percent,
        overdue: h.overdue,
        median_time_to_install_seconds: h.median_time_to_install_seconds,
    }
}

/// The ledger's pairs at `as_of` that belong to the period `[start, end)` (a month),
/// over `devices` (the snapshot's, rewound to `as_of`).
fn period_rows<'a>(
    src: &Snapshot<'a>,
    devices: &'a [Cow<'a, ManagedDevice>],
    start: Timestamp,
    end: Timestamp,
    as_of: Timestamp,
) -> Vec<Row<'a>> {
    let snap = Snapshot {
        devices: devices.iter().map(|d| d.as_ref()).collect(),
        ..src.clone()
    };
    ledger::ledger(&snap, as_of)
        .into_iter()
        .filter(|r| in_month(r, start, end))
        .collect()
}

/// The snapshot's devices as they stood at `as_of`: an install reported for a later
/// instant had not happened yet. Only a device with such a report is copied.
fn rewound<'a>(src: &Snapshot<'a>, as_of: Timestamp) -> Vec<Cow<'a, ManagedDevice>> {
    let later = |p: &DevicePatchStatus| {
        matches!(p.state, PatchState::Installed | PatchState::PendingReboot)
            && p.installed_at.is_some_and(|at| at > as_of)
    };
    src.devices
        .iter()
        .map(|&d| {
            let reports = d.status.as_ref().map_or(&[][..], |s| &s.patches[..]);
            if !reports.iter().any(later) {
                return Cow::Borrowed(d);
            }
            let mut d = d.clone();
            for p in d.status.iter_mut().flat_map(|s| s.patches.iter_mut()) {
                if later(p) {
                    p.state = PatchState::Missing;
                    p.installed_at = None;
                }
            }
            Cow::Owned(d)
        })
        .collect()
}

/// When a pair was installed, as its clock counts it.
fn installed_at(r: &Row<'_>, as_of: Timestamp) -> Option<Timestamp> {
    matches!(
        r.clock.state,
        ClockState::InstalledOnTime | ClockState::InstalledLate
    )
    .then(|| crate::contract::install_time(r.report.installed_at, as_of).unwrap_or(as_of))
}

/// A pair belongs to the month when it was released before the month ended and was not
/// installed before the month began.
fn in_month(r: &Row<'_>, start: Timestamp, end: Timestamp) -> bool {
    r.released < end && installed_at(r, end).is_none_or(|at| at >= start)
}

fn pair_row(r: &Row<'_>, as_of: Timestamp) -> PairRow {
    let p = &r.patch.spec;
    let cvss = p
        .cves
        .iter()
        .filter_map(|c| c.cvss_score)
        .chain(p.cvss_score)
        .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
    PairRow {
        device: r.device.metadata.name.clone().unwrap_or_default(),
        patch: p.id.clone(),
        vendor: p.vendor.clone(),
        title: p.title.clone(),
        policy: r.policy.to_string(),
        ring: r.ring.map(str::to_string),
        tier: r.tier.clone(),
        severity: r.severity,
        cvss,
        known_exploited: p.known_exploited,
        found_at: r.released,
        due_at: r.clock.deadline,
        installed_at: installed_at(r, as_of),
        state: r.clock.state,
        counted: r.counted,
        reason: r.why.as_ref().map(|w| w.reason),
        detail: r.why.as_ref().and_then(|w| w.detail.clone()),
        exception: r.why.as_ref().and_then(|w| w.exception.clone()),
    }
}

/// Per policy, the engine's tally over the month's counted pairs.
fn sla_rows(policies: &[&PatchPolicy], rows: &[Row<'_>], start: Timestamp) -> Vec<SlaRow> {
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.counted) {
        let tti = installed_at(r, Timestamp::MAX)
            .filter(|at| *at >= start)
            .map(|at| at.duration_since(r.released));
        tallies
            .entry(r.policy)
            .or_default()
            .add(&r.tier, r.severity, r.clock.state, tti);
    }
    let mut out = Vec::new();
    for (policy, tally) in &tallies {
        let spec = policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(policy));
        for c in tally.cells() {
            let within = spec.and_then(|p| {
                p.spec
                    .sla
                    .iter()
                    .find(|t| t.tier == c.tier)
                    .or_else(|| {
                        p.spec
                            .sla
                            .iter()
                            .find(|t| t.tier == crate::api::DEFAULT_TIER)
                    })
                    .map(|t| t.within(c.severity).to_string())
            });
            out.push(SlaRow {
                policy: policy.to_string(),
                tier: c.tier,
                severity: c.severity,
                within,
                installed_on_time: c.installed_on_time,
                installed_late: c.installed_late,
                overdue: c.overdue,
                open: c.open,
                exempt: c.exempt,
                compliance_percent: c.compliance_percent,
                median_time_to_install_seconds: c.median_time_to_install.map(|d| d.as_secs()),
            });
        }
    }
    out
}

/// The front page's figures over every counted pair.
fn headline(rows: &[Row<'_>], sla: &[SlaRow], start: Timestamp, end: Timestamp) -> Headline {
    let sum = |f: fn(&SlaRow) -> u32| sla.iter().map(f).sum::<u32>();
    let (on_time, late, overdue, open, exempt) = (
        sum(|r| r.installed_on_time),
        sum(|r| r.installed_late),
        sum(|r| r.overdue),
        sum(|r| r.open),
        sum(|r| r.exempt),
    );
    let samples: Vec<i64> = rows
        .iter()
        .filter(|r| r.counted)
        .filter_map(|r| {
            installed_at(r, Timestamp::MAX)
                .filter(|at| *at >= start && *at < end)
                .map(|at| at.duration_since(r.released).as_secs().max(0))
        })
        .collect();
    Headline {
        pairs: rows.len() as u32,
        compliance_percent: sla::percent(
            on_time + open + exempt,
            on_time + late + overdue + open + exempt,
        ),
        installed_on_time: on_time,
        installed_late: late,
        overdue,
        open,
        exempt,
        installed_in_month: samples.len() as u32,
        median_time_to_install_seconds: sla::median(&samples),
        ..Headline::default()
    }
}

/// Whether a rollout's ring did anything in `[start, end)`: it started before the end and
/// had not passed before the start.
fn ring_in_month(r: &crate::api::RingProgress, start: Timestamp, end: Timestamp) -> bool {
    r.started_at.is_some_and(|s| s < end) && r.passed_at.is_none_or(|p| p >= start)
}

/// Per ring (in the order policies list them): the month's rollouts there and the
/// devices they targeted (from the rollouts' statuses), and what became of the ring's
/// devices (from their own reports: a rollback resets a ring's counts, not a device's).
fn funnel(
    src: &Snapshot<'_>,
    rows: &[Row<'_>],
    start: Timestamp,
    end: Timestamp,
) -> Vec<RingFunnel> {
    let mut by: BTreeMap<String, RingFunnel> = BTreeMap::new();
    for ro in &src.rollouts {
        let Some(s) = ro.status.as_ref() else {
            continue;
        };
        for r in s.rings.iter().filter(|r| ring_in_month(r, start, end)) {
            let f = funnel_entry(&mut by, &r.name);
            f.rollouts += 1;
            f.targeted += r.targeted;
            f.timed_out += r.timed_out;
            f.halts += halts(s, &r.name, r.halted_at, start, end);
        }
    }
    for r in rows {
        let Some(ring) = r.ring else { continue };
        let f = funnel_entry(&mut by, ring);
        let installed = installed_at(r, end).is_some_and(|at| at >= start);
        f.installed += u32::from(installed);
        f.failed += u32::from(r.report.state == PatchState::Failed);
        f.rolled_back += u32::from(r.report.state == PatchState::RolledBack);
    }
    for f in by.values_mut() {
        f.failed += f.timed_out;
        f.success_rate_percent = sla::percent(f.installed, f.installed + f.failed);
    }
    let mut out = Vec::new();
    for p in &src.policies {
        for ring in &p.spec.rings {
            out.extend(by.remove(ring));
        }
    }
    out.extend(by.into_values());
    out
}

/// How often a rollout's ring halted in the month: by its history, or (for a status
/// written before histories were kept) by its last halt.
fn halts(
    s: &crate::api::PatchRolloutStatus,
    ring: &str,
    halted_at: Option<Timestamp>,
    start: Timestamp,
    end: Timestamp,
) -> u32 {
    let within = |at: Timestamp| at >= start && at < end;
    if s.history.is_empty() {
        return u32::from(halted_at.is_some_and(within));
    }
    s.history
        .iter()
        .filter(|h| {
            h.reason == Reason::RingHalted && h.ring.as_deref() == Some(ring) && within(h.at)
        })
        .count() as u32
}

fn funnel_entry<'m>(by: &'m mut BTreeMap<String, RingFunnel>, ring: &str) -> &'m mut RingFunnel {
    by.entry(ring.to_string()).or_insert_with(|| RingFunnel {
        ring: ring.to_string(),
        ..RingFunnel::default()
    })
}

/// Every approval of a rollout approved before the month ended and active in it.
fn approvals(
    src: &Snapshot<'_>,
    rows: &[Row<'_>],
    start: Timestamp,
    end: Timestamp,
) -> Vec<ApprovalRow> {
    let severity = |policy: &str, patch: &str| {
        rows.iter()
            .find(|r| r.policy == policy && r.patch.spec.id == patch)
            .map(|r| r.severity)
    };
    let mut out: Vec<ApprovalRow> = src
        .rollouts
        .iter()
        .filter_map(|ro| {
            let s = ro.status.as_ref()?;
            let a = s.approval.as_ref()?;
            let active = s.rings.iter().any(|r| ring_in_month(r, start, end))
                || a.approved_at.is_some_and(|at| at >= start && at < end);
            (active && a.approved_at.is_none_or(|at| at < end)).then(|| ApprovalRow {
                rollout: ro.metadata.name.clone().unwrap_or_default(),
                policy: ro.spec.policy.clone(),
                patch: ro.spec.patch.clone(),
                severity: severity(&ro.spec.policy, &ro.spec.patch),
                at: a.approved_at,
                by: a.by.clone().unwrap_or_default(),
                emergency: a.emergency,
                phase: s
                    .phase
                    .map(|p| format!("{p:?}"))
                    .unwrap_or_else(|| "Pending".into()),
            })
        })
        .collect();
    out.sort_by(|a, b| (a.at, &a.rollout).cmp(&(b.at, &b.rollout)));
    out
}

/// What a history reason is as an intervention, if it is one.
fn intervention(reason: Reason) -> Option<InterventionKind> {
    Some(match reason {
        Reason::RingHalted => InterventionKind::Halted,
        Reason::RollbackStarted => InterventionKind::RollbackStarted,
        Reason::RolledBack => InterventionKind::RolledBack,
        Reason::RolloutAborted => InterventionKind::Aborted,
        Reason::RolloutPaused | Reason::RingPaused => InterventionKind::Paused,
        Reason::RolloutResumed | Reason::RingResumed => InterventionKind::Resumed,
        Reason::RingPromoted => InterventionKind::Promoted,
        Reason::PatchHeld => InterventionKind::Held,
        _ => return None,
    })
}

/// Every halt, rollback, abort, pause, resumption, promotion and hold the rollouts'
/// histories record in the month, in time order.
fn interventions(src: &Snapshot<'_>, start: Timestamp, end: Timestamp) -> Vec<InterventionRow> {
    let mut out: Vec<InterventionRow> = src
        .rollouts
        .iter()
        .filter_map(|ro| Some((ro, ro.status.as_ref()?)))
        .flat_map(|(ro, s)| {
            s.history
                .iter()
                .filter(|h| h.at >= start && h.at < end)
                .filter_map(move |h| {
                    Some(InterventionRow {
                        at: h.at,
                        kind: intervention(h.reason)?,
                        rollout: name(&ro.metadata),
                        patch: ro.spec.patch.clone(),
                        ring: h.ring.clone(),
                        message: h.message.clone(),
                    })
                })
        })
        .collect();
    out.sort_by(|a, b| (a.at, &a.rollout, a.kind).cmp(&(b.at, &b.rollout, b.kind)));
    out
}

/// Every freeze of a policy or ring that overlaps the month.
fn freezes(src: &Snapshot<'_>, start: Timestamp, end: Timestamp) -> Vec<FreezeRow> {
    let declared = src
        .policies
        .iter()
        .map(|p| {
            (
                format!("PatchPolicy/{}", name(&p.metadata)),
                &p.spec.freezes,
            )
        })
        .chain(src.rings.iter().map(|r| {
            (
                format!("DeploymentRing/{}", name(&r.metadata)),
                &r.spec.freezes,
            )
        }));
    let mut out: Vec<FreezeRow> = declared
        .flat_map(|(scope, fs)| {
            fs.iter()
                .filter(|f| f.from < end && f.until > start)
                .map(move |f| FreezeRow {
                    scope: scope.clone(),
                    from: f.from,
                    until: f.until,
                    reason: f.reason.clone(),
                    owner: f.owner.clone(),
                })
        })
        .collect();
    out.sort_by(|a, b| (a.from, &a.scope).cmp(&(b.from, &b.scope)));
    out
}

fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// Every exception that had not expired before the month began.
fn exceptions(src: &Snapshot<'_>, start: Timestamp, end: Timestamp) -> Vec<ExceptionRow> {
    src.exceptions
        .iter()
        .filter(|e| e.spec.expires_at >= start)
        .filter(|e| {
            let since = e.status.as_ref().and_then(|s| s.active_since);
            since.is_none_or(|s| s < end)
        })
        .map(|e| {
            let s = e.status.clone().unwrap_or_default();
            ExceptionRow {
                name: name(&e.metadata),
                patches: e.spec.patches.clone(),
                covered_devices: s.covered_devices,
                owner: e.spec.owner.clone(),
                approved_by: e.spec.approved_by.clone(),
                reason: e.spec.reason.clone(),
                compensating_controls: e.spec.compensating_controls.clone(),
                ticket: e.spec.ticket.clone(),
                active_since: s.active_since,
                expires_at: e.spec.expires_at,
                phase: s
                    .phase
                    .map(|p| format!("{p:?}"))
                    .unwrap_or_else(|| "Unknown".into()),
                history: s
                    .history
                    .iter()
                    .map(|h| PhaseChange {
                        at: h.at,
                        phase: format!("{:?}", h.phase),
                        message: h.message.clone(),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Whether a pair missed its SLA: overdue at `asOf`, or installed late.
pub fn missed(p: &PairRow) -> bool {
    matches!(p.state, ClockState::Overdue | ClockState::InstalledLate)
}

/// SLA compliance per ring over the counted pairs of its devices, by the rule of the SLA
/// rows (installed on time, not yet due or exempt, of all), with the ring's pairs and
/// those that missed: the ring order is the pairs' first appearance. Devices in no ring
/// are left out.
pub fn ring_compliance(pairs: &[PairRow]) -> Vec<RingCompliance> {
    let mut by: Vec<(String, Tally, u32)> = Vec::new();
    for p in pairs.iter().filter(|p| p.counted) {
        let Some(ring) = p.ring.as_deref() else {
            continue;
        };
        let i = match by.iter().position(|(r, _, _)| r == ring) {
            Some(i) => i,
            None => {
                by.push((ring.to_string(), Tally::default(), 0));
                by.len() - 1
            }
        };
        let (_, tally, missed_pairs) = &mut by[i];
        tally.add(&p.tier, p.severity, p.state, None);
        *missed_pairs += u32::from(missed(p));
    }
    by.into_iter()
        .map(|(ring, tally, missed)| {
            let (ok, all) = tally.totals();
            RingCompliance {
                ring,
                pairs: all,
                missed,
                compliance_percent: sla::percent(ok, all),
            }
        })
        .collect()
}

/// One ring's SLA compliance (see [`ring_compliance`]).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RingCompliance {
    /// The ring.
    pub ring: String,
    /// Counted pairs of its devices.
    pub pairs: u32,
    /// Of those, overdue or installed late.
    pub missed: u32,
    /// Pairs in good standing of all, percent.
    pub compliance_percent: Option<f64>,
}

/// The devices, vendors and tiers with the most pairs overdue or installed late.
fn laggards(pairs: &[PairRow]) -> Laggards {
    let rank = |key: fn(&PairRow) -> &str| {
        let mut by: BTreeMap<&str, Laggard> = BTreeMap::new();
        for p in pairs.iter().filter(|p| p.counted) {
            let l = by.entry(key(p)).or_insert_with(|| Laggard {
                name: key(p).to_string(),
                missed: 0,
                overdue: 0,
                pairs: 0,
            });
            l.pairs += 1;
            l.overdue += u32::from(p.state == ClockState::Overdue);
            l.missed += u32::from(missed(p));
        }
        let mut v: Vec<Laggard> = by.into_values().filter(|l| l.missed > 0).collect();
        v.sort_by(|a, b| b.missed.cmp(&a.missed).then(a.name.cmp(&b.name)));
        v.truncate(20);
        v
    };
    Laggards {
        devices: rank(|p| &p.device),
        vendors: rank(|p| &p.vendor),
        tiers: rank(|p| &p.tier),
    }
}
