//! The jobs `coffre serve` runs on its schedules — backups, drills, prune and heal — each
//! recorded in the state store when it starts and ends, counted in the metrics, its
//! progress visible while it runs, and alerted on when it fails; and the RPO watch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::watch;

use super::Env;
use super::alerts::{Alert, Event};
use crate::catalog;
use crate::config::ConfigError;
use crate::drill::{self, DrillOptions};
use crate::pipeline::Context;
use crate::pipeline::backup::{BackupError, BackupOptions, BackupStatus, run_backup};
use crate::pipeline::heal::{HealOptions, run_heal};
use crate::pipeline::lock::{LockError, SourceLock};
use crate::pipeline::prune::run_prune;
use crate::progress::Progress;
use crate::state::{JobEnd, JobId, JobKind, JobStatus};

/// How often the newest good backup of each source with `rpo_hours` is looked up in the
/// stores.
const RPO_CHECK_EVERY: Duration = Duration::from_secs(300);

/// The kind of the backups of `source`: anonymized when the source says `anonymize = true`.
pub(super) fn backup_kind(ctx: &Context, source: &str) -> Result<JobKind, ConfigError> {
    Ok(if ctx.config.source(source)?.anonymize() {
        JobKind::AnonymizedBackup
    } else {
        JobKind::Backup
    })
}

/// How a running job is cancelled: its token, and who asked.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancel {
    token: tokio_util::sync::CancellationToken,
    by: Arc<std::sync::Mutex<Option<String>>>,
}

impl Cancel {
    pub(crate) fn cancel(&self, by: &str) {
        if let Ok(mut who) = self.by.lock() {
            who.get_or_insert_with(|| by.to_owned());
        }
        self.token.cancel();
    }

    fn who(&self) -> String {
        self.by
            .lock()
            .ok()
            .and_then(|w| w.clone())
            .unwrap_or_else(|| "someone".to_owned())
    }
}

/// The job was cancelled (through the API); the text says by whom.
struct Cancelled(String);

/// A job being run: recorded at its start, ended by [`Running::end`].
struct Running {
    id: Option<JobId>,
    kind: JobKind,
    source: String,
    started: Instant,
    progress: Arc<Progress>,
    track: u64,
    cancel: Cancel,
}

impl Running {
    fn start(env: &Env, kind: JobKind, source: &str) -> Running {
        let started_at = Utc::now();
        let id = env
            .state(|s| s.record_job_start(kind, source, started_at))
            .inspect_err(|e| tracing::error!(error = %e, "cannot record the start of the job"))
            .ok();
        let progress = Progress::new();
        env.shared.metrics.job_started(source);
        let track =
            env.shared
                .metrics
                .track(source, kind.as_str(), id.map(|id| id.0), progress.clone());
        tracing::info!(job = ?id.map(|id| id.0), kind = kind.as_str(), "job started");
        let cancel = Cancel::default();
        if let Some(id) = id {
            env.cancels
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id.0, cancel.clone());
        }
        Running {
            id,
            kind,
            source: source.to_owned(),
            started: Instant::now(),
            progress,
            track,
            cancel,
        }
    }

    /// Runs the job's work unless it is cancelled first (then the work is dropped: its
    /// uploads abandoned, as at shutdown).
    async fn run<T>(&self, work: impl std::future::Future<Output = T>) -> Result<T, Cancelled> {
        tokio::select! {
            out = work => Ok(out),
            () = self.cancel.token.cancelled() => Err(Cancelled(self.cancel.who())),
        }
    }

    /// Ends a job that is not a backup: recorded, counted, and when it did not succeed,
    /// an alert `event` saying "`what`: the error" (if `event` is set).
    fn finish(
        self,
        env: &Env,
        source: &str,
        end: &JobEnd,
        alert: Option<(Event, &str)>,
    ) -> Option<i64> {
        let kind = self.kind;
        let id = self.end(env, end);
        env.shared.metrics.job_counted(source, kind, end.status);
        if let Some((event, what)) = alert
            && end.status != JobStatus::Ok
        {
            env.alerts.send(Alert::new(
                event,
                source,
                format!("{what}: {}", end.error.as_deref().unwrap_or("see the job")),
                json!({ "job": id, "error": end.error }),
            ));
        }
        id
    }

    /// Ends a cancelled job: recorded `interrupted`, counted.
    fn cancelled(self, env: &Env, source: &str, cancelled: Cancelled) {
        let kind = self.kind;
        let end = JobEnd {
            status: JobStatus::Interrupted,
            finished_at: Utc::now(),
            bytes: None,
            error: Some(format!("cancelled by {}", cancelled.0)),
            details: None,
        };
        self.end(env, &end);
        env.shared
            .metrics
            .job_counted(source, kind, JobStatus::Interrupted);
    }

    /// Records the end (in the job history and the audit log); returns the job id.
    fn end(self, env: &Env, end: &JobEnd) -> Option<i64> {
        env.shared.metrics.untrack(self.track);
        if let Some(id) = self.id {
            env.cancels
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&id.0);
        }
        let entry = crate::state::NewAuditEntry {
            time: end.finished_at,
            actor: "coffre-serve".to_owned(),
            ip: "local".to_owned(),
            action: format!("job.{}", self.kind.as_str()),
            target: self.source.clone(),
            outcome: end.status.as_str().to_owned(),
            details: json!({ "job": self.id.map(|id| id.0), "error": end.error }),
        };
        if let Err(e) = env.state(|s| crate::audit::record(s, &entry)) {
            tracing::error!(error = %e, "cannot append the job to the audit log");
        }
        if let Some(id) = self.id
            && let Err(e) = env.state(|s| s.record_job_end(id, end))
        {
            tracing::error!(error = %e, "cannot record the end of the job");
        }
        let duration_s = self.started.elapsed().as_secs_f64();
        match end.status {
            JobStatus::Ok => tracing::info!(
                job = ?self.id.map(|id| id.0),
                kind = self.kind.as_str(),
                duration_s,
                "job ok"
            ),
            status => tracing::error!(
                job = ?self.id.map(|id| id.0),
                kind = self.kind.as_str(),
                status = %status,
                error = end.error.as_deref().unwrap_or(""),
                "job did not succeed"
            ),
        }
        self.id.map(|id| id.0)
    }
}

fn failed(error: String) -> JobEnd {
    JobEnd {
        status: JobStatus::Failed,
        finished_at: Utc::now(),
        bytes: None,
        error: Some(error),
        details: None,
    }
}

/// One scheduled backup of `source`.
pub(super) async fn backup(env: &Env, source: &str, slot: DateTime<Utc>) {
    // Another process (a CLI backup, prune or heal) writing this source: skip, no overlap.
    match SourceLock::acquire(&env.ctx.config.state_dir, source) {
        Ok(lock) => drop(lock),
        Err(e @ LockError::Busy { .. }) => {
            tracing::warn!(slot = %slot, reason = %e, "slot skipped: the source is busy");
            env.shared.metrics.slots_skipped(source, 1);
            return;
        }
        Err(e) => tracing::warn!(error = %e, "cannot check the source lock"),
    }
    let kind = match backup_kind(&env.ctx, source) {
        Ok(kind) => kind,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the backup");
            return;
        }
    };
    let job = Running::start(env, kind, source);
    let started = job.started;
    let work = run_backup(
        &env.ctx,
        source,
        BackupOptions::default(),
        job.progress.clone(),
    );
    let result = match job.run(work).await {
        Ok(result) => result,
        Err(c) => return job.cancelled(env, source, c),
    };
    // A prune, heal or CLI job took the source between the check above and the backup's
    // own lock: the slot is skipped, as above, not failed (the next slot runs).
    if let Err(BackupError::Lock(e @ LockError::Busy { .. })) = &result {
        tracing::warn!(slot = %slot, reason = %e, "slot skipped: the source became busy");
        env.shared.metrics.slots_skipped(source, 1);
        let end = JobEnd {
            status: JobStatus::Interrupted,
            finished_at: Utc::now(),
            bytes: None,
            error: Some(format!("skipped: {e}")),
            details: None,
        };
        job.finish(env, source, &end, None);
        return;
    }
    let finished_at = Utc::now();
    let (end, report) = match result {
        Ok(report) => {
            let end = JobEnd::from_backup_report(&report, finished_at).unwrap_or_else(|e| JobEnd {
                status: report.status.into(),
                finished_at,
                bytes: Some(report.stored_bytes),
                error: report
                    .error
                    .clone()
                    .or_else(|| Some(format!("report not kept: {e}"))),
                details: None,
            });
            (end, Some(report))
        }
        Err(e) => (failed(e.to_string()), None),
    };
    let id = job.end(env, &end);
    env.shared.metrics.job_ended(
        source,
        kind,
        end.status,
        finished_at,
        started.elapsed().as_secs_f64(),
        report.as_ref(),
    );
    let event = match report.as_ref().map(|r| r.status) {
        Some(BackupStatus::Ok) => return,
        Some(BackupStatus::Degraded) => Event::BackupDegraded,
        Some(BackupStatus::Failed) | None => Event::BackupFailed,
    };
    let targets: BTreeMap<&str, &str> = report
        .iter()
        .flat_map(|r| &r.targets)
        .map(|t| (t.target.as_str(), t.status))
        .collect();
    env.alerts.send(Alert::new(
        event,
        source,
        format!(
            "backup of {source} {}: {}",
            if event == Event::BackupDegraded {
                "stored in some targets only"
            } else {
                "failed"
            },
            end.error.as_deref().unwrap_or("see the job")
        ),
        json!({
            "job": id,
            "backup_id": report.as_ref().map(|r| r.id.as_str()),
            "targets": targets,
            "error": end.error,
        }),
    ));
}

/// One scheduled drill of `source`.
pub(super) async fn drill(env: &Env, source: &str) {
    let job = Running::start(env, JobKind::Drill, source);
    let opts = DrillOptions {
        source: source.to_owned(),
        target: None,
    };
    let result = match job
        .run(drill::run_drill(&env.ctx, &opts, job.progress.clone()))
        .await
    {
        Ok(result) => result,
        Err(c) => return job.cancelled(env, source, c),
    };
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            let end = failed(e.to_string());
            let id = job.end(env, &end);
            env.shared
                .metrics
                .job_counted(source, JobKind::Drill, end.status);
            env.alerts.send(Alert::new(
                Event::DrillFailed,
                source,
                format!("drill of {source} could not run: {e}"),
                json!({ "job": id, "error": e.to_string() }),
            ));
            return;
        }
    };
    let kept_in = drill::store_report(&env.ctx, &report).await;
    let saved = match env.ctx.integrity_key() {
        Ok(key) => env
            .state(|s| drill::save_report(s, &report, key))
            .map(|id| id.0)
            .inspect_err(|e| tracing::error!(error = %e, "cannot save the drill report"))
            .ok(),
        Err(_) => None,
    };
    let end = JobEnd {
        status: if report.ok {
            JobStatus::Ok
        } else {
            JobStatus::Failed
        },
        finished_at: report.finished_at,
        bytes: report.stored_bytes,
        error: report.failure.clone(),
        details: Some(json!({
            "report": saved,
            "report_key": report.store_key(),
            "kept_in": kept_in,
            "target": report.target,
            "backup_id": report.backup_id,
        })),
    };
    let id = job.end(env, &end);
    env.shared
        .metrics
        .job_counted(source, JobKind::Drill, end.status);
    env.shared.metrics.drill_ended(&report);
    if !report.ok {
        env.alerts.send(Alert::new(
            Event::DrillFailed,
            source,
            format!(
                "drill of {source} from target {} failed: {}",
                report.target,
                report.failure.as_deref().unwrap_or("see the report")
            ),
            json!({
                "job": id,
                "report": saved,
                "report_id": report.id,
                "target": report.target,
                "backup_id": report.backup_id,
                "failure": report.failure,
            }),
        ));
    }
}

/// An anonymized copy of `source`'s newest full backup with a whole copy, encrypted to
/// `recipient` only, for `requester`.
pub(crate) async fn anonymized_copy(env: &Env, source: &str, requester: &str, recipient: &str) {
    let job = Running::start(env, JobKind::AnonymizedCopy, source);
    let work = async {
        let listing = catalog::list_source(&env.ctx, source)
            .await
            .map_err(|e| e.to_string())?;
        let newest = listing
            .entries
            .iter()
            .rev()
            .find(|e| {
                e.good_copies().next().is_some()
                    && e.manifest()
                        .is_some_and(|m| m.kind == crate::manifest::BackupKind::Full)
            })
            .ok_or_else(|| format!("source {source} has no full backup with a whole copy"))?;
        let opts = crate::pipeline::anonymize_copy::CopyOptions {
            backup_id: newest.id.clone(),
            recipient: recipient.to_owned(),
            target: None,
        };
        crate::pipeline::anonymize_copy::run_anonymize_copy(&env.ctx, &opts, job.progress.clone())
            .await
            .map(|report| (newest.id.clone(), report))
            .map_err(|e| e.to_string())
    };
    let result = match job.run(work).await {
        Ok(result) => result,
        Err(c) => return job.cancelled(env, source, c),
    };
    let end = match &result {
        Ok((from, report)) => JobEnd {
            status: report.status.into(),
            finished_at: Utc::now(),
            bytes: Some(report.stored_bytes),
            error: report.error.clone(),
            details: Some(json!({
                "id": report.id, "derived_from": from, "requester": requester,
            })),
        },
        Err(e) => failed(e.clone()),
    };
    let id = job.finish(env, source, &end, None);
    if end.status != JobStatus::Ok {
        tracing::warn!(job = ?id, requester, error = end.error.as_deref().unwrap_or(""), "anonymized copy not made");
    }
}

/// Re-reads every copy of `backup` (of `source`) against its manifest.
pub(crate) async fn verify(env: &Env, source: &str, backup: &str) {
    let job = Running::start(env, JobKind::Verify, source);
    let work = crate::pipeline::verify::run_verify(&env.ctx, Some(backup), None, &job.progress);
    let result = match job.run(work).await {
        Ok(result) => result,
        Err(c) => return job.cancelled(env, source, c),
    };
    let end = match result {
        Ok(report) => JobEnd {
            status: if report.ok {
                JobStatus::Ok
            } else {
                JobStatus::Failed
            },
            finished_at: Utc::now(),
            bytes: None,
            error: (!report.ok)
                .then(|| format!("backup {backup}: a copy is bad or a target unreachable")),
            details: serde_json::to_value(&report).ok(),
        },
        Err(e) => failed(e.to_string()),
    };
    job.finish(env, source, &end, None);
}

/// Restores `backup` (of `source`) into the empty database `to`.
pub(crate) async fn restore(env: &Env, source: &str, backup: &str, to: &str) {
    let job = Running::start(env, JobKind::Restore, source);
    let opts = crate::pipeline::restore::RestoreOptions {
        skip_erasures: None,
        backup_id: backup.to_owned(),
        to: to.to_owned(),
        target: None,
        force: false,
    };
    let work = crate::pipeline::restore::run_restore(&env.ctx, &opts, job.progress.clone());
    let result = match job.run(work).await {
        Ok(result) => result,
        Err(c) => return job.cancelled(env, source, c),
    };
    let end = match result {
        Ok(report) => JobEnd {
            status: JobStatus::Ok,
            finished_at: Utc::now(),
            bytes: Some(report.stored_bytes),
            error: None,
            details: serde_json::to_value(&report).ok(),
        },
        Err(e) => failed(e.to_string()),
    };
    job.finish(env, source, &end, None);
}

/// One scheduled prune of every source with a retention policy.
pub(super) async fn prune(env: &Env) {
    let job = Running::start(env, JobKind::Prune, "*");
    let result = match job.run(run_prune(&env.ctx, None, false, Utc::now())).await {
        Ok(result) => result,
        Err(c) => return job.cancelled(env, "*", c),
    };
    let end = match &result {
        Ok(report) => JobEnd {
            status: if report.ok {
                JobStatus::Ok
            } else {
                JobStatus::Failed
            },
            finished_at: Utc::now(),
            bytes: None,
            error: (!report.ok).then(|| {
                let errors: Vec<String> = report
                    .sources
                    .iter()
                    .filter_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.source)))
                    .collect();
                if errors.is_empty() {
                    format!("{} deletions failed", report.failed)
                } else {
                    errors.join("; ")
                }
            }),
            details: Some(json!({
                "kept": report.kept,
                "deleted": report.deleted,
                "failed": report.failed,
            })),
        },
        Err(e) => failed(e.to_string()),
    };
    job.finish(env, "*", &end, Some((Event::PruneFailed, "prune failed")));
}

/// One scheduled heal of every source.
pub(super) async fn heal(env: &Env) {
    let job = Running::start(env, JobKind::Heal, "*");
    let opts = HealOptions {
        source: None,
        dry_run: false,
    };
    let result = match job
        .run(run_heal(&env.ctx, &opts, job.progress.clone()))
        .await
    {
        Ok(result) => result,
        Err(c) => return job.cancelled(env, "*", c),
    };
    let end = match &result {
        Ok(report) => JobEnd {
            status: if report.is_whole() {
                JobStatus::Ok
            } else {
                JobStatus::Degraded
            },
            finished_at: Utc::now(),
            bytes: None,
            error: (!report.is_whole()).then(|| {
                format!(
                    "{} copies not healed; unreachable targets: {}",
                    report.failed,
                    if report.unreachable.is_empty() {
                        "none".to_owned()
                    } else {
                        report.unreachable.join(", ")
                    }
                )
            }),
            details: Some(json!({ "healed": report.healed, "failed": report.failed })),
        },
        Err(e) => failed(e.to_string()),
    };
    job.finish(
        env,
        "*",
        &end,
        Some((Event::HealFailed, "heal left copies broken")),
    );
}

/// Every [`AUDIT_HEAD_EVERY`] and at shutdown, the audit chain's head, sealed, to every
/// store (when it moved since the last time).
pub(super) async fn write_audit_heads(env: Arc<Env>, mut stop: watch::Receiver<bool>) {
    let mut written: Option<i64> = None;
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(AUDIT_HEAD_EVERY) => false,
            _ = stop.wait_for(|stop| *stop) => true,
        };
        match crate::audit::write_head(&env.ctx, &env.state, written).await {
            Ok(Some(id)) => written = Some(id),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot write the audit chain's head to the stores")
            }
        }
        if stopping {
            return;
        }
    }
}

/// Keeps a summary of a source's listing in the state store (a cache: the stores stay the
/// truth, and a lost cache is rebuilt at the next listing).
fn cache_catalog(env: &Env, source: &str, listing: &catalog::Listing) {
    let entries: Vec<serde_json::Value> = listing
        .entries
        .iter()
        .map(catalog::Entry::summary)
        .collect();
    let entries = json!(entries);
    if let Err(e) = env.state(|s| s.cache_catalog(source, &entries, Utc::now())) {
        tracing::warn!(source, error = %e, "cannot cache the catalog");
    }
}

/// How often the audit chain's head is written to the stores.
const AUDIT_HEAD_EVERY: Duration = Duration::from_secs(300);

/// Every [`RPO_CHECK_EVERY`] (first at start-up), each source's catalog from the stores,
/// cached in the state store; for sources with `rpo_hours`, the age of the newest backup
/// with a whole copy, an alert when it passes `rpo_hours` and another when it is back.
pub(super) async fn watch_rpo(env: Arc<Env>, mut stop: watch::Receiver<bool>) {
    // Every source is listed (its catalog cached in the state store); those with
    // rpo_hours are checked.
    let sources: Vec<(String, Option<u64>)> = env
        .ctx
        .config
        .sources
        .iter()
        .map(|(name, s)| (name.clone(), s.rpo_hours()))
        .collect();
    let mut breached: BTreeMap<String, bool> = BTreeMap::new();
    loop {
        for (source, rpo_hours) in &sources {
            let listing = match catalog::list_source(&env.ctx, source).await {
                Ok(listing) => listing,
                Err(e) => {
                    tracing::warn!(source, error = %e, "cannot list the backups");
                    continue;
                }
            };
            cache_catalog(&env, source, &listing);
            let Some(rpo_hours) = rpo_hours else { continue };
            let newest = listing
                .entries
                .iter()
                .filter_map(|e| Some((e, e.good_copies().next()?)))
                .filter_map(|(e, _)| e.manifest().map(|m| m.finished_at))
                .max();
            let now = Utc::now();
            let age_s = newest.map(|t| (now - t).num_seconds().max(0) as f64);
            let limit_s = (*rpo_hours * 3600) as f64;
            let is_breached = age_s.is_none_or(|age| age > limit_s);
            env.shared.metrics.rpo(source, age_s, is_breached);
            let was = breached.insert(source.clone(), is_breached);
            if was == Some(is_breached) || (was.is_none() && !is_breached) {
                continue;
            }
            let (event, summary) = if is_breached {
                (
                    Event::RpoExceeded,
                    match age_s {
                        Some(age) => format!(
                            "newest good backup of {source} is {:.1} h old, over its RPO of {rpo_hours} h",
                            age / 3600.0
                        ),
                        None => {
                            format!("{source} has no good backup in any target (RPO {rpo_hours} h)")
                        }
                    },
                )
            } else {
                (
                    Event::RpoRecovered,
                    format!("{source} is back within its RPO of {rpo_hours} h"),
                )
            };
            env.alerts.send(Alert::new(
                event,
                source,
                summary,
                json!({
                    "rpo_hours": rpo_hours,
                    "newest_good_backup": newest,
                    "age_seconds": age_s,
                    "unreachable_targets": listing.unreachable.iter().map(|(t, _)| t).collect::<Vec<_>>(),
                }),
            ));
        }
        tokio::select! {
            () = tokio::time::sleep(RPO_CHECK_EVERY) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}
