//! `Patch`: one entry of the shared, cluster-scoped patch catalog.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Classification, Severity};

/// One update in the catalog every tenant shares: its vendor id, what it fixes and how
/// urgent it is.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "patching.ringmaster.dev",
    version = "v1alpha1",
    kind = "Patch",
    status = "PatchStatus",
    shortname = "patch",
    category = "patching",
    doc = "One update in the shared patch catalog.",
    printcolumn(name = "Id", type_ = "string", json_path = ".spec.id"),
    printcolumn(name = "Vendor", type_ = "string", json_path = ".spec.vendor"),
    printcolumn(name = "Class", type_ = "string", json_path = ".spec.classification"),
    printcolumn(name = "CVSS", type_ = "number", json_path = ".spec.cvssScore"),
    printcolumn(
        name = "Exploited",
        type_ = "boolean",
        json_path = ".spec.knownExploited"
    ),
    printcolumn(name = "Released", type_ = "date", json_path = ".spec.releasedAt"),
    printcolumn(
        name = "Title",
        type_ = "string",
        json_path = ".spec.title",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PatchSpec {
    /// The vendor's id: KB5036893, DSA-5600-1, RHSA-2026:1234, …
    #[schemars(length(min = 1, max = 128))]
    pub id: String,
    /// A human title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Who publishes it (Microsoft, Debian, Red Hat, …).
    #[schemars(length(min = 1))]
    pub vendor: String,
    /// The product it updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// The kind of update.
    pub classification: Classification,
    /// The highest CVSS base score of what it fixes, if the feed gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 10.0))]
    pub cvss_score: Option<f64>,
    /// The vendor's own rating, used when no CVSS score is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_severity: Option<Severity>,
    /// The vulnerabilities it fixes; a score given here counts towards the severity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cves: Vec<CveRef>,
    /// Known to be exploited in the wild (e.g. on CISA's KEV list).
    #[serde(default)]
    pub known_exploited: bool,
    /// When the vendor released it; SLA deadlines count from here.
    #[schemars(with = "Time")]
    pub released_at: jiff::Timestamp,
    /// Installing it needs a reboot.
    #[serde(default)]
    pub reboot_required: bool,
    /// It can be uninstalled (a rollback is possible).
    #[serde(default)]
    pub uninstallable: bool,
    /// Ids of patches this one replaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supersedes: Vec<String>,
}

/// A vulnerability a patch fixes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CveRef {
    /// The CVE id, e.g. CVE-2026-21345.
    #[schemars(regex(pattern = r"^CVE-[0-9]{4}-[0-9]{4,}$"))]
    pub id: String,
    /// Its CVSS base score, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 10.0))]
    pub cvss_score: Option<f64>,
}

/// What the operator recorded about a patch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchStatus {
    /// The first release time ever seen for this id: a re-release keeps it, so SLA
    /// deadlines do not move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub first_released_at: Option<jiff::Timestamp>,
    /// The severity the operator derived (CVSS, else vendor rating, else Low).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}
