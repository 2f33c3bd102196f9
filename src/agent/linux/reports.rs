//! The device's reports (`status.patches`) brought in line with what its package
//! database says, keeping what only the reports know: attempts, failures, messages, the
//! attempt echoed, rollbacks. Pure: the agent passes the inventory's verdicts and `now`.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::api::{DevicePatchStatus, PatchState};

/// What the package database says of one catalog Patch on this device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// None of the packages it fixes is installed.
    NotApplicable,
    /// A package it fixes is installed at a version older than the fix.
    Missing,
    /// Every package it fixes that is installed is at least the fixed version.
    Fixed,
}

/// The reports after a look at the package database.
///
/// - `verdicts`: for each catalog Patch that names packages of this device's
///   distribution, what the database says; ids not in it (other vendors' patches, or a
///   catalog not read yet) keep their report as it is.
/// - `planned`: whether the plan has an install entry for an id. A Patch found fixed is
///   reported only when something asks about it: a report the device already has, or an
///   install entry. A device does not list every advisory ever fixed on it, which would
///   read as installs made today.
/// - `busy`: the patch the agent is installing now, whose `Installing` stands.
/// - `failed_checks`: whether a Failed report stands although its packages are at the
///   fixed version: the agent's health checks failed after the install. It stays Failed
///   until a new attempt passes or the patch is rolled back.
///
/// The rules: a patch no longer applicable loses its report; a missing patch keeps its
/// report (Missing, Failed, RolledBack) or gets a new Missing one, and one that read
/// Installed or PendingReboot reads Missing again (someone downgraded it); a report left
/// `Installing` by an agent that stopped mid-install becomes Failed; a fixed patch reads
/// Installed, at `now` if it was not installed before (installed outside ringmaster),
/// and a PendingReboot stays until the reboot is done. Sorted by id.
pub fn reconcile(
    previous: &[DevicePatchStatus],
    verdicts: &BTreeMap<String, Found>,
    planned: impl Fn(&str) -> bool,
    busy: Option<&str>,
    failed_checks: impl Fn(&str) -> bool,
    now: Timestamp,
) -> Vec<DevicePatchStatus> {
    let mut out: BTreeMap<String, DevicePatchStatus> = BTreeMap::new();
    for report in previous {
        if verdicts.contains_key(&report.id) {
            continue;
        }
        out.entry(report.id.clone())
            .or_insert_with(|| report.clone());
    }
    for (id, found) in verdicts {
        let before = previous.iter().find(|r| &r.id == id);
        let asked = before.is_some() || planned(id);
        let busy = busy == Some(id.as_str());
        let found = match (found, before) {
            (Found::Fixed, Some(r)) if r.state == PatchState::Failed && failed_checks(id) => {
                out.insert(id.clone(), r.clone());
                continue;
            }
            _ => *found,
        };
        if let Some(report) = judge(before, id, found, asked, busy, now) {
            out.insert(id.clone(), report);
        }
    }
    out.into_values().collect()
}

/// The message of a report an agent left `Installing` when it stopped.
pub const INTERRUPTED: &str =
    "the agent stopped during the install; the package database shows the patch still missing";

fn judge(
    before: Option<&DevicePatchStatus>,
    id: &str,
    found: Found,
    asked: bool,
    busy: bool,
    now: Timestamp,
) -> Option<DevicePatchStatus> {
    match (found, before) {
        (Found::NotApplicable, _) => None,
        (Found::Missing, None) => Some(DevicePatchStatus::missing(id)),
        (Found::Missing, Some(r)) => Some(still_missing(r, busy)),
        (Found::Fixed, None) => asked.then(|| installed(DevicePatchStatus::missing(id), now)),
        (Found::Fixed, Some(r)) => Some(match r.state {
            PatchState::Installed | PatchState::PendingReboot => r.clone(),
            PatchState::Installing if busy => r.clone(),
            _ => installed(r.clone(), now),
        }),
    }
}

fn still_missing(report: &DevicePatchStatus, busy: bool) -> DevicePatchStatus {
    let mut r = report.clone();
    match r.state {
        PatchState::Missing | PatchState::Failed | PatchState::RolledBack => {}
        PatchState::Installing if busy => {}
        PatchState::Installing => {
            r.state = PatchState::Failed;
            r.message = Some(INTERRUPTED.to_string());
        }
        PatchState::Installed | PatchState::PendingReboot => {
            r.state = PatchState::Missing;
            r.installed_at = None;
            r.message = None;
        }
    }
    r
}

fn installed(mut r: DevicePatchStatus, now: Timestamp) -> DevicePatchStatus {
    r.state = PatchState::Installed;
    r.installed_at = Some(now);
    r.message = None;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-24T21:00:00Z".parse().expect("time")
    }

    fn report(id: &str, state: PatchState) -> DevicePatchStatus {
        DevicePatchStatus {
            state,
            attempts: 1,
            ..DevicePatchStatus::missing(id)
        }
    }

    fn run(
        previous: &[DevicePatchStatus],
        verdicts: &[(&str, Found)],
        planned: &[&str],
        busy: Option<&str>,
    ) -> Vec<DevicePatchStatus> {
        let verdicts = verdicts
            .iter()
            .map(|(id, f)| (id.to_string(), *f))
            .collect();
        reconcile(
            previous,
            &verdicts,
            |id| planned.contains(&id),
            busy,
            |id| id == "CHECKED",
            now(),
        )
    }

    fn states(reports: &[DevicePatchStatus]) -> Vec<(&str, PatchState)> {
        reports.iter().map(|r| (r.id.as_str(), r.state)).collect()
    }

    #[test]
    fn a_missing_patch_is_reported_and_a_fixed_one_only_when_asked_about() {
        let out = run(
            &[],
            &[
                ("DSA-1", Found::Missing),
                ("DSA-2", Found::Fixed),
                ("DSA-3", Found::Fixed),
                ("DSA-4", Found::NotApplicable),
            ],
            &["DSA-3"],
            None,
        );
        assert_eq!(
            states(&out),
            [
                ("DSA-1", PatchState::Missing),
                ("DSA-3", PatchState::Installed)
            ]
        );
        assert_eq!(out[1].installed_at, Some(now()));
    }

    #[test]
    fn a_fix_installed_outside_ringmaster_reads_installed_now() {
        let before = [report("DSA-1", PatchState::Failed)];
        let out = run(&before, &[("DSA-1", Found::Fixed)], &[], None);
        assert_eq!(states(&out), [("DSA-1", PatchState::Installed)]);
        assert_eq!(out[0].installed_at, Some(now()));
        assert_eq!(out[0].attempts, 1, "the attempts count is kept");
    }

    #[test]
    fn failures_and_rollbacks_stand_while_the_patch_is_missing() {
        let before = [
            report("A", PatchState::Failed),
            report("B", PatchState::RolledBack),
            report("C", PatchState::Installed),
            report("D", PatchState::PendingReboot),
        ];
        let out = run(
            &before,
            &[
                ("A", Found::Missing),
                ("B", Found::Missing),
                ("C", Found::Missing),
                ("D", Found::Fixed),
            ],
            &[],
            None,
        );
        assert_eq!(
            states(&out),
            [
                ("A", PatchState::Failed),
                ("B", PatchState::RolledBack),
                ("C", PatchState::Missing),
                ("D", PatchState::PendingReboot),
            ]
        );
    }

    #[test]
    fn an_install_left_running_by_a_stopped_agent_fails_unless_it_is_the_work_at_hand() {
        let before = [report("A", PatchState::Installing)];
        let out = run(&before, &[("A", Found::Missing)], &[], None);
        assert_eq!(states(&out), [("A", PatchState::Failed)]);
        assert_eq!(out[0].message.as_deref(), Some(INTERRUPTED));
        let out = run(&before, &[("A", Found::Missing)], &[], Some("A"));
        assert_eq!(states(&out), [("A", PatchState::Installing)]);
        let out = run(&before, &[("A", Found::Fixed)], &[], None);
        assert_eq!(states(&out), [("A", PatchState::Installed)]);
    }

    #[test]
    fn a_failure_of_the_health_checks_stands_although_the_package_is_fixed() {
        let before = [
            report("CHECKED", PatchState::Failed),
            report("OTHER", PatchState::Failed),
        ];
        let out = run(
            &before,
            &[("CHECKED", Found::Fixed), ("OTHER", Found::Fixed)],
            &[],
            None,
        );
        assert_eq!(
            states(&out),
            [
                ("CHECKED", PatchState::Failed),
                ("OTHER", PatchState::Installed)
            ]
        );
    }

    #[test]
    fn reports_the_database_says_nothing_of_are_kept_and_inapplicable_ones_dropped() {
        let before = [
            report("KB1", PatchState::Failed),
            report("DSA-9", PatchState::Missing),
        ];
        let out = run(&before, &[("DSA-9", Found::NotApplicable)], &[], None);
        assert_eq!(states(&out), [("KB1", PatchState::Failed)]);
    }
}
