//! The fleet behaviour file (`kind: Fleet`, `apiVersion: sim.ringmaster.dev/v1alpha1`):
//! which simulated devices exist and how their agents behave, and the scripted actions
//! people take during the run.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};

use crate::api::Duration;

/// The API version of simulator-only kinds.
pub const SIM_API_VERSION: &str = "sim.ringmaster.dev/v1alpha1";

/// The whole fleet behaviour file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FleetSpec {
    /// When the simulation starts (RFC 3339); `--start` overrides it.
    #[serde(default)]
    pub start: Option<jiff::Timestamp>,
    /// How many days it runs; `--days` overrides it (default 30).
    #[serde(default)]
    pub days: Option<u32>,
    /// The tenant's time zone (IANA), in which its months begin and end for the evidence
    /// packet; `--time-zone` overrides it (default UTC).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Behaviour of every agent unless its group says otherwise.
    #[serde(default)]
    pub defaults: AgentBehaviour,
    /// Groups of generated devices.
    #[serde(default)]
    pub groups: Vec<DeviceGroup>,
    /// Behaviour of the devices no group generates (ManagedDevices written in the
    /// manifests, or read from a cluster by the preview's `--from-cluster`), by label:
    /// the first rule whose selector matches a device's labels applies, then `defaults`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub behaviours: Vec<BehaviourRule>,
    /// Failure probabilities for particular patches (and optionally particular devices).
    #[serde(default)]
    pub failures: Vec<FailureRule>,
    /// What people do during the run.
    #[serde(default)]
    pub actions: Vec<Action>,
}

/// How an agent behaves. Unset fields fall back to the fleet's defaults, then to
/// built-in values (check in every 15m, installs take 10m–40m, 1% fail, no offline spells).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentBehaviour {
    /// How often the agent checks in (reports and reads its plan).
    #[serde(default)]
    pub check_in: Option<Duration>,
    /// Install time, drawn uniformly from this range.
    #[serde(default)]
    pub install_time: Option<Range>,
    /// Probability (0–1) that an install fails, unless a failure rule says otherwise.
    #[serde(default)]
    pub failure_rate: Option<f64>,
    /// Offline spells: the chance (0–1) per day that the device goes offline, and for how long.
    #[serde(default)]
    pub offline: Option<Offline>,
}

/// A uniform range of durations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// The shortest.
    pub min: Duration,
    /// The longest.
    pub max: Duration,
}

/// Offline spells.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offline {
    /// Chance per day of going offline (0–1).
    pub chance: f64,
    /// How long a spell lasts.
    pub length: Range,
}

/// A group of generated devices: `prefix-001` … `prefix-NNN`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceGroup {
    /// Device name prefix.
    pub prefix: String,
    /// How many devices.
    pub count: u32,
    /// Labels of every device (tier, ring, class, …).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Operating system family (`windows`, `linux`, …).
    #[serde(default)]
    pub os: Option<String>,
    /// Patches that apply to these devices: ids, or `*` for every patch of `vendors`.
    #[serde(default)]
    pub patches: Vec<String>,
    /// With `*`: only patches from these vendors.
    #[serde(default)]
    pub vendors: Vec<String>,
    /// Patch ids these devices already have installed at the start.
    #[serde(default)]
    pub installed: Vec<String>,
    /// How its agents behave.
    #[serde(default)]
    pub behaviour: AgentBehaviour,
}

/// How the agents of the devices a selector matches behave, for devices no group
/// generates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BehaviourRule {
    /// The devices, by their labels.
    pub selector: LabelSelector,
    /// How their agents behave (unset fields: the fleet's defaults).
    pub behaviour: AgentBehaviour,
}

/// A failure probability for a patch, optionally only on some devices.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FailureRule {
    /// The patch id.
    pub patch: String,
    /// Probability (0–1) that its install fails.
    pub rate: f64,
    /// Only on devices matching this selector.
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    /// The installer's message on failure (default `0x80070643`).
    #[serde(default)]
    pub message: Option<String>,
}

/// Something a person does at an instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Action {
    /// When.
    pub at: jiff::Timestamp,
    /// Approve a patch under a policy (adds it to `approval.approve`).
    #[serde(default)]
    pub approve: Option<PolicyPatch>,
    /// Reject a patch under a policy (adds it to `approval.reject`).
    #[serde(default)]
    pub reject: Option<PolicyPatch>,
    /// Set an exception's `approvedBy`.
    #[serde(default)]
    pub approve_exception: Option<ApproveException>,
    /// Promote a ring of a rollout (adds it to `spec.promote`).
    #[serde(default)]
    pub promote: Option<RolloutRing>,
    /// Pause a rollout.
    #[serde(default)]
    pub pause: Option<String>,
    /// Resume a rollout.
    #[serde(default)]
    pub resume: Option<String>,
    /// Import feed files into the catalog, as a `ringmaster catalog import` run would
    /// (MSRC, OSV, KEV or EPSS, each told by its content): a new Patch Tuesday, a CVE
    /// added to CISA's KEV list. Paths are relative to the Fleet file's directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalog: Vec<std::path::PathBuf>,
}

/// A patch under a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    /// The policy.
    pub policy: String,
    /// The patch id.
    pub patch: String,
}

/// An exception approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveException {
    /// The exception.
    pub name: String,
    /// The approver.
    pub by: String,
}

/// A ring of a rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutRing {
    /// The rollout.
    pub rollout: String,
    /// The ring.
    pub ring: String,
}

/// SplitMix64: a small, fast, well-distributed generator whose output never changes
/// across versions, so a seed replays the same run forever.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator derived from this one's seed and a label (a device name), so that
    /// adding a device does not change every other device's draws.
    pub fn derive(seed: u64, label: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
        for b in label.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self(h)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform draw in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A duration drawn uniformly from a range, in whole minutes (at least one).
    pub fn duration(&mut self, r: Range) -> Duration {
        let (lo, hi) = (
            r.min.as_secs() / 60,
            r.max.as_secs().max(r.min.as_secs()) / 60,
        );
        let span = (hi - lo + 1).max(1) as u64;
        Duration::from_secs((lo + (self.next_u64() % span) as i64).max(1) * 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_stable_across_versions() {
        let mut r = Rng::new(42);
        assert_eq!(r.next_u64(), 13679457532755275413);
        assert_eq!(
            Rng::derive(7, "ws-001").next_u64(),
            Rng::derive(7, "ws-001").next_u64()
        );
        assert_ne!(
            Rng::derive(7, "ws-001").next_u64(),
            Rng::derive(7, "ws-002").next_u64()
        );
    }

    #[test]
    fn durations_stay_in_range() {
        let mut r = Rng::new(1);
        let range = Range {
            min: "10m".parse().unwrap(),
            max: "40m".parse().unwrap(),
        };
        for _ in 0..1000 {
            let d = r.duration(range).as_secs();
            assert!((600..=2400).contains(&d), "{d}");
        }
    }
}
