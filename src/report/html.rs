//! The evidence packet's page: one tenant's month as a single self-contained HTML
//! document that prints on A4, for the client and its auditor.
//!
//! Self-contained means nothing is loaded: one `<style>` block, charts drawn as inline
//! SVG ([`super::svg`]), system fonts, no script, and a Content-Security-Policy that
//! forbids any load should a string ever slip through. Every string from the model is
//! escaped ([`escape`]); the same model always gives the same bytes (ordered inputs
//! only, fixed number formats, no clock).

use std::fmt::Write as _;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::model::{
    ApprovalRow, ExceptionRow, FreezeRow, Headline, InterventionKind, InterventionRow, Laggard,
    MonthReport, PairRow, SlaRow, SlaState, Unpatched,
};
use super::svg;
use crate::api::Severity;

/// The most unpatched pairs the page lists; `pairs.csv` holds them all.
pub const PAIR_ROWS: usize = 500;

/// Compliance at or above this is shaded as met.
pub const MET: f64 = 95.0;
/// Compliance at or above this (and below [`MET`]) is shaded as near.
pub const NEAR: f64 = 85.0;

const STYLE: &str = include_str!("html.css");

/// The look of the running footer (page margin boxes do not inherit the body's font).
const MARGIN_BOX: &str = "font-family: -apple-system, \"Segoe UI\", Roboto, \"Helvetica Neue\", \
     \"Noto Sans\", \"Liberation Sans\", Arial, sans-serif; font-size: 7pt; color: #8b95a1;";

/// Appends formatted text to a `String` (which cannot fail).
macro_rules! put {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}
pub(super) use put;

/// The month as one HTML page.
pub fn html(r: &MonthReport) -> String {
    let c = Ctx::new(r);
    let mut out = String::with_capacity(64 * 1024 + r.pairs.len().min(PAIR_ROWS) * 600);
    head(&mut out, &c);
    masthead(&mut out, &c);
    headline(&mut out, &c);
    sla(&mut out, &c);
    trend(&mut out, &c);
    time_to_install(&mut out, &c);
    rings(&mut out, &c);
    exceptions(&mut out, &c);
    approvals(&mut out, &c);
    interventions(&mut out, &c);
    freezes(&mut out, &c);
    laggards(&mut out, &c);
    unpatched(&mut out, &c);
    verify(&mut out, &c);
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

/// The report and the zone its times are shown in.
pub(super) struct Ctx<'a> {
    pub r: &'a MonthReport,
    pub tz: TimeZone,
    /// Whether `r.time_zone` was found (otherwise times are shown in UTC).
    tz_known: bool,
}

impl<'a> Ctx<'a> {
    fn new(r: &'a MonthReport) -> Self {
        match TimeZone::get(&r.time_zone) {
            Ok(tz) => Ctx {
                r,
                tz,
                tz_known: true,
            },
            Err(_) => Ctx {
                r,
                tz: TimeZone::UTC,
                tz_known: false,
            },
        }
    }

    /// An instant in the tenant's zone, to the minute: `2026-03-14 09:30`.
    pub fn time(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone())
            .strftime("%Y-%m-%d %H:%M")
            .to_string()
    }

    /// An optional instant, or a dash.
    pub fn time_or_dash(&self, t: Option<Timestamp>) -> String {
        t.map_or_else(|| "—".to_string(), |t| self.time(t))
    }

    /// A date in the tenant's zone: `2026-03-14`.
    pub fn date(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone()).strftime("%Y-%m-%d").to_string()
    }

    /// A time of day in the tenant's zone: `09:30`.
    pub fn clock(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone()).strftime("%H:%M").to_string()
    }

    /// A day in the tenant's zone, short: `14 Mar`.
    pub fn day(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone()).strftime("%-d %b").to_string()
    }
}

// ---------------------------------------------------------------------------------------
// Formatting

/// Text made safe for HTML element content and quoted attribute values alike.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Text as a CSS string's content: anything but plain characters becomes a hex escape,
/// so nothing can close the string or the `<style>` element.
fn css_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if ch.is_ascii_alphanumeric() || " -_.:/".contains(ch) {
            out.push(ch);
        } else {
            put!(out, "\\{:x} ", ch as u32);
        }
    }
    out
}

/// At most `max` characters of `s`, with an ellipsis when cut, escaped.
pub(super) fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        escape(s)
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{}…", escape(cut.trim_end()))
    }
}

/// A percentage with one decimal, `96.2%`, or `n/a`.
pub fn percent(p: Option<f64>) -> String {
    match p {
        Some(p) if p.is_finite() => format!("{p:.1}%"),
        _ => "n/a".to_string(),
    }
}

/// A count with thousands separated: `10,000`.
pub fn count(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A length of time in its two largest units: `3d 4h`, `5h 20m`, `45m`, `30s`.
pub fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// An optional length of time, or a dash.
fn duration_or_dash(secs: Option<i64>) -> String {
    secs.map_or_else(|| "—".to_string(), duration)
}

/// `2026-03` as `March 2026` (`long`) or `Mar 2026`; anything else as written.
pub fn month_name(month: &str, long: bool) -> String {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let parsed = month
        .split_once('-')
        .and_then(|(y, m)| Some((y.parse::<u16>().ok()?, m.parse::<usize>().ok()?)));
    match parsed {
        Some((y, m)) if (1..=12).contains(&m) && month.len() == 7 => {
            let name = NAMES[m - 1];
            let name = if long { name } else { &name[..3] };
            format!("{name} {y}")
        }
        _ => month.to_string(),
    }
}

/// The shading of a compliance figure: `good`, `warn`, `bad`, or `none` without one.
pub fn tone(p: Option<f64>) -> &'static str {
    match p {
        Some(p) if p.is_finite() && p >= MET => "good",
        Some(p) if p.is_finite() && p >= NEAR => "warn",
        Some(p) if p.is_finite() => "bad",
        _ => "none",
    }
}

/// `PendingApproval` as `Pending approval`.
pub fn words(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut prev_lower = false;
    for ch in s.chars() {
        if ch.is_uppercase() && prev_lower {
            out.push(' ');
            out.extend(ch.to_lowercase());
        } else {
            out.push(ch);
        }
        prev_lower = ch.is_lowercase() || ch.is_ascii_digit();
    }
    out
}

/// A small coloured label; its text always says what the colour does.
fn chip(tone: &str, text: &str) -> String {
    format!("<span class=\"chip {tone}\">{}</span>", escape(text))
}

/// `n thing` or `n things`.
fn plural(n: u32, one: &str, many: &str) -> String {
    format!("{} {}", count(n), if n == 1 { one } else { many })
}

/// Opens a numbered section with its heading and one sentence on what it shows.
fn section_start(out: &mut String, id: &str, n: u32, title: &str, lede: &str) {
    put!(
        out,
        "<section id=\"{id}\">\n<h2><span class=\"n\">{n}</span>{title}</h2>\n"
    );
    if !lede.is_empty() {
        put!(out, "<p class=\"lede\">{lede}</p>\n");
    }
}

/// The sentence a section shows when the month has nothing for it.
fn none_this_month(out: &mut String, sentence: &str) {
    put!(out, "<p class=\"none-this-month\">{sentence}</p>\n");
}

/// A table's opening and header row: per column its heading, whether it holds numbers
/// (right-aligned) and its share of the width in percent (0: as its content needs).
fn table_start(out: &mut String, class: &str, columns: &[(&str, bool, u8)]) {
    put!(out, "<table class=\"{class}\">\n");
    if columns.iter().any(|(_, _, w)| *w > 0) {
        out.push_str("<colgroup>");
        for (_, _, w) in columns {
            match w {
                0 => out.push_str("<col>"),
                w => put!(out, "<col style=\"width:{w}%\">"),
            }
        }
        out.push_str("</colgroup>\n");
    }
    out.push_str("<thead><tr>");
    for (name, num, _) in columns {
        let class = if *num { " class=\"num\"" } else { "" };
        put!(out, "<th{class}>{name}</th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
}

// ---------------------------------------------------------------------------------------
// The page's parts

/// The document head: title, the policy that forbids loads, the style, page furniture.
fn head(out: &mut String, c: &Ctx) {
    let r = c.r;
    put!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; img-src data:\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light\">\n\
         <title>Patch compliance evidence · {} · {}</title>\n<style>\n{STYLE}",
        escape(&r.tenant),
        escape(&r.month)
    );
    let running = css_string(&format!("{} · {}", r.tenant, month_name(&r.month, true)));
    put!(
        out,
        "@page {{\n  @bottom-left {{ content: \"Patch compliance evidence · {running}\"; \
         {MARGIN_BOX} }}\n  @bottom-right {{ content: \"Page \" counter(page) \" of \" \
         counter(pages); {MARGIN_BOX} }}\n}}\n\
         </style>\n</head>\n<body>\n<main class=\"sheet\">\n"
    );
}

/// Who, which month, which period, in which zone, closed or as of when, which schema.
fn masthead(out: &mut String, c: &Ctx) {
    let r = c.r;
    put!(
        out,
        "<header class=\"masthead\">\n<div class=\"kicker\">ringmaster · monthly patch \
         compliance evidence</div>\n<h1>{} <span class=\"muted\">·</span> \
         <span class=\"tenant\">{}</span></h1>\n",
        escape(&month_name(&r.month, true)),
        escape(&r.tenant)
    );
    if r.closed {
        put!(
            out,
            "<p class=\"status\">{} <span class=\"muted\">Final figures: the month \
             ended before they were taken.</span></p>\n",
            chip("good", "Closed month")
        );
    } else {
        put!(
            out,
            "<p class=\"status\">{} <span class=\"muted\">Figures as of {}; the month \
             was still running and they may change.</span></p>\n",
            chip("warn", "Month in progress"),
            c.time(r.as_of)
        );
    }
    let zone = if c.tz_known {
        escape(&r.time_zone)
    } else {
        format!("{} (unknown; times shown in UTC)", escape(&r.time_zone))
    };
    put!(
        out,
        "<dl class=\"meta\">\n<div><dt>Tenant</dt><dd>{}</dd></div>\n\
         <div><dt>Month</dt><dd>{}</dd></div>\n<div><dt>Time zone</dt><dd>{zone}</dd></div>\n\
         <div><dt>Figures as of</dt><dd>{}</dd></div>\n\
         <div class=\"wide\"><dt>Period</dt><dd>{} to {} <span class=\"muted\">(end \
         excluded)</span></dd></div>\n\
         <div class=\"wide\"><dt>Scope</dt><dd>{} · {}</dd></div>\n\
         <div class=\"wide\"><dt>Report schema</dt><dd><code>{}</code></dd></div>\n</dl>\n",
        escape(&r.tenant),
        escape(&r.month),
        c.time(r.as_of),
        c.time(r.start),
        c.time(r.end),
        plural(r.headline.devices, "device", "devices"),
        plural(r.headline.pairs, "device–patch pair", "device–patch pairs"),
        escape(&r.schema),
    );
    out.push_str(
        "<p class=\"frameworks\">Prepared as evidence of timely vulnerability remediation \
         for SOC 2 CC7.1, ISO/IEC 27001:2022 Annex A 8.8 and PCI DSS v4.0 requirement \
         6.3.3. All times are in the tenant's time zone.</p>\n</header>\n",
    );
}

/// The figures on the front page: a sentence, then the cards.
fn headline(out: &mut String, c: &Ctx) {
    let h = &c.r.headline;
    put!(
        out,
        "<section id=\"headline\" class=\"keep\">\n<p class=\"summary\">{}</p>\n\
         <div class=\"cards\">\n",
        summary(h, c.r.closed)
    );
    for (tone, label, value, sub) in cards(h) {
        put!(
            out,
            "<div class=\"card {tone}\"><div class=\"label\">{label}</div>\
             <div class=\"value\">{}</div><div class=\"sub\">{}</div></div>\n",
            escape(&value),
            escape(&sub)
        );
    }
    out.push_str("</div>\n</section>\n");
}

/// The front page's cards: shading, label, figure, and a line on what it is made of.
fn cards(h: &Headline) -> [(&'static str, &'static str, String, String); 8] {
    let good = h.installed_on_time + h.open + h.exempt;
    let on_time = if h.pairs == 0 {
        "no pairs this month".to_string()
    } else {
        format!("{} of {} in good standing", count(good), count(h.pairs))
    };
    let overdue_tone = if h.overdue == 0 { "good" } else { "bad" };
    [
        (
            tone(h.compliance_percent),
            "SLA compliance",
            percent(h.compliance_percent),
            on_time,
        ),
        (
            overdue_tone,
            "Overdue",
            count(h.overdue),
            format!("{} open, not yet due", count(h.open)),
        ),
        (
            "none",
            "Median time to install",
            duration_or_dash(h.median_time_to_install_seconds),
            "from release to install".to_string(),
        ),
        (
            "none",
            "Installed in month",
            count(h.installed_in_month),
            format!("{} late in all", count(h.installed_late)),
        ),
        (
            "none",
            "Ring halts",
            count(h.halts),
            "stopped by a rule or gate".to_string(),
        ),
        (
            "none",
            "Rollbacks",
            count(h.rollbacks),
            "started in the month".to_string(),
        ),
        (
            "none",
            "Active exceptions",
            count(h.active_exceptions),
            format!("covering {}", plural(h.exempt, "pair", "pairs")),
        ),
        (
            "none",
            "Devices",
            count(h.devices),
            format!("{} tracked", plural(h.pairs, "pair", "pairs")),
        ),
    ]
}

/// The month in two sentences: the compliance and what it is made of, then the rest.
fn summary(h: &Headline, closed: bool) -> String {
    if h.pairs == 0 {
        return "No device–patch pair was open at any time this month.".to_string();
    }
    let at = if closed {
        "the month's end"
    } else {
        "the as-of time"
    };
    let mut text = format!(
        "<strong>{} of the {} were in good standing at {at}</strong>: {} installed by their \
         deadline, {} not yet due and {} covered by an active exception.",
        percent(h.compliance_percent),
        plural(h.pairs, "device–patch pair", "device–patch pairs"),
        count(h.installed_on_time),
        count(h.open),
        count(h.exempt),
    );
    put!(
        text,
        " {} installed late and {} overdue.",
        plural(h.installed_late, "pair was", "pairs were"),
        count(h.overdue)
    );
    text
}

/// The legend of the compliance shading: the colours and what they stand for, in words.
fn compliance_legend(out: &mut String) {
    put!(
        out,
        "<div class=\"legend\"><span><i class=\"swatch good\"></i>met: {MET:.0}% or more\
         </span><span><i class=\"swatch warn\"></i>near: {NEAR:.0}% to {MET:.0}%</span>\
         <span><i class=\"swatch bad\"></i>missed: below {NEAR:.0}%</span>\
         <span><i class=\"swatch none\"></i>no pairs</span></div>\n"
    );
}

/// SLA compliance: per policy, a tier × severity matrix of shaded, written figures.
fn sla(out: &mut String, c: &Ctx) {
    section_start(
        out,
        "sla",
        1,
        "SLA compliance by tier and severity",
        "Each cell is one policy's tier and severity: the share of its device–patch pairs \
         in good standing (installed by their deadline, not yet due, or covered by an \
         active exception), as the policy's own status counts it; then its deadline and \
         the counts behind the figure.",
    );
    if c.r.sla.is_empty() {
        none_this_month(out, "No policy set an SLA for a pair this month.");
    } else {
        compliance_legend(out);
        let severities: Vec<Severity> = Severity::ALL
            .into_iter()
            .rev()
            .filter(|s| c.r.sla.iter().any(|x| x.severity == *s))
            .collect();
        for policy in distinct(c.r.sla.iter().map(|row| row.policy.as_str())) {
            let rows: Vec<&SlaRow> = c.r.sla.iter().filter(|x| x.policy == policy).collect();
            sla_matrix(out, policy, &rows, &severities);
        }
    }
    out.push_str("</section>\n");
}

/// The distinct values in the order they first appear.
fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    for item in items {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen
}

/// One policy's matrix: tiers down, `severities` across (the same columns for every
/// policy, so the matrices line up).
fn sla_matrix(out: &mut String, policy: &str, rows: &[&SlaRow], severities: &[Severity]) {
    put!(
        out,
        "<div class=\"keep\">\n<h3>Policy {}</h3>\n<table class=\"matrix\">\n\
         <thead><tr><th class=\"tier\">Tier</th>",
        escape(policy)
    );
    for s in severities {
        put!(out, "<th>{s}</th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for tier in distinct(rows.iter().map(|x| x.tier.as_str())) {
        put!(out, "<tr><td class=\"tier\">{}</td>", escape(tier));
        for s in severities {
            match rows.iter().find(|x| x.tier == tier && x.severity == *s) {
                Some(row) => sla_cell(out, row),
                None => out.push_str(
                    "<td class=\"cell empty\"><span class=\"counts\">no pairs</span></td>",
                ),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</div>\n");
}

/// One cell: the figure, the deadline, the counts.
fn sla_cell(out: &mut String, row: &SlaRow) {
    let within = row.within.as_deref().map_or_else(
        || "no deadline set".to_string(),
        |w| format!("within {}", escape(w)),
    );
    let mut counts = format!(
        "{} on time · {} late · {} overdue",
        count(row.installed_on_time),
        count(row.installed_late),
        count(row.overdue)
    );
    if row.open > 0 {
        put!(counts, " · {} open", count(row.open));
    }
    if row.exempt > 0 {
        put!(counts, " · {} exempt", count(row.exempt));
    }
    put!(
        out,
        "<td class=\"cell {}\"><span class=\"pct\">{}</span><span class=\"within\">{within}\
         </span><span class=\"counts\">{counts}</span></td>",
        tone(row.compliance_percent),
        percent(row.compliance_percent)
    );
}

/// Compliance month by month, as bars and as a table.
fn trend(out: &mut String, c: &Ctx) {
    section_start(
        out,
        "trend",
        2,
        "Compliance trend",
        "The month's compliance beside the months before it, with the pairs overdue at \
         each month's end and the median time from release to install.",
    );
    if c.r.trend.is_empty() {
        none_this_month(out, "No month has figures yet.");
        out.push_str("</section>\n");
        return;
    }
    out.push_str("<div class=\"trend\">\n<div>");
    out.push_str(&svg::trend(&c.r.trend, &c.r.month));
    out.push_str("</div>\n<div>");
    table_start(
        out,
        "trend-table",
        &[
            ("Month", false, 0),
            ("Compliance", true, 0),
            ("Overdue", true, 0),
            ("Median to install", true, 0),
        ],
    );
    for p in c.r.trend.iter().rev() {
        let current = if p.month == c.r.month {
            " <span class=\"muted\">(this)</span>"
        } else {
            ""
        };
        put!(
            out,
            "<tr><td class=\"nowrap\">{}{current}</td><td class=\"num tone-{}\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
            escape(&month_name(&p.month, false)),
            tone(p.compliance_percent),
            percent(p.compliance_percent),
            count(p.overdue),
            duration_or_dash(p.median_time_to_install_seconds)
        );
    }
    out.push_str("</tbody>\n</table>\n</div>\n</div>\n</section>\n");
}

/// The median time to install per cell, set against the cell's deadline.
fn time_to_install(out: &mut String, c: &Ctx) {
    section_start(
        out,
        "time-to-install",
        3,
        "Time to install",
        "The median time from a patch's release to its install, over the pairs installed \
         this month, per policy, tier and severity. The bar shows it as a share of the \
         deadline; the mark is the deadline itself.",
    );
    let rows: Vec<&SlaRow> =
        c.r.sla
            .iter()
            .filter(|x| x.median_time_to_install_seconds.is_some())
            .collect();
    if let Some(median) = c.r.headline.median_time_to_install_seconds {
        put!(
            out,
            "<p>Across the tenant: <strong>{}</strong>, over {}.</p>\n",
            duration(median),
            plural(
                c.r.headline.installed_in_month,
                "pair installed",
                "pairs installed"
            )
        );
    }
    if rows.is_empty() {
        none_this_month(out, "No pair was installed this month.");
        out.push_str("</section>\n");
        return;
    }
    table_start(
        out,
        "tti",
        &[
            ("Policy", false, 17),
            ("Tier", false, 17),
            ("Severity", false, 12),
            ("Deadline", true, 10),
            ("Median", true, 12),
            ("Share of deadline", false, 32),
        ],
    );
    for row in rows {
        tti_row(out, row);
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

/// One cell's median, its deadline, and the median as a share of the deadline.
fn tti_row(out: &mut String, row: &SlaRow) {
    let median = row.median_time_to_install_seconds.unwrap_or_default();
    let limit = row
        .within
        .as_deref()
        .and_then(|w| w.parse::<crate::api::Duration>().ok());
    let (bar, share) = match limit {
        Some(l) if l.as_secs() > 0 => {
            let f = median as f64 / l.as_secs() as f64;
            (svg::share_bar(f), format!("{:.0}%", f * 100.0))
        }
        _ => (String::new(), "no deadline".to_string()),
    };
    put!(
        out,
        "<tr><td class=\"wrap\">{}</td><td class=\"wrap\">{}</td><td>{}</td>\
         <td class=\"num\">{}</td><td class=\"num\"><strong>{}</strong></td>\
         <td><div class=\"barcell\">{bar}<span>{share}</span></div></td></tr>\n",
        escape(&row.policy),
        escape(&row.tier),
        row.severity,
        row.within
            .as_deref()
            .map_or_else(|| "—".to_string(), escape),
        duration(median)
    );
}

/// Per ring: a stacked bar of how its devices ended, then the figures.
fn rings(out: &mut String, c: &Ctx) {
    section_start(
        out,
        "rings",
        4,
        "Rollouts by ring",
        "How the month's rollouts went in each ring: the devices targeted, installed, \
         failed (attempts no agent answered in time among them) and rolled back. The \
         success rate is installed of installed and failed.",
    );
    if c.r.rings.is_empty() {
        none_this_month(out, "No rollout reached a ring this month.");
        out.push_str("</section>\n");
        return;
    }
    out.push_str(
        "<div class=\"legend\"><span><i class=\"swatch installed\"></i>installed</span>\
         <span><i class=\"swatch failed\"></i>failed</span><span><i class=\"swatch \
         timedout\"></i>failed: timed out</span><span><i class=\"swatch rolledback\"></i>\
         rolled back</span><span><i class=\"swatch rest\"></i>not finished</span></div>\n",
    );
    out.push_str(&svg::funnel(&c.r.rings));
    table_start(
        out,
        "rings",
        &[
            ("Ring", false, 22),
            ("Rollouts", true, 10),
            ("Targeted", true, 11),
            ("Installed", true, 11),
            ("Failed (timed out)", true, 15),
            ("Rolled back", true, 11),
            ("Halts", true, 8),
            ("Success", true, 12),
        ],
    );
    for ring in &c.r.rings {
        put!(
            out,
            "<tr><td class=\"wrap\"><strong>{}</strong></td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{} ({})</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">\
             <strong>{}</strong></td></tr>\n",
            escape(&ring.ring),
            count(ring.rollouts),
            count(ring.targeted),
            count(ring.installed),
            count(ring.failed),
            count(ring.timed_out),
            count(ring.rolled_back),
            count(ring.halts),
            percent(ring.success_rate_percent)
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

/// Exceptions: the timeline over the month, then the register.
fn exceptions(out: &mut String, c: &Ctx) {
    section_start(
        out,
        "exceptions",
        5,
        "Exceptions",
        "Every exception in force at some time in the month, or that changed in it. A bar \
         runs from the exception's activation (or its request, or the month's start) to \
         its expiry; an arrow means it runs on beyond the month, a dot marks a change of \
         phase.",
    );
    if c.r.exceptions.is_empty() {
        none_this_month(out, "No exception was in force or changed this month.");
        out.push_str("</section>\n");
        return;
    }
    out.push_str(
        "<div class=\"legend\"><span><i class=\"swatch phase-active\"></i>active</span>\
         <span><i class=\"swatch phase-pending\"></i>pending approval</span><span><i \
         class=\"swatch phase-expired\"></i>expired</span><span><i class=\"swatch \
         phase-invalid\"></i>invalid</span></div>\n",
    );
    out.push_str(&svg::timeline(c));
    table_start(
        out,
        "exceptions",
        &[
            ("Exception", false, 19),
            ("Owner · approver", false, 20),
            ("Reason · controls", false, 31),
            ("In force", false, 13),
            ("Phase", false, 11),
            ("Devices", true, 6),
        ],
    );
    for e in &c.r.exceptions {
        exception_rows(out, c, e);
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

/// The colour class of an exception phase.
pub(super) fn phase_tone(phase: &str) -> &'static str {
    match phase {
        "Active" => "accent",
        "PendingApproval" => "warn",
        "Invalid" => "bad",
        _ => "none",
    }
}

/// One exception: its row, then its history across the table.
fn exception_rows(out: &mut String, c: &Ctx, e: &ExceptionRow) {
    let patches = e
        .patches
        .iter()
        .map(|p| escape(p))
        .collect::<Vec<_>>()
        .join(", ");
    let controls = if e.compensating_controls.is_empty() {
        "<span class=\"sub\">No compensating control recorded.</span>".to_string()
    } else {
        let items: Vec<String> = e.compensating_controls.iter().map(|x| escape(x)).collect();
        format!("<span class=\"sub\">Controls: {}</span>", items.join("; "))
    };
    let class = if e.history.is_empty() {
        ""
    } else {
        " class=\"has-history\""
    };
    put!(
        out,
        "<tr{class}><td class=\"wrap\"><strong>{}</strong><span class=\"sub\">{}</span>\
         <span class=\"sub\">Ticket {}</span></td><td class=\"wrap\">{}<span class=\"sub\">\
         approved by {}</span></td><td class=\"wrap\">{}{controls}</td><td class=\"nowrap\">\
         {}<span class=\"sub\">to {}</span></td><td>{}</td><td class=\"num\">{}</td></tr>\n",
        escape(&e.name),
        patches,
        e.ticket
            .as_deref()
            .map_or_else(|| "none".to_string(), escape),
        escape(&e.owner),
        e.approved_by
            .as_deref()
            .map_or_else(|| "nobody yet".to_string(), escape),
        escape(&e.reason),
        e.active_since
            .map_or_else(|| "never active".to_string(), |t| c.time(t)),
        c.time(e.expires_at),
        chip(phase_tone(&e.phase), &words(&e.phase)),
        count(e.covered_devices)
    );
    exception_history(out, c, e);
}

/// An exception's phase changes, oldest first, on a row across its table.
fn exception_history(out: &mut String, c: &Ctx, e: &ExceptionRow) {
    if e.history.is_empty() {
        return;
    }
    let steps: Vec<String> = e
        .history
        .iter()
        .map(|h| {
            let message = if h.message.is_empty() {
                String::new()
            } else {
                format!(" — {}", escape(&h.message))
            };
            format!(
                "{} <strong>{}</strong>{message}",
                c.time(h.at),
                escape(&words(&h.phase))
            )
        })
        .collect();
    put!(
        out,
        "<tr class=\"history\"><td colspan=\"6\"><span class=\"sub\">History: {}</span>\
         </td></tr>\n",
        steps.join("; ")
    );
}

/// The register of approvals, in time order.
fn approvals(out: &mut String, c: &Ctx) {
    section_start(
        out,
        "approvals",
        6,
        "Approvals register",
        "Every approval of a patch that had a rollout in the month: when, by which rule or \
         person, and where the rollout stood at the end.",
    );
    if c.r.approvals.is_empty() {
        none_this_month(out, "No patch approved for a rollout this month.");
        out.push_str("</section>\n");
        return;
    }
    let mut rows: Vec<&ApprovalRow> = c.r.approvals.iter().collect();
    rows.sort_by_key(|a| (a.at.is_none(), a.at));
    table_start(
        out,
        "approvals",
        &[
            ("Approved", false, 14),
            ("Patch", false, 18),
            ("Severity", false, 9),
            ("Policy", false, 12),
            ("Rollout", false, 16),
            ("By", false, 19),
            ("Rollout phase", false, 12),
        ],
    );
    for a in rows {
        let emergency = if a.emergency {
            format!(" {}", chip("bad", "emergency"))
        } else {
            String::new()
        };
        put!(
            out,
            "<tr><td class=\"nowrap\">{}</td><td class=\"wrap\">{}</td><td>{}</td>\
             <td class=\"wrap\">{}</td><td class=\"wrap\">{}</td><td class=\"wrap\">{}{emergency}\
             </td><td>{}</td></tr>\n",
            c.time_or_dash(a.at),
            escape(&a.patch),
            a.severity.map_or("—", Severity::as_str),
            escape(&a.policy),
            escape(&a.rollout),
            escape(&a.by),
            escape(&words(&a.phase))
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

/// The words and shading of an intervention.
fn intervention_label(kind: InterventionKind) -> (&'static str, &'static str) {
    match kind {
        InterventionKind::Halted => ("Halted", "bad"),
        InterventionKind::RollbackStarted => ("Rollback started", "bad"),
        InterventionKind::RolledBack => ("Rolled back", "warn"),
        InterventionKind::Aborted => ("Aborted", "bad"),
        InterventionKind::Paused => ("Paused", "warn"),
        InterventionKind::Resumed => ("Resumed", "none"),
        InterventionKind::Promoted => ("Promoted", "accent"),
        InterventionKind::Held => ("Held", "warn"),
    }
}

/// The register of halts, rollbacks, aborts, pauses, promotions and holds.
fn interventions(out: &mut String, c: &Ctx) {
    section_start(
        out,
        "interventions",
        7,
        "Interventions register",
        "Every halt, rollback, abort, pause, resume, promotion and hold in the month, in \
         time order, with what the operator recorded.",
    );
    if c.r.interventions.is_empty() {
        none_this_month(
            out,
            "No rollout was halted, rolled back, aborted, paused or promoted this month.",
        );
        out.push_str("</section>\n");
        return;
    }
    let mut rows: Vec<&InterventionRow> = c.r.interventions.iter().collect();
    rows.sort_by_key(|x| x.at);
    let mut kinds: Vec<(InterventionKind, u32)> = Vec::new();
    for x in &rows {
        match kinds.iter_mut().find(|(k, _)| *k == x.kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((x.kind, 1)),
        }
    }
    kinds.sort();
    let tally: Vec<String> = kinds
        .iter()
        .map(|(k, n)| format!("{} {}", intervention_label(*k).0, count(*n)))
        .collect();
    put!(out, "<p class=\"muted\">{}.</p>\n", tally.join(" · "));
    table_start(
        out,
        "interventions",
        &[
            ("When", false, 14),
            ("What", false, 14),
            ("Rollout", false, 16),
            ("Patch", false, 16),
            ("Ring", false, 11),
            ("Record", false, 29),
        ],
    );
    for x in rows {
        intervention_row(out, c, x);
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

/// One intervention.
fn intervention_row(out: &mut String, c: &Ctx, x: &InterventionRow) {
    let (label, tone) = intervention_label(x.kind);
    put!(
        out,
        "<tr><td class=\"nowrap\">{}</td><td>{}</td><td class=\"wrap\">{}</td>\
         <td class=\"wrap\">{}</td><td class=\"wrap\">{}</td><td class=\"wrap\">{}</td></tr>\n",
        c.time(x.at),
        chip(tone, label),
        escape(&x.rollout),
        escape(&x.patch),
        x.ring.as_deref().map_or_else(|| "—".to_string(), escape),
        escape(&x.message)
    );
}

/// The register of change freezes that overlapped the month.
fn freezes(out: &mut String, c: &Ctx) {
    section_start(
        out,
        "freezes",
        8,
        "Change freezes",
        "Every change freeze that overlapped the month. No install starts in a frozen \
         scope; its pairs wait for the freeze to end.",
    );
    if c.r.freezes.is_empty() {
        none_this_month(out, "No change freeze overlapped this month.");
        out.push_str("</section>\n");
        return;
    }
    table_start(
        out,
        "freezes",
        &[
            ("Scope", false, 20),
            ("From", false, 14),
            ("Until", false, 14),
            ("Reason", false, 30),
            ("Owner", false, 22),
        ],
    );
    for f in &c.r.freezes {
        freeze_row(out, c, f);
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

/// One freeze.
fn freeze_row(out: &mut String, c: &Ctx, f: &FreezeRow) {
    put!(
        out,
        "<tr><td class=\"wrap\">{}</td><td class=\"nowrap\">{}</td><td class=\"nowrap\">{}</td>\
         <td class=\"wrap\">{}</td><td class=\"wrap\">{}</td></tr>\n",
        escape(&f.scope),
        c.time(f.from),
        c.time(f.until),
        escape(&f.reason),
        escape(&f.owner)
    );
}

/// Who keeps missing the SLA: devices, vendors, tiers.
fn laggards(out: &mut String, c: &Ctx) {
    section_start(
        out,
        "laggards",
        9,
        "Who keeps missing the SLA",
        "The devices, vendors and tiers with the most pairs overdue or installed late, \
         most first, against their counted pairs in the month.",
    );
    let l = &c.r.laggards;
    if l.devices.is_empty() && l.vendors.is_empty() && l.tiers.is_empty() {
        none_this_month(out, "Nothing missed its SLA this month.");
        out.push_str("</section>\n");
        return;
    }
    laggard_table(out, "Devices", "Device", &l.devices);
    laggard_table(out, "Vendors", "Vendor", &l.vendors);
    laggard_table(out, "Tiers", "Tier", &l.tiers);
    out.push_str("</section>\n");
}

/// One kind of laggard.
fn laggard_table(out: &mut String, title: &str, column: &str, rows: &[Laggard]) {
    put!(out, "<h3>{title}</h3>\n");
    if rows.is_empty() {
        none_this_month(out, "None missed its SLA.");
        return;
    }
    table_start(
        out,
        "laggards fixed",
        &[
            (column, false, 40),
            ("Missed", true, 10),
            ("Overdue", true, 10),
            ("Pairs", true, 10),
            ("Missed of pairs", false, 30),
        ],
    );
    for x in rows {
        let share = if x.pairs == 0 {
            0.0
        } else {
            f64::from(x.missed) / f64::from(x.pairs)
        };
        let overdue_tone = if x.overdue > 0 { " tone-bad" } else { "" };
        put!(
            out,
            "<tr><td class=\"names\">{}</td><td class=\"num\"><strong>{}</strong></td>\
             <td class=\"num{overdue_tone}\">{}</td><td class=\"num\">{}</td>\
             <td><div class=\"barcell\">{}<span>{:.0}%</span></div></td></tr>\n",
            escape(&x.name),
            count(x.missed),
            count(x.overdue),
            count(x.pairs),
            svg::count_bar(share, "fill-bad"),
            share * 100.0
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

/// What each reason a pair is not installed means, in words.
pub fn reason_label(reason: Unpatched) -> (&'static str, &'static str) {
    match reason {
        Unpatched::Exception => (
            "Exception",
            "An exception covers it; its SLA clock is stopped.",
        ),
        Unpatched::AwaitingApproval => (
            "Awaiting approval",
            "No policy approved the patch yet: a rule's delay has not passed.",
        ),
        Unpatched::AwaitingManualApproval => (
            "Awaiting manual approval",
            "A person must approve the patch.",
        ),
        Unpatched::Rejected => (
            "Rejected",
            "The patch was rejected; the pair does not count.",
        ),
        Unpatched::Superseded => (
            "Superseded",
            "A newer approved patch replaces it; the pair does not count.",
        ),
        Unpatched::Held => (
            "Held",
            "The patch fails too often across the fleet and is held.",
        ),
        Unpatched::WaitingForRing => (
            "Waiting for ring",
            "The device's ring waits for the rings before it.",
        ),
        Unpatched::WaitingForWindow => (
            "Waiting for window",
            "The device waits for its maintenance window, a slot in its ring, or the end of a freeze.",
        ),
        Unpatched::Installing => (
            "Installing",
            "The device has been given the patch and has not finished.",
        ),
        Unpatched::Failed => (
            "Failed",
            "The device's last attempt failed or was not answered in time.",
        ),
        Unpatched::DeviceUnreachable => (
            "Device unreachable",
            "The device has not checked in for longer than its ring allows.",
        ),
        Unpatched::Halted => (
            "Halted",
            "The rollout is halted, rolling back or rolled back.",
        ),
        Unpatched::Paused => ("Paused", "A person paused the rollout."),
        Unpatched::Aborted => ("Aborted", "The rollout was aborted."),
        Unpatched::NotInRing => (
            "Not in a ring",
            "The device is in none of its policy's rings.",
        ),
    }
}

/// The words and shading of a pair's SLA state.
fn state_label(state: SlaState) -> (&'static str, &'static str) {
    match state {
        SlaState::NotDue => ("Not due", "none"),
        SlaState::DueSoon => ("Due soon", "warn"),
        SlaState::Overdue => ("Overdue", "bad"),
        SlaState::InstalledOnTime => ("On time", "good"),
        SlaState::InstalledLate => ("Late", "warn"),
        SlaState::Exempt => ("Exempt", "accent"),
    }
}

/// The pairs not installed at `asOf`: counts by reason, then the most urgent pairs.
fn unpatched(out: &mut String, c: &Ctx) {
    section_start(
        out,
        "unpatched",
        10,
        "Unpatched device–patch pairs",
        "Every pair not installed at the as-of time, and why, as ringmaster recorded it.",
    );
    let mut pairs: Vec<&PairRow> =
        c.r.pairs
            .iter()
            .filter(|p| p.installed_at.is_none())
            .collect();
    if pairs.is_empty() {
        none_this_month(
            out,
            "Every device–patch pair was installed: none is left unpatched.",
        );
        out.push_str("</section>\n");
        return;
    }
    reason_counts(out, &pairs);
    pairs.sort_by_key(|p| urgency(p));
    put!(
        out,
        "<h3>The pairs <span class=\"muted\">· most urgent first</span></h3>\n"
    );
    table_start(
        out,
        "pairs fixed",
        &[
            ("Device", false, 16),
            ("Patch", false, 20),
            ("Severity · tier", false, 15),
            ("Ring", false, 9),
            ("Due", false, 10),
            ("State", false, 9),
            ("Why", false, 21),
        ],
    );
    for p in pairs.iter().take(PAIR_ROWS) {
        pair_row(out, c, p);
    }
    out.push_str("</tbody>\n</table>\n");
    if pairs.len() > PAIR_ROWS {
        put!(
            out,
            "<p class=\"muted\">The table shows the {} most urgent of {} unpatched pairs; \
             the full list of every pair is in <code>pairs.csv</code> in this packet.</p>\n",
            count(PAIR_ROWS as u32),
            count(u32::try_from(pairs.len()).unwrap_or(u32::MAX))
        );
    } else {
        out.push_str("<p class=\"muted small\">Every pair of the month, installed or not, is in <code>pairs.csv</code> in this packet.</p>\n");
    }
    out.push_str("</section>\n");
}

/// The order of the pairs table: overdue first, then due soonest, most severe, by name.
fn urgency(
    p: &PairRow,
) -> (
    u8,
    bool,
    Option<Timestamp>,
    std::cmp::Reverse<Severity>,
    &str,
    &str,
) {
    let rank = match p.state {
        SlaState::Overdue => 0,
        SlaState::DueSoon => 1,
        SlaState::NotDue => 2,
        SlaState::Exempt => 3,
        SlaState::InstalledLate | SlaState::InstalledOnTime => 4,
    };
    let rank = if p.counted { rank } else { 5 };
    (
        rank,
        p.due_at.is_none(),
        p.due_at,
        std::cmp::Reverse(p.severity),
        &p.device,
        &p.patch,
    )
}

/// How many pairs wait for each reason, most first.
fn reason_counts(out: &mut String, pairs: &[&PairRow]) {
    let mut tally: Vec<(Option<Unpatched>, u32)> = Vec::new();
    for p in pairs {
        match tally.iter_mut().find(|(r, _)| *r == p.reason) {
            Some((_, n)) => *n += 1,
            None => tally.push((p.reason, 1)),
        }
    }
    tally.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let most = tally.first().map_or(1, |x| x.1).max(1);
    put!(
        out,
        "<h3>By reason <span class=\"muted\">· {} pairs</span></h3>\n",
        count(pairs.len() as u32)
    );
    table_start(
        out,
        "reasons",
        &[
            ("Reason", false, 25),
            ("Pairs", true, 8),
            ("", false, 17),
            ("What it means", false, 50),
        ],
    );
    for (reason, n) in tally {
        let (label, meaning) = reason.map_or(
            ("Not recorded", "ringmaster recorded no reason."),
            reason_label,
        );
        put!(
            out,
            "<tr><td class=\"nowrap\"><strong>{label}</strong></td><td class=\"num\">{}</td>\
             <td>{}</td><td class=\"muted\">{meaning}</td></tr>\n",
            count(n),
            svg::count_bar(f64::from(n) / f64::from(most), "fill-accent")
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

/// One pair.
fn pair_row(out: &mut String, c: &Ctx, p: &PairRow) {
    let (state, state_tone) = state_label(p.state);
    let title = p
        .title
        .as_deref()
        .map_or_else(String::new, |t| format!(" · {}", fit(t, 60)));
    let cvss = p
        .cvss
        .filter(|x| x.is_finite())
        .map_or_else(String::new, |x| format!(" · CVSS {x:.1}"));
    let kev = if p.known_exploited {
        chip("bad", "known exploited")
    } else {
        String::new()
    };
    let due = match p.due_at {
        Some(t) => format!(
            "<span class=\"nowrap\">{}</span><span class=\"sub\">{}</span>",
            c.date(t),
            c.clock(t)
        ),
        None => format!(
            "no deadline<span class=\"sub\">found {}</span>",
            c.day(p.found_at)
        ),
    };
    let why = match (p.reason, &p.exception) {
        (Some(Unpatched::Exception), Some(e)) => format!("Exception {}", escape(e)),
        (Some(r), Some(e)) => format!("{}; exception {}", reason_label(r).0, escape(e)),
        (Some(r), None) => reason_label(r).0.to_string(),
        (None, Some(e)) => format!("Exception {}", escape(e)),
        (None, None) => "—".to_string(),
    };
    let detail = p.detail.as_deref().map_or_else(String::new, |d| {
        format!("<span class=\"sub\">{}</span>", escape(d))
    });
    let counted = if p.counted {
        ""
    } else {
        "<span class=\"sub\">not counted</span>"
    };
    put!(
        out,
        "<tr><td class=\"names\">{}</td><td class=\"wrap\">{}<span class=\"sub\">{}{title}</span></td>\
         <td>{}{cvss}<span class=\"sub\">{} · {}</span>{kev}</td><td class=\"wrap\">{}</td>\
         <td>{due}</td><td>{}{counted}</td><td class=\"wrap\">{why}{detail}</td></tr>\n",
        escape(&p.device),
        escape(&p.patch),
        escape(&p.vendor),
        p.severity,
        escape(&p.tier),
        escape(&p.policy),
        p.ring.as_deref().map_or_else(|| "—".to_string(), escape),
        chip(state_tone, state),
    );
}

/// How to check the packet this page belongs to.
fn verify(out: &mut String, c: &Ctx) {
    put!(
        out,
        "<section id=\"verify\" class=\"verify\">\n<h2>Verifying this packet</h2>\n\
         <p>This page is one file of {}'s evidence packet for {}. <code>SHA256SUMS</code> \
         lists the SHA-256 digest of every other file in the packet, and \
         <code>report.json</code> holds every figure shown here, in the schema named \
         above. To check that no file was changed, removed or added since the packet was \
         made, run, with DIR the packet's directory:</p>\n\
         <pre><code>ringmaster report verify DIR</code></pre>\n\
         <p class=\"muted\">It also checks the signature <code>SHA256SUMS.sig</code> of a \
         signed packet. Without ringmaster, <code>sha256sum -c SHA256SUMS</code> checks \
         the digests. The page records no time of its making: the same month always \
         renders to the same bytes.</p>\n</section>\n\
         <p class=\"colophon\">ringmaster · {} · {} · figures as of {}</p>\n",
        escape(&c.r.tenant),
        escape(&month_name(&c.r.month, true)),
        escape(&c.r.tenant),
        escape(&c.r.month),
        c.time(c.r.as_of),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::TrendPoint;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn month() -> MonthReport {
        MonthReport::empty(
            "t",
            &crate::report::month::Month::parse("2026-02", "America/New_York").expect("month"),
            ts("2026-03-01T05:00:00Z"),
        )
    }

    #[test]
    fn escape_covers_text_and_attributes() {
        assert_eq!(
            escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain — ünïcode"), "plain — ünïcode");
        assert_eq!(escape("nul\u{0}bell\u{7}"), "nul\u{FFFD}bell\u{FFFD}");
    }

    #[test]
    fn css_strings_cannot_close_the_string_or_the_style() {
        assert_eq!(css_string("acme-1.2"), "acme-1.2");
        assert_eq!(css_string("a\"</style>"), "a\\22 \\3c /style\\3e ");
        assert_eq!(css_string("a\\b"), "a\\5c b");
    }

    #[test]
    fn durations_read_in_two_units() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(-5), "0s");
        assert_eq!(duration(30), "30s");
        assert_eq!(duration(45 * 60), "45m");
        assert_eq!(duration(5 * 3600), "5h");
        assert_eq!(duration(5 * 3600 + 20 * 60 + 9), "5h 20m");
        assert_eq!(duration(3 * 86_400), "3d");
        assert_eq!(duration(3 * 86_400 + 4 * 3600 + 59 * 60), "3d 4h");
        assert_eq!(duration_or_dash(None), "—");
    }

    #[test]
    fn numbers_have_fixed_forms() {
        assert_eq!(percent(Some(96.25)), "96.2%");
        assert_eq!(percent(Some(100.0)), "100.0%");
        assert_eq!(percent(Some(f64::NAN)), "n/a");
        assert_eq!(percent(None), "n/a");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(plural(1, "pair", "pairs"), "1 pair");
        assert_eq!(plural(2, "pair", "pairs"), "2 pairs");
    }

    #[test]
    fn shading_follows_the_thresholds() {
        assert_eq!(tone(Some(MET)), "good");
        assert_eq!(tone(Some(94.9)), "warn");
        assert_eq!(tone(Some(NEAR)), "warn");
        assert_eq!(tone(Some(84.9)), "bad");
        assert_eq!(tone(None), "none");
    }

    #[test]
    fn names_read_as_words() {
        assert_eq!(month_name("2026-03", true), "March 2026");
        assert_eq!(month_name("2026-12", false), "Dec 2026");
        assert_eq!(month_name("2026-13", true), "2026-13");
        assert_eq!(month_name("March", true), "March");
        assert_eq!(words("PendingApproval"), "Pending approval");
        assert_eq!(words("RolledBack"), "Rolled back");
        assert_eq!(words("Active"), "Active");
    }

    #[test]
    fn times_are_shown_in_the_tenants_zone() {
        let r = month();
        let c = Ctx::new(&r);
        assert_eq!(c.time(r.start), "2026-02-01 00:00");
        assert_eq!(c.day(r.end), "1 Mar");
        let mut r = month();
        r.time_zone = "Nowhere/Atlantis".into();
        let page = html(&r);
        assert!(page.contains("Nowhere/Atlantis (unknown; times shown in UTC)"));
        assert!(page.contains("2026-02-01 05:00"));
    }

    #[test]
    fn a_single_trend_month_draws_one_bar() {
        let mut r = month();
        r.trend = vec![TrendPoint {
            month: "2026-02".into(),
            compliance_percent: Some(97.0),
            overdue: 2,
            median_time_to_install_seconds: Some(3600),
        }];
        let page = html(&r);
        assert_eq!(page.matches("<rect class=\"bar current\"").count(), 1);
        assert!(page.contains(">97.0%</text>"));
        assert!(page.contains(">overdue</text>") && page.contains(">2</text>"));
    }

    #[test]
    fn the_empty_month_renders_whole() {
        let page = html(&month());
        assert!(page.contains("No policy set an SLA"));
        assert!(page.contains("No month has figures yet."));
        assert!(page.contains("none is left unpatched"));
        assert_eq!(
            page.matches("<section").count(),
            page.matches("</section>").count()
        );
        assert_eq!(
            page.matches("<table").count(),
            page.matches("</table>").count()
        );
        assert_eq!(page.matches("<svg").count(), page.matches("</svg>").count());
    }
}
