//! The objects an enrollment wants, and what to send to bring an existing object in line
//! with them. Pure: no I/O, so every rule here is tested without a cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use kube::api::ObjectMeta;
use serde_json::{Map, Value, json};

use super::names::{
    CATALOG_CLUSTER_ROLE, catalog_binding_name, device_role_name, service_accounts_group,
    token_role_name,
};
use super::{ENROLLED_LABEL, Enrollment, MANAGED_BY};
use crate::agent::AGENT_ANNOTATION;
use crate::api::{DevicePlan, ManagedDevice, ManagedDeviceSpec, OsInfo};
use crate::contract::CHECK_IN_LABEL;

/// The API group of the ringmaster kinds.
const GROUP: &str = "patching.ringmaster.dev";
/// The API group of Roles and bindings.
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The API group of Leases (the devices' check-ins).
const COORDINATION_GROUP: &str = "coordination.k8s.io";

fn rule(group: &str, resources: &[&str], verbs: &[&str], names: Option<&str>) -> PolicyRule {
    PolicyRule {
        api_groups: Some(strings(&[group])),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        resource_names: names.map(|n| vec![n.to_string()]),
        non_resource_urls: None,
    }
}

/// The labels on every object enrollment creates (the device excepted: its labels choose
/// its policy and ring, and stay the enroller's).
fn common_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            MANAGED_BY.to_string(),
        ),
        (
            "app.kubernetes.io/part-of".to_string(),
            "ringmaster".to_string(),
        ),
    ])
}

/// [`common_labels`] plus the agent's ServiceAccount, to find everything one
/// enrollment made (`-l ringmaster.dev/enrolled-agent=<sa>`).
fn agent_labels(e: &Enrollment) -> BTreeMap<String, String> {
    let mut labels = common_labels();
    labels.insert(ENROLLED_LABEL.to_string(), e.service_account());
    labels
}

fn meta(name: &str, namespace: Option<&str>, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

fn service_account_subject(e: &Enrollment) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: e.service_account(),
        namespace: Some(e.agents_namespace.clone()),
        api_group: None,
    }
}

/// The agents' namespace, created when missing.
pub fn agents_namespace(e: &Enrollment) -> Namespace {
    Namespace {
        metadata: meta(&e.agents_namespace, None, common_labels()),
        ..Namespace::default()
    }
}

/// The agent's ServiceAccount in the agents' namespace. It mounts no token anywhere: the
/// agent runs on its host, with the token enrollment requested for it.
pub fn service_account(e: &Enrollment) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(
            &e.service_account(),
            Some(&e.agents_namespace),
            agent_labels(e),
        ),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// The agent's Role in the device's namespace: its own ManagedDevice (get; list and
/// watch with the field selector `metadata.name=<device>`, the only way RBAC lets a list
/// or watch be limited to named objects), its own status (get, patch), every
/// DeploymentRing (its ring's reboot policy and windows), and get, update and patch of
/// its check-in Lease only. No create on Leases: RBAC cannot limit a create to a name,
/// so it would let the agent create Leases of any name; enrollment creates the agent's
/// Lease instead ([`check_in_lease`]).
pub fn device_role(e: &Enrollment) -> Role {
    let device = Some(e.name.as_str());
    Role {
        metadata: meta(
            &device_role_name(&e.name),
            Some(&e.namespace),
            agent_labels(e),
        ),
        rules: Some(vec![
            rule(
                GROUP,
                &["manageddevices"],
                &["get", "list", "watch"],
                device,
            ),
            rule(GROUP, &["manageddevices/status"], &["get", "patch"], device),
            rule(GROUP, &["deploymentrings"], &["get", "list", "watch"], None),
            rule(
                COORDINATION_GROUP,
                &["leases"],
                &["get", "update", "patch"],
                device,
            ),
        ]),
    }
}

/// The device's check-in Lease, as enrollment creates it so that the agent needs no
/// right to create Leases: in the device's namespace, named as the device and labelled
/// [`CHECK_IN_LABEL`] with its name (as the agent's own would be, `agent::lease`), plus
/// enrollment's labels. Held by the agent (`spec.holderIdentity` its user name, as the
/// device's annotation names it): the chart's device-lease admission policy lets an agent
/// update only a Lease it held already, so one held by nobody would refuse its renewals.
/// No `renewTime` nor `acquireTime`: the device has not checked in yet, and such a Lease
/// is no check-in (`contract::check_in`) until the agent's first renewal sets them; no
/// `leaseDurationSeconds` either, which only the agent knows (its heartbeat) and sends
/// with every renewal.
pub fn check_in_lease(e: &Enrollment) -> Lease {
    let mut labels = agent_labels(e);
    labels.insert(CHECK_IN_LABEL.to_string(), e.name.clone());
    Lease {
        metadata: meta(&e.name, Some(&e.namespace), labels),
        spec: Some(LeaseSpec {
            holder_identity: Some(e.agent_username()),
            ..LeaseSpec::default()
        }),
    }
}

/// Binds [`device_role`] to the agent's ServiceAccount.
pub fn device_binding(e: &Enrollment) -> RoleBinding {
    let name = device_role_name(&e.name);
    RoleBinding {
        metadata: meta(&name, Some(&e.namespace), agent_labels(e)),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: "Role".into(),
            name,
        },
        subjects: Some(vec![service_account_subject(e)]),
    }
}

/// The agent's Role in the agents' namespace: a TokenRequest for its own ServiceAccount
/// and no other, so it renews its token itself.
pub fn token_role(e: &Enrollment) -> Role {
    let sa = e.service_account();
    Role {
        metadata: meta(
            &token_role_name(&sa),
            Some(&e.agents_namespace),
            agent_labels(e),
        ),
        rules: Some(vec![rule(
            "",
            &["serviceaccounts/token"],
            &["create"],
            Some(&sa),
        )]),
    }
}

/// Binds [`token_role`] to the agent's ServiceAccount.
pub fn token_binding(e: &Enrollment) -> RoleBinding {
    let name = token_role_name(&e.service_account());
    RoleBinding {
        metadata: meta(&name, Some(&e.agents_namespace), agent_labels(e)),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: "Role".into(),
            name,
        },
        subjects: Some(vec![service_account_subject(e)]),
    }
}

/// The ClusterRole every agent shares: read the cluster-wide Patch catalog.
pub fn catalog_cluster_role() -> ClusterRole {
    ClusterRole {
        metadata: meta(CATALOG_CLUSTER_ROLE, None, common_labels()),
        rules: Some(vec![rule(
            GROUP,
            &["patches"],
            &["get", "list", "watch"],
            None,
        )]),
        aggregation_rule: None,
    }
}

/// Binds [`catalog_cluster_role`] to every ServiceAccount of the agents' namespace.
pub fn catalog_binding(agents_namespace: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(
            &catalog_binding_name(agents_namespace),
            None,
            common_labels(),
        ),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: "ClusterRole".into(),
            name: CATALOG_CLUSTER_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            kind: "Group".into(),
            name: service_accounts_group(agents_namespace),
            namespace: None,
            api_group: Some(RBAC_GROUP.into()),
        }]),
    }
}

/// The device as enrollment creates it: its labels, the agent annotation, its host name
/// and OS family, and an empty plan.
pub fn device(e: &Enrollment) -> ManagedDevice {
    let mut d = ManagedDevice::new(
        &e.name,
        ManagedDeviceSpec {
            hostname: Some(e.name.clone()),
            os: e.os_family.as_ref().map(|family| OsInfo {
                family: family.clone(),
                version: None,
            }),
            plan: DevicePlan::default(),
        },
    );
    d.metadata.namespace = Some(e.namespace.clone());
    d.metadata.labels = Some(e.labels.clone());
    d.metadata.annotations = Some(BTreeMap::from([(
        AGENT_ANNOTATION.to_string(),
        e.agent_username(),
    )]));
    d
}

// ---- what to send to an existing object ----

/// `{"metadata": {"labels": …}}` when `want` are not all on the object already: the
/// labels are added or overwritten, others the object carries are kept.
fn labels_patch(
    have: Option<&BTreeMap<String, String>>,
    want: Option<&BTreeMap<String, String>>,
) -> Option<Value> {
    let want = want?;
    let missing = want
        .iter()
        .any(|(k, v)| have.and_then(|h| h.get(k)) != Some(v));
    missing.then(|| json!({"metadata": {"labels": want}}))
}

/// Adds the fields of `part` to `into`, objects merged key by key.
fn deep_merge(into: &mut Value, part: Value) {
    match (into, part) {
        (Value::Object(into), Value::Object(part)) => {
            for (k, v) in part {
                match into.get_mut(&k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        into.insert(k, v);
                    }
                }
            }
        }
        (into, part) => *into = part,
    }
}

/// Merges the non-empty parts into one merge patch, or None when there are none.
fn combine(parts: impl IntoIterator<Item = Option<Value>>) -> Option<Value> {
    let mut out = Value::Object(Map::new());
    let mut any = false;
    for part in parts.into_iter().flatten() {
        deep_merge(&mut out, part);
        any = true;
    }
    any.then_some(out)
}

/// A rule with its absent lists as empty ones (the API server drops empty lists).
fn normal_rule(r: &PolicyRule) -> [Vec<String>; 5] {
    let v = |o: &Option<Vec<String>>| o.clone().unwrap_or_default();
    [
        v(&r.api_groups),
        v(&r.resources),
        r.verbs.clone(),
        v(&r.resource_names),
        v(&r.non_resource_urls),
    ]
}

fn same_rules(have: Option<&Vec<PolicyRule>>, want: Option<&Vec<PolicyRule>>) -> bool {
    let n = |rules: Option<&Vec<PolicyRule>>| -> Vec<[Vec<String>; 5]> {
        rules
            .map(|r| r.iter().map(normal_rule).collect())
            .unwrap_or_default()
    };
    n(have) == n(want)
}

/// A subject as the API server defaults it: users and groups in the RBAC group,
/// ServiceAccounts in none.
fn normal_subject(s: &Subject) -> (String, String, String, String) {
    let group = match (s.api_group.as_deref(), s.kind.as_str()) {
        (Some(g), _) if !g.is_empty() => g.to_string(),
        (_, "User" | "Group") => RBAC_GROUP.to_string(),
        _ => String::new(),
    };
    (
        s.kind.clone(),
        s.name.clone(),
        s.namespace.clone().unwrap_or_default(),
        group,
    )
}

fn same_subjects(have: Option<&Vec<Subject>>, want: Option<&Vec<Subject>>) -> bool {
    let n = |s: Option<&Vec<Subject>>| -> Vec<_> {
        s.map(|s| s.iter().map(normal_subject).collect())
            .unwrap_or_default()
    };
    n(have) == n(want)
}

/// What brings a ServiceAccount in line: its labels, and no token mounted.
pub fn service_account_patch(have: &ServiceAccount, want: &ServiceAccount) -> Option<Value> {
    let mount = (have.automount_service_account_token != want.automount_service_account_token)
        .then(|| json!({"automountServiceAccountToken": want.automount_service_account_token}));
    combine([
        labels_patch(have.metadata.labels.as_ref(), want.metadata.labels.as_ref()),
        mount,
    ])
}

/// What brings a Role in line: its labels and exactly its rules.
pub fn role_patch(have: &Role, want: &Role) -> Option<Value> {
    let rules = (!same_rules(have.rules.as_ref(), want.rules.as_ref()))
        .then(|| json!({"rules": want.rules}));
    combine([
        labels_patch(have.metadata.labels.as_ref(), want.metadata.labels.as_ref()),
        rules,
    ])
}

/// What brings a ClusterRole in line: its labels and exactly its rules.
pub fn cluster_role_patch(have: &ClusterRole, want: &ClusterRole) -> Option<Value> {
    let rules = (!same_rules(have.rules.as_ref(), want.rules.as_ref()))
        .then(|| json!({"rules": want.rules}));
    combine([
        labels_patch(have.metadata.labels.as_ref(), want.metadata.labels.as_ref()),
        rules,
    ])
}

/// A binding's role reference is immutable: one that names another role cannot be
/// brought in line by a patch.
pub fn same_role_ref(have: &RoleRef, want: &RoleRef) -> bool {
    have.kind == want.kind && have.name == want.name && have.api_group == want.api_group
}

/// What brings a binding in line (its role reference already checked): its labels and
/// exactly its subjects.
pub fn subjects_patch(
    have_labels: Option<&BTreeMap<String, String>>,
    have: Option<&Vec<Subject>>,
    want_labels: Option<&BTreeMap<String, String>>,
    want: Option<&Vec<Subject>>,
) -> Option<Value> {
    let subjects = (!same_subjects(have, want)).then(|| json!({"subjects": want}));
    combine([labels_patch(have_labels, want_labels), subjects])
}

/// What brings an existing device in line with the enrollment: the given labels (others
/// are kept), the agent annotation, `spec.hostname` and `spec.os.family`. Never the plan,
/// never the status.
pub fn device_patch(have: &ManagedDevice, want: &ManagedDevice) -> Option<Value> {
    let annotations = labels_patch(
        have.metadata.annotations.as_ref(),
        want.metadata.annotations.as_ref(),
    )
    .map(|_| json!({"metadata": {"annotations": want.metadata.annotations}}));
    let hostname = (have.spec.hostname != want.spec.hostname)
        .then(|| json!({"spec": {"hostname": want.spec.hostname}}));
    let have_family = have.spec.os.as_ref().map(|o| &o.family);
    let os = want
        .spec
        .os
        .as_ref()
        .filter(|o| have_family != Some(&o.family))
        .map(|o| json!({"spec": {"os": {"family": o.family}}}));
    combine([
        labels_patch(have.metadata.labels.as_ref(), want.metadata.labels.as_ref()),
        annotations,
        hostname,
        os,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn enrollment() -> Enrollment {
        let mut e = Enrollment::new("fleet", "web-1");
        e.labels.insert("ring".into(), "canary".into());
        e
    }

    /// An object as the API server returns it: through JSON, with what it adds.
    fn served<T: serde::Serialize + serde::de::DeserializeOwned>(obj: &T, extra: Value) -> T {
        let mut v = serde_json::to_value(obj).expect("json");
        deep_merge(&mut v, extra);
        serde_json::from_value(v).expect("an object")
    }

    #[test]
    fn the_device_role_names_the_device_and_nothing_else_it_may_write() {
        let role = device_role(&enrollment());
        assert_eq!(
            role.metadata.name.as_deref(),
            Some("ringmaster-agent:web-1")
        );
        assert_eq!(role.metadata.namespace.as_deref(), Some("fleet"));
        let rules = role.rules.expect("rules");
        let flat: Vec<(String, String, Option<Vec<String>>)> = rules
            .iter()
            .flat_map(|r| {
                let names = r.resource_names.clone();
                r.resources
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .flat_map(move |res| {
                        let names = names.clone();
                        r.verbs
                            .iter()
                            .map(move |v| (res.clone(), v.clone(), names.clone()))
                    })
            })
            .collect();
        let web1 = Some(vec!["web-1".to_string()]);
        for (res, verb, names) in &flat {
            match res.as_str() {
                "manageddevices" => {
                    assert!(["get", "list", "watch"].contains(&verb.as_str()));
                    assert_eq!(names, &web1);
                }
                "manageddevices/status" => {
                    assert!(["get", "patch"].contains(&verb.as_str()));
                    assert_eq!(names, &web1);
                }
                "deploymentrings" => assert!(["get", "list", "watch"].contains(&verb.as_str())),
                // No create at all (RBAC cannot limit it to a name): enrollment creates
                // the Lease; the agent renews only the one named as its device.
                "leases" => {
                    assert!(["get", "update", "patch"].contains(&verb.as_str()));
                    assert_eq!(names, &web1);
                }
                other => panic!("unexpected resource {other}"),
            }
        }
        assert!(
            !flat
                .iter()
                .any(|(res, verb, _)| res == "leases" && verb == "create"),
            "the agent may not create Leases: {flat:?}"
        );
        assert_eq!(flat.len(), 3 + 2 + 3 + 3);
    }

    #[test]
    fn the_check_in_lease_is_the_devices_held_by_its_agent() {
        let e = enrollment();
        let lease = check_in_lease(&e);
        assert_eq!(lease.metadata.name.as_deref(), Some("web-1"));
        assert_eq!(lease.metadata.namespace.as_deref(), Some("fleet"));
        let labels = lease.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels[CHECK_IN_LABEL], "web-1");
        assert_eq!(labels[ENROLLED_LABEL], "fleet.web-1");
        assert_eq!(labels["app.kubernetes.io/managed-by"], MANAGED_BY);
        let spec = lease.spec.as_ref().expect("spec");
        // The holder the device's annotation names: the one the agent renews as.
        assert_eq!(
            spec.holder_identity.as_deref(),
            Some(device(&e).metadata.annotations.expect("annotations")[AGENT_ANNOTATION].as_str())
        );
        assert_eq!(spec.renew_time, None);
        assert_eq!(spec.acquire_time, None);
        assert_eq!(spec.lease_duration_seconds, None);
        // Not a check-in until the agent renews it: the device is not seen at enrollment.
        assert_eq!(crate::contract::check_in(&lease), None);
    }

    #[tokio::test]
    async fn the_agents_first_renewal_makes_the_enrolled_lease_a_check_in() {
        let e = enrollment();
        let lease = check_in_lease(&e);
        let client = kube::Client::try_from(kube::Config::new(
            "http://127.0.0.1:1".parse().expect("url"),
        ))
        .expect("client");
        let holder = e.agent_username();
        let agent = crate::agent::lease::CheckIn::new(
            kube::Api::namespaced(client, &e.namespace),
            &e.name,
            &holder,
            std::time::Duration::from_secs(300),
        );
        let now: Timestamp = "2026-11-24T21:00:00Z".parse().expect("ts");
        // The renewal as a merge patch on the Lease enrollment made.
        let renewed = served(&lease, agent.renewal(now));
        assert_eq!(crate::contract::check_in(&renewed), Some(("web-1", now)));
        let spec = renewed.spec.expect("spec");
        assert_eq!(
            spec.holder_identity,
            Some(holder),
            "the holder is unchanged"
        );
        assert_eq!(spec.lease_duration_seconds, Some(900));
    }

    #[test]
    fn an_object_as_served_back_needs_no_patch() {
        let e = enrollment();
        let role = device_role(&e);
        // The API server keeps rules as sent; it adds metadata.
        let back = served(
            &role,
            json!({"metadata": {"uid": "u", "resourceVersion": "7"}}),
        );
        assert_eq!(role_patch(&back, &role), None);
        let b = catalog_binding("ringmaster-agents");
        // Defaulting fills apiGroup for groups; a ServiceAccount subject has none.
        let mut served_b = b.clone();
        if let Some(s) = served_b.subjects.as_mut().and_then(|s| s.first_mut()) {
            s.api_group = None;
        }
        let labels = b.metadata.labels.as_ref();
        assert_eq!(
            subjects_patch(
                labels,
                served_b.subjects.as_ref(),
                labels,
                b.subjects.as_ref()
            ),
            None
        );
        let rb = device_binding(&e);
        let mut served_rb = rb.clone();
        if let Some(s) = served_rb.subjects.as_mut().and_then(|s| s.first_mut()) {
            s.api_group = Some(String::new());
        }
        let labels = rb.metadata.labels.as_ref();
        assert_eq!(
            subjects_patch(
                labels,
                served_rb.subjects.as_ref(),
                labels,
                rb.subjects.as_ref()
            ),
            None
        );
        let sa = service_account(&e);
        assert_eq!(service_account_patch(&served(&sa, json!({})), &sa), None);
    }

    #[test]
    fn a_role_with_other_rules_gets_exactly_its_own() {
        let e = enrollment();
        let want = token_role(&e);
        let mut have = want.clone();
        have.rules = Some(vec![rule(
            "",
            &["serviceaccounts/token"],
            &["create"],
            None,
        )]);
        assert_eq!(
            role_patch(&have, &want),
            Some(
                json!({"rules": [{"apiGroups": [""], "resources": ["serviceaccounts/token"],
                "verbs": ["create"], "resourceNames": ["fleet.web-1"]}]})
            )
        );
    }

    #[test]
    fn a_device_is_patched_only_where_it_differs_and_never_in_its_plan() {
        let e = enrollment();
        let want = device(&e);
        let mut have = want.clone();
        // What others added: another label, an annotation, a plan, an OS version.
        have.metadata
            .labels
            .as_mut()
            .expect("labels")
            .insert("tier".into(), "1".into());
        have.metadata
            .annotations
            .as_mut()
            .expect("annotations")
            .insert("note".into(), "x".into());
        have.spec.os.as_mut().expect("os").version = Some("12".into());
        have.spec.plan.install.insert(
            "KB1".into(),
            crate::api::PlanEntry {
                rollout: "r".into(),
                not_before: Timestamp::UNIX_EPOCH,
                not_after: None,
                deadline: None,
                attempt: None,
                basis: None,
                answer_by: None,
            },
        );
        assert_eq!(device_patch(&have, &want), None);

        // Another ring, another agent, another host name and OS family.
        have.metadata
            .labels
            .as_mut()
            .expect("labels")
            .insert("ring".into(), "broad".into());
        have.metadata
            .annotations
            .as_mut()
            .expect("annotations")
            .insert(AGENT_ANNOTATION.into(), "someone".into());
        have.spec.hostname = Some("old".into());
        have.spec.os.as_mut().expect("os").family = "windows".into();
        assert_eq!(
            device_patch(&have, &want),
            Some(json!({
                "metadata": {
                    "labels": {"ring": "canary"},
                    "annotations": {AGENT_ANNOTATION: "system:serviceaccount:ringmaster-agents:fleet.web-1"}
                },
                "spec": {"hostname": "web-1", "os": {"family": "linux"}}
            }))
        );
    }

    #[test]
    fn the_agent_annotation_names_the_service_account() {
        let d = device(&enrollment());
        assert_eq!(
            d.metadata.annotations.expect("annotations")[AGENT_ANNOTATION],
            "system:serviceaccount:ringmaster-agents:fleet.web-1"
        );
        assert!(d.spec.plan.install.is_empty() && d.spec.plan.uninstall.is_empty());
    }
}
