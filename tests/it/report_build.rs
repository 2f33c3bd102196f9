//! The month's evidence built from the simulated world, checked against the simulator's
//! own counters and the engine's own figures.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use ringmaster::report::model::SlaState;
use ringmaster::sim::{self, Outcome};

fn run() -> Outcome {
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
            seed: 1,
        },
    )
    .close_months("UTC")
    .expect("UTC is a time zone")
    .run()
}

fn example() -> &'static Outcome {
    static RUN: OnceLock<Outcome> = OnceLock::new();
    RUN.get_or_init(run)
}

fn november() -> &'static sim::run::Closed {
    &example().months[0]
}

#[test]
fn the_run_closes_november_and_reports_december_as_it_stands() {
    let o = example();
    let months: Vec<(&str, bool)> = o
        .months
        .iter()
        .map(|m| (m.report.month.as_str(), m.report.closed))
        .collect();
    assert_eq!(months, [("2023-11", true), ("2023-12", false)]);
    let nov = &o.months[0].report;
    assert_eq!(nov.as_of.to_string(), "2023-12-01T00:00:00Z");
    let dec = &o.months[1].report;
    assert_eq!(dec.as_of, sim::run::end_of(&o.options));
    // December's trend starts with November's figures.
    assert_eq!(dec.trend.len(), 2);
    assert_eq!(dec.trend[0], *nov.trend.last().expect("a point"));
}

#[test]
fn november_s_sla_figures_are_the_engine_s_at_the_close() {
    let closed = november();
    let r = &closed.report;
    let d = ringmaster::engine::decide(&closed.world.snapshot(), r.end);
    let mut checked = 0;
    for (policy, status) in &d.policies {
        for cell in &status.sla {
            let row = r
                .sla
                .iter()
                .find(|s| &s.policy == policy && s.tier == cell.tier && s.severity == cell.severity)
                .unwrap_or_else(|| panic!("{policy} {} {:?} missing", cell.tier, cell.severity));
            assert_eq!(
                (
                    row.installed_on_time,
                    row.installed_late,
                    row.overdue,
                    row.open,
                    row.exempt
                ),
                (
                    cell.installed_on_time,
                    cell.installed_late,
                    cell.overdue,
                    cell.open,
                    cell.exempt
                ),
                "{policy} {} {:?}",
                cell.tier,
                cell.severity
            );
            assert_eq!(row.compliance_percent, cell.compliance_percent);
            assert_eq!(
                row.median_time_to_install_seconds,
                cell.median_time_to_install.map(|m| m.as_secs())
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} cells");
    assert_eq!(
        r.sla.len(),
        checked,
        "the report has cells the engine has not"
    );
}

#[test]
fn every_unpatched_pair_has_a_reason_and_installed_ones_none() {
    let r = &november().report;
    assert!(r.pairs.len() > 100, "{} pairs", r.pairs.len());
    for p in &r.pairs {
        let installed = matches!(p.state, SlaState::InstalledOnTime | SlaState::InstalledLate);
        assert_eq!(p.reason.is_none(), installed, "{p:?}");
        if p.state == SlaState::Exempt {
            assert!(p.exception.is_some(), "{p:?}");
        }
    }
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for p in r.pairs.iter().filter_map(|p| p.reason) {
        *reasons.entry(p.as_str().to_string()).or_default() += 1;
    }
    eprintln!("{reasons:?}");
}

#[test]
fn the_ring_funnel_counts_what_the_simulated_agents_did() {
    let o = example();
    let r = &november().report;
    // Each pair's last outcome as the simulated agents logged it before the close.
    let mut last: BTreeMap<(String, String), &str> = BTreeMap::new();
    for e in o.timeline.iter().filter(|e| e.at < r.end) {
        let words: Vec<&str> = e.message.split_whitespace().collect();
        let (device, patch) = match (e.reason.as_str(), words.as_slice()) {
            ("Installed" | "Uninstalled", [d, _, p, ..]) => (*d, *p),
            ("InstallFailed", [d, _, _, _, p, ..]) => (*d, p.trim_end_matches(':')),
            _ => continue,
        };
        last.insert((device.into(), patch.into()), e.reason.as_str());
    }
    let ring_of: BTreeMap<(String, String), Option<String>> = r
        .pairs
        .iter()
        .map(|p| ((p.device.clone(), p.patch.clone()), p.ring.clone()))
        .collect();
    let mut counted: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    for (pair, outcome) in &last {
        let ring = ring_of[pair]
            .clone()
            .expect("a device the agents patched is in a ring");
        let c = counted.entry(ring).or_default();
        match *outcome {
            "Installed" => c.0 += 1,
            "InstallFailed" => c.1 += 1,
            _ => c.2 += 1,
        }
    }
    assert_eq!(r.rings.len(), counted.len());
    for f in &r.rings {
        assert_eq!(
            (f.installed, f.failed - f.timed_out, f.rolled_back),
            counted[&f.ring],
            "{}",
            f.ring
        );
    }
    assert_eq!(
        r.headline.installed_in_month as usize,
        last.values().filter(|o| **o == "Installed").count()
    );
}

#[test]
fn the_registers_hold_what_the_timeline_shows() {
    let o = example();
    let r = &november().report;
    let in_month = |reason: &str| {
        o.timeline
            .iter()
            .filter(|e| e.reason == reason && e.at >= r.start && e.at < r.end)
            .count()
    };
    use ringmaster::report::model::InterventionKind as K;
    let count = |k: K| r.interventions.iter().filter(|i| i.kind == k).count();
    assert!(in_month("RingHalted") > 0, "the example halts a ring");
    assert_eq!(count(K::Halted), in_month("RingHalted"));
    assert_eq!(count(K::RollbackStarted), in_month("RollbackStarted"));
    assert_eq!(count(K::RolledBack), in_month("RolledBack"));
    assert_eq!(r.headline.halts as usize, in_month("RingHalted"));
    assert_eq!(r.headline.rollbacks as usize, in_month("RollbackStarted"));
    let halt = r
        .interventions
        .iter()
        .find(|i| i.kind == K::Halted)
        .expect("a halt");
    assert_eq!(halt.patch, "KB5032007");
    assert_eq!(halt.ring.as_deref(), Some("ring-1-pilot"));

    let ledger = r
        .exceptions
        .iter()
        .find(|e| e.name == "ledger-dwm-crash")
        .expect("the expired exception is in November's register");
    let phases: Vec<&str> = ledger.history.iter().map(|h| h.phase.as_str()).collect();
    assert_eq!(phases.last(), Some(&"Expired"), "{phases:?}");
    assert_eq!(ledger.owner, "alice@acme.example");
    let expired = ledger.history.last().expect("an entry");
    assert_eq!(expired.at.to_string(), "2023-11-29T17:00:00Z");
    // Every approval in the register is of a rollout the timeline announced.
    assert_eq!(r.approvals.len(), o.world.rollouts.len());
    assert!(r.freezes.iter().any(|f| f.reason.contains("Thanksgiving")));
}

fn ringmaster(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(args)
        .output()
        .expect("ringmaster runs")
}

fn read_tree(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("readable") {
        let e = e.expect("entry");
        let name = e.file_name().to_string_lossy().into_owned();
        out.insert(name, std::fs::read(e.path()).expect("file"));
    }
    out
}

#[test]
fn the_demo_writes_signed_packets_that_verify_and_are_the_same_every_time() {
    let tmp = crate::agent_sh::TempDir::new("report-demo");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/msp-tenant");
    let keys = tmp.0.join("acme");
    let out = ringmaster(&["report", "keygen", "--out", &keys.to_string_lossy()]);
    assert!(out.status.success(), "{out:?}");
    let (key, public) = (tmp.0.join("acme.key"), tmp.0.join("acme.pub"));
    let mut trees = Vec::new();
    for run in ["a", "b"] {
        let dir = tmp.0.join(run);
        let out = ringmaster(&[
            "simulate",
            example,
            "--report",
            &dir.to_string_lossy(),
            "--sign-key",
            &key.to_string_lossy(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("2023-11 closed"), "{said}");
        for month in ["2023-11", "2023-12"] {
            let packet = dir.join(month);
            let v = ringmaster(&[
                "report",
                "verify",
                &packet.to_string_lossy(),
                "--key",
                &public.to_string_lossy(),
            ]);
            assert!(v.status.success(), "{v:?}");
        }
        trees.push((
            read_tree(&dir.join("2023-11")),
            read_tree(&dir.join("2023-12")),
        ));
    }
    assert_eq!(trees[0], trees[1], "two runs, identical bytes");
    let (nov, _) = &trees[0];
    for file in [
        "report.html",
        "report.md",
        "report.json",
        "report.schema.json",
        "pairs.csv",
        "inputs.json",
        "SHA256SUMS",
        "SHA256SUMS.sig",
    ] {
        assert!(nov.contains_key(file), "{file} missing");
    }
    // The demo tenant's month ends at midnight in Chicago.
    let json: serde_json::Value = serde_json::from_slice(&nov["report.json"]).expect("json");
    assert_eq!(json["timeZone"], "America/Chicago");
    assert_eq!(json["end"], "2023-12-01T06:00:00Z");
    // Writing the same month again over a packet it already wrote changes nothing; over
    // a changed one it is refused.
    let again = ringmaster(&[
        "simulate",
        example,
        "--report",
        &tmp.0.join("b").to_string_lossy(),
        "--sign-key",
        &key.to_string_lossy(),
    ]);
    assert!(again.status.success(), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stderr).contains("2023-11 closed (digest"));
    assert!(String::from_utf8_lossy(&again.stderr).contains(", unchanged"));
    let dir = tmp.0.join("a");
    std::fs::write(dir.join("2023-11/report.md"), b"rewritten").expect("write");
    let out = ringmaster(&["simulate", example, "--report", &dir.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
