//! The text renderings of the monthly evidence packet: `report.md`, the CSV files and
//! `report.json` with its schema, over a realistic month built by hand.
//!
//! `docs/schemas/evidence-v1.json` must be exactly what `json_schema()` generates:
//! after a change to `src/report/model.rs`, run
//! `UPDATE_SCHEMAS=1 cargo test --test it report_text` and commit the file.

use std::collections::BTreeMap;
use std::path::Path;

use ringmaster::api::Severity;
use ringmaster::report::csv::csv_files;
use ringmaster::report::json::{json, json_schema};
use ringmaster::report::markdown::markdown;
use ringmaster::report::model::*;

use crate::common::ts;

fn s(v: &str) -> String {
    v.to_string()
}

/// A pair of the `servers` or `workstations` policy, not installed, overdue.
fn pair(device: &str, patch: &str, severity: Severity, reason: Unpatched) -> PairRow {
    let servers = device.starts_with("srv-");
    PairRow {
        device: s(device),
        patch: s(patch),
        vendor: s(if patch.starts_with("KB") {
            "Microsoft"
        } else {
            "OpenSSL"
        }),
        title: Some(format!("{patch} security update")),
        policy: s(if servers { "servers" } else { "workstations" }),
        ring: Some(s(if servers { "canary" } else { "broad" })),
        tier: s(if servers { "tier-1" } else { "tier-2" }),
        severity,
        cvss: Some(match severity {
            Severity::Critical => 9.8,
            Severity::High => 8.1,
            Severity::Medium => 5.3,
            Severity::Low => 2.4,
        }),
        known_exploited: severity == Severity::Critical,
        found_at: ts("2026-03-10T17:00:00Z"),
        due_at: Some(ts("2026-03-13T17:00:00Z")),
        installed_at: None,
        state: SlaState::Overdue,
        counted: true,
        reason: Some(reason),
        detail: None,
        exception: None,
    }
}

fn installed(device: &str, patch: &str, severity: Severity, at: &str) -> PairRow {
    let mut p = pair(device, patch, severity, Unpatched::Installing);
    p.reason = None;
    p.installed_at = Some(ts(at));
    p.state = if ts(at) <= ts("2026-03-13T17:00:00Z") {
        SlaState::InstalledOnTime
    } else {
        SlaState::InstalledLate
    };
    p
}

fn with(mut p: PairRow, f: impl FnOnce(&mut PairRow)) -> PairRow {
    f(&mut p);
    p
}

fn exempt(p: &mut PairRow, exception: &str) {
    p.state = SlaState::Exempt;
    p.exception = Some(s(exception));
    p.due_at = None;
}

/// Every `Unpatched` reason at least once, installed pairs on time and late, and
/// strings a spreadsheet or Markdown would act on.
fn pairs() -> Vec<PairRow> {
    use Severity::*;
    use Unpatched::*;
    vec![
        installed("srv-db-01", "KB5035845", Critical, "2026-03-11T02:00:00Z"),
        installed("srv-db-02", "KB5035845", Critical, "2026-03-15T02:00:00Z"),
        with(pair("srv-erp-01", "KB5035845", Critical, Exception), |p| {
            exempt(p, "legacy-erp")
        }),
        with(pair("srv-erp-02", "KB5035845", Critical, Exception), |p| {
            exempt(p, "legacy-erp")
        }),
        with(pair("prn-hall-01", "KB5035849", Medium, Exception), |p| {
            exempt(p, "printers")
        }),
        with(
            pair("srv-app-01", "openssl-3.0.14", High, AwaitingApproval),
            |p| {
                p.state = SlaState::NotDue;
                p.due_at = Some(ts("2026-04-03T17:00:00Z"));
                p.detail = Some(s("rule high-after-3d approves at 2026-04-01 17:00"));
            },
        ),
        pair("srv-app-02", "openssl-3.0.14", High, AwaitingManualApproval),
        with(pair("ws-001", "KB5034441", Medium, Rejected), |p| {
            p.counted = false;
            p.state = SlaState::NotDue;
        }),
        with(pair("ws-002", "KB5034122", Low, Superseded), |p| {
            p.counted = false;
            p.detail = Some(s("superseded by KB5035845"));
        }),
        with(pair("ws-003", "KB5035853", High, Held), |p| {
            p.detail = Some(s("failed on 9 of 40 devices"));
        }),
        with(pair("ws-004", "KB5035845", Critical, WaitingForRing), |p| {
            p.detail = Some(s("waits for ring early"));
        }),
        with(
            pair("ws-005", "KB5035845", Critical, WaitingForWindow),
            |p| {
                p.state = SlaState::DueSoon;
                p.detail = Some(s("window opens 2026-04-01T20:00:00Z"));
            },
        ),
        pair("ws-006", "KB5035845", Critical, Installing),
        with(pair("ws-007", "KB5035845", Critical, Failed), |p| {
            p.detail = Some(s("-2147024784 (0x80070070): not enough disk space"));
        }),
        with(
            pair("ws-008", "KB5035845", Critical, DeviceUnreachable),
            |p| {
                p.detail = Some(s("last seen 2026-03-02T08:14:00Z"));
            },
        ),
        pair("ws-009", "KB5035857", High, Halted),
        pair("ws-010", "KB5035857", High, Paused),
        pair("ws-011", "KB5035858", Medium, Aborted),
        with(pair("kiosk|lobby", "KB5035845", Critical, NotInRing), |p| {
            p.ring = None;
            p.tier = s("tier-3");
        }),
        with(pair("ws-012", "KB5035849", Medium, WaitingForWindow), |p| {
            p.title = Some(s("=HYPERLINK(\"http://evil.example\",\"open\")"));
            p.state = SlaState::NotDue;
            p.due_at = Some(ts("2026-04-10T17:00:00Z"));
        }),
        installed("ws-013", "KB5035845", Critical, "2026-03-12T21:00:00Z"),
        installed("ws-014", "KB5035845", Critical, "2026-03-12T21:05:00Z"),
        installed("ws-015", "KB5035849", Medium, "2026-03-20T21:00:00Z"),
        installed("ws-016", "KB5034122", Low, "2026-03-05T21:00:00Z"),
        installed("srv-web-01", "openssl-3.0.13", High, "2026-03-03T01:00:00Z"),
        installed("srv-web-02", "openssl-3.0.13", High, "2026-03-03T01:10:00Z"),
        with(pair("srv-web-03", "openssl-3.0.13", High, Failed), |p| {
            p.detail = Some(s("@dpkg: error processing package openssl\nexit 1"));
        }),
        pair("ws-017", "KB5035853", High, Held),
        with(pair("ws-018", "KB5034763", Low, WaitingForRing), |p| {
            p.cvss = None;
            p.title = None;
            p.state = SlaState::NotDue;
        }),
        pair("ws-019", "KB5035845", Critical, DeviceUnreachable),
    ]
}

fn phase(at: &str, phase: &str, message: &str) -> PhaseChange {
    PhaseChange {
        at: ts(at),
        phase: s(phase),
        message: s(message),
    }
}

fn exception(name: &str, owner: &str, ticket: Option<&str>, phase_now: &str) -> ExceptionRow {
    ExceptionRow {
        name: s(name),
        patches: vec![s("KB5035845")],
        covered_devices: 2,
        owner: s(owner),
        approved_by: Some(s("ciso@acme.example")),
        reason: s("the vendor certifies the ERP on this update in April"),
        compensating_controls: vec![s("isolated VLAN"), s("EDR in block mode")],
        ticket: ticket.map(s),
        active_since: Some(ts("2026-03-02T09:00:00Z")),
        expires_at: ts("2026-04-30T00:00:00Z"),
        phase: s(phase_now),
        history: vec![
            phase("2026-03-01T10:00:00Z", "Pending", "awaiting approval"),
            phase(
                "2026-03-02T09:00:00Z",
                "Active",
                "approved by ciso@acme.example",
            ),
        ],
    }
}

/// Exceptions active, pending, expired and revoked.
fn exceptions() -> Vec<ExceptionRow> {
    let mut printers = exception("printers", "@facilities", Some("INC-2201"), "Active");
    printers.patches = vec![s("KB5035849"), s("KB5035853")];
    printers.compensating_controls = vec![s("=no internet egress"), s("print VLAN")];
    let mut pending = exception("kiosk-cert", "frontdesk", None, "Pending");
    pending.approved_by = None;
    pending.active_since = None;
    pending.history.truncate(1);
    let mut expired = exception("lab-scanner", "lab-ops", Some("CHG-0917"), "Expired");
    expired.expires_at = ts("2026-03-15T00:00:00Z");
    expired
        .history
        .push(phase("2026-03-15T00:00:00Z", "Expired", "expired"));
    let mut revoked = exception("old-vpn", "netops", Some("CHG-0990"), "Revoked");
    revoked.reason = s("line one | with a pipe\nline two");
    revoked
        .history
        .push(phase("2026-03-20T11:00:00Z", "Revoked", "revoked by ciso"));
    vec![
        exception("legacy-erp", "erp-team", Some("CHG-1042"), "Active"),
        printers,
        pending,
        expired,
        revoked,
    ]
}

fn intervention(
    at: &str,
    kind: InterventionKind,
    ring: Option<&str>,
    msg: &str,
) -> InterventionRow {
    InterventionRow {
        at: ts(at),
        kind,
        rollout: s("workstations-kb5035857"),
        patch: s("KB5035857"),
        ring: ring.map(s),
        message: s(msg),
    }
}

fn interventions() -> Vec<InterventionRow> {
    use InterventionKind::*;
    vec![
        intervention(
            "2026-03-12T09:00:00Z",
            Promoted,
            Some("canary"),
            "promoted by alice",
        ),
        intervention(
            "2026-03-13T03:00:00Z",
            Halted,
            Some("early"),
            "failure rate 25% > 10%",
        ),
        intervention(
            "2026-03-13T03:01:00Z",
            RollbackStarted,
            Some("early"),
            "automatic",
        ),
        intervention(
            "2026-03-13T05:30:00Z",
            RolledBack,
            Some("early"),
            "removed from 4 devices",
        ),
        intervention(
            "2026-03-14T10:00:00Z",
            Paused,
            None,
            "paused by bob: | vendor advisory",
        ),
        intervention("2026-03-16T10:00:00Z", Resumed, None, "resumed by bob"),
        intervention("2026-03-18T10:00:00Z", Aborted, None, "=abort()"),
        intervention(
            "2026-03-19T10:00:00Z",
            Held,
            None,
            "failed on 9 of 40 devices",
        ),
    ]
}

fn approvals() -> Vec<ApprovalRow> {
    let approval = |rollout: &str, patch: &str, sev, by: &str, emergency| ApprovalRow {
        rollout: s(rollout),
        policy: s(if rollout.starts_with("srv") {
            "servers"
        } else {
            "workstations"
        }),
        patch: s(patch),
        severity: Some(sev),
        at: Some(ts("2026-03-11T08:00:00Z")),
        by: s(by),
        emergency,
        phase: s("Completed"),
    };
    let mut unrated = approval("ws-kb5034763", "KB5034763", Severity::Low, "alice", false);
    unrated.severity = None;
    unrated.at = None;
    unrated.phase = s("Progressing");
    vec![
        approval(
            "srv-kb5035845",
            "KB5035845",
            Severity::Critical,
            "rule kev-now",
            true,
        ),
        approval(
            "ws-kb5035845",
            "KB5035845",
            Severity::Critical,
            "rule crit-1d",
            false,
        ),
        approval("ws-kb5035857", "KB5035857", Severity::High, "+alice", false),
        approval(
            "srv-openssl",
            "openssl-3.0.13",
            Severity::High,
            "rule high-3d",
            false,
        ),
        unrated,
    ]
}

fn sla_rows() -> Vec<SlaRow> {
    let mut rows = Vec::new();
    for (policy, tiers) in [
        ("servers", ["tier-1", "tier-2"]),
        ("workstations", ["tier-2", "tier-3"]),
    ] {
        for (t, tier) in tiers.into_iter().enumerate() {
            for (i, severity) in Severity::ALL.into_iter().enumerate() {
                let (on_time, late, overdue) = (3 + i as u32, t as u32, (i % 2) as u32);
                rows.push(SlaRow {
                    policy: s(policy),
                    tier: s(tier),
                    severity,
                    within: (severity != Severity::Low).then(|| format!("{}h", 24 * (4 - i))),
                    installed_on_time: on_time,
                    installed_late: late,
                    overdue,
                    open: 1,
                    exempt: u32::from(severity == Severity::Critical),
                    compliance_percent: Some(
                        100.0 * f64::from(on_time) / f64::from(on_time + late + overdue),
                    ),
                    median_time_to_install_seconds: Some(3600 * (7 + i as i64 * 13)),
                });
            }
        }
    }
    rows
}

fn rings() -> Vec<RingFunnel> {
    let ring = |name: &str, rollouts, targeted, installed, failed, halts| RingFunnel {
        ring: s(name),
        rollouts,
        targeted,
        installed,
        failed,
        timed_out: failed / 2,
        rolled_back: if halts > 0 { 4 } else { 0 },
        halts,
        success_rate_percent: Some(100.0 * f64::from(installed) / f64::from(installed + failed)),
    };
    vec![
        ring("canary", 6, 12, 12, 0, 0),
        ring("early", 5, 40, 31, 9, 1),
        ring("broad", 3, 300, 287, 3, 0),
    ]
}

fn trend() -> Vec<TrendPoint> {
    let point = |month: &str, pct, overdue, median| TrendPoint {
        month: s(month),
        compliance_percent: pct,
        overdue,
        median_time_to_install_seconds: median,
    };
    vec![
        point("2026-01", None, 0, None),
        point("2026-02", Some(88.23529411764706), 7, Some(302_400)),
        point("2026-03", Some(93.75), 4, Some(273_600)),
    ]
}

fn laggards() -> Laggards {
    let l = |name: &str, missed, overdue, pairs| Laggard {
        name: s(name),
        missed,
        overdue,
        pairs,
    };
    Laggards {
        devices: vec![l("ws-007", 3, 2, 6), l("kiosk|lobby", 2, 2, 2)],
        vendors: vec![l("Microsoft", 9, 6, 40)],
        tiers: vec![l("tier-2", 8, 5, 30), l("tier-1", 1, 0, 12)],
    }
}

/// One tenant's March: two policies, three tiers, every severity, three rings.
fn sample() -> MonthReport {
    MonthReport {
        schema: s(SCHEMA),
        tenant: s("acme"),
        month: s("2026-03"),
        time_zone: s("Europe/Berlin"),
        start: ts("2026-02-28T23:00:00Z"),
        end: ts("2026-03-31T22:00:00Z"),
        as_of: ts("2026-03-31T22:00:00Z"),
        closed: true,
        headline: Headline {
            devices: 42,
            pairs: 30,
            compliance_percent: Some(93.75),
            installed_on_time: 6,
            installed_late: 2,
            overdue: 14,
            open: 5,
            exempt: 3,
            installed_in_month: 8,
            median_time_to_install_seconds: Some(273_600),
            halts: 1,
            rollbacks: 1,
            active_exceptions: 2,
        },
        sla: sla_rows(),
        trend: trend(),
        rings: rings(),
        pairs: pairs(),
        approvals: approvals(),
        interventions: interventions(),
        freezes: vec![FreezeRow {
            scope: s("PatchPolicy/servers"),
            from: ts("2026-03-27T16:00:00Z"),
            until: ts("2026-03-30T06:00:00Z"),
            reason: s("quarter-end close"),
            owner: s("finance-it"),
        }],
        exceptions: exceptions(),
        laggards: laggards(),
    }
}

fn empty() -> MonthReport {
    let s = sample();
    let month = ringmaster::report::month::Month::parse(&s.month, &s.time_zone).expect("month");
    MonthReport::empty(&s.tenant, &month, s.as_of)
}

/// A CSV file read back: its header and its rows as column → value.
fn read_csv(bytes: &[u8]) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let mut reader = csv::Reader::from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|r| {
            let r = r.expect("a well-formed record");
            assert_eq!(r.len(), header.len());
            header
                .iter()
                .cloned()
                .zip(r.iter().map(str::to_string))
                .collect()
        })
        .collect();
    (header, rows)
}

fn csv_named(r: &MonthReport, name: &str) -> Vec<BTreeMap<String, String>> {
    let files = csv_files(r);
    let (_, bytes) = files.iter().find(|(n, _)| n == name).expect(name);
    read_csv(bytes).1
}

#[test]
fn the_sample_covers_every_reason() {
    let reasons: std::collections::BTreeSet<Unpatched> =
        sample().pairs.iter().filter_map(|p| p.reason).collect();
    assert_eq!(reasons.len(), 15, "{reasons:?}");
    assert_eq!(sample().pairs.len(), 30);
}

#[test]
fn every_csv_reads_back_with_one_row_per_model_row() {
    let r = sample();
    let expected = [
        ("pairs.csv", r.pairs.len()),
        ("approvals.csv", r.approvals.len()),
        ("interventions.csv", r.interventions.len()),
        ("freezes.csv", r.freezes.len()),
        ("exceptions.csv", r.exceptions.len()),
        ("sla.csv", r.sla.len()),
    ];
    let files = csv_files(&r);
    assert_eq!(files.len(), expected.len());
    for ((name, bytes), (want, rows)) in files.iter().zip(expected) {
        assert_eq!(name, want);
        assert!(bytes.ends_with(b"\r\n"), "{name} ends its last record");
        assert_eq!(read_csv(bytes).1.len(), rows, "{name}");
    }
}

#[test]
fn every_unpatched_pair_says_why_and_exceptions_name_owner_and_ticket() {
    let r = sample();
    let rows = csv_named(&r, "pairs.csv");
    for (p, row) in r.pairs.iter().zip(&rows) {
        assert_eq!(row["device"].trim_start_matches('\''), p.device);
        if p.reason.is_some() {
            assert!(!row["reason"].is_empty(), "{row:?}");
        }
        if p.reason == Some(Unpatched::Exception) {
            assert!(!row["exception"].is_empty(), "{row:?}");
            assert!(!row["exceptionOwner"].is_empty(), "{row:?}");
            assert!(!row["exceptionTicket"].is_empty(), "{row:?}");
        }
    }
    let erp = &rows[2];
    assert_eq!(
        (erp["reason"].as_str(), erp["exceptionOwner"].as_str()),
        ("Exception", "erp-team")
    );
    assert_eq!(erp["exceptionTicket"], "CHG-1042");
    assert_eq!(rows[4]["exceptionOwner"], "'@facilities");
    assert_eq!(rows[0]["installedAt"], "2026-03-11T02:00:00Z");
    assert_eq!(rows[0]["reason"], "");
    assert_eq!(rows[6]["reason"], "AwaitingManualApproval");
}

#[test]
fn user_strings_cannot_become_formulas_but_numbers_stay_numbers() {
    let r = sample();
    let pairs = csv_named(&r, "pairs.csv");
    assert_eq!(
        pairs[19]["title"],
        "'=HYPERLINK(\"http://evil.example\",\"open\")"
    );
    assert_eq!(
        pairs[13]["detail"],
        "'-2147024784 (0x80070070): not enough disk space"
    );
    assert_eq!(
        pairs[26]["detail"],
        "'@dpkg: error processing package openssl\nexit 1"
    );
    assert_eq!(pairs[13]["cvss"], "9.8");
    assert_eq!(pairs[28]["cvss"], "");
    let approvals = csv_named(&r, "approvals.csv");
    assert_eq!(approvals[2]["by"], "'+alice");
    let interventions = csv_named(&r, "interventions.csv");
    assert_eq!(interventions[6]["message"], "'=abort()");
    assert_eq!(interventions[6]["kind"], "Aborted");
    let exceptions = csv_named(&r, "exceptions.csv");
    assert_eq!(
        exceptions[1]["compensatingControls"],
        "'=no internet egress; print VLAN"
    );
    assert_eq!(
        exceptions[3]["history"],
        "2026-03-01T10:00:00Z Pending; 2026-03-02T09:00:00Z Active; 2026-03-15T00:00:00Z Expired"
    );
    for row in csv_named(&r, "sla.csv") {
        for column in [
            "installedOnTime",
            "compliancePercent",
            "medianTimeToInstallSeconds",
        ] {
            assert!(row[column].parse::<f64>().is_ok(), "{column}: {row:?}");
        }
    }
}

#[test]
fn markdown_has_every_section_and_keeps_its_tables_whole() {
    let md = markdown(&sample());
    for heading in [
        "# Patch evidence: acme, 2026-03",
        "## Headline",
        "## SLA by tier and severity",
        "### Policy servers",
        "### Policy workstations",
        "## Trend",
        "## Rings",
        "## Interventions",
        "## Approvals",
        "## Change freezes",
        "## Exceptions",
        "## Laggards",
        "## Unpatched pairs",
        "### Covered by an exception (3)",
        "### Device in none of its policy's rings (1)",
    ] {
        assert!(
            md.contains(&format!("\n{heading}\n")) || md.starts_with(heading),
            "{heading}"
        );
    }
    assert!(md.contains("| kiosk\\|lobby |"), "{md}");
    assert!(md.contains("line one \\| with a pipe line two"), "{md}");
    assert!(md.contains("| SLA compliance | 93.8% |"), "{md}");
    assert!(
        md.contains("| Median time from release to install | 3d 4h |"),
        "{md}"
    );
    assert!(md.contains("| 2026-02 | 88.2% | 7 | 3d 12h |"), "{md}");
    assert!(md.contains("| 2026-01 | — | 0 | — |"), "{md}");
    assert!(
        md.contains("| early | 5 | 40 | 31 | 9 | 4 | 4 | 1 | 77.5% |"),
        "{md}"
    );
    // Every line of a table has as many unescaped `|` as its head.
    for table in md.split("\n\n").filter(|b| b.starts_with('|')) {
        let pipes = |line: &str| {
            line.replace("\\\\", "")
                .replace("\\|", "")
                .matches('|')
                .count()
        };
        let mut lines = table.lines();
        let width = pipes(lines.next().unwrap_or_default());
        for line in lines {
            assert_eq!(pipes(line), width, "{line}");
        }
    }
}

#[test]
fn json_reads_back_to_the_same_month_and_follows_its_schema() {
    let r = sample();
    let bytes = json(&r);
    let back: MonthReport = serde_json::from_slice(&bytes).expect("report.json reads back");
    assert_eq!(back, r);

    let (schemas, index) = compiled_schema();
    let value: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    if let Err(e) = schemas.validate(&value, index) {
        panic!("report.json breaks its schema: {e:#}");
    }
    let empty: serde_json::Value = serde_json::from_slice(&json(&empty())).expect("JSON");
    assert!(schemas.validate(&empty, index).is_ok());

    // The schema does check: a reason it does not know, or a missing field, fails.
    let mut wrong = value.clone();
    wrong["pairs"][6]["reason"] = "Forgotten".into();
    assert!(schemas.validate(&wrong, index).is_err());
    let mut wrong = value;
    if let Some(o) = wrong.as_object_mut() {
        o.remove("tenant");
    }
    assert!(schemas.validate(&wrong, index).is_err());
}

fn compiled_schema() -> (boon::Schemas, boon::SchemaIndex) {
    let schema: serde_json::Value = serde_json::from_slice(&json_schema()).expect("JSON");
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource(SCHEMA, schema)
        .expect("the schema loads");
    let index = compiler
        .compile(SCHEMA, &mut schemas)
        .expect("the schema compiles");
    (schemas, index)
}

#[test]
fn every_rendering_is_the_same_bytes_twice() {
    let (a, b) = (sample(), sample());
    assert_eq!(markdown(&a), markdown(&b));
    assert_eq!(csv_files(&a), csv_files(&b));
    assert_eq!(json(&a), json(&b));
    assert_eq!(json_schema(), json_schema());
}

#[test]
fn an_empty_month_renders() {
    let r = empty();
    let md = markdown(&r);
    assert!(
        md.contains("\nNo device–patch pair was left unpatched.\n"),
        "{md}"
    );
    assert!(
        md.contains("\nNo exception was in force or changed in the month.\n"),
        "{md}"
    );
    for (name, bytes) in csv_files(&r) {
        let (header, rows) = read_csv(&bytes);
        assert!(!header.is_empty() && rows.is_empty(), "{name}");
    }
    let back: MonthReport = serde_json::from_slice(&json(&r)).expect("report.json reads back");
    assert_eq!(back, r);
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schemas/evidence-v1.json");
    let generated = json_schema();
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::create_dir_all(path.parent().expect("docs/schemas")).expect("mkdir");
        std::fs::write(&path, &generated).expect("write the schema");
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/schemas/evidence-v1.json differs from json_schema(); run \
         `UPDATE_SCHEMAS=1 cargo test --test it report_text` and commit the file"
    );
}
