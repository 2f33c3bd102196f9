//! `DeploymentRing`: a group of devices a patch reaches together, how fast, when, and
//! what it must show before it moves on.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Duration, Freeze, MaintenanceWindow};

/// A group of devices a patch reaches together: how many at once, in which maintenance
/// windows, the gates before promotion to the next ring, and when to halt.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, kube::KubeSchema)]
#[kube(
    group = "patching.ringmaster.dev",
    version = "v1alpha1",
    kind = "DeploymentRing",
    namespaced,
    status = "DeploymentRingStatus",
    shortname = "ring",
    category = "patching",
    doc = "A group of devices a patch reaches together, with its pace, windows, promotion gates and halt rule.",
    printcolumn(
        name = "Members",
        type_ = "integer",
        json_path = ".status.members",
        description = "Devices in this ring"
    ),
    printcolumn(
        name = "Max",
        type_ = "string",
        json_path = ".spec.maxConcurrent",
        description = "Installs in progress at once"
    ),
    printcolumn(
        name = "Window",
        type_ = "string",
        json_path = ".status.window",
        description = "Whether a maintenance window is open, or when the next opens"
    ),
    printcolumn(
        name = "Active",
        type_ = "integer",
        json_path = ".status.activeRollouts",
        description = "Rollouts deploying in this ring"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    cel
)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRingSpec {
    /// The devices of this ring (within a policy's devices; the first ring of the
    /// policy's list that matches a device claims it).
    pub device_selector: LabelSelector,
    /// Installs in progress at once: a count (at least 1) or a percentage of the ring's
    /// targeted devices (`25%`, rounded up, at least one device).
    #[serde(default = "default_max_concurrent")]
    #[schemars(schema_with = "int_or_percent_schema")]
    pub max_concurrent: IntOrString,
    /// When installs may start. Unset or empty means at any time. Work left unfinished
    /// when a window closes resumes in the next one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub maintenance_windows: Vec<MaintenanceWindow>,
    /// What a patch must show in this ring before the next ring may start.
    #[serde(default)]
    pub promotion: PromotionSpec,
    /// When to stop a failing patch, and what to do then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt: Option<HaltSpec>,
    /// A device not seen for this long is Unreachable: reported, given no new work, and
    /// left out of success-rate denominators (default 72h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable_after: Option<Duration>,
    /// How long an admitted device's agent has to report a result (Installed,
    /// PendingReboot or Failed) for its attempt, counted in time inside this ring's
    /// maintenance windows (default 24h). Past it the attempt counts as failed with reason
    /// TimedOut, so one silent agent cannot stall the ring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_timeout: Option<Duration>,
    /// Change freezes for this ring only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub freezes: Vec<Freeze>,
    /// When the ring's agents reboot a device after an install (default: only when the
    /// install requires it, inside a maintenance window, after 5 minutes' notice). A
    /// device waiting for its reboot reports PendingReboot and keeps its `maxConcurrent`
    /// slot, so at most `maxConcurrent` devices of the ring are installing or rebooting
    /// at once.
    #[serde(default)]
    pub reboot: RebootSpec,
    /// What the ring's agents check after an install, and again after the reboot that
    /// completes it: a check that fails makes the install a failure, with the check's
    /// word as its message, and the ring's gates count it.
    #[serde(default, skip_serializing_if = "HealthChecks::is_empty")]
    pub health_checks: HealthChecks,
}

/// When an agent reboots a device after installing a patch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RebootPolicy {
    /// Reboot when the device says it must (Debian's reboot-required flag,
    /// `needs-restarting -r`, a kernel newer than the running one).
    #[default]
    IfRequired,
    /// Never reboot: the device reports PendingReboot until a person reboots it.
    Never,
    /// Reboot after every install.
    Always,
}

/// A ring's reboot rules, for the agents of its devices.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RebootSpec {
    /// When to reboot (default `IfRequired`). Reboots start only inside one of the
    /// ring's maintenance windows (any time when it has none).
    #[serde(default)]
    pub policy: RebootPolicy,
    /// How long logged-in users are warned before the reboot (default `5m`; `0m`
    /// reboots at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<Duration>,
}

/// Checks an agent runs on the device after an install and after its reboot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, kube::KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthChecks {
    /// systemd units that must be active (`systemctl is-active`), e.g. `nginx.service`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub units: Vec<String>,
    /// Shell commands (`sh -c`) that must exit 0, run as the agent's user (root on a
    /// host). Whoever may edit the ring may run these on its devices: grant it
    /// accordingly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub commands: Vec<String>,
    /// HTTP probes on the device that must answer with a success status (2xx, or
    /// `expectStatus`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub http: Vec<HttpCheck>,
    /// How long each check may take (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// How long after an install (or a boot) to wait before checking, for services to
    /// settle (default `0s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
}

impl HealthChecks {
    /// No checks at all.
    pub fn is_empty(&self) -> bool {
        self.units.is_empty() && self.commands.is_empty() && self.http.is_empty()
    }
}

/// One HTTP probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, kube::KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpCheck {
    /// The URL, `http://` or `https://`, usually on the device itself
    /// (`http://127.0.0.1:8080/healthz`).
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("url must start with http:// or https://"))]
    pub url: String,
    /// The status the probe must answer with (default: any 2xx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 599))]
    pub expect_status: Option<u16>,
}

fn default_max_concurrent() -> IntOrString {
    IntOrString::Int(1)
}

fn int_or_percent_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    // `nullable: false` stops kube's OptionalIntOrString transform from marking the field
    // nullable: an API server would then keep a `null` (skipping the default) that the
    // non-optional `IntOrString` cannot decode.
    schemars::json_schema!({
        "x-kubernetes-int-or-string": true,
        "nullable": false,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-validations": [{
            "rule": "string(self).matches('^([1-9][0-9]{0,8}|([1-9][0-9]?|100)%)$')",
            "message": "maxConcurrent is a count of at least 1 or a percentage from 1% to 100%"
        }],
        "description": "A count (at least 1) or a percentage of the ring's targeted devices."
    })
}

/// Gates a patch must pass in this ring before it is promoted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionSpec {
    /// Time after the ring's last install finished before it may pass (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<Duration>,
    /// Lowest share of successful installs (percent of finished attempts) to pass
    /// (default 100).
    #[serde(default = "default_success_rate")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub min_success_rate: f64,
    /// Most failed installs the ring may have and still pass (unset: no limit beyond
    /// the success rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<u32>,
    /// The ring passes only when a person lists it in the rollout's `spec.promote`.
    #[serde(default)]
    pub require_manual_approval: bool,
    /// Soak for patches approved by an emergency rule (default: the normal soak).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency_soak: Option<Duration>,
}

impl Default for PromotionSpec {
    fn default() -> Self {
        Self {
            soak: None,
            min_success_rate: default_success_rate(),
            max_failures: None,
            require_manual_approval: false,
            emergency_soak: None,
        }
    }
}

fn default_success_rate() -> f64 {
    100.0
}

/// What to do when a patch fails in this ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OnFailure {
    /// Stop admitting and promoting; a person decides (promote, abort or fix and resume).
    #[default]
    Pause,
    /// Stop the rollout for good; devices that have not started are released.
    Abort,
    /// Uninstall the patch from every device of the policy that installed it (when the
    /// patch is uninstallable; otherwise behave as Pause).
    Rollback,
}

/// The halt rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HaltSpec {
    /// Percentage of failed attempts above which the ring halts.
    #[schemars(range(min = 0.0, max = 100.0))]
    pub failure_rate: f64,
    /// Finished attempts needed before the rate counts.
    #[serde(default = "default_min_samples")]
    #[schemars(range(min = 1))]
    pub min_samples: u32,
    /// What happens when it halts (default `Pause`).
    #[serde(default)]
    pub on_failure: OnFailure,
}

fn default_min_samples() -> u32 {
    1
}

/// What the operator observed for a ring.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRingStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling and Stalled, in the kstatus sense.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// One line on the ring's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The ring's own change freeze in force, if any (`reason until …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze: Option<String>,
    /// Devices this ring claims, over every policy that lists it.
    #[serde(default)]
    pub members: u32,
    /// Devices this ring's selector matches that an earlier ring of a policy claims.
    #[serde(default)]
    pub claimed_elsewhere: u32,
    /// Policies that list this ring.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// Rollouts deploying or soaking in this ring.
    #[serde(default)]
    pub active_rollouts: u32,
    /// `Open until …`, `Opens …`, or `Always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}
