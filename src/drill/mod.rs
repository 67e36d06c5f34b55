//! Restore drills: prove that a source's backups restore, whole and right, from each
//! of its targets in turn.
//!
//! A drill takes the source's drill lock, drops the scratch databases killed drills left,
//! picks a target (the one drilled least recently, from the reports kept in the stores)
//! and a backup (the newest, or a random one of a window), then restores it from that
//! target alone into a fresh scratch database — download with size and SHA-256 checks,
//! decryption, decompression, the restore in one transaction with the streamed rows
//! counted and checksummed ([`crate::pipeline::restore`]). It then reads the restored
//! database back and compares every table's count and checksum with the manifest, runs
//! the SQL assertions (read-only), measures the time against `rto_seconds`, drops the
//! scratch database, seals the report with the integrity key and writes it to the
//! source's targets. A failed check fails the drill but the report is still made.

pub mod checks;
pub mod report;
pub mod scratch;

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use rand::seq::IndexedRandom as _;

use crate::catalog::{self, Entry};
use crate::config::{DrillConfig, DrillPick, SourceConfig};
use crate::pipeline::lock::{LockError, SourceLock};
use crate::pipeline::restore::{RestoreError, RestoreOptions, run_restore};
use crate::pipeline::{Context, ContextError, seconds_since};
use crate::progress::Progress;
use crate::source::SourceError;
pub use report::{Check, DrillReport, Outcome};
use report::{TableResult, Timings};
use scratch::{Scratch, Server};

/// Why a drill could not be run at all (a drill that runs and fails is a report).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(
        "config {file}: the drills of source {source_name:?} need a scratch server: add \
         [drills.{source_name}] with scratch_url = \"{example}\" (a server where the drill \
         may create and drop databases)"
    )]
    NoScratch {
        file: String,
        source_name: String,
        example: &'static str,
    },
    #[error(
        "target {target:?} is not drilled for source {source_name:?} (its drill targets: {})",
        known.join(", ")
    )]
    UnknownTarget {
        source_name: String,
        target: String,
        known: Vec<String>,
    },
    #[error("the drill needs the identity to decrypt: set [encryption] identity_file")]
    NoIdentity,
    #[error("scratch server {scratch}: {source}")]
    Scratch {
        scratch: String,
        #[source]
        source: SourceError,
    },
    #[error("{0}")]
    Other(String),
}

/// What to drill.
#[derive(Debug, Clone, Default)]
pub struct DrillOptions {
    pub source: String,
    /// Drill this target rather than the next in turn.
    pub target: Option<String>,
}

/// Runs one drill of `opts.source`; see the module documentation.
pub async fn run_drill(
    ctx: &Context,
    opts: &DrillOptions,
    progress: Arc<Progress>,
) -> Result<DrillReport, DrillError> {
    let started_at = Utc::now();
    let started = Instant::now();
    let source = &opts.source;
    let source_cfg = ctx.config.source(source).map_err(ContextError::from)?;
    let drill_cfg = ctx
        .config
        .drills
        .get(source)
        .cloned()
        .unwrap_or_else(default_drill);
    if ctx.config.encryption.identity_file.is_none() {
        return Err(DrillError::NoIdentity);
    }
    let key = ctx.integrity_key()?.clone();
    let stores = ctx.stores_of(source)?;

    let candidates: Vec<String> = if drill_cfg.targets.is_empty() {
        source_cfg.targets().to_vec()
    } else {
        drill_cfg.targets.clone()
    };
    let target = match &opts.target {
        Some(t) if candidates.contains(t) => t.clone(),
        Some(t) => {
            return Err(DrillError::UnknownTarget {
                source_name: source.clone(),
                target: t.clone(),
                known: candidates,
            });
        }
        None => next_target(&stores, source, &candidates).await,
    };

    // One drill of a source at a time; the lock also makes every scratch database of the
    // source found now a leftover of a killed drill.
    let _lock = SourceLock::acquire(&ctx.config.state_dir.join("drills"), source)?;
    let server = scratch_server(ctx, source, source_cfg, &drill_cfg)?;
    // Where the source's backups live tells this appliance's scratch databases apart
    // from another's with a source of the same name.
    let scope: String = stores
        .iter()
        .map(|s| s.location())
        .collect::<Vec<_>>()
        .join(",");
    let leftovers = {
        let (server, source, scope) = (server.clone(), source.clone(), scope.clone());
        blocking(move || server.clean_leftovers(&source, &scope)).await
    }
    .map_err(|source| DrillError::Scratch {
        scratch: server.describe(),
        source,
    })?;
    if leftovers > 0 {
        tracing::warn!(
            source,
            leftovers,
            "scratch databases of killed drills dropped"
        );
    }

    let mut run = Run::new(source, source_cfg.kind(), &target, started_at);
    run.report.rto_seconds = drill_cfg.rto_seconds;

    // 1. The backup.
    let listing = catalog::list_source(ctx, source).await?;
    let picked = pick_backup(&listing, &target, &drill_cfg, started_at);
    let entry = match picked {
        Ok(entry) => entry,
        Err(why) => {
            run.fail("backup", why);
            return Ok(run.finish(&key, started));
        }
    };
    let manifest = entry.manifest().cloned();
    if let Some(m) = &manifest {
        run.report.backup_id = Some(m.id.clone());
        run.report.backup_kind = Some(m.kind.as_str().to_owned());
        run.report.backup_finished_at = Some(m.finished_at);
        run.report.rpo_seconds = Some(seconds_between(m.finished_at, started_at));
        run.report.stored_bytes = m.data().map(|d| d.size);
        run.report.rows = Some(m.tables.total_rows());
        run.report.tables = m
            .tables
            .tables
            .iter()
            .map(|t| TableResult {
                table: t.qualified(),
                expected_rows: t.rows,
                restored_rows: None,
                expected_checksum: t.checksum.clone(),
                restored_checksum: None,
                ok: false,
            })
            .collect();
    }
    run.pass(
        "backup",
        format!(
            "backup {} ({}), finished {}, {} old; copy in target {target} is whole",
            entry.id,
            run.report.backup_kind.as_deref().unwrap_or("?"),
            run.report
                .backup_finished_at
                .map_or_else(|| "?".to_owned(), |t| t.to_rfc3339()),
            human_age(run.report.rpo_seconds.unwrap_or(0.0)),
        ),
    );

    // 2. The scratch database.
    let scratch = {
        let (server, source) = (server.clone(), source.clone());
        blocking(move || server.create(&source, &scope, started_at)).await
    };
    let scratch = match scratch {
        Ok(s) => s,
        Err(e) => {
            run.fail(
                "restore",
                format!(
                    "cannot create the scratch database on {}: {e}",
                    server.describe()
                ),
            );
            return Ok(run.finish(&key, started));
        }
    };
    run.report.scratch = scratch.describe();

    let outcome = run
        .restore_and_check(ctx, entry, &scratch, &drill_cfg, progress)
        .await;
    let recovery_s = run.report.timings.restore_s
        + run.report.timings.verify_s
        + run.report.timings.assertions_s;
    run.report.timings.recovery_s = (recovery_s * 1000.0).round() / 1000.0;
    if outcome {
        match drill_cfg.rto_seconds {
            Some(rto) if recovery_s > rto as f64 => run.fail(
                "rto",
                format!("recovery took {recovery_s:.1} s, over the RTO of {rto} s"),
            ),
            Some(rto) => run.pass("rto", format!("recovery took {recovery_s:.1} s ≤ {rto} s")),
            None => run.pass(
                "rto",
                format!("recovery took {recovery_s:.1} s (no rto_seconds set)"),
            ),
        }
    }

    // 3. Cleanup, whatever happened.
    let dropped = {
        let scratch = scratch.clone();
        blocking(move || scratch.drop_now()).await
    };
    match dropped {
        Ok(()) => run.pass("cleanup", format!("{} dropped", scratch.describe())),
        Err(e) => run.fail(
            "cleanup",
            format!(
                "{} could not be dropped ({e}); the next drill drops it",
                scratch.describe()
            ),
        ),
    }
    Ok(run.finish(&key, started))
}

/// Keeps a report: sealed, in every target of its source that can be written (the
/// evidence outlives the appliance); returns the targets that hold it. A target that
/// fails is logged: the state store still has the report.
pub async fn store_report(ctx: &Context, report: &DrillReport) -> Vec<String> {
    let Ok(key) = ctx.integrity_key() else {
        return Vec::new();
    };
    let body = match serde_json::to_vec_pretty(&report.sealed(key)) {
        Ok(body) => bytes::Bytes::from(body),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the drill report");
            return Vec::new();
        }
    };
    let Ok(stores) = ctx.stores_of(&report.source) else {
        return Vec::new();
    };
    let mut written = Vec::new();
    for store in stores {
        match store.put_bytes(&report.store_key(), body.clone()).await {
            Ok(()) => written.push(store.name().to_owned()),
            Err(e) => {
                tracing::warn!(target_name = %store.name(), error = %e, "cannot store the drill report")
            }
        }
    }
    written
}

/// Saves a report in the state store.
pub fn save_report(
    state: &crate::state::State,
    report: &DrillReport,
    key: &crate::integrity::IntegrityKey,
) -> Result<crate::state::DrillReportId, crate::state::StateError> {
    let sealed = report.sealed(key);
    state.save_drill_report(&crate::state::NewDrillReport {
        source: &report.source,
        backup_id: report.backup_id.as_deref().unwrap_or(""),
        target: &report.target,
        started_at: report.started_at,
        ok: report.ok,
        report: &sealed,
    })
}

/// The drill settings of a source with no `[drills.NAME]` table.
fn default_drill() -> DrillConfig {
    DrillConfig {
        schedule: None,
        scratch_url: None,
        rto_seconds: None,
        assertions: Vec::new(),
        targets: Vec::new(),
        pick: DrillPick::Newest,
        window_days: 30,
    }
}

/// Where the drills of a source make their scratch databases: the `scratch_url` server
/// (PostgreSQL, MySQL), or `state_dir` (SQLite).
fn scratch_server(
    ctx: &Context,
    source: &str,
    source_cfg: &SourceConfig,
    drill: &DrillConfig,
) -> Result<Server, DrillError> {
    let url = || {
        drill
            .scratch_url
            .clone()
            .ok_or_else(|| DrillError::NoScratch {
                file: ctx.config.file.display().to_string(),
                source_name: source.to_owned(),
                example: match source_cfg {
                    SourceConfig::Mysql(_) => "mysql://drill@127.0.0.1:3306",
                    _ => "postgres://drill@127.0.0.1:5432/postgres",
                },
            })
    };
    Ok(match source_cfg {
        SourceConfig::Sqlite(_) => Server::Sqlite(ctx.config.state_dir.clone()),
        SourceConfig::Postgres(_) => {
            let mut admin = ctx.postgres(source)?;
            admin.url = url()?;
            // The source's password is for the source, not for the scratch server.
            admin.password = None;
            Server::Postgres(admin)
        }
        SourceConfig::Mysql(_) => {
            let mut admin = ctx.mysql(source)?;
            admin.url = url()?;
            admin.password = None;
            Server::Mysql(admin)
        }
    })
}

/// The candidate drilled least recently (never drilled first; ties in config order),
/// from the reports kept in the stores. A store that cannot be listed counts for nothing.
async fn next_target(
    stores: &[crate::store::DynStore],
    source: &str,
    candidates: &[String],
) -> String {
    let mut last: std::collections::BTreeMap<String, DateTime<Utc>> = Default::default();
    let prefix = format!("{}{source}/", report::STORE_PREFIX);
    for store in stores {
        match store.list(&prefix).await {
            Ok(objects) => {
                for o in objects {
                    if let Some((at, target)) = report::parse_store_key(&o.key, source) {
                        let slot = last.entry(target).or_insert(at);
                        *slot = (*slot).max(at);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(target_name = %store.name(), error = %e, "cannot list drill reports")
            }
        }
    }
    candidates
        .iter()
        .min_by_key(|t| last.get(*t).copied())
        .cloned()
        .unwrap_or_default()
}

/// The backup to drill from `target`, or why there is none.
fn pick_backup<'l>(
    listing: &'l catalog::Listing,
    target: &str,
    drill: &DrillConfig,
    now: DateTime<Utc>,
) -> Result<&'l Entry, String> {
    if let Some((_, why)) = listing.unreachable.iter().find(|(t, _)| t == target) {
        return Err(format!("target {target} cannot be listed: {why}"));
    }
    let newest = listing
        .entries
        .iter()
        .rev()
        .find(|e| e.manifest().is_some())
        .ok_or_else(|| "the source has no backup in any target".to_owned())?;
    let entry = match drill.pick {
        DrillPick::Newest => newest,
        DrillPick::Random => {
            let since = now - TimeDelta::days(i64::try_from(drill.window_days).unwrap_or(36_500));
            let recent: Vec<&Entry> = listing
                .entries
                .iter()
                .filter(|e| e.manifest().is_some_and(|m| m.finished_at >= since))
                .collect();
            recent.choose(&mut rand::rng()).copied().ok_or_else(|| {
                format!(
                    "no backup of the last {} days (the newest is {})",
                    drill.window_days, newest.id
                )
            })?
        }
    };
    match entry.copies.iter().find(|c| c.target == target) {
        Some(copy) if copy.status == "ok" => Ok(entry),
        Some(copy) => Err(format!(
            "target {target} holds no whole copy of backup {}: {} ({})",
            entry.id,
            copy.status,
            copy.detail.as_deref().unwrap_or("no detail")
        )),
        None => Err(format!(
            "target {target} holds no copy of backup {} (run `coffre heal`)",
            entry.id
        )),
    }
}

/// A drill being run: its report filled check by check.
struct Run {
    report: DrillReport,
}

impl Run {
    fn new(source: &str, source_type: &str, target: &str, started_at: DateTime<Utc>) -> Run {
        Run {
            report: DrillReport {
                format: report::FORMAT.to_owned(),
                id: report::report_id(started_at, target),
                source: source.to_owned(),
                source_type: source_type.to_owned(),
                target: target.to_owned(),
                backup_id: None,
                backup_kind: None,
                backup_finished_at: None,
                started_at,
                finished_at: started_at,
                ok: false,
                failure: None,
                checks: Vec::new(),
                tables: Vec::new(),
                assertions: Vec::new(),
                timings: Timings::default(),
                rto_seconds: None,
                rpo_seconds: None,
                stored_bytes: None,
                rows: None,
                erasures: None,
                scratch: String::new(),
                coffre_version: env!("CARGO_PKG_VERSION").to_owned(),
                mac: None,
            },
        }
    }

    fn record(&mut self, name: &str, outcome: Outcome, detail: String) {
        if outcome == Outcome::Failed && self.report.failure.is_none() {
            self.report.failure = Some(format!("{name}: {detail}"));
        }
        self.report.checks.push(Check {
            name: name.to_owned(),
            outcome,
            detail,
        });
    }

    fn pass(&mut self, name: &str, detail: String) {
        self.record(name, Outcome::Passed, detail);
    }

    fn fail(&mut self, name: &str, detail: String) {
        self.record(name, Outcome::Failed, detail);
    }

    /// Restores, reads back and runs the assertions; false when a check failed.
    async fn restore_and_check(
        &mut self,
        ctx: &Context,
        entry: &Entry,
        scratch: &Scratch,
        drill: &DrillConfig,
        progress: Arc<Progress>,
    ) -> bool {
        let t = Instant::now();
        let restored = run_restore(
            ctx,
            &RestoreOptions {
                skip_erasures: None,
                backup_id: entry.id.clone(),
                to: scratch.restore_url(),
                target: Some(self.report.target.clone()),
                force: false,
            },
            progress,
        )
        .await;
        self.report.timings.restore_s = seconds_since(t);
        match restored {
            Ok(r) => {
                if let Some(applied) = &r.erasures {
                    // The erased database is what a restore gives now: check against it.
                    for t in &mut self.report.tables {
                        if let Some(e) = applied
                            .expected
                            .tables
                            .iter()
                            .find(|e| e.qualified() == t.table)
                        {
                            t.expected_rows = e.rows;
                            t.expected_checksum = e.checksum.clone();
                        }
                    }
                    self.report.rows = Some(applied.expected.total_rows());
                }
                self.report.erasures = r.erasures.clone();
                self.pass(
                    "integrity",
                    format!(
                        "{} bytes downloaded from {}: size and SHA-256 match the manifest; \
                         decrypted and decompressed",
                        r.stored_bytes, r.target
                    ),
                );
                self.pass(
                    "restore",
                    format!(
                        "{} bytes of SQL restored in one transaction without error in {:.1} s",
                        r.plaintext_bytes, r.duration_s
                    ),
                );
            }
            Err(e) => {
                let (check, detail) = classify(&e);
                match check {
                    // The streamed rows are compared after the last byte was hashed and
                    // the transaction ran: both earlier checks passed.
                    "rows" => {
                        self.pass(
                            "integrity",
                            "size and SHA-256 match the manifest".to_owned(),
                        );
                        self.pass("restore", "loaded without error; not committed".to_owned());
                    }
                    // The download stops with the restore: its end was not checked.
                    "restore" => self.record(
                        "integrity",
                        Outcome::Skipped,
                        "not completed: the restore failed first".to_owned(),
                    ),
                    _ => {}
                }
                self.fail(check, detail);
                return false;
            }
        }

        let t = Instant::now();
        let read_back = checks::read_back(scratch).await;
        self.report.timings.verify_s = seconds_since(t);
        let seen = match read_back {
            Ok(seen) => seen,
            Err(e) => {
                self.fail(
                    "rows",
                    format!("cannot read the restored database back: {e}"),
                );
                return false;
            }
        };
        let mut bad = Vec::new();
        for t in &mut self.report.tables {
            let got = seen.tables.iter().find(|s| s.qualified() == t.table);
            t.restored_rows = got.map(|s| s.rows);
            t.restored_checksum = got.map(|s| s.checksum.clone());
            t.ok =
                got.is_some_and(|s| s.rows == t.expected_rows && s.checksum == t.expected_checksum);
            if !t.ok {
                bad.push(match got {
                    None => format!("table {} is missing", t.table),
                    Some(s) if s.rows != t.expected_rows => format!(
                        "table {}: {} rows restored, {} expected",
                        t.table, s.rows, t.expected_rows
                    ),
                    Some(s) => format!(
                        "table {}: content checksum {} differs from the manifest's {}",
                        t.table, s.checksum, t.expected_checksum
                    ),
                });
            }
        }
        for s in &seen.tables {
            if !self.report.tables.iter().any(|t| t.table == s.qualified()) {
                bad.push(format!("table {} is not in the backup", s.qualified()));
            }
        }
        if bad.is_empty() {
            self.pass(
                "rows",
                format!(
                    "{} tables, {} rows: counts and checksums of the restored database equal \
                     the manifest's{}",
                    self.report.tables.len(),
                    seen.total_rows(),
                    if self.report.erasures.is_some() {
                        ", with the erased rows taken out and the pseudonymized ones in"
                    } else {
                        ""
                    }
                ),
            );
        } else {
            self.fail("rows", bad.join("; "));
            return false;
        }
        if !self.check_erasures(scratch).await {
            return false;
        }

        let t = Instant::now();
        let results = checks::run_assertions(scratch, &drill.assertions).await;
        self.report.timings.assertions_s = seconds_since(t);
        let failed: Vec<String> = results
            .iter()
            .filter(|a| !a.ok)
            .map(|a| format!("{:?} returned {}", a.sql, a.result))
            .collect();
        let total = results.len();
        self.report.assertions = results;
        if failed.is_empty() {
            self.pass("assertions", format!("{total} of {total} true"));
            true
        } else {
            self.fail(
                "assertions",
                format!("{} of {total} failed: {}", failed.len(), failed.join("; ")),
            );
            false
        }
    }

    /// Proves that no row the erasure ledger deletes is in the restored database.
    async fn check_erasures(&mut self, scratch: &Scratch) -> bool {
        let Some(applied) = self.report.erasures.clone() else {
            self.pass(
                "erasures",
                "the source's erasure ledger is empty: nothing to re-apply".to_owned(),
            );
            return true;
        };
        let queries = applied.verify_sql.clone();
        let results = checks::run_assertions(scratch, &queries).await;
        let left: Vec<String> = results
            .iter()
            .filter(|a| !a.ok)
            .map(|a| format!("{:?} returned {}", a.sql, a.result))
            .collect();
        let changed: Vec<String> = applied
            .tables
            .iter()
            .map(|t| format!("{}: {} rows {}", t.table, t.rows, t.action.past_tense()))
            .collect();
        if left.is_empty() {
            self.pass(
                "erasures",
                format!(
                    "{} ledger entries ({} subjects) re-applied before the commit ({}); no \
                     erased row is left ({} tables checked){}",
                    applied.erasures.len(),
                    applied.subjects,
                    changed.join(", "),
                    queries.len(),
                    if applied.foreign_keys_not_valid.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", applied.foreign_keys_not_valid.join("; "))
                    }
                ),
            );
            true
        } else {
            self.fail(
                "erasures",
                format!("erased rows are still there: {}", left.join("; ")),
            );
            false
        }
    }

    /// Marks checks not reached as skipped, times, seals.
    fn finish(mut self, key: &crate::integrity::IntegrityKey, started: Instant) -> DrillReport {
        for name in report::CHECKS {
            if self.report.check(name).is_none() {
                self.record(name, Outcome::Skipped, "not reached".to_owned());
            }
        }
        let order = |c: &Check| report::CHECKS.iter().position(|n| *n == c.name);
        self.report.checks.sort_by_key(order);
        self.report.ok = self
            .report
            .checks
            .iter()
            .all(|c| c.outcome == Outcome::Passed);
        self.report.finished_at = Utc::now();
        self.report.timings.total_s = seconds_since(started);
        let sealed = self.report.sealed(key);
        self.report.mac = sealed
            .get("mac")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        self.report
    }
}

/// Which check a failed restore fails, and why (naming the target for integrity).
fn classify(e: &RestoreError) -> (&'static str, String) {
    match e {
        RestoreError::Integrity { .. } | RestoreError::AllCopiesFailed { .. } => {
            ("integrity", e.to_string())
        }
        RestoreError::WrongIdentity { .. } => ("integrity", e.to_string()),
        RestoreError::NotFound(_) | RestoreError::NoCopy { .. } => ("integrity", e.to_string()),
        RestoreError::Rows { .. } => ("rows", e.to_string()),
        _ => ("restore", e.to_string()),
    }
}

/// Runs blocking database work off the async threads.
async fn blocking<T, F>(f: F) -> Result<T, SourceError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, SourceError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SourceError::Other(format!("drill task failed: {e}")))?
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    ((to - from).num_milliseconds() as f64 / 1000.0).max(0.0)
}

/// `3 h 12 min`, `2 d 4 h`, `45 s`.
fn human_age(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_well() {
        assert_eq!(human_age(12.4), "12 s");
        assert_eq!(human_age(600.0), "10 min");
        assert_eq!(human_age(3.0 * 3600.0 + 720.0), "3 h 12 min");
        assert_eq!(human_age(2.0 * 86_400.0 + 4.0 * 3600.0), "2 d 4 h");
    }
}
