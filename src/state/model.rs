//! The records of the state store: job kinds and statuses, jobs, drill reports, cached
//! catalogs.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::manifest::BackupKind;
use crate::pipeline::backup::{BackupReport, BackupStatus};

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Backup,
    AnonymizedBackup,
    Prune,
    Heal,
    Drill,
    Verify,
    /// An anonymized copy of an existing backup, for a requester (support).
    AnonymizedCopy,
    /// A restore asked through the API.
    Restore,
}

impl JobKind {
    pub const ALL: [JobKind; 8] = [
        JobKind::Backup,
        JobKind::AnonymizedBackup,
        JobKind::Prune,
        JobKind::Heal,
        JobKind::Drill,
        JobKind::Verify,
        JobKind::AnonymizedCopy,
        JobKind::Restore,
    ];

    /// The stored and displayed name: `backup`, `anonymized_backup`, `prune`, …
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::AnonymizedBackup => "anonymized_backup",
            JobKind::Prune => "prune",
            JobKind::Heal => "heal",
            JobKind::Drill => "drill",
            JobKind::Verify => "verify",
            JobKind::AnonymizedCopy => "anonymized_copy",
            JobKind::Restore => "restore",
        }
    }
}

impl From<BackupKind> for JobKind {
    fn from(kind: BackupKind) -> JobKind {
        match kind {
            BackupKind::Full => JobKind::Backup,
            BackupKind::Anonymized => JobKind::AnonymizedBackup,
        }
    }
}

/// How a job stands or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Started, not ended yet (or coffre died: see
    /// [`State::mark_running_as_interrupted`](super::State::mark_running_as_interrupted)).
    Running,
    Ok,
    /// Partly done: for a backup, stored in some targets only.
    Degraded,
    Failed,
    /// coffre stopped (crash, kill, shutdown timeout) before the job ended.
    Interrupted,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Running,
        JobStatus::Ok,
        JobStatus::Degraded,
        JobStatus::Failed,
        JobStatus::Interrupted,
    ];

    /// The stored and displayed name: `running`, `ok`, `degraded`, `failed`, `interrupted`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Ok => "ok",
            JobStatus::Degraded => "degraded",
            JobStatus::Failed => "failed",
            JobStatus::Interrupted => "interrupted",
        }
    }
}

impl From<BackupStatus> for JobStatus {
    fn from(status: BackupStatus) -> JobStatus {
        match status {
            BackupStatus::Ok => JobStatus::Ok,
            BackupStatus::Degraded => JobStatus::Degraded,
            BackupStatus::Failed => JobStatus::Failed,
        }
    }
}

/// A name that is not one of the enum's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (expected one of: {expected})")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

fn unknown<T: Copy>(
    what: &'static str,
    value: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> UnknownName {
    UnknownName {
        what,
        value: value.to_owned(),
        expected: all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", "),
    }
}

impl FromStr for JobKind {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<JobKind, UnknownName> {
        JobKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| unknown("job kind", s, &JobKind::ALL, JobKind::as_str))
    }
}

impl FromStr for JobStatus {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<JobStatus, UnknownName> {
        JobStatus::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| unknown("job status", s, &JobStatus::ALL, JobStatus::as_str))
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's number in the history; never reused, even after the newest job is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A drill report's number; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DrillReportId(pub i64);

impl fmt::Display for DrillReportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One job of the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: JobId,
    pub kind: JobKind,
    pub source: String,
    pub status: JobStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Bytes the job stored (a backup's stored bytes), if it says.
    pub bytes: Option<u64>,
    pub error: Option<String>,
    /// Whatever the job reports (a backup's `BackupReport`, …).
    pub details: Option<serde_json::Value>,
}

impl Job {
    /// From start to end, once ended.
    pub fn duration(&self) -> Option<TimeDelta> {
        self.finished_at.map(|end| end - self.started_at)
    }
}

/// How a job ended; see [`State::record_job_end`](super::State::record_job_end).
#[derive(Debug, Clone, PartialEq)]
pub struct JobEnd {
    pub status: JobStatus,
    pub finished_at: DateTime<Utc>,
    pub bytes: Option<u64>,
    pub error: Option<String>,
    pub details: Option<serde_json::Value>,
}

impl JobEnd {
    /// The end of a backup job, from what `run_backup` reports: its status, stored bytes,
    /// error, and the whole report as details.
    pub fn from_backup_report(
        report: &BackupReport,
        finished_at: DateTime<Utc>,
    ) -> Result<JobEnd, serde_json::Error> {
        Ok(JobEnd {
            status: report.status.into(),
            finished_at,
            bytes: Some(report.stored_bytes),
            error: report.error.clone(),
            details: Some(serde_json::to_value(report)?),
        })
    }
}

/// Which jobs [`State::jobs`](super::State::jobs) returns: `JobFilter::default()` is every job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub source: Option<String>,
    pub kind: Option<JobKind>,
    /// At most this many, newest first.
    pub limit: Option<usize>,
}

impl JobFilter {
    pub fn source(mut self, source: &str) -> JobFilter {
        self.source = Some(source.to_owned());
        self
    }

    pub fn kind(mut self, kind: JobKind) -> JobFilter {
        self.kind = Some(kind);
        self
    }

    pub fn limit(mut self, limit: usize) -> JobFilter {
        self.limit = Some(limit);
        self
    }
}

/// A drill report to save; see [`State::save_drill_report`](super::State::save_drill_report).
#[derive(Debug, Clone, Copy)]
pub struct NewDrillReport<'a> {
    pub source: &'a str,
    pub backup_id: &'a str,
    pub target: &'a str,
    pub started_at: DateTime<Utc>,
    pub ok: bool,
    pub report: &'a serde_json::Value,
}

/// A saved drill report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillReport {
    pub id: DrillReportId,
    pub source: String,
    pub backup_id: String,
    pub target: String,
    pub started_at: DateTime<Utc>,
    pub ok: bool,
    pub report: serde_json::Value,
}

/// A source's catalog as last listed from the stores.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedCatalog {
    pub entries: serde_json::Value,
    pub listed_at: DateTime<Utc>,
}
