//! The simulated fleet's I/O: registers its devices, watches their plans (and the Patch
//! catalog), checks each device in on its schedule and writes what changed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{Stream, StreamExt, stream};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch as KubePatch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};

use super::device::{Behaviour, SimDevice};
use super::lease::{CheckIn, RenewError};
use super::{AGENT_ANNOTATION, Error, FIELD_MANAGER, FLEET_LABEL};
use crate::api::{DevicePlan, ManagedDevice, ManagedDeviceSpec, OsInfo, Patch};
use crate::watch::{Pace, recovering};

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
    /// How often a device with nothing new checks in by renewing its Lease (a report
    /// that changed is a status write, with `lastSeen`, and counts as a check-in too).
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
    /// Check-in Lease renewals accepted (heartbeats: no ManagedDevice write).
    pub renewals: AtomicU64,
    /// Check-in Lease renewals that failed (tried again at the next check-in).
    pub renew_errors: AtomicU64,
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
    /// Its last accepted report or Lease renewal: when it last checked in.
    reported_at: Option<Timestamp>,
    /// The report changed since it was last accepted.
    unsent: bool,
    /// The device was deleted: nothing more is sent for it.
    gone: bool,
}

/// What one check-in sends for a device.
#[derive(Clone, Debug, PartialEq)]
enum Write {
    /// Its report changed: a merge patch of its status (with `lastSeen`).
    Status(serde_json::Value),
    /// Nothing changed and a heartbeat is due: its Lease renewed.
    Renew,
}

/// What wakes the loop besides the clock.
enum Input {
    Device(Box<ManagedDevice>),
    Catalog(Box<Patch>),
    WatchError(String),
}

impl Slot {
    /// The slot of a device as registered: its patches taken over from the status it
    /// already has (plus the configured ones), due at `start` with a report to send.
    fn new(name: String, existing: &ManagedDevice, cfg: &FleetConfig, start: Timestamp) -> Self {
        let mut device = SimDevice::new(cfg.seed, &name);
        if let Some(status) = &existing.status {
            device.adopt(&status.patches, &cfg.behaviour, start);
        }
        device.ensure_patches(cfg.patches.iter().map(String::as_str));
        Self {
            name,
            device,
            plan: existing.spec.plan.clone(),
            next_at: start,
            reported_at: None,
            unsent: true,
            gone: false,
        }
    }
}

/// The state of a running fleet's loop: its devices, when each is next due, and the
/// catalog's Patches as seen so far.
struct Running<'a> {
    fleet: &'a Fleet,
    api: Api<ManagedDevice>,
    /// The devices' namespace's Leases (their check-ins).
    leases: Api<Lease>,
    /// The `holderIdentity` of the check-in Leases.
    holder: String,
    slots: Vec<Slot>,
    /// Slot positions by device name.
    index: HashMap<String, usize>,
    /// Check-ins by instant; an entry is stale unless it matches its slot's `next_at`.
    heap: BinaryHeap<Reverse<(Timestamp, usize)>>,
    /// Released Patches of the catalog, by id.
    catalog: BTreeSet<String>,
    /// Patches in the catalog whose release is still to come, by id.
    unreleased: BTreeMap<String, Timestamp>,
    /// When the last summary was logged.
    summary_at: Timestamp,
    /// No check-in has happened yet: the next ones are spread over the interval.
    first_round: bool,
}

impl<'a> Running<'a> {
    /// The loop's state at `start`, with every slot due at once.
    fn new(
        fleet: &'a Fleet,
        api: Api<ManagedDevice>,
        holder: String,
        slots: Vec<Slot>,
        start: Timestamp,
    ) -> Self {
        let index: HashMap<String, usize> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        // Everyone reports at once, then check-ins spread evenly over the interval.
        let heap: BinaryHeap<Reverse<(Timestamp, usize)>> =
            (0..slots.len()).map(|i| Reverse((start, i))).collect();
        Self {
            fleet,
            leases: Api::namespaced(fleet.client.clone(), &fleet.config.namespace),
            api,
            holder,
            slots,
            index,
            heap,
            catalog: BTreeSet::new(),
            unreleased: BTreeMap::new(),
            summary_at: start,
            first_round: true,
        }
    }

    /// How long until the next check-in or Patch release is due (an hour if none is).
    fn wait(&self) -> std::time::Duration {
        let next = self
            .heap
            .peek()
            .map(|Reverse((at, _))| *at)
            .into_iter()
            .chain(self.unreleased.values().copied())
            .min();
        let wait = next
            .map(|at| at.duration_since(Timestamp::now()))
            .unwrap_or(SignedDuration::from_hours(1))
            .max(SignedDuration::ZERO);
        std::time::Duration::try_from(wait).unwrap_or_default()
    }

    /// Takes a device's plan from the watch; a changed plan makes the device due at
    /// once. False if the device is not one of the fleet's.
    fn take_plan(&mut self, dev: &ManagedDevice) -> bool {
        let Some(&i) = self.index.get(&dev.name_any()) else {
            return false;
        };
        if self.slots[i].plan != dev.spec.plan {
            self.slots[i].plan = dev.spec.plan.clone();
            // A new instruction is picked up at once.
            self.due_by(i, Timestamp::now());
        }
        true
    }

    /// Notes a Patch of the catalog from the watch: one not yet released on the devices
    /// is released at its `releasedAt`.
    fn note_patch(&mut self, p: &Patch) {
        if !self.catalog.contains(&p.spec.id) {
            self.unreleased
                .insert(p.spec.id.clone(), p.spec.released_at);
        }
    }

    /// Makes slot `i` due at `now` if it was due later.
    fn due_by(&mut self, i: usize, now: Timestamp) {
        let slot = &mut self.slots[i];
        if now < slot.next_at {
            slot.next_at = now;
            self.heap.push(Reverse((now, i)));
        }
    }

    /// One turn of the loop at `now`: releases the Patches due, checks in the devices
    /// due, writes their reports and logs a summary when one is due.
    async fn step(&mut self, now: Timestamp) {
        self.release_due(now);
        let due = self.pop_due(now);
        if due.is_empty() {
            return;
        }
        let writes: Vec<(usize, Write)> =
            due.iter().filter_map(|&i| self.check_in(i, now)).collect();
        self.first_round = false;
        let results = self.write_all(writes, now).await;
        self.record(results, now);
        if now.duration_since(self.summary_at) >= SUMMARY_EVERY {
            self.summary_at = now;
            self.fleet.log_summary(&self.slots);
        }
    }

    /// Puts the Patches of the catalog whose release has come on every device; the
    /// devices they are new on are due at once with a report to send.
    fn release_due(&mut self, now: Timestamp) {
        let released: Vec<String> = self
            .unreleased
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in released {
            self.unreleased.remove(&id);
            self.catalog.insert(id.clone());
            for i in 0..self.slots.len() {
                if self.slots[i].device.ensure_patches([id.as_str()]) {
                    self.slots[i].unsent = true;
                    self.due_by(i, now);
                }
            }
        }
    }

    /// Takes the check-ins due by `now` off the heap; returns the slots due, skipping
    /// stale entries and deleted devices.
    fn pop_due(&mut self, now: Timestamp) -> Vec<usize> {
        let mut due = Vec::new();
        while let Some(&Reverse((at, i))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            if self.slots[i].next_at == at && !self.slots[i].gone {
                due.push(i);
            }
        }
        due
    }

    /// Checks slot `i`'s device in: it follows its plan (unless the fleet only reports)
    /// and is scheduled again. Returns its status patch if the report changed, else a
    /// Lease renewal if a heartbeat is due.
    fn check_in(&mut self, i: usize, now: Timestamp) -> Option<(usize, Write)> {
        let fleet = self.fleet;
        let cfg = &fleet.config;
        let regular = self.regular_next(i, now);
        let slot = &mut self.slots[i];
        let was_busy = slot.device.work.is_some();
        if cfg.follow_plans && slot.device.check_in(&slot.plan, &cfg.behaviour, now) {
            slot.unsent = true;
        }
        if !was_busy && slot.device.work.as_ref().is_some_and(|w| w.install) {
            fleet.stats.installs.fetch_add(1, Ordering::Relaxed);
        }
        let heartbeat_due = slot
            .reported_at
            .is_none_or(|t| now.duration_since(t) >= cfg.heartbeat);
        let write = if slot.unsent {
            Some((i, Write::Status(status_patch(&slot.device, now))))
        } else {
            heartbeat_due.then_some((i, Write::Renew))
        };
        let next = slot.device.next_due().map_or(regular, |d| d.min(regular));
        slot.next_at = next;
        self.heap.push(Reverse((next, i)));
        write
    }

    /// When slot `i` checks in next if its device has nothing due sooner: one interval
    /// on, and in the first round also its share of the interval, so that check-ins
    /// spread out evenly after everyone reported at once.
    fn regular_next(&self, i: usize, now: Timestamp) -> Timestamp {
        let check_in = self.fleet.config.check_in;
        if self.first_round {
            let n = self.slots.len().max(1) as i64;
            let spread = SignedDuration::from_millis(check_in.as_millis() as i64 * i as i64 / n);
            now.checked_add(check_in + spread)
        } else {
            now.checked_add(check_in)
        }
        .unwrap_or(now)
    }

    /// Sends the status patches and Lease renewals, as many at once as the fleet allows;
    /// returns each slot's result.
    async fn write_all(&self, writes: Vec<(usize, Write)>, now: Timestamp) -> Vec<(usize, Sent)> {
        stream::iter(writes)
            .map(|(i, write)| {
                let api = self.api.clone();
                let name = self.slots[i].name.clone();
                let heartbeat = self.fleet.config.heartbeat.unsigned_abs();
                let check_in = CheckIn::new(self.leases.clone(), &name, &self.holder, heartbeat);
                async move {
                    let body = match write {
                        Write::Status(body) => body,
                        Write::Renew => {
                            let renewed = check_in.renew(now).await;
                            return (i, Sent::Renewal(renewed));
                        }
                    };
                    let params = PatchParams {
                        field_manager: Some(FIELD_MANAGER.into()),
                        ..PatchParams::default()
                    };
                    let r = api
                        .patch_status(&name, &params, &KubePatch::Merge(&body))
                        .await
                        .map(|_| ());
                    (i, Sent::Status(r))
                }
            })
            .buffer_unordered(self.fleet.config.concurrency)
            .collect()
            .await
    }

    /// Records the writes' results: an accepted report is sent, a deleted device is no
    /// longer simulated, and a failed write is retried at the next check-in.
    fn record(&mut self, results: Vec<(usize, Sent)>, now: Timestamp) {
        let stats = &self.fleet.stats;
        for (i, sent) in results {
            let slot = &mut self.slots[i];
            let r = match sent {
                Sent::Status(r) => r,
                Sent::Renewal(Ok(())) => {
                    slot.reported_at = Some(now);
                    stats.renewals.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Sent::Renewal(Err(e)) => {
                    // The next check-in writes the status (with lastSeen) instead, as
                    // before Leases: a fleet whose RBAC predates them still checks in.
                    stats.renew_errors.fetch_add(1, Ordering::Relaxed);
                    slot.unsent = true;
                    warn!(device = %slot.name, error = %e, "check-in Lease not renewed; the next check-in writes lastSeen instead");
                    continue;
                }
            };
            match r {
                Ok(()) => {
                    slot.unsent = false;
                    slot.reported_at = Some(now);
                    stats.writes.fetch_add(1, Ordering::Relaxed);
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    warn!(device = %slot.name, "device deleted; it is no longer simulated");
                    slot.gone = true;
                }
                Err(e) => {
                    stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    warn!(device = %slot.name, error = %e, "status write failed; retried at the next check-in");
                }
            }
        }
    }
}

/// What a check-in's write came to.
enum Sent {
    /// A status write.
    Status(Result<(), kube::Error>),
    /// A Lease renewal.
    Renewal(Result<(), RenewError>),
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
        let slots = self.register_all(&api, identity.as_deref(), start).await?;
        self.stats
            .registered
            .store(slots.len() as u64, Ordering::Relaxed);
        info!(
            devices = slots.len(),
            namespace = %cfg.namespace,
            identity = identity.as_deref().unwrap_or("(none)"),
            "simulated fleet registered"
        );
        let holder = identity.clone().unwrap_or_else(|| AGENT.to_string());
        let mut running = Running::new(self, api, holder, slots, start);
        let mut inputs = self.inputs();
        loop {
            let wait = running.wait();
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                input = inputs.next() => match input {
                    Some(Input::Device(dev)) => {
                        if !running.take_plan(&dev) {
                            // Not one of the fleet's devices: nothing to do this turn.
                            continue;
                        }
                    }
                    Some(Input::Catalog(p)) => running.note_patch(&p),
                    Some(Input::WatchError(e)) => warn!(error = %e, "watch failed; retrying"),
                    None => return Err(Error::Config("the watches ended".into())),
                },
                () = tokio::time::sleep(wait) => {}
            }
            running.step(Timestamp::now()).await;
        }
        info!("simulated fleet stopped");
        Ok(())
    }

    /// Registers every device of the fleet and returns their slots, sorted by name, each
    /// due at `start` with a report to send.
    async fn register_all(
        &self,
        api: &Api<ManagedDevice>,
        identity: Option<&str>,
        start: Timestamp,
    ) -> Result<Vec<Slot>, Error> {
        let cfg = &self.config;
        let names = cfg.names();
        let registered: Vec<Result<(String, ManagedDevice), Error>> =
            stream::iter(names.iter().cloned())
                .map(|name| self.register(api, name, identity))
                .buffer_unordered(cfg.concurrency)
                .collect()
                .await;
        let mut slots = Vec::with_capacity(names.len());
        for r in registered {
            let (name, existing) = r?;
            slots.push(Slot::new(name, &existing, cfg, start));
        }
        slots.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(slots)
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
            renewals = self.stats.renewals.load(Ordering::Relaxed),
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
        let devices = recovering(
            watcher(
                api,
                watcher::Config::default().labels(&format!("{FLEET_LABEL}={}", cfg.prefix)),
            ),
            Pace::Agent,
        )
        .applied_objects()
        .map(|r| match r {
            Ok(d) => Input::Device(Box::new(d)),
            Err(e) => Input::WatchError(e.to_string()),
        });
        if !cfg.patches.is_empty() {
            return Box::pin(devices);
        }
        let catalog = recovering(
            watcher(Api::<Patch>::all(self.client.clone()), Default::default()),
            Pace::Agent,
        )
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

    /// A fleet on a client that is never called (check-ins decide without I/O).
    fn offline_fleet(cfg: FleetConfig) -> Fleet {
        let config = kube::Config::new("http://127.0.0.1:1".parse().expect("url"));
        Fleet::new(kube::Client::try_from(config).expect("client"), cfg)
    }

    #[tokio::test]
    async fn a_heartbeat_with_nothing_new_renews_the_lease_and_writes_no_status() {
        let cfg = FleetConfig {
            devices: 1,
            heartbeat: SignedDuration::from_mins(5),
            check_in: SignedDuration::from_secs(30),
            follow_plans: false,
            patches: vec!["KB1".into()],
            ..FleetConfig::default()
        };
        let fleet = offline_fleet(cfg.clone());
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().expect("ts");
        let existing = ManagedDevice::new("sim-001", ManagedDeviceSpec::default());
        let slots = vec![Slot::new("sim-001".into(), &existing, &cfg, start)];
        let api = Api::namespaced(fleet.client.clone(), "default");
        let mut running = Running::new(&fleet, api, "agent".into(), slots, start);
        // The first check-in reports (a status write, with lastSeen).
        let first = running.check_in(0, start).map(|(_, w)| w);
        assert!(matches!(first, Some(Write::Status(_))), "{first:?}");
        running.record(vec![(0, Sent::Status(Ok(())))], start);
        // Nothing new, heartbeat not due: nothing at all.
        let soon = start
            .checked_add(SignedDuration::from_secs(30))
            .expect("ts");
        assert_eq!(running.check_in(0, soon), None);
        // Nothing new, heartbeat due: the Lease, not the status.
        let due = start.checked_add(SignedDuration::from_mins(5)).expect("ts");
        assert_eq!(running.check_in(0, due), Some((0, Write::Renew)));
        running.record(vec![(0, Sent::Renewal(Ok(())))], due);
        assert_eq!(fleet.stats.renewals.load(Ordering::Relaxed), 1);
        assert_eq!(fleet.stats.writes.load(Ordering::Relaxed), 1);
        let after = due.checked_add(SignedDuration::from_secs(30)).expect("ts");
        assert_eq!(
            running.check_in(0, after),
            None,
            "the renewal was a check-in"
        );
        // A renewal that fails is made up for by a status write at the next check-in.
        let next = due.checked_add(SignedDuration::from_mins(5)).expect("ts");
        assert_eq!(running.check_in(0, next), Some((0, Write::Renew)));
        running.record(vec![(0, Sent::Renewal(Err(RenewError::TimedOut)))], next);
        let retry = next.checked_add(SignedDuration::from_secs(30)).expect("ts");
        let fallback = running.check_in(0, retry).map(|(_, w)| w);
        assert!(matches!(fallback, Some(Write::Status(_))), "{fallback:?}");
        running.record(vec![(0, Sent::Status(Ok(())))], retry);
        let after = retry
            .checked_add(SignedDuration::from_secs(30))
            .expect("ts");
        // A report that changed is a status write again, heartbeat or not.
        running.slots[0].device.ensure_patches(["KB2"]);
        running.slots[0].unsent = true;
        let changed = running.check_in(0, after).map(|(_, w)| w);
        assert!(matches!(changed, Some(Write::Status(_))), "{changed:?}");
    }
}
