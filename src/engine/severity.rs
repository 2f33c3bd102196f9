//! A patch's severity and its SLA release time.

use jiff::Timestamp;

use crate::api::{Patch, PatchStatus, RiskSpec, Severity};

/// The severity of a patch: from the highest CVSS score it carries (its own score or any
/// of its CVEs'), otherwise the vendor's rating, otherwise Low.
pub fn severity_of(patch: &Patch) -> Severity {
    match highest_cvss(patch) {
        Some(score) => Severity::from_cvss(score),
        None => patch.spec.vendor_severity.unwrap_or(Severity::Low),
    }
}

/// The highest CVSS score on the patch or its CVEs, ignoring values outside 0–10.
pub fn highest_cvss(patch: &Patch) -> Option<f64> {
    patch
        .spec
        .cvss_score
        .into_iter()
        .chain(patch.spec.cves.iter().filter_map(|c| c.cvss_score))
        .filter(|s| s.is_finite() && (0.0..=10.0).contains(s))
        .reduce(f64::max)
}

/// What a policy's risk rules read of a patch: its CVSS severity and its exploitation
/// data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Risk {
    /// The severity from CVSS or the vendor's rating ([`severity_of`]).
    pub base: Severity,
    /// Known to be exploited (`spec.knownExploited`, or listed in KEV).
    pub exploited: bool,
    /// The highest EPSS score, if scored.
    pub epss: Option<f64>,
    /// The KEV due date, if listed.
    pub kev_due: Option<Timestamp>,
}

/// A patch's risk inputs.
pub fn risk_of(patch: &Patch) -> Risk {
    let spec = &patch.spec;
    Risk {
        base: severity_of(patch),
        exploited: spec.known_exploited || spec.kev.is_some(),
        epss: spec
            .epss
            .as_ref()
            .map(|e| e.score)
            .filter(|s| s.is_finite() && (0.0..=1.0).contains(s)),
        kev_due: spec.kev.as_ref().map(|k| k.due_at),
    }
}

impl Risk {
    /// The severity under a policy's risk rules: the base, raised to the rule for known
    /// exploitation and to the highest EPSS band the score reaches.
    pub fn severity(&self, rules: Option<&RiskSpec>) -> Severity {
        let Some(rules) = rules else {
            return self.base;
        };
        let exploited = rules.known_exploited.filter(|_| self.exploited);
        let band = self.epss.and_then(|score| {
            rules
                .epss
                .iter()
                .filter(|b| score >= b.at_least)
                .map(|b| b.severity)
                .max()
        });
        [Some(self.base), exploited, band]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(self.base)
    }

    /// The latest any SLA deadline may be under a policy's risk rules: the KEV due date,
    /// when the policy caps deadlines at it.
    pub fn deadline_cap(&self, rules: Option<&RiskSpec>) -> Option<Timestamp> {
        self.kev_due
            .filter(|_| rules.is_some_and(|r| r.kev_due_dates))
    }
}

/// The release time SLA deadlines count from: the first release ever recorded for the
/// id (a re-release keeps it), or the current `releasedAt`.
pub fn release_time(patch: &Patch) -> Timestamp {
    match patch.status.as_ref().and_then(|s| s.first_released_at) {
        Some(first) if first < patch.spec.released_at => first,
        _ => patch.spec.released_at,
    }
}

/// The status the operator records on a Patch: the first release time ever seen (so a
/// re-release keeps its SLA deadlines) and the derived severity.
pub fn patch_status(patch: &Patch) -> PatchStatus {
    PatchStatus {
        first_released_at: Some(release_time(patch)),
        severity: Some(severity_of(patch)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Classification, CveRef, PatchSpec, PatchStatus};

    fn patch(cvss: Option<f64>, cves: &[Option<f64>], vendor: Option<Severity>) -> Patch {
        Patch::new(
            "p",
            PatchSpec {
                id: "KB1".into(),
                title: None,
                vendor: "Microsoft".into(),
                product: None,
                classification: Classification::Security,
                cvss_score: cvss,
                vendor_severity: vendor,
                cves: cves
                    .iter()
                    .enumerate()
                    .map(|(i, s)| CveRef {
                        id: format!("CVE-2026-{:04}", 1000 + i),
                        cvss_score: *s,
                        cvss_vector: None,
                        epss: None,
                    })
                    .collect(),
                known_exploited: false,
                released_at: "2026-11-10T18:00:00Z".parse().unwrap(),
                reboot_required: false,
                uninstallable: false,
                supersedes: vec![],
                packages: vec![],
                kev: None,
                epss: None,
            },
        )
    }

    #[test]
    fn cvss_bands_have_inclusive_lower_bounds() {
        assert_eq!(Severity::from_cvss(9.0), Severity::Critical);
        assert_eq!(Severity::from_cvss(8.9), Severity::High);
        assert_eq!(Severity::from_cvss(7.0), Severity::High);
        assert_eq!(Severity::from_cvss(6.9), Severity::Medium);
        assert_eq!(Severity::from_cvss(4.0), Severity::Medium);
        assert_eq!(Severity::from_cvss(3.9), Severity::Low);
        assert_eq!(Severity::from_cvss(0.0), Severity::Low);
    }

    #[test]
    fn severity_is_the_highest_over_the_cves() {
        assert_eq!(
            severity_of(&patch(Some(5.0), &[Some(9.8), None], None)),
            Severity::Critical
        );
        assert_eq!(
            severity_of(&patch(None, &[Some(7.5), Some(4.1)], Some(Severity::Low))),
            Severity::High
        );
    }

    #[test]
    fn vendor_rating_applies_only_without_any_score() {
        assert_eq!(
            severity_of(&patch(None, &[None], Some(Severity::Critical))),
            Severity::Critical
        );
        assert_eq!(severity_of(&patch(None, &[], None)), Severity::Low);
        assert_eq!(
            severity_of(&patch(Some(f64::NAN), &[], Some(Severity::High))),
            Severity::High
        );
    }

    #[test]
    fn a_re_released_patch_keeps_its_first_release_time() {
        let mut p = patch(Some(8.8), &[], None);
        let first: Timestamp = "2026-11-10T18:00:00Z".parse().unwrap();
        p.status = Some(PatchStatus {
            first_released_at: Some(first),
            severity: None,
        });
        p.spec.released_at = "2026-11-20T18:00:00Z".parse().unwrap();
        assert_eq!(release_time(&p), first);
        p.status = None;
        assert_eq!(release_time(&p), p.spec.released_at);
    }

    #[test]
    fn risk_rules_raise_the_severity_and_never_lower_it() {
        use crate::api::{EpssBand, EpssScore, KevListing};
        let ts = |s: &str| s.parse::<Timestamp>().unwrap();
        let mut p = patch(Some(5.0), &[], None);
        let rules = RiskSpec {
            known_exploited: Some(Severity::Critical),
            kev_due_dates: true,
            epss: vec![
                EpssBand {
                    at_least: 0.1,
                    severity: Severity::High,
                },
                EpssBand {
                    at_least: 0.5,
                    severity: Severity::Critical,
                },
            ],
        };
        assert_eq!(risk_of(&p).severity(Some(&rules)), Severity::Medium);
        p.spec.epss = Some(EpssScore {
            score: 0.2,
            percentile: 0.9,
            cve: None,
            scored_at: None,
        });
        assert_eq!(risk_of(&p).severity(None), Severity::Medium);
        assert_eq!(risk_of(&p).severity(Some(&rules)), Severity::High);
        p.spec.kev = Some(KevListing {
            added_at: ts("2026-11-01T00:00:00Z"),
            due_at: ts("2026-11-22T00:00:00Z"),
            cves: vec!["CVE-2026-1000".into()],
            ransomware: false,
        });
        let r = risk_of(&p);
        assert!(r.exploited, "a KEV listing is known exploitation");
        assert_eq!(r.severity(Some(&rules)), Severity::Critical);
        assert_eq!(
            r.deadline_cap(Some(&rules)),
            Some(ts("2026-11-22T00:00:00Z"))
        );
        assert_eq!(r.deadline_cap(None), None);
        let critical = patch(Some(9.8), &[], None);
        let low_rules = RiskSpec {
            known_exploited: Some(Severity::Low),
            ..Default::default()
        };
        assert_eq!(
            risk_of(&critical).severity(Some(&low_rules)),
            Severity::Critical
        );
    }
}
