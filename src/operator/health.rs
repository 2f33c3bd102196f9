//! The operator's HTTP endpoints: `/healthz` (liveness) and `/readyz` (readiness) on the
//! health address, `/metrics` on the metrics address (one server when both are the same).
//!
//! Readiness means "the CRDs are established and every store has synced". It does not
//! depend on holding the leader lease: a follower keeps its stores warm and is ready to
//! take over, so a Deployment of several replicas becomes available.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};

use super::Error;
use super::metrics::Metrics;

/// What the endpoints read.
#[derive(Clone)]
pub struct Health {
    /// Set once the CRDs are established and the stores have synced.
    pub ready: Arc<AtomicBool>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(h): State<Health>) -> Response {
    if h.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: waiting for the CRDs and the first sync of every store\n",
        )
            .into_response()
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
