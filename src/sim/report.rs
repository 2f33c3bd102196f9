//! The SLA and ring report of a finished run, and its text and JSON renderings.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::api::{ExceptionPhase, RingPhase, SlaCell};

use super::run::{Entry, Outcome, end_of};

/// The report at the end of a run.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The tenant.
    pub namespace: String,
    /// First instant.
    pub start: jiff::Timestamp,
    /// Last instant.
    pub end: jiff::Timestamp,
    /// The seed.
    pub seed: u64,
    /// Devices simulated.
    pub devices: usize,
    /// Engine passes run.
    pub passes: u64,
    /// SLA per policy.
    pub policies: Vec<PolicyReport>,
    /// Outcomes per ring over every rollout.
    pub rings: Vec<RingReport>,
    /// Every rollout, how it was approved and where it ended.
    pub rollouts: Vec<RolloutReport>,
    /// Every exception.
    pub exceptions: Vec<ExceptionReport>,
}

/// One policy's SLA figures.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReport {
    /// The policy.
    pub name: String,
    /// Devices governed.
    pub devices: u32,
    /// Overall compliance.
    pub compliance: Option<String>,
    /// Pairs overdue at the end.
    pub overdue: u32,
    /// Per tier × severity.
    pub sla: Vec<SlaCell>,
}

/// One ring's outcomes over every rollout.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RingReport {
    /// The ring.
    pub name: String,
    /// Rollouts that reached it.
    pub rollouts: u32,
    /// Devices targeted, summed over rollouts.
    pub targeted: u32,
    /// Installed.
    pub installed: u32,
    /// Failed.
    pub failed: u32,
    /// Rolled back.
    pub rolled_back: u32,
    /// Installed of finished attempts, percent.
    pub success_rate: Option<f64>,
    /// Failed of finished attempts, percent.
    pub failure_rate: Option<f64>,
    /// Rolled back of devices that had it, percent.
    pub rollback_rate: Option<f64>,
}

/// One rollout.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutReport {
    /// The rollout.
    pub name: String,
    /// The patch.
    pub patch: String,
    /// Approved by (rule or list).
    pub approved_by: Option<String>,
    /// Approved at.
    pub approved_at: Option<jiff::Timestamp>,
    /// Final phase.
    pub phase: String,
    /// Installed of targeted.
    pub progress: String,
    /// Where it stands, in words.
    pub message: Option<String>,
}

/// One exception.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionReport {
    /// The exception.
    pub name: String,
    /// Its final phase.
    pub phase: Option<ExceptionPhase>,
    /// Its owner.
    pub owner: String,
    /// Its expiry.
    pub expires_at: jiff::Timestamp,
    /// Why it is in that phase.
    pub message: Option<String>,
}

/// Builds the report of a finished run.
pub fn report(o: &Outcome) -> Report {
    let w = &o.world;
    let policies = w
        .policies
        .iter()
        .map(|(name, p)| {
            let s = p.status.clone().unwrap_or_default();
            PolicyReport {
                name: name.clone(),
                devices: s.devices,
                compliance: s.compliance,
                overdue: s.overdue,
                sla: s.sla,
            }
        })
        .collect();
    let mut rings: BTreeMap<String, RingReport> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for p in w.policies.values() {
        for r in &p.spec.rings {
            if !order.contains(r) {
                order.push(r.clone());
            }
        }
    }
    let mut rollouts = Vec::new();
    for (name, r) in &w.rollouts {
        let Some(s) = r.status.as_ref() else { continue };
        for rp in &s.rings {
            if rp.phase == RingPhase::Pending {
                continue;
            }
            let e = rings.entry(rp.name.clone()).or_insert_with(|| RingReport {
                name: rp.name.clone(),
                ..Default::default()
            });
            e.rollouts += 1;
            e.targeted += rp.targeted;
            e.installed += rp.installed;
            e.failed += rp.failed;
            e.rolled_back += rp.rolled_back;
        }
        let approval = s.approval.as_ref();
        rollouts.push(RolloutReport {
            name: name.clone(),
            patch: r.spec.patch.clone(),
            approved_by: approval.and_then(|a| a.by.clone()),
            approved_at: approval.and_then(|a| a.approved_at),
            phase: s.phase.map(|p| format!("{p:?}")).unwrap_or_default(),
            progress: s.progress.clone().unwrap_or_default(),
            message: s.message.clone(),
        });
    }
    let pct = |a: u32, b: u32| crate::engine::sla::percent(a, b);
    let mut ring_list: Vec<RingReport> = order.iter().filter_map(|n| rings.remove(n)).collect();
    ring_list.extend(rings.into_values());
    for r in &mut ring_list {
        r.success_rate = pct(r.installed, r.installed + r.failed);
        r.failure_rate = pct(r.failed, r.installed + r.failed);
        r.rollback_rate = pct(r.rolled_back, r.installed + r.rolled_back);
    }
    let exceptions = w
        .exceptions
        .iter()
        .map(|(name, e)| ExceptionReport {
            name: name.clone(),
            phase: e.status.as_ref().and_then(|s| s.phase),
            owner: e.spec.owner.clone(),
            expires_at: e.spec.expires_at,
            message: e.status.as_ref().and_then(|s| s.message.clone()),
        })
        .collect();
    Report {
        namespace: w.namespace.clone(),
        start: o.options.start,
        end: end_of(&o.options),
        seed: o.options.seed,
        devices: w.devices.len(),
        passes: o.passes,
        policies,
        rings: ring_list,
        rollouts,
        exceptions,
    }
}

/// The timeline and report as JSON.
pub fn json(o: &Outcome) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    struct Doc<'a> {
        timeline: &'a [Entry],
        report: Report,
    }
    serde_json::to_string_pretty(&Doc {
        timeline: &o.timeline,
        report: report(o),
    })
}

fn when(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// The timeline and report as text for a person.
pub fn text(o: &Outcome) -> String {
    let r = report(o);
    let mut out = String::new();
    write_header(&mut out, &r);
    write_timeline(&mut out, &o.timeline);
    write_sla(&mut out, &r.policies);
    write_rings(&mut out, &r.rings);
    write_rollouts(&mut out, &r.rollouts);
    write_exceptions(&mut out, &r.exceptions);
    let _ = writeln!(
        out,
        "\n{} engine passes over {} timeline entries.",
        r.passes,
        o.timeline.len()
    );
    out
}

/// Writes the first line: the tenant, its size, the period and the seed.
fn write_header(out: &mut String, r: &Report) {
    let _ = writeln!(
        out,
        "ringmaster simulate: tenant {} with {} devices, {} to {} (UTC), seed {}\n",
        r.namespace,
        r.devices,
        when(r.start),
        when(r.end),
        r.seed
    );
}

/// Writes the timeline, one line per entry except that same-instant installs of one
/// patch fold into one line.
fn write_timeline(out: &mut String, tl: &[Entry]) {
    let _ = writeln!(out, "TIMELINE");
    let mut i = 0;
    while i < tl.len() {
        let e = &tl[i];
        if e.reason == "Installed" {
            i = write_installs(out, tl, i);
            continue;
        }
        let mark = if e.severity == "Warning" { "!" } else { " " };
        let _ = writeln!(
            out,
            "{}{mark} {:<24} {:<34} {}",
            when(e.at),
            e.reason,
            e.object,
            e.message
        );
        i += 1;
    }
}

/// Writes the `Installed` entry at `tl[i]` folded together with the ones right after it
/// at the same instant for the same patch, as one line naming the first few devices;
/// returns the index of the first entry not folded in.
fn write_installs(out: &mut String, tl: &[Entry], i: usize) -> usize {
    let e = &tl[i];
    let patch = e.message.rsplit(' ').next().unwrap_or("").to_string();
    let mut devices = Vec::new();
    let mut j = i;
    while j < tl.len()
        && tl[j].at == e.at
        && tl[j].reason == "Installed"
        && tl[j].message.ends_with(&format!(" {patch}"))
    {
        devices.push(tl[j].object.trim_start_matches("mdev/").to_string());
        j += 1;
    }
    let shown: Vec<&str> = devices.iter().take(4).map(String::as_str).collect();
    let more = if devices.len() > 4 {
        format!(" and {} more", devices.len() - 4)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{}  {:<24} {:<34} {patch} installed on {} device(s): {}{more}",
        when(e.at),
        "Installed",
        format!("patch/{patch}"),
        devices.len(),
        shown.join(", ")
    );
    j
}

/// Writes the SLA section: per policy, a summary line and its tier × severity table.
fn write_sla(out: &mut String, policies: &[PolicyReport]) {
    let _ = writeln!(out, "\nSLA COMPLIANCE");
    for p in policies {
        let _ = writeln!(
            out,
            "policy {}: {} devices, compliance {}, {} overdue pair(s)",
            p.name,
            p.devices,
            p.compliance.as_deref().unwrap_or("n/a"),
            p.overdue
        );
        let _ = writeln!(
            out,
            "  {:<10} {:<9} {:>7} {:>5} {:>7} {:>5} {:>6} {:>11} {:>10}",
            "TIER",
            "SEVERITY",
            "ONTIME",
            "LATE",
            "OVERDUE",
            "OPEN",
            "EXEMPT",
            "COMPLIANCE",
            "MEDIAN-TTI"
        );
        for c in &p.sla {
            write_sla_cell(out, c);
        }
    }
}

/// Writes one row of a policy's SLA table.
fn write_sla_cell(out: &mut String, c: &SlaCell) {
    let _ = writeln!(
        out,
        "  {:<10} {:<9} {:>7} {:>5} {:>7} {:>5} {:>6} {:>11} {:>10}",
        c.tier,
        c.severity.as_str(),
        c.installed_on_time,
        c.installed_late,
        c.overdue,
        c.open,
        c.exempt,
        c.compliance_percent
            .map_or("n/a".into(), |v| format!("{v:.1}%")),
        c.median_time_to_install
            .map_or("-".into(), |d| human_duration(d.as_secs()))
    );
}

/// Writes the rings section: a table of each ring's outcomes over every rollout.
fn write_rings(out: &mut String, rings: &[RingReport]) {
    let _ = writeln!(out, "\nRINGS");
    let _ = writeln!(
        out,
        "  {:<16} {:>8} {:>8} {:>9} {:>6} {:>10} {:>8} {:>8} {:>9}",
        "RING",
        "ROLLOUTS",
        "TARGETED",
        "INSTALLED",
        "FAILED",
        "ROLLEDBACK",
        "SUCCESS",
        "FAILURE",
        "ROLLBACK"
    );
    for g in rings {
        let p = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}%"));
        let _ = writeln!(
            out,
            "  {:<16} {:>8} {:>8} {:>9} {:>6} {:>10} {:>8} {:>8} {:>9}",
            g.name,
            g.rollouts,
            g.targeted,
            g.installed,
            g.failed,
            g.rolled_back,
            p(g.success_rate),
            p(g.failure_rate),
            p(g.rollback_rate)
        );
    }
}

/// Writes the rollouts section: one line per rollout with its approval and end state.
fn write_rollouts(out: &mut String, rollouts: &[RolloutReport]) {
    let _ = writeln!(out, "\nROLLOUTS");
    for ro in rollouts {
        let _ = writeln!(
            out,
            "  {:<40} {:<12} {:>9}  approved by {} at {}; {}",
            ro.name,
            ro.phase,
            ro.progress,
            ro.approved_by.as_deref().unwrap_or("-"),
            ro.approved_at.map_or("-".into(), when),
            ro.message.as_deref().unwrap_or("")
        );
    }
}

/// Writes the exceptions section: one line per exception with its phase and expiry.
fn write_exceptions(out: &mut String, exceptions: &[ExceptionReport]) {
    let _ = writeln!(out, "\nEXCEPTIONS");
    for e in exceptions {
        let _ = writeln!(
            out,
            "  {:<28} {:<16} owner {:<24} expires {}; {}",
            e.name,
            e.phase.map(|p| format!("{p:?}")).unwrap_or_default(),
            e.owner,
            when(e.expires_at),
            e.message.as_deref().unwrap_or("")
        );
    }
}

fn human_duration(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}
