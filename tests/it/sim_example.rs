//! The bundled example, played for 30 days: every behaviour the example is meant to
//! show happens, with the figures a reader of the report would check.

use std::sync::OnceLock;

use jiff::Timestamp;
use ringmaster::api::*;
use ringmaster::sim::{self, Outcome};

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn run(seed: u64) -> Outcome {
    simulation(seed).run()
}

/// The bundled example, ready to play for 30 days from its Fleet's start.
pub(crate) fn simulation(seed: u64) -> sim::Simulation {
    let docs = ringmaster::manifest::load_paths(&[concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/msp-tenant"
    )
    .into()])
    .expect("example loads");
    let (objects, problems) = ringmaster::manifest::parse_documents(docs);
    assert!(problems.is_empty(), "{problems:?}");
    let (world, fleet) = sim::load::world_from(objects).expect("one tenant");
    let start = fleet.start.expect("the example's fleet sets a start");
    sim::Simulation::new(
        world,
        fleet,
        sim::Options {
            start,
            days: 30,
            seed,
        },
    )
}

fn example() -> &'static Outcome {
    static RUN: OnceLock<Outcome> = OnceLock::new();
    RUN.get_or_init(|| run(1))
}

fn entries<'a>(o: &'a Outcome, reason: &str) -> Vec<&'a sim::run::Entry> {
    o.timeline.iter().filter(|e| e.reason == reason).collect()
}

fn rollout<'a>(o: &'a Outcome, name: &str) -> &'a PatchRolloutStatus {
    o.world.rollouts[name]
        .status
        .as_ref()
        .expect("rollout status")
}

#[test]
fn exploited_zero_days_are_approved_at_release_as_emergencies() {
    let o = example();
    let approved = entries(o, "PatchApproved");
    let kb5032190 = approved
        .iter()
        .find(|e| e.message.starts_with("KB5032190"))
        .expect("approved");
    assert_eq!(
        kb5032190.at,
        ts("2023-11-14T18:00:00Z"),
        "approved the instant it was released"
    );
    assert!(
        kb5032190
            .message
            .contains("exploited-in-the-wild (emergency)")
    );
    assert_eq!(
        kb5032190.severity, "Warning",
        "an emergency approval is a warning a person should see"
    );
    let rec = rollout(o, "workstations.kb5032190")
        .approval
        .clone()
        .expect("approval record");
    assert!(rec.emergency);
    assert_eq!(rec.by.as_deref(), Some("exploited-in-the-wild"));
}

#[test]
fn the_bad_dotnet_update_halts_in_pilot_and_is_rolled_back_everywhere() {
    let o = example();
    let halted = entries(o, "RingHalted");
    assert_eq!(halted.len(), 1, "{halted:?}");
    assert_eq!(halted[0].object, "prl/workstations.kb5032007");
    assert!(
        halted[0].message.contains("ring ring-1-pilot halted"),
        "{}",
        halted[0].message
    );
    let s = rollout(o, "workstations.kb5032007");
    assert_eq!(s.phase, Some(RolloutPhase::RolledBack));
    let it = s
        .rings
        .iter()
        .find(|r| r.name == "ring-0-it")
        .expect("it ring");
    let pilot = s
        .rings
        .iter()
        .find(|r| r.name == "ring-1-pilot")
        .expect("pilot ring");
    let broad = s
        .rings
        .iter()
        .find(|r| r.name == "ring-2-broad")
        .expect("broad ring");
    assert_eq!(
        it.phase,
        RingPhase::RolledBack,
        "ring 0 had passed, and was rolled back too"
    );
    assert_eq!(pilot.phase, RingPhase::RolledBack);
    assert_eq!(
        broad.phase,
        RingPhase::Pending,
        "the broad ring never started"
    );
    assert!(
        it.rolled_back + pilot.rolled_back >= 10,
        "the IT devices and the pilot's successes were uninstalled"
    );
    assert_eq!(
        it.installed + pilot.installed,
        0,
        "no device keeps the bad update"
    );
    // No broad device ever got it.
    for (name, d) in &o.world.devices {
        if name.starts_with("ws-broad") || name.starts_with("ws-exec") {
            let r = d
                .status
                .as_ref()
                .and_then(|s| s.patches.iter().find(|p| p.id == "KB5032007"));
            assert!(
                r.is_none_or(|r| r.attempts == 0),
                "{name} attempted the halted update"
            );
        }
    }
}

#[test]
fn no_device_is_admitted_during_the_thanksgiving_freeze() {
    let o = example();
    let (from, until) = (ts("2023-11-22T06:00:00Z"), ts("2023-11-27T06:00:00Z"));
    assert_eq!(
        entries(o, "FreezeStarted")
            .iter()
            .filter(|e| e.at == from)
            .count(),
        2,
        "both policies"
    );
    assert_eq!(
        entries(o, "FreezeEnded")
            .iter()
            .filter(|e| e.at == until)
            .count(),
        2
    );
    let during: Vec<_> = entries(o, "DevicesAdmitted")
        .into_iter()
        .filter(|e| e.at >= from && e.at < until)
        .collect();
    assert!(during.is_empty(), "admitted during the freeze: {during:?}");
    assert!(
        entries(o, "DevicesAdmitted").iter().any(|e| e.at >= until),
        "admissions resume after it"
    );
}

#[test]
fn the_ledger_exception_expires_on_the_second_and_its_devices_then_get_the_update() {
    let o = example();
    let expired = entries(o, "ExceptionExpired");
    let ledger = expired
        .iter()
        .find(|e| e.object == "pex/ledger-dwm-crash")
        .expect("expired");
    assert_eq!(ledger.at, ts("2023-11-29T17:00:00Z"));
    let reminders: Vec<_> = entries(o, "ExceptionExpiring")
        .into_iter()
        .filter(|e| e.object == "pex/ledger-dwm-crash")
        .collect();
    assert_eq!(reminders.len(), 2, "7 days and 1 day before");
    assert_eq!(reminders[0].at, ts("2023-11-22T17:00:00Z"));
    assert_eq!(reminders[1].at, ts("2023-11-28T17:00:00Z"));
    for i in 1..=6 {
        let name = format!("ws-ledger-{i:03}");
        let r = o.world.devices[&name]
            .status
            .as_ref()
            .and_then(|s| s.patches.iter().find(|p| p.id == "KB5032190"))
            .expect("reported");
        assert_eq!(r.state, PatchState::Installed, "{name}");
        assert!(
            r.installed_at.is_some_and(|t| t >= ledger.at),
            "{name} installed it only after the exception expired"
        );
    }
}

#[test]
fn the_unapproved_and_the_invalid_exceptions_cover_nothing() {
    let o = example();
    let phase = |n: &str| o.world.exceptions[n].status.as_ref().and_then(|s| s.phase);
    assert_eq!(
        phase("trade-show-kiosks"),
        Some(ExceptionPhase::PendingApproval)
    );
    assert_eq!(phase("lab-server-forever"), Some(ExceptionPhase::Invalid));
    let msg = o.world.exceptions["lab-server-forever"]
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    assert!(
        msg.contains("longer than the policy's exceptions.maxDuration of 90d"),
        "{msg}"
    );
    let state = |d: &str, p: &str| {
        o.world.devices[d]
            .status
            .as_ref()
            .and_then(|s| s.patches.iter().find(|x| x.id == p))
            .map(|x| x.state)
    };
    assert_eq!(
        state("ws-broad-001", "KB5032190"),
        Some(PatchState::Installed),
        "a pending exception does not hold the patch back"
    );
    assert_eq!(
        state("srv-win-016", "KB5032198"),
        Some(PatchState::Installed),
        "an invalid exception does not either"
    );
}

#[test]
fn a_driver_waits_for_a_person_and_rolls_out_once_approved() {
    let o = example();
    let approval: Vec<_> = entries(o, "ManualApproval")
        .into_iter()
        .filter(|e| e.message.contains("INTEL-GFX"))
        .collect();
    assert_eq!(approval.len(), 1);
    let created = entries(o, "PatchApproved")
        .into_iter()
        .find(|e| e.message.starts_with("INTEL-GFX"))
        .expect("approved");
    assert_eq!(
        created.at, approval[0].at,
        "the rollout starts when the person approves"
    );
    assert!(created.message.contains("approval.approve"));
    // The feature update waits out its 60-day delay and is listed as scheduled.
    let pending = &o.world.policies["workstations"]
        .status
        .as_ref()
        .expect("status")
        .approvals
        .pending;
    let feature = pending
        .iter()
        .find(|p| p.patch == "KB5027397")
        .expect("feature update pending");
    assert_eq!(feature.state, PendingState::Scheduled);
    assert_eq!(feature.at, Some(ts("2023-12-30T17:00:00Z")));
}

#[test]
fn rings_pass_in_order_and_only_after_their_soak() {
    let o = example();
    let s = rollout(o, "workstations.kb5032190");
    assert_eq!(s.phase, Some(RolloutPhase::Completed));
    let passed = |ring: &str| {
        s.rings
            .iter()
            .find(|r| r.name == ring)
            .and_then(|r| r.passed_at)
            .expect("passed")
    };
    assert!(passed("ring-0-it") < passed("ring-1-pilot"));
    assert!(passed("ring-1-pilot") < passed("ring-2-broad"));
    let it = s.rings.iter().find(|r| r.name == "ring-0-it").expect("it");
    let last = it.last_install_at.expect("installs");
    assert!(
        passed("ring-0-it")
            >= last
                .checked_add(jiff::SignedDuration::from_hours(4))
                .expect("in range"),
        "emergency soak of 4h"
    );
}

#[test]
fn the_report_has_the_sla_and_ring_figures() {
    let o = example();
    let r = sim::report::report(o);
    let servers = r
        .policies
        .iter()
        .find(|p| p.name == "servers")
        .expect("servers");
    assert_eq!(servers.devices, 38);
    assert_eq!(servers.overdue, 0);
    let critical = servers
        .sla
        .iter()
        .find(|c| c.tier == "tier-1" && c.severity == Severity::Critical)
        .expect("cell");
    assert_eq!(
        (critical.installed_on_time, critical.overdue),
        (20, 0),
        "the Server 2022 update reached every server in 3 days"
    );
    let ws = r
        .policies
        .iter()
        .find(|p| p.name == "workstations")
        .expect("workstations");
    assert_eq!(ws.devices, 256);
    assert!(
        ws.overdue > 0,
        "the rolled-back .NET update leaves workstations exposed past their SLA"
    );
    let pilot = r
        .rings
        .iter()
        .find(|g| g.name == "ring-1-pilot")
        .expect("pilot");
    assert!(pilot.rolled_back > 0 && pilot.rollback_rate.is_some_and(|x| x > 0.0));
    let broad = r
        .rings
        .iter()
        .find(|g| g.name == "ring-2-broad")
        .expect("broad");
    assert_eq!(broad.rolled_back, 0);
    assert!(broad.success_rate.is_some_and(|x| x >= 95.0));
    let text = sim::report::text(o);
    assert!(
        text.contains("SLA COMPLIANCE") && text.contains("RINGS") && text.contains("EXCEPTIONS")
    );
}

#[test]
fn the_same_inputs_and_seed_give_byte_identical_output() {
    let a = run(7);
    let b = run(7);
    assert_eq!(sim::report::text(&a), sim::report::text(&b));
    assert_eq!(
        sim::report::json(&a).expect("json"),
        sim::report::json(&b).expect("json")
    );
    assert_ne!(
        sim::report::text(&a),
        sim::report::text(example()),
        "another seed draws other failures and install times"
    );
}

#[test]
fn a_kev_listing_puts_a_lower_cvss_patch_ahead_of_a_higher_one() {
    let o = example();
    let imported = entries(o, "CatalogImported");
    assert_eq!(imported.len(), 1, "the KEV update of 21 November");
    let kev_day = imported[0].at;
    let approved = |id: &str| {
        entries(o, "PatchApproved")
            .into_iter()
            .find(|e| e.message.starts_with(id))
            .unwrap_or_else(|| panic!("{id} approved"))
    };
    // glibc (CVSS 7.8) waited for a person since October; the listing makes it
    // Critical under the servers policy's risk rules, and it is approved at once.
    let glibc = approved("ALSA-2023:5453");
    assert_eq!(glibc.at, kev_day);
    assert!(
        glibc.message.contains("critical-security (emergency)"),
        "{}",
        glibc.message
    );
    let kev = o.world.patches["ALSA-2023:5453"]
        .spec
        .kev
        .as_ref()
        .expect("listed");
    assert_eq!(kev.cves, vec!["CVE-2023-4911".to_string()]);
    // PostgreSQL (CVSS 8.8), released three days before the listing, still waits for
    // the board, and its first install comes after the whole glibc rollout's first.
    let postgres = approved("DSA-5554-1");
    assert!(postgres.at > kev_day);
    assert!(postgres.message.contains("approval.approve"));
    let first_install = |id: &str| {
        entries(o, "Installed")
            .into_iter()
            .find(|e| e.message.ends_with(&format!(" installed {id}")))
            .map(|e| e.at)
            .unwrap_or_else(|| panic!("{id} installed"))
    };
    assert!(first_install("ALSA-2023:5453") < first_install("DSA-5554-1"));
    assert_eq!(
        rollout(o, "servers.alsa-2023-5453").phase,
        Some(RolloutPhase::Completed)
    );
}

/// The audit-worthy Events of the run, per object (`prl/<name>` or `pex/<name>`; a
/// PatchApproved Event is its rollout's), as (instant, reason, message).
fn audited_events(
    o: &Outcome,
) -> std::collections::BTreeMap<String, Vec<(Timestamp, String, String)>> {
    let mut out: std::collections::BTreeMap<String, Vec<(Timestamp, String, String)>> =
        std::collections::BTreeMap::new();
    for e in &o.timeline {
        let Ok(reason) = serde_json::from_value::<Reason>(e.reason.clone().into()) else {
            continue; // an agent's or the simulation's own line, not an Event
        };
        if !ringmaster::engine::history::audited(reason) {
            continue;
        }
        let object = if reason == Reason::PatchApproved {
            let name = e
                .message
                .rsplit_once("rollout ")
                .expect("names its rollout")
                .1;
            format!("prl/{}", name.trim_end_matches(" created"))
        } else {
            e.object.clone()
        };
        out.entry(object)
            .or_default()
            .push((e.at, e.reason.clone(), e.message.clone()));
    }
    out
}

#[test]
fn every_rollout_and_exception_keeps_the_story_its_events_told() {
    let o = example();
    let mut told = audited_events(o);
    let mut kept = 0;
    for (name, r) in &o.world.rollouts {
        let history: Vec<(Timestamp, String, String)> = r
            .status
            .as_ref()
            .map(|s| s.history.iter())
            .into_iter()
            .flatten()
            .map(|h| (h.at, h.reason.to_string(), h.message.clone()))
            .collect();
        assert!(
            history.first().is_some_and(|h| h.1 == "PatchApproved"),
            "{name}: {history:?}"
        );
        kept += history.len();
        assert_eq!(
            history,
            told.remove(&format!("prl/{name}")).unwrap_or_default(),
            "{name}"
        );
    }
    for (name, x) in &o.world.exceptions {
        let history: Vec<(Timestamp, String, String)> = x
            .status
            .as_ref()
            .map(|s| s.history.iter())
            .into_iter()
            .flatten()
            .map(|h| (h.at, h.reason.to_string(), h.message.clone()))
            .collect();
        kept += history.len();
        assert_eq!(
            history,
            told.remove(&format!("pex/{name}")).unwrap_or_default(),
            "{name}"
        );
    }
    assert!(
        told.is_empty(),
        "Events of no rollout or exception: {told:?}"
    );
    assert!(kept > 40, "{kept} entries");
    let dotnet = rollout(o, "workstations.kb5032007");
    let reasons: Vec<&str> = dotnet.history.iter().map(|h| h.reason.as_str()).collect();
    assert!(
        reasons.ends_with(&["RingHalted", "RollbackStarted", "RolledBack"]),
        "{reasons:?}"
    );
    let ledger = &o.world.exceptions["ledger-dwm-crash"];
    let phases: Vec<ExceptionPhase> = ledger
        .status
        .as_ref()
        .expect("status")
        .history
        .iter()
        .map(|h| h.phase)
        .collect();
    assert_eq!(
        phases,
        vec![ExceptionPhase::Active, ExceptionPhase::Expired]
    );
}

/// The bundled example played with the engine's incremental pass at every step, as the
/// operator runs it (the simulator's default): a debug build checks every pass against a
/// full pass (`World::step_changed`), and the run is the one the cached pass plays.
#[test]
fn the_incremental_pass_plays_the_example_as_the_full_pass_does() {
    let cached = simulation(1).cached().run();
    let o = example();
    assert_eq!(o.timeline, cached.timeline);
    assert_eq!(
        format!("{:?}", o.world.devices),
        format!("{:?}", cached.world.devices)
    );
}
