//! The GitOps preview: a change's effect, as two runs of the same virtual period compare.
//!
//! Both sides are played by the simulator with the same period and seed; each is read
//! through the evidence report's own builder over the whole run
//! ([`crate::report::build::build_period`]), so every figure here is the one a packet
//! would show, computed by the same rule. This module only compares two such reports and
//! renders the comparison as a plan (text), a pull-request comment (Markdown) or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use serde::Serialize;

use crate::api::Severity;
use crate::report::build::{self, RingCompliance};
use crate::report::markdown::human;
use crate::report::model::{InterventionKind, MonthReport};

use super::run::{Outcome, end_of};

/// The report of a finished run over its whole period `[start, end)`, as it stood at the
/// end; `time_zone` is the zone dates are shown in.
pub fn period_report(outcome: &Outcome, time_zone: &str) -> MonthReport {
    let (start, end) = (outcome.options.start, end_of(&outcome.options));
    let label = format!("{} .. {}", start, end);
    build::build_period(&outcome.world.snapshot(), &label, time_zone, start, end)
}

/// A figure on both sides and the difference (head minus baseline), when both have it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change<T> {
    /// The baseline's figure.
    pub before: Option<T>,
    /// The head's figure.
    pub after: Option<T>,
    /// `after - before`, when both exist.
    pub difference: Option<T>,
}

impl Change<f64> {
    /// A percentage's change, the difference rounded to one decimal as the figures are.
    pub fn percent(before: Option<f64>, after: Option<f64>) -> Self {
        let difference = before
            .zip(after)
            .map(|(b, a)| ((a - b) * 10.0).round() / 10.0);
        Self {
            before,
            after,
            difference,
        }
    }

    /// How many points the figure fell (0 when it rose or one side lacks it).
    pub fn drop(&self) -> f64 {
        self.difference.map_or(0.0, |d| (-d).max(0.0))
    }
}

impl Change<i64> {
    fn secs(before: Option<i64>, after: Option<i64>) -> Self {
        Self {
            before,
            after,
            difference: before.zip(after).map(|(b, a)| a - b),
        }
    }
}

impl Change<u32> {
    fn count(before: u32, after: u32) -> Self {
        Self {
            before: Some(before),
            after: Some(after),
            difference: None,
        }
    }

    /// `after - before`.
    pub fn delta(&self) -> i64 {
        i64::from(self.after.unwrap_or(0)) - i64::from(self.before.unwrap_or(0))
    }
}

impl<T: PartialEq> Change<T> {
    /// Both sides show the same figure.
    pub fn unchanged(&self) -> bool {
        self.before == self.after
    }
}

/// One policy × tier × severity cell.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlaChange {
    /// The policy.
    pub policy: String,
    /// The tier.
    pub tier: String,
    /// The severity.
    pub severity: Severity,
    /// The install-within on the head's side (else the baseline's), as written.
    pub within: Option<String>,
    /// Pairs in good standing of all, percent.
    pub compliance: Change<f64>,
    /// Pairs overdue at the end of the run.
    pub overdue: Change<u32>,
    /// Median release-to-install time of the cell's pairs installed in the run, seconds.
    pub median_time_to_install_seconds: Change<i64>,
}

/// One ring.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RingChange {
    /// The ring.
    pub ring: String,
    /// SLA compliance of its devices' pairs, percent.
    pub compliance: Change<f64>,
    /// Installed of installed + failed in the run, percent.
    pub success_rate: Change<f64>,
    /// Times the ring halted.
    pub halts: Change<u32>,
    /// Patches rolled back from its devices.
    pub rolled_back: Change<u32>,
}

/// A halt or a rollback one side has and the other has not.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stop {
    /// `Halted` or `RollbackStarted`.
    pub kind: InterventionKind,
    /// The rollout.
    pub rollout: String,
    /// The ring.
    pub ring: Option<String>,
    /// When, on the side that has it.
    pub at: Timestamp,
    /// What the operator recorded.
    pub message: String,
}

/// A compliance figure that fell by more than the gate allows.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GateHit {
    /// The figure, as the text output names it.
    pub figure: String,
    /// Its change.
    pub compliance: Change<f64>,
}

/// The gate `--max-compliance-drop` sets.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gate {
    /// The largest drop allowed, in percentage points.
    pub max_compliance_drop: f64,
    /// The figures that fell by more.
    pub exceeded: Vec<GateHit>,
}

/// What a change does, baseline against head.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// The tenant.
    pub tenant: String,
    /// The run's first instant (both sides).
    pub start: Timestamp,
    /// The run's end (both sides): every figure is taken then.
    pub end: Timestamp,
    /// The time zone dates are shown in.
    pub time_zone: String,
    /// Days played.
    pub days: u32,
    /// The seed of both runs.
    pub seed: u64,
    /// Things the reader should know about how the two sides were played.
    pub notes: Vec<String>,
    /// Overall SLA compliance.
    pub compliance: Change<f64>,
    /// Per policy × tier × severity, in the baseline's order, then cells only the head
    /// has.
    pub sla: Vec<SlaChange>,
    /// Per ring.
    pub rings: Vec<RingChange>,
    /// Median release-to-install time over the pairs installed in the run, seconds.
    pub median_time_to_install_seconds: Change<i64>,
    /// Pairs overdue at the end.
    pub overdue: Change<u32>,
    /// Pairs installed after their deadline.
    pub installed_late: Change<u32>,
    /// Devices with a pair overdue at the end or installed late.
    pub breaching_devices: Change<u32>,
    /// Devices that breach on the head's side only.
    pub new_breaches: Vec<String>,
    /// Devices that breach on the baseline's side only.
    pub cleared_breaches: Vec<String>,
    /// Rings halted in the run.
    pub halts: Change<u32>,
    /// Rollbacks started in the run.
    pub rollbacks: Change<u32>,
    /// Halts and rollbacks only the head's run has.
    pub new_stops: Vec<Stop>,
    /// Halts and rollbacks only the baseline's run has.
    pub gone_stops: Vec<Stop>,
    /// The gate, when one was set.
    pub gate: Option<Gate>,
}

/// Compares the baseline's report with the head's (both from [`period_report`] over the
/// same period).
pub fn compare(before: &MonthReport, after: &MonthReport, seed: u64, days: u32) -> Preview {
    let (bh, ah) = (&before.headline, &after.headline);
    let (bb, ab) = (breaching(before), breaching(after));
    let (new_stops, gone_stops) = stops(before, after);
    Preview {
        tenant: after.tenant.clone(),
        start: after.start,
        end: after.end,
        time_zone: after.time_zone.clone(),
        days,
        seed,
        notes: Vec::new(),
        compliance: Change::percent(bh.compliance_percent, ah.compliance_percent),
        sla: sla(before, after),
        rings: rings(before, after),
        median_time_to_install_seconds: Change::secs(
            bh.median_time_to_install_seconds,
            ah.median_time_to_install_seconds,
        ),
        overdue: Change::count(bh.overdue, ah.overdue),
        installed_late: Change::count(bh.installed_late, ah.installed_late),
        breaching_devices: Change::count(bb.len() as u32, ab.len() as u32),
        new_breaches: ab.iter().filter(|d| !bb.contains(*d)).cloned().collect(),
        cleared_breaches: bb.iter().filter(|d| !ab.contains(*d)).cloned().collect(),
        halts: Change::count(bh.halts, ah.halts),
        rollbacks: Change::count(bh.rollbacks, ah.rollbacks),
        new_stops,
        gone_stops,
        gate: None,
    }
}

/// The devices with a counted pair that missed its SLA, by name.
fn breaching(r: &MonthReport) -> std::collections::BTreeSet<String> {
    r.pairs
        .iter()
        .filter(|p| p.counted && build::missed(p))
        .map(|p| p.device.clone())
        .collect()
}

fn sla(before: &MonthReport, after: &MonthReport) -> Vec<SlaChange> {
    let key = |r: &crate::report::model::SlaRow| (r.policy.clone(), r.tier.clone(), r.severity);
    let heads: BTreeMap<_, _> = after.sla.iter().map(|r| (key(r), r)).collect();
    let bases: BTreeMap<_, _> = before.sla.iter().map(|r| (key(r), r)).collect();
    let keys = before
        .sla
        .iter()
        .map(key)
        .chain(after.sla.iter().map(key).filter(|k| !bases.contains_key(k)));
    keys.map(|k| {
        let (b, a) = (bases.get(&k), heads.get(&k));
        SlaChange {
            within: a.or(b).and_then(|r| r.within.clone()),
            compliance: Change::percent(
                b.and_then(|r| r.compliance_percent),
                a.and_then(|r| r.compliance_percent),
            ),
            overdue: Change {
                before: b.map(|r| r.overdue),
                after: a.map(|r| r.overdue),
                difference: None,
            },
            median_time_to_install_seconds: Change::secs(
                b.and_then(|r| r.median_time_to_install_seconds),
                a.and_then(|r| r.median_time_to_install_seconds),
            ),
            policy: k.0,
            tier: k.1,
            severity: k.2,
        }
    })
    .collect()
}

fn rings(before: &MonthReport, after: &MonthReport) -> Vec<RingChange> {
    let (bc, ac) = (
        build::ring_compliance(&before.pairs),
        build::ring_compliance(&after.pairs),
    );
    // The funnels' order (the policies' ring order), then rings only pairs name.
    let mut names: Vec<&str> = Vec::new();
    let all = before
        .rings
        .iter()
        .chain(&after.rings)
        .map(|f| f.ring.as_str());
    for n in all.chain(bc.iter().chain(&ac).map(|c| c.ring.as_str())) {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let compliance =
        |cs: &[RingCompliance], n: &str| cs.iter().find(|c| c.ring == n)?.compliance_percent;
    names
        .into_iter()
        .map(|n| {
            let bf = before.rings.iter().find(|f| f.ring == n);
            let af = after.rings.iter().find(|f| f.ring == n);
            RingChange {
                ring: n.to_string(),
                compliance: Change::percent(compliance(&bc, n), compliance(&ac, n)),
                success_rate: Change::percent(
                    bf.and_then(|f| f.success_rate_percent),
                    af.and_then(|f| f.success_rate_percent),
                ),
                halts: Change::count(bf.map_or(0, |f| f.halts), af.map_or(0, |f| f.halts)),
                rolled_back: Change::count(
                    bf.map_or(0, |f| f.rolled_back),
                    af.map_or(0, |f| f.rolled_back),
                ),
            }
        })
        .collect()
}

/// The halts and rollbacks each side has that the other has not, matched by kind,
/// rollout and ring (not by time: the same halt a day later is the same halt).
fn stops(before: &MonthReport, after: &MonthReport) -> (Vec<Stop>, Vec<Stop>) {
    let list = |r: &MonthReport| -> Vec<Stop> {
        r.interventions
            .iter()
            .filter(|i| {
                matches!(
                    i.kind,
                    InterventionKind::Halted | InterventionKind::RollbackStarted
                )
            })
            .map(|i| Stop {
                kind: i.kind,
                rollout: i.rollout.clone(),
                ring: i.ring.clone(),
                at: i.at,
                message: i.message.clone(),
            })
            .collect()
    };
    let only = |ours: &[Stop], theirs: &[Stop]| {
        let mut left: Vec<&Stop> = theirs.iter().collect();
        let mut out = Vec::new();
        for s in ours {
            match left
                .iter()
                .position(|t| (t.kind, &t.rollout, &t.ring) == (s.kind, &s.rollout, &s.ring))
            {
                Some(i) => {
                    left.remove(i);
                }
                None => out.push(s.clone()),
            }
        }
        out
    };
    let (b, a) = (list(before), list(after));
    (only(&a, &b), only(&b, &a))
}

impl Preview {
    /// Every compliance figure (overall, per cell, per ring), named as the text output
    /// names it.
    pub fn compliance_figures(&self) -> Vec<(String, Change<f64>)> {
        let mut out = vec![("overall compliance".to_string(), self.compliance)];
        out.extend(self.sla.iter().map(|c| (cell_name(c), c.compliance)));
        out.extend(
            self.rings
                .iter()
                .map(|r| (format!("ring {}", r.ring), r.compliance)),
        );
        out
    }

    /// Sets the gate: every compliance figure both sides have that fell by more than
    /// `max` points.
    pub fn gate(mut self, max: f64) -> Self {
        let exceeded = self
            .compliance_figures()
            .into_iter()
            .filter(|(_, c)| c.drop() > max)
            .map(|(figure, compliance)| GateHit { figure, compliance })
            .collect();
        self.gate = Some(Gate {
            max_compliance_drop: max,
            exceeded,
        });
        self
    }

    /// Whether the gate is set and some figure fell by more than it allows.
    pub fn gate_tripped(&self) -> bool {
        self.gate.as_ref().is_some_and(|g| !g.exceeded.is_empty())
    }

    /// Whether no figure differs, and no device, halt or rollback is on one side only.
    pub fn unchanged(&self) -> bool {
        self.lines().iter().all(|l| matches!(l.marker, ' ' | '#'))
    }

    /// Every figure as a plan line: changed ones marked.
    fn lines(&self) -> Vec<Line> {
        let mut out = Vec::new();
        let section = |out: &mut Vec<Line>, s: &'static str| out.push(Line::section(s));
        section(&mut out, "headline");
        out.push(pct_line("overall compliance", &self.compliance));
        out.push(dur_line(
            "median time to install",
            &self.median_time_to_install_seconds,
        ));
        out.push(count_line("pairs overdue at the end", &self.overdue));
        out.push(count_line("pairs installed late", &self.installed_late));
        out.push(count_line(
            "devices that breach an SLA",
            &self.breaching_devices,
        ));
        out.push(count_line("ring halts", &self.halts));
        out.push(count_line("rollbacks started", &self.rollbacks));
        section(&mut out, "SLA compliance per policy × tier × severity");
        for c in &self.sla {
            let mut l = pct_line(&cell_name(c), &c.compliance);
            if !c.overdue.unchanged() && l.marker == ' ' {
                l.marker = '~';
            }
            if !c.overdue.unchanged() {
                let o = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
                let _ = write!(
                    l.extra,
                    "; overdue {} → {}",
                    o(c.overdue.before),
                    o(c.overdue.after)
                );
            }
            if !c.median_time_to_install_seconds.unchanged() {
                let d = |v: Option<i64>| v.map_or("-".to_string(), human);
                let _ = write!(
                    l.extra,
                    "; median time to install {} → {}",
                    d(c.median_time_to_install_seconds.before),
                    d(c.median_time_to_install_seconds.after)
                );
            }
            out.push(l);
        }
        section(&mut out, "per ring");
        for r in &self.rings {
            out.push(pct_line(
                &format!("ring {} compliance", r.ring),
                &r.compliance,
            ));
            out.push(pct_line(
                &format!("ring {} install success", r.ring),
                &r.success_rate,
            ));
            out.push(count_line(&format!("ring {} halts", r.ring), &r.halts));
            out.push(count_line(
                &format!("ring {} rolled back", r.ring),
                &r.rolled_back,
            ));
        }
        section(&mut out, "devices that would breach");
        for d in &self.new_breaches {
            out.push(Line::item('+', Worse, format!("{d} would breach an SLA")));
        }
        for d in &self.cleared_breaches {
            out.push(Line::item(
                '-',
                Better,
                format!("{d} would no longer breach"),
            ));
        }
        section(&mut out, "rollouts that would halt");
        for s in &self.new_stops {
            out.push(Line::item('+', Worse, stop_text(s, "would")));
        }
        for s in &self.gone_stops {
            out.push(Line::item('-', Better, stop_text(s, "would no longer")));
        }
        out
    }
}

/// `workstations tier-1 × High`.
fn cell_name(c: &SlaChange) -> String {
    format!("{} {} × {}", c.policy, c.tier, c.severity)
}

fn stop_text(s: &Stop, would: &str) -> String {
    let ring = s.ring.as_deref().unwrap_or("?");
    let what = match s.kind {
        InterventionKind::RollbackStarted => "roll back after",
        _ => "halt in",
    };
    format!(
        "prl/{} {would} {what} ring {ring} ({})",
        s.rollout, s.message
    )
}

use Tone::{Better, Neutral, Worse};

/// Which way a change goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tone {
    Better,
    Worse,
    Neutral,
}

/// One line of the plan.
struct Line {
    /// `~` changed, `+` only on the head's side, `-` only on the baseline's, ` ` same;
    /// `#` a section heading.
    marker: char,
    tone: Tone,
    /// The figure's name; empty for a listed device or rollout.
    name: String,
    /// The baseline's value, the head's and the change, as shown (a dash for none);
    /// for a listed item, `before` holds its text.
    before: String,
    after: String,
    change: String,
    /// More on a changed cell (its overdue pairs, its median time to install).
    extra: String,
}

const NONE: &str = "—";

impl Line {
    fn section(name: &str) -> Self {
        Self::item('#', Neutral, String::new()).named(name)
    }

    fn item(marker: char, tone: Tone, text: String) -> Self {
        Self {
            marker,
            tone,
            name: String::new(),
            before: text,
            after: String::new(),
            change: String::new(),
            extra: String::new(),
        }
    }

    fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// `98.2% → 91.0% (−7.2)`, `100.0% (unchanged)`, `50.0% (head only)`.
    fn text(&self) -> String {
        if self.name.is_empty() {
            return self.before.clone();
        }
        match (self.marker, self.change.as_str()) {
            (' ', _) => format!("{} (unchanged)", self.after),
            ('+', _) => format!("{} (head only)", self.after),
            ('-', _) => format!("{} (baseline only)", self.before),
            (_, "") => format!("{} → {}", self.before, self.after),
            (_, d) => format!("{} → {} ({d})", self.before, self.after),
        }
    }
}

/// A figure's line: `~` when both have it and it differs, `+` / `-` when one side has it.
fn line<T: PartialEq + Copy>(
    name: &str,
    c: &Change<T>,
    higher_is_better: bool,
    show: impl Fn(T) -> String,
    diff: impl Fn(&Change<T>) -> Option<(String, bool)>,
) -> Line {
    let marker = match (c.before.is_some(), c.after.is_some()) {
        _ if c.unchanged() => ' ',
        (true, true) => '~',
        (false, true) => '+',
        (true, false) => '-',
        (false, false) => ' ',
    };
    let (change, tone) = match diff(c) {
        Some((d, rose)) if marker == '~' => (
            d,
            if rose == higher_is_better {
                Better
            } else {
                Worse
            },
        ),
        _ => (String::new(), Neutral),
    };
    Line {
        marker,
        tone,
        name: name.to_string(),
        before: c.before.map_or_else(|| NONE.to_string(), &show),
        after: c.after.map_or_else(|| NONE.to_string(), &show),
        change,
        extra: String::new(),
    }
}

fn signed(d: f64) -> String {
    if d < 0.0 {
        format!("−{:.1}", -d)
    } else {
        format!("+{d:.1}")
    }
}

fn pct_line(name: &str, c: &Change<f64>) -> Line {
    line(
        name,
        c,
        true,
        |p| format!("{p:.1}%"),
        |c| c.difference.map(|d| (signed(d), d > 0.0)),
    )
}

fn dur_line(name: &str, c: &Change<i64>) -> Line {
    line(name, c, false, human, |c| {
        c.difference.map(|d| {
            let s = if d < 0 { "−" } else { "+" };
            (format!("{s}{}", human(d.abs())), d > 0)
        })
    })
}

fn count_line(name: &str, c: &Change<u32>) -> Line {
    line(
        name,
        c,
        false,
        |n| n.to_string(),
        |c| {
            let d = c.delta();
            Some((
                if d < 0 {
                    format!("−{}", -d)
                } else {
                    format!("+{d}")
                },
                d > 0,
            ))
        },
    )
}

/// How many listed devices and stops a text or Markdown rendering shows before `… and N
/// more` (JSON has them all).
const LIST_LIMIT: usize = 25;

/// The plan as text; `colour` paints worse red and better green (for a terminal).
pub fn text(p: &Preview, colour: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Preview of {}: head against baseline, played over {} .. {} ({}, {} days, seed {}); \
         figures as they stand at the end",
        p.tenant,
        local(p.start, &p.time_zone),
        local(p.end, &p.time_zone),
        p.time_zone,
        p.days,
        p.seed
    );
    for n in &p.notes {
        let _ = writeln!(out, "note: {n}");
    }
    let lines = p.lines();
    let (mut worse, mut better, mut changed, mut same) = (0, 0, 0, 0);
    let mut listed = 0usize;
    let mut hidden = 0usize;
    let mut pending_section: Option<&str> = None;
    for l in &lines {
        if l.marker == '#' {
            if hidden > 0 {
                let _ = writeln!(out, "  … and {hidden} more (see --format json)");
            }
            (listed, hidden) = (0, 0);
            pending_section = Some(l.name.as_str());
            continue;
        }
        if l.marker == ' ' {
            same += 1;
            continue;
        }
        changed += 1;
        match l.tone {
            Worse => worse += 1,
            Better => better += 1,
            Neutral => {}
        }
        if l.name.is_empty() {
            listed += 1;
            if listed > LIST_LIMIT {
                hidden += 1;
                continue;
            }
        }
        if let Some(s) = pending_section.take() {
            let _ = writeln!(out, "\n{s}:");
        }
        let body = if l.name.is_empty() {
            format!("{} {}", l.marker, l.text())
        } else {
            format!("{} {}: {}{}", l.marker, l.name, l.text(), l.extra)
        };
        let _ = writeln!(out, "{}", paint(&body, l.tone, colour));
    }
    if hidden > 0 {
        let _ = writeln!(out, "  … and {hidden} more (see --format json)");
    }
    out.push('\n');
    if changed == 0 {
        let _ = writeln!(
            out,
            "No change: all {same} figures are the same on both sides."
        );
    } else {
        let _ = writeln!(
            out,
            "Preview: {changed} changed ({worse} worse, {better} better), {same} unchanged."
        );
    }
    if let Some(g) = &p.gate {
        if g.exceeded.is_empty() {
            let _ = writeln!(
                out,
                "Gate passed: no compliance figure drops by more than {} points.",
                g.max_compliance_drop
            );
        } else {
            let _ = writeln!(
                out,
                "{}",
                paint(
                    &format!(
                        "Gate failed: {} compliance figure(s) drop by more than {} points:",
                        g.exceeded.len(),
                        g.max_compliance_drop
                    ),
                    Worse,
                    colour
                )
            );
            for h in &g.exceeded {
                let l = pct_line(&h.figure, &h.compliance);
                let _ = writeln!(
                    out,
                    "  {}: {} → {} ({} points)",
                    h.figure, l.before, l.after, l.change
                );
            }
        }
    }
    out
}

fn paint(s: &str, tone: Tone, colour: bool) -> String {
    match (colour, tone) {
        (true, Worse) => format!("\x1b[31m{s}\x1b[0m"),
        (true, Better) => format!("\x1b[32m{s}\x1b[0m"),
        _ => s.to_string(),
    }
}

/// An instant in the preview's time zone, to the minute.
fn local(at: Timestamp, zone: &str) -> String {
    match jiff::tz::TimeZone::get(zone) {
        Ok(tz) => at.to_zoned(tz).strftime("%Y-%m-%d %H:%M").to_string(),
        Err(_) => at.to_string(),
    }
}

/// The preview as a pull-request comment: a table of the headline figures, tables of
/// the changed cells and rings, and the devices and rollouts a change would affect.
pub fn markdown(p: &Preview) -> String {
    let mut out = String::new();
    let verdict = match &p.gate {
        Some(g) if !g.exceeded.is_empty() => format!(
            " — :x: {} compliance figure(s) drop by more than {} points",
            g.exceeded.len(),
            g.max_compliance_drop
        ),
        Some(g) => format!(
            " — :white_check_mark: no compliance figure drops by more than {} points",
            g.max_compliance_drop
        ),
        None => String::new(),
    };
    let _ = writeln!(out, "### ringmaster preview: {}{verdict}\n", p.tenant);
    let _ = writeln!(
        out,
        "Baseline and head played over {} .. {} ({}, {} days, seed {}); figures as they stand at the end.\n",
        local(p.start, &p.time_zone),
        local(p.end, &p.time_zone),
        p.time_zone,
        p.days,
        p.seed
    );
    for n in &p.notes {
        let _ = writeln!(out, "> {n}\n");
    }
    if p.unchanged() {
        let _ = writeln!(
            out,
            "**No change**: every figure is the same on both sides.\n"
        );
    }
    let lines = p.lines();
    let row = |out: &mut String, l: &Line| {
        let (b, a) = (&l.before, &l.after);
        let d = match l.marker {
            ' ' => NONE,
            '+' => "new",
            '-' => "gone",
            _ => l.change.as_str(),
        };
        let mark = match (l.marker, l.tone) {
            (' ', _) => "",
            (_, Worse) => " :red_circle:",
            (_, Better) => " :green_circle:",
            _ => "",
        };
        let _ = writeln!(
            out,
            "| {}{} | {b} | {a} | {d} |",
            l.name.replace('|', "\\|"),
            mark
        );
    };
    let header = "| figure | baseline | head | change |\n| --- | ---: | ---: | ---: |";
    let mut section = "";
    let mut unchanged_in_section = 0usize;
    let mut table_open = false;
    let mut listed = 0usize;
    let flush = |out: &mut String, section: &str, unchanged: usize, table_open: bool| {
        if section != "headline" && unchanged > 0 {
            if table_open {
                out.push('\n');
            }
            let _ = writeln!(out, "{unchanged} unchanged.");
        }
        if !table_open && unchanged == 0 {
            let _ = writeln!(out, "No difference.");
        }
        out.push('\n');
    };
    for l in &lines {
        if l.marker == '#' {
            if !section.is_empty() {
                flush(&mut out, section, unchanged_in_section, table_open);
            }
            section = l.name.as_str();
            (unchanged_in_section, table_open, listed) = (0, false, 0);
            let _ = writeln!(out, "**{section}**\n");
            continue;
        }
        if l.name.is_empty() {
            listed += 1;
            if listed <= LIST_LIMIT {
                let _ = writeln!(out, "- `{}` {}", l.marker, l.text());
            } else if listed == LIST_LIMIT + 1 {
                let _ = writeln!(out, "- … more in `--format json`");
            }
            table_open = true;
            continue;
        }
        if l.marker == ' ' && section != "headline" {
            unchanged_in_section += 1;
            continue;
        }
        if !table_open {
            let _ = writeln!(out, "{header}");
            table_open = true;
        }
        row(&mut out, l);
    }
    flush(&mut out, section, unchanged_in_section, table_open);
    if let Some(g) = &p.gate
        && !g.exceeded.is_empty()
    {
        let _ = writeln!(
            out,
            "**Gate** (`--max-compliance-drop {}`)\n",
            g.max_compliance_drop
        );
        for h in &g.exceeded {
            let _ = writeln!(
                out,
                "- {}: {} points",
                h.figure,
                signed(-h.compliance.drop())
            );
        }
    }
    out
}

/// The preview as JSON.
pub fn json(p: &Preview) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(p)
}

/// What the reader should know when the two sides' Fleets differ: the period comes from
/// the baseline's (the caller plays both over it), the devices and agents from each
/// side's own.
pub fn fleet_notes(base: &super::FleetSpec, head: &super::FleetSpec) -> Vec<String> {
    let mut notes = Vec::new();
    let show = |v: Option<String>| v.unwrap_or_else(|| "unset".to_string());
    let period = [
        (
            "start",
            show(base.start.map(|t| t.to_string())),
            show(head.start.map(|t| t.to_string())),
        ),
        (
            "days",
            show(base.days.map(|d| d.to_string())),
            show(head.days.map(|d| d.to_string())),
        ),
        (
            "timeZone",
            show(base.time_zone.clone()),
            show(head.time_zone.clone()),
        ),
    ];
    for (field, b, h) in period {
        if b != h {
            notes.push(format!(
                "the head's Fleet sets {field} {h}, the baseline's {b}: both sides are played over the baseline's period"
            ));
        }
    }
    // Feed files an action imports are resolved against each side's directory: compared
    // by content.
    let period_free = |f: &super::FleetSpec| {
        let mut f = super::FleetSpec {
            start: None,
            days: None,
            time_zone: None,
            ..f.clone()
        };
        let feeds: Vec<Option<Vec<u8>>> = f
            .actions
            .iter_mut()
            .flat_map(|a| std::mem::take(&mut a.catalog))
            .map(|path| std::fs::read(path).ok())
            .collect();
        (f, feeds)
    };
    if period_free(base) != period_free(head) {
        notes.push(
            "the head's Fleet changes the simulated devices or their behaviour: each side is played with its own, so part of the difference is the fleet's"
                .to_string(),
        );
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::SlaRow;

    fn report(cells: &[(&str, Severity, f64)]) -> MonthReport {
        let month = crate::report::month::Month::parse("2023-11", "UTC").unwrap();
        let mut r = MonthReport::empty("acme", &month, month.end());
        r.sla = cells
            .iter()
            .map(|(tier, severity, pct)| SlaRow {
                policy: "workstations".into(),
                tier: tier.to_string(),
                severity: *severity,
                within: Some("5d".into()),
                installed_on_time: 0,
                installed_late: 0,
                overdue: 0,
                open: 0,
                exempt: 0,
                compliance_percent: Some(*pct),
                median_time_to_install_seconds: None,
            })
            .collect();
        r
    }

    #[test]
    fn a_report_against_itself_is_no_change() {
        let r = report(&[("tier-1", Severity::High, 98.2)]);
        let p = compare(&r, &r, 1, 30).gate(0.0);
        assert!(p.unchanged());
        assert!(!p.gate_tripped());
        assert!(text(&p, false).contains("No change: all "));
        assert!(markdown(&p).contains("**No change**"));
    }

    #[test]
    fn a_drop_is_marked_and_trips_a_gate_it_exceeds_only() {
        let before = report(&[
            ("tier-1", Severity::Critical, 98.2),
            ("tier-2", Severity::High, 50.0),
        ]);
        let after = report(&[
            ("tier-1", Severity::Critical, 91.0),
            ("tier-3", Severity::High, 10.0),
        ]);
        let p = compare(&before, &after, 1, 30);
        assert_eq!(p.sla[0].compliance.difference, Some(-7.2));
        let t = text(&p, false);
        assert!(
            t.contains("~ workstations tier-1 × Critical: 98.2% → 91.0% (−7.2)"),
            "{t}"
        );
        assert!(
            t.contains("- workstations tier-2 × High: 50.0% (baseline only)"),
            "{t}"
        );
        assert!(
            t.contains("+ workstations tier-3 × High: 10.0% (head only)"),
            "{t}"
        );
        // 7.2 points: more than 7 trips, 7.2 itself does not; a cell on one side never does.
        let tripped = p.clone().gate(7.0);
        let hits = &tripped.gate.as_ref().unwrap().exceeded;
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].figure, "workstations tier-1 × Critical");
        assert!(!p.clone().gate(7.2).gate_tripped());
        assert!(text(&p, true).contains("\x1b[31m~ workstations tier-1"));
    }
}
