//! The operator's Prometheus metrics. Their names are a contract: the chart's Grafana
//! dashboard queries them.
//!
//! Per-tenant gauges are set from each reconcile's decisions (the statuses the operator
//! just made true), and a namespace's series that no longer exist are removed.
//! Instants are exported as `…_timestamp_seconds` gauges (Unix seconds), so that an alert
//! compares them with `time()` and does not depend on when the operator last ran.
//! `ringmaster_time_to_install_seconds` is a histogram: each device–patch pair is observed
//! once, when the leader's watch sees it become Installed.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use jiff::Timestamp;

use crate::api::{ExceptionPhase, RingPhase, RolloutPhase, Severity};
use crate::engine::Decisions;
use crate::engine::rollout::{unreachable, unreachable_after};

use super::ObjectKind;
use super::objects::Objects;

/// `controller`, `result`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `tenant` or `catalog`.
    pub controller: String,
    /// `success` or `error`.
    pub result: String,
}

/// `controller`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `tenant` or `catalog`.
    pub controller: String,
}

/// `namespace`, `policy`, `tier`, `ring`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeviceLabels {
    /// The namespace.
    pub namespace: String,
    /// The governing policy (empty when none).
    pub policy: String,
    /// The device's tier under that policy.
    pub tier: String,
    /// Its ring (empty when none).
    pub ring: String,
}

/// `namespace`, `policy`, `tier`, `severity`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SlaLabels {
    /// The namespace.
    pub namespace: String,
    /// The policy.
    pub policy: String,
    /// The device tier.
    pub tier: String,
    /// The patch severity.
    pub severity: String,
}

/// `namespace`, `rollout`, `ring`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RingLabels {
    /// The namespace.
    pub namespace: String,
    /// The PatchRollout.
    pub rollout: String,
    /// The ring.
    pub ring: String,
}

/// `namespace`, `rollout`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RolloutLabels {
    /// The namespace.
    pub namespace: String,
    /// The PatchRollout.
    pub rollout: String,
}

/// `namespace`, `exception`, `owner`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExceptionLabels {
    /// The namespace.
    pub namespace: String,
    /// The PatchException.
    pub exception: String,
    /// Its `spec.owner`.
    pub owner: String,
}

/// `namespace`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabels {
    /// The namespace.
    pub namespace: String,
}

/// `namespace`, `phase`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// The namespace.
    pub namespace: String,
    /// The phase.
    pub phase: String,
}

/// `kind`, `verb`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// The kind written.
    pub kind: String,
    /// `create` or `patch`.
    pub verb: String,
}

type Ratio = Gauge<f64, AtomicU64>;
/// Unix seconds.
type Instant = Gauge<f64, AtomicU64>;
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The series one namespace set at its last reconcile, to remove those that disappear.
#[derive(Default)]
struct TenantSeries {
    devices: HashSet<DeviceLabels>,
    sla: HashSet<SlaLabels>,
    sla_pairs: HashSet<SlaLabels>,
    rings: HashSet<RingLabels>,
    exceptions: HashSet<PhaseLabels>,
    rollouts: HashSet<PhaseLabels>,
    progress: HashSet<RolloutLabels>,
    expiries: HashSet<ExceptionLabels>,
    last_seen: Option<NamespaceLabels>,
}

/// Every metric, and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    reconcile_total: Family<ReconcileLabels, Counter>,
    reconcile_duration: HistogramFamily<ControllerLabels>,
    devices: Family<DeviceLabels, Gauge>,
    devices_unreachable: Family<DeviceLabels, Gauge>,
    devices_last_seen: Family<NamespaceLabels, Instant>,
    sla_compliance: Family<SlaLabels, Ratio>,
    sla_overdue: Family<SlaLabels, Gauge>,
    sla_due_soon: Family<SlaLabels, Gauge>,
    time_to_install: HistogramFamily<SlaLabels>,
    ring_failure_rate: Family<RingLabels, Ratio>,
    ring_rollback_rate: Family<RingLabels, Ratio>,
    ring_halted: Family<RingLabels, Gauge>,
    exceptions: Family<PhaseLabels, Gauge>,
    exception_expiry: Family<ExceptionLabels, Instant>,
    rollouts: Family<PhaseLabels, Gauge>,
    rollout_progress: Family<RolloutLabels, Instant>,
    api_writes: Family<WriteLabels, Counter>,
    api_throttled: Counter,
    shards_held: Gauge,
    tenants: Mutex<HashMap<String, TenantSeries>>,
}

fn duration_buckets() -> Histogram {
    // 5 ms … ~82 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

fn install_buckets() -> Histogram {
    const HOUR: f64 = 3600.0;
    const DAY: f64 = 24.0 * HOUR;
    Histogram::new([
        HOUR,
        4.0 * HOUR,
        12.0 * HOUR,
        DAY,
        2.0 * DAY,
        3.0 * DAY,
        7.0 * DAY,
        14.0 * DAY,
        30.0 * DAY,
        60.0 * DAY,
        90.0 * DAY,
        180.0 * DAY,
        365.0 * DAY,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let reconcile_total = Family::<ReconcileLabels, Counter>::default();
        // Counters get `_total` appended when encoded.
        registry.register(
            "ringmaster_reconcile",
            "Reconciles, by controller and result",
            reconcile_total.clone(),
        );
        let reconcile_duration: HistogramFamily<ControllerLabels> =
            Family::new_with_constructor(duration_buckets);
        registry.register_with_unit(
            "ringmaster_reconcile_duration",
            "How long reconciles take, by controller",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let devices = Family::<DeviceLabels, Gauge>::default();
        registry.register(
            "ringmaster_devices",
            "ManagedDevices by governing policy, tier and ring",
            devices.clone(),
        );
        let devices_unreachable = Family::<DeviceLabels, Gauge>::default();
        registry.register(
            "ringmaster_devices_unreachable",
            "ManagedDevices whose agent has not checked in for their ring's unreachableAfter (72h by default), by governing policy, tier and ring",
            devices_unreachable.clone(),
        );
        let devices_last_seen = Family::<NamespaceLabels, Instant>::default();
        registry.register_with_unit(
            "ringmaster_devices_last_seen_timestamp",
            "The newest check-in (status.lastSeen or the device's Lease renewal, whichever is later) of any ManagedDevice of the namespace, in Unix seconds",
            Unit::Seconds,
            devices_last_seen.clone(),
        );
        let sla_compliance = Family::<SlaLabels, Ratio>::default();
        registry.register(
            "ringmaster_sla_compliance_ratio",
            "Share of device-patch pairs within their SLA (installed on time, or open and not yet due), by policy, tier and severity",
            sla_compliance.clone(),
        );
        let sla_overdue = Family::<SlaLabels, Gauge>::default();
        registry.register(
            "ringmaster_sla_overdue_pairs",
            "Device-patch pairs past their SLA deadline and not installed (SLA breached), by policy, tier and severity",
            sla_overdue.clone(),
        );
        let sla_due_soon = Family::<SlaLabels, Gauge>::default();
        registry.register(
            "ringmaster_sla_due_soon_pairs",
            "Device-patch pairs not installed whose SLA deadline is within the policy's dueSoonMargin (DueSoon), by policy, tier and severity",
            sla_due_soon.clone(),
        );
        let time_to_install: HistogramFamily<SlaLabels> =
            Family::new_with_constructor(install_buckets);
        registry.register_with_unit(
            "ringmaster_time_to_install",
            "Time from a patch's first release to its install on a device, observed once per pair when it becomes Installed",
            Unit::Seconds,
            time_to_install.clone(),
        );
        let ring_failure_rate = Family::<RingLabels, Ratio>::default();
        registry.register(
            "ringmaster_ring_failure_rate",
            "Failed installs over finished installs (installed + failed) of a rollout in a ring",
            ring_failure_rate.clone(),
        );
        let ring_rollback_rate = Family::<RingLabels, Ratio>::default();
        registry.register(
            "ringmaster_ring_rollback_rate",
            "Devices the patch was rolled back from over those that had it (installed + rolled back), per rollout and ring",
            ring_rollback_rate.clone(),
        );
        let ring_halted = Family::<RingLabels, Gauge>::default();
        registry.register(
            "ringmaster_ring_halted",
            "1 when a rollout's ring is Halted (failed its halt rule or gates), else 0",
            ring_halted.clone(),
        );
        let exceptions = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "ringmaster_exceptions",
            "PatchExceptions by phase",
            exceptions.clone(),
        );
        let rollouts = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "ringmaster_rollouts",
            "PatchRollouts by phase",
            rollouts.clone(),
        );
        let exception_expiry = Family::<ExceptionLabels, Instant>::default();
        registry.register_with_unit(
            "ringmaster_exception_expiry_timestamp",
            "When an Active PatchException expires (spec.expiresAt), in Unix seconds",
            Unit::Seconds,
            exception_expiry.clone(),
        );
        let rollout_progress = Family::<RolloutLabels, Instant>::default();
        registry.register_with_unit(
            "ringmaster_rollout_last_progress_timestamp",
            "For a Progressing PatchRollout, its last progress in Unix seconds: the latest ring start, install or pass (its approval before any)",
            Unit::Seconds,
            rollout_progress.clone(),
        );
        let api_writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "ringmaster_api_writes",
            "Writes sent to the API server, by kind and verb (zero in steady state)",
            api_writes.clone(),
        );
        let api_throttled = Counter::default();
        registry.register(
            "ringmaster_api_throttled",
            "Writes the API server answered with 429 (Too Many Requests), each sent again after a pause",
            api_throttled.clone(),
        );
        let shards_held = Gauge::default();
        registry.register(
            "ringmaster_shards_held",
            "Shards whose tenants this replica reconciles (--shards; 1 while leading without it)",
            shards_held.clone(),
        );
        Self {
            registry,
            reconcile_total,
            reconcile_duration,
            devices,
            devices_unreachable,
            devices_last_seen,
            sla_compliance,
            sla_overdue,
            sla_due_soon,
            time_to_install,
            ring_failure_rate,
            ring_rollback_rate,
            ring_halted,
            exceptions,
            exception_expiry,
            rollouts,
            rollout_progress,
            api_writes,
            api_throttled,
            shards_held,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// Sets how many shards this replica reconciles.
    pub fn set_shards_held(&self, held: usize) {
        self.shards_held
            .set(i64::try_from(held).unwrap_or(i64::MAX));
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Counts one reconcile and its duration.
    pub fn reconciled(&self, controller: &str, ok: bool, took: Duration) {
        self.reconcile_total
            .get_or_create(&ReconcileLabels {
                controller: controller.to_string(),
                result: if ok { "success" } else { "error" }.to_string(),
            })
            .inc();
        self.reconcile_duration
            .get_or_create(&ControllerLabels {
                controller: controller.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts one write sent to the API server.
    pub fn write(&self, kind: ObjectKind, verb: &str) {
        self.api_writes
            .get_or_create(&WriteLabels {
                kind: kind.as_str().to_string(),
                verb: verb.to_string(),
            })
            .inc();
    }

    /// Counts one write the API server throttled.
    pub fn throttled(&self) {
        self.api_throttled.inc();
    }

    /// Every write sent so far, of every kind and verb.
    pub fn writes_total(&self) -> u64 {
        let kinds = [
            ObjectKind::PatchPolicy,
            ObjectKind::DeploymentRing,
            ObjectKind::PatchException,
            ObjectKind::ManagedDevice,
            ObjectKind::PatchRollout,
            ObjectKind::Patch,
            ObjectKind::Event,
        ];
        let mut total = 0;
        for kind in kinds {
            for verb in ["create", "patch"] {
                total += self
                    .api_writes
                    .get_or_create(&WriteLabels {
                        kind: kind.as_str().to_string(),
                        verb: verb.to_string(),
                    })
                    .get();
            }
        }
        total
    }

    /// Observes one newly installed device–patch pair.
    pub fn observe_install(
        &self,
        namespace: &str,
        policy: &str,
        tier: &str,
        severity: Severity,
        seconds: f64,
    ) {
        self.time_to_install
            .get_or_create(&SlaLabels {
                namespace: namespace.to_string(),
                policy: policy.to_string(),
                tier: tier.to_string(),
                severity: severity_label(severity),
            })
            .observe(seconds);
    }

    /// A device of `ns` checked in at `at` by renewing its Lease. Renewals do not
    /// reconcile, so the namespace's newest check-in
    /// (`ringmaster_devices_last_seen_timestamp`) moves here between passes.
    pub fn checked_in(&self, ns: &str, at: Timestamp) {
        let labels = NamespaceLabels {
            namespace: ns.to_string(),
        };
        let gauge = self.devices_last_seen.get_or_create(&labels);
        let seconds = unix_seconds(at);
        if seconds > gauge.get() {
            gauge.set(seconds);
        }
    }

    /// Sets a namespace's gauges from what its reconcile at `at` decided, and removes its
    /// series that no longer exist.
    pub fn tenant(&self, objects: &Objects, d: &Decisions, at: Timestamp) {
        let mut now = TenantSeries::default();
        self.tenant_devices(objects, d, at, &mut now);
        self.tenant_sla(&objects.namespace, d, &mut now);
        self.tenant_rollouts(objects, d, &mut now);
        self.tenant_exceptions(objects, d, &mut now);
        self.forget_gone(&objects.namespace, now);
    }

    /// The device counts by policy, tier and ring, the unreachable ones, and the newest
    /// check-in.
    fn tenant_devices<'o>(
        &self,
        objects: &'o Objects,
        d: &'o Decisions,
        at: Timestamp,
        now: &mut TenantSeries,
    ) {
        let ns = objects.namespace.as_str();
        // Every device counts: `d.devices` lists only the summaries that changed, the rest
        // are as stored on the device.
        let changed: HashMap<&str, &crate::api::DeviceCompliance> =
            d.devices.iter().map(|(n, c)| (n.as_str(), c)).collect();
        // Unreachable as the rollouts judge it: not seen for the ring's unreachableAfter
        // (a device that never checked in is not unreachable).
        let afters: HashMap<&str, _> = objects
            .rings
            .iter()
            .filter_map(|r| {
                Some((
                    r.metadata.name.as_deref()?,
                    unreachable_after(Some(&r.spec)),
                ))
            })
            .collect();
        let after = |ring: Option<&str>| {
            ring.and_then(|n| afters.get(n).copied())
                .unwrap_or_else(|| unreachable_after(None))
        };
        // Counted under borrowed labels (a pass walks every device; few label sets).
        let mut device_counts: HashMap<[&str; 3], (i64, i64)> = HashMap::new();
        let mut newest_seen: Option<Timestamp> = None;
        for dev in &objects.devices {
            let Some(name) = dev.metadata.name.as_deref() else {
                continue;
            };
            let seen = crate::contract::last_seen(dev, &objects.check_ins);
            newest_seen = newest_seen.max(seen);
            let summary = changed
                .get(name)
                .copied()
                .or_else(|| dev.status.as_ref().and_then(|s| s.compliance.as_ref()));
            let Some(c) = summary else { continue };
            let unreachable = unreachable(seen, after(c.ring.as_deref()), at);
            let label = |l: &'o Option<String>| l.as_deref().unwrap_or_default();
            let counts = device_counts
                .entry([label(&c.policy), label(&c.tier), label(&c.ring)])
                .or_default();
            counts.0 += 1;
            counts.1 += i64::from(unreachable);
        }
        for ([policy, tier, ring], (n, unreachable)) in device_counts {
            let labels = DeviceLabels {
                namespace: ns.to_string(),
                policy: policy.to_string(),
                tier: tier.to_string(),
                ring: ring.to_string(),
            };
            self.devices.get_or_create(&labels).set(n);
            self.devices_unreachable
                .get_or_create(&labels)
                .set(unreachable);
            now.devices.insert(labels);
        }
        if let Some(seen) = newest_seen {
            let labels = NamespaceLabels {
                namespace: ns.to_string(),
            };
            self.devices_last_seen
                .get_or_create(&labels)
                .set(unix_seconds(seen));
            now.last_seen = Some(labels);
        }
    }

    /// The SLA figures per policy, tier and severity.
    fn tenant_sla(&self, ns: &str, d: &Decisions, now: &mut TenantSeries) {
        for (policy, status) in &d.policies {
            for cell in &status.sla {
                let labels = SlaLabels {
                    namespace: ns.to_string(),
                    policy: policy.clone(),
                    tier: cell.tier.clone(),
                    severity: severity_label(cell.severity),
                };
                self.sla_overdue
                    .get_or_create(&labels)
                    .set(i64::from(cell.overdue));
                now.sla_pairs.insert(labels.clone());
                let Some(pct) = cell.compliance_percent else {
                    continue;
                };
                self.sla_compliance.get_or_create(&labels).set(pct / 100.0);
                now.sla.insert(labels);
            }
        }
        for cell in &d.due_soon {
            let labels = SlaLabels {
                namespace: ns.to_string(),
                policy: cell.policy.clone(),
                tier: cell.tier.clone(),
                severity: severity_label(cell.severity),
            };
            self.sla_due_soon
                .get_or_create(&labels)
                .set(i64::from(cell.pairs));
            now.sla_pairs.insert(labels);
        }
    }

    /// The rollouts by phase, their last progress, and their rings' rates.
    fn tenant_rollouts(&self, objects: &Objects, d: &Decisions, now: &mut TenantSeries) {
        let ns = objects.namespace.as_str();
        let mut rollout_phases: HashMap<String, i64> = HashMap::new();
        for (rollout, status) in &d.rollouts {
            if let Some(phase) = status.phase {
                *rollout_phases
                    .entry(rollout_phase_label(phase).to_string())
                    .or_default() += 1;
            }
            if status.phase == Some(RolloutPhase::Progressing) {
                let created = objects
                    .rollouts
                    .iter()
                    .find(|r| r.metadata.name.as_deref() == Some(rollout.as_str()))
                    .and_then(|r| r.metadata.creation_timestamp.as_ref())
                    .map(|t| t.0);
                let progressed = status
                    .rings
                    .iter()
                    .flat_map(|r| [r.started_at, r.last_install_at, r.passed_at])
                    .chain(status.history.iter().map(|h| Some(h.at)))
                    .chain([created])
                    .flatten()
                    .max();
                if let Some(at) = progressed {
                    let labels = RolloutLabels {
                        namespace: ns.to_string(),
                        rollout: rollout.clone(),
                    };
                    self.rollout_progress
                        .get_or_create(&labels)
                        .set(unix_seconds(at));
                    now.progress.insert(labels);
                }
            }
            for ring in &status.rings {
                let labels = RingLabels {
                    namespace: ns.to_string(),
                    rollout: rollout.clone(),
                    ring: ring.name.clone(),
                };
                let finished = ring.installed + ring.failed;
                let had = ring.installed + ring.rolled_back;
                self.ring_failure_rate
                    .get_or_create(&labels)
                    .set(rate(ring.failed, finished));
                self.ring_rollback_rate
                    .get_or_create(&labels)
                    .set(rate(ring.rolled_back, had));
                self.ring_halted
                    .get_or_create(&labels)
                    .set(i64::from(ring.phase == RingPhase::Halted));
                now.rings.insert(labels);
            }
        }
        for (phase, n) in rollout_phases {
            let labels = PhaseLabels {
                namespace: ns.to_string(),
                phase,
            };
            self.rollouts.get_or_create(&labels).set(n);
            now.rollouts.insert(labels);
        }
    }

    /// The exceptions by phase, and the expiry of the active ones.
    fn tenant_exceptions(&self, objects: &Objects, d: &Decisions, now: &mut TenantSeries) {
        let ns = objects.namespace.as_str();
        let mut exception_phases: HashMap<String, i64> = HashMap::new();
        for (name, status) in &d.exceptions {
            if let Some(phase) = status.phase {
                *exception_phases
                    .entry(exception_phase_label(phase).to_string())
                    .or_default() += 1;
            }
            if status.phase != Some(ExceptionPhase::Active) {
                continue;
            }
            let Some(pex) = objects
                .exceptions
                .iter()
                .find(|e| e.metadata.name.as_deref() == Some(name.as_str()))
            else {
                continue;
            };
            let labels = ExceptionLabels {
                namespace: ns.to_string(),
                exception: name.clone(),
                owner: pex.spec.owner.clone(),
            };
            self.exception_expiry
                .get_or_create(&labels)
                .set(unix_seconds(pex.spec.expires_at));
            now.expiries.insert(labels);
        }
        for (phase, n) in exception_phases {
            let labels = PhaseLabels {
                namespace: ns.to_string(),
                phase,
            };
            self.exceptions.get_or_create(&labels).set(n);
            now.exceptions.insert(labels);
        }
    }

    /// Removes the namespace's series that its last reconcile had and this one does not.
    fn forget_gone(&self, ns: &str, now: TenantSeries) {
        let Ok(mut tenants) = self.tenants.lock() else {
            return;
        };
        if let Some(old) = tenants.get(ns) {
            for l in old.devices.difference(&now.devices) {
                self.devices.remove(l);
                self.devices_unreachable.remove(l);
            }
            if now.last_seen.is_none()
                && let Some(l) = &old.last_seen
            {
                self.devices_last_seen.remove(l);
            }
            for l in old.sla.difference(&now.sla) {
                self.sla_compliance.remove(l);
            }
            for l in old.sla_pairs.difference(&now.sla_pairs) {
                self.sla_overdue.remove(l);
                self.sla_due_soon.remove(l);
            }
            for l in old.rings.difference(&now.rings) {
                self.ring_failure_rate.remove(l);
                self.ring_rollback_rate.remove(l);
                self.ring_halted.remove(l);
            }
            for l in old.progress.difference(&now.progress) {
                self.rollout_progress.remove(l);
            }
            for l in old.expiries.difference(&now.expiries) {
                self.exception_expiry.remove(l);
            }
            for l in old.exceptions.difference(&now.exceptions) {
                self.exceptions.remove(l);
            }
            for l in old.rollouts.difference(&now.rollouts) {
                self.rollouts.remove(l);
            }
        }
        tenants.insert(ns.to_string(), now);
    }
}

/// An instant as Unix seconds.
fn unix_seconds(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

fn rate(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) / f64::from(whole)
    }
}

fn severity_label(s: Severity) -> String {
    match s {
        Severity::Low => "Low",
        Severity::Medium => "Medium",
        Severity::High => "High",
        Severity::Critical => "Critical",
    }
    .to_string()
}

fn rollout_phase_label(p: RolloutPhase) -> &'static str {
    match p {
        RolloutPhase::Progressing => "Progressing",
        RolloutPhase::Paused => "Paused",
        RolloutPhase::Held => "Held",
        RolloutPhase::Halted => "Halted",
        RolloutPhase::RollingBack => "RollingBack",
        RolloutPhase::RolledBack => "RolledBack",
        RolloutPhase::Aborted => "Aborted",
        RolloutPhase::Completed => "Completed",
    }
}

fn exception_phase_label(p: ExceptionPhase) -> &'static str {
    match p {
        ExceptionPhase::PendingApproval => "PendingApproval",
        ExceptionPhase::Active => "Active",
        ExceptionPhase::Expired => "Expired",
        ExceptionPhase::Invalid => "Invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        DeviceCompliance, ExceptionDevices, ExceptionPhase, ManagedDevice, ManagedDeviceSpec,
        ManagedDeviceStatus, OnExpiry, PatchException, PatchExceptionSpec, PatchExceptionStatus,
        PatchPolicyStatus, PatchRolloutStatus, RingPhase, RingProgress, SlaCell,
    };
    use crate::engine::DueSoon;
    use std::sync::Arc;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn ring(name: &str, phase: RingPhase) -> RingProgress {
        RingProgress {
            name: name.into(),
            phase,
            targeted: 5,
            installed: 3,
            failed: 1,
            timed_out: 0,
            in_progress: 1,
            waiting: 0,
            excepted: 0,
            unreachable: 0,
            rolled_back: 1,
            started_at: Some(ts("2026-11-10T00:00:00Z")),
            last_install_at: Some(ts("2026-11-11T00:00:00Z")),
            passed_at: None,
            halted_at: None,
            waiting_for: None,
            gates: vec![],
        }
    }

    /// ws-1 (its summary in the decisions) last seen four days ago, ws-2 (its summary
    /// stored) an hour ago; an exception `pex` owned by alice.
    fn objects() -> Objects {
        let device = |name: &str, seen: &str, compliance: Option<DeviceCompliance>| {
            let mut d = ManagedDevice::new(name, ManagedDeviceSpec::default());
            d.status = Some(ManagedDeviceStatus {
                last_seen: Some(ts(seen)),
                compliance,
                ..ManagedDeviceStatus::default()
            });
            Arc::new(d)
        };
        Objects {
            namespace: "acme".into(),
            devices: vec![
                device("ws-1", "2026-11-08T00:00:00Z", None),
                device(
                    "ws-2",
                    "2026-11-11T23:00:00Z",
                    Some(DeviceCompliance {
                        policy: Some("ws".into()),
                        ring: Some("it".into()),
                        tier: Some("default".into()),
                        ..DeviceCompliance::default()
                    }),
                ),
            ],
            exceptions: vec![Arc::new(PatchException::new(
                "pex",
                PatchExceptionSpec {
                    patches: vec!["KB1".into()],
                    devices: ExceptionDevices {
                        names: vec!["ws-1".into()],
                        selector: None,
                    },
                    reason: "LOB app breaks".into(),
                    owner: "alice".into(),
                    approved_by: None,
                    expires_at: ts("2026-11-15T00:00:00Z"),
                    compensating_controls: vec![],
                    ticket: None,
                    on_expiry: OnExpiry::Enforce,
                },
            ))],
            ..Objects::default()
        }
    }

    fn decisions(with_rollout: bool) -> Decisions {
        let mut d = Decisions::default();
        d.devices.push((
            "ws-1".into(),
            DeviceCompliance {
                policy: Some("ws".into()),
                ring: Some("it".into()),
                tier: Some("default".into()),
                ..DeviceCompliance::default()
            },
        ));
        d.policies.push((
            "ws".into(),
            PatchPolicyStatus {
                sla: vec![SlaCell {
                    tier: "default".into(),
                    severity: Severity::High,
                    installed_on_time: 3,
                    installed_late: 1,
                    overdue: 2,
                    open: 0,
                    exempt: 0,
                    compliance_percent: Some(75.0),
                    median_time_to_install: None,
                }],
                ..PatchPolicyStatus::default()
            },
        ));
        d.due_soon.push(DueSoon {
            policy: "ws".into(),
            tier: "default".into(),
            severity: Severity::High,
            pairs: 4,
        });
        d.exceptions.push((
            "pex".into(),
            PatchExceptionStatus {
                phase: Some(ExceptionPhase::Active),
                ..PatchExceptionStatus::default()
            },
        ));
        if with_rollout {
            d.rollouts.push((
                "ws.kb1".into(),
                std::sync::Arc::new(PatchRolloutStatus {
                    phase: Some(RolloutPhase::Progressing),
                    rings: vec![ring("it", RingPhase::Deploying)],
                    ..PatchRolloutStatus::default()
                }),
            ));
            d.rollouts.push((
                "ws.kb2".into(),
                std::sync::Arc::new(PatchRolloutStatus {
                    phase: Some(RolloutPhase::Halted),
                    rings: vec![ring("it", RingPhase::Halted)],
                    ..PatchRolloutStatus::default()
                }),
            ));
        }
        d
    }

    #[test]
    fn the_exposition_uses_the_names_the_dashboard_queries() {
        let m = Metrics::new();
        m.reconciled("tenant", true, Duration::from_millis(12));
        m.write(ObjectKind::ManagedDevice, "patch");
        m.observe_install("acme", "ws", "tier-1", Severity::Critical, 7200.0);
        let objects = objects();
        let now = ts("2026-11-12T00:00:00Z");
        m.tenant(&objects, &decisions(true), now);
        let text = m.encode();
        for line in [
            r#"ringmaster_reconcile_total{controller="tenant",result="success"} 1"#,
            r#"ringmaster_reconcile_duration_seconds_bucket{le="0.02",controller="tenant"} 1"#,
            r#"ringmaster_time_to_install_seconds_bucket{le="14400.0",namespace="acme",policy="ws",tier="tier-1",severity="Critical"} 1"#,
            r#"ringmaster_api_writes_total{kind="ManagedDevice",verb="patch"} 1"#,
            r#"ringmaster_devices{namespace="acme",policy="ws",tier="default",ring="it"} 2"#,
            // ws-1 unseen for 4 days (over the default 72h), ws-2 for an hour.
            r#"ringmaster_devices_unreachable{namespace="acme",policy="ws",tier="default",ring="it"} 1"#,
            r#"ringmaster_devices_last_seen_timestamp_seconds{namespace="acme"} 1794438000.0"#,
            r#"ringmaster_sla_compliance_ratio{namespace="acme",policy="ws",tier="default",severity="High"} 0.75"#,
            r#"ringmaster_sla_overdue_pairs{namespace="acme",policy="ws",tier="default",severity="High"} 2"#,
            r#"ringmaster_sla_due_soon_pairs{namespace="acme",policy="ws",tier="default",severity="High"} 4"#,
            r#"ringmaster_ring_failure_rate{namespace="acme",rollout="ws.kb1",ring="it"} 0.25"#,
            r#"ringmaster_ring_rollback_rate{namespace="acme",rollout="ws.kb1",ring="it"} 0.25"#,
            r#"ringmaster_ring_halted{namespace="acme",rollout="ws.kb1",ring="it"} 0"#,
            r#"ringmaster_ring_halted{namespace="acme",rollout="ws.kb2",ring="it"} 1"#,
            r#"ringmaster_exceptions{namespace="acme",phase="Active"} 1"#,
            r#"ringmaster_exception_expiry_timestamp_seconds{namespace="acme",exception="pex",owner="alice"} 1794700800.0"#,
            r#"ringmaster_rollouts{namespace="acme",phase="Progressing"} 1"#,
            r#"ringmaster_rollouts{namespace="acme",phase="Halted"} 1"#,
            // The latest instant of its rings (the last install); only Progressing ones.
            r#"ringmaster_rollout_last_progress_timestamp_seconds{namespace="acme",rollout="ws.kb1"} 1794355200.0"#,
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert_eq!(m.writes_total(), 1);

        assert!(
            !text.contains(r#"ringmaster_rollout_last_progress_timestamp_seconds{namespace="acme",rollout="ws.kb2"}"#),
            "a Halted rollout has no progress clock: {text}"
        );

        // A rollout that is gone leaves no series behind.
        m.tenant(&objects, &decisions(false), now);
        let text = m.encode();
        assert!(!text.contains("ringmaster_ring_failure_rate{"), "{text}");
        assert!(!text.contains("ringmaster_ring_halted{"), "{text}");
        assert!(!text.contains("ringmaster_rollouts{"), "{text}");
        assert!(
            !text.contains("ringmaster_rollout_last_progress_timestamp_seconds{"),
            "{text}"
        );
        assert!(text.contains("ringmaster_exceptions{"), "{text}");

        // Nor does an exception that is no longer Active, nor devices that are gone.
        let mut d = decisions(false);
        d.exceptions[0].1.phase = Some(ExceptionPhase::Expired);
        let empty = Objects {
            namespace: "acme".into(),
            ..Objects::default()
        };
        m.tenant(&empty, &d, now);
        let text = m.encode();
        for gone in [
            "ringmaster_exception_expiry_timestamp_seconds{",
            "ringmaster_devices{",
            "ringmaster_devices_unreachable{",
            "ringmaster_devices_last_seen_timestamp_seconds{",
        ] {
            assert!(!text.contains(gone), "{gone} in\n{text}");
        }
        assert!(text.contains("ringmaster_sla_overdue_pairs{"), "{text}");
    }

    /// The devices' gauges read last seen by the contract's rule: ws-1, four days past
    /// its lastSeen, renewed its Lease an hour ago.
    #[test]
    fn a_device_checked_in_by_its_lease_is_seen_by_the_metrics() {
        let m = Metrics::new();
        let mut objects = objects();
        let mut ins = crate::contract::CheckIns::default();
        ins.insert("ws-1".into(), ts("2026-11-11T23:30:00Z"));
        objects.check_ins = Arc::new(ins);
        m.tenant(&objects, &decisions(true), ts("2026-11-12T00:00:00Z"));
        let text = m.encode();
        for line in [
            r#"ringmaster_devices_unreachable{namespace="acme",policy="ws",tier="default",ring="it"} 0"#,
            r#"ringmaster_devices_last_seen_timestamp_seconds{namespace="acme"} 1794439800.0"#,
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        // Renewals between passes move the newest check-in forward, never back.
        m.checked_in("acme", ts("2026-11-11T23:45:00Z"));
        m.checked_in("acme", ts("2026-11-11T23:00:00Z"));
        let line =
            r#"ringmaster_devices_last_seen_timestamp_seconds{namespace="acme"} 1794440700.0"#;
        assert!(m.encode().contains(line), "{}", m.encode());
    }
}
