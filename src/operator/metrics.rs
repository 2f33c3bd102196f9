//! The operator's Prometheus metrics. Their names are a contract: the chart's Grafana
//! dashboard queries them.
//!
//! Per-tenant gauges are set from each reconcile's decisions (the statuses the operator
//! just made true), and a namespace's series that no longer exist are removed.
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

use crate::api::{ExceptionPhase, RolloutPhase, Severity};
use crate::engine::Decisions;

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
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The series one namespace set at its last reconcile, to remove those that disappear.
#[derive(Default)]
struct TenantSeries {
    devices: HashSet<DeviceLabels>,
    sla: HashSet<SlaLabels>,
    rings: HashSet<RingLabels>,
    exceptions: HashSet<PhaseLabels>,
    rollouts: HashSet<PhaseLabels>,
}

/// Every metric, and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    reconcile_total: Family<ReconcileLabels, Counter>,
    reconcile_duration: HistogramFamily<ControllerLabels>,
    devices: Family<DeviceLabels, Gauge>,
    sla_compliance: Family<SlaLabels, Ratio>,
    time_to_install: HistogramFamily<SlaLabels>,
    ring_failure_rate: Family<RingLabels, Ratio>,
    ring_rollback_rate: Family<RingLabels, Ratio>,
    exceptions: Family<PhaseLabels, Gauge>,
    rollouts: Family<PhaseLabels, Gauge>,
    api_writes: Family<WriteLabels, Counter>,
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
        let sla_compliance = Family::<SlaLabels, Ratio>::default();
        registry.register(
            "ringmaster_sla_compliance_ratio",
            "Share of device-patch pairs within their SLA (installed on time, or open and not yet due), by policy, tier and severity",
            sla_compliance.clone(),
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
        let api_writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "ringmaster_api_writes",
            "Writes sent to the API server, by kind and verb (zero in steady state)",
            api_writes.clone(),
        );
        Self {
            registry,
            reconcile_total,
            reconcile_duration,
            devices,
            sla_compliance,
            time_to_install,
            ring_failure_rate,
            ring_rollback_rate,
            exceptions,
            rollouts,
            api_writes,
            tenants: Mutex::new(HashMap::new()),
        }
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

    /// Sets a namespace's gauges from what its reconcile decided, and removes its series
    /// that no longer exist.
    pub fn tenant(&self, objects: &Objects, d: &Decisions) {
        let ns = objects.namespace.as_str();
        let mut now = TenantSeries::default();

        // Every device counts: `d.devices` lists only the summaries that changed, the rest
        // are as stored on the device.
        let changed: HashMap<&str, &crate::api::DeviceCompliance> =
            d.devices.iter().map(|(n, c)| (n.as_str(), c)).collect();
        let mut device_counts: HashMap<DeviceLabels, i64> = HashMap::new();
        for dev in &objects.devices {
            let Some(name) = dev.metadata.name.as_deref() else {
                continue;
            };
            let summary = changed
                .get(name)
                .copied()
                .or_else(|| dev.status.as_ref().and_then(|s| s.compliance.as_ref()));
            let Some(c) = summary else { continue };
            *device_counts
                .entry(DeviceLabels {
                    namespace: ns.to_string(),
                    policy: c.policy.clone().unwrap_or_default(),
                    tier: c.tier.clone().unwrap_or_default(),
                    ring: c.ring.clone().unwrap_or_default(),
                })
                .or_default() += 1;
        }
        for (labels, n) in device_counts {
            self.devices.get_or_create(&labels).set(n);
            now.devices.insert(labels);
        }

        for (policy, status) in &d.policies {
            for cell in &status.sla {
                let Some(pct) = cell.compliance_percent else {
                    continue;
                };
                let labels = SlaLabels {
                    namespace: ns.to_string(),
                    policy: policy.clone(),
                    tier: cell.tier.clone(),
                    severity: severity_label(cell.severity),
                };
                self.sla_compliance.get_or_create(&labels).set(pct / 100.0);
                now.sla.insert(labels);
            }
        }

        let mut rollout_phases: HashMap<String, i64> = HashMap::new();
        for (rollout, status) in &d.rollouts {
            if let Some(phase) = status.phase {
                *rollout_phases
                    .entry(rollout_phase_label(phase).to_string())
                    .or_default() += 1;
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

        let mut exception_phases: HashMap<String, i64> = HashMap::new();
        for (_, status) in &d.exceptions {
            if let Some(phase) = status.phase {
                *exception_phases
                    .entry(exception_phase_label(phase).to_string())
                    .or_default() += 1;
            }
        }
        for (phase, n) in exception_phases {
            let labels = PhaseLabels {
                namespace: ns.to_string(),
                phase,
            };
            self.exceptions.get_or_create(&labels).set(n);
            now.exceptions.insert(labels);
        }

        let Ok(mut tenants) = self.tenants.lock() else {
            return;
        };
        if let Some(old) = tenants.get(ns) {
            for l in old.devices.difference(&now.devices) {
                self.devices.remove(l);
            }
            for l in old.sla.difference(&now.sla) {
                self.sla_compliance.remove(l);
            }
            for l in old.rings.difference(&now.rings) {
                self.ring_failure_rate.remove(l);
                self.ring_rollback_rate.remove(l);
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
        DeviceCompliance, ExceptionPhase, PatchExceptionStatus, PatchPolicyStatus,
        PatchRolloutStatus, RingPhase, RingProgress, SlaCell,
    };

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
                    overdue: 0,
                    open: 0,
                    exempt: 0,
                    compliance_percent: Some(75.0),
                    median_time_to_install: None,
                }],
                ..PatchPolicyStatus::default()
            },
        ));
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
                PatchRolloutStatus {
                    phase: Some(RolloutPhase::Progressing),
                    rings: vec![RingProgress {
                        name: "it".into(),
                        phase: RingPhase::Deploying,
                        targeted: 5,
                        installed: 3,
                        failed: 1,
                        timed_out: 0,
                        in_progress: 1,
                        waiting: 0,
                        excepted: 0,
                        unreachable: 0,
                        rolled_back: 1,
                        started_at: None,
                        last_install_at: None,
                        passed_at: None,
                        halted_at: None,
                        waiting_for: None,
                        gates: vec![],
                    }],
                    ..PatchRolloutStatus::default()
                },
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
        let objects = Objects {
            namespace: "acme".into(),
            devices: vec![std::sync::Arc::new(crate::api::ManagedDevice::new(
                "ws-1",
                crate::api::ManagedDeviceSpec::default(),
            ))],
            ..Objects::default()
        };
        m.tenant(&objects, &decisions(true));
        let text = m.encode();
        for line in [
            r#"ringmaster_reconcile_total{controller="tenant",result="success"} 1"#,
            r#"ringmaster_reconcile_duration_seconds_bucket{le="0.02",controller="tenant"} 1"#,
            r#"ringmaster_time_to_install_seconds_bucket{le="14400.0",namespace="acme",policy="ws",tier="tier-1",severity="Critical"} 1"#,
            r#"ringmaster_api_writes_total{kind="ManagedDevice",verb="patch"} 1"#,
            r#"ringmaster_devices{namespace="acme",policy="ws",tier="default",ring="it"} 1"#,
            r#"ringmaster_sla_compliance_ratio{namespace="acme",policy="ws",tier="default",severity="High"} 0.75"#,
            r#"ringmaster_ring_failure_rate{namespace="acme",rollout="ws.kb1",ring="it"} 0.25"#,
            r#"ringmaster_ring_rollback_rate{namespace="acme",rollout="ws.kb1",ring="it"} 0.25"#,
            r#"ringmaster_exceptions{namespace="acme",phase="Active"} 1"#,
            r#"ringmaster_rollouts{namespace="acme",phase="Progressing"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert_eq!(m.writes_total(), 1);

        // A rollout that is gone leaves no series behind.
        m.tenant(&objects, &decisions(false));
        let text = m.encode();
        assert!(!text.contains("ringmaster_ring_failure_rate{"), "{text}");
        assert!(!text.contains("ringmaster_rollouts{"), "{text}");
        assert!(text.contains("ringmaster_exceptions{"), "{text}");
    }
}
