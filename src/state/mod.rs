//! The service's memory: job history, drill reports, a cache of the catalog and the last run
//! of each schedule, in one SQLite file under `state_dir` (`state.db`).
//!
//! It is a convenience, never the truth: backups, their manifests and their copies live in
//! the stores, and the catalog is rebuilt from them. So a state file that cannot be read is
//! not repaired: [`State::open`] moves it aside (`state.db.corrupt-<UTC time>`, with its
//! `-wal` and `-shm` files) with a warning and starts a fresh one, which loses the history
//! but no backup. A file written by a newer coffre is refused rather than moved aside, since
//! it is readable, just not by this version.
//!
//! The schema is versioned in a `schema_version` table; [`MIGRATIONS`] are numbered SQL
//! scripts, and those not applied yet run in one transaction, so a failed upgrade changes
//! nothing. The file is in WAL mode (readers never wait for the writer) with a busy timeout,
//! so a second handle, such as a CLI command beside the service, waits instead of failing.
//!
//! Timestamps are stored as RFC 3339 UTC text to the millisecond
//! (`2026-11-22T19:30:45.123Z`, fixed width, so text order is time order); finer digits are
//! truncated. JSON documents (job details, drill reports, catalog entries) are stored as
//! text. The API is blocking: async callers use `spawn_blocking` (a [`State`] is `Send`, not
//! `Sync`: share it behind a mutex).

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

mod auth;
mod erasures;
mod model;
#[cfg(test)]
mod tests;

pub use auth::{AuditEntry, NewAuditEntry, NewUser, TokenRecord, UserRecord};
pub use model::{
    CachedCatalog, DrillReport, DrillReportId, Job, JobEnd, JobFilter, JobId, JobKind, JobStatus,
    NewDrillReport, UnknownName,
};

/// The state file's name under `state_dir`.
pub const FILE_NAME: &str = "state.db";

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The error text given to jobs found `running` at start-up.
pub const INTERRUPTED: &str = "interrupted: coffre stopped before the job ended";

/// Schema migrations: entry `i` brings the schema from version `i` to `i + 1`. Append only;
/// never edit one that has shipped.
pub const MIGRATIONS: &[&str] = &[
    // 1: job history, drill reports, catalog cache, schedule runs.
    "CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        kind        TEXT NOT NULL,
        source      TEXT NOT NULL,
        status      TEXT NOT NULL,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        bytes       INTEGER,
        error       TEXT,
        details     TEXT
    );
    CREATE INDEX jobs_by_start ON jobs (started_at);
    CREATE INDEX jobs_by_source_kind ON jobs (source, kind, status, finished_at);
    CREATE TABLE drill_reports (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        source     TEXT NOT NULL,
        backup_id  TEXT NOT NULL,
        target     TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ok         INTEGER NOT NULL,
        report     TEXT NOT NULL
    );
    CREATE INDEX drill_reports_by_source ON drill_reports (source, started_at);
    CREATE TABLE catalog_cache (
        source    TEXT PRIMARY KEY,
        entries   TEXT NOT NULL,
        listed_at TEXT NOT NULL
    );
    CREATE TABLE schedule_runs (
        name     TEXT PRIMARY KEY,
        last_run TEXT NOT NULL
    );",
    // 2: users, sessions, API tokens and the audit log of the admin API.
    auth::MIGRATION_2,
    // 3: failed logins counted per user and client address.
    auth::MIGRATION_3,
    // 4: the erasure ledger and the subject scans of backups.
    erasures::MIGRATION_4,
];

/// What a state operation can fail on; every message names the file and the way out.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "state file {}: cannot create its folder: {source} (check state_dir and its permissions)",
        path.display()
    )]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {}: cannot open it: {source} ({hint})", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
        hint: &'static str,
    },
    #[error(
        "state file {}: damaged ({reason}) and cannot be moved aside to {}: {source} (move or \
         delete it by hand and restart; the stores still hold every backup)",
        path.display(),
        aside.display()
    )]
    MoveAside {
        path: PathBuf,
        aside: PathBuf,
        reason: String,
        source: std::io::Error,
    },
    #[error(
        "state file {}: a new file is damaged too ({reason}) after the old one was moved to {}: \
         check the disk holding state_dir",
        path.display(),
        aside.display()
    )]
    StillDamaged {
        path: PathBuf,
        aside: PathBuf,
        reason: String,
    },
    #[error(
        "state file {}: schema version {found} was written by a newer coffre (this one knows up \
         to {known}): run that version, or move the file aside to start with an empty history \
         (the stores still hold every backup)",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: usize,
    },
    #[error(
        "state file {}: upgrading the schema to version {version} failed: {source} (nothing \
         was changed; if this file is not coffre's, move it aside)",
        path.display()
    )]
    Migration {
        path: PathBuf,
        version: usize,
        source: rusqlite::Error,
    },
    #[error("state file {}: {action}: {source} ({hint})", path.display())]
    Sql {
        path: PathBuf,
        action: &'static str,
        source: rusqlite::Error,
        hint: &'static str,
    },
    #[error("state file {}: no job {id}", path.display())]
    NoSuchJob { path: PathBuf, id: JobId },
    #[error(
        "state file {}: job {id} already ended as {status}, it cannot end again (was it marked \
         interrupted by another coffre using the same state_dir?)",
        path.display()
    )]
    AlreadyEnded {
        path: PathBuf,
        id: JobId,
        status: JobStatus,
    },
    #[error(
        "state file {}: job {id} cannot end as running (end it as ok, degraded, failed or \
         interrupted)",
        path.display()
    )]
    EndAsRunning { path: PathBuf, id: JobId },
    #[error("state file {}: cannot encode {what} as JSON: {source}", path.display())]
    Encode {
        path: PathBuf,
        what: &'static str,
        source: serde_json::Error,
    },
    #[error(
        "state file {}: {table} row {row}: {column} holds {value:?}, which is not {expected} (the \
         file was changed outside coffre: move it aside to start afresh; the stores still hold \
         every backup)",
        path.display()
    )]
    BadValue {
        path: PathBuf,
        table: &'static str,
        row: String,
        column: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// The open state file.
#[derive(Debug)]
pub struct State {
    conn: Connection,
    path: PathBuf,
    recovered: Option<Recovery>,
}

/// A damaged state file that [`State::open`] moved aside before starting afresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Where the damaged file is now (`state.db.corrupt-20261122T193045Z`).
    pub moved_to: PathBuf,
    /// What was wrong with it (SQLite's error or the integrity check's first findings).
    pub reason: String,
}

/// Why a file could not be opened as a state file: damaged (move it aside) or not.
enum OpenFailure {
    Corrupt(String),
    Other(Box<StateError>),
}

impl State {
    /// Opens `state_dir/state.db`; see [`State::open`].
    pub fn open_in(state_dir: &Path) -> Result<State, StateError> {
        State::open(&state_dir.join(FILE_NAME))
    }

    /// Opens the state file at `path`, creating it (and its folder) or bringing its schema up
    /// to date. A file that is not a database or fails `PRAGMA integrity_check` is renamed
    /// `<name>.corrupt-<UTC time>` with a warning, and a fresh one takes its place.
    pub fn open(path: &Path) -> Result<State, StateError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StateError::CreateDir {
                path: path.to_owned(),
                source,
            })?;
        }
        let reason = match connect(path) {
            Ok(conn) => {
                return Ok(State {
                    conn,
                    path: path.to_owned(),
                    recovered: None,
                });
            }
            Err(OpenFailure::Other(e)) => return Err(*e),
            Err(OpenFailure::Corrupt(reason)) => reason,
        };
        let moved_to = move_aside(path, &reason)?;
        tracing::warn!(
            file = %path.display(),
            moved_to = %moved_to.display(),
            reason = %reason,
            "state file damaged: moved aside, starting with an empty history (the stores still \
             hold every backup)"
        );
        match connect(path) {
            Ok(conn) => Ok(State {
                conn,
                path: path.to_owned(),
                recovered: Some(Recovery { moved_to, reason }),
            }),
            Err(OpenFailure::Other(e)) => Err(*e),
            // A fresh file that is damaged at once: the disk, not the file, is at fault.
            Err(OpenFailure::Corrupt(again)) => Err(StateError::StillDamaged {
                path: path.to_owned(),
                aside: moved_to,
                reason: again,
            }),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The damaged file this [`State::open`] moved aside, if it did (for the service to
    /// report: the history before it is in that file, not in this one).
    pub fn recovered(&self) -> Option<&Recovery> {
        self.recovered.as_ref()
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, StateError> {
        self.conn
            .query_row("SELECT max(version) FROM schema_version", [], |row| {
                row.get::<_, Option<i64>>(0)
            })
            .map(|v| v.unwrap_or(0))
            .map_err(|e| self.sql("reading the schema version", e))
    }

    // ---- jobs ----

    /// Records that a job started; it stays `running` until [`State::record_job_end`].
    pub fn record_job_start(
        &self,
        kind: JobKind,
        source: &str,
        started_at: DateTime<Utc>,
    ) -> Result<JobId, StateError> {
        self.conn
            .prepare_cached(
                "INSERT INTO jobs (kind, source, status, started_at) VALUES (?1, ?2, ?3, ?4) \
                 RETURNING id",
            )
            .and_then(|mut stmt| {
                stmt.query_row(
                    params![
                        kind.as_str(),
                        source,
                        JobStatus::Running.as_str(),
                        time_text(started_at)
                    ],
                    |row| row.get(0),
                )
            })
            .map(JobId)
            .map_err(|e| self.sql("recording the start of a job", e))
    }

    /// Records how a running job ended. Fails if the job does not exist, already ended, or
    /// `end.status` is `running`.
    pub fn record_job_end(&self, id: JobId, end: &JobEnd) -> Result<(), StateError> {
        if end.status == JobStatus::Running {
            return Err(StateError::EndAsRunning {
                path: self.path.clone(),
                id,
            });
        }
        let details = end
            .details
            .as_ref()
            .map(|d| self.encode("job details", d))
            .transpose()?;
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE jobs SET status = ?2, finished_at = ?3, bytes = ?4, error = ?5, \
                 details = ?6 WHERE id = ?1 AND status = 'running'",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    id.0,
                    end.status.as_str(),
                    time_text(end.finished_at),
                    // SQLite integers are i64: 8 EiB is out of reach.
                    end.bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
                    end.error,
                    details
                ])
            })
            .map_err(|e| self.sql("recording the end of a job", e))?;
        if changed == 1 {
            return Ok(());
        }
        match self.job(id)? {
            None => Err(StateError::NoSuchJob {
                path: self.path.clone(),
                id,
            }),
            Some(job) => Err(StateError::AlreadyEnded {
                path: self.path.clone(),
                id,
                status: job.status,
            }),
        }
    }

    /// One job, if it exists.
    pub fn job(&self, id: JobId) -> Result<Option<Job>, StateError> {
        let raw = self
            .conn
            .prepare_cached(&format!("{JOB_COLUMNS} WHERE id = ?1"))
            .and_then(|mut stmt| stmt.query_row([id.0], RawJob::read).optional())
            .map_err(|e| self.sql("reading a job", e))?;
        raw.map(|r| self.decode_job(r)).transpose()
    }

    /// Jobs matching `filter`, newest start first (ties: highest id first).
    pub fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StateError> {
        // SQLite: a negative LIMIT is no limit.
        let limit = filter
            .limit
            .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let raws = self
            .conn
            .prepare_cached(&format!(
                "{JOB_COLUMNS} WHERE (?1 IS NULL OR source = ?1) AND (?2 IS NULL OR kind = ?2) \
                 ORDER BY started_at DESC, id DESC LIMIT ?3"
            ))
            .and_then(|mut stmt| {
                stmt.query_map(
                    params![filter.source, filter.kind.map(JobKind::as_str), limit],
                    RawJob::read,
                )?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| self.sql("listing jobs", e))?;
        raws.into_iter().map(|r| self.decode_job(r)).collect()
    }

    /// The job of `kind` for `source` that most recently ended `ok` (degraded runs do not
    /// count), if any.
    pub fn last_success(&self, source: &str, kind: JobKind) -> Result<Option<Job>, StateError> {
        let raw = self
            .conn
            .prepare_cached(&format!(
                "{JOB_COLUMNS} WHERE source = ?1 AND kind = ?2 AND status = 'ok' \
                 ORDER BY finished_at DESC, id DESC LIMIT 1"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(params![source, kind.as_str()], RawJob::read)
                    .optional()
            })
            .map_err(|e| self.sql("finding the last success", e))?;
        raw.map(|r| self.decode_job(r)).transpose()
    }

    /// At start-up, before any job starts: jobs left `running` by a process that died become
    /// `interrupted`, ended at `now`. Returns how many.
    pub fn mark_running_as_interrupted(&self, now: DateTime<Utc>) -> Result<usize, StateError> {
        self.conn
            .execute(
                "UPDATE jobs SET status = 'interrupted', finished_at = ?1, \
                 error = ?2 WHERE status = 'running'",
                params![time_text(now), INTERRUPTED],
            )
            .map_err(|e| self.sql("marking running jobs as interrupted", e))
    }

    // ---- drill reports ----

    /// Saves a drill report; returns its id.
    pub fn save_drill_report(
        &self,
        report: &NewDrillReport<'_>,
    ) -> Result<DrillReportId, StateError> {
        let text = self.encode("the drill report", report.report)?;
        self.conn
            .prepare_cached(
                "INSERT INTO drill_reports (source, backup_id, target, started_at, ok, report) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            )
            .and_then(|mut stmt| {
                stmt.query_row(
                    params![
                        report.source,
                        report.backup_id,
                        report.target,
                        time_text(report.started_at),
                        report.ok,
                        text
                    ],
                    |row| row.get(0),
                )
            })
            .map(DrillReportId)
            .map_err(|e| self.sql("saving a drill report", e))
    }

    /// Drill reports of `source` (of every source with `None`), newest start first, at most
    /// `limit` of them (`None`: all).
    pub fn drill_reports(
        &self,
        source: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<DrillReport>, StateError> {
        let limit = limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let raws = self
            .conn
            .prepare_cached(&format!(
                "{DRILL_COLUMNS} WHERE (?1 IS NULL OR source = ?1) \
                 ORDER BY started_at DESC, id DESC LIMIT ?2"
            ))
            .and_then(|mut stmt| {
                stmt.query_map(params![source, limit], RawDrill::read)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| self.sql("listing drill reports", e))?;
        raws.into_iter().map(|r| self.decode_drill(r)).collect()
    }

    /// One drill report, if it exists.
    pub fn drill_report(&self, id: DrillReportId) -> Result<Option<DrillReport>, StateError> {
        let raw = self
            .conn
            .prepare_cached(&format!("{DRILL_COLUMNS} WHERE id = ?1"))
            .and_then(|mut stmt| stmt.query_row([id.0], RawDrill::read).optional())
            .map_err(|e| self.sql("reading a drill report", e))?;
        raw.map(|r| self.decode_drill(r)).transpose()
    }

    // ---- catalog cache ----

    /// Replaces the cached catalog of `source` with `entries`, listed from the stores at
    /// `listed_at`.
    pub fn cache_catalog(
        &self,
        source: &str,
        entries: &serde_json::Value,
        listed_at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let text = self.encode("the catalog", entries)?;
        self.conn
            .prepare_cached(
                "INSERT INTO catalog_cache (source, entries, listed_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (source) DO UPDATE SET entries = excluded.entries, \
                 listed_at = excluded.listed_at",
            )
            .and_then(|mut stmt| stmt.execute(params![source, text, time_text(listed_at)]))
            .map_err(|e| self.sql("caching a catalog", e))?;
        Ok(())
    }

    /// The cached catalog of `source`, if any. A cache only: the stores are the truth.
    pub fn cached_catalog(&self, source: &str) -> Result<Option<CachedCatalog>, StateError> {
        let raw = self
            .conn
            .prepare_cached("SELECT entries, listed_at FROM catalog_cache WHERE source = ?1")
            .and_then(|mut stmt| {
                stmt.query_row([source], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .optional()
            })
            .map_err(|e| self.sql("reading a cached catalog", e))?;
        raw.map(|(entries, listed_at)| {
            Ok(CachedCatalog {
                entries: self.json("catalog_cache", source, "entries", &entries)?,
                listed_at: self.time("catalog_cache", source, "listed_at", &listed_at)?,
            })
        })
        .transpose()
    }

    // ---- schedule runs ----

    /// The slot the schedule `name` last served, if it ever ran.
    pub fn last_run(&self, name: &str) -> Result<Option<DateTime<Utc>>, StateError> {
        let raw = self
            .conn
            .prepare_cached("SELECT last_run FROM schedule_runs WHERE name = ?1")
            .and_then(|mut stmt| {
                stmt.query_row([name], |row| row.get::<_, String>(0))
                    .optional()
            })
            .map_err(|e| self.sql("reading the last run of a schedule", e))?;
        raw.map(|t| self.time("schedule_runs", name, "last_run", &t))
            .transpose()
    }

    /// Records that the schedule `name` served the slot `t`.
    pub fn set_last_run(&self, name: &str, t: DateTime<Utc>) -> Result<(), StateError> {
        self.conn
            .prepare_cached(
                "INSERT INTO schedule_runs (name, last_run) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET last_run = excluded.last_run",
            )
            .and_then(|mut stmt| stmt.execute(params![name, time_text(t)]))
            .map_err(|e| self.sql("recording the last run of a schedule", e))?;
        Ok(())
    }

    // ---- helpers ----

    fn sql(&self, action: &'static str, source: rusqlite::Error) -> StateError {
        StateError::Sql {
            path: self.path.clone(),
            action,
            hint: hint(&source),
            source,
        }
    }

    fn encode(&self, what: &'static str, value: &serde_json::Value) -> Result<String, StateError> {
        serde_json::to_string(value).map_err(|source| StateError::Encode {
            path: self.path.clone(),
            what,
            source,
        })
    }

    fn bad(
        &self,
        table: &'static str,
        row: &str,
        column: &'static str,
        value: &str,
        expected: &'static str,
    ) -> StateError {
        StateError::BadValue {
            path: self.path.clone(),
            table,
            row: row.to_owned(),
            column,
            value: value.to_owned(),
            expected,
        }
    }

    fn time(
        &self,
        table: &'static str,
        row: &str,
        column: &'static str,
        text: &str,
    ) -> Result<DateTime<Utc>, StateError> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| self.bad(table, row, column, text, "an RFC 3339 time"))
    }

    fn json(
        &self,
        table: &'static str,
        row: &str,
        column: &'static str,
        text: &str,
    ) -> Result<serde_json::Value, StateError> {
        serde_json::from_str(text).map_err(|_| self.bad(table, row, column, text, "JSON"))
    }

    fn decode_job(&self, raw: RawJob) -> Result<Job, StateError> {
        let row = raw.id.to_string();
        let t = "jobs";
        let kind = raw
            .kind
            .parse()
            .map_err(|_| self.bad(t, &row, "kind", &raw.kind, "a job kind"))?;
        let status = raw
            .status
            .parse()
            .map_err(|_| self.bad(t, &row, "status", &raw.status, "a job status"))?;
        let bytes = raw
            .bytes
            .map(|b| {
                u64::try_from(b).map_err(|_| self.bad(t, &row, "bytes", &b.to_string(), "a size"))
            })
            .transpose()?;
        Ok(Job {
            id: JobId(raw.id),
            kind,
            source: raw.source,
            status,
            started_at: self.time(t, &row, "started_at", &raw.started_at)?,
            finished_at: raw
                .finished_at
                .map(|f| self.time(t, &row, "finished_at", &f))
                .transpose()?,
            bytes,
            error: raw.error,
            details: raw
                .details
                .map(|d| self.json(t, &row, "details", &d))
                .transpose()?,
        })
    }

    fn decode_drill(&self, raw: RawDrill) -> Result<DrillReport, StateError> {
        let row = raw.id.to_string();
        let t = "drill_reports";
        Ok(DrillReport {
            id: DrillReportId(raw.id),
            source: raw.source,
            backup_id: raw.backup_id,
            target: raw.target,
            started_at: self.time(t, &row, "started_at", &raw.started_at)?,
            ok: raw.ok,
            report: self.json(t, &row, "report", &raw.report)?,
        })
    }
}

const JOB_COLUMNS: &str = "SELECT id, kind, source, status, started_at, finished_at, bytes, \
                           error, details FROM jobs";

/// A `jobs` row as stored.
struct RawJob {
    id: i64,
    kind: String,
    source: String,
    status: String,
    started_at: String,
    finished_at: Option<String>,
    bytes: Option<i64>,
    error: Option<String>,
    details: Option<String>,
}

impl RawJob {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawJob> {
        Ok(RawJob {
            id: row.get(0)?,
            kind: row.get(1)?,
            source: row.get(2)?,
            status: row.get(3)?,
            started_at: row.get(4)?,
            finished_at: row.get(5)?,
            bytes: row.get(6)?,
            error: row.get(7)?,
            details: row.get(8)?,
        })
    }
}

const DRILL_COLUMNS: &str =
    "SELECT id, source, backup_id, target, started_at, ok, report FROM drill_reports";

/// A `drill_reports` row as stored.
struct RawDrill {
    id: i64,
    source: String,
    backup_id: String,
    target: String,
    started_at: String,
    ok: bool,
    report: String,
}

impl RawDrill {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawDrill> {
        Ok(RawDrill {
            id: row.get(0)?,
            source: row.get(1)?,
            backup_id: row.get(2)?,
            target: row.get(3)?,
            started_at: row.get(4)?,
            ok: row.get(5)?,
            report: row.get(6)?,
        })
    }
}

/// RFC 3339 UTC to the millisecond: `2026-11-22T19:30:45.123Z`.
fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}

/// The way out of an SQLite error, for messages.
fn hint(e: &rusqlite::Error) -> &'static str {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "another process holds the file: is a second coffre using the same state_dir?"
        }
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::CannotOpen) => {
            "check that coffre can write state_dir"
        }
        Some(ErrorCode::DiskFull) => "the disk holding state_dir is full",
        Some(ErrorCode::SystemIoFailure) => "an I/O error: check the disk holding state_dir",
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            "the file is damaged: restart coffre, which moves a damaged state file aside; the \
             stores still hold every backup"
        }
        _ => "the state file only holds history: moving it aside loses no backup",
    }
}

/// Opens, checks and migrates the file; tells damage apart from other failures.
fn connect(path: &Path) -> Result<Connection, OpenFailure> {
    let other = |source: rusqlite::Error| {
        OpenFailure::Other(Box::new(StateError::Open {
            path: path.to_owned(),
            hint: hint(&source),
            source,
        }))
    };
    let classify = |source: rusqlite::Error| {
        if is_corruption(&source) {
            OpenFailure::Corrupt(source.to_string())
        } else {
            other(source)
        }
    };
    let mut conn = Connection::open(path).map_err(classify)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(other)?;
    // Until the file is known to be sound, closing must not checkpoint its WAL into it nor
    // delete the WAL: a damaged file is moved aside with its WAL as found.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .map_err(other)?;

    let problems: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut stmt| stmt.query_map([], |row| row.get::<_, String>(0))?.collect())
        .map_err(classify)?;
    if problems != ["ok"] {
        let mut reason = problems
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        if problems.len() > 3 {
            reason.push_str("; …");
        }
        return Err(OpenFailure::Corrupt(format!("integrity check: {reason}")));
    }

    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)
        .map_err(other)?;
    conn.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get::<_, String>(0))
        .map_err(classify)?;
    conn.pragma_update(None, "synchronous", "normal")
        .map_err(classify)?;
    migrate(&mut conn, path, MIGRATIONS).map_err(|e| OpenFailure::Other(Box::new(e)))?;
    Ok(conn)
}

/// Applies the migrations the file lacks, all in one transaction.
fn migrate(conn: &mut Connection, path: &Path, migrations: &[&str]) -> Result<(), StateError> {
    let sql = |action: &'static str| {
        move |source: rusqlite::Error| StateError::Sql {
            path: path.to_owned(),
            action,
            hint: hint(&source),
            source,
        }
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("starting the schema upgrade"))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version    INTEGER PRIMARY KEY,
            applied_at TEXT NOT NULL
        )",
    )
    .map_err(sql("creating the schema_version table"))?;
    let found: i64 = tx
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_version",
            [],
            |row| row.get(0),
        )
        .map_err(sql("reading the schema version"))?;
    let known = migrations.len();
    let current = match usize::try_from(found) {
        Ok(v) if v <= known => v,
        _ => {
            return Err(StateError::TooNew {
                path: path.to_owned(),
                found,
                known,
            });
        }
    };
    if current == known {
        return Ok(()); // the transaction rolls back: nothing was written
    }
    let now = time_text(Utc::now());
    for (i, script) in migrations.iter().enumerate().skip(current) {
        let version = i + 1;
        tx.execute_batch(script)
            .and_then(|()| {
                tx.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
                    params![i64::try_from(version).unwrap_or(i64::MAX), now],
                )
            })
            .map_err(|source| StateError::Migration {
                path: path.to_owned(),
                version,
                source,
            })?;
    }
    tx.commit().map_err(sql("committing the schema upgrade"))
}

/// Renames a damaged file (and its `-wal` and `-shm` files) to `<name>.corrupt-<UTC time>`.
fn move_aside(path: &Path, reason: &str) -> Result<PathBuf, StateError> {
    let name = path
        .file_name()
        .map_or_else(|| FILE_NAME.into(), |n| n.to_string_lossy().into_owned());
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut n = 0;
    let aside = loop {
        let candidate = if n == 0 {
            path.with_file_name(format!("{name}.corrupt-{stamp}"))
        } else {
            path.with_file_name(format!("{name}.corrupt-{stamp}-{n}"))
        };
        if !candidate.exists() {
            break candidate;
        }
        n += 1;
    };
    let failed = |source: std::io::Error| StateError::MoveAside {
        path: path.to_owned(),
        aside: aside.clone(),
        reason: reason.to_owned(),
        source,
    };
    std::fs::rename(path, &aside).map_err(failed)?;
    for suffix in ["-wal", "-shm"] {
        let from = with_suffix(path, suffix);
        let to = with_suffix(&aside, suffix);
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e)),
        }
    }
    Ok(aside)
}

/// `path` with `suffix` appended to its file name (`state.db` → `state.db-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
