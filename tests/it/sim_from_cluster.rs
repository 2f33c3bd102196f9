//! The preview against a live cluster (`simulate HEAD --from-cluster -n NS`): the fake
//! API server, served over HTTP, holds the bundled example as the operator would have
//! left it two days into its month (statuses, device plans and reports, rollouts under
//! way), and the `ringmaster` binary reads it through a kubeconfig. The head is a copy
//! of the example's manifests, changed or not.

use crate::common::{ringmaster, text};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use ringmaster::report::cluster::TIME_ZONE_ANNOTATION;
use ringmaster::sim::{self, World};
use serde_json::json;

use crate::fake_api::Fake;
use crate::fake_api::serve::{Served, kubeconfig, serve};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/msp-tenant");

/// When the cluster is read: two days into the example's month, after its Patch Tuesday
/// and before anyone approved anything by hand (the first Fleet action is on the 16th).
const READ_AT: &str = "2023-11-15T00:00:00Z";

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A fresh directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ringmaster-from-cluster-{}-{test}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The example's world as the operator would leave it at [`READ_AT`]: played from its
/// Fleet's start.
fn example_at_read() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let docs = ringmaster::manifest::load_paths(&[EXAMPLE.into()]).expect("example loads");
        let (objects, problems) = ringmaster::manifest::parse_documents(docs);
        assert!(problems.is_empty(), "{problems:?}");
        let (world, fleet) = sim::load::world_from(objects).expect("one tenant");
        let start = fleet.start.expect("the example's Fleet sets a start");
        let read_at: jiff::Timestamp = READ_AT.parse().expect("time");
        let days = (read_at.duration_since(start).as_hours() / 24) as u32;
        let options = sim::Options {
            start,
            days,
            seed: 1,
        };
        sim::Simulation::new(world, fleet, options).run().world
    })
}

/// A cluster holding `world`'s objects (rollouts and statuses included) in its namespace,
/// annotated with the example's time zone, and the catalog; plus an empty namespace
/// `empty`.
fn cluster(world: &World) -> Fake {
    let fake = Fake::default();
    let namespace = |name: &str, annotations: serde_json::Value| {
        fake.insert_builtin(
            &format!("/api/v1/namespaces/{name}"),
            json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "uid": format!("uid-{name}"), "annotations": annotations}}),
        );
    };
    namespace(
        &world.namespace,
        json!({TIME_ZONE_ANNOTATION: "America/Chicago"}),
    );
    namespace("empty", json!({}));
    for p in world.policies.values() {
        fake.insert("PatchPolicy", p);
    }
    for r in world.rings.values() {
        fake.insert("DeploymentRing", r);
    }
    for e in world.exceptions.values() {
        fake.insert("PatchException", e);
    }
    for d in world.devices.values() {
        fake.insert("ManagedDevice", d);
    }
    for r in world.rollouts.values() {
        fake.insert("PatchRollout", r);
    }
    for p in world.patches.values() {
        fake.insert("Patch", p);
    }
    fake
}

/// The example's cluster, served, and a kubeconfig naming it.
struct Live {
    fake: Fake,
    served: Served,
    kubeconfig: PathBuf,
}

fn live(test: &str) -> Live {
    let world = example_at_read();
    assert!(
        !world.rollouts.is_empty()
            && world
                .devices
                .values()
                .any(|d| !d.spec.plan.install.is_empty()),
        "the cluster is read in the middle of rollouts"
    );
    let fake = cluster(world);
    let served = serve(&fake);
    let kubeconfig = kubeconfig(
        &scratch(test).join("kubeconfig"),
        &[("fake", &served.url())],
    );
    Live {
        fake,
        served,
        kubeconfig,
    }
}

/// A head directory holding copies of the example's `files`, with `edit` applied to each.
fn head(test: &str, files: &[&str], edit: impl Fn(&str, String) -> String) -> PathBuf {
    let dir = scratch(&format!("{test}-head"));
    for f in files {
        let body = std::fs::read_to_string(Path::new(EXAMPLE).join(f)).expect("read");
        std::fs::write(dir.join(f), edit(f, body)).expect("write");
    }
    dir
}

/// The pilot and broad rings admit one device at a time.
fn one_at_a_time(file: &str, body: String) -> String {
    if file != "rings.yaml" {
        return body;
    }
    let out = body
        .replacen("maxConcurrent: 25%", "maxConcurrent: 1", 1)
        .replacen("maxConcurrent: 20%", "maxConcurrent: 1", 1);
    assert_eq!(out.matches("maxConcurrent: 1\n").count(), 2, "{out}");
    out
}

const CONFIGURATION: [&str; 3] = ["policies.yaml", "rings.yaml", "exceptions.yaml"];

/// `simulate HEAD --from-cluster -n acme --kubeconfig K --start READ_AT` and `extra`.
fn preview(live: &Live, head: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "simulate",
        path(head),
        "--from-cluster",
        "-n",
        "acme",
        "--kubeconfig",
        path(&live.kubeconfig),
        "--start",
        READ_AT,
    ];
    args.extend(extra);
    ringmaster(&args)
}

#[test]
fn an_unchanged_head_shows_no_difference_and_passes_the_gate() {
    let live = live("same");
    let head = head("same", &CONFIGURATION, |_, s| s);
    let out = preview(&live, &head, &["--max-compliance-drop", "0"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("Preview of acme: head against baseline, played over 2023-11-14 18:00 .. 2023-12-14 18:00 (America/Chicago, 30 days, seed 1)"),
        "the namespace's time zone, 30 days from --start:\n{stdout}"
    );
    let world = example_at_read();
    let read = format!(
        "note: baseline: namespace acme as the cluster holds it (PatchPolicies 2, DeploymentRings 3, PatchExceptions 3, ManagedDevices {}, Patches {}); its PatchRollouts are not carried over",
        world.devices.len(),
        world.patches.len()
    );
    assert!(stdout.contains(&read), "{read}\n{stdout}");
    assert!(stdout.contains("\nNo change: all "), "{stdout}");
    assert!(stdout.contains("Gate passed"), "{stdout}");
    assert!(
        !stdout.lines().any(|l| l.starts_with(['~', '+', '-'])),
        "{stdout}"
    );
    // Only reads, and none of rollouts: the preview needs no more than get and list.
    let sent = live.fake.sent();
    assert!(sent.iter().all(|s| !s.is_write()), "{sent:?}");
    assert!(
        sent.iter().all(|s| !s.path.contains("patchrollouts")),
        "rollouts are not read"
    );
    assert!(
        sent.iter()
            .any(|s| s.path == "/api/v1/namespaces/acme" && s.method == http::Method::GET)
    );
}

#[test]
fn rings_that_admit_one_device_at_a_time_lower_compliance_and_trip_the_gate() {
    let live = live("slow");
    let head = head("slow", &CONFIGURATION, one_at_a_time);
    let out = preview(&live, &head, &["--max-compliance-drop", "1"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let overall = stdout
        .lines()
        .find(|l| l.starts_with("~ overall compliance: "))
        .unwrap_or_else(|| panic!("overall compliance changes:\n{stdout}"));
    assert!(overall.contains('−'), "it drops: {overall}");
    assert!(stdout.contains("Gate failed: "), "{stdout}");
    assert!(stderr.contains("compliance drop: "), "{stderr}");
    assert!(
        stdout.contains("ring ring-2-broad compliance: "),
        "the broad ring's compliance is named:\n{stdout}"
    );

    // The same in JSON, twice: the figures are lower, and the same inputs give the same
    // output.
    let json_args = [
        "--max-compliance-drop",
        "1",
        "--format",
        "json",
        "--days",
        "20",
    ];
    let (a, b) = (
        preview(&live, &head, &json_args),
        preview(&live, &head, &json_args),
    );
    assert_eq!(a.status.code(), Some(1), "{}", text(&a.stderr));
    assert_eq!(text(&a.stdout), text(&b.stdout), "deterministic");
    let doc: serde_json::Value = serde_json::from_slice(&a.stdout).expect("JSON");
    let before = doc["compliance"]["before"].as_f64().expect("before");
    let after = doc["compliance"]["after"].as_f64().expect("after");
    assert!(after < before - 1.0, "{before} → {after}");
    assert_eq!(doc["start"], READ_AT);
    assert_eq!(doc["days"], 20);
    assert!(
        doc["gate"]["exceeded"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["figure"] == "overall compliance"))
    );
}

#[test]
fn a_head_of_rings_alone_takes_the_rest_from_the_cluster() {
    let live = live("rings");
    let same = head("rings", &["rings.yaml"], |_, s| s);
    // A feed imported into both sides' catalog (CISA's KEV listing the glibc flaw).
    let kev = format!("{EXAMPLE}/feeds/kev-2023-11-21.json");
    let out = preview(&live, &same, &["--days", "10", "--catalog", &kev]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("note: the head holds no PatchPolicies (2), PatchExceptions (3): the cluster's are played on both sides"),
        "{stdout}"
    );
    assert!(stdout.contains("\nNo change: all "), "{stdout}");
    assert_eq!(stderr.matches("catalog kev: ").count(), 2, "{stderr}");
    // The cluster's invalid exception is pointed out as the cluster's.
    assert!(
        stderr.contains("warning: cluster namespace acme: PatchException acme/lab-server-forever: spec.expiresAt: "),
        "{stderr}"
    );
    // The same rings, slower: the change shows though the head holds nothing else.
    let slow = head("rings-slow", &["rings.yaml"], one_at_a_time);
    let out = preview(&live, &slow, &["--days", "10"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("~ ring ring-1-pilot compliance: ")
                || l.starts_with("~ ring ring-2-broad compliance: ")),
        "{stdout}"
    );
}

#[test]
fn a_policy_the_head_deletes_is_previewed_as_deleted() {
    let live = live("deleted");
    let head = head("deleted", &CONFIGURATION, |file, body| {
        if file != "policies.yaml" {
            return body;
        }
        // The servers policy is the second document.
        let (workstations, servers) = body.split_once("\n---\n").expect("two documents");
        assert!(servers.contains("name: servers"), "{servers}");
        workstations.to_string()
    });
    let out = preview(&live, &head, &["--days", "10"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("note: the head's PatchPolicies replace the cluster's: PatchPolicy servers not in the head, so not played on the head's side"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("- servers ")),
        "the servers' cells are the baseline's only:\n{stdout}"
    );
    assert!(
        !stdout.lines().any(|l| l.starts_with("~ workstations ")),
        "the workstations are governed as before:\n{stdout}"
    );
}

#[test]
fn the_period_defaults_to_the_next_whole_hour() {
    let live = live("now");
    let head = head("now", &["rings.yaml"], |_, s| s);
    let before = jiff::Timestamp::now();
    let out = ringmaster(&[
        "simulate",
        path(&head),
        "--from-cluster",
        "-n",
        "acme",
        "--kubeconfig",
        path(&live.kubeconfig),
        "--days",
        "2",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let start: jiff::Timestamp = doc["start"].as_str().expect("start").parse().expect("time");
    let wait = start.duration_since(before);
    assert!(
        wait >= jiff::SignedDuration::ZERO && wait <= jiff::SignedDuration::from_hours(1),
        "{before} → {start}"
    );
    // America/Chicago is a whole number of hours from UTC.
    assert_eq!(start.as_second() % 3600, 0, "{start}");
    assert_eq!(doc["timeZone"], "America/Chicago");
    assert_eq!(doc["days"], 2);
}

#[test]
fn an_unreachable_cluster_exits_2_naming_the_namespace_and_the_server() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let kubeconfig = kubeconfig(
        &scratch("unreachable").join("kubeconfig"),
        &[("gone", &url)],
    );
    let head = head("unreachable", &["rings.yaml"], |_, s| s);
    let out = ringmaster(&[
        "simulate",
        path(&head),
        "--from-cluster",
        "-n",
        "acme",
        "--kubeconfig",
        path(&kubeconfig),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains(&format!(
            "error: cannot reach the cluster at {url}/ to read namespace acme: "
        )),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was simulated"), "{stderr}");
}

#[test]
fn a_namespace_missing_or_without_policies_exits_2() {
    let live = live("missing");
    let head = head("missing", &["rings.yaml"], |_, s| s);
    let run = |ns: &str| {
        ringmaster(&[
            "simulate",
            path(&head),
            "--from-cluster",
            "-n",
            ns,
            "--kubeconfig",
            path(&live.kubeconfig),
        ])
    };
    let url = live.served.url();
    let out = run("nowhere");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!(
            "error: namespace nowhere does not exist in the cluster at {url}/"
        )),
        "{}",
        text(&out.stderr)
    );
    let out = run("empty");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!(
            "error: namespace empty in the cluster at {url}/ has no PatchPolicy: there is no baseline to preview against"
        )),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn the_context_names_the_cluster_to_read() {
    let live = live("context");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let gone = format!("http://127.0.0.1:{port}");
    let url = live.served.url();
    // The current context is a cluster that is gone; `--context fake` names the live one.
    let kubeconfig = kubeconfig(
        &scratch("context").join("kubeconfig"),
        &[("gone", &gone), ("fake", &url)],
    );
    let head = head("context", &["rings.yaml"], |_, s| s);
    let run = |context: Option<&str>| {
        let mut args = vec![
            "simulate",
            path(&head),
            "--from-cluster",
            "-n",
            "empty",
            "--kubeconfig",
            path(&kubeconfig),
        ];
        args.extend(context.map(|c| ["--context", c]).into_iter().flatten());
        ringmaster(&args)
    };
    let current = run(None);
    assert_eq!(current.status.code(), Some(2));
    assert!(
        text(&current.stderr).contains(&format!("cannot reach the cluster at {gone}/")),
        "{}",
        text(&current.stderr)
    );
    let chosen = run(Some("fake"));
    assert_eq!(chosen.status.code(), Some(2));
    assert!(
        text(&chosen.stderr).contains(&format!(
            "namespace empty in the cluster at {url}/ has no PatchPolicy"
        )),
        "the live cluster was read: {}",
        text(&chosen.stderr)
    );
}

#[test]
fn from_cluster_needs_a_namespace_and_excludes_a_baseline_directory() {
    let head = head("flags", &["rings.yaml"], |_, s| s);
    let both = ringmaster(&[
        "simulate",
        path(&head),
        "--from-cluster",
        "-n",
        "acme",
        "--baseline",
        EXAMPLE,
    ]);
    assert_eq!(both.status.code(), Some(2));
    assert!(
        text(&both.stderr).contains("cannot be used with"),
        "{}",
        text(&both.stderr)
    );
    let no_namespace = ringmaster(&["simulate", path(&head), "--from-cluster"]);
    assert_eq!(no_namespace.status.code(), Some(2));
    assert!(
        text(&no_namespace.stderr).contains("--namespace <NAMESPACE>"),
        "{}",
        text(&no_namespace.stderr)
    );
    let gate_alone = ringmaster(&["simulate", path(&head), "--max-compliance-drop", "1"]);
    assert_eq!(gate_alone.status.code(), Some(2));
}

#[test]
fn the_clusters_freezes_play_on_both_sides() {
    let compliance = |live: &Live, test: &str| -> f64 {
        let head = head(test, &CONFIGURATION, |_, s| s);
        let out = preview(live, &head, &["--format", "json", "--days", "10"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(
            v["compliance"]["difference"], 0.0,
            "no change: {}",
            v["compliance"]
        );
        v["compliance"]["before"].as_f64().expect("a figure")
    };
    let open = live("levers-open");
    let before = compliance(&open, "levers-open");

    // A person froze the whole tenant for the period: on both sides, nothing moves.
    let frozen = live("levers-frozen");
    let freeze: ringmaster::api::PatchFreeze = serde_json::from_value(json!({
        "metadata": {"name": "incident", "namespace": "acme",
            "annotations": {"ringmaster.dev/created-by": "noc@example.com"}},
        "spec": {"from": "2023-11-01T00:00:00Z", "until": "2024-01-01T00:00:00Z",
            "reason": "incident INC-42", "owner": "noc@example.com"}
    }))
    .expect("a freeze");
    frozen.fake.insert("PatchFreeze", &freeze);
    let after = compliance(&frozen, "levers-frozen");
    assert!(
        after < before,
        "a tenant-wide freeze for the period lowers compliance on both sides: {before} -> {after}"
    );
}
