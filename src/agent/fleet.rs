//! The simulated fleet's I/O: registers its devices, watches their plans (and the Patch
//! catalog), checks each device in on its schedule and writes what changed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{Stream, StreamExt, stream};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{Api, Patch as KubePatch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};

use super::device::{Behaviour, SimDevice};
use super::{AGENT_ANNOTATION, Error, FIELD_MANAGER, FLEET_LABEL};
use crate::api::{DevicePlan, ManagedDevice, ManagedDeviceSpec, OsInfo, Patch};

/// What the fleet reports as its agent.
const AGENT: &str = concat!(
    "ringmaster-agent/",
    env!("CARGO_PKG_VERSION"),
    " (simulated)"
);
/// How often the fleet logs a summary.
const SUMMARY_EVERY: SignedDuration = SignedDuration::from_secs(60);

/// A simulated fleet's make-up and behaviour.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// The namespace the devices live in.
    pub namespace: String,
    /// How many devices.
    pub devices: u32,
    /// Device names are `<prefix>-001` …; also the fleet label's value.
    pub prefix: String,
    /// Labels on every device.
    pub labels: BTreeMap<String, String>,
    /// Patch ids every device reports; empty: the released Patches of the catalog.
    pub patches: Vec<String>,
    /// Install times and failure rates.
    pub behaviour: Behaviour,
    /// How often each device checks in.
    pub check_in: SignedDuration,
    /// How often a device with nothing new reports `lastSeen`.
    pub heartbeat: SignedDuration,
    /// Seed of the random draws.
    pub seed: u64,
    /// The most requests in flight.
    pub concurrency: usize,
    /// The `ringmaster.dev/agent` annotation's value; None: the client's user name.
    pub identity: Option<String>,
    /// Follow the plans; false: only report (agents that never act, for measuring the
    /// operator alone).
    pub follow_plans: bool,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            namespace: "default".into(),
            devices: 10,
            prefix: "sim".into(),
            labels: BTreeMap::new(),
            patches: Vec::new(),
            behaviour: Behaviour::default(),
            check_in: SignedDuration::from_secs(30),
            heartbeat: SignedDuration::from_mins(5),
            seed: 1,
            concurrency: 32,
            identity: None,
            follow_plans: true,
        }
    }
}

impl FleetConfig {
    /// The device names, `<prefix>-001` … in order.
    pub fn names(&self) -> Vec<String> {
        let width = self.devices.to_string().len().max(3);
        (1..=self.devices)
            .map(|i| format!("{}-{i:0width$}", self.prefix))
            .collect()
    }

    fn check(&self) -> Result<(), Error> {
        let valid_label = |s: &str| {
            !s.is_empty()
                && s.len() <= 50
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        };
        if !valid_label(&self.prefix) {
            return Err(Error::Config(format!(
                "--prefix `{}`: must be 1–50 lower-case letters, digits or '-', starting and ending with a letter or digit",
                self.prefix
            )));
        }
        if self.devices == 0 {
            return Err(Error::Config("--devices: at least 1".into()));
        }
        if self.behaviour.install_min > self.behaviour.install_max {
            return Err(Error::Config(
                "--install-min is longer than --install-max".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.behaviour.failure_rate)
            || self
                .behaviour
                .patch_failure
                .values()
                .any(|r| !(0.0..=1.0).contains(r))
        {
            return Err(Error::Config("failure rates are between 0 and 1".into()));
        }
        if self.check_in <= SignedDuration::ZERO {
            return Err(Error::Config("--check-in: longer than 0s".into()));
        }
        Ok(())
    }
}

/// Counters of what the fleet did, readable while it runs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Devices registered (created or taken over).
    pub registered: AtomicU64,
    /// Status writes sent and accepted.
    pub writes: AtomicU64,
    /// Status writes refused or failed (retried at the next check-in).
    pub write_errors: AtomicU64,
    /// Installs started.
    pub installs: AtomicU64,
}

/// One device in the loop.
struct Slot {
    name: String,
    device: SimDevice,
    plan: DevicePlan,
    /// When it is next checked in; heap entries for other instants are stale.
    next_at: Timestamp,
    /// Its last accepted report.
    reported_at: Option<Timestamp>,
    /// The report changed since it was last accepted.
    unsent: bool,
    /// The device was deleted: nothing more is sent for it.
    gone: bool,
}

/// What wakes the loop besides the clock.
enum Input {
    Device(Box<ManagedDevice>),
    Catalog(Box<Patch>),
    WatchError(String),
}

/// A simulated fleet on a client.
pub struct Fleet {
    client: Client,
    config: FleetConfig,
    stats: Arc<Stats>,
}

/// Runs a simulated fleet until `shutdown` turns true.
pub async fn run(
    client: Client,
    config: FleetConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    Fleet::new(client, config).run(shutdown).await
}

impl Fleet {
    /// A fleet on a client.
    pub fn new(client: Client, config: FleetConfig) -> Self {
        Self {
            client,
            config,
            stats: Arc::new(Stats::default()),
        }
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Registers the devices, then checks them in on their schedule until `shutdown`.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> Result<(), Error> {
        let cfg = &self.config;
        cfg.check()?;
        let identity = match &cfg.identity {
            Some(i) => Some(i.clone()),
            None => self.whoami().await,
        };
        let api: Api<ManagedDevice> = Api::namespaced(self.client.clone(), &cfg.namespace);
        let start = Timestamp::now();
        let names = cfg.names();
        let registered: Vec<Result<(String, ManagedDevice), Error>> =
            stream::iter(names.iter().cloned())
                .map(|name| self.register(&api, name, identity.as_deref()))
                .buffer_unordered(cfg.concurrency)
                .collect()
                .await;
        let mut slots = Vec::with_capacity(names.len());
        for r in registered {
            let (name, existing) = r?;
            let mut device = SimDevice::new(cfg.seed, &name);
            if let Some(status) = &existing.status {
                device.adopt(&status.patches, &cfg.behaviour, start);
            }
            device.ensure_patches(cfg.patches.iter().map(String::as_str));
            slots.push(Slot {
                name,
                device,
                plan: existing.spec.plan.clone(),
                next_at: start,
                reported_at: None,
                unsent: true,
                gone: false,
            });
        }
        slots.sort_by(|a, b| a.name.cmp(&b.name));
        self.stats
            .registered
            .store(slots.len() as u64, Ordering::Relaxed);
        info!(
            devices = slots.len(),
            namespace = %cfg.namespace,
            identity = identity.as_deref().unwrap_or("(none)"),
            "simulated fleet registered"
        );
        let index: HashMap<String, usize> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        // Everyone reports at once, then check-ins spread evenly over the interval.
        let mut heap: BinaryHeap<Reverse<(Timestamp, usize)>> =
            (0..slots.len()).map(|i| Reverse((start, i))).collect();
        let n = slots.len().max(1) as i64;
        let spread =
            |i: usize| SignedDuration::from_millis(cfg.check_in.as_millis() as i64 * i as i64 / n);

        let mut inputs = self.inputs();
        let mut catalog: BTreeSet<String> = BTreeSet::new();
        // Patches in the catalog whose release is still to come, by id.
        let mut unreleased: BTreeMap<String, Timestamp> = BTreeMap::new();
        let mut summary_at = start;
        let mut first_round = true;
        loop {
            let next = heap
                .peek()
                .map(|Reverse((at, _))| *at)
                .into_iter()
                .chain(unreleased.values().copied())
                .min();
            let wait = next
                .map(|at| at.duration_since(Timestamp::now()))
                .unwrap_or(SignedDuration::from_hours(1))
                .max(SignedDuration::ZERO);
            let wait = std::time::Duration::try_from(wait).unwrap_or_default();
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                input = inputs.next() => match input {
                    Some(Input::Device(dev)) => {
                        let Some(&i) = index.get(&dev.name_any()) else { continue };
                        let slot = &mut slots[i];
                        if slot.plan != dev.spec.plan {
                            slot.plan = dev.spec.plan.clone();
                            // A new instruction is picked up at once.
                            let now = Timestamp::now();
                            if now < slot.next_at {
                                slot.next_at = now;
                                heap.push(Reverse((now, i)));
                            }
                        }
                    }
                    Some(Input::Catalog(p)) => {
                        if !catalog.contains(&p.spec.id) {
                            unreleased.insert(p.spec.id.clone(), p.spec.released_at);
                        }
                    }
                    Some(Input::WatchError(e)) => warn!(error = %e, "watch failed; retrying"),
                    None => return Err(Error::Config("the watches ended".into())),
                },
                () = tokio::time::sleep(wait) => {}
            }

            let now = Timestamp::now();
            // Patches of the catalog appear on every device at their release.
            let released: Vec<String> = unreleased
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(id, _)| id.clone())
                .collect();
            for id in released {
                unreleased.remove(&id);
                catalog.insert(id.clone());
                for (i, slot) in slots.iter_mut().enumerate() {
                    if slot.device.ensure_patches([id.as_str()]) {
                        slot.unsent = true;
                        if now < slot.next_at {
                            slot.next_at = now;
                            heap.push(Reverse((now, i)));
                        }
                    }
                }
            }
            let mut due = Vec::new();
            while let Some(&Reverse((at, i))) = heap.peek() {
                if at > now {
                    break;
                }
                heap.pop();
                if slots[i].next_at == at && !slots[i].gone {
                    due.push(i);
                }
            }
            if due.is_empty() {
                continue;
            }
            let mut writes = Vec::new();
            for &i in &due {
                let slot = &mut slots[i];
                let was_busy = slot.device.work.is_some();
                if cfg.follow_plans && slot.device.check_in(&slot.plan, &cfg.behaviour, now) {
                    slot.unsent = true;
                }
                if !was_busy && slot.device.work.as_ref().is_some_and(|w| w.install) {
                    self.stats.installs.fetch_add(1, Ordering::Relaxed);
                }
                let heartbeat_due = slot
                    .reported_at
                    .is_none_or(|t| now.duration_since(t) >= cfg.heartbeat);
                if slot.unsent || heartbeat_due {
                    writes.push((i, status_patch(&slot.device, now)));
                }
                let regular = if first_round {
                    now.checked_add(cfg.check_in + spread(i))
                } else {
                    now.checked_add(cfg.check_in)
                }
                .unwrap_or(now);
                let next = slot.device.next_due().map_or(regular, |d| d.min(regular));
                slot.next_at = next;
                heap.push(Reverse((next, i)));
            }
            first_round = false;
            let results: Vec<(usize, Result<(), kube::Error>)> = stream::iter(writes)
                .map(|(i, body)| {
                    let api = api.clone();
                    let name = slots[i].name.clone();
                    async move {
                        let params = PatchParams {
                            field_manager: Some(FIELD_MANAGER.into()),
                            ..PatchParams::default()
                        };
                        let r = api
                            .patch_status(&name, &params, &KubePatch::Merge(&body))
                            .await
                            .map(|_| ());
                        (i, r)
                    }
                })
                .buffer_unordered(cfg.concurrency)
                .collect()
                .await;
            for (i, r) in results {
                let slot = &mut slots[i];
                match r {
                    Ok(()) => {
                        slot.unsent = false;
                        slot.reported_at = Some(now);
                        self.stats.writes.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        warn!(device = %slot.name, "device deleted; it is no longer simulated");
                        slot.gone = true;
                    }
                    Err(e) => {
                        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                        warn!(device = %slot.name, error = %e, "status write failed; retried at the next check-in");
                    }
                }
            }
            if now.duration_since(summary_at) >= SUMMARY_EVERY {
                summary_at = now;
                self.log_summary(&slots);
            }
        }
        info!("simulated fleet stopped");
        Ok(())
    }

    fn log_summary(&self, slots: &[Slot]) {
        let mut states: BTreeMap<&'static str, u64> = BTreeMap::new();
        for s in slots {
            for p in &s.device.patches {
                *states.entry(state_name(p.state)).or_default() += 1;
            }
        }
        info!(
            devices = slots.iter().filter(|s| !s.gone).count(),
            writes = self.stats.writes.load(Ordering::Relaxed),
            write_errors = self.stats.write_errors.load(Ordering::Relaxed),
            installs = self.stats.installs.load(Ordering::Relaxed),
            patches = ?states,
            "simulated fleet"
        );
    }

    /// The client's user name, for the agent annotation; None if the server cannot say.
    async fn whoami(&self) -> Option<String> {
        let api: Api<SelfSubjectReview> = Api::all(self.client.clone());
        match api
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await
        {
            Ok(review) => review
                .status
                .and_then(|s| s.user_info)
                .and_then(|u| u.username),
            Err(e) => {
                warn!(error = %e, "cannot learn the client's identity; devices get no agent annotation");
                None
            }
        }
    }

    /// Creates a device, or takes over the one that exists; returns it as it stands.
    async fn register(
        &self,
        api: &Api<ManagedDevice>,
        name: String,
        identity: Option<&str>,
    ) -> Result<(String, ManagedDevice), Error> {
        let cfg = &self.config;
        let mut labels = cfg.labels.clone();
        labels.insert(FLEET_LABEL.into(), cfg.prefix.clone());
        let mut device = ManagedDevice::new(
            &name,
            ManagedDeviceSpec {
                hostname: Some(format!("{name}.{}.sim", cfg.namespace)),
                os: Some(OsInfo {
                    family: "windows".into(),
                    version: Some("10.0.22631".into()),
                }),
                plan: DevicePlan::default(),
            },
        );
        device.metadata.labels = Some(labels);
        if let Some(id) = identity {
            device.metadata.annotations =
                Some([(AGENT_ANNOTATION.to_string(), id.to_string())].into());
        }
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        match api.create(&params, &device).await {
            Ok(created) => Ok((name, created)),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let existing = api
                    .get(&name)
                    .await
                    .map_err(|e| Error::kube(format!("reading ManagedDevice {name}"), e))?;
                Ok((name, existing))
            }
            Err(e) => Err(Error::kube(format!("registering ManagedDevice {name}"), e)),
        }
    }

    /// The device watch (this fleet's devices only) and, when no patch list is given,
    /// the catalog watch, as one stream.
    fn inputs(&self) -> std::pin::Pin<Box<dyn Stream<Item = Input> + Send>> {
        let cfg = &self.config;
        let api: Api<ManagedDevice> = Api::namespaced(self.client.clone(), &cfg.namespace);
        let devices = watcher(
            api,
            watcher::Config::default().labels(&format!("{FLEET_LABEL}={}", cfg.prefix)),
        )
        .default_backoff()
        .applied_objects()
        .map(|r| match r {
            Ok(d) => Input::Device(Box::new(d)),
            Err(e) => Input::WatchError(e.to_string()),
        });
        if !cfg.patches.is_empty() {
            return Box::pin(devices);
        }
        let catalog = watcher(Api::<Patch>::all(self.client.clone()), Default::default())
            .default_backoff()
            .applied_objects()
            .map(|r| match r {
                Ok(p) => Input::Catalog(Box::new(p)),
                Err(e) => Input::WatchError(e.to_string()),
            });
        Box::pin(stream::select(devices, catalog))
    }
}

/// The agent's merge patch of a device's status: never `compliance`, never `spec`.
fn status_patch(device: &SimDevice, now: Timestamp) -> serde_json::Value {
    json!({
        "status": {
            "lastSeen": now,
            "patches": device.patches,
            "agent": AGENT,
        }
    })
}

fn state_name(s: crate::api::PatchState) -> &'static str {
    use crate::api::PatchState::*;
    match s {
        Missing => "missing",
        Installing => "installing",
        Installed => "installed",
        Failed => "failed",
        PendingReboot => "pendingReboot",
        RolledBack => "rolledBack",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_zero_padded_and_sorted() {
        let cfg = FleetConfig {
            devices: 12,
            prefix: "ws".into(),
            ..FleetConfig::default()
        };
        let names = cfg.names();
        assert_eq!(names.first().map(String::as_str), Some("ws-001"));
        assert_eq!(names.last().map(String::as_str), Some("ws-012"));
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }

    #[test]
    fn bad_flags_are_refused_with_the_flag_named() {
        let bad = |f: fn(&mut FleetConfig)| {
            let mut c = FleetConfig::default();
            f(&mut c);
            c.check().expect_err("refused").to_string()
        };
        assert!(bad(|c| c.prefix = "Bad_Prefix".into()).contains("--prefix"));
        assert!(bad(|c| c.devices = 0).contains("--devices"));
        assert!(bad(|c| c.behaviour.failure_rate = 1.5).contains("between 0 and 1"));
        assert!(
            bad(|c| c.behaviour.install_min = SignedDuration::from_mins(10))
                .contains("--install-min")
        );
        assert!(FleetConfig::default().check().is_ok());
    }

    #[test]
    fn the_status_patch_touches_only_what_the_agent_owns() {
        let mut d = SimDevice::new(1, "ws-1");
        d.ensure_patches(["KB1"]);
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().expect("ts");
        let body = status_patch(&d, now);
        let status = body["status"].as_object().expect("status");
        let keys: BTreeSet<&str> = status.keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["agent", "lastSeen", "patches"]));
        assert!(body.get("spec").is_none());
        assert_eq!(body["status"]["patches"][0]["state"], "Missing");
        assert_eq!(body["status"]["lastSeen"], "2026-01-01T00:00:00Z");
    }
}
