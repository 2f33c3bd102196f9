//! The simulator at scale: the bundled example's policies, rings, patches and
//! exceptions with its fleet groups scaled to about 10,000 devices, played for 30 days.
//!
//! Run: `cargo bench --bench simulate` (prints wall time, engine passes and timeline
//! size; figures in docs/benchmarks.md). With `RINGMASTER_BENCH_OUT=<file>` it also
//! writes the run's timeline and report as JSON to `<file>` and the final world to
//! `<file>.world`, so two builds can be shown to simulate exactly the same thing. The
//! simulator runs the operator's incremental pass; `RINGMASTER_BENCH_CACHED=1` runs the
//! cached full pass instead (the same run, to compare the two).

mod common;

use std::time::Instant;

use ringmaster::sim;

fn main() {
    let (world, fleet, options, devices) = common::scaled_example();
    let began = Instant::now();
    let sim = sim::Simulation::new(world, fleet, options);
    let sim = match std::env::var_os("RINGMASTER_BENCH_CACHED") {
        Some(_) => sim.cached(),
        None => sim,
    };
    let outcome = sim.run();
    let elapsed = began.elapsed();
    let report = sim::report::report(&outcome);
    println!(
        "simulate: {devices} devices x 30 days: {:.2} s wall, {} engine passes ({:.1} ms each on average), {} timeline entries, {} rollouts",
        elapsed.as_secs_f64(),
        outcome.passes,
        elapsed.as_secs_f64() * 1000.0 / outcome.passes.max(1) as f64,
        outcome.timeline.len(),
        report.rollouts.len()
    );
    if let Ok(out) = std::env::var("RINGMASTER_BENCH_OUT") {
        let json = sim::report::json(&outcome).expect("report serializes");
        std::fs::write(&out, json).expect("write the report");
        std::fs::write(format!("{out}.world"), format!("{:#?}", outcome.world))
            .expect("write the world");
    }
}
