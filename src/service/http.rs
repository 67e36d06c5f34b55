//! The service's probes: `/healthz`, `/readyz` and `/metrics`.
//!
//! They are unauthenticated on purpose: they reveal no data, only that the process runs,
//! whether it is ready, and the metrics (source and target names, times, sizes, counts).
//! `[service] listen` binds them to loopback by default. The admin API, with
//! authentication, is separate.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::metrics::Metrics;

/// What the probes read.
#[derive(Debug, Default)]
pub struct Shared {
    pub metrics: Metrics,
    /// Set once the state store is open and the scheduler started.
    pub ready: AtomicBool,
}

/// The probes' routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    match shared.metrics.render(chrono::Utc::now()) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt as _;

    async fn get(shared: &Arc<Shared>, path: &str) -> (StatusCode, String) {
        let response = router(shared.clone())
            .oneshot(
                Request::builder()
                    .uri(path)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        let status = response.status();
        let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn probes_answer() {
        let shared = Arc::new(Shared::default());
        assert_eq!(get(&shared, "/healthz").await.0, StatusCode::OK);
        assert_eq!(
            get(&shared, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        shared.ready.store(true, Ordering::Release);
        assert_eq!(get(&shared, "/readyz").await.0, StatusCode::OK);
        shared.metrics.job_started("demo");
        let (status, body) = get(&shared, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("coffre_jobs_running{source=\"demo\"} 1"),
            "{body}"
        );
        assert_eq!(get(&shared, "/nope").await.0, StatusCode::NOT_FOUND);
    }
}
