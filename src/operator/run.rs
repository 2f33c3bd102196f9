//! `ringmaster run`: logging, the health and metrics servers, the CRD check, the stores,
//! leader election and graceful shutdown around the reconcile queue.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::Error;
use super::apply::Applier;
use super::health::{self, Health};
use super::metrics::Metrics;
use super::pace::{Pace, PaceConfig};
use super::queue::{self, QueueConfig, Sink};
use super::reports::{Clock, ReportConfig, Reports};
use super::stores::{self, Triggers};
use super::tenant::{Context, Key, TenantReconciler};
use crate::report::store::Store;

/// How often the CRD check is retried while a CRD is missing.
const CRD_RETRY: Duration = Duration::from_secs(5);
/// The leader lease's validity after its last renewal, in seconds.
const LEASE_DURATION: u64 = 15;
/// How long before expiry the leader renews, in seconds.
const LEASE_GRACE: u64 = 5;
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
    /// The name of the leader Lease.
    #[arg(long, default_value = "ringmaster-leader")]
    pub lease_name: String,
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
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_concurrent_writes: u32,
    /// Start at most this many writes a second on average (a client-side limit); unset:
    /// none, the API server's priority and fairness paces the operator (a 429 pauses every
    /// write and sends the throttled one again).
    #[arg(long, value_name = "QPS")]
    pub write_qps: Option<f64>,
    /// With `--write-qps`, the most writes started at once after a quiet spell.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
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
    ready: Arc<AtomicBool>,
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
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Its metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Its readiness flag (CRDs established and stores synced).
    pub fn readiness(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.ready)
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
        if !wait_for_crds(&self.client, &mut shutdown).await {
            return Ok(());
        }
        let sink: Arc<Sink<Key>> = Arc::new(Sink::default());
        let triggers = Arc::new(Triggers::new(
            Arc::clone(&sink),
            self.config.namespaces.as_deref(),
        ));
        let leading = Arc::new(AtomicBool::new(false));
        let watchers = stores::start(
            &self.client,
            self.config.namespaces.as_deref(),
            Arc::clone(&triggers),
            Arc::clone(&self.metrics),
            Arc::clone(&leading),
        );
        let synced = tokio::select! {
            ok = watchers.stores.wait_until_ready() => ok,
            _ = until_true(&mut shutdown) => {
                watchers.abort();
                return Ok(());
            }
        };
        if !synced {
            watchers.abort();
            return Err(Error::Task(
                "a watcher stopped before its first sync".into(),
            ));
        }
        self.ready.store(true, Ordering::Relaxed);
        info!("every store has synced: ready");

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
        });
        let reconciler = Arc::new(TenantReconciler::new(ctx));
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
            leading.store(true, Ordering::Relaxed);
            let rx = sink.connect();
            triggers.everything();
            let (stop_tx, stop_rx) = watch::channel(false);
            let mut queue = AbortOnDrop(tokio::spawn(queue::run(
                rx,
                Arc::clone(&reconciler),
                self.config.queue,
                stop_rx,
            )));
            let (lost, closed) = tokio::select! {
                still = until_false(&mut leader) => (true, !still),
                _ = until_true(&mut shutdown) => (false, false),
            };
            sink.disconnect();
            let _ = stop_tx.send(true);
            if let Err(e) = (&mut queue.0).await {
                error!(error = %e, "the work queue failed");
            }
            leading.store(false, Ordering::Relaxed);
            if closed {
                result = Err(Error::Lease("the lease manager stopped".into()));
                break;
            }
            if !lost {
                break;
            }
            warn!("lost the leader lease: following");
        }
        watchers.abort();
        info!("stopped");
        result
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
    let namespace = std::env::var("POD_NAMESPACE")
        .map_err(|_| Error::Lease("--leader-elect needs the env POD_NAMESPACE".into()))?;
    let identity = std::env::var("POD_NAME")
        .map_err(|_| Error::Lease("--leader-elect needs the env POD_NAME".into()))?;
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
        "ringmaster operator starting"
    );

    let result = if opts.leader_elect {
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
