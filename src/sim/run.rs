//! The simulation: a virtual clock, simulated agents and scripted people around the
//! engine, played forward over a tenant's objects.
//!
//! Agents act on a check-in grid (every `checkIn` from the start): they read their plan,
//! start one install or uninstall at a time, and report results at the first check-in
//! after the work finished, as pull-based patch agents do. The engine runs after every
//! batch of agent reports and at every instant it asked to be woken, to the second.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::api::{
    DevicePatchStatus, Duration, ManagedDevice, ManagedDeviceSpec, ManagedDeviceStatus, OsInfo,
    Patch, PatchState, PlanEntry,
};
use crate::contract::{self, Action};
use crate::engine::selector::Selector;
use crate::engine::{Cache, EventType, Kind};

use super::fleet::{AgentBehaviour, DeviceGroup, FleetSpec, Offline, Range, Rng};
use super::world::World;
use crate::report::model::TrendPoint;
use crate::report::month::{Month, MonthError};

/// How a run is set up.
#[derive(Clone, Debug)]
pub struct Options {
    /// The first instant.
    pub start: Timestamp,
    /// How long it runs.
    pub days: u32,
    /// The seed of every random draw.
    pub seed: u64,
}

/// One line of the timeline.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// When.
    pub at: Timestamp,
    /// A CamelCase reason (the Event reason, or an agent's `Installed` / `InstallFailed`…).
    pub reason: String,
    /// `Warning` or `Normal`.
    pub severity: String,
    /// The object, `kind/name`.
    pub object: String,
    /// What happened.
    pub message: String,
}

/// A finished run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The world at the end.
    pub world: World,
    /// Every decision and agent report, in order.
    pub timeline: Vec<Entry>,
    /// The run's set-up.
    pub options: Options,
    /// How many engine passes ran.
    pub passes: u64,
    /// The evidence of each month the run touched, when asked for
    /// ([`Simulation::close_months`]): each closed month as it stood at its end, and the
    /// month the run ended in as it stood then.
    pub months: Vec<Closed>,
}

/// One month's evidence, taken when the simulated operator would close it.
#[derive(Clone, Debug)]
pub struct Closed {
    /// The month's report.
    pub report: crate::report::model::MonthReport,
    /// The objects it was built from, as they stood then.
    pub world: World,
}

/// Closes months as the run crosses their ends.
#[derive(Clone, Debug)]
struct Closer {
    /// The month to close next.
    next: Month,
    closed: Vec<Closed>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Release(String),
    Action(usize),
    Offline(String, Timestamp),
    Online(String),
    CheckIn(String),
    Finished {
        device: String,
        patch: String,
        ok: bool,
        reboot: bool,
    },
    Rebooted {
        device: String,
        patch: String,
    },
    Uninstalled {
        device: String,
        patch: String,
    },
}

#[derive(Clone, Debug)]
struct Agent {
    check_in: Duration,
    install_time: Range,
    failure_rate: f64,
    rng: Rng,
    /// Its position among the agents, which is its device's among the devices (both
    /// are keyed by name): where its online flag is.
    pos: usize,
    busy: bool,
    /// A check-in is already queued at this instant.
    queued: Option<Timestamp>,
    /// When the current offline spell began.
    offline_since: Option<Timestamp>,
    os: String,
}

/// Engine passes at one instant before the clock is moved on regardless.
const MAX_PASSES_PER_INSTANT: u32 = 16;

impl Agent {
    /// An idle agent (online: the simulation starts with every agent online).
    fn new(
        check_in: Duration,
        install_time: Range,
        failure_rate: f64,
        rng: Rng,
        os: String,
    ) -> Self {
        Self {
            check_in,
            install_time,
            failure_rate,
            rng,
            pos: 0,
            busy: false,
            queued: None,
            offline_since: None,
            os,
        }
    }
}

const DEFAULT_CHECK_IN: Duration = Duration::from_secs(15 * 60);

fn resolve(
    group: &AgentBehaviour,
    defaults: &AgentBehaviour,
) -> (Duration, Range, f64, Option<Offline>) {
    let check_in = group
        .check_in
        .or(defaults.check_in)
        .unwrap_or(DEFAULT_CHECK_IN);
    let install = group
        .install_time
        .or(defaults.install_time)
        .unwrap_or(Range {
            min: Duration::from_secs(600),
            max: Duration::from_secs(2400),
        });
    let failure = group
        .failure_rate
        .or(defaults.failure_rate)
        .unwrap_or(0.01)
        .clamp(0.0, 1.0);
    (
        check_in.max(Duration::from_secs(60)),
        install,
        failure,
        group.offline.or(defaults.offline),
    )
}

/// Takes the patches released after `start` out of the catalog and returns them by id:
/// they appear in it at their release.
fn hold_back_unreleased(world: &mut World, start: Timestamp) -> BTreeMap<String, Patch> {
    let mut held_back = BTreeMap::new();
    let ids: Vec<String> = world.patches.keys().cloned().collect();
    for id in ids {
        if world.patches[&id].spec.released_at <= start {
            continue;
        }
        if let Some(p) = world.patches.remove(&id) {
            held_back.insert(id, p);
        }
    }
    held_back
}

/// The shortest absence after which some ring counts a device unreachable.
fn shortest_unreachable_after(world: &World) -> Duration {
    world
        .rings
        .values()
        .map(|r| crate::engine::rollout::unreachable_after(Some(&r.spec)))
        .min()
        .unwrap_or(crate::engine::rollout::DEFAULT_UNREACHABLE_AFTER)
}

/// The ids of the patches (of `all_patches`, id and vendor) that apply to a group's
/// devices: those it names, or with `*` every patch of its vendors (of any vendor if
/// it names none).
fn group_patches(group: &DeviceGroup, all_patches: &[(String, String)]) -> Vec<String> {
    all_patches
        .iter()
        .filter(|(id, vendor)| {
            group.patches.iter().any(|p| p == id)
                || (group.patches.iter().any(|p| p == "*")
                    && (group.vendors.is_empty()
                        || group.vendors.iter().any(|v| v.eq_ignore_ascii_case(vendor))))
        })
        .map(|(id, _)| id.clone())
        .collect()
}

/// A generated device as it stands at the start: labelled as its group says, seen at
/// the start and reporting `reports`.
fn generated_device(
    name: &str,
    namespace: &str,
    group: &DeviceGroup,
    os: &str,
    reports: Vec<DevicePatchStatus>,
    start: Timestamp,
) -> ManagedDevice {
    ManagedDevice {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(group.labels.clone()),
            generation: Some(1),
            creation_timestamp: Some(Time(start)),
            ..Default::default()
        },
        spec: ManagedDeviceSpec {
            hostname: Some(format!("{name}.{namespace}.example")),
            os: Some(OsInfo {
                family: os.to_string(),
                version: None,
            }),
            plan: Default::default(),
        },
        status: Some(ManagedDeviceStatus {
            last_seen: Some(start),
            patches: reports,
            agent: Some("ringmaster-agent (simulated)".into()),
            ..Default::default()
        }),
    }
}

/// A simulation, ready to run.
pub struct Simulation {
    world: World,
    fleet: FleetSpec,
    options: Options,
    agents: BTreeMap<String, Agent>,
    applicable: BTreeMap<String, Vec<String>>,
    held_back: BTreeMap<String, Patch>,
    queue: BinaryHeap<Reverse<(Timestamp, u64, Ev)>>,
    seq: u64,
    timeline: Vec<Entry>,
    failure_selectors: Vec<Option<Selector>>,
    /// Something the engine reads changed since its last pass.
    dirty: bool,
    /// The shortest absence after which some ring counts a device unreachable.
    unreachable_after: Duration,
    /// What each engine pass can reuse from the one before.
    cache: Cache,
    /// Run the engine's incremental pass, as the operator does (the default), rather
    /// than the cached full pass ([`Simulation::cached`]).
    incremental: bool,
    /// Whether each agent is online, by its position (see `Agent::pos`): the stamp of
    /// `lastSeen` before every pass walks these beside the devices.
    online: Vec<bool>,
    /// Month closes, when asked for.
    closer: Option<Closer>,
}

impl Simulation {
    /// Runs every engine pass as a cached full pass ([`World::step_cached`]: a walk of
    /// every device, deriving again only those that changed) instead of the incremental
    /// pass the operator runs: the same decisions, kept to compare the two.
    pub fn cached(mut self) -> Self {
        self.incremental = false;
        self
    }

    /// Sets up a run: generates the fleet's devices and gives the world's own devices
    /// (ManagedDevices in the manifests, or read from a cluster) agents, holds back
    /// patches released after the start, and schedules offline spells and people's
    /// actions. Every engine pass is the incremental one, as the operator runs it: told
    /// which devices' objects changed, comparing every device's check-in
    /// ([`World::step_changed`]; a debug build checks each against a full pass).
    pub fn new(mut world: World, fleet: FleetSpec, options: Options) -> Self {
        let start = options.start;
        let end = end_of(&options);
        let held_back = hold_back_unreleased(&mut world, start);
        let unreachable_after = shortest_unreachable_after(&world);
        let all_patches: Vec<(String, String)> = world
            .patches
            .values()
            .chain(held_back.values())
            .map(|p| (p.spec.id.clone(), p.spec.vendor.clone()))
            .collect();
        let mut sim = Self {
            world,
            fleet: fleet.clone(),
            options: options.clone(),
            agents: BTreeMap::new(),
            applicable: BTreeMap::new(),
            held_back,
            queue: BinaryHeap::new(),
            seq: 0,
            timeline: Vec::new(),
            dirty: true,
            unreachable_after,
            cache: Cache::new(),
            incremental: true,
            online: Vec::new(),
            closer: None,
            failure_selectors: fleet
                .failures
                .iter()
                .map(|f| f.selector.as_ref().and_then(|s| Selector::compile(s).ok()))
                .collect(),
        };
        for group in &fleet.groups {
            sim.add_group(group, &fleet.defaults, &all_patches, end);
        }
        sim.add_explicit_agents(&fleet, end);
        for (pos, agent) in sim.agents.values_mut().enumerate() {
            agent.pos = pos;
        }
        sim.online = vec![true; sim.agents.len()];
        sim.schedule_releases();
        for (i, a) in fleet.actions.iter().enumerate() {
            sim.push(a.at, Ev::Action(i));
        }
        for obj in sim.world.exceptions.values_mut() {
            obj.metadata.creation_timestamp.get_or_insert(Time(start));
        }
        sim
    }

    /// Generates a group's devices with their agents, and schedules the agents' offline
    /// spells up to `end`.
    fn add_group(
        &mut self,
        group: &DeviceGroup,
        defaults: &AgentBehaviour,
        all_patches: &[(String, String)],
        end: Timestamp,
    ) {
        let start = self.options.start;
        let (check_in, install_time, failure_rate, offline) = resolve(&group.behaviour, defaults);
        let patches = group_patches(group, all_patches);
        let width = group.count.max(1).to_string().len().max(3);
        for i in 1..=group.count {
            let name = format!("{}-{i:0width$}", group.prefix);
            let reports = self.initial_reports(group, &patches);
            let os = group.os.clone().unwrap_or_else(|| "windows".into());
            let device = generated_device(&name, &self.world.namespace, group, &os, reports, start);
            self.world.devices.insert(name.clone(), device);
            self.world.changed_device(&name);
            self.applicable.insert(name.clone(), patches.clone());
            let rng = Rng::derive(self.options.seed, &name);
            self.agents.insert(
                name.clone(),
                Agent::new(check_in, install_time, failure_rate, rng, os),
            );
            if let Some(off) = offline {
                self.schedule_offline(&name, off, start, end);
            }
        }
    }

    /// A generated device's first reports: every applicable patch already in the
    /// catalog, installed at the start if the group says so, else missing.
    fn initial_reports(&self, group: &DeviceGroup, patches: &[String]) -> Vec<DevicePatchStatus> {
        let start = self.options.start;
        patches
            .iter()
            .filter(|id| self.world.patches.contains_key(*id))
            .map(|id| {
                let installed = group.installed.contains(id);
                DevicePatchStatus {
                    id: id.clone(),
                    state: if installed {
                        PatchState::Installed
                    } else {
                        PatchState::Missing
                    },
                    attempts: u32::from(installed),
                    last_attempt_at: None,
                    installed_at: installed.then_some(start),
                    message: None,
                    attempt: None,
                }
            })
            .collect()
    }

    /// Gives the devices no group generated (ManagedDevices written in the manifests, or
    /// read from a cluster) an agent: the behaviour of the Fleet's first `behaviours` rule
    /// whose selector matches the device's labels, over the defaults; and schedules its
    /// offline spells up to `end`, as a generated device's are.
    fn add_explicit_agents(&mut self, fleet: &FleetSpec, end: Timestamp) {
        let start = self.options.start;
        // Selectors that do not compile are refused when the Fleet is loaded.
        let rules: Vec<(Selector, &AgentBehaviour)> = fleet
            .behaviours
            .iter()
            .filter_map(|r| Some((Selector::compile(&r.selector).ok()?, &r.behaviour)))
            .collect();
        let explicit: Vec<String> = self
            .world
            .devices
            .keys()
            .filter(|n| !self.agents.contains_key(*n))
            .cloned()
            .collect();
        let none = AgentBehaviour::default();
        for name in explicit {
            let Some(device) = self.world.devices.get(&name) else {
                continue;
            };
            let labels = device.metadata.labels.as_ref();
            let own = rules
                .iter()
                .find(|(s, _)| s.matches(labels))
                .map_or(&none, |(_, b)| *b);
            let (check_in, install_time, failure_rate, offline) = resolve(own, &fleet.defaults);
            let os = device
                .spec
                .os
                .as_ref()
                .map_or_else(|| "windows".to_string(), |o| o.family.clone());
            let rng = Rng::derive(self.options.seed, &name);
            self.agents.insert(
                name.clone(),
                Agent::new(check_in, install_time, failure_rate, rng, os),
            );
            if let Some(off) = offline {
                self.schedule_offline(&name, off, start, end);
            }
        }
    }

    /// Queues each held-back patch's appearance in the catalog at its release.
    fn schedule_releases(&mut self) {
        let releases: Vec<(Timestamp, String)> = self
            .held_back
            .iter()
            .map(|(id, p)| (p.spec.released_at, id.clone()))
            .collect();
        for (at, id) in releases {
            self.push(at, Ev::Release(id));
        }
    }

    fn push(&mut self, at: Timestamp, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    fn schedule_offline(&mut self, name: &str, off: Offline, start: Timestamp, end: Timestamp) {
        let Some(agent) = self.agents.get_mut(name) else {
            return;
        };
        let mut t = start;
        let mut spells = Vec::new();
        while t < end {
            if agent.rng.chance(off.chance.clamp(0.0, 1.0)) {
                let from = t
                    .checked_add(SignedDuration::from_mins(
                        (agent.rng.next_u64() % 1440) as i64,
                    ))
                    .unwrap_or(t);
                let until = from
                    .checked_add(agent.rng.duration(off.length).span())
                    .unwrap_or(from);
                spells.push((from, until));
                t = until.max(t.checked_add(SignedDuration::from_hours(24)).unwrap_or(end));
            } else {
                t = t.checked_add(SignedDuration::from_hours(24)).unwrap_or(end);
            }
        }
        // Absence is only observable at check-ins, so spells start and end on the grid.
        for (from, until) in spells {
            let (from, until) = (self.grid(name, from), self.grid(name, until));
            if from < until {
                self.push(from, Ev::Offline(name.to_string(), until));
                self.push(until, Ev::Online(name.to_string()));
            }
        }
    }

    /// The first check-in of `device` at or after `t`.
    fn grid(&self, device: &str, t: Timestamp) -> Timestamp {
        let every = self
            .agents
            .get(device)
            .map_or(DEFAULT_CHECK_IN, |a| a.check_in)
            .as_secs()
            .max(1);
        let since = t.duration_since(self.options.start).as_secs().max(0);
        let k = (since + every - 1) / every;
        self.options
            .start
            .checked_add(SignedDuration::from_secs(k * every))
            .unwrap_or(t)
    }

    fn queue_check_in(&mut self, device: &str, not_before: Timestamp) {
        let at = self.grid(device, not_before);
        let Some(agent) = self.agents.get_mut(device) else {
            return;
        };
        if agent.queued.is_some_and(|q| q <= at) {
            return;
        }
        agent.queued = Some(at);
        self.push(at, Ev::CheckIn(device.to_string()));
    }

    /// Runs to the end and returns what happened.
    /// Closes each month the run touches, in the time zone `zone`, as the operator would:
    /// at its end, the month's evidence is built from the world as it stands.
    pub fn close_months(mut self, zone: &str) -> Result<Self, MonthError> {
        self.closer = Some(Closer {
            next: Month::containing(self.options.start, zone)?,
            closed: Vec::new(),
        });
        Ok(self)
    }

    /// Closes every month that ends by `until`, at its end.
    fn close_until(&mut self, until: Timestamp) {
        let Some(closer) = self.closer.as_mut() else {
            return;
        };
        while closer.next.end() <= until {
            let month = closer.next.clone();
            closer
                .closed
                .push(close(&self.world, &month, month.end(), &closer.closed));
            closer.next = month.next();
        }
    }

    pub fn run(mut self) -> Outcome {
        self.world.version_devices();
        let end = end_of(&self.options);
        let mut now = self.options.start;
        let mut passes = 0u64;
        let mut same_instant = 0u32;
        let mut wake: Option<Timestamp> = None;
        loop {
            // Everything due now, including what handling it schedules for now.
            while let Some(Reverse((at, _, _))) = self.queue.peek() {
                if *at > now {
                    break;
                }
                let Some(Reverse((_, _, ev))) = self.queue.pop() else {
                    break;
                };
                self.handle(ev, now);
            }
            // The engine runs when something it reads changed, or when it asked to.
            let due = self.dirty || passes == 0 || wake.is_some_and(|w| w <= now);
            if due {
                self.dirty = false;
                // Every online agent has checked in by now. Devices and agents share one
                // key set in one order, so devices and online flags are walked together.
                // (An incremental pass is not told which: it compares every device's
                // check-in, `World::step_changed`.)
                debug_assert!(self.world.devices.keys().eq(self.agents.keys()));
                for (dev, online) in self.world.devices.values_mut().zip(&self.online) {
                    if *online {
                        let status = dev.status.get_or_insert_with(ManagedDeviceStatus::default);
                        status.last_seen = Some(now);
                    }
                }
                let decisions = match self.incremental {
                    true => self.world.step_changed(now, &mut self.cache),
                    false => self.world.step_cached(now, &mut self.cache),
                };
                passes += 1;
                wake = decisions.wake_at;
                for e in &decisions.events {
                    self.timeline.push(Entry {
                        at: now,
                        reason: e.reason.to_string(),
                        severity: if e.type_ == EventType::Warning {
                            "Warning".into()
                        } else {
                            "Normal".into()
                        },
                        object: format!("{}/{}", kind_short(e.kind), e.name),
                        message: e.message.clone(),
                    });
                }
                let touched: BTreeSet<String> =
                    decisions.plan.iter().map(|c| c.device.clone()).collect();
                for device in touched {
                    self.queue_check_in(&device, now);
                }
            }
            let next_event = self.queue.peek().map(|Reverse((at, _, _))| *at);
            let next = [next_event, wake].into_iter().flatten().min();
            self.close_until(next.unwrap_or(end).min(end));
            match next {
                Some(t) if t <= end => {
                    // Agents react within the same instant; the batches settle in a few
                    // passes. The guard only keeps a pathological input from spinning.
                    same_instant = if t <= now { same_instant + 1 } else { 0 };
                    now = if same_instant > MAX_PASSES_PER_INSTANT {
                        now.checked_add(SignedDuration::from_secs(1)).unwrap_or(t)
                    } else {
                        t.max(now)
                    };
                }
                _ => break,
            }
        }
        let mut months = Vec::new();
        if let Some(closer) = self.closer.take() {
            months = closer.closed;
            if closer.next.start() < end {
                months.push(close(&self.world, &closer.next, end, &months));
            }
        }
        Outcome {
            world: self.world,
            timeline: self.timeline,
            options: self.options,
            passes,
            months,
        }
    }

    fn handle(&mut self, ev: Ev, now: Timestamp) {
        // Only what can change a decision marks the world dirty: finished work, releases,
        // people's actions, and a device back from an absence long enough to have made it
        // unreachable. Going offline is seen by the engine's own wake-up at the
        // unreachable instant; starting an install or waiting for a reboot leaves an
        // admitted device in progress either way.
        match &ev {
            Ev::Offline(..) | Ev::CheckIn(_) => {}
            Ev::Online(device) => {
                let away = self
                    .agents
                    .get(device)
                    .and_then(|a| a.offline_since)
                    .map(|t| now.duration_since(t));
                if away.is_none_or(|d| d >= self.unreachable_after.span()) {
                    self.dirty = true;
                }
            }
            Ev::Finished {
                ok: true,
                reboot: true,
                ..
            } => {}
            _ => self.dirty = true,
        }
        match ev {
            Ev::Release(id) => {
                if let Some(p) = self.held_back.remove(&id) {
                    let devices: Vec<String> = self
                        .applicable
                        .iter()
                        .filter(|(_, ps)| ps.contains(&id))
                        .map(|(d, _)| d.clone())
                        .collect();
                    self.entry(
                        now,
                        "PatchReleased",
                        "Normal",
                        &format!("patch/{id}"),
                        format!(
                            "{} released by {}{}",
                            id,
                            p.spec.vendor,
                            p.spec
                                .title
                                .as_deref()
                                .map(|t| format!(": {t}"))
                                .unwrap_or_default()
                        ),
                    );
                    self.world.patches.insert(id.clone(), p);
                    for d in devices {
                        self.report(&d, &id, PatchState::Missing, now);
                    }
                }
            }
            Ev::Action(i) => self.act(i, now),
            Ev::Offline(device, until) => {
                if let Some(a) = self.agents.get_mut(&device) {
                    set_online(&mut self.online, a.pos, false);
                    a.offline_since = Some(now);
                }
                self.entry(
                    now,
                    "DeviceOffline",
                    "Normal",
                    &format!("mdev/{device}"),
                    format!("{device} went offline until {until}"),
                );
            }
            Ev::Online(device) => {
                if let Some(a) = self.agents.get_mut(&device) {
                    set_online(&mut self.online, a.pos, true);
                    a.offline_since = None;
                }
                self.world.touch(&device, now);
                self.queue_check_in(&device, now);
            }
            Ev::CheckIn(device) => self.check_in(&device, now),
            Ev::Finished {
                device,
                patch,
                ok,
                reboot,
            } => {
                if !self.is_online(&device) {
                    let later = now
                        .checked_add(SignedDuration::from_hours(1))
                        .unwrap_or(now);
                    self.push(
                        later,
                        Ev::Finished {
                            device,
                            patch,
                            ok,
                            reboot,
                        },
                    );
                    return;
                }
                if ok && reboot {
                    self.world
                        .finish(&device, &patch, contract::Outcome::PendingReboot, now);
                    let at = self.grid(
                        &device,
                        now.checked_add(SignedDuration::from_mins(5)).unwrap_or(now),
                    );
                    self.push(at, Ev::Rebooted { device, patch });
                    return;
                }
                self.finish(&device, &patch, ok, now);
            }
            Ev::Rebooted { device, patch } => self.finish(&device, &patch, true, now),
            Ev::Uninstalled { device, patch } => {
                self.world
                    .finish(&device, &patch, contract::Outcome::Uninstalled, now);
                self.entry(
                    now,
                    "Uninstalled",
                    "Normal",
                    &format!("mdev/{device}"),
                    format!("{device} uninstalled {patch}"),
                );
                if let Some(a) = self.agents.get_mut(&device) {
                    a.busy = false;
                }
                self.queue_check_in(&device, now);
            }
        }
    }

    /// What an agent reports, as [`World::report`].
    fn report(&mut self, device: &str, patch: &str, state: PatchState, now: Timestamp) {
        self.world.report(device, patch, state, now);
    }

    /// An agent starting an install, as [`World::start`].
    fn start(&mut self, device: &str, patch: &str, entry: &PlanEntry, now: Timestamp) {
        self.world.start(device, patch, entry, now);
    }

    fn is_online(&self, device: &str) -> bool {
        self.agents
            .get(device)
            .is_some_and(|a| self.online.get(a.pos) == Some(&true))
    }

    fn finish(&mut self, device: &str, patch: &str, ok: bool, now: Timestamp) {
        if ok {
            self.world
                .finish(device, patch, contract::Outcome::Installed, now);
            self.entry(
                now,
                "Installed",
                "Normal",
                &format!("mdev/{device}"),
                format!("{device} installed {patch}"),
            );
        } else {
            let message = self.failure_message(device, patch);
            let failed = contract::Outcome::Failed(message.clone());
            self.world.finish(device, patch, failed, now);
            self.entry(
                now,
                "InstallFailed",
                "Warning",
                &format!("mdev/{device}"),
                format!("{device} failed to install {patch}: {message}"),
            );
        }
        if let Some(a) = self.agents.get_mut(device) {
            a.busy = false;
        }
        self.queue_check_in(device, now);
    }

    fn check_in(&mut self, device: &str, now: Timestamp) {
        let Some(agent) = self.agents.get_mut(device) else {
            return;
        };
        if agent.queued.is_some_and(|q| q <= now) {
            agent.queued = None;
        }
        if self.online.get(agent.pos) != Some(&true) || agent.busy {
            return;
        }
        let Some(dev) = self.world.devices.get(device) else {
            return;
        };
        let reports = dev.status.as_ref().map_or(&[][..], |s| &s.patches[..]);
        let next = contract::next_action(
            &dev.spec.plan,
            |id| reports.iter().find(|p| p.id == id),
            now,
        );
        let (id, attempt) = match next {
            None => return,
            Some(Action::Uninstall(id, _)) => {
                let id = id.to_string();
                let Some(agent) = self.agents.get_mut(device) else {
                    return;
                };
                agent.busy = true;
                let took = agent.rng.duration(agent.install_time);
                let at = self.grid(device, now.checked_add(took.span()).unwrap_or(now));
                self.push(
                    at,
                    Ev::Uninstalled {
                        device: device.to_string(),
                        patch: id,
                    },
                );
                return;
            }
            Some(Action::Install(id, entry)) => (id.to_string(), entry.clone()),
        };
        let reboot = self
            .world
            .patches
            .get(&id)
            .is_some_and(|p| p.spec.reboot_required);
        let rate = self.failure_rate(device, &id);
        let Some(agent) = self.agents.get_mut(device) else {
            return;
        };
        agent.busy = true;
        let took = agent.rng.duration(agent.install_time);
        let ok = !agent.rng.chance(rate);
        let at = self.grid(device, now.checked_add(took.span()).unwrap_or(now));
        self.start(device, &id, &attempt, now);
        self.push(
            at,
            Ev::Finished {
                device: device.to_string(),
                patch: id,
                ok,
                reboot,
            },
        );
    }

    fn failure_rate(&self, device: &str, patch: &str) -> f64 {
        let labels = self
            .world
            .devices
            .get(device)
            .and_then(|d| d.metadata.labels.as_ref());
        self.fleet
            .failures
            .iter()
            .zip(&self.failure_selectors)
            .find(|(f, sel)| {
                f.patch == patch
                    && (f.selector.is_none() || sel.as_ref().is_some_and(|s| s.matches(labels)))
            })
            .map(|(f, _)| f.rate.clamp(0.0, 1.0))
            .or_else(|| self.agents.get(device).map(|a| a.failure_rate))
            .unwrap_or(0.0)
    }

    fn failure_message(&self, device: &str, patch: &str) -> String {
        let rule = self
            .fleet
            .failures
            .iter()
            .find(|f| f.patch == patch)
            .and_then(|f| f.message.clone());
        rule.unwrap_or_else(|| match self.agents.get(device).map(|a| a.os.as_str()) {
            Some("linux") => "dpkg: error processing package (--configure)".into(),
            _ => "0x80070643".into(),
        })
    }

    fn act(&mut self, i: usize, now: Timestamp) {
        let Some(a) = self.fleet.actions.get(i).cloned() else {
            return;
        };
        if let Some(pp) = &a.approve {
            self.decide_patch(pp, true, now);
        }
        if let Some(pp) = &a.reject {
            self.decide_patch(pp, false, now);
        }
        if let Some(ae) = &a.approve_exception {
            if let Some(e) = self.world.exceptions.get_mut(&ae.name) {
                e.spec.approved_by = Some(ae.by.clone());
                e.metadata.generation = e.metadata.generation.map(|g| g + 1);
            }
            self.entry(
                now,
                "ExceptionApproved",
                "Normal",
                &format!("pex/{}", ae.name),
                format!("{} approved the exception", ae.by),
            );
        }
        if let Some(rr) = &a.promote {
            if let Some(r) = self.world.rollouts.get_mut(&rr.rollout) {
                r.spec.promote.push(rr.ring.clone());
            }
            self.world.changed_rollout(&rr.rollout);
            self.entry(
                now,
                "ManualPromotion",
                "Normal",
                &format!("prl/{}", rr.rollout),
                format!("a person promoted ring {}", rr.ring),
            );
        }
        for (name, paused) in [(&a.pause, true), (&a.resume, false)] {
            if let Some(r) = name.as_ref().and_then(|n| self.world.rollouts.get_mut(n)) {
                r.spec.paused = paused;
            }
            if let Some(n) = name {
                self.world.changed_rollout(n);
            }
        }
        if !a.catalog.is_empty() {
            self.import(&a.catalog, now);
        }
    }

    /// A catalog import during the run: the feed files applied to the world's Patches,
    /// and what each feed did on the timeline.
    fn import(&mut self, files: &[std::path::PathBuf], now: Timestamp) {
        match crate::catalog::offline::apply_files(&mut self.world.patches, files) {
            Ok(done) => {
                for (source, applied) in done {
                    for (name, why) in &applied.refused {
                        self.entry(
                            now,
                            "CatalogImportFailed",
                            "Warning",
                            &format!("patch/{name}"),
                            why.clone(),
                        );
                    }
                    self.entry(
                        now,
                        "CatalogImported",
                        "Normal",
                        &format!("catalog/{source}"),
                        format!(
                            "{} created, {} updated, {} skipped",
                            applied.created,
                            applied.updated,
                            applied.skipped.len()
                        ),
                    );
                }
            }
            Err(e) => self.entry(
                now,
                "CatalogImportFailed",
                "Warning",
                "catalog",
                e.to_string(),
            ),
        }
    }

    /// A person approves (or rejects) a patch under a policy, as a GitOps commit would:
    /// the id goes into `approval.approve` (or `approval.reject`).
    fn decide_patch(&mut self, pp: &super::fleet::PolicyPatch, approve: bool, now: Timestamp) {
        if let Some(p) = self.world.policies.get_mut(&pp.policy) {
            let list = if approve {
                &mut p.spec.approval.approve
            } else {
                &mut p.spec.approval.reject
            };
            list.push(pp.patch.clone());
            p.metadata.generation = p.metadata.generation.map(|g| g + 1);
        }
        let (reason, severity, verb, field) = if approve {
            ("ManualApproval", "Normal", "approved", "approve")
        } else {
            ("ManualRejection", "Warning", "rejected", "reject")
        };
        self.entry(
            now,
            reason,
            severity,
            &format!("ppol/{}", pp.policy),
            format!("a person {verb} {} (added to approval.{field})", pp.patch),
        );
    }

    fn entry(
        &mut self,
        at: Timestamp,
        reason: &str,
        severity: &str,
        object: &str,
        message: String,
    ) {
        self.timeline.push(Entry {
            at,
            reason: reason.into(),
            severity: severity.into(),
            object: object.into(),
            message,
        });
    }
}

/// Sets an agent's online flag.
fn set_online(online: &mut [bool], pos: usize, value: bool) {
    if let Some(flag) = online.get_mut(pos) {
        *flag = value;
    }
}

/// A month's evidence from the world as it stands at `as_of`, after `earlier` months (its
/// trend: theirs, or for the run's first month, the months before rebuilt).
fn close(world: &World, month: &Month, as_of: Timestamp, earlier: &[Closed]) -> Closed {
    // The months before the run, rebuilt from the world as it stands, then the run's.
    let previous: Vec<TrendPoint> = match earlier.last() {
        Some(c) => c.report.trend.clone(),
        None => crate::report::build::trend_before(
            &world.snapshot(),
            month,
            crate::report::cli::TREND_MONTHS,
        ),
    };
    let report = world.month_report(month, as_of, &previous);
    Closed {
        report,
        world: world.clone(),
    }
}

/// The instant a run ends.
pub fn end_of(options: &Options) -> Timestamp {
    options
        .start
        .checked_add(SignedDuration::from_hours(i64::from(options.days) * 24))
        .unwrap_or(options.start)
}

/// The short name `kubectl` knows a kind by.
pub fn kind_short(kind: Kind) -> &'static str {
    match kind {
        Kind::PatchPolicy => "ppol",
        Kind::DeploymentRing => "ring",
        Kind::PatchException => "pex",
        Kind::ManagedDevice => "mdev",
        Kind::PatchRollout => "prl",
        Kind::PatchApproval => "papr",
        Kind::PatchFreeze => "pfz",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(name: &str, class: &str) -> ManagedDevice {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "acme", "labels": {"class": class}},
            "spec": {"os": {"family": "linux"}},
        }))
        .unwrap()
    }

    /// A world of two devices written as ManagedDevices, and a Fleet whose first rule
    /// gives servers an hourly check-in and a certain offline spell every day.
    fn simulation() -> Simulation {
        let mut world = World::new("acme");
        for (name, class) in [("srv-1", "server"), ("ws-1", "workstation")] {
            world.devices.insert(name.into(), device(name, class));
        }
        let fleet: FleetSpec = serde_json::from_value(serde_json::json!({
            "defaults": {"checkIn": "15m", "failureRate": 0.2},
            "behaviours": [
                {"selector": {"matchLabels": {"class": "server"}},
                 "behaviour": {"checkIn": "1h",
                    "offline": {"chance": 1, "length": {"min": "2h", "max": "2h"}}}},
                {"selector": {"matchLabels": {"class": "server"}},
                 "behaviour": {"checkIn": "5m"}},
            ],
        }))
        .unwrap();
        let options = Options {
            start: "2023-11-20T00:00:00Z".parse().unwrap(),
            days: 3,
            seed: 1,
        };
        Simulation::new(world, fleet, options)
    }

    fn offline_spells(sim: &Simulation, device: &str) -> usize {
        sim.queue
            .iter()
            .filter(|Reverse((_, _, ev))| matches!(ev, Ev::Offline(d, _) if d == device))
            .count()
    }

    #[test]
    fn explicit_devices_behave_as_the_first_matching_rule_says_over_the_defaults() {
        let sim = simulation();
        let (srv, ws) = (&sim.agents["srv-1"], &sim.agents["ws-1"]);
        assert_eq!(srv.check_in, Duration::from_secs(3600), "the first rule");
        assert_eq!(ws.check_in, Duration::from_secs(900), "the defaults");
        assert_eq!(
            (srv.failure_rate, ws.failure_rate),
            (0.2, 0.2),
            "unset fields fall back to the defaults"
        );
        assert_eq!(srv.os, "linux");
        // A spell a day for the server; none for the workstation, whose defaults have none.
        assert_eq!(offline_spells(&sim, "srv-1"), 3);
        assert_eq!(offline_spells(&sim, "ws-1"), 0);
    }

    #[test]
    fn explicit_devices_are_set_up_the_same_for_the_same_seed() {
        let spells = |sim: &Simulation| {
            let mut v: Vec<(Timestamp, Ev)> = sim
                .queue
                .iter()
                .map(|Reverse((at, _, ev))| (*at, ev.clone()))
                .collect();
            v.sort();
            v
        };
        assert_eq!(spells(&simulation()), spells(&simulation()));
    }
}
