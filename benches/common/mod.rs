//! What the simulator benchmarks share: the bundled example with its fleet scaled.

use ringmaster::{manifest, sim};

/// The bundled example with its fleet groups scaled in proportion to about
/// `RINGMASTER_BENCH_DEVICES` devices (default 10,000), with the options to play it for
/// 30 days from its Fleet's start with seed 1, and how many devices it has. The
/// simulation is left for the caller to make, inside or outside what it times.
pub fn scaled_example() -> (sim::World, sim::FleetSpec, sim::Options, u32) {
    let target: u32 = std::env::var("RINGMASTER_BENCH_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/msp-tenant");
    let docs = manifest::load_paths(&[dir.into()]).expect("example loads");
    let (objects, problems) = manifest::parse_documents(docs);
    assert!(problems.is_empty(), "{problems:?}");
    let (world, mut fleet) = sim::load::world_from(objects).expect("one tenant");
    let base: u32 = fleet.groups.iter().map(|g| g.count).sum();
    for g in &mut fleet.groups {
        g.count = (u64::from(g.count) * u64::from(target) / u64::from(base)).max(1) as u32;
    }
    let devices: u32 = fleet.groups.iter().map(|g| g.count).sum();
    let start = fleet.start.expect("start");
    let options = sim::Options {
        start,
        days: 30,
        seed: 1,
    };
    (world, fleet, options, devices)
}
