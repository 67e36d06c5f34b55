//! Prometheus metrics of `coffre serve`, in the OpenMetrics text format (`/metrics`).
//!
//! Per source: when the last good backup ended and how old it is now, the status, stored
//! bytes and duration of the last backup, the outcome of each target in it, the jobs
//! running and their live progress, job and skipped-slot counters, the last drill of each
//! target (outcome, time, recovery time, RPO), and the RPO watch (age of the newest good
//! backup in the stores, breached or not). Seeded from the state store at start-up, so a
//! restart does not blank the last-backup and drill series; ages are computed at each
//! scrape.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::drill::DrillReport;
use crate::pipeline::backup::BackupReport;
use crate::progress::Progress;
use crate::state::{Job, JobKind, JobStatus};

/// The statuses a finished job can have (the `status` label of `coffre_backup_last_status`).
const END_STATUSES: [JobStatus; 4] = [
    JobStatus::Ok,
    JobStatus::Degraded,
    JobStatus::Failed,
    JobStatus::Interrupted,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    source: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    source: String,
    kind: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    source: String,
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunningLabels {
    source: String,
    kind: String,
}

/// A job running now, for its progress series.
#[derive(Debug)]
struct Tracked {
    source: String,
    kind: String,
    job: Option<i64>,
    progress: Arc<Progress>,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every series of the service, and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    last_success: Family<SourceLabels, FloatGauge>,
    newest_good_age: Family<SourceLabels, FloatGauge>,
    last_status: Family<StatusLabels, Gauge>,
    last_bytes: Family<SourceLabels, Gauge>,
    last_duration: Family<SourceLabels, FloatGauge>,
    target_ok: Family<TargetLabels, Gauge>,
    running: Family<SourceLabels, Gauge>,
    jobs: Family<JobLabels, Counter>,
    skipped: Family<SourceLabels, Counter>,
    drill_ok: Family<TargetLabels, Gauge>,
    drill_time: Family<TargetLabels, FloatGauge>,
    drill_recovery: Family<TargetLabels, FloatGauge>,
    drill_rpo: Family<TargetLabels, FloatGauge>,
    rpo_age: Family<SourceLabels, FloatGauge>,
    rpo_breached: Family<SourceLabels, Gauge>,
    progress_plain: Family<RunningLabels, Gauge>,
    progress_stored: Family<RunningLabels, Gauge>,
    progress_seconds: Family<RunningLabels, FloatGauge>,
    /// When each source's newest good backup ended, for its age at scrape time.
    successes: Mutex<BTreeMap<String, DateTime<Utc>>>,
    /// Jobs running now, by a sequence number.
    tracked: Mutex<BTreeMap<u64, Tracked>>,
    next_track: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let last_success = Family::<SourceLabels, FloatGauge>::default();
        let newest_good_age = Family::<SourceLabels, FloatGauge>::default();
        let last_status = Family::<StatusLabels, Gauge>::default();
        let last_bytes = Family::<SourceLabels, Gauge>::default();
        let last_duration = Family::<SourceLabels, FloatGauge>::default();
        let target_ok = Family::<TargetLabels, Gauge>::default();
        let running = Family::<SourceLabels, Gauge>::default();
        let jobs = Family::<JobLabels, Counter>::default();
        let skipped = Family::<SourceLabels, Counter>::default();
        registry.register(
            "coffre_backup_last_success_timestamp_seconds",
            "When the source's last backup stored in every target ended (Unix time)",
            last_success.clone(),
        );
        registry.register(
            "coffre_backup_newest_good_age_seconds",
            "Seconds since the source's last backup stored in every target ended",
            newest_good_age.clone(),
        );
        registry.register(
            "coffre_backup_last_status",
            "1 for the status of the source's last backup (ok, degraded, failed, interrupted)",
            last_status.clone(),
        );
        registry.register(
            "coffre_backup_last_stored_bytes",
            "Bytes the source's last backup stored in each target (encrypted size)",
            last_bytes.clone(),
        );
        registry.register(
            "coffre_backup_last_duration_seconds",
            "How long the source's last backup took",
            last_duration.clone(),
        );
        registry.register(
            "coffre_backup_last_target_ok",
            "1 if the source's last backup was stored whole in this target, 0 if not",
            target_ok.clone(),
        );
        registry.register(
            "coffre_jobs_running",
            "Jobs of the source running now",
            running.clone(),
        );
        registry.register(
            "coffre_jobs",
            "Jobs ended since the service started, by source, kind and status",
            jobs.clone(),
        );
        registry.register(
            "coffre_schedule_skipped_slots",
            "Scheduled slots not run because a job of the source was still running",
            skipped.clone(),
        );
        let drill_ok = Family::<TargetLabels, Gauge>::default();
        let drill_time = Family::<TargetLabels, FloatGauge>::default();
        let drill_recovery = Family::<TargetLabels, FloatGauge>::default();
        let drill_rpo = Family::<TargetLabels, FloatGauge>::default();
        let rpo_age = Family::<SourceLabels, FloatGauge>::default();
        let rpo_breached = Family::<SourceLabels, Gauge>::default();
        let progress_plain = Family::<RunningLabels, Gauge>::default();
        let progress_stored = Family::<RunningLabels, Gauge>::default();
        let progress_seconds = Family::<RunningLabels, FloatGauge>::default();
        registry.register(
            "coffre_drill_last_ok",
            "1 if the last drill of the source from this target passed, 0 if it failed",
            drill_ok.clone(),
        );
        for (name, help, family) in [
            (
                "coffre_drill_last_timestamp_seconds",
                "When the last drill of the source from this target started (Unix time)",
                &drill_time,
            ),
            (
                "coffre_drill_last_recovery_seconds",
                "Download, restore and checks of the last drill from this target (the RTO measured)",
                &drill_recovery,
            ),
            (
                "coffre_drill_last_rpo_seconds",
                "Age of the backup the last drill from this target restored",
                &drill_rpo,
            ),
        ] {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "coffre_rpo_newest_good_age_seconds",
            "Age of the source's newest backup with a whole copy, as found in the stores",
            rpo_age.clone(),
        );
        registry.register(
            "coffre_rpo_breached",
            "1 if the source's newest good backup is older than its rpo_hours (or missing)",
            rpo_breached.clone(),
        );
        registry.register(
            "coffre_job_running_plain_bytes",
            "Plain SQL bytes read or written so far by a running job",
            progress_plain.clone(),
        );
        registry.register(
            "coffre_job_running_stored_bytes",
            "Encrypted bytes stored or read so far by a running job",
            progress_stored.clone(),
        );
        registry.register(
            "coffre_job_running_seconds",
            "How long a running job has run",
            progress_seconds.clone(),
        );
        Metrics {
            registry,
            last_success,
            newest_good_age,
            last_status,
            last_bytes,
            last_duration,
            target_ok,
            running,
            jobs,
            skipped,
            drill_ok,
            drill_time,
            drill_recovery,
            drill_rpo,
            rpo_age,
            rpo_breached,
            progress_plain,
            progress_stored,
            progress_seconds,
            successes: Mutex::new(BTreeMap::new()),
            tracked: Mutex::new(BTreeMap::new()),
            next_track: AtomicU64::new(0),
        }
    }

    fn source(source: &str) -> SourceLabels {
        SourceLabels {
            source: source.to_owned(),
        }
    }

    /// Creates the series every source has from the start: jobs running (0) and, for a
    /// scheduled one, skipped slots (0), so that alerts on them see a value, not an absence.
    pub fn add_source(&self, source: &str, scheduled: bool) {
        let labels = Metrics::source(source);
        self.running.get_or_create(&labels).set(0);
        if scheduled {
            self.skipped.get_or_create(&labels).inc_by(0);
        }
    }

    /// Seeds the last-backup series of `source` from the history: its newest ended job and
    /// its newest good one (either may be absent).
    pub fn seed(&self, source: &str, last: Option<&Job>, last_good: Option<&Job>) {
        if let Some(job) = last_good.and_then(|j| j.finished_at) {
            self.set_success(source, job);
        }
        if let Some(job) = last.filter(|j| j.status != JobStatus::Running) {
            self.set_last(source, job.status, job.bytes, job.duration().map(seconds));
        }
    }

    /// A job of `source` started.
    pub fn job_started(&self, source: &str) {
        self.running.get_or_create(&Metrics::source(source)).inc();
    }

    /// A job of `source` ended (`report` when it got that far).
    pub fn job_ended(
        &self,
        source: &str,
        kind: JobKind,
        status: JobStatus,
        finished_at: DateTime<Utc>,
        duration_s: f64,
        report: Option<&BackupReport>,
    ) {
        self.job_counted(source, kind, status);
        self.set_last(
            source,
            status,
            report.map(|r| r.stored_bytes),
            Some(duration_s),
        );
        if let Some(report) = report {
            for target in &report.targets {
                self.target_ok
                    .get_or_create(&TargetLabels {
                        source: source.to_owned(),
                        target: target.target.clone(),
                    })
                    .set(i64::from(target.status == "ok"));
            }
        }
        if status == JobStatus::Ok {
            self.set_success(source, finished_at);
        }
    }

    /// A job of `source` ended: no longer running, counted by kind and status.
    pub fn job_counted(&self, source: &str, kind: JobKind, status: JobStatus) {
        self.running.get_or_create(&Metrics::source(source)).dec();
        self.jobs
            .get_or_create(&JobLabels {
                source: source.to_owned(),
                kind: kind.as_str().to_owned(),
                status: status.as_str().to_owned(),
            })
            .inc();
    }

    /// Follows the progress of a running job until [`Self::untrack`].
    pub fn track(
        &self,
        source: &str,
        kind: &str,
        job: Option<i64>,
        progress: Arc<Progress>,
    ) -> u64 {
        let n = self.next_track.fetch_add(1, Ordering::Relaxed);
        self.tracked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                n,
                Tracked {
                    source: source.to_owned(),
                    kind: kind.to_owned(),
                    job,
                    progress,
                },
            );
        n
    }

    /// The live progress of running job `job`, if it runs.
    pub fn progress_of(&self, job: i64) -> Option<serde_json::Value> {
        let tracked = self
            .tracked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tracked.values().find(|t| t.job == Some(job)).map(|t| {
            let plain = t.progress.plain_bytes.load(Ordering::Relaxed);
            let stored = t.progress.stored_bytes.load(Ordering::Relaxed);
            let secs = t.progress.elapsed().as_secs_f64();
            serde_json::json!({
                "plain_bytes": plain,
                "stored_bytes": stored,
                "seconds": (secs * 10.0).round() / 10.0,
                "plain_bytes_per_second": (plain as f64 / secs.max(1e-3)).round(),
            })
        })
    }

    pub fn untrack(&self, n: u64) {
        self.tracked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&n);
    }

    /// A drill ended (or, at start-up, one from the history).
    pub fn drill_ended(&self, report: &DrillReport) {
        let labels = TargetLabels {
            source: report.source.clone(),
            target: report.target.clone(),
        };
        self.drill_ok
            .get_or_create(&labels)
            .set(i64::from(report.ok));
        self.drill_time
            .get_or_create(&labels)
            .set(report.started_at.timestamp_millis() as f64 / 1000.0);
        self.drill_recovery
            .get_or_create(&labels)
            .set(report.timings.recovery_s);
        if let Some(rpo) = report.rpo_seconds {
            self.drill_rpo.get_or_create(&labels).set(rpo);
        }
    }

    /// Seeds the drill series from a saved report, oldest first.
    pub fn seed_drill(&self, saved: &crate::state::DrillReport) {
        match serde_json::from_value::<DrillReport>(saved.report.clone()) {
            Ok(report) => self.drill_ended(&report),
            Err(e) => tracing::warn!(report = saved.id.0, error = %e, "drill report not read"),
        }
    }

    /// The RPO watch's finding for `source`.
    pub fn rpo(&self, source: &str, age_s: Option<f64>, breached: bool) {
        let labels = Metrics::source(source);
        if let Some(age) = age_s {
            self.rpo_age.get_or_create(&labels).set(age);
        }
        self.rpo_breached
            .get_or_create(&labels)
            .set(i64::from(breached));
    }

    /// `slots` slots of `source` passed while its previous job ran.
    pub fn slots_skipped(&self, source: &str, slots: u64) {
        self.skipped
            .get_or_create(&Metrics::source(source))
            .inc_by(slots);
    }

    fn set_last(&self, source: &str, status: JobStatus, bytes: Option<u64>, duration: Option<f64>) {
        for s in END_STATUSES {
            self.last_status
                .get_or_create(&StatusLabels {
                    source: source.to_owned(),
                    status: s.as_str().to_owned(),
                })
                .set(i64::from(s == status));
        }
        let labels = Metrics::source(source);
        self.last_bytes
            .get_or_create(&labels)
            .set(bytes.map_or(0, |b| i64::try_from(b).unwrap_or(i64::MAX)));
        if let Some(duration) = duration {
            self.last_duration.get_or_create(&labels).set(duration);
        }
    }

    fn set_success(&self, source: &str, finished_at: DateTime<Utc>) {
        self.last_success
            .get_or_create(&Metrics::source(source))
            .set(finished_at.timestamp_millis() as f64 / 1000.0);
        self.successes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(source.to_owned(), finished_at);
    }

    /// Every series in the OpenMetrics text format, ages computed as of `now`.
    pub fn render(&self, now: DateTime<Utc>) -> Result<String, std::fmt::Error> {
        {
            let successes = self
                .successes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (source, at) in successes.iter() {
                self.newest_good_age
                    .get_or_create(&Metrics::source(source))
                    .set(seconds(now - *at).max(0.0));
            }
        }
        {
            let tracked = self
                .tracked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.progress_plain.clear();
            self.progress_stored.clear();
            self.progress_seconds.clear();
            for t in tracked.values() {
                let labels = RunningLabels {
                    source: t.source.clone(),
                    kind: t.kind.clone(),
                };
                let bytes =
                    |a: &AtomicU64| i64::try_from(a.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
                self.progress_plain
                    .get_or_create(&labels)
                    .set(bytes(&t.progress.plain_bytes));
                self.progress_stored
                    .get_or_create(&labels)
                    .set(bytes(&t.progress.stored_bytes));
                self.progress_seconds
                    .get_or_create(&labels)
                    .set(t.progress.elapsed().as_secs_f64());
            }
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

fn seconds(delta: chrono::TimeDelta) -> f64 {
    delta.num_milliseconds() as f64 / 1000.0
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
    fn a_success_then_a_failure() {
        let m = Metrics::new();
        m.job_started("billing");
        m.job_ended(
            "billing",
            JobKind::Backup,
            JobStatus::Ok,
            at("2026-11-22T10:00:00Z"),
            2.5,
            None,
        );
        m.job_started("billing");
        m.job_ended(
            "billing",
            JobKind::Backup,
            JobStatus::Failed,
            at("2026-11-22T11:00:00Z"),
            0.25,
            None,
        );
        let text = m.render(at("2026-11-22T12:00:00Z")).expect("render");
        for line in [
            "coffre_backup_last_success_timestamp_seconds{source=\"billing\"} 1795341600.0",
            "coffre_backup_newest_good_age_seconds{source=\"billing\"} 7200.0",
            "coffre_backup_last_status{source=\"billing\",status=\"failed\"} 1",
            "coffre_backup_last_status{source=\"billing\",status=\"ok\"} 0",
            "coffre_backup_last_duration_seconds{source=\"billing\"} 0.25",
            "coffre_jobs_total{source=\"billing\",kind=\"backup\",status=\"ok\"} 1",
            "coffre_jobs_total{source=\"billing\",kind=\"backup\",status=\"failed\"} 1",
            "coffre_jobs_running{source=\"billing\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
