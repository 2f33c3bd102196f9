//! OSV records of Linux distributions (Debian, Ubuntu, AlmaLinux, Rocky Linux): one
//! Patch per advisory, with its packages and fixed versions per release.
//!
//! Input: one JSON document (a record, or an array of records) with [`parse`], or OSV's
//! zip export (`<Ecosystem>/all.zip`, one record per member) with [`parse_zip`]. Results
//! of several files combine with [`Parsed::extend`]; [`merge`] then folds the records
//! that share an id (AlmaLinux ships one advisory covering 8 and 9 as identical files in
//! both release folders) into one Patch.
//!
//! How a record becomes a [`PatchSpec`]:
//!
//! - Only advisories are imported: DSA/DLA (Debian), USN (Ubuntu), ALSA/ALBA/ALEA
//!   (AlmaLinux), RLSA/RLBA/RLEA (Rocky). Per-CVE records (`UBUNTU-CVE-…`,
//!   `DEBIAN-CVE-…`) are left out as [`Problem::NotAnAdvisory`]: what an agent installs is the
//!   advisory that ships the fix, and the per-CVE records repeat its packages (and list
//!   releases with no fix at all). A record with `withdrawn` set is skipped the same way.
//! - `vendor` comes from the ecosystem (`Rocky Linux:9` → `Rocky Linux`); `product` lists
//!   the releases covered, `AlmaLinux 8, AlmaLinux 9`, `Ubuntu Pro 18.04 LTS`.
//! - `classification`: `…SA` ids are Security; the RPM distributions' bug-fix advisories
//!   (ALBA, RLBA) are Other (not Critical: nothing marks them as critical fixes, and
//!   policies often approve Critical with Security); enhancement advisories (ALEA, RLEA)
//!   are Feature. An id of another form is Security when it names a CVE, else Other.
//! - `cves`: the ids in `aliases`, `upstream`, `related` and Ubuntu's
//!   `database_specific.cves_map` that are CVE ids (`UBUNTU-CVE-2023-46724` counts as
//!   `CVE-2023-46724`), deduplicated and sorted. A CVE's score is computed (with the
//!   `cvss` crate, v2/v3/v4) from the vectors Ubuntu's `cves_map` gives it, the highest
//!   one winning; the record's own `severity` vectors (top level or per affected package)
//!   count for the record's `cvssScore`, and for its CVE when it names exactly one.
//! - A vector that does not parse is reported (a [`Skipped`] entry with
//!   [`Problem::BadVector`], at the record's position, with its id) and left out: the
//!   record is still imported, without that score.
//! - `vendorSeverity`: the highest of the distribution's own ratings: the summary's
//!   `Critical:`/`Important:`/`Moderate:`/`Low:` prefix (AlmaLinux, Rocky), Ubuntu's
//!   `Ubuntu` severities (`critical`, `high`, `medium`, `low`, `negligible`) and
//!   `ubuntu_priority`, and a `database_specific.severity` word.
//! - `releasedAt`: `published` (it does not change when a record is rewritten), else
//!   `modified`.
//! - `packages`: one entry per `fixed` event of an `ECOSYSTEM` range, for the entries of
//!   `affected` whose ecosystem is `Debian:<release>`, `Ubuntu:<release…>`,
//!   `AlmaLinux:<release>` or `Rocky Linux:<release>`; other ecosystems and entries with no
//!   fixed version are left out. The version is kept as written (epochs included). A
//!   package listed several times (AlmaLinux module streams, one build per stream) keeps
//!   one entry per distinct fixed version: the installed package is fixed when its
//!   version is at least one of them. Debian and Ubuntu name source packages, with
//!   Ubuntu's binary package names in `binaries`; AlmaLinux and Rocky name binary RPMs.
//! - A record with no such package is skipped: [`Problem::Empty`] when `affected` is
//!   empty or none of its entries in these ecosystems has a fixed version,
//!   [`Problem::UnknownEcosystem`] when all of its packages are in other ecosystems.
//! - `rebootRequired` when a package is a kernel (`kernel`, `kernel-*`, `linux`,
//!   `linux-*`: Debian's and Ubuntu's kernel source packages, `linux-firmware`) or one of
//!   the packages Red Hat lists as needing a reboot (glibc, systemd, udev, dbus,
//!   dbus-broker) or CPU microcode (`microcode_ctl`, `intel-microcode`,
//!   `amd64-microcode`). `uninstallable` is the opposite: the Linux agent rolls a
//!   package back by downgrading it to the version it replaced (and says plainly when no
//!   repository or cache still has it), but kernels, glibc, systemd and the like are not
//!   downgraded, so a ring halting with `onFailure: Rollback` pauses instead for them.
//! - A record whose fields have the wrong types (or that has no `id`) is skipped as
//!   [`Problem::Invalid`]/[`Problem::Missing`], naming the field; the other records go on.
//!
//! The records come out sorted by id, with every list sorted and deduplicated, so that a
//! re-import of the same data gives the same Patches.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::io::{Cursor, Read};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{Classification, CveRef, PackageFix, PackageKind, PatchSpec, Severity};

use super::{FeedError, Parsed, Problem, Skipped, json_kind, shorten};

/// The format named in a [`FeedError`] for a JSON document.
const JSON_FORMAT: &str = "OSV JSON";
/// The format named in a [`FeedError`] for a zip export.
const ZIP_FORMAT: &str = "OSV zip export";
/// The largest zip member read (an OSV record is a few kB; a kernel USN a few hundred).
const MAX_MEMBER_BYTES: u64 = 64 << 20;

/// Parses one OSV JSON document: a record, or an array of records.
///
/// A record that cannot be imported is skipped and reported (`record N`, 1-based, with
/// its id when readable); only a document that is not JSON, or neither a record nor an
/// array, is an error.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Parsed<PatchSpec>, FeedError> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| FeedError::Format {
        file: file.to_string(),
        format: JSON_FORMAT,
        why: e.to_string(),
    })?;
    if !matches!(doc, Value::Array(_) | Value::Object(_)) {
        return Err(FeedError::Format {
            file: file.to_string(),
            format: JSON_FORMAT,
            why: format!(
                "expected a record or an array of records, got {}",
                json_kind(&doc)
            ),
        });
    }
    let mut parsed = document(file, "record 1", "record ", &doc);
    sort_by_id(&mut parsed.records);
    Ok(parsed)
}

/// Parses OSV's zip export (`<Ecosystem>/all.zip`): one JSON record per member.
///
/// A member that cannot be read or imported is skipped and reported at its member name;
/// the others go on. Only an archive that cannot be opened is an error.
pub fn parse_zip(file: &str, bytes: &[u8]) -> Result<Parsed<PatchSpec>, FeedError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| FeedError::Format {
        file: file.to_string(),
        format: ZIP_FORMAT,
        why: e.to_string(),
    })?;
    let mut parsed = Parsed::default();
    for index in 0..archive.len() {
        match read_member(&mut archive, index) {
            Member::File(name, data) => parsed.extend(member(file, &name, &data)),
            Member::Directory => {}
            Member::Unreadable(at, problem) => parsed.skipped.push(Skipped {
                file: file.to_string(),
                at,
                id: None,
                problem,
            }),
        }
    }
    sort_by_id(&mut parsed.records);
    Ok(parsed)
}

/// Folds the records that share an id into one, and sorts them by id: the union of
/// their packages and CVEs (a CVE keeps its highest-scoring vector), the earliest
/// release, the highest scores and ratings. Identical records (one advisory shipped in
/// several release folders) become one.
pub fn merge(records: Vec<PatchSpec>) -> Vec<PatchSpec> {
    let mut by_id: BTreeMap<String, PatchSpec> = BTreeMap::new();
    for record in records {
        match by_id.entry(record.id.clone()) {
            Entry::Vacant(slot) => {
                slot.insert(record);
            }
            Entry::Occupied(mut slot) => merge_into(slot.get_mut(), record),
        }
    }
    by_id.into_values().collect()
}

/// Adds `other`'s data (same id) to `into`.
fn merge_into(into: &mut PatchSpec, other: PatchSpec) {
    if *into == other {
        return;
    }
    into.title = into.title.take().or(other.title);
    into.released_at = into.released_at.min(other.released_at);
    into.cvss_score = max_score(into.cvss_score, other.cvss_score);
    into.vendor_severity = into.vendor_severity.max(other.vendor_severity);
    into.reboot_required |= other.reboot_required;
    into.uninstallable &= other.uninstallable;
    into.packages.extend(other.packages);
    sort_packages(&mut into.packages);
    into.product = product(&into.packages);
    let mut cves: BTreeMap<String, Option<Scored>> = BTreeMap::new();
    for cve in into.cves.drain(..).chain(other.cves) {
        let scored = cve
            .cvss_score
            .zip(cve.cvss_vector)
            .map(|(score, vector)| Scored { score, vector });
        offer_cve(&mut cves, cve.id, scored);
    }
    into.cves = cve_refs(cves);
}

/// What one zip member holds.
enum Member {
    /// A file: its name and bytes.
    File(String, Vec<u8>),
    /// A directory entry.
    Directory,
    /// A member that cannot be read: where it is and why.
    Unreadable(String, Problem),
}

/// Reads zip member `index`.
fn read_member(archive: &mut zip::ZipArchive<Cursor<&[u8]>>, index: usize) -> Member {
    let mut entry = match archive.by_index(index) {
        Ok(entry) => entry,
        Err(e) => {
            let at = format!("member {}", index + 1);
            let problem = Problem::Invalid {
                field: "zip member".into(),
                why: e.to_string(),
                got: at.clone(),
            };
            return Member::Unreadable(at, problem);
        }
    };
    if entry.is_dir() {
        return Member::Directory;
    }
    let name = entry.name().to_string();
    let mut data = Vec::new();
    let read = entry
        .by_ref()
        .take(MAX_MEMBER_BYTES + 1)
        .read_to_end(&mut data);
    let why = match read {
        Err(e) => e.to_string(),
        Ok(_) if data.len() as u64 > MAX_MEMBER_BYTES => {
            format!("larger than {MAX_MEMBER_BYTES} bytes")
        }
        Ok(_) => return Member::File(name, data),
    };
    let problem = Problem::Invalid {
        field: "zip member".into(),
        why,
        got: shorten(&name),
    };
    Member::Unreadable(name, problem)
}

/// Parses one zip member: a record (reported at the member's name), or an array.
fn member(file: &str, name: &str, data: &[u8]) -> Parsed<PatchSpec> {
    match serde_json::from_slice::<Value>(data) {
        Ok(doc) => document(file, name, &format!("{name} record "), &doc),
        Err(e) => Parsed {
            records: Vec::new(),
            skipped: vec![Skipped {
                file: file.to_string(),
                at: name.to_string(),
                id: None,
                problem: Problem::Invalid {
                    field: "record".into(),
                    why: format!("not JSON: {e}"),
                    got: shorten(&String::from_utf8_lossy(data)),
                },
            }],
        },
    }
}

/// The records of one JSON document: an array's elements are at `{prefix}N`, a lone
/// record at `single`.
fn document(file: &str, single: &str, prefix: &str, doc: &Value) -> Parsed<PatchSpec> {
    match doc {
        Value::Array(items) => {
            let mut parsed = Parsed::default();
            for (i, item) in items.iter().enumerate() {
                parsed.extend(record(file, &format!("{prefix}{}", i + 1), item));
            }
            parsed
        }
        _ => record(file, single, doc),
    }
}

/// One record: the Patch and the vectors it had to leave out, or why it is skipped.
fn record(file: &str, at: &str, value: &Value) -> Parsed<PatchSpec> {
    let id = value
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_string);
    let skipped = |problem| Skipped {
        file: file.to_string(),
        at: at.to_string(),
        id: id.clone(),
        problem,
    };
    match convert(value) {
        Ok(converted) => Parsed {
            records: vec![converted.spec],
            skipped: converted.bad_vectors.into_iter().map(skipped).collect(),
        },
        Err(problem) => Parsed {
            records: Vec::new(),
            skipped: vec![skipped(problem)],
        },
    }
}

/// A record as the feed writes it: only the fields the Patch needs, each optional so
/// that a missing one is reported by name rather than as a parse failure.
#[derive(Deserialize)]
struct RawRecord {
    id: Option<String>,
    summary: Option<String>,
    published: Option<String>,
    modified: Option<String>,
    withdrawn: Option<String>,
    aliases: Option<Vec<String>>,
    upstream: Option<Vec<String>>,
    related: Option<Vec<String>>,
    severity: Option<Vec<RawSeverity>>,
    /// Read entry by entry: an entry of another ecosystem is never read further.
    affected: Option<Vec<Value>>,
    database_specific: Option<Value>,
}

/// An affected package of an imported ecosystem.
#[derive(Deserialize)]
struct RawAffected {
    package: RawPackage,
    ranges: Option<Vec<RawRange>>,
    severity: Option<Vec<RawSeverity>>,
    ecosystem_specific: Option<Value>,
    database_specific: Option<Value>,
}

/// `affected[].package`.
#[derive(Deserialize)]
struct RawPackage {
    ecosystem: String,
    name: String,
}

/// `affected[].ranges[]`.
#[derive(Deserialize)]
struct RawRange {
    #[serde(rename = "type")]
    kind: String,
    events: Vec<RawEvent>,
}

/// One event of a range; only `fixed` matters here.
#[derive(Deserialize)]
struct RawEvent {
    fixed: Option<String>,
}

/// A `severity[]` entry: a CVSS vector, or a distribution's own rating.
#[derive(Deserialize)]
struct RawSeverity {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

/// A Patch, and the broken vectors left out of it.
struct Converted {
    spec: PatchSpec,
    bad_vectors: Vec<Problem>,
}

/// A computed CVSS score and the vector it came from.
#[derive(Clone, Debug, PartialEq)]
struct Scored {
    score: f64,
    vector: String,
}

impl Scored {
    /// Whether `self` should replace `other`: a higher score, or the same score from a
    /// vector that sorts first (so that the choice does not depend on the order).
    fn beats(&self, other: &Scored) -> bool {
        match self.score.total_cmp(&other.score) {
            Ordering::Greater => true,
            Ordering::Equal => self.vector < other.vector,
            Ordering::Less => false,
        }
    }
}

/// What a record's severities add up to.
#[derive(Default)]
struct Scores {
    /// Per CVE id, its best vector.
    cves: BTreeMap<String, Option<Scored>>,
    /// The best vector given for the record as a whole.
    record: Option<Scored>,
    /// The distribution's highest own rating.
    vendor: Option<Severity>,
    /// Vectors that do not parse, once each.
    bad_vectors: Vec<Problem>,
}

impl Scores {
    /// Scores a vector; a broken one is noted (once) and gives nothing.
    fn vector(&mut self, vector: &str) -> Option<Scored> {
        let vector = vector.trim();
        match vector.parse::<cvss::Cvss>() {
            Ok(cvss) => Some(Scored {
                score: cvss.score(),
                vector: vector.to_string(),
            }),
            Err(e) => {
                let problem = Problem::BadVector {
                    vector: vector.to_string(),
                    why: e.to_string(),
                };
                if !self.bad_vectors.contains(&problem) {
                    self.bad_vectors.push(problem);
                }
                None
            }
        }
    }

    /// Takes a `severity[]` list: vectors go to `cve` (or to the record when `None`),
    /// ratings to the vendor severity.
    fn severities(&mut self, list: &[RawSeverity], cve: Option<&str>) {
        for entry in list {
            match entry.kind.as_str() {
                "CVSS_V2" | "CVSS_V3" | "CVSS_V4" => {
                    let scored = self.vector(&entry.score);
                    match cve {
                        Some(id) => offer_cve(&mut self.cves, id.to_string(), scored),
                        None => offer(&mut self.record, scored),
                    }
                }
                "Ubuntu" => self.rating(&entry.score),
                _ => {}
            }
        }
    }

    /// Takes a distribution's own rating word.
    fn rating(&mut self, word: &str) {
        self.vendor = self.vendor.max(rating(word));
    }

    /// Takes a `database_specific` or `ecosystem_specific` object: Ubuntu's `cves_map`
    /// and a `severity` or `ubuntu_priority` word. Read leniently (these objects are free
    /// form): what is not in the expected shape is ignored.
    fn specific(&mut self, value: Option<&Value>) {
        let Some(value) = value else { return };
        for key in ["severity", "ubuntu_priority"] {
            if let Some(word) = value.get(key).and_then(Value::as_str) {
                self.rating(word);
            }
        }
        let cves = value
            .get("cves_map")
            .and_then(|m| m.get("cves"))
            .and_then(Value::as_array);
        for cve in cves.into_iter().flatten() {
            let Some(id) = cve.get("id").and_then(Value::as_str).and_then(cve_id) else {
                continue;
            };
            offer_cve(&mut self.cves, id.clone(), None);
            let list = cve
                .get("severity")
                .and_then(|s| Vec::<RawSeverity>::deserialize(s).ok())
                .unwrap_or_default();
            self.severities(&list, Some(&id));
        }
    }
}

/// Keeps the better of `slot` and `scored`.
fn offer(slot: &mut Option<Scored>, scored: Option<Scored>) {
    if let Some(scored) = scored
        && slot.as_ref().is_none_or(|old| scored.beats(old))
    {
        *slot = Some(scored);
    }
}

/// Adds a CVE, keeping its better vector.
fn offer_cve(cves: &mut BTreeMap<String, Option<Scored>>, id: String, scored: Option<Scored>) {
    offer(cves.entry(id).or_default(), scored);
}

/// The Patch for one record, or why it cannot be imported.
fn convert(value: &Value) -> Result<Converted, Problem> {
    if !value.is_object() {
        return Err(Problem::Invalid {
            field: "record".into(),
            why: "expected an OSV record (a JSON object)".into(),
            got: json_kind(value).into(),
        });
    }
    if let Some(id) = value.get("id").and_then(Value::as_str)
        && let Some(prefix) = ["UBUNTU-CVE-", "DEBIAN-CVE-"]
            .into_iter()
            .find(|p| id.starts_with(p))
    {
        return Err(Problem::NotAnAdvisory(format!(
            "{prefix}… is a per-CVE record: its fix is imported from the advisory"
        )));
    }
    let raw: RawRecord = typed(value, "")?;
    let id = raw
        .id
        .clone()
        .filter(|id| !id.is_empty())
        .ok_or(missing("id"))?;
    if let Some(when) = &raw.withdrawn {
        return Err(Problem::NotAnAdvisory(format!("withdrawn on {when}")));
    }
    let released_at = released_at(&raw)?;
    let mut scores = Scores::default();
    let packages = packages(&raw, &mut scores)?;
    scores.severities(raw.severity.as_deref().unwrap_or_default(), None);
    scores.specific(raw.database_specific.as_ref());
    if let Some(word) = raw.summary.as_deref().and_then(summary_rating) {
        scores.rating(word);
    }
    let ids = [&raw.aliases, &raw.upstream, &raw.related];
    for cve in ids
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|s| cve_id(s))
    {
        offer_cve(&mut scores.cves, cve, None);
    }
    let title = raw.summary.filter(|s| !s.trim().is_empty());
    Ok(assemble(id, title, released_at, packages, scores))
}

/// Builds the Patch from what the record gave.
fn assemble(
    id: String,
    title: Option<String>,
    released_at: jiff::Timestamp,
    packages: Vec<PackageFix>,
    mut scores: Scores,
) -> Converted {
    if scores.cves.len() == 1
        && let Some(best) = scores.cves.values_mut().next()
    {
        offer(best, scores.record.clone());
    }
    let cves = cve_refs(scores.cves);
    let cvss_score = cves
        .iter()
        .filter_map(|c| c.cvss_score)
        .chain(scores.record.map(|s| s.score))
        .reduce(f64::max);
    let vendor = packages
        .first()
        .and_then(|p| distro(&p.ecosystem))
        .map_or("", Distro::vendor);
    let spec = PatchSpec {
        classification: classification(&id, !cves.is_empty()),
        id,
        title,
        vendor: vendor.to_string(),
        product: product(&packages),
        cvss_score,
        vendor_severity: scores.vendor,
        cves,
        known_exploited: false,
        released_at,
        reboot_required: packages.iter().any(|p| needs_reboot(&p.name)),
        uninstallable: !packages.iter().any(|p| needs_reboot(&p.name)),
        supersedes: Vec::new(),
        packages,
        kev: None,
        epss: None,
    };
    Converted {
        spec,
        bad_vectors: scores.bad_vectors,
    }
}

/// The CVE list of a Patch, sorted by id.
fn cve_refs(cves: BTreeMap<String, Option<Scored>>) -> Vec<CveRef> {
    cves.into_iter()
        .map(|(id, scored)| {
            let (cvss_score, cvss_vector) = scored.map(|s| (s.score, s.vector)).unzip();
            CveRef {
                id,
                cvss_score,
                cvss_vector,
                epss: None,
            }
        })
        .collect()
}

/// `published`, else `modified`.
fn released_at(raw: &RawRecord) -> Result<jiff::Timestamp, Problem> {
    let (field, when) = match (&raw.published, &raw.modified) {
        (Some(published), _) => ("published", published),
        (None, Some(modified)) => ("modified", modified),
        (None, None) => return Err(missing("published")),
    };
    when.parse().map_err(|e: jiff::Error| Problem::Invalid {
        field: field.into(),
        why: format!("not an RFC 3339 time: {e}"),
        got: shorten(when),
    })
}

/// The packages of the record's imported ecosystems, sorted; their severities go to
/// `scores`. Fails when there is none.
fn packages(raw: &RawRecord, scores: &mut Scores) -> Result<Vec<PackageFix>, Problem> {
    let entries = raw.affected.as_deref().unwrap_or_default();
    let mut packages = Vec::new();
    let mut foreign = None;
    let mut unfixed = None;
    for (i, entry) in entries.iter().enumerate() {
        let ecosystem = entry.get("package").and_then(|p| p.get("ecosystem"));
        let Some(distro) = ecosystem.and_then(Value::as_str).and_then(distro) else {
            foreign.get_or_insert_with(|| ecosystem.map_or("(none)".into(), label));
            continue;
        };
        let affected: RawAffected = typed(entry, &format!("affected[{i}]."))?;
        if affected.package.name.is_empty() {
            return Err(missing(&format!("affected[{i}].package.name")));
        }
        let before = packages.len();
        package_fixes(distro, &affected, &mut packages);
        if packages.len() == before {
            unfixed.get_or_insert(affected.package.ecosystem.clone());
        }
        scores.severities(affected.severity.as_deref().unwrap_or_default(), None);
        scores.specific(affected.database_specific.as_ref());
        scores.specific(affected.ecosystem_specific.as_ref());
    }
    if packages.is_empty() {
        return Err(match (unfixed, foreign) {
            (Some(ecosystem), _) => Problem::Empty(format!("no fixed version in {ecosystem}")),
            (None, Some(ecosystem)) => Problem::UnknownEcosystem(ecosystem),
            (None, None) => Problem::Empty("no affected packages".into()),
        });
    }
    sort_packages(&mut packages);
    Ok(packages)
}

/// One `PackageFix` per fixed version of an affected entry.
fn package_fixes(distro: Distro, affected: &RawAffected, out: &mut Vec<PackageFix>) {
    let mut binaries: Vec<String> = affected
        .ecosystem_specific
        .as_ref()
        .and_then(|e| e.get("binaries"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|b| b.get("binary_name").and_then(Value::as_str))
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect();
    binaries.sort();
    binaries.dedup();
    let ranges = affected.ranges.as_deref().unwrap_or_default();
    let fixed = ranges
        .iter()
        .filter(|r| r.kind == "ECOSYSTEM")
        .flat_map(|r| &r.events)
        .filter_map(|e| e.fixed.as_deref())
        .filter(|v| !v.trim().is_empty());
    for version in fixed {
        out.push(PackageFix {
            ecosystem: affected.package.ecosystem.clone(),
            name: affected.package.name.clone(),
            kind: distro.kind(),
            fixed: version.trim().to_string(),
            binaries: binaries.clone(),
        });
    }
}

/// Sorts packages by release (in natural order), name and version, and drops exact
/// duplicates.
fn sort_packages(packages: &mut Vec<PackageFix>) {
    packages.sort_by(|a, b| {
        natural_cmp(&a.ecosystem, &b.ecosystem)
            .then_with(|| a.ecosystem.cmp(&b.ecosystem))
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.fixed.cmp(&b.fixed))
            .then_with(|| a.binaries.cmp(&b.binaries))
    });
    packages.dedup();
}

/// Sorts records by id; records with the same id keep their order.
fn sort_by_id(records: &mut [PatchSpec]) {
    records.sort_by(|a, b| a.id.cmp(&b.id));
}

/// A Linux distribution whose OSV records are imported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Distro {
    Debian,
    Ubuntu,
    AlmaLinux,
    Rocky,
}

impl Distro {
    /// The vendor of its advisories.
    fn vendor(self) -> &'static str {
        match self {
            Distro::Debian => "Debian",
            Distro::Ubuntu => "Ubuntu",
            Distro::AlmaLinux => "AlmaLinux",
            Distro::Rocky => "Rocky Linux",
        }
    }

    /// What its package names name.
    fn kind(self) -> PackageKind {
        match self {
            Distro::Debian | Distro::Ubuntu => PackageKind::Source,
            Distro::AlmaLinux | Distro::Rocky => PackageKind::Binary,
        }
    }
}

/// The distribution of an OSV ecosystem with a release (`Debian:12`,
/// `Ubuntu:Pro:18.04:LTS`, `Rocky Linux:9`); `None` for any other ecosystem, and for a
/// distribution without a release (a device could not be matched to it).
fn distro(ecosystem: &str) -> Option<Distro> {
    let (name, release) = ecosystem.split_once(':')?;
    if release.trim().is_empty() {
        return None;
    }
    match name {
        "Debian" => Some(Distro::Debian),
        "Ubuntu" => Some(Distro::Ubuntu),
        "AlmaLinux" => Some(Distro::AlmaLinux),
        "Rocky Linux" => Some(Distro::Rocky),
        _ => None,
    }
}

/// The releases the packages cover, in natural order: `AlmaLinux 8, AlmaLinux 9`.
fn product(packages: &[PackageFix]) -> Option<String> {
    let mut releases: Vec<&str> = packages.iter().map(|p| p.ecosystem.as_str()).collect();
    releases.sort_by(|a, b| natural_cmp(a, b).then_with(|| a.cmp(b)));
    releases.dedup();
    let names: Vec<String> = releases.iter().map(|r| r.replace(':', " ")).collect();
    (!names.is_empty()).then(|| names.join(", "))
}

/// Compares strings with their runs of digits compared as numbers (`AlmaLinux:8` before
/// `AlmaLinux:10`).
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        let (Some(ca), Some(cb)) = (a.chars().next(), b.chars().next()) else {
            return a.len().cmp(&b.len());
        };
        if ca.is_ascii_digit() && cb.is_ascii_digit() {
            let (na, ra) = split_digits(a);
            let (nb, rb) = split_digits(b);
            let (na, nb) = (na.trim_start_matches('0'), nb.trim_start_matches('0'));
            let order = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if order != Ordering::Equal {
                return order;
            }
            (a, b) = (ra, rb);
        } else {
            if ca != cb {
                return ca.cmp(&cb);
            }
            (a, b) = (&a[ca.len_utf8()..], &b[cb.len_utf8()..]);
        }
    }
}

/// Splits a string after its leading ASCII digits.
fn split_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

/// The classification of an advisory, from its id's prefix.
fn classification(id: &str, has_cves: bool) -> Classification {
    let prefix = id.split(['-', ':']).next().unwrap_or_default();
    match prefix {
        "DSA" | "DLA" | "DTSA" | "USN" | "LSN" | "ALSA" | "RLSA" => Classification::Security,
        "ALBA" | "RLBA" => Classification::Other,
        "ALEA" | "RLEA" => Classification::Feature,
        _ if has_cves => Classification::Security,
        _ => Classification::Other,
    }
}

/// Whether installing a new version of the package needs a reboot to take effect.
fn needs_reboot(name: &str) -> bool {
    const EXACT: [&str; 8] = [
        "glibc",
        "systemd",
        "udev",
        "dbus",
        "dbus-broker",
        "microcode_ctl",
        "intel-microcode",
        "amd64-microcode",
    ];
    name == "kernel"
        || name.starts_with("kernel-")
        || name == "linux"
        || name.starts_with("linux-")
        || EXACT.contains(&name)
}

/// A distribution's rating word as a severity.
fn rating(word: &str) -> Option<Severity> {
    match word.trim().to_ascii_lowercase().as_str() {
        "critical" => Some(Severity::Critical),
        "important" | "high" => Some(Severity::High),
        "moderate" | "medium" => Some(Severity::Medium),
        "low" | "negligible" | "unimportant" => Some(Severity::Low),
        _ => None,
    }
}

/// The rating prefix of a Red Hat-style summary (`Important: glibc security update`).
fn summary_rating(summary: &str) -> Option<&str> {
    let (prefix, _) = summary.split_once(':')?;
    ["Critical", "Important", "Moderate", "Low"]
        .contains(&prefix)
        .then_some(prefix)
}

/// The CVE id an OSV id names: itself when it is one, or a distribution's per-CVE id
/// (`UBUNTU-CVE-2023-46724`, `DEBIAN-CVE-…`).
fn cve_id(id: &str) -> Option<String> {
    let id = id.trim();
    let cve = ["UBUNTU-", "DEBIAN-"]
        .into_iter()
        .find_map(|p| id.strip_prefix(p))
        .unwrap_or(id);
    is_cve(cve).then(|| cve.to_string())
}

/// Whether `s` is `CVE-<4 digits>-<4 or more digits>`.
fn is_cve(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("CVE-") else {
        return false;
    };
    let Some((year, number)) = rest.split_once('-') else {
        return false;
    };
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    year.len() == 4 && digits(year) && number.len() >= 4 && digits(number)
}

/// Deserializes `value`, or says which field (under `prefix`) is wrong and how.
fn typed<T: DeserializeOwned>(value: &Value, prefix: &str) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = match path.as_str() {
            "." | "" => prefix.trim_end_matches('.').to_string(),
            _ => format!("{prefix}{path}"),
        };
        let why = e.into_inner().to_string();
        if let Some(name) = why.strip_prefix("missing field `") {
            let name = name.trim_end_matches('`');
            let field = [field.as_str(), name]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(".");
            return missing(&field);
        }
        let got = value_at(value, &path).map_or_else(String::new, label);
        Problem::Invalid { field, why, got }
    })
}

/// The value at a serde path (`affected[0].ranges`), when it can be found.
fn value_at<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    let mut at = value;
    for part in path.split('.').filter(|p| !p.is_empty() && *p != "?") {
        let (key, indexes) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            at = at.get(key)?;
        }
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            at = at.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(at)
}

/// A value, shortened, for a problem report.
fn label(value: &Value) -> String {
    match value {
        Value::String(s) => shorten(s),
        other => shorten(&other.to_string()),
    }
}

/// A missing field.
fn missing(field: &str) -> Problem {
    Problem::Missing {
        field: field.to_string(),
    }
}

/// The higher of two optional scores.
fn max_score(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.into_iter().chain(b).reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(json: &str) -> Parsed<PatchSpec> {
        parse("t.json", json.as_bytes()).expect("a JSON document")
    }

    const ALMA: &str = r#"{
        "id": "ALSA-2024:0001",
        "summary": "Important: kernel security update",
        "published": "2024-01-02T00:00:00Z",
        "modified": "2024-01-03T00:00:00Z",
        "related": ["CVE-2024-0001", "CVE-2024-0001", "RHBZ-1"],
        "affected": [
            {"package": {"ecosystem": "AlmaLinux:9", "name": "kernel-core"},
             "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "5.14.0-1.el9"}]}]},
            {"package": {"ecosystem": "PyPI", "name": "x"},
             "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1"}]}]}
        ]
    }"#;

    #[test]
    fn an_almalinux_advisory_becomes_a_patch() {
        let parsed = rec(ALMA);
        assert_eq!(parsed.skipped, vec![]);
        let [patch] = parsed.records.as_slice() else {
            panic!("one record: {parsed:?}")
        };
        assert_eq!(patch.id, "ALSA-2024:0001");
        assert_eq!(patch.vendor, "AlmaLinux");
        assert_eq!(patch.product.as_deref(), Some("AlmaLinux 9"));
        assert_eq!(patch.classification, Classification::Security);
        assert_eq!(patch.vendor_severity, Some(Severity::High));
        assert_eq!(patch.cves.len(), 1);
        assert_eq!(patch.cves[0].id, "CVE-2024-0001");
        assert!(patch.reboot_required);
        assert_eq!(patch.packages.len(), 1);
        assert_eq!(patch.packages[0].kind, PackageKind::Binary);
        assert_eq!(patch.released_at.to_string(), "2024-01-02T00:00:00Z");
    }

    #[test]
    fn cve_ids_are_recognised() {
        assert_eq!(cve_id("CVE-2023-4911").as_deref(), Some("CVE-2023-4911"));
        assert_eq!(
            cve_id("UBUNTU-CVE-2023-46724").as_deref(),
            Some("CVE-2023-46724")
        );
        assert_eq!(cve_id("CVE-2023-491"), None);
        assert_eq!(cve_id("CVE-23-4911"), None);
        assert_eq!(cve_id("USN-6409-1"), None);
        assert_eq!(cve_id("GHSA-CVE-2023-4911"), None);
    }

    #[test]
    fn releases_sort_naturally() {
        assert_eq!(natural_cmp("AlmaLinux:8", "AlmaLinux:10"), Ordering::Less);
        assert_eq!(
            natural_cmp("Ubuntu:22.04:LTS", "Ubuntu:20.04:LTS"),
            Ordering::Greater
        );
        assert_eq!(natural_cmp("a", "a"), Ordering::Equal);
        assert_eq!(natural_cmp("a1", "a01"), Ordering::Equal);
    }

    #[test]
    fn classifications_follow_the_id() {
        assert_eq!(
            classification("ALBA-2019:0973", false),
            Classification::Other
        );
        assert_eq!(
            classification("RLEA-2024:1", false),
            Classification::Feature
        );
        assert_eq!(
            classification("DLA-3623-1", false),
            Classification::Security
        );
        assert_eq!(classification("XYZ-1", true), Classification::Security);
        assert_eq!(classification("XYZ-1", false), Classification::Other);
    }

    #[test]
    fn reboots_for_kernels_and_core_libraries() {
        for name in [
            "kernel",
            "kernel-core",
            "linux",
            "linux-signed-amd64",
            "glibc",
        ] {
            assert!(needs_reboot(name), "{name}");
        }
        for name in ["nginx", "kernelshark", "linuxptp", "glibc-doc"] {
            assert!(!needs_reboot(name), "{name}");
        }
    }

    #[test]
    fn ratings_map_to_severities() {
        assert_eq!(
            summary_rating("Moderate: nginx:1.20 security update"),
            Some("Moderate")
        );
        assert_eq!(summary_rating("nginx - security update"), None);
        assert_eq!(rating("negligible"), Some(Severity::Low));
        assert_eq!(rating("Important"), Some(Severity::High));
        assert_eq!(rating("untriaged"), None);
    }

    #[test]
    fn a_wrong_type_names_its_field() {
        let json = ALMA.replace(
            r#""related": ["CVE-2024-0001", "CVE-2024-0001", "RHBZ-1"]"#,
            r#""related": 5"#,
        );
        let parsed = rec(&json);
        assert!(parsed.records.is_empty());
        assert_eq!(parsed.skipped.len(), 1);
        let s = &parsed.skipped[0];
        assert_eq!(s.id.as_deref(), Some("ALSA-2024:0001"));
        assert!(
            matches!(&s.problem, Problem::Invalid { field, got, .. } if field == "related" && got == "5"),
            "{s}"
        );
    }

    #[test]
    fn a_wrong_type_inside_an_affected_entry_names_its_path() {
        let json = ALMA.replace(r#"{"fixed": "5.14.0-1.el9"}"#, r#"{"fixed": 7}"#);
        let parsed = rec(&json);
        let s = &parsed.skipped[0];
        assert!(
            matches!(&s.problem, Problem::Invalid { field, got, .. }
                if field == "affected[0].ranges[0].events[1].fixed" && got == "7"),
            "{s}"
        );
    }

    #[test]
    fn a_missing_package_name_is_reported() {
        let json = ALMA.replace(r#", "name": "kernel-core""#, "");
        let s = &rec(&json).skipped[0];
        assert_eq!(
            s.problem,
            Problem::Missing {
                field: "affected[0].package.name".into()
            }
        );
    }

    #[test]
    fn value_paths_are_followed() {
        let v: Value = serde_json::from_str(r#"{"a": [{"b": [1, 2]}]}"#).unwrap();
        assert_eq!(value_at(&v, "a[0].b[1]"), Some(&Value::from(2)));
        assert_eq!(value_at(&v, "a[3]"), None);
        assert_eq!(value_at(&v, "."), Some(&v));
    }

    #[test]
    fn garbage_never_panics() {
        let samples = [
            ALMA,
            "[1, null, \"x\", {}]",
            "{\"id\": 3}",
            "[[[]]]",
            "{\"affected\": 1}",
        ];
        for sample in samples {
            for end in 0..sample.len() {
                if let Some(cut) = sample.get(..end) {
                    let _ = parse("t.json", cut.as_bytes());
                    let _ = parse_zip("t.zip", cut.as_bytes());
                }
            }
        }
    }
}
