//! The handlers of the admin API's routes (see [`super::routes::ROUTES`] for who may call
//! each; the guard checked it before any of these runs).

use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Api, ApiError, AuditActor, ClientIp, Principal};
use crate::auth::lockout::Lockout;
use crate::auth::roles::{Permission, Role};
use crate::auth::token::{self, TokenKind};
use crate::auth::{password, totp};
use crate::catalog;
use crate::state::{DrillReportId, JobFilter, JobId};

type ApiResult = Result<Response, ApiError>;

/// A JSON object body (serde alone would also take a JSON array for a struct).
struct Body<T>(T);

impl<S, T> axum::extract::FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<Value>::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        if !value.is_object() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the body must be a JSON object",
            ));
        }
        serde_json::from_value(value)
            .map(Body)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
    }
}

/// Every route; paths and methods must match [`super::routes::ROUTES`] (a test checks).
pub(super) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/password", post(change_password))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/sources", get(list_sources))
        .route("/api/v1/backups", get(list_backups))
        .route("/api/v1/sources/{source}/backups", post(trigger_backup))
        .route("/api/v1/jobs", get(list_jobs))
        .route("/api/v1/jobs/{id}", get(show_job).delete(cancel_job))
        .route("/api/v1/backups/{backup}", get(show_backup))
        .route("/api/v1/backups/{backup}/verify", post(verify_backup))
        .route("/api/v1/backups/{backup}/restore", post(restore_backup))
        .route("/api/v1/drills", get(list_drills))
        .route("/api/v1/drills/{id}", get(show_drill))
        .route("/api/v1/sources/{source}/drills", post(trigger_drill))
        .route(
            "/api/v1/sources/{source}/anonymized-copies",
            post(request_anonymized_copy),
        )
        .route("/api/v1/anonymized-copies", get(list_anonymized_copies))
        .route(
            "/api/v1/anonymized-copies/{copy}",
            get(download_anonymized_copy),
        )
        .route("/api/v1/erasures", get(list_erasures).post(record_erasure))
        .route(
            "/api/v1/sources/{source}/erasure-status",
            get(erasure_status),
        )
        .route("/api/v1/audit", get(list_audit))
        .route("/api/v1/audit/verify", get(verify_audit))
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{id}", axum::routing::patch(update_user))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", delete(revoke_token))
}

fn ok(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, Json(body)).into_response())
}

// ---- session ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    name: String,
    password: String,
    totp: Option<String>,
}

async fn login(
    State(api): State<Arc<Api>>,
    Extension(ip): Extension<ClientIp>,
    Body(body): Body<Login>,
) -> Response {
    let mut response = match do_login(&api, &ip.0, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    response
        .extensions_mut()
        .insert(AuditActor(format!("login:{}", body.name)));
    response
}

async fn do_login(api: &Api, ip: &str, body: &Login) -> ApiResult {
    let now = Utc::now();
    let wrong = || ApiError::unauthorized("wrong name, password or TOTP code");
    let user = api
        .state(|s| s.user_by_name(&body.name))
        .map_err(ApiError::internal)?;
    let Some(user) = user.filter(|u| !u.disabled) else {
        // As slow as a real check: the answer does not tell which names exist.
        let _ = tokio::task::spawn_blocking({
            let password = body.password.clone();
            move || password::verify_dummy(&password)
        })
        .await;
        return Err(wrong());
    };
    let failures = api
        .state(|s| s.login_failures(user.id, ip))
        .map_err(ApiError::internal)?;
    if let Some((count, last)) = failures
        && let Some(lock) = Lockout::check(count, last, now)
    {
        let mut e = ApiError::new(
            StatusCode::from_u16(lock.status_code()).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
            lock.describe(),
        );
        e.retry_after = Some(lock.retry_after_secs(now));
        return Err(e);
    }
    let password_ok = tokio::task::spawn_blocking({
        let (password, phc) = (body.password.clone(), user.password_phc.clone());
        move || password::verify(&password, &phc)
    })
    .await
    .unwrap_or(false);
    let role: Role = user.role.parse().map_err(ApiError::internal)?;
    let totp_step = if password_ok && role.requires_totp() {
        let secret = user
            .totp_secret
            .as_deref()
            .and_then(|sealed| super::users::totp_secret(&api.key, sealed));
        match (secret, body.totp.as_deref()) {
            (Some(secret), Some(code)) => {
                let unix = u64::try_from(now.timestamp()).unwrap_or(0);
                totp::verify(&secret, code, unix, user.totp_last_step).ok()
            }
            _ => None,
        }
    } else {
        None
    };
    if !password_ok || (role.requires_totp() && totp_step.is_none()) {
        api.state(|s| s.login_failed(user.id, ip, now))
            .map_err(ApiError::internal)?;
        return Err(wrong());
    }
    api.state(|s| {
        s.login_succeeded(user.id, ip)?;
        if let Some(step) = totp_step {
            s.set_totp_step(user.id, step)?;
        }
        Ok::<_, crate::state::StateError>(())
    })
    .map_err(ApiError::internal)?;
    let (session, _) = token::generate(TokenKind::Session).map_err(ApiError::internal)?;
    let minutes = i64::try_from(api.config.session_minutes).unwrap_or(15);
    let expires_at = now + TimeDelta::minutes(minutes);
    api.state(|s| s.create_session(&token::fingerprint(&session), user.id, now, expires_at, ip))
        .map_err(ApiError::internal)?;
    ok(
        StatusCode::OK,
        json!({
            "token": session,
            "expires_at": expires_at,
            "user": user.name,
            "role": user.role,
            "must_change_password": user.must_change || api.password_expired(&user, now),
        }),
    )
}

async fn logout(State(api): State<Arc<Api>>, Extension(p): Extension<Principal>) -> ApiResult {
    if let Some(fp) = &p.session {
        api.state(|s| s.end_session(fp))
            .map_err(ApiError::internal)?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn me(State(api): State<Arc<Api>>, Extension(p): Extension<Principal>) -> ApiResult {
    let max_age = i64::try_from(api.config.password_max_age_days).unwrap_or(90);
    ok(
        StatusCode::OK,
        json!({
            "user": p.user.name,
            "role": p.role.as_str(),
            "token_id": p.token_id,
            "must_change_password": p.must_change_password,
            "password_expires_at": p.user.password_changed_at + TimeDelta::days(max_age),
            "permissions": p.role.permissions().map(|x| x.as_str()).collect::<Vec<_>>(),
        }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current: String,
    new: String,
}

async fn change_password(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    Body(body): Body<PasswordChange>,
) -> ApiResult {
    let current_ok = tokio::task::spawn_blocking({
        let (password, phc) = (body.current.clone(), p.user.password_phc.clone());
        move || password::verify(&password, &phc)
    })
    .await
    .unwrap_or(false);
    if !current_ok {
        return Err(ApiError::forbidden("the current password is wrong"));
    }
    if body.new == body.current {
        return Err(ApiError::bad_request(
            "the new password must differ from the current one",
        ));
    }
    password::check_policy(&body.new, &p.user.name)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let phc = tokio::task::spawn_blocking(move || password::hash(&body.new))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    api.state(|s| s.set_password(p.user.id, &phc, false, Utc::now()))
        .map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn openapi(State(api): State<Arc<Api>>) -> ApiResult {
    ok(StatusCode::OK, super::openapi::document(&api.config))
}

// ---- sources, backups, jobs, drills ----

async fn list_sources(State(api): State<Arc<Api>>) -> ApiResult {
    let config = &api.env.ctx.config;
    let mut out = Vec::new();
    for (name, source) in &config.sources {
        let last = api
            .state(|s| s.jobs(&JobFilter::default().source(name).limit(1)))
            .map_err(ApiError::internal)?;
        let cached = api
            .state(|s| s.cached_catalog(name))
            .map_err(ApiError::internal)?;
        let next = source
            .schedule()
            .and_then(|_| config.schedule_of(name))
            .and_then(Result::ok)
            .and_then(|s| s.next_after(Utc::now()));
        out.push(json!({
            "name": name,
            "type": source.kind(),
            "targets": source.targets(),
            "schedule": source.schedule(),
            "next_run": next,
            "anonymize": source.anonymize(),
            "rpo_hours": source.rpo_hours(),
            "backups": cached.as_ref().map(|c| json!({
                "count": c.entries.as_array().map_or(0, Vec::len),
                "newest": c.entries.as_array().and_then(|a| a.last()).cloned(),
                "listed_at": c.listed_at,
            })),
            "last_job": last.first().map(|j| json!({
                "id": j.id.0, "kind": j.kind.as_str(), "status": j.status.as_str(),
                "started_at": j.started_at, "finished_at": j.finished_at,
            })),
        }));
    }
    ok(StatusCode::OK, json!({ "sources": out }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceFilter {
    source: Option<String>,
}

async fn list_backups(State(api): State<Arc<Api>>, Query(q): Query<SourceFilter>) -> ApiResult {
    let ctx = &api.env.ctx;
    if let Some(s) = &q.source
        && ctx.config.source(s).is_err()
    {
        return Err(ApiError::not_found(format!("no source {s:?}")));
    }
    let listing = catalog::list(ctx, q.source.as_deref())
        .await
        .map_err(ApiError::internal)?;
    let backups: Vec<Value> = listing
        .entries
        .iter()
        .map(catalog::Entry::summary)
        .collect();
    let unreachable: Vec<&str> = listing
        .unreachable
        .iter()
        .map(|(t, _)| t.as_str())
        .collect();
    ok(
        StatusCode::OK,
        json!({ "backups": backups, "unreachable_targets": unreachable }),
    )
}

fn known_source(api: &Api, source: &str) -> Result<(), ApiError> {
    api.env
        .ctx
        .config
        .source(source)
        .map(|_| ())
        .map_err(|_| ApiError::not_found(format!("no source {source:?}")))
}

/// Starts `task` on the service (under its concurrency limit) and answers 202 with
/// `answer` and where to follow it.
fn start_job(api: &Api, task: crate::service::Task, mut answer: Value) -> ApiResult {
    let env = api.env.clone();
    tokio::spawn(async move { crate::service::run_now(env, task).await });
    answer["accepted"] = json!(true);
    answer["jobs"] = json!("/api/v1/jobs");
    ok(StatusCode::ACCEPTED, answer)
}

async fn trigger_backup(State(api): State<Arc<Api>>, Path(source): Path<String>) -> ApiResult {
    known_source(&api, &source)?;
    let answer = json!({ "source": source, "kind": "backup" });
    start_job(&api, crate::service::Task::Backup(source), answer)
}

async fn trigger_drill(State(api): State<Arc<Api>>, Path(source): Path<String>) -> ApiResult {
    known_source(&api, &source)?;
    let answer = json!({ "source": source, "kind": "drill" });
    start_job(&api, crate::service::Task::Drill(source), answer)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobQuery {
    source: Option<String>,
    limit: Option<usize>,
}

/// A `limit` query parameter: at most [`MAX_LIMIT`].
fn limit(given: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match given {
        Some(n) if n > MAX_LIMIT => {
            Err(ApiError::bad_request(format!("limit: at most {MAX_LIMIT}")))
        }
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

/// The largest page of a list.
const MAX_LIMIT: usize = 10_000;

async fn list_jobs(State(api): State<Arc<Api>>, Query(q): Query<JobQuery>) -> ApiResult {
    let mut filter = JobFilter::default().limit(limit(q.limit, 100)?);
    if let Some(s) = &q.source {
        filter = filter.source(s);
    }
    let jobs = api.state(|s| s.jobs(&filter)).map_err(ApiError::internal)?;
    ok(StatusCode::OK, json!({ "jobs": jobs }))
}

async fn show_job(State(api): State<Arc<Api>>, Path(id): Path<i64>) -> ApiResult {
    let job = api
        .state(|s| s.job(JobId(id)))
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    let progress = api.env.shared.metrics.progress_of(id);
    ok(StatusCode::OK, json!({ "job": job, "progress": progress }))
}

async fn cancel_job(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<i64>,
) -> ApiResult {
    if api.env.cancel(id, &p.actor()) {
        ok(StatusCode::ACCEPTED, json!({ "cancelling": id }))
    } else {
        Err(ApiError::not_found(format!("no running job {id}")))
    }
}

async fn show_backup(State(api): State<Arc<Api>>, Path(backup): Path<String>) -> ApiResult {
    let entry = catalog::find(&api.env.ctx, &backup)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no backup {backup} in any target")))?;
    let manifest = entry
        .manifest()
        .map(|m| serde_json::to_value(m).map_err(ApiError::internal))
        .transpose()?;
    ok(
        StatusCode::OK,
        json!({
            "id": entry.id,
            "source": entry.source,
            "manifest": manifest,
            "copies": entry.copies.iter().map(|c| json!({
                "target": c.target, "status": c.status, "detail": c.detail,
            })).collect::<Vec<_>>(),
        }),
    )
}

/// The source of a backup, or 404.
async fn backup_source(api: &Api, backup: &str) -> Result<String, ApiError> {
    catalog::find(&api.env.ctx, backup)
        .await
        .map_err(ApiError::internal)?
        .map(|e| e.source)
        .ok_or_else(|| ApiError::not_found(format!("no backup {backup} in any target")))
}

async fn verify_backup(State(api): State<Arc<Api>>, Path(backup): Path<String>) -> ApiResult {
    let source = backup_source(&api, &backup).await?;
    let answer = json!({ "backup": backup, "source": source });
    start_job(
        &api,
        crate::service::Task::Verify { source, backup },
        answer,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    to: String,
}

async fn restore_backup(
    State(api): State<Arc<Api>>,
    Path(backup): Path<String>,
    Body(body): Body<RestoreBody>,
) -> ApiResult {
    let source = backup_source(&api, &backup).await?;
    // Checked now, so that a bad destination is a 400, not a failed job.
    crate::pipeline::restore::destination_for(&api.env.ctx, &source, &body.to)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let answer = json!({ "backup": backup, "source": source });
    let task = crate::service::Task::Restore {
        source,
        backup,
        to: body.to,
    };
    start_job(&api, task, answer)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrillQuery {
    source: Option<String>,
    limit: Option<usize>,
}

async fn list_drills(State(api): State<Arc<Api>>, Query(q): Query<DrillQuery>) -> ApiResult {
    let limit = limit(q.limit, 100)?;
    let reports = api
        .state(|s| s.drill_reports(q.source.as_deref(), Some(limit)))
        .map_err(ApiError::internal)?;
    let summary: Vec<Value> = reports
        .iter()
        .map(|r| {
            json!({
                "id": r.id.0, "source": r.source, "target": r.target, "backup_id": r.backup_id,
                "started_at": r.started_at, "ok": r.ok,
                "failure": r.report.get("failure"),
            })
        })
        .collect();
    ok(StatusCode::OK, json!({ "drills": summary }))
}

async fn show_drill(State(api): State<Arc<Api>>, Path(id): Path<i64>) -> ApiResult {
    let report = api
        .state(|s| s.drill_report(DrillReportId(id)))
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no drill report {id}")))?;
    ok(StatusCode::OK, report.report)
}

// ---- anonymized copies ----

async fn request_anonymized_copy(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    Path(source): Path<String>,
) -> ApiResult {
    known_source(&api, &source)?;
    let recipient = p.user.recipient.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "your account has no age recipient: an admin registers one (recipient in POST \
             /api/v1/users); copies are encrypted to it only",
        )
    })?;
    if api.env.ctx.config.encryption.identity_file.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "this appliance has no identity ([encryption] identity_file): it cannot decrypt a \
             backup to make a copy",
        ));
    }
    let answer = json!({ "source": source, "copies": "/api/v1/anonymized-copies" });
    let task = crate::service::Task::AnonymizedCopy {
        source,
        requester: p.user.name.clone(),
        recipient,
    };
    start_job(&api, task, answer)
}

/// The anonymized copies encrypted to the caller's recipient (none without one).
async fn own_copies(api: &Api, p: &Principal) -> Result<Vec<catalog::Entry>, ApiError> {
    let Some(recipient) = p.user.recipient.as_deref() else {
        return Ok(Vec::new());
    };
    let listing = catalog::list(&api.env.ctx, None)
        .await
        .map_err(ApiError::internal)?;
    Ok(listing
        .entries
        .into_iter()
        .filter(|e| {
            e.manifest().is_some_and(|m| {
                m.derived_from.is_some() && m.encryption.recipients.iter().all(|r| r == recipient)
            })
        })
        .collect())
}

async fn list_anonymized_copies(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    let copies: Vec<Value> = own_copies(&api, &p)
        .await?
        .iter()
        .map(|e| {
            let mut v = e.summary();
            v["derived_from"] = json!(e.manifest().and_then(|m| m.derived_from.clone()));
            v["download"] = json!(format!("/api/v1/anonymized-copies/{}", e.id));
            v
        })
        .collect();
    ok(StatusCode::OK, json!({ "copies": copies }))
}

async fn download_anonymized_copy(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    Path(copy): Path<String>,
) -> ApiResult {
    let copies = own_copies(&api, &p).await?;
    let entry = copies
        .iter()
        .find(|e| e.id == copy)
        .ok_or_else(|| ApiError::not_found(format!("no anonymized copy {copy} of yours")))?;
    let (store, key) = entry
        .good_copies()
        .find_map(|c| {
            let store = api.env.ctx.store(&c.target)?;
            Some((
                store,
                crate::manifest::object_key(&entry.source, &entry.id, crate::manifest::DATA_OBJECT),
            ))
        })
        .ok_or_else(|| ApiError::not_found(format!("no whole copy of {copy} in any target")))?;
    let body = store.get(&key).await.map_err(ApiError::internal)?;
    let mut response = axum::body::Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!(
        "attachment; filename=\"{}-{}.sql.zst.age\"",
        entry.source, entry.id
    )) {
        headers.insert(axum::http::header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

// ---- audit ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    after: Option<i64>,
    limit: Option<usize>,
}

// ---- erasures ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EraseBody {
    source: String,
    subject: String,
    reason: Option<String>,
}

fn ledger_error(e: crate::erasure::ledger::LedgerError) -> ApiError {
    use crate::erasure::ledger::LedgerError as L;
    match e {
        L::NoRules(_) | L::Subject(_) | L::Other(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        L::Setup(_) | L::Context(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        L::State(_) => ApiError::internal(e),
    }
}

fn subject_arg(text: &str) -> Result<crate::erasure::ledger::SubjectArg, ApiError> {
    text.parse().map_err(|e: String| ApiError::bad_request(e))
}

async fn record_erasure(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    Body(body): Body<EraseBody>,
) -> ApiResult {
    known_source(&api, &body.source)?;
    let subject = subject_arg(&body.subject)?;
    let recorded = crate::erasure::ledger::record(
        &api.env.ctx,
        &api.env.state,
        &body.source,
        &subject,
        body.reason.as_deref(),
        &format!("user:{}", p.user.name),
    )
    .await
    .map_err(ledger_error)?;
    ok(
        StatusCode::CREATED,
        serde_json::to_value(&recorded).map_err(ApiError::internal)?,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErasureQuery {
    source: Option<String>,
}

async fn list_erasures(State(api): State<Arc<Api>>, Query(q): Query<ErasureQuery>) -> ApiResult {
    let sources = match q.source {
        Some(s) => {
            known_source(&api, &s)?;
            vec![s]
        }
        None => api.env.ctx.source_names(),
    };
    let mut out = Vec::new();
    for source in sources {
        let ledger =
            crate::erasure::ledger::load(&api.env.ctx, Some(&api.env.state), &source, false)
                .await
                .map_err(ledger_error)?;
        out.push(json!({ "source": source, "ledger": ledger }));
    }
    ok(StatusCode::OK, json!({ "sources": out }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusQuery {
    subject: String,
}

async fn erasure_status(
    State(api): State<Arc<Api>>,
    Path(source): Path<String>,
    Query(q): Query<StatusQuery>,
) -> ApiResult {
    known_source(&api, &source)?;
    let subject = subject_arg(&q.subject)?;
    let status = crate::erasure::status::status(&api.env.ctx, &api.env.state, &source, &subject)
        .await
        .map_err(ledger_error)?;
    ok(
        StatusCode::OK,
        serde_json::to_value(&status).map_err(ApiError::internal)?,
    )
}

async fn list_audit(State(api): State<Arc<Api>>, Query(q): Query<AuditQuery>) -> ApiResult {
    let limit = limit(q.limit, 500)?;
    let entries = api
        .state(|s| s.audit_entries(q.after.unwrap_or(0), limit))
        .map_err(ApiError::internal)?;
    ok(StatusCode::OK, json!({ "entries": entries }))
}

async fn verify_audit(State(api): State<Arc<Api>>) -> ApiResult {
    let report = crate::audit::verify_all(&api.env.ctx, &api.env.state)
        .await
        .map_err(ApiError::internal)?;
    ok(
        StatusCode::OK,
        serde_json::to_value(report).map_err(ApiError::internal)?,
    )
}

// ---- users and tokens ----

async fn list_users(State(api): State<Arc<Api>>) -> ApiResult {
    let users = api.state(|s| s.users()).map_err(ApiError::internal)?;
    let out: Vec<Value> = users
        .iter()
        .map(|u| {
            json!({
                "id": u.id, "name": u.name, "role": u.role, "disabled": u.disabled,
                "must_change_password": u.must_change, "totp": u.totp_secret.is_some(),
                "recipient": u.recipient, "created_at": u.created_at,
                "password_changed_at": u.password_changed_at,
            })
        })
        .collect();
    ok(StatusCode::OK, json!({ "users": out }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    name: String,
    role: String,
    /// The age recipient anonymized copies for this user are encrypted to (support).
    recipient: Option<String>,
}

async fn create_user(State(api): State<Arc<Api>>, Body(body): Body<NewUserBody>) -> ApiResult {
    let role: Role = body
        .role
        .parse()
        .map_err(|e: crate::auth::roles::UnknownRole| ApiError::bad_request(e.to_string()))?;
    let name_ok = !body.name.is_empty()
        && body.name.len() <= 64
        && body
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !name_ok {
        return Err(ApiError::bad_request(
            "name: 1 to 64 letters, digits, '.', '_', '-' or '@'",
        ));
    }
    if let Some(r) = &body.recipient
        && r.parse::<age::x25519::Recipient>().is_err()
    {
        return Err(ApiError::bad_request(
            "recipient: not an age recipient (age1…)",
        ));
    }
    // The state store runs off the async threads (block_in_place), argon2 with it.
    let created = api
        .state(|s| {
            super::users::create(
                s,
                &api.key,
                &body.name,
                role,
                body.recipient.as_deref(),
                None,
            )
        })
        .map_err(|e| match e {
            super::users::UserError::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            super::users::UserError::Policy(_) => ApiError::bad_request(e.to_string()),
            super::users::UserError::Other(_) => ApiError::internal(e),
        })?;
    ok(
        StatusCode::CREATED,
        serde_json::to_value(created).map_err(ApiError::internal)?,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChange {
    disabled: Option<bool>,
    role: Option<String>,
    /// `Some(None)`: clear it.
    #[serde(default, with = "serde_with_double_option")]
    recipient: Option<Option<String>>,
}

/// `Option<Option<T>>` that tells an absent field (`None`) from a null one (`Some(None)`).
mod serde_with_double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

async fn update_user(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<i64>,
    Body(body): Body<UserChange>,
) -> ApiResult {
    if id == p.user.id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "one's own account is changed by another admin, so that no admin locks \
             themselves out",
        ));
    }
    let user = api
        .state(|s| s.user_by_id(id))
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no user {id}")))?;
    let role = body
        .role
        .as_deref()
        .map(|r| {
            r.parse::<Role>()
                .map_err(|e| ApiError::bad_request(e.to_string()))
        })
        .transpose()?;
    if let Some(Some(r)) = &body.recipient
        && r.parse::<age::x25519::Recipient>().is_err()
    {
        return Err(ApiError::bad_request(
            "recipient: not an age recipient (age1…)",
        ));
    }
    api.state(|s| {
        if let Some(disabled) = body.disabled {
            s.set_disabled(id, disabled)?;
        }
        if let Some(role) = role {
            s.set_role(id, role.as_str())?;
        }
        if let Some(recipient) = &body.recipient {
            s.set_recipient(id, recipient.as_deref())?;
        }
        Ok::<_, crate::state::StateError>(())
    })
    .map_err(ApiError::internal)?;
    // A new admin or operator needs a TOTP secret to log in.
    let mut totp_uri = None;
    if let Some(role) = role
        && role.requires_totp()
        && user.totp_secret.is_none()
    {
        let created = super::users::add_totp(&api, id, &user.name)?;
        totp_uri = Some(created);
    }
    let after = api
        .state(|s| s.user_by_id(id))
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no user {id}")))?;
    ok(
        StatusCode::OK,
        json!({
            "id": after.id, "name": after.name, "role": after.role,
            "disabled": after.disabled, "recipient": after.recipient,
            "totp_uri": totp_uri.as_ref().map(|t: &(String, String)| t.0.clone()),
            "totp_secret": totp_uri.map(|t| t.1),
        }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    role: Option<String>,
    days: Option<u64>,
}

async fn create_token(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    Body(body): Body<NewToken>,
) -> ApiResult {
    let role = match &body.role {
        None => p.role,
        Some(r) => r
            .parse::<Role>()
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    if !role.permissions().all(|x| p.role.can(x)) {
        return Err(ApiError::forbidden(format!(
            "a token's role cannot be wider than yours ({})",
            p.role.as_str()
        )));
    }
    let days = body.days.unwrap_or(api.config.token_max_days);
    if days == 0 || days > api.config.token_max_days {
        return Err(ApiError::bad_request(format!(
            "days: 1 to {} ([api] token_max_days)",
            api.config.token_max_days
        )));
    }
    if body.name.is_empty() || body.name.len() > 100 {
        return Err(ApiError::bad_request("name: 1 to 100 characters"));
    }
    let now = Utc::now();
    let expires_at = now + TimeDelta::days(i64::try_from(days).unwrap_or(1));
    let (secret, _) = token::generate(TokenKind::Api).map_err(ApiError::internal)?;
    let id = api
        .state(|s| {
            s.create_token(
                &token::fingerprint(&secret),
                p.user.id,
                &body.name,
                role.as_str(),
                now,
                expires_at,
            )
        })
        .map_err(ApiError::internal)?;
    ok(
        StatusCode::CREATED,
        json!({
            "id": id, "name": body.name, "role": role.as_str(), "expires_at": expires_at,
            "token": secret,
            "note": "shown once: coffre keeps only its SHA-256",
        }),
    )
}

async fn list_tokens(State(api): State<Arc<Api>>, Extension(p): Extension<Principal>) -> ApiResult {
    let all = p.role.can(Permission::ManageAllTokens);
    let tokens = api
        .state(|s| s.tokens((!all).then_some(p.user.id)))
        .map_err(ApiError::internal)?;
    let out: Vec<Value> = tokens
        .iter()
        .map(|t| {
            json!({
                "id": t.id, "user_id": t.user_id, "name": t.name, "role": t.role,
                "created_at": t.created_at, "expires_at": t.expires_at,
                "revoked_at": t.revoked_at, "last_used": t.last_used,
            })
        })
        .collect();
    ok(StatusCode::OK, json!({ "tokens": out }))
}

async fn revoke_token(
    State(api): State<Arc<Api>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<i64>,
) -> ApiResult {
    let all = p.role.can(Permission::ManageAllTokens);
    let tokens = api
        .state(|s| s.tokens((!all).then_some(p.user.id)))
        .map_err(ApiError::internal)?;
    if !tokens.iter().any(|t| t.id == id) {
        return Err(ApiError::not_found(format!("no token {id} of yours")));
    }
    let revoked = api
        .state(|s| s.revoke_token(id, Utc::now()))
        .map_err(ApiError::internal)?;
    if !revoked {
        return Err(ApiError::not_found(format!(
            "token {id} is already revoked"
        )));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
