//! `coffre serve`: the long-running service that runs each schedule of the configuration:
//! every source's backups (`schedule`), its drills (`[drills.NAME] schedule`), and pruning
//! and healing of every source (`[service] prune_schedule`, `heal_schedule`); it watches
//! each source's `rpo_hours` and sends alerts ([`alerts`]).
//!
//! Start-up: the state store is opened (`state_dir/state.db`) and jobs a dead process left
//! `running` become `interrupted`; each source's leftovers of killed runs are removed under
//! its lock; the probes listen on `[service] listen`; then each schedule runs once a slot
//! missed within `catch_up_window_hours`, and from then on sleeps until its next slot plus
//! its jitter ([`crate::schedule`]).
//!
//! No overlap: each schedule has one task that runs its jobs one after the other, so slots
//! that pass while a job runs are skipped (logged and counted); the per-source file locks
//! also keep a CLI job and a scheduled one apart. A semaphore bounds the jobs running at
//! once (`max_concurrent_jobs`). Every job is recorded in the state store when it starts
//! and when it ends, and the slot it served becomes the schedule's last run.
//!
//! Shutdown (SIGTERM or SIGINT): no new job starts; running ones get `shutdown_grace_secs` to
//! end, then are cancelled. Cancelling drops the backup: its uploads are abandoned (S3
//! multipart uploads aborted, fs temporary files removed) and no manifest is written, so
//! nothing partial is ever listed; the job is recorded `interrupted`. The process exits 0.

pub mod alerts;
pub mod http;
pub(crate) mod jobs;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::config::ConfigError;
use crate::pipeline::Context;
use crate::pipeline::lock::{SourceLock, clean_leftovers};
use crate::schedule::Schedule;
use crate::state::{JobFilter, State, StateError};
use alerts::{AlertError, Alerter};

pub use http::{Shared, router};

/// Why the service could not start (once started, job failures are recorded, not fatal).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("config {file}: {problem}", file = file.display())]
    Schedule {
        file: std::path::PathBuf,
        problem: String,
    },
    #[error("config {file}: [api]: {problem}", file = file.display())]
    Api {
        file: std::path::PathBuf,
        problem: String,
    },
    #[error("config {file}: {error}", file = file.display())]
    Alerts {
        file: std::path::PathBuf,
        error: AlertError,
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

/// A scheduled job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Task {
    /// A backup of a source (anonymized when the source says so).
    Backup(String),
    /// A restore drill of a source.
    Drill(String),
    /// `coffre prune` over every source.
    Prune,
    /// `coffre heal` over every source.
    Heal,
    /// An anonymized copy of a source's newest full backup for a requester, encrypted to
    /// their recipient only (asked through the API).
    AnonymizedCopy {
        source: String,
        requester: String,
        recipient: String,
    },
    /// Re-read every copy of one backup against its manifest (asked through the API).
    Verify { source: String, backup: String },
    /// Restore one backup into an empty database (asked through the API).
    Restore {
        source: String,
        backup: String,
        to: String,
    },
}

impl Task {
    /// The name its last run is recorded under, and its jitter is drawn from.
    fn key(&self) -> String {
        match self {
            Task::Backup(source) => format!("backup:{source}"),
            Task::Drill(source) => format!("drill:{source}"),
            Task::Prune => "prune".to_owned(),
            Task::Heal => "heal".to_owned(),
            Task::AnonymizedCopy { source, .. } => format!("anonymized-copy:{source}"),
            Task::Verify { backup, .. } => format!("verify:{backup}"),
            Task::Restore { backup, .. } => format!("restore:{backup}"),
        }
    }

    /// The source it works on (`*`: every source), for logs, history and metrics.
    fn source(&self) -> &str {
        match self {
            Task::Backup(source)
            | Task::Drill(source)
            | Task::AnonymizedCopy { source, .. }
            | Task::Verify { source, .. }
            | Task::Restore { source, .. } => source,
            Task::Prune | Task::Heal => "*",
        }
    }
}

/// What every job of the service shares.
pub(crate) struct Env {
    pub(crate) ctx: Context,
    pub(crate) state: Mutex<State>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) permits: Semaphore,
    pub(crate) alerts: Alerter,
    /// Running jobs that can be cancelled, by job id: their token and who cancelled.
    pub(crate) cancels: Mutex<std::collections::BTreeMap<i64, jobs::Cancel>>,
}

impl Env {
    /// Cancels running job `id` (its uploads are abandoned, nothing partial is listed);
    /// false when no such job runs.
    pub(crate) fn cancel(&self, id: i64, by: &str) -> bool {
        let cancels = self.cancels.lock().unwrap_or_else(PoisonError::into_inner);
        match cancels.get(&id) {
            Some(cancel) => {
                cancel.cancel(by);
                true
            }
            None => false,
        }
    }

    /// Runs `f` on the state store, off the async threads' hot path.
    pub(crate) fn state<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        tokio::task::block_in_place(|| {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            f(&state)
        })
    }
}

/// Every schedule of the configuration, parsed in `[service] time_zone` with its jitter; or
/// the first that does not parse, with where it is written.
fn schedules(ctx: &Context) -> Result<Vec<(Task, Schedule)>, String> {
    let config = &ctx.config;
    let mut wanted: Vec<(Task, &str, String)> = Vec::new();
    for (name, source) in &config.sources {
        if let Some(expr) = source.schedule() {
            wanted.push((
                Task::Backup(name.clone()),
                expr,
                format!("[sources.{name}] schedule"),
            ));
        }
    }
    for (name, drill) in &config.drills {
        if let Some(expr) = &drill.schedule {
            wanted.push((
                Task::Drill(name.clone()),
                expr,
                format!("[drills.{name}] schedule"),
            ));
        }
    }
    if let Some(expr) = &config.service.prune_schedule {
        wanted.push((Task::Prune, expr, "[service] prune_schedule".to_owned()));
    }
    if let Some(expr) = &config.service.heal_schedule {
        wanted.push((Task::Heal, expr, "[service] heal_schedule".to_owned()));
    }
    wanted
        .into_iter()
        .map(|(task, expr, what)| {
            let schedule = config
                .schedule_for(expr)
                .map_err(|error| format!("{what}: {error}"))?;
            Ok((task, schedule))
        })
        .collect()
}

/// Runs the service until SIGTERM or SIGINT; see the module documentation.
pub async fn serve(ctx: Context) -> Result<(), ServiceError> {
    let mut signals =
        Signals::install().map_err(|(signal, source)| ServiceError::Signal { signal, source })?;
    let config = &ctx.config;
    let alerts = Alerter::new(&config.alerts).map_err(|error| ServiceError::Alerts {
        file: config.file.clone(),
        error,
    })?;
    let state = State::open_in(&config.state_dir)?;
    let interrupted = state.mark_running_as_interrupted(Utc::now())?;
    if interrupted > 0 {
        tracing::warn!(
            jobs = interrupted,
            "jobs left running by a previous process recorded as interrupted"
        );
    }

    let schedules = schedules(&ctx).map_err(|problem| ServiceError::Schedule {
        file: config.file.clone(),
        problem,
    })?;

    let shared = Arc::new(Shared::default());
    for name in config.sources.keys() {
        let kind = jobs::backup_kind(&ctx, name)?;
        let filter = JobFilter::default().source(name).kind(kind).limit(1);
        let last = state.jobs(&filter)?;
        let good = state.last_success(name, kind)?;
        shared.metrics.seed(name, last.first(), good.as_ref());
        let scheduled = schedules
            .iter()
            .any(|(t, _)| *t == Task::Backup(name.clone()));
        shared.metrics.add_source(name, scheduled);
    }
    for report in state.drill_reports(None, Some(100))?.iter().rev() {
        shared.metrics.seed_drill(report);
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
    let api_listener = match &config.api.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServiceError::Listen {
                    file: config.file.clone(),
                    addr: addr.clone(),
                    source,
                })?;
            tracing::info!(listen = %addr, "admin API listening: /api/v1");
            Some(listener)
        }
        None => None,
    };

    for name in config.sources.keys() {
        clean_at_start(&ctx, name).await;
    }

    let now = Utc::now();
    let window = Duration::from_secs(config.service.catch_up_window_hours.saturating_mul(3600));
    let mut catch_ups = Vec::new();
    for (task, schedule) in &schedules {
        let last = state.last_run(&task.key())?;
        catch_ups.push(schedule.missed_since(last, now, window));
    }
    let grace = Duration::from_secs(config.service.shutdown_grace_secs);
    let permits = Semaphore::new(usize::try_from(config.service.max_concurrent_jobs).unwrap_or(1));
    let env = Arc::new(Env {
        ctx,
        state: Mutex::new(state),
        shared: shared.clone(),
        permits,
        alerts,
        cancels: Mutex::default(),
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut loops = JoinSet::new();
    let scheduled = schedules.len();
    for ((task, schedule), catch_up) in schedules.into_iter().zip(catch_ups) {
        tracing::info!(job = %task.key(), schedule = %schedule, catch_up = ?catch_up, "scheduled");
        let span = tracing::info_span!("schedule", job = %task.key());
        loops.spawn(
            task_loop(env.clone(), task, schedule, catch_up, stop_rx.clone()).instrument(span),
        );
    }
    // The RPO watch only reads: it is aborted, not waited for, at shutdown.
    let rpo = tokio::spawn(jobs::watch_rpo(env.clone(), stop_rx.clone()));
    let audit_heads = tokio::spawn(jobs::write_audit_heads(env.clone(), stop_rx.clone()));
    let api = match api_listener {
        Some(listener) => {
            let key = env.ctx.integrity_key().map_err(|e| ServiceError::Api {
                file: env.ctx.config.file.clone(),
                problem: format!("the admin API seals TOTP secrets with the integrity key: {e}"),
            })?;
            let tls = crate::api::tls(&env.ctx.config.api)
                .await
                .map_err(|problem| ServiceError::Api {
                    file: env.ctx.config.file.clone(),
                    problem,
                })?;
            let api = Arc::new(crate::api::Api {
                env: env.clone(),
                key: key.clone(),
                config: env.ctx.config.api.clone(),
            });
            Some(tokio::spawn(crate::api::serve(
                api,
                listener,
                tls,
                stop_rx.clone(),
            )))
        }
        None => None,
    };
    shared.ready.store(true, Ordering::Release);
    tracing::info!(schedules = scheduled, "service ready");

    let signal = signals.next().await;
    tracing::info!(
        signal,
        grace_s = grace.as_secs(),
        "shutting down: no new job starts"
    );
    shared.ready.store(false, Ordering::Release);
    stop_tx.send_replace(true);
    rpo.abort();
    if let Some(api) = api {
        let _ = tokio::time::timeout(Duration::from_secs(5), api).await;
    }
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
    // The audit chain's last head, written after the last job.
    let _ = tokio::time::timeout(Duration::from_secs(30), audit_heads).await;
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

/// One schedule: the catch-up slot if any, then every slot until told to stop.
async fn task_loop(
    env: Arc<Env>,
    task: Task,
    schedule: Schedule,
    catch_up: Option<DateTime<Utc>>,
    mut stop: watch::Receiver<bool>,
) {
    if let Some(slot) = catch_up {
        tracing::info!(slot = %slot, "running a slot missed while the service was down");
        if !run_slot(&env, &task, slot, &mut stop).await {
            return;
        }
    }
    let mut after = Utc::now();
    loop {
        let Some(slot) = schedule.next_after(after) else {
            tracing::warn!(schedule = %schedule, "the schedule has no further slot");
            return;
        };
        let start = schedule.start_time(slot, &task.key());
        let wait = (start - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        if !run_slot(&env, &task, slot, &mut stop).await {
            return;
        }
        let now = Utc::now();
        let skipped = passed_slots(&schedule, slot, now);
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "slots passed while the job ran: skipped (one job of a schedule at a time)"
            );
            env.shared.metrics.slots_skipped(task.source(), skipped);
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

/// Waits for a permit, then runs the job of `slot`; false when told to stop first.
async fn run_slot(
    env: &Env,
    task: &Task,
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
    run_task(env, task, slot).await;
    if let Err(e) = env.state(|s| s.set_last_run(&task.key(), slot)) {
        tracing::error!(error = %e, "cannot record the last run of the schedule");
    }
    true
}

async fn run_task(env: &Env, task: &Task, slot: DateTime<Utc>) {
    match task {
        Task::Backup(source) => jobs::backup(env, source, slot).await,
        Task::Drill(source) => jobs::drill(env, source).await,
        Task::Prune => jobs::prune(env).await,
        Task::Heal => jobs::heal(env).await,
        Task::AnonymizedCopy {
            source,
            requester,
            recipient,
        } => jobs::anonymized_copy(env, source, requester, recipient).await,
        Task::Verify { source, backup } => jobs::verify(env, source, backup).await,
        Task::Restore { source, backup, to } => jobs::restore(env, source, backup, to).await,
    }
}

/// Runs a job now (asked through the API), under the concurrency limit.
pub(crate) async fn run_now(env: Arc<Env>, task: Task) {
    let Ok(_permit) = env.permits.acquire().await else {
        return;
    };
    run_task(&env, &task, Utc::now()).await;
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
