//! Approval: which patches a policy rolls out, from when, and which it holds back.

use jiff::Timestamp;

use crate::api::{
    ApprovalAction, ApprovalRule, Classification, Decision, Duration, HoldSpec, Patch,
    PatchApproval, PatchPolicySpec, RiskSpec, RuleMatch, created_by,
};

use super::severity::{highest_cvss, risk_of};

/// The longest delay a rule may put on a non-Feature patch.
pub const MAX_DELAY: Duration = Duration::days(30);
/// The longest delay a rule may put on a Feature update.
pub const MAX_FEATURE_DELAY: Duration = Duration::days(365);

/// A policy's decision about one patch, before the fleet-failure hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Approval {
    /// Approved. `at` is None for an explicit approval (its time is when it was first seen).
    Approved {
        /// When it was (or is) approved.
        at: Option<Timestamp>,
        /// The rule or list that approved it.
        by: String,
        /// Approved by an emergency rule.
        emergency: bool,
    },
    /// A rule approves it once its delay has passed.
    Scheduled {
        /// When it will be approved.
        at: Timestamp,
        /// The rule.
        by: String,
    },
    /// Waiting for a person.
    AwaitingManual {
        /// The rule (or `default`) that asked for a person.
        by: String,
    },
    /// Rejected.
    Rejected {
        /// The rule or list that rejected it.
        by: String,
    },
}

impl Approval {
    /// Whether the patch is approved as of `now`.
    pub fn is_approved(&self) -> bool {
        matches!(self, Approval::Approved { .. })
    }
}

/// The name a rule goes by in approval records: its own name, or `rule N` (from 1).
pub fn rule_name(rule: &ApprovalRule, index: usize) -> String {
    rule.name
        .clone()
        .unwrap_or_else(|| format!("rule {}", index + 1))
}

/// A person's decision about one patch under one policy: a `PatchApproval`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decided {
    /// The patch id, as the approval names it.
    pub patch: String,
    /// Approve or reject.
    pub decision: Decision,
    /// How approval records name it: `PatchApproval NAME (by USER)`.
    pub by: String,
    /// When it was made (its creation), if known.
    pub at: Option<Timestamp>,
}

impl Decided {
    /// The decision a `PatchApproval` records.
    pub fn of(a: &PatchApproval) -> Self {
        let name = a.metadata.name.as_deref().unwrap_or_default();
        let by = match created_by(&a.metadata) {
            Some(user) => format!("PatchApproval {name} (by {user})"),
            None => format!("PatchApproval {name}"),
        };
        Decided {
            patch: a.spec.patch.clone(),
            decision: a.spec.decision,
            by,
            at: a.metadata.creation_timestamp.as_ref().map(|t| t.0),
        }
    }
}

/// People's decisions about patches under the policy named `policy`: the
/// `PatchApproval`s that name it, in name order.
pub fn decided_for<'a>(
    approvals: impl IntoIterator<Item = &'a PatchApproval>,
    policy: &str,
) -> Vec<Decided> {
    let mut of: Vec<&PatchApproval> = approvals
        .into_iter()
        .filter(|a| a.spec.policy == policy)
        .collect();
    of.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    of.into_iter().map(Decided::of).collect()
}

/// Decides one patch under one policy at `now`: the explicit decisions first — the
/// policy's `approval.reject`, then people's rejections (`PatchApproval`s, `people`),
/// then the policy's `approval.approve`, then people's approvals: a rejection always
/// wins — then the first matching rule, then the default.
pub fn evaluate(
    policy: &PatchPolicySpec,
    people: &[Decided],
    patch: &Patch,
    now: Timestamp,
) -> Approval {
    let id = patch.spec.id.as_str();
    let listed = |list: &[String]| list.iter().any(|p| p.eq_ignore_ascii_case(id));
    let decided = |d: Decision| {
        people
            .iter()
            .find(|p| p.decision == d && p.patch.eq_ignore_ascii_case(id))
    };
    if listed(&policy.approval.reject) {
        return Approval::Rejected {
            by: "approval.reject".into(),
        };
    }
    if let Some(p) = decided(Decision::Reject) {
        return Approval::Rejected { by: p.by.clone() };
    }
    if listed(&policy.approval.approve) {
        return Approval::Approved {
            at: None,
            by: "approval.approve".into(),
            emergency: false,
        };
    }
    if let Some(p) = decided(Decision::Approve) {
        return Approval::Approved {
            at: p.at,
            by: p.by.clone(),
            emergency: false,
        };
    }
    let found = policy
        .approval
        .rules
        .iter()
        .enumerate()
        .find(|(_, r)| rule_matches(&r.matches, patch, policy.risk.as_ref()));
    let (action, by, delay, emergency) = match found {
        Some((i, rule)) => (rule.action, rule_name(rule, i), rule.delay, rule.emergency),
        None => (policy.approval.default, "default".to_string(), None, false),
    };
    match action {
        ApprovalAction::Reject => Approval::Rejected { by },
        ApprovalAction::Manual => Approval::AwaitingManual { by },
        ApprovalAction::Approve => {
            let cap = if patch.spec.classification == Classification::Feature {
                MAX_FEATURE_DELAY
            } else {
                MAX_DELAY
            };
            let delay = delay.unwrap_or(Duration::from_secs(0)).min(cap);
            let released = patch.spec.released_at;
            let at = released.checked_add(delay.span()).unwrap_or(released);
            if at <= now {
                Approval::Approved {
                    at: Some(at),
                    by,
                    emergency,
                }
            } else {
                Approval::Scheduled { at, by }
            }
        }
    }
}

/// Whether every criterion of a rule's match holds for the patch, its severity being
/// the one the policy's risk rules give it.
pub fn rule_matches(m: &RuleMatch, patch: &Patch, rules: Option<&RiskSpec>) -> bool {
    let spec = &patch.spec;
    let risk = risk_of(patch);
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    (m.classifications.is_empty() || m.classifications.contains(&spec.classification))
        && (m.severities.is_empty() || m.severities.contains(&risk.severity(rules)))
        && m.min_cvss
            .is_none_or(|min| highest_cvss(patch).is_some_and(|s| s >= min))
        && (m.vendors.is_empty() || m.vendors.iter().any(|v| eq(v, &spec.vendor)))
        && (m.products.is_empty()
            || spec
                .product
                .as_deref()
                .is_some_and(|p| m.products.iter().any(|x| eq(x, p))))
        && m.known_exploited.is_none_or(|k| k == risk.exploited)
        && m.min_epss
            .is_none_or(|min| risk.epss.is_some_and(|s| s >= min))
}

/// Install outcomes of one patch across a policy's devices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// Devices that have it installed.
    pub installed: u32,
    /// Devices whose last attempt failed.
    pub failed: u32,
}

impl Outcomes {
    /// Finished attempts.
    pub fn attempts(&self) -> u32 {
        self.installed + self.failed
    }

    /// Failed share of finished attempts, in percent (0 with no attempts).
    pub fn failure_rate(&self) -> f64 {
        if self.attempts() == 0 {
            0.0
        } else {
            f64::from(self.failed) * 100.0 / f64::from(self.attempts())
        }
    }
}

/// Why a patch is held, when the fleet's failure rate for it exceeds the policy's hold
/// rule over enough attempts.
pub fn hold_reason(hold: Option<&HoldSpec>, outcomes: Outcomes) -> Option<String> {
    let hold = hold?;
    let rate = outcomes.failure_rate();
    (outcomes.attempts() >= hold.min_samples && rate > hold.failure_rate).then(|| {
        format!(
            "held: {} of {} attempts failed across the policy's devices ({:.1}% > {}%)",
            outcomes.failed,
            outcomes.attempts(),
            rate,
            hold.failure_rate
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApprovalSpec, PatchSpec, Severity};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn patch(id: &str, class: Classification, cvss: Option<f64>, exploited: bool) -> Patch {
        Patch::new(
            &id.to_lowercase(),
            PatchSpec {
                id: id.into(),
                title: None,
                vendor: "Microsoft".into(),
                product: Some("Windows 11".into()),
                classification: class,
                cvss_score: cvss,
                vendor_severity: None,
                cves: vec![],
                known_exploited: exploited,
                released_at: ts("2026-11-10T18:00:00Z"),
                reboot_required: true,
                uninstallable: true,
                supersedes: vec![],
                packages: vec![],
                kev: None,
                epss: None,
            },
        )
    }

    fn rule(
        m: RuleMatch,
        action: ApprovalAction,
        delay: Option<&str>,
        emergency: bool,
    ) -> ApprovalRule {
        ApprovalRule {
            name: None,
            matches: m,
            action,
            delay: delay.map(|d| d.parse().unwrap()),
            emergency,
        }
    }

    fn policy(rules: Vec<ApprovalRule>) -> PatchPolicySpec {
        PatchPolicySpec {
            device_selector: Default::default(),
            priority: 0,
            tier_label: "ringmaster.dev/tier".into(),
            sla: vec![],
            due_soon_margin: None,
            approval: ApprovalSpec {
                rules,
                ..Default::default()
            },
            rings: vec!["r".into()],
            exceptions: Default::default(),
            freezes: vec![],
            risk: None,
        }
    }

    fn design_policy() -> PatchPolicySpec {
        use ApprovalAction::*;
        policy(vec![
            rule(
                RuleMatch {
                    known_exploited: Some(true),
                    ..Default::default()
                },
                Approve,
                None,
                true,
            ),
            rule(
                RuleMatch {
                    classifications: vec![Classification::Security, Classification::Critical],
                    severities: vec![Severity::Critical, Severity::High],
                    ..Default::default()
                },
                Approve,
                None,
                false,
            ),
            rule(
                RuleMatch {
                    classifications: vec![Classification::Security],
                    ..Default::default()
                },
                Approve,
                Some("3d"),
                false,
            ),
            rule(
                RuleMatch {
                    classifications: vec![Classification::Feature],
                    ..Default::default()
                },
                Approve,
                Some("60d"),
                false,
            ),
            rule(
                RuleMatch {
                    classifications: vec![Classification::Driver, Classification::Firmware],
                    ..Default::default()
                },
                Manual,
                None,
                false,
            ),
        ])
    }

    #[test]
    fn first_matching_rule_wins() {
        let p = design_policy();
        let now = ts("2026-11-11T00:00:00Z");
        let exploited = patch("KB1", Classification::Security, Some(5.0), true);
        assert_eq!(
            evaluate(&p, &[], &exploited, now),
            Approval::Approved {
                at: Some(ts("2026-11-10T18:00:00Z")),
                by: "rule 1".into(),
                emergency: true
            }
        );
        let high = patch("KB2", Classification::Security, Some(8.8), false);
        assert_eq!(
            evaluate(&p, &[], &high, now),
            Approval::Approved {
                at: Some(ts("2026-11-10T18:00:00Z")),
                by: "rule 2".into(),
                emergency: false
            }
        );
        let medium = patch("KB3", Classification::Security, Some(5.5), false);
        assert_eq!(
            evaluate(&p, &[], &medium, now),
            Approval::Scheduled {
                at: ts("2026-11-13T18:00:00Z"),
                by: "rule 3".into()
            }
        );
        assert!(
            evaluate(&p, &[], &medium, ts("2026-11-13T18:00:00Z")).is_approved(),
            "approved at the instant the delay ends"
        );
        let driver = patch("KB4", Classification::Driver, None, false);
        assert_eq!(
            evaluate(&p, &[], &driver, now),
            Approval::AwaitingManual {
                by: "rule 5".into()
            }
        );
        let other = patch("KB5", Classification::Other, None, false);
        assert_eq!(
            evaluate(&p, &[], &other, now),
            Approval::AwaitingManual {
                by: "default".into()
            }
        );
    }

    #[test]
    fn explicit_lists_override_rules_and_reject_wins() {
        let mut p = design_policy();
        p.approval.approve = vec!["kb4".into()];
        let driver = patch("KB4", Classification::Driver, None, false);
        assert_eq!(
            evaluate(&p, &[], &driver, ts("2026-11-11T00:00:00Z")),
            Approval::Approved {
                at: None,
                by: "approval.approve".into(),
                emergency: false
            }
        );
        p.approval.reject = vec!["KB4".into()];
        assert_eq!(
            evaluate(&p, &[], &driver, ts("2026-11-11T00:00:00Z")),
            Approval::Rejected {
                by: "approval.reject".into()
            }
        );
    }

    fn person(name: &str, patch: &str, decision: Decision, user: Option<&str>) -> Decided {
        let mut a = PatchApproval::new(
            name,
            crate::api::PatchApprovalSpec {
                policy: "p".into(),
                patch: patch.into(),
                decision,
                reason: "CAB".into(),
            },
        );
        if let Some(u) = user {
            a.metadata.annotations =
                Some([(crate::api::CREATED_BY.to_string(), u.to_string())].into());
        }
        a.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            ts("2026-11-10T09:00:00Z"),
        ));
        Decided::of(&a)
    }

    #[test]
    fn people_approve_what_rules_leave_to_them_and_their_rejections_win() {
        let p = design_policy();
        let now = ts("2026-11-11T00:00:00Z");
        let driver = patch("KB4", Classification::Driver, None, false);
        assert!(matches!(
            evaluate(&p, &[], &driver, now),
            Approval::AwaitingManual { .. }
        ));
        let yes = person("yes", "kb4", Decision::Approve, Some("alice"));
        assert_eq!(
            evaluate(&p, std::slice::from_ref(&yes), &driver, now),
            Approval::Approved {
                at: Some(ts("2026-11-10T09:00:00Z")),
                by: "PatchApproval yes (by alice)".into(),
                emergency: false
            }
        );
        // Someone else's decision about another patch changes nothing.
        let other = person("other", "KB5", Decision::Reject, None);
        assert!(evaluate(&p, &[yes.clone(), other], &driver, now).is_approved());
        // A rejection wins over an approval, and over the policy's own approve list.
        let no = person("no", "KB4", Decision::Reject, None);
        let mut listed = p.clone();
        listed.approval.approve = vec!["KB4".into()];
        assert_eq!(
            evaluate(&listed, &[yes, no], &driver, now),
            Approval::Rejected {
                by: "PatchApproval no".into()
            }
        );
    }

    #[test]
    fn delays_are_capped_even_if_the_schema_was_bypassed() {
        let p = policy(vec![rule(
            RuleMatch::default(),
            ApprovalAction::Approve,
            Some("400d"),
            false,
        )]);
        let sec = patch("KB1", Classification::Security, None, false);
        assert_eq!(
            evaluate(&p, &[], &sec, ts("2026-11-11T00:00:00Z")),
            Approval::Scheduled {
                at: ts("2026-12-10T18:00:00Z"),
                by: "rule 1".into()
            }
        );
        let feat = patch("KB2", Classification::Feature, None, false);
        assert_eq!(
            evaluate(&p, &[], &feat, ts("2026-11-11T00:00:00Z")),
            Approval::Scheduled {
                at: ts("2027-11-10T18:00:00Z"),
                by: "rule 1".into()
            }
        );
    }

    fn rule_matches_plain(m: &RuleMatch, p: &Patch) -> bool {
        rule_matches(m, p, None)
    }

    #[test]
    fn rules_see_the_severity_and_exploitation_the_policy_gives() {
        use crate::api::{EpssBand, EpssScore, Severity};
        let mut p = patch("KB1", Classification::Security, Some(5.0), false);
        p.spec.epss = Some(EpssScore {
            score: 0.6,
            percentile: 0.98,
            cve: None,
            scored_at: None,
        });
        let critical = RuleMatch {
            severities: vec![Severity::Critical],
            ..Default::default()
        };
        let likely = RuleMatch {
            min_epss: Some(0.5),
            ..Default::default()
        };
        let rules = RiskSpec {
            epss: vec![EpssBand {
                at_least: 0.5,
                severity: Severity::Critical,
            }],
            ..Default::default()
        };
        assert!(!rule_matches(&critical, &p, None), "Medium by CVSS alone");
        assert!(rule_matches(&critical, &p, Some(&rules)), "raised by EPSS");
        assert!(rule_matches(&likely, &p, None));
        p.spec.epss = None;
        assert!(!rule_matches(&likely, &p, None), "no score, no match");
    }

    #[test]
    fn min_cvss_needs_a_score_and_matches_are_case_insensitive() {
        let m = RuleMatch {
            min_cvss: Some(7.0),
            vendors: vec!["microsoft".into()],
            products: vec!["WINDOWS 11".into()],
            ..Default::default()
        };
        assert!(rule_matches_plain(
            &m,
            &patch("KB1", Classification::Security, Some(7.0), false)
        ));
        assert!(!rule_matches_plain(
            &m,
            &patch("KB1", Classification::Security, Some(6.9), false)
        ));
        assert!(!rule_matches_plain(
            &m,
            &patch("KB1", Classification::Security, None, false)
        ));
    }

    #[test]
    fn hold_needs_enough_samples_and_a_rate_above_the_threshold() {
        let hold = HoldSpec {
            failure_rate: 10.0,
            min_samples: 20,
        };
        assert_eq!(
            hold_reason(
                Some(&hold),
                Outcomes {
                    installed: 10,
                    failed: 5
                }
            ),
            None,
            "15 attempts < 20"
        );
        assert_eq!(
            hold_reason(
                Some(&hold),
                Outcomes {
                    installed: 18,
                    failed: 2
                }
            ),
            None,
            "10% is not above 10%"
        );
        let reason = hold_reason(
            Some(&hold),
            Outcomes {
                installed: 17,
                failed: 3,
            },
        )
        .unwrap();
        assert!(reason.contains("3 of 20 attempts failed"), "{reason}");
        assert_eq!(
            hold_reason(
                None,
                Outcomes {
                    installed: 0,
                    failed: 50
                }
            ),
            None
        );
    }
}
