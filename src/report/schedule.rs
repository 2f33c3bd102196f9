//! When a tenant's months close: the operator's pure decision of which `PatchReport`s to
//! create, which to close, which to leave pending, and when to look again.
//!
//! A month closes at the first instant of the next month in the tenant's time zone. At
//! that instant (or at the first look after it, when the operator was down) the month
//! just ended gets a `PatchReport` of its own, named `YYYY-MM`, unless one already asks
//! for it, and as long as the tenant had objects before the month ended (a tenant that
//! did not exist yet has no month to account for). Months further back are closed on
//! demand only: a person creates a `PatchReport` for them. Nothing here reads a clock.

use jiff::{SignedDuration, Timestamp};

use crate::api::ReportPhase;

use super::month::{Month, MonthError};

/// How often a tenant's months are looked at again even when no month ends: a change
/// to the Namespace's time zone is seen within this.
pub const RECHECK: SignedDuration = SignedDuration::from_hours(1);

/// A `PatchReport` as the schedule sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Existing<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its `spec.month`.
    pub month: &'a str,
    /// Its `spec.timeZone`.
    pub time_zone: Option<&'a str>,
    /// Its `status.phase`.
    pub phase: Option<ReportPhase>,
}

/// What to do with one report.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Its month has ended: build, store and record its packet.
    Close {
        /// The report.
        name: String,
        /// Its month.
        month: Month,
    },
    /// Its month has not ended: it waits, `Pending`, until `month.end()`.
    Wait {
        /// The report.
        name: String,
        /// Its month.
        month: Month,
    },
    /// Its month or time zone is not one: it cannot be closed until a person fixes it.
    Invalid {
        /// The report.
        name: String,
        /// What is wrong.
        error: MonthError,
    },
}

/// The schedule's decisions for one tenant at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The month just ended, when it needs a `PatchReport` made.
    pub create: Option<Month>,
    /// What to do with each report that is not closed, in name order.
    pub steps: Vec<Step>,
    /// When to look again: the next month boundary, a pending report's month end, or
    /// [`RECHECK`] from now, whichever comes first.
    pub wake_at: Timestamp,
}

/// Decides one tenant's months at `now`. `zone` is the tenant's time zone (reports
/// without one of their own take it); `since` is when its oldest object was created
/// (None: it has none). A bad `zone` makes no report and marks those that rely on it
/// invalid.
pub fn plan(
    now: Timestamp,
    zone: &str,
    since: Option<Timestamp>,
    reports: &[Existing<'_>],
) -> Plan {
    let recheck = now.saturating_add(RECHECK).unwrap_or(now);
    let current = Month::containing(now, zone);
    let mut wake_at = match &current {
        Ok(m) => m.end().min(recheck),
        Err(_) => recheck,
    };
    let create = current
        .ok()
        .map(|m| m.previous())
        .filter(|last| since.is_some_and(|s| s < last.end()))
        .filter(|last| !reports.iter().any(|r| r.month == last.label()));
    let mut open: Vec<&Existing<'_>> = reports
        .iter()
        .filter(|r| r.phase != Some(ReportPhase::Closed))
        .collect();
    open.sort_by_key(|r| r.name);
    let steps = open
        .into_iter()
        .map(|r| step(r, zone, now))
        .inspect(|s| {
            if let Step::Wait { month, .. } = s {
                wake_at = wake_at.min(month.end());
            }
        })
        .collect();
    Plan {
        create,
        steps,
        wake_at,
    }
}

/// What to do with one report that is not closed.
fn step(r: &Existing<'_>, zone: &str, now: Timestamp) -> Step {
    let name = r.name.to_string();
    match Month::parse(r.month, r.time_zone.unwrap_or(zone)) {
        Err(error) => Step::Invalid { name, error },
        Ok(month) if month.end() <= now => Step::Close { name, month },
        Ok(month) => Step::Wait { name, month },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    fn report<'a>(name: &'a str, month: &'a str, phase: Option<ReportPhase>) -> Existing<'a> {
        Existing {
            name,
            month,
            time_zone: None,
            phase,
        }
    }

    const CHICAGO: &str = "America/Chicago";

    #[test]
    fn the_month_just_ended_gets_a_report_at_the_boundary_in_the_tenants_zone() {
        let since = Some(at("2026-10-03T00:00:00Z"));
        // 2026-12-01T00:00 in Chicago is 06:00 UTC.
        let before = plan(at("2026-12-01T05:59:59Z"), CHICAGO, since, &[]);
        assert_eq!(before.create.map(|m| m.label()), Some("2026-10".into()));
        assert_eq!(before.wake_at, at("2026-12-01T06:00:00Z"));
        let after = plan(at("2026-12-01T06:00:00Z"), CHICAGO, since, &[]);
        assert_eq!(after.create.map(|m| m.label()), Some("2026-11".into()));
        let utc = plan(at("2026-12-01T00:00:00Z"), "UTC", since, &[]);
        assert_eq!(utc.create.map(|m| m.label()), Some("2026-11".into()));
    }

    #[test]
    fn a_month_is_made_once_and_only_for_a_tenant_that_had_objects_in_it() {
        let now = at("2026-12-07T10:00:00Z");
        let created_in_december = plan(now, "UTC", Some(at("2026-12-02T00:00:00Z")), &[]);
        assert_eq!(created_in_december.create, None);
        assert_eq!(plan(now, "UTC", None, &[]).create, None);
        let since = Some(at("2026-11-30T23:59:59Z"));
        assert!(plan(now, "UTC", since, &[]).create.is_some());
        let asked = [report("november", "2026-11", Some(ReportPhase::Closed))];
        assert_eq!(plan(now, "UTC", since, &asked).create, None);
    }

    #[test]
    fn ended_months_close_pending_ones_wait_and_closed_ones_are_left_alone() {
        let now = at("2026-12-07T10:00:00Z");
        let reports = [
            report("b-old", "2023-11", None),
            report("a-dec", "2026-12", Some(ReportPhase::Pending)),
            report("c-done", "2026-10", Some(ReportPhase::Closed)),
            report("d-failed", "2026-11", Some(ReportPhase::Failed)),
            Existing {
                time_zone: Some("Mars/Olympus"),
                ..report("e-bad", "2026-11", None)
            },
        ];
        let p = plan(now, "UTC", None, &reports);
        let names: Vec<(&str, &str)> = p
            .steps
            .iter()
            .map(|s| match s {
                Step::Close { name, .. } => ("close", name.as_str()),
                Step::Wait { name, .. } => ("wait", name.as_str()),
                Step::Invalid { name, .. } => ("invalid", name.as_str()),
            })
            .collect();
        assert_eq!(
            names,
            [
                ("wait", "a-dec"),
                ("close", "b-old"),
                ("close", "d-failed"),
                ("invalid", "e-bad")
            ]
        );
        assert_eq!(p.wake_at, at("2026-12-07T11:00:00Z"), "the hourly recheck");
    }

    #[test]
    fn a_report_in_its_own_zone_waits_for_that_zones_boundary() {
        // 2027-01-01T00:00 in Tokyo is 2026-12-31T15:00 UTC.
        let now = at("2026-12-31T14:30:00Z");
        let tokyo = [Existing {
            time_zone: Some("Asia/Tokyo"),
            ..report("dec", "2026-12", None)
        }];
        let p = plan(now, "UTC", None, &tokyo);
        assert!(matches!(p.steps[0], Step::Wait { .. }));
        assert_eq!(p.wake_at, at("2026-12-31T15:00:00Z"));
        let later = plan(at("2026-12-31T15:00:00Z"), "UTC", None, &tokyo);
        assert!(matches!(later.steps[0], Step::Close { .. }));
    }

    #[test]
    fn a_bad_tenant_zone_makes_nothing_and_invalidates_reports_relying_on_it() {
        let now = at("2026-12-07T10:00:00Z");
        let reports = [report("nov", "2026-11", None)];
        let p = plan(now, "Not/AZone", Some(at("2020-01-01T00:00:00Z")), &reports);
        assert_eq!(p.create, None);
        assert!(matches!(
            &p.steps[0],
            Step::Invalid {
                error: MonthError::TimeZone(_),
                ..
            }
        ));
        assert_eq!(p.wake_at, at("2026-12-07T11:00:00Z"));
    }
}
