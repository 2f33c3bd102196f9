//! Reading the preview's baseline from a live cluster (`simulate HEAD --from-cluster -n
//! NS`): one tenant's PatchPolicies, DeploymentRings, PatchExceptions and ManagedDevices,
//! the cluster's Patch catalog, and the tenant's time zone. [`super::live`] turns them
//! into the two sides.
//!
//! PatchRollouts are not read (a preview plays a fresh month), so the reader needs get
//! and list on the five kinds and get on the Namespace, nothing more.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client};

use crate::api::{
    DeploymentRing, ManagedDevice, Patch, PatchApproval, PatchException, PatchFreeze, PatchPolicy,
    list_all,
};
use crate::report::cluster::{ConfigError, Objects, TIME_ZONE_ANNOTATION};

/// Why a tenant could not be read from a cluster. Each names the namespace, and the
/// cluster's address once one is known.
#[derive(Debug, thiserror::Error)]
pub enum FromClusterError {
    /// The kubeconfig given cannot be read or used.
    #[error("kubeconfig {}: {message}", path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No client configuration: no kubeconfig, not inside a cluster, or no such context.
    #[error("no cluster to read namespace {namespace} from: {message}")]
    NoConfig {
        /// The tenant.
        namespace: String,
        /// What kube said.
        message: String,
    },
    /// The cluster did not answer.
    #[error("cannot reach the cluster at {server} to read namespace {namespace}: {message}")]
    Unreachable {
        /// The API server's address.
        server: String,
        /// The tenant.
        namespace: String,
        /// What the connection said.
        message: String,
    },
    /// The namespace does not exist.
    #[error("namespace {namespace} does not exist in the cluster at {server}")]
    NoNamespace {
        /// The tenant.
        namespace: String,
        /// The API server's address.
        server: String,
    },
    /// The API server refused or failed a read.
    #[error("reading {what} of namespace {namespace} from the cluster at {server}: {message}")]
    Read {
        /// What was being read, e.g. `PatchPolicies`.
        what: &'static str,
        /// The tenant.
        namespace: String,
        /// The API server's address.
        server: String,
        /// What the server said.
        message: String,
    },
    /// The namespace holds no PatchPolicy: no baseline to preview against.
    #[error(
        "namespace {namespace} in the cluster at {server} has no PatchPolicy: there is no baseline to preview against (preview against a directory with --baseline instead)"
    )]
    NoPolicies {
        /// The tenant.
        namespace: String,
        /// The API server's address.
        server: String,
    },
    /// The namespace holds no ManagedDevice: no inventory to play.
    #[error(
        "namespace {namespace} in the cluster at {server} has no ManagedDevice: there is no device inventory to play"
    )]
    NoDevices {
        /// The tenant.
        namespace: String,
        /// The API server's address.
        server: String,
    },
}

/// A client for one cluster, and its address for messages.
#[derive(Clone)]
pub struct Cluster {
    /// The client.
    pub client: Client,
    /// The API server's address, as the kubeconfig (or the in-cluster config) gives it.
    pub server: String,
}

/// The client a kubeconfig file (else `$KUBECONFIG`, `~/.kube/config`, or the in-cluster
/// service account) describes, in `context` when given, else the current one. Nothing is
/// sent yet: a cluster that cannot be reached is found by [`read`].
pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    namespace: &str,
) -> Result<Cluster, FromClusterError> {
    let config = crate::report::cluster::config(kubeconfig, context)
        .await
        .map_err(|e| match e {
            ConfigError::Kubeconfig { path, source } => FromClusterError::Kubeconfig {
                path,
                message: chain(&source),
            },
            other => FromClusterError::NoConfig {
                namespace: namespace.to_string(),
                message: chain(&other),
            },
        })?;
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|e| FromClusterError::NoConfig {
        namespace: namespace.to_string(),
        message: chain(&e),
    })?;
    Ok(Cluster { client, server })
}

/// What was read from the cluster.
#[derive(Clone, Debug)]
pub struct Live {
    /// The tenant's policies, rings, exceptions and devices, and the catalog (no
    /// rollouts).
    pub objects: Objects,
    /// The Namespace's time zone annotation, when it has one.
    pub time_zone: Option<String>,
    /// What the reader should know (a Namespace that could not be read for its time
    /// zone).
    pub notes: Vec<String>,
}

/// Reads namespace `namespace`'s objects and the catalog, page by page. The namespace
/// must exist and hold at least one PatchPolicy and one ManagedDevice.
pub async fn read(cluster: &Cluster, namespace: &str) -> Result<Live, FromClusterError> {
    let (time_zone, notes) = time_zone(cluster, namespace).await?;
    let client = &cluster.client;
    let objects = Objects {
        namespace: namespace.to_string(),
        // The simulator starts every device as seen at its start: check-ins do not matter.
        check_ins: Default::default(),
        policies: list(
            cluster,
            namespace,
            "PatchPolicies",
            ns_api::<PatchPolicy>(client, namespace),
        )
        .await?,
        rings: list(
            cluster,
            namespace,
            "DeploymentRings",
            ns_api::<DeploymentRing>(client, namespace),
        )
        .await?,
        exceptions: list(
            cluster,
            namespace,
            "PatchExceptions",
            ns_api::<PatchException>(client, namespace),
        )
        .await?,
        devices: list(
            cluster,
            namespace,
            "ManagedDevices",
            ns_api::<ManagedDevice>(client, namespace),
        )
        .await?,
        rollouts: Vec::new(),
        patches: list(
            cluster,
            namespace,
            "the Patch catalog",
            Api::<Patch>::all(client.clone()),
        )
        .await?,
        approvals: list(
            cluster,
            namespace,
            "PatchApprovals",
            ns_api::<PatchApproval>(client, namespace),
        )
        .await?,
        freezes: list(
            cluster,
            namespace,
            "PatchFreezes",
            ns_api::<PatchFreeze>(client, namespace),
        )
        .await?,
    };
    tracing::debug!(
        namespace,
        policies = objects.policies.len(),
        devices = objects.devices.len(),
        patches = objects.patches.len(),
        "read the preview's baseline from the cluster"
    );
    let (ns, server) = (namespace.to_string(), cluster.server.clone());
    if objects.policies.is_empty() {
        return Err(FromClusterError::NoPolicies {
            namespace: ns,
            server,
        });
    }
    if objects.devices.is_empty() {
        return Err(FromClusterError::NoDevices {
            namespace: ns,
            server,
        });
    }
    Ok(Live {
        objects,
        time_zone,
        notes,
    })
}

fn ns_api<K>(client: &Client, namespace: &str) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    Api::namespaced(client.clone(), namespace)
}

/// Every object of a kind, or the error saying what could not be read.
async fn list<K>(
    cluster: &Cluster,
    namespace: &str,
    what: &'static str,
    api: Api<K>,
) -> Result<Vec<K>, FromClusterError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    list_all(api)
        .await
        .map_err(|e| read_error(&cluster.server, namespace, what, &e))
}

/// The Namespace's time zone annotation. The Namespace must exist; one the reader may not
/// get is a note (the time zone is then `--time-zone`'s, else UTC), not an error.
async fn time_zone(
    cluster: &Cluster,
    namespace: &str,
) -> Result<(Option<String>, Vec<String>), FromClusterError> {
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    match api.get(namespace).await {
        Ok(ns) => Ok((
            ns.metadata
                .annotations
                .and_then(|a| a.get(TIME_ZONE_ANNOTATION).cloned()),
            Vec::new(),
        )),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(FromClusterError::NoNamespace {
            namespace: namespace.to_string(),
            server: cluster.server.clone(),
        }),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok((
            None,
            vec![format!(
                "namespace {namespace} could not be read for its time zone (forbidden): dates are in --time-zone, else UTC"
            )],
        )),
        Err(e) => Err(read_error(&cluster.server, namespace, "the Namespace", &e)),
    }
}

/// A failed read from the API server at `server`: the server's answer when it gave one,
/// else the connection's failure.
fn read_error(
    server: &str,
    namespace: &str,
    what: &'static str,
    e: &kube::Error,
) -> FromClusterError {
    let read = |message: String| FromClusterError::Read {
        what,
        namespace: namespace.to_string(),
        server: server.to_string(),
        message,
    };
    match e {
        kube::Error::Api(s) if s.code == 403 => read(format!(
            "forbidden ({}): the preview needs get and list on PatchPolicies, DeploymentRings, PatchExceptions, ManagedDevices, PatchApprovals, PatchFreezes and Patches, and get on the Namespace",
            s.message
        )),
        kube::Error::Api(s) => read(format!("{} ({})", s.message, s.code)),
        kube::Error::HyperError(_) | kube::Error::Service(_) => FromClusterError::Unreachable {
            server: server.to_string(),
            namespace: namespace.to_string(),
            message: chain(e),
        },
        other => read(chain(other)),
    }
}

/// An error and its causes on one line, each cause once (kube's errors repeat their
/// source in their own message).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: message.into(),
            ..Default::default()
        }))
    }

    #[test]
    fn a_failed_read_says_what_where_and_why() {
        let server = "https://10.0.0.1:6443/";
        let forbidden = read_error(
            server,
            "acme",
            "PatchPolicies",
            &status(403, "patchpolicies is forbidden"),
        );
        assert_eq!(
            forbidden.to_string(),
            "reading PatchPolicies of namespace acme from the cluster at https://10.0.0.1:6443/: forbidden (patchpolicies is forbidden): the preview needs get and list on PatchPolicies, DeploymentRings, PatchExceptions, ManagedDevices, PatchApprovals, PatchFreezes and Patches, and get on the Namespace"
        );
        let failed = read_error(
            server,
            "acme",
            "ManagedDevices",
            &status(500, "etcd timeout"),
        );
        assert_eq!(
            failed.to_string(),
            "reading ManagedDevices of namespace acme from the cluster at https://10.0.0.1:6443/: etcd timeout (500)"
        );
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let gone = read_error(
            server,
            "acme",
            "the Namespace",
            &kube::Error::Service(Box::new(refused)),
        );
        assert!(
            matches!(gone, FromClusterError::Unreachable { .. }),
            "{gone:?}"
        );
        assert_eq!(
            gone.to_string(),
            "cannot reach the cluster at https://10.0.0.1:6443/ to read namespace acme: ServiceError: refused"
        );
    }

    #[test]
    fn a_cause_is_said_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("inner")]
        struct Inner(#[source] std::io::Error);
        let e = Outer(Inner(std::io::Error::other("the root")));
        assert_eq!(chain(&e), "outer: inner: the root");
    }
}
