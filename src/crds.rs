//! Rendering the CRDs as YAML, for `ringmaster crds`, `crds/` and the Helm chart.

use crate::api;

/// The file name under `crds/` for a CRD, e.g. `patchpolicies.patching.ringmaster.dev.yaml`.
pub fn file_name(crd_name: &str) -> String {
    format!("{crd_name}.yaml")
}

/// One CRD as a YAML document (without the leading `---`).
pub fn render(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(crd)
}

/// Every CRD, each (named file, YAML) pair in `api::crds()` order.
pub fn render_files() -> Result<Vec<(String, String)>, serde_yaml::Error> {
    api::crds()
        .iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            Ok((file_name(&name), render(crd)?))
        })
        .collect()
}

/// Every CRD as one multi-document YAML stream.
pub fn render_all() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for (_, yaml) in render_files()? {
        out.push_str("---\n");
        out.push_str(&yaml);
    }
    Ok(out)
}
