//! The agent's loop: one check-in reads the device, its ring and the package database,
//! brings the reports in line, writes what changed, and then does at most one thing the
//! plan asks (an uninstall first, else one install), or moves an install that waits for
//! its reboot along. Every rule about what a report means is the device contract's
//! (`crate::contract`); this module only drives it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch as KubePatch, PatchParams};
use kube::runtime::reflector::Store as Catalog;
use serde_json::json;
use tracing::{info, warn};

use super::applicability::{self, Applicability};
use super::backend::{Backend, BackendError, Pin, RebootNeed};
use super::health;
use super::inventory::{Ecosystem, InstalledPackage, Inventory};
use super::node::NodeGuard;
use super::reboot::{self, Reboot};
use super::reports::{self, Found};
use super::runner::Runner;
use super::state::{Phase, State, Store, Version, Work};
use crate::agent::lease::CheckIn;
use crate::api::{
    DeploymentRing, DeploymentRingSpec, DevicePatchStatus, ManagedDevice, Patch, PatchState,
    PlanEntry, RebootPolicy,
};
use crate::contract::{self, Action, Outcome};

/// The field manager of the agent's writes.
pub const FIELD_MANAGER: &str = "ringmaster-agent";

/// How the agent is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// The device's namespace.
    pub namespace: String,
    /// The device's name.
    pub name: String,
    /// `ringmaster-agent/<version> (<backend>)`: what `status.agent` says.
    pub agent: String,
    /// A device with nothing new still checks in this often, by renewing its Lease.
    pub heartbeat: Duration,
    /// How long to wait before trying a failed uninstall again.
    pub retry_uninstall: Duration,
    /// How the device is rebooted.
    pub reboot: reboot::Config,
    /// How long draining the node may take (node mode).
    pub drain_timeout: Duration,
}

/// Why a check-in stopped short. Nothing here stops the agent: it logs and tries again
/// at the next check-in.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    /// The API server refused or did not answer.
    #[error("{what}: {source}")]
    Kube {
        /// What the agent was doing.
        what: &'static str,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The package database could not be read.
    #[error("reading the package database: {0}")]
    Inventory(#[source] BackendError),
    /// The state file could not be written.
    #[error(transparent)]
    State(#[from] super::state::StateError),
}

fn kube_err(what: &'static str) -> impl FnOnce(kube::Error) -> TickError {
    move |e| TickError::Kube {
        what,
        source: Box::new(e),
    }
}

/// One Linux agent: its device, its package manager and its memory.
pub struct Agent {
    config: Config,
    devices: Api<ManagedDevice>,
    rings: Api<DeploymentRing>,
    catalog: Catalog<Patch>,
    backend: Arc<dyn Backend>,
    runner: Arc<dyn Runner>,
    http: reqwest::Client,
    ecosystem: Ecosystem,
    store: Store,
    state: State,
    /// The reports as the agent last decided them (the cluster's copy may lag a failed
    /// write; it is sent again at the next check-in).
    reports: Option<Vec<DevicePatchStatus>>,
    /// When the device last checked in: a status write or a Lease renewal.
    checked_in_at: Option<Timestamp>,
    /// The device's namespace's Leases (its check-in).
    leases: Api<Lease>,
    uninstall_failed_at: BTreeMap<String, Timestamp>,
    /// Node mode: the device is this cluster node, cordoned and drained before an
    /// install or a reboot and uncordoned once the install is validated.
    node: Option<NodeGuard>,
    /// Node mode: an uncordon that failed, tried again at every check-in until it is
    /// done.
    release_pending: bool,
}

/// What one check-in saw.
struct Seen {
    device: ManagedDevice,
    ring: Option<DeploymentRingSpec>,
    inventory: Inventory,
}

impl Agent {
    /// An agent for the device `config` names, with its package manager, its command
    /// runner (for health checks and reboots), the catalog's reflector store and its
    /// state file (read now: a corrupt one is an error, never silently replaced).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: kube::Client,
        config: Config,
        catalog: Catalog<Patch>,
        backend: Arc<dyn Backend>,
        runner: Arc<dyn Runner>,
        ecosystem: Ecosystem,
        store: Store,
    ) -> Result<Self, super::state::StateError> {
        let state = store.load()?;
        Ok(Self {
            devices: Api::namespaced(client.clone(), &config.namespace),
            leases: Api::namespaced(client.clone(), &config.namespace),
            rings: Api::namespaced(client, &config.namespace),
            config,
            catalog,
            backend,
            runner,
            http: reqwest::Client::new(),
            ecosystem,
            store,
            state,
            reports: None,
            checked_in_at: None,
            uninstall_failed_at: BTreeMap::new(),
            node: None,
            release_pending: false,
        })
    }

    /// The agent in node mode: `guard` cordons and drains the node the device is (named
    /// like the device) before an install or a reboot, and uncordons it after.
    pub fn with_node(mut self, guard: NodeGuard) -> Self {
        self.node = Some(guard);
        self
    }

    /// Node mode, at start: a cordon of ours left by an earlier run with no work under
    /// way (it stopped between validation and uncordoning) is released.
    pub async fn release_stale_cordon(&mut self) {
        if self.state.work.is_none() {
            self.release_node().await;
        }
    }

    /// Node mode: cordons and drains the node; Err with why not (the install or reboot
    /// must not go ahead).
    async fn prepare_node(&self) -> Result<(), String> {
        let Some(guard) = &self.node else {
            return Ok(());
        };
        guard
            .prepare(&self.config.name, self.config.drain_timeout)
            .await
            .map(|prepared| info!(node = %self.config.name, evicted = prepared.evicted.len(), "node cordoned and drained"))
            .map_err(|e| format!("could not drain node {}: {e}", self.config.name))
    }

    /// Node mode: uncordons the node if the cordon is the agent's own; a failure is tried
    /// again at the next check-in.
    async fn release_node(&mut self) {
        let Some(guard) = &self.node else {
            return;
        };
        match guard.release(&self.config.name).await {
            Ok(released) => {
                self.release_pending = false;
                info!(node = %self.config.name, ?released, "node released");
            }
            Err(e) => {
                self.release_pending = true;
                warn!(node = %self.config.name, error = %e, "could not uncordon the node; trying again at the next check-in");
            }
        }
    }

    /// What the agent remembers (for tests and logs).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// One check-in at `now`.
    pub async fn check_in(&mut self, now: Timestamp) -> Result<(), TickError> {
        let seen = self.look(now).await?;
        self.write_status(&seen.device, now).await?;
        if self.release_pending && self.state.work.is_none() {
            self.release_node().await;
        }
        if self.state.work.is_some() {
            return self.continue_work(&seen, now).await;
        }
        let action = {
            let reports = self.reports.as_deref().unwrap_or_default();
            let lookup = |id: &str| reports.iter().find(|r| r.id == id);
            contract::next_action(&seen.device.spec.plan, lookup, now).map(owned)
        };
        match action {
            Some(Owned::Uninstall(id)) => self.uninstall(&id, &seen, now).await,
            Some(Owned::Install(id, entry)) => self.install(&id, &entry, &seen, now).await,
            None => Ok(()),
        }
    }

    /// Reads the device, its ring and the package database, and brings the reports in
    /// line with them.
    async fn look(&mut self, now: Timestamp) -> Result<Seen, TickError> {
        let device = self
            .devices
            .get(&self.config.name)
            .await
            .map_err(kube_err("reading the device"))?;
        let ring = self.ring_of(&device).await;
        let inventory = self.inventory().await?;
        let previous = match &self.reports {
            Some(r) => r.clone(),
            None => device
                .status
                .as_ref()
                .map(|s| s.patches.clone())
                .unwrap_or_default(),
        };
        let verdicts = self.verdicts(&inventory);
        let plan = &device.spec.plan;
        let busy = self.state.work.as_ref().map(|w| w.patch.as_str());
        let failed = &self.state.failed_checks;
        self.reports = Some(reports::reconcile(
            &previous,
            &verdicts,
            |id| plan.install.contains_key(id),
            busy,
            |id| failed.contains(id),
            now,
        ));
        Ok(Seen {
            device,
            ring,
            inventory,
        })
    }

    /// The device's ring as the operator last named it in `status.compliance.ring`; None
    /// when it names none or the ring cannot be read (the agent then reboots only inside
    /// a plan entry's window and runs no health checks).
    async fn ring_of(&self, device: &ManagedDevice) -> Option<DeploymentRingSpec> {
        let name = device.status.as_ref()?.compliance.as_ref()?.ring.clone()?;
        match self.rings.get(&name).await {
            Ok(ring) => Some(ring.spec),
            Err(e) => {
                warn!(ring = %name, error = %e, "cannot read the device's ring; no health checks, reboots only in a plan entry's window");
                None
            }
        }
    }

    async fn inventory(&self) -> Result<Inventory, TickError> {
        let backend = self.backend.clone();
        blocking(move || backend.inventory())
            .await
            .map_err(TickError::Inventory)
    }

    /// What the package database says of every catalog Patch that names packages of
    /// this device's distribution.
    fn verdicts(&self, inventory: &Inventory) -> BTreeMap<String, Found> {
        let mut out = BTreeMap::new();
        for patch in self.catalog.state() {
            let fixes = &patch.spec.packages;
            if !fixes.iter().any(|f| self.ecosystem.covers(&f.ecosystem)) {
                continue;
            }
            let found = match applicability::assess(fixes, &self.ecosystem, inventory) {
                Ok(Applicability::NotApplicable) => Found::NotApplicable,
                Ok(Applicability::Missing { .. }) => Found::Missing,
                Ok(Applicability::Installed) => Found::Fixed,
                Err(e) => {
                    warn!(patch = %patch.spec.id, error = %e, "cannot judge the patch against the installed packages; left as it was");
                    continue;
                }
            };
            out.insert(patch.spec.id.clone(), found);
        }
        out
    }

    /// Sends the reports, `lastSeen`, `rebootPending` and `agent` when one of them
    /// changed: a merge patch of the status subresource, never `spec`, never
    /// `status.compliance`. With nothing changed, a heartbeat that is due renews the
    /// device's check-in Lease instead (no ManagedDevice write), or, if that fails,
    /// writes the status with `lastSeen` as agents did before Leases.
    async fn write_status(
        &mut self,
        device: &ManagedDevice,
        now: Timestamp,
    ) -> Result<(), TickError> {
        let reports = self.reports.clone().unwrap_or_default();
        let pending = self.reboot_pending();
        let cluster = device.status.as_ref();
        let same = cluster.is_some_and(|s| {
            s.patches == reports
                && s.reboot_pending == pending
                && s.agent.as_deref() == Some(self.config.agent.as_str())
        });
        let heartbeat_due = self
            .checked_in_at
            .is_none_or(|at| now.duration_since(at).unsigned_abs() >= self.config.heartbeat);
        if same && !heartbeat_due {
            return Ok(());
        }
        if same {
            // An agent whose RBAC predates check-in Leases still checks in, as before; so
            // does an enrolled one whose Lease was deleted (it may not create Leases).
            match self.renew(device, now).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    warn!(error = %e, "could not renew the check-in Lease; writing lastSeen instead")
                }
            }
        }
        let body = json!({
            "status": {
                "patches": reports,
                "lastSeen": now,
                "rebootPending": pending,
                "agent": self.config.agent,
            }
        });
        self.devices
            .patch_status(
                &self.config.name,
                &PatchParams::default(),
                &KubePatch::Merge(&body),
            )
            .await
            .map_err(kube_err("writing the device's status"))?;
        self.checked_in_at = Some(now);
        Ok(())
    }

    /// Renews the device's check-in Lease at `now`, held by the agent the device's
    /// `ringmaster.dev/agent` annotation names (else by what `status.agent` says).
    async fn renew(
        &mut self,
        device: &ManagedDevice,
        now: Timestamp,
    ) -> Result<(), crate::agent::lease::RenewError> {
        let holder = device
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::agent::AGENT_ANNOTATION))
            .unwrap_or(&self.config.agent);
        CheckIn::new(
            self.leases.clone(),
            &self.config.name,
            holder,
            self.config.heartbeat,
        )
        .renew(now)
        .await?;
        self.checked_in_at = Some(now);
        Ok(())
    }

    fn reboot_pending(&self) -> bool {
        self.reports
            .iter()
            .flatten()
            .any(|r| r.state == PatchState::PendingReboot)
    }

    fn report_mut(&mut self, id: &str) -> Option<&mut DevicePatchStatus> {
        self.reports.as_mut()?.iter_mut().find(|r| r.id == id)
    }

    fn save(&self) -> Result<(), TickError> {
        Ok(self.store.save(&self.state)?)
    }

    /// Starts the entry's attempt: Installing is written first (the operator counts the
    /// device in progress), then the packages are brought to the fixed versions, read
    /// again, checked, and the result reported.
    async fn install(
        &mut self,
        id: &str,
        entry: &PlanEntry,
        seen: &Seen,
        now: Timestamp,
    ) -> Result<(), TickError> {
        let Some(report) = self.report_mut(id) else {
            return Ok(());
        };
        contract::start(report, Some(entry), now);
        self.state.work = Some(Work {
            patch: id.to_string(),
            attempt: entry.attempt.clone(),
            phase: Phase::Installing,
            started_at: now,
        });
        self.save()?;
        if let Err(e) = self.write_status(&seen.device, now).await {
            // Not started: the operator must see Installing before the package manager
            // runs. The next check-in starts again from the package database.
            self.state.work = None;
            self.reports = None;
            self.save()?;
            return Err(e);
        }
        info!(patch = %id, attempt = ?entry.attempt, "installing");
        let outcome = match self.prepare_node().await {
            Ok(()) => self.run_install(id, seen).await,
            Err(message) => Err(message),
        };
        self.settle(id, outcome, false, seen, Timestamp::now().max(now))
            .await
    }

    /// Brings the patch's packages to the fixed versions; Ok with the verdict of the
    /// package database read again, or the package manager's failure in words.
    async fn run_install(&mut self, id: &str, seen: &Seen) -> Result<(), String> {
        let upgrades = match self.assess(id, &seen.inventory) {
            Some(Applicability::Missing { upgrades }) => upgrades,
            Some(_) => return Ok(()),
            None => return Err(format!("{id} is no longer in the catalog")),
        };
        let names: Vec<String> = upgrades.iter().map(|u| u.package.clone()).collect();
        let backend = self.backend.clone();
        let available = blocking(move || backend.available(&names, true))
            .await
            .map_err(|e| e.to_string())?;
        let flavour = seen.inventory.flavour;
        let mut pins = Vec::new();
        for u in &upgrades {
            let offered = available
                .get(&u.package)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let version = flavour
                .and_then(|f| applicability::choose_upgrade(f, u, offered))
                .ok_or_else(|| {
                    let versions: Vec<&str> = offered.iter().map(|c| c.version.as_str()).collect();
                    BackendError::Unavailable {
                        package: u.package.clone(),
                        wanted: format!(">= {}", u.fixed),
                        tail: format!("offered: {}", versions.join(", ")),
                    }
                    .to_string()
                })?;
            pins.push(Pin {
                package: u.package.clone(),
                version,
            });
        }
        self.state.replaced.insert(
            id.to_string(),
            upgrades
                .iter()
                .map(|u| Version {
                    package: u.package.clone(),
                    version: u.installed.clone(),
                })
                .collect(),
        );
        self.save().map_err(|e| e.to_string())?;
        let backend = self.backend.clone();
        blocking(move || backend.install(&pins))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn assess(&self, id: &str, inventory: &Inventory) -> Option<Applicability> {
        let patch = self.catalog.state().into_iter().find(|p| p.spec.id == id)?;
        applicability::assess(&patch.spec.packages, &self.ecosystem, inventory).ok()
    }

    /// Ends the attempt: post-patch validation (the versions read again, then the ring's
    /// health checks), then Installed, PendingReboot or Failed.
    async fn settle(
        &mut self,
        id: &str,
        ran: Result<(), String>,
        rebooted: bool,
        seen: &Seen,
        now: Timestamp,
    ) -> Result<(), TickError> {
        let validated = match ran {
            Ok(()) => self.validate(id, seen.ring.as_ref()).await,
            Err(message) => Err(message),
        };
        let outcome = match validated {
            Err(message) => Outcome::Failed(self.restore(id, message).await),
            Ok(()) if rebooted => Outcome::Installed,
            Ok(()) => self.after_install(id, seen).await?,
        };
        info!(patch = %id, outcome = ?outcome, "attempt ended");
        if matches!(outcome, Outcome::Failed(_) | Outcome::Installed) {
            self.state.work = None;
            self.release_node().await;
        }
        if let Some(report) = self.report_mut(id) {
            contract::finish(report, outcome, now);
        }
        self.save()?;
        self.write_status(&seen.device, now).await
    }

    /// After a failed attempt, the packages the install changed are brought back to the
    /// versions it replaced, so a failed attempt leaves the device as it was (a failed
    /// maintainer script leaves a package half-configured; a failed health check, a
    /// version that breaks a service). Returns the failure's message with what the
    /// rollback did.
    async fn restore(&mut self, id: &str, message: String) -> String {
        let Some(old) = self.state.replaced.get(id).cloned() else {
            return message;
        };
        let Ok(inventory) = self.inventory().await else {
            return format!("{message}; the package database could not be read to roll back");
        };
        let changed = old.iter().any(|v| !at_version(&inventory, v));
        if !changed {
            return message;
        }
        match self.run_uninstall(id).await {
            Ok(()) => match self.inventory().await {
                Ok(after) if old.iter().all(|v| at_version(&after, v)) => {
                    self.state.replaced.remove(id);
                    self.state.failed_checks.remove(id);
                    format!("{message}; rolled back to {}", versions(&old))
                }
                _ => format!("{message}; the rollback to {} did not take", versions(&old)),
            },
            Err(e) => format!("{message}; could not roll back: {e}"),
        }
    }

    /// The package database read again and the ring's health checks: Ok, or why not.
    async fn validate(
        &mut self,
        id: &str,
        ring: Option<&DeploymentRingSpec>,
    ) -> Result<(), String> {
        let inventory = self.inventory().await.map_err(|e| e.to_string())?;
        match self.assess(id, &inventory) {
            Some(Applicability::Installed) => {}
            Some(Applicability::NotApplicable) => {
                return Err(
                    "the package manager finished, but the packages the patch fixes are not installed and configured"
                        .to_string(),
                );
            }
            Some(Applicability::Missing { upgrades }) => {
                let behind: Vec<String> = upgrades
                    .iter()
                    .map(|u| {
                        format!(
                            "{} is at {}, not at least {}",
                            u.package, u.installed, u.fixed
                        )
                    })
                    .collect();
                return Err(format!(
                    "the package manager finished, but {}",
                    behind.join("; ")
                ));
            }
            None => return Err(format!("{id} is no longer in the catalog")),
        }
        let Some(checks) = ring.map(|r| &r.health_checks).filter(|c| !c.is_empty()) else {
            self.state.failed_checks.remove(id);
            return Ok(());
        };
        match health::run(checks, self.runner.clone(), &self.http).await {
            Ok(()) => {
                self.state.failed_checks.remove(id);
                Ok(())
            }
            Err(failed) => {
                self.state.failed_checks.insert(id.to_string());
                Err(failed.to_string())
            }
        }
    }

    /// After a validated install: Installed, or PendingReboot with the work kept until
    /// the device has rebooted.
    async fn after_install(&mut self, id: &str, seen: &Seen) -> Result<Outcome, TickError> {
        let policy = seen
            .ring
            .as_ref()
            .map(|r| r.reboot.policy)
            .unwrap_or_default();
        let backend = self.backend.clone();
        let need = blocking(move || backend.reboot_required()).await.unwrap_or_else(|e| {
            warn!(error = %e, "cannot tell whether the device needs a reboot; assuming it does not");
            RebootNeed::None
        });
        let reboot = match (policy, need) {
            (RebootPolicy::Always, _) => true,
            (_, RebootNeed::Required(reasons)) => {
                info!(patch = %id, reasons = ?reasons, "the install needs a reboot");
                true
            }
            (_, RebootNeed::None) => false,
        };
        if !reboot {
            return Ok(Outcome::Installed);
        }
        let boot_id = reboot::boot_id(&self.config.reboot).unwrap_or_default();
        if let Some(work) = self.state.work.as_mut() {
            work.phase = Phase::AwaitingReboot {
                boot_id,
                requested_at: None,
            };
        }
        Ok(Outcome::PendingReboot)
    }

    /// Work under way at a check-in: an install that waits for its reboot (reboot when
    /// the ring allows, or finish once rebooted), or one the agent stopped in the middle
    /// of (finished from what the package database says now).
    async fn continue_work(&mut self, seen: &Seen, now: Timestamp) -> Result<(), TickError> {
        let Some(work) = self.state.work.clone() else {
            return Ok(());
        };
        match work.phase {
            Phase::Installing => {
                warn!(patch = %work.patch, "the agent stopped during this install; judging it from the package database");
                let ran = match self.assess(&work.patch, &seen.inventory) {
                    Some(Applicability::Installed) => Ok(()),
                    _ => Err(reports::INTERRUPTED.to_string()),
                };
                self.settle(&work.patch, ran, false, seen, now).await
            }
            Phase::AwaitingReboot {
                boot_id,
                requested_at,
            } => {
                let current = reboot::boot_id(&self.config.reboot).unwrap_or_default();
                if current != boot_id {
                    info!(patch = %work.patch, "rebooted; validating the install");
                    return self.settle(&work.patch, Ok(()), true, seen, now).await;
                }
                self.maybe_reboot(&work.patch, seen, requested_at, now)
                    .await
            }
        }
    }

    async fn maybe_reboot(
        &mut self,
        patch: &str,
        seen: &Seen,
        requested_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), TickError> {
        let entry = seen.device.spec.plan.install.get(patch);
        let decision = reboot::decide(seen.ring.as_ref(), entry, requested_at, now);
        let Reboot::Now { grace } = decision else {
            return Ok(());
        };
        if let Err(message) = self.prepare_node().await {
            warn!(patch = %patch, %message, "not rebooting; trying again at the next check-in");
            return Ok(());
        }
        info!(patch = %patch, grace = ?grace, "rebooting to finish the install");
        let result = reboot::request(&self.config.reboot, self.runner.clone(), patch, grace).await;
        if let Err(e) = &result {
            warn!(error = %e, "the reboot command failed; trying again at the next check-in");
            return Ok(());
        }
        if let Some(Work {
            phase: Phase::AwaitingReboot { requested_at, .. },
            ..
        }) = self.state.work.as_mut()
        {
            *requested_at = Some(now);
        }
        self.save()
    }

    /// A rollback: the packages back to the versions the install replaced, read again.
    async fn uninstall(&mut self, id: &str, seen: &Seen, now: Timestamp) -> Result<(), TickError> {
        if let Some(at) = self.uninstall_failed_at.get(id)
            && now.duration_since(*at).unsigned_abs() < self.config.retry_uninstall
        {
            return Ok(());
        }
        info!(patch = %id, "rolling back");
        let result = match self.prepare_node().await {
            Ok(()) => self.run_uninstall(id).await,
            Err(message) => Err(message),
        };
        if self.state.work.is_none() {
            self.release_node().await;
        }
        let inventory = self.inventory().await?;
        let back = self
            .state
            .replaced
            .get(id)
            .is_some_and(|old| old.iter().all(|v| at_version(&inventory, v)));
        let now = Timestamp::now().max(now);
        match (result, back) {
            (Ok(()), true) => {
                self.state.replaced.remove(id);
                self.state.failed_checks.remove(id);
                self.uninstall_failed_at.remove(id);
                if let Some(r) = self.report_mut(id) {
                    contract::finish(r, Outcome::Uninstalled, now);
                }
            }
            (result, _) => {
                let message = match result {
                    Err(message) => message,
                    Ok(()) => {
                        "the package manager finished, but the old versions are not installed"
                            .into()
                    }
                };
                warn!(patch = %id, %message, "rollback failed");
                self.uninstall_failed_at.insert(id.to_string(), now);
                if let Some(r) = self.report_mut(id) {
                    r.message = Some(message);
                }
            }
        }
        self.save()?;
        self.write_status(&seen.device, now).await
    }

    async fn run_uninstall(&self, id: &str) -> Result<(), String> {
        let Some(old) = self.state.replaced.get(id) else {
            return Err(BackendError::CannotRollBack {
                package: id.to_string(),
                reason:
                    "the agent did not install it, so it does not know the versions it replaced"
                        .into(),
            }
            .to_string());
        };
        let pins: Vec<Pin> = old
            .iter()
            .map(|v| Pin {
                package: v.package.clone(),
                version: v.version.clone(),
            })
            .collect();
        let backend = self.backend.clone();
        blocking(move || backend.downgrade(&pins))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Whether the package is installed (and configured) at exactly this version.
fn at_version(inventory: &Inventory, v: &Version) -> bool {
    inventory
        .packages
        .iter()
        .any(|p| names(p, &v.package) && p.version == v.version)
}

/// Whether `package`, as the backends take it (`name`, `name:arch` for apt, `name.arch`
/// for dnf), names this installed package.
fn names(p: &InstalledPackage, package: &str) -> bool {
    package == p.name
        || package
            .strip_prefix(p.name.as_str())
            .and_then(|rest| rest.strip_prefix([':', '.']))
            .is_some_and(|arch| arch == p.arch)
}

fn versions(old: &[Version]) -> String {
    old.iter()
        .map(|v| format!("{} {}", v.package, v.version))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The contract's next action, owned (the plan it borrows from is read per check-in).
enum Owned {
    Uninstall(String),
    Install(String, PlanEntry),
}

fn owned(action: Action<'_>) -> Owned {
    match action {
        Action::Uninstall(id, _) => Owned::Uninstall(id.to_string()),
        Action::Install(id, entry) => Owned::Install(id.to_string(), entry.clone()),
    }
}

/// Runs blocking package-manager work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(BackendError::Parse {
            what: "the package manager's task".into(),
            detail: e.to_string(),
        })
    })
}
