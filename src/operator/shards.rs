//! Sharding: with `ringmaster run --shards N` (N > 1) the replicas split the tenants
//! (namespaces) between them. Namespace `ns` belongs to shard [`shard_of`]`(ns, N)`, a
//! stable FNV-1a hash; each shard is one `coordination.k8s.io` Lease named
//! [`lease_name`]`(base, i)` (`<lease-name>-shard-<i>`); a replica reconciles the tenants
//! of the shards whose Lease it holds, and the holder of shard 0 also the Patch catalog.
//!
//! The pure parts are [`shard_of`] and [`plan`] (what one replica does with the Leases it
//! just read); [`hold`] is the loop that reads and writes the Leases.
//!
//! Safety. A holder acts on a shard only until [`LEASE_DURATION`] − [`LEASE_GRACE`]
//! after the start of its last successful write of the Lease, measured on its own clock.
//! Another replica counts a Lease as expired only [`LEASE_DURATION`] after it last *saw*
//! the Lease change (client-go's rule: no clocks are compared), and after a failed read it
//! starts counting again from its next successful one. Since a write is seen after it
//! started, the holder stops at least [`LEASE_GRACE`] before anyone else may take the
//! shard over; writes are guarded by the Lease's resourceVersion.
//!
//! Balance. Let *live* be the replicas holding an unexpired shard, plus this one. A
//! replica takes a free (or expired) shard, one per round, while it holds fewer than
//! ⌈N / live⌉, trying shards from its own preferred one ([`shard_of`] of its identity)
//! onwards. A replica holding at least two fewer shards than another asks for one of
//! that replica's shards by annotating its Lease with [`WANTED_BY`]; the holder hands it
//! over (writes the asker as holder) if it still holds at least two more than the asker,
//! after it has stopped reconciling the shard. So replicas end up within one shard of each
//! other, a new replica gets work without waiting for anyone to die, and a replica that
//! dies has its shards taken over [`LEASE_DURATION`] (plus a round) after its last renewal.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// A shard Lease's validity after its last renewal, in seconds.
pub const LEASE_DURATION: u64 = 15;
/// How long before the Lease could expire for others the holder stops acting, in seconds.
pub const LEASE_GRACE: u64 = 5;
/// How often a replica reads and renews the shard Leases.
pub const ROUND: Duration = Duration::from_secs(2);
/// How long the reconciles in flight of a shard being handed over may take to finish
/// before they are cut short (less than the [`LEASE_GRACE`] the holder waits for them).
pub const HANDOVER_GRACE: Duration = Duration::from_secs(3);
/// The longest one Lease request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The annotation a replica puts on another's shard Lease to ask for it.
pub const WANTED_BY: &str = "ringmaster.dev/wanted-by";

/// The shard a namespace belongs to among `shards`: 64-bit FNV-1a of its name, modulo
/// `shards`. Stable across processes, versions and platforms (unlike std's hasher), since
/// every replica must agree. `shards` 0 counts as 1.
pub fn shard_of(namespace: &str, shards: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = namespace
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    // The remainder is below `shards`, a u32.
    u32::try_from(hash % u64::from(shards.max(1))).unwrap_or(0)
}

/// The name of shard `shard`'s Lease.
pub fn lease_name(base: &str, shard: u32) -> String {
    format!("{base}-shard-{shard}")
}

/// Which shards this replica holds, shared by the watchers (the time-to-install histogram
/// counts only held tenants) and the queue. With one shard it is the leader's lease.
#[derive(Debug)]
pub struct Ownership {
    held: Vec<AtomicBool>,
}

impl Ownership {
    /// `shards` shards (at least one), none held.
    pub fn new(shards: u32) -> Self {
        Self {
            held: (0..shards.max(1)).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// How many shards there are.
    pub fn shards(&self) -> u32 {
        u32::try_from(self.held.len()).unwrap_or(u32::MAX)
    }

    /// The shard of a namespace.
    pub fn shard_of(&self, namespace: &str) -> u32 {
        shard_of(namespace, self.shards())
    }

    /// Marks a shard held or not.
    pub fn set(&self, shard: u32, held: bool) {
        if let Some(h) = self.held.get(shard as usize) {
            h.store(held, Ordering::Relaxed);
        }
    }

    /// Whether this replica holds a shard.
    pub fn holds(&self, shard: u32) -> bool {
        self.held
            .get(shard as usize)
            .is_some_and(|h| h.load(Ordering::Relaxed))
    }

    /// Whether this replica reconciles a namespace now.
    pub fn owns(&self, namespace: &str) -> bool {
        self.holds(self.shard_of(namespace))
    }

    /// How many shards it holds.
    pub fn held(&self) -> usize {
        self.held
            .iter()
            .filter(|h| h.load(Ordering::Relaxed))
            .count()
    }
}

/// One shard Lease as a replica last read it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Its holder (None: nobody, or it does not exist yet).
    pub holder: Option<String>,
    /// Whether it has expired in this replica's eyes (unchanged for a Lease duration).
    pub expired: bool,
    /// The replica that asked for it ([`WANTED_BY`]).
    pub wanted_by: Option<String>,
}

/// What a replica does with one shard Lease in a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// It holds it: write it again (and drop any request it does not grant).
    Renew,
    /// It is free or expired: take it.
    Acquire,
    /// Another replica holds too many: ask for this one.
    Ask,
    /// Give it to the replica that asked.
    HandOver(String),
}

/// What `me` does in one round, given every shard's Lease as just read (index = shard):
/// the balancing rule of the module documentation. Shards not named are left alone.
pub fn plan(me: &str, seen: &[Seen]) -> BTreeMap<u32, Step> {
    let n = seen.len();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    counts.insert(me, 0);
    for s in seen {
        if let Some(h) = s.holder.as_deref()
            && (!s.expired || h == me)
        {
            *counts.entry(h).or_insert(0) += 1;
        }
    }
    let mine = counts.get(me).copied().unwrap_or(0);
    let mut steps = BTreeMap::new();
    let mut handed = false;
    for (i, s) in seen.iter().enumerate() {
        if s.holder.as_deref() != Some(me) {
            continue;
        }
        let step = match s.wanted_by.as_deref() {
            Some(asker) if !handed && asker != me => {
                let theirs = counts.get(asker).copied().unwrap_or(0);
                if mine >= theirs + 2 {
                    handed = true;
                    Step::HandOver(asker.to_string())
                } else {
                    Step::Renew
                }
            }
            _ => Step::Renew,
        };
        steps.insert(index(i), step);
    }
    let fair = n.div_ceil(counts.len().max(1));
    let free = |s: &Seen| s.holder.is_none() || s.expired;
    let start = shard_of(me, u32::try_from(n).unwrap_or(1)) as usize;
    let order = (0..n).map(|k| (start + k) % n.max(1));
    if mine < fair
        && let Some(i) = order
            .clone()
            .find(|&i| free(&seen[i]) && seen[i].holder.as_deref() != Some(me))
    {
        steps.insert(index(i), Step::Acquire);
        return steps;
    }
    let asking = seen.iter().any(|s| s.wanted_by.as_deref() == Some(me));
    if asking {
        return steps;
    }
    let busiest = counts
        .iter()
        .filter(|(h, _)| **h != me)
        .max_by_key(|(h, c)| (**c, std::cmp::Reverse(**h)));
    if let Some((&other, &theirs)) = busiest
        && theirs >= mine + 2
        && let Some(i) = order.clone().find(|&i| {
            let s = &seen[i];
            s.holder.as_deref() == Some(other) && !s.expired && s.wanted_by.is_none()
        })
    {
        steps.insert(index(i), Step::Ask);
    }
    steps
}

fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// The shards this replica may act on, each until the given instant.
pub type Held = BTreeMap<u32, Instant>;

/// Where the Leases are and who this replica is.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// The namespace of the Leases.
    pub namespace: String,
    /// The base name (`--lease-name`): shard i's Lease is [`lease_name`]`(base, i)`.
    pub base: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How many shards.
    pub shards: u32,
}

/// One shard's Lease as last read, and when this replica last saw it change.
#[derive(Default)]
struct Tracked {
    lease: Option<Lease>,
    version: Option<String>,
    changed_at: Option<Instant>,
}

/// Holds shard Leases until `shutdown` turns true, publishing on `held` which shards this
/// replica may act on and until when. Before it hands a shard over, and at shutdown before
/// it releases them, it waits until `acting` (what the operator is reconciling) no longer
/// holds them.
pub async fn hold(
    client: Client,
    cfg: LeaseConfig,
    held: watch::Sender<Held>,
    mut acting: watch::Receiver<BTreeSet<u32>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut tracked: Vec<Tracked> = (0..cfg.shards).map(|_| Tracked::default()).collect();
    info!(namespace = %cfg.namespace, lease = %cfg.base, shards = cfg.shards, identity = %cfg.identity, "joining the shard Leases");
    loop {
        round(&api, &cfg, &mut tracked, &held, &mut acting).await;
        tokio::select! {
            _ = tokio::time::sleep(ROUND) => {}
            _ = wait_true(&mut shutdown) => break,
        }
    }
    held.send_replace(Held::new());
    wait_idle(&mut acting, |_| true).await;
    release(&api, &cfg, &tracked).await;
}

/// One round: read every Lease, plan, write.
async fn round(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    tracked: &mut [Tracked],
    held: &watch::Sender<Held>,
    acting: &mut watch::Receiver<BTreeSet<u32>>,
) {
    let names: Vec<String> = (0..cfg.shards).map(|i| lease_name(&cfg.base, i)).collect();
    let reads = futures::future::join_all(names.iter().map(|n| timed(api.get_opt(n)))).await;
    let now = Instant::now();
    for (t, read) in tracked.iter_mut().zip(reads) {
        match read {
            Ok(lease) => {
                let version = lease
                    .as_ref()
                    .and_then(|l| l.metadata.resource_version.clone());
                if t.changed_at.is_none() || version != t.version {
                    t.changed_at = Some(now);
                }
                t.version = version;
                t.lease = lease;
            }
            // Blind: count again from the next read that works.
            Err(_) => t.changed_at = None,
        }
    }
    let seen: Vec<Seen> = tracked.iter().map(|t| seen(t, now)).collect();
    let steps = plan(&cfg.identity, &seen);
    for (shard, step) in steps {
        let Some(t) = tracked.get_mut(shard as usize) else {
            continue;
        };
        if t.changed_at.is_none() {
            continue;
        }
        act(api, cfg, shard, t, step, held, acting).await;
    }
    expire(held);
}

fn seen(t: &Tracked, now: Instant) -> Seen {
    let spec = t.lease.as_ref().and_then(|l| l.spec.as_ref());
    let holder = spec
        .and_then(|s| s.holder_identity.clone())
        .filter(|h| !h.is_empty());
    let expired = match t.changed_at {
        Some(at) => now.duration_since(at) >= Duration::from_secs(LEASE_DURATION),
        None => false,
    };
    let wanted_by = t
        .lease
        .as_ref()
        .and_then(|l| l.metadata.annotations.as_ref())
        .and_then(|a| a.get(WANTED_BY).cloned());
    Seen {
        holder,
        expired,
        wanted_by,
    }
}

/// Carries out one step on one shard's Lease.
async fn act(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    shard: u32,
    t: &mut Tracked,
    step: Step,
    held: &watch::Sender<Held>,
    acting: &mut watch::Receiver<BTreeSet<u32>>,
) {
    let name = lease_name(&cfg.base, shard);
    let was_held = held.borrow().contains_key(&shard);
    let (holder, wanted) = match &step {
        Step::Renew | Step::Acquire => (Some(cfg.identity.clone()), None),
        Step::Ask => (None, Some(cfg.identity.clone())),
        Step::HandOver(to) => (Some(to.clone()), None),
    };
    if let Step::HandOver(to) = &step {
        held.send_modify(|h| {
            h.remove(&shard);
        });
        if !wait_idle(acting, |a| !a.contains(&shard)).await {
            return;
        }
        info!(shard, lease = %name, identity = %cfg.identity, to = %to, "handing the shard over");
    }
    let started = Instant::now();
    let lease = match (&t.lease, &step) {
        (Some(old), Step::Ask) => asked(old, &cfg.identity),
        (old, _) => written(old.as_ref(), &name, holder.as_deref(), wanted),
    };
    let result = match &t.lease {
        Some(_) => timed(api.replace(&name, &PostParams::default(), &lease)).await,
        None => timed(api.create(&PostParams::default(), &lease)).await,
    };
    match result {
        Ok(lease) => {
            t.version = lease.metadata.resource_version.clone();
            t.lease = Some(lease);
            t.changed_at = Some(Instant::now());
            if matches!(step, Step::Renew | Step::Acquire) {
                let until = started + Duration::from_secs(LEASE_DURATION - LEASE_GRACE);
                held.send_modify(|h| {
                    h.insert(shard, until);
                });
                if !was_held {
                    info!(shard, lease = %name, identity = %cfg.identity, "holding the shard");
                }
            } else if matches!(step, Step::Ask) {
                info!(shard, lease = %name, identity = %cfg.identity, "asked for the shard");
            }
        }
        // Another replica writing first is the normal outcome of a race; anything else
        // (forbidden by RBAC, a namespace that does not exist, no answer) keeps this
        // replica from ever holding the shard, and the people running it must see why.
        Err(e) if e.lost_race() => {
            debug!(shard, lease = %name, error = %e, "another replica wrote the shard Lease first")
        }
        Err(e) => warn!(shard, lease = %name, error = %e, "writing the shard Lease failed"),
    }
}

/// Drops the shards whose time is up.
fn expire(held: &watch::Sender<Held>) {
    let now = Instant::now();
    held.send_if_modified(|h| {
        let gone: Vec<u32> = h
            .iter()
            .filter(|(_, u)| **u <= now)
            .map(|(s, _)| *s)
            .collect();
        for s in &gone {
            warn!(
                shard = s,
                "could not renew the shard Lease in time: letting the shard go"
            );
            h.remove(s);
        }
        !gone.is_empty()
    });
}

/// The Lease after a write by `identity` naming `holder` (None: releasing it).
fn written(old: Option<&Lease>, name: &str, holder: Option<&str>, wanted: Option<String>) -> Lease {
    let mut lease = old.cloned().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    let now = MicroTime(Timestamp::now());
    let mut spec = lease.spec.take().unwrap_or_default();
    let before = spec.holder_identity.clone().filter(|h| !h.is_empty());
    if before.as_deref() != holder {
        spec.acquire_time = holder.map(|_| now.clone());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.holder_identity = holder.map(str::to_string);
    spec.renew_time = Some(now);
    spec.lease_duration_seconds = Some(i32::try_from(LEASE_DURATION).unwrap_or(15));
    lease.spec = Some(spec);
    if let Some(a) = lease.metadata.annotations.as_mut() {
        a.remove(WANTED_BY);
    }
    if let Some(w) = wanted {
        lease
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(WANTED_BY.to_string(), w);
    }
    lease
}

/// The Lease with this replica's request on it, its holder untouched.
fn asked(old: &Lease, identity: &str) -> Lease {
    let mut lease = old.clone();
    lease
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(WANTED_BY.to_string(), identity.to_string());
    lease
}

/// Writes every Lease this replica holds with no holder, so that others take them at once.
async fn release(api: &Api<Lease>, cfg: &LeaseConfig, tracked: &[Tracked]) {
    for (shard, t) in tracked.iter().enumerate() {
        let Some(old) = t.lease.as_ref() else {
            continue;
        };
        let holder = old.spec.as_ref().and_then(|s| s.holder_identity.as_deref());
        if holder != Some(cfg.identity.as_str()) {
            continue;
        }
        let name = lease_name(&cfg.base, index(shard));
        let lease = written(Some(old), &name, None, None);
        match timed(api.replace(&name, &PostParams::default(), &lease)).await {
            Ok(_) => info!(shard, lease = %name, "released the shard"),
            Err(e) => warn!(shard, lease = %name, error = %e, "releasing the shard failed"),
        }
    }
}

/// Waits (up to a Lease grace) until `acting` satisfies `idle`; false if it did not.
async fn wait_idle(
    acting: &mut watch::Receiver<BTreeSet<u32>>,
    idle: impl Fn(&BTreeSet<u32>) -> bool,
) -> bool {
    let wait = acting.wait_for(|a| idle(a));
    matches!(
        tokio::time::timeout(Duration::from_secs(LEASE_GRACE), wait).await,
        Ok(Ok(_))
    )
}

async fn wait_true(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Why a Lease request did not work.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The API server answered with an error (a 409 means another replica wrote first).
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// It did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl LeaseError {
    /// Whether another replica wrote the Lease first (a conflict, or a create of one that
    /// exists): the expected outcome of two replicas acting at once.
    pub fn lost_race(&self) -> bool {
        matches!(self, LeaseError::Api(kube::Error::Api(s)) if s.code == 409)
    }
}

async fn timed<T>(
    fut: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, LeaseError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(LeaseError::Timeout(REQUEST_TIMEOUT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(h: &str) -> Seen {
        Seen {
            holder: Some(h.into()),
            ..Seen::default()
        }
    }

    #[test]
    fn only_a_conflict_counts_as_losing_a_race() {
        let answered = |code: u16| {
            LeaseError::Api(kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..Default::default()
            })))
        };
        assert!(answered(409).lost_race(), "another replica wrote first");
        assert!(!answered(403).lost_race(), "forbidden by RBAC");
        assert!(!answered(404).lost_race(), "no such namespace");
        assert!(!LeaseError::Timeout(REQUEST_TIMEOUT).lost_race());
    }

    #[test]
    fn the_shard_of_a_namespace_is_pinned() {
        // FNV-1a 64 of "" is its offset basis; of "a" the published 0xaf63dc4c8601ec8c.
        assert_eq!(
            shard_of("", 1_000_000_007),
            (0xcbf2_9ce4_8422_2325u64 % 1_000_000_007) as u32
        );
        assert_eq!(
            shard_of("a", 1_000_000_007),
            (0xaf63_dc4c_8601_ec8cu64 % 1_000_000_007) as u32
        );
        let pinned: Vec<u32> = ["acme", "team-a", "team-b", "kube-system", "tenant-42"]
            .iter()
            .map(|ns| shard_of(ns, 3))
            .collect();
        assert_eq!(pinned, vec![2, 1, 0, 0, 1]);
        assert_eq!(shard_of("anything", 1), 0);
        assert_eq!(shard_of("anything", 0), 0);
    }

    #[test]
    fn namespaces_spread_over_the_shards() {
        let mut per = [0usize; 4];
        for i in 0..4000 {
            per[shard_of(&format!("tenant-{i}"), 4) as usize] += 1;
        }
        assert!(per.iter().all(|&c| (800..1200).contains(&c)), "{per:?}");
    }

    #[test]
    fn ownership_follows_the_held_shards() {
        let o = Ownership::new(3);
        assert!(!o.owns("acme"));
        o.set(shard_of("acme", 3), true);
        assert!(o.owns("acme"));
        assert_eq!(o.held(), 1);
        o.set(shard_of("acme", 3), false);
        assert!(!o.owns("acme"));
    }

    #[test]
    fn alone_a_replica_takes_free_shards_one_per_round() {
        let seen = vec![Seen::default(); 3];
        let steps = plan("a", &seen);
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert_eq!(steps.values().next(), Some(&Step::Acquire));
    }

    #[test]
    fn a_holder_renews_and_takes_no_more_than_its_share() {
        // b is alive with one shard: a holds one of three, its share is two.
        let seen = vec![held_by("a"), held_by("b"), Seen::default()];
        let steps = plan("a", &seen);
        assert_eq!(steps.get(&0), Some(&Step::Renew));
        assert_eq!(steps.get(&2), Some(&Step::Acquire));
        // With two held, a takes nothing more while b and c are alive.
        let seen = vec![held_by("a"), held_by("b"), held_by("a"), Seen::default()];
        let steps = plan("a", &seen);
        assert_eq!(steps.get(&3), None, "{steps:?}");
    }

    #[test]
    fn an_expired_shard_is_taken_over() {
        let dead = Seen {
            expired: true,
            ..held_by("dead")
        };
        let seen = vec![held_by("b"), dead, held_by("c")];
        assert_eq!(plan("b", &seen).get(&1), Some(&Step::Acquire));
    }

    #[test]
    fn a_newcomer_asks_the_busiest_and_it_hands_over() {
        let seen = vec![held_by("a"), held_by("a"), held_by("a")];
        let steps = plan("b", &seen);
        let (&asked, step) = steps.iter().next().expect("b asks");
        assert_eq!(step, &Step::Ask);
        let mut seen = seen;
        seen[asked as usize].wanted_by = Some("b".into());
        // b waits for the answer rather than asking again.
        assert!(plan("b", &seen).is_empty());
        let steps = plan("a", &seen);
        assert_eq!(steps.get(&asked), Some(&Step::HandOver("b".into())));
        assert_eq!(
            steps.values().filter(|s| **s == Step::Renew).count(),
            2,
            "{steps:?}"
        );
    }

    #[test]
    fn a_write_names_the_holder_and_drops_any_request() {
        let taken = written(None, "l-shard-0", Some("a"), None);
        let spec = taken.spec.clone().unwrap_or_default();
        assert_eq!(taken.metadata.name.as_deref(), Some("l-shard-0"));
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(1));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert!(spec.acquire_time.is_some());

        let wanted = asked(&taken, "b");
        let annotations = wanted.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations.get(WANTED_BY).map(String::as_str), Some("b"));
        assert_eq!(wanted.spec, taken.spec, "asking leaves the holder alone");

        let renewed = written(Some(&wanted), "l-shard-0", Some("a"), None);
        let spec = renewed.spec.clone().unwrap_or_default();
        assert_eq!(
            spec.lease_transitions,
            Some(1),
            "a renewal is no transition"
        );
        assert!(
            !renewed
                .metadata
                .annotations
                .unwrap_or_default()
                .contains_key(WANTED_BY)
        );

        let released = written(Some(&taken), "l-shard-0", None, None);
        let spec = released.spec.unwrap_or_default();
        assert_eq!(spec.holder_identity, None);
        assert_eq!(spec.acquire_time, None);
        assert_eq!(spec.lease_transitions, Some(2));
    }

    #[test]
    fn a_holder_keeps_a_shard_when_handing_it_over_would_not_balance() {
        let mut seen = vec![held_by("a"), held_by("a"), held_by("b")];
        seen[0].wanted_by = Some("b".into());
        assert_eq!(plan("a", &seen).get(&0), Some(&Step::Renew));
        // b holds one and a two: b does not ask.
        let steps = plan("b", &[held_by("a"), held_by("a"), held_by("b")]);
        assert!(!steps.values().any(|s| *s == Step::Ask), "{steps:?}");
    }
}
