//! The daily levers of `ringmaster …` and `kubectl ringmaster …`.
//!
//! - [`pull`]: the verbs that change what the operator does (approve, reject, pause,
//!   resume, promote, abort, freeze, except), each written in the caller's name.
//! - [`status`] and [`why`]: the read-only verbs, as pure views; [`show`] runs them
//!   against a cluster.
//!
//! Each read-only verb is a pure view over one tenant's [`Objects`] at an instant, computed the way
//! the operator would see the tenant then (the engine's own pass, and its ledger where a
//! device–patch pair's reason is needed), plus a renderer for people. The views are
//! `Serialize`, so `-o json|yaml` prints them as they are.
//!
//! - [`status`]: one tenant at a glance.
//! - [`why`]: why a device has no plan entry for a patch; why a rollout's ring does not
//!   move.
//!
//! No rule is decided here: every phase, reason and message is the engine's.

pub mod pull;
pub mod show;
pub mod status;
pub mod why;

use std::collections::HashMap;
use std::fmt::Write as _;

use jiff::{SignedDuration, Timestamp};

use crate::api::{
    DeploymentRing, DeploymentRingStatus, DeviceCompliance, ManagedDevice, PatchExceptionStatus,
    PatchPolicyStatus, PatchRolloutSpec, PatchRolloutStatus, RingPhase, RolloutPhase,
};
use crate::engine::rollout::{unreachable, unreachable_after};
use crate::engine::{self, Decisions};
use crate::report::cluster::Objects;

/// One engine pass over a tenant at `now`, with what it decided looked up by name: a
/// decided status where the pass decided one, else the status as stored.
pub(crate) struct Pass<'o> {
    objects: &'o Objects,
    now: Timestamp,
    decisions: Decisions,
    rollouts: HashMap<&'o str, usize>,
    devices: HashMap<String, usize>,
}

/// A rollout as the pass sees it: an existing one, or one the pass creates.
pub(crate) struct RolloutRef<'p> {
    /// Its name.
    pub name: &'p str,
    /// Its spec (the levers).
    pub spec: &'p PatchRolloutSpec,
    /// Its status, decided or stored.
    pub status: Option<&'p PatchRolloutStatus>,
    /// Whether it exists in the cluster (false: this pass creates it).
    pub exists: bool,
}

impl<'o> Pass<'o> {
    /// Runs the engine's pass over `objects` at `now`.
    pub(crate) fn run(objects: &'o Objects, now: Timestamp) -> Self {
        let decisions = engine::decide(&objects.snapshot(), now);
        let rollouts = objects
            .rollouts
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.metadata.name.as_deref().map(|n| (n, i)))
            .collect();
        let devices = decisions
            .devices
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.clone(), i))
            .collect();
        Self {
            objects,
            now,
            decisions,
            rollouts,
            devices,
        }
    }

    /// The instant of the pass.
    pub(crate) fn now(&self) -> Timestamp {
        self.now
    }

    /// The objects it ran over.
    pub(crate) fn objects(&self) -> &'o Objects {
        self.objects
    }

    /// What it decided.
    pub(crate) fn decisions(&self) -> &Decisions {
        &self.decisions
    }

    /// Every rollout: the existing ones (by name), then those the pass creates.
    pub(crate) fn rollouts(&self) -> Vec<RolloutRef<'_>> {
        let mut out: Vec<RolloutRef<'_>> = self
            .objects
            .rollouts
            .iter()
            .filter_map(|r| {
                let name = r.metadata.name.as_deref()?;
                Some(RolloutRef {
                    name,
                    spec: &r.spec,
                    status: self.rollout_status(name),
                    exists: true,
                })
            })
            .collect();
        out.extend(self.decisions.new_rollouts.iter().map(|n| RolloutRef {
            name: &n.name,
            spec: &n.spec,
            status: self.rollout_status(&n.name),
            exists: false,
        }));
        out.sort_by(|a, b| a.name.cmp(b.name));
        out
    }

    /// One rollout by name.
    pub(crate) fn rollout(&self, name: &str) -> Option<RolloutRef<'_>> {
        self.rollouts().into_iter().find(|r| r.name == name)
    }

    /// The rollout of a patch under a policy, existing or created by this pass.
    pub(crate) fn rollout_of(&self, policy: &str, patch: &str) -> Option<RolloutRef<'_>> {
        self.rollouts()
            .into_iter()
            .find(|r| r.spec.policy == policy && r.spec.patch == patch)
    }

    /// What a patch's rollout under a policy waits for in a ring, in the operator's words.
    pub(crate) fn ring_waiting_for(&self, policy: &str, patch: &str, ring: &str) -> Option<String> {
        let s = self.rollout_of(policy, patch)?.status?;
        s.rings.iter().find(|r| r.name == ring)?.waiting_for.clone()
    }

    /// A rollout's status: as decided, else as stored.
    pub(crate) fn rollout_status(&self, name: &str) -> Option<&PatchRolloutStatus> {
        let decided = decided(&self.decisions.rollouts, name).map(|s| &**s);
        decided.or_else(|| {
            let i = *self.rollouts.get(name)?;
            self.objects.rollouts[i].status.as_ref()
        })
    }

    /// A policy's status: as decided, else as stored.
    pub(crate) fn policy_status(&self, name: &str) -> Option<&PatchPolicyStatus> {
        decided(&self.decisions.policies, name).or_else(|| {
            let p = self
                .objects
                .policies
                .iter()
                .find(|p| named(&p.metadata, name))?;
            p.status.as_ref()
        })
    }

    /// A ring's status: as decided, else as stored.
    pub(crate) fn ring_status(&self, name: &str) -> Option<&DeploymentRingStatus> {
        decided(&self.decisions.rings, name).or_else(|| self.ring(name)?.status.as_ref())
    }

    /// An exception's status: as decided, else as stored.
    pub(crate) fn exception_status(&self, name: &str) -> Option<&PatchExceptionStatus> {
        decided(&self.decisions.exceptions, name).or_else(|| {
            let e = self
                .objects
                .exceptions
                .iter()
                .find(|e| named(&e.metadata, name))?;
            e.status.as_ref()
        })
    }

    /// A ring by name.
    pub(crate) fn ring(&self, name: &str) -> Option<&'o DeploymentRing> {
        self.objects.rings.iter().find(|r| named(&r.metadata, name))
    }

    /// A device's summary: as decided (the pass lists only those that change), else as
    /// stored.
    pub(crate) fn compliance(&self, device: &'o ManagedDevice) -> Option<&DeviceCompliance> {
        let name = device.metadata.name.as_deref().unwrap_or("");
        match self.devices.get(name) {
            Some(&i) => Some(&self.decisions.devices[i].1),
            None => device.status.as_ref()?.compliance.as_ref(),
        }
    }

    /// When a device was last seen: its `lastSeen` or its Lease's check-in, whichever is
    /// later (the device contract's rule, as the engine reads it).
    pub(crate) fn last_seen(&self, device: &ManagedDevice) -> Option<Timestamp> {
        crate::contract::last_seen(device, &self.objects.check_ins)
    }

    /// Whether a device is unreachable now, by the engine's rule and its ring's
    /// `unreachableAfter`.
    pub(crate) fn unreachable(&self, device: &'o ManagedDevice) -> bool {
        let seen = self.last_seen(device);
        let ring = self
            .compliance(device)
            .and_then(|c| c.ring.as_deref())
            .and_then(|r| self.ring(r));
        unreachable(seen, unreachable_after(ring.map(|r| &r.spec)), self.now)
    }
}

/// Why a rollout halted, in the operator's words and as its RingHalted Event says it
/// (`ring <ring> halted: <why>`): from its halted ring's `waitingFor`, else from the last
/// RingHalted entry of its history (a rolled-back ring no longer says it).
pub(crate) fn halt_words(s: &PatchRolloutStatus) -> Option<String> {
    s.rings
        .iter()
        .filter(|r| r.phase == RingPhase::Halted)
        .find_map(|r| Some(format!("ring {} {}", r.name, r.waiting_for.as_deref()?)))
        .or_else(|| {
            s.history
                .iter()
                .rev()
                .find(|h| h.reason == crate::api::Reason::RingHalted)
                .map(|h| h.message.clone())
        })
}

fn decided<'d, T>(list: &'d [(String, T)], name: &str) -> Option<&'d T> {
    list.iter().find(|(n, _)| n == name).map(|(_, s)| s)
}

fn named(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, name: &str) -> bool {
    meta.name.as_deref() == Some(name)
}

/// How a cell is coloured on a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tone {
    /// No colour.
    Plain,
    /// Green: passed, completed, installed.
    Good,
    /// Yellow: waiting, paused, held, due soon.
    Warn,
    /// Red: halted, aborted, failed, overdue, unreachable.
    Bad,
}

const RESET: &str = "\x1b[0m";

/// `text` in its tone's colour when `color` is set.
pub(crate) fn paint(text: &str, tone: Tone, color: bool) -> String {
    let code = match tone {
        Tone::Plain => None,
        Tone::Good => Some("\x1b[32m"),
        Tone::Warn => Some("\x1b[33m"),
        Tone::Bad => Some("\x1b[31m"),
    };
    match code.filter(|_| color && !text.is_empty()) {
        Some(c) => format!("{c}{text}{RESET}"),
        None => text.to_string(),
    }
}

/// A table with aligned columns, as `kubectl get` prints one: upper-case headers,
/// three spaces between columns, no trailing blanks.
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<(String, Tone)>>,
}

impl Table {
    /// A table with these column headers (none: a table of keys and values).
    pub(crate) fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row of uncoloured cells.
    pub(crate) fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.toned(cells.into_iter().map(|c| (c.into(), Tone::Plain)));
    }

    /// Adds a row of cells, each with its tone.
    pub(crate) fn toned(&mut self, cells: impl IntoIterator<Item = (String, Tone)>) {
        self.rows.push(cells.into_iter().collect());
    }

    /// The table as text, each line indented by `indent` spaces.
    pub(crate) fn render(&self, indent: usize, color: bool) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0usize; columns];
        let header: Vec<(String, Tone)> = self
            .header
            .iter()
            .map(|h| (h.clone(), Tone::Plain))
            .collect();
        let lines = || {
            (!header.is_empty())
                .then_some(&header)
                .into_iter()
                .chain(&self.rows)
        };
        for row in lines() {
            for (i, (text, _)) in row.iter().enumerate() {
                widths[i] = widths[i].max(text.chars().count());
            }
        }
        let mut out = String::new();
        for row in lines() {
            let mut line = " ".repeat(indent);
            for (i, (text, tone)) in row.iter().enumerate() {
                let last = i + 1 == row.len();
                line.push_str(&paint(text, *tone, color));
                if !last {
                    let pad = widths[i] - text.chars().count() + 3;
                    line.push_str(&" ".repeat(pad));
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    }
}

/// An instant for people: `2023-11-15 05:00Z`.
pub(crate) fn when(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%MZ").to_string()
}

/// A length of time in its two largest units: `1d4h`, `3h15m`, `45m`, `<1m`.
pub(crate) fn span(d: SignedDuration) -> String {
    let secs = d.as_secs().abs();
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (days, hours, minutes) {
        (0, 0, 0) => "<1m".into(),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

/// An instant relative to `now`: `in 3h15m`, `2d4h ago`, or `now` within a minute.
pub(crate) fn relative(t: Timestamp, now: Timestamp) -> String {
    let d = t.duration_since(now);
    if d.as_secs().abs() < 60 {
        "now".into()
    } else if d.is_negative() {
        format!("{} ago", span(d))
    } else {
        format!("in {}", span(d))
    }
}

/// An instant with how far it is from `now`: `2023-11-15 05:00Z (in 5h)`.
pub(crate) fn when_relative(t: Timestamp, now: Timestamp) -> String {
    format!("{} ({})", when(t), relative(t, now))
}

/// The tone of a ring's phase.
pub(crate) fn ring_tone(phase: RingPhase) -> Tone {
    match phase {
        RingPhase::Passed => Tone::Good,
        RingPhase::Halted | RingPhase::RollingBack | RingPhase::RolledBack => Tone::Bad,
        RingPhase::Paused => Tone::Warn,
        RingPhase::Pending | RingPhase::Deploying | RingPhase::Soaking => Tone::Plain,
    }
}

/// The tone of a rollout's phase.
pub(crate) fn rollout_tone(phase: Option<RolloutPhase>) -> Tone {
    match phase {
        Some(RolloutPhase::Completed) => Tone::Good,
        Some(
            RolloutPhase::Halted
            | RolloutPhase::RollingBack
            | RolloutPhase::RolledBack
            | RolloutPhase::Aborted,
        ) => Tone::Bad,
        Some(RolloutPhase::Paused | RolloutPhase::Held) => Tone::Warn,
        Some(RolloutPhase::Progressing) | None => Tone::Plain,
    }
}

/// A phase's name as the status writes it.
pub(crate) fn phase_name<T: serde::Serialize>(phase: &T) -> String {
    match serde_json::to_value(phase) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_keep_two_units() {
        let s = |secs: i64| span(SignedDuration::from_secs(secs));
        assert_eq!(s(30), "<1m");
        assert_eq!(s(45 * 60), "45m");
        assert_eq!(s(3 * 3600), "3h");
        assert_eq!(s(3 * 3600 + 15 * 60), "3h15m");
        assert_eq!(s(86_400 + 4 * 3600 + 59), "1d4h");
        assert_eq!(s(-2 * 86_400), "2d");
    }

    #[test]
    fn instants_read_relative_to_now() {
        let now: Timestamp = "2023-11-15T00:00:00Z".parse().expect("instant");
        let at = |secs: i64| relative(now + SignedDuration::from_secs(secs), now);
        assert_eq!(at(0), "now");
        assert_eq!(at(-59), "now");
        assert_eq!(at(-3 * 3600), "3h ago");
        assert_eq!(at(90 * 60), "in 1h30m");
    }

    #[test]
    fn tables_align_on_plain_width_and_colour_only_when_asked() {
        let mut t = Table::new(["A", "LONGER"]);
        t.toned([
            ("Halted 3✗".to_string(), Tone::Bad),
            ("x".into(), Tone::Good),
        ]);
        t.row(["-", "y"]);
        let plain = t.render(0, false);
        assert_eq!(plain, "A           LONGER\nHalted 3✗   x\n-           y\n");
        let colored = t.render(0, true);
        assert!(colored.contains("\x1b[31mHalted 3✗\x1b[0m   \x1b[32mx\x1b[0m"));
        assert!(!plain.contains('\x1b'));
    }
}
