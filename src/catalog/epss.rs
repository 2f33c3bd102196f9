//! FIRST's EPSS scores (CSV, plain or gzipped): a score and percentile per CVE, added to
//! the Patches that fix them.

use std::collections::HashMap;

use crate::api::{CveRef, EpssScore};

use super::{FeedError, Skipped};

/// A day's scores.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scores {
    /// The model version from the header.
    pub model: Option<String>,
    /// The score date from the header.
    pub scored_at: Option<jiff::Timestamp>,
    /// Score and percentile per CVE.
    pub by_cve: HashMap<String, (f64, f64)>,
}

/// Parses a day's scores.
pub fn parse(file: &str, bytes: &[u8]) -> Result<(Scores, Vec<Skipped>), FeedError> {
    let _ = (file, bytes);
    todo!("epss::parse")
}

/// The highest score among `cves`, and each CVE's own score.
pub fn score(cves: &[CveRef], scores: &Scores) -> (Option<EpssScore>, Vec<(String, f64)>) {
    let _ = (cves, scores);
    todo!("epss::score")
}
