//! CISA's Known Exploited Vulnerabilities catalog: a listing per CVE, added to every
//! Patch that fixes a listed CVE.
//!
//! The catalog is one JSON document (`known_exploited_vulnerabilities.json`): a header
//! (`catalogVersion`, `dateReleased`, `count`, …) and a `vulnerabilities` array, one
//! entry per CVE. [`parse`] reads it into a [`Catalog`] keyed by CVE id; [`listing`]
//! gives the [`KevListing`] of a Patch from the CVEs it fixes.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::{Map, Value};

use super::{FeedError, Problem, Skipped, is_cve_id, json_kind, shorten};
use crate::api::{CveRef, KevListing};

/// The format name in a [`FeedError::Format`].
const FORMAT: &str = "CISA KEV catalog (JSON)";

/// One CVE's entry in the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// The CVE id (`cveID`).
    pub cve: String,
    /// The day CISA added it to the catalog (`dateAdded`).
    pub added: Date,
    /// The day by which US federal agencies must have remediated it (`dueDate`). In the
    /// real catalog a few entries (those of the first release, 2021-11-03, carried over
    /// from earlier directives) are due before the day they were added.
    pub due: Date,
    /// It is known to be used in ransomware campaigns (`knownRansomwareCampaignUse` is
    /// `Known`).
    pub ransomware: bool,
    /// The vendor or project (`vendorProject`); empty when the entry has none.
    pub vendor: String,
    /// The product (`product`); empty when the entry has none.
    pub product: String,
    /// CISA's name of the vulnerability (`vulnerabilityName`); empty when none.
    pub name: String,
}

/// The whole catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    /// The catalog's version (`catalogVersion`, e.g. `2025.08.25`).
    pub version: Option<String>,
    /// When it was released (`dateReleased`).
    pub released: Option<jiff::Timestamp>,
    /// Its entries, by CVE id.
    pub by_cve: BTreeMap<String, Listing>,
}

/// Parses the catalog document.
///
/// A bad entry (not an object, no `cveID`, a date that is not `YYYY-MM-DD`, a field of
/// the wrong type) is skipped and reported at `vulnerabilities[<index>]`, with its
/// `cveID` when that can be read; the others are kept. A CVE listed twice is kept once,
/// with the earliest dates of both (and ransomware use if either says so), and the
/// later entry is reported. A header field that cannot be read is reported at its name
/// and left `None`. Only a document that is not JSON, or has no `vulnerabilities`
/// array, is an error.
pub fn parse(file: &str, bytes: &[u8]) -> Result<(Catalog, Vec<Skipped>), FeedError> {
    let format_error = |why: String| FeedError::Format {
        file: file.to_string(),
        format: FORMAT,
        why,
    };
    let document: Value = serde_json::from_slice(bytes).map_err(|e| format_error(e.to_string()))?;
    let Value::Object(header) = document else {
        return Err(format_error(format!(
            "the document is {}, not an object",
            json_kind(&document)
        )));
    };
    let Some(Value::Array(entries)) = header.get("vulnerabilities") else {
        return Err(format_error("no `vulnerabilities` array".to_string()));
    };
    let mut skipped = Vec::new();
    let mut report = |at: String, id: Option<String>, problem: Problem| {
        skipped.push(Skipped {
            file: file.to_string(),
            at,
            id,
            problem,
        });
    };
    let mut catalog = Catalog {
        version: header_string(&header, "catalogVersion").unwrap_or_else(|problem| {
            report("catalogVersion".to_string(), None, problem);
            None
        }),
        released: released(&header).unwrap_or_else(|problem| {
            report("dateReleased".to_string(), None, problem);
            None
        }),
        by_cve: BTreeMap::new(),
    };
    let mut first_at = BTreeMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let at = format!("vulnerabilities[{index}]");
        match read_entry(entry) {
            Ok(listing) => {
                if let Some(problem) = insert(&mut catalog.by_cve, &mut first_at, index, listing) {
                    report(at, Some(problem.0), problem.1);
                }
            }
            Err((id, problem)) => report(at, id, problem),
        }
    }
    Ok((catalog, skipped))
}

/// Adds a listing to the catalog; for a CVE already listed, merges the two and returns
/// the report of the later entry.
fn insert(
    by_cve: &mut BTreeMap<String, Listing>,
    first_at: &mut BTreeMap<String, usize>,
    index: usize,
    listing: Listing,
) -> Option<(String, Problem)> {
    match by_cve.entry(listing.cve.clone()) {
        Entry::Vacant(slot) => {
            first_at.insert(listing.cve.clone(), index);
            slot.insert(listing);
            None
        }
        Entry::Occupied(mut slot) => {
            let kept = slot.get_mut();
            kept.added = kept.added.min(listing.added);
            kept.due = kept.due.min(listing.due);
            kept.ransomware |= listing.ransomware;
            let first = first_at.get(&listing.cve).copied().unwrap_or_default();
            let problem = Problem::Invalid {
                field: "cveID".to_string(),
                why: format!(
                    "listed again (first at vulnerabilities[{first}]); merged into it, with the earliest dates"
                ),
                got: shorten(&listing.cve),
            };
            Some((listing.cve, problem))
        }
    }
}

/// Reads one entry of `vulnerabilities`; on failure, its `cveID` if readable and what
/// is wrong.
fn read_entry(entry: &Value) -> Result<Listing, (Option<String>, Problem)> {
    let Value::Object(fields) = entry else {
        return Err((None, invalid("entry", "an object", entry)));
    };
    let cve = cve_id(fields).map_err(|problem| (None, problem))?;
    let with_id = |problem| (Some(cve.clone()), problem);
    let added = date(fields, "dateAdded").map_err(with_id)?;
    let due = date(fields, "dueDate").map_err(with_id)?;
    let ransomware = ransomware(fields).map_err(with_id)?;
    let vendor = text(fields, "vendorProject").map_err(with_id)?;
    let product = text(fields, "product").map_err(with_id)?;
    let name = text(fields, "vulnerabilityName").map_err(with_id)?;
    Ok(Listing {
        cve,
        added,
        due,
        ransomware,
        vendor,
        product,
        name,
    })
}

/// The entry's `cveID`, which must be a CVE id (`CVE-YYYY-NNNN…`).
fn cve_id(fields: &Map<String, Value>) -> Result<String, Problem> {
    let value = required(fields, "cveID")?;
    let Value::String(id) = value else {
        return Err(invalid("cveID", "a string", value));
    };
    let id = id.trim();
    if !is_cve_id(id) {
        return Err(invalid("cveID", "a CVE id (CVE-YYYY-NNNN)", value));
    }
    Ok(id.to_string())
}

/// A required date field, written `YYYY-MM-DD`.
fn date(fields: &Map<String, Value>, field: &str) -> Result<Date, Problem> {
    let value = required(fields, field)?;
    let parsed = value.as_str().map(str::trim).and_then(|text| {
        let shaped = text.len() == 10
            && text.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                _ => b.is_ascii_digit(),
            });
        if !shaped {
            return None;
        }
        let date: Date = text.parse().ok()?;
        // Both ends of the day must be instants jiff can represent.
        (start_of_day(date).is_some() && end_of_day(date).is_some()).then_some(date)
    });
    parsed.ok_or_else(|| invalid(field, "a date YYYY-MM-DD", value))
}

/// `knownRansomwareCampaignUse`: `Known` or `Unknown`. An entry without it (catalogs
/// before October 2022 had no such field) is not known to be used by ransomware.
fn ransomware(fields: &Map<String, Value>) -> Result<bool, Problem> {
    const FIELD: &str = "knownRansomwareCampaignUse";
    match fields.get(FIELD) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("known") => Ok(true),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("unknown") => Ok(false),
        Some(other) => Err(invalid(FIELD, "Known or Unknown", other)),
    }
}

/// An optional text field: empty when missing or null, an error when not a string.
fn text(fields: &Map<String, Value>, field: &str) -> Result<String, Problem> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.trim().to_string()),
        Some(other) => Err(invalid(field, "a string", other)),
    }
}

/// A header string field: `None` when missing or null, an error when not a string.
fn header_string(header: &Map<String, Value>, field: &str) -> Result<Option<String>, Problem> {
    match header.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(other) => Err(invalid(field, "a string", other)),
    }
}

/// The header's `dateReleased`, an RFC 3339 timestamp.
fn released(header: &Map<String, Value>) -> Result<Option<jiff::Timestamp>, Problem> {
    const FIELD: &str = "dateReleased";
    let Some(text) = header_string(header, FIELD)? else {
        return Ok(None);
    };
    text.parse().map(Some).map_err(|_| Problem::Invalid {
        field: FIELD.to_string(),
        why: "a timestamp (RFC 3339)".to_string(),
        got: shorten(&text),
    })
}

/// A field that must be there and not null.
fn required<'a>(fields: &'a Map<String, Value>, field: &str) -> Result<&'a Value, Problem> {
    match fields.get(field) {
        None | Some(Value::Null) => Err(Problem::Missing {
            field: field.to_string(),
        }),
        Some(Value::String(s)) if s.trim().is_empty() => Err(Problem::Missing {
            field: field.to_string(),
        }),
        Some(value) => Ok(value),
    }
}

/// A `Problem::Invalid` for a JSON value.
fn invalid(field: &str, why: &str, got: &Value) -> Problem {
    Problem::Invalid {
        field: field.to_string(),
        why: why.to_string(),
        got: shorten(&got.to_string()),
    }
}

/// 00:00 UTC on `date`.
fn start_of_day(date: Date) -> Option<jiff::Timestamp> {
    date.to_zoned(TimeZone::UTC)
        .ok()
        .map(|zoned| zoned.timestamp())
}

/// The end of `date` in UTC: 00:00 UTC on the next day.
fn end_of_day(date: Date) -> Option<jiff::Timestamp> {
    start_of_day(date.tomorrow().ok()?)
}

/// The KEV listing of a Patch that fixes `cves`: `None` when none is listed.
///
/// `added_at` is 00:00 UTC on the earliest `dateAdded` among its listed CVEs; `due_at`
/// is the end of the earliest due date (00:00 UTC the next day: the remediation is due
/// *on* that day, so it is on time until the day is over); `cves` are the listed ids,
/// sorted; `ransomware` is whether any of them is known to be used by ransomware.
pub fn listing(cves: &[CveRef], catalog: &Catalog) -> Option<KevListing> {
    let mut listed: Vec<&Listing> = cves
        .iter()
        .filter_map(|cve| catalog.by_cve.get(&cve.id))
        .collect();
    listed.sort_by(|a, b| a.cve.cmp(&b.cve));
    listed.dedup_by(|a, b| a.cve == b.cve);
    let added = listed.iter().map(|l| l.added).min()?;
    let due = listed.iter().map(|l| l.due).min()?;
    Some(KevListing {
        added_at: start_of_day(added)?,
        due_at: end_of_day(due)?,
        cves: listed.iter().map(|l| l.cve.clone()).collect(),
        ransomware: listed.iter().any(|l| l.ransomware),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cve: &str, added: &str, due: &str, ransomware: &str) -> String {
        format!(
            r#"{{"cveID":"{cve}","vendorProject":"V","product":"P","vulnerabilityName":"N","dateAdded":"{added}","dueDate":"{due}","knownRansomwareCampaignUse":"{ransomware}"}}"#
        )
    }

    fn document(entries: &[String]) -> String {
        format!(
            r#"{{"catalogVersion":"1","dateReleased":"2025-08-25T17:04:19.9796Z","vulnerabilities":[{}]}}"#,
            entries.join(",")
        )
    }

    fn cve(id: &str) -> CveRef {
        CveRef {
            id: id.to_string(),
            cvss_score: None,
            cvss_vector: None,
            epss: None,
        }
    }

    #[test]
    fn cve_ids_have_a_year_and_four_digits_or_more() {
        assert!(is_cve_id("CVE-2021-4034"));
        assert!(is_cve_id("CVE-2021-1000353"));
        assert!(!is_cve_id("CVE-2021-403"));
        assert!(!is_cve_id("CVE-21-4034"));
        assert!(!is_cve_id("cve-2021-4034"));
        assert!(!is_cve_id("CVE-2021-40x4"));
        assert!(!is_cve_id("CVE-2021"));
        assert!(!is_cve_id("GHSA-2021-4034"));
    }

    #[test]
    fn dates_must_be_written_yyyy_mm_dd() {
        for bad in [
            "2024-6-20",
            "20240620",
            "2024-06-20T10:00",
            "2024-02-30",
            "+2024-06-20",
        ] {
            let json = document(&[entry("CVE-2024-0001", bad, "2024-07-01", "Unknown")]);
            let (catalog, skipped) = parse("f", json.as_bytes()).unwrap();
            assert!(catalog.by_cve.is_empty(), "{bad}");
            assert_eq!(skipped.len(), 1, "{bad}");
            assert!(
                matches!(&skipped[0].problem, Problem::Invalid { field, .. } if field == "dateAdded"),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_last_day_jiff_knows_cannot_end() {
        let json = document(&[entry(
            "CVE-2024-0001",
            "2024-06-20",
            "9999-12-31",
            "Unknown",
        )]);
        let (catalog, skipped) = parse("f", json.as_bytes()).unwrap();
        assert!(catalog.by_cve.is_empty());
        assert_eq!(skipped[0].id.as_deref(), Some("CVE-2024-0001"));
    }

    #[test]
    fn a_cve_listed_twice_keeps_the_earliest_dates() {
        let json = document(&[
            entry("CVE-2024-0001", "2024-06-20", "2024-07-11", "Unknown"),
            entry("CVE-2024-0001", "2024-06-10", "2024-07-20", "Known"),
        ]);
        let (catalog, skipped) = parse("f", json.as_bytes()).unwrap();
        let kept = &catalog.by_cve["CVE-2024-0001"];
        assert_eq!(kept.added, jiff::civil::date(2024, 6, 10));
        assert_eq!(kept.due, jiff::civil::date(2024, 7, 11));
        assert!(kept.ransomware);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].at, "vulnerabilities[1]");
        assert!(
            matches!(&skipped[0].problem, Problem::Invalid { why, .. } if why.contains("vulnerabilities[0]"))
        );
    }

    #[test]
    fn a_cve_fixed_twice_by_one_patch_counts_once() {
        let json = document(&[entry(
            "CVE-2024-0001",
            "2024-06-20",
            "2024-07-11",
            "Unknown",
        )]);
        let (catalog, _) = parse("f", json.as_bytes()).unwrap();
        let listing = listing(&[cve("CVE-2024-0001"), cve("CVE-2024-0001")], &catalog).unwrap();
        assert_eq!(listing.cves, ["CVE-2024-0001"]);
    }

    #[test]
    fn garbage_and_truncations_never_panic() {
        let json = document(&[
            entry("CVE-2024-0001", "2024-06-20", "2024-07-11", "Known"),
            entry("CVE-2024-0002", "2024-06-21", "2024-07-12", "Unknown"),
        ]);
        for end in 0..json.len() {
            let _ = parse("f", &json.as_bytes()[..end]);
        }
        for garbage in [
            &b"\xff\xfe"[..],
            b"null",
            b"[]",
            b"{\"vulnerabilities\":{}}",
            b"{\"vulnerabilities\":[1,null,[],\"x\"]}",
        ] {
            let _ = parse("f", garbage);
        }
    }
}
