//! The chart's ValidatingAdmissionPolicies allow and refuse what they should, evaluated
//! offline with the CEL interpreter kube ships (`kube::core::cel`, the `cel` crate plus
//! Kubernetes' CEL libraries).
//!
//! Their CEL lives in `charts/ringmaster/files/admission/*.yaml`, which the template
//! `templates/admission-policies.yaml` takes as it is, after a few variables it defines
//! from values; here those variables get the defaults from `values.yaml`. Like the API
//! server, the evaluation binds `object`, `oldObject` (null on CREATE), `request` and
//! `variables`. An expression that fails to evaluate fails the test: on a cluster it
//! would refuse the request (failurePolicy Fail) with an unhelpful message.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use kube::core::cel::KubeCelExt;
use kube::core::cel::cel::objects::{Key, Map};
use kube::core::cel::cel::{Context, Program, Value};
use serde::Deserialize;
use serde_json::{Value as Json, json};

fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/ringmaster")
}

#[derive(Deserialize)]
struct Variable {
    name: String,
    expression: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Validation {
    expression: String,
    message: Option<String>,
    message_expression: Option<String>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyFile {
    /// Rendered as they are; a request they do not all match is not evaluated.
    #[serde(default)]
    match_conditions: Vec<Variable>,
    variables: Vec<Variable>,
    validations: Vec<Validation>,
}

/// One policy as the template renders it: the variables from values first, then the file.
struct Policy {
    /// The names of the variables the template defines from values.
    from_values: Vec<String>,
    match_conditions: Vec<Variable>,
    variables: Vec<Variable>,
    validations: Vec<Validation>,
}

fn values() -> serde_yaml::Value {
    let text = std::fs::read_to_string(chart().join("values.yaml")).expect("read values.yaml");
    serde_yaml::from_str(&text).expect("values.yaml parses")
}

fn default_value(key: &str) -> String {
    values()["admissionPolicies"][key]
        .as_str()
        .unwrap_or_else(|| panic!("admissionPolicies.{key} is a string in values.yaml"))
        .to_string()
}

/// A string as a CEL literal, the way the template writes it (`toJson`).
fn cel_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

const OPERATOR: &str = "system:serviceaccount:ringmaster-system:ringmaster";

fn load(name: &str, from_values: &[(&str, String)]) -> Policy {
    let path = chart().join(format!("files/admission/{name}.yaml"));
    let text = std::fs::read_to_string(&path).expect("read policy file");
    let file: PolicyFile = serde_yaml::from_str(&text).expect("policy file parses");
    let mut variables: Vec<Variable> = from_values
        .iter()
        .map(|(n, v)| Variable {
            name: n.to_string(),
            expression: v.clone(),
        })
        .collect();
    variables.extend(file.variables);
    Policy {
        from_values: from_values.iter().map(|(n, _)| n.to_string()).collect(),
        match_conditions: file.match_conditions,
        variables,
        validations: file.validations,
    }
}

/// The device-agent policy with node mode off (the default: no node agent user name).
fn device_policy() -> Policy {
    device_policy_for_nodes("")
}

/// The device-agent policy with the node agent's user name (empty: node mode off).
fn device_policy_for_nodes(node_agent: &str) -> Policy {
    load(
        "device-agent",
        &[
            (
                "agentUsernamePrefix",
                cel_string(&default_value("agentUsernamePrefix")),
            ),
            ("agentGroup", cel_string(&default_value("agentGroup"))),
            ("operatorUsername", cel_string(OPERATOR)),
            ("nodeAgentUsername", cel_string(node_agent)),
        ],
    )
}

/// The node-agent policy (rendered with node mode only).
fn node_policy() -> Policy {
    load(
        "node-agent",
        &[("nodeAgentUsername", cel_string(NODE_AGENT))],
    )
}

fn exception_policy() -> Policy {
    load(
        "exception-approval",
        &[(
            "exceptionApproverGroup",
            cel_string(&default_value("exceptionApproverGroup")),
        )],
    )
}

struct User {
    name: String,
    groups: Vec<String>,
    /// `userInfo.extra`; absent from the request when empty.
    extra: Vec<(String, Vec<String>)>,
}

fn user(name: &str, groups: &[&str]) -> User {
    let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    groups.push("system:authenticated".into());
    User {
        name: name.into(),
        groups,
        extra: Vec::new(),
    }
}

fn to_cel(value: &Json) -> Value {
    kube::core::cel::cel::to_value(value).expect("JSON converts to CEL")
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    let map: HashMap<Key, Value> = entries
        .into_iter()
        .map(|(k, v)| (Key::String(Arc::new(k.to_string())), v))
        .collect();
    Value::Map(Map { map: Arc::new(map) })
}

fn eval(program: &str, ctx: &Context) -> Result<Value, String> {
    let compiled = Program::compile(program).map_err(|e| format!("does not compile: {e}"))?;
    compiled
        .execute(ctx)
        .map_err(|e| format!("evaluation error: {e}"))
}

/// Runs `policy` on one request; Ok when admitted, Err with the messages of every
/// validation that refused it. Panics when an expression errors or is not a boolean.
fn admit(
    policy: &Policy,
    operation: &str,
    who: &User,
    object: &Json,
    old_object: Option<&Json>,
) -> Result<(), Vec<String>> {
    let strings = |items: &[String]| {
        Value::List(Arc::new(
            items
                .iter()
                .map(|g| Value::String(Arc::new(g.clone())))
                .collect(),
        ))
    };
    let mut user_info = vec![
        ("username", Value::String(Arc::new(who.name.clone()))),
        ("uid", Value::String(Arc::new("uid".into()))),
        ("groups", strings(&who.groups)),
    ];
    if !who.extra.is_empty() {
        let extra: HashMap<Key, Value> = who
            .extra
            .iter()
            .map(|(k, v)| (Key::String(Arc::new(k.clone())), strings(v)))
            .collect();
        user_info.push((
            "extra",
            Value::Map(Map {
                map: Arc::new(extra),
            }),
        ));
    }
    let request = map(vec![
        ("operation", Value::String(Arc::new(operation.into()))),
        ("userInfo", map(user_info)),
    ]);
    let mut ctx = Context::default();
    ctx.register_all();
    ctx.add_variable_from_value("object", to_cel(object));
    ctx.add_variable_from_value("oldObject", old_object.map(to_cel).unwrap_or(Value::Null));
    ctx.add_variable_from_value("request", request);

    // A request the match conditions do not all match is not the policy's.
    for c in &policy.match_conditions {
        match eval(&c.expression, &ctx) {
            Ok(Value::Bool(true)) => {}
            Ok(Value::Bool(false)) => return Ok(()),
            other => panic!("match condition {}: {other:?}", c.name),
        }
    }

    // Variables in order, each seeing the ones before it (as on the API server, where
    // they are evaluated lazily; none of these may fail).
    let mut bound: HashMap<Key, Value> = HashMap::new();
    for var in &policy.variables {
        ctx.add_variable_from_value(
            "variables",
            Value::Map(Map {
                map: Arc::new(bound.clone()),
            }),
        );
        let value = eval(&var.expression, &ctx)
            .unwrap_or_else(|e| panic!("variable {}: {e}\n  {}", var.name, var.expression));
        bound.insert(Key::String(Arc::new(var.name.clone())), value);
    }
    ctx.add_variable_from_value(
        "variables",
        Value::Map(Map {
            map: Arc::new(bound),
        }),
    );

    let mut refused = Vec::new();
    for v in &policy.validations {
        match eval(&v.expression, &ctx) {
            Ok(Value::Bool(true)) => {}
            Ok(Value::Bool(false)) => {
                let message = match (&v.message_expression, &v.message) {
                    (Some(expr), _) => match eval(expr, &ctx) {
                        Ok(Value::String(s)) => s.to_string(),
                        other => panic!("messageExpression {expr}: {other:?}"),
                    },
                    (None, Some(m)) => m.clone(),
                    (None, None) => panic!("validation without a message: {}", v.expression),
                };
                refused.push(message);
            }
            other => panic!("validation {}: {other:?}", v.expression),
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(refused)
    }
}

fn assert_admitted(result: Result<(), Vec<String>>, what: &str) {
    if let Err(messages) = result {
        panic!("{what}: refused: {messages:?}");
    }
}

fn assert_refused(result: Result<(), Vec<String>>, what: &str, expect: &str) {
    match result {
        Ok(()) => panic!("{what}: admitted"),
        Err(messages) => assert!(
            messages.iter().any(|m| m.contains(expect)),
            "{what}: refused, but no message contains {expect:?}: {messages:?}"
        ),
    }
}

// ---- the device-agent policy ----

const AGENT: &str = "system:serviceaccount:ringmaster-agents:laptop-17";
const OTHER_AGENT: &str = "system:serviceaccount:ringmaster-agents:laptop-18";

fn agent(name: &str) -> User {
    user(
        name,
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:ringmaster-agents",
        ],
    )
}

fn device(agent: Option<&str>, plan_install: Json) -> Json {
    let mut annotations = json!({"note": "lab bench 3"});
    if let Some(a) = agent {
        annotations["ringmaster.dev/agent"] = json!(a);
    }
    json!({
        "apiVersion": "patching.ringmaster.dev/v1alpha1",
        "kind": "ManagedDevice",
        "metadata": {
            "name": "laptop-17",
            "namespace": "fleet",
            "labels": {"ringmaster.dev/tier": "workstation"},
            "annotations": annotations
        },
        "spec": {
            "hostname": "laptop-17.corp",
            "os": {"family": "windows", "version": "11 24H2"},
            "plan": {"install": plan_install, "uninstall": {}}
        },
        "status": {
            "lastSeen": "2026-11-01T10:00:00Z",
            "rebootPending": false,
            "compliance": {"policy": "workstations", "ring": "pilot", "overdue": 2, "dueSoon": 0, "planned": 1}
        }
    })
}

fn planned() -> Json {
    json!({"KB5036893": {"rollout": "kb5036893-workstations", "notBefore": "2026-11-02T01:00:00Z"}})
}

#[test]
fn an_agent_reports_status_on_its_own_device() {
    let p = device_policy();
    let old = device(Some(AGENT), planned());
    let mut new = old.clone();
    new["status"]["lastSeen"] = json!("2026-11-01T11:00:00Z");
    new["status"]["patches"] = json!([{"id": "KB5036893", "state": "Installed", "attempts": 1}]);
    assert_admitted(
        admit(&p, "UPDATE", &agent(AGENT), &new, Some(&old)),
        "status update by the device's agent",
    );
}

#[test]
fn an_agent_cannot_write_another_agents_device_or_an_unclaimed_one() {
    let p = device_policy();
    for owner in [Some(OTHER_AGENT), None] {
        let old = device(owner, planned());
        let mut new = old.clone();
        new["status"]["lastSeen"] = json!("2026-11-01T11:00:00Z");
        assert_refused(
            admit(&p, "UPDATE", &agent(AGENT), &new, Some(&old)),
            &format!("status update of a device claimed by {owner:?}"),
            "may only write ManagedDevices annotated ringmaster.dev/agent: system:serviceaccount:ringmaster-agents:laptop-17",
        );
    }
}

#[test]
fn an_agent_cannot_claim_a_device_by_rewriting_its_annotation() {
    let p = device_policy();
    for owner in [Some(OTHER_AGENT), None] {
        let old = device(owner, planned());
        let new = device(Some(AGENT), planned());
        assert_refused(
            admit(&p, "UPDATE", &agent(AGENT), &new, Some(&old)),
            &format!("taking over a device claimed by {owner:?}"),
            "does not belong to the agent",
        );
    }
}

#[test]
fn an_agent_cannot_change_the_plan_or_any_other_spec() {
    let p = device_policy();
    let old = device(Some(AGENT), planned());
    let mut cleared = old.clone();
    cleared["spec"]["plan"]["install"] = json!({});
    assert_refused(
        admit(&p, "UPDATE", &agent(AGENT), &cleared, Some(&old)),
        "clearing its plan",
        "may not change a ManagedDevice's spec",
    );
    let mut later = old.clone();
    later["spec"]["plan"]["install"]["KB5036893"]["notBefore"] = json!("2027-01-01T00:00:00Z");
    assert_refused(
        admit(&p, "UPDATE", &agent(AGENT), &later, Some(&old)),
        "postponing a plan entry",
        "may not change a ManagedDevice's spec",
    );
    let mut renamed = old.clone();
    renamed["spec"]["hostname"] = json!("laptop-17b.corp");
    assert_refused(
        admit(&p, "UPDATE", &agent(AGENT), &renamed, Some(&old)),
        "changing its host name",
        "may not change a ManagedDevice's spec",
    );
}

#[test]
fn an_agent_cannot_relabel_or_reannotate_its_device() {
    let p = device_policy();
    let old = device(Some(AGENT), planned());
    let mut tier = old.clone();
    tier["metadata"]["labels"]["ringmaster.dev/tier"] = json!("lab");
    assert_refused(
        admit(&p, "UPDATE", &agent(AGENT), &tier, Some(&old)),
        "moving itself to another tier",
        "labels or annotations",
    );
    let mut unlabelled = old.clone();
    unlabelled["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("labels");
    assert_refused(
        admit(&p, "UPDATE", &agent(AGENT), &unlabelled, Some(&old)),
        "dropping its labels",
        "labels or annotations",
    );
    let mut note = old.clone();
    note["metadata"]["annotations"]["note"] = json!("moved");
    assert_refused(
        admit(&p, "UPDATE", &agent(AGENT), &note, Some(&old)),
        "changing an annotation",
        "labels or annotations",
    );
}

#[test]
fn an_agent_cannot_forge_the_operators_compliance_summary() {
    let p = device_policy();
    let old = device(Some(AGENT), planned());
    let mut clean = old.clone();
    clean["status"]["compliance"]["overdue"] = json!(0);
    assert_refused(
        admit(&p, "UPDATE", &agent(AGENT), &clean, Some(&old)),
        "zeroing its overdue count",
        "status.compliance",
    );
    let mut dropped = old.clone();
    dropped["status"]
        .as_object_mut()
        .expect("status")
        .remove("compliance");
    assert_refused(
        admit(&p, "UPDATE", &agent(AGENT), &dropped, Some(&old)),
        "dropping its compliance",
        "status.compliance",
    );
    // The operator writes it.
    let operator = user(
        OPERATOR,
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:ringmaster-system",
        ],
    );
    assert_admitted(
        admit(&p, "UPDATE", &operator, &clean, Some(&old)),
        "the operator updating compliance",
    );
}

#[test]
fn an_agent_registers_its_device_with_its_annotation_and_no_plan() {
    let p = device_policy();
    // The API server applies the CRD's defaults (plan: {install: {}, uninstall: {}})
    // before admission; without them the plan is absent.
    let defaulted = device(Some(AGENT), json!({}));
    assert_admitted(
        admit(&p, "CREATE", &agent(AGENT), &defaulted, None),
        "registering a device with an empty plan",
    );
    let mut bare = defaulted.clone();
    bare["spec"].as_object_mut().expect("spec").remove("plan");
    assert_admitted(
        admit(&p, "CREATE", &agent(AGENT), &bare, None),
        "registering a device with no plan",
    );
    assert_refused(
        admit(
            &p,
            "CREATE",
            &agent(AGENT),
            &device(Some(AGENT), planned()),
            None,
        ),
        "registering a device with a plan",
        "only with an empty plan",
    );
    let mut uninstall = defaulted.clone();
    uninstall["spec"]["plan"]["uninstall"] = planned();
    assert_refused(
        admit(&p, "CREATE", &agent(AGENT), &uninstall, None),
        "registering a device with an uninstall plan",
        "only with an empty plan",
    );
    for owner in [Some(OTHER_AGENT), None] {
        assert_refused(
            admit(&p, "CREATE", &agent(AGENT), &device(owner, json!({})), None),
            &format!("registering a device for {owner:?}"),
            "may only write ManagedDevices annotated",
        );
    }
}

#[test]
fn the_operator_and_people_are_not_agents() {
    let p = device_policy();
    let old = device(Some(AGENT), json!({}));
    let mut plan = old.clone();
    plan["spec"]["plan"]["install"] = planned();
    plan["metadata"]["labels"]["ringmaster.dev/tier"] = json!("lab");
    let not_agents = [
        // The operator, even when (misconfigured) it is in the agent group.
        user(
            OPERATOR,
            &[
                "system:serviceaccounts",
                "system:serviceaccounts:ringmaster-system",
                "system:serviceaccounts:ringmaster-agents",
            ],
        ),
        // A ServiceAccount of another namespace.
        user(
            "system:serviceaccount:ci:deployer",
            &["system:serviceaccounts", "system:serviceaccounts:ci"],
        ),
        // In the agent group but without the agent prefix.
        user("laptop-17", &["system:serviceaccounts:ringmaster-agents"]),
        // A person.
        user("alice@example.com", &["platform-team"]),
    ];
    for who in &not_agents {
        assert_admitted(
            admit(&p, "UPDATE", who, &plan, Some(&old)),
            &format!("{} writing a plan and a label", who.name),
        );
        assert_admitted(
            admit(&p, "CREATE", who, &device(None, planned()), None),
            &format!("{} creating an unclaimed device with a plan", who.name),
        );
    }
}

// ---- the device-lease policy: agents' check-in Leases ----

/// The device-lease policy (node mode off unless `node_agent` is given).
fn lease_policy(node_agent: &str) -> Policy {
    load(
        "device-lease",
        &[
            (
                "agentUsernamePrefix",
                cel_string(&default_value("agentUsernamePrefix")),
            ),
            ("agentGroup", cel_string(&default_value("agentGroup"))),
            ("operatorUsername", cel_string(OPERATOR)),
            ("nodeAgentUsername", cel_string(node_agent)),
        ],
    )
}

/// Device `name`'s check-in Lease, held by `holder`, labelled for `labelled`.
fn check_in(name: &str, labelled: Option<&str>, holder: &str, renewed: &str) -> Json {
    let mut l = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "fleet"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 900, "renewTime": renewed},
    });
    if let Some(d) = labelled {
        l["metadata"]["labels"] = json!({"ringmaster.dev/device": d});
    }
    l
}

#[test]
fn an_agent_creates_and_renews_the_check_in_it_holds() {
    let p = lease_policy("");
    let me = agent(AGENT);
    let first = check_in(
        "laptop-17",
        Some("laptop-17"),
        AGENT,
        "2026-11-01T10:00:00.000000Z",
    );
    assert_admitted(
        admit(&p, "CREATE", &me, &first, None),
        "creating its check-in",
    );
    let renewed = check_in(
        "laptop-17",
        Some("laptop-17"),
        AGENT,
        "2026-11-01T10:05:00.000000Z",
    );
    assert_admitted(
        admit(&p, "UPDATE", &me, &renewed, Some(&first)),
        "renewing its check-in",
    );
}

#[test]
fn an_agent_renews_the_check_in_enroll_created_for_it() {
    let p = lease_policy("");
    // What `ringmaster enroll` creates (as an administrator, no agent): held in the
    // agent's name, never renewed.
    let enrolled = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "laptop-17", "namespace": "fleet",
                     "labels": {"ringmaster.dev/device": "laptop-17",
                                "app.kubernetes.io/managed-by": "ringmaster-enroll",
                                "ringmaster.dev/enrolled-agent": "fleet.laptop-17"}},
        "spec": {"holderIdentity": AGENT},
    });
    let admin = user("alice@example.com", &["system:masters"]);
    assert_admitted(
        admit(&p, "CREATE", &admin, &enrolled, None),
        "enroll creating the check-in",
    );
    // The agent's first renewal, a merge patch of it.
    let mut renewed = enrolled.clone();
    renewed["spec"] = json!({"holderIdentity": AGENT, "leaseDurationSeconds": 900,
                             "renewTime": "2026-11-01T10:00:00.000000Z"});
    assert_admitted(
        admit(&p, "UPDATE", &agent(AGENT), &renewed, Some(&enrolled)),
        "the agent's first renewal",
    );
    // Held by nobody, the Lease could not be renewed: why enroll names the holder.
    let mut unheld = enrolled.clone();
    unheld["spec"] = json!({});
    assert_refused(
        admit(&p, "UPDATE", &agent(AGENT), &renewed, Some(&unheld)),
        "renewing a check-in nobody held",
        "held by another agent",
    );
}

#[test]
fn an_agent_may_not_write_another_agents_check_in_or_a_lease_that_is_none() {
    let p = lease_policy("");
    let me = agent(AGENT);
    let theirs = check_in(
        "laptop-18",
        Some("laptop-18"),
        OTHER_AGENT,
        "2026-11-01T10:00:00.000000Z",
    );
    let taken = check_in(
        "laptop-18",
        Some("laptop-18"),
        AGENT,
        "2026-11-01T10:05:00.000000Z",
    );
    assert_refused(
        admit(&p, "UPDATE", &me, &taken, Some(&theirs)),
        "taking over another agent's check-in",
        "held by another agent",
    );
    let as_other = check_in(
        "laptop-18",
        Some("laptop-18"),
        OTHER_AGENT,
        "2026-11-01T10:05:00.000000Z",
    );
    assert_refused(
        admit(&p, "CREATE", &me, &as_other, None),
        "a check-in held in another agent's name",
        "only write check-in Leases it holds",
    );
    // Unlabelled, a Lease is no check-in: the policy (its match conditions) leaves it
    // alone, and the operator does not read it. Dropping the label of a check-in is not.
    let unlabelled = check_in("laptop-17", None, AGENT, "2026-11-01T10:00:00.000000Z");
    assert_admitted(
        admit(&p, "CREATE", &me, &unlabelled, None),
        "a Lease that is no check-in",
    );
    let checked_in = check_in(
        "laptop-17",
        Some("laptop-17"),
        AGENT,
        "2026-11-01T10:00:00.000000Z",
    );
    assert_refused(
        admit(&p, "UPDATE", &me, &unlabelled, Some(&checked_in)),
        "a check-in's label dropped",
        "only write check-in Leases",
    );
    let mislabelled = check_in(
        "laptop-17",
        Some("laptop-18"),
        AGENT,
        "2026-11-01T10:00:00.000000Z",
    );
    assert_refused(
        admit(&p, "CREATE", &me, &mislabelled, None),
        "a Lease labelled for another device",
        "only write check-in Leases",
    );
}

#[test]
fn people_and_the_operator_write_leases_untouched_by_the_lease_policy() {
    let p = lease_policy("");
    let leader = check_in(
        "ringmaster-leader",
        None,
        "ringmaster-0",
        "2026-11-01T10:00:00.000000Z",
    );
    let op = user(
        OPERATOR,
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:ringmaster-system",
        ],
    );
    assert_admitted(admit(&p, "CREATE", &op, &leader, None), "the leader Lease");
    let alice = user("alice@example.com", &["platform-team"]);
    let theirs = check_in(
        "laptop-18",
        Some("laptop-18"),
        OTHER_AGENT,
        "2026-11-01T10:00:00.000000Z",
    );
    assert_admitted(admit(&p, "CREATE", &alice, &theirs, None), "a person");
}

#[test]
fn a_node_agent_renews_only_its_nodes_check_in() {
    let p = lease_policy(NODE_AGENT);
    let me = node_agent(Some("worker-1"));
    let mine = check_in(
        "worker-1",
        Some("worker-1"),
        NODE_AGENT,
        "2026-11-01T10:00:00.000000Z",
    );
    assert_admitted(admit(&p, "CREATE", &me, &mine, None), "its node's check-in");
    let theirs = check_in(
        "worker-2",
        Some("worker-2"),
        NODE_AGENT,
        "2026-11-01T10:00:00.000000Z",
    );
    assert_refused(
        admit(&p, "CREATE", &me, &theirs, None),
        "another node's check-in",
        "named like its node, worker-1",
    );
}

// ---- node agents (agent.nodeMode): one ServiceAccount, told apart by their nodes ----

const NODE_AGENT: &str = "system:serviceaccount:ringmaster-system:ringmaster-node-agent";
const NODE_NAME_KEY: &str = "authentication.kubernetes.io/node-name";

/// The node agent as its bound token on `node` authenticates it (None: a token that
/// names no node, as before Kubernetes 1.30 or one not bound to a pod).
fn node_agent(node: Option<&str>) -> User {
    let mut u = user(
        NODE_AGENT,
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:ringmaster-system",
        ],
    );
    u.extra.push((
        "authentication.kubernetes.io/pod-name".into(),
        vec!["ringmaster-node-agent-x7k2p".into()],
    ));
    if let Some(n) = node {
        u.extra.push((NODE_NAME_KEY.into(), vec![n.into()]));
    }
    u
}

/// The ManagedDevice of a node: named like it, claimed by the node agent.
fn node_device(node: &str) -> Json {
    let mut d = device(Some(NODE_AGENT), json!({}));
    d["metadata"]["name"] = json!(node);
    d["spec"]["hostname"] = json!(node);
    d
}

#[test]
fn a_node_agent_registers_and_reports_the_device_named_like_its_node() {
    let p = device_policy_for_nodes(NODE_AGENT);
    let me = node_agent(Some("worker-1"));
    let new = node_device("worker-1");
    assert_admitted(
        admit(&p, "CREATE", &me, &new, None),
        "registering its node's device",
    );
    let mut report = new.clone();
    report["status"]["lastSeen"] = json!("2026-11-01T11:00:00Z");
    report["status"]["rebootPending"] = json!(true);
    assert_admitted(
        admit(&p, "UPDATE", &me, &report, Some(&new)),
        "reporting on its node's device",
    );
}

#[test]
fn a_node_agent_cannot_write_another_nodes_device() {
    let p = device_policy_for_nodes(NODE_AGENT);
    let me = node_agent(Some("worker-1"));
    let theirs = node_device("worker-2");
    assert_refused(
        admit(&p, "CREATE", &me, &theirs, None),
        "registering another node's device",
        "only write the ManagedDevice named like its node, worker-1",
    );
    let mut report = theirs.clone();
    report["status"]["lastSeen"] = json!("2026-11-01T11:00:00Z");
    assert_refused(
        admit(&p, "UPDATE", &me, &report, Some(&theirs)),
        "reporting for another node",
        "only write the ManagedDevice named like its node, worker-1",
    );
}

#[test]
fn a_node_agent_without_a_node_bound_token_is_refused() {
    let p = device_policy_for_nodes(NODE_AGENT);
    let device = node_device("worker-1");
    assert_refused(
        admit(&p, "CREATE", &node_agent(None), &device, None),
        "a token that names no node",
        "a token bound to its pod, which names its node",
    );
    let mut two = node_agent(None);
    two.extra.push((
        NODE_NAME_KEY.into(),
        vec!["worker-1".into(), "worker-2".into()],
    ));
    assert_refused(
        admit(&p, "CREATE", &two, &device, None),
        "a token that names two nodes",
        "a token bound to its pod, which names its node",
    );
}

#[test]
fn a_node_agent_keeps_every_rule_of_an_agent() {
    let p = device_policy_for_nodes(NODE_AGENT);
    let me = node_agent(Some("worker-1"));
    let old = node_device("worker-1");
    let mut plan = old.clone();
    plan["spec"]["plan"]["install"] = planned();
    assert_refused(
        admit(&p, "UPDATE", &me, &plan, Some(&old)),
        "writing its own plan",
        "may not change a ManagedDevice's spec",
    );
    let mut relabelled = old.clone();
    relabelled["metadata"]["labels"]["ringmaster.dev/tier"] = json!("lab");
    assert_refused(
        admit(&p, "UPDATE", &me, &relabelled, Some(&old)),
        "relabelling its device",
        "labels or annotations",
    );
    let mut unclaimed = old.clone();
    unclaimed["metadata"]["annotations"]["ringmaster.dev/agent"] = json!(AGENT);
    assert_refused(
        admit(&p, "CREATE", &me, &unclaimed, None),
        "registering its node's device for another agent",
        "may only write ManagedDevices annotated ringmaster.dev/agent: system:serviceaccount:ringmaster-system:ringmaster-node-agent",
    );
}

#[test]
fn the_node_rule_binds_only_the_node_agent() {
    // Node mode on: another agent whose token names a node is held to its annotation,
    // not to a node's name.
    let p = device_policy_for_nodes(NODE_AGENT);
    let mut laptop = agent(AGENT);
    laptop
        .extra
        .push((NODE_NAME_KEY.into(), vec!["worker-3".into()]));
    let old = device(Some(AGENT), planned());
    let mut new = old.clone();
    new["status"]["lastSeen"] = json!("2026-11-01T11:00:00Z");
    assert_admitted(
        admit(&p, "UPDATE", &laptop, &new, Some(&old)),
        "an ordinary agent on a pod of a node",
    );
    // Node mode off: no user is the node agent, so an empty name matches nobody.
    let off = device_policy();
    let nameless = user("", &["system:serviceaccounts:ringmaster-system"]);
    assert_admitted(
        admit(&off, "UPDATE", &nameless, &new, Some(&old)),
        "an empty user name is not the node agent",
    );
}

fn node(name: &str, unschedulable: bool, cordoned_by: Option<&str>) -> Json {
    let mut annotations = json!({"node.alpha.kubernetes.io/ttl": "0"});
    if let Some(a) = cordoned_by {
        annotations["ringmaster.dev/cordoned-by"] = json!(a);
    }
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": annotations,
            "labels": {"kubernetes.io/hostname": name, "node-role.kubernetes.io/worker": ""}},
        "spec": {"podCIDR": "10.244.1.0/24", "unschedulable": unschedulable,
            "taints": [{"key": "gpu", "value": "true", "effect": "NoSchedule"}]}
    })
}

#[test]
fn a_node_agent_cordons_and_uncordons_its_own_node() {
    let p = node_policy();
    let me = node_agent(Some("worker-1"));
    let open = node("worker-1", false, None);
    let cordoned = node("worker-1", true, Some("ringmaster-node-agent"));
    assert_admitted(
        admit(&p, "UPDATE", &me, &cordoned, Some(&open)),
        "cordoning its node with its annotation",
    );
    assert_admitted(
        admit(&p, "UPDATE", &me, &open, Some(&cordoned)),
        "uncordoning its node and removing its annotation",
    );
}

#[test]
fn a_node_agent_cannot_touch_another_node() {
    let p = node_policy();
    let me = node_agent(Some("worker-1"));
    assert_refused(
        admit(
            &p,
            "UPDATE",
            &me,
            &node("worker-2", true, Some("ringmaster-node-agent")),
            Some(&node("worker-2", false, None)),
        ),
        "cordoning another node",
        "only change its own node, worker-1",
    );
    assert_refused(
        admit(
            &p,
            "UPDATE",
            &node_agent(None),
            &node("worker-1", true, Some("ringmaster-node-agent")),
            Some(&node("worker-1", false, None)),
        ),
        "a token that names no node",
        "a token bound to its pod, which names its node",
    );
}

#[test]
fn a_node_agent_changes_nothing_else_on_its_node() {
    let p = node_policy();
    let me = node_agent(Some("worker-1"));
    let old = node("worker-1", false, None);
    let mut label = old.clone();
    label["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] = json!("");
    assert_refused(
        admit(&p, "UPDATE", &me, &label, Some(&old)),
        "adding a label",
        "labels or taints",
    );
    let mut untainted = old.clone();
    untainted["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("taints");
    assert_refused(
        admit(&p, "UPDATE", &me, &untainted, Some(&old)),
        "removing a taint",
        "labels or taints",
    );
    let mut annotated = old.clone();
    annotated["metadata"]["annotations"]["example.com/owner"] = json!("me");
    assert_refused(
        admit(&p, "UPDATE", &me, &annotated, Some(&old)),
        "adding another annotation",
        "no annotation of its node but ringmaster.dev/cordoned-by",
    );
    let mut stripped = old.clone();
    stripped["metadata"]["annotations"] = json!({});
    assert_refused(
        admit(&p, "UPDATE", &me, &stripped, Some(&old)),
        "removing another annotation",
        "no annotation of its node but ringmaster.dev/cordoned-by",
    );
    let mut changed = old.clone();
    changed["metadata"]["annotations"]["node.alpha.kubernetes.io/ttl"] = json!("30");
    assert_refused(
        admit(&p, "UPDATE", &me, &changed, Some(&old)),
        "changing another annotation",
        "no annotation of its node but ringmaster.dev/cordoned-by",
    );
}

#[test]
fn the_node_policy_leaves_everyone_else_alone() {
    let p = node_policy();
    let old = node("worker-2", false, None);
    let mut new = node("worker-2", true, None);
    new["metadata"]["labels"]["example.com/pool"] = json!("b");
    for who in [
        user("system:node:worker-2", &["system:nodes"]),
        user("alice@example.com", &["platform-team"]),
        agent(AGENT),
    ] {
        assert_admitted(
            admit(&p, "UPDATE", &who, &new, Some(&old)),
            &format!("{} changing a node", who.name),
        );
    }
}

// ---- the exception-approval policy ----

const APPROVERS: &str = "ringmaster:exception-approvers";

fn exception(created_by: Option<&str>, approved_by: Option<&str>) -> Json {
    let mut annotations = json!({"team": "payments"});
    if let Some(c) = created_by {
        annotations["ringmaster.dev/created-by"] = json!(c);
    }
    let mut e = json!({
        "apiVersion": "patching.ringmaster.dev/v1alpha1",
        "kind": "PatchException",
        "metadata": {"name": "pos-terminals", "namespace": "fleet", "annotations": annotations},
        "spec": {
            "patches": ["KB5036893"],
            "devices": {"names": ["pos-1", "pos-2"]},
            "reason": "The vendor has not certified the update for the POS software.",
            "owner": "payments-team",
            "expiresAt": "2026-12-01T00:00:00Z",
            "onExpiry": "Enforce"
        }
    });
    if let Some(a) = approved_by {
        e["spec"]["approvedBy"] = json!(a);
    }
    e
}

fn alice() -> User {
    user("alice@example.com", &["payments-team"])
}
fn bob() -> User {
    user("bob@example.com", &["security", APPROVERS])
}
fn carol() -> User {
    user("carol@example.com", &["security"])
}
fn approving_creator() -> User {
    user("dana@example.com", &[APPROVERS])
}

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

#[test]
fn the_creator_is_recorded_on_create() {
    let p = exception_policy();
    assert_admitted(
        admit(&p, "CREATE", &alice(), &exception(Some(ALICE), None), None),
        "creating with created-by = self",
    );
    assert_refused(
        admit(&p, "CREATE", &alice(), &exception(None, None), None),
        "creating without created-by",
        "must carry the annotation ringmaster.dev/created-by: alice@example.com",
    );
    assert_refused(
        admit(&p, "CREATE", &alice(), &exception(Some(BOB), None), None),
        "creating in someone else's name",
        "must carry the annotation ringmaster.dev/created-by: alice@example.com",
    );
}

#[test]
fn the_creator_annotation_never_changes() {
    let p = exception_policy();
    let old = exception(Some(ALICE), None);
    for (new, what) in [
        (exception(Some(BOB), None), "changing created-by"),
        (exception(None, None), "removing created-by"),
    ] {
        assert_refused(
            admit(&p, "UPDATE", &alice(), &new, Some(&old)),
            what,
            "cannot be added, changed or removed",
        );
    }
    assert_refused(
        admit(
            &p,
            "UPDATE",
            &alice(),
            &exception(Some(ALICE), None),
            Some(&exception(None, None)),
        ),
        "adding created-by to an exception that had none",
        "cannot be added, changed or removed",
    );
}

#[test]
fn an_approver_approves_someone_elses_exception_in_their_own_name() {
    let p = exception_policy();
    let old = exception(Some(ALICE), None);
    assert_admitted(
        admit(
            &p,
            "UPDATE",
            &bob(),
            &exception(Some(ALICE), Some(BOB)),
            Some(&old),
        ),
        "bob approving alice's exception",
    );
    assert_refused(
        admit(
            &p,
            "UPDATE",
            &bob(),
            &exception(Some(ALICE), Some("carol@example.com")),
            Some(&old),
        ),
        "bob approving in carol's name",
        "must name the approver making the change: bob@example.com",
    );
}

#[test]
fn only_approvers_approve() {
    let p = exception_policy();
    let old = exception(Some(ALICE), None);
    assert_refused(
        admit(
            &p,
            "UPDATE",
            &carol(),
            &exception(Some(ALICE), Some("carol@example.com")),
            Some(&old),
        ),
        "carol (no approver) approving",
        "only members of ringmaster:exception-approvers may set or change spec.approvedBy",
    );
    // Changing an approval to another name is approving too.
    let approved = exception(Some(ALICE), Some(BOB));
    assert_refused(
        admit(
            &p,
            "UPDATE",
            &carol(),
            &exception(Some(ALICE), Some("carol@example.com")),
            Some(&approved),
        ),
        "carol replacing bob's approval",
        "only members of ringmaster:exception-approvers",
    );
}

#[test]
fn nobody_approves_their_own_exception() {
    let p = exception_policy();
    let dana = "dana@example.com";
    assert_refused(
        admit(
            &p,
            "UPDATE",
            &approving_creator(),
            &exception(Some(dana), Some(dana)),
            Some(&exception(Some(dana), None)),
        ),
        "an approver approving their own exception",
        "nobody may approve a PatchException they created",
    );
    // Nor create one already approved, approver or not.
    for who in [approving_creator(), alice()] {
        let name = who.name.clone();
        assert_refused(
            admit(
                &p,
                "CREATE",
                &who,
                &exception(Some(&name), Some(&name)),
                None,
            ),
            &format!("{name} creating an approved exception"),
            "nobody may approve a PatchException they created",
        );
    }
    assert_refused(
        admit(
            &p,
            "CREATE",
            &alice(),
            &exception(Some(ALICE), Some(BOB)),
            None,
        ),
        "alice creating an exception approved in bob's name",
        "only members of ringmaster:exception-approvers",
    );
}

#[test]
fn an_approved_spec_is_frozen_until_approved_again() {
    let p = exception_policy();
    let approved = exception(Some(ALICE), Some(BOB));
    let mut longer = approved.clone();
    longer["spec"]["expiresAt"] = json!("2030-01-01T00:00:00Z");
    assert_refused(
        admit(&p, "UPDATE", &alice(), &longer, Some(&approved)),
        "extending an approved exception",
        "cannot change under its approval",
    );
    let mut wider = approved.clone();
    wider["spec"]["patches"] = json!(["KB5036893", "KB5040442"]);
    assert_refused(
        admit(&p, "UPDATE", &bob(), &wider, Some(&approved)),
        "widening an approved exception, even by its approver without re-approving",
        "cannot change under its approval",
    );
    let mut ticket = approved.clone();
    ticket["spec"]["ticket"] = json!("CHG-1234");
    assert_refused(
        admit(&p, "UPDATE", &alice(), &ticket, Some(&approved)),
        "adding a field to an approved exception",
        "cannot change under its approval",
    );
    let mut no_controls = approved.clone();
    no_controls["spec"]["compensatingControls"] = json!(["VLAN isolation"]);
    let with_controls = no_controls.clone();
    no_controls["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("compensatingControls");
    assert_refused(
        admit(&p, "UPDATE", &alice(), &no_controls, Some(&with_controls)),
        "removing a field from an approved exception",
        "cannot change under its approval",
    );
    // Withdrawing the approval along with the change: allowed, and pending again.
    let mut withdrawn = longer.clone();
    withdrawn["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("approvedBy");
    assert_admitted(
        admit(&p, "UPDATE", &alice(), &withdrawn, Some(&approved)),
        "alice withdrawing bob's approval while extending",
    );
    // Another approver approving the change in the same request.
    let mut reapproved = longer.clone();
    reapproved["spec"]["approvedBy"] = json!("erin@example.com");
    assert_admitted(
        admit(
            &p,
            "UPDATE",
            &user("erin@example.com", &[APPROVERS]),
            &reapproved,
            Some(&approved),
        ),
        "erin approving the extension",
    );
    // Metadata is not the approved spec.
    let mut labelled = approved.clone();
    labelled["metadata"]["labels"] = json!({"cost-center": "42"});
    assert_admitted(
        admit(&p, "UPDATE", &alice(), &labelled, Some(&approved)),
        "labelling an approved exception",
    );
}

#[test]
fn unapproved_exceptions_are_edited_freely_and_legacy_ones_can_be_approved() {
    let p = exception_policy();
    let old = exception(Some(ALICE), None);
    let mut edited = old.clone();
    edited["spec"]["expiresAt"] = json!("2026-12-15T00:00:00Z");
    edited["spec"]["patches"] = json!(["KB5036893", "KB5040442"]);
    assert_admitted(
        admit(&p, "UPDATE", &alice(), &edited, Some(&old)),
        "editing a pending exception",
    );
    // Created before the policy existed: no creator recorded.
    let legacy = exception(None, None);
    assert_admitted(
        admit(
            &p,
            "UPDATE",
            &bob(),
            &exception(None, Some(BOB)),
            Some(&legacy),
        ),
        "approving a legacy exception",
    );
    assert_admitted(
        admit(&p, "UPDATE", &alice(), &legacy, Some(&legacy)),
        "a no-op update of a legacy exception",
    );
}

// ---- the files and the template agree ----

/// Every `variables.NAME` an expression uses.
fn used_variables(expr: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"variables\.([A-Za-z_][A-Za-z0-9_]*)").expect("regex");
    re.captures_iter(expr).map(|c| c[1].to_string()).collect()
}

#[test]
fn every_variable_a_policy_uses_is_defined_before_use() {
    let template = std::fs::read_to_string(chart().join("templates/admission-policies.yaml"))
        .expect("read the template");
    for (policy, name) in [
        (device_policy(), "device-agent"),
        (device_policy_for_nodes(NODE_AGENT), "device-agent"),
        (exception_policy(), "exception-approval"),
        (node_policy(), "node-agent"),
        (load("lever-objects", &[]), "lever-objects"),
        (load("rollout-levers", &[]), "rollout-levers"),
    ] {
        let mut defined = BTreeSet::new();
        for var in &policy.variables {
            for used in used_variables(&var.expression) {
                assert!(
                    defined.contains(&used),
                    "{name}: variable {} uses variables.{used} before it is defined",
                    var.name
                );
            }
            assert!(
                defined.insert(var.name.clone()),
                "{name}: variable {} defined twice",
                var.name
            );
        }
        // The ones from values are the ones the template defines, by name.
        for var in &policy.from_values {
            assert!(
                template.contains(&format!("\"name\" \"{var}\"")),
                "{name}: the template does not define variable {var}"
            );
        }
        for v in &policy.validations {
            for text in [Some(&v.expression), v.message_expression.as_ref()]
                .into_iter()
                .flatten()
            {
                for used in used_variables(text) {
                    assert!(
                        defined.contains(&used),
                        "{name}: validation uses undefined variables.{used}: {text}"
                    );
                }
            }
            assert_eq!(v.reason.as_deref(), Some("Forbidden"), "{name}");
            assert!(
                v.message.is_some() || v.message_expression.is_some(),
                "{name}: every validation explains itself"
            );
        }
        assert!(
            template.contains(&format!("\"name\" \"{name}\"")),
            "the template renders files/admission/{name}.yaml"
        );
    }
}

// ---- the lever-objects policy (PatchApproval, PatchFreeze) ----

fn lever_object(kind: &str, created_by: Option<&str>) -> Json {
    let mut annotations = json!({"ticket": "CAB-1234"});
    if let Some(c) = created_by {
        annotations["ringmaster.dev/created-by"] = json!(c);
    }
    let spec = match kind {
        "PatchApproval" => json!({
            "policy": "workstations", "patch": "KB5036893", "decision": "Approve",
            "reason": "CAB approved it on 2026-11-12"
        }),
        _ => json!({
            "rings": ["ring-2-broad"], "until": "2026-12-08T00:00:00Z",
            "reason": "incident INC-42", "owner": "noc@example.com"
        }),
    };
    json!({
        "apiVersion": "patching.ringmaster.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "lever", "namespace": "fleet", "annotations": annotations},
        "spec": spec
    })
}

#[test]
fn a_lever_object_records_its_creator_in_the_api_servers_words() {
    let p = load("lever-objects", &[]);
    for kind in ["PatchApproval", "PatchFreeze"] {
        assert_admitted(
            admit(
                &p,
                "CREATE",
                &alice(),
                &lever_object(kind, Some(ALICE)),
                None,
            ),
            kind,
        );
        for (forged, what) in [(None, "without created-by"), (Some(BOB), "in bob's name")] {
            assert_refused(
                admit(&p, "CREATE", &alice(), &lever_object(kind, forged), None),
                &format!("creating a {kind} {what}"),
                &format!(
                    "a new {kind} must carry the annotation ringmaster.dev/created-by: {ALICE}"
                ),
            );
        }
        let old = lever_object(kind, Some(ALICE));
        assert_refused(
            admit(
                &p,
                "UPDATE",
                &bob(),
                &lever_object(kind, Some(BOB)),
                Some(&old),
            ),
            &format!("rewriting a {kind}'s creator"),
            "cannot be added, changed or removed",
        );
        // A label or another annotation changes freely (the spec cannot: CEL in the CRD).
        let mut relabelled = old.clone();
        relabelled["metadata"]["labels"] = json!({"team": "payments"});
        assert_admitted(
            admit(&p, "UPDATE", &bob(), &relabelled, Some(&old)),
            "relabelling",
        );
    }
}

// ---- the rollout-levers policy (PatchRollout spec) ----

fn rollout(lever_by: Option<&str>, paused: bool, promote: &[&str]) -> Json {
    let mut metadata = json!({"name": "workstations-kb5036893", "namespace": "fleet"});
    if let Some(by) = lever_by {
        metadata["annotations"] = json!({"ringmaster.dev/lever-by": by});
    }
    json!({
        "apiVersion": "patching.ringmaster.dev/v1alpha1",
        "kind": "PatchRollout",
        "metadata": metadata,
        "spec": {"policy": "workstations", "patch": "KB5036893", "paused": paused,
                 "promote": promote, "abort": false}
    })
}

#[test]
fn pulling_a_rollouts_lever_names_the_caller() {
    let p = load("rollout-levers", &[]);
    let operator = user(OPERATOR, &["system:serviceaccounts"]);
    assert_admitted(
        admit(&p, "CREATE", &operator, &rollout(None, false, &[]), None),
        "the operator creates a rollout",
    );
    let old = rollout(None, false, &[]);
    assert_admitted(
        admit(
            &p,
            "UPDATE",
            &alice(),
            &rollout(Some(ALICE), true, &[]),
            Some(&old),
        ),
        "alice pauses in her own name",
    );
    assert_refused(
        admit(
            &p,
            "UPDATE",
            &alice(),
            &rollout(None, true, &[]),
            Some(&old),
        ),
        "pausing without lever-by",
        &format!("must carry the annotation ringmaster.dev/lever-by: {ALICE}"),
    );
    let paused_by_alice = rollout(Some(ALICE), true, &[]);
    assert_refused(
        admit(
            &p,
            "UPDATE",
            &bob(),
            &rollout(Some(ALICE), true, &["ring-1-pilot"]),
            Some(&paused_by_alice),
        ),
        "bob promotes leaving alice's name",
        &format!("lever-by: {BOB}"),
    );
    assert_admitted(
        admit(
            &p,
            "UPDATE",
            &bob(),
            &rollout(Some(BOB), false, &[]),
            Some(&paused_by_alice),
        ),
        "bob resumes in his own name",
    );
    assert_refused(
        admit(
            &p,
            "UPDATE",
            &bob(),
            &rollout(Some(ALICE), false, &[]),
            Some(&rollout(Some(BOB), false, &[])),
        ),
        "bob writes alice's name without changing the spec",
        "may only name the requesting user",
    );
    // Writes that leave the spec and the record alone (the operator's owner references,
    // labels) pass.
    let mut labelled = paused_by_alice.clone();
    labelled["metadata"]["labels"] = json!({"x": "y"});
    assert_admitted(
        admit(&p, "UPDATE", &operator, &labelled, Some(&paused_by_alice)),
        "a metadata change",
    );
}
