//! Catalog imports at the size the feeds have: a whole month of MSRC's CVRF (the real
//! November 2023 document, 1.5 MB of XML) and an OSV export of tens of thousands of
//! advisories (`RINGMASTER_BENCH_ADVISORIES`, default 30,000: the real AlmaLinux, Ubuntu
//! and Debian records of `../shared/feeds/osv`, or the project's fixtures, repeated under
//! new ids and zipped as OSV's `all.zip` is), each parsed and then planned (diffed)
//! against an empty catalog and against a catalog that already holds it.
//!
//! Run: `cargo bench --bench catalog` (figures in docs/benchmarks.md). Peak memory is
//! the process's (VmHWM), after each step.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ringmaster::api::Patch;
use ringmaster::catalog::plan::{Feed, Verdict, plan};
use ringmaster::catalog::{Source, msrc, offline, osv};

fn main() {
    let feeds = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/feeds"));
    let month = feeds.join("msrc/cvrfDocument-2023-Nov.xml");
    match std::fs::read(&month) {
        Ok(bytes) => msrc_month(&bytes),
        Err(e) => println!("msrc: skipped ({}: {e})", month.display()),
    }
    let advisories: usize = std::env::var("RINGMASTER_BENCH_ADVISORIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    let fixtures = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/catalog/osv"
    ));
    let source = if feeds.join("osv").is_dir() {
        feeds.join("osv")
    } else {
        fixtures
    };
    osv_export(&source, advisories);
}

/// Parses the month five times, then plans it twice.
fn msrc_month(bytes: &[u8]) {
    let mut times = Vec::new();
    let mut parsed = None;
    for _ in 0..5 {
        let began = Instant::now();
        parsed = Some(msrc::parse("cvrfDocument-2023-Nov.xml", bytes).expect("the month parses"));
        times.push(began.elapsed());
    }
    let parsed = parsed.expect("parsed");
    println!(
        "msrc: {} KB of XML, {} Patches, {} skipped: parse {} (median of 5); {}",
        bytes.len() / 1024,
        parsed.records.len(),
        parsed.skipped.len(),
        ms(median(&mut times)),
        peak()
    );
    diff(Source::Msrc, Feed::Patches(parsed.records), "msrc");
}

/// Builds an export of `n` advisories from the records under `dir`, zips it, parses
/// it, plans it.
fn osv_export(dir: &Path, n: usize) {
    let templates = records(dir);
    assert!(
        !templates.is_empty(),
        "no OSV records under {}",
        dir.display()
    );
    let zipped = export(&templates, n);
    println!(
        "osv: an export of {n} advisories made from {} records, {} MB zipped; {}",
        templates.len(),
        zipped.len() / (1024 * 1024),
        peak()
    );
    let began = Instant::now();
    let parsed = osv::parse_zip("all.zip", &zipped).expect("the export parses");
    println!(
        "osv: parse {} -> {} Patches, {} skipped; {}",
        ms(began.elapsed()),
        parsed.records.len(),
        parsed.skipped.len(),
        peak()
    );
    drop(zipped);
    diff(Source::Osv, Feed::Patches(parsed.records), "osv");
}

/// Plans a feed against an empty catalog, applies it in memory, and plans it again
/// against the catalog that now holds it.
fn diff(source: Source, feed: Feed, name: &str) {
    let began = Instant::now();
    let first = plan(source, &feed, &BTreeMap::new());
    let empty = began.elapsed();
    let creates = first
        .iter()
        .filter(|c| c.verdict == Verdict::Create)
        .count();
    let mut catalog: BTreeMap<String, Patch> = BTreeMap::new();
    offline::apply(&mut catalog, source, &feed);
    let by_name: BTreeMap<String, Patch> = catalog
        .into_values()
        .map(|p| (p.metadata.name.clone().unwrap_or_default(), p))
        .collect();
    let began = Instant::now();
    let again = plan(source, &feed, &by_name);
    let full = began.elapsed();
    drop(by_name);
    println!(
        "{name}: plan against an empty catalog {} ({creates} to create), against a full one {} ({} Patches compared); {}",
        ms(empty),
        ms(full),
        again.len(),
        peak()
    );
}

/// Every OSV record (JSON file) below `dir`.
fn records(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            out.extend(records(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            let record = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
            if let Some(r) = record.filter(|r| {
                r.get("affected")
                    .is_some_and(|a| a.as_array().is_some_and(|a| !a.is_empty()))
            }) {
                out.push(r);
            }
        }
    }
    out
}

/// `n` records, the templates' in turn under new ids, zipped one a member.
fn export(templates: &[serde_json::Value], n: usize) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for i in 0..n {
        let mut record = templates[i % templates.len()].clone();
        let id = format!("{}-B{i}", record["id"].as_str().unwrap_or("OSV"));
        record["id"] = serde_json::Value::String(id.clone());
        zip.start_file(format!("{id}.json"), options)
            .expect("a member");
        zip.write_all(record.to_string().as_bytes())
            .expect("writing a member");
    }
    zip.finish().expect("the zip").into_inner()
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The process's peak resident memory so far.
fn peak() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .map_or_else(
            || "peak memory unknown".into(),
            |m| format!("peak memory {m}"),
        )
}
