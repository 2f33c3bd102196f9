//! Feeds applied to a catalog held in memory (`ringmaster simulate --catalog`): the same
//! plan as a cluster import, merged the way server-side apply merges it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::api::Patch;

use super::import::{self, Loaded};
use super::plan::{Verdict, overlay, plan};
use super::{FeedError, Skipped, Source};

/// What one feed did to the catalog.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// Patches added.
    pub created: usize,
    /// Patches changed.
    pub updated: usize,
    /// Records skipped, and why.
    pub skipped: Vec<Skipped>,
    /// Patches the feed's fields would make invalid (not applied), with why.
    pub refused: Vec<(String, String)>,
}

/// Which feed a file is, from its content: gzip or a CSV header is EPSS, a zip is an OSV
/// export, XML is CVRF, and JSON by its keys (KEV's `vulnerabilities` and
/// `catalogVersion`, CVRF's `Vulnerability` or `ProductTree`, else OSV).
pub fn detect(bytes: &[u8]) -> Option<Source> {
    let text = bytes
        .strip_prefix(b"\xef\xbb\xbf")
        .unwrap_or(bytes)
        .trim_ascii_start();
    if bytes.starts_with(&[0x1f, 0x8b]) || text.starts_with(b"#model") || text.starts_with(b"cve,")
    {
        return Some(Source::Epss);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return Some(Source::Osv);
    }
    match text.first()? {
        b'<' => Some(Source::Msrc),
        b'[' => Some(Source::Osv),
        b'{' => {
            let keys: serde_json::Map<String, Value> = serde_json::from_slice(text).ok()?;
            if keys.contains_key("vulnerabilities") && keys.contains_key("catalogVersion") {
                Some(Source::Kev)
            } else if keys.contains_key("Vulnerability") || keys.contains_key("ProductTree") {
                Some(Source::Msrc)
            } else if keys.contains_key("id") {
                Some(Source::Osv)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Why feed files could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// A file could not be read or parsed at all.
    #[error(transparent)]
    Feed(#[from] FeedError),
    /// A file is none of the feeds.
    #[error("{0}: not a feed ringmaster knows (MSRC CVRF, OSV, KEV or EPSS)")]
    Unknown(String),
}

/// Applies feed files and directories (a directory is OSV records) to `patches` (keyed
/// by patch id): MSRC and OSV first, then KEV and EPSS, which add to what is there.
pub fn apply_files(
    patches: &mut BTreeMap<String, Patch>,
    paths: &[PathBuf],
) -> Result<BTreeMap<Source, Applied>, OfflineError> {
    let mut by_source: BTreeMap<Source, Vec<Loaded>> = BTreeMap::new();
    for path in paths {
        let path_str = path.display().to_string();
        let files = import::read_paths(Source::Osv, std::slice::from_ref(&path_str))?;
        for file in files {
            let source = if path.is_dir() {
                Source::Osv
            } else {
                detect(&file.bytes).ok_or_else(|| OfflineError::Unknown(file.name.clone()))?
            };
            by_source.entry(source).or_default().push(file);
        }
    }
    let mut done = BTreeMap::new();
    for (source, files) in by_source {
        let (feed, skipped) = import::parse(source, &files)?;
        let mut applied = apply(patches, source, &feed);
        applied.skipped = skipped;
        done.insert(source, applied);
    }
    Ok(done)
}

/// Applies one parsed feed to the catalog.
pub fn apply(
    patches: &mut BTreeMap<String, Patch>,
    source: Source,
    feed: &super::plan::Feed,
) -> Applied {
    let by_name: BTreeMap<String, Patch> = patches
        .values()
        .map(|p| (p.metadata.name.clone().unwrap_or_default(), p.clone()))
        .collect();
    let mut applied = Applied::default();
    for c in plan(source, feed, &by_name) {
        if c.verdict == Verdict::Unchanged {
            continue;
        }
        let merged = by_name
            .get(&c.name)
            .map_or(
                Ok(Value::Object(serde_json::Map::new())),
                serde_json::to_value,
            )
            .and_then(|mut obj| {
                overlay(&mut obj, &c.body);
                serde_json::from_value::<Patch>(obj)
            });
        match merged {
            Ok(patch) => {
                match c.verdict {
                    Verdict::Create => applied.created += 1,
                    _ => applied.updated += 1,
                }
                patches.insert(patch.spec.id.clone(), patch);
            }
            // What an API server would refuse is said, not dropped.
            Err(e) => applied.refused.push((c.name, e.to_string())),
        }
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feeds_are_told_apart_by_their_content() {
        assert_eq!(
            detect(b"#model_version:v1\ncve,epss,percentile\n"),
            Some(Source::Epss)
        );
        assert_eq!(detect(&[0x1f, 0x8b, 8, 0]), Some(Source::Epss));
        assert_eq!(detect(b"PK\x03\x04rest"), Some(Source::Osv));
        assert_eq!(
            detect(b"\xef\xbb\xbf  <?xml version='1.0'?>"),
            Some(Source::Msrc)
        );
        assert_eq!(
            detect(br#"{"catalogVersion": "1", "vulnerabilities": []}"#),
            Some(Source::Kev)
        );
        assert_eq!(
            detect(br#"{"DocumentTitle": "x", "Vulnerability": []}"#),
            Some(Source::Msrc)
        );
        assert_eq!(
            detect(br#"{"id": "DSA-1-1", "affected": []}"#),
            Some(Source::Osv)
        );
        assert_eq!(detect(br#"{"other": 1}"#), None);
        assert_eq!(detect(b"hello"), None);
    }
}
