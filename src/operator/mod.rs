//! The Kubernetes shell around the engine: `ringmaster run`.
//!
//! It watches the nine kinds into reflector stores, and for each namespace (tenant) that
//! changes builds an engine [`Snapshot`](crate::engine::Snapshot), runs
//! [`engine::decide`](crate::engine::decide) and applies what it decided with the fewest
//! writes, then sleeps until the next instant at which time alone changes a decision.
//! Nothing here decides anything: every decision comes from the engine.
//!
//! | module | holds |
//! | --- | --- |
//! | [`stores`] | reflectors for the nine kinds, the snapshot of one namespace, what triggers whom |
//! | [`check_ins`] | the devices' check-in Leases, one instant each, and which renewals trigger a reconcile |
//! | [`queue`] | the work queue: debounce, one reconcile per key at a time, timers, backoff |
//! | [`tenant`] | the reconcilers: one namespace, and the shared Patch catalog |
//! | [`reports`] | closing each namespace's months: its `PatchReport`s and their packets |
//! | [`apply`] | decisions to API writes: merge patches, creations, Events |
//! | [`metrics`] | the Prometheus metrics |
//! | [`health`] | `/healthz`, `/readyz` and `/metrics` |
//! | [`shards`] | `--shards`: which shard a tenant is in, the shard Leases and their balance |
//! | [`run`] | `ringmaster run`: CRD checks, leader election, shards, shutdown |

pub mod apply;
pub mod changes;
pub mod check_ins;
pub mod health;
pub mod index;
pub mod metrics;
pub mod objects;
pub mod pace;
pub mod queue;
pub mod reports;
pub mod run;
pub mod shards;
pub mod stores;
pub mod tenant;

pub use reports::{Clock, ReportConfig};
pub use run::{LogFormat, Operator, OperatorConfig, RunOptions, run};

/// The `reportingController` of the operator's Events and the name of its field manager.
pub const CONTROLLER: &str = "ringmaster.dev/operator";
/// The field manager the operator's patches are recorded under.
pub const FIELD_MANAGER: &str = "ringmaster-operator";

/// The kinds the operator reads and writes, for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    /// PatchPolicy.
    PatchPolicy,
    /// DeploymentRing.
    DeploymentRing,
    /// PatchException.
    PatchException,
    /// ManagedDevice.
    ManagedDevice,
    /// PatchRollout.
    PatchRollout,
    /// Patch (cluster-scoped).
    Patch,
    /// PatchApproval.
    PatchApproval,
    /// PatchFreeze.
    PatchFreeze,
    /// events.k8s.io Event.
    Event,
}

impl ObjectKind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::PatchPolicy => "PatchPolicy",
            ObjectKind::DeploymentRing => "DeploymentRing",
            ObjectKind::PatchException => "PatchException",
            ObjectKind::ManagedDevice => "ManagedDevice",
            ObjectKind::PatchRollout => "PatchRollout",
            ObjectKind::Patch => "Patch",
            ObjectKind::PatchApproval => "PatchApproval",
            ObjectKind::PatchFreeze => "PatchFreeze",
            ObjectKind::Event => "Event",
        }
    }
}

impl From<crate::engine::Kind> for ObjectKind {
    fn from(k: crate::engine::Kind) -> Self {
        use crate::engine::Kind;
        match k {
            Kind::PatchPolicy => ObjectKind::PatchPolicy,
            Kind::DeploymentRing => ObjectKind::DeploymentRing,
            Kind::PatchException => ObjectKind::PatchException,
            Kind::ManagedDevice => ObjectKind::ManagedDevice,
            Kind::PatchRollout => ObjectKind::PatchRollout,
            Kind::PatchApproval => ObjectKind::PatchApproval,
            Kind::PatchFreeze => ObjectKind::PatchFreeze,
        }
    }
}

/// What can go wrong in the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Some writes of a reconcile failed (the others were sent).
    #[error("{failed} of {attempted} write(s) failed; first: {first}")]
    Writes {
        /// How many failed.
        failed: usize,
        /// How many were attempted.
        attempted: u64,
        /// The first failure.
        #[source]
        first: Box<apply::WriteError>,
    },
    /// A value could not be turned into JSON.
    #[error("serializing {what}: {source}")]
    Json {
        /// What was being serialized.
        what: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The decision task panicked or was cancelled.
    #[error("reconcile task failed: {0}")]
    Task(String),
    /// The kube client could not be configured.
    #[error("kubernetes client: {0}")]
    Client(String),
    /// A server (health or metrics) could not start.
    #[error("{what} server on {addr}: {source}")]
    Server {
        /// Which server.
        what: &'static str,
        /// Its address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Leader election failed.
    #[error("leader election: {0}")]
    Lease(String),
    /// A closed month's packet could not be stored (the report says so; it is retried).
    #[error("storing the packet at {location}: {source}")]
    Store {
        /// Where it was to go.
        location: String,
        /// The store's error.
        #[source]
        source: Box<crate::report::store::StoreError>,
    },
    /// A flag's value cannot be used.
    #[error("{0}")]
    Config(String),
    /// The operator was shut down before it got going.
    #[error("shut down before starting")]
    ShutDown,
}

impl Error {
    /// Wraps a client error with what was being done.
    pub fn kube(what: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            what: what.into(),
            source: Box::new(source),
        }
    }
}
