//! The epss importer on the fixtures in tests/fixtures/catalog/epss/ and, when ../shared/feeds is there, on the real feed files.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use flate2::Compression;
use flate2::write::GzEncoder;
use ringmaster::api::EpssScore;
use ringmaster::catalog::epss::{self, Scores};
use ringmaster::catalog::{FeedError, Problem, Skipped};

/// The fixture file's bytes.
fn fixture_bytes() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/catalog/epss/scores.csv"
    );
    std::fs::read(path).expect("fixture")
}

/// The fixture, parsed.
fn fixture() -> (Scores, Vec<Skipped>) {
    epss::parse("scores.csv", &fixture_bytes()).expect("parses")
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

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("compresses");
    encoder.finish().expect("compresses")
}

use crate::common::{cve_refs as cves, ts as at};

#[test]
fn the_comment_line_gives_the_model_and_the_day() {
    let (scores, _) = fixture();
    assert_eq!(scores.model.as_deref(), Some("v2025.03.14"));
    assert_eq!(scores.scored_at, Some(at("2026-01-30T12:55:00Z")));
}

#[test]
fn good_rows_are_kept_with_their_exact_values() {
    let (scores, _) = fixture();
    let mut got: Vec<(&str, f64, f64)> = scores
        .by_cve
        .iter()
        .map(|(cve, &(score, percentile))| (cve.as_str(), score, percentile))
        .collect();
    got.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        got,
        [
            ("CVE-1999-0001", 0.01151, 0.78086),
            ("CVE-1999-1170", 2e-05, 0.00039),
            ("CVE-2019-14960", 1e-05, 8e-05),
            ("CVE-2021-4034", 0.87848, 0.99454),
            ("CVE-2021-44228", 0.94358, 0.99959),
            ("CVE-2022-0492", 0.06524, 0.90871),
            ("CVE-2023-4911", 0.73037, 0.98742),
        ]
    );
}

#[test]
fn bad_rows_are_reported_by_line() {
    let (_, skipped) = fixture();
    let got: Vec<(&str, Option<&str>, &str)> = skipped
        .iter()
        .map(|s| {
            let Problem::Invalid { field, .. } = &s.problem else {
                panic!("unexpected problem {:?}", s.problem);
            };
            (s.at.as_str(), s.id.as_deref(), field.as_str())
        })
        .collect();
    assert_eq!(
        got,
        [
            ("line 8", Some("CVE-2023-44487"), "row"),
            ("line 9", Some("CVE-2022-0847"), "row"),
            ("line 10", None, "cve"),
            ("line 11", Some("CVE-2024-1086"), "epss"),
            ("line 12", Some("CVE-2023-4863"), "percentile"),
            ("line 14", Some("CVE-2021-4034"), "cve"),
        ]
    );
    assert_eq!(
        skipped[0].problem,
        Problem::Invalid {
            field: "row".into(),
            why: "3 columns".into(),
            got: "CVE-2023-44487,0.94394".into(),
        }
    );
    assert_eq!(
        skipped[3].to_string(),
        "scores.csv: line 11 (CVE-2024-1086): epss: a number from 0 to 1 (got high)"
    );
    assert!(skipped.iter().all(|s| s.file == "scores.csv"));
}

#[test]
fn a_gzipped_copy_gives_the_same() {
    let plain = fixture();
    let gzipped = epss::parse("scores.csv", &gzip(&fixture_bytes())).expect("parses");
    assert_eq!(gzipped, plain);
}

#[test]
fn a_file_of_several_gzip_members_is_read_whole() {
    let bytes = fixture_bytes();
    let (head, tail) = bytes.split_at(200);
    let mut members = gzip(head);
    members.extend(gzip(tail));
    assert_eq!(
        epss::parse("scores.csv", &members).expect("parses"),
        fixture()
    );
}

#[test]
fn a_broken_gzip_stream_is_an_error() {
    let gz = gzip(&fixture_bytes());
    let truncated = &gz[..gz.len() - 10];
    let mut corrupted = gz.clone();
    let middle = corrupted.len() / 2;
    corrupted[middle] ^= 0xff;
    corrupted[middle + 1] ^= 0xff;
    for (what, bytes) in [
        ("truncated", truncated),
        ("corrupted", &corrupted[..]),
        ("magic only", &gz[..2]),
    ] {
        let result = epss::parse("scores.csv.gz", bytes);
        assert!(
            matches!(result, Err(FeedError::Format { .. })),
            "{what}: {result:?}"
        );
    }
}

#[test]
fn a_file_without_the_header_is_an_error() {
    let cases: [&[u8]; 6] = [
        b"",
        b"#model_version:v2025.03.14,score_date:2026-01-30T12:55:00Z\n",
        b"#model_version:v2025.03.14\nCVE-2021-4034,0.87848,0.99454\n",
        b"cve,epss\nCVE-2021-4034,0.87848\n",
        b"cve,score,percentile\n",
        b"\x00\x01\x02garbage",
    ];
    for bytes in cases {
        let result = epss::parse("x.csv", bytes);
        assert!(
            matches!(&result, Err(FeedError::Format { file, .. }) if file == "x.csv"),
            "{:?}: {result:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn a_patch_gets_the_highest_score_of_its_cves() {
    let (scores, _) = fixture();
    let patch = cves(&[
        "CVE-2023-4911",
        "CVE-2099-0001",
        "CVE-2021-44228",
        "CVE-2021-4034",
    ]);
    let (best, each) = epss::score(&patch, &scores);
    assert_eq!(
        best,
        Some(EpssScore {
            score: 0.94358,
            percentile: 0.99959,
            cve: Some("CVE-2021-44228".into()),
            scored_at: Some(at("2026-01-30T12:55:00Z")),
        })
    );
    assert_eq!(
        each,
        [
            ("CVE-2023-4911".to_string(), 0.73037),
            ("CVE-2021-44228".to_string(), 0.94358),
            ("CVE-2021-4034".to_string(), 0.87848),
        ]
    );
}

#[test]
fn a_patch_with_no_scored_cve_has_no_score() {
    let (scores, _) = fixture();
    // CVE-2024-1086's row is bad, so it has no score.
    assert_eq!(
        epss::score(&cves(&["CVE-2099-0001", "CVE-2024-1086"]), &scores),
        (None, vec![])
    );
    assert_eq!(epss::score(&[], &scores), (None, vec![]));
}

#[test]
fn the_real_day() {
    let Some(bytes) = real("epss/epss_scores.csv.gz") else {
        return;
    };
    let (scores, skipped) = epss::parse("epss_scores.csv.gz", &bytes).expect("parses");
    assert_eq!(skipped, []);
    assert_eq!(scores.by_cve.len(), 313_089);
    assert_eq!(scores.model.as_deref(), Some("v2025.03.14"));
    assert_eq!(scores.scored_at, Some(at("2026-01-30T12:55:00Z")));
    // The highest score of the day, and one of the 54 lowest, in scientific notation.
    assert_eq!(scores.by_cve["CVE-2024-27198"], (0.94579, 1.0));
    assert_eq!(scores.by_cve["CVE-2019-14960"], (1e-05, 8e-05));

    let Some(slice) = real("epss/epss_scores-2026-01-30.slice.csv") else {
        return;
    };
    let (part, skipped) = epss::parse("epss_scores-2026-01-30.slice.csv", &slice).expect("parses");
    assert_eq!(skipped, []);
    assert_eq!(part.by_cve.len(), 264);
    assert_eq!(
        (part.model.as_deref(), part.scored_at),
        (scores.model.as_deref(), scores.scored_at)
    );
    assert_eq!(part.by_cve["CVE-2021-4034"], (0.87848, 0.99454));
    for (cve, score) in &part.by_cve {
        assert_eq!(scores.by_cve.get(cve), Some(score), "{cve}");
    }
}

#[test]
fn the_real_slice_gives_the_exact_scores() {
    let Some(bytes) = real("epss/epss_scores-2026-01-30.slice.csv") else {
        return;
    };
    let (scores, skipped) =
        epss::parse("epss_scores-2026-01-30.slice.csv", &bytes).expect("parses");
    assert_eq!(skipped, []);
    assert_eq!(scores.by_cve.len(), 264);
    assert_eq!(scores.by_cve["CVE-2021-4034"], (0.87848, 0.99454));
    assert_eq!(scores.by_cve["CVE-1999-1170"], (2e-05, 0.00039));
    // Looney Tunables and PwnKit together: PwnKit's is the higher.
    let (best, each) = epss::score(&cves(&["CVE-2023-4911", "CVE-2021-4034"]), &scores);
    let best = best.expect("scored");
    assert_eq!(best.cve.as_deref(), Some("CVE-2021-4034"));
    assert_eq!((best.score, best.percentile), (0.87848, 0.99454));
    assert_eq!(best.scored_at, Some(at("2026-01-30T12:55:00Z")));
    assert_eq!(each.len(), 2);
}

#[test]
fn a_later_real_day_has_a_later_model() {
    let Some(bytes) = real("epss/epss_scores-current.2026-09-29.head.csv") else {
        return;
    };
    let (scores, skipped) = epss::parse("epss_scores-current.csv", &bytes).expect("parses");
    assert_eq!(skipped, []);
    assert_eq!(scores.by_cve.len(), 49);
    assert_eq!(scores.model.as_deref(), Some("v2026.06.15"));
    assert_eq!(scores.scored_at, Some(at("2026-09-29T12:00:22Z")));
    assert_eq!(scores.by_cve["CVE-1999-0001"], (0.03351, 0.88255));
}

/// How long the whole day takes; run with `--release --ignored` to see it.
#[test]
#[ignore = "a timing, not a test: run it in release"]
fn time_the_real_day() {
    let Some(bytes) = real("epss/epss_scores.csv.gz") else {
        return;
    };
    for _ in 0..3 {
        let start = Instant::now();
        let (scores, _) = epss::parse("epss_scores.csv.gz", &bytes).expect("parses");
        eprintln!("{} rows in {:?}", scores.by_cve.len(), start.elapsed());
    }
}
