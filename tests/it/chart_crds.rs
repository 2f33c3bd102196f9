//! The Helm chart ships the CRDs in `charts/ringmaster/crds/`, and they must be the
//! repository's `crds/` byte for byte: the same files, the same contents. `crds/` is what
//! the code generates (`tests/it/crds_in_sync.rs`), so together the two tests keep the
//! chart on the current API. Fix a failure by copying:
//! `cp crds/*.yaml charts/ringmaster/crds/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The names of the files directly in `dir` (directories would be a mistake too: listed).
fn file_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn chart_crds_are_the_repository_crds_byte_for_byte() {
    let repo = root().join("crds");
    let chart = root().join("charts/ringmaster/crds");
    let repo_files = file_names(&repo);
    let chart_files = file_names(&chart);

    let mut problems = Vec::new();
    for missing in repo_files.difference(&chart_files) {
        problems.push(format!(
            "charts/ringmaster/crds/{missing} is missing (it is in crds/)"
        ));
    }
    for extra in chart_files.difference(&repo_files) {
        problems.push(format!(
            "charts/ringmaster/crds/{extra} is not in crds/ (remove it)"
        ));
    }
    for name in repo_files.intersection(&chart_files) {
        let want = std::fs::read(repo.join(name)).expect("read crds/ file");
        let got = std::fs::read(chart.join(name)).expect("read chart CRD file");
        if want != got {
            problems.push(format!(
                "charts/ringmaster/crds/{name} differs from crds/{name}"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the chart's CRDs are not the repository's; run `cp crds/*.yaml charts/ringmaster/crds/`:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_chart_ships_every_generated_crd() {
    // Guards the test above against both directories being emptied together.
    let chart_files = file_names(&root().join("charts/ringmaster/crds"));
    let generated: BTreeSet<String> = ringmaster::crds::render_files()
        .expect("CRDs render")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(generated.len(), 9, "nine kinds: {generated:?}");
    assert_eq!(chart_files, generated);
}
