//! Microsoft's monthly security update document (CVRF, as the MSRC API serves it in
//! JSON and in XML): one Patch per KB.
//!
//! The document lists vulnerabilities (one per CVE); each names the updates that fix it
//! as remediations. A remediation of type "Vendor Fix" (`Type: 2` in JSON) whose
//! description is a KB number (`5032189`) is a KB article, and each KB becomes one
//! `PatchSpec` gathering every CVE whose remediations list it. How the document's
//! fields become a Patch:
//!
//! - `id` is `KB<number>`; `vendor` is `Microsoft`.
//! - `product`: the names of the ProductIDs the KB's remediations list (from the
//!   ProductTree), without the platform suffixes that only tell builds apart
//!   (` for x64-based Systems`, ` (Server Core installation)`, …), distinct, sorted and
//!   joined with `; ` (names may hold commas: `Windows Server 2022, 23H2 Edition`).
//!   ProductIDs the tree does not name are left out.
//! - `title`: `<document title>: <SubType> for <products>`, with at most three product
//!   names (`… and 2 more`), since `kubectl get patches` shows the title, not the
//!   product: `November 2023 Security Updates: Monthly Rollup for Windows Server 2012`.
//! - `classification` is always `Security`: every remediation of this document fixes
//!   CVEs, and Microsoft itself files its "Monthly Rollup", "Security Only",
//!   "SecurityHotpatchUpdate" and "IE Cumulative" KBs as security updates (the
//!   November 2023 rollups are the only fixes of the exploited CVE-2023-36025 and
//!   CVE-2023-36036 on Windows Server 2012). The SubType shows in the title.
//! - `cves`: each CVE with its highest CVSS base score among the score sets of the
//!   KB's products (a score set without ProductIDs counts for all) and that set's
//!   vector, as the feed gives them (temporal metrics included); no score when the
//!   document gives none for those products (CVE-2023-24023 in November 2023).
//! - `cvssScore`: the highest of those; `vendorSeverity`: the highest Severity threat
//!   of its CVEs for its products (Critical → Critical, Important → High, Moderate →
//!   Medium, Low → Low); `knownExploited`: an Exploit Status of one of its CVEs says
//!   `Exploited:Yes`.
//! - `releasedAt`: the earliest of the document's InitialReleaseDate and its CVEs'
//!   revision dates, read as UTC (the document's dates have no zone); placeholder
//!   dates of year 1 are ignored. A KB with no date at all is skipped.
//! - `rebootRequired`: one of its remediations says RestartRequired `Yes` or `Maybe`
//!   (Office and .NET updates say `Maybe`: plan the reboot).
//! - `uninstallable` is true: KB packages are removed with `wusa /uninstall`, DISM or
//!   the installer that put them there.
//! - `supersedes`: the numbers in the remediations' `Supercedence` (MSRC's spelling),
//!   split at commas, semicolons and spaces, as `KB<number>` ids, never the KB itself.
//!
//! Remediations that are not KBs are left out without a word: the Edge and Copilot
//! "Release Notes", the CBL-Mariner package names (`kernel`, `kured`), "Click to Run",
//! and the "Known Issue"/"Mitigation" remediations. A CVE fixed by none of the KBs
//! yields nothing.
//!
//! What cannot be used is reported as a [`Skipped`]: a Vulnerability without a CVE id
//! (or with an advisory id like `ADV990001`), one whose XML is broken or whose JSON has
//! the wrong shape, is skipped whole (`at: "Vulnerability 12 (Ordinal 97)"`: its place
//! in the document, counted from 1, and its Ordinal); a score set with a BaseScore that
//! is not a number from 0 to 10 or a vector that does not parse, and a revision date
//! that is not a date, are left out of their Vulnerability
//! (`at: "Vulnerability 12 (Ordinal 97), ScoreSet 3"`), which is kept.

mod json;
mod xml;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;

use crate::api::{Classification, CveRef, PatchSpec, Severity};

use super::{FeedError, Parsed, Problem, Skipped, shorten};

/// The format named in a [`FeedError::Format`].
const FORMAT: &str = "MSRC CVRF";

/// The vendor of every Patch this feed gives.
const VENDOR: &str = "Microsoft";

/// At most this many product names in a title.
const TITLE_PRODUCTS: usize = 3;

/// Parses one CVRF document, JSON or XML (told apart by the first byte that is not
/// white space): one `PatchSpec` per KB article, skipping what cannot be used.
///
/// The Patches are sorted by KB number, their CVEs by year and number and their
/// superseded ids by number, so that importing the same document twice gives the same
/// bytes.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Parsed<PatchSpec>, FeedError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let format_error = |why: String| FeedError::Format {
        file: file.to_string(),
        format: FORMAT,
        why,
    };
    let document = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => json::read(bytes).map_err(format_error)?,
        Some(b'<') => xml::read(bytes).map_err(format_error)?,
        Some(other) => {
            return Err(format_error(format!(
                "it starts with {:?}, neither JSON nor XML",
                char::from(*other)
            )));
        }
        None => return Err(format_error("it is empty".to_string())),
    };
    Ok(build(file, document))
}

/// A CVRF document as either form gives it, its values still as the feed wrote them.
#[derive(Debug, Default)]
struct Document {
    /// `DocumentTitle`.
    title: Option<String>,
    /// `DocumentTracking/InitialReleaseDate`.
    initial_release: Option<String>,
    /// ProductID → FullProductName, from the whole ProductTree.
    products: HashMap<String, String>,
    /// The `Vulnerability` records, in the document's order.
    vulnerabilities: Vec<Entry>,
}

/// One `Vulnerability` record, read or not.
#[derive(Debug)]
struct Entry {
    /// Its `Ordinal`, when it could be read.
    ordinal: Option<String>,
    /// Its `CVE`, when it could be read.
    cve: Option<String>,
    /// Its content, or why it could not be read.
    body: Result<RawVuln, Problem>,
}

/// The parts of a `Vulnerability` record this feed uses, as written.
#[derive(Debug, Default)]
struct RawVuln {
    /// `Threats`.
    threats: Vec<RawThreat>,
    /// `CVSSScoreSets`.
    score_sets: Vec<RawScoreSet>,
    /// `Remediations`.
    remediations: Vec<RawRemediation>,
    /// The `Date` of each `RevisionHistory` entry.
    revision_dates: Vec<Option<String>>,
}

/// A `Threat`.
#[derive(Debug, Default)]
struct RawThreat {
    /// `Type`: a name (XML) or a number (JSON).
    kind: Option<String>,
    /// `Description`.
    description: Option<String>,
    /// `ProductID`s.
    products: Vec<String>,
}

/// A CVSS `ScoreSet`.
#[derive(Debug, Default)]
struct RawScoreSet {
    /// `BaseScore`, as text.
    base_score: Option<String>,
    /// `Vector`.
    vector: Option<String>,
    /// `ProductID`s.
    products: Vec<String>,
}

/// A `Remediation`.
#[derive(Debug, Default)]
struct RawRemediation {
    /// `Type`: a name (XML) or a number (JSON).
    kind: Option<String>,
    /// `Description`: the KB number for a KB.
    description: Option<String>,
    /// `ProductID`s.
    products: Vec<String>,
    /// `RestartRequired`.
    restart_required: Option<String>,
    /// `SubType`.
    sub_type: Option<String>,
    /// `Supercedence`.
    supercedence: Option<String>,
}

/// A vulnerability checked: what its KBs take from it.
#[derive(Debug)]
struct Vuln {
    /// Its CVE id, and the key it sorts by.
    cve: CveKey,
    /// An Exploit Status says `Exploited:Yes`.
    exploited: bool,
    /// Its Severity threats with their products.
    severities: Vec<(Severity, Vec<String>)>,
    /// Its usable score sets.
    scores: Vec<Score>,
    /// Its KB remediations.
    fixes: Vec<Fix>,
    /// Its earliest revision date.
    first_date: Option<Timestamp>,
}

/// A usable CVSS score set.
#[derive(Debug)]
struct Score {
    /// The base score, 0 to 10.
    base: f64,
    /// The vector, when given.
    vector: Option<String>,
    /// The products it is for; empty for all.
    products: Vec<String>,
}

/// A remediation that is a KB.
#[derive(Debug)]
struct Fix {
    /// The KB number.
    kb: u64,
    /// The products it is for.
    products: Vec<String>,
    /// RestartRequired is Yes or Maybe.
    restart: bool,
    /// Its SubType.
    sub_type: Option<String>,
    /// The KB numbers in its Supercedence.
    supersedes: Vec<u64>,
}

/// A CVE id with the numbers it sorts by: `CVE-2023-5996` before `CVE-2023-36007`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct CveKey {
    /// The year.
    year: u32,
    /// The number within the year.
    number: u64,
    /// The id as written.
    id: String,
}

impl CveKey {
    /// Reads a CVE id (`CVE-2023-36033`); None for anything else.
    fn parse(id: &str) -> Option<Self> {
        let (year, number) = id.strip_prefix("CVE-")?.split_once('-')?;
        let digits = |s: &str, min: usize| s.len() >= min && s.bytes().all(|b| b.is_ascii_digit());
        if year.len() != 4 || !digits(year, 4) || !digits(number, 4) {
            return None;
        }
        Some(Self {
            year: year.parse().ok()?,
            number: number.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// Where a Vulnerability record is: `Vulnerability 12 (Ordinal 97)`.
fn place(index: usize, ordinal: Option<&str>) -> String {
    match ordinal {
        Some(ordinal) => format!("Vulnerability {} (Ordinal {ordinal})", index + 1),
        None => format!("Vulnerability {}", index + 1),
    }
}

/// Checks every vulnerability and gathers them by KB.
fn build(file: &str, document: Document) -> Parsed<PatchSpec> {
    let mut parsed = Parsed::default();
    let mut skip = |at: String, id: Option<String>, problem: Problem| {
        parsed.skipped.push(Skipped {
            file: file.to_string(),
            at,
            id,
            problem,
        });
    };
    let initial_release = match document.initial_release.as_deref().map(parse_date) {
        Some(Err(problem)) => {
            skip("DocumentTracking".to_string(), None, problem);
            None
        }
        Some(Ok(date)) => date,
        None => None,
    };
    let mut kbs: BTreeMap<u64, KbAcc> = BTreeMap::new();
    for (index, entry) in document.vulnerabilities.into_iter().enumerate() {
        let at = place(index, entry.ordinal.as_deref());
        match check(entry, &at, &mut skip) {
            Ok(vuln) => add(&mut kbs, &vuln),
            Err((id, problem)) => skip(at, id, problem),
        }
    }
    let names = Names {
        title: document.title.as_deref(),
        products: &document.products,
    };
    for (kb, acc) in kbs {
        match finish(kb, acc, initial_release, &names) {
            Some(patch) => parsed.records.push(patch),
            None => skip(
                format!("KB{kb}"),
                Some(format!("KB{kb}")),
                Problem::Missing {
                    field: "InitialReleaseDate or RevisionHistory Date".to_string(),
                },
            ),
        }
    }
    parsed
}

/// Checks one vulnerability: its CVE id, score sets, severities and KB remediations.
/// Parts that cannot be used are reported through `skip` and left out; a record
/// without a usable CVE id or content is an error.
fn check(
    entry: Entry,
    at: &str,
    skip: &mut impl FnMut(String, Option<String>, Problem),
) -> Result<Vuln, (Option<String>, Problem)> {
    let raw_cve = entry
        .cve
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let id = raw_cve.map(str::to_string);
    let raw = entry.body.map_err(|problem| (id.clone(), problem))?;
    let Some(raw_cve) = raw_cve else {
        let field = "CVE".to_string();
        return Err((None, Problem::Missing { field }));
    };
    let Some(cve) = CveKey::parse(raw_cve) else {
        let problem = Problem::Invalid {
            field: "CVE".to_string(),
            why: "not a CVE id".to_string(),
            got: shorten(raw_cve),
        };
        return Err((id, problem));
    };
    let mut scores = Vec::new();
    for (n, set) in raw.score_sets.into_iter().enumerate() {
        match score(set) {
            Ok(Some(score)) => scores.push(score),
            Ok(None) => {}
            Err(problem) => skip(format!("{at}, ScoreSet {}", n + 1), id.clone(), problem),
        }
    }
    let mut first_date: Option<Timestamp> = None;
    for (n, date) in raw.revision_dates.iter().enumerate() {
        match date.as_deref().map(parse_date) {
            Some(Ok(Some(date))) => first_date = Some(first_date.map_or(date, |d| d.min(date))),
            Some(Err(problem)) => skip(format!("{at}, Revision {}", n + 1), id.clone(), problem),
            Some(Ok(None)) | None => {}
        }
    }
    Ok(Vuln {
        cve,
        exploited: raw.threats.iter().any(is_exploited),
        severities: raw.threats.into_iter().filter_map(severity).collect(),
        scores,
        fixes: raw.remediations.into_iter().filter_map(fix).collect(),
        first_date,
    })
}

/// A score set's base score and vector; None for a set that gives neither.
fn score(set: RawScoreSet) -> Result<Option<Score>, Problem> {
    let base = set
        .base_score
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let vector = set
        .vector
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    let Some(base) = base else {
        return match vector {
            None => Ok(None),
            Some(_) => Err(Problem::Missing {
                field: "BaseScore".to_string(),
            }),
        };
    };
    let score = base
        .parse::<f64>()
        .ok()
        .filter(|s| (0.0..=10.0).contains(s))
        .ok_or_else(|| Problem::Invalid {
            field: "BaseScore".to_string(),
            why: "not a number from 0 to 10".to_string(),
            got: shorten(base),
        })?;
    if let Some(vector) = &vector {
        vector
            .parse::<cvss::Cvss>()
            .map_err(|e| Problem::BadVector {
                vector: shorten(vector),
                why: e.to_string(),
            })?;
    }
    Ok(Some(Score {
        base: score,
        vector,
        products: set.products,
    }))
}

/// Whether a threat is an Exploit Status saying `Exploited:Yes`.
fn is_exploited(threat: &RawThreat) -> bool {
    let kind = threat.kind.as_deref().map(str::trim);
    if !matches!(kind, Some("1")) && !kind.is_some_and(|k| k.eq_ignore_ascii_case("Exploit Status"))
    {
        return false;
    }
    let description = threat.description.as_deref().unwrap_or_default();
    description.split(';').any(|part| {
        part.split_once(':').is_some_and(|(key, value)| {
            key.trim().eq_ignore_ascii_case("Exploited") && value.trim().eq_ignore_ascii_case("Yes")
        })
    })
}

/// A Severity threat's rating and products; None for other threats and ratings.
fn severity(threat: RawThreat) -> Option<(Severity, Vec<String>)> {
    let kind = threat.kind.as_deref()?.trim();
    if kind != "3" && !kind.eq_ignore_ascii_case("Severity") {
        return None;
    }
    let rating = match threat.description?.trim().to_ascii_lowercase().as_str() {
        "critical" => Severity::Critical,
        "important" => Severity::High,
        "moderate" => Severity::Medium,
        "low" => Severity::Low,
        _ => return None,
    };
    Some((rating, threat.products))
}

/// A remediation that is a KB; None for the others.
fn fix(remediation: RawRemediation) -> Option<Fix> {
    let kind = remediation.kind.as_deref()?.trim();
    if kind != "2" && !kind.eq_ignore_ascii_case("Vendor Fix") {
        return None;
    }
    let kb = kb_number(remediation.description.as_deref()?)?;
    let restart = remediation.restart_required.as_deref().map(str::trim);
    let supersedes = remediation
        .supercedence
        .as_deref()
        .unwrap_or_default()
        .split([',', ';', ' ', '\t', '\n', '\r'])
        .filter_map(kb_number)
        .filter(|&other| other != kb)
        .collect();
    Some(Fix {
        kb,
        products: remediation.products,
        restart: restart
            .is_some_and(|r| r.eq_ignore_ascii_case("Yes") || r.eq_ignore_ascii_case("Maybe")),
        sub_type: remediation
            .sub_type
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        supersedes,
    })
}

/// A KB number (`5032189`, or `KB5032189`); None for anything else.
fn kb_number(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .strip_prefix("KB")
        .or_else(|| text.strip_prefix("kb"))
        .unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n| n > 0)
}

/// Reads a date of the document: with an offset, or without one as UTC. None for the
/// placeholder dates of year 1 and for empty text.
fn parse_date(text: &str) -> Result<Option<Timestamp>, Problem> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let timestamp = text.parse::<Timestamp>().ok().or_else(|| {
        let civil = text
            .parse::<jiff::civil::DateTime>()
            .or_else(|_| {
                text.parse::<jiff::civil::Date>()
                    .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
            })
            .ok()?;
        jiff::tz::TimeZone::UTC.to_timestamp(civil).ok()
    });
    match timestamp {
        Some(t) if t.to_zoned(jiff::tz::TimeZone::UTC).year() <= 1900 => Ok(None),
        Some(t) => Ok(Some(t)),
        None => Err(Problem::Invalid {
            field: "Date".to_string(),
            why: "not a date".to_string(),
            got: shorten(text),
        }),
    }
}

/// What one KB gathers from the vulnerabilities that list it.
#[derive(Debug, Default)]
struct KbAcc {
    /// The products of its remediations.
    products: BTreeSet<String>,
    /// The SubTypes of its remediations.
    sub_types: BTreeSet<String>,
    /// One of its remediations needs (or may need) a restart.
    restart: bool,
    /// The KB numbers it supersedes.
    supersedes: BTreeSet<u64>,
    /// Its CVEs, with their best score set for its products.
    cves: BTreeMap<CveKey, Option<(f64, Option<String>)>>,
    /// One of its CVEs is exploited.
    exploited: bool,
    /// The highest severity of its CVEs for its products.
    severity: Option<Severity>,
    /// The earliest revision date of its CVEs.
    first_date: Option<Timestamp>,
}

/// Adds one vulnerability to the KBs its remediations name.
fn add(kbs: &mut BTreeMap<u64, KbAcc>, vuln: &Vuln) {
    let mut products: BTreeMap<u64, BTreeSet<&str>> = BTreeMap::new();
    for fix in &vuln.fixes {
        let acc = kbs.entry(fix.kb).or_default();
        acc.products.extend(fix.products.iter().cloned());
        acc.sub_types.extend(fix.sub_type.iter().cloned());
        acc.restart |= fix.restart;
        acc.supersedes.extend(fix.supersedes.iter().copied());
        products
            .entry(fix.kb)
            .or_default()
            .extend(fix.products.iter().map(String::as_str));
    }
    for (kb, products) in products {
        let acc = kbs.entry(kb).or_default();
        let applies = |for_products: &[String]| {
            for_products.is_empty() || for_products.iter().any(|p| products.contains(p.as_str()))
        };
        let best = vuln
            .scores
            .iter()
            .filter(|s| applies(&s.products))
            .fold(None::<&Score>, |best, s| match best {
                Some(b) if b.base >= s.base => Some(b),
                _ => Some(s),
            })
            .map(|s| (s.base, s.vector.clone()));
        let slot = acc.cves.entry(vuln.cve.clone()).or_default();
        if best.as_ref().map(|b| b.0) > slot.as_ref().map(|s| s.0) {
            *slot = best;
        }
        let severity = vuln
            .severities
            .iter()
            .filter(|(_, for_products)| applies(for_products))
            .map(|(severity, _)| *severity)
            .max();
        acc.severity = acc.severity.max(severity);
        acc.exploited |= vuln.exploited;
        acc.first_date = match (acc.first_date, vuln.first_date) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// The document-wide names a Patch's title and product are made of.
struct Names<'a> {
    /// The document's title.
    title: Option<&'a str>,
    /// ProductID → FullProductName.
    products: &'a HashMap<String, String>,
}

/// The Patch of one KB; None when no date is known for it.
fn finish(
    kb: u64,
    acc: KbAcc,
    initial_release: Option<Timestamp>,
    names: &Names<'_>,
) -> Option<PatchSpec> {
    let released_at = match (initial_release, acc.first_date) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    let id = format!("KB{kb}");
    let products = product_names(&acc.products, names.products);
    let cves: Vec<CveRef> = acc
        .cves
        .into_iter()
        .map(|(key, score)| CveRef {
            id: key.id,
            cvss_score: score.as_ref().map(|s| s.0),
            cvss_vector: score.and_then(|s| s.1),
            epss: None,
        })
        .collect();
    let cvss_score = cves
        .iter()
        .filter_map(|c| c.cvss_score)
        .fold(None, |max: Option<f64>, s| {
            Some(max.map_or(s, |m| m.max(s)))
        });
    let sub_type = acc.sub_types.into_iter().collect::<Vec<_>>().join("/");
    Some(PatchSpec {
        title: Some(title(names.title, &sub_type, &products)),
        vendor: VENDOR.to_string(),
        product: (!products.is_empty()).then(|| products.join("; ")),
        classification: Classification::Security,
        cvss_score,
        vendor_severity: acc.severity,
        cves,
        known_exploited: acc.exploited,
        released_at,
        reboot_required: acc.restart,
        uninstallable: true,
        supersedes: acc
            .supersedes
            .into_iter()
            .filter(|&other| other != kb)
            .map(|other| format!("KB{other}"))
            .collect(),
        packages: Vec::new(),
        kev: None,
        epss: None,
        id,
    })
}

/// Suffixes of product names that only tell the builds of one product apart.
const PLATFORM_SUFFIXES: [&str; 12] = [
    " (Server Core installation)",
    " for 32-bit Systems",
    " for 64-bit Systems",
    " for x64-based Systems",
    " for x86-based Systems",
    " for ARM64-based Systems",
    " for Itanium-Based Systems",
    " (32-bit edition)",
    " (64-bit edition)",
    " (32-bit editions)",
    " (64-bit editions)",
    " for ARM-based Systems",
];

/// The distinct names of some products, without their platform suffixes, sorted.
fn product_names(ids: &BTreeSet<String>, names: &HashMap<String, String>) -> Vec<String> {
    let distinct: BTreeSet<String> = ids
        .iter()
        .filter_map(|id| names.get(id))
        .map(|name| {
            let mut name = name.clone();
            for suffix in PLATFORM_SUFFIXES {
                name = name.replace(suffix, "");
            }
            name.split_whitespace().collect::<Vec<_>>().join(" ")
        })
        .filter(|name| !name.is_empty())
        .collect();
    distinct.into_iter().collect()
}

/// A Patch's title: `November 2023 Security Updates: Security Update for Windows 10
/// Version 21H2; Windows 10 Version 22H2`.
fn title(document: Option<&str>, sub_type: &str, products: &[String]) -> String {
    let mut title = String::new();
    if let Some(document) = document.map(str::trim).filter(|t| !t.is_empty()) {
        title.push_str(document);
        title.push_str(": ");
    }
    title.push_str(if sub_type.is_empty() {
        "Update"
    } else {
        sub_type
    });
    if !products.is_empty() {
        title.push_str(" for ");
        let shown = products.len().min(TITLE_PRODUCTS);
        title.push_str(&products[..shown].join("; "));
        if products.len() > shown {
            title.push_str(&format!(" and {} more", products.len() - shown));
        }
    }
    title
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cve_ids_sort_by_year_and_number() {
        let a = CveKey::parse("CVE-2023-5996").unwrap();
        let b = CveKey::parse("CVE-2023-36007").unwrap();
        let c = CveKey::parse("CVE-2022-99999").unwrap();
        assert!(c < a && a < b);
        for bad in [
            "ADV990001",
            "CVE-23-1234",
            "CVE-2023-123",
            "CVE-2023-12a4",
            "cve-2023-1234",
        ] {
            assert_eq!(CveKey::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn kb_numbers_are_numbers() {
        assert_eq!(kb_number(" 5032189 "), Some(5032189));
        assert_eq!(kb_number("KB5032189"), Some(5032189));
        for bad in [
            "Release Notes",
            "kernel",
            "",
            "KB",
            "0",
            "https://x/5032189",
            "-1",
        ] {
            assert_eq!(kb_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn dates_without_a_zone_are_utc_and_year_one_is_no_date() {
        let t = |s: &str| parse_date(s).unwrap().map(|t| t.to_string());
        assert_eq!(
            t("2023-11-14T08:00:00"),
            Some("2023-11-14T08:00:00Z".into())
        );
        assert_eq!(
            t("2023-11-14T08:00:00-08:00"),
            Some("2023-11-14T16:00:00Z".into())
        );
        assert_eq!(t("2023-11-14"), Some("2023-11-14T00:00:00Z".into()));
        assert_eq!(t("0001-01-01T00:00:00"), None);
        assert_eq!(t(" "), None);
        assert!(matches!(
            parse_date("14/11/2023"),
            Err(Problem::Invalid { .. })
        ));
    }

    #[test]
    fn exploit_status_is_read_field_by_field() {
        let threat = |kind: &str, text: &str| RawThreat {
            kind: Some(kind.into()),
            description: Some(text.into()),
            products: vec![],
        };
        assert!(is_exploited(&threat(
            "Exploit Status",
            "Publicly Disclosed:No;Exploited:Yes;Latest Software Release:Exploitation Detected"
        )));
        assert!(is_exploited(&threat("1", "Exploited: yes")));
        assert!(!is_exploited(&threat(
            "1",
            "Publicly Disclosed:Yes;Exploited:No"
        )));
        assert!(!is_exploited(&threat("3", "Exploited:Yes")));
    }

    #[test]
    fn supersedence_lists_are_split_and_never_name_the_kb_itself() {
        let remediation = RawRemediation {
            kind: Some("Vendor Fix".into()),
            description: Some("5032189".into()),
            supercedence: Some("5031356; 5031357,KB5031358 n/a 5032189".into()),
            restart_required: Some("Maybe".into()),
            ..RawRemediation::default()
        };
        let fix = fix(remediation).unwrap();
        assert_eq!(fix.supersedes, vec![5031356, 5031357, 5031358]);
        assert!(fix.restart);
    }

    #[test]
    fn product_names_lose_their_platform_suffixes() {
        let names: HashMap<String, String> = [
            ("1", "Windows 10 Version 22H2 for x64-based Systems"),
            ("2", "Windows 10 Version 22H2 for 32-bit Systems"),
            (
                "3",
                "Windows Server 2022, 23H2 Edition (Server Core installation)",
            ),
            (
                "4",
                "Windows Server 2008 R2 for x64-based Systems Service Pack 1",
            ),
        ]
        .map(|(id, name)| (id.to_string(), name.to_string()))
        .into();
        let ids: BTreeSet<String> = ["1", "2", "3", "4", "5"].map(String::from).into();
        assert_eq!(
            product_names(&ids, &names),
            [
                "Windows 10 Version 22H2",
                "Windows Server 2008 R2 Service Pack 1",
                "Windows Server 2022, 23H2 Edition"
            ]
        );
        let four = ["A", "B", "C", "D"].map(String::from);
        assert_eq!(
            title(Some("T"), "", &four),
            "T: Update for A; B; C and 1 more"
        );
        assert_eq!(
            title(None, "Monthly Rollup", &four[..1]),
            "Monthly Rollup for A"
        );
    }

    #[test]
    fn neither_json_nor_xml_is_a_format_error() {
        for bad in [&b""[..], b"   ", b"\xEF\xBB\xBF", b"CVE,KB\n", b"\x00\x01"] {
            assert!(
                matches!(parse("f", bad), Err(FeedError::Format { .. })),
                "{bad:?}"
            );
        }
    }
}
