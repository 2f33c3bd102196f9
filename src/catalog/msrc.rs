//! Microsoft's monthly security update document (CVRF, as the MSRC API serves it in
//! JSON and in XML): one Patch per KB.

use crate::api::PatchSpec;

use super::{FeedError, Parsed};

/// Parses one CVRF document, JSON or XML (told apart by the first byte that is not
/// white space): one `PatchSpec` per KB article, skipping what cannot be used.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Parsed<PatchSpec>, FeedError> {
    let _ = (file, bytes);
    todo!("msrc::parse")
}
