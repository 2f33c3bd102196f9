//! A patch's severity and its SLA release time.

use jiff::Timestamp;

use crate::api::{Patch, PatchStatus, Severity};

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
}
