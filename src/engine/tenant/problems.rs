//! The checks a decision pass makes, for `ringmaster validate`: missing or unusable rings,
//! malformed selectors and windows, exceptions beyond their policies' limits, and
//! policies of equal priority that can claim the same devices, and people's levers that
//! name a policy or ring the tenant does not have.

use std::collections::HashMap;

use jiff::Timestamp;

use crate::api::Severity;
use crate::engine::decision::Kind;
use crate::engine::exceptions::{self, Limits};
use crate::engine::severity::severity_of;

use super::gather::{compile_policies, compile_rings};
use super::{Snapshot, name_of};

/// A spec that passes the schema but cannot be used, found by the same checks a
/// decision pass makes (for `ringmaster validate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecProblem {
    /// The kind.
    pub kind: Kind,
    /// The object's name.
    pub name: String,
    /// The field, e.g. `spec.rings[1]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem with the tenant's policies, rings and exceptions at `now`: missing or
/// unusable rings, malformed selectors and windows, exceptions that break the policies'
/// limits, and policies of equal priority whose selectors can claim the same device.
pub fn spec_problems(snap: &Snapshot<'_>, now: Timestamp) -> Vec<SpecProblem> {
    let split = |kind: Kind, name: &str, text: &str| {
        let (field, message) = text.split_once(": ").unwrap_or(("spec", text));
        SpecProblem {
            kind,
            name: name.to_string(),
            field: field.to_string(),
            message: message.to_string(),
        }
    };
    let rings = compile_rings(snap);
    let policies = compile_policies(snap, &rings);
    let mut out: Vec<SpecProblem> = Vec::new();
    for r in &rings {
        if let Some(p) = &r.problem {
            out.push(split(Kind::DeploymentRing, r.name, p));
        }
    }
    for p in &policies {
        for problem in &p.problems {
            out.push(split(Kind::PatchPolicy, p.name, problem));
        }
    }
    for (i, a) in policies.iter().enumerate() {
        for b in &policies[i + 1..] {
            if a.policy.spec.priority == b.policy.spec.priority
                && may_overlap(
                    &a.policy.spec.device_selector,
                    &b.policy.spec.device_selector,
                )
            {
                out.push(SpecProblem {
                    kind: Kind::PatchPolicy,
                    name: b.name.to_string(),
                    field: "spec.deviceSelector".into(),
                    message: format!(
                        "can select the same devices as PatchPolicy {} at the same priority {}; such devices get no assignments (give one a higher priority)",
                        a.name, b.policy.spec.priority
                    ),
                });
            }
        }
    }
    let severity: HashMap<&str, Severity> = snap
        .patches
        .iter()
        .map(|p| (p.spec.id.as_str(), severity_of(p)))
        .collect();
    let limits = Limits::combined(snap.policies.iter().copied());
    for e in &snap.exceptions {
        let ev = exceptions::evaluate(e, &limits, |id| severity.get(id).copied(), now);
        if let Some((field, message)) = ev.invalid {
            out.push(SpecProblem {
                kind: Kind::PatchException,
                name: name_of(&e.metadata).to_string(),
                field: field.into(),
                message,
            });
        }
    }
    out.extend(lever_problems(snap));
    out
}

/// People's levers that name a policy or ring the tenant does not have: they do nothing.
fn lever_problems(snap: &Snapshot<'_>) -> Vec<SpecProblem> {
    let policy = |n: &str| snap.policies.iter().any(|p| name_of(&p.metadata) == n);
    let ring = |n: &str| snap.rings.iter().any(|r| name_of(&r.metadata) == n);
    let mut out = Vec::new();
    for a in snap.approvals.iter().filter(|a| !policy(&a.spec.policy)) {
        out.push(SpecProblem {
            kind: Kind::PatchApproval,
            name: name_of(&a.metadata).to_string(),
            field: "spec.policy".into(),
            message: format!(
                "PatchPolicy {:?} not found: the decision applies to nothing",
                a.spec.policy
            ),
        });
    }
    for f in &snap.freezes {
        for (i, r) in f.spec.rings.iter().enumerate().filter(|(_, r)| !ring(r)) {
            out.push(SpecProblem {
                kind: Kind::PatchFreeze,
                name: name_of(&f.metadata).to_string(),
                field: format!("spec.rings[{i}]"),
                message: format!("DeploymentRing {r:?} not found: it freezes nothing there"),
            });
        }
    }
    out
}

/// Whether two selectors certainly can match one device: one selects everything, or
/// their `matchLabels` agree on every key they share. Selectors that differ only in
/// expressions cannot be judged without devices and are not reported here (the
/// operator reports the devices two policies really claim).
fn may_overlap(
    a: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    b: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> bool {
    let everything = |s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector| {
        s.match_labels.as_ref().is_none_or(|l| l.is_empty())
            && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    };
    if everything(a) || everything(b) {
        return true;
    }
    match (a.match_labels.as_ref(), b.match_labels.as_ref()) {
        (Some(la), Some(lb)) if !la.is_empty() && !lb.is_empty() => {
            la.iter().all(|(k, v)| lb.get(k).is_none_or(|w| w == v))
        }
        _ => false,
    }
}
