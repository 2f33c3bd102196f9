//! Maintenance windows and change freezes: when a ring may start installs.
//!
//! [`Schedule::compile`] checks a ring's [`MaintenanceWindow`]s once and turns them into
//! a [`Schedule`] that answers "is it open now?", "when does it open next?" and "how do
//! I say that to a person?". [`active_freeze`] and [`next_freeze_change`] answer the same
//! questions for [`Freeze`]s. Everything here is pure: `now` is always a parameter.
//!
//! # Local times and daylight saving
//!
//! A window's `start` and `end` are wall-clock times in its `timeZone`. Each one is
//! resolved to the *first instant at which the zone's clock shows that time or later*:
//!
//! - an ordinary time is the one instant that shows it;
//! - a time in a repeated hour (clocks go back) is its first occurrence, so
//!   `02:30` on 2026-10-25 in `Europe/Berlin` is 02:30 CEST (00:30 UTC);
//! - a time the clock skips (clocks go forward) is the end of the gap, the instant the
//!   clock jumps, so `02:30` on 2026-03-29 in `Europe/Berlin` is 03:00 CEST (01:00 UTC).
//!   This is what the API documents ("opens at the end of the gap"). Note that it differs
//!   from RFC 5545 / Temporal "compatible" disambiguation, which would move 02:30 by the
//!   length of the gap to 03:30 CEST.
//!
//! This resolution never moves a later wall-clock time before an earlier one, so an
//! occurrence's end is never before its start. It can make them equal, when the whole
//! window lies inside a skipped stretch (say `02:00`–`02:45` on the night clocks go
//! forward). Such an occurrence is not dropped: it opens at the end of the gap and stays
//! open for the window's nominal wall-clock length (45 minutes in the example), so a
//! monthly window is not lost to a DST change.
//!
//! # Limits
//!
//! Searches look at most [`HORIZON_DAYS`] days ahead. Timestamps near the ends of jiff's
//! range are handled by skipping occurrences that cannot be represented; nothing here
//! panics or overflows.

use std::fmt;

use jiff::civil::{Date, DateTime, Time, Weekday as JiffWeekday};
use jiff::tz::{AmbiguousOffset, TimeZone, TimeZoneDatabase};
use jiff::{SignedDuration, Span, Timestamp};

use crate::api::common::{Freeze, MaintenanceWindow};
use crate::api::{PatchFreeze, created_by};

/// How far ahead [`Schedule::next_open_after`] and [`Schedule::describe_next`] look, in
/// days. Every valid window opens at least once in any 400 days (the rarest, a fifth
/// weekday of the month, comes several times a year).
pub const HORIZON_DAYS: i64 = 400;

/// How many local days before `now` may hold the start of an occurrence still open at
/// `now`: a window lasts at most 24 hours, plus whatever a time-zone change adds.
const LOOKBACK_DAYS: i64 = 3;

/// One occurrence of a maintenance window: installs may start in [start, end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occurrence {
    /// The first instant installs may start.
    pub start: Timestamp,
    /// The instant the window closes (exclusive); always after `start`.
    pub end: Timestamp,
}

impl Occurrence {
    /// True when `t` lies in `[start, end)`.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }
}

/// Why a ring's windows cannot be used. Display text names the field, e.g.
/// `maintenanceWindows[1].timeZone: unknown time zone "Europe/Berln"`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// `timeZone` is not in the IANA time zone database.
    #[error("maintenanceWindows[{index}].timeZone: unknown time zone {name:?}")]
    UnknownTimeZone {
        /// Position of the window in the ring's list.
        index: usize,
        /// The name as written.
        name: String,
    },
    /// `start` or `end` is not `HH:MM` between 00:00 and 23:59.
    #[error(
        "maintenanceWindows[{index}].{field}: {value:?} is not a time of day; write HH:MM from 00:00 to 23:59"
    )]
    BadTimeOfDay {
        /// Position of the window in the ring's list.
        index: usize,
        /// `start` or `end`.
        field: &'static str,
        /// The text as written.
        value: String,
    },
    /// Both `days` and `patchTuesdayOffsetDays` are set.
    #[error(
        "maintenanceWindows[{index}]: days and patchTuesdayOffsetDays are both set; a window names exactly one of them"
    )]
    DaysAndPatchTuesday {
        /// Position of the window in the ring's list.
        index: usize,
    },
    /// Neither `days` nor `patchTuesdayOffsetDays` is set.
    #[error(
        "maintenanceWindows[{index}]: neither days nor patchTuesdayOffsetDays is set; a window names exactly one of them"
    )]
    NoDays {
        /// Position of the window in the ring's list.
        index: usize,
    },
    /// `days` is an empty list.
    #[error("maintenanceWindows[{index}].days: is empty; name at least one day")]
    EmptyDays {
        /// Position of the window in the ring's list.
        index: usize,
    },
    /// `weeksOfMonth` is an empty list.
    #[error(
        "maintenanceWindows[{index}].weeksOfMonth: is empty; leave it out for every week, or list 1 to 5 or -1"
    )]
    EmptyWeeksOfMonth {
        /// Position of the window in the ring's list.
        index: usize,
    },
    /// `weeksOfMonth` is set without `days`.
    #[error("maintenanceWindows[{index}].weeksOfMonth: narrows days, so days must be set")]
    WeeksOfMonthWithoutDays {
        /// Position of the window in the ring's list.
        index: usize,
    },
    /// A `weeksOfMonth` entry is not 1 to 5 or -1.
    #[error(
        "maintenanceWindows[{index}].weeksOfMonth: {value} is not a week of the month; use 1 to 5, or -1 for the last"
    )]
    BadWeekOfMonth {
        /// Position of the window in the ring's list.
        index: usize,
        /// The refused entry.
        value: i32,
    },
    /// `patchTuesdayOffsetDays` is outside -7 to 21.
    #[error(
        "maintenanceWindows[{index}].patchTuesdayOffsetDays: {value} is out of range; use -7 to 21"
    )]
    BadPatchTuesdayOffset {
        /// Position of the window in the ring's list.
        index: usize,
        /// The refused value.
        value: i32,
    },
}

/// The compiled maintenance windows of one ring. An empty list means "always open".
#[derive(Clone, Debug)]
pub struct Schedule {
    windows: Vec<Window>,
}

/// One checked window.
#[derive(Clone, Debug)]
struct Window {
    tz: TimeZone,
    /// The zone's canonical IANA name, for people.
    zone_name: String,
    start: Time,
    end: Time,
    /// `end <= start`: the window closes the day after it opens.
    overnight: bool,
    /// Wall-clock length, 1 minute to 24 hours; used only when DST collapses an occurrence.
    nominal: SignedDuration,
    days: DayRule,
}

/// Which local dates a window opens on.
#[derive(Clone, Debug)]
enum DayRule {
    Weekly {
        /// Bit `d` set for weekday `d` (Monday = 0).
        weekdays: u8,
        /// `None` for every week; otherwise bit `n` set for the n-th occurrence (1..=5)
        /// and `last` for the last occurrence in the month.
        weeks: Option<(u8, bool)>,
    },
    PatchTuesday {
        /// The weekday every qualifying date falls on.
        weekday: JiffWeekday,
        /// Back from a qualifying date to its Patch Tuesday: minus the offset, in days.
        back: Span,
    },
}

impl DayRule {
    fn qualifies(&self, date: Date) -> bool {
        match *self {
            DayRule::Weekly { weekdays, weeks } => {
                if weekdays & (1u8 << date.weekday().to_monday_zero_offset()) == 0 {
                    return false;
                }
                let Some((nth, last)) = weeks else {
                    return true;
                };
                let day = date.day();
                let index = (day - 1) / 7 + 1;
                nth & (1u8 << index) != 0 || (last && day + 7 > date.days_in_month())
            }
            DayRule::PatchTuesday { weekday, back } => {
                // The date `offset` days earlier must be the second Tuesday of its month.
                date.weekday() == weekday
                    && date
                        .checked_add(back)
                        .is_ok_and(|tuesday| (8..=14).contains(&tuesday.day()))
            }
        }
    }
}

/// `weeksOfMonth` as bits (weeks 1 to 5) and whether the last week is in; None when the
/// window has none.
fn weeks_of_month(index: usize, weeks: Option<&[i32]>) -> Result<Option<(u8, bool)>, WindowError> {
    let Some(weeks) = weeks else {
        return Ok(None);
    };
    if weeks.is_empty() {
        return Err(WindowError::EmptyWeeksOfMonth { index });
    }
    let mut nth = 0u8;
    let mut last = false;
    for &value in weeks {
        match value {
            1..=5 => nth |= 1u8 << value,
            -1 => last = true,
            _ => return Err(WindowError::BadWeekOfMonth { index, value }),
        }
    }
    Ok(Some((nth, last)))
}

impl Window {
    fn compile(index: usize, w: &MaintenanceWindow) -> Result<Window, WindowError> {
        let tz = TimeZoneDatabase::bundled().get(&w.time_zone).map_err(|_| {
            WindowError::UnknownTimeZone {
                index,
                name: w.time_zone.clone(),
            }
        })?;
        let zone_name = tz.iana_name().unwrap_or(&w.time_zone).to_string();
        let start = parse_hh_mm(&w.start).ok_or_else(|| WindowError::BadTimeOfDay {
            index,
            field: "start",
            value: w.start.clone(),
        })?;
        let end = parse_hh_mm(&w.end).ok_or_else(|| WindowError::BadTimeOfDay {
            index,
            field: "end",
            value: w.end.clone(),
        })?;
        let days = match (&w.days, &w.weeks_of_month, w.patch_tuesday_offset_days) {
            (Some(_), _, Some(_)) => return Err(WindowError::DaysAndPatchTuesday { index }),
            (None, Some(_), _) => return Err(WindowError::WeeksOfMonthWithoutDays { index }),
            (None, None, None) => return Err(WindowError::NoDays { index }),
            (None, None, Some(offset)) => {
                let bad = || WindowError::BadPatchTuesdayOffset {
                    index,
                    value: offset,
                };
                if !(-7..=21).contains(&offset) {
                    return Err(bad());
                }
                DayRule::PatchTuesday {
                    weekday: JiffWeekday::Tuesday.wrapping_add(offset),
                    back: Span::new().try_days(-offset).map_err(|_| bad())?,
                }
            }
            (Some(days), weeks, None) => {
                if days.is_empty() {
                    return Err(WindowError::EmptyDays { index });
                }
                let weekdays = days.iter().fold(0u8, |acc, d| {
                    acc | 1u8 << d.to_jiff().to_monday_zero_offset()
                });
                let weeks = weeks_of_month(index, weeks.as_deref())?;
                DayRule::Weekly { weekdays, weeks }
            }
        };
        let start_min = minutes(start);
        let end_min = minutes(end);
        let overnight = end_min <= start_min;
        let nominal_min = if overnight {
            1440 - (start_min - end_min)
        } else {
            end_min - start_min
        };
        Ok(Window {
            tz,
            zone_name,
            start,
            end,
            overnight,
            nominal: SignedDuration::from_mins(nominal_min),
            days,
        })
    }

    /// The local date `now` falls on in this window's zone.
    fn local_date(&self, now: Timestamp) -> Date {
        self.tz.to_datetime(now).date()
    }

    /// The occurrence that starts on local date `date`, if the window opens that day and
    /// the occurrence can be represented.
    fn occurrence_on(&self, date: Date) -> Option<Occurrence> {
        if !self.days.qualifies(date) {
            return None;
        }
        let start = resolve(&self.tz, date.to_datetime(self.start))?;
        let end_date = if self.overnight {
            date.tomorrow().ok()?
        } else {
            date
        };
        let mut end = resolve(&self.tz, end_date.to_datetime(self.end))?;
        if end <= start {
            // The whole window fell into a skipped stretch of local time: keep its
            // nominal length from the end of the gap (see the module docs).
            end = start.checked_add(self.nominal).ok()?;
        }
        Some(Occurrence { start, end })
    }

    /// The latest-ending occurrence of this window open at `now`.
    fn open_at(&self, now: Timestamp) -> Option<Occurrence> {
        let today = self.local_date(now);
        let mut day = shift(today, -LOOKBACK_DAYS);
        let mut best: Option<Occurrence> = None;
        // Up to one day past today: when clocks fall back over midnight, an occurrence
        // can start on a local date after the one `now` shows.
        for _ in 0..=LOOKBACK_DAYS + 1 {
            if let Some(o) = self.occurrence_on(day)
                && o.contains(now)
                && best.is_none_or(|b| o.end > b.end)
            {
                best = Some(o);
            }
            match day.tomorrow() {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        best
    }

    /// The first occurrence of this window starting strictly after `now`, within the
    /// horizon. Occurrence starts never decrease from one date to the next, so the first
    /// qualifying date found is the earliest.
    fn next_after(&self, now: Timestamp) -> Option<Occurrence> {
        let today = self.local_date(now);
        let mut day = shift(today, -1);
        for _ in 0..=HORIZON_DAYS + 1 {
            if let Some(o) = self.occurrence_on(day)
                && o.start > now
            {
                return Some(o);
            }
            day = day.tomorrow().ok()?;
        }
        None
    }
}

impl Schedule {
    /// Checks a ring's windows and compiles them. An empty list is always open.
    pub fn compile(windows: &[MaintenanceWindow]) -> Result<Schedule, WindowError> {
        let windows = windows
            .iter()
            .enumerate()
            .map(|(index, w)| Window::compile(index, w))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Schedule { windows })
    }

    /// A schedule with no windows: installs may start at any time.
    pub fn always() -> Schedule {
        Schedule {
            windows: Vec::new(),
        }
    }

    /// True when the schedule has no windows and so never closes.
    pub fn is_always(&self) -> bool {
        self.windows.is_empty()
    }

    /// The occurrence open at `now` (start <= now < end). If several overlap, the one
    /// that ends last (the first window listed, on a tie). Always-open schedules return
    /// None here (callers check is_always).
    pub fn open_at(&self, now: Timestamp) -> Option<Occurrence> {
        let mut best: Option<Occurrence> = None;
        for o in self.windows.iter().filter_map(|w| w.open_at(now)) {
            if best.is_none_or(|b| o.end > b.end) {
                best = Some(o);
            }
        }
        best
    }

    /// True when installs may start at `now` (always-open, or an occurrence is open).
    pub fn is_open(&self, now: Timestamp) -> bool {
        self.is_always() || self.open_at(now).is_some()
    }

    /// The earliest occurrence starting strictly after `now`, within [`HORIZON_DAYS`]; if
    /// several windows open at that instant, the one listed first. None for always-open
    /// schedules or when nothing opens within the horizon.
    pub fn next_occurrence_after(&self, now: Timestamp) -> Option<Occurrence> {
        self.next_with_window(now).map(|(_, o)| o)
    }

    /// The earliest occurrence start strictly after `now`; None for always-open
    /// schedules or if nothing opens within the search horizon ([`HORIZON_DAYS`]).
    pub fn next_open_after(&self, now: Timestamp) -> Option<Timestamp> {
        self.next_occurrence_after(now).map(|o| o.start)
    }

    /// Words for a person: the next opening as `Tue 22:00 Europe/Berlin` (the weekday and
    /// local time of the next occurrence start in the window's own zone), None when always
    /// open or nothing opens within the horizon.
    ///
    /// The time shown is when the window really opens, so a `02:30` start skipped by a
    /// spring-forward change reads `03:00`.
    pub fn describe_next(&self, now: Timestamp) -> Option<String> {
        let (w, o) = self.next_with_window(now)?;
        let local = w.tz.to_datetime(o.start);
        Some(format!(
            "{} {:02}:{:02} {}",
            weekday_abbrev(local.weekday()),
            local.hour(),
            local.minute(),
            w.zone_name
        ))
    }

    fn next_with_window(&self, now: Timestamp) -> Option<(&Window, Occurrence)> {
        let mut best: Option<(&Window, Occurrence)> = None;
        for w in &self.windows {
            if let Some(o) = w.next_after(now)
                && best.is_none_or(|(_, b)| o.start < b.start)
            {
                best = Some((w, o));
            }
        }
        best
    }
}

/// A person's `PatchFreeze` as the [`Freeze`] the engine honours: it begins at its
/// `from`, else at its creation, else (an object not yet created, as in an offline
/// manifest) at once; its reason names it, and its owner names its creator when that is
/// someone else.
pub fn patch_freeze(f: &PatchFreeze) -> Freeze {
    let created = f.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let name = f.metadata.name.as_deref().unwrap_or_default();
    let owner = match created_by(&f.metadata) {
        Some(by) if by != f.spec.owner => format!("{}, set by {by}", f.spec.owner),
        _ => f.spec.owner.clone(),
    };
    Freeze {
        from: f.spec.from.or(created).unwrap_or(Timestamp::MIN),
        until: f.spec.until,
        reason: format!("{} (PatchFreeze {name})", f.spec.reason),
        owner,
    }
}

/// The freeze in force at `now` (from <= now < until); with several, the one ending last
/// (the first listed, on a tie).
pub fn active_freeze<'a>(
    freezes: impl IntoIterator<Item = &'a Freeze>,
    now: Timestamp,
) -> Option<&'a Freeze> {
    let mut best: Option<&'a Freeze> = None;
    for f in freezes {
        if f.from <= now && now < f.until && best.is_none_or(|b| f.until > b.until) {
            best = Some(f);
        }
    }
    best
}

/// The earliest freeze boundary (a `from` or an `until`) strictly after `now`. Freezes
/// with `until <= from` are never in force and contribute no boundary.
pub fn next_freeze_change<'a>(
    freezes: impl IntoIterator<Item = &'a Freeze>,
    now: Timestamp,
) -> Option<Timestamp> {
    freezes
        .into_iter()
        .filter(|f| f.from < f.until)
        .flat_map(|f| [f.from, f.until])
        .filter(|&t| t > now)
        .min()
}

/// Parses `HH:MM` (00:00 to 23:59, two digits each), as the CRD schema requires.
fn parse_hh_mm(s: &str) -> Option<Time> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' {
        return None;
    }
    let digit = |i: usize| -> Option<i8> {
        let c = b[i];
        c.is_ascii_digit().then(|| (c - b'0') as i8)
    };
    let hour = digit(0)? * 10 + digit(1)?;
    let minute = digit(3)? * 10 + digit(4)?;
    if hour > 23 || minute > 59 {
        return None;
    }
    Time::new(hour, minute, 0, 0).ok()
}

fn minutes(t: Time) -> i64 {
    i64::from(t.hour()) * 60 + i64::from(t.minute())
}

/// `date` moved by `days`, or the nearest representable date.
fn shift(date: Date, days: i64) -> Date {
    match Span::new().try_days(days).map(|s| date.checked_add(s)) {
        Ok(Ok(d)) => d,
        _ if days < 0 => Date::MIN,
        _ => Date::MAX,
    }
}

/// The first instant at which `tz`'s clock shows `dt` or later (see the module docs):
/// the instant itself, the first of two in a repeated hour, or the end of a skipped
/// stretch. None when that instant is outside jiff's range.
fn resolve(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok(),
        AmbiguousOffset::Gap { before, after } => {
            // `dt - after` is before the jump and `dt - before` after it; the jump
            // itself is the next transition after `dt - after`.
            let later = before.to_timestamp(dt).ok()?;
            let Ok(earlier) = after.to_timestamp(dt) else {
                return Some(later);
            };
            match tz.following(earlier).next() {
                Some(t) if earlier < t.timestamp() && t.timestamp() <= later => Some(t.timestamp()),
                _ => Some(later),
            }
        }
    }
}

fn weekday_abbrev(day: JiffWeekday) -> &'static str {
    match day {
        JiffWeekday::Monday => "Mon",
        JiffWeekday::Tuesday => "Tue",
        JiffWeekday::Wednesday => "Wed",
        JiffWeekday::Thursday => "Thu",
        JiffWeekday::Friday => "Fri",
        JiffWeekday::Saturday => "Sat",
        JiffWeekday::Sunday => "Sun",
    }
}

impl fmt::Display for Occurrence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::Weekday::{self, *};

    fn utc(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// An unambiguous wall-clock time in `zone`, e.g. `local("Europe/Berlin", "2026-06-03T01:00")`.
    fn local(zone: &str, s: &str) -> Timestamp {
        let tz = TimeZoneDatabase::bundled().get(zone).unwrap();
        let dt: DateTime = s.parse().unwrap();
        tz.to_ambiguous_timestamp(dt).unambiguous().unwrap()
    }

    fn occ(start: &str, end: &str) -> Occurrence {
        Occurrence {
            start: utc(start),
            end: utc(end),
        }
    }

    fn weekly(days: &[Weekday], start: &str, end: &str, zone: &str) -> MaintenanceWindow {
        MaintenanceWindow {
            days: Some(days.to_vec()),
            weeks_of_month: None,
            patch_tuesday_offset_days: None,
            start: start.into(),
            end: end.into(),
            time_zone: zone.into(),
        }
    }

    fn monthly(days: &[Weekday], weeks: &[i32], start: &str, end: &str) -> MaintenanceWindow {
        MaintenanceWindow {
            weeks_of_month: Some(weeks.to_vec()),
            ..weekly(days, start, end, "UTC")
        }
    }

    fn patch_tuesday(offset: i32, start: &str, end: &str, zone: &str) -> MaintenanceWindow {
        MaintenanceWindow {
            days: None,
            patch_tuesday_offset_days: Some(offset),
            ..weekly(&[], start, end, zone)
        }
    }

    fn schedule(windows: &[MaintenanceWindow]) -> Schedule {
        Schedule::compile(windows).unwrap()
    }

    /// The next `n` occurrence starts after `from`.
    fn starts(s: &Schedule, from: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut out = Vec::new();
        let mut t = from;
        for _ in 0..n {
            t = s.next_open_after(t).unwrap();
            out.push(t);
        }
        out
    }

    #[test]
    fn berlin_overnight_window() {
        let berlin = "Europe/Berlin";
        let s = schedule(&[weekly(&[Tue, Wed, Thu], "22:00", "04:00", berlin)]);
        assert!(!s.is_always());
        // 2026-06-02 is a Tuesday; Berlin is on CEST (UTC+2).
        assert_eq!(
            jiff::civil::date(2026, 6, 2).weekday(),
            JiffWeekday::Tuesday
        );

        // Wed 01:00: the window that opened Tue 22:00 is still open.
        let wed_1am = local(berlin, "2026-06-03T01:00");
        assert_eq!(
            s.open_at(wed_1am),
            Some(occ("2026-06-02T20:00:00Z", "2026-06-03T02:00:00Z"))
        );
        assert!(s.is_open(wed_1am));

        // Wed 04:00 closes (half-open), Wed 12:00 closed.
        assert!(!s.is_open(local(berlin, "2026-06-03T04:00")));
        assert!(s.is_open(local(berlin, "2026-06-03T03:59")));
        let wed_noon = local(berlin, "2026-06-03T12:00");
        assert_eq!(s.open_at(wed_noon), None);
        assert!(!s.is_open(wed_noon));
        assert_eq!(
            s.next_open_after(wed_noon),
            Some(local(berlin, "2026-06-03T22:00"))
        );

        // Thu 23:00 open; Fri 01:00 still open from Thu; Fri 05:00 closed.
        assert_eq!(
            s.open_at(local(berlin, "2026-06-04T23:00")),
            Some(occ("2026-06-04T20:00:00Z", "2026-06-05T02:00:00Z"))
        );
        assert!(s.is_open(local(berlin, "2026-06-05T01:00")));
        assert!(!s.is_open(local(berlin, "2026-06-05T05:00")));

        // Fri 10:00: next is Tue 22:00.
        let fri = local(berlin, "2026-06-05T10:00");
        assert_eq!(s.next_open_after(fri), Some(utc("2026-06-09T20:00:00Z")));
        assert_eq!(
            s.describe_next(fri).as_deref(),
            Some("Tue 22:00 Europe/Berlin")
        );
        assert_eq!(
            s.next_occurrence_after(fri),
            Some(occ("2026-06-09T20:00:00Z", "2026-06-10T02:00:00Z"))
        );

        // Strictly after: at the very start, the next one is the following day's.
        let tue_open = utc("2026-06-09T20:00:00Z");
        assert_eq!(
            s.next_open_after(tue_open),
            Some(utc("2026-06-10T20:00:00Z"))
        );
        assert_eq!(
            s.describe_next(tue_open).as_deref(),
            Some("Wed 22:00 Europe/Berlin")
        );
    }

    #[test]
    fn berlin_spring_forward_start_in_gap_opens_at_end_of_gap() {
        // 2026-03-29 (Sunday): 02:00 CET -> 03:00 CEST, at 01:00 UTC.
        let s = schedule(&[weekly(&[Sun], "02:30", "05:00", "Europe/Berlin")]);
        let o = occ("2026-03-29T01:00:00Z", "2026-03-29T03:00:00Z");
        assert_eq!(
            s.next_occurrence_after(utc("2026-03-28T12:00:00Z")),
            Some(o)
        );
        assert_eq!(
            s.describe_next(utc("2026-03-28T12:00:00Z")).as_deref(),
            Some("Sun 03:00 Europe/Berlin")
        );
        assert_eq!(s.open_at(utc("2026-03-29T01:00:00Z")), Some(o));
        assert_eq!(s.open_at(utc("2026-03-29T00:59:59Z")), None);
        assert_eq!(s.open_at(utc("2026-03-29T02:59:59Z")), Some(o));
        assert_eq!(s.open_at(utc("2026-03-29T03:00:00Z")), None);
        // The Sundays around it: 02:30 CET and 02:30 CEST.
        assert_eq!(
            s.next_occurrence_after(utc("2026-03-21T00:00:00Z")),
            Some(occ("2026-03-22T01:30:00Z", "2026-03-22T04:00:00Z"))
        );
        assert_eq!(
            s.next_occurrence_after(utc("2026-03-29T01:00:00Z")),
            Some(occ("2026-04-05T00:30:00Z", "2026-04-05T03:00:00Z"))
        );
    }

    #[test]
    fn berlin_spring_forward_end_in_gap_closes_at_end_of_gap() {
        // Sat 23:00 CET to Sun "02:30", which does not exist: closes at 03:00 CEST.
        let s = schedule(&[weekly(&[Sat], "23:00", "02:30", "Europe/Berlin")]);
        assert_eq!(
            s.open_at(utc("2026-03-29T00:30:00Z")),
            Some(occ("2026-03-28T22:00:00Z", "2026-03-29T01:00:00Z"))
        );
    }

    #[test]
    fn window_entirely_in_a_gap_keeps_its_nominal_length() {
        // 02:00-02:45 on the night Berlin skips 02:00-03:00: opens at 03:00 CEST for 45m.
        let s = schedule(&[weekly(&[Sun], "02:00", "02:45", "Europe/Berlin")]);
        assert_eq!(
            s.next_occurrence_after(utc("2026-03-28T00:00:00Z")),
            Some(occ("2026-03-29T01:00:00Z", "2026-03-29T01:45:00Z"))
        );
        // Lord Howe Island skips 30 minutes: 2026-10-04 02:00 +10:30 -> 02:30 +11:00.
        let s = schedule(&[weekly(&[Sun], "02:00", "02:20", "Australia/Lord_Howe")]);
        let o = s
            .next_occurrence_after(utc("2026-10-02T00:00:00Z"))
            .unwrap();
        assert_eq!(o, occ("2026-10-03T15:30:00Z", "2026-10-03T15:50:00Z"));
        assert_eq!(
            s.describe_next(utc("2026-10-02T00:00:00Z")).as_deref(),
            Some("Sun 02:30 Australia/Lord_Howe")
        );
    }

    #[test]
    fn berlin_fall_back_uses_first_occurrence_of_repeated_hour() {
        // 2026-10-25 (Sunday): 03:00 CEST -> 02:00 CET, at 01:00 UTC.
        let s = schedule(&[weekly(&[Sun], "02:30", "03:30", "Europe/Berlin")]);
        // Opens at 02:30 CEST (00:30 UTC), closes at 03:30 CET (02:30 UTC): two hours.
        let o = occ("2026-10-25T00:30:00Z", "2026-10-25T02:30:00Z");
        assert_eq!(
            s.next_occurrence_after(utc("2026-10-24T00:00:00Z")),
            Some(o)
        );
        // Open during the second pass through 02:30 too (01:30 UTC is 02:30 CET).
        assert_eq!(s.open_at(utc("2026-10-25T01:30:00Z")), Some(o));
        assert_eq!(s.open_at(utc("2026-10-25T00:29:59Z")), None);
        assert_eq!(s.open_at(utc("2026-10-25T02:30:00Z")), None);
        // Not reopened at the second 02:30.
        assert_eq!(
            s.next_open_after(utc("2026-10-25T00:30:00Z")),
            Some(utc("2026-11-01T01:30:00Z"))
        );
    }

    #[test]
    fn new_york_across_dst_changes() {
        // 2026-03-08 (Sunday): 02:00 EST -> 03:00 EDT, at 07:00 UTC.
        let ny = "America/New_York";
        let s = schedule(&[weekly(&[Sat], "22:00", "06:00", ny)]);
        // Sat 22:00 EST to Sun 06:00 EDT: seven hours, not eight.
        assert_eq!(
            s.open_at(utc("2026-03-08T06:59:59Z")),
            Some(occ("2026-03-08T03:00:00Z", "2026-03-08T10:00:00Z"))
        );
        assert!(s.is_open(utc("2026-03-08T09:59:59Z")));
        assert!(!s.is_open(utc("2026-03-08T10:00:00Z")));
        // The weeks either side: EST all night, then EDT all night.
        assert_eq!(
            s.next_occurrence_after(utc("2026-03-01T00:00:00Z")),
            Some(occ("2026-03-01T03:00:00Z", "2026-03-01T11:00:00Z"))
        );
        assert_eq!(
            s.next_occurrence_after(utc("2026-03-08T03:00:00Z")),
            Some(occ("2026-03-15T02:00:00Z", "2026-03-15T10:00:00Z"))
        );
        assert_eq!(
            s.describe_next(utc("2026-03-08T03:00:00Z")).as_deref(),
            Some("Sat 22:00 America/New_York")
        );

        // Sun 01:30-02:30: closes at the end of the gap, 03:00 EDT.
        let s = schedule(&[weekly(&[Sun], "01:30", "02:30", ny)]);
        assert_eq!(
            s.next_occurrence_after(utc("2026-03-07T00:00:00Z")),
            Some(occ("2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z"))
        );
        // Fall back, 2026-11-01: 02:00 EDT -> 01:00 EST at 06:00 UTC. 01:19 happens twice;
        // the window opens at the first (EDT) and runs to midnight EST.
        let s = schedule(&[weekly(&[Sun], "01:19", "00:00", ny)]);
        assert_eq!(
            s.next_occurrence_after(utc("2026-10-31T00:00:00Z")),
            Some(occ("2026-11-01T05:19:00Z", "2026-11-02T05:00:00Z"))
        );
        assert_eq!(
            s.next_open_after(utc("2026-11-01T05:19:00Z")),
            Some(utc("2026-11-08T06:19:00Z"))
        );

        // A weekday daytime window: 09:00 is 14:00 UTC before, 13:00 UTC after.
        let s = schedule(&[weekly(&[Fri, Mon], "09:00", "17:00", ny)]);
        assert_eq!(
            starts(&s, utc("2026-03-06T00:00:00Z"), 2),
            [utc("2026-03-06T14:00:00Z"), utc("2026-03-09T13:00:00Z")]
        );
    }

    #[test]
    fn weeks_of_month_first_and_third_saturday() {
        // Saturdays of August 2026: 1, 8, 15, 22, 29; of September: 5, 12, 19, 26.
        let s = schedule(&[monthly(&[Sat], &[1, 3], "10:00", "12:00")]);
        assert_eq!(
            starts(&s, utc("2026-07-31T00:00:00Z"), 4),
            [
                utc("2026-08-01T10:00:00Z"),
                utc("2026-08-15T10:00:00Z"),
                utc("2026-09-05T10:00:00Z"),
                utc("2026-09-19T10:00:00Z"),
            ]
        );
        assert!(s.is_open(utc("2026-08-15T11:00:00Z")));
        assert!(!s.is_open(utc("2026-08-08T11:00:00Z")));
        assert!(!s.is_open(utc("2026-08-22T11:00:00Z")));
    }

    #[test]
    fn weeks_of_month_last_and_fifth_friday() {
        // January 2026 has five Fridays (2..30), February and March four (ending 27th).
        let s = schedule(&[monthly(&[Fri], &[-1], "18:00", "20:00")]);
        assert_eq!(
            starts(&s, utc("2026-01-01T00:00:00Z"), 3),
            [
                utc("2026-01-30T18:00:00Z"),
                utc("2026-02-27T18:00:00Z"),
                utc("2026-03-27T18:00:00Z"),
            ]
        );
        assert!(!s.is_open(utc("2026-01-23T19:00:00Z")));
        // The fifth Friday only: Jan 30, then not until May 29.
        let s = schedule(&[monthly(&[Fri], &[5], "18:00", "20:00")]);
        assert_eq!(
            starts(&s, utc("2026-01-01T00:00:00Z"), 2),
            [utc("2026-01-30T18:00:00Z"), utc("2026-05-29T18:00:00Z")]
        );
        // Fourth and last coincide in a four-Friday month: one occurrence, not two.
        let s = schedule(&[monthly(&[Fri], &[4, -1], "18:00", "20:00")]);
        assert_eq!(
            starts(&s, utc("2026-01-31T00:00:00Z"), 2),
            [utc("2026-02-27T18:00:00Z"), utc("2026-03-27T18:00:00Z")]
        );
    }

    #[test]
    fn patch_tuesdays_of_2026() {
        let s = schedule(&[patch_tuesday(0, "20:00", "23:00", "UTC")]);
        let expected: Vec<Timestamp> = [
            "01-13", "02-10", "03-10", "04-14", "05-12", "06-09", "07-14", "08-11", "09-08",
            "10-13", "11-10", "12-08",
        ]
        .iter()
        .map(|md| utc(&format!("2026-{md}T20:00:00Z")))
        .collect();
        assert_eq!(starts(&s, utc("2026-01-01T00:00:00Z"), 12), expected);
        assert_eq!(
            s.describe_next(utc("2026-11-01T00:00:00Z")).as_deref(),
            Some("Tue 20:00 UTC")
        );
        assert!(s.is_open(utc("2026-11-10T22:59:00Z")));
        assert!(!s.is_open(utc("2026-11-17T21:00:00Z")));
    }

    #[test]
    fn patch_tuesday_offsets() {
        let nov = utc("2026-11-01T00:00:00Z");
        let first = |offset: i32| {
            schedule(&[patch_tuesday(offset, "20:00", "23:00", "UTC")])
                .next_open_after(nov)
                .unwrap()
        };
        assert_eq!(first(0), utc("2026-11-10T20:00:00Z"));
        assert_eq!(first(3), utc("2026-11-13T20:00:00Z")); // Friday
        assert_eq!(first(-1), utc("2026-11-09T20:00:00Z")); // Monday before
        assert_eq!(first(-7), utc("2026-11-03T20:00:00Z")); // first Tuesday
        // +20 from October's Patch Tuesday (2026-10-13) is already in November.
        assert_eq!(first(20), utc("2026-11-02T20:00:00Z"));
        assert_eq!(
            schedule(&[patch_tuesday(20, "20:00", "23:00", "UTC")])
                .next_open_after(utc("2026-11-03T00:00:00Z")),
            Some(utc("2026-11-30T20:00:00Z"))
        );

        // +20 lands in the next month: Jan 13 -> Feb 2, Feb 10 -> Mar 2.
        let s = schedule(&[patch_tuesday(20, "20:00", "23:00", "UTC")]);
        assert_eq!(
            starts(&s, utc("2026-01-01T00:00:00Z"), 2),
            [utc("2026-02-02T20:00:00Z"), utc("2026-03-02T20:00:00Z")]
        );
        assert_eq!(
            s.describe_next(utc("2026-01-01T00:00:00Z")).as_deref(),
            Some("Mon 20:00 UTC")
        );
        // -7 from a Patch Tuesday on the 8th lands on the 1st (2026-09-01).
        let s = schedule(&[patch_tuesday(-7, "20:00", "23:00", "UTC")]);
        assert_eq!(
            s.next_open_after(utc("2026-08-05T00:00:00Z")),
            Some(utc("2026-09-01T20:00:00Z"))
        );
        // +21 from 2026-11-10 is 2026-12-01; from 2026-12-08, 2026-12-29.
        let s = schedule(&[patch_tuesday(21, "20:00", "23:00", "UTC")]);
        assert_eq!(
            starts(&s, utc("2026-11-20T00:00:00Z"), 2),
            [utc("2026-12-01T20:00:00Z"), utc("2026-12-29T20:00:00Z")]
        );
    }

    #[test]
    fn patch_tuesday_in_a_time_zone() {
        // The date is local: Patch Tuesday evening in Kolkata (UTC+5:30).
        let s = schedule(&[patch_tuesday(0, "22:00", "02:00", "Asia/Kolkata")]);
        assert_eq!(
            s.next_occurrence_after(utc("2026-11-01T00:00:00Z")),
            Some(occ("2026-11-10T16:30:00Z", "2026-11-10T20:30:00Z"))
        );
        assert_eq!(
            s.describe_next(utc("2026-11-01T00:00:00Z")).as_deref(),
            Some("Tue 22:00 Asia/Kolkata")
        );
    }

    #[test]
    fn several_windows() {
        let s = schedule(&[
            weekly(&[Mon], "08:00", "10:00", "UTC"),
            weekly(&[Wed], "20:00", "22:00", "Europe/Berlin"),
            patch_tuesday(0, "01:00", "03:00", "America/New_York"),
        ]);
        // 2026-11-09 is a Monday.
        assert!(s.is_open(utc("2026-11-09T09:00:00Z")));
        assert!(!s.is_open(utc("2026-11-09T10:00:00Z")));
        assert_eq!(
            s.next_open_after(utc("2026-11-09T10:00:00Z")),
            Some(utc("2026-11-10T06:00:00Z")) // Patch Tuesday 01:00 EST
        );
        assert_eq!(
            s.describe_next(utc("2026-11-09T10:00:00Z")).as_deref(),
            Some("Tue 01:00 America/New_York")
        );
        assert_eq!(
            s.next_open_after(utc("2026-11-10T06:00:00Z")),
            Some(utc("2026-11-11T19:00:00Z")) // Wed 20:00 CET
        );
        assert_eq!(
            s.describe_next(utc("2026-11-10T06:00:00Z")).as_deref(),
            Some("Wed 20:00 Europe/Berlin")
        );
        assert_eq!(
            s.next_open_after(utc("2026-11-11T19:00:00Z")),
            Some(utc("2026-11-16T08:00:00Z"))
        );
    }

    #[test]
    fn overlapping_windows_report_the_one_ending_last() {
        let s = schedule(&[
            weekly(&[Mon], "09:00", "10:00", "UTC"),
            weekly(&[Mon], "08:00", "12:00", "UTC"),
            weekly(&[Mon], "07:00", "11:00", "UTC"),
            // Sunday 23:00 to Monday 11:30 Berlin time (10:30 UTC), across midnight.
            weekly(&[Sun], "23:00", "11:30", "Europe/Berlin"),
        ]);
        let monday = |hm: &str| utc(&format!("2026-11-09T{hm}:00Z"));
        assert_eq!(
            s.open_at(monday("09:30")),
            Some(occ("2026-11-09T08:00:00Z", "2026-11-09T12:00:00Z"))
        );
        assert_eq!(
            s.open_at(monday("07:30")),
            Some(occ("2026-11-09T07:00:00Z", "2026-11-09T11:00:00Z"))
        );
        assert_eq!(
            s.open_at(monday("06:00")),
            Some(occ("2026-11-08T22:00:00Z", "2026-11-09T10:30:00Z"))
        );
        assert_eq!(s.open_at(monday("12:00")), None);
        // The next start after 07:00 is 08:00 even though 07:00-11:00 is open.
        assert_eq!(s.next_open_after(monday("07:00")), Some(monday("08:00")));
    }

    #[test]
    fn equal_start_and_end_is_a_24_hour_window() {
        let s = schedule(&[weekly(&[Mon], "06:00", "06:00", "UTC")]);
        assert_eq!(
            s.open_at(utc("2026-11-10T05:59:59Z")),
            Some(occ("2026-11-09T06:00:00Z", "2026-11-10T06:00:00Z"))
        );
        assert!(!s.is_open(utc("2026-11-10T06:00:00Z")));
        // Every day midnight to midnight: always open, but still has next starts.
        let every = [Mon, Tue, Wed, Thu, Fri, Sat, Sun];
        let s = schedule(&[weekly(&every, "00:00", "00:00", "Europe/Berlin")]);
        for t in [
            "2026-03-29T01:30:00Z",
            "2026-10-25T01:30:00Z",
            "2026-06-01T12:34:56Z",
        ] {
            assert!(s.is_open(utc(t)), "{t}");
        }
        assert_eq!(
            s.next_open_after(utc("2026-06-01T12:00:00Z")),
            Some(utc("2026-06-01T22:00:00Z"))
        );
    }

    #[test]
    fn always_open() {
        let now = utc("2026-06-01T12:00:00Z");
        for s in [Schedule::always(), schedule(&[])] {
            assert!(s.is_always());
            assert!(s.is_open(now));
            assert_eq!(s.open_at(now), None);
            assert_eq!(s.next_open_after(now), None);
            assert_eq!(s.next_occurrence_after(now), None);
            assert_eq!(s.describe_next(now), None);
        }
    }

    #[test]
    fn time_zone_names_are_matched_without_case_and_shown_canonically() {
        let s = schedule(&[weekly(&[Tue], "22:00", "23:00", "europe/berlin")]);
        assert_eq!(
            s.describe_next(utc("2026-06-01T00:00:00Z")).as_deref(),
            Some("Tue 22:00 Europe/Berlin")
        );
    }

    fn error(windows: &[MaintenanceWindow]) -> String {
        Schedule::compile(windows).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_window_and_field() {
        let ok = weekly(&[Tue], "22:00", "04:00", "UTC");
        assert_eq!(
            error(&[ok.clone(), weekly(&[Tue], "22:00", "04:00", "Europe/Berln")]),
            r#"maintenanceWindows[1].timeZone: unknown time zone "Europe/Berln""#
        );
        assert_eq!(
            error(&[weekly(&[Tue], "25:00", "04:00", "UTC")]),
            r#"maintenanceWindows[0].start: "25:00" is not a time of day; write HH:MM from 00:00 to 23:59"#
        );
        assert_eq!(
            error(&[
                ok.clone(),
                ok.clone(),
                weekly(&[Tue], "22:00", "7:00", "UTC")
            ]),
            r#"maintenanceWindows[2].end: "7:00" is not a time of day; write HH:MM from 00:00 to 23:59"#
        );
        let both = MaintenanceWindow {
            patch_tuesday_offset_days: Some(0),
            ..ok.clone()
        };
        assert_eq!(
            error(&[both]),
            "maintenanceWindows[0]: days and patchTuesdayOffsetDays are both set; a window names exactly one of them"
        );
        let neither = MaintenanceWindow {
            days: None,
            ..ok.clone()
        };
        assert_eq!(
            error(&[neither]),
            "maintenanceWindows[0]: neither days nor patchTuesdayOffsetDays is set; a window names exactly one of them"
        );
        assert_eq!(
            error(&[ok.clone(), monthly(&[Sat], &[1, 0], "10:00", "12:00")]),
            "maintenanceWindows[1].weeksOfMonth: 0 is not a week of the month; use 1 to 5, or -1 for the last"
        );
        assert_eq!(
            error(&[patch_tuesday(22, "10:00", "12:00", "UTC")]),
            "maintenanceWindows[0].patchTuesdayOffsetDays: 22 is out of range; use -7 to 21"
        );
        assert_eq!(
            error(&[weekly(&[], "10:00", "12:00", "UTC")]),
            "maintenanceWindows[0].days: is empty; name at least one day"
        );
        assert_eq!(
            Schedule::compile(&[monthly(&[Sat], &[], "10:00", "12:00")]).unwrap_err(),
            WindowError::EmptyWeeksOfMonth { index: 0 }
        );
        let weeks_only = MaintenanceWindow {
            days: None,
            ..monthly(&[Sat], &[1], "10:00", "12:00")
        };
        assert_eq!(
            error(&[weeks_only]),
            "maintenanceWindows[0].weeksOfMonth: narrows days, so days must be set"
        );
    }

    #[test]
    fn times_of_day_are_strict() {
        for bad in [
            "24:00",
            "23:60",
            "7:00",
            "07:0",
            "07-00",
            "0700",
            " 07:00",
            "07:00 ",
            "+7:00",
            "٠٧:٠٠",
            "",
            "ab:cd",
            "07:00:00",
        ] {
            assert_eq!(parse_hh_mm(bad), None, "{bad:?}");
        }
        assert_eq!(parse_hh_mm("00:00"), Some(Time::midnight()));
        assert_eq!(parse_hh_mm("23:59"), Time::new(23, 59, 0, 0).ok());
        assert_eq!(
            error(&[weekly(&[Tue], "", "04:00", "")]),
            r#"maintenanceWindows[0].timeZone: unknown time zone """#
        );
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        let s = schedule(&[
            weekly(&[Mon, Sun], "23:00", "01:00", "Australia/Lord_Howe"),
            weekly(&[Fri], "00:00", "00:00", "America/New_York"),
            monthly(&[Fri], &[-1, 5], "12:00", "11:59"),
            patch_tuesday(21, "00:00", "00:00", "Pacific/Kiritimati"),
            patch_tuesday(-7, "23:59", "00:00", "Pacific/Pago_Pago"),
        ]);
        for t in [
            Timestamp::MIN,
            Timestamp::MAX,
            Timestamp::MIN + SignedDuration::from_hours(30),
            Timestamp::MAX - SignedDuration::from_hours(30),
            Timestamp::UNIX_EPOCH,
        ] {
            let _ = s.open_at(t);
            let _ = s.is_open(t);
            let _ = s.next_open_after(t);
            let _ = s.describe_next(t);
        }
        assert_eq!(s.next_open_after(Timestamp::MAX), None);
    }

    fn freeze(from: &str, until: &str, reason: &str) -> Freeze {
        Freeze {
            from: utc(from),
            until: utc(until),
            reason: reason.into(),
            owner: "ops".into(),
        }
    }

    #[test]
    fn freezes_are_half_open_and_the_longest_wins() {
        let freezes = [
            freeze("2026-12-20T00:00:00Z", "2027-01-05T00:00:00Z", "holidays"),
            freeze("2026-12-24T00:00:00Z", "2026-12-27T00:00:00Z", "christmas"),
            freeze("2027-01-03T00:00:00Z", "2027-01-10T00:00:00Z", "dr test"),
        ];
        let reason = |t: &str| active_freeze(&freezes, utc(t)).map(|f| f.reason.as_str());
        assert_eq!(reason("2026-12-19T23:59:59Z"), None);
        assert_eq!(reason("2026-12-20T00:00:00Z"), Some("holidays"));
        assert_eq!(reason("2026-12-25T00:00:00Z"), Some("holidays"));
        assert_eq!(reason("2027-01-04T00:00:00Z"), Some("dr test"));
        assert_eq!(reason("2027-01-05T00:00:00Z"), Some("dr test"));
        assert_eq!(reason("2027-01-09T23:59:59Z"), Some("dr test"));
        assert_eq!(reason("2027-01-10T00:00:00Z"), None);
        // A freeze alone is not in force at its until.
        assert_eq!(
            active_freeze(&freezes[1..2], utc("2026-12-27T00:00:00Z")),
            None
        );
        assert_eq!(active_freeze([], utc("2026-12-25T00:00:00Z")), None);
    }

    #[test]
    fn next_freeze_change_is_strictly_after_now() {
        let freezes = vec![
            freeze("2026-12-20T00:00:00Z", "2027-01-05T00:00:00Z", "holidays"),
            freeze("2026-12-24T00:00:00Z", "2026-12-27T00:00:00Z", "christmas"),
            // Never in force: contributes no boundary.
            freeze("2026-12-22T00:00:00Z", "2026-12-21T00:00:00Z", "typo"),
        ];
        let next = |t: &str| next_freeze_change(&freezes, utc(t));
        assert_eq!(
            next("2026-12-01T00:00:00Z"),
            Some(utc("2026-12-20T00:00:00Z"))
        );
        assert_eq!(
            next("2026-12-20T00:00:00Z"),
            Some(utc("2026-12-24T00:00:00Z"))
        );
        assert_eq!(
            next("2026-12-24T00:00:00Z"),
            Some(utc("2026-12-27T00:00:00Z"))
        );
        assert_eq!(
            next("2026-12-27T00:00:00Z"),
            Some(utc("2027-01-05T00:00:00Z"))
        );
        assert_eq!(next("2027-01-05T00:00:00Z"), None);
        assert_eq!(
            active_freeze(&freezes[2..], utc("2026-12-21T12:00:00Z")),
            None
        );
    }

    mod props {
        use super::*;
        use jiff::civil::Weekday as W;
        use proptest::prelude::*;

        const ZONES: [&str; 5] = [
            "Europe/Berlin",
            "America/New_York",
            "Australia/Lord_Howe",
            "Asia/Kolkata",
            "UTC",
        ];
        const DAYS: [Weekday; 7] = [Mon, Tue, Wed, Thu, Fri, Sat, Sun];

        fn hh_mm() -> impl Strategy<Value = String> {
            // Often in the small hours and on the hour or half hour, where DST changes are.
            let hour = prop_oneof![0u8..24, 1u8..4];
            let minute = prop_oneof![prop::sample::select(vec![0u8, 30]), 0u8..60];
            (hour, minute).prop_map(|(h, m)| format!("{h:02}:{m:02}"))
        }

        fn window() -> impl Strategy<Value = MaintenanceWindow> {
            let weeks = prop::option::of(prop::sample::subsequence(vec![1, 2, 3, 4, 5, -1], 1..=6));
            let rule = prop_oneof![
                (prop::sample::subsequence(DAYS.to_vec(), 1..=7), weeks).prop_map(|(d, w)| (
                    Some(d),
                    w,
                    None
                )),
                (-7i32..=21).prop_map(|k| (None, None, Some(k))),
            ];
            (rule, hh_mm(), hh_mm(), prop::sample::select(ZONES.to_vec())).prop_map(
                |((days, weeks_of_month, patch_tuesday_offset_days), start, end, zone)| {
                    MaintenanceWindow {
                        days,
                        weeks_of_month,
                        patch_tuesday_offset_days,
                        start,
                        end,
                        time_zone: zone.to_string(),
                    }
                },
            )
        }

        fn windows() -> impl Strategy<Value = Vec<MaintenanceWindow>> {
            prop::collection::vec(window(), 1..=3)
        }

        /// An instant in 2025 to 2028.
        fn instant() -> impl Strategy<Value = Timestamp> {
            (1_735_689_600i64..1_861_920_000).prop_map(|s| Timestamp::from_second(s).unwrap())
        }

        // An independent reading of the spec, written differently from the code under
        // test: jiff's nth_weekday_of_month for the day rules and a search over the
        // zone's clock for the first instant showing a given local time.

        fn oracle_qualifies(w: &MaintenanceWindow, d: Date) -> bool {
            if let Some(k) = w.patch_tuesday_offset_days {
                let tuesday = d.checked_sub(Span::new().days(k)).unwrap();
                return tuesday.nth_weekday_of_month(2, W::Tuesday).ok() == Some(tuesday);
            }
            let days = w.days.as_ref().unwrap();
            if !days.iter().any(|x| x.to_jiff() == d.weekday()) {
                return false;
            }
            match &w.weeks_of_month {
                None => true,
                Some(weeks) => weeks
                    .iter()
                    .any(|&n| d.nth_weekday_of_month(n as i8, d.weekday()).ok() == Some(d)),
            }
        }

        fn oracle_resolve(tz: &TimeZone, dt: DateTime) -> Timestamp {
            // The offsets the zone uses within a day of dt.
            let as_utc = dt.to_zoned(TimeZone::UTC).unwrap().timestamp();
            let mut offsets: Vec<jiff::tz::Offset> = (-48..=48)
                .map(|k| tz.to_offset(as_utc + SignedDuration::from_mins(30 * k)))
                .collect();
            offsets.sort();
            offsets.dedup();
            // Every instant whose clock shows dt: take the first.
            let showing = offsets
                .iter()
                .map(|&o| o.to_timestamp(dt).unwrap())
                .filter(|&t| tz.to_datetime(t) == dt)
                .min();
            if let Some(t) = showing {
                return t;
            }
            // None: dt was skipped. Between dt at the largest and the smallest offset the
            // clock rises through the gap; find the second it first reads dt or later.
            let mut lo = offsets.last().unwrap().to_timestamp(dt).unwrap();
            let mut hi = offsets.first().unwrap().to_timestamp(dt).unwrap();
            assert!(tz.to_datetime(lo) < dt && tz.to_datetime(hi) >= dt);
            while hi.as_second() - lo.as_second() > 1 {
                let mid = Timestamp::from_second((lo.as_second() + hi.as_second()) / 2).unwrap();
                if tz.to_datetime(mid) >= dt {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            hi
        }

        fn oracle_occurrence(w: &MaintenanceWindow, d: Date) -> Option<Occurrence> {
            if !oracle_qualifies(w, d) {
                return None;
            }
            let tz = TimeZoneDatabase::bundled().get(&w.time_zone).unwrap();
            let start_time: Time = w.start.parse().unwrap();
            let end_time: Time = w.end.parse().unwrap();
            let start = oracle_resolve(&tz, d.to_datetime(start_time));
            let end_date = if end_time <= start_time {
                d.tomorrow().unwrap()
            } else {
                d
            };
            let mut end = oracle_resolve(&tz, end_date.to_datetime(end_time));
            if end <= start {
                let wall = end_date
                    .to_datetime(end_time)
                    .duration_since(d.to_datetime(start_time));
                end = start + wall;
            }
            Some(Occurrence { start, end })
        }

        /// Every occurrence of `w` starting on local dates around `t` (from 3 days before
        /// to `days_after` after).
        fn oracle_occurrences(
            w: &MaintenanceWindow,
            t: Timestamp,
            days_after: i64,
        ) -> impl Iterator<Item = Occurrence> + '_ {
            let tz = TimeZoneDatabase::bundled().get(&w.time_zone).unwrap();
            let today = tz.to_datetime(t).date();
            (-3..=days_after).filter_map(move |n| {
                oracle_occurrence(w, today.checked_add(Span::new().days(n)).unwrap())
            })
        }

        proptest! {
            #[test]
            fn open_at_contains_now(ws in windows(), t in instant()) {
                let s = Schedule::compile(&ws).unwrap();
                if let Some(o) = s.open_at(t) {
                    prop_assert!(o.start <= t && t < o.end, "{o} at {t}");
                    prop_assert!(o.end > o.start);
                }
                prop_assert_eq!(s.is_open(t), s.open_at(t).is_some());
            }

            #[test]
            fn open_at_matches_oracle(ws in windows(), t in instant()) {
                let s = Schedule::compile(&ws).unwrap();
                let expected = ws
                    .iter()
                    .flat_map(|w| oracle_occurrences(w, t, 1))
                    .filter(|o| o.contains(t))
                    .map(|o| o.end)
                    .max();
                prop_assert_eq!(s.open_at(t).map(|o| o.end), expected);
            }

            #[test]
            fn next_open_after_is_the_next_start(ws in windows(), t in instant()) {
                let s = Schedule::compile(&ws).unwrap();
                let next = s.next_open_after(t);
                let expected = ws
                    .iter()
                    .filter_map(|w| oracle_occurrences(w, t, HORIZON_DAYS).find(|o| o.start > t))
                    .map(|o| o.start)
                    .min();
                prop_assert_eq!(next, expected);
                // Every valid window opens within the horizon.
                let next = next.unwrap();
                prop_assert!(next > t);
                prop_assert!(s.is_open(next));
                prop_assert!(s.open_at(next).is_some_and(|o| o.start <= next));
                prop_assert!(s.describe_next(t).is_some());
                // Sampled: nothing open in (t, next) started after t.
                let gap = next.duration_since(t).as_secs();
                for i in 1..64 {
                    let sample = t + SignedDuration::from_secs(gap * i / 64);
                    if sample <= t || sample >= next {
                        continue;
                    }
                    if let Some(o) = s.open_at(sample) {
                        prop_assert!(o.start <= t, "{o} at {sample}, next {next}");
                    }
                }
            }

            #[test]
            fn describe_next_shows_the_local_start(ws in windows(), t in instant()) {
                let s = Schedule::compile(&ws).unwrap();
                let next = s.next_open_after(t).unwrap();
                let text = s.describe_next(t).unwrap();
                let zone = text.rsplit(' ').next().unwrap();
                let tz = TimeZoneDatabase::bundled().get(zone).unwrap();
                let local = next.to_zoned(tz).strftime("%a %H:%M").to_string();
                prop_assert!(text.starts_with(&local), "{text} vs {local}");
            }

            #[test]
            fn garbage_never_panics(
                start in prop_oneof![hh_mm(), ".{0,8}"],
                end in prop_oneof![hh_mm(), ".{0,8}"],
                zone in prop_oneof![prop::sample::select(ZONES.to_vec()).prop_map(String::from), ".{0,20}"],
                days in prop::option::of(prop::collection::vec(prop::sample::select(DAYS.to_vec()), 0..10)),
                weeks in prop::option::of(prop::collection::vec(any::<i32>(), 0..6)),
                offset in prop::option::of(prop_oneof![-8i32..=22, any::<i32>()]),
                t in any::<i64>(),
                freezes in prop::collection::vec((any::<i64>(), any::<i64>()), 0..4),
            ) {
                let window = MaintenanceWindow {
                    days,
                    weeks_of_month: weeks,
                    patch_tuesday_offset_days: offset,
                    start,
                    end,
                    time_zone: zone,
                };
                let range = Timestamp::MIN.as_second()..=Timestamp::MAX.as_second();
                let clamp = |s: i64| Timestamp::from_second(s.clamp(*range.start(), *range.end())).unwrap();
                let t = clamp(t);
                match Schedule::compile(&[window]) {
                    Ok(s) => {
                        let _ = s.open_at(t);
                        let _ = s.is_open(t);
                        let _ = s.next_open_after(t);
                        let _ = s.describe_next(t);
                    }
                    Err(e) => prop_assert!(e.to_string().starts_with("maintenanceWindows[0]")),
                }
                let freezes: Vec<Freeze> = freezes
                    .into_iter()
                    .map(|(a, b)| Freeze { from: clamp(a), until: clamp(b), reason: "r".into(), owner: "o".into() })
                    .collect();
                if let Some(f) = active_freeze(&freezes, t) {
                    prop_assert!(f.from <= t && t < f.until);
                }
                if let Some(c) = next_freeze_change(&freezes, t) {
                    prop_assert!(c > t);
                }
            }
        }
    }
}
