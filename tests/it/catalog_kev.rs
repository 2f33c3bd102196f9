//! The kev importer on the fixtures in tests/fixtures/catalog/kev/ and, when ../shared/feeds is there, on the real feed files.

use std::path::PathBuf;

use jiff::civil::date;
use ringmaster::api::KevListing;
use ringmaster::catalog::kev::{self, Catalog, Listing};
use ringmaster::catalog::{FeedError, Problem, Skipped};

/// The fixture catalog, parsed.
fn fixture() -> (Catalog, Vec<Skipped>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/catalog/kev/catalog.json"
    );
    let bytes = std::fs::read(path).expect("fixture");
    kev::parse("catalog.json", &bytes).expect("parses")
}

/// A real feed file, or `None` (with a note) when ../shared/feeds is not there.
fn real(name: &str) -> Option<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/feeds")
        .join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            eprintln!("skipped: {}: {e}", path.display());
            None
        }
    }
}

use crate::common::{cve_refs as cves, ts as at};

#[test]
fn the_header_is_read() {
    let (catalog, _) = fixture();
    assert_eq!(catalog.version.as_deref(), Some("2025.08.25"));
    assert_eq!(catalog.released, Some(at("2025-08-25T17:04:19.9796Z")));
}

#[test]
fn good_entries_are_kept_field_by_field() {
    let (catalog, _) = fixture();
    let ids: Vec<&str> = catalog.by_cve.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "CVE-2021-34527",
            "CVE-2021-4034",
            "CVE-2021-44228",
            "CVE-2023-4911"
        ]
    );
    assert_eq!(
        catalog.by_cve["CVE-2023-4911"],
        Listing {
            cve: "CVE-2023-4911".into(),
            added: date(2023, 11, 21),
            due: date(2023, 12, 12),
            ransomware: false,
            vendor: "GNU".into(),
            product: "GNU C Library".into(),
            name: "GNU C Library Buffer Overflow Vulnerability".into(),
        }
    );
    assert_eq!(
        catalog.by_cve["CVE-2021-44228"],
        Listing {
            cve: "CVE-2021-44228".into(),
            added: date(2021, 12, 10),
            due: date(2021, 12, 24),
            ransomware: true,
            vendor: "Apache".into(),
            product: "Log4j2".into(),
            name: "Apache Log4j2 Remote Code Execution Vulnerability".into(),
        }
    );
    let print_nightmare = &catalog.by_cve["CVE-2021-34527"];
    assert_eq!(print_nightmare.added, date(2021, 11, 3));
    assert_eq!(
        print_nightmare.due,
        date(2021, 7, 20),
        "kept as the feed says, before the day added"
    );
    assert!(print_nightmare.ransomware);
}

#[test]
fn a_cve_listed_twice_is_merged_with_the_earliest_dates() {
    let (catalog, _) = fixture();
    assert_eq!(
        catalog.by_cve["CVE-2021-4034"],
        Listing {
            cve: "CVE-2021-4034".into(),
            added: date(2022, 6, 27),
            due: date(2022, 7, 15),
            ransomware: false,
            vendor: "Red Hat".into(),
            product: "Polkit".into(),
            name: "Red Hat Polkit Out-of-Bounds Read and Write Vulnerability".into(),
        }
    );
}

#[test]
fn bad_entries_are_reported_where_they_are() {
    let (_, skipped) = fixture();
    let got: Vec<(&str, Option<&str>, &str)> = skipped
        .iter()
        .map(|s| {
            let field = match &s.problem {
                Problem::Missing { field } | Problem::Invalid { field, .. } => field.as_str(),
                other => panic!("unexpected problem {other:?}"),
            };
            (s.at.as_str(), s.id.as_deref(), field)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("vulnerabilities[2]", None, "cveID"),
            ("vulnerabilities[4]", Some("CVE-2023-4863"), "dueDate"),
            ("vulnerabilities[5]", None, "entry"),
            (
                "vulnerabilities[6]",
                Some("CVE-2024-1086"),
                "knownRansomwareCampaignUse"
            ),
            ("vulnerabilities[8]", Some("CVE-2021-4034"), "cveID"),
        ]
    );
    assert!(matches!(&skipped[0].problem, Problem::Missing { .. }));
    assert_eq!(
        skipped[1].problem,
        Problem::Invalid {
            field: "dueDate".into(),
            why: "a date YYYY-MM-DD".into(),
            got: "\"2023-10-32\"".into(),
        }
    );
    assert!(skipped.iter().all(|s| s.file == "catalog.json"));
    assert_eq!(
        skipped[3].to_string(),
        "catalog.json: vulnerabilities[6] (CVE-2024-1086): knownRansomwareCampaignUse: Known or Unknown (got true)"
    );
}

#[test]
fn a_patch_gets_the_earliest_dates_of_its_listed_cves() {
    let (catalog, _) = fixture();
    let patch = cves(&[
        "CVE-2023-4911",
        "CVE-2021-44228",
        "CVE-2099-0001",
        "CVE-2021-4034",
    ]);
    assert_eq!(
        kev::listing(&patch, &catalog),
        Some(KevListing {
            added_at: at("2021-12-10T00:00:00Z"),
            due_at: at("2021-12-25T00:00:00Z"),
            cves: vec![
                "CVE-2021-4034".into(),
                "CVE-2021-44228".into(),
                "CVE-2023-4911".into()
            ],
            ransomware: true,
        })
    );
}

#[test]
fn the_due_date_is_the_earliest_even_from_another_cve_than_the_added_date() {
    let (catalog, _) = fixture();
    // CVE-2021-34527 was added later (2021-11-03) but is due earlier (2021-07-20).
    let listing =
        kev::listing(&cves(&["CVE-2021-44228", "CVE-2021-34527"]), &catalog).expect("listed");
    assert_eq!(listing.added_at, at("2021-11-03T00:00:00Z"));
    assert_eq!(listing.due_at, at("2021-07-21T00:00:00Z"));
}

#[test]
fn a_patch_with_one_listed_cve() {
    let (catalog, _) = fixture();
    assert_eq!(
        kev::listing(&cves(&["CVE-2023-4911"]), &catalog),
        Some(KevListing {
            added_at: at("2023-11-21T00:00:00Z"),
            due_at: at("2023-12-13T00:00:00Z"),
            cves: vec!["CVE-2023-4911".into()],
            ransomware: false,
        })
    );
}

#[test]
fn a_patch_with_no_listed_cve_has_no_listing() {
    let (catalog, _) = fixture();
    assert_eq!(
        kev::listing(&cves(&["CVE-2099-0001", "CVE-2023-4863"]), &catalog),
        None
    );
    assert_eq!(kev::listing(&[], &catalog), None);
}

#[test]
fn a_file_that_is_not_a_catalog_is_an_error() {
    for bytes in [
        &b"not json"[..],
        b"[]",
        b"{\"title\":\"x\"}",
        b"{\"vulnerabilities\":{}}",
        b"",
    ] {
        let result = kev::parse("x.json", bytes);
        assert!(
            matches!(&result, Err(FeedError::Format { file, .. }) if file == "x.json"),
            "{:?}: {result:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn an_empty_catalog_is_fine() {
    let (catalog, skipped) = kev::parse("x.json", b"{\"vulnerabilities\":[]}").expect("parses");
    assert_eq!(catalog, Catalog::default());
    assert_eq!(skipped, []);
}

#[test]
fn a_bad_header_field_is_reported_and_the_entries_kept() {
    let text = r#"{"catalogVersion": 7, "dateReleased": "last Monday", "vulnerabilities": [
        {"cveID": "CVE-2021-4034", "dateAdded": "2022-06-27", "dueDate": "2022-07-18"}]}"#;
    let (catalog, skipped) = kev::parse("x.json", text.as_bytes()).expect("parses");
    assert_eq!(catalog.version, None);
    assert_eq!(catalog.released, None);
    let at: Vec<&str> = skipped.iter().map(|s| s.at.as_str()).collect();
    assert_eq!(at, ["catalogVersion", "dateReleased"]);
    // Without knownRansomwareCampaignUse (catalogs before October 2022) and the names.
    let listing = &catalog.by_cve["CVE-2021-4034"];
    assert!(!listing.ransomware);
    assert_eq!(
        (
            listing.vendor.as_str(),
            listing.product.as_str(),
            listing.name.as_str()
        ),
        ("", "", "")
    );
}

#[test]
fn the_real_catalog() {
    let Some(bytes) = real("kev/known_exploited_vulnerabilities.json") else {
        return;
    };
    let (catalog, skipped) =
        kev::parse("known_exploited_vulnerabilities.json", &bytes).expect("parses");
    assert_eq!(skipped, []);
    assert_eq!(catalog.by_cve.len(), 1404);
    assert_eq!(catalog.version.as_deref(), Some("2025.08.25"));
    assert_eq!(catalog.released, Some(at("2025-08-25T17:04:19.9796Z")));
    assert_eq!(
        catalog.by_cve.values().filter(|l| l.ransomware).count(),
        293
    );
    assert_eq!(
        catalog.by_cve["CVE-2021-4034"],
        Listing {
            cve: "CVE-2021-4034".into(),
            added: date(2022, 6, 27),
            due: date(2022, 7, 18),
            ransomware: false,
            vendor: "Red Hat".into(),
            product: "Polkit".into(),
            name: "Red Hat Polkit Out-of-Bounds Read and Write Vulnerability".into(),
        }
    );
    assert_eq!(
        catalog.by_cve["CVE-2023-4911"],
        Listing {
            cve: "CVE-2023-4911".into(),
            added: date(2023, 11, 21),
            due: date(2023, 12, 12),
            ransomware: false,
            vendor: "GNU".into(),
            product: "GNU C Library".into(),
            name: "GNU C Library Buffer Overflow Vulnerability".into(),
        }
    );
    // 15 entries of the first release (2021-11-03) are due before the day they were added.
    let due_before_added = catalog.by_cve.values().filter(|l| l.due < l.added).count();
    assert_eq!(due_before_added, 15);
}

#[test]
fn the_real_catalog_lists_pwnkit_for_its_almalinux_advisory() {
    let Some(bytes) = real("kev/known_exploited_vulnerabilities.json") else {
        return;
    };
    let (catalog, _) = kev::parse("known_exploited_vulnerabilities.json", &bytes).expect("parses");
    // ALSA-2022:0267 (polkit) fixes CVE-2021-4034 alone.
    assert_eq!(
        kev::listing(&cves(&["CVE-2021-4034"]), &catalog),
        Some(KevListing {
            added_at: at("2022-06-27T00:00:00Z"),
            due_at: at("2022-07-19T00:00:00Z"),
            cves: vec!["CVE-2021-4034".into()],
            ransomware: false,
        })
    );
}
