//! Every route of the admin API in one table: its method and path, who may call it, and
//! what it does. The router, the permission check, the audit log's action names, the
//! OpenAPI document and the route × role test all read this table, so none of them can
//! drift from the others.

use axum::http::Method;

use crate::auth::roles::Permission;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (only the login).
    Public,
    /// Any authenticated caller, whatever the role (their own session, password, tokens).
    Authenticated,
    /// Callers whose role has this permission.
    Needs(Permission),
}

/// One route.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    /// axum's syntax: `/api/v1/jobs/{id}`.
    pub path: &'static str,
    pub access: Access,
    /// The OpenAPI operationId, also the audit log's action.
    pub operation: &'static str,
    pub summary: &'static str,
    /// Success status.
    pub status: u16,
    /// Whether it takes a JSON body.
    pub body: bool,
}

const fn route(
    method: Method,
    path: &'static str,
    access: Access,
    operation: &'static str,
    summary: &'static str,
    status: u16,
    body: bool,
) -> Route {
    Route {
        method,
        path,
        access,
        operation,
        summary,
        status,
        body,
    }
}

use Access::{Authenticated, Needs, Public};
use Permission as P;

/// The API, in the order of the OpenAPI document.
pub const ROUTES: &[Route] = &[
    route(
        Method::POST,
        "/api/v1/login",
        Public,
        "login",
        "Log in: name, password and (admin, operator) TOTP code; returns a session token",
        200,
        true,
    ),
    route(
        Method::POST,
        "/api/v1/logout",
        Authenticated,
        "logout",
        "End this session",
        204,
        false,
    ),
    route(
        Method::GET,
        "/api/v1/me",
        Authenticated,
        "me",
        "Who is calling: user, role, token, password expiry",
        200,
        false,
    ),
    route(
        Method::POST,
        "/api/v1/password",
        Authenticated,
        "change_password",
        "Change one's password (required first after a temporary or expired one)",
        204,
        true,
    ),
    route(
        Method::GET,
        "/api/v1/openapi.json",
        Authenticated,
        "openapi",
        "This document",
        200,
        false,
    ),
    route(
        Method::GET,
        "/api/v1/sources",
        Needs(P::ReadSources),
        "list_sources",
        "Sources with their type, schedule, targets and last job",
        200,
        false,
    ),
    route(
        Method::GET,
        "/api/v1/backups",
        Needs(P::ReadBackups),
        "list_backups",
        "Backups as the stores hold them (metadata only), optionally of one source",
        200,
        false,
    ),
    route(
        Method::GET,
        "/api/v1/backups/{backup}",
        Needs(P::ReadBackups),
        "show_backup",
        "One backup: its authenticated manifest (tables with row counts and checksums, objects, times) and the state of each copy",
        200,
        false,
    ),
    route(
        Method::POST,
        "/api/v1/sources/{source}/backups",
        Needs(P::TriggerBackup),
        "trigger_backup",
        "Start a backup of a source now",
        202,
        false,
    ),
    route(
        Method::POST,
        "/api/v1/backups/{backup}/verify",
        Needs(P::VerifyBackup),
        "verify_backup",
        "Re-read every copy of a backup against its manifest (size, SHA-256), as a job",
        202,
        false,
    ),
    route(
        Method::POST,
        "/api/v1/backups/{backup}/restore",
        Needs(P::Restore),
        "restore_backup",
        "Restore a backup into an empty database ({\"to\": \"postgres://…\"}, no password in it), as a job",
        202,
        true,
    ),
    route(
        Method::GET,
        "/api/v1/jobs",
        Needs(P::ReadJobs),
        "list_jobs",
        "Job history, newest first",
        200,
        false,
    ),
    route(
        Method::GET,
        "/api/v1/jobs/{id}",
        Needs(P::ReadJobs),
        "show_job",
        "One job, with its live progress while it runs",
        200,
        false,
    ),
    route(
        Method::DELETE,
        "/api/v1/jobs/{id}",
        Needs(P::CancelJob),
        "cancel_job",
        "Cancel a running job (its uploads are abandoned; nothing partial is listed)",
        202,
        false,
    ),
    route(
        Method::GET,
        "/api/v1/drills",
        Needs(P::ReadDrills),
        "list_drills",
        "Drill reports, newest first",
        200,
        false,
    ),
    route(
        Method::GET,
        "/api/v1/drills/{id}",
        Needs(P::ReadDrills),
        "show_drill",
        "One sealed drill report",
        200,
        false,
    ),
    route(
        Method::POST,
        "/api/v1/sources/{source}/drills",
        Needs(P::TriggerDrill),
        "trigger_drill",
        "Start a restore drill of a source now",
        202,
        false,
    ),
    route(
        Method::POST,
        "/api/v1/sources/{source}/anonymized-copies",
        Needs(P::RequestAnonymizedCopy),
        "request_anonymized_copy",
        "Ask for an anonymized copy of the source's newest full backup, encrypted to one's own age recipient only",
        202,
        false,
    ),
    route(
        Method::GET,
        "/api/v1/anonymized-copies",
        Needs(P::DownloadAnonymizedCopy),
        "list_anonymized_copies",
        "One's anonymized copies (those encrypted to one's recipient)",
        200,
        false,
    ),
    route(
        Method::GET,
        "/api/v1/anonymized-copies/{copy}",
        Needs(P::DownloadAnonymizedCopy),
        "download_anonymized_copy",
        "Download one of one's anonymized copies (age-encrypted, zstd SQL): only one's own key decrypts it",
        200,
        false,
    ),
    route(
        Method::POST,
        "/api/v1/erasures",
        Needs(P::RecordErasure),
        "record_erasure",
        "Record an erasure request ({\"source\", \"subject\": \"clients.id=42\", \"reason\"}): every restore, drill and anonymized copy re-applies it",
        201,
        true,
    ),
    route(
        Method::GET,
        "/api/v1/erasures",
        Needs(P::ReadErasures),
        "list_erasures",
        "The erasure ledger (state store and stores merged), optionally of one source",
        200,
        false,
    ),
    route(
        Method::GET,
        "/api/v1/sources/{source}/erasure-status",
        Needs(P::ReadErasures),
        "erasure_status",
        "Which backups of a source still hold a subject (?subject=clients.id=42), each with its expiry under the retention",
        200,
        false,
    ),
    route(
        Method::GET,
        "/api/v1/audit",
        Needs(P::ReadAudit),
        "list_audit",
        "Audit log entries after an id, oldest first",
        200,
        false,
    ),
    route(
        Method::GET,
        "/api/v1/audit/verify",
        Needs(P::VerifyAudit),
        "verify_audit",
        "Check the audit chain and its head kept in the stores",
        200,
        false,
    ),
    route(
        Method::GET,
        "/api/v1/users",
        Needs(P::ManageUsers),
        "list_users",
        "Users and their roles",
        200,
        false,
    ),
    route(
        Method::POST,
        "/api/v1/users",
        Needs(P::ManageUsers),
        "create_user",
        "Create a user with a temporary password (and a TOTP secret for admin and operator)",
        201,
        true,
    ),
    route(
        Method::PATCH,
        "/api/v1/users/{id}",
        Needs(P::ManageUsers),
        "update_user",
        "Disable or enable a user, change their role or their age recipient (not one's own account)",
        200,
        true,
    ),
    route(
        Method::GET,
        "/api/v1/tokens",
        Needs(P::ManageTokens),
        "list_tokens",
        "One's API tokens (every token for admins)",
        200,
        false,
    ),
    route(
        Method::POST,
        "/api/v1/tokens",
        Needs(P::ManageTokens),
        "create_token",
        "Create an API token (shown once) with a role no wider than one's own",
        201,
        true,
    ),
    route(
        Method::DELETE,
        "/api/v1/tokens/{id}",
        Needs(P::ManageTokens),
        "revoke_token",
        "Revoke an API token (one's own; any for admins)",
        204,
        false,
    ),
];

/// The route for a method and a matched path template.
pub fn find(method: &Method, path: &str) -> Option<&'static Route> {
    ROUTES
        .iter()
        .find(|r| r.method == *method && r.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_unique_and_only_the_login_is_public() {
        for (i, r) in ROUTES.iter().enumerate() {
            assert!(r.path.starts_with("/api/v1/"), "{r:?}");
            assert!(
                !ROUTES[..i]
                    .iter()
                    .any(|o| o.method == r.method && o.path == r.path),
                "{r:?} twice"
            );
            assert!(
                !ROUTES[..i].iter().any(|o| o.operation == r.operation),
                "{r:?}"
            );
        }
        let public: Vec<&str> = ROUTES
            .iter()
            .filter(|r| r.access == Public)
            .map(|r| r.path)
            .collect();
        assert_eq!(public, ["/api/v1/login"]);
    }
}
