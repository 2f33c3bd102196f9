//! The levers against the in-process stand-in API server: each writes what it should, in
//! the caller's name as the API server gives it, and a lever already in place changes
//! nothing.

use crate::fake_api::Fake;
use ringmaster::api::*;
use ringmaster::lever::pull::{self, PullError, RolloutLever};
use serde_json::json;

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().expect("timestamp")
}

fn tenant(fake: &Fake) {
    let policy: PatchPolicy = serde_json::from_value(json!({
        "metadata": {"name": "ws", "namespace": "acme"},
        "spec": {"deviceSelector": {}, "rings": ["it", "pilot"],
                 "sla": [{"tier": "default", "critical": "7d", "high": "14d", "medium": "60d", "low": "120d"}]}
    }))
    .expect("policy");
    fake.insert("PatchPolicy", &policy);
    for name in ["it", "pilot"] {
        let ring: DeploymentRing = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "acme"},
            "spec": {"deviceSelector": {"matchLabels": {"ring": name}}}
        }))
        .expect("ring");
        fake.insert("DeploymentRing", &ring);
    }
    let rollout: PatchRollout = serde_json::from_value(json!({
        "metadata": {"name": "ws.kb1", "namespace": "acme", "resourceVersion": "7"},
        "spec": {"policy": "ws", "patch": "KB1"},
        "status": {"currentRing": "it", "rings": [
            {"name": "it", "phase": "Soaking"}, {"name": "pilot", "phase": "Pending"}]}
    }))
    .expect("rollout");
    fake.insert("PatchRollout", &rollout);
}

fn annotation(v: &serde_json::Value, key: &str) -> Option<String> {
    v["metadata"]["annotations"][key]
        .as_str()
        .map(str::to_string)
}

#[tokio::test]
async fn approve_and_reject_make_patchapprovals_in_the_callers_name() {
    let fake = Fake::default();
    tenant(&fake);
    fake.set_caller("alice@example.com");
    let client = fake.client();
    let done = pull::decide(
        &client,
        "acme",
        "ws",
        "ALSA-2024:1234",
        Decision::Approve,
        "CAB",
    )
    .await
    .expect("approved");
    assert_eq!(
        done.reference,
        "patchapproval.patching.ringmaster.dev/ws.alsa-2024-1234.approve"
    );
    let stored = fake
        .get("PatchApproval", Some("acme"), "ws.alsa-2024-1234.approve")
        .expect("stored");
    assert_eq!(stored["spec"]["patch"], "ALSA-2024:1234");
    assert_eq!(stored["spec"]["decision"], "Approve");
    assert_eq!(
        annotation(&stored, CREATED_BY).as_deref(),
        Some("alice@example.com")
    );
    assert!(stored["metadata"].get("managedFields").is_none());

    let again = pull::decide(
        &client,
        "acme",
        "ws",
        "ALSA-2024:1234",
        Decision::Approve,
        "CAB",
    )
    .await
    .expect("idempotent");
    assert_eq!(again.verb, "unchanged (it exists)");

    fake.set_caller("bob@example.com");
    pull::decide(
        &client,
        "acme",
        "ws",
        "ALSA-2024:1234",
        Decision::Reject,
        "breaks POS",
    )
    .await
    .expect("rejected");
    let rejected = fake
        .get("PatchApproval", Some("acme"), "ws.alsa-2024-1234.reject")
        .expect("stored");
    assert_eq!(
        annotation(&rejected, CREATED_BY).as_deref(),
        Some("bob@example.com")
    );

    let missing = pull::decide(&client, "acme", "nosuch", "KB1", Decision::Approve, "x").await;
    match missing {
        Err(e @ PullError::NotFound { .. }) => {
            assert_eq!(e.exit_code(), 1);
            assert_eq!(e.to_string(), "PatchPolicy acme/nosuch not found");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn rollout_levers_patch_the_spec_and_name_the_caller_in_the_same_write() {
    let fake = Fake::default();
    tenant(&fake);
    fake.set_caller("carol@example.com");
    let client = fake.client();
    let get = || {
        fake.get("PatchRollout", Some("acme"), "ws.kb1")
            .expect("rollout")
    };

    let done = pull::rollout(
        &client,
        "acme",
        "ws.kb1",
        &RolloutLever::Pause(Some("pilot".into())),
    )
    .await
    .expect("paused");
    assert_eq!(done.verb, "ring pilot paused");
    assert_eq!(get()["spec"]["pausedRings"], json!(["pilot"]));
    assert_eq!(
        annotation(&get(), LEVER_BY).as_deref(),
        Some("carol@example.com")
    );
    let writes = fake.writes();
    let patch = writes
        .iter()
        .rfind(|w| w.path.contains("/patchrollouts/"))
        .expect("a write");
    assert_eq!(
        patch.body["metadata"]["annotations"][LEVER_BY], "carol@example.com",
        "the name goes in the same patch as the lever: {:?}",
        patch.body
    );
    assert!(patch.body["metadata"]["resourceVersion"].is_string());

    fake.set_caller("dave@example.com");
    pull::rollout(&client, "acme", "ws.kb1", &RolloutLever::Promote(None))
        .await
        .expect("promoted");
    assert_eq!(
        get()["spec"]["promote"],
        json!(["it"]),
        "the current ring by default"
    );
    assert_eq!(
        annotation(&get(), LEVER_BY).as_deref(),
        Some("dave@example.com")
    );

    let rollout_writes = || {
        fake.writes()
            .iter()
            .filter(|w| w.path.contains("/patchrollouts/"))
            .count()
    };
    let before = rollout_writes();
    let again = pull::rollout(&client, "acme", "ws.kb1", &RolloutLever::Promote(None))
        .await
        .expect("already promoted");
    assert_eq!(again.verb, "ring it promoted (unchanged)");
    assert_eq!(rollout_writes(), before, "nothing written");

    pull::rollout(&client, "acme", "ws.kb1", &RolloutLever::Pause(None))
        .await
        .expect("paused");
    assert_eq!(get()["spec"]["paused"], true);
    pull::rollout(
        &client,
        "acme",
        "ws.kb1",
        &RolloutLever::Resume(Some("pilot".into())),
    )
    .await
    .expect("resumed");
    assert_eq!(get()["spec"]["pausedRings"], json!([]));
    assert_eq!(
        get()["spec"]["paused"],
        true,
        "the rollout's own pause stays"
    );
    pull::rollout(&client, "acme", "ws.kb1", &RolloutLever::Abort)
        .await
        .expect("aborted");
    assert_eq!(get()["spec"]["abort"], true);

    let unknown_ring = pull::rollout(
        &client,
        "acme",
        "ws.kb1",
        &RolloutLever::Pause(Some("broad".into())),
    )
    .await;
    assert!(matches!(unknown_ring, Err(PullError::Usage(m)) if m.contains("its rings: it, pilot")));
    let missing = pull::rollout(&client, "acme", "nope", &RolloutLever::Abort).await;
    assert!(matches!(
        missing,
        Err(PullError::NotFound {
            kind: "PatchRollout",
            ..
        })
    ));
}

#[tokio::test]
async fn freeze_and_except_make_their_objects_with_an_expiry() {
    let fake = Fake::default();
    tenant(&fake);
    fake.set_caller("erin@example.com");
    let client = fake.client();
    let now = ts("2026-12-07T10:00:00.123456789Z");
    let args = pull::FreezeArgs {
        rings: vec!["pilot".into()],
        until: None,
        duration: Some("12h".parse().expect("duration")),
        from: None,
        reason: "incident INC-42".into(),
        owner: None,
    };
    let unknown = pull::FreezeArgs {
        rings: vec!["nope".into()],
        ..args.clone()
    };
    let missing = pull::freeze(&client, "acme", unknown, now).await;
    assert!(
        matches!(&missing, Err(e @ PullError::NotFound { kind: "DeploymentRing", .. }) if e.exit_code() == 1),
        "{missing:?}"
    );
    let done = pull::freeze(&client, "acme", args, now)
        .await
        .expect("frozen");
    let name = done.reference.rsplit('/').next().expect("name").to_string();
    assert!(name.starts_with("freeze-"), "{name}");
    let stored = fake
        .get("PatchFreeze", Some("acme"), &name)
        .expect("stored");
    assert_eq!(stored["spec"]["until"], "2026-12-07T22:00:00Z");
    assert_eq!(
        stored["spec"]["owner"], "erin@example.com",
        "the caller by default"
    );
    assert_eq!(stored["spec"]["rings"], json!(["pilot"]));
    assert_eq!(
        annotation(&stored, CREATED_BY).as_deref(),
        Some("erin@example.com")
    );

    let no_end = pull::FreezeArgs {
        rings: vec![],
        until: None,
        duration: None,
        from: None,
        reason: "x".into(),
        owner: None,
    };
    let refused = pull::freeze(&client, "acme", no_end, now).await;
    assert!(matches!(&refused, Err(e @ PullError::Usage(_)) if e.exit_code() == 2));

    let except = pull::ExceptArgs {
        name: "pos-terminals".into(),
        patches: vec!["KB1".into()],
        devices: vec!["pos-1".into()],
        selector: Some("site=paris".into()),
        reason: "vendor has not certified it".into(),
        owner: Some("payments@example.com".into()),
        ticket: Some("CHG-1".into()),
        controls: vec!["POS VLAN isolated".into()],
        expires: None,
        duration: Some("30d".parse().expect("duration")),
        on_expiry: Some("Escalate".into()),
    };
    pull::except(&client, "acme", except, now)
        .await
        .expect("excepted");
    let e = fake
        .get("PatchException", Some("acme"), "pos-terminals")
        .expect("stored");
    assert_eq!(e["spec"]["expiresAt"], "2027-01-06T10:00:00Z");
    assert_eq!(
        e["spec"]["devices"]["selector"]["matchLabels"]["site"],
        "paris"
    );
    assert_eq!(e["spec"]["onExpiry"], "Escalate");
    assert_eq!(
        annotation(&e, CREATED_BY).as_deref(),
        Some("erin@example.com")
    );
    assert!(e["spec"].get("approvedBy").is_none(), "never self-approved");
}

#[tokio::test]
async fn status_and_why_read_the_tenant_from_the_cluster() {
    use ringmaster::lever::pull::Output;
    use ringmaster::lever::show::{self, WhyTarget};
    let fake = Fake::default();
    tenant(&fake);
    let client = fake.client();
    let objects = show::tenant(&client, "acme").await.expect("read");
    assert_eq!(objects.rollouts.len(), 1);
    let now = ts("2026-12-07T10:00:00Z");
    let text = show::status(&objects, now, Output::Text, false);
    assert!(
        text.starts_with("Tenant acme at 2026-12-07 10:00Z"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "no colour unless asked");
    let json: serde_json::Value =
        serde_json::from_str(&show::status(&objects, now, Output::Json, false)).expect("json");
    assert_eq!(json["counts"]["policies"], 1);
    let missing = WhyTarget::Rollout {
        name: "nope".into(),
        ring: None,
    };
    let err = show::why(&objects, &missing, now, Output::Text, false).expect_err("no such rollout");
    assert_eq!(
        show::ShowError::from(err).exit_code(),
        1,
        "a missing object is the cluster saying no"
    );
    let ring = WhyTarget::Rollout {
        name: "ws.kb1".into(),
        ring: Some("pilot".into()),
    };
    let why = show::why(&objects, &ring, now, Output::Yaml, false).expect("why");
    assert!(why.contains("pilot"), "{why}");
}
