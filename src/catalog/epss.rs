//! FIRST's EPSS scores (CSV, plain or gzipped): a score and percentile per CVE, added to
//! the Patches that fix them.
//!
//! The daily file (`epss_scores-YYYY-MM-DD.csv.gz`, or `epss_scores-current.csv.gz`)
//! begins with a comment line naming the model and the time of scoring,
//! `#model_version:v2025.03.14,score_date:2026-01-30T12:55:00Z`, then the header
//! `cve,epss,percentile`, then one row per CVE (about 313,000 in January 2026). Small
//! values are written in scientific notation (`CVE-1999-1170,2e-05,0.00039`), in both
//! columns. [`parse`] reads it into [`Scores`]; [`score`] gives a Patch's score from
//! the CVEs it fixes.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::{BufRead, BufReader};

use csv::ByteRecord;
use flate2::bufread::MultiGzDecoder;

use super::is_cve_id;
use super::{FeedError, Problem, Skipped, shorten};
use crate::api::{CveRef, EpssScore};

/// The format name in a [`FeedError::Format`].
const FORMAT: &str = "FIRST EPSS scores (CSV)";

/// The first bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The scores of one day.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scores {
    /// The model that computed them (`model_version` in the comment line, e.g.
    /// `v2025.03.14`).
    pub model: Option<String>,
    /// When they were computed (`score_date` in the comment line).
    pub scored_at: Option<jiff::Timestamp>,
    /// Per CVE id: its score (the probability of exploitation activity in the next 30
    /// days) and its percentile among all scored CVEs, both from 0 to 1.
    pub by_cve: HashMap<String, (f64, f64)>,
}

/// Parses a scores file, plain or gzipped (told by the gzip magic bytes, `1f 8b`; a
/// file of several gzip members is read whole).
///
/// A bad row (not as many columns as the header, a `cve` that is not a CVE id, a score
/// or percentile that is not a number from 0 to 1, a CVE scored a second time) is
/// skipped and reported at `line <n>` (counted from 1 in the decompressed text), and
/// the other rows are kept; a `score_date` that is not a timestamp is reported at its
/// line and left `None`. Blank lines and comment lines after the header are ignored.
/// A file without the header (`cve`, `epss` and `percentile` columns, in any order) or
/// whose gzip stream is broken is an error.
pub fn parse(file: &str, bytes: &[u8]) -> Result<(Scores, Vec<Skipped>), FeedError> {
    if bytes.starts_with(&GZIP_MAGIC) {
        let reader = BufReader::with_capacity(1 << 16, MultiGzDecoder::new(bytes));
        parse_lines(file, reader)
    } else {
        parse_lines(file, bytes)
    }
}

/// Parses the lines of the decompressed text.
fn parse_lines(file: &str, mut reader: impl BufRead) -> Result<(Scores, Vec<Skipped>), FeedError> {
    let mut parser = Parser::new(file);
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| FeedError::Format {
                file: file.to_string(),
                format: FORMAT,
                why: format!("line {}: cannot decompress: {e}", number + 1),
            })?;
        if read == 0 {
            break;
        }
        number += 1;
        let mut text = line.as_slice();
        if number == 1 {
            text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
        }
        parser.line(number, text.trim_ascii())?;
    }
    parser.finish()
}

/// Where the columns are, from the header.
#[derive(Clone, Copy, Debug)]
struct Columns {
    /// How many columns a row must have.
    count: usize,
    /// The `cve` column.
    cve: usize,
    /// The `epss` column.
    epss: usize,
    /// The `percentile` column.
    percentile: usize,
}

/// The state of a parse, line after line.
struct Parser<'a> {
    /// The file, for reports.
    file: &'a str,
    /// The columns, once the header is read.
    columns: Option<Columns>,
    /// What was read so far.
    scores: Scores,
    /// The rows skipped so far.
    skipped: Vec<Skipped>,
    /// The fields of the current line (reused from line to line).
    record: ByteRecord,
}

impl<'a> Parser<'a> {
    /// A parser of `file`.
    fn new(file: &'a str) -> Self {
        Self {
            file,
            columns: None,
            scores: Scores::default(),
            skipped: Vec::new(),
            record: ByteRecord::new(),
        }
    }

    /// Takes one line (without its line break and surrounding blanks).
    fn line(&mut self, number: usize, text: &[u8]) -> Result<(), FeedError> {
        if text.is_empty() {
            return Ok(());
        }
        if let Some(comment) = text.strip_prefix(b"#") {
            if self.columns.is_none() {
                self.metadata(number, comment);
            }
            return Ok(());
        }
        split(text, &mut self.record);
        match self.columns {
            None => {
                self.columns = Some(header(&self.record).ok_or_else(|| FeedError::Format {
                    file: self.file.to_string(),
                    format: FORMAT,
                    why: format!(
                        "line {number}: expected the header cve,epss,percentile, found {:?}",
                        shorten(&String::from_utf8_lossy(text))
                    ),
                })?);
            }
            Some(columns) => match row(&self.record, columns, text) {
                Ok((cve, score, percentile)) => self.insert(number, cve, score, percentile),
                Err((id, problem)) => self.skip(number, id, problem),
            },
        }
        Ok(())
    }

    /// Reads `model_version` and `score_date` from a comment line before the header.
    fn metadata(&mut self, number: usize, comment: &[u8]) {
        let comment = String::from_utf8_lossy(comment);
        for (key, value) in comment.split(',').filter_map(|part| part.split_once(':')) {
            let value = value.trim();
            match key.trim() {
                "model_version" if self.scores.model.is_none() && !value.is_empty() => {
                    self.scores.model = Some(value.to_string());
                }
                "score_date" if self.scores.scored_at.is_none() => match timestamp(value) {
                    Some(at) => self.scores.scored_at = Some(at),
                    None => self.skip(
                        number,
                        None,
                        Problem::Invalid {
                            field: "score_date".to_string(),
                            why: "a timestamp (RFC 3339)".to_string(),
                            got: shorten(value),
                        },
                    ),
                },
                _ => {}
            }
        }
    }

    /// Keeps a row's score, unless its CVE was scored already.
    fn insert(&mut self, number: usize, cve: String, score: f64, percentile: f64) {
        match self.scores.by_cve.entry(cve) {
            Entry::Vacant(slot) => {
                slot.insert((score, percentile));
            }
            Entry::Occupied(slot) => {
                let problem = Problem::Invalid {
                    field: "cve".to_string(),
                    why: "scored again; the first score is kept".to_string(),
                    got: shorten(slot.key()),
                };
                let id = slot.key().clone();
                self.skip(number, Some(id), problem);
            }
        }
    }

    /// Reports a skipped line.
    fn skip(&mut self, number: usize, id: Option<String>, problem: Problem) {
        self.skipped.push(Skipped {
            file: self.file.to_string(),
            at: format!("line {number}"),
            id,
            problem,
        });
    }

    /// The result, once every line is read.
    fn finish(self) -> Result<(Scores, Vec<Skipped>), FeedError> {
        if self.columns.is_none() {
            return Err(FeedError::Format {
                file: self.file.to_string(),
                format: FORMAT,
                why: "no header line (cve,epss,percentile)".to_string(),
            });
        }
        Ok((self.scores, self.skipped))
    }
}

/// Splits a line into its fields. FIRST never quotes a field; a line that has a quote
/// is read by the `csv` crate, which undoes the quoting.
fn split(text: &[u8], record: &mut ByteRecord) {
    record.clear();
    if text.contains(&b'"') {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text);
        if reader.read_byte_record(record).is_ok() {
            return;
        }
        record.clear();
    }
    for field in text.split(|&b| b == b',') {
        record.push_field(field.trim_ascii());
    }
}

/// The columns named by a header line, when it has all three.
fn header(record: &ByteRecord) -> Option<Columns> {
    let position = |name: &str| {
        record
            .iter()
            .position(|field| field.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
    };
    Some(Columns {
        count: record.len(),
        cve: position("cve")?,
        epss: position("epss")?,
        percentile: position("percentile")?,
    })
}

/// Reads a row: its CVE id, score and percentile; on failure, its id if readable and
/// what is wrong.
fn row(
    record: &ByteRecord,
    columns: Columns,
    text: &[u8],
) -> Result<(String, f64, f64), (Option<String>, Problem)> {
    let field = |index: usize| {
        let bytes = record.get(index).unwrap_or_default().trim_ascii();
        String::from_utf8_lossy(bytes)
    };
    let cve = field(columns.cve);
    let id = is_cve_id(&cve).then(|| cve.to_string());
    if record.len() != columns.count {
        let problem = Problem::Invalid {
            field: "row".to_string(),
            why: format!("{} columns", columns.count),
            got: shorten(&String::from_utf8_lossy(text)),
        };
        return Err((id, problem));
    }
    let Some(id) = id else {
        return Err((None, invalid("cve", "a CVE id (CVE-YYYY-NNNN)", &cve)));
    };
    let Some(score) = probability(&field(columns.epss)) else {
        return Err((
            Some(id),
            invalid("epss", "a number from 0 to 1", &field(columns.epss)),
        ));
    };
    let Some(percentile) = probability(&field(columns.percentile)) else {
        let got = field(columns.percentile);
        return Err((
            Some(id),
            invalid("percentile", "a number from 0 to 1", &got),
        ));
    };
    Ok((id, score, percentile))
}

/// A number from 0 to 1, in decimal or scientific notation.
fn probability(text: &str) -> Option<f64> {
    text.parse::<f64>()
        .ok()
        .filter(|value| (0.0..=1.0).contains(value))
}

/// A `score_date`: an RFC 3339 timestamp, or a bare date (00:00 UTC that day).
fn timestamp(text: &str) -> Option<jiff::Timestamp> {
    text.parse().ok().or_else(|| {
        let date: jiff::civil::Date = text.parse().ok()?;
        date.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|zoned| zoned.timestamp())
    })
}

/// A `Problem::Invalid` for a field's text.
fn invalid(field: &str, why: &str, got: &str) -> Problem {
    Problem::Invalid {
        field: field.to_string(),
        why: why.to_string(),
        got: shorten(got),
    }
}

/// The highest score among `cves` (as an [`EpssScore`] with its CVE and the time of
/// scoring), and each scored CVE's own score, in the order of `cves`; `None` and an
/// empty list when none is scored.
///
/// Of CVEs with the same score, the one with the highest percentile wins, then the
/// lowest CVE id (compared as text), so that the result does not depend on the order of
/// `cves`.
pub fn score(cves: &[CveRef], scores: &Scores) -> (Option<EpssScore>, Vec<(String, f64)>) {
    let mut each = Vec::new();
    let mut best: Option<(&str, f64, f64)> = None;
    for cve in cves {
        let Some(&(score, percentile)) = scores.by_cve.get(&cve.id) else {
            continue;
        };
        each.push((cve.id.clone(), score));
        let better = best.is_none_or(|(best_id, best_score, best_percentile)| {
            score
                .total_cmp(&best_score)
                .then(percentile.total_cmp(&best_percentile))
                .then_with(|| best_id.cmp(&cve.id))
                == Ordering::Greater
        });
        if better {
            best = Some((&cve.id, score, percentile));
        }
    }
    let best = best.map(|(cve, score, percentile)| EpssScore {
        score,
        percentile,
        cve: Some(cve.to_string()),
        scored_at: scores.scored_at,
    });
    (best, each)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "#model_version:v1,score_date:2026-01-30T12:55:00Z\ncve,epss,percentile\nCVE-2024-0001,0.5,0.9\nCVE-2024-0002,2e-05,8e-05\n";

    #[test]
    fn quoted_fields_are_unquoted() {
        let text = format!("{FILE}\"CVE-2024-0003\",\"0.25\",0.5\n");
        let (scores, skipped) = parse("f", text.as_bytes()).unwrap();
        assert_eq!(skipped, []);
        assert_eq!(scores.by_cve["CVE-2024-0003"], (0.25, 0.5));
    }

    #[test]
    fn columns_are_found_by_name() {
        let text = "percentile,cve,epss\n0.9,CVE-2024-0001,0.5\n";
        let (scores, _) = parse("f", text.as_bytes()).unwrap();
        assert_eq!(scores.by_cve["CVE-2024-0001"], (0.5, 0.9));
        assert_eq!(scores.model, None);
        assert_eq!(scores.scored_at, None);
    }

    #[test]
    fn crlf_blank_lines_and_a_bom_are_fine() {
        let text = format!("\u{feff}{}\r\n\r\n", FILE.replace('\n', "\r\n"));
        let (scores, skipped) = parse("f", text.as_bytes()).unwrap();
        assert_eq!(skipped, []);
        assert_eq!(scores.model.as_deref(), Some("v1"));
        assert_eq!(scores.by_cve.len(), 2);
    }

    #[test]
    fn a_bad_score_date_is_reported_and_left_out() {
        let text = FILE.replace("2026-01-30T12:55:00Z", "yesterday");
        let (scores, skipped) = parse("f", text.as_bytes()).unwrap();
        assert_eq!(scores.scored_at, None);
        assert_eq!(scores.model.as_deref(), Some("v1"));
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].at, "line 1");
    }

    #[test]
    fn a_bare_score_date_is_midnight_utc() {
        let text = FILE.replace("2026-01-30T12:55:00Z", "2026-01-30");
        let (scores, _) = parse("f", text.as_bytes()).unwrap();
        assert_eq!(
            scores.scored_at,
            Some("2026-01-30T00:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn not_numbers_in_range_are_skipped() {
        for bad in ["inf", "NaN", "-0.1", "1.5", "0x1", "", "1e5"] {
            let text = format!("{FILE}CVE-2024-0009,{bad},0.5\n");
            let (scores, skipped) = parse("f", text.as_bytes()).unwrap();
            assert_eq!(scores.by_cve.len(), 2, "{bad}");
            assert_eq!(skipped.len(), 1, "{bad}");
            assert_eq!(skipped[0].at, "line 5", "{bad}");
            assert_eq!(skipped[0].id.as_deref(), Some("CVE-2024-0009"), "{bad}");
        }
    }

    #[test]
    fn the_tie_goes_to_the_percentile_then_the_lowest_id() {
        let mut scores = Scores::default();
        scores.by_cve.insert("CVE-2024-0002".into(), (0.5, 0.9));
        scores.by_cve.insert("CVE-2024-0001".into(), (0.5, 0.9));
        scores.by_cve.insert("CVE-2024-0003".into(), (0.5, 0.8));
        let cve = |id: &str| CveRef {
            id: id.into(),
            cvss_score: None,
            cvss_vector: None,
            epss: None,
        };
        for order in [
            ["CVE-2024-0003", "CVE-2024-0002", "CVE-2024-0001"],
            ["CVE-2024-0001", "CVE-2024-0002", "CVE-2024-0003"],
        ] {
            let cves: Vec<CveRef> = order.iter().map(|id| cve(id)).collect();
            let (best, each) = score(&cves, &scores);
            assert_eq!(best.unwrap().cve.as_deref(), Some("CVE-2024-0001"));
            assert_eq!(each.len(), 3);
        }
    }

    #[test]
    fn garbage_and_truncations_never_panic() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, FILE.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        for end in 0..gz.len() {
            let _ = parse("f", &gz[..end]);
        }
        for end in 0..FILE.len() {
            let _ = parse("f", &FILE.as_bytes()[..end]);
        }
        for garbage in [
            &b"\xff\xfe\x00"[..],
            b"\x1f",
            b"\x1f\x8b",
            b"\"",
            b"cve,epss,percentile\n\"\n",
            b"#,:,::\n",
        ] {
            let _ = parse("f", garbage);
        }
    }
}
