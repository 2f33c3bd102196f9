//! The monthly evidence packet at scale: the bundled example scaled to about 10,000
//! devices (`RINGMASTER_BENCH_DEVICES`, as `benches/simulate.rs` scales it), played for
//! 30 days with its months closed in America/Chicago; then, for the closed November,
//! each step of making its packet, timed on its own: the model built through the
//! engine's ledger, each rendering, the inputs' digests and the seal (with and without
//! an ed25519 key), writing the directory and verifying it.
//!
//! Run: `cargo bench --bench report` (figures in docs/benchmarks.md). Each step is the
//! median of 5 repetitions, with the fastest and slowest; the simulation before them is
//! timed once and is not what is measured. Peak memory is the process's (VmHWM) at the
//! end, so it includes the simulation. With `RINGMASTER_BENCH_OUT=<dir>` the unsigned
//! packet is also written to `<dir>`, so two builds can be shown to make the same bytes.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use ringmaster::engine;
use ringmaster::report::month::Month;
use ringmaster::report::packet::{self, Packet, SignatureCheck};
use ringmaster::report::{assemble, build, csv, html, json, keys, markdown};
use ringmaster::sim;

/// Repetitions of each measured step.
const RUNS: usize = 5;

fn main() {
    let (world, fleet, options, devices) = common::scaled_example();
    let began = Instant::now();
    let outcome = sim::Simulation::new(world, fleet, options)
        .close_months("America/Chicago")
        .expect("a time zone")
        .run();
    let simulated = began.elapsed();
    println!(
        "report: {devices} devices x 30 days simulated with months closed in America/Chicago: {} ({} engine passes, {} months; peak RSS so far {}); not measured below",
        secs(simulated),
        outcome.passes,
        outcome.months.len(),
        peak().unwrap_or_else(|| "unknown".into())
    );

    let closed = &outcome.months[0];
    assert!(closed.report.closed, "the first month closed");
    let snap = closed.world.snapshot();
    let month = Month::parse(&closed.report.month, &closed.report.time_zone).expect("month");
    let as_of = closed.report.as_of;

    let mut rows: Vec<(String, Stats)> = Vec::new();

    // (1) The model, through the engine's ledger.
    // The months before it, as the run's report carries them.
    let previous = &closed.report.trend[..closed.report.trend.len().saturating_sub(1)];
    let (t, report) = measure(|| build::build(&snap, &month, as_of, previous));
    assert_eq!(report, closed.report, "the same report as the run's");
    rows.push(("build::build (ledger + model)".into(), t));
    let (t, ledger) = measure(|| engine::ledger::ledger(&snap, as_of).len());
    rows.push((
        format!(
            "  of which engine::ledger ({} rows)",
            thousands(ledger as u64)
        ),
        t,
    ));

    // (2) Each rendering, then all of them.
    rows.push((
        "render: html::html".into(),
        measure(|| html::html(&report)).0,
    ));
    rows.push((
        "render: markdown::markdown".into(),
        measure(|| markdown::markdown(&report)).0,
    ));
    rows.push((
        "render: json::json".into(),
        measure(|| json::json(&report)).0,
    ));
    rows.push((
        "render: json::json_schema".into(),
        measure(json::json_schema).0,
    ));
    rows.push((
        "render: csv::csv_files (6 files)".into(),
        measure(|| csv::csv_files(&report)).0,
    ));
    let (t, files) = measure(|| assemble::render(&report));
    rows.push(("render: assemble::render (all)".into(), t));

    // (3) Sealing: the inputs' digests, the manifest, the signature; then the whole.
    let key = keys::generate().expect("a key");
    let (t, inputs) = measure(|| assemble::inputs(&snap, &month));
    let objects = inputs.objects.len();
    rows.push((
        format!(
            "seal: assemble::inputs ({} object digests)",
            thousands(objects as u64)
        ),
        t,
    ));
    let seal = |key: Option<&SigningKey>| {
        // The files are copied into a fresh packet outside the timing.
        measure_with(
            || Packet::new(files.clone()).expect("a packet"),
            |p| p.seal(&inputs, key),
        )
        .0
    };
    rows.push(("seal: Packet::seal, unsigned (manifest)".into(), seal(None)));
    rows.push(("seal: Packet::seal, signed".into(), seal(Some(&key))));
    let (t, unsigned) = measure(|| assemble::packet(&report, &snap, &month, None).expect("sealed"));
    rows.push(("assemble::packet, unsigned (all of the above)".into(), t));
    let (t, signed) =
        measure(|| assemble::packet(&report, &snap, &month, Some(&key)).expect("sealed"));
    rows.push(("assemble::packet, signed".into(), t));

    // (4) Writing the directory (each file synced) and verifying it.
    let tmp = std::env::temp_dir().join(format!("ringmaster-bench-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let mut n = 0;
    let (t, written) = measure(|| {
        n += 1;
        let dir = tmp.join(format!("packet-{n}"));
        packet::write_dir(&dir, &signed).expect("written");
        dir
    });
    rows.push(("packet::write_dir, signed (fsync per file)".into(), t));
    let verifying = key.verifying_key();
    let digest = signed.digest();
    let (t, verified) = measure(|| {
        packet::verify_dir(&written, Some(&verifying), Some(&digest)).expect("it verifies")
    });
    assert_eq!(verified.signature, SignatureCheck::Good);
    rows.push(("packet::verify_dir (key and digest)".into(), t));
    let _ = std::fs::remove_dir_all(&tmp);

    if let Ok(out) = std::env::var("RINGMASTER_BENCH_OUT") {
        packet::write_dir(Path::new(&out), &unsigned).expect("write the packet");
    }

    println!(
        "month {} ({}): {} pairs, {} input objects, {} approvals, {} interventions; packet digest (unsigned) {}",
        report.month,
        report.time_zone,
        thousands(report.pairs.len() as u64),
        thousands(objects as u64),
        report.approvals.len(),
        report.interventions.len(),
        unsigned.digest()
    );
    println!();
    print_table(&rows);
    println!();
    print_sizes(signed.files());
    println!();
    println!(
        "peak RSS (VmHWM, whole process, simulation included): {}",
        peak().unwrap_or_else(|| "unknown".into())
    );
}

/// The median, fastest and slowest of [`RUNS`] repetitions.
struct Stats {
    median: Duration,
    min: Duration,
    max: Duration,
}

/// Runs `f` [`RUNS`] times; its times and its last result.
fn measure<T>(mut f: impl FnMut() -> T) -> (Stats, T) {
    measure_with(|| (), |()| f())
}

/// Runs `f` [`RUNS`] times on a fresh `setup()` each, timing `f` only.
fn measure_with<S, T>(mut setup: impl FnMut() -> S, mut f: impl FnMut(S) -> T) -> (Stats, T) {
    let mut times = Vec::with_capacity(RUNS);
    let mut last = None;
    for _ in 0..RUNS {
        let input = setup();
        let began = Instant::now();
        let out = std::hint::black_box(f(input));
        times.push(began.elapsed());
        // Dropped outside the timing, as the caller would keep it.
        last = Some(out);
    }
    times.sort();
    let stats = Stats {
        median: times[RUNS / 2],
        min: times[0],
        max: times[RUNS - 1],
    };
    (stats, last.expect("at least one run"))
}

fn print_table(rows: &[(String, Stats)]) {
    let width = rows.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
    println!(
        "{:<width$}  {:>10}  {:>21}",
        "step",
        "median",
        format!("min-max ({RUNS} runs)")
    );
    for (step, s) in rows {
        println!(
            "{step:<width$}  {:>10}  {:>21}",
            ms(s.median),
            format!("{}-{}", ms(s.min), ms(s.max))
        );
    }
}

fn print_sizes(files: &BTreeMap<String, Vec<u8>>) {
    let width = files.keys().map(String::len).max().unwrap_or(0).max(5);
    println!("{:<width$}  {:>13}", "file", "bytes");
    let mut total = 0u64;
    for (name, bytes) in files {
        total += bytes.len() as u64;
        println!("{name:<width$}  {:>13}", thousands(bytes.len() as u64));
    }
    println!(
        "{:<width$}  {:>13}  ({} files, {:.1} MiB)",
        "total",
        thousands(total),
        files.len(),
        total as f64 / (1024.0 * 1024.0)
    );
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.3} ms")
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The process's peak resident memory, from `/proc/self/status`.
fn peak() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.0} MiB", kb as f64 / 1024.0))
}
