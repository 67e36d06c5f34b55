//! `coffre serve`: the long-running service that backs up each source on its schedule.
//!
//! Start-up: the state store is opened (`state_dir/state.db`) and jobs a dead process left
//! `running` become `interrupted`; each source's leftovers of killed runs are removed under
//! its lock; the probes listen on `[service] listen`; then each scheduled source runs once a
//! slot missed within `catch_up_window_hours`, and from then on sleeps until its next slot
//! plus its jitter ([`crate::schedule`]).
//!
//! No overlap: each source has one task that runs its jobs one after the other, so slots
//! that pass while a backup runs are skipped (logged and counted); the per-source file lock
//! also keeps a CLI backup and a scheduled one apart. A semaphore bounds the jobs running at
//! once over all sources (`max_concurrent_jobs`). Every job is recorded in the state store
//! when it starts and when it ends, and the slot it served becomes the schedule's last run.
//!
//! Shutdown (SIGTERM or SIGINT): no new job starts; running ones get `shutdown_grace_secs` to
//! end, then are cancelled. Cancelling drops the backup: its uploads are abandoned (S3
//! multipart uploads aborted, fs temporary files removed) and no manifest is written, so
//! nothing partial is ever listed; the job is recorded `interrupted`. The process exits 0.

pub mod http;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::config::ConfigError;
use crate::pipeline::Context;
use crate::pipeline::backup::{BackupOptions, run_backup};
use crate::pipeline::lock::{LockError, SourceLock, clean_leftovers};
use crate::progress::Progress;
use crate::schedule::{Schedule, ScheduleError};
use crate::state::{JobEnd, JobFilter, JobKind, JobStatus, State, StateError};

pub use http::{Shared, router};

/// Why the service could not start (once started, job failures are recorded, not fatal).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("config {file}: [sources.{source_name}] {error}", file = file.display())]
    Schedule {
        file: std::path::PathBuf,
        source_name: String,
        error: ScheduleError,
    },
    #[error(
        "config {file}: [service] listen {addr}: cannot listen: {source} (is another coffre \
         serve running? change listen)",
        file = file.display()
    )]
    Listen {
        file: std::path::PathBuf,
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot watch for {signal}: {source}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },
}

/// The name under which a source's backup schedule records its last run.
fn schedule_key(source: &str) -> String {
    format!("backup:{source}")
}

/// What every job of the service shares.
struct Env {
    ctx: Context,
    state: Mutex<State>,
    shared: Arc<Shared>,
    permits: Semaphore,
}

impl Env {
    /// Runs `f` on the state store, off the async threads' hot path.
    fn state<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        tokio::task::block_in_place(|| {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            f(&state)
        })
    }
}

/// Runs the service until SIGTERM or SIGINT; see the module documentation.
pub async fn serve(ctx: Context) -> Result<(), ServiceError> {
    let mut signals =
        Signals::install().map_err(|(signal, source)| ServiceError::Signal { signal, source })?;
    let config = &ctx.config;
    let state = State::open_in(&config.state_dir)?;
    let interrupted = state.mark_running_as_interrupted(Utc::now())?;
    if interrupted > 0 {
        tracing::warn!(
            jobs = interrupted,
            "jobs left running by a previous process recorded as interrupted"
        );
    }

    let mut schedules = Vec::new();
    for name in config.sources.keys() {
        if let Some(parsed) = config.schedule_of(name) {
            let schedule = parsed.map_err(|error| ServiceError::Schedule {
                file: config.file.clone(),
                source_name: name.clone(),
                error,
            })?;
            schedules.push((name.clone(), schedule));
        }
    }

    let shared = Arc::new(Shared::default());
    for name in config.sources.keys() {
        let kind = job_kind(&ctx, name)?;
        let filter = JobFilter::default().source(name).kind(kind).limit(1);
        let last = state.jobs(&filter)?;
        let good = state.last_success(name, kind)?;
        shared.metrics.seed(name, last.first(), good.as_ref());
        let scheduled = schedules.iter().any(|(n, _)| n == name);
        shared.metrics.add_source(name, scheduled);
    }

    let listener = tokio::net::TcpListener::bind(&config.service.listen)
        .await
        .map_err(|source| ServiceError::Listen {
            file: config.file.clone(),
            addr: config.service.listen.clone(),
            source,
        })?;
    let local = listener.local_addr().map_or_else(
        |_| config.service.listen.clone(),
        |a: SocketAddr| a.to_string(),
    );
    let server = tokio::spawn(axum::serve(listener, router(shared.clone())).into_future());
    tracing::info!(listen = %local, "probes listening: /healthz /readyz /metrics");

    for name in config.sources.keys() {
        clean_at_start(&ctx, name).await;
    }

    let now = Utc::now();
    let window = Duration::from_secs(config.service.catch_up_window_hours.saturating_mul(3600));
    let mut catch_ups = Vec::new();
    for (name, schedule) in &schedules {
        let last = state.last_run(&schedule_key(name))?;
        catch_ups.push(schedule.missed_since(last, now, window));
    }
    let grace = Duration::from_secs(config.service.shutdown_grace_secs);
    let permits = Semaphore::new(usize::try_from(config.service.max_concurrent_jobs).unwrap_or(1));
    let env = Arc::new(Env {
        ctx,
        state: Mutex::new(state),
        shared: shared.clone(),
        permits,
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut loops = JoinSet::new();
    for ((name, schedule), catch_up) in schedules.into_iter().zip(catch_ups) {
        tracing::info!(source = %name, schedule = %schedule, catch_up = ?catch_up, "scheduled");
        let span = tracing::info_span!("schedule", source = %name);
        loops.spawn(
            source_loop(env.clone(), name, schedule, catch_up, stop_rx.clone()).instrument(span),
        );
    }
    shared.ready.store(true, Ordering::Release);
    tracing::info!(sources = loops.len(), "service ready");

    let signal = signals.next().await;
    tracing::info!(
        signal,
        grace_s = grace.as_secs(),
        "shutting down: no new job starts"
    );
    shared.ready.store(false, Ordering::Release);
    stop_tx.send_replace(true);
    let all_ended =
        tokio::time::timeout(grace, async { while loops.join_next().await.is_some() {} })
            .await
            .is_ok();
    if !all_ended {
        tracing::warn!("jobs still running after the grace period: cancelling them");
        loops.abort_all();
        // Wait until every cancelled job has been dropped (its uploads abandoned).
        while loops.join_next().await.is_some() {}
    }
    let interrupted = env.state(|s| s.mark_running_as_interrupted(Utc::now()))?;
    if interrupted > 0 {
        tracing::warn!(jobs = interrupted, "cancelled jobs recorded as interrupted");
    }
    server.abort();
    tracing::info!("service stopped");
    Ok(())
}

/// SIGTERM and SIGINT, installed before anything else so that neither kills the process.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, (&'static str, std::io::Error)> {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).map_err(|e| ("SIGTERM", e))?;
        let int = signal(SignalKind::interrupt()).map_err(|e| ("SIGINT", e))?;
        Ok(Signals { term, int })
    }

    /// The name of the next signal received.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// The kind of the jobs of `source`: anonymized when the source says `anonymize = true`.
fn job_kind(ctx: &Context, source: &str) -> Result<JobKind, ConfigError> {
    Ok(if ctx.config.source(source)?.anonymize() {
        JobKind::AnonymizedBackup
    } else {
        JobKind::Backup
    })
}

/// Removes the leftovers of killed runs of `source` under its lock (skipped, with a log,
/// when another process holds it: that one cleans up itself).
async fn clean_at_start(ctx: &Context, source: &str) {
    let stores = match ctx.stores_of(source) {
        Ok(stores) => stores,
        Err(e) => {
            tracing::warn!(source, error = %e, "cannot check for leftovers of killed runs");
            return;
        }
    };
    match SourceLock::acquire(&ctx.config.state_dir, source) {
        Ok(_lock) => clean_leftovers(&stores, source).await,
        Err(e) => tracing::info!(source, reason = %e, "leftovers not checked"),
    }
}

/// One source's schedule: the catch-up slot if any, then every slot until told to stop.
async fn source_loop(
    env: Arc<Env>,
    name: String,
    schedule: Schedule,
    catch_up: Option<DateTime<Utc>>,
    mut stop: watch::Receiver<bool>,
) {
    if let Some(slot) = catch_up {
        tracing::info!(slot = %slot, "running a slot missed while the service was down");
        if !run_slot(&env, &name, slot, &mut stop).await {
            return;
        }
    }
    let mut after = Utc::now();
    loop {
        let Some(slot) = schedule.next_after(after) else {
            tracing::warn!(schedule = %schedule, "the schedule has no further slot");
            return;
        };
        let start = schedule.start_time(slot, &name);
        let wait = (start - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        if !run_slot(&env, &name, slot, &mut stop).await {
            return;
        }
        let now = Utc::now();
        let skipped = passed_slots(&schedule, slot, now);
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "slots passed while the backup ran: skipped (one backup of a source at a time)"
            );
            env.shared.metrics.slots_skipped(&name, skipped);
        }
        // Never serve a slot twice, even if the clock woke us a little early.
        after = now.max(slot);
    }
}

/// Slots strictly after `slot` and at or before `now` (at most 10 000 counted).
fn passed_slots(schedule: &Schedule, slot: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let mut count = 0;
    let mut at = slot;
    while let Some(next) = schedule.next_after(at) {
        if next > now || count >= 10_000 {
            break;
        }
        count += 1;
        at = next;
    }
    count
}

/// Waits for a permit, then runs the backup of `slot`; false when told to stop first.
async fn run_slot(
    env: &Env,
    name: &str,
    slot: DateTime<Utc>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let permit = tokio::select! {
        permit = env.permits.acquire() => permit,
        _ = stop.wait_for(|stop| *stop) => return false,
    };
    let Ok(_permit) = permit else {
        return false;
    };
    if *stop.borrow() {
        return false;
    }
    run_backup_job(env, name, slot).await;
    true
}

/// One scheduled backup of `name`, recorded in the state store and the metrics.
async fn run_backup_job(env: &Env, name: &str, slot: DateTime<Utc>) {
    // Another process (a CLI backup, prune or heal) writing this source: skip, no overlap.
    match SourceLock::acquire(&env.ctx.config.state_dir, name) {
        Ok(lock) => drop(lock),
        Err(e @ LockError::Busy { .. }) => {
            tracing::warn!(slot = %slot, reason = %e, "slot skipped: the source is busy");
            env.shared.metrics.slots_skipped(name, 1);
            return;
        }
        Err(e) => tracing::warn!(error = %e, "cannot check the source lock"),
    }
    let kind = match job_kind(&env.ctx, name) {
        Ok(kind) => kind,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the backup");
            return;
        }
    };
    let started_at = Utc::now();
    let started = Instant::now();
    let id = env
        .state(|s| s.record_job_start(kind, name, started_at))
        .inspect_err(|e| tracing::error!(error = %e, "cannot record the start of the job"))
        .ok();
    env.shared.metrics.job_started(name);
    tracing::info!(slot = %slot, job = ?id.map(|id| id.0), "scheduled backup started");

    let result = run_backup(&env.ctx, name, BackupOptions::default(), Progress::new()).await;

    let finished_at = Utc::now();
    let duration_s = started.elapsed().as_secs_f64();
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
        Err(e) => (
            JobEnd {
                status: JobStatus::Failed,
                finished_at,
                bytes: None,
                error: Some(e.to_string()),
                details: None,
            },
            None,
        ),
    };
    match end.status {
        JobStatus::Ok => tracing::info!(
            job = ?id.map(|id| id.0),
            backup = report.as_ref().map(|r| r.id.as_str()),
            bytes = end.bytes,
            duration_s,
            "scheduled backup ok"
        ),
        status => tracing::error!(
            job = ?id.map(|id| id.0),
            status = %status,
            error = end.error.as_deref().unwrap_or(""),
            "scheduled backup did not store a whole backup"
        ),
    }
    if let Some(id) = id
        && let Err(e) = env.state(|s| s.record_job_end(id, &end))
    {
        tracing::error!(error = %e, "cannot record the end of the job");
    }
    if let Err(e) = env.state(|s| s.set_last_run(&schedule_key(name), slot)) {
        tracing::error!(error = %e, "cannot record the last run of the schedule");
    }
    env.shared.metrics.job_ended(
        name,
        kind,
        end.status,
        finished_at,
        duration_s,
        report.as_ref(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid time")
            .with_timezone(&Utc)
    }

    #[test]
    fn slots_passed_during_a_run_are_counted() {
        let every_2s = Schedule::parse("*/2 * * * * *", "UTC").expect("valid");
        let slot = at("2026-11-22T10:00:00Z");
        assert_eq!(passed_slots(&every_2s, slot, at("2026-11-22T10:00:01Z")), 0);
        assert_eq!(passed_slots(&every_2s, slot, at("2026-11-22T10:00:02Z")), 1);
        assert_eq!(passed_slots(&every_2s, slot, at("2026-11-22T10:00:07Z")), 3);
    }
}
