//! The admin API (`/api/v1`, served by `coffre serve` on `[api] listen`): users with
//! roles and least privilege, argon2id passwords, TOTP for admin and operator, session
//! and API tokens stored as fingerprints, and every call in the tamper-evident audit log.
//!
//! One middleware ([`guard`]) runs around every route: it finds the route in
//! [`routes::ROUTES`], authenticates the bearer token (a session from `POST /login`, or an
//! API token), refuses a disabled user, sends a user whose password is temporary or
//! expired to `POST /password`, checks the role's permission, bounds the request's time,
//! sets security headers, and appends who, what, from where and the outcome to the audit
//! log. Request bodies are limited to 64 KiB; no CORS header is ever sent, so browsers
//! refuse cross-origin calls. With `tls_cert` and `tls_key` the API speaks HTTPS (rustls,
//! with HSTS); without, plain HTTP on loopback only (or behind a TLS-terminating proxy
//! with `allow_plain_http`).

mod handlers;
pub mod openapi;
pub mod routes;
pub mod seal;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::auth::roles::Role;
use crate::auth::token::{self, TokenKind};
use crate::config::ApiConfig;
use crate::integrity::IntegrityKey;
use crate::service::Env;
use crate::state::{NewAuditEntry, UserRecord};
use routes::{Access, ROUTES};

/// Largest request body.
const MAX_BODY: usize = 64 << 10;
/// Longest a request may take (triggered jobs run on their own, after the answer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler shares.
pub struct Api {
    pub(crate) env: Arc<Env>,
    pub(crate) key: IntegrityKey,
    pub(crate) config: ApiConfig,
}

impl Api {
    fn https(&self) -> bool {
        self.config.tls_cert.is_some()
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: UserRecord,
    /// The role in force: the user's, or the API token's (never wider).
    pub role: Role,
    /// Set for API tokens: its id.
    pub token_id: Option<i64>,
    /// The session token's fingerprint, for logout.
    pub session: Option<String>,
    /// Password temporary or expired: only `/password`, `/me` and `/logout` answer.
    pub must_change_password: bool,
}

impl Principal {
    /// How the audit log names the caller.
    pub fn actor(&self) -> String {
        match self.token_id {
            Some(id) => format!("token:{id}(user:{})", self.user.name),
            None => format!("user:{}", self.user.name),
        }
    }
}

/// An API error: a status and a message for the caller (never a secret).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "API request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error: see the service's log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(json!({ "error": self.message, "status": self.status.as_u16() })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"coffre\""),
            );
        }
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl Api {
    /// Runs `f` on the state store.
    pub(crate) fn state<T>(&self, f: impl FnOnce(&crate::state::State) -> T) -> T {
        self.env.state(f)
    }

    /// Appends to the audit log (a failure is logged: it never hides the answer).
    pub(crate) fn audit(&self, entry: NewAuditEntry) {
        if let Err(e) = self.state(|s| crate::audit::record(s, &entry)) {
            tracing::error!(error = %e, "cannot append to the audit log");
        }
    }

    /// Whether `user`'s password is too old.
    pub(crate) fn password_expired(&self, user: &UserRecord, now: DateTime<Utc>) -> bool {
        let max_age = chrono::TimeDelta::days(
            i64::try_from(self.config.password_max_age_days).unwrap_or(i64::MAX / 86_400_000),
        );
        now - user.password_changed_at > max_age
    }

    /// The caller of a bearer token, if it is live.
    fn authenticate(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Result<Principal, ApiError> {
        let missing = || {
            ApiError::unauthorized(
                "authentication required: send Authorization: Bearer <token> (POST /api/v1/login \
                 gives a session token)",
            )
        };
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(missing)?;
        let bearer = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(missing)?
            .trim();
        let invalid = || ApiError::unauthorized("the token is invalid, expired or revoked");
        let kind = token::parse(bearer).ok_or_else(invalid)?;
        let fingerprint = token::fingerprint(bearer);
        let (user_id, token_role, token_id, session) = match kind {
            TokenKind::Session => {
                let user = self
                    .state(|s| s.session_user(&fingerprint, now))
                    .map_err(ApiError::internal)?
                    .ok_or_else(invalid)?;
                (user, None, None, Some(fingerprint))
            }
            TokenKind::Api => {
                let t = self
                    .state(|s| s.use_token(&fingerprint, now))
                    .map_err(ApiError::internal)?
                    .ok_or_else(invalid)?;
                (t.user_id, Some(t.role), Some(t.id), None)
            }
        };
        let user = self
            .state(|s| s.user_by_id(user_id))
            .map_err(ApiError::internal)?
            .filter(|u| !u.disabled)
            .ok_or_else(invalid)?;
        let user_role: Role = user.role.parse().map_err(ApiError::internal)?;
        let role = match token_role {
            None => user_role,
            Some(r) => {
                let r: Role = r.parse().map_err(ApiError::internal)?;
                // A token never outgrows its owner, even after the owner was demoted.
                if r.permissions().all(|p| user_role.can(p)) {
                    r
                } else {
                    user_role
                }
            }
        };
        let must_change_password =
            token_id.is_none() && (user.must_change || self.password_expired(&user, now));
        Ok(Principal {
            user,
            role,
            token_id,
            session,
            must_change_password,
        })
    }
}

/// The router of `/api/v1`, every route behind [`guard`].
pub fn router(api: Arc<Api>) -> Router {
    handlers::routes()
        .layer(axum::middleware::from_fn_with_state(api.clone(), guard))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

/// Authentication, permission, time limit, security headers and the audit log.
async fn guard(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let now = Utc::now();
    let method = request.method().clone();
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let route = template.as_deref().and_then(|t| routes::find(&method, t));
    let ip = peer.ip().to_string();
    let target = request.uri().path().to_owned();
    let action = route.map_or_else(|| format!("{method} {target}"), |r| r.operation.to_owned());

    let access = route.map_or(Access::Authenticated, |r| r.access);
    let principal = match access {
        Access::Public => None,
        _ => match api.authenticate(request.headers(), now) {
            Ok(p) => Some(p),
            Err(e) => {
                return finish(
                    &api,
                    now,
                    "anonymous",
                    &ip,
                    &action,
                    &target,
                    e.into_response(),
                );
            }
        },
    };
    let actor = principal
        .as_ref()
        .map_or_else(|| "anonymous".to_owned(), Principal::actor);
    if let Some(p) = &principal {
        let allowed_while_changing = matches!(
            route.map(|r| r.operation),
            Some("change_password" | "me" | "logout")
        );
        if p.must_change_password && !allowed_while_changing {
            let e = ApiError::forbidden(
                "your password is temporary or has expired: change it first with POST \
                 /api/v1/password",
            );
            return finish(&api, now, &actor, &ip, &action, &target, e.into_response());
        }
        if let Access::Needs(permission) = access
            && !p.role.can(permission)
        {
            let e = ApiError::forbidden(format!(
                "role {} may not {}",
                p.role.as_str(),
                permission.description()
            ));
            return finish(&api, now, &actor, &ip, &action, &target, e.into_response());
        }
        request.extensions_mut().insert(p.clone());
    }
    request.extensions_mut().insert(ClientIp(ip.clone()));
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the request took too long and was stopped",
        )
        .into_response(),
    };
    // The login names its own actor (the name tried) in its audit entry.
    let actor = response
        .extensions()
        .get::<AuditActor>()
        .map_or(actor, |a| a.0.clone());
    let response = json_errors(response).await;
    finish(&api, now, &actor, &ip, &action, &target, response)
}

/// axum's own rejections (a path, query or body that does not parse) answer in plain
/// text: they are rewritten as the API's JSON errors.
async fn json_errors(response: Response) -> Response {
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !(response.status().is_client_error() && plain) {
        return response;
    }
    let status = response.status();
    let text = match axum::body::to_bytes(response.into_body(), MAX_BODY).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    ApiError::new(status, text).into_response()
}

/// The caller's address, for handlers.
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

/// Set by a handler on its response to name the actor of a public call (the login).
#[derive(Debug, Clone)]
pub struct AuditActor(pub String);

/// Records the call and adds the security headers.
fn finish(
    api: &Api,
    now: DateTime<Utc>,
    actor: &str,
    ip: &str,
    action: &str,
    target: &str,
    mut response: Response,
) -> Response {
    let status = response.status();
    let outcome = if status.is_success() {
        "ok"
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        "denied"
    } else {
        "failed"
    };
    api.audit(NewAuditEntry {
        time: now,
        actor: actor.to_owned(),
        ip: ip.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        outcome: outcome.to_owned(),
        details: json!({ "status": status.as_u16() }),
    });
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if api.https() {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// The TLS settings of `[api]`, read before serving so that a bad certificate stops the
/// start-up with its file named.
pub async fn tls(
    config: &ApiConfig,
) -> Result<Option<axum_server::tls_rustls::RustlsConfig>, String> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    // One crypto provider for the process (aws-lc-rs, as the S3 client uses).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
        .await
        .map(Some)
        .map_err(|e| {
            format!(
                "cannot load tls_cert {} and tls_key {}: {e} (PEM certificate chain and its \
                 private key expected)",
                cert.display(),
                key.display()
            )
        })
}

/// Serves the API on `[api] listen` (HTTPS with `tls`) until `stop` says so.
pub async fn serve(
    api: Arc<Api>,
    listener: tokio::net::TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let app = router(api).into_make_service_with_connect_info::<SocketAddr>();
    let result = match tls {
        None => {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(tls) => {
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                let _ = stop.wait_for(|s| *s).await;
                stopper.graceful_shutdown(Some(Duration::from_secs(5)));
            });
            match listener.into_std() {
                Ok(std) => {
                    axum_server::from_tcp_rustls(std, tls)
                        .handle(handle)
                        .serve(app)
                        .await
                }
                Err(e) => Err(e),
            }
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "the admin API stopped");
    }
}

/// Every route's path, for the sync test of the OpenAPI document.
pub fn paths() -> impl Iterator<Item = (&'static axum::http::Method, &'static str)> {
    ROUTES.iter().map(|r| (&r.method, r.path))
}
