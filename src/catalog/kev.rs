//! CISA's Known Exploited Vulnerabilities catalog: a listing per CVE, added to every
//! Patch that fixes a listed CVE.

use std::collections::BTreeMap;

use crate::api::{CveRef, KevListing};

use super::{FeedError, Skipped};

/// One CVE's listing.
#[derive(Clone, Debug, PartialEq)]
pub struct Listing {
    /// The CVE.
    pub cve: String,
    /// The day CISA added it.
    pub added: jiff::civil::Date,
    /// The day remediation is due.
    pub due: jiff::civil::Date,
    /// Known to be used in ransomware campaigns.
    pub ransomware: bool,
    /// The vendor or project.
    pub vendor: String,
    /// The product.
    pub product: String,
    /// The vulnerability's name.
    pub name: String,
}

/// The catalog.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catalog {
    /// `catalogVersion`.
    pub version: Option<String>,
    /// `dateReleased`.
    pub released: Option<jiff::Timestamp>,
    /// The listings by CVE.
    pub by_cve: BTreeMap<String, Listing>,
}

/// Parses the catalog.
pub fn parse(file: &str, bytes: &[u8]) -> Result<(Catalog, Vec<Skipped>), FeedError> {
    let _ = (file, bytes);
    todo!("kev::parse")
}

/// The KEV listing of a Patch that fixes `cves`: None when none is listed.
pub fn listing(cves: &[CveRef], catalog: &Catalog) -> Option<KevListing> {
    let _ = (cves, catalog);
    todo!("kev::listing")
}
