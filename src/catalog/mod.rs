//! Catalog feeds: the vendors' own data turned into `Patch` objects.
//!
//! Each feed has a parser of its own, pure (bytes in, records out, no I/O):
//!
//! - [`msrc`]: Microsoft's monthly security update document (CVRF, JSON or XML): one
//!   Patch per KB.
//! - [`osv`]: OSV records of Linux distributions: one Patch per advisory, with the
//!   packages and fixed versions per release.
//! - [`kev`]: CISA's Known Exploited Vulnerabilities catalog: listings per CVE, added to
//!   the Patches that fix them.
//! - [`epss`]: FIRST's EPSS scores per CVE, added to the Patches that fix them.
//!
//! A parser never stops at a bad record: it skips it and says where it was, what its id
//! is and what is wrong ([`Skipped`]); only a file that cannot be read at all is an error
//! ([`FeedError`]).

pub mod epss;
pub mod import;
pub mod kev;
pub mod msrc;
pub mod offline;
pub mod osv;
pub mod plan;

use std::fmt;

/// One of the feeds `ringmaster catalog import` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Microsoft's monthly security update document (CVRF).
    Msrc,
    /// OSV records of Linux distributions.
    Osv,
    /// CISA's Known Exploited Vulnerabilities catalog.
    Kev,
    /// FIRST's Exploit Prediction Scoring System scores.
    Epss,
}

impl Source {
    /// Every source, in the order an import of several applies them.
    pub const ALL: [Source; 4] = [Source::Msrc, Source::Osv, Source::Kev, Source::Epss];

    /// The source's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Msrc => "msrc",
            Source::Osv => "osv",
            Source::Kev => "kev",
            Source::Epss => "epss",
        }
    }

    /// Where the publisher serves the feed, for an import given no file or URL. MSRC
    /// publishes one document a month, on its Patch Tuesday, and revises it for weeks:
    /// the documents of the month before `now` (UTC) and of its month (which answers 404
    /// until it is published).
    pub fn default_urls(self, now: jiff::Timestamp) -> Vec<String> {
        match self {
            Source::Msrc => {
                let date = now.to_zoned(jiff::tz::TimeZone::UTC).date();
                let previous = date.first_of_month().yesterday().unwrap_or(date);
                [previous, date]
                    .iter()
                    .map(|d| {
                        let month = d.strftime("%Y-%b");
                        format!("https://api.msrc.microsoft.com/cvrf/v3.0/cvrf/{month}")
                    })
                    .collect()
            }
            Source::Osv => ["Debian", "Ubuntu", "AlmaLinux", "Rocky%20Linux"]
                .iter()
                .map(|e| format!("https://osv-vulnerabilities.storage.googleapis.com/{e}/all.zip"))
                .collect(),
            Source::Kev => vec![
                "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json"
                    .into(),
            ],
            Source::Epss => {
                vec!["https://epss.empiricalsecurity.com/epss_scores-current.csv.gz".into()]
            }
        }
    }

    /// The server-side apply field manager of the source: each feed owns only the
    /// fields it provides.
    pub fn field_manager(self) -> &'static str {
        match self {
            Source::Msrc => "ringmaster-catalog-msrc",
            Source::Osv => "ringmaster-catalog-osv",
            Source::Kev => "ringmaster-catalog-kev",
            Source::Epss => "ringmaster-catalog-epss",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with one record of a feed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Problem {
    /// A field the record must have is missing or empty.
    #[error("missing {field}")]
    Missing {
        /// The field, as the feed names it.
        field: String,
    },
    /// A field has a value of the wrong type or form.
    #[error("{field}: {why} (got {got})")]
    Invalid {
        /// The field, as the feed names it.
        field: String,
        /// What was expected.
        why: String,
        /// What the record had (shortened).
        got: String,
    },
    /// A CVSS vector that does not parse.
    #[error("CVSS vector {vector:?}: {why}")]
    BadVector {
        /// The vector.
        vector: String,
        /// The parser's reason.
        why: String,
    },
    /// An ecosystem that ringmaster does not import (only Linux distributions are).
    #[error("ecosystem {0:?} is not one ringmaster imports")]
    UnknownEcosystem(String),
    /// The record is well formed but yields nothing to import (e.g. an advisory none
    /// of whose packages is in an imported ecosystem).
    #[error("nothing to import: {0}")]
    Empty(String),
    /// The record is not an advisory at all (a distribution's per-CVE record, a
    /// withdrawn one): left out, and nothing is wrong with the feed. Imports count these
    /// apart from the skipped records, and they do not change the exit code.
    #[error("not an advisory: {0}")]
    NotAnAdvisory(String),
}

impl Problem {
    /// Whether the feed is at fault: everything but a record that is not an advisory.
    pub fn is_fault(&self) -> bool {
        !matches!(self, Problem::NotAnAdvisory(_))
    }
}

/// A record a parser skipped (or the part of one it left out, such as a broken CVSS
/// vector of a record that is kept), and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    /// The file (or URL, or `archive.zip:member`) it came from.
    pub file: String,
    /// Where in the file: `record 3`, `line 17`, `Vulnerability 12`.
    pub at: String,
    /// Its id, when it has one that could be read.
    pub id: Option<String>,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.at)?;
        if let Some(id) = &self.id {
            write!(f, " ({id})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// A feed file that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The file could not be opened or read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The file is not in the feed's format (not JSON, not CVRF, not a CSV with the
    /// expected columns, a broken archive, …).
    #[error("{file}: not a {format} file: {why}")]
    Format {
        /// The file.
        file: String,
        /// The format expected.
        format: &'static str,
        /// Why not.
        why: String,
    },
}

/// What parsing one feed file gave: the records, and those skipped.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed<T> {
    /// The records, in the file's order.
    pub records: Vec<T>,
    /// The records that were skipped, in the file's order.
    pub skipped: Vec<Skipped>,
}

impl<T> Default for Parsed<T> {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            skipped: Vec::new(),
        }
    }
}

impl<T> Parsed<T> {
    /// Appends another file's results.
    pub fn extend(&mut self, other: Parsed<T>) {
        self.records.extend(other.records);
        self.skipped.extend(other.skipped);
    }
}

/// The object name of the Patch for a vendor id: lowercase, with every character a
/// Kubernetes name cannot hold turned into `-` (`ALSA-2023:5453` → `alsa-2023-5453`,
/// `KB5032189` → `kb5032189`).
pub fn object_name(id: &str) -> String {
    let mut name: String = id
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '.' | '-') => c,
            _ => '-',
        })
        .collect();
    while name.ends_with(['-', '.']) {
        name.pop();
    }
    let trimmed = name.trim_start_matches(['-', '.']).len();
    name.drain(..name.len() - trimmed);
    name.truncate(253);
    name
}

/// Whether `id` is a CVE id: `CVE-`, a four-digit year, `-`, four digits or more.
pub(crate) fn is_cve_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("CVE-") else {
        return false;
    };
    let Some((year, number)) = rest.split_once('-') else {
        return false;
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    year.len() == 4 && digits(year) && number.len() >= 4 && digits(number)
}

/// What kind of JSON value it is, for a problem report: `a number`, `an array`, …
pub(crate) fn json_kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A shortened copy of a value for a problem report.
pub(crate) fn shorten(value: &str) -> String {
    const MAX: usize = 60;
    match value.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &value[..i]),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_kubernetes_names() {
        assert_eq!(object_name("ALSA-2023:5453"), "alsa-2023-5453");
        assert_eq!(object_name("KB5032189"), "kb5032189");
        assert_eq!(object_name("USN-6500-1"), "usn-6500-1");
        assert_eq!(object_name("RLSA-2024:1234"), "rlsa-2024-1234");
        assert_eq!(object_name("_x_"), "x");
    }

    #[test]
    fn msrc_defaults_to_last_month_and_this_month() {
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        assert_eq!(
            Source::Msrc.default_urls(at("2026-01-05T10:00:00Z")),
            vec![
                "https://api.msrc.microsoft.com/cvrf/v3.0/cvrf/2025-Dec".to_string(),
                "https://api.msrc.microsoft.com/cvrf/v3.0/cvrf/2026-Jan".to_string(),
            ]
        );
        assert_eq!(
            Source::Osv.default_urls(at("2026-01-05T10:00:00Z")).len(),
            4
        );
    }

    #[test]
    fn shortened_values_end_in_an_ellipsis() {
        assert_eq!(shorten("short"), "short");
        assert_eq!(shorten(&"é".repeat(70)).chars().count(), 61);
    }
}
