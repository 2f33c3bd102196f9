//! The page's charts as inline SVG: the compliance trend, the ring funnel, the exceptions
//! timeline and the small bars in tables.
//!
//! Each chart has a fixed `viewBox` and scales to the width it is given (CSS sets
//! `width: 100%`), so it fits A4 and a screen alike. Coordinates are written with one
//! decimal, so the same figures always give the same bytes; every label is escaped and
//! every figure a colour stands for is also written.

use std::fmt::Write as _;

use jiff::{Timestamp, ToSpan};

use super::html::{Ctx, count, escape, fit, percent, phase_tone, put};
use super::model::{ExceptionRow, RingFunnel, TrendPoint};

/// A coordinate with one decimal (never `-0.0`).
fn n(x: f64) -> String {
    let x = if x.is_finite() { x } else { 0.0 };
    format!("{:.1}", x + 0.0)
}

/// Opens a chart of the given size with its accessible title.
fn open(out: &mut String, class: &str, w: u32, h: u32, title: &str) {
    put!(
        out,
        "<svg class=\"chart {class}\" viewBox=\"0 0 {w} {h}\" role=\"img\"><title>{}</title>\n",
        escape(title)
    );
}

// ---------------------------------------------------------------------------------------
// Trend

const TREND_W: f64 = 380.0;
const TREND_LEFT: f64 = 44.0;
const TREND_RIGHT: f64 = 374.0;
const TREND_TOP: f64 = 24.0;
const TREND_BOTTOM: f64 = 150.0;

/// Compliance per month as bars on a 0–100% axis, this month in the accent colour, each
/// labelled with its figure, month and overdue count. One month draws one bar.
pub(super) fn trend(points: &[TrendPoint], current: &str) -> String {
    let mut out = String::new();
    open(
        &mut out,
        "trend-chart",
        TREND_W as u32,
        196,
        "Compliance by month",
    );
    trend_axis(&mut out);
    let band = (TREND_RIGHT - TREND_LEFT) / points.len().max(1) as f64;
    let bar_w = (band * 0.56).min(44.0);
    let crowded = points.len() > 8;
    let mut last_year = "";
    for (i, p) in points.iter().enumerate() {
        let cx = TREND_LEFT + band * (i as f64 + 0.5);
        let this = p.month == current;
        trend_bar(&mut out, p, cx, bar_w, this, crowded);
        let year = p.month.split_once('-').map_or(p.month.as_str(), |(y, _)| y);
        trend_labels(&mut out, p, cx, this, year != last_year);
        last_year = year;
    }
    out.push_str("</svg>\n");
    out
}

/// One month's bar and its figure above it; `n/a` on the axis when it has none.
fn trend_bar(out: &mut String, p: &TrendPoint, cx: f64, bar_w: f64, this: bool, crowded: bool) {
    let Some(v) = p.compliance_percent.filter(|v| v.is_finite()) else {
        put!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">n/a</text>\n",
            n(cx),
            n(TREND_BOTTOM - 4.0)
        );
        return;
    };
    let (class, value_class) = if this {
        ("bar current", "strong")
    } else {
        ("bar", "")
    };
    let y = trend_y(v);
    put!(
        out,
        "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\">\
         <title>{}: {}</title></rect>\n",
        n(cx - bar_w / 2.0),
        n(y),
        n(bar_w),
        n(TREND_BOTTOM - y),
        escape(&p.month),
        percent(Some(v)),
    );
    // Many months leave no room for every figure: then only this month's is written
    // on the chart (the table beside it has them all).
    if this || !crowded {
        put!(
            out,
            "<text class=\"{value_class}\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            n(cx),
            n(y - 4.0),
            percent(Some(v))
        );
    }
}

/// Under a month's bar: its name, its year where the year changes, its overdue count.
fn trend_labels(out: &mut String, p: &TrendPoint, cx: f64, this: bool, with_year: bool) {
    let name = super::html::month_name(&p.month, false);
    let (abbr, year) = name.split_once(' ').unwrap_or((&name, ""));
    let class = if this { "strong" } else { "" };
    put!(
        out,
        "<text class=\"{class}\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
        n(cx),
        n(TREND_BOTTOM + 13.0),
        escape(abbr)
    );
    if with_year && !year.is_empty() {
        put!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            n(cx),
            n(TREND_BOTTOM + 25.0),
            escape(year)
        );
    }
    put!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" style=\"font-size:8.5px\">{}</text>\n",
        n(cx),
        n(TREND_BOTTOM + 40.0),
        count(p.overdue)
    );
}

/// The height of a compliance figure on the trend's axis.
fn trend_y(v: f64) -> f64 {
    TREND_BOTTOM - (TREND_BOTTOM - TREND_TOP) * v.clamp(0.0, 100.0) / 100.0
}

/// The trend's gridlines, their labels and the axis title.
fn trend_axis(out: &mut String) {
    put!(
        out,
        "<text x=\"0\" y=\"10\">% in good standing</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\" style=\"font-size:8.5px\">overdue</text>\n",
        n(TREND_LEFT - 5.0),
        n(TREND_BOTTOM + 40.0)
    );
    for v in [0.0, 25.0, 50.0, 75.0, 100.0] {
        let y = trend_y(v);
        let class = if v == 0.0 { "axis" } else { "grid" };
        put!(
            out,
            "<line class=\"{class}\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{v:.0}%</text>\n",
            n(TREND_LEFT),
            n(y),
            n(TREND_RIGHT),
            n(y),
            n(TREND_LEFT - 5.0),
            n(y + 3.5)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Small bars in tables

/// A bar for a share of a deadline: the mark at two thirds is the deadline, the fill is
/// green within it and red beyond it (cut at one and a half deadlines).
pub(super) fn share_bar(fraction: f64) -> String {
    let f = if fraction.is_finite() {
        fraction.max(0.0)
    } else {
        0.0
    };
    let scale = 200.0 / 1.5;
    let class = if f <= 1.0 { "fill-good" } else { "fill-bad" };
    format!(
        "<svg class=\"chart inline-bar\" viewBox=\"0 0 200 12\" aria-hidden=\"true\">\
         <rect class=\"track\" x=\"0\" y=\"3\" width=\"200\" height=\"6\"/>\
         <rect class=\"{class}\" x=\"0\" y=\"3\" width=\"{}\" height=\"6\"/>\
         <line class=\"tick\" x1=\"{}\" y1=\"0\" x2=\"{}\" y2=\"12\"/></svg>",
        n(f.min(1.5) * scale),
        n(scale),
        n(scale)
    )
}

/// A bar for a share of a whole, filled in `class`.
pub(super) fn count_bar(fraction: f64, class: &str) -> String {
    let f = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    format!(
        "<svg class=\"chart inline-bar\" viewBox=\"0 0 200 10\" aria-hidden=\"true\">\
         <rect class=\"track\" x=\"0\" y=\"2\" width=\"200\" height=\"6\"/>\
         <rect class=\"{class}\" x=\"0\" y=\"2\" width=\"{}\" height=\"6\"/></svg>",
        n(f * 200.0)
    )
}

// ---------------------------------------------------------------------------------------
// Ring funnel

const FUNNEL_W: f64 = 680.0;
const FUNNEL_ROW: f64 = 34.0;
const FUNNEL_X0: f64 = 168.0;
const FUNNEL_X1: f64 = 604.0;

/// Per ring, one stacked bar over its targeted devices: installed, failed, timed out,
/// rolled back, and what had not finished; the success rate at the right.
pub(super) fn funnel(rings: &[RingFunnel]) -> String {
    let mut out = String::new();
    let h = FUNNEL_ROW * rings.len() as f64 + 4.0;
    open(
        &mut out,
        "funnel",
        FUNNEL_W as u32,
        h as u32,
        "Rollouts by ring",
    );
    for (i, ring) in rings.iter().enumerate() {
        let y = 4.0 + FUNNEL_ROW * i as f64;
        put!(
            out,
            "<text class=\"strong\" x=\"0\" y=\"{}\">{}</text>\
             <text x=\"0\" y=\"{}\" style=\"font-size:9px\">{} · {} targeted</text>\n",
            n(y + 12.0),
            fit(&ring.ring, 26),
            n(y + 25.0),
            plural_rollouts(ring.rollouts),
            count(ring.targeted)
        );
        funnel_bar(&mut out, ring, y + 6.0);
        put!(
            out,
            "<text class=\"strong\" x=\"{}\" y=\"{}\" text-anchor=\"end\" \
             style=\"font-size:12px\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\" \
             style=\"font-size:8.5px\">success</text>\n",
            n(FUNNEL_W),
            n(y + 14.0),
            percent(ring.success_rate_percent),
            n(FUNNEL_W),
            n(y + 25.0)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// `1 rollout`, `3 rollouts`.
fn plural_rollouts(k: u32) -> String {
    format!("{} rollout{}", count(k), if k == 1 { "" } else { "s" })
}

/// One ring's stacked bar, each segment titled and, where it fits, labelled.
fn funnel_bar(out: &mut String, ring: &RingFunnel, y: f64) {
    let failed_only = ring.failed.saturating_sub(ring.timed_out);
    let done = ring.installed + ring.failed + ring.rolled_back;
    let total = ring.targeted.max(done);
    let segments = [
        ("installed", "installed", ring.installed),
        ("failed", "failed", failed_only),
        ("timedout", "timed out", ring.timed_out.min(ring.failed)),
        ("rolledback", "rolled back", ring.rolled_back),
        ("rest", "not finished", total - done.min(total)),
    ];
    let width = FUNNEL_X1 - FUNNEL_X0;
    if total == 0 {
        put!(
            out,
            "<rect class=\"rest\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"16\"/>\
             <text x=\"{}\" y=\"{}\">no device targeted</text>\n",
            n(FUNNEL_X0),
            n(y),
            n(width),
            n(FUNNEL_X0 + 6.0),
            n(y + 11.5)
        );
        return;
    }
    let mut x = FUNNEL_X0;
    for (class, label, k) in segments {
        if k == 0 {
            continue;
        }
        let w = width * f64::from(k) / f64::from(total);
        put!(
            out,
            "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"16\">\
             <title>{label}: {}</title></rect>\n",
            n(x),
            n(y),
            n(w),
            count(k)
        );
        let text = count(k);
        if w >= 7.0 * text.len() as f64 + 6.0 {
            let fill = if matches!(class, "rest" | "timedout") {
                "#1b2430"
            } else {
                "#fff"
            };
            put!(
                out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" style=\"fill:{fill};font-size:9.5px\">{text}</text>\n",
                n(x + w / 2.0),
                n(y + 11.5)
            );
        }
        x += w;
    }
}

// ---------------------------------------------------------------------------------------
// Exceptions timeline

const TL_W: f64 = 680.0;
const TL_X0: f64 = 216.0;
const TL_X1: f64 = 668.0;
const TL_HEAD: f64 = 22.0;
const TL_ROW: f64 = 32.0;

/// The month as a Gantt chart: one row per exception, a bar while it runs, coloured by
/// phase, arrows where it runs on beyond the month, dots where its phase changed.
pub(super) fn timeline(c: &Ctx) -> String {
    let r = c.r;
    let mut out = String::new();
    let running = !r.closed && r.as_of < r.end;
    let rows_end = TL_HEAD + TL_ROW * r.exceptions.len() as f64 + 4.0;
    let h = if running { rows_end + 12.0 } else { rows_end };
    open(
        &mut out,
        "timeline",
        TL_W as u32,
        h as u32,
        "Exceptions over the month",
    );
    let scale = Scale::new(r.start, r.end);
    if running {
        let x = scale.x(r.as_of);
        put!(
            out,
            "<rect class=\"future\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>\
             <line class=\"asof\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\
             <text class=\"strong\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" \
             style=\"font-size:8.5px\">as of {}</text>\n",
            n(x),
            n(TL_HEAD),
            n(TL_X1 - x),
            n(rows_end - TL_HEAD),
            n(x),
            n(TL_HEAD),
            n(x),
            n(rows_end + 2.0),
            n(x),
            n(h - 1.0),
            escape(&c.day(r.as_of))
        );
    }
    timeline_days(&mut out, c, &scale, rows_end);
    for (i, e) in r.exceptions.iter().enumerate() {
        timeline_row(&mut out, c, &scale, e, TL_HEAD + TL_ROW * i as f64);
    }
    out.push_str("</svg>\n");
    out
}

/// Instants to x positions over the month.
struct Scale {
    start: Timestamp,
    end: Timestamp,
}

impl Scale {
    fn new(start: Timestamp, end: Timestamp) -> Self {
        Scale { start, end }
    }

    /// The x of an instant, clamped to the month.
    fn x(&self, t: Timestamp) -> f64 {
        let span = (self.end.as_second() - self.start.as_second()).max(1) as f64;
        let at = (t.as_second() - self.start.as_second()) as f64 / span;
        TL_X0 + (TL_X1 - TL_X0) * at.clamp(0.0, 1.0)
    }
}

/// The day axis: a tick per day, labelled and ruled weekly from the 1st.
fn timeline_days(out: &mut String, c: &Ctx, scale: &Scale, h: f64) {
    let mut day = c.r.start.to_zoned(c.tz.clone());
    let mut k = 0;
    while day.timestamp() < c.r.end && k < 40 {
        let Ok(next) = day.checked_add(1.day()) else {
            break;
        };
        let x = scale.x(day.timestamp());
        let labelled = k % 7 == 0;
        let (class, y1) = if labelled {
            ("grid", h - 4.0)
        } else {
            ("axis", TL_HEAD + 3.0)
        };
        put!(
            out,
            "<line class=\"{class}\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\n",
            n(x),
            n(TL_HEAD),
            n(x),
            n(y1)
        );
        if labelled {
            put!(
                out,
                "<text x=\"{}\" y=\"{}\" style=\"font-size:9px\">{}</text>\n",
                n(x + 2.0),
                n(TL_HEAD - 6.0),
                escape(&c.day(day.timestamp()))
            );
        }
        day = next;
        k += 1;
    }
    put!(
        out,
        "<line class=\"axis\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\
         <line class=\"grid\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\n",
        n(TL_X0),
        n(TL_HEAD),
        n(TL_X1),
        n(TL_HEAD),
        n(TL_X1),
        n(TL_HEAD),
        n(TL_X1),
        n(h - 4.0)
    );
}

/// One exception's label, bar, arrows, end and phase changes.
fn timeline_row(out: &mut String, c: &Ctx, scale: &Scale, e: &ExceptionRow, y: f64) {
    let r = c.r;
    let from = e
        .active_since
        .or(e.history.first().map(|h| h.at))
        .unwrap_or(r.start);
    let (x0, x1) = (scale.x(from), scale.x(e.expires_at));
    timeline_label(out, e, y);
    let class = phase_class(&e.phase);
    let bar = Bar {
        y: y + 10.0,
        h: 12.0,
        class,
    };
    put!(
        out,
        "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"1.5\">\
         <title>{}: {}, {} to {}</title></rect>\n",
        n(x0),
        n(bar.y),
        n((x1 - x0).max(3.0)),
        n(bar.h),
        escape(&e.name),
        escape(&e.phase),
        e.active_since
            .map_or_else(|| "never active".to_string(), |t| c.time(t)),
        c.time(e.expires_at)
    );
    if from < r.start {
        bar.arrow(out, x0, -1.0);
    }
    if e.expires_at > r.end {
        bar.arrow(out, x1, 1.0);
    } else if x1 + 70.0 <= TL_X1 {
        let word = if e.expires_at <= r.as_of {
            "expired"
        } else {
            "expires"
        };
        put!(
            out,
            "<text x=\"{}\" y=\"{}\" style=\"font-size:8.5px\">{word} {}</text>\n",
            n(x1 + 6.0),
            n(bar.y + 9.0),
            escape(&c.day(e.expires_at))
        );
    }
    phase_dots(out, c, scale, e, &bar);
}

/// A dot on the bar at each phase change within the month, titled with when and what.
fn phase_dots(out: &mut String, c: &Ctx, scale: &Scale, e: &ExceptionRow, bar: &Bar) {
    let r = c.r;
    for change in e.history.iter().filter(|h| h.at >= r.start && h.at < r.end) {
        put!(
            out,
            "<circle class=\"change\" cx=\"{}\" cy=\"{}\" r=\"2.6\"><title>{}: {}</title></circle>\n",
            n(scale.x(change.at)),
            n(bar.y + bar.h / 2.0),
            c.time(change.at),
            escape(&change.phase)
        );
    }
}

/// An exception's name, and its owner and ticket, left of its bar.
fn timeline_label(out: &mut String, e: &ExceptionRow, y: f64) {
    let sub = match &e.ticket {
        Some(t) => format!("{} · {}", e.owner, t),
        None => e.owner.clone(),
    };
    put!(
        out,
        "<text class=\"strong\" x=\"0\" y=\"{}\">{}</text>\
         <text x=\"0\" y=\"{}\" style=\"font-size:8.5px\">{}</text>\n",
        n(y + 14.0),
        fit(&e.name, 34),
        n(y + 26.0),
        fit(&sub, 44)
    );
}

/// The fill of an exception's bar for its phase.
fn phase_class(phase: &str) -> &'static str {
    match phase_tone(phase) {
        "accent" => "phase-active",
        "warn" => "phase-pending",
        "bad" => "phase-invalid",
        _ if phase == "Expired" => "phase-expired",
        _ => "phase-other",
    }
}

/// Where a timeline bar sits, and its fill.
struct Bar {
    y: f64,
    h: f64,
    class: &'static str,
}

impl Bar {
    /// An arrowhead at `x` pointing left (`dir` -1) or right (1): the bar runs on.
    fn arrow(&self, out: &mut String, x: f64, dir: f64) {
        put!(
            out,
            "<polygon class=\"{}\" points=\"{},{} {},{} {},{}\"/>\n",
            self.class,
            n(x + dir),
            n(self.y - 2.0),
            n(x + 8.0 * dir),
            n(self.y + self.h / 2.0),
            n(x + dir),
            n(self.y + self.h + 2.0)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_have_one_decimal_and_no_negative_zero() {
        assert_eq!(n(1.25), "1.2");
        assert_eq!(n(-0.0), "0.0");
        assert_eq!(n(f64::NAN), "0.0");
        assert_eq!(n(200.0 / 3.0), "66.7");
    }

    #[test]
    fn long_labels_are_cut_and_escaped() {
        assert_eq!(fit("short", 10), "short");
        assert_eq!(fit("a<b>cdefghij", 5), "a&lt;b&gt;…");
    }

    #[test]
    fn a_ring_with_no_device_says_so() {
        let svg = funnel(&[RingFunnel {
            ring: "empty".into(),
            ..RingFunnel::default()
        }]);
        assert!(svg.contains("no device targeted"));
        assert!(svg.contains("n/a"));
    }

    #[test]
    fn segments_fill_the_bar_and_are_titled() {
        let svg = funnel(&[RingFunnel {
            ring: "broad".into(),
            rollouts: 1,
            targeted: 10,
            installed: 6,
            failed: 2,
            timed_out: 1,
            rolled_back: 1,
            halts: 0,
            success_rate_percent: Some(75.0),
        }]);
        for title in [
            "installed: 6",
            "failed: 1",
            "timed out: 1",
            "rolled back: 1",
            "not finished: 1",
        ] {
            assert!(svg.contains(title), "{title}");
        }
    }

    #[test]
    fn share_bars_mark_the_deadline() {
        assert!(share_bar(0.5).contains("fill-good"));
        assert!(share_bar(2.0).contains("fill-bad"));
        assert!(share_bar(2.0).contains("width=\"200.0\""));
    }
}
