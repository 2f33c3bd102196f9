//! Reading a tenant's objects from a cluster: for its month's packet, the preview's
//! `--from-cluster` and the levers' views; and the client configuration the command line
//! finds its cluster by.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client};

use crate::api::list_all;
use crate::api::{
    DeploymentRing, ManagedDevice, Patch, PatchApproval, PatchException, PatchFreeze, PatchPolicy,
    PatchRollout,
};
use crate::contract::{CHECK_IN_LABEL, CheckIns};
use crate::engine::Snapshot;

/// The annotation on a tenant's Namespace that names its time zone (IANA), in which its
/// months begin and end. Without it, months are in UTC.
pub const TIME_ZONE_ANNOTATION: &str = "patching.ringmaster.dev/time-zone";

/// One tenant's objects and the shared catalog, as read at one time.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    /// The tenant (namespace).
    pub namespace: String,
    /// Its PatchPolicies.
    pub policies: Vec<PatchPolicy>,
    /// Its DeploymentRings.
    pub rings: Vec<DeploymentRing>,
    /// Its PatchExceptions.
    pub exceptions: Vec<PatchException>,
    /// Its ManagedDevices.
    pub devices: Vec<ManagedDevice>,
    /// Its PatchRollouts.
    pub rollouts: Vec<PatchRollout>,
    /// The cluster's Patches.
    pub patches: Vec<Patch>,
    /// Its PatchApprovals.
    pub approvals: Vec<PatchApproval>,
    /// Its PatchFreezes.
    pub freezes: Vec<PatchFreeze>,
    /// Its devices' check-ins by Lease.
    pub check_ins: CheckIns,
}

impl Objects {
    /// The engine's view of them.
    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            namespace: &self.namespace,
            policies: self.policies.iter().collect(),
            rings: self.rings.iter().collect(),
            exceptions: self.exceptions.iter().collect(),
            devices: self.devices.iter().collect(),
            rollouts: self.rollouts.iter().collect(),
            patches: self.patches.iter().collect(),
            approvals: self.approvals.iter().collect(),
            freezes: self.freezes.iter().collect(),
            check_ins: &self.check_ins,
        }
    }
}

/// Why no client configuration could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The kubeconfig file given cannot be read or used.
    #[error("{}: {source}", path.display())]
    Kubeconfig {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The kubeconfig found (`$KUBECONFIG`, `~/.kube/config`) cannot be read, or has no
    /// such context.
    #[error(transparent)]
    Context(#[from] kube::config::KubeconfigError),
    /// Neither a kubeconfig nor the in-cluster service account could be used.
    #[error(transparent)]
    Infer(#[from] kube::config::InferConfigError),
}

/// The client configuration a kubeconfig file describes (else `$KUBECONFIG`,
/// `~/.kube/config`, or the in-cluster service account, as kubectl finds it), in
/// `context` when given, else the current one.
pub async fn config(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<kube::Config, ConfigError> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    match (kubeconfig, context) {
        (Some(path), _) => {
            let bad = |source| ConfigError::Kubeconfig {
                path: path.to_path_buf(),
                source,
            };
            let doc = Kubeconfig::read_from(path).map_err(bad)?;
            kube::Config::from_custom_kubeconfig(doc, &options)
                .await
                .map_err(bad)
        }
        (None, Some(_)) => Ok(kube::Config::from_kubeconfig(&options).await?),
        (None, None) => Ok(kube::Config::infer().await?),
    }
}

/// Reads a tenant's objects (page by page) and the catalog.
pub async fn read(client: &Client, namespace: &str) -> Result<Objects, kube::Error> {
    Ok(Objects {
        namespace: namespace.to_string(),
        policies: list_all(Api::namespaced(client.clone(), namespace)).await?,
        rings: list_all(Api::namespaced(client.clone(), namespace)).await?,
        exceptions: list_all(Api::namespaced(client.clone(), namespace)).await?,
        devices: list_all(Api::namespaced(client.clone(), namespace)).await?,
        rollouts: list_all(Api::namespaced(client.clone(), namespace)).await?,
        patches: list_all(Api::all(client.clone())).await?,
        approvals: list_all(Api::namespaced(client.clone(), namespace)).await?,
        freezes: list_all(Api::namespaced(client.clone(), namespace)).await?,
        check_ins: check_ins(client, namespace).await,
    })
}

/// The devices' check-ins: their Leases labelled [`CHECK_IN_LABEL`]. A reader who may
/// not list Leases (or a server without them) gets none: devices are then seen by their
/// `status.lastSeen` alone, with a warning.
pub async fn check_ins(client: &Client, namespace: &str) -> CheckIns {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let mut params = kube::api::ListParams::default()
        .labels(CHECK_IN_LABEL)
        .limit(500);
    let mut leases = Vec::new();
    let listed = loop {
        match api.list(&params).await {
            Ok(page) => {
                leases.extend(page.items);
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(token) => params = params.continue_token(&token),
                    None => break Ok(()),
                }
            }
            Err(e) => break Err(e),
        }
    };
    match listed {
        Ok(()) => CheckIns::from_leases(&leases),
        Err(e) => {
            tracing::warn!(namespace, error = %e, "cannot list the devices' check-in Leases; last seen from status.lastSeen alone");
            CheckIns::default()
        }
    }
}

/// The tenant's time zone from its Namespace's annotation, if it has one.
pub async fn time_zone(client: &Client, namespace: &str) -> Result<Option<String>, kube::Error> {
    let ns: Namespace = Api::all(client.clone()).get(namespace).await?;
    Ok(ns
        .metadata
        .annotations
        .and_then(|a| a.get(TIME_ZONE_ANNOTATION).cloned()))
}
