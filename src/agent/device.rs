//! One simulated device: what its agent reports and how it follows its plan. Pure: the
//! fleet loop passes `now` in and sends what changed.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use crate::api::{DevicePatchStatus, DevicePlan, PatchState};
use crate::contract::{self, Action, Outcome};
use crate::sim::fleet::Rng;

/// How the devices of a simulated fleet behave.
#[derive(Clone, Debug, PartialEq)]
pub struct Behaviour {
    /// The shortest install (or uninstall).
    pub install_min: SignedDuration,
    /// The longest install (or uninstall).
    pub install_max: SignedDuration,
    /// Probability (0–1) that an install fails.
    pub failure_rate: f64,
    /// Failure probabilities for particular patch ids, instead of `failure_rate`.
    pub patch_failure: BTreeMap<String, f64>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            install_min: SignedDuration::from_secs(5),
            install_max: SignedDuration::from_secs(20),
            failure_rate: 0.0,
            patch_failure: BTreeMap::new(),
        }
    }
}

impl Behaviour {
    fn failure_rate(&self, patch: &str) -> f64 {
        self.patch_failure
            .get(patch)
            .copied()
            .unwrap_or(self.failure_rate)
            .clamp(0.0, 1.0)
    }
}

/// Work the device is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Work {
    /// The patch.
    pub patch: String,
    /// Installing (true) or uninstalling (false).
    pub install: bool,
    /// When it finishes.
    pub done_at: Timestamp,
    /// Whether it succeeds.
    pub ok: bool,
}

/// A simulated device's agent state.
#[derive(Clone, Debug)]
pub struct SimDevice {
    rng: Rng,
    /// What the agent reports, one entry per applicable patch.
    pub patches: Vec<DevicePatchStatus>,
    /// The install or uninstall under way, if any.
    pub work: Option<Work>,
}

impl SimDevice {
    /// A device with nothing reported yet; its random draws derive from `seed` and `name`.
    pub fn new(seed: u64, name: &str) -> Self {
        Self {
            rng: Rng::derive(seed, name),
            patches: Vec::new(),
            work: None,
        }
    }

    /// Takes over what a device already reports (after the agent restarts). A patch left
    /// `Installing` by the previous run finishes as if it had just started.
    pub fn adopt(&mut self, reported: &[DevicePatchStatus], behaviour: &Behaviour, now: Timestamp) {
        self.patches = reported.to_vec();
        if let Some(p) = self
            .patches
            .iter()
            .find(|p| p.state == PatchState::Installing)
        {
            let patch = p.id.clone();
            self.start(patch, true, behaviour, now);
        }
    }

    /// Reports every id in `ids` that the device does not report yet as `Missing`;
    /// true if any was added.
    pub fn ensure_patches<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) -> bool {
        let mut added = false;
        for id in ids {
            if self.patches.iter().all(|p| p.id != id) {
                self.patches.push(DevicePatchStatus::missing(id));
                added = true;
            }
        }
        added
    }

    /// When the device next needs attention by itself: the end of its work.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.work.as_ref().map(|w| w.done_at)
    }

    /// A check-in at `now`: finishes work that is due, then starts what the device
    /// contract says comes next (uninstalls first: they undo harm). True if the report
    /// changed.
    pub fn check_in(&mut self, plan: &DevicePlan, behaviour: &Behaviour, now: Timestamp) -> bool {
        let changed = self.finish_due(now);
        if self.work.is_some() {
            return changed;
        }
        let next = contract::next_action(plan, |id| self.report(id), now);
        match next {
            Some(Action::Uninstall(id, _)) => {
                let id = id.to_string();
                self.start(id, false, behaviour, now);
                changed
            }
            Some(Action::Install(id, entry)) => {
                let id = id.to_string();
                self.start(id.clone(), true, behaviour, now);
                if let Some(r) = self.report_mut(&id) {
                    contract::start(r, Some(entry), now);
                }
                true
            }
            None => changed,
        }
    }

    fn start(&mut self, patch: String, install: bool, behaviour: &Behaviour, now: Timestamp) {
        let lo = behaviour.install_min.as_millis().max(0) as u64;
        let hi = (behaviour.install_max.as_millis().max(0) as u64).max(lo);
        let took = lo + self.rng.next_u64() % (hi - lo + 1);
        let ok = !install || !self.rng.chance(behaviour.failure_rate(&patch));
        let done_at = now
            .checked_add(SignedDuration::from_millis(took as i64))
            .unwrap_or(now);
        self.work = Some(Work {
            patch,
            install,
            done_at,
            ok,
        });
    }

    fn finish_due(&mut self, now: Timestamp) -> bool {
        let Some(work) = self.work.take_if(|w| w.done_at <= now) else {
            return false;
        };
        let Some(r) = self.report_mut(&work.patch) else {
            return false;
        };
        let outcome = match (work.install, work.ok) {
            (true, true) => Outcome::Installed,
            (true, false) => {
                Outcome::Failed("simulated failure: the installer exited with 0x80070643".into())
            }
            (false, _) => Outcome::Uninstalled,
        };
        contract::finish(r, outcome, work.done_at);
        true
    }

    /// What the device reports for one patch.
    pub fn report(&self, id: &str) -> Option<&DevicePatchStatus> {
        self.patches.iter().find(|p| p.id == id)
    }

    fn report_mut(&mut self, id: &str) -> Option<&mut DevicePatchStatus> {
        self.patches.iter_mut().find(|p| p.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PlanEntry;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn entry(not_before: &str, not_after: Option<&str>) -> PlanEntry {
        PlanEntry {
            rollout: "ws.kb1".into(),
            not_before: t(not_before),
            not_after: not_after.map(t),
            deadline: None,
            attempt: Some(format!("ws.kb1@{not_before}")),
            basis: None,
            answer_by: None,
        }
    }

    fn behaviour(failure_rate: f64) -> Behaviour {
        Behaviour {
            install_min: SignedDuration::from_secs(10),
            install_max: SignedDuration::from_secs(10),
            failure_rate,
            patch_failure: BTreeMap::new(),
        }
    }

    fn state(d: &SimDevice, id: &str) -> PatchState {
        d.report(id).map(|r| r.state).expect("reported")
    }

    #[test]
    fn installs_an_open_entry_once_and_reports_each_step() {
        let b = behaviour(0.0);
        let mut d = SimDevice::new(1, "ws-1");
        assert!(d.ensure_patches(["KB1", "KB2"]));
        assert!(!d.ensure_patches(["KB1"]), "already reported");
        let mut plan = DevicePlan::default();
        assert!(
            !d.check_in(&plan, &b, t("2026-01-01T00:00:00Z")),
            "no plan: nothing to do"
        );

        plan.install
            .insert("KB1".into(), entry("2026-01-01T00:00:00Z", None));
        assert!(d.check_in(&plan, &b, t("2026-01-01T00:00:01Z")));
        assert_eq!(state(&d, "KB1"), PatchState::Installing);
        assert_eq!(d.next_due(), Some(t("2026-01-01T00:00:11Z")));
        assert!(
            !d.check_in(&plan, &b, t("2026-01-01T00:00:05Z")),
            "still busy"
        );
        assert!(d.check_in(&plan, &b, t("2026-01-01T00:00:11Z")));
        let r = d.report("KB1").expect("KB1");
        assert_eq!(r.state, PatchState::Installed);
        assert_eq!(r.attempts, 1);
        assert_eq!(r.installed_at, Some(t("2026-01-01T00:00:11Z")));
        assert_eq!(
            state(&d, "KB2"),
            PatchState::Missing,
            "not planned, not touched"
        );
        assert!(!d.check_in(&plan, &b, t("2026-01-01T00:01:00Z")), "done");
    }

    #[test]
    fn a_failed_entry_is_not_retried_until_a_new_entry() {
        let b = behaviour(1.0);
        let mut d = SimDevice::new(1, "ws-1");
        d.ensure_patches(["KB1"]);
        let mut plan = DevicePlan::default();
        plan.install
            .insert("KB1".into(), entry("2026-01-01T00:00:00Z", None));
        d.check_in(&plan, &b, t("2026-01-01T00:00:00Z"));
        d.check_in(&plan, &b, t("2026-01-01T00:00:10Z"));
        let r = d.report("KB1").expect("KB1");
        assert_eq!(r.state, PatchState::Failed);
        assert!(
            r.message
                .as_deref()
                .is_some_and(|m| m.contains("0x80070643"))
        );
        assert!(
            !d.check_in(&plan, &b, t("2026-01-01T00:05:00Z")),
            "attempted once"
        );
        plan.install
            .insert("KB1".into(), entry("2026-01-02T00:00:00Z", None));
        assert!(
            d.check_in(&plan, &b, t("2026-01-02T00:00:00Z")),
            "a new entry"
        );
        assert_eq!(d.report("KB1").map(|r| r.attempts), Some(2));
    }

    #[test]
    fn entries_are_started_only_inside_their_window() {
        let b = behaviour(0.0);
        let mut d = SimDevice::new(1, "ws-1");
        d.ensure_patches(["KB1"]);
        let mut plan = DevicePlan::default();
        plan.install.insert(
            "KB1".into(),
            entry("2026-01-01T02:00:00Z", Some("2026-01-01T04:00:00Z")),
        );
        assert!(!d.check_in(&plan, &b, t("2026-01-01T01:59:59Z")), "before");
        assert!(!d.check_in(&plan, &b, t("2026-01-01T04:00:00Z")), "after");
        assert!(d.check_in(&plan, &b, t("2026-01-01T03:00:00Z")), "inside");
    }

    #[test]
    fn uninstalls_come_first_and_end_rolled_back() {
        let b = behaviour(0.0);
        let mut d = SimDevice::new(1, "ws-1");
        d.ensure_patches(["KB1", "KB2"]);
        let mut plan = DevicePlan::default();
        plan.install
            .insert("KB1".into(), entry("2026-01-01T00:00:00Z", None));
        d.check_in(&plan, &b, t("2026-01-01T00:00:00Z"));
        d.check_in(&plan, &b, t("2026-01-01T00:00:10Z"));
        assert_eq!(state(&d, "KB1"), PatchState::Installed);

        plan.install.clear();
        plan.install
            .insert("KB2".into(), entry("2026-01-01T00:00:00Z", None));
        plan.uninstall
            .insert("KB1".into(), entry("2026-01-01T00:00:00Z", None));
        d.check_in(&plan, &b, t("2026-01-01T00:01:00Z"));
        assert_eq!(state(&d, "KB2"), PatchState::Missing, "uninstall first");
        assert!(d.check_in(&plan, &b, t("2026-01-01T00:01:10Z")));
        assert_eq!(state(&d, "KB1"), PatchState::RolledBack);
        assert_eq!(d.report("KB1").and_then(|r| r.installed_at), None);
        assert_eq!(state(&d, "KB2"), PatchState::Installing, "then the install");
    }

    #[test]
    fn per_patch_failure_rates_override_the_default() {
        let mut b = behaviour(0.0);
        b.patch_failure.insert("BAD".into(), 1.0);
        let mut d = SimDevice::new(7, "ws-1");
        d.ensure_patches(["BAD", "GOOD"]);
        let mut plan = DevicePlan::default();
        plan.install
            .insert("BAD".into(), entry("2026-01-01T00:00:00Z", None));
        plan.install
            .insert("GOOD".into(), entry("2026-01-01T00:00:00Z", None));
        let mut now = t("2026-01-01T00:00:00Z");
        for _ in 0..4 {
            d.check_in(&plan, &b, now);
            now += SignedDuration::from_secs(10);
        }
        assert_eq!(state(&d, "BAD"), PatchState::Failed);
        assert_eq!(state(&d, "GOOD"), PatchState::Installed);
    }

    #[test]
    fn a_restarted_agent_finishes_the_install_it_left() {
        let b = behaviour(0.0);
        let reported = vec![DevicePatchStatus {
            id: "KB1".into(),
            state: PatchState::Installing,
            attempts: 1,
            last_attempt_at: Some(t("2026-01-01T00:00:00Z")),
            installed_at: None,
            message: None,
            attempt: None,
        }];
        let mut d = SimDevice::new(1, "ws-1");
        d.adopt(&reported, &b, t("2026-01-01T00:05:00Z"));
        assert_eq!(d.next_due(), Some(t("2026-01-01T00:05:10Z")));
        assert!(d.check_in(&DevicePlan::default(), &b, t("2026-01-01T00:05:10Z")));
        assert_eq!(state(&d, "KB1"), PatchState::Installed);
        assert_eq!(
            d.report("KB1").map(|r| r.attempts),
            Some(1),
            "not attempted again"
        );
    }
}
