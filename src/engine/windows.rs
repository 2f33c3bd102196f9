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
                let weeks = match weeks {
                    None => None,
                    Some(weeks) if weeks.is_empty() => {
                        return Err(WindowError::EmptyWeeksOfMonth { index });
                    }
                    Some(weeks) => {
                        let mut nth = 0u8;
                        let mut last = false;
                        for &value in weeks {
                            match value {
                                1..=5 => nth |= 1u8 << value,
                                -1 => last = true,
                                _ => return Err(WindowError::BadWeekOfMonth { index, value }),
                            }
                        }
                        Some((nth, last))
                    }
                };
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

