//! The GitOps preview (`simulate HEAD --baseline BASE`) on the bundled example: a change
//! that slows the pilot and broad rings to one device at a time is reported as lowering
//! compliance and trips the gate; an unchanged copy reports no change and exits 0.

use crate::common::{ringmaster, text};
use std::path::{Path, PathBuf};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/msp-tenant");

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A copy of the example (its feeds/ too) under a fresh directory, with `edit` applied to
/// the file named `file`.
fn copy(test: &str, file: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("ringmaster-preview-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(Path::new(EXAMPLE), &dir, file, &edit);
    dir
}

fn copy_dir(from: &Path, to: &Path, file: &str, edit: &dyn Fn(String) -> String) {
    std::fs::create_dir_all(to).expect("temp dir");
    for entry in std::fs::read_dir(from).expect("dir") {
        let p = entry.expect("entry").path();
        let name = p.file_name().expect("name").to_string_lossy().into_owned();
        if p.is_dir() {
            copy_dir(&p, &to.join(&name), file, edit);
        } else if name == file {
            let body = std::fs::read_to_string(&p).expect("read");
            std::fs::write(to.join(&name), edit(body)).expect("write");
        } else {
            std::fs::copy(&p, to.join(&name)).expect("copy");
        }
    }
}

/// The pilot and broad rings admit one device at a time.
fn one_at_a_time(rings: String) -> String {
    let out = rings
        .replacen("maxConcurrent: 25%", "maxConcurrent: 1", 1)
        .replacen("maxConcurrent: 20%", "maxConcurrent: 1", 1);
    assert_eq!(out.matches("maxConcurrent: 1\n").count(), 2, "{out}");
    out
}

#[test]
fn slower_rings_lower_compliance_and_trip_the_gate() {
    let head = copy("slow", "rings.yaml", one_at_a_time);
    let out = ringmaster(&[
        "simulate",
        path(&head),
        "--baseline",
        EXAMPLE,
        "--max-compliance-drop",
        "1",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("Preview of acme: head against baseline, played over 2023-11-12 18:00 .. 2023-12-12 18:00 (America/Chicago, 30 days, seed 1)"),
        "{stdout}"
    );
    let overall = stdout
        .lines()
        .find(|l| l.starts_with("~ overall compliance: "))
        .unwrap_or_else(|| panic!("overall compliance changes:\n{stdout}"));
    assert!(overall.contains('−'), "it drops: {overall}");
    assert!(stdout.contains("Gate failed: "), "{stdout}");
    assert!(stderr.contains("compliance drop: "), "{stderr}");
    assert!(
        stdout.contains("ring ring-2-broad compliance: "),
        "the broad ring's compliance is named:\n{stdout}"
    );
    assert!(
        stdout.contains("~ pairs overdue at the end: "),
        "more pairs breach their SLA:\n{stdout}"
    );

    // The same in JSON: every figure, the gate's hits, the overall figure lower.
    let json = ringmaster(&[
        "simulate",
        path(&head),
        "--baseline",
        EXAMPLE,
        "--max-compliance-drop",
        "1",
        "--format",
        "json",
    ]);
    assert_eq!(json.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let before = doc["compliance"]["before"].as_f64().expect("before");
    let after = doc["compliance"]["after"].as_f64().expect("after");
    assert!(after < before - 1.0, "{before} → {after}");
    assert!(
        doc["gate"]["exceeded"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["figure"] == "overall compliance"))
    );
    assert!(doc["overdue"]["after"].as_u64() > doc["overdue"]["before"].as_u64());
    assert!(
        doc["breachingDevices"]["after"].as_u64() >= doc["breachingDevices"]["before"].as_u64()
    );
    assert_eq!(doc["start"], "2023-11-13T00:00:00Z");
    assert_eq!(doc["timeZone"], "America/Chicago");

    // Without the gate the same preview exits 0.
    let ungated = ringmaster(&["simulate", path(&head), "--baseline", EXAMPLE]);
    assert_eq!(ungated.status.code(), Some(0), "{}", text(&ungated.stderr));
}

#[test]
fn an_unchanged_copy_reports_no_change_and_passes() {
    let head = copy("same", "", |s| s);
    let out = ringmaster(&[
        "simulate",
        path(&head),
        "--baseline",
        EXAMPLE,
        "--max-compliance-drop",
        "0",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("\nNo change: all "), "{stdout}");
    assert!(stdout.contains("Gate passed"), "{stdout}");
    assert!(!stdout.contains("note: "), "the same Fleet: {stdout}");
    assert!(
        !stdout.lines().any(|l| l.starts_with(['~', '+', '-'])),
        "{stdout}"
    );
}

#[test]
fn markdown_is_a_table_for_a_pull_request_comment() {
    let head = copy("md", "rings.yaml", one_at_a_time);
    let out = ringmaster(&[
        "simulate",
        path(&head),
        "--baseline",
        EXAMPLE,
        "--max-compliance-drop",
        "1",
        "--format",
        "markdown",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let md = text(&out.stdout);
    assert!(
        md.starts_with("### ringmaster preview: acme — :x: "),
        "{md}"
    );
    assert!(
        md.contains("| figure | baseline | head | change |\n| --- | ---: | ---: | ---: |\n"),
        "{md}"
    );
    assert!(md.contains("| overall compliance :red_circle: | "), "{md}");
    assert!(md.contains("**Gate** (`--max-compliance-drop 1`)"), "{md}");
    // Markdown is the preview's only.
    let plain = ringmaster(&["simulate", EXAMPLE, "--format", "markdown"]);
    assert_eq!(plain.status.code(), Some(2));
}

#[test]
fn the_preview_is_deterministic() {
    let head = copy("again", "rings.yaml", one_at_a_time);
    let args = [
        "simulate",
        path(&head),
        "--baseline",
        EXAMPLE,
        "--format",
        "json",
    ];
    let (a, b) = (ringmaster(&args), ringmaster(&args));
    assert!(a.status.success());
    assert_eq!(text(&a.stdout), text(&b.stdout));
}

#[test]
fn a_head_fleet_with_another_period_is_played_over_the_baseline_s() {
    let head = copy("period", "fleet.yaml", |s| {
        s.replacen("days: 30", "days: 10", 1)
    });
    let out = ringmaster(&["simulate", path(&head), "--baseline", EXAMPLE]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("note: the head's Fleet sets days 10, the baseline's 30: both sides are played over the baseline's period"),
        "{stdout}"
    );
    assert!(stdout.contains("No change: "), "{stdout}");
}

#[test]
fn an_unreadable_baseline_exits_2() {
    let head = copy("bad", "", |s| s);
    let base = copy("badbase", "rings.yaml", |s| {
        s.replacen("maxConcurrent: 5", "maxConcurrent: [5", 1)
    });
    let out = ringmaster(&["simulate", path(&head), "--baseline", path(&base)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("rings.yaml:"));
}
