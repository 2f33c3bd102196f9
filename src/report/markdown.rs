//! The packet's `report.md`: the month in GitHub-flavoured Markdown, to paste into a
//! ticket or an email.
//!
//! Every section is there even when it has nothing to show, and then says so in one
//! line. Long lists are cut (approvals are summarised past [`APPROVALS_LISTED`], at
//! most about [`PAIRS_LISTED`] unpatched pairs are listed) with a pointer to the CSV
//! file that holds them all.
//!
//! Strings that come from the cluster or its users are escaped ([`escape`]) so a `|`
//! cannot break a table, a newline cannot end a row and no Markdown in them is
//! rendered. Percentages have one decimal, durations read `3d 4h`, instants are
//! minutes in the month's time zone. The same report always gives the same bytes.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::model::{
    ApprovalRow, ExceptionRow, FreezeRow, Headline, InterventionKind, InterventionRow, Laggard,
    Laggards, MonthReport, PairRow, RingFunnel, SlaRow, TrendPoint, Unpatched,
};
use crate::api::Severity;

/// Past this many approvals, the section summarises them.
pub const APPROVALS_LISTED: usize = 20;

/// About this many unpatched pairs are listed; the rest are counted.
pub const PAIRS_LISTED: usize = 50;

/// What a table shows for a value that is absent.
const NONE: &str = "—";

/// The month as Markdown.
pub fn markdown(r: &MonthReport) -> String {
    let clock = Clock::new(&r.time_zone);
    let mut out = String::new();
    title(&mut out, r, &clock);
    headline(&mut out, &r.headline);
    sla(&mut out, &r.sla);
    trend(&mut out, &r.trend);
    rings(&mut out, &r.rings);
    interventions(&mut out, &r.interventions, &clock);
    approvals(&mut out, &r.approvals, &clock);
    freezes(&mut out, &r.freezes, &clock);
    exceptions(&mut out, &r.exceptions, &clock);
    laggards(&mut out, &r.laggards);
    unpatched(&mut out, &r.pairs, &clock);
    let end = out.trim_end().len();
    out.truncate(end);
    out.push('\n');
    out
}

/// Writes instants in the month's time zone (UTC when the zone is unknown).
struct Clock {
    tz: TimeZone,
    name: String,
}

impl Clock {
    fn new(zone: &str) -> Self {
        match TimeZone::get(zone) {
            Ok(tz) => Clock {
                tz,
                name: zone.to_string(),
            },
            Err(_) => Clock {
                tz: TimeZone::UTC,
                name: "UTC".to_string(),
            },
        }
    }

    fn at(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone())
            .strftime("%Y-%m-%d %H:%M")
            .to_string()
    }

    fn opt(&self, t: Option<Timestamp>) -> String {
        t.map_or_else(|| NONE.to_string(), |t| self.at(t))
    }

    fn day(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone()).strftime("%Y-%m-%d").to_string()
    }
}

/// A string from the cluster or its users, made safe for a table cell or a line of
/// text: line breaks become spaces, characters Markdown would act on are
/// backslash-escaped, and so is a start that would make a heading, quote, list or
/// rule.
pub fn escape(s: &str) -> String {
    let flat = s.replace("\r\n", " ").replace(['\r', '\n'], " ");
    let flat = flat.trim();
    let mut out = String::with_capacity(flat.len() + 8);
    if flat.starts_with(['#', '-', '+', '=']) {
        out.push('\\');
    }
    let digits = flat.chars().take_while(char::is_ascii_digit).count();
    for (i, c) in flat.chars().enumerate() {
        let list_marker = i == digits && digits > 0 && (c == '.' || c == ')');
        if list_marker || "\\`*_[]<>|~&$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn opt_escape(s: Option<&str>) -> String {
    s.map_or_else(|| NONE.to_string(), escape)
}

/// A percentage with one decimal.
fn percent(p: Option<f64>) -> String {
    p.map_or_else(|| NONE.to_string(), |p| format!("{p:.1}%"))
}

/// A duration in seconds in its two largest units: `3d 4h`, `5h 12m`, `42m`, `30s`.
pub fn human(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    let body = match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    };
    format!("{sign}{body}")
}

fn opt_human(secs: Option<i64>) -> String {
    secs.map_or_else(|| NONE.to_string(), human)
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Low => "Low",
        Severity::Medium => "Medium",
        Severity::High => "High",
        Severity::Critical => "Critical",
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// A section heading.
fn section(out: &mut String, heading: &str) {
    out.push_str(heading);
    out.push_str("\n\n");
}

/// A paragraph.
fn para(out: &mut String, text: &str) {
    out.push_str(text);
    out.push_str("\n\n");
}

/// A table; the columns from `numeric_from` on are right-aligned. Cells are written
/// as given: escape user strings first.
fn table(out: &mut String, head: &[&str], numeric_from: usize, rows: &[Vec<String>]) {
    let rule: Vec<&str> = (0..head.len())
        .map(|i| if i >= numeric_from { "---:" } else { "---" })
        .collect();
    out.push_str(&table_line(head));
    out.push_str(&table_line(&rule));
    for row in rows {
        debug_assert_eq!(row.len(), head.len(), "a Markdown row as long as the head");
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        out.push_str(&table_line(&cells));
    }
    out.push('\n');
}

fn table_line(cells: &[&str]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

fn title(out: &mut String, r: &MonthReport, clock: &Clock) {
    let tenant = escape(&r.tenant);
    let month = escape(&r.month);
    section(out, &format!("# Patch evidence: {tenant}, {month}"));
    let when = if r.closed {
        "The month is closed; the figures are as of its end.".to_string()
    } else {
        format!(
            "The month is still running; the figures are as of {}.",
            clock.at(r.as_of)
        )
    };
    para(
        out,
        &format!(
            "Tenant **{tenant}**, from {} to {} ({}). {when} Times are in {}.",
            clock.at(r.start),
            clock.at(r.end),
            escape(&r.time_zone),
            escape(&clock.name),
        ),
    );
    para(
        out,
        &format!(
            "Every table in full is in the packet's CSV files and in `report.json` \
             (schema {}).",
            escape(&r.schema)
        ),
    );
}

fn headline(out: &mut String, h: &Headline) {
    section(out, "## Headline");
    let rows = [
        ("Devices governed by a policy", h.devices.to_string()),
        ("Device–patch pairs open in the month", h.pairs.to_string()),
        ("SLA compliance", percent(h.compliance_percent)),
        ("Installed on time", h.installed_on_time.to_string()),
        ("Installed late", h.installed_late.to_string()),
        ("Overdue", h.overdue.to_string()),
        ("Open, not yet due", h.open.to_string()),
        ("Exempt under an exception", h.exempt.to_string()),
        ("Installed in the month", h.installed_in_month.to_string()),
        (
            "Median time from release to install",
            opt_human(h.median_time_to_install_seconds),
        ),
        ("Ring halts", h.halts.to_string()),
        ("Rollbacks started", h.rollbacks.to_string()),
        ("Active exceptions", h.active_exceptions.to_string()),
    ];
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(k, v)| vec![k.to_string(), v])
        .collect();
    table(out, &["Figure", "Value"], 1, &rows);
    para(
        out,
        "SLA compliance is the share of pairs in good standing (installed by their \
         deadline, not yet due, or covered by an active exception) of all counted pairs, \
         as the policies' own status counts it.",
    );
}

/// The policies in the order they first appear.
fn policies(rows: &[SlaRow]) -> Vec<&str> {
    let mut seen: Vec<&str> = Vec::new();
    for row in rows {
        if !seen.contains(&row.policy.as_str()) {
            seen.push(&row.policy);
        }
    }
    seen
}

fn sla(out: &mut String, rows: &[SlaRow]) {
    section(out, "## SLA by tier and severity");
    if rows.is_empty() {
        para(out, "No policy had a device–patch pair in the month.");
        return;
    }
    let head = [
        "Tier",
        "Severity",
        "Install within",
        "On time",
        "Late",
        "Overdue",
        "Open",
        "Exempt",
        "Compliance",
        "Median to install",
    ];
    for policy in policies(rows) {
        section(out, &format!("### Policy {}", escape(policy)));
        let cells: Vec<Vec<String>> = rows
            .iter()
            .filter(|r| r.policy == policy)
            .map(|r| {
                vec![
                    escape(&r.tier),
                    severity(r.severity).to_string(),
                    opt_escape(r.within.as_deref()),
                    r.installed_on_time.to_string(),
                    r.installed_late.to_string(),
                    r.overdue.to_string(),
                    r.open.to_string(),
                    r.exempt.to_string(),
                    percent(r.compliance_percent),
                    opt_human(r.median_time_to_install_seconds),
                ]
            })
            .collect();
        table(out, &head, 3, &cells);
    }
}

fn trend(out: &mut String, points: &[TrendPoint]) {
    section(out, "## Trend");
    if points.is_empty() {
        para(out, "No earlier month to compare with.");
        return;
    }
    let rows: Vec<Vec<String>> = points
        .iter()
        .map(|p| {
            vec![
                escape(&p.month),
                percent(p.compliance_percent),
                p.overdue.to_string(),
                opt_human(p.median_time_to_install_seconds),
            ]
        })
        .collect();
    let head = [
        "Month",
        "Compliance",
        "Overdue at its end",
        "Median to install",
    ];
    table(out, &head, 1, &rows);
}

fn rings(out: &mut String, rings: &[RingFunnel]) {
    section(out, "## Rings");
    if rings.is_empty() {
        para(out, "No rollout reached a ring in the month.");
        return;
    }
    let rows: Vec<Vec<String>> = rings
        .iter()
        .map(|f| {
            vec![
                escape(&f.ring),
                f.rollouts.to_string(),
                f.targeted.to_string(),
                f.installed.to_string(),
                f.failed.to_string(),
                f.timed_out.to_string(),
                f.rolled_back.to_string(),
                f.halts.to_string(),
                percent(f.success_rate_percent),
            ]
        })
        .collect();
    let head = [
        "Ring",
        "Rollouts",
        "Devices targeted",
        "Installed",
        "Failed",
        "Of which timed out",
        "Rolled back",
        "Halts",
        "Success",
    ];
    table(out, &head, 1, &rows);
}

fn intervention(kind: InterventionKind) -> &'static str {
    match kind {
        InterventionKind::Halted => "Halted",
        InterventionKind::RollbackStarted => "Rollback started",
        InterventionKind::RolledBack => "Rolled back",
        InterventionKind::Aborted => "Aborted",
        InterventionKind::Paused => "Paused",
        InterventionKind::Resumed => "Resumed",
        InterventionKind::Promoted => "Promoted",
        InterventionKind::Held => "Held",
    }
}

fn interventions(out: &mut String, rows: &[InterventionRow], clock: &Clock) {
    section(out, "## Interventions");
    if rows.is_empty() {
        para(
            out,
            "No halt, rollback, abort, pause, promotion or hold in the month.",
        );
        return;
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|i| {
            vec![
                clock.at(i.at),
                intervention(i.kind).to_string(),
                escape(&i.rollout),
                escape(&i.patch),
                opt_escape(i.ring.as_deref()),
                escape(&i.message),
            ]
        })
        .collect();
    let head = ["At", "What", "Rollout", "Patch", "Ring", "Message"];
    table(out, &head, head.len(), &cells);
}

fn approval_rows(rows: &[&ApprovalRow], clock: &Clock) -> Vec<Vec<String>> {
    rows.iter()
        .map(|a| {
            vec![
                clock.opt(a.at),
                escape(&a.policy),
                escape(&a.patch),
                a.severity.map_or(NONE, severity).to_string(),
                escape(&a.by),
                yes_no(a.emergency).to_string(),
                escape(&a.rollout),
                escape(&a.phase),
            ]
        })
        .collect()
}

const APPROVAL_HEAD: [&str; 8] = [
    "Approved",
    "Policy",
    "Patch",
    "Severity",
    "By",
    "Emergency",
    "Rollout",
    "Phase",
];

fn approvals(out: &mut String, rows: &[ApprovalRow], clock: &Clock) {
    section(out, "## Approvals");
    if rows.is_empty() {
        para(out, "No patch approved for a rollout in the month.");
        return;
    }
    let all: Vec<&ApprovalRow> = rows.iter().collect();
    if rows.len() <= APPROVALS_LISTED {
        table(
            out,
            &APPROVAL_HEAD,
            APPROVAL_HEAD.len(),
            &approval_rows(&all, clock),
        );
        return;
    }
    approvals_summary(out, rows);
    let emergency: Vec<&ApprovalRow> = all.into_iter().filter(|a| a.emergency).collect();
    if emergency.is_empty() {
        para(out, "None was approved by an emergency rule.");
        return;
    }
    let listed = &emergency[..emergency.len().min(APPROVALS_LISTED)];
    para(out, "The approvals by an emergency rule:");
    table(
        out,
        &APPROVAL_HEAD,
        APPROVAL_HEAD.len(),
        &approval_rows(listed, clock),
    );
    if listed.len() < emergency.len() {
        para(
            out,
            &format!(
                "{} of {} listed; `approvals.csv` lists every approval.",
                listed.len(),
                emergency.len()
            ),
        );
    }
}

/// The column of the approvals summary that counts a severity.
fn severity_column(s: Option<Severity>) -> usize {
    match s {
        Some(Severity::Critical) => 1,
        Some(Severity::High) => 2,
        Some(Severity::Medium) => 3,
        Some(Severity::Low) => 4,
        None => 5,
    }
}

/// Approvals counted per policy and severity.
fn approvals_summary(out: &mut String, rows: &[ApprovalRow]) {
    let emergency = rows.iter().filter(|a| a.emergency).count();
    para(
        out,
        &format!(
            "{} approvals, {emergency} of them by an emergency rule; `approvals.csv` \
             lists every one.",
            rows.len()
        ),
    );
    // Per policy: approvals, then per severity (Critical first, then none), emergency.
    let mut counts: BTreeMap<&str, [usize; 7]> = BTreeMap::new();
    for a in rows {
        let c = counts.entry(a.policy.as_str()).or_default();
        c[0] += 1;
        c[severity_column(a.severity)] += 1;
        c[6] += usize::from(a.emergency);
    }
    let cells: Vec<Vec<String>> = counts
        .into_iter()
        .map(|(policy, c)| {
            let mut row = vec![escape(policy)];
            row.extend(c.iter().map(usize::to_string));
            row
        })
        .collect();
    let head = [
        "Policy",
        "Approvals",
        "Critical",
        "High",
        "Medium",
        "Low",
        "No severity",
        "Emergency",
    ];
    table(out, &head, 1, &cells);
}

fn freezes(out: &mut String, rows: &[FreezeRow], clock: &Clock) {
    section(out, "## Change freezes");
    if rows.is_empty() {
        para(out, "No change freeze overlapped the month.");
        return;
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|f| {
            vec![
                escape(&f.scope),
                clock.at(f.from),
                clock.at(f.until),
                escape(&f.owner),
                escape(&f.reason),
            ]
        })
        .collect();
    let head = ["Scope", "From", "Until", "Owner", "Reason"];
    table(out, &head, head.len(), &cells);
}

fn exception_row(e: &ExceptionRow, clock: &Clock) -> Vec<String> {
    let list = |items: &[String]| {
        if items.is_empty() {
            NONE.to_string()
        } else {
            items
                .iter()
                .map(|s| escape(s))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let history: Vec<String> = e
        .history
        .iter()
        .map(|h| format!("{} {}", clock.day(h.at), escape(&h.phase)))
        .collect();
    vec![
        escape(&e.name),
        escape(&e.phase),
        list(&e.patches),
        e.covered_devices.to_string(),
        escape(&e.owner),
        opt_escape(e.approved_by.as_deref()),
        escape(&e.reason),
        list(&e.compensating_controls),
        opt_escape(e.ticket.as_deref()),
        clock.at(e.expires_at),
        if history.is_empty() {
            NONE.to_string()
        } else {
            history.join(" → ")
        },
    ]
}

fn exceptions(out: &mut String, rows: &[ExceptionRow], clock: &Clock) {
    section(out, "## Exceptions");
    if rows.is_empty() {
        para(out, "No exception was in force or changed in the month.");
        return;
    }
    let cells: Vec<Vec<String>> = rows.iter().map(|e| exception_row(e, clock)).collect();
    let head = [
        "Exception",
        "Phase",
        "Patches",
        "Devices",
        "Owner",
        "Approved by",
        "Reason",
        "Compensating controls",
        "Ticket",
        "Expires",
        "History",
    ];
    table(out, &head, head.len(), &cells);
}

fn laggards(out: &mut String, l: &Laggards) {
    section(out, "## Laggards");
    if l.devices.is_empty() && l.vendors.is_empty() && l.tiers.is_empty() {
        para(out, "No device, vendor or tier missed its SLA.");
        return;
    }
    for (heading, first, rows) in [
        ("### Devices", "Device", &l.devices),
        ("### Vendors", "Vendor", &l.vendors),
        ("### Tiers", "Tier", &l.tiers),
    ] {
        section(out, heading);
        laggard_table(out, first, rows);
    }
}

fn laggard_table(out: &mut String, first: &str, rows: &[Laggard]) {
    if rows.is_empty() {
        para(out, "None missed its SLA.");
        return;
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|g| {
            vec![
                escape(&g.name),
                g.missed.to_string(),
                g.overdue.to_string(),
                g.pairs.to_string(),
            ]
        })
        .collect();
    let head = [first, "Missed", "Of which overdue", "Pairs"];
    table(out, &head, 1, &cells);
}

/// Why a pair is not installed, in words.
pub fn reason(r: Option<Unpatched>) -> &'static str {
    let Some(r) = r else {
        return "No reason recorded";
    };
    match r {
        Unpatched::Exception => "Covered by an exception",
        Unpatched::AwaitingApproval => "Awaiting approval (a rule's delay)",
        Unpatched::AwaitingManualApproval => "Awaiting a person's approval",
        Unpatched::Rejected => "Patch rejected",
        Unpatched::Superseded => "Superseded by a newer patch",
        Unpatched::Held => "Held for failing across the fleet",
        Unpatched::WaitingForRing => "Waiting for an earlier ring",
        Unpatched::WaitingForWindow => "Waiting for a window, a slot or a freeze's end",
        Unpatched::Installing => "Installing",
        Unpatched::Failed => "Last attempt failed",
        Unpatched::DeviceUnreachable => "Device unreachable",
        Unpatched::Halted => "Rollout halted or rolled back",
        Unpatched::Paused => "Rollout paused",
        Unpatched::Aborted => "Rollout aborted",
        Unpatched::NotInRing => "Device in none of its policy's rings",
    }
}

/// How many of each group to list so that about `limit` are listed in all: a group
/// smaller than its fair share lists all of it and leaves the rest to the others.
fn quotas(sizes: &[usize], limit: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| (sizes[i], i));
    let mut left = limit;
    let mut out = vec![0; sizes.len()];
    for (k, &i) in order.iter().enumerate() {
        let share = (left / (sizes.len() - k)).max(1);
        out[i] = sizes[i].min(share);
        left = left.saturating_sub(out[i]);
    }
    out
}

/// The pairs not installed at `asOf`, grouped by reason, each group most severe and
/// soonest due first.
fn unpatched_groups(pairs: &[PairRow]) -> BTreeMap<Option<Unpatched>, Vec<&PairRow>> {
    let mut groups: BTreeMap<Option<Unpatched>, Vec<&PairRow>> = BTreeMap::new();
    for p in pairs
        .iter()
        .filter(|p| p.reason.is_some() || p.installed_at.is_none())
    {
        groups.entry(p.reason).or_default().push(p);
    }
    for group in groups.values_mut() {
        group.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| (a.due_at.is_none(), a.due_at).cmp(&(b.due_at.is_none(), b.due_at)))
                .then_with(|| (&a.device, &a.patch).cmp(&(&b.device, &b.patch)))
        });
    }
    groups
}

fn unpatched(out: &mut String, pairs: &[PairRow], clock: &Clock) {
    section(out, "## Unpatched pairs");
    let groups = unpatched_groups(pairs);
    if groups.is_empty() {
        para(out, "No device–patch pair was left unpatched.");
        return;
    }
    let total: usize = groups.values().map(Vec::len).sum();
    let counts: Vec<Vec<String>> = groups
        .iter()
        .map(|(r, g)| vec![reason(*r).to_string(), g.len().to_string()])
        .collect();
    table(out, &["Reason", "Pairs"], 1, &counts);
    let sizes: Vec<usize> = groups.values().map(Vec::len).collect();
    let quota = quotas(&sizes, PAIRS_LISTED);
    for ((r, group), &n) in groups.iter().zip(&quota) {
        section(out, &format!("### {} ({})", reason(*r), group.len()));
        table(
            out,
            &PAIR_HEAD,
            PAIR_HEAD.len(),
            &pair_rows(&group[..n], clock),
        );
        if n < group.len() {
            para(out, &format!("{n} of {} listed.", group.len()));
        }
    }
    let listed: usize = quota.iter().sum();
    if listed < total {
        para(
            out,
            &format!("{listed} of {total} pairs listed; `pairs.csv` lists every pair."),
        );
    }
}

const PAIR_HEAD: [&str; 8] = [
    "Device",
    "Patch",
    "Severity",
    "Policy",
    "Ring",
    "Due",
    "Detail",
    "Exception",
];

fn pair_rows(pairs: &[&PairRow], clock: &Clock) -> Vec<Vec<String>> {
    pairs
        .iter()
        .map(|p| {
            vec![
                escape(&p.device),
                escape(&p.patch),
                severity(p.severity).to_string(),
                escape(&p.policy),
                opt_escape(p.ring.as_deref()),
                clock.opt(p.due_at),
                opt_escape(p.detail.as_deref()),
                opt_escape(p.exception.as_deref()),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::SlaState;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test instant")
    }

    fn month() -> MonthReport {
        MonthReport::empty(
            "acme",
            &crate::report::month::Month::parse("2026-03", "Europe/Berlin").expect("month"),
            ts("2026-03-31T22:00:00Z"),
        )
    }

    fn pair(i: usize, reason: Option<Unpatched>) -> PairRow {
        PairRow {
            device: format!("ws-{i:03}"),
            patch: "KB5035845".to_string(),
            vendor: "Microsoft".to_string(),
            title: None,
            policy: "prod".to_string(),
            ring: Some("broad".to_string()),
            tier: "tier-2".to_string(),
            severity: Severity::High,
            cvss: Some(7.5),
            known_exploited: false,
            found_at: ts("2026-03-10T17:00:00Z"),
            due_at: Some(ts("2026-03-17T17:00:00Z")),
            installed_at: None,
            state: SlaState::Overdue,
            counted: true,
            reason,
            detail: None,
            exception: None,
        }
    }

    fn approval(i: usize, emergency: bool) -> ApprovalRow {
        ApprovalRow {
            rollout: format!("prod-kb{i}"),
            policy: if i.is_multiple_of(2) { "prod" } else { "lab" }.to_string(),
            patch: format!("KB{i}"),
            severity: Some(Severity::Medium),
            at: Some(ts("2026-03-11T08:00:00Z")),
            by: "rule medium-after-7d".to_string(),
            emergency,
            phase: "Completed".to_string(),
        }
    }

    #[test]
    fn escape_defuses_tables_lines_and_markup() {
        assert_eq!(escape("a|b"), "a\\|b");
        assert_eq!(escape("one\r\ntwo\nthree\rfour"), "one two three four");
        assert_eq!(escape("# not a heading"), "\\# not a heading");
        assert_eq!(escape("- not a list"), "\\- not a list");
        assert_eq!(escape("12. not a list"), "12\\. not a list");
        assert_eq!(escape("v1.2"), "v1.2");
        assert_eq!(escape("*x* _y_ `z`"), "\\*x\\* \\_y\\_ \\`z\\`");
        assert_eq!(escape("<b>[l](u)</b>"), "\\<b\\>\\[l\\](u)\\</b\\>");
        assert_eq!(escape("a\\|b"), "a\\\\\\|b");
        assert_eq!(escape("ws-001.corp"), "ws-001.corp");
    }

    #[test]
    fn durations_read_in_their_two_largest_units() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (60, "1m"),
            (3600, "1h"),
            (3660, "1h 1m"),
            (86_400, "1d"),
            (3 * 86_400 + 4 * 3600 + 59, "3d 4h"),
            (-7200, "-2h"),
        ];
        for (secs, text) in cases {
            assert_eq!(human(secs), text, "{secs}");
        }
    }

    #[test]
    fn quotas_share_the_limit_and_give_small_groups_all_they_have() {
        assert_eq!(quotas(&[3, 100, 2], 50), [3, 45, 2]);
        assert_eq!(quotas(&[100, 100], 50), [25, 25]);
        assert_eq!(quotas(&[10, 20], 50), [10, 20]);
        assert_eq!(quotas(&[], 50), Vec::<usize>::new());
    }

    #[test]
    fn an_empty_month_has_every_section_saying_so() {
        let md = markdown(&month());
        assert!(md.starts_with("# Patch evidence: acme, 2026-03\n"), "{md}");
        assert!(
            md.contains("from 2026-03-01 00:00 to 2026-04-01 00:00"),
            "{md}"
        );
        for line in [
            "No policy had a device–patch pair in the month.",
            "No earlier month to compare with.",
            "No rollout reached a ring in the month.",
            "No halt, rollback, abort, pause, promotion or hold in the month.",
            "No patch approved for a rollout in the month.",
            "No change freeze overlapped the month.",
            "No exception was in force or changed in the month.",
            "No device, vendor or tier missed its SLA.",
            "No device–patch pair was left unpatched.",
        ] {
            assert!(md.contains(&format!("\n{line}\n")), "{line}\n{md}");
        }
        assert!(md.ends_with("unpatched.\n"), "{md}");
    }

    #[test]
    fn many_approvals_are_summarised_per_policy() {
        let mut r = month();
        r.approvals = (0..25).map(|i| approval(i, i == 7)).collect();
        let md = markdown(&r);
        assert!(
            md.contains("25 approvals, 1 of them by an emergency rule"),
            "{md}"
        );
        assert!(md.contains("| lab | 12 | 0 | 0 | 12 | 0 | 0 | 1 |"), "{md}");
        assert!(
            md.contains("| prod | 13 | 0 | 0 | 13 | 0 | 0 | 0 |"),
            "{md}"
        );
        assert_eq!(
            md.matches("| prod-kb").count(),
            1,
            "only the emergency one: {md}"
        );
        assert_eq!(md.matches("| lab | KB7 |").count(), 1, "{md}");
    }

    #[test]
    fn few_approvals_are_listed() {
        let mut r = month();
        r.approvals = (0..3).map(|i| approval(i, false)).collect();
        let md = markdown(&r);
        assert!(
            md.contains(
                "| 2026-03-11 09:00 | prod | KB0 | Medium | rule medium-after-7d | no | prod-kb0 | Completed |"
            ),
            "{md}"
        );
    }

    #[test]
    fn unpatched_pairs_are_grouped_counted_and_cut() {
        let mut r = month();
        r.pairs = (0..80).map(|i| pair(i, Some(Unpatched::Failed))).collect();
        r.pairs.push(pair(90, Some(Unpatched::DeviceUnreachable)));
        let mut installed = pair(91, None);
        installed.installed_at = Some(ts("2026-03-12T00:00:00Z"));
        r.pairs.push(installed);
        let md = markdown(&r);
        assert!(md.contains("| Last attempt failed | 80 |"), "{md}");
        assert!(md.contains("| Device unreachable | 1 |"), "{md}");
        assert!(md.contains("### Last attempt failed (80)\n"), "{md}");
        assert!(md.contains("49 of 80 listed."), "{md}");
        assert!(md.contains("50 of 81 pairs listed; `pairs.csv` lists every pair."));
        assert!(!md.contains("ws-091"), "{md}");
        assert!(md.contains("| ws-000 |") && md.contains("| ws-048 |"));
        assert!(!md.contains("| ws-049 |"), "{md}");
    }
}
