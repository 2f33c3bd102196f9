//! `status` and `why` over the bundled example played forward by the simulator: the
//! views say what the engine decided, the renderings say it to a person, the JSON
//! round-trips and colour appears only when asked for.

use std::sync::OnceLock;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use ringmaster::api::*;
use ringmaster::engine::ledger::Unpatched;
use ringmaster::lever::status::{FreezeOwner, StatusView, render_status, status};
use ringmaster::lever::why::{
    PairReason, WhyDevice, WhyError, WhyRollout, render_why_device, render_why_rollout, why_device,
    why_rollout,
};
use ringmaster::report::cluster::Objects;
use ringmaster::sim::{self, World};

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

/// The bundled example's world and Fleet, before any play.
fn example() -> (World, sim::FleetSpec) {
    let docs = ringmaster::manifest::load_paths(&[concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/msp-tenant"
    )
    .into()])
    .expect("example loads");
    let (objects, problems) = ringmaster::manifest::parse_documents(docs);
    assert!(problems.is_empty(), "{problems:?}");
    sim::load::world_from(objects).expect("one tenant")
}

/// The example after `days` of play (seed 1), with `tweak` applied before it starts:
/// the tenant's objects and the instant the play ended.
fn played(days: u32, tweak: impl FnOnce(&mut World)) -> (Objects, Timestamp) {
    let (mut world, fleet) = example();
    tweak(&mut world);
    let start = fleet.start.expect("the example's fleet sets a start");
    let options = sim::Options {
        start,
        days,
        seed: 1,
    };
    let end = sim::run::end_of(&options);
    let outcome = sim::Simulation::new(world, fleet, options).run();
    (objects_of(&outcome.world), end)
}

/// The world's objects as `report::cluster::read` would return them (kinds `Objects`
/// gains later start empty).
fn objects_of(w: &World) -> Objects {
    let mut o = Objects {
        namespace: w.namespace.clone(),
        ..Objects::default()
    };
    o.policies = w.policies.values().cloned().collect();
    o.rings = w.rings.values().cloned().collect();
    o.exceptions = w.exceptions.values().cloned().collect();
    o.devices = w.devices.values().cloned().collect();
    o.rollouts = w.rollouts.values().cloned().collect();
    o.patches = w.patches.values().cloned().collect();
    o
}

/// Two days in (2023-11-15 00:00Z): the emergency Windows update deploys in the IT ring,
/// the pilot and broad rings wait.
fn mid() -> &'static (Objects, Timestamp) {
    static STATE: OnceLock<(Objects, Timestamp)> = OnceLock::new();
    STATE.get_or_init(|| played(2, |_| {}))
}

/// Ten days in (2023-11-23 00:00Z): inside the Thanksgiving freeze, a week before the
/// ledger exception expires.
fn frozen() -> &'static (Objects, Timestamp) {
    static STATE: OnceLock<(Objects, Timestamp)> = OnceLock::new();
    STATE.get_or_init(|| played(10, |_| {}))
}

/// Four days in (2023-11-17 00:00Z): the .NET update halted in the pilot ring and was
/// rolled back.
fn rolled_back() -> &'static (Objects, Timestamp) {
    static STATE: OnceLock<(Objects, Timestamp)> = OnceLock::new();
    STATE.get_or_init(|| played(4, |_| {}))
}

/// Four days in, with the pilot ring's halt rule and the policy's fleet hold removed, the
/// pilot taken all at once and its silent devices left out after 12h: the failing .NET
/// update finishes deploying in the pilot ring on its first night and halts on its
/// success-rate gate instead.
fn gate_halted() -> &'static (Objects, Timestamp) {
    static STATE: OnceLock<(Objects, Timestamp)> = OnceLock::new();
    STATE.get_or_init(|| {
        played(4, |w| {
            let pilot = w.rings.get_mut("ring-1-pilot").expect("pilot ring");
            pilot.spec.halt = None;
            pilot.spec.max_concurrent = IntOrString::String("100%".into());
            pilot.spec.unreachable_after = Some(Duration::hours(12));
            pilot.spec.promotion.max_failures = None;
            let ws = w.policies.get_mut("workstations").expect("policy");
            ws.spec.approval.hold = None;
        })
    })
}

fn device<'o>(o: &'o Objects, name: &str) -> &'o ManagedDevice {
    o.devices
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some(name))
        .expect("device")
}

fn labelled<'o>(o: &'o Objects, key: &str, value: &str) -> Vec<&'o ManagedDevice> {
    o.devices
        .iter()
        .filter(|d| {
            d.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(key))
                .is_some_and(|v| v == value)
        })
        .collect()
}

fn report<'d>(d: &'d ManagedDevice, patch: &str) -> Option<&'d DevicePatchStatus> {
    d.status.as_ref()?.patches.iter().find(|p| p.id == patch)
}

fn with_paused(o: &Objects, rollout: &str) -> Objects {
    let mut o = o.clone();
    let r = o
        .rollouts
        .iter_mut()
        .find(|r| r.metadata.name.as_deref() == Some(rollout))
        .expect("rollout");
    r.spec.paused = true;
    o
}

#[test]
fn the_matrix_shows_each_rings_phase_and_the_devices_own_counts() {
    let (o, now) = mid();
    let v = status(o, *now);
    assert_eq!(
        v.rollouts.rings,
        ["ring-0-it", "ring-1-pilot", "ring-2-broad"]
    );
    let row = v
        .rollouts
        .rows
        .iter()
        .find(|r| r.name == "workstations.kb5032190")
        .expect("the emergency update is active");
    let [Some(it), Some(pilot), Some(broad)] = &row.cells[..] else {
        panic!("three rings: {row:?}");
    };
    assert_eq!(it.phase, RingPhase::Deploying);
    assert_eq!(
        (pilot.phase, pilot.label().as_str()),
        (RingPhase::Pending, "-")
    );
    assert_eq!(broad.phase, RingPhase::Pending);
    // The counts are the devices' own reports.
    let it_devices = labelled(o, "ringmaster.dev/ring", "it");
    let installed = it_devices
        .iter()
        .filter(|d| report(d, "KB5032190").is_some_and(|r| r.state == PatchState::Installed))
        .count() as u32;
    let reporting = it_devices
        .iter()
        .filter(|d| report(d, "KB5032190").is_some())
        .count() as u32;
    assert_eq!((it.installed, it.targeted), (installed, reporting));
    assert_eq!(it.label(), format!("Deploying {installed}/{reporting}"));
    // Completed rollouts are counted, not listed.
    assert!(
        v.rollouts
            .rows
            .iter()
            .all(|r| r.phase != Some(RolloutPhase::Completed))
    );
}

#[test]
fn a_device_in_a_later_ring_waits_for_the_earlier_ring() {
    let (o, now) = mid();
    let w = why_device(o, "ws-pilot-001", Some("KB5032190"), *now).expect("answer");
    assert_eq!(w.governance.policy.as_deref(), Some("workstations"));
    assert_eq!(w.governance.ring.as_deref(), Some("ring-1-pilot"));
    let [p] = &w.patches[..] else {
        panic!("one patch asked: {w:?}");
    };
    assert_eq!(p.reason, PairReason::Unpatched(Unpatched::WaitingForRing));
    assert_eq!(p.summary, "waiting for ring ring-0-it to pass");
    let ring = p
        .rollout
        .as_ref()
        .and_then(|r| r.ring.as_ref())
        .expect("ring");
    assert_eq!(
        (ring.name.as_str(), ring.phase),
        ("ring-1-pilot", RingPhase::Pending)
    );
    assert!(p.plan.is_none(), "no plan entry yet");
    let approval = p.approval.as_ref().expect("approval");
    assert_eq!(approval.by.as_deref(), Some("exploited-in-the-wild"));
    assert!(approval.emergency);
    let text = render_why_device(&w, false);
    assert!(
        text.contains("waiting for ring ring-0-it to pass"),
        "{text}"
    );
}

#[test]
fn without_a_patch_every_missing_patch_is_explained_and_installed_ones_only_counted() {
    let (o, now) = mid();
    let d = device(o, "ws-it-003");
    let w = why_device(o, "ws-it-003", None, *now).expect("answer");
    let reports = &d.status.as_ref().expect("status").patches;
    let installed = reports
        .iter()
        .filter(|r| r.state == PatchState::Installed)
        .count() as u32;
    assert_eq!(w.installed_not_listed, installed);
    assert_eq!(w.patches.len() as u32 + installed, reports.len() as u32);
    assert!(w.patches.iter().all(|p| p.reason != PairReason::Installed));
    // The Intel driver waits for a person under the workstation rules.
    let gfx = w
        .patches
        .iter()
        .find(|p| p.patch == "INTEL-GFX-31.0.101.4953")
        .expect("driver listed");
    assert_eq!(
        gfx.reason,
        PairReason::Unpatched(Unpatched::AwaitingManualApproval)
    );
    assert!(
        gfx.summary.contains("drivers-need-a-person"),
        "{}",
        gfx.summary
    );
}

#[test]
fn a_paused_rollout_shows_paused_in_status_and_why() {
    let (o, now) = mid();
    let o = with_paused(o, "workstations.kb5032190");
    let v = status(&o, *now);
    let stopped = v
        .stopped
        .iter()
        .find(|s| s.name == "workstations.kb5032190")
        .expect("listed as stopped");
    assert_eq!(stopped.phase, RolloutPhase::Paused);
    assert!(stopped.reason.contains("spec.paused"), "{}", stopped.reason);
    let row = v
        .rollouts
        .rows
        .iter()
        .find(|r| r.name == "workstations.kb5032190")
        .expect("row");
    assert_eq!(row.phase, Some(RolloutPhase::Paused));
    let it = row.cells[0].as_ref().expect("it ring");
    assert_eq!(it.phase, RingPhase::Paused);
    assert!(it.label().starts_with("Paused "), "{}", it.label());
    let text = render_status(&v, false);
    assert!(text.contains("Paused"), "{text}");

    let r = why_rollout(&o, "workstations.kb5032190", Some("ring-0-it"), *now).expect("answer");
    assert!(r.levers.paused);
    let [ring] = &r.rings[..] else {
        panic!("one ring asked: {r:?}");
    };
    assert_eq!(ring.phase, RingPhase::Paused);
    assert_eq!(ring.verdict, "rollout paused (spec.paused)");

    // A pilot device now waits for the pause, not for the ring before it.
    let w = why_device(&o, "ws-pilot-001", Some("KB5032190"), *now).expect("answer");
    assert_eq!(
        w.patches[0].reason,
        PairReason::Unpatched(Unpatched::Paused)
    );
    assert!(
        w.patches[0].summary.contains("is paused"),
        "{}",
        w.patches[0].summary
    );
}

#[test]
fn a_ring_halted_by_a_gate_says_which_gate_failed() {
    let (o, now) = gate_halted();
    let v = status(o, *now);
    let s = v
        .stopped
        .iter()
        .find(|s| s.name == "workstations.kb5032007")
        .expect("the .NET update stands still");
    assert_eq!(s.phase, RolloutPhase::Halted);
    assert_eq!(s.ring.as_deref(), Some("ring-1-pilot"));
    assert!(
        s.reason
            .starts_with("ring ring-1-pilot halted: promotion gate failed: ")
            && s.reason.contains("needs 95%"),
        "{}",
        s.reason
    );
    let pilot = labelled(o, "ringmaster.dev/ring", "pilot");
    let failed = pilot
        .iter()
        .filter(|d| report(d, "KB5032007").is_some_and(|r| r.state == PatchState::Failed))
        .count() as u32;
    assert!(failed > 0);
    let row = v
        .rollouts
        .rows
        .iter()
        .find(|r| r.name == "workstations.kb5032007")
        .expect("row");
    let cell = row.cells[1].as_ref().expect("pilot");
    assert_eq!(cell.label(), format!("Halted {failed}✗"));

    let r = why_rollout(o, "workstations.kb5032007", Some("ring-1-pilot"), *now).expect("answer");
    let ring = &r.rings[0];
    assert_eq!(ring.phase, RingPhase::Halted);
    assert_eq!(ring.counts.failed, failed);
    assert!(
        ring.verdict.contains("succeeded") && ring.verdict.contains("needs 95%"),
        "{}",
        ring.verdict
    );
    assert!(ring.halted_at.is_some());
    assert!(
        r.recent.iter().any(|h| h.reason == Reason::RingHalted),
        "{:?}",
        r.recent
    );
    // A broad device waits behind the halt.
    let broad = labelled(o, "ringmaster.dev/ring", "broad")
        .into_iter()
        .find(|d| report(d, "KB5032007").is_some())
        .expect("a broad device with the update");
    let name = broad.metadata.name.as_deref().expect("name");
    let w = why_device(o, name, Some("KB5032007"), *now).expect("answer");
    assert_eq!(
        w.patches[0].reason,
        PairReason::Unpatched(Unpatched::Halted)
    );
    assert!(
        w.patches[0].summary.contains("needs 95%"),
        "{}",
        w.patches[0].summary
    );
}

#[test]
fn a_rolled_back_rollout_names_the_halt_that_started_it() {
    let (o, now) = rolled_back();
    let v = status(o, *now);
    let s = v
        .stopped
        .iter()
        .find(|s| s.name == "workstations.kb5032007")
        .expect("rolled back within the week");
    assert_eq!(s.phase, RolloutPhase::RolledBack);
    assert_eq!(s.ring.as_deref(), Some("ring-1-pilot"));
    assert!(
        s.reason.starts_with("ring ring-1-pilot halted: ")
            && s.reason
                .ends_with("finished installs failed (60.0% > halt.failureRate 20%)"),
        "the halt rule's words: {}",
        s.reason
    );
    let rollout = o
        .rollouts
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some("workstations.kb5032007"))
        .and_then(|r| r.status.as_ref())
        .expect("status");
    let rolled_back_at = rollout
        .history
        .iter()
        .find(|h| h.reason == Reason::RolledBack)
        .map(|h| h.at);
    assert_eq!(s.since, rolled_back_at);
    assert!(s.since.is_some_and(|t| t > ts("2023-11-15T00:00:00Z")));
    assert!(
        v.rollouts
            .rows
            .iter()
            .all(|r| r.name != "workstations.kb5032007"),
        "ended rollouts leave the matrix"
    );
    assert!(v.rollouts.ended >= 1);
}

#[test]
fn an_excepted_device_names_its_exception_and_a_pending_one_does_not_cover() {
    let (o, now) = mid();
    let w = why_device(o, "ws-ledger-001", Some("KB5032190"), *now).expect("answer");
    let p = &w.patches[0];
    assert_eq!(p.reason, PairReason::Unpatched(Unpatched::Exception));
    assert_eq!(p.detail.as_deref(), Some("ledger-dwm-crash"));
    let e = &p.exceptions[..];
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].covers);
    assert_eq!(e[0].phase, Some(ExceptionPhase::Active));
    assert!(
        p.summary
            .starts_with("covered by exception ledger-dwm-crash (Active"),
        "{}",
        p.summary
    );
    assert_eq!(
        p.clock.as_ref().map(|c| c.state),
        Some(ringmaster::engine::sla::ClockState::Exempt)
    );

    let w = why_device(o, "ws-broad-001", Some("KB5032190"), *now).expect("answer");
    let p = &w.patches[0];
    assert_ne!(p.reason, PairReason::Unpatched(Unpatched::Exception));
    let kiosk = p
        .exceptions
        .iter()
        .find(|e| e.name == "trade-show-kiosks")
        .expect("the kiosk exception names the device");
    assert!(!kiosk.covers);
    assert_eq!(kiosk.phase, Some(ExceptionPhase::PendingApproval));
    let text = render_why_device(&w, false);
    assert!(
        text.contains("trade-show-kiosks (PendingApproval, does not cover it now"),
        "{text}"
    );
}

#[test]
fn a_device_no_policy_selects_shows_the_selectors() {
    let (o, now) = mid();
    let mut o = o.clone();
    let d = o
        .devices
        .iter_mut()
        .find(|d| d.metadata.name.as_deref() == Some("srv-pg-001"))
        .expect("device");
    d.metadata
        .labels
        .get_or_insert_default()
        .insert("ringmaster.dev/class".into(), "appliance".into());
    let w = why_device(&o, "srv-pg-001", None, *now).expect("answer");
    assert_eq!(w.governance.policy, None);
    assert_eq!(
        w.governance.message.as_deref(),
        Some("no PatchPolicy selects this device")
    );
    assert_eq!(w.governance.selectors.len(), 2);
    assert!(w.governance.selectors.iter().all(|s| !s.matches));
    assert!(
        w.patches.iter().all(|p| p.reason == PairReason::NoPolicy),
        "{:?}",
        w.patches
    );
}

#[test]
fn the_sla_at_risk_adds_up_to_the_policies_figures() {
    let (o, now) = mid();
    let v = status(o, *now);
    let by_policies: u32 = v.policies.iter().map(|p| p.overdue).sum();
    assert_eq!(v.sla.overdue, by_policies);
    assert!(v.sla.overdue > 0, "the servers start with overdue pairs");
    let cells: u32 = v.sla.cells.iter().map(|c| c.overdue + c.due_soon).sum();
    assert_eq!(cells, v.sla.overdue + v.sla.due_soon);
    assert_eq!(
        v.sla.worst.len() as u32 + v.sla.not_listed,
        v.sla.overdue + v.sla.due_soon,
        "the ledger's pairs at risk are the tallies' pairs"
    );
    assert!(v.sla.worst.iter().all(|p| p.reason.is_some()));
    let first = &v.sla.worst[0];
    assert_eq!(first.state, ringmaster::engine::sla::ClockState::Overdue);
    assert!(
        v.sla
            .worst
            .windows(2)
            .all(|w| { w[0].state != w[1].state || w[0].deadline <= w[1].deadline })
    );
}

#[test]
fn freezes_and_expiring_exceptions_are_listed_and_admission_waits_for_the_freeze() {
    let (o, now) = mid();
    let early = status(o, *now);
    assert_eq!(early.freezes.len(), 2, "{:?}", early.freezes);
    assert!(
        early
            .freezes
            .iter()
            .all(|f| !f.active && f.kind == FreezeOwner::PatchPolicy)
    );
    assert!(early.expiring_exceptions.is_empty());

    let (o, now) = frozen();
    let v = status(o, *now);
    assert!(v.freezes.iter().all(|f| f.active), "{:?}", v.freezes);
    let e = &v.expiring_exceptions[..];
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].name, "ledger-dwm-crash");
    assert_eq!(e[0].covered_devices, 6);
    let text = render_status(&v, false);
    assert!(
        text.contains("FREEZES") && text.contains("in force"),
        "{text}"
    );
    assert!(text.contains("EXCEPTIONS EXPIRING WITHIN 7D"), "{text}");

    // Admission waits for the freeze, in the engine's words.
    let (rollout, ring) = v
        .rollouts
        .rows
        .iter()
        .find_map(|r| {
            let i = r
                .cells
                .iter()
                .position(|c| c.as_ref().is_some_and(|c| c.phase == RingPhase::Deploying))?;
            Some((r.name.clone(), v.rollouts.rings[i].clone()))
        })
        .expect("a ring deploys during the freeze");
    let r = why_rollout(o, &rollout, Some(&ring), *now).expect("answer");
    assert!(
        r.rings[0]
            .verdict
            .starts_with("change freeze until 2023-11-27T06:00:00Z"),
        "{:?}",
        r.rings[0]
    );
    assert!(
        r.policy_freeze
            .as_deref()
            .is_some_and(|f| f.starts_with("Thanksgiving freeze"))
    );
}

#[test]
fn unreachable_devices_are_those_their_ring_gave_up_on() {
    let (o, now) = gate_halted();
    let v = status(o, *now);
    // The pilot ring waits 12h in this play, the others the default 72h.
    let mut expected: Vec<&str> = o
        .devices
        .iter()
        .filter(|d| {
            let pilot = d
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("ringmaster.dev/ring"))
                .is_some_and(|r| r == "pilot");
            let after = jiff::SignedDuration::from_hours(if pilot { 12 } else { 72 });
            d.status
                .as_ref()
                .and_then(|s| s.last_seen)
                .is_some_and(|seen| now.duration_since(seen) >= after)
        })
        .filter_map(|d| d.metadata.name.as_deref())
        .collect();
    expected.sort_unstable();
    assert!(!expected.is_empty());
    let mut listed: Vec<&str> = v
        .unreachable
        .devices
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, expected);
    assert_eq!(v.unreachable.total as usize, expected.len());
    let w = why_device(o, expected[0], None, *now).expect("answer");
    assert!(w.unreachable);
    let text = render_status(&v, false);
    assert!(
        text.contains(&format!("UNREACHABLE DEVICES: {}", expected.len())),
        "{text}"
    );
}

/// `status` and `why` see a device by the engine's rule: a device unreachable by its
/// `lastSeen` that renewed its check-in Lease an hour ago is reachable, last seen then.
#[test]
fn a_device_checked_in_by_its_lease_is_not_unreachable() {
    let (o, now) = gate_halted();
    let away = status(o, *now).unreachable.devices[0].name.clone();
    let mut o = o.clone();
    let renewed = *now - jiff::SignedDuration::from_hours(1);
    o.check_ins.insert(away.clone(), renewed);
    let v = status(&o, *now);
    assert!(
        v.unreachable.devices.iter().all(|d| d.name != away),
        "{away} checked in by its Lease"
    );
    let w = why_device(&o, &away, None, *now).expect("answer");
    assert!(!w.unreachable);
    assert_eq!(w.last_seen, Some(renewed));
}

#[test]
fn the_json_output_round_trips() {
    let (o, now) = mid();
    let v = status(o, *now);
    let json = serde_json::to_string(&v).expect("json");
    assert!(json.contains("\"expiringExceptions\"") && json.contains("\"notListed\""));
    assert_eq!(serde_json::from_str::<StatusView>(&json).expect("back"), v);
    let yaml = serde_yaml::to_string(&v).expect("yaml");
    assert_eq!(serde_yaml::from_str::<StatusView>(&yaml).expect("back"), v);

    let w = why_device(o, "ws-ledger-001", None, *now).expect("answer");
    let json = serde_json::to_string(&w).expect("json");
    assert!(json.contains("\"reason\":\"Exception\""), "{json}");
    assert_eq!(serde_json::from_str::<WhyDevice>(&json).expect("back"), w);

    let r = why_rollout(o, "workstations.kb5032190", None, *now).expect("answer");
    let json = serde_json::to_string(&r).expect("json");
    assert!(json.contains("\"currentRing\""));
    assert_eq!(serde_json::from_str::<WhyRollout>(&json).expect("back"), r);
}

#[test]
fn colour_codes_appear_only_when_asked_for() {
    let (o, now) = gate_halted();
    let v = status(o, *now);
    let plain = render_status(&v, false);
    let colored = render_status(&v, true);
    assert!(!plain.contains('\x1b'));
    assert!(colored.contains("\x1b[31mHalted"), "{colored}");
    let strip = colored
        .replace("\x1b[31m", "")
        .replace("\x1b[32m", "")
        .replace("\x1b[33m", "")
        .replace("\x1b[0m", "");
    assert_eq!(strip, plain, "colour changes nothing but colour");

    let r = why_rollout(o, "workstations.kb5032007", None, *now).expect("answer");
    assert!(!render_why_rollout(&r, false).contains('\x1b'));
    assert!(render_why_rollout(&r, true).contains("\x1b[31m"));
    let w = why_device(o, "ws-pilot-001", None, *now).expect("answer");
    assert!(!render_why_device(&w, false).contains('\x1b'));
}

#[test]
fn an_empty_tenant_is_one_clear_line() {
    let o = Objects {
        namespace: "nobody".into(),
        ..Objects::default()
    };
    let v = status(&o, ts("2023-11-15T00:00:00Z"));
    assert!(v.is_empty());
    assert_eq!(
        render_status(&v, true),
        "No ringmaster objects in namespace nobody: no PatchPolicy, ManagedDevice or PatchRollout.\n"
    );
}

#[test]
fn what_why_cannot_answer_names_the_namespace_and_the_object() {
    let (o, now) = mid();
    let err = why_device(o, "ws-nope", None, *now).expect_err("no such device");
    assert_eq!(
        err.to_string(),
        "ManagedDevice ws-nope not found in namespace acme"
    );
    let err = why_device(o, "srv-pg-001", Some("KB5032190"), *now).expect_err("not applicable");
    assert!(matches!(err, WhyError::PatchNotApplicable { .. }), "{err}");
    assert!(err.to_string().contains("srv-pg-001") && err.to_string().contains("acme"));
    let err = why_rollout(o, "workstations.nope", None, *now).expect_err("no such rollout");
    assert_eq!(
        err.to_string(),
        "PatchRollout workstations.nope not found in namespace acme"
    );
    let err = why_rollout(o, "workstations.kb5032190", Some("ring-9"), *now).expect_err("no ring");
    assert_eq!(
        err,
        WhyError::RingNotInRollout {
            namespace: "acme".into(),
            rollout: "workstations.kb5032190".into(),
            ring: "ring-9".into(),
            rings: vec![
                "ring-0-it".into(),
                "ring-1-pilot".into(),
                "ring-2-broad".into()
            ],
        }
    );
}

#[test]
fn renderings_of_the_mid_rollout_example() {
    let (o, now) = mid();
    insta::assert_snapshot!("status_mid_rollout", render_status(&status(o, *now), false));
    let w = why_device(o, "ws-pilot-001", None, *now).expect("answer");
    insta::assert_snapshot!("why_device_pilot", render_why_device(&w, false));
    let r = why_rollout(o, "workstations.kb5032190", None, *now).expect("answer");
    insta::assert_snapshot!("why_rollout_emergency", render_why_rollout(&r, false));
}
