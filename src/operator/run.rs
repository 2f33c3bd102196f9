//! `ringmaster run`: logging, the health and metrics servers, the CRD check, the stores,
//! leader election and graceful shutdown around the reconcile queue.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::Error;
use super::apply::Applier;
use super::health::{self, Health, Readiness};
use super::metrics::Metrics;
use super::pace::{self, Pace, PaceConfig};
use super::queue::{self, QueueConfig, Sink};
use super::reports::{Clock, ReportConfig, Reports};
use super::shards::{self, Held, LeaseConfig, Ownership};
use super::stores::{self, Triggers};
use super::tenant::{Context, Key, TenantReconciler};
use crate::report::store::Store;

/// How often the CRD check is retried while a CRD is missing.
const CRD_RETRY: Duration = Duration::from_secs(5);
/// The leader lease's validity after its last renewal, in seconds.
const LEASE_DURATION: u64 = 15;
/// How long before expiry the leader renews, in seconds.
const LEASE_GRACE: u64 = 5;
/// How often a sharded replica looks whether its stores have synced before it joins.
const SYNC_POLL: Duration = Duration::from_millis(200);
/// The longest the lease release may take at shutdown.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

/// The flags of `ringmaster run` (the Helm chart passes them).
#[derive(Clone, Debug, clap::Args)]
pub struct RunOptions {
    /// Watch and reconcile only this namespace (repeatable); none: every namespace.
    #[arg(long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Where to serve Prometheus metrics (`/metrics`).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Where to serve `/healthz` (liveness) and `/readyz` (readiness).
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub health_addr: SocketAddr,
    /// Log format; the level comes from `RUST_LOG` (default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// Reconcile only while holding the leader Lease (in the namespace of env
    /// `POD_NAMESPACE`, as the identity in env `POD_NAME`).
    #[arg(long)]
    pub leader_elect: bool,
    /// The name of the leader Lease; with `--shards` N above 1, the base name of the
    /// shard Leases `<lease-name>-shard-0` … `<lease-name>-shard-<N-1>`.
    #[arg(long, default_value = "ringmaster-leader")]
    pub lease_name: String,
    /// Split the tenants (namespaces) into this many shards, one Lease each, so that
    /// several replicas reconcile at once, each the tenants of the shards it holds. Above
    /// 1 it implies `--leader-elect` (env `POD_NAMESPACE` and `POD_NAME`); every replica
    /// must be given the same number.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub shards: u32,
    /// Where to keep closed months' evidence packets: a directory (`/var/lib/ringmaster/reports`)
    /// or an S3-compatible bucket (`s3://bucket/prefix`; endpoint, region and credentials
    /// from the AWS_* environment). Without it months are not closed.
    #[arg(long, value_name = "DIR|s3://BUCKET[/PREFIX]")]
    pub report_store: Option<String>,
    /// Sign each packet's SHA256SUMS with this ed25519 private key (PKCS#8 PEM, as
    /// `ringmaster report keygen` writes).
    #[arg(long, value_name = "KEY.pem")]
    pub report_sign_key: Option<std::path::PathBuf>,
    /// The most writes in flight at once, across every tenant.
    #[arg(long, default_value_t = pace::DEFAULT_CONCURRENT, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_concurrent_writes: u32,
    /// Start at most this many writes a second on average (a client-side limit); unset:
    /// none, the API server's priority and fairness paces the operator (a 429 pauses every
    /// write and sends the throttled one again).
    #[arg(long, value_name = "QPS")]
    pub write_qps: Option<f64>,
    /// With `--write-qps`, the most writes started at once after a quiet spell.
    #[arg(long, default_value_t = pace::DEFAULT_BURST, value_parser = clap::value_parser!(u32).range(1..))]
    pub write_burst: u32,
}

impl RunOptions {
    /// How writes are paced, from the flags.
    pub fn pace_config(&self) -> Result<PaceConfig, Error> {
        if let Some(q) = self.write_qps
            && !(q.is_finite() && q > 0.0)
        {
            return Err(Error::Config(format!(
                "--write-qps: {q} is not a positive number of writes a second"
            )));
        }
        Ok(PaceConfig {
            concurrent: self.max_concurrent_writes as usize,
            qps: self.write_qps,
            burst: self.write_burst,
        })
    }

    /// How months are closed, from the flags: the store and signing key are read now, so
    /// that a bad flag stops the operator at start with a clear error.
    pub fn report_config(&self) -> Result<ReportConfig, Error> {
        let store = self
            .report_store
            .as_deref()
            .map(Store::parse)
            .transpose()
            .map_err(|e| Error::Config(format!("--report-store: {e}")))?;
        let sign_key = self
            .report_sign_key
            .as_deref()
            .map(crate::report::keys::read_signing_key)
            .transpose()
            .map_err(|e| Error::Config(format!("--report-sign-key: {e}")))?;
        Ok(ReportConfig {
            store,
            sign_key,
            clock: Clock::system(),
        })
    }
}

/// What an in-process operator watches and how it paces work.
#[derive(Clone, Debug, Default)]
pub struct OperatorConfig {
    /// Namespaces to watch; None: every namespace.
    pub namespaces: Option<Vec<String>>,
    /// The work queue's pacing.
    pub queue: QueueConfig,
    /// The reporting instance of Events (the pod name).
    pub instance: Option<String>,
    /// How months are closed.
    pub reports: ReportConfig,
    /// How writes are paced.
    pub pace: PaceConfig,
}

/// The operator without its process concerns (signals, servers, leases): what `run`
/// drives, and what end-to-end tests start in-process.
pub struct Operator {
    client: Client,
    config: OperatorConfig,
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
}

/// What both ways of running share once the stores have synced.
struct Started {
    watchers: stores::Watchers,
    triggers: Arc<Triggers>,
    reconciler: Arc<TenantReconciler>,
    ownership: Arc<Ownership>,
    _check: AbortOnDrop<()>,
}

/// A running work queue of one shard (or of the leader).
struct ShardQueue {
    stop: watch::Sender<bool>,
    task: AbortOnDrop<()>,
}

impl Operator {
    /// An operator on a client.
    pub fn new(client: Client, config: OperatorConfig) -> Self {
        Self::with_metrics(client, config, Arc::new(Metrics::new()))
    }

    /// An operator that counts into existing metrics (so that counts carry over a
    /// restart within one process, as in end-to-end tests).
    pub fn with_metrics(client: Client, config: OperatorConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            config,
            metrics,
            ready: Arc::new(Readiness::default()),
        }
    }

    /// Its metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Its readiness (CRDs established, stores synced, the API server answering).
    pub fn readiness(&self) -> Arc<Readiness> {
        Arc::clone(&self.ready)
    }

    /// Checks the API server, waits for the CRDs, starts the watchers and waits until
    /// they have synced; None if shut down first.
    async fn start(
        &self,
        shards: u32,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<Started>, Error> {
        let check = AbortOnDrop(tokio::spawn(health::check_api(
            self.client.clone(),
            Arc::clone(&self.ready),
        )));
        if !wait_for_crds(&self.client, shutdown).await {
            return Ok(None);
        }
        let sinks: Vec<Arc<Sink<Key>>> = (0..shards.max(1))
            .map(|_| Arc::new(Sink::default()))
            .collect();
        let triggers = Arc::new(Triggers::sharded(sinks, self.config.namespaces.as_deref()));
        let ownership = Arc::new(Ownership::new(shards));
        let watchers = stores::start(
            &self.client,
            self.config.namespaces.as_deref(),
            Arc::clone(&triggers),
            Arc::clone(&self.metrics),
            Arc::clone(&ownership),
        );
        let synced = tokio::select! {
            ok = watchers.stores.wait_until_ready() => ok,
            _ = until_true(shutdown) => return Ok(None),
        };
        if !synced {
            return Err(Error::Task(
                "a watcher stopped before its first sync".into(),
            ));
        }
        self.ready.set_synced(true);
        info!("every store has synced");
        let ctx = Arc::new(Context {
            stores: watchers.stores.clone(),
            applier: Applier::new(
                self.client.clone(),
                Arc::clone(&self.metrics),
                self.config.instance.clone(),
            )
            .paced(Pace::new(self.config.pace, Arc::clone(&self.metrics))),
            metrics: Arc::clone(&self.metrics),
            reports: Reports::new(self.client.clone(), self.config.reports.clone()),
            caches: Default::default(),
        });
        Ok(Some(Started {
            watchers,
            triggers,
            reconciler: Arc::new(TenantReconciler::new(ctx)),
            ownership,
            _check: check,
        }))
    }

    /// Connects shard `shard`'s queue (shard 0 is the leader's) and starts it.
    fn start_queue(&self, started: &Started, shard: u32) -> Option<ShardQueue> {
        let sink = started.triggers.sink(shard)?;
        started.ownership.set(shard, true);
        let rx = sink.connect();
        let (stop, stop_rx) = watch::channel(false);
        let task = AbortOnDrop(tokio::spawn(queue::run(
            rx,
            Arc::clone(&started.reconciler),
            self.config.queue,
            stop_rx,
        )));
        Some(ShardQueue { stop, task })
    }

    /// Stops a shard's queue: no new work; the reconciles in flight finish before
    /// `deadline`, or are cut short then.
    async fn stop_queue(started: &Started, shard: u32, q: ShardQueue, deadline: Instant) {
        if let Some(sink) = started.triggers.sink(shard) {
            sink.disconnect();
        }
        let _ = q.stop.send(true);
        let mut task = q.task;
        match tokio::time::timeout_at(deadline, &mut task.0).await {
            Ok(Err(e)) if !e.is_cancelled() => error!(error = %e, "the work queue failed"),
            Ok(_) => {}
            Err(_) => warn!(
                shard,
                "reconciles still running when the shard had to go: cut short"
            ),
        }
        started.ownership.set(shard, false);
        let ownership = &started.ownership;
        started
            .reconciler
            .context()
            .forget_tenants(|ns| ownership.shard_of(ns) == shard);
    }

    /// Runs until `shutdown` turns true: waits for the CRDs, starts the watchers, becomes
    /// ready once they have synced, then reconciles while `leader` is true. On shutdown
    /// (or losing the lead) it stops taking work and finishes the reconciles in flight.
    /// Returns an error if the leader channel closes (the lease manager stopped).
    pub async fn run(
        &self,
        mut leader: watch::Receiver<bool>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), Error> {
        let Some(started) = self.start(1, &mut shutdown).await? else {
            return Ok(());
        };
        let mut result = Ok(());
        loop {
            // Follow until leading (or shutting down).
            let lead = tokio::select! {
                lead = until_true(&mut leader) => lead,
                _ = until_true(&mut shutdown) => break,
            };
            if !lead {
                result = Err(Error::Lease("the lease manager stopped".into()));
                break;
            }
            info!("leading: reconciling");
            let Some(queue) = self.start_queue(&started, 0) else {
                break;
            };
            self.metrics.set_shards_held(1);
            started.triggers.everything();
            let (lost, closed) = tokio::select! {
                still = until_false(&mut leader) => (true, !still),
                _ = until_true(&mut shutdown) => (false, false),
            };
            // The reconciles in flight finish, however long they take.
            let unbounded = Instant::now() + Duration::from_secs(365 * 24 * 3600);
            Self::stop_queue(&started, 0, queue, unbounded).await;
            self.metrics.set_shards_held(0);
            if closed {
                result = Err(Error::Lease("the lease manager stopped".into()));
                break;
            }
            if !lost {
                break;
            }
            warn!("lost the leader lease: following");
        }
        started.watchers.abort();
        info!("stopped");
        result
    }

    /// Runs sharded until `shutdown` turns true: like [`run`](Self::run), but reconciles
    /// the tenants of each shard of `shards` that `held` names, until the instant it gives
    /// (see [`shards`](super::shards)). A shard newly held gets a full reconcile of its
    /// tenants; a shard let go stops at once (its reconciles in flight are cut short at
    /// its deadline). `acting` tells the Lease holder which shards are reconciling, so that
    /// it hands over or releases a shard only once nothing runs for it.
    pub async fn run_shards(
        &self,
        shards: u32,
        mut held: watch::Receiver<Held>,
        acting: watch::Sender<BTreeSet<u32>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), Error> {
        let Some(started) = self.start(shards, &mut shutdown).await? else {
            return Ok(());
        };
        let mut queues: BTreeMap<u32, (ShardQueue, Instant)> = BTreeMap::new();
        let result = loop {
            let now = Instant::now();
            let want: Held = held
                .borrow_and_update()
                .iter()
                .filter(|(_, until)| **until > now)
                .map(|(s, u)| (*s, *u))
                .collect();
            self.follow(&started, &mut queues, &want).await;
            acting.send_replace(queues.keys().copied().collect());
            self.metrics.set_shards_held(queues.len());
            let next = queues.values().map(|(_, until)| *until).min();
            tokio::select! {
                changed = held.changed() => if changed.is_err() {
                    break Err(Error::Lease("the shard Lease task stopped".into()));
                },
                _ = tokio::time::sleep_until(next.unwrap_or(now)), if next.is_some() => {}
                _ = until_true(&mut shutdown) => break Ok(()),
            }
        };
        for (shard, (q, until)) in std::mem::take(&mut queues) {
            Self::stop_queue(&started, shard, q, until).await;
        }
        acting.send_replace(BTreeSet::new());
        self.metrics.set_shards_held(0);
        started.watchers.abort();
        info!("stopped");
        result
    }

    /// Stops the queues of shards no longer held (or past their time) and starts those
    /// of shards newly held.
    async fn follow(
        &self,
        started: &Started,
        queues: &mut BTreeMap<u32, (ShardQueue, Instant)>,
        want: &Held,
    ) {
        let now = Instant::now();
        let gone: Vec<u32> = queues
            .keys()
            .filter(|s| !want.contains_key(s))
            .copied()
            .collect();
        let mut stops = Vec::new();
        for shard in gone {
            if let Some((q, until)) = queues.remove(&shard) {
                // Handed over (still ours until `until`: the reconciles in flight may
                // finish, up to a grace) or past its time (cut short now).
                let deadline = until.min(now + shards::HANDOVER_GRACE);
                if until <= now {
                    warn!(
                        shard,
                        "the shard's time is up: its tenants are no longer reconciled here"
                    );
                } else {
                    info!(
                        shard,
                        "let the shard go: its tenants are no longer reconciled here"
                    );
                }
                stops.push(Self::stop_queue(started, shard, q, deadline));
            }
        }
        futures::future::join_all(stops).await;
        for (&shard, &until) in want {
            if let Some((_, u)) = queues.get_mut(&shard) {
                *u = until;
                continue;
            }
            if let Some(q) = self.start_queue(started, shard) {
                info!(shard, "took the shard: reconciling its tenants");
                started.triggers.everything_of(shard);
                queues.insert(shard, (q, until));
            }
        }
    }
}

/// A task that is aborted when its handle is dropped, so that a dropped (cancelled or
/// killed) operator leaves no work queue running behind it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits until the channel holds true; false if its sender is gone first.
async fn until_true(rx: &mut watch::Receiver<bool>) -> bool {
    loop {
        if *rx.borrow_and_update() {
            return true;
        }
        if rx.changed().await.is_err() {
            return *rx.borrow();
        }
    }
}

/// Waits until the channel holds false; returns false if its sender is gone first.
async fn until_false(rx: &mut watch::Receiver<bool>) -> bool {
    loop {
        if !*rx.borrow_and_update() {
            return true;
        }
        if rx.changed().await.is_err() {
            return false;
        }
    }
}

/// Whether a CRD's `Established` condition is True.
fn established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// Waits until the nine CRDs exist and are Established, saying clearly which are missing;
/// false if shut down first.
pub async fn wait_for_crds(client: &Client, shutdown: &mut watch::Receiver<bool>) -> bool {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let names: Vec<String> = crate::api::crds()
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    loop {
        let mut missing = 0;
        for name in &names {
            match api.get_opt(name).await {
                Ok(Some(crd)) if established(&crd) => {}
                Ok(Some(_)) => {
                    missing += 1;
                    info!(crd = %name, "CRD {name} is not established yet");
                }
                Ok(None) => {
                    missing += 1;
                    error!(
                        crd = %name,
                        "CRD {name} is not installed: apply crds/ or install the Helm chart"
                    );
                }
                Err(e) => {
                    missing += 1;
                    error!(crd = %name, error = %e, "cannot read CRD {name}");
                }
            }
        }
        if missing == 0 {
            info!("the nine CRDs are established");
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(CRD_RETRY) => {}
            _ = until_true(shutdown) => return false,
        }
    }
}

/// Sets up logging: `RUST_LOG` for the level (default `info`), JSON or text lines.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // An already installed subscriber (tests) is kept.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => info!("SIGINT: shutting down"),
        _ = terminate => info!("SIGTERM: shutting down"),
    }
}

/// The leader lease's state channel and the task that holds it; the task releases the
/// lease when every receiver of the channel is dropped.
type Lease = (
    watch::Receiver<bool>,
    tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
);

/// Joins the election for the Lease, retrying until it can (or shutdown).
async fn join_election(
    client: &Client,
    name: &str,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<Lease>, Error> {
    let (namespace, identity) = identity("--leader-elect")?;
    loop {
        let built = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), name)
            .with_namespace(&namespace)
            .with_identity(&identity)
            .with_duration(LEASE_DURATION)
            .with_grace(LEASE_GRACE)
            .build()
            .await;
        match built {
            Ok(manager) => {
                info!(lease = name, namespace = %namespace, identity = %identity, "joined the leader election");
                return Ok(Some(manager.watch().await));
            }
            Err(e) => {
                error!(lease = name, namespace = %namespace, error = %e, "cannot use the leader Lease; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(CRD_RETRY) => {}
            _ = until_true(shutdown) => return Ok(None),
        }
    }
}

/// The identity of a replica: the namespace of its Leases and its name, from the env.
fn identity(flag: &str) -> Result<(String, String), Error> {
    let namespace = std::env::var("POD_NAMESPACE")
        .map_err(|_| Error::Lease(format!("{flag} needs the env POD_NAMESPACE")))?;
    let name = std::env::var("POD_NAME")
        .map_err(|_| Error::Lease(format!("{flag} needs the env POD_NAME")))?;
    Ok((namespace, name))
}

/// Runs the operator with `--shards` above 1: the shard Leases held by their own task,
/// which releases them once the operator has stopped reconciling.
async fn run_sharded(
    operator: &Operator,
    client: &Client,
    opts: &RunOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let (namespace, identity) = identity("--shards")?;
    let cfg = LeaseConfig {
        namespace,
        base: opts.lease_name.clone(),
        identity,
        shards: opts.shards,
    };
    let (held_tx, held_rx) = watch::channel(Held::new());
    let (acting_tx, acting_rx) = watch::channel(BTreeSet::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let ready = operator.readiness();
    let lease_client = client.clone();
    let lease_task = tokio::spawn(async move {
        // Take shards only once this replica can reconcile them: a replica still
        // syncing (or never syncing, say for want of RBAC) leaves them to others.
        let mut stop = stop_rx.clone();
        while !ready.synced() {
            tokio::select! {
                _ = tokio::time::sleep(SYNC_POLL) => {}
                _ = stop.wait_for(|v| *v) => return,
            }
        }
        shards::hold(lease_client, cfg, held_tx, acting_rx, stop_rx).await;
    });
    let result = operator
        .run_shards(opts.shards, held_rx, acting_tx, shutdown)
        .await;
    let _ = stop_tx.send(true);
    match tokio::time::timeout(RELEASE_TIMEOUT * 2, lease_task).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "the shard Lease task failed"),
        Err(_) => warn!("releasing the shard Leases timed out"),
    }
    result
}

/// `ringmaster run`: serves health and metrics, waits for the CRDs, syncs the stores,
/// joins the leader election when asked, and reconciles until SIGTERM or SIGINT.
pub async fn run(opts: RunOptions) -> Result<(), Error> {
    init_tracing(opts.log_format);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = shutdown_tx.send(true);
    });

    let reports = opts.report_config()?;
    let pace = opts.pace_config()?;
    if reports.store.is_none() {
        warn!("no --report-store: months are not closed, and PatchReports say so");
    }
    let client = Client::try_default()
        .await
        .map_err(|e| Error::Client(e.to_string()))?;
    let namespaces = (!opts.namespaces.is_empty()).then(|| opts.namespaces.clone());
    let operator = Operator::new(
        client.clone(),
        OperatorConfig {
            namespaces: namespaces.clone(),
            queue: QueueConfig::default(),
            instance: std::env::var("POD_NAME").ok(),
            reports,
            pace,
        },
    );
    let servers = health::serve(
        opts.health_addr,
        opts.metrics_addr,
        Health {
            ready: operator.readiness(),
            metrics: operator.metrics(),
        },
        shutdown_rx.clone(),
    )
    .await?;
    info!(
        namespaces = ?namespaces.as_deref().unwrap_or(&[]),
        leader_elect = opts.leader_elect,
        shards = opts.shards,
        "ringmaster operator starting"
    );

    let result = if opts.shards > 1 {
        run_sharded(&operator, &client, &opts, shutdown_rx.clone()).await
    } else if opts.leader_elect {
        let mut shutdown = shutdown_rx.clone();
        match join_election(&client, &opts.lease_name, &mut shutdown).await? {
            None => Ok(()),
            Some((leader, task)) => {
                let result = operator.run(leader, shutdown_rx.clone()).await;
                // The leader receiver was dropped with `run`: the task releases the lease.
                match tokio::time::timeout(RELEASE_TIMEOUT, task).await {
                    Ok(Ok(Ok(_))) => info!(lease = %opts.lease_name, "released the leader lease"),
                    Ok(Ok(Err(e))) => warn!(error = %e, "releasing the leader lease failed"),
                    Ok(Err(e)) => warn!(error = %e, "the lease task failed"),
                    Err(_) => warn!("releasing the leader lease timed out"),
                }
                result
            }
        }
    } else {
        let (_leader_tx, leader) = watch::channel(true);
        operator.run(leader, shutdown_rx.clone()).await
    };

    // The servers stop by themselves on a signal; if the operator stopped on its own
    // (an error), they stop here.
    for s in servers {
        s.abort();
    }
    result
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunOptions,
    }

    fn pace(args: &[&str]) -> Result<PaceConfig, String> {
        let cli = Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.run.pace_config().map_err(|e| e.to_string())
    }

    #[test]
    fn write_pacing_comes_from_the_flags() {
        assert_eq!(pace(&[]), Ok(PaceConfig::default()));
        assert_eq!(
            pace(&[
                "--max-concurrent-writes",
                "8",
                "--write-qps",
                "50",
                "--write-burst",
                "20"
            ]),
            Ok(PaceConfig {
                concurrent: 8,
                qps: Some(50.0),
                burst: 20
            })
        );
        let zero = pace(&["--write-qps", "0"]).expect_err("no writes a second");
        assert!(zero.contains("--write-qps"), "{zero}");
        let none = pace(&["--max-concurrent-writes", "0"]).expect_err("no write at once");
        assert!(none.contains("--max-concurrent-writes"), "{none}");
    }
}
