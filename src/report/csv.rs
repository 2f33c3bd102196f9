//! The packet's CSV files: one table of the month each, for spreadsheets and an
//! auditor's tooling (`docs/evidence-formats.md` explains every column).
//!
//! - RFC 4180: comma-separated, CRLF line ends, a field quoted only when it must be,
//!   UTF-8 without a byte-order mark, a header row first.
//! - Column names are the camelCase field names of `report.json`; rows come in the
//!   model's order.
//! - Instants are RFC 3339 in UTC (`2026-03-01T00:00:00Z`), empty when there is none.
//!   An absent value of any kind is an empty field.
//! - Enum values are their names in `report.json` (`AwaitingApproval`, `Critical`).
//! - A list in one field (an exception's patches or controls) is joined with `; `; an
//!   exception's history is flattened to `AT PHASE; AT PHASE`, oldest first.
//!   `report.json` holds the same values unflattened.
//!
//! **Formula injection.** A spreadsheet app runs a field that starts with `=`, `+`,
//! `-` or `@` (and, in some apps, tab or carriage return) as a formula. Every string
//! that comes from the cluster or its users (names, titles, messages, reasons, owners,
//! tickets) and starts with one of these characters gets a leading `'`, as OWASP
//! advises, so the app shows it as text; tooling that reads these files should strip
//! one leading `'` from such a field. Numbers, booleans, instants and enum names are
//! written by ringmaster itself and never get the `'` (a negative number stays
//! negative).

use std::collections::BTreeMap;
use std::fmt::Debug;

use jiff::Timestamp;
use serde::Serialize;

use super::model::{
    ApprovalRow, ExceptionRow, FreezeRow, InterventionRow, MonthReport, PairRow, SlaRow,
};

/// The characters that make a spreadsheet read a field as a formula (OWASP).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// The packet's CSV files, each as its file name and contents, in a fixed order:
/// `pairs.csv`, `approvals.csv`, `interventions.csv`, `freezes.csv`, `exceptions.csv`,
/// `sla.csv`.
pub fn csv_files(r: &MonthReport) -> Vec<(String, Vec<u8>)> {
    vec![
        ("pairs.csv".to_string(), pairs(r)),
        ("approvals.csv".to_string(), approvals(&r.approvals)),
        (
            "interventions.csv".to_string(),
            interventions(&r.interventions),
        ),
        ("freezes.csv".to_string(), freezes(&r.freezes)),
        ("exceptions.csv".to_string(), exceptions(&r.exceptions)),
        ("sla.csv".to_string(), sla(&r.sla)),
    ]
}

/// A string from the cluster or its users, guarded against formula injection.
fn text(s: &str) -> String {
    if s.starts_with(FORMULA_STARTS) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

fn opt_text(s: Option<&str>) -> String {
    s.map(text).unwrap_or_default()
}

/// An instant, RFC 3339 in UTC.
fn instant(t: Timestamp) -> String {
    t.to_string()
}

fn opt_instant(t: Option<Timestamp>) -> String {
    t.map(instant).unwrap_or_default()
}

fn opt_num<T: ToString>(n: Option<T>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

/// An enum value as `report.json` names it.
fn name<T: Serialize + Debug>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{v:?}"),
    }
}

fn opt_name<T: Serialize + Debug>(v: Option<&T>) -> String {
    v.map(name).unwrap_or_default()
}

/// A whole file: the header, then the rows.
fn file(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> Vec<u8> {
    let mut w = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .from_writer(Vec::new());
    // Writing to memory cannot fail; a row as long as the header is this module's
    // promise, checked by its tests.
    w.write_record(header)
        .expect("CSV header written to memory");
    for row in rows {
        debug_assert_eq!(row.len(), header.len(), "a CSV row as long as the header");
        w.write_record(&row).expect("CSV row written to memory");
    }
    w.into_inner().expect("CSV flushed to memory")
}

const PAIR_COLUMNS: [&str; 20] = [
    "device",
    "patch",
    "vendor",
    "title",
    "policy",
    "ring",
    "tier",
    "severity",
    "cvss",
    "knownExploited",
    "foundAt",
    "dueAt",
    "installedAt",
    "state",
    "counted",
    "reason",
    "detail",
    "exception",
    "exceptionOwner",
    "exceptionTicket",
];

/// `pairs.csv`: one row per device–patch pair, with the owner and ticket of the
/// exception it names.
fn pairs(r: &MonthReport) -> Vec<u8> {
    let by_name: BTreeMap<&str, &ExceptionRow> =
        r.exceptions.iter().map(|e| (e.name.as_str(), e)).collect();
    file(
        &PAIR_COLUMNS,
        r.pairs.iter().map(|p| {
            let exc = p.exception.as_deref().and_then(|n| by_name.get(n));
            pair_row(p, exc.copied())
        }),
    )
}

fn pair_row(p: &PairRow, exc: Option<&ExceptionRow>) -> Vec<String> {
    vec![
        text(&p.device),
        text(&p.patch),
        text(&p.vendor),
        opt_text(p.title.as_deref()),
        text(&p.policy),
        opt_text(p.ring.as_deref()),
        text(&p.tier),
        name(&p.severity),
        p.cvss.map(|c| format!("{c:.1}")).unwrap_or_default(),
        p.known_exploited.to_string(),
        instant(p.found_at),
        opt_instant(p.due_at),
        opt_instant(p.installed_at),
        name(&p.state),
        p.counted.to_string(),
        opt_name(p.reason.as_ref()),
        opt_text(p.detail.as_deref()),
        opt_text(p.exception.as_deref()),
        opt_text(exc.map(|e| e.owner.as_str())),
        opt_text(exc.and_then(|e| e.ticket.as_deref())),
    ]
}

/// `approvals.csv`.
fn approvals(rows: &[ApprovalRow]) -> Vec<u8> {
    let header = [
        "rollout",
        "policy",
        "patch",
        "severity",
        "at",
        "by",
        "emergency",
        "phase",
    ];
    file(
        &header,
        rows.iter().map(|a| {
            vec![
                text(&a.rollout),
                text(&a.policy),
                text(&a.patch),
                opt_name(a.severity.as_ref()),
                opt_instant(a.at),
                text(&a.by),
                a.emergency.to_string(),
                text(&a.phase),
            ]
        }),
    )
}

/// `interventions.csv`.
fn interventions(rows: &[InterventionRow]) -> Vec<u8> {
    let header = ["at", "kind", "rollout", "patch", "ring", "message"];
    file(
        &header,
        rows.iter().map(|i| {
            vec![
                instant(i.at),
                name(&i.kind),
                text(&i.rollout),
                text(&i.patch),
                opt_text(i.ring.as_deref()),
                text(&i.message),
            ]
        }),
    )
}

/// `freezes.csv`.
fn freezes(rows: &[FreezeRow]) -> Vec<u8> {
    let header = ["scope", "from", "until", "owner", "reason"];
    file(
        &header,
        rows.iter().map(|f| {
            vec![
                text(&f.scope),
                instant(f.from),
                instant(f.until),
                text(&f.owner),
                text(&f.reason),
            ]
        }),
    )
}

const EXCEPTION_COLUMNS: [&str; 12] = [
    "name",
    "phase",
    "patches",
    "coveredDevices",
    "owner",
    "approvedBy",
    "reason",
    "compensatingControls",
    "ticket",
    "activeSince",
    "expiresAt",
    "history",
];

/// `exceptions.csv`: lists joined with `; `, the history as `AT PHASE; AT PHASE`.
fn exceptions(rows: &[ExceptionRow]) -> Vec<u8> {
    file(
        &EXCEPTION_COLUMNS,
        rows.iter().map(|e| {
            let history: Vec<String> = e
                .history
                .iter()
                .map(|h| format!("{} {}", instant(h.at), h.phase))
                .collect();
            vec![
                text(&e.name),
                text(&e.phase),
                text(&e.patches.join("; ")),
                e.covered_devices.to_string(),
                text(&e.owner),
                opt_text(e.approved_by.as_deref()),
                text(&e.reason),
                text(&e.compensating_controls.join("; ")),
                opt_text(e.ticket.as_deref()),
                opt_instant(e.active_since),
                instant(e.expires_at),
                text(&history.join("; ")),
            ]
        }),
    )
}

const SLA_COLUMNS: [&str; 11] = [
    "policy",
    "tier",
    "severity",
    "within",
    "installedOnTime",
    "installedLate",
    "overdue",
    "open",
    "exempt",
    "compliancePercent",
    "medianTimeToInstallSeconds",
];

/// `sla.csv`: one row per policy, tier and severity.
fn sla(rows: &[SlaRow]) -> Vec<u8> {
    file(
        &SLA_COLUMNS,
        rows.iter().map(|s| {
            vec![
                text(&s.policy),
                text(&s.tier),
                name(&s.severity),
                opt_text(s.within.as_deref()),
                s.installed_on_time.to_string(),
                s.installed_late.to_string(),
                s.overdue.to_string(),
                s.open.to_string(),
                s.exempt.to_string(),
                opt_num(s.compliance_percent),
                opt_num(s.median_time_to_install_seconds),
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Severity;
    use crate::report::model::{PhaseChange, SlaState, Unpatched};

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test instant")
    }

    fn month() -> MonthReport {
        MonthReport::empty(
            "acme",
            &crate::report::month::Month::parse("2026-03", "UTC").expect("month"),
            ts("2026-04-01T00:00:00Z"),
        )
    }

    fn pair(device: &str, reason: Option<Unpatched>) -> PairRow {
        PairRow {
            device: device.to_string(),
            patch: "KB5035845".to_string(),
            vendor: "Microsoft".to_string(),
            title: Some("=HYPERLINK(\"http://x\")".to_string()),
            policy: "prod".to_string(),
            ring: Some("canary".to_string()),
            tier: "tier-1".to_string(),
            severity: Severity::Critical,
            cvss: Some(9.8),
            known_exploited: true,
            found_at: ts("2026-03-12T17:00:00Z"),
            due_at: Some(ts("2026-03-15T17:00:00Z")),
            installed_at: None,
            state: SlaState::Exempt,
            counted: true,
            reason,
            detail: Some("-1 days left".to_string()),
            exception: Some("legacy-erp".to_string()),
        }
    }

    fn exception() -> ExceptionRow {
        ExceptionRow {
            name: "legacy-erp".to_string(),
            patches: vec!["KB5035845".to_string(), "KB5035849".to_string()],
            covered_devices: 2,
            owner: "@erp-team".to_string(),
            approved_by: Some("ciso@acme.example".to_string()),
            reason: "vendor certifies in April".to_string(),
            compensating_controls: vec!["network isolation".to_string(), "EDR".to_string()],
            ticket: Some("CHG-1042".to_string()),
            active_since: Some(ts("2026-03-02T09:00:00Z")),
            expires_at: ts("2026-04-30T00:00:00Z"),
            phase: "Active".to_string(),
            history: vec![
                PhaseChange {
                    at: ts("2026-03-01T10:00:00Z"),
                    phase: "Pending".to_string(),
                    message: "awaiting approval".to_string(),
                },
                PhaseChange {
                    at: ts("2026-03-02T09:00:00Z"),
                    phase: "Active".to_string(),
                    message: "approved".to_string(),
                },
            ],
        }
    }

    fn read(bytes: &[u8]) -> Vec<Vec<String>> {
        ::csv::Reader::from_reader(bytes)
            .records()
            .map(|r| r.expect("CSV record").iter().map(str::to_string).collect())
            .collect()
    }

    fn file_named<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
        &files.iter().find(|(n, _)| n == name).expect(name).1
    }

    #[test]
    fn the_guard_quotes_formula_starts_and_nothing_else() {
        for s in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(text(s), format!("'{s}"));
        }
        for s in ["", "prod", "1-2", "'quoted", "a=b", " =x"] {
            assert_eq!(text(s), s);
        }
    }

    #[test]
    fn an_empty_month_has_every_file_with_only_its_header() {
        let files = csv_files(&month());
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "pairs.csv",
                "approvals.csv",
                "interventions.csv",
                "freezes.csv",
                "exceptions.csv",
                "sla.csv"
            ]
        );
        let pairs = String::from_utf8(file_named(&files, "pairs.csv").to_vec()).expect("UTF-8");
        assert_eq!(pairs, format!("{}\r\n", PAIR_COLUMNS.join(",")));
        for (name, bytes) in &files {
            assert!(read(bytes).is_empty(), "{name}");
        }
    }

    #[test]
    fn a_pair_row_carries_its_exception_and_guards_user_strings() {
        let mut r = month();
        r.pairs = vec![pair("=cmd|' /C calc'!A0", Some(Unpatched::Exception))];
        r.exceptions = vec![exception()];
        let rows = read(file_named(&csv_files(&r), "pairs.csv"));
        assert_eq!(rows.len(), 1);
        let row: BTreeMap<&str, &str> = PAIR_COLUMNS
            .iter()
            .copied()
            .zip(rows[0].iter().map(String::as_str))
            .collect();
        assert_eq!(row["device"], "'=cmd|' /C calc'!A0");
        assert_eq!(row["title"], "'=HYPERLINK(\"http://x\")");
        assert_eq!(row["detail"], "'-1 days left");
        assert_eq!(row["severity"], "Critical");
        assert_eq!(row["cvss"], "9.8");
        assert_eq!(row["knownExploited"], "true");
        assert_eq!(row["foundAt"], "2026-03-12T17:00:00Z");
        assert_eq!(row["installedAt"], "");
        assert_eq!(row["state"], "Exempt");
        assert_eq!(row["reason"], "Exception");
        assert_eq!(row["exception"], "legacy-erp");
        assert_eq!(row["exceptionOwner"], "'@erp-team");
        assert_eq!(row["exceptionTicket"], "CHG-1042");
    }

    #[test]
    fn an_exception_flattens_its_lists_and_history() {
        let mut r = month();
        r.exceptions = vec![exception()];
        let rows = read(file_named(&csv_files(&r), "exceptions.csv"));
        let row: BTreeMap<&str, &str> = EXCEPTION_COLUMNS
            .iter()
            .copied()
            .zip(rows[0].iter().map(String::as_str))
            .collect();
        assert_eq!(row["patches"], "KB5035845; KB5035849");
        assert_eq!(row["compensatingControls"], "network isolation; EDR");
        assert_eq!(
            row["history"],
            "2026-03-01T10:00:00Z Pending; 2026-03-02T09:00:00Z Active"
        );
        assert_eq!(row["coveredDevices"], "2");
        assert_eq!(row["expiresAt"], "2026-04-30T00:00:00Z");
    }

    #[test]
    fn numbers_we_write_are_not_guarded() {
        let mut r = month();
        r.sla = vec![SlaRow {
            policy: "prod".to_string(),
            tier: "tier-1".to_string(),
            severity: Severity::High,
            within: Some("72h".to_string()),
            installed_on_time: 2,
            installed_late: 1,
            overdue: 0,
            open: 0,
            exempt: 0,
            compliance_percent: Some(200.0 / 3.0),
            median_time_to_install_seconds: Some(-5),
        }];
        let rows = read(file_named(&csv_files(&r), "sla.csv"));
        assert_eq!(
            rows[0],
            [
                "prod",
                "tier-1",
                "High",
                "72h",
                "2",
                "1",
                "0",
                "0",
                "0",
                "66.66666666666667",
                "-5"
            ]
        );
    }
}
