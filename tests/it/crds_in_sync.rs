//! `crds/` must be exactly what the code generates, so a change to `src/api` that was
//! not followed by `cargo run -- crds` (or `UPDATE_CRDS=1 cargo test --test it
//! crds_in_sync`) fails here. The filter matters: `chart_crds` runs in the same binary,
//! in parallel, and could read the chart's copy while this test is rewriting it.

use std::path::Path;

#[test]
fn crds_directory_matches_the_generated_crds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let files = ringmaster::crds::render_files().expect("CRDs render");
    if std::env::var_os("UPDATE_CRDS").is_some() {
        // The chart carries the same files (tests/it/chart_crds.rs checks they are equal).
        let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/ringmaster/crds");
        for target in [&dir, &chart] {
            std::fs::create_dir_all(target).expect("create CRD directory");
            for (name, yaml) in &files {
                std::fs::write(target.join(name), yaml).expect("write CRD");
            }
        }
    }
    let mut expected: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    expected.sort();
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .expect("crds/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    assert_eq!(
        present, expected,
        "crds/ holds other files than the generated CRDs"
    );
    for (name, yaml) in files {
        let on_disk = std::fs::read_to_string(dir.join(&name)).expect("read CRD");
        assert!(
            on_disk == yaml,
            "crds/{name} differs from the generated CRD; run `UPDATE_CRDS=1 cargo test --test it crds_in_sync`"
        );
    }
}

#[test]
fn every_crd_is_structural_and_documented() {
    for crd in ringmaster::api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        assert_eq!(crd.spec.group, "patching.ringmaster.dev");
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["patching".to_string()][..]),
            "{name}"
        );
        assert!(
            crd.spec
                .names
                .short_names
                .as_ref()
                .is_some_and(|s| !s.is_empty()),
            "{name}"
        );
        let version = &crd.spec.versions[0];
        // People's lever objects are decisions, not things the operator moves: they have
        // no status (what they did shows on the rollouts, policies and rings).
        let lever = ["PatchApproval", "PatchFreeze"].contains(&crd.spec.names.kind.as_str());
        assert_eq!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            !lever,
            "{name}: a status subresource unless it is a lever"
        );
        assert!(
            version
                .additional_printer_columns
                .as_ref()
                .is_some_and(|c| c.len() >= 3),
            "{name}"
        );
        let schema = serde_json::to_value(
            version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref()),
        )
        .expect("schema serializes");
        check_structural(&schema, &name);
    }
}

/// The parts of the structural-schema rules an API server enforces that a derive can
/// break: every node has a type (or is int-or-string / preserve-unknown), no `$ref`,
/// and every property outside metadata carries a description.
fn check_structural(node: &serde_json::Value, path: &str) {
    let obj = node
        .as_object()
        .unwrap_or_else(|| panic!("{path}: schema node is not an object"));
    assert!(
        !obj.contains_key("$ref"),
        "{path}: $ref is not allowed in a structural schema"
    );
    let special = obj.contains_key("x-kubernetes-int-or-string")
        || obj.contains_key("x-kubernetes-preserve-unknown-fields");
    assert!(obj.contains_key("type") || special, "{path}: no type");
    if let Some(props) = obj.get("properties").and_then(|p| p.as_object()) {
        for (key, child) in props {
            let child_path = format!("{path}.{key}");
            if key != "metadata"
                && key != "apiVersion"
                && key != "kind"
                && !path.contains("Selector")
                && !path.contains("selector")
                && !path.contains("conditions")
            {
                assert!(
                    child.get("description").is_some(),
                    "{child_path}: no description (kubectl explain shows nothing)"
                );
            }
            check_structural(child, &child_path);
        }
    }
    if let Some(items) = obj.get("items") {
        check_structural(items, &format!("{path}[]"));
    }
    if let Some(any) = obj.get("anyOf").and_then(|a| a.as_array()) {
        for branch in any {
            assert!(
                branch.get("properties").is_none(),
                "{path}: anyOf branch declares properties"
            );
        }
    }
}
