//! `ringmaster enroll` against the fake API server: what the first enrollment creates,
//! that a second one writes nothing, what other labels change, the TokenRequest, the
//! agent's kubeconfig (parsed back with kube's own `Kubeconfig`), and the agent's side:
//! `token_expiry`, `renewal_due` and `renew_token`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use http::Method;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use ringmaster::agent::lease::{CheckIn, RenewError};
use ringmaster::api::{Duration, ManagedDevice};
use ringmaster::enroll::{
    Change, ClusterAccess, Enrollment, Error, KubeconfigProblem, Out, agent_kubeconfig, enroll,
    enrolled_device, renew_token, renewal_due, summary, token_expiry, write_private,
};
use serde_json::{Value, json};

use crate::fake_api::builtin::service_account_jwt;
use crate::fake_api::{Fake, GROUP_PATH, Sent};

const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1";
const AGENTS: &str = "ringmaster-agents";
const SA: &str = "fleet.web-1";
/// The device's check-in Lease.
const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/fleet/leases/web-1";

/// A fake API server holding namespace `fleet`, and a client of it.
async fn cluster() -> (Fake, Client) {
    let fake = Fake::default();
    let client = fake.mock_client();
    let mut ns = Namespace::default();
    ns.metadata.name = Some("fleet".into());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("creating namespace fleet");
    fake.clear();
    (fake, client)
}

fn web1(labels: &[(&str, &str)]) -> Enrollment {
    let mut e = Enrollment::new("fleet", "web-1");
    e.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    e
}

fn stored(fake: &Fake, path: &str) -> Value {
    fake.get_path(path)
        .unwrap_or_else(|| panic!("{path} is not stored"))
}

fn device_path() -> String {
    format!("{GROUP_PATH}/namespaces/fleet/manageddevices/web-1")
}

/// Writes that store something: not the TokenRequests and SubjectAccessReviews, which
/// the API server answers and forgets.
fn stored_writes(fake: &Fake) -> Vec<Sent> {
    fake.writes()
        .into_iter()
        .filter(|w| !w.path.ends_with("/token") && !w.path.ends_with("/subjectaccessreviews"))
        .collect()
}

fn tmp(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringmaster-enroll-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

fn access() -> ClusterAccess {
    ClusterAccess {
        server: "https://api.example.com:6443".into(),
        certificate_authority_data: Some("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==".into()),
        tls_server_name: None,
        insecure_skip_tls_verify: false,
    }
}

/// The token in a kubeconfig as kube reads it.
fn token_of(k: &Kubeconfig) -> String {
    let v = serde_json::to_value(k).expect("a kubeconfig serializes");
    v["users"][0]["user"]["token"]
        .as_str()
        .expect("a token")
        .to_string()
}

#[tokio::test]
async fn a_first_enrollment_creates_every_object_with_its_content() {
    let (fake, client) = cluster().await;
    let enrolled = enroll(&client, &web1(&[("ring", "canary"), ("class", "server")]))
        .await
        .expect("enrolled");
    let steps: Vec<String> = enrolled.steps.iter().map(ToString::to_string).collect();
    assert_eq!(
        steps,
        [
            "Namespace ringmaster-agents: created",
            "ServiceAccount ringmaster-agents/fleet.web-1: created",
            "ManagedDevice fleet/web-1: created",
            "Lease fleet/web-1: created",
            "Role fleet/ringmaster-agent:web-1: created",
            "RoleBinding fleet/ringmaster-agent:web-1: created",
            "Role ringmaster-agents/ringmaster-agent-token:fleet.web-1: created",
            "RoleBinding ringmaster-agents/ringmaster-agent-token:fleet.web-1: created",
            "ClusterRole ringmaster:agent-catalog-reader: created",
            "ClusterRoleBinding ringmaster:agent-catalog-reader:ringmaster-agents: created",
        ]
    );

    let device = stored(&fake, &device_path());
    assert_eq!(
        device["metadata"]["labels"],
        json!({"ring": "canary", "class": "server"})
    );
    assert_eq!(
        device["metadata"]["annotations"],
        json!({"ringmaster.dev/agent": "system:serviceaccount:ringmaster-agents:fleet.web-1"})
    );
    assert_eq!(device["spec"]["hostname"], "web-1");
    assert_eq!(device["spec"]["os"], json!({"family": "linux"}));
    assert_eq!(
        device["spec"]["plan"],
        json!({"install": {}, "uninstall": {}})
    );

    let sa = stored(
        &fake,
        &format!("/api/v1/namespaces/{AGENTS}/serviceaccounts/{SA}"),
    );
    assert_eq!(sa["automountServiceAccountToken"], false);
    assert_eq!(
        sa["metadata"]["labels"]["ringmaster.dev/enrolled-agent"],
        SA
    );
    assert_eq!(
        sa["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "ringmaster-enroll"
    );

    let role = stored(
        &fake,
        &format!("{RBAC}/namespaces/fleet/roles/ringmaster-agent:web-1"),
    );
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": ["patching.ringmaster.dev"], "resources": ["manageddevices"],
             "verbs": ["get", "list", "watch"], "resourceNames": ["web-1"]},
            {"apiGroups": ["patching.ringmaster.dev"], "resources": ["manageddevices/status"],
             "verbs": ["get", "patch"], "resourceNames": ["web-1"]},
            {"apiGroups": ["patching.ringmaster.dev"], "resources": ["deploymentrings"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "verbs": ["get", "update", "patch"], "resourceNames": ["web-1"]},
        ])
    );
    // The check-in Lease, so that the agent needs no create on leases: held by the agent,
    // not renewed yet.
    let lease = stored(&fake, LEASE);
    assert_eq!(lease["metadata"]["namespace"], "fleet");
    assert_eq!(
        lease["metadata"]["labels"]["ringmaster.dev/device"],
        "web-1"
    );
    assert_eq!(
        lease["metadata"]["labels"]["ringmaster.dev/enrolled-agent"],
        SA
    );
    assert_eq!(
        lease["spec"],
        json!({"holderIdentity": "system:serviceaccount:ringmaster-agents:fleet.web-1"})
    );
    let sa_subject = json!([{"kind": "ServiceAccount", "name": SA, "namespace": AGENTS}]);
    let binding = stored(
        &fake,
        &format!("{RBAC}/namespaces/fleet/rolebindings/ringmaster-agent:web-1"),
    );
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ringmaster-agent:web-1"})
    );
    assert_eq!(binding["subjects"], sa_subject);

    let token_role = format!("ringmaster-agent-token:{SA}");
    let role = stored(
        &fake,
        &format!("{RBAC}/namespaces/{AGENTS}/roles/{token_role}"),
    );
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["serviceaccounts/token"],
                "verbs": ["create"], "resourceNames": [SA]}])
    );
    let binding = stored(
        &fake,
        &format!("{RBAC}/namespaces/{AGENTS}/rolebindings/{token_role}"),
    );
    assert_eq!(binding["roleRef"]["name"], token_role.as_str());
    assert_eq!(binding["subjects"], sa_subject);

    let catalog = stored(
        &fake,
        &format!("{RBAC}/clusterroles/ringmaster:agent-catalog-reader"),
    );
    assert_eq!(
        catalog["rules"],
        json!([{"apiGroups": ["patching.ringmaster.dev"], "resources": ["patches"],
                "verbs": ["get", "list", "watch"]}])
    );
    let binding = stored(
        &fake,
        &format!("{RBAC}/clusterrolebindings/ringmaster:agent-catalog-reader:{AGENTS}"),
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "Group", "name": "system:serviceaccounts:ringmaster-agents",
                "apiGroup": "rbac.authorization.k8s.io"}])
    );

    // Everything was written by enrollment's field manager.
    for w in stored_writes(&fake) {
        assert!(
            w.query.contains("fieldManager=ringmaster-enroll"),
            "{} {}",
            w.path,
            w.query
        );
    }
    let out = summary(&web1(&[]), &enrolled, &Out::File("web-1.kubeconfig".into()));
    assert!(
        out.contains("ServiceAccount ringmaster-agents/fleet.web-1: created\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "install -D -m 0600 -o root -g root web-1.kubeconfig /etc/ringmaster/agent.kubeconfig"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn the_token_request_asks_for_the_ttl_and_binds_to_nothing() {
    let (fake, client) = cluster().await;
    let mut e = web1(&[]);
    e.token_ttl = "36h".parse().expect("a duration");
    let before = Timestamp::now();
    let enrolled = enroll(&client, &e).await.expect("enrolled");
    let requests: Vec<Sent> = fake
        .writes()
        .into_iter()
        .filter(|w| w.path.ends_with("/token"))
        .collect();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let r = &requests[0];
    assert_eq!(r.method, Method::POST);
    assert_eq!(
        r.path,
        format!("/api/v1/namespaces/{AGENTS}/serviceaccounts/{SA}/token")
    );
    assert_eq!(r.body["kind"], "TokenRequest");
    assert_eq!(r.body["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(r.body["spec"]["expirationSeconds"], 36 * 3600);
    assert!(r.body["spec"].get("boundObjectRef").is_none(), "{}", r.body);
    assert_eq!(enrolled.service_account, SA);
    let lifetime = enrolled.expires_at.duration_since(before);
    assert!(
        (SignedDuration::from_hours(36) - lifetime).abs() <= SignedDuration::from_secs(2),
        "{lifetime:?}"
    );
    assert!(enrolled.token.split('.').count() == 3);
    assert!(
        !format!("{enrolled:?}").contains(&enrolled.token),
        "Debug must not print the token"
    );
}

#[tokio::test]
async fn a_second_enrollment_changes_nothing_and_writes_nothing() {
    let (fake, client) = cluster().await;
    let e = web1(&[("ring", "canary")]);
    enroll(&client, &e).await.expect("first enrollment");
    let device_version = stored(&fake, &device_path())["metadata"]["resourceVersion"].clone();
    fake.clear();
    let again = enroll(&client, &e).await.expect("second enrollment");
    let writes = stored_writes(&fake);
    assert!(
        writes.is_empty(),
        "a second enrollment writes nothing: {writes:?}"
    );
    let changes: Vec<Change> = again.steps.iter().map(|s| s.change).collect();
    assert_eq!(changes.len(), 9, "{:?}", again.steps);
    assert!(
        changes[..8].iter().all(|c| *c == Change::Unchanged),
        "{:?}",
        again.steps
    );
    // The agents can read the catalog through the binding made the first time.
    assert_eq!(again.steps[8].change, Change::Granted, "{:?}", again.steps);
    assert_eq!(
        stored(&fake, &device_path())["metadata"]["resourceVersion"],
        device_version
    );
    // Only reads, the access reviews and one TokenRequest were sent.
    let posts: Vec<String> = fake
        .writes()
        .into_iter()
        .map(|w| format!("{} {}", w.method, w.path))
        .collect();
    assert_eq!(
        posts,
        [
            "POST /apis/authorization.k8s.io/v1/subjectaccessreviews",
            "POST /apis/authorization.k8s.io/v1/subjectaccessreviews",
            "POST /apis/authorization.k8s.io/v1/subjectaccessreviews",
            "POST /api/v1/namespaces/ringmaster-agents/serviceaccounts/fleet.web-1/token",
        ]
    );
}

/// The agent's check-in of `web-1` as the Linux agent makes it, on `client`.
fn agent_check_in(client: &Client) -> CheckIn {
    CheckIn::new(
        Api::namespaced(client.clone(), "fleet"),
        "web-1",
        "system:serviceaccount:ringmaster-agents:fleet.web-1",
        std::time::Duration::from_secs(300),
    )
}

#[tokio::test]
async fn the_agent_renews_the_enrolled_lease_and_a_second_enrollment_leaves_it_as_it_is() {
    let (fake, client) = cluster().await;
    let e = web1(&[]);
    enroll(&client, &e).await.expect("first enrollment");
    // The agent's first heartbeat: one patch of the Lease enrollment made, no create.
    fake.clear();
    let now: Timestamp = "2026-11-24T21:00:00Z".parse().expect("a timestamp");
    agent_check_in(&client)
        .renew(now)
        .await
        .expect("the agent renews its Lease");
    let renewals: Vec<String> = fake
        .writes()
        .iter()
        .map(|w| format!("{} {}", w.method, w.path))
        .collect();
    assert_eq!(renewals, [format!("PATCH {LEASE}")]);
    let renewed = stored(&fake, LEASE);
    let lease: Lease = serde_json::from_value(renewed.clone()).expect("a Lease");
    assert_eq!(ringmaster::contract::check_in(&lease), Some(("web-1", now)));
    // Enrolled again: the Lease is read, left as the agent renewed it, and not written.
    fake.clear();
    let again = enroll(&client, &e).await.expect("second enrollment");
    assert!(
        again
            .steps
            .iter()
            .any(|s| s.to_string() == "Lease fleet/web-1: unchanged"),
        "{:?}",
        again.steps
    );
    assert!(
        fake.writes().iter().all(|w| !w.path.contains("/leases")),
        "{:?}",
        fake.writes()
    );
    assert_eq!(stored(&fake, LEASE), renewed);
}

#[tokio::test]
async fn an_existing_lease_is_left_as_it_is() {
    let (fake, client) = cluster().await;
    // A Lease of the device's name that someone else made: enrollment does not take it.
    let theirs: Lease = serde_json::from_value(json!({
        "metadata": {"name": "web-1", "namespace": "fleet"},
        "spec": {"holderIdentity": "someone", "renewTime": "2026-11-24T20:00:00.000000Z"}
    }))
    .expect("a Lease");
    fake.insert("Lease", &theirs);
    let before = stored(&fake, LEASE);
    let enrolled = enroll(&client, &web1(&[])).await.expect("enrolled");
    assert_eq!(
        enrolled.steps[3].to_string(),
        "Lease fleet/web-1: unchanged"
    );
    assert_eq!(stored(&fake, LEASE), before);
}

#[tokio::test]
async fn an_agent_whose_lease_is_gone_is_refused_the_create_and_told_why() {
    let (fake, client) = cluster().await;
    enroll(&client, &web1(&[])).await.expect("enrolled");
    // Someone deletes the Lease; the agent has no create on leases (RBAC refuses it).
    fake.remove_path(LEASE);
    fake.forbid(
        Method::POST,
        "/apis/coordination.k8s.io/v1/namespaces/fleet/leases",
    );
    fake.clear();
    let now: Timestamp = "2026-11-24T21:00:00Z".parse().expect("a timestamp");
    let err = agent_check_in(&client)
        .renew(now)
        .await
        .expect_err("the create is refused");
    assert!(
        matches!(err, RenewError::CreateForbidden { ref device } if device == "web-1"),
        "{err:?}"
    );
    assert!(err.to_string().contains("ringmaster enroll"), "{err}");
    // Tried once each, and given up: the agent falls back to status.lastSeen.
    let sent: Vec<String> = fake.sent().iter().map(|w| w.method.to_string()).collect();
    assert_eq!(sent, ["PATCH", "POST"]);
}

#[tokio::test]
async fn other_labels_are_updated_and_the_rest_of_the_device_is_kept() {
    let (fake, client) = cluster().await;
    enroll(&client, &web1(&[("ring", "canary")]))
        .await
        .expect("enrolled");
    // Meanwhile a person labels the device, the operator plans and the agent reports.
    fake.merge(
        "ManagedDevice",
        Some("fleet"),
        "web-1",
        json!({
            "metadata": {"labels": {"tier": "gold"}, "annotations": {"note": "rack 4"}},
            "spec": {"os": {"version": "12 (bookworm)"},
                     "plan": {"install": {"KB1": {"rollout": "r", "notBefore": "2026-11-11T00:00:00Z"}}}},
            "status": {"lastSeen": "2026-11-11T00:00:00Z", "patches": [{"id": "KB1", "state": "Missing"}]}
        }),
    );
    let before = stored(&fake, &device_path());
    fake.clear();
    let again = enroll(&client, &web1(&[("ring", "broad")]))
        .await
        .expect("re-enrolled");
    let device_step = again
        .steps
        .iter()
        .find(|s| s.object == "ManagedDevice fleet/web-1")
        .expect("the device's step");
    assert_eq!(device_step.change, Change::Updated);
    let writes = stored_writes(&fake);
    assert_eq!(writes.len(), 1, "only the device is written: {writes:?}");
    assert_eq!(writes[0].method, Method::PATCH);
    assert_eq!(writes[0].path, device_path());
    assert_eq!(
        writes[0].body,
        json!({"metadata": {"labels": {"ring": "broad"}}})
    );
    let after = stored(&fake, &device_path());
    assert_eq!(
        after["metadata"]["labels"],
        json!({"ring": "broad", "tier": "gold"})
    );
    assert_eq!(
        after["metadata"]["annotations"],
        before["metadata"]["annotations"]
    );
    assert_eq!(after["spec"], before["spec"]);
    assert_eq!(after["status"], before["status"]);
}

#[tokio::test]
async fn a_device_claimed_by_another_agent_is_handed_to_the_enrolled_one() {
    let (fake, client) = cluster().await;
    let device: ManagedDevice = serde_json::from_value(json!({
        "apiVersion": "patching.ringmaster.dev/v1alpha1", "kind": "ManagedDevice",
        "metadata": {"name": "web-1", "namespace": "fleet",
                     "annotations": {"ringmaster.dev/agent": "system:serviceaccount:old:web-1"}},
        "spec": {"hostname": "web-1.example.com", "os": {"family": "linux", "version": "9.4"}}
    }))
    .expect("a device");
    fake.insert("ManagedDevice", &device);
    let enrolled = enroll(&client, &web1(&[])).await.expect("enrolled");
    assert_eq!(
        enrolled.steps[2].to_string(),
        "ManagedDevice fleet/web-1: updated"
    );
    let after = stored(&fake, &device_path());
    assert_eq!(
        after["metadata"]["annotations"]["ringmaster.dev/agent"],
        "system:serviceaccount:ringmaster-agents:fleet.web-1"
    );
    assert_eq!(after["spec"]["hostname"], "web-1");
    assert_eq!(
        after["spec"]["os"],
        json!({"family": "linux", "version": "9.4"})
    );
}

#[tokio::test]
async fn catalog_access_granted_already_creates_no_cluster_role() {
    let (fake, client) = cluster().await;
    // What the chart renders with agents.rbac.create.
    for (collection, body) in [
        (
            "clusterroles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "ringmaster-agent-catalog"},
            "rules": [{"apiGroups": ["patching.ringmaster.dev"], "resources": ["patches"],
                       "verbs": ["get", "list", "watch"]}]}),
        ),
        (
            "clusterrolebindings",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding", "metadata": {"name": "ringmaster-agent-catalog"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "ringmaster-agent-catalog"},
            "subjects": [{"kind": "Group", "name": "system:serviceaccounts:ringmaster-agents",
                          "apiGroup": "rbac.authorization.k8s.io"}]}),
        ),
    ] {
        let pp = PostParams::default();
        if collection == "clusterroles" {
            let role: ClusterRole = serde_json::from_value(body).expect("a ClusterRole");
            Api::<ClusterRole>::all(client.clone())
                .create(&pp, &role)
                .await
                .map(drop)
        } else {
            let b: ClusterRoleBinding = serde_json::from_value(body).expect("a binding");
            Api::<ClusterRoleBinding>::all(client.clone())
                .create(&pp, &b)
                .await
                .map(drop)
        }
        .expect("storing the chart's RBAC");
    }
    fake.clear();
    let enrolled = enroll(&client, &web1(&[])).await.expect("enrolled");
    let last = enrolled.steps.last().expect("steps");
    assert_eq!(
        last.to_string(),
        "Patch catalog read access for system:serviceaccounts:ringmaster-agents: granted already"
    );
    assert!(
        fake.get_path(&format!(
            "{RBAC}/clusterroles/ringmaster:agent-catalog-reader"
        ))
        .is_none()
    );
    // Each verb was asked about, as the agent.
    let reviews: Vec<Sent> = fake
        .writes()
        .into_iter()
        .filter(|w| w.path.ends_with("/subjectaccessreviews"))
        .collect();
    let verbs: Vec<&str> = reviews
        .iter()
        .map(|r| {
            r.body["spec"]["resourceAttributes"]["verb"]
                .as_str()
                .unwrap_or("")
        })
        .collect();
    assert_eq!(verbs, ["get", "list", "watch"]);
    assert_eq!(
        reviews[0].body["spec"]["user"],
        "system:serviceaccount:ringmaster-agents:fleet.web-1"
    );
}

#[tokio::test]
async fn a_missing_tenant_namespace_or_bad_input_is_refused_before_any_write() {
    let fake = Fake::default();
    let client = fake.mock_client();
    let err = enroll(&client, &web1(&[]))
        .await
        .expect_err("no namespace fleet");
    assert!(
        matches!(err, Error::NamespaceMissing { ref namespace } if namespace == "fleet"),
        "{err}"
    );
    assert_eq!(fake.writes().len(), 0);

    fake.clear();
    let mut e = web1(&[("ring", "can ary")]);
    assert!(matches!(
        enroll(&client, &e).await,
        Err(Error::InvalidLabel { .. })
    ));
    e = web1(&[]);
    e.token_ttl = Duration::from_secs(300);
    let err = enroll(&client, &e).await.expect_err("5m is too short");
    assert!(matches!(err, Error::TokenTtl { .. }), "{err}");
    assert_eq!(err.exit_code(), 2);
    e = Enrollment::new("fleet", "Web_1");
    assert!(matches!(
        enroll(&client, &e).await,
        Err(Error::InvalidName { what: "--name", .. })
    ));
    e = Enrollment::new("fleet", "web-1");
    e.agents_namespace = "agents.a".into();
    assert!(matches!(
        enroll(&client, &e).await,
        Err(Error::InvalidName {
            what: "--agents-namespace",
            ..
        })
    ));
    assert_eq!(fake.sent().len(), 0, "nothing is sent for bad input");
}

#[tokio::test]
async fn the_kubeconfig_parses_back_with_the_device_namespace_and_token() {
    let e = web1(&[]);
    let (token, _) = service_account_jwt(AGENTS, SA, 3600);
    let yaml = agent_kubeconfig(&access(), &e, &token).expect("a kubeconfig");
    let k = Kubeconfig::from_yaml(&yaml).expect("kube reads it");
    assert_eq!(k.current_context.as_deref(), Some(SA));
    let cluster = k.clusters[0].cluster.as_ref().expect("a cluster");
    assert_eq!(
        cluster.server.as_deref(),
        Some("https://api.example.com:6443")
    );
    assert_eq!(
        cluster.certificate_authority_data.as_deref(),
        access().certificate_authority_data.as_deref()
    );
    assert_eq!(cluster.insecure_skip_tls_verify, None);
    let context = k.contexts[0].context.as_ref().expect("a context");
    assert_eq!(context.namespace.as_deref(), Some("fleet"));
    assert_eq!(context.user.as_deref(), Some(SA));
    assert_eq!(token_of(&k), token);

    let dir = tmp("parse");
    let path = dir.join("web-1.kubeconfig");
    write_private(&path, yaml.as_bytes()).expect("written");
    let mode = std::fs::metadata(&path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        enrolled_device(&path).expect("read"),
        Some(("fleet".to_string(), "web-1".to_string()))
    );
    // kube makes a client configuration of it: the device's namespace by default.
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&path).expect("read back"),
        &KubeConfigOptions::default(),
    )
    .await
    .expect("a client configuration");
    assert_eq!(config.default_namespace, "fleet");
    assert_eq!(config.cluster_url.host(), Some("api.example.com"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn server_and_certificate_authority_flags_replace_the_enrollers() {
    let dir = tmp("flags");
    let ca = dir.join("ca.crt");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .expect("written");
    let mut insecure = access();
    insecure.insecure_skip_tls_verify = true;
    let a = insecure
        .with_server("https://10.0.0.1:6443/")
        .expect("a server")
        .with_certificate_authority(&ca)
        .expect("a CA");
    assert_eq!(a.server, "https://10.0.0.1:6443");
    assert!(!a.insecure_skip_tls_verify);
    assert_eq!(
        a.certificate_authority_data.as_deref(),
        Some("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=")
    );
    for bad in [
        "http://10.0.0.1:6443",
        "https://",
        "10.0.0.1:6443",
        "https://user@host",
    ] {
        assert!(
            matches!(access().with_server(bad), Err(Error::ServerUrl { .. })),
            "{bad}"
        );
    }
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello").expect("written");
    assert!(matches!(
        access().with_certificate_authority(&not_pem),
        Err(Error::NotPem { .. })
    ));
    assert!(matches!(
        access().with_certificate_authority(&dir.join("absent")),
        Err(Error::Io { .. })
    ));
    let _ = std::fs::remove_dir_all(dir);
}

/// A kubeconfig whose user has `token` (or, with None, a client certificate).
fn kubeconfig_with(dir: &Path, token: Option<&str>) -> PathBuf {
    let user = match token {
        Some(t) => json!({"token": t}),
        None => json!({"client-certificate-data": "Y2VydA==", "client-key-data": "a2V5"}),
    };
    let doc = json!({"apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://k:6443"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]});
    let path = dir.join("agent.kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&doc).expect("yaml")).expect("written");
    path
}

#[test]
fn token_expiry_reads_the_jwt_exp_and_renewal_is_due_after_80_percent() {
    let dir = tmp("expiry");
    let (token, exp) = service_account_jwt(AGENTS, SA, 10_000);
    let path = kubeconfig_with(&dir, Some(&token));
    let exp = Timestamp::from_second(exp).expect("a time");
    assert_eq!(token_expiry(&path).expect("read"), Some(exp));
    let iat = exp - SignedDuration::from_secs(10_000);
    let at = |s: i64| iat + SignedDuration::from_secs(s);
    assert!(!renewal_due(&path, at(7_999)).expect("read"));
    assert!(renewal_due(&path, at(8_000)).expect("read"));

    // An opaque token, or a client certificate: nothing to renew.
    let path = kubeconfig_with(&dir, Some("0123456789abcdef"));
    assert_eq!(token_expiry(&path).expect("read"), None);
    let path = kubeconfig_with(&dir, None);
    assert_eq!(token_expiry(&path).expect("read"), None);
    assert!(!renewal_due(&path, Timestamp::now()).expect("read"));

    // A kubeconfig that names no context is an error that says so.
    std::fs::write(&path, "apiVersion: v1\nkind: Config\n").expect("written");
    let err = token_expiry(&path).expect_err("no current context");
    assert!(
        matches!(
            err,
            Error::Kubeconfig {
                problem: KubeconfigProblem::NoCurrentContext,
                ..
            }
        ),
        "{err}"
    );
    let err = token_expiry(&dir.join("absent")).expect_err("no file");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn renew_token_asks_for_its_own_service_account_and_replaces_the_file_atomically() {
    let (fake, client) = cluster().await;
    let e = web1(&[]);
    let enrolled = enroll(&client, &e).await.expect("enrolled");
    let dir = tmp("renew");
    let path = dir.join("agent.kubeconfig");
    let yaml = agent_kubeconfig(&access(), &e, &enrolled.token).expect("a kubeconfig");
    write_private(&path, yaml.as_bytes()).expect("written");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let inode = std::fs::metadata(&path).expect("metadata").ino();
    // A reader that opened the file before the renewal.
    let mut reader = std::fs::File::open(&path).expect("open");
    fake.clear();

    let expires = renew_token(&client, &path, Duration::hours(1))
        .await
        .expect("renewed");

    let requests = fake.writes();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        requests[0].path,
        format!("/api/v1/namespaces/{AGENTS}/serviceaccounts/{SA}/token")
    );
    assert_eq!(requests[0].body["spec"]["expirationSeconds"], 3600);
    let new = Kubeconfig::read_from(&path).expect("read back");
    let token = token_of(&new);
    assert_ne!(token, enrolled.token);
    assert_eq!(token_expiry(&path).expect("read"), Some(expires));
    let lifetime = expires.duration_since(Timestamp::now());
    assert!(lifetime > SignedDuration::from_mins(59) && lifetime <= SignedDuration::from_hours(1));
    // Everything else is as enrollment wrote it.
    let old = Kubeconfig::from_yaml(&yaml).expect("parse");
    let strip = |k: &Kubeconfig| {
        let mut v = serde_json::to_value(k).expect("json");
        v["users"][0]["user"]["token"] = Value::Null;
        v
    };
    assert_eq!(strip(&new), strip(&old));
    assert_eq!(
        enrolled_device(&path).expect("read"),
        Some(("fleet".into(), "web-1".into()))
    );
    // A new file renamed into place: private again, another inode, and the reader still
    // sees the whole old file, never a half-written one.
    let meta = std::fs::metadata(&path).expect("metadata");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_ne!(meta.ino(), inode);
    let mut seen = String::new();
    std::io::Read::read_to_string(&mut reader, &mut seen).expect("read");
    assert_eq!(seen, yaml);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        left,
        [std::ffi::OsString::from("agent.kubeconfig")],
        "no temporary file is left"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn renew_token_refuses_a_token_that_is_not_a_service_accounts() {
    let (fake, client) = cluster().await;
    let dir = tmp("renew-not-sa");
    let path = kubeconfig_with(&dir, Some("0123456789abcdef"));
    let before = std::fs::read(&path).expect("read");
    let err = renew_token(&client, &path, Duration::hours(1))
        .await
        .expect_err("opaque");
    assert!(
        matches!(
            err,
            Error::Kubeconfig {
                problem: KubeconfigProblem::NotAServiceAccountToken,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&path).expect("read"),
        before,
        "the file is left alone"
    );
    let path = kubeconfig_with(&dir, None);
    let err = renew_token(&client, &path, Duration::hours(1))
        .await
        .expect_err("no token");
    assert!(
        matches!(
            err,
            Error::Kubeconfig {
                problem: KubeconfigProblem::NoToken,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fake.sent().len(), 0, "nothing is asked of the API server");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_command_refuses_bad_input_before_it_looks_for_a_cluster() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ringmaster"))
            .arg("enroll")
            .args(args)
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .expect("running ringmaster enroll")
    };
    let out = run(&["--namespace", "fleet", "--name", "Web_1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--name \"Web_1\": must be a DNS subdomain"),
        "{stderr}"
    );
    let out = run(&[
        "--namespace",
        "fleet",
        "--name",
        "web-1",
        "--token-ttl",
        "5m",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--token-ttl 5m"), "{stderr}");
    // Good input, no cluster: the configuration error, exit 1.
    let out = run(&["--namespace", "fleet", "--name", "web-1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("kubernetes client configuration"),
        "{stderr}"
    );
    assert!(!std::path::Path::new("web-1.kubeconfig").exists());
}

/// The Linux agent's side of its credentials (`agent::linux::identity`): the enrolled
/// kubeconfig's inline token moves to a token file its clients re-read, nothing is asked
/// before 80% of the token's lifetime, and then a renewal rewrites both the kubeconfig
/// and the token file.
#[tokio::test]
async fn the_agent_keeps_its_token_in_a_file_and_renews_it_there_when_due() {
    use ringmaster::agent::linux::identity;
    let (fake, client) = cluster().await;
    let e = web1(&[]);
    let enrolled = enroll(&client, &e).await.expect("enrolled");
    let dir = tmp("agent-identity");
    let path = dir.join("agent.kubeconfig");
    let plain = ClusterAccess {
        server: "http://127.0.0.1:9".into(),
        certificate_authority_data: None,
        tls_server_name: None,
        insecure_skip_tls_verify: false,
    };
    let yaml = agent_kubeconfig(&plain, &e, &enrolled.token).expect("a kubeconfig");
    write_private(&path, yaml.as_bytes()).expect("written");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("state dir");

    let (_agent_client, found) = identity::client(&path, &state)
        .await
        .expect("a client from the kubeconfig");
    let found = found.expect("an inline token makes a renewable identity");
    let token_file = state.join(identity::TOKEN_FILE);
    let read = |p: &Path| std::fs::read_to_string(p).expect("the token file");
    assert_eq!(read(&token_file), enrolled.token);
    assert_eq!(
        std::fs::metadata(&token_file).expect("metadata").mode() & 0o777,
        0o600
    );
    fake.clear();
    assert!(
        !found
            .renew_if_due(&client, Timestamp::now())
            .await
            .expect("not due yet"),
    );
    assert!(fake.writes().is_empty(), "nothing asked before it is due");

    // What the file holds is replaced whole by the renewal.
    std::fs::write(&token_file, "stale").expect("marking the file");
    let late = Timestamp::now() + SignedDuration::from_hours(23);
    assert!(found.renew_if_due(&client, late).await.expect("renewed"));
    let requests = fake.writes();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        requests[0].path,
        format!("/api/v1/namespaces/{AGENTS}/serviceaccounts/{SA}/token")
    );
    assert_eq!(
        requests[0].body["spec"]["expirationSeconds"],
        24 * 3600,
        "the old token's lifetime again"
    );
    let renewed = token_of(&Kubeconfig::read_from(&path).expect("read back"));
    assert_eq!(
        read(&token_file),
        renewed,
        "the clients' file has the new token"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
