//! The msrc importer on the fixtures in tests/fixtures/catalog/msrc/ and, when ../shared/feeds is there, on the real feed files.

use std::path::PathBuf;
use std::time::Instant;

use ringmaster::api::{Classification, CveRef, PatchSpec, Severity};
use ringmaster::catalog::{FeedError, Parsed, Problem, Skipped, msrc};

/// A fixture of this feed.
fn fixture(name: &str) -> (String, Vec<u8>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/catalog/msrc")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (name.to_string(), bytes)
}

/// A real feed file from ../shared/feeds/msrc/, or None (with a note) when absent.
fn real(name: &str) -> Option<(String, Vec<u8>)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/feeds/msrc")
        .join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some((path.display().to_string(), bytes)),
        Err(e) => {
            eprintln!("skipped: {}: {e}", path.display());
            None
        }
    }
}

/// Parses, failing the test on a FeedError.
fn parse(file: &str, bytes: &[u8]) -> Parsed<PatchSpec> {
    msrc::parse(file, bytes).unwrap_or_else(|e| panic!("{e}"))
}

/// The Patch with this id.
fn patch<'a>(parsed: &'a Parsed<PatchSpec>, id: &str) -> &'a PatchSpec {
    parsed
        .records
        .iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("no {id}"))
}

/// A timestamp.
fn at(text: &str) -> jiff::Timestamp {
    text.parse().unwrap()
}

/// A CVE reference with a score and vector.
fn cve(id: &str, score: f64, vector: &str) -> CveRef {
    CveRef {
        id: id.to_string(),
        cvss_score: Some(score),
        cvss_vector: Some(vector.to_string()),
        epss: None,
    }
}

/// A CVE reference without a score.
fn unscored(id: &str) -> CveRef {
    CveRef {
        id: id.to_string(),
        cvss_score: None,
        cvss_vector: None,
        epss: None,
    }
}

/// The ids of the Patches, in order.
fn ids(parsed: &Parsed<PatchSpec>) -> Vec<&str> {
    parsed.records.iter().map(|p| p.id.as_str()).collect()
}

/// The CVE ids of a Patch, in order.
fn cve_ids(patch: &PatchSpec) -> Vec<&str> {
    patch.cves.iter().map(|c| c.id.as_str()).collect()
}

const V_21338_WIN10: &str = "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H/E:F/RL:O/RC:C";
const V_21338_2012: &str = "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H/E:F/RL:O/RC:C";
const V_21433: &str = "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N/E:U/RL:O/RC:C";

#[test]
fn json_fixture_gives_one_patch_per_kb() {
    let (file, bytes) = fixture("cvrf-2024-Mar.json");
    let parsed = parse(&file, &bytes);
    assert_eq!(ids(&parsed), ["KB5002560", "KB5035845", "KB5035930"]);
    let title = |rest: &str| Some(format!("March 2024 Security Updates: {rest}"));

    let excel = patch(&parsed, "KB5002560");
    let expected = PatchSpec {
        id: "KB5002560".into(),
        title: title("Security Update for Microsoft Excel 2016"),
        vendor: "Microsoft".into(),
        product: Some("Microsoft Excel 2016".into()),
        classification: Classification::Security,
        cvss_score: None,
        vendor_severity: Some(Severity::Medium),
        cves: vec![unscored("CVE-2024-26199")],
        known_exploited: false,
        released_at: at("2024-03-12T07:00:00Z"),
        reboot_required: true,
        uninstallable: true,
        supersedes: vec![],
        packages: vec![],
        kev: None,
        epss: None,
    };
    assert_eq!(excel, &expected);

    let win10 = patch(&parsed, "KB5035845");
    let expected = PatchSpec {
        id: "KB5035845".into(),
        title: title("Security Update for Windows 10 Version 21H2; Windows 10 Version 22H2"),
        product: Some("Windows 10 Version 21H2; Windows 10 Version 22H2".into()),
        cvss_score: Some(7.8),
        vendor_severity: Some(Severity::High),
        cves: vec![
            cve("CVE-2024-21338", 7.8, V_21338_WIN10),
            cve("CVE-2024-21433", 5.5, V_21433),
        ],
        known_exploited: true,
        released_at: at("2024-03-05T08:00:00Z"),
        supersedes: vec!["KB5034763".into()],
        ..expected
    };
    assert_eq!(win10, &expected);

    let rollup = patch(&parsed, "KB5035930");
    let expected = PatchSpec {
        id: "KB5035930".into(),
        title: title("Monthly Rollup for Windows Server 2012"),
        product: Some("Windows Server 2012".into()),
        cvss_score: Some(8.8),
        vendor_severity: Some(Severity::Critical),
        cves: vec![cve("CVE-2024-21338", 8.8, V_21338_2012)],
        released_at: at("2024-03-12T07:00:00Z"),
        supersedes: vec!["KB5034830".into(), "KB5034831".into()],
        ..expected
    };
    assert_eq!(rollup, &expected);
}

#[test]
fn json_fixture_reports_what_it_skips() {
    let (file, bytes) = fixture("cvrf-2024-Mar.json");
    let parsed = parse(&file, &bytes);
    let skipped = &parsed.skipped;
    assert_eq!(skipped.len(), 4, "{skipped:#?}");
    assert_eq!(
        skipped[0],
        Skipped {
            file: file.clone(),
            at: "Vulnerability 2 (Ordinal 20), ScoreSet 2".into(),
            id: Some("CVE-2024-21433".into()),
            problem: Problem::Invalid {
                field: "BaseScore".into(),
                why: "not a number from 0 to 10".into(),
                got: "high".into(),
            },
        }
    );
    assert_eq!(
        skipped[1],
        Skipped {
            file: file.clone(),
            at: "Vulnerability 3 (Ordinal 30)".into(),
            id: None,
            problem: Problem::Missing {
                field: "CVE".into()
            },
        }
    );
    assert_eq!(skipped[2].at, "Vulnerability 4 (Ordinal 40)");
    assert_eq!(skipped[2].id.as_deref(), Some("CVE-2024-26170"));
    assert!(
        matches!(&skipped[2].problem, Problem::Invalid { field, .. } if field == "Vulnerability"),
        "{:?}",
        skipped[2].problem
    );
    assert_eq!(skipped[3].at, "Vulnerability 6 (Ordinal 60), ScoreSet 1");
    assert_eq!(skipped[3].id.as_deref(), Some("CVE-2024-26199"));
    assert!(
        matches!(&skipped[3].problem, Problem::BadVector { vector, .. }
            if vector == "CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:X/C:H/I:H/A:H"),
        "{:?}",
        skipped[3].problem
    );
}

const V_26234: &str = "CVSS:3.1/AV:L/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H/E:F/RL:O/RC:C";
const V_26221_W11: &str = "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O/RC:C";
const V_26221_2022: &str = "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O/RC:C";

#[test]
fn xml_fixture_gives_one_patch_per_kb() {
    let (file, bytes) = fixture("cvrfDocument-2024-Apr.xml");
    let parsed = parse(&file, &bytes);
    assert_eq!(
        ids(&parsed),
        ["KB5002581", "KB5036893", "KB5036909", "KB5036910"]
    );
    let title = |rest: &str| Some(format!("April 2024 Security Updates: {rest}"));

    let sharepoint = patch(&parsed, "KB5002581");
    let name = "Microsoft SharePoint Server Subscription Edition & Tools";
    let expected = PatchSpec {
        id: "KB5002581".into(),
        title: title(&format!("Security Update for {name}")),
        vendor: "Microsoft".into(),
        product: Some(name.into()),
        classification: Classification::Security,
        cvss_score: None,
        vendor_severity: Some(Severity::Medium),
        cves: vec![unscored("CVE-2024-26251")],
        known_exploited: false,
        released_at: at("2024-04-09T07:00:00Z"),
        reboot_required: true,
        uninstallable: true,
        supersedes: vec!["KB5002540".into(), "KB5002564".into()],
        packages: vec![],
        kev: None,
        epss: None,
    };
    assert_eq!(sharepoint, &expected);

    let win11 = patch(&parsed, "KB5036893");
    let expected = PatchSpec {
        id: "KB5036893".into(),
        title: title("Security Update for Windows 11 Version 23H2"),
        product: Some("Windows 11 Version 23H2".into()),
        cvss_score: Some(7.2),
        vendor_severity: Some(Severity::High),
        cves: vec![
            cve("CVE-2024-26221", 7.2, V_26221_W11),
            cve("CVE-2024-26234", 6.7, V_26234),
        ],
        known_exploited: true,
        supersedes: vec!["KB5035853".into()],
        ..expected
    };
    assert_eq!(win11, &expected);

    let server = patch(&parsed, "KB5036909");
    let expected = PatchSpec {
        id: "KB5036909".into(),
        title: title("Security Update for Windows Server 2022"),
        product: Some("Windows Server 2022".into()),
        cvss_score: Some(7.5),
        vendor_severity: Some(Severity::Critical),
        cves: vec![
            cve("CVE-2024-26221", 7.5, V_26221_2022),
            cve("CVE-2024-26234", 6.7, V_26234),
        ],
        supersedes: vec!["KB5035857".into()],
        ..expected
    };
    assert_eq!(server, &expected);

    let hotpatch = patch(&parsed, "KB5036910");
    let expected = PatchSpec {
        id: "KB5036910".into(),
        title: title("SecurityHotpatchUpdate for Windows Server 2022"),
        cves: vec![cve("CVE-2024-26221", 7.5, V_26221_2022)],
        known_exploited: false,
        reboot_required: false,
        supersedes: vec![],
        ..expected
    };
    assert_eq!(hotpatch, &expected);
}

#[test]
fn xml_fixture_reports_what_it_skips() {
    let (file, bytes) = fixture("cvrfDocument-2024-Apr.xml");
    let parsed = parse(&file, &bytes);
    let skipped = &parsed.skipped;
    let places: Vec<(&str, Option<&str>)> = skipped
        .iter()
        .map(|s| (s.at.as_str(), s.id.as_deref()))
        .collect();
    assert_eq!(
        places,
        [
            ("Vulnerability 3 (Ordinal 3)", Some("CVE-2024-26230")),
            ("Vulnerability 4 (Ordinal 4)", Some("ADV240001")),
            (
                "Vulnerability 5 (Ordinal 5), ScoreSet 1",
                Some("CVE-2024-26251")
            ),
            (
                "Vulnerability 5 (Ordinal 5), Revision 1",
                Some("CVE-2024-26251")
            ),
        ]
    );
    assert!(skipped.iter().all(|s| s.file == file));
    assert!(
        matches!(&skipped[0].problem, Problem::Invalid { field, why, .. }
            if field == "Vulnerability" && why.starts_with("broken XML")),
        "{:?}",
        skipped[0].problem
    );
    assert_eq!(
        skipped[1].problem,
        Problem::Invalid {
            field: "CVE".into(),
            why: "not a CVE id".into(),
            got: "ADV240001".into()
        }
    );
    assert_eq!(
        skipped[2].problem,
        Problem::Invalid {
            field: "BaseScore".into(),
            why: "not a number from 0 to 10".into(),
            got: "N/A".into()
        }
    );
    assert_eq!(
        skipped[3].problem,
        Problem::Invalid {
            field: "Date".into(),
            why: "not a date".into(),
            got: "the ninth of April".into()
        }
    );
}

#[test]
fn a_kb_without_any_date_is_skipped() {
    let json = br#"{"DocumentTitle": {"Value": "T"}, "Vulnerability": [{"CVE": "CVE-2024-0001",
        "Remediations": [{"Description": {"Value": "5000001"}, "Type": 2, "ProductID": ["1"]}]}]}"#;
    let parsed = parse("t.json", json);
    assert!(parsed.records.is_empty());
    assert_eq!(
        parsed.skipped,
        [Skipped {
            file: "t.json".into(),
            at: "KB5000001".into(),
            id: Some("KB5000001".into()),
            problem: Problem::Missing {
                field: "InitialReleaseDate or RevisionHistory Date".into()
            },
        }]
    );
}

#[test]
fn a_byte_order_mark_and_white_space_may_come_first() {
    let (file, bytes) = fixture("cvrfDocument-2024-Apr.xml");
    let mut marked = b"\xEF\xBB\xBF\n  ".to_vec();
    marked.extend_from_slice(&bytes);
    assert_eq!(parse(&file, &marked), parse(&file, &bytes));
}

#[test]
fn what_is_not_a_cvrf_document_is_a_format_error() {
    let cases: [&[u8]; 7] = [
        b"",
        b"KB5032189,CVE-2023-36033\n",
        b"{\"@odata.context\": \"x\", \"value\": []}",
        b"[1, 2]",
        b"{\"Vulnerability\": 3}",
        b"<html><body>Not found</body></html>",
        b"<cvrfdoc><DocumentTitle>x</Docum",
    ];
    for bytes in cases {
        match msrc::parse("f", bytes) {
            Err(FeedError::Format { file, format, .. }) => {
                assert_eq!(file, "f");
                assert_eq!(format, "MSRC CVRF");
            }
            other => panic!("{}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }
}

#[test]
fn truncated_and_garbled_documents_never_panic() {
    for name in ["cvrf-2024-Mar.json", "cvrfDocument-2024-Apr.xml"] {
        let (_, bytes) = fixture(name);
        for end in (0..bytes.len()).step_by(7) {
            let _ = msrc::parse(name, &bytes[..end]);
        }
        for (i, garbage) in [b'<', b'>', b'"', b'{', b'&', 0xFF].iter().enumerate() {
            let mut garbled = bytes.clone();
            for at in (i * 13..garbled.len()).step_by(97) {
                garbled[at] = *garbage;
            }
            let _ = msrc::parse(name, &garbled);
        }
    }
}

#[test]
fn a_document_parses_to_the_same_patches_every_time() {
    let (file, bytes) = fixture("cvrf-2024-Mar.json");
    let first = serde_json::to_string(&parse(&file, &bytes).records).unwrap();
    let second = serde_json::to_string(&parse(&file, &bytes).records).unwrap();
    assert_eq!(first, second);
}

#[test]
fn real_json_sample_july_2026() {
    let Some((file, bytes)) = real("cvrf_sample.json") else {
        return;
    };
    let parsed = parse(&file, &bytes);
    assert!(parsed.skipped.is_empty(), "{:#?}", parsed.skipped);
    // CVE-2026-56155's six KBs; the Copilot and Edge CVEs have only "Release Notes".
    assert_eq!(
        ids(&parsed),
        [
            "KB5099444",
            "KB5099445",
            "KB5099535",
            "KB5099536",
            "KB5099538",
            "KB5099540"
        ]
    );
    let vector = "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H/E:F/RL:O/RC:C";
    for patch in &parsed.records {
        assert_eq!(
            patch.cves,
            [cve("CVE-2026-56155", 7.8, vector)],
            "{}",
            patch.id
        );
        assert_eq!(patch.cvss_score, Some(7.8));
        assert_eq!(patch.vendor_severity, Some(Severity::High));
        assert!(patch.known_exploited);
        assert!(patch.reboot_required);
        assert_eq!(patch.released_at, at("2026-07-14T07:00:00Z"));
        assert_eq!(patch.classification, Classification::Security);
    }
    let kb = patch(&parsed, "KB5099538");
    assert_eq!(
        kb.title.as_deref(),
        Some(
            "July 2026 Security Updates: Security Update for Windows 10 Version 1809; Windows Server 2019"
        )
    );
    assert_eq!(
        kb.product.as_deref(),
        Some("Windows 10 Version 1809; Windows Server 2019")
    );
    assert_eq!(kb.supersedes, ["KB5094123"]);
    let rollup = patch(&parsed, "KB5099445");
    assert_eq!(
        rollup.title.as_deref(),
        Some("July 2026 Security Updates: Monthly Rollup for Windows Server 2012")
    );
    assert_eq!(rollup.supersedes, ["KB5094042"]);
    let server2025 = patch(&parsed, "KB5099536");
    assert_eq!(server2025.product.as_deref(), Some("Windows Server 2025"));
    assert_eq!(server2025.supersedes, ["KB5094125"]);
}

#[test]
fn real_xml_month_november_2023() {
    let Some((file, bytes)) = real("cvrfDocument-2023-Nov.xml") else {
        return;
    };
    let started = Instant::now();
    let parsed = parse(&file, &bytes);
    eprintln!(
        "msrc: {} ({} bytes): {} Patches, {} skipped in {:?}",
        file,
        bytes.len(),
        parsed.records.len(),
        parsed.skipped.len(),
        started.elapsed()
    );
    assert!(parsed.skipped.is_empty(), "{:#?}", parsed.skipped);
    assert_eq!(parsed.records.len(), 42);
    let exploited: Vec<&str> = parsed
        .records
        .iter()
        .filter(|p| p.known_exploited)
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(
        exploited,
        [
            "KB5032189",
            "KB5032190",
            "KB5032192",
            "KB5032196",
            "KB5032197",
            "KB5032198",
            "KB5032199",
            "KB5032202",
            "KB5032247",
            "KB5032248",
            "KB5032249",
            "KB5032250",
            "KB5032252",
            "KB5032254",
            "KB5032304"
        ]
    );
    for patch in &parsed.records {
        assert_eq!(
            patch.released_at,
            at("2023-11-14T08:00:00Z"),
            "{}",
            patch.id
        );
        assert_eq!(patch.vendor, "Microsoft");
    }
    november_windows_10(patch(&parsed, "KB5032189"));
    november_server_2012_rollup(patch(&parsed, "KB5032247"));
    november_hotpatch(patch(&parsed, "KB5032304"));
    november_excel(patch(&parsed, "KB5002518"));
}

/// KB5032189, the Windows 10 21H2/22H2 cumulative update, as read from the XML.
fn november_windows_10(kb: &PatchSpec) {
    assert_eq!(
        kb.title.as_deref(),
        Some(
            "November 2023 Security Updates: Security Update for Windows 10 Version 21H2; Windows 10 Version 22H2"
        )
    );
    assert_eq!(
        kb.product.as_deref(),
        Some("Windows 10 Version 21H2; Windows 10 Version 22H2")
    );
    assert_eq!(kb.classification, Classification::Security);
    assert_eq!(kb.cves.len(), 25);
    let ids = cve_ids(kb);
    for exploited in ["CVE-2023-36025", "CVE-2023-36033", "CVE-2023-36036"] {
        assert!(ids.contains(&exploited), "{exploited}");
    }
    assert_eq!(ids.first(), Some(&"CVE-2023-24023"));
    assert_eq!(ids.last(), Some(&"CVE-2023-36719"));
    // The Bluetooth CVE (CNA MITRE) comes without any score set.
    assert_eq!(kb.cves[0], unscored("CVE-2023-24023"));
    let get = |id: &str| kb.cves.iter().find(|c| c.id == id).unwrap().clone();
    assert_eq!(
        get("CVE-2023-36033"),
        cve(
            "CVE-2023-36033",
            7.8,
            "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O/RC:C"
        )
    );
    assert_eq!(
        get("CVE-2023-36025"),
        cve(
            "CVE-2023-36025",
            8.8,
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H/E:F/RL:O/RC:C"
        )
    );
    assert_eq!(
        get("CVE-2023-36028"),
        cve(
            "CVE-2023-36028",
            9.8,
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O/RC:C"
        )
    );
    assert_eq!(kb.cvss_score, Some(9.8));
    assert_eq!(kb.vendor_severity, Some(Severity::Critical));
    assert!(kb.known_exploited);
    assert!(kb.reboot_required);
    assert!(kb.uninstallable);
    assert_eq!(kb.supersedes, ["KB5031356"]);
}

/// KB5032247, the Windows Server 2012 Monthly Rollup.
fn november_server_2012_rollup(kb: &PatchSpec) {
    assert_eq!(
        kb.title.as_deref(),
        Some("November 2023 Security Updates: Monthly Rollup for Windows Server 2012")
    );
    assert_eq!(kb.product.as_deref(), Some("Windows Server 2012"));
    assert_eq!(kb.classification, Classification::Security);
    assert_eq!(kb.cves.len(), 17);
    let ids = cve_ids(kb);
    assert!(ids.contains(&"CVE-2023-36025") && ids.contains(&"CVE-2023-36036"));
    assert!(!ids.contains(&"CVE-2023-36033"));
    assert_eq!(kb.cvss_score, Some(9.8));
    assert_eq!(kb.vendor_severity, Some(Severity::Critical));
    assert!(kb.known_exploited);
    assert!(kb.reboot_required);
    assert_eq!(kb.supersedes, ["KB5031442"]);
}

/// KB5032304, the Windows Server 2022 hotpatch: no restart, no supersedence.
fn november_hotpatch(kb: &PatchSpec) {
    assert_eq!(
        kb.title.as_deref(),
        Some("November 2023 Security Updates: SecurityHotpatchUpdate for Windows Server 2022")
    );
    assert_eq!(kb.cves.len(), 30);
    assert!(kb.known_exploited);
    assert!(!kb.reboot_required);
    assert!(kb.supersedes.is_empty());
    assert_eq!(kb.cvss_score, Some(9.8));
}

/// KB5002518, Excel 2016: RestartRequired Maybe.
fn november_excel(kb: &PatchSpec) {
    assert_eq!(kb.product.as_deref(), Some("Microsoft Excel 2016"));
    assert_eq!(cve_ids(kb), ["CVE-2023-36037", "CVE-2023-36041"]);
    assert_eq!(kb.cvss_score, Some(7.8));
    assert_eq!(kb.vendor_severity, Some(Severity::High));
    assert!(!kb.known_exploited);
    assert!(kb.reboot_required);
    assert!(kb.supersedes.is_empty());
}

#[test]
fn real_xml_month_survives_truncation() {
    let Some((file, bytes)) = real("cvrfDocument-2023-Nov.xml") else {
        return;
    };
    let whole = parse(&file, &bytes).records.len();
    for end in (0..bytes.len()).step_by(bytes.len() / 40) {
        if let Ok(parsed) = msrc::parse(&file, &bytes[..end]) {
            assert!(parsed.records.len() <= whole);
        }
    }
    // Cut in the middle of the last Vulnerability: that one is reported, the rest kept.
    let last = bytes
        .windows(20)
        .rposition(|w| w == b"<vuln:Vulnerability ")
        .unwrap();
    let parsed = parse(&file, &bytes[..last + 200]);
    assert_eq!(parsed.skipped.len(), 1, "{:#?}", parsed.skipped);
    assert_eq!(parsed.skipped[0].at, "Vulnerability 106 (Ordinal 3)");
}
