//! The operator's HTTP endpoints: `/healthz` (liveness) and `/readyz` (readiness) on the
//! health address, `/metrics` on the metrics address (one server when both are the same).
//!
//! Readiness means "the CRDs are established, every store has synced, and the API server
//! answered the last check" ([`check_api`] asks for `/version` every
//! [`API_CHECK_EVERY`]): a watch that resumes after an outage yields no event, so only
//! an active request tells that the API server is gone and back. It does not depend on
//! holding the leader lease or a shard: a follower keeps its stores warm and is ready to
//! take over, so a Deployment of several replicas becomes available. Liveness
//! (`/healthz`) depends on none of it, so that the kubelet does not restart a pod
//! because the API server is down.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::Client;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::Error;
use super::metrics::Metrics;

/// How often [`check_api`] asks the API server for `/version`.
pub const API_CHECK_EVERY: Duration = Duration::from_secs(2);
/// How long it waits for an answer.
pub const API_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the operator is not ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotReady {
    /// The CRDs are not established or a store has not synced yet.
    Syncing,
    /// The last check of the API server failed (its error).
    ApiUnreachable(String),
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Syncing => {
                write!(f, "waiting for the CRDs and the first sync of every store")
            }
            NotReady::ApiUnreachable(e) => write!(f, "the API server is unreachable: {e}"),
        }
    }
}

/// The readiness of an operator: its stores' sync and the last check of the API server.
#[derive(Debug, Default)]
pub struct Readiness {
    synced: AtomicBool,
    api_error: Mutex<Option<String>>,
}

impl Readiness {
    /// Whether the operator is ready.
    pub fn is_ready(&self) -> bool {
        self.why_not().is_none()
    }

    /// Why it is not ready (None: it is).
    pub fn why_not(&self) -> Option<NotReady> {
        if let Ok(e) = self.api_error.lock()
            && let Some(e) = e.as_ref()
        {
            return Some(NotReady::ApiUnreachable(e.clone()));
        }
        (!self.synced.load(Ordering::Relaxed)).then_some(NotReady::Syncing)
    }

    /// Whether every store has synced (whatever the API server's last check said).
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }

    /// Records whether every store has synced.
    pub fn set_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::Relaxed);
    }

    /// Records a check of the API server: None when it answered, else why not.
    pub fn set_api(&self, error: Option<String>) {
        if let Ok(mut e) = self.api_error.lock() {
            *e = error;
        }
    }
}

/// Asks the API server for `/version` every [`API_CHECK_EVERY`] (with a
/// [`API_CHECK_TIMEOUT`]) and records the answer in `readiness`, logging each change;
/// runs until dropped.
pub async fn check_api(client: Client, readiness: Arc<Readiness>) {
    let mut reachable = true;
    loop {
        let answer = tokio::time::timeout(API_CHECK_TIMEOUT, client.apiserver_version()).await;
        let error = match answer {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!(
                "no answer to /version within {API_CHECK_TIMEOUT:?}"
            )),
        };
        match (&error, reachable) {
            (Some(e), true) => warn!(error = %e, "the API server is unreachable: not ready"),
            (None, false) => info!("the API server answers again"),
            _ => {}
        }
        reachable = error.is_none();
        readiness.set_api(error);
        tokio::time::sleep(API_CHECK_EVERY).await;
    }
}

/// What the endpoints read.
#[derive(Clone)]
pub struct Health {
    /// The operator's readiness.
    pub ready: Arc<Readiness>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(h): State<Health>) -> Response {
    match h.ready.why_not() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(h): State<Health>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.encode(),
    )
        .into_response()
}

/// The routes of the health server.
pub fn health_routes() -> Router<Health> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The routes of the metrics server.
pub fn metrics_routes() -> Router<Health> {
    Router::new().route("/metrics", get(metrics))
}

/// Binds both addresses and serves until `shutdown` turns true.
pub async fn serve(
    health_addr: SocketAddr,
    metrics_addr: SocketAddr,
    state: Health,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, Error> {
    let mut servers = Vec::new();
    if health_addr == metrics_addr {
        let app = health_routes().merge(metrics_routes()).with_state(state);
        servers.push(spawn("health and metrics", health_addr, app, shutdown).await?);
    } else {
        let health = health_routes().with_state(state.clone());
        let metrics = metrics_routes().with_state(state);
        servers.push(spawn("health", health_addr, health, shutdown.clone()).await?);
        servers.push(spawn("metrics", metrics_addr, metrics, shutdown).await?);
    }
    Ok(servers)
}

async fn spawn(
    what: &'static str,
    addr: SocketAddr,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Server { what, addr, source })?;
    info!(server = what, %addr, "listening");
    Ok(tokio::spawn(async move {
        let stop = async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            error!(server = what, error = %e, "server failed");
        }
    }))
}
