//! `ringmaster catalog import`: reads a feed's files or URLs, parses them, plans the
//! changes against the Patches that exist, and applies them (server-side apply with the
//! feed's own field manager), a bounded number at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use kube::api::{Api, PatchParams};
use serde::Serialize;

use crate::api::Patch;

use super::plan::{Change, Feed, Verdict, plan};
use super::{FeedError, Parsed, Skipped, Source, epss, kev, msrc, osv};

/// How many writes an import keeps in flight.
const IN_FLIGHT: usize = 8;

/// One input as it was read: its name (path, URL or archive member) and its bytes.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// Where it came from.
    pub name: String,
    /// Its bytes, as read.
    pub bytes: Vec<u8>,
}

/// Reads the inputs: files, directories (every file below, in name order, of the
/// kinds the source reads) and URLs (fetched). With `unpublished_ok` (the publisher's
/// default URLs), a URL that answers 404 is not an error but not published yet (MSRC's
/// document of a month before its Patch Tuesday): it is returned apart.
pub async fn load(
    source: Source,
    inputs: &[String],
    unpublished_ok: bool,
) -> Result<(Vec<Loaded>, Vec<String>), FeedError> {
    let mut loaded = Vec::new();
    let mut unpublished = Vec::new();
    for input in inputs {
        if input.starts_with("https://") || input.starts_with("http://") {
            match fetch(input).await? {
                Some(l) => loaded.push(l),
                None if unpublished_ok => unpublished.push(input.clone()),
                None => {
                    return Err(FeedError::Io {
                        file: input.clone(),
                        source: std::io::Error::new(std::io::ErrorKind::NotFound, "404 Not Found"),
                    });
                }
            }
        } else {
            read_path(source, Path::new(input), &mut loaded)?;
        }
    }
    Ok((loaded, unpublished))
}

/// Reads files and directories (no URLs).
pub fn read_paths(source: Source, paths: &[String]) -> Result<Vec<Loaded>, FeedError> {
    let mut loaded = Vec::new();
    for p in paths {
        read_path(source, Path::new(p), &mut loaded)?;
    }
    Ok(loaded)
}

/// Reads a file, or every file below a directory that the source reads.
fn read_path(source: Source, path: &Path, out: &mut Vec<Loaded>) -> Result<(), FeedError> {
    let io = |e| FeedError::Io {
        file: path.display().to_string(),
        source: e,
    };
    if !path.is_dir() {
        let bytes = std::fs::read(path).map_err(io)?;
        out.push(Loaded {
            name: path.display().to_string(),
            bytes,
        });
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() || reads(source, &entry) {
            read_path(source, &entry, out)?;
        }
    }
    Ok(())
}

/// Whether a file in a directory is one the source reads, by its extension.
fn reads(source: Source, path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match source {
        Source::Osv => name.ends_with(".json") || name.ends_with(".zip"),
        Source::Msrc => name.ends_with(".json") || name.ends_with(".xml"),
        Source::Kev => name.ends_with(".json"),
        Source::Epss => name.ends_with(".csv") || name.ends_with(".gz"),
    }
}

/// Fetches a URL (rustls, the web PKI roots bundled); None when it answers 404.
async fn fetch(url: &str) -> Result<Option<Loaded>, FeedError> {
    let failed = |why: String| FeedError::Io {
        file: url.to_string(),
        source: std::io::Error::other(why),
    };
    let response = reqwest::Client::builder()
        .user_agent(concat!("ringmaster/", env!("CARGO_PKG_VERSION")))
        .timeout(std::time::Duration::from_secs(300))
        .build()
        .map_err(|e| failed(e.to_string()))?
        .get(url)
        .header(
            "Accept",
            "application/json, application/xml;q=0.9, */*;q=0.8",
        )
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let response = response
        .error_for_status()
        .map_err(|e| failed(e.to_string()))?;
    let bytes = response.bytes().await.map_err(|e| failed(e.to_string()))?;
    Ok(Some(Loaded {
        name: url.to_string(),
        bytes: bytes.to_vec(),
    }))
}

/// Parses what was read into one feed: the records of every input together, and the
/// records skipped. A later KEV or EPSS file's entries replace an earlier one's.
pub fn parse(source: Source, loaded: &[Loaded]) -> Result<(Feed, Vec<Skipped>), FeedError> {
    let mut skipped = Vec::new();
    let feed = match source {
        Source::Msrc | Source::Osv => {
            let mut all = Parsed::default();
            for l in loaded {
                all.extend(parse_patches(source, l)?);
            }
            skipped = all.skipped;
            // One advisory may come in several files (AlmaLinux ships one per release).
            Feed::Patches(if source == Source::Osv {
                osv::merge(all.records)
            } else {
                all.records
            })
        }
        Source::Kev => {
            let mut catalog = kev::Catalog::default();
            for l in loaded {
                let (c, s) = kev::parse(&l.name, &l.bytes)?;
                catalog.version = c.version.or(catalog.version);
                catalog.released = c.released.or(catalog.released);
                catalog.by_cve.extend(c.by_cve);
                skipped.extend(s);
            }
            Feed::Kev(catalog)
        }
        Source::Epss => {
            let mut scores = epss::Scores::default();
            for l in loaded {
                let (s, bad) = epss::parse(&l.name, &l.bytes)?;
                scores.model = s.model.or(scores.model);
                scores.scored_at = s.scored_at.or(scores.scored_at);
                scores.by_cve.extend(s.by_cve);
                skipped.extend(bad);
            }
            Feed::Epss(scores)
        }
    };
    Ok((feed, skipped))
}

/// Parses one MSRC or OSV input (an OSV zip export told by its magic bytes).
fn parse_patches(source: Source, l: &Loaded) -> Result<Parsed<crate::api::PatchSpec>, FeedError> {
    match source {
        Source::Msrc => msrc::parse(&l.name, &l.bytes),
        _ if l.bytes.starts_with(b"PK\x03\x04") => osv::parse_zip(&l.name, &l.bytes),
        _ => osv::parse(&l.name, &l.bytes),
    }
}

/// A write that failed.
#[derive(Clone, Debug, Serialize)]
pub struct Failed {
    /// The Patch.
    pub name: String,
    /// The API server's answer.
    pub error: String,
}

/// What an import did (or, dry, would do).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The feed.
    pub source: String,
    /// Nothing was written.
    pub dry_run: bool,
    /// Patches created.
    pub created: Vec<String>,
    /// Patches updated.
    pub updated: Vec<String>,
    /// How many Patches already held the feed's data.
    pub unchanged: usize,
    /// How many records were not advisories (per-CVE or withdrawn records), left out.
    pub not_advisories: usize,
    /// Records skipped, and why.
    pub skipped: Vec<SkippedRecord>,
    /// Writes the API server refused.
    pub failed: Vec<Failed>,
}

/// A skipped record, for the summary.
#[derive(Clone, Debug, Serialize)]
pub struct SkippedRecord {
    /// The file.
    pub file: String,
    /// Where in it.
    pub at: String,
    /// Its id, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What is wrong.
    pub problem: String,
}

impl From<&Skipped> for SkippedRecord {
    fn from(s: &Skipped) -> Self {
        Self {
            file: s.file.clone(),
            at: s.at.clone(),
            id: s.id.clone(),
            problem: s.problem.to_string(),
        }
    }
}

impl Summary {
    /// The exit code for a CronJob: 0 when everything was imported, 1 when some records
    /// were skipped or some writes failed (the rest went in).
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.skipped.is_empty() || !self.failed.is_empty())
    }

    /// The closing line: `osv: 3 created, 1 updated, 40 unchanged, 2 skipped`.
    pub fn line(&self) -> String {
        let would = if self.dry_run { " (dry run)" } else { "" };
        let mut line = format!(
            "{}{would}: {} created, {} updated, {} unchanged, {} skipped",
            self.source,
            self.created.len(),
            self.updated.len(),
            self.unchanged,
            self.skipped.len()
        );
        if self.not_advisories > 0 {
            line.push_str(&format!(", {} not advisories", self.not_advisories));
        }
        if !self.failed.is_empty() {
            line.push_str(&format!(", {} failed", self.failed.len()));
        }
        line
    }
}

/// The Patches that exist, by object name (read page by page).
pub async fn existing(api: &Api<Patch>) -> Result<BTreeMap<String, Patch>, kube::Error> {
    Ok(crate::api::list_all(api.clone())
        .await?
        .into_iter()
        .filter_map(|p| Some((p.metadata.name.clone()?, p)))
        .collect())
}

/// Imports one feed into the cluster: plans against the Patches that exist and applies
/// every change (none when `dry_run`).
pub async fn import(
    api: &Api<Patch>,
    source: Source,
    feed: &Feed,
    skipped: &[Skipped],
    dry_run: bool,
) -> Result<Summary, kube::Error> {
    let existing = existing(api).await?;
    let changes = plan(source, feed, &existing);
    let mut summary = Summary {
        source: source.to_string(),
        dry_run,
        skipped: skipped
            .iter()
            .filter(|s| s.problem.is_fault())
            .map(SkippedRecord::from)
            .collect(),
        not_advisories: skipped.iter().filter(|s| !s.problem.is_fault()).count(),
        ..Default::default()
    };
    let (to_write, unchanged): (Vec<Change>, Vec<Change>) = changes
        .into_iter()
        .partition(|c| c.verdict != Verdict::Unchanged);
    summary.unchanged = unchanged.len();
    let params = PatchParams::apply(source.field_manager()).force();
    let results: Vec<(Change, Result<(), kube::Error>)> = futures::stream::iter(to_write)
        .map(|c| {
            let (api, params) = (api.clone(), params.clone());
            async move {
                if dry_run {
                    return (c, Ok(()));
                }
                let sent = api
                    .patch(&c.name, &params, &kube::api::Patch::Apply(&c.body))
                    .await
                    .map(|_| ());
                (c, sent)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    for (c, result) in results {
        match (result, c.verdict) {
            (Ok(()), Verdict::Create) => summary.created.push(c.name),
            (Ok(()), _) => summary.updated.push(c.name),
            (Err(e), _) => summary.failed.push(Failed {
                name: c.name,
                error: e.to_string(),
            }),
        }
    }
    summary.created.sort();
    summary.updated.sort();
    summary.failed.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(summary)
}
