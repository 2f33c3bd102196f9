//! A tenant's calendar month in its time zone: the period a packet covers.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// Why a month or a time zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonthError {
    /// Not `YYYY-MM`.
    #[error("month {0:?}: expected YYYY-MM, e.g. 2023-11")]
    Month(String),
    /// Not an IANA time zone name.
    #[error("time zone {0:?}: not an IANA time zone name (e.g. Europe/Berlin, UTC)")]
    TimeZone(String),
}

/// One calendar month in one time zone.
#[derive(Clone, Debug, PartialEq)]
pub struct Month {
    /// Its first day.
    first: Date,
    /// The time zone's IANA name.
    zone_name: String,
    zone: TimeZone,
}

impl Month {
    /// The month `YYYY-MM` in the time zone named `zone`.
    pub fn parse(month: &str, zone: &str) -> Result<Self, MonthError> {
        let bad = || MonthError::Month(month.to_string());
        let (y, m) = month.split_once('-').ok_or_else(bad)?;
        let (y, m): (i16, i8) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if y.to_string().len() != 4 || !(1..=12).contains(&m) || month.len() != 7 {
            return Err(bad());
        }
        let first = Date::new(y, m, 1).map_err(|_| bad())?;
        Self::on(first, zone)
    }

    /// The month an instant falls in, in the time zone named `zone`.
    pub fn containing(at: Timestamp, zone: &str) -> Result<Self, MonthError> {
        let tz = zone_of(zone)?;
        let date = at.to_zoned(tz).date();
        Self::on(date.first_of_month(), zone)
    }

    fn on(first: Date, zone: &str) -> Result<Self, MonthError> {
        Ok(Self {
            first,
            zone_name: zone.to_string(),
            zone: zone_of(zone)?,
        })
    }

    /// `YYYY-MM`.
    pub fn label(&self) -> String {
        format!("{:04}-{:02}", self.first.year(), self.first.month())
    }

    /// The time zone's name.
    pub fn time_zone(&self) -> &str {
        &self.zone_name
    }

    /// The month's first instant.
    pub fn start(&self) -> Timestamp {
        midnight(self.first, &self.zone)
    }

    /// The first instant of the next month (the month is `[start, end)`).
    pub fn end(&self) -> Timestamp {
        midnight(self.next().first, &self.zone)
    }

    /// An instant as a time in the month's time zone.
    pub fn zoned(&self, at: Timestamp) -> jiff::Zoned {
        at.to_zoned(self.zone.clone())
    }

    /// The month after this one.
    pub fn next(&self) -> Self {
        let first = self.first.saturating_add(1.month());
        Self {
            first,
            ..self.clone()
        }
    }

    /// The month before this one.
    pub fn previous(&self) -> Self {
        let first = self.first.saturating_sub(1.month());
        Self {
            first,
            ..self.clone()
        }
    }
}

fn zone_of(name: &str) -> Result<TimeZone, MonthError> {
    TimeZone::get(name).map_err(|_| MonthError::TimeZone(name.to_string()))
}

/// The first instant of a day in a time zone (a day that starts in a DST gap starts at
/// the gap's end).
fn midnight(day: Date, tz: &TimeZone) -> Timestamp {
    day.to_zoned(tz.clone())
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_runs_from_its_first_midnight_to_the_next_month_s() {
        let m = Month::parse("2023-11", "Europe/Berlin").unwrap();
        assert_eq!(m.label(), "2023-11");
        assert_eq!(m.start().to_string(), "2023-10-31T23:00:00Z");
        assert_eq!(m.end().to_string(), "2023-11-30T23:00:00Z");
        assert_eq!(m.next().label(), "2023-12");
        assert_eq!(m.previous().label(), "2023-10");
        let dec = Month::parse("2023-12", "UTC").unwrap();
        assert_eq!(dec.end().to_string(), "2024-01-01T00:00:00Z");
    }

    #[test]
    fn the_month_of_an_instant_is_read_in_the_time_zone() {
        let at: Timestamp = "2023-11-30T23:30:00Z".parse().unwrap();
        assert_eq!(Month::containing(at, "UTC").unwrap().label(), "2023-11");
        assert_eq!(
            Month::containing(at, "Europe/Berlin").unwrap().label(),
            "2023-12"
        );
    }

    #[test]
    fn bad_months_and_zones_are_refused_by_name() {
        for bad in [
            "2023-13",
            "2023-00",
            "abcd-ef",
            "2023-1",
            "23-11",
            "2023/11",
            "2023-11-01",
            "",
        ] {
            assert_eq!(
                Month::parse(bad, "UTC"),
                Err(MonthError::Month(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            Month::parse("2023-11", "Mars/Olympus"),
            Err(MonthError::TimeZone("Mars/Olympus".into()))
        );
    }
}
