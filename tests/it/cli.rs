//! The command line as a user meets it: `simulate`, `validate` and `crds`, on the
//! bundled example and on broken copies of it.

use crate::common::{ringmaster, text};
use std::path::{Path, PathBuf};
use std::process::Command;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/msp-tenant");

/// A copy of the example in a fresh directory, with `edit` applied to one file.
fn broken_example(test: &str, file: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringmaster-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    for entry in std::fs::read_dir(EXAMPLE).expect("example dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            // The feed files the Fleet imports (feeds/), copied as they are.
            let sub = dir.join(path.file_name().expect("name"));
            std::fs::create_dir_all(&sub).expect("temp dir");
            for f in std::fs::read_dir(&path).expect("dir") {
                let f = f.expect("entry").path();
                std::fs::copy(&f, sub.join(f.file_name().expect("name"))).expect("copy");
            }
            continue;
        }
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let body = std::fs::read_to_string(&path).expect("read");
        let body = if name == file { edit(body) } else { body };
        std::fs::write(dir.join(&name), body).expect("write");
    }
    dir
}

/// `s` with the last occurrence of `from` replaced by `to`.
fn replace_last(s: &str, from: &str, to: &str) -> String {
    match s.rfind(from) {
        Some(i) => format!("{}{to}{}", &s[..i], &s[i + from.len()..]),
        None => s.to_string(),
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn simulate_on_the_example_prints_the_timeline_and_report() {
    let out = ringmaster(&["simulate", EXAMPLE]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("ringmaster simulate: tenant acme with 294 devices"),
        "{stdout}"
    );
    insta::assert_snapshot!("example_timeline_and_report", stdout);
    assert!(
        text(&out.stderr).contains("warning: "),
        "the example's invalid exception is pointed out"
    );
}

#[test]
fn simulate_json_is_the_same_run_in_machine_form() {
    let out = ringmaster(&["simulate", EXAMPLE, "--format", "json", "--days", "10"]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(doc["report"]["devices"], 294);
    assert_eq!(doc["report"]["end"], "2023-11-23T00:00:00Z");
    assert!(
        doc["timeline"]
            .as_array()
            .is_some_and(|t| t.iter().any(|e| e["reason"] == "RingHalted"))
    );
}

#[test]
fn malformed_yaml_names_the_file_and_line_and_nothing_is_simulated() {
    let dir = broken_example("yaml", "rings.yaml", |s| {
        s.replacen("maxConcurrent: 5", "maxConcurrent: [5", 1)
    });
    let out = ringmaster(&["simulate", path(&dir)]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("rings.yaml:"), "{err}");
    assert!(err.contains("invalid YAML"), "{err}");
    assert!(err.contains("nothing was simulated"), "{err}");
    assert!(out.stdout.is_empty(), "no timeline on half-read input");
    let v = ringmaster(&["validate", path(&dir)]);
    assert_eq!(v.status.code(), Some(2), "unreadable input");
}

#[test]
fn an_unknown_kind_is_refused_by_name() {
    let dir = broken_example("kind", "rings.yaml", |s| {
        s.replacen("kind: DeploymentRing", "kind: DeploymentRng", 1)
    });
    let out = ringmaster(&["validate", path(&dir)]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("rings.yaml:2: DeploymentRng acme/ring-0-it: kind: unknown kind patching.ringmaster.dev/v1alpha1 DeploymentRng (did you mean DeploymentRing?)"),
        "{stdout}"
    );
    let sim = ringmaster(&["simulate", path(&dir)]);
    assert_eq!(sim.status.code(), Some(2));
    assert!(sim.stdout.is_empty());
}

#[test]
fn schema_and_cel_violations_name_file_object_and_field() {
    // A schema violation in the first policy; CEL violations in the second (an API server
    // runs CEL only on documents that pass their schema, and so does validate).
    let dir = broken_example("schema", "policies.yaml", |s| {
        let s = s
            .replacen(
                "action: Approve, delay: 3d}",
                "action: Approve, delay: 3 days}",
                1,
            )
            .replacen(
                "action: Approve, delay: 2d}",
                "action: Approve, delay: 45d}",
                1,
            );
        replace_last(
            &s,
            "until: \"2023-11-27T06:00:00Z\"",
            "until: \"2023-11-20T06:00:00Z\"",
        )
    });
    let out = ringmaster(&["validate", path(&dir)]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "{}/policies.yaml:2: PatchPolicy acme/workstations: spec.approval.rules[2].delay:",
            dir.display()
        ))),
        "pattern violation: {stdout}"
    );
    assert!(
        lines.iter().any(|l| l
            .contains("policies.yaml:38: PatchPolicy acme/servers: spec.freezes[0]")
            && l.contains("until must be after from")),
        "CEL rule: {stdout}"
    );
    assert!(
        lines.iter().any(
            |l| l.contains("PatchPolicy acme/servers: spec.approval.rules[1]")
                && l.contains("delay may be at most 30d")
        ),
        "CEL rule: {stdout}"
    );
    let sim = ringmaster(&["simulate", path(&dir)]);
    assert_eq!(sim.status.code(), Some(2));
    assert!(text(&sim.stderr).contains("nothing was simulated"));
}

#[test]
fn a_dangling_ring_is_a_problem_for_validate_and_a_warning_for_simulate() {
    let dir = broken_example("dangling", "policies.yaml", |s| {
        s.replacen(
            "rings: [ring-0-it, ring-1-pilot, ring-2-broad]",
            "rings: [ring-0-it, ring-1-pilot, ring-2-brod]",
            1,
        )
    });
    let out = ringmaster(&["validate", path(&dir)]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "PatchPolicy acme/workstations: spec.rings[2]: DeploymentRing \"ring-2-brod\" not found"
        ),
        "{stdout}"
    );
    let sim = ringmaster(&["simulate", path(&dir), "--days", "3"]);
    assert!(sim.status.success());
    assert!(text(&sim.stderr).contains("warning: ") && text(&sim.stderr).contains("ring-2-brod"));
    let stdout = text(&sim.stdout);
    assert!(
        !stdout.contains("prl/workstations.kb5032190         admitted"),
        "a policy with a missing ring admits nothing"
    );
}

#[test]
fn validate_accepts_the_example_but_for_its_deliberately_invalid_exception() {
    let out = ringmaster(&["validate", EXAMPLE]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("PatchException acme/lab-server-forever: spec.expiresAt: runs 230d"),
        "{stdout}"
    );
}

#[test]
fn validate_on_a_missing_path_is_unreadable_input() {
    let out = ringmaster(&["validate", "/nonexistent/ringmaster"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/ringmaster"));
}

#[test]
fn crds_prints_all_nine_definitions() {
    let out = ringmaster(&["crds"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("kind: CustomResourceDefinition").count(), 9);
}

const CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/catalog");

#[test]
fn simulate_imports_feed_files_into_the_example_catalog_first() {
    let kev = format!("{CATALOG}/kev/november-2023.json");
    let osv = format!("{CATALOG}/osv");
    let out = ringmaster(&["simulate", EXAMPLE, "--days", "3", "--catalog", &kev, &osv]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // KB5032190, KB5032189 and KB5032198 fix the listed CVEs; the OSV fixtures' four
    // advisories are new (their bad-records file's bad entries are skipped and said).
    assert!(
        stderr.contains("catalog kev: 0 created, 3 updated, 0 skipped"),
        "{stderr}"
    );
    assert!(
        stderr.contains("catalog osv: 6 created, 0 updated"),
        "{stderr}"
    );
    assert!(stderr.contains("skipped: "), "{stderr}");
}

#[test]
fn simulate_refuses_a_file_that_is_no_feed() {
    let readme = format!("{CATALOG}/kev/README.md");
    let out = ringmaster(&["simulate", EXAMPLE, "--catalog", &readme]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("README.md: not a feed"), "{stderr}");
    assert!(stderr.contains("nothing was simulated"), "{stderr}");
}

#[test]
fn a_catalog_import_without_a_cluster_imports_nothing_and_exits_2() {
    let kev = format!("{CATALOG}/kev/november-2023.json");
    let out = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(["catalog", "import", "kev", &kev])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run ringmaster");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("nothing was imported"));
}

#[test]
fn a_catalog_import_of_an_unreadable_file_names_it() {
    let out = ringmaster(&["catalog", "import", "osv", "/nonexistent/ALSA.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/nonexistent/ALSA.json"),
        "{}",
        text(&out.stderr)
    );
}
