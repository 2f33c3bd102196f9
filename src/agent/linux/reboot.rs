//! Reboots that finish an install: when the ring allows one (its policy, a maintenance
//! window, no freeze), how it is announced and asked for, and how the agent knows after
//! it starts again that the device did reboot (the kernel's boot id changed).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::runner::{Cmd, RunError, Runner};
use crate::api::{DeploymentRingSpec, PlanEntry, RebootPolicy};
use crate::contract;
use crate::engine::windows::{Schedule, active_freeze};

/// The grace period when the ring does not set one.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5 * 60);
/// How long after asking for a reboot the agent waits for it before asking again.
pub const REBOOT_WAIT: Duration = Duration::from_secs(15 * 60);
/// Where Linux tells the current boot apart from the last.
pub const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// How the agent reboots its device.
#[derive(Clone, Debug)]
pub struct Config {
    /// A shell command that reboots (run with `RINGMASTER_GRACE_MINUTES`,
    /// `RINGMASTER_GRACE_SECONDS` and `RINGMASTER_PATCH` set); None: `shutdown -r
    /// +MINUTES "MESSAGE"`, which tells logged-in users and then reboots.
    pub command: Option<String>,
    /// The file holding the current boot's id (`/proc/sys/kernel/random/boot_id`).
    pub boot_id_file: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            command: None,
            boot_id_file: PathBuf::from(BOOT_ID),
        }
    }
}

/// The current boot's id, if it can be read.
pub fn boot_id(config: &Config) -> Option<String> {
    std::fs::read_to_string(&config.boot_id_file)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Whether to reboot now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reboot {
    /// Not now (the policy says never, no window is open, a freeze holds, or a reboot
    /// was asked for and is on its way).
    Wait,
    /// Reboot, after warning logged-in users for `grace`.
    Now {
        /// How long users are warned.
        grace: Duration,
    },
}

/// Whether a device waiting for its reboot reboots at `now`: the ring's policy is not
/// `Never`; no reboot was asked for in the last grace period plus [`REBOOT_WAIT`]; no
/// freeze of the ring holds; and one of the ring's maintenance windows is open (a ring
/// without windows is always open; with the ring unknown, the plan entry's window
/// decides, and with neither, any time).
pub fn decide(
    ring: Option<&DeploymentRingSpec>,
    entry: Option<&PlanEntry>,
    requested_at: Option<Timestamp>,
    now: Timestamp,
) -> Reboot {
    let policy = ring.map(|r| r.reboot.policy).unwrap_or_default();
    let grace = ring
        .and_then(|r| r.reboot.grace_period)
        .map(|d| d.span().unsigned_abs())
        .unwrap_or(DEFAULT_GRACE);
    if policy == RebootPolicy::Never {
        return Reboot::Wait;
    }
    let waiting = requested_at.is_some_and(|at| {
        let since = now.duration_since(at).unsigned_abs();
        since < grace + REBOOT_WAIT
    });
    if waiting || !window_open(ring, entry, now) {
        return Reboot::Wait;
    }
    Reboot::Now { grace }
}

fn window_open(
    ring: Option<&DeploymentRingSpec>,
    entry: Option<&PlanEntry>,
    now: Timestamp,
) -> bool {
    match ring {
        Some(ring) => {
            active_freeze(&ring.freezes, now).is_none()
                && Schedule::compile(&ring.maintenance_windows).is_ok_and(|s| s.is_open(now))
        }
        None => entry.is_none_or(|e| contract::window_open(e, now)),
    }
}

/// Asks for the reboot: the configured command, or `shutdown -r +MINUTES "MESSAGE"`
/// (systemd's shutdown tells every logged-in user, and again as the time nears).
pub async fn request(
    config: &Config,
    runner: Arc<dyn Runner>,
    patch: &str,
    grace: Duration,
) -> Result<(), RunError> {
    let minutes = grace.as_secs().div_ceil(60);
    let message = format!("ringmaster: rebooting in {minutes} min to finish installing {patch}");
    let mut cmd = match &config.command {
        Some(command) => Cmd::new("sh", ["-c", command.as_str()], Duration::from_secs(60)),
        None => Cmd::new(
            "shutdown",
            ["-r".to_string(), format!("+{minutes}"), message],
            Duration::from_secs(60),
        ),
    };
    cmd.env = vec![
        ("RINGMASTER_GRACE_MINUTES".into(), minutes.to_string()),
        (
            "RINGMASTER_GRACE_SECONDS".into(),
            grace.as_secs().to_string(),
        ),
        ("RINGMASTER_PATCH".into(), patch.to_string()),
    ];
    let program = cmd.program.clone();
    let out = super::runner::run_blocking(runner, cmd).await?;
    if out.success() {
        Ok(())
    } else {
        Err(RunError::Spawn {
            program,
            source: std::io::Error::other(super::runner::tail(&out, 3)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{MaintenanceWindow, RebootSpec};

    fn t(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    fn ring(policy: RebootPolicy, windows: Vec<MaintenanceWindow>) -> DeploymentRingSpec {
        let mut spec: DeploymentRingSpec = serde_json::from_value(serde_json::json!({
            "deviceSelector": {}
        }))
        .expect("ring");
        spec.maintenance_windows = windows;
        spec.reboot = RebootSpec {
            policy,
            grace_period: Some("2m".parse().expect("duration")),
        };
        spec
    }

    fn nights() -> Vec<MaintenanceWindow> {
        use crate::api::Weekday::*;
        vec![MaintenanceWindow {
            days: Some(vec![Mon, Tue, Wed, Thu, Fri, Sat, Sun]),
            weeks_of_month: None,
            patch_tuesday_offset_days: None,
            start: "22:00".into(),
            end: "04:00".into(),
            time_zone: "UTC".into(),
        }]
    }

    #[test]
    fn reboots_only_inside_the_rings_window_and_never_under_never() {
        let night = t("2026-11-24T23:00:00Z");
        let day = t("2026-11-24T12:00:00Z");
        let grace = Duration::from_secs(120);
        let r = ring(RebootPolicy::IfRequired, nights());
        assert_eq!(decide(Some(&r), None, None, night), Reboot::Now { grace });
        assert_eq!(decide(Some(&r), None, None, day), Reboot::Wait);
        let never = ring(RebootPolicy::Never, vec![]);
        assert_eq!(decide(Some(&never), None, None, night), Reboot::Wait);
        let always = ring(RebootPolicy::Always, vec![]);
        assert_eq!(
            decide(Some(&always), None, None, day),
            Reboot::Now { grace }
        );
    }

    #[test]
    fn a_reboot_asked_for_is_awaited_then_asked_for_again() {
        let r = ring(RebootPolicy::IfRequired, vec![]);
        let asked = t("2026-11-24T23:00:00Z");
        assert_eq!(
            decide(Some(&r), None, Some(asked), t("2026-11-24T23:10:00Z")),
            Reboot::Wait
        );
        assert!(matches!(
            decide(Some(&r), None, Some(asked), t("2026-11-24T23:20:00Z")),
            Reboot::Now { .. }
        ));
    }

    #[test]
    fn a_ring_freeze_holds_reboots() {
        let mut r = ring(RebootPolicy::IfRequired, vec![]);
        r.freezes = vec![
            serde_json::from_value(serde_json::json!({
                "from": "2026-12-23T00:00:00Z", "until": "2027-01-02T00:00:00Z",
                "reason": "year-end", "owner": "cab@example.com"
            }))
            .expect("freeze"),
        ];
        assert_eq!(
            decide(Some(&r), None, None, t("2026-12-24T01:00:00Z")),
            Reboot::Wait
        );
    }

    #[test]
    fn without_its_ring_the_plan_entrys_window_decides() {
        let entry = PlanEntry {
            rollout: "servers.dsa-1".into(),
            not_before: t("2026-11-24T22:00:00Z"),
            not_after: Some(t("2026-11-25T04:00:00Z")),
            deadline: None,
            attempt: None,
            basis: None,
            answer_by: None,
        };
        assert!(matches!(
            decide(None, Some(&entry), None, t("2026-11-24T23:00:00Z")),
            Reboot::Now { grace } if grace == DEFAULT_GRACE
        ));
        assert_eq!(
            decide(None, Some(&entry), None, t("2026-11-25T05:00:00Z")),
            Reboot::Wait
        );
    }
}
