//! Exceptions: their phase under the namespace's policies, what they cover, and when
//! they need the engine again (expiry and reminders).

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};

use crate::api::{Duration, ExceptionPhase, OnExpiry, PatchException, PatchPolicy, Severity};

use super::selector::Selector;

/// Reminder offsets before expiry, with the label recorded in `status.lastReminder`.
pub const REMINDERS: [(&str, i64); 2] = [("7d", 7 * 86_400), ("1d", 86_400)];

/// The strictest combination of the exception limits of a namespace's policies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// The shortest `maxDuration` of any policy.
    pub max_duration: Option<Duration>,
    /// Any policy requires approval.
    pub require_approval: bool,
    /// Severities for which any policy requires compensating controls.
    pub controls_for: BTreeSet<Severity>,
}

impl Limits {
    /// Combines the limits of every policy of a namespace.
    pub fn combined<'a>(policies: impl IntoIterator<Item = &'a PatchPolicy>) -> Self {
        let mut out = Limits::default();
        for p in policies {
            let l = &p.spec.exceptions;
            out.max_duration = match (out.max_duration, l.max_duration) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            out.require_approval |= l.require_approval;
            out.controls_for
                .extend(l.require_compensating_controls_for.iter().copied());
        }
        out
    }
}

/// An exception's evaluated state.
#[derive(Clone, Debug)]
pub struct Evaluated {
    /// Its phase.
    pub phase: ExceptionPhase,
    /// Why, in words.
    pub message: String,
    /// When it first became Active, if it ever did.
    pub active_since: Option<Timestamp>,
    /// Its device selector, compiled (None when it names devices only).
    pub selector: Option<Selector>,
    /// Whether it keeps devices from being assigned its patches now: Active, or Expired
    /// with `onExpiry: Escalate`.
    pub blocks_assignment: bool,
    /// When Invalid: the field at fault (`spec.devices.selector`, `spec.expiresAt` or
    /// `spec.compensatingControls`, the last when several are) and what is wrong with it.
    pub invalid: Option<(&'static str, String)>,
}

/// Decides an exception's phase at `now`. `severity` maps a patch id to its severity
/// (None when the catalog does not know it).
pub fn evaluate(
    exc: &PatchException,
    limits: &Limits,
    severity: impl Fn(&str) -> Option<Severity>,
    now: Timestamp,
) -> Evaluated {
    let spec = &exc.spec;
    let created = exc
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let old = exc.status.as_ref();
    let selector = match spec.devices.selector.as_ref().map(Selector::compile) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            return Evaluated {
                invalid: Some(("spec.devices.selector", e.to_string())),
                ..invalid(format!("spec.devices.selector.{e}"), None)
            };
        }
        None => None,
    };
    let (problems, field) = problems(exc, limits, &severity, created);
    let active_since = old.and_then(|s| s.active_since);
    if !problems.is_empty() {
        let message = problems.join("; ");
        return Evaluated {
            selector,
            invalid: Some((field, message.clone())),
            ..invalid(message, active_since)
        };
    }
    if now >= spec.expires_at {
        return expired(spec, active_since, selector);
    }
    if limits.require_approval
        && spec
            .approved_by
            .as_deref()
            .is_none_or(|a| a.trim().is_empty())
    {
        return Evaluated {
            phase: ExceptionPhase::PendingApproval,
            message: "waiting for approval: the policy requires approvedBy".into(),
            active_since,
            selector,
            blocks_assignment: false,
            invalid: None,
        };
    }
    let until = spec.expires_at;
    Evaluated {
        phase: ExceptionPhase::Active,
        message: format!("covers its devices until {until}"),
        active_since: Some(active_since.unwrap_or(now)),
        selector,
        blocks_assignment: true,
        invalid: None,
    }
}

/// An exception past its `expiresAt`: Expired, and with `onExpiry: Escalate` still
/// keeping its devices from being assigned its patches (once it was ever Active).
fn expired(
    spec: &crate::api::PatchExceptionSpec,
    active_since: Option<Timestamp>,
    selector: Option<Selector>,
) -> Evaluated {
    let escalate = spec.on_expiry == OnExpiry::Escalate;
    let message = if escalate {
        format!(
            "expired at {}; escalated: its patches stay unassigned until a person renews or removes it",
            spec.expires_at
        )
    } else {
        format!(
            "expired at {}; its devices get its patches in their next window",
            spec.expires_at
        )
    };
    Evaluated {
        phase: ExceptionPhase::Expired,
        message,
        active_since,
        selector,
        blocks_assignment: escalate && active_since.is_some(),
        invalid: None,
    }
}

/// What makes an exception Invalid under `limits`, and the field at fault (the last
/// listed when several are): it ends before it begins, runs longer than `maxDuration`, or
/// lacks compensating controls its patches' severities require.
fn problems(
    exc: &PatchException,
    limits: &Limits,
    severity: &impl Fn(&str) -> Option<Severity>,
    created: Timestamp,
) -> (Vec<String>, &'static str) {
    let spec = &exc.spec;
    let mut problems = Vec::new();
    let mut field = "spec.expiresAt";
    if spec.expires_at <= created {
        problems.push(format!(
            "expiresAt {} is not after its creation {}",
            spec.expires_at, created
        ));
    } else if let Some(max) = limits.max_duration {
        let runs = spec.expires_at.duration_since(created);
        if runs > max.span() {
            problems.push(format!(
                "runs {} from creation to expiresAt, longer than the policy's exceptions.maxDuration of {max}",
                human(runs)
            ));
        }
    }
    if spec
        .compensating_controls
        .iter()
        .all(|c| c.trim().is_empty())
    {
        let needing: BTreeMap<&str, Severity> = spec
            .patches
            .iter()
            .filter_map(|p| {
                severity(p)
                    .filter(|s| limits.controls_for.contains(s))
                    .map(|s| (p.as_str(), s))
            })
            .collect();
        if !needing.is_empty() {
            let list: Vec<String> = needing.iter().map(|(p, s)| format!("{p} ({s})")).collect();
            problems.push(format!(
                "compensatingControls are required for {} by the policy",
                list.join(", ")
            ));
            field = "spec.compensatingControls";
        }
    }
    (problems, field)
}

fn invalid(message: String, active_since: Option<Timestamp>) -> Evaluated {
    Evaluated {
        phase: ExceptionPhase::Invalid,
        message,
        active_since,
        selector: None,
        blocks_assignment: false,
        invalid: None,
    }
}

/// Whether an exception names this device (by name or selector) and this patch.
pub fn covers(
    exc: &PatchException,
    eval: &Evaluated,
    device: &str,
    labels: Option<&BTreeMap<String, String>>,
    patch: &str,
) -> bool {
    exc.spec.patches.iter().any(|p| p == patch)
        && (exc.spec.devices.names.iter().any(|n| n == device)
            || eval.selector.as_ref().is_some_and(|s| s.matches(labels)))
}

/// The interval during which the exception paused the SLA clock, if it was ever active.
pub fn exempt_interval(exc: &PatchException, eval: &Evaluated) -> Option<(Timestamp, Timestamp)> {
    match eval.phase {
        ExceptionPhase::Active | ExceptionPhase::Expired => eval
            .active_since
            .map(|since| (since, exc.spec.expires_at))
            .filter(|(a, b)| a < b),
        _ => None,
    }
}

/// The reminder due at `now` that has not been sent yet, if any (`7d` or `1d`).
pub fn due_reminder(
    exc: &PatchException,
    eval: &Evaluated,
    now: Timestamp,
) -> Option<&'static str> {
    if eval.phase != ExceptionPhase::Active {
        return None;
    }
    let sent = exc.status.as_ref().and_then(|s| s.last_reminder.as_deref());
    let left = exc.spec.expires_at.duration_since(now);
    // The most urgent reminder whose instant has passed; a later one replaces an earlier.
    let due = REMINDERS
        .iter()
        .rev()
        .find(|(_, secs)| left <= SignedDuration::from_secs(*secs))
        .map(|(label, _)| *label)?;
    let already = match sent {
        Some("1d") => true,
        Some("7d") => due == "7d",
        _ => false,
    };
    (!already).then_some(due)
}

/// The next instant at which the exception's phase or reminders change.
pub fn next_change(exc: &PatchException, eval: &Evaluated, now: Timestamp) -> Option<Timestamp> {
    if !matches!(
        eval.phase,
        ExceptionPhase::Active | ExceptionPhase::PendingApproval
    ) {
        return None;
    }
    let expiry = exc.spec.expires_at;
    REMINDERS
        .iter()
        .filter_map(|(_, secs)| expiry.checked_sub(SignedDuration::from_secs(*secs)).ok())
        .chain([expiry])
        .filter(|t| *t > now)
        .min()
}

/// A duration in the largest whole unit that keeps it readable: `3d`, `5h`, `42m`.
pub fn human(d: SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    if secs >= 2 * 86_400 {
        format!("{}d", secs / 86_400)
    } else if secs >= 2 * 3600 {
        format!("{}h", secs / 3600)
    } else if secs >= 120 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        ExceptionDevices, ExceptionLimits, PatchExceptionSpec, PatchExceptionStatus,
        PatchPolicySpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn exception(expires: &str, approved: Option<&str>, controls: &[&str]) -> PatchException {
        let mut e = PatchException::new(
            "e",
            PatchExceptionSpec {
                patches: vec!["KB1".into()],
                devices: ExceptionDevices {
                    names: vec!["ws-1".into()],
                    selector: None,
                },
                reason: "LOB app breaks".into(),
                owner: "alice".into(),
                approved_by: approved.map(Into::into),
                expires_at: ts(expires),
                compensating_controls: controls.iter().map(|s| s.to_string()).collect(),
                ticket: None,
                on_expiry: OnExpiry::Enforce,
            },
        );
        e.metadata.creation_timestamp = Some(Time(ts("2026-11-01T00:00:00Z")));
        e
    }

    fn limits(max: Option<&str>, approval: bool, controls: &[Severity]) -> Limits {
        let mut p = PatchPolicy::new(
            "p",
            PatchPolicySpec {
                device_selector: Default::default(),
                priority: 0,
                tier_label: "t".into(),
                sla: vec![],
                due_soon_margin: None,
                approval: Default::default(),
                rings: vec!["r".into()],
                exceptions: ExceptionLimits {
                    max_duration: max.map(|m| m.parse().unwrap()),
                    require_approval: approval,
                    require_compensating_controls_for: controls.to_vec(),
                },
                freezes: vec![],
                risk: None,
            },
        );
        p.metadata.namespace = Some("t".into());
        Limits::combined([&p])
    }

    const NOW: &str = "2026-11-20T00:00:00Z";

    #[test]
    fn phases_follow_limits_approval_and_time() {
        let sev = |_: &str| Some(Severity::High);
        let l = limits(Some("90d"), true, &[Severity::Critical, Severity::High]);
        let e = exception("2026-12-15T00:00:00Z", Some("bob"), &["FW-1142"]);
        let ev = evaluate(&e, &l, sev, ts(NOW));
        assert_eq!(ev.phase, ExceptionPhase::Active);
        assert_eq!(ev.active_since, Some(ts(NOW)));

        let pending = exception("2026-12-15T00:00:00Z", None, &["FW-1142"]);
        assert_eq!(
            evaluate(&pending, &l, sev, ts(NOW)).phase,
            ExceptionPhase::PendingApproval
        );

        let too_long = exception("2027-03-01T00:00:00Z", Some("bob"), &["FW-1142"]);
        let ev = evaluate(&too_long, &l, sev, ts(NOW));
        assert_eq!(ev.phase, ExceptionPhase::Invalid);
        assert!(
            ev.message
                .contains("longer than the policy's exceptions.maxDuration of 90d"),
            "{}",
            ev.message
        );

        let no_controls = exception("2026-12-15T00:00:00Z", Some("bob"), &[]);
        let ev = evaluate(&no_controls, &l, sev, ts(NOW));
        assert_eq!(ev.phase, ExceptionPhase::Invalid);
        assert!(
            ev.message
                .contains("compensatingControls are required for KB1 (High)"),
            "{}",
            ev.message
        );
        assert_eq!(
            evaluate(&no_controls, &l, |_| Some(Severity::Medium), ts(NOW)).phase,
            ExceptionPhase::Active
        );
    }

    #[test]
    fn expiry_is_exact_to_the_second() {
        let l = limits(None, false, &[]);
        let e = exception("2026-12-15T00:00:00Z", None, &[]);
        assert_eq!(
            evaluate(&e, &l, |_| None, ts("2026-12-14T23:59:59Z")).phase,
            ExceptionPhase::Active
        );
        let ev = evaluate(&e, &l, |_| None, ts("2026-12-15T00:00:00Z"));
        assert_eq!(ev.phase, ExceptionPhase::Expired);
        assert!(!ev.blocks_assignment);
    }

    #[test]
    fn escalated_expiry_keeps_blocking_assignment() {
        let l = limits(None, false, &[]);
        let mut e = exception("2026-12-15T00:00:00Z", None, &[]);
        e.spec.on_expiry = OnExpiry::Escalate;
        e.status = Some(PatchExceptionStatus {
            active_since: Some(ts(NOW)),
            ..Default::default()
        });
        let ev = evaluate(&e, &l, |_| None, ts("2026-12-16T00:00:00Z"));
        assert_eq!(ev.phase, ExceptionPhase::Expired);
        assert!(ev.blocks_assignment);
        assert!(ev.message.contains("escalated"));
    }

    #[test]
    fn reminders_fire_once_each_and_wakeups_hit_them() {
        let l = limits(None, false, &[]);
        let mut e = exception("2026-12-15T00:00:00Z", None, &[]);
        let ev = evaluate(&e, &l, |_| None, ts(NOW));
        assert_eq!(due_reminder(&e, &ev, ts(NOW)), None);
        assert_eq!(
            next_change(&e, &ev, ts(NOW)),
            Some(ts("2026-12-08T00:00:00Z"))
        );
        assert_eq!(
            due_reminder(&e, &ev, ts("2026-12-08T00:00:00Z")),
            Some("7d")
        );
        e.status = Some(PatchExceptionStatus {
            last_reminder: Some("7d".into()),
            ..Default::default()
        });
        assert_eq!(due_reminder(&e, &ev, ts("2026-12-10T00:00:00Z")), None);
        assert_eq!(
            next_change(&e, &ev, ts("2026-12-10T00:00:00Z")),
            Some(ts("2026-12-14T00:00:00Z"))
        );
        assert_eq!(
            due_reminder(&e, &ev, ts("2026-12-14T00:00:00Z")),
            Some("1d")
        );
        assert_eq!(
            next_change(&e, &ev, ts("2026-12-14T00:00:00Z")),
            Some(ts("2026-12-15T00:00:00Z"))
        );
    }

    #[test]
    fn coverage_needs_the_patch_and_the_device() {
        let l = limits(None, false, &[]);
        let e = exception("2026-12-15T00:00:00Z", None, &[]);
        let ev = evaluate(&e, &l, |_| None, ts(NOW));
        assert!(covers(&e, &ev, "ws-1", None, "KB1"));
        assert!(!covers(&e, &ev, "ws-2", None, "KB1"));
        assert!(!covers(&e, &ev, "ws-1", None, "KB2"));
    }

    #[test]
    fn strictest_limits_win_across_policies() {
        let a = limits(Some("90d"), false, &[Severity::Critical]);
        assert_eq!(a.max_duration, Some("90d".parse().unwrap()));
        assert!(a.controls_for.contains(&Severity::Critical));
    }
}
