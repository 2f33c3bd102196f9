//! Invariants of the engine over arbitrary fleets and timelines (proptest):
//! - never more installs admitted in a ring than `maxConcurrent` allows;
//! - never an admission outside a window, inside a freeze, or for a device whose
//!   exception keeps it out;
//! - ring N+1 never leaves Pending before ring N has passed;
//! - a ring never passes below its success threshold, nor before its soak ends;
//! - the next wake-up is after `now` and no later than the next exception expiry,
//!   scheduled approval, soak end or window opening that has work waiting;
//! - no engine function panics on any input.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use ringmaster::api::*;
use ringmaster::engine::windows::{Schedule, active_freeze};
use ringmaster::engine::{self, Changed, PlanList};
use ringmaster::sim::World;

const START: &str = "2026-11-09T00:00:00Z";

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn meta(name: &str, labels: &[(&str, String)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some("t".into()),
        generation: Some(1),
        creation_timestamp: Some(Time(ts(START))),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn selector(key: &str, value: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(key.to_string(), value.to_string())])),
        match_expressions: None,
    }
}

#[derive(Clone, Debug)]
struct RingPlan {
    max: IntOrString,
    window: Option<(Vec<Weekday>, String, String, String)>,
    soak_h: i64,
    min_success: f64,
    halt: Option<(f64, u32, OnFailure)>,
    manual: bool,
}

#[derive(Clone, Debug)]
struct Scenario {
    rings: Vec<RingPlan>,
    devices: Vec<(usize, u8)>,
    patches: Vec<(f64, bool, i64)>,
    freezes: Vec<(i64, i64)>,
    exceptions: Vec<(Vec<usize>, usize, i64, bool)>,
    steps: Vec<(i64, u8, u8)>,
}

fn ring_plan() -> impl Strategy<Value = RingPlan> {
    let max = prop_oneof![
        (1i32..4).prop_map(IntOrString::Int),
        (1u8..=100).prop_map(|p| IntOrString::String(format!("{p}%")))
    ];
    let zones = prop::sample::select(vec![
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
    ]);
    let days = prop::sample::subsequence(
        vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ],
        1..=7,
    );
    let window =
        prop::option::of((days, 0u8..24, 0u8..24, zones).prop_map(|(d, s, e, z)| {
            (d, format!("{s:02}:00"), format!("{e:02}:30"), z.to_string())
        }));
    let halt = prop::option::of((
        0f64..100.0,
        1u32..5,
        prop::sample::select(vec![
            OnFailure::Pause,
            OnFailure::Abort,
            OnFailure::Rollback,
        ]),
    ));
    (
        max,
        window,
        0i64..72,
        0f64..=100.0,
        halt,
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(max, window, soak_h, min_success, halt, manual)| RingPlan {
                max,
                window,
                soak_h,
                min_success,
                halt,
                manual,
            },
        )
}

fn scenario() -> impl Strategy<Value = Scenario> {
    prop::collection::vec(ring_plan(), 1..4).prop_flat_map(|rings| {
        let n = rings.len();
        (
            Just(rings),
            prop::collection::vec((0..n + 1, 0u8..3), 0..25),
            prop::collection::vec((0f64..10.0, any::<bool>(), -5i64..5), 1..4),
            prop::collection::vec((0i64..400, 1i64..100), 0..3),
            prop::collection::vec(
                (
                    prop::collection::vec(0usize..25, 1..4),
                    0usize..3,
                    1i64..400,
                    any::<bool>(),
                ),
                0..3,
            ),
            prop::collection::vec((1i64..720, 0u8..100, 0u8..100), 1..40),
        )
            .prop_map(
                |(rings, devices, patches, freezes, exceptions, steps)| Scenario {
                    rings,
                    devices,
                    patches,
                    freezes,
                    exceptions,
                    steps,
                },
            )
    })
}

fn build(s: &Scenario) -> World {
    let mut w = World::new("t");
    let start = ts(START);
    let hours = |h: i64| {
        start
            .checked_add(SignedDuration::from_hours(h))
            .expect("in range")
    };
    let ring_names: Vec<String> = (0..s.rings.len()).map(|i| format!("r{i}")).collect();
    w.policies.insert(
        "p".into(),
        PatchPolicy {
            metadata: meta("p", &[]),
            spec: PatchPolicySpec {
                device_selector: selector("managed", "yes"),
                priority: 0,
                tier_label: "tier".into(),
                sla: vec![SlaTier {
                    tier: "default".into(),
                    critical: Duration::days(2),
                    high: Duration::days(7),
                    medium: Duration::days(30),
                    low: Duration::days(90),
                }],
                due_soon_margin: None,
                approval: ApprovalSpec {
                    rules: vec![ApprovalRule {
                        name: None,
                        matches: RuleMatch::default(),
                        action: ApprovalAction::Approve,
                        delay: Some(Duration::hours(6)),
                        emergency: false,
                    }],
                    hold: Some(HoldSpec {
                        failure_rate: 60.0,
                        min_samples: 5,
                    }),
                    ..Default::default()
                },
                rings: ring_names.clone(),
                exceptions: ExceptionLimits::default(),
                freezes: s
                    .freezes
                    .iter()
                    .map(|(from, len)| Freeze {
                        from: hours(*from),
                        until: hours(from + len),
                        reason: "f".into(),
                        owner: "o".into(),
                    })
                    .collect(),
                risk: None,
            },
            status: None,
        },
    );
    for (i, r) in s.rings.iter().enumerate() {
        let windows = r
            .window
            .iter()
            .map(|(days, start, end, tz)| MaintenanceWindow {
                days: Some(days.clone()),
                weeks_of_month: None,
                patch_tuesday_offset_days: None,
                start: start.clone(),
                end: end.clone(),
                time_zone: tz.clone(),
            })
            .collect();
        w.rings.insert(
            ring_names[i].clone(),
            DeploymentRing {
                metadata: meta(&ring_names[i], &[]),
                spec: DeploymentRingSpec {
                    device_selector: selector("ring", &ring_names[i]),
                    max_concurrent: r.max.clone(),
                    maintenance_windows: windows,
                    promotion: PromotionSpec {
                        soak: Some(Duration::hours(r.soak_h)),
                        min_success_rate: r.min_success,
                        max_failures: None,
                        require_manual_approval: r.manual,
                        emergency_soak: None,
                    },
                    halt: r
                        .halt
                        .map(|(failure_rate, min_samples, on_failure)| HaltSpec {
                            failure_rate,
                            min_samples,
                            on_failure,
                        }),
                    unreachable_after: Some(Duration::hours(48)),
                    attempt_timeout: None,
                    freezes: vec![],
                    reboot: Default::default(),
                    health_checks: Default::default(),
                },
                status: None,
            },
        );
    }
    let patch_ids: Vec<String> = (0..s.patches.len()).map(|i| format!("KB{i}")).collect();
    for (i, (cvss, uninstallable, released_h)) in s.patches.iter().enumerate() {
        let mut p = Patch::new(
            &patch_ids[i].to_lowercase(),
            PatchSpec {
                id: patch_ids[i].clone(),
                title: None,
                vendor: "V".into(),
                product: None,
                classification: Classification::Security,
                cvss_score: Some(*cvss),
                vendor_severity: None,
                cves: vec![],
                known_exploited: false,
                released_at: hours(*released_h),
                reboot_required: false,
                uninstallable: *uninstallable,
                supersedes: vec![],
                packages: vec![],
                kev: None,
                epss: None,
            },
        );
        p.metadata.creation_timestamp = Some(Time(start));
        w.patches.insert(patch_ids[i].clone(), p);
    }
    for (d, (ring, tier)) in s.devices.iter().enumerate() {
        let ring_label = if *ring < ring_names.len() {
            ring_names[*ring].clone()
        } else {
            "none".to_string()
        };
        let name = format!("d{d:02}");
        let new = device(&name, ring_label, *tier, start, &patch_ids);
        w.devices.insert(name, new);
    }
    for (i, (devs, patch, expires_h, approved)) in s.exceptions.iter().enumerate() {
        let name = format!("e{i}");
        let names = devs.iter().map(|d| format!("d{d:02}")).collect();
        let approved_by = approved.then(|| "b".to_string());
        let new = exception(&name, *patch, names, approved_by, hours(*expires_h));
        w.exceptions.insert(name, new);
    }
    w
}

/// The labels of the n-th device by name, if there are any.
fn nth_labels(w: &mut World, n: usize) -> Option<&mut BTreeMap<String, String>> {
    let name = nth_device(w, n)?;
    w.devices.get_mut(&name)?.metadata.labels.as_mut()
}

/// An exception (ending in `Enforce`) for the named devices and patch `KB<patch>`.
fn exception(
    name: &str,
    patch: usize,
    devices: Vec<String>,
    approved_by: Option<String>,
    expires_at: Timestamp,
) -> PatchException {
    PatchException {
        metadata: meta(name, &[]),
        spec: PatchExceptionSpec {
            patches: vec![format!("KB{patch}")],
            devices: ExceptionDevices {
                names: devices,
                selector: None,
            },
            reason: "r".into(),
            owner: "o".into(),
            approved_by,
            expires_at,
            compensating_controls: vec![],
            ticket: None,
            on_expiry: OnExpiry::Enforce,
        },
        status: None,
    }
}

/// Plays agents for one step: devices with an open install entry may start (and finish
/// at once, succeeding or failing by the dice); some devices go quiet; some check in by
/// renewing their Lease (no object changes) rather than by `lastSeen`.
fn play_agents(w: &mut World, now: Timestamp, dice: u8, fail_pct: u8) {
    let names: Vec<String> = w.devices.keys().cloned().collect();
    for (i, name) in names.iter().enumerate() {
        let roll = (dice as usize + i * 37) % 100;
        if roll < 10 {
            continue; // offline this step: not seen
        }
        if roll % 4 == 1 {
            w.renew(name, now);
        } else {
            w.touch(name, now);
        }
        let dev = &w.devices[name];
        let entries: Vec<(String, PlanEntry)> = dev
            .spec
            .plan
            .install
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (patch, entry) in entries {
            let open = entry.not_before <= now && entry.not_after.is_none_or(|na| now < na);
            let report = w.devices[name]
                .status
                .as_ref()
                .and_then(|s| s.patches.iter().find(|p| p.id == patch))
                .cloned();
            let Some(report) = report else { continue };
            if !open
                || report.state == PatchState::Installed
                || report
                    .last_attempt_at
                    .is_some_and(|t| t >= entry.not_before)
            {
                continue;
            }
            w.report(name, &patch, PatchState::Installing, now);
            if !roll.is_multiple_of(3) {
                let fail = ((roll * 7) % 100) < fail_pct as usize;
                w.report(
                    name,
                    &patch,
                    if fail {
                        PatchState::Failed
                    } else {
                        PatchState::Installed
                    },
                    now,
                );
            }
        }
        let uninstalls: Vec<String> = w.devices[name]
            .spec
            .plan
            .uninstall
            .keys()
            .cloned()
            .collect();
        for patch in uninstalls {
            w.report(name, &patch, PatchState::RolledBack, now);
        }
    }
}

fn check_step(
    before: &World,
    d: &engine::Decisions,
    after: &World,
    now: Timestamp,
) -> Result<(), TestCaseError> {
    // Wake-ups are in the future.
    if let Some(wake) = d.wake_at {
        prop_assert!(wake > now, "wake {wake} is not after now {now}");
    }
    let policy = &before.policies["p"];
    // Exception expiries of active exceptions bound the wake-up.
    for (name, st) in &d.exceptions {
        if st.phase == Some(ExceptionPhase::Active) {
            let exp = before.exceptions[name].spec.expires_at;
            prop_assert!(
                d.wake_at.is_some_and(|w| w <= exp),
                "wake {:?} after expiry {exp} of active {name}",
                d.wake_at
            );
        }
    }
    // Admissions.
    for c in d
        .plan
        .iter()
        .filter(|c| c.list == PlanList::Install && c.entry.is_some())
    {
        let dev = &before.devices[&c.device];
        let ring_label = dev
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("ring"))
            .cloned()
            .unwrap_or_default();
        let ring = &before.rings[&ring_label];
        let schedule =
            Schedule::compile(&ring.spec.maintenance_windows).expect("generated windows compile");
        prop_assert!(
            schedule.is_open(now),
            "{} admitted to {ring_label} outside its window at {now}",
            c.device
        );
        prop_assert!(
            active_freeze(policy.spec.freezes.iter(), now).is_none(),
            "{} admitted inside a freeze at {now}",
            c.device
        );
        for (en, e) in &after.exceptions {
            let covers =
                e.spec.patches.contains(&c.patch) && e.spec.devices.names.contains(&c.device);
            let active = e.status.as_ref().and_then(|s| s.phase) == Some(ExceptionPhase::Active);
            prop_assert!(
                !(covers && active),
                "{} admitted for {} while exception {en} is active",
                c.device,
                c.patch
            );
        }
    }
    // Per rollout: concurrency, ring order, success threshold.
    for (name, st) in &d.rollouts {
        let admitted_now: BTreeMap<&str, u32> = d
            .plan
            .iter()
            .filter(|c| {
                c.list == PlanList::Install
                    && c.entry.as_ref().is_some_and(|e| &e.rollout == name)
                    && !before.devices[&c.device]
                        .spec
                        .plan
                        .install
                        .contains_key(&c.patch)
            })
            .fold(BTreeMap::new(), |mut m, c| {
                let ring = before.devices[&c.device]
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("ring"))
                    .map(String::as_str)
                    .unwrap_or("");
                *m.entry(ring).or_default() += 1;
                m
            });
        for rp in &st.rings {
            if admitted_now.get(rp.name.as_str()).copied().unwrap_or(0) > 0 {
                let limit = engine::rollout::max_concurrent(
                    &before.rings[&rp.name].spec.max_concurrent,
                    rp.targeted - rp.unreachable,
                );
                prop_assert!(
                    rp.in_progress <= limit,
                    "{name}/{}: {} in progress > maxConcurrent {limit}",
                    rp.name,
                    rp.in_progress
                );
            }
        }
        let rolling_back = matches!(
            st.phase,
            Some(RolloutPhase::RollingBack | RolloutPhase::RolledBack | RolloutPhase::Aborted)
        );
        if !rolling_back {
            for pair in st.rings.windows(2) {
                if pair[1].phase != RingPhase::Pending {
                    prop_assert_eq!(
                        pair[0].phase,
                        RingPhase::Passed,
                        "{}: ring {} left Pending before {} passed",
                        name,
                        pair[1].name,
                        pair[0].name
                    );
                }
            }
        }
        let old = before.rollouts.get(name).and_then(|r| r.status.as_ref());
        for rp in &st.rings {
            let was_passed = old
                .and_then(|o| o.rings.iter().find(|r| r.name == rp.name))
                .is_some_and(|r| r.phase == RingPhase::Passed);
            if rp.phase == RingPhase::Passed && !was_passed && rp.installed + rp.failed > 0 {
                let rate = f64::from(rp.installed) * 100.0 / f64::from(rp.installed + rp.failed);
                let min = before.rings[&rp.name].spec.promotion.min_success_rate;
                prop_assert!(
                    rate >= min,
                    "{name}/{} passed at {rate:.1}% below {min}%",
                    rp.name
                );
                if let (Some(last), Some(soak)) = (
                    rp.last_install_at,
                    before.rings[&rp.name].spec.promotion.soak,
                ) {
                    let end = last.checked_add(soak.span()).expect("in range");
                    prop_assert!(
                        now >= end,
                        "{name}/{} passed at {now}, before its soak ended at {end}",
                        rp.name
                    );
                }
            }
            let open_soak = rp.gates.iter().find(|g| g.name == "soak" && !g.passed);
            if let (RingPhase::Soaking, Some(gate)) = (rp.phase, open_soak) {
                let end: Timestamp = gate
                    .message
                    .rsplit(' ')
                    .next()
                    .and_then(|t| t.parse().ok())
                    .expect("soak gate names its end");
                prop_assert!(
                    d.wake_at.is_some_and(|w| w <= end),
                    "wake {:?} after soak end {end}",
                    d.wake_at
                );
            }
        }
    }
    Ok(())
}

/// `cases` cases, with the seeds of past failures kept next to this file, in
/// `engine_props.proptest-regressions`. proptest's default place is found by walking up
/// to a directory holding a `main.rs`, which here is `tests/it/` itself: it would read
/// and write `tests/proptest-regressions/engine_props.txt` and miss the saved seeds.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("RINGMASTER_PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(cases),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn engine_invariants_hold_over_arbitrary_fleets_and_timelines(s in scenario()) {
        let mut w = build(&s);
        let mut now = ts(START);
        for (minutes, dice, fail) in &s.steps {
            let before = w.clone();
            let d = engine::decide(&before.snapshot(), now);
            w.apply(&d, now);
            check_step(&before, &d, &w, now)?;
            // Jump to the wake-up when it comes first, as the shells do.
            let next = now.checked_add(SignedDuration::from_mins(*minutes)).expect("in range");
            now = d.wake_at.filter(|t| *t < next).unwrap_or(next);
            play_agents(&mut w, now, *dice, *fail);
        }
    }

    #[test]
    fn decide_never_panics_on_odd_input(
        s in scenario(),
        op in prop::sample::select(vec!["In", "NotIn", "Exists", "DoesNotExist", "Equals", ""]),
        tz in prop::sample::select(vec!["UTC", "Mars/Olympus", "", "Europe/Berlin"]),
        start in prop::sample::select(vec!["22:00", "25:00", "7:00", "", "ab:cd"]),
        far in -3_000_000i64..3_000_000,
    ) {
        let mut w = build(&s);
        if let Some(r) = w.rings.values_mut().next() {
            r.spec.device_selector.match_expressions = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement { key: "ring".into(), operator: op.to_string(), values: None }]);
            r.spec.maintenance_windows = vec![MaintenanceWindow { days: None, weeks_of_month: Some(vec![0, 9]), patch_tuesday_offset_days: Some(99), start: start.to_string(), end: "04:00".into(), time_zone: tz.to_string() }];
            r.spec.max_concurrent = IntOrString::String("abc%".into());
        }
        let now = ts(START).checked_add(SignedDuration::from_hours(far)).unwrap_or(ts(START));
        let d = engine::decide(&w.snapshot(), now);
        if let Some(wake) = d.wake_at {
            prop_assert!(wake > now);
        }
    }
}

/// A change between two passes, as a shell would see one.
#[derive(Clone, Debug)]
enum Change {
    /// A device's ring and tier labels change (ring index past the last: no ring).
    Relabel(usize, usize, u8),
    /// A device leaves the managed fleet (its `managed` label goes).
    Unmanage(usize),
    /// A device is deleted.
    Remove(usize),
    /// A device joins, in a ring and tier, reporting every patch as missing.
    Add(usize, u8),
    /// A device reports a patch it did not report before.
    NewReport(usize, u8),
    /// A device forgets its reports.
    ClearReports(usize),
    /// An exception is approved (or its approval withdrawn).
    ToggleExceptionApproval(usize),
    /// A new exception for some devices and a patch, expiring some hours from the start.
    NewException(Vec<usize>, usize, i64),
    /// A person rejects a patch under the policy.
    Reject(usize),
    /// The policy's SLA for its default tier tightens or loosens.
    Sla(i64),
    /// A patch appears in the catalog, released some hours from the start.
    Release(i64),
    /// A device's plan loses its entries (someone edited it by hand).
    ClearPlan(usize),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0usize..30, 0usize..4, 0u8..3).prop_map(|(d, r, t)| Change::Relabel(d, r, t)),
        (0usize..30).prop_map(Change::Unmanage),
        (0usize..30).prop_map(Change::Remove),
        (0usize..4, 0u8..3).prop_map(|(r, t)| Change::Add(r, t)),
        (0usize..30, 0u8..6).prop_map(|(d, p)| Change::NewReport(d, p)),
        (0usize..30).prop_map(Change::ClearReports),
        (0usize..3).prop_map(Change::ToggleExceptionApproval),
        (
            prop::collection::vec(0usize..30, 1..4),
            0usize..4,
            1i64..400
        )
            .prop_map(|(d, p, h)| Change::NewException(d, p, h)),
        (0usize..4).prop_map(Change::Reject),
        (1i64..10).prop_map(Change::Sla),
        (-5i64..300).prop_map(Change::Release),
        (0usize..30).prop_map(Change::ClearPlan),
    ]
}

/// The n-th device by name, if there are any.
fn nth_device(w: &World, n: usize) -> Option<String> {
    let len = w.devices.len();
    (len > 0).then(|| w.devices.keys().nth(n % len).cloned())?
}

/// A managed device in a ring with a tier, last seen at `seen`, reporting every id in
/// `patches` missing.
fn device(
    name: &str,
    ring: String,
    tier: u8,
    seen: Timestamp,
    patches: &[String],
) -> ManagedDevice {
    ManagedDevice {
        metadata: meta(
            name,
            &[
                ("managed", "yes".into()),
                ("ring", ring),
                ("tier", format!("t{tier}")),
            ],
        ),
        spec: ManagedDeviceSpec::default(),
        status: Some(ManagedDeviceStatus {
            last_seen: Some(seen),
            patches: patches.iter().map(DevicePatchStatus::missing).collect(),
            ..Default::default()
        }),
    }
}

fn apply_change(w: &mut World, c: &Change, serial: &mut u32) {
    let start = ts(START);
    let hours = |h: i64| {
        start
            .checked_add(SignedDuration::from_hours(h))
            .expect("in range")
    };
    let ring_names: Vec<String> = w.policies["p"].spec.rings.clone();
    let ring_label = |r: usize| ring_names.get(r).cloned().unwrap_or_else(|| "none".into());
    let patch_ids: Vec<String> = w.patches.keys().cloned().collect();
    match c {
        Change::Relabel(d, r, t) => {
            if let Some(labels) = nth_labels(w, *d) {
                labels.insert("ring".into(), ring_label(*r));
                labels.insert("tier".into(), format!("t{t}"));
            }
        }
        Change::Unmanage(d) => {
            if let Some(labels) = nth_labels(w, *d) {
                labels.remove("managed");
            }
        }
        Change::Remove(d) => {
            if let Some(name) = nth_device(w, *d) {
                w.devices.remove(&name);
            }
        }
        Change::Add(r, t) => {
            *serial += 1;
            let name = format!("n{serial:02}");
            let new = device(&name, ring_label(*r), *t, start, &patch_ids);
            w.devices.insert(name, new);
        }
        Change::NewReport(d, p) => {
            if let Some(name) = nth_device(w, *d) {
                let id = format!("KB{p}");
                let status = w
                    .devices
                    .get_mut(&name)
                    .map(|d| d.status.get_or_insert_with(ManagedDeviceStatus::default));
                if let Some(status) = status
                    && !status.patches.iter().any(|r| r.id == id)
                {
                    status.patches.push(DevicePatchStatus::missing(id));
                }
            }
        }
        Change::ClearReports(d) => {
            if let Some(name) = nth_device(w, *d)
                && let Some(status) = w.devices.get_mut(&name).and_then(|d| d.status.as_mut())
            {
                status.patches.clear();
            }
        }
        Change::ToggleExceptionApproval(e) => {
            if let Some(exc) = w.exceptions.values_mut().nth(*e) {
                exc.spec.approved_by = match exc.spec.approved_by {
                    Some(_) => None,
                    None => Some("b".into()),
                };
            }
        }
        Change::NewException(devs, p, h) => {
            *serial += 1;
            let name = format!("x{serial:02}");
            let names: Vec<String> = devs.iter().filter_map(|d| nth_device(w, *d)).collect();
            let mut new = exception(&name, *p, names, Some("b".into()), hours(*h));
            new.spec.on_expiry = OnExpiry::Escalate;
            w.exceptions.insert(name, new);
        }
        Change::Reject(p) => {
            if let Some(policy) = w.policies.get_mut("p") {
                policy.spec.approval.reject.push(format!("KB{p}"));
            }
        }
        Change::Sla(days) => {
            if let Some(row) = w.policies.get_mut("p").and_then(|p| p.spec.sla.first_mut()) {
                row.critical = Duration::days(*days);
                row.high = Duration::days(days * 2);
            }
        }
        Change::Release(h) => {
            let i = w.patches.len();
            let id = format!("KB{i}");
            let mut p = Patch::new(
                &id.to_lowercase(),
                PatchSpec {
                    id: id.clone(),
                    title: None,
                    vendor: "V".into(),
                    product: None,
                    classification: Classification::Security,
                    cvss_score: Some(9.5),
                    vendor_severity: None,
                    cves: vec![],
                    known_exploited: false,
                    released_at: hours(*h),
                    reboot_required: false,
                    uninstallable: true,
                    supersedes: vec![],
                    packages: vec![],
                    kev: None,
                    epss: None,
                },
            );
            p.metadata.creation_timestamp = Some(Time(start));
            w.patches.insert(id, p);
        }
        Change::ClearPlan(d) => {
            if let Some(name) = nth_device(w, *d)
                && let Some(dev) = w.devices.get_mut(&name)
            {
                dev.spec.plan = Default::default();
            }
        }
    }
}

/// The devices that differ between two worlds in anything but `status.lastSeen`, or
/// that only one of them has: what a shell tells the cache.
fn changed_devices(before: &World, after: &World) -> Vec<String> {
    let unseen = |d: &ManagedDevice| {
        let mut status = d.status.clone();
        if let Some(s) = status.as_mut() {
            s.last_seen = None;
        }
        (d.metadata.clone(), d.spec.clone(), status)
    };
    let names: std::collections::BTreeSet<&String> =
        before.devices.keys().chain(after.devices.keys()).collect();
    names
        .into_iter()
        .filter(|n| match (before.devices.get(*n), after.devices.get(*n)) {
            (Some(a), Some(b)) => unseen(a) != unseen(b),
            _ => true,
        })
        .cloned()
        .collect()
}

/// The devices that differ in anything between two worlds (their `lastSeen` and
/// check-ins too), or that only one of them has: what a shell tells an incremental pass.
fn any_changed(before: &World, after: &World) -> BTreeSet<String> {
    let names: BTreeSet<&String> = before.devices.keys().chain(after.devices.keys()).collect();
    names
        .into_iter()
        .filter(|n| {
            let parts = |d: &ManagedDevice| (d.metadata.clone(), d.spec.clone(), d.status.clone());
            before.devices.get(*n).map(parts) != after.devices.get(*n).map(parts)
                || before.check_ins.get(n) != after.check_ins.get(n)
        })
        .cloned()
        .collect()
}

/// Gives every rollout that changed since `before` (or is new) a new `resourceVersion`,
/// as an API server does.
fn version_rollouts(before: &World, w: &mut World) {
    for (name, r) in w.rollouts.iter_mut() {
        let same = before.rollouts.get(name).is_some_and(|b| {
            b.spec == r.spec
                && b.status == r.status
                && b.metadata.annotations == r.metadata.annotations
                && b.metadata.resource_version.is_some()
        });
        if same {
            r.metadata.resource_version = before.rollouts[name].metadata.resource_version.clone();
        } else {
            w.version += 1;
            r.metadata.resource_version = Some(w.version.to_string());
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// A pass with a cache decides exactly what a pass without one decides, over random
    /// sequences of agent reports, label, device, exception, policy and catalog changes,
    /// and time moving on (now and then back): both when the devices carry no
    /// `resourceVersion` (every device is compared) and when they carry one that changes
    /// with every change, as an API server's do (unchanged devices are trusted); and an
    /// incremental pass, told the changed devices by name, or told only those whose
    /// objects changed and left to compare every device's check-in.
    #[test]
    fn a_cached_pass_decides_what_a_full_pass_decides(
        s in scenario(),
        steps in prop::collection::vec(
            (-30i64..720, 0u8..100, 0u8..100, prop::collection::vec(change(), 0..3)),
            1..30,
        ),
    ) {
        let mut w = build(&s);
        let mut compared = engine::Cache::new();
        let mut versioned = engine::Cache::new();
        let mut resumed = engine::Cache::new();
        let mut swept = engine::Cache::new();
        let mut last_pass: Option<World> = None;
        let mut serial = 0u32;
        let mut now = ts(START);
        for (minutes, dice, fail, changes) in &steps {
            let full = engine::decide(&w.snapshot(), now);
            let mut bare = w.clone();
            for d in bare.devices.values_mut() {
                d.metadata.resource_version = None;
            }
            let cached = engine::decide_cached(&bare.snapshot(), now, &mut compared);
            prop_assert_eq!(&full, &cached, "compared cache at {}", now);
            // As an API server does: every device changed since the last pass gets a new
            // version (the world versions its own writes and reports already).
            if let Some(before) = &last_pass {
                for name in changed_devices(before, &w) {
                    w.version += 1;
                    let v = w.version.to_string();
                    if let Some(d) = w.devices.get_mut(&name) {
                        d.metadata.resource_version = Some(v);
                    }
                }
            }
            let trusted = engine::decide_cached(&w.snapshot(), now, &mut versioned);
            prop_assert_eq!(&full, &trusted, "versioned cache at {}", now);
            // As a shell does: told which devices changed in anything (their check-ins
            // too), with every rollout changed since the last pass versioned anew.
            let named = last_pass.as_ref().map(|before| {
                version_rollouts(before, &mut w);
                any_changed(before, &w)
            });
            let told = named.as_ref().map_or(Changed::Everything, Changed::Devices);
            let incremental = engine::decide_changed(&w.snapshot(), told, now, &mut resumed);
            prop_assert_eq!(&full, &incremental, "incremental pass at {}", now);
            // As a simulated fleet does: told of changed objects only, check-ins compared.
            let objects = last_pass.as_ref().map(|before| changed_devices(before, &w));
            let objects: Option<BTreeSet<String>> = objects.map(|o| o.into_iter().collect());
            let told = objects
                .as_ref()
                .map_or(Changed::Everything, Changed::DevicesAndCheckIns);
            let swept_pass = engine::decide_changed(&w.snapshot(), told, now, &mut swept);
            prop_assert_eq!(&full, &swept_pass, "incremental pass, check-ins compared, at {}", now);
            last_pass = Some(w.clone());
            w.apply(&full, now);
            for c in changes {
                apply_change(&mut w, c, &mut serial);
            }
            let next = now.checked_add(SignedDuration::from_mins(*minutes)).expect("in range");
            now = full.wake_at.filter(|t| *t < next && *minutes > 0).unwrap_or(next);
            play_agents(&mut w, now, *dice, *fail);
        }
    }
}

/// A device removed from the end of the name order takes its cache entry with it: a
/// stale entry there could be taken for a device added there later (whose reports may
/// land where the gone device's were).
#[test]
fn a_cache_drops_the_entry_of_a_device_removed_from_the_end() {
    let s = Scenario {
        rings: vec![RingPlan {
            max: IntOrString::Int(1),
            window: None,
            soak_h: 1,
            min_success: 50.0,
            halt: None,
            manual: false,
        }],
        devices: vec![(0, 0), (0, 1), (0, 2)],
        patches: vec![(7.5, false, -1)],
        freezes: vec![],
        exceptions: vec![],
        steps: vec![],
    };
    let mut w = build(&s);
    let mut cache = engine::Cache::new();
    let now = ts(START);
    engine::decide_cached(&w.snapshot(), now, &mut cache);
    assert_eq!(cache.len(), w.devices.len());

    let last = w.devices.keys().next_back().cloned().expect("devices");
    w.devices.remove(&last);
    let cached = engine::decide_cached(&w.snapshot(), now, &mut cache);
    assert_eq!(cache.len(), w.devices.len(), "{last}'s entry is gone");
    assert_eq!(cached, engine::decide(&w.snapshot(), now));
}

/// Two rings (one and two at a time), five devices over them, two patches.
fn two_rings_five_devices() -> Scenario {
    let ring = |max: i32| RingPlan {
        max: IntOrString::Int(max),
        window: None,
        soak_h: 1,
        min_success: 50.0,
        halt: None,
        manual: false,
    };
    Scenario {
        rings: vec![ring(1), ring(2)],
        devices: vec![(0, 0), (0, 1), (1, 2), (1, 0), (1, 1)],
        patches: vec![(9.5, false, -1), (7.5, false, -1)],
        freezes: vec![],
        exceptions: vec![],
        steps: vec![],
    }
}

/// Told which device changed, a pass counts only it again and decides what a full pass
/// decides; a device added (which the kept state has no place for) makes it a full pass.
#[test]
fn an_incremental_pass_runs_when_only_devices_changed_and_a_full_one_otherwise() {
    let mut w = build(&two_rings_five_devices());
    let mut cache = engine::Cache::new();
    let mut now = ts(START);
    let mut before = w.clone();
    let first = engine::decide_changed(&w.snapshot(), Changed::Everything, now, &mut cache);
    assert_eq!(first, engine::decide(&w.snapshot(), now));
    assert_eq!(
        cache.incremental_passes(),
        0,
        "the first pass reads everything"
    );
    for step in 1..6 {
        w.apply(&engine::decide(&w.snapshot(), now), now);
        now = now
            .checked_add(SignedDuration::from_mins(30))
            .expect("in range");
        play_agents(&mut w, now, 40 + step, 0);
        version_rollouts(&before, &mut w);
        let told = any_changed(&before, &w);
        let pass = engine::decide_changed(&w.snapshot(), Changed::Devices(&told), now, &mut cache);
        assert_eq!(pass, engine::decide(&w.snapshot(), now), "step {step}");
        assert_eq!(cache.incremental_passes(), u64::from(step), "step {step}");
        before = w.clone();
    }
    let (r, t) = (0, 2);
    let ring_name = w.policies["p"].spec.rings[r].clone();
    let ids: Vec<String> = w.patches.keys().cloned().collect();
    w.devices
        .insert("n99".into(), device("n99", ring_name, t, now, &ids));
    let told = any_changed(&before, &w);
    let pass = engine::decide_changed(&w.snapshot(), Changed::Devices(&told), now, &mut cache);
    assert_eq!(pass, engine::decide(&w.snapshot(), now));
    assert_eq!(cache.incremental_passes(), 5, "a device added: a full pass");
}

/// Devices two policies of equal priority select (in conflict), and devices two rings of
/// their policy select (claimed elsewhere), are kept alike by cached and incremental
/// passes as they come into conflict and leave it: each pass decides what a full pass
/// decides.
#[test]
fn conflicts_and_devices_claimed_elsewhere_are_kept_alike() {
    let mut w = build(&two_rings_five_devices());
    // A second policy of the same priority, over the devices labelled `extra`; and the
    // last ring selecting every managed device, so the first ring's are claimed there too.
    let mut q = w.policies["p"].clone();
    q.metadata = meta("q", &[]);
    q.spec.device_selector = selector("extra", "yes");
    w.policies.insert("q".into(), q);
    if let Some(last) = w.rings.get_mut("r1") {
        last.spec.device_selector = selector("managed", "yes");
    }
    let toggle = |w: &mut World, n: usize| {
        if let Some(labels) = nth_labels(w, n)
            && labels.remove("extra").is_none()
        {
            labels.insert("extra".into(), "yes".into());
        }
    };
    toggle(&mut w, 0);
    let conflicts = |d: &engine::Decisions| {
        d.policies
            .iter()
            .find(|(name, _)| name == "p")
            .map_or(0, |(_, s)| s.conflicts.len())
    };
    let mut cache = engine::Cache::new();
    let mut cached = engine::Cache::new();
    let mut now = ts(START);
    let mut before = w.clone();
    let first = engine::decide_changed(&w.snapshot(), Changed::Everything, now, &mut cache);
    assert_eq!(first, engine::decide(&w.snapshot(), now));
    assert_eq!(conflicts(&first), 1, "one device in conflict");
    for step in 1..8 {
        w.apply(&engine::decide(&w.snapshot(), now), now);
        now = now
            .checked_add(SignedDuration::from_mins(30))
            .expect("in range");
        toggle(&mut w, step % 3);
        play_agents(&mut w, now, 40 + step as u8, 0);
        // As an API server does: a changed device gets a new version.
        for name in changed_devices(&before, &w) {
            w.version += 1;
            let v = w.version.to_string();
            if let Some(d) = w.devices.get_mut(&name) {
                d.metadata.resource_version = Some(v);
            }
        }
        version_rollouts(&before, &mut w);
        let told = any_changed(&before, &w);
        let full = engine::decide(&w.snapshot(), now);
        let pass = engine::decide_changed(&w.snapshot(), Changed::Devices(&told), now, &mut cache);
        assert_eq!(pass, full, "incremental pass, step {step}");
        let again = engine::decide_cached(&w.snapshot(), now, &mut cached);
        assert_eq!(again, full, "cached pass, step {step}");
        before = w.clone();
    }
    assert!(
        cache.incremental_passes() > 0,
        "some passes were incremental"
    );
}
