//! A full decision pass over one tenant: N devices in three rings, 100 patches each
//! approved with an active rollout, every device reporting `PER_DEVICE` of them, a
//! quarter of the reports already installed and some devices mid-install.
//!
//! Run: `cargo bench --bench engine` (figures in docs/benchmarks.md).
//! `RINGMASTER_BENCH_DEVICES=N` (and `RINGMASTER_BENCH_PASSES=K`, default 1) runs K passes
//! over N devices (10 patches each) instead, without criterion, and prints the fastest and
//! the median: quick comparisons of two builds, and a pass's instructions and cache misses
//! counted with callgrind, whose counts do not depend on what else the machine does.
//! `RINGMASTER_BENCH_OPERATOR=1` with it times the operator's full pass instead
//! (`decide_changed`, everything changed, the cache warm).
//! `RINGMASTER_BENCH_MEMORY=N` measures instead the memory the engine's cache keeps per
//! device between passes at N devices (the heap it holds after a pass, counted by this
//! binary's allocator): what the operator keeps per device beyond its cached objects.

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use ringmaster::api::*;
use ringmaster::engine::Snapshot;
use ringmaster::sim::World;

const PATCHES: usize = 100;

/// The system allocator, counting the bytes in use (for `RINGMASTER_BENCH_MEMORY`).
struct Counting;

static IN_USE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only a counter is
// kept beside it.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        IN_USE.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        IN_USE.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        IN_USE.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
        IN_USE.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { std::alloc::System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn in_use() -> usize {
    IN_USE.load(std::sync::atomic::Ordering::Relaxed)
}

fn meta(name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some("bench".into()),
        generation: Some(1),
        creation_timestamp: Some(Time("2026-11-01T00:00:00Z".parse().expect("ts"))),
        labels: Some(labels),
        ..Default::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Builds the tenant and runs two passes so every rollout exists and has admitted work.
fn tenant(devices: usize, per_device: usize) -> (World, Timestamp) {
    let start: Timestamp = "2026-11-11T00:00:00Z".parse().expect("ts");
    let mut w = World::new("bench");
    let rings = ["it", "pilot", "broad"];
    w.policies.insert(
        "fleet".into(),
        PatchPolicy {
            metadata: meta("fleet", BTreeMap::new()),
            spec: PatchPolicySpec {
                device_selector: LabelSelector {
                    match_labels: Some(labels(&[("managed", "yes")])),
                    match_expressions: None,
                },
                priority: 0,
                tier_label: "tier".into(),
                sla: vec![
                    SlaTier {
                        tier: "tier-1".into(),
                        critical: Duration::days(2),
                        high: Duration::days(7),
                        medium: Duration::days(30),
                        low: Duration::days(90),
                    },
                    SlaTier {
                        tier: "default".into(),
                        critical: Duration::days(7),
                        high: Duration::days(14),
                        medium: Duration::days(60),
                        low: Duration::days(120),
                    },
                ],
                due_soon_margin: None,
                approval: ApprovalSpec {
                    rules: vec![ApprovalRule {
                        name: None,
                        matches: RuleMatch::default(),
                        action: ApprovalAction::Approve,
                        delay: None,
                        emergency: false,
                    }],
                    ..Default::default()
                },
                rings: rings.iter().map(|r| r.to_string()).collect(),
                exceptions: ExceptionLimits::default(),
                freezes: vec![],
                risk: None,
            },
            status: None,
        },
    );
    for r in rings {
        w.rings.insert(
            r.into(),
            DeploymentRing {
                metadata: meta(r, BTreeMap::new()),
                spec: DeploymentRingSpec {
                    device_selector: LabelSelector {
                        match_labels: Some(labels(&[("ring", r)])),
                        match_expressions: None,
                    },
                    max_concurrent: IntOrString::String("10%".into()),
                    maintenance_windows: vec![MaintenanceWindow {
                        days: Some(vec![
                            Weekday::Mon,
                            Weekday::Tue,
                            Weekday::Wed,
                            Weekday::Thu,
                            Weekday::Fri,
                            Weekday::Sat,
                            Weekday::Sun,
                        ]),
                        weeks_of_month: None,
                        patch_tuesday_offset_days: None,
                        start: "00:00".into(),
                        end: "00:00".into(),
                        time_zone: "Europe/Berlin".into(),
                    }],
                    promotion: PromotionSpec {
                        soak: Some(Duration::hours(24)),
                        ..Default::default()
                    },
                    halt: Some(HaltSpec {
                        failure_rate: 20.0,
                        min_samples: 10,
                        on_failure: OnFailure::Pause,
                    }),
                    unreachable_after: None,
                    attempt_timeout: None,
                    freezes: vec![],
                    reboot: Default::default(),
                    health_checks: Default::default(),
                },
                status: None,
            },
        );
    }
    for p in 0..PATCHES {
        let id = format!("KB{}", 5_000_000 + p);
        w.patches.insert(
            id.clone(),
            Patch::new(
                &id.to_lowercase(),
                PatchSpec {
                    id,
                    title: None,
                    vendor: "Microsoft".into(),
                    product: None,
                    classification: Classification::Security,
                    cvss_score: Some((p % 10) as f64 + 0.5),
                    vendor_severity: None,
                    cves: vec![],
                    known_exploited: false,
                    released_at: "2026-11-10T18:00:00Z".parse().expect("ts"),
                    reboot_required: true,
                    uninstallable: true,
                    supersedes: vec![],
                    packages: vec![],
                    kev: None,
                    epss: None,
                },
            ),
        );
    }
    for d in 0..devices {
        let name = format!("dev-{d:06}");
        let ring = match d % 20 {
            0 => "it",
            1..=4 => "pilot",
            _ => "broad",
        };
        let tier = if d % 3 == 0 { "tier-1" } else { "tier-2" };
        let patches = (0..per_device)
            .map(|k| {
                let p = (d + k * (PATCHES / per_device)) % PATCHES;
                let installed = (d + k) % 4 == 0;
                DevicePatchStatus {
                    id: format!("KB{}", 5_000_000 + p),
                    state: if installed {
                        PatchState::Installed
                    } else {
                        PatchState::Missing
                    },
                    attempts: u32::from(installed),
                    last_attempt_at: installed.then_some(start),
                    installed_at: installed.then_some(start),
                    message: None,
                    attempt: None,
                }
            })
            .collect();
        w.devices.insert(
            name.clone(),
            ManagedDevice {
                metadata: meta(
                    &name,
                    labels(&[("managed", "yes"), ("ring", ring), ("tier", tier)]),
                ),
                spec: ManagedDeviceSpec::default(),
                status: Some(ManagedDeviceStatus {
                    last_seen: Some(start),
                    patches,
                    ..Default::default()
                }),
            },
        );
    }
    w.step(start);
    let now = start.checked_add(SignedDuration::from_mins(5)).expect("ts");
    w.step(now);
    (
        w,
        now.checked_add(SignedDuration::from_mins(5)).expect("ts"),
    )
}

fn decision_pass(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    group.sample_size(10);
    for (devices, per_device) in [(10_000, 10), (100_000, 10), (10_000, 100)] {
        let (w, now) = tenant(devices, per_device);
        assert_eq!(
            w.rollouts.len(),
            PATCHES,
            "every patch has an active rollout"
        );
        let snapshot = w.snapshot();
        group.throughput(Throughput::Elements(devices as u64));
        group.bench_with_input(
            BenchmarkId::new(
                format!("{PATCHES}-rollouts-{per_device}-patches-per-device"),
                devices,
            ),
            &snapshot,
            |b, snap| b.iter(|| black_box(ringmaster::engine::decide(black_box(snap), now))),
        );
    }
    group.finish();
}

/// What the operator's pass costs today when one device's report changed since the pass
/// before (the event issue "Scale" asks to re-decide in at most 1 ms at 100,000
/// devices): a pass with a warm cache over a snapshot in which one device has a new
/// `resourceVersion` and one report changed. Passes alternate between two snapshots that
/// differ in that device only, so every pass sees one change.
fn one_report(c: &mut Criterion) {
    let mut group = c.benchmark_group("one-report");
    group.sample_size(10);
    for devices in [10_000, 100_000] {
        let (w, other, changed, now) = one_report_world(devices);
        let (one, two) = snapshots(&w, &other, &changed);
        let mut cache = ringmaster::engine::Cache::new();
        black_box(ringmaster::engine::decide_cached(&one, now, &mut cache));
        let mut flip = false;
        group.bench_function(BenchmarkId::new("cached-pass", devices), |b| {
            b.iter(|| {
                flip = !flip;
                let snap = if flip { &two } else { &one };
                black_box(ringmaster::engine::decide_cached(
                    black_box(snap),
                    now,
                    &mut cache,
                ))
            })
        });
        // The same event as the operator feeds it now: told which device changed.
        let told: BTreeSet<String> = [changed.clone()].into();
        let mut cache = ringmaster::engine::Cache::new();
        let everything = ringmaster::engine::Changed::Everything;
        black_box(ringmaster::engine::decide_changed(
            &one, everything, now, &mut cache,
        ));
        // Whether criterion ran it (a filter on the command line may leave it out).
        let mut ran = false;
        group.bench_function(BenchmarkId::new("incremental-pass", devices), |b| {
            ran = true;
            b.iter(|| {
                flip = !flip;
                let snap = if flip { &two } else { &one };
                let changed = ringmaster::engine::Changed::Devices(&told);
                black_box(ringmaster::engine::decide_changed(
                    black_box(snap),
                    changed,
                    now,
                    &mut cache,
                ))
            })
        });
        assert!(
            !ran || cache.incremental_passes() > 0,
            "the passes were incremental"
        );
    }
    group.finish();
}

/// The one-report benches' tenant, settled as the operator finds it after writing its
/// last decisions (stored, and versioned as an API server versions them, so that a pass
/// changes nothing more), and one of its devices with one report changed.
fn one_report_world(devices: usize) -> (World, ManagedDevice, String, Timestamp) {
    let (mut w, now) = tenant(devices, 10);
    w.step(now);
    for (i, d) in w.devices.values_mut().enumerate() {
        d.metadata.resource_version = Some((i + 1).to_string());
    }
    for (i, r) in w.rollouts.values_mut().enumerate() {
        r.metadata.resource_version = Some((devices + 10 + i).to_string());
    }
    let changed = w
        .devices
        .keys()
        .nth(devices / 2)
        .cloned()
        .expect("a device");
    let mut other = w.devices[&changed].clone();
    other.metadata.resource_version = Some((devices + 1).to_string());
    if let Some(report) = other.status.as_mut().and_then(|s| s.patches.first_mut()) {
        report.state = match report.state {
            PatchState::Installed => PatchState::Failed,
            _ => PatchState::Installed,
        };
        report.installed_at = Some(now);
    }
    (w, other, changed, now)
}

/// The world's snapshot, and the same with `other` in place of the device `changed`.
fn snapshots<'w>(
    w: &'w World,
    other: &'w ManagedDevice,
    changed: &str,
) -> (Snapshot<'w>, Snapshot<'w>) {
    let one = w.snapshot();
    let mut two = w.snapshot();
    let at = two
        .devices
        .iter()
        .position(|d| d.metadata.name.as_deref() == Some(changed))
        .expect("the device");
    two.devices[at] = other;
    (one, two)
}

/// `passes` incremental passes over `devices` devices, each after one report changed,
/// timed one by one (for a profiler: `RINGMASTER_BENCH_ONE_REPORT=100000`).
fn one_report_passes(devices: usize, passes: usize) {
    let (w, other, changed, now) = one_report_world(devices);
    let (one, two) = snapshots(&w, &other, &changed);
    let told: BTreeSet<String> = [changed].into();
    let mut cache = ringmaster::engine::Cache::new();
    let everything = ringmaster::engine::Changed::Everything;
    black_box(ringmaster::engine::decide_changed(
        &one, everything, now, &mut cache,
    ));
    let (mut times, mut cpu): (Vec<_>, Vec<_>) = (0..passes)
        .map(|i| {
            let snap = if i % 2 == 0 { &two } else { &one };
            let changed = ringmaster::engine::Changed::Devices(&told);
            let (started, cpu_started) = (std::time::Instant::now(), thread_cpu());
            black_box(ringmaster::engine::decide_changed(
                snap, changed, now, &mut cache,
            ));
            (started.elapsed(), thread_cpu().saturating_sub(cpu_started))
        })
        .unzip();
    times.sort();
    cpu.sort();
    let at = |list: &[std::time::Duration], i: usize| list.get(i).copied().unwrap_or_default();
    println!(
        "{passes} incremental passes over {devices} devices ({} incremental): \
         wall fastest {:?}, median {:?}; CPU fastest {:?}, median {:?}, 90th percentile {:?}",
        cache.incremental_passes(),
        at(&times, 0),
        at(&times, passes / 2),
        at(&cpu, 0),
        at(&cpu, passes / 2),
        at(&cpu, passes * 9 / 10),
    );
}

/// The CPU time this thread has used (what the "1 ms of CPU" counts; unlike the
/// wall clock, it does not grow while other processes have the core).
fn thread_cpu() -> std::time::Duration {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(std::time::Duration::from)
        .unwrap_or_default()
}

/// `passes` passes over `devices` devices, each timed: `engine::decide`, which keeps
/// nothing; with `operator`, the operator's full pass instead (`decide_changed` told
/// everything changed, with the tenant's cache warm from the pass before: what a resync
/// or a spec change costs it).
fn passes(devices: usize, passes: usize, operator: bool) {
    let (w, now) = tenant(devices, 10);
    let snapshot = w.snapshot();
    let mut cache = ringmaster::engine::Cache::new();
    let mut pass = || {
        if operator {
            let everything = ringmaster::engine::Changed::Everything;
            black_box(ringmaster::engine::decide_changed(
                black_box(&snapshot),
                everything,
                now,
                &mut cache,
            ));
        } else {
            black_box(ringmaster::engine::decide(black_box(&snapshot), now));
        }
    };
    if operator {
        pass();
    }
    let mut times: Vec<std::time::Duration> = (0..passes)
        .map(|_| {
            let started = std::time::Instant::now();
            pass();
            started.elapsed()
        })
        .collect();
    times.sort();
    let kind = if operator {
        "operator's full"
    } else {
        "uncached"
    };
    println!(
        "{passes} {kind} passes over {devices} devices: fastest {:?}, median {:?}",
        times.first().copied().unwrap_or_default(),
        times.get(passes / 2).copied().unwrap_or_default()
    );
}

/// The heap the engine's cache holds per device after a pass over `devices` devices.
fn cache_memory(devices: usize) {
    let (w, now) = tenant(devices, 10);
    let snapshot = w.snapshot();
    let before = in_use();
    let mut cache = ringmaster::engine::Cache::new();
    drop(black_box(ringmaster::engine::decide_cached(
        &snapshot, now, &mut cache,
    )));
    // A second pass, as the operator's passes after the first: what stays is the cache.
    drop(black_box(ringmaster::engine::decide_cached(
        &snapshot, now, &mut cache,
    )));
    let kept = in_use().saturating_sub(before);
    println!(
        "the cache keeps {kept} bytes over {devices} devices (10 reports each): {} bytes per device",
        kept / devices.max(1)
    );
    drop(cache);
    // As the operator keeps it: what an incremental pass starts from, too.
    let before = in_use();
    let mut cache = ringmaster::engine::Cache::new();
    let everything = ringmaster::engine::Changed::Everything;
    drop(black_box(ringmaster::engine::decide_changed(
        &snapshot, everything, now, &mut cache,
    )));
    let none = BTreeSet::new();
    let told = ringmaster::engine::Changed::Devices(&none);
    drop(black_box(ringmaster::engine::decide_changed(
        &snapshot, told, now, &mut cache,
    )));
    let kept = in_use().saturating_sub(before);
    println!(
        "with what an incremental pass starts from: {kept} bytes, {} bytes per device",
        kept / devices.max(1)
    );
    drop(cache);
}

criterion_group!(benches, decision_pass, one_report);

fn main() {
    if let Ok(devices) = std::env::var("RINGMASTER_BENCH_ONE_REPORT") {
        let devices = devices
            .parse()
            .expect("RINGMASTER_BENCH_ONE_REPORT: a number");
        let passes = std::env::var("RINGMASTER_BENCH_PASSES").map_or(2000, |p| {
            p.parse().expect("RINGMASTER_BENCH_PASSES: a number")
        });
        one_report_passes(devices, passes);
        return;
    }
    if let Ok(devices) = std::env::var("RINGMASTER_BENCH_MEMORY") {
        cache_memory(devices.parse().expect("RINGMASTER_BENCH_MEMORY: a number"));
        return;
    }
    match std::env::var("RINGMASTER_BENCH_DEVICES") {
        Ok(devices) => {
            let count =
                |v: &str, name: &str| v.parse().unwrap_or_else(|_| panic!("{name}: a number"));
            let n = std::env::var("RINGMASTER_BENCH_PASSES")
                .map_or(1, |p| count(&p, "RINGMASTER_BENCH_PASSES"));
            let operator = std::env::var_os("RINGMASTER_BENCH_OPERATOR").is_some();
            passes(count(&devices, "RINGMASTER_BENCH_DEVICES"), n, operator);
        }
        Err(_) => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
