//! The evidence packet's HTML page, rendered from a month built by hand the way an MSP's
//! tenant would see it: two policies, three rings, exceptions in three phases, halts and
//! rollbacks, three months of trend and a pair for every reason a patch can wait.
//!
//! Set `RINGMASTER_HTML_SAMPLES=DIR` to also write the pages to `DIR/sample.html`,
//! `DIR/running.html`, `DIR/empty.html` and `DIR/big.html` (10,000 pairs), for a look or
//! a screenshot (`docs/screenshots/take.sh`).

use jiff::Timestamp;
use ringmaster::api::Severity;
use ringmaster::report::html::{PAIR_ROWS, html};
use ringmaster::report::model::*;

/// Writes a page to `$RINGMASTER_HTML_SAMPLES/name`, when that is set.
fn keep(name: &str, page: &str) {
    if let Some(dir) = std::env::var_os("RINGMASTER_HTML_SAMPLES") {
        let path = std::path::Path::new(&dir).join(name);
        std::fs::write(&path, page).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

#[allow(clippy::too_many_arguments)]
fn sla_row(
    policy: &str,
    tier: &str,
    severity: Severity,
    within: &str,
    counts: [u32; 5],
    median: Option<i64>,
) -> SlaRow {
    let [on_time, late, overdue, open, exempt] = counts;
    let known = on_time + late + overdue;
    SlaRow {
        policy: policy.into(),
        tier: tier.into(),
        severity,
        within: Some(within.into()),
        installed_on_time: on_time,
        installed_late: late,
        overdue,
        open,
        exempt,
        compliance_percent: (known > 0).then(|| f64::from(on_time) * 100.0 / f64::from(known)),
        median_time_to_install_seconds: median,
    }
}

fn sla() -> Vec<SlaRow> {
    use Severity::*;
    vec![
        sla_row(
            "servers",
            "crown-jewels",
            Critical,
            "72h",
            [14, 0, 0, 0, 2],
            Some(31 * HOUR),
        ),
        sla_row(
            "servers",
            "crown-jewels",
            High,
            "7d",
            [22, 1, 0, 2, 0],
            Some(3 * DAY + 4 * HOUR),
        ),
        sla_row(
            "servers",
            "crown-jewels",
            Medium,
            "30d",
            [18, 0, 0, 5, 0],
            Some(9 * DAY),
        ),
        sla_row(
            "servers",
            "production",
            Critical,
            "72h",
            [40, 2, 1, 0, 0],
            Some(2 * DAY + 2 * HOUR),
        ),
        sla_row(
            "servers",
            "production",
            High,
            "7d",
            [61, 6, 2, 4, 0],
            Some(4 * DAY + 11 * HOUR),
        ),
        sla_row(
            "servers",
            "production",
            Medium,
            "30d",
            [75, 3, 0, 12, 0],
            Some(12 * DAY),
        ),
        sla_row(
            "servers",
            "production",
            Low,
            "90d",
            [20, 0, 0, 31, 0],
            Some(19 * DAY),
        ),
        sla_row(
            "workstations",
            "standard",
            Critical,
            "7d",
            [180, 12, 9, 0, 0],
            Some(5 * DAY + 6 * HOUR),
        ),
        sla_row(
            "workstations",
            "standard",
            High,
            "14d",
            [212, 30, 14, 20, 0],
            Some(8 * DAY),
        ),
        sla_row(
            "workstations",
            "standard",
            Medium,
            "30d",
            [240, 8, 0, 41, 0],
            Some(16 * DAY),
        ),
        sla_row(
            "workstations",
            "kiosks",
            Critical,
            "7d",
            [0, 0, 0, 0, 6],
            None,
        ),
        sla_row(
            "workstations",
            "kiosks",
            High,
            "14d",
            [8, 3, 4, 1, 0],
            Some(15 * DAY),
        ),
    ]
}

fn rings() -> Vec<RingFunnel> {
    vec![
        RingFunnel {
            ring: "canary".into(),
            rollouts: 9,
            targeted: 27,
            installed: 24,
            failed: 3,
            timed_out: 1,
            rolled_back: 0,
            halts: 1,
            success_rate_percent: Some(88.9),
        },
        RingFunnel {
            ring: "early-adopters".into(),
            rollouts: 8,
            targeted: 164,
            installed: 151,
            failed: 5,
            timed_out: 2,
            rolled_back: 6,
            halts: 1,
            success_rate_percent: Some(96.8),
        },
        RingFunnel {
            ring: "broad".into(),
            rollouts: 7,
            targeted: 912,
            installed: 861,
            failed: 9,
            timed_out: 4,
            rolled_back: 0,
            halts: 0,
            success_rate_percent: Some(99.0),
        },
    ]
}

fn exceptions() -> Vec<ExceptionRow> {
    vec![
        ExceptionRow {
            name: "pacs-legacy-viewer".into(),
            patches: vec!["KB5034441".into(), "KB5035845".into()],
            covered_devices: 2,
            owner: "m.weber@acme-clinics.example".into(),
            approved_by: Some("ciso@acme-clinics.example".into()),
            reason: "The PACS viewer vendor has not certified the March cumulative update; \
                     installing it voids the device's medical certification."
                .into(),
            compensating_controls: vec![
                "Viewer hosts isolated on the imaging VLAN".into(),
                "EDR in block mode".into(),
            ],
            ticket: Some("CHG-10423".into()),
            active_since: Some(ts("2026-02-10T08:00:00Z")),
            expires_at: ts("2026-05-31T22:00:00Z"),
            phase: "Active".into(),
            history: vec![
                PhaseChange {
                    at: ts("2026-02-09T15:12:00Z"),
                    phase: "PendingApproval".into(),
                    message: "requested by m.weber".into(),
                },
                PhaseChange {
                    at: ts("2026-02-10T08:00:00Z"),
                    phase: "Active".into(),
                    message: "approved by ciso".into(),
                },
            ],
        },
        ExceptionRow {
            name: "erp-quarter-close".into(),
            patches: vec!["openssl-3.0.13-1".into()],
            covered_devices: 0,
            owner: "finance-it@acme-clinics.example".into(),
            approved_by: Some("cio@acme-clinics.example".into()),
            reason: "No restart of the ERP cluster during the quarter close.".into(),
            compensating_controls: vec!["WAF rule blocks the exploited endpoint".into()],
            ticket: Some("CHG-10502".into()),
            active_since: Some(ts("2026-03-03T07:30:00Z")),
            expires_at: ts("2026-03-20T18:00:00Z"),
            phase: "Expired".into(),
            history: vec![
                PhaseChange {
                    at: ts("2026-03-02T16:40:00Z"),
                    phase: "PendingApproval".into(),
                    message: "requested".into(),
                },
                PhaseChange {
                    at: ts("2026-03-03T07:30:00Z"),
                    phase: "Active".into(),
                    message: "approved".into(),
                },
                PhaseChange {
                    at: ts("2026-03-20T18:00:00Z"),
                    phase: "Expired".into(),
                    message: "expiry reached; 3 pairs back under SLA".into(),
                },
            ],
        },
        ExceptionRow {
            name: "kiosk-firmware-hold".into(),
            patches: vec!["ELO-FW-4.2".into()],
            covered_devices: 0,
            owner: "facilities@acme-clinics.example".into(),
            approved_by: None,
            reason: "Kiosk firmware needs an on-site visit.".into(),
            compensating_controls: vec![],
            ticket: None,
            active_since: None,
            expires_at: ts("2026-04-30T22:00:00Z"),
            phase: "PendingApproval".into(),
            history: vec![PhaseChange {
                at: ts("2026-03-25T10:05:00Z"),
                phase: "PendingApproval".into(),
                message: "awaiting approver".into(),
            }],
        },
    ]
}

fn interventions() -> Vec<InterventionRow> {
    let row = |at: &str, kind, rollout: &str, patch: &str, ring: Option<&str>, message: &str| {
        InterventionRow {
            at: ts(at),
            kind,
            rollout: rollout.into(),
            patch: patch.into(),
            ring: ring.map(Into::into),
            message: message.into(),
        }
    };
    use InterventionKind::*;
    vec![
        row(
            "2026-03-11T09:14:00Z",
            Halted,
            "kb5035845-servers",
            "KB5035845",
            Some("canary"),
            "3 of 9 failed (33%), above the ring's 20% failure rule",
        ),
        row(
            "2026-03-11T10:02:00Z",
            Paused,
            "kb5035845-servers",
            "KB5035845",
            None,
            "paused by j.ortiz: investigating boot loop",
        ),
        row(
            "2026-03-12T08:30:00Z",
            Resumed,
            "kb5035845-servers",
            "KB5035845",
            None,
            "resumed by j.ortiz",
        ),
        row(
            "2026-03-16T13:45:00Z",
            RollbackStarted,
            "chrome-122-ws",
            "chrome-122.0.6261.112",
            Some("early-adopters"),
            "health check failed on 6 devices",
        ),
        row(
            "2026-03-16T15:20:00Z",
            RolledBack,
            "chrome-122-ws",
            "chrome-122.0.6261.112",
            Some("early-adopters"),
            "uninstalled from 6 devices",
        ),
        row(
            "2026-03-18T07:00:00Z",
            Promoted,
            "openssl-servers",
            "openssl-3.0.13-1",
            Some("canary"),
            "promoted by a.khan",
        ),
        row(
            "2026-03-22T11:00:00Z",
            Held,
            "zoom-5.17-ws",
            "zoom-5.17.11",
            None,
            "failing on 14% of the fleet",
        ),
        row(
            "2026-03-23T09:00:00Z",
            Aborted,
            "zoom-5.17-ws",
            "zoom-5.17.11",
            None,
            "aborted by j.ortiz: superseded by 5.17.12",
        ),
    ]
}

fn approvals() -> Vec<ApprovalRow> {
    let row = |rollout: &str,
               policy: &str,
               patch: &str,
               sev,
               at: Option<&str>,
               by: &str,
               emergency,
               phase: &str| {
        ApprovalRow {
            rollout: rollout.into(),
            policy: policy.into(),
            patch: patch.into(),
            severity: sev,
            at: at.map(ts),
            by: by.into(),
            emergency,
            phase: phase.into(),
        }
    };
    use Severity::*;
    vec![
        row(
            "kb5035845-servers",
            "servers",
            "KB5035845",
            Some(Critical),
            Some("2026-03-10T06:00:00Z"),
            "rule critical-fast",
            false,
            "Completed",
        ),
        row(
            "openssl-servers",
            "servers",
            "openssl-3.0.13-1",
            Some(Critical),
            Some("2026-03-05T21:10:00Z"),
            "a.khan (emergency)",
            true,
            "Completed",
        ),
        row(
            "chrome-122-ws",
            "workstations",
            "chrome-122.0.6261.112",
            Some(High),
            Some("2026-03-14T06:00:00Z"),
            "rule browsers-2d",
            false,
            "RolledBack",
        ),
        row(
            "zoom-5.17-ws",
            "workstations",
            "zoom-5.17.11",
            Some(Medium),
            Some("2026-03-19T06:00:00Z"),
            "rule apps-weekly",
            false,
            "Aborted",
        ),
        row(
            "curl-8.7-servers",
            "servers",
            "curl-8.7.1-1",
            None,
            None,
            "pending: manual approval",
            false,
            "Progressing",
        ),
    ]
}

fn pairs() -> Vec<PairRow> {
    use Unpatched::*;
    let reasons = [
        (Exception, "PACS viewer not certified"),
        (AwaitingApproval, "rule delay 7d passes 2026-04-02"),
        (
            AwaitingManualApproval,
            "needs an approver in group change-board",
        ),
        (Rejected, "rejected by a.khan: breaks the label printers"),
        (Superseded, "replaced by chrome-123.0.6312.58"),
        (Held, "fails on 14% of the fleet"),
        (WaitingForRing, "waits for ring early-adopters"),
        (WaitingForWindow, "window opens Sat 02:00"),
        (Installing, "download 62%"),
        (Failed, "exit code 0x80070643"),
        (DeviceUnreachable, "last check-in 9 days ago"),
        (Halted, "ring canary halted"),
        (Paused, "paused by j.ortiz"),
        (Aborted, "aborted by j.ortiz"),
        (NotInRing, "no ring selects this device"),
    ];
    let tiers = [
        ("servers", "production", "srv"),
        ("workstations", "standard", "ws"),
        ("servers", "crown-jewels", "db"),
    ];
    let sevs = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];
    let mut out = Vec::new();
    for i in 0..42usize {
        let (policy, tier, prefix) = tiers[i % 3];
        let severity = sevs[i % 4];
        let installed = i % 3 == 2 && i > 30;
        let (reason, detail) = reasons[i % reasons.len()];
        // Due dates from 20 March into April; the month ends on 1 April (Berlin).
        let due =
            ts("2026-03-20T10:00:00Z") + jiff::SignedDuration::from_hours(24 * (i as i64 * 7 % 25));
        let as_of = ts("2026-03-31T22:00:00Z");
        let state = if installed {
            SlaState::InstalledOnTime
        } else if reason == Exception {
            SlaState::Exempt
        } else if due < as_of {
            SlaState::Overdue
        } else if due < as_of + jiff::SignedDuration::from_hours(72) {
            SlaState::DueSoon
        } else {
            SlaState::NotDue
        };
        out.push(PairRow {
            device: format!("{prefix}-{:02}.berlin.acme-clinics.example", i + 1),
            patch: [
                "KB5035845",
                "openssl-3.0.13-1",
                "chrome-122.0.6261.112",
                "curl-8.7.1-1",
            ][i % 4]
                .into(),
            vendor: ["Microsoft", "Debian", "Google", "Debian"][i % 4].into(),
            title: (i % 4 == 0).then(|| "2026-03 Cumulative Update for Windows Server 2022".into()),
            policy: policy.into(),
            ring: (reason != NotInRing)
                .then(|| ["canary", "early-adopters", "broad"][i % 3].into()),
            tier: tier.into(),
            severity,
            cvss: Some([9.8, 7.5, 5.3, 3.1][i % 4]),
            known_exploited: i % 7 == 0,
            found_at: ts("2026-03-01T10:00:00Z"),
            due_at: Some(due),
            installed_at: installed.then(|| ts("2026-03-20T03:00:00Z")),
            state,
            counted: !matches!(reason, Rejected | Superseded),
            reason: (!installed).then_some(reason),
            detail: (!installed).then(|| detail.into()),
            exception: (reason == Exception && !installed).then(|| "pacs-legacy-viewer".into()),
        });
    }
    out
}

fn laggard(name: &str, missed: u32, overdue: u32, pairs: u32) -> Laggard {
    Laggard {
        name: name.into(),
        missed,
        overdue,
        pairs,
    }
}

/// A whole month of one MSP tenant.
fn sample() -> MonthReport {
    MonthReport {
        schema: SCHEMA.into(),
        tenant: "acme-clinics".into(),
        month: "2026-03".into(),
        time_zone: "Europe/Berlin".into(),
        start: ts("2026-02-28T23:00:00Z"),
        end: ts("2026-03-31T22:00:00Z"),
        as_of: ts("2026-03-31T22:00:00Z"),
        closed: true,
        headline: Headline {
            devices: 1_184,
            pairs: 1_312,
            compliance_percent: Some(92.6),
            installed_on_time: 890,
            installed_late: 65,
            overdue: 30,
            open: 116,
            exempt: 8,
            installed_in_month: 1_036,
            median_time_to_install_seconds: Some(5 * DAY + 7 * HOUR),
            halts: 2,
            rollbacks: 1,
            active_exceptions: 1,
        },
        sla: sla(),
        trend: vec![
            TrendPoint {
                month: "2026-01".into(),
                compliance_percent: Some(84.3),
                overdue: 71,
                median_time_to_install_seconds: Some(8 * DAY + 2 * HOUR),
            },
            TrendPoint {
                month: "2026-02".into(),
                compliance_percent: Some(89.9),
                overdue: 44,
                median_time_to_install_seconds: Some(6 * DAY + 20 * HOUR),
            },
            TrendPoint {
                month: "2026-03".into(),
                compliance_percent: Some(92.6),
                overdue: 30,
                median_time_to_install_seconds: Some(5 * DAY + 7 * HOUR),
            },
        ],
        rings: rings(),
        pairs: pairs(),
        approvals: approvals(),
        interventions: interventions(),
        freezes: vec![FreezeRow {
            scope: "PatchPolicy/servers".into(),
            from: ts("2026-03-27T16:00:00Z"),
            until: ts("2026-03-30T06:00:00Z"),
            reason: "Quarter-end close: no changes to finance systems".into(),
            owner: "finance-it@acme-clinics.example".into(),
        }],
        exceptions: exceptions(),
        laggards: Laggards {
            devices: vec![
                laggard("ws-kiosk-07.berlin.acme-clinics.example", 6, 4, 9),
                laggard("ws-31.berlin.acme-clinics.example", 4, 1, 11),
                laggard("srv-print-02.berlin.acme-clinics.example", 3, 3, 7),
            ],
            vendors: vec![
                laggard("Microsoft", 41, 17, 612),
                laggard("Google", 22, 6, 301),
                laggard("Zoom", 9, 5, 88),
            ],
            tiers: vec![
                laggard("standard", 73, 23, 766),
                laggard("kiosks", 7, 4, 16),
                laggard("production", 14, 3, 237),
            ],
        },
    }
}

/// A month with nothing in it.
fn empty() -> MonthReport {
    let mut r = MonthReport::empty(
        "quiet",
        &ringmaster::report::month::Month::parse("2026-04", "UTC").expect("month"),
        ts("2026-04-12T08:00:00Z"),
    );
    r.trend = vec![TrendPoint {
        month: "2026-04".into(),
        compliance_percent: None,
        overdue: 0,
        median_time_to_install_seconds: None,
    }];
    r
}

#[test]
fn sample_renders_every_section_with_its_figures() {
    let page = html(&sample());
    keep("sample.html", &page);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.trim_end().ends_with("</html>"));
    for id in [
        "headline",
        "sla",
        "trend",
        "time-to-install",
        "rings",
        "exceptions",
        "approvals",
        "interventions",
        "freezes",
        "laggards",
        "unpatched",
        "verify",
    ] {
        assert!(
            page.contains(&format!("<section id=\"{id}\"")),
            "section {id} missing"
        );
    }
    // Header: tenant, month, zone, period in the zone, closed, schema.
    for text in [
        "acme-clinics",
        "March 2026",
        "Europe/Berlin",
        "2026-03-01 00:00",
        "2026-04-01 00:00",
        "Closed month",
        SCHEMA,
    ] {
        assert!(page.contains(text), "header lacks {text}");
    }
    // Headline figures.
    for text in [
        "92.6% of the 1,312 device–patch pairs were in good standing",
        "890 installed by their deadline, 116 not yet due and 8 covered by an active exception",
        "5d 7h",
        "1,036",
        "1,184",
        ">30<",
    ] {
        assert!(page.contains(text), "headline lacks {text}");
    }
    // SLA cells, with their deadline, and both policies.
    for text in [
        "Policy servers",
        "Policy workstations",
        "within 72h",
        "within 14d",
        "95.7%",
        "82.8%",
        "53.3%",
    ] {
        assert!(page.contains(text), "SLA lacks {text}");
    }
    // Trend: every month, as a chart.
    for text in [
        "Jan",
        "Feb",
        "84.3%",
        "89.9%",
        "Compliance by month",
        "expired 20 Mar",
    ] {
        assert!(page.contains(text), "trend lacks {text}");
    }
    // Rings: each ring and its success rate.
    for text in [
        "canary",
        "early-adopters",
        "broad",
        "88.9%",
        "96.8%",
        "99.0%",
    ] {
        assert!(page.contains(text), "rings lack {text}");
    }
    // Exceptions: timeline and register, with owners, tickets, history.
    for text in [
        "Exceptions over the month",
        "pacs-legacy-viewer",
        "CHG-10423",
        "m.weber@acme-clinics.example",
        "EDR in block mode",
        "Pending approval",
        "expiry reached; 3 pairs back under SLA",
        "nobody yet",
    ] {
        assert!(page.contains(text), "exceptions lack {text}");
    }
    // Registers.
    for text in [
        "emergency",
        "Rollback started",
        "Promoted",
        "Quarter-end close",
        "a.khan (emergency)",
    ] {
        assert!(page.contains(text), "registers lack {text}");
    }
    // Laggards.
    assert!(page.contains("ws-kiosk-07.berlin.acme-clinics.example"));
    // Every reason a pair waits is named.
    for reason in [
        "Exception",
        "Awaiting approval",
        "Awaiting manual approval",
        "Rejected",
        "Superseded",
        "Held",
        "Waiting for ring",
        "Waiting for window",
        "Installing",
        "Failed",
        "Device unreachable",
        "Halted",
        "Paused",
        "Aborted",
        "Not in a ring",
    ] {
        assert!(
            page.contains(&format!("<strong>{reason}</strong>")),
            "reason {reason} missing"
        );
    }
    assert!(page.contains("ringmaster report verify DIR"));
    assert!(page.contains("SHA256SUMS"));
}

#[test]
fn the_page_loads_nothing() {
    let page = html(&sample());
    let lower = page.to_lowercase();
    for needle in [
        "src=", "href=", "url(", "@import", "<script", "<link", "<iframe", "<object", "<img",
    ] {
        assert!(!lower.contains(needle), "the page has {needle}");
    }
    assert_eq!(page.matches("<style>").count(), 1);
    assert!(page.contains("Content-Security-Policy"));
}

#[test]
fn the_page_prints_on_a4() {
    let page = html(&sample());
    assert!(page.contains("size: A4"));
    assert!(page.contains("@media print"));
    assert!(page.contains("thead { display: table-header-group; }"));
    assert!(page.contains("break-inside: avoid"));
}

#[test]
fn a_running_month_says_so_and_marks_its_as_of_time() {
    let mut r = sample();
    r.closed = false;
    r.as_of = ts("2026-03-18T09:00:00Z");
    // A year of history, one month of it without a figure.
    r.trend = (0..13)
        .map(|i| {
            let (y, m) = if i < 10 { (2025, i + 3) } else { (2026, i - 9) };
            TrendPoint {
                month: format!("{y}-{m:02}"),
                compliance_percent: (i != 4).then(|| 70.0 + 2.0 * f64::from(i)),
                overdue: 120 - 7 * i,
                median_time_to_install_seconds: Some(i64::from(20 - i) * DAY),
            }
        })
        .collect();
    let page = html(&r);
    keep("running.html", &page);
    assert!(page.contains("Month in progress"));
    assert!(page.contains("Figures as of 2026-03-18 10:00"));
    // The timeline draws the as-of line, and an expiry after it is still to come.
    assert!(page.contains("as of 18 Mar"));
    assert!(page.contains("expires 20 Mar"));
    assert!(!page.contains("Closed month"));
    // Thirteen bars but one, the year named where it changes, the gap said in words.
    assert_eq!(page.matches("<rect class=\"bar").count(), 12);
    assert!(page.contains(">2025</text>") && page.contains(">2026</text>"));
    assert!(page.contains(">n/a</text>"));
}

#[test]
fn the_same_month_renders_the_same_bytes() {
    assert_eq!(html(&sample()), html(&sample()));
    assert_eq!(html(&empty()), html(&empty()));
}

#[test]
fn user_text_is_escaped_everywhere() {
    let mut r = sample();
    let evil = "<script>alert(\"x\")</script>";
    r.tenant = format!("acme\"{evil}");
    r.exceptions[0].owner = evil.into();
    r.exceptions[0].name = format!("exc'{evil}");
    r.exceptions[0].history[0].message = evil.into();
    r.rings[0].ring = evil.into();
    r.interventions[0].message = evil.into();
    r.freezes[0].reason = evil.into();
    r.approvals[0].by = evil.into();
    r.laggards.vendors[0].name = evil.into();
    r.pairs[0].device = evil.into();
    r.pairs[0].detail = Some(evil.into());
    r.sla[0].policy = evil.into();
    r.sla[0].within = Some(evil.into());
    let page = html(&r);
    assert!(!page.contains("<script"), "a raw <script> got through");
    assert!(!page.contains("alert(\"x\")"), "a raw quote got through");
    assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
    assert!(page.contains("acme&quot;&lt;script&gt;"));
    assert!(page.contains("exc&#39;&lt;script&gt;"));
    // The running footer's CSS string cannot be closed either.
    assert!(page.contains("acme\\22 \\3c script"));
}

#[test]
fn an_empty_month_says_so_in_every_section() {
    let page = html(&empty());
    keep("empty.html", &page);
    for sentence in [
        "No device–patch pair was open at any time this month.",
        "no pairs this month",
        "No policy set an SLA for a pair this month.",
        "No pair was installed this month.",
        "No rollout reached a ring this month.",
        "No exception was in force or changed this month.",
        "No patch approved for a rollout this month.",
        "No change freeze overlapped this month.",
        "Nothing missed its SLA this month.",
        "none is left unpatched",
        "Month in progress",
        "2026-04-12 08:00",
    ] {
        assert!(
            page.contains(sentence),
            "the empty month lacks {sentence:?}"
        );
    }
    // The single trend month has no figure: it says so rather than drawing a bar.
    assert!(page.contains(">n/a</text>"));
    assert!(!page.contains("<rect class=\"bar"));
}

#[test]
fn a_big_month_lists_the_first_pairs_and_points_to_the_csv() {
    let mut r = sample();
    let template = r
        .pairs
        .iter()
        .find(|p| p.installed_at.is_none())
        .cloned()
        .expect("a pair");
    r.pairs = (0..10_000)
        .map(|i| PairRow {
            device: format!("ws-{i:05}"),
            ..template.clone()
        })
        .collect();
    let page = html(&r);
    keep("big.html", &page);
    let rows = page
        .split("<tbody>")
        .nth(page.split("<tbody>").count() - 1)
        .expect("pairs table");
    assert_eq!(rows.matches("<tr>").count(), PAIR_ROWS);
    assert!(page.contains("the full list of every pair is in <code>pairs.csv</code>"));
    assert!(page.contains("500 most urgent of 10,000"));
    assert!(page.len() < 1_000_000, "the page is {} bytes", page.len());
}
