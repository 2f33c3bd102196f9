//! OSV records of Linux distributions (Debian, Ubuntu, AlmaLinux, Rocky Linux): one
//! Patch per advisory, with its packages and fixed versions per release.

use crate::api::PatchSpec;

use super::{FeedError, Parsed};

/// Parses one OSV JSON document: a record, or an array of records.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Parsed<PatchSpec>, FeedError> {
    let _ = (file, bytes);
    todo!("osv::parse")
}

/// Parses OSV's zip export: one record per member.
pub fn parse_zip(file: &str, bytes: &[u8]) -> Result<Parsed<PatchSpec>, FeedError> {
    let _ = (file, bytes);
    todo!("osv::parse_zip")
}
