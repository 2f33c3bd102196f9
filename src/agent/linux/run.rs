//! The agent's process: the package manager chosen, the catalog watched, the device
//! watched for new plan entries, a check-in on a schedule and at every change, until it
//! is told to stop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, future};
use jiff::Timestamp;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::sync::watch;
use tracing::{info, warn};

use super::agent::{Agent, Config};
use super::apt::{Apt, AptConfig};
use super::backend::Backend;
use super::dnf::{Dnf, DnfConfig};
use super::inventory;
use super::runner::{Prefixed, Runner, SystemRunner};
use super::state::Store;
use crate::api::{ManagedDevice, Patch};
use crate::watch::{Pace, recovering};

/// Which package manager drives the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// Debian and Ubuntu: apt-get, apt-cache, dpkg.
    Apt,
    /// RHEL, AlmaLinux, Rocky, Fedora: dnf and rpm.
    Dnf,
    /// Chosen from `/etc/os-release` (`ID` and `ID_LIKE`).
    Auto,
}

/// How the Linux agent runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The device's namespace.
    pub namespace: String,
    /// The device's name.
    pub name: String,
    /// The package manager.
    pub backend: BackendKind,
    /// A confined root the package manager works in (tests); None: the host.
    pub root: Option<PathBuf>,
    /// A prefix every command runs through (node mode: `nsenter --target 1 …`).
    pub host_exec: Vec<String>,
    /// Where the agent itself reads the host's files when its commands run through
    /// `host_exec` (node mode: the host's root mounted at `/host`).
    pub host_root: Option<PathBuf>,
    /// Where the agent keeps its state file.
    pub state_dir: PathBuf,
    /// How often it checks in without being woken.
    pub check_in: Duration,
    /// How often it checks in (renews its Lease) with nothing new.
    pub heartbeat: Duration,
    /// How long one install or downgrade may take.
    pub install_timeout: Duration,
    /// How long reading repository metadata may take.
    pub metadata_timeout: Duration,
    /// How the device is rebooted.
    pub reboot: super::reboot::Config,
    /// One check-in, then exit.
    pub once: bool,
    /// Node mode: the device is this cluster node (cordoned and drained before an
    /// install or a reboot).
    pub node_mode: bool,
    /// How long a drain may take (node mode).
    pub drain_timeout: Duration,
    /// The kubeconfig, when the agent has one of its own (`KUBECONFIG`): its token is
    /// renewed before it expires.
    pub kubeconfig: Option<PathBuf>,
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The package manager could not be chosen or read.
    #[error("package manager: {0}")]
    Backend(#[from] super::backend::BackendError),
    /// `/etc/os-release` names no distribution the agent knows.
    #[error("{0}")]
    Unsupported(String),
    /// The state file is unreadable.
    #[error("state: {0}")]
    State(#[from] super::state::StateError),
    /// The agent's kubeconfig cannot be used.
    #[error("credentials: {0}")]
    Identity(#[from] super::identity::IdentityError),
    /// The cluster cannot be reached with the configuration found.
    #[error("kubernetes client: {0}")]
    Client(String),
    /// Node mode cannot start.
    #[error("node mode: {0}")]
    Node(#[from] super::node::NodeError),
    /// The catalog could not be read.
    #[error(
        "the Patch catalog could not be read within {0:?}; is the agent allowed to list patches?"
    )]
    Catalog(Duration),
}

/// The backend `kind` names (or `/etc/os-release` under `root` chooses), running its
/// commands through `runner`.
pub fn backend(
    kind: BackendKind,
    options: &Options,
    runner: Arc<dyn Runner>,
) -> Result<Arc<dyn Backend>, StartError> {
    let kind = match kind {
        BackendKind::Auto => detect(options.host_root.as_deref().or(options.root.as_deref()))?,
        other => other,
    };
    Ok(match kind {
        BackendKind::Dnf => {
            let mut config = DnfConfig {
                root: options.root.clone(),
                host_files: options.host_root.clone(),
                ..DnfConfig::default()
            };
            config.timeouts.metadata = options.metadata_timeout;
            config.timeouts.transaction = options.install_timeout;
            Arc::new(Dnf::new(runner, config))
        }
        BackendKind::Apt | BackendKind::Auto => Arc::new(
            Apt::new(
                runner,
                AptConfig {
                    root: options.root.clone(),
                    install_timeout: options.install_timeout,
                    metadata_timeout: options.metadata_timeout,
                    host_files: options.host_root.clone(),
                    ..AptConfig::default()
                },
            )
            .map_err(|e| StartError::Unsupported(e.to_string()))?,
        ),
    })
}

/// apt or dnf, from `/etc/os-release`'s `ID` and `ID_LIKE`.
fn detect(root: Option<&std::path::Path>) -> Result<BackendKind, StartError> {
    let path = root
        .unwrap_or(std::path::Path::new("/"))
        .join("etc/os-release");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| StartError::Unsupported(format!("{}: {e}", path.display())))?;
    let release = inventory::parse_os_release(&text)
        .map_err(|e| StartError::Unsupported(format!("{}: {e}", path.display())))?;
    match release.flavour() {
        Some(inventory::Flavour::Deb) => Ok(BackendKind::Apt),
        Some(inventory::Flavour::Rpm) => Ok(BackendKind::Dnf),
        None => Err(StartError::Unsupported(format!(
            "{}: no apt or dnf distribution (ID={:?}); pass --backend",
            path.display(),
            release.id
        ))),
    }
}

/// The agent's client: from its own kubeconfig (whose token it then renews), or as kube
/// finds one (in a pod: the ServiceAccount's projected token, which the kubelet renews).
async fn connect(
    options: &Options,
) -> Result<(kube::Client, Option<super::identity::Identity>), StartError> {
    match &options.kubeconfig {
        Some(path) => Ok(super::identity::client(path, &options.state_dir).await?),
        None => kube::Client::try_default()
            .await
            .map(|c| (c, None))
            .map_err(|e| StartError::Client(e.to_string())),
    }
}

/// Runs the agent until `shutdown` turns true (or after one check-in with `once`).
pub async fn run(options: Options, mut shutdown: watch::Receiver<bool>) -> Result<(), StartError> {
    std::fs::create_dir_all(&options.state_dir).map_err(|e| {
        StartError::State(super::state::StateError::Io {
            path: options.state_dir.clone(),
            source: e,
        })
    })?;
    let (client, identity) = connect(&options).await?;
    let system: Arc<dyn Runner> = if options.host_exec.is_empty() {
        Arc::new(SystemRunner)
    } else {
        Arc::new(Prefixed {
            prefix: options.host_exec.clone(),
            inner: SystemRunner,
        })
    };
    let backend = backend(options.backend, &options, system.clone())?;
    let ecosystem = {
        let backend = backend.clone();
        tokio::task::spawn_blocking(move || backend.ecosystem())
            .await
            .map_err(|e| StartError::Unsupported(e.to_string()))??
    };
    info!(backend = backend.name(), ecosystem = %ecosystem.0, device = %options.name, "agent starting");
    let catalog = watch_catalog(client.clone(), ecosystem.clone()).await?;
    let config = Config {
        namespace: options.namespace.clone(),
        name: options.name.clone(),
        agent: format!(
            "ringmaster-agent/{} ({})",
            env!("CARGO_PKG_VERSION"),
            backend.name()
        ),
        heartbeat: options.heartbeat,
        retry_uninstall: Duration::from_secs(600),
        reboot: options.reboot.clone(),
        drain_timeout: options.drain_timeout,
    };
    let store = Store::new(&options.state_dir);
    let mut agent = Agent::new(
        client.clone(),
        config,
        catalog,
        backend,
        system,
        ecosystem,
        store,
    )?;
    if options.node_mode {
        register_node(&client, &options).await?;
        agent = agent.with_node(node_guard(&options).await?);
        agent.release_stale_cordon().await;
    }
    let devices: Api<ManagedDevice> = Api::namespaced(client.clone(), &options.namespace);
    let mut changes = recovering(
        watcher(
            devices,
            watcher::Config::default().fields(&format!("metadata.name={}", options.name)),
        ),
        Pace::Agent,
    )
    .touched_objects()
    .boxed();
    loop {
        if let Some(identity) = &identity
            && let Err(e) = identity.renew_if_due(&client, Timestamp::now()).await
        {
            warn!(error = %e, "token renewal failed; trying again at the next check-in");
        }
        if let Err(e) = agent.check_in(Timestamp::now()).await {
            warn!(error = %e, "check-in failed; trying again at the next one");
        }
        if options.once || *shutdown.borrow() {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(options.check_in) => {}
            _ = changes.next() => {
                // A change to the device (a new plan entry, often our own write): a short
                // pause lets a burst settle into one check-in.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// Node mode: the node's ManagedDevice, created when it does not exist yet (a DaemonSet
/// reaches every node, and nobody enrolls nodes one by one). It is named like the node,
/// carries the node's `ringmaster.dev/…` labels (label the nodes to choose their policy,
/// ring and tier) and names the agent's own user as its agent, as the chart's admission
/// policy requires; an existing device is left as it is.
async fn register_node(client: &kube::Client, options: &Options) -> Result<(), StartError> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    use k8s_openapi::api::core::v1::Node;
    use kube::api::PostParams;
    let failed = |what: &str, e: kube::Error| StartError::Client(format!("{what}: {e}"));
    let devices: Api<ManagedDevice> = Api::namespaced(client.clone(), &options.namespace);
    if devices
        .get_opt(&options.name)
        .await
        .map_err(|e| failed("reading the node's ManagedDevice", e))?
        .is_some()
    {
        return Ok(());
    }
    let node = Api::<Node>::all(client.clone())
        .get(&options.name)
        .await
        .map_err(|e| failed("reading the node", e))?;
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(|e| failed("learning the agent's user name", e))?;
    let user = review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .unwrap_or_default();
    let labels: std::collections::BTreeMap<String, String> = node
        .metadata
        .labels
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k.starts_with("ringmaster.dev/"))
        .collect();
    let mut device = ManagedDevice::new(
        &options.name,
        crate::api::ManagedDeviceSpec {
            hostname: Some(options.name.clone()),
            os: Some(crate::api::OsInfo {
                family: "linux".into(),
                version: None,
            }),
            plan: Default::default(),
        },
    );
    device.metadata.labels = Some(labels);
    device.metadata.annotations = Some(
        [(crate::agent::AGENT_ANNOTATION.to_string(), user)]
            .into_iter()
            .collect(),
    );
    match devices.create(&PostParams::default(), &device).await {
        Ok(_) => {
            info!(device = %options.name, "registered the node's ManagedDevice");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(failed("registering the node's ManagedDevice", e)),
    }
}

/// Node mode's guard, on a client of its own that does not retry a PodDisruptionBudget's
/// 429 itself (the drain retries, pod by pod).
async fn node_guard(options: &Options) -> Result<super::node::NodeGuard, StartError> {
    let client_error = |e: &dyn std::fmt::Display| StartError::Client(e.to_string());
    let config = match &options.kubeconfig {
        Some(path) => {
            let mut doc =
                kube::config::Kubeconfig::read_from(path).map_err(|e| client_error(&e))?;
            super::identity::use_token_file(&mut doc, &options.state_dir);
            kube::Config::from_custom_kubeconfig(doc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| client_error(&e))?
        }
        None => kube::Config::infer().await.map_err(|e| client_error(&e))?,
    };
    Ok(super::node::NodeGuard::from_config(
        config,
        super::node::DEFAULT_AGENT,
    )?)
}

/// The cluster's Patch catalog, kept current by a watch, once it has been listed. Only
/// what the agent reads is kept of each Patch: its id and its packages for this
/// distribution release (a catalog of every vendor's advisories would otherwise cost
/// the agent tens of megabytes).
async fn watch_catalog(
    client: kube::Client,
    ecosystem: inventory::Ecosystem,
) -> Result<reflector::Store<Patch>, StartError> {
    const READY_WITHIN: Duration = Duration::from_secs(120);
    let (reader, writer) = reflector::store();
    let patches: Api<Patch> = Api::all(client);
    let trimmed = watcher(patches, watcher::Config::default()).modify(move |p: &mut Patch| {
        p.metadata.managed_fields = None;
        p.metadata.annotations = None;
        p.status = None;
        p.spec.packages.retain(|f| ecosystem.covers(&f.ecosystem));
        p.spec.cves.clear();
        p.spec.title = None;
        p.spec.supersedes.clear();
    });
    let stream = recovering(reflector(writer, trimmed), Pace::Agent)
        .applied_objects()
        .for_each(|_| future::ready(()));
    tokio::spawn(stream);
    tokio::time::timeout(READY_WITHIN, reader.wait_until_ready())
        .await
        .map_err(|_| StartError::Catalog(READY_WITHIN))?
        .map_err(|_| StartError::Catalog(READY_WITHIN))?;
    Ok(reader)
}
