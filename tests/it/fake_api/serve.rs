//! The fake API server over HTTP on a local port, so a test can run the `ringmaster`
//! binary against it through a kubeconfig. Requests are answered by [`Fake::handle`], as
//! its in-process clients' are; watches are not served.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::body::Body;
use http::{Request, Response, StatusCode, header};
use tokio::sync::oneshot;

use super::{Fake, Reply};

/// The fake, listening on 127.0.0.1 until dropped.
pub struct Served {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    /// The API server's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves `fake` on a free local port, from a thread of its own.
pub fn serve(fake: &Fake) -> Served {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a local port");
    listener.set_nonblocking(true).expect("non-blocking");
    let addr = listener.local_addr().expect("its address");
    let (stop, stopped) = oneshot::channel::<()>();
    let fake = fake.clone();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
                let fake = fake.clone();
                async move { answer(&fake, request).await }
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("the fake serves");
        });
    });
    Served {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    }
}

/// One request, answered by the fake.
async fn answer(fake: &Fake, request: axum::extract::Request) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("a request body");
    let request = Request::from_parts(parts, kube::client::Body::from(bytes.to_vec()));
    let (code, body) = match fake.handle(request).await {
        Reply::Json(code, v) => (code, serde_json::to_vec(&v).expect("json")),
        Reply::Watch(_) => (StatusCode::NOT_IMPLEMENTED, b"{}".to_vec()),
    };
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("a response")
}

/// Writes a kubeconfig at `path` with one context per `(name, server URL)`, the first
/// current, no credentials.
pub fn kubeconfig(path: &Path, contexts: &[(&str, &str)]) -> PathBuf {
    let clusters: Vec<serde_json::Value> = contexts
        .iter()
        .map(|(name, url)| serde_json::json!({"name": name, "cluster": {"server": url}}))
        .collect();
    let named: Vec<serde_json::Value> = contexts
        .iter()
        .map(|(name, _)| {
            serde_json::json!({"name": name, "context": {"cluster": name, "user": "tester"}})
        })
        .collect();
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": clusters,
        "users": [{"name": "tester", "user": {}}],
        "contexts": named,
        "current-context": contexts.first().map(|(n, _)| *n).unwrap_or_default(),
    });
    std::fs::write(path, serde_yaml::to_string(&doc).expect("yaml")).expect("write kubeconfig");
    path.to_path_buf()
}
