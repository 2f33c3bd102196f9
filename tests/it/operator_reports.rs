//! The operator closing months (`Operator::run` with its report controller) against the
//! fake API server, in real time, with the report controller's clock moved to seconds
//! before a month boundary: the month just ended gets its PatchReport and is closed at
//! once; the running month is closed as the boundary passes; a person's report for a
//! month that has ended is closed on demand, and one for a month that has not is
//! Pending. Every packet verifies against the digest its PatchReport records.

use std::path::Path;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp, ToSpan};
use ringmaster::api::{PatchReport, PatchReportSpec};
use ringmaster::operator::{Clock, Operator, OperatorConfig, ReportConfig};
use ringmaster::report::packet::verify_dir;
use ringmaster::report::store::Store;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::agent_sh::TempDir;
use crate::fake_api::Fake;
use crate::operator_run::{eventually, tenant};

const NS: &str = "acme";

/// The first instant of the next UTC month.
fn next_boundary(now: Timestamp) -> Timestamp {
    let first = now
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .first_of_month()
        .saturating_add(1.month());
    first
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .expect("a date")
}

fn label(at: Timestamp) -> String {
    at.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m")
        .to_string()
}

/// Starts the operator with a store and a clock `lead` before the next month boundary.
fn start(fake: &Fake, store: Option<Store>, clock: Clock) -> watch::Sender<bool> {
    let operator = Operator::new(
        fake.client(),
        OperatorConfig {
            namespaces: Some(vec![NS.to_string()]),
            reports: ReportConfig {
                store,
                sign_key: None,
                clock,
            },
            ..OperatorConfig::default()
        },
    );
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        let (_leader, leader_rx) = watch::channel(true);
        operator.run(leader_rx, stop_rx).await
    });
    stop
}

/// The report's status once its Ready condition has a status.
fn ready(fake: &Fake, name: &str) -> Option<Value> {
    let r = fake.get("PatchReport", Some(NS), name)?;
    let status = r.get("status")?.clone();
    let has_ready = status["conditions"]
        .as_array()?
        .iter()
        .any(|c| c["type"] == "Ready");
    has_ready.then_some(status)
}

fn person_report(fake: &Fake, name: &str, month: &str) {
    let mut r = PatchReport::new(
        name,
        PatchReportSpec {
            month: month.to_string(),
            time_zone: None,
        },
    );
    r.metadata.namespace = Some(NS.to_string());
    fake.insert("PatchReport", &r);
}

/// Checks a closed report: Ready=True, and its packet verifies against its digest.
fn check_closed(status: &Value, month: &str) {
    assert_eq!(status["phase"], "Closed", "{status:#}");
    let ready = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .expect("Ready");
    assert_eq!(ready["status"], "True", "{status:#}");
    let location = status["location"].as_str().expect("a location");
    assert!(location.ends_with(&format!("/{NS}/{month}")), "{location}");
    let digest = status["digest"].as_str().expect("a digest");
    let verified = verify_dir(Path::new(location), None, Some(digest)).expect("verifies");
    assert!(verified.digest_checked);
    let inputs = verified.inputs.expect("inputs.json");
    assert_eq!(
        (inputs.namespace.as_str(), inputs.month.as_str()),
        (NS, month)
    );
    assert!(status["files"].as_array().is_some_and(|f| f.len() > 4));
    assert!(status["headline"]["devices"].is_u64(), "{status:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn months_close_at_their_boundary_and_on_demand() {
    let fake = Fake::default();
    tenant(&fake, NS, 2);
    // The tenant has been around since January.
    fake.merge(
        "PatchPolicy",
        Some(NS),
        "ws",
        json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}}),
    );
    let now = Timestamp::now();
    let boundary = next_boundary(now);
    let lead = SignedDuration::from_secs(3);
    let offset = boundary.duration_since(now) - lead;
    let running = label(now);
    let start_of_running = now
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .first_of_month()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .expect("a date")
        .timestamp();
    let ended = label(start_of_running - 1.second());
    let tmp = TempDir::new("operator-reports");
    let store = Store::parse(&tmp.0.display().to_string()).expect("a store");
    person_report(&fake, "later", "2099-01");
    let stop = start(&fake, Some(store), Clock::offset(offset));

    let last = eventually(
        "the month just ended is closed",
        Duration::from_secs(20),
        || ready(&fake, &ended).filter(|s| s["phase"] == "Closed"),
    )
    .await;
    check_closed(&last, &ended);
    let pending = eventually("a future month waits", Duration::from_secs(10), || {
        ready(&fake, "later")
    })
    .await;
    assert_eq!(pending["phase"], "Pending", "{pending:#}");
    assert!(fake.get("PatchReport", Some(NS), &running).is_none());

    let current = eventually(
        "the running month closes at the boundary",
        Duration::from_secs(20),
        || ready(&fake, &running).filter(|s| s["phase"] == "Closed"),
    )
    .await;
    check_closed(&current, &running);
    let end: Timestamp = current["end"].as_str().expect("end").parse().expect("t");
    assert_eq!(end, boundary);

    // On demand: a person's report for the month already closed records the same packet.
    person_report(&fake, "audit-copy", &ended);
    let copy = eventually(
        "the person's report is closed",
        Duration::from_secs(20),
        || ready(&fake, "audit-copy").filter(|s| s["phase"] == "Closed"),
    )
    .await;
    assert_eq!(
        copy["digest"], last["digest"],
        "a closed month never changes"
    );
    let _ = stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_store_a_report_says_so_and_nothing_is_made() {
    let fake = Fake::default();
    tenant(&fake, NS, 1);
    person_report(&fake, "nov", "2023-11");
    let stop = start(&fake, None, Clock::system());
    let status = eventually("the report says why", Duration::from_secs(20), || {
        ready(&fake, "nov")
    })
    .await;
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let ready = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .expect("Ready")
        .clone();
    assert_eq!(ready["reason"], "NoStore");
    let stalled = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Stalled"))
        .expect("Stalled")
        .clone();
    assert_eq!(stalled["status"], "True", "only a person can fix it");
    let _ = stop.send(true);
}

/// The operator closing a month into a bucket of a real S3-compatible server
/// (`moto_server`), whose packet reads back and verifies against the digest the report
/// records. Run: `RINGMASTER_S3_TEST=1 cargo test --test it operator_reports -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: RINGMASTER_S3_TEST=1 cargo test --test it operator_reports -- --ignored"]
async fn a_month_closes_into_an_s3_bucket() {
    if std::env::var("RINGMASTER_S3_TEST").as_deref() != Ok("1") {
        eprintln!("skipped: set RINGMASTER_S3_TEST=1 to run the S3 test");
        return;
    }
    let (_server, endpoint) = crate::report_store::MotoServer::start();
    let bucket = "ringmaster-operator-test";
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("PUT /bucket");
    assert!(created.status().is_success(), "{}", created.status());
    let vars = [
        ("AWS_ENDPOINT_URL", endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
    ];
    let env = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let store = Store::parse_with_env(&format!("s3://{bucket}/evidence"), env).expect("a store");
    let fake = Fake::default();
    tenant(&fake, NS, 2);
    person_report(&fake, "nov", "2023-11");
    let stop = start(&fake, Some(store), Clock::system());
    let status = eventually("the month is closed", Duration::from_secs(30), || {
        ready(&fake, "nov").filter(|s| s["phase"] == "Closed")
    })
    .await;
    let location = status["location"].as_str().expect("a location");
    assert_eq!(location, format!("s3://{bucket}/evidence/{NS}/2023-11"));
    let files = ringmaster::report::store::read_location_with_env(location, env)
        .await
        .expect("the packet reads back");
    let digest = status["digest"].as_str().expect("a digest");
    let verified =
        ringmaster::report::packet::verify(&files, None, Some(digest)).expect("it verifies");
    assert_eq!(verified.inputs.expect("inputs").month, "2023-11");
    let _ = stop.send(true);
}
