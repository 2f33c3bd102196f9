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
    /// A list keyed by `id`, so that feeds add their own fields to an entry
    /// (server-side apply merges them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
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
    /// For Linux advisories: per distribution release, the packages it fixes and the
    /// first fixed version, so that an agent decides by version comparison whether the
    /// patch applies to its device (installed and older than `fixed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<PackageFix>,
    /// CISA's Known Exploited Vulnerabilities listing of what it fixes, when any of its
    /// CVEs is listed (set by `ringmaster catalog import kev`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kev: Option<KevListing>,
    /// The highest FIRST EPSS score among its CVEs (set by `ringmaster catalog import
    /// epss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epss: Option<EpssScore>,
}

/// A package an advisory fixes in one distribution release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageFix {
    /// The OSV ecosystem with its release, as the feed spells it: `Debian:12`,
    /// `Ubuntu:22.04:LTS`, `AlmaLinux:9`, `Rocky Linux:9`.
    #[schemars(length(min = 1))]
    pub ecosystem: String,
    /// The package's name, as the feed gives it (see `kind`).
    #[schemars(length(min = 1))]
    pub name: String,
    /// Whether `name` is a source package (Debian, Ubuntu: every binary package built
    /// from it is affected) or a binary package (the RPM distributions).
    pub kind: PackageKind,
    /// The first fixed version, in the distribution's own version syntax (dpkg or RPM,
    /// with an epoch when it has one): an installed version older than this is affected.
    #[schemars(length(min = 1))]
    pub fixed: String,
    /// The binary packages built from a source package, when the feed lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binaries: Vec<String>,
}

/// What a package name in `PackageFix` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PackageKind {
    /// A source package; the binary packages built from it are affected.
    Source,
    /// A binary package, as installed.
    Binary,
}

/// A patch's listing in CISA's Known Exploited Vulnerabilities catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KevListing {
    /// When the first of its listed CVEs was added to the catalog (00:00 UTC that day).
    /// A policy that caps deadlines at the due date starts the clock here.
    #[schemars(with = "Time")]
    pub added_at: jiff::Timestamp,
    /// The earliest remediation due date among its listed CVEs: the end of that day, UTC.
    #[schemars(with = "Time")]
    pub due_at: jiff::Timestamp,
    /// Its CVEs that the catalog lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cves: Vec<String>,
    /// One of them is known to be used in ransomware campaigns.
    #[serde(default)]
    pub ransomware: bool,
}

/// An EPSS score: the probability of exploitation activity in the next 30 days.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EpssScore {
    /// The score, from 0 to 1.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub score: f64,
    /// Its percentile among all scored CVEs, from 0 to 1.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub percentile: f64,
    /// The CVE that has this score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cve: Option<String>,
    /// The day the scores were computed, from the feed's header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Time>")]
    pub scored_at: Option<jiff::Timestamp>,
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
    /// The CVSS vector the score was computed from, when the feed gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_vector: Option<String>,
    /// Its EPSS score (probability of exploitation in the next 30 days, 0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub epss: Option<f64>,
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
