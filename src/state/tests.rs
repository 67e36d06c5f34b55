use std::io::{Seek, SeekFrom, Write};

use chrono::TimeDelta;
use serde_json::json;
use tempfile::TempDir;

use super::*;
use crate::manifest::BackupKind;
use crate::pipeline::backup::{BackupReport, BackupStatus};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("valid test time")
        .with_timezone(&Utc)
}

/// A state file in a new temporary folder (kept alive by the returned guard).
fn fresh() -> (TempDir, PathBuf, State) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(FILE_NAME);
    let state = State::open(&path).expect("open a new state file");
    (dir, path, state)
}

fn ended(status: JobStatus, finished_at: &str) -> JobEnd {
    JobEnd {
        status,
        finished_at: at(finished_at),
        bytes: None,
        error: None,
        details: None,
    }
}

/// Starts and ends a job in one go.
fn job_done(
    state: &State,
    kind: JobKind,
    source: &str,
    start: &str,
    end: &str,
    status: JobStatus,
) -> JobId {
    let id = state
        .record_job_start(kind, source, at(start))
        .expect("job start");
    state
        .record_job_end(id, &ended(status, end))
        .expect("job end");
    id
}

/// Files beside `path` named `<name>.corrupt-<time>`, without their `-wal` and `-shm`.
fn corrupt_copies(path: &Path) -> Vec<PathBuf> {
    let prefix = format!(
        "{}.corrupt-",
        path.file_name().expect("a file name").to_string_lossy()
    );
    let mut found: Vec<PathBuf> = std::fs::read_dir(path.parent().expect("a folder"))
        .expect("list the folder")
        .map(|e| e.expect("an entry").path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with(&prefix) && !n.ends_with("-wal") && !n.ends_with("-shm")
            })
        })
        .collect();
    found.sort();
    found
}

fn ids(jobs: &[Job]) -> Vec<i64> {
    jobs.iter().map(|j| j.id.0).collect()
}

// ---- opening, migrations, damage ----

#[test]
fn open_creates_folder_schema_and_wal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state_dir = dir.path().join("var/lib/coffre");
    let state = State::open_in(&state_dir).expect("open");
    assert_eq!(state.path(), state_dir.join("state.db"));
    assert!(state.path().is_file());
    assert_eq!(state.recovered(), None);
    assert_eq!(
        state.schema_version().expect("version"),
        MIGRATIONS.len() as i64
    );
    assert_eq!(MIGRATIONS.len(), 4);

    let mode: String = state
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal mode");
    assert_eq!(mode, "wal");
    let timeout: i64 = state
        .conn
        .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
        .expect("busy timeout");
    assert_eq!(timeout, 10_000);
}

#[test]
fn restart_keeps_everything_and_applies_no_migration_twice() {
    let (_dir, path, state) = fresh();
    let job = state
        .record_job_start(JobKind::Backup, "billing", at("2026-11-22T02:00:00Z"))
        .expect("start");
    state
        .record_job_end(
            job,
            &JobEnd {
                bytes: Some(74_000_000),
                details: Some(json!({"id": "20261122T020000.000Z-7f3a"})),
                ..ended(JobStatus::Ok, "2026-11-22T02:00:07.250Z")
            },
        )
        .expect("end");
    let report = json!({"checks": [{"table": "factures", "rows": 100000}]});
    let drill = state
        .save_drill_report(&NewDrillReport {
            source: "billing",
            backup_id: "20261122T020000.000Z-7f3a",
            target: "paris",
            started_at: at("2026-11-22T04:30:00Z"),
            ok: true,
            report: &report,
        })
        .expect("drill");
    state
        .cache_catalog("billing", &json!([{"id": "a"}]), at("2026-11-22T05:00:00Z"))
        .expect("cache");
    state
        .set_last_run("backup/billing", at("2026-11-22T02:00:00Z"))
        .expect("last run");
    let before_job = state.job(job).expect("read");
    let before_drill = state.drill_report(drill).expect("read");
    drop(state);

    let state = State::open(&path).expect("reopen");
    assert_eq!(state.recovered(), None);
    assert_eq!(state.job(job).expect("read"), before_job);
    assert_eq!(before_job.as_ref().map(|j| j.bytes), Some(Some(74_000_000)));
    assert_eq!(state.drill_report(drill).expect("read"), before_drill);
    assert_eq!(
        before_drill.map(|d| d.report),
        Some(report),
        "the report survives"
    );
    assert_eq!(
        state.cached_catalog("billing").expect("read"),
        Some(CachedCatalog {
            entries: json!([{"id": "a"}]),
            listed_at: at("2026-11-22T05:00:00Z"),
        })
    );
    assert_eq!(
        state.last_run("backup/billing").expect("read"),
        Some(at("2026-11-22T02:00:00Z"))
    );
    let applied: i64 = state
        .conn
        .query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))
        .expect("count");
    assert_eq!(applied, MIGRATIONS.len() as i64, "each migration once");
    // Ids go on after a restart.
    let next = state
        .record_job_start(JobKind::Prune, "billing", at("2026-11-22T06:00:00Z"))
        .expect("start");
    assert!(next > job);
}

#[test]
fn migrations_apply_in_one_transaction() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.db");
    let mut conn = Connection::open(&path).expect("open");
    let tables = |conn: &Connection| -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .expect("prepare");
        stmt.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let bad = "CREATE TABLE extra (x INTEGER); INSERT INTO nowhere VALUES (1);";

    // Version 0 → 2 with a failing second script: nothing at all is left.
    let e = migrate(&mut conn, &path, &[MIGRATIONS[0], bad]).expect_err("bad script");
    assert!(
        matches!(e, StateError::Migration { version: 2, .. }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("upgrading the schema to version 2 failed"),
        "{text}"
    );
    assert!(text.contains("no such table: nowhere"), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");
    assert!(tables(&conn).is_empty(), "{:?}", tables(&conn));

    // 0 → 1, then 1 → 2: one row per version.
    migrate(&mut conn, &path, &MIGRATIONS[..1]).expect("to 1");
    let good = "CREATE TABLE extra (x INTEGER);";
    migrate(&mut conn, &path, &[MIGRATIONS[0], good]).expect("to 2");
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM schema_version ORDER BY version")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("versions");
    assert_eq!(versions, [1, 2]);
    assert!(tables(&conn).contains(&"extra".to_owned()));

    // Again: nothing to do.
    migrate(&mut conn, &path, &[MIGRATIONS[0], good]).expect("idempotent");

    // An older binary knows fewer migrations.
    let e = migrate(&mut conn, &path, &MIGRATIONS[..1]).expect_err("too new");
    assert!(
        matches!(
            e,
            StateError::TooNew {
                found: 2,
                known: 1,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn file_of_a_newer_coffre_is_refused_and_left_in_place() {
    let (_dir, path, state) = fresh();
    state
        .conn
        .execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (99, 'x')",
            [],
        )
        .expect("insert");
    drop(state);

    let e = State::open(&path).expect_err("too new").to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(
        e.contains("schema version 99 was written by a newer coffre"),
        "{e}"
    );
    assert!(e.contains("move the file aside"), "{e}");
    assert!(corrupt_copies(&path).is_empty());
    assert!(path.is_file());
}

#[test]
fn garbage_file_is_moved_aside_with_its_wal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(FILE_NAME);
    let garbage = "this is not a database, just some text\n".repeat(200);
    std::fs::write(&path, &garbage).expect("write garbage");
    std::fs::write(with_suffix(&path, "-wal"), "stale wal").expect("write wal");

    let state = State::open(&path).expect("a fresh state replaces the garbage");
    let recovery = state.recovered().expect("moved aside").clone();
    assert_eq!(recovery.reason, "file is not a database");
    let aside = recovery.moved_to;
    assert_eq!(corrupt_copies(&path), std::slice::from_ref(&aside));
    let name = aside
        .file_name()
        .expect("a name")
        .to_string_lossy()
        .into_owned();
    // state.db.corrupt-20261122T193045Z
    let stamp = name.strip_prefix("state.db.corrupt-").expect("prefix");
    assert_eq!(stamp.len(), 16, "{name}");
    assert!(stamp.ends_with('Z'), "{name}");
    assert_eq!(
        std::fs::read_to_string(&aside).expect("read aside"),
        garbage
    );
    assert_eq!(
        std::fs::read_to_string(with_suffix(&aside, "-wal")).expect("read wal aside"),
        "stale wal"
    );

    // The new file works, and is no longer in need of rescue.
    let id = state
        .record_job_start(JobKind::Backup, "billing", at("2026-11-22T02:00:00Z"))
        .expect("start");
    drop(state);
    let state = State::open(&path).expect("reopen");
    assert_eq!(state.recovered(), None);
    assert!(state.job(id).expect("read").is_some());
    assert_eq!(corrupt_copies(&path), [aside]);
}

#[test]
fn second_damaged_file_gets_its_own_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(FILE_NAME);
    let mut asides = Vec::new();
    for round in 0..2 {
        std::fs::write(&path, format!("garbage {round}\n").repeat(500)).expect("write");
        let state = State::open(&path).expect("open");
        asides.push(state.recovered().expect("moved").moved_to.clone());
    }
    assert_ne!(asides[0], asides[1]);
    assert_eq!(corrupt_copies(&path).len(), 2);
}

#[test]
fn damaged_pages_are_moved_aside() {
    let (_dir, path, state) = fresh();
    // Enough rows for several pages of table and index b-trees.
    for i in 0..300 {
        let id = state
            .record_job_start(
                JobKind::Backup,
                &format!("source-{i}"),
                at("2026-11-22T02:00:00Z") + TimeDelta::minutes(i),
            )
            .expect("start");
        state
            .record_job_end(
                id,
                &JobEnd {
                    error: Some("x".repeat(200)),
                    ..ended(JobStatus::Failed, "2026-11-22T03:00:00Z")
                },
            )
            .expect("end");
    }
    state
        .conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    let page_size: u32 = state
        .conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .expect("page size");
    let page_size = u64::from(page_size);
    drop(state);
    let size = std::fs::metadata(&path).expect("metadata").len();
    assert!(size >= 8 * page_size, "{size}");

    // Scribble over pages 3 to 5 (the header page stays valid: a database, damaged inside).
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open for writing");
    file.seek(SeekFrom::Start(2 * page_size)).expect("seek");
    let scribble = vec![0x5a_u8; usize::try_from(3 * page_size).expect("small")];
    file.write_all(&scribble).expect("scribble");
    drop(file);

    let state = State::open(&path).expect("a fresh state replaces the damaged one");
    let reason = &state.recovered().expect("moved aside").reason;
    assert_eq!(reason, "database disk image is malformed");
    assert_eq!(state.jobs(&JobFilter::default()).expect("list"), []);
    assert_eq!(corrupt_copies(&path).len(), 1);
}

#[test]
fn index_out_of_step_with_its_table_fails_the_integrity_check() {
    let (_dir, path, state) = fresh();
    for i in 0..100 {
        state
            .record_job_start(
                JobKind::Backup,
                &format!("alpha-{i:03}"),
                at("2026-11-22T02:00:00Z"),
            )
            .expect("start");
    }
    state
        .conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    drop(state);

    // Declare the index descending while its b-tree was built ascending: every page stays
    // well-formed, only the integrity check can tell.
    {
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(
            "PRAGMA writable_schema = ON;
             UPDATE sqlite_master SET sql = 'CREATE INDEX jobs_by_source_kind ON jobs \
             (source DESC, kind, status, finished_at)' WHERE name = 'jobs_by_source_kind';
             PRAGMA writable_schema = OFF;",
        )
        .expect("edit the schema");
    }
    let bytes = std::fs::read(&path).expect("read");

    let state = State::open(&path).expect("a fresh state replaces the damaged one");
    let recovery = state.recovered().expect("moved aside");
    assert!(
        recovery.reason.starts_with("integrity check: "),
        "{}",
        recovery.reason
    );
    assert!(
        recovery.reason.contains("jobs_by_source_kind"),
        "{}",
        recovery.reason
    );
    assert_eq!(
        std::fs::read(&recovery.moved_to).expect("read aside"),
        bytes,
        "moved as found"
    );
    assert_eq!(state.jobs(&JobFilter::default()).expect("list"), []);
}

#[test]
fn empty_file_is_a_fresh_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(FILE_NAME);
    std::fs::File::create(&path).expect("touch");
    let state = State::open(&path).expect("open");
    assert_eq!(state.recovered(), None);
    assert_eq!(
        state.schema_version().expect("version"),
        MIGRATIONS.len() as i64
    );
}

#[test]
fn database_of_another_program_is_not_moved_aside() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(FILE_NAME);
    {
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("CREATE TABLE jobs (x TEXT); INSERT INTO jobs VALUES ('theirs');")
            .expect("their schema");
    }
    let e = State::open(&path).expect_err("not ours").to_string();
    assert!(
        e.contains("upgrading the schema to version 1 failed"),
        "{e}"
    );
    assert!(
        e.contains("if this file is not coffre's, move it aside"),
        "{e}"
    );
    assert!(corrupt_copies(&path).is_empty());
    let conn = Connection::open(&path).expect("still readable");
    let theirs: String = conn
        .query_row("SELECT x FROM jobs", [], |r| r.get(0))
        .expect("their row is intact");
    assert_eq!(theirs, "theirs");
}

#[test]
fn two_handles_share_the_file() {
    let (_dir, path, service) = fresh();
    let cli = State::open(&path).expect("second handle");
    let id = service
        .record_job_start(JobKind::Verify, "billing", at("2026-11-22T02:00:00Z"))
        .expect("start");
    assert_eq!(
        cli.job(id).expect("read").map(|j| j.status),
        Some(JobStatus::Running)
    );
    cli.record_job_end(id, &ended(JobStatus::Ok, "2026-11-22T02:01:00Z"))
        .expect("end from the other handle");
    assert_eq!(
        service.job(id).expect("read").map(|j| j.status),
        Some(JobStatus::Ok)
    );
}

// ---- jobs ----

#[test]
fn job_round_trip() {
    let (_dir, _path, state) = fresh();
    let start = at("2026-11-22T02:00:00.125Z");
    let id = state
        .record_job_start(JobKind::AnonymizedBackup, "billing", start)
        .expect("start");
    assert_eq!(
        state.job(id).expect("read"),
        Some(Job {
            id,
            kind: JobKind::AnonymizedBackup,
            source: "billing".to_owned(),
            status: JobStatus::Running,
            started_at: start,
            finished_at: None,
            bytes: None,
            error: None,
            details: None,
        })
    );

    let details = json!({"targets": [{"target": "paris", "status": "ok"},
                                     {"target": "frankfurt", "status": "failed"}],
                         "rows": 409_000, "note": "é \"quoted\" \n"});
    let end = JobEnd {
        status: JobStatus::Degraded,
        finished_at: at("2026-11-22T02:00:10.625Z"),
        bytes: Some(u64::from(u32::MAX) + 1),
        error: Some("target frankfurt: connection reset".to_owned()),
        details: Some(details.clone()),
    };
    state.record_job_end(id, &end).expect("end");
    let job = state.job(id).expect("read").expect("exists");
    assert_eq!(job.status, JobStatus::Degraded);
    assert_eq!(job.finished_at, Some(end.finished_at));
    assert_eq!(job.bytes, Some(4_294_967_296));
    assert_eq!(
        job.error.as_deref(),
        Some("target frankfurt: connection reset")
    );
    assert_eq!(job.details, Some(details));
    assert_eq!(job.duration(), Some(TimeDelta::milliseconds(10_500)));

    assert_eq!(state.job(JobId(id.0 + 1)).expect("read"), None);
}

#[test]
fn job_end_is_checked() {
    let (_dir, path, state) = fresh();
    let id = state
        .record_job_start(JobKind::Heal, "billing", at("2026-11-22T02:00:00Z"))
        .expect("start");

    let e = state
        .record_job_end(id, &ended(JobStatus::Running, "2026-11-22T02:01:00Z"))
        .expect_err("running is no end");
    assert!(matches!(e, StateError::EndAsRunning { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("end it as ok, degraded, failed or interrupted")
    );

    let e = state
        .record_job_end(JobId(999), &ended(JobStatus::Ok, "2026-11-22T02:01:00Z"))
        .expect_err("no such job");
    assert_eq!(
        e.to_string(),
        format!("state file {}: no job 999", path.display())
    );

    state
        .record_job_end(id, &ended(JobStatus::Failed, "2026-11-22T02:01:00Z"))
        .expect("end");
    let e = state
        .record_job_end(id, &ended(JobStatus::Ok, "2026-11-22T02:02:00Z"))
        .expect_err("ended twice");
    assert!(
        matches!(
            e,
            StateError::AlreadyEnded {
                status: JobStatus::Failed,
                ..
            }
        ),
        "{e:?}"
    );
    // The first end stands.
    let job = state.job(id).expect("read").expect("exists");
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.finished_at, Some(at("2026-11-22T02:01:00Z")));
}

#[test]
fn jobs_come_newest_first_filtered_and_limited() {
    let (_dir, _path, state) = fresh();
    use JobKind::{Backup, Drill, Prune};
    use JobStatus::Ok;
    // Recorded out of time order on purpose.
    let b2 = job_done(
        &state,
        Backup,
        "billing",
        "2026-11-22T02:00:00Z",
        "2026-11-22T02:05:00Z",
        Ok,
    );
    let b1 = job_done(
        &state,
        Backup,
        "billing",
        "2026-11-21T02:00:00Z",
        "2026-11-21T02:05:00Z",
        Ok,
    );
    let c1 = job_done(
        &state,
        Backup,
        "crm",
        "2026-11-22T01:00:00Z",
        "2026-11-22T01:05:00Z",
        Ok,
    );
    let p1 = job_done(
        &state,
        Prune,
        "billing",
        "2026-11-22T03:00:00Z",
        "2026-11-22T03:01:00Z",
        Ok,
    );
    // Same start as b2: the later id comes first.
    let d1 = job_done(
        &state,
        Drill,
        "billing",
        "2026-11-22T02:00:00Z",
        "2026-11-22T02:30:00Z",
        Ok,
    );
    let running = state
        .record_job_start(Backup, "billing", at("2026-11-23T02:00:00Z"))
        .expect("start");

    let all = state.jobs(&JobFilter::default()).expect("list");
    assert_eq!(
        ids(&all),
        [running.0, p1.0, d1.0, b2.0, c1.0, b1.0],
        "{all:#?}"
    );
    let billing = state
        .jobs(&JobFilter::default().source("billing"))
        .expect("list");
    assert_eq!(ids(&billing), [running.0, p1.0, d1.0, b2.0, b1.0]);
    let backups = state
        .jobs(&JobFilter::default().kind(Backup))
        .expect("list");
    assert_eq!(ids(&backups), [running.0, b2.0, c1.0, b1.0]);
    let both = state
        .jobs(&JobFilter::default().source("billing").kind(Backup))
        .expect("list");
    assert_eq!(ids(&both), [running.0, b2.0, b1.0]);
    let two = state
        .jobs(&JobFilter::default().source("billing").kind(Backup).limit(2))
        .expect("list");
    assert_eq!(ids(&two), [running.0, b2.0]);
    assert_eq!(
        state.jobs(&JobFilter::default().limit(0)).expect("list"),
        []
    );
    assert_eq!(
        state
            .jobs(&JobFilter::default().limit(usize::MAX))
            .expect("list")
            .len(),
        6
    );
    assert_eq!(
        state
            .jobs(&JobFilter::default().source("nobody"))
            .expect("list"),
        []
    );
}

#[test]
fn last_success_is_the_latest_ok_end_of_that_source_and_kind() {
    let (_dir, _path, state) = fresh();
    use JobKind::{Backup, Prune};
    use JobStatus::{Degraded, Failed, Ok};
    assert_eq!(state.last_success("billing", Backup).expect("read"), None);

    job_done(
        &state,
        Backup,
        "billing",
        "2026-11-20T02:00:00Z",
        "2026-11-20T02:05:00Z",
        Ok,
    );
    // Started first, ended last: the latest success.
    let long = job_done(
        &state,
        Backup,
        "billing",
        "2026-11-21T10:00:00Z",
        "2026-11-21T10:30:00Z",
        Ok,
    );
    job_done(
        &state,
        Backup,
        "billing",
        "2026-11-21T10:10:00Z",
        "2026-11-21T10:20:00Z",
        Ok,
    );
    // Not successes, or not this source or kind.
    job_done(
        &state,
        Backup,
        "billing",
        "2026-11-22T02:00:00Z",
        "2026-11-22T02:05:00Z",
        Degraded,
    );
    job_done(
        &state,
        Backup,
        "billing",
        "2026-11-23T02:00:00Z",
        "2026-11-23T02:05:00Z",
        Failed,
    );
    job_done(
        &state,
        Prune,
        "billing",
        "2026-11-24T02:00:00Z",
        "2026-11-24T02:05:00Z",
        Ok,
    );
    job_done(
        &state,
        Backup,
        "crm",
        "2026-11-25T02:00:00Z",
        "2026-11-25T02:05:00Z",
        Ok,
    );
    state
        .record_job_start(Backup, "billing", at("2026-11-26T02:00:00Z"))
        .expect("running");

    let last = state
        .last_success("billing", Backup)
        .expect("read")
        .expect("one");
    assert_eq!(last.id, long);
    assert_eq!(last.finished_at, Some(at("2026-11-21T10:30:00Z")));
    assert_eq!(state.last_success("crm", Prune).expect("read"), None);
}

#[test]
fn running_jobs_become_interrupted_after_a_crash() {
    let (_dir, path, state) = fresh();
    let done = job_done(
        &state,
        JobKind::Backup,
        "billing",
        "2026-11-22T02:00:00Z",
        "2026-11-22T02:05:00Z",
        JobStatus::Ok,
    );
    let backup = state
        .record_job_start(JobKind::Backup, "crm", at("2026-11-22T03:00:00Z"))
        .expect("start");
    let drill = state
        .record_job_start(JobKind::Drill, "billing", at("2026-11-22T03:10:00Z"))
        .expect("start");
    drop(state); // the process dies here

    let state = State::open(&path).expect("restart");
    let now = at("2026-11-22T03:30:00Z");
    assert_eq!(state.mark_running_as_interrupted(now).expect("mark"), 2);
    for id in [backup, drill] {
        let job = state.job(id).expect("read").expect("exists");
        assert_eq!(job.status, JobStatus::Interrupted);
        assert_eq!(job.finished_at, Some(now));
        assert_eq!(job.error.as_deref(), Some(INTERRUPTED));
    }
    let job = state.job(done).expect("read").expect("exists");
    assert_eq!(job.status, JobStatus::Ok);
    assert_eq!(job.finished_at, Some(at("2026-11-22T02:05:00Z")));
    assert_eq!(job.error, None);

    assert_eq!(state.mark_running_as_interrupted(now).expect("again"), 0);
    let e = state
        .record_job_end(backup, &ended(JobStatus::Ok, "2026-11-22T03:31:00Z"))
        .expect_err("the old process may not end it now");
    assert!(
        e.to_string().contains("already ended as interrupted"),
        "{e}"
    );
}

#[test]
fn timestamps_are_rfc3339_utc_text_to_the_millisecond() {
    let (_dir, _path, state) = fresh();
    let precise = DateTime::parse_from_rfc3339("2026-11-22T19:30:45.123456789+01:00")
        .expect("valid")
        .with_timezone(&Utc);
    let id = state
        .record_job_start(JobKind::Backup, "billing", precise)
        .expect("start");
    let text: String = state
        .conn
        .query_row("SELECT started_at FROM jobs WHERE id = ?1", [id.0], |r| {
            r.get(0)
        })
        .expect("raw");
    assert_eq!(text, "2026-11-22T18:30:45.123Z");
    assert_eq!(
        state.job(id).expect("read").map(|j| j.started_at),
        Some(at("2026-11-22T18:30:45.123Z"))
    );
    state.set_last_run("s", precise).expect("set");
    let text: String = state
        .conn
        .query_row("SELECT last_run FROM schedule_runs", [], |r| r.get(0))
        .expect("raw");
    assert_eq!(text, "2026-11-22T18:30:45.123Z");
}

#[test]
fn hand_edited_rows_are_reported_not_trusted() {
    let (_dir, path, state) = fresh();
    let id = job_done(
        &state,
        JobKind::Backup,
        "billing",
        "2026-11-22T02:00:00Z",
        "2026-11-22T02:05:00Z",
        JobStatus::Ok,
    );
    let edit = |sql: &str| {
        state.conn.execute(sql, [id.0]).expect("edit");
    };

    edit("UPDATE jobs SET kind = 'backupp' WHERE id = ?1");
    let e = state.job(id).expect_err("bad kind").to_string();
    assert_eq!(
        e,
        format!(
            "state file {}: jobs row {id}: kind holds \"backupp\", which is not a job kind (the \
             file was changed outside coffre: move it aside to start afresh; the stores still \
             hold every backup)",
            path.display()
        )
    );
    assert!(state.jobs(&JobFilter::default()).is_err());

    edit("UPDATE jobs SET kind = 'backup', started_at = 'yesterday' WHERE id = ?1");
    let e = state.job(id).expect_err("bad time").to_string();
    assert!(
        e.contains("started_at holds \"yesterday\", which is not an RFC 3339 time"),
        "{e}"
    );

    edit("UPDATE jobs SET started_at = '2026-11-22T02:00:00.000Z', details = '{' WHERE id = ?1");
    let e = state.job(id).expect_err("bad json").to_string();
    assert!(e.contains("details holds \"{\", which is not JSON"), "{e}");

    edit("UPDATE jobs SET details = NULL, bytes = -1 WHERE id = ?1");
    let e = state.job(id).expect_err("bad size").to_string();
    assert!(e.contains("bytes holds \"-1\", which is not a size"), "{e}");

    edit("UPDATE jobs SET bytes = NULL, status = 'done' WHERE id = ?1");
    let e = state.job(id).expect_err("bad status").to_string();
    assert!(
        e.contains("status holds \"done\", which is not a job status"),
        "{e}"
    );
}

// ---- drill reports, catalog cache, schedule runs ----

#[test]
fn drill_reports_round_trip_newest_first() {
    let (_dir, _path, state) = fresh();
    let save = |source: &str, target: &str, start: &str, ok: bool| {
        let report = json!({"target": target, "checks": [{"name": "row counts", "ok": ok}],
                            "rto_s": 12.5});
        state
            .save_drill_report(&NewDrillReport {
                source,
                backup_id: "20261122T020000.000Z-7f3a",
                target,
                started_at: at(start),
                ok,
                report: &report,
            })
            .expect("save")
    };
    let paris = save("billing", "paris", "2026-11-20T04:30:00Z", true);
    let crm = save("crm", "paris", "2026-11-21T04:30:00Z", true);
    let frankfurt = save("billing", "frankfurt", "2026-11-22T04:30:00Z", false);
    let local = save("billing", "local", "2026-11-21T04:30:00Z", true);

    let report = state
        .drill_report(frankfurt)
        .expect("read")
        .expect("exists");
    assert_eq!(
        report,
        DrillReport {
            id: frankfurt,
            source: "billing".to_owned(),
            backup_id: "20261122T020000.000Z-7f3a".to_owned(),
            target: "frankfurt".to_owned(),
            started_at: at("2026-11-22T04:30:00Z"),
            ok: false,
            report: json!({"target": "frankfurt",
                           "checks": [{"name": "row counts", "ok": false}], "rto_s": 12.5}),
        }
    );
    assert_eq!(state.drill_report(DrillReportId(999)).expect("read"), None);

    let listed = |source: Option<&str>, limit: Option<usize>| -> Vec<DrillReportId> {
        state
            .drill_reports(source, limit)
            .expect("list")
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(listed(Some("billing"), None), [frankfurt, local, paris]);
    assert_eq!(listed(Some("billing"), Some(2)), [frankfurt, local]);
    assert_eq!(listed(None, None), [frankfurt, local, crm, paris]);
    assert_eq!(listed(Some("nobody"), None), []);
}

#[test]
fn catalog_cache_is_replaced_per_source() {
    let (_dir, _path, state) = fresh();
    assert_eq!(state.cached_catalog("billing").expect("read"), None);
    state
        .cache_catalog("billing", &json!([{"id": "a"}]), at("2026-11-22T05:00:00Z"))
        .expect("cache");
    state
        .cache_catalog("crm", &json!([]), at("2026-11-22T05:01:00Z"))
        .expect("cache");
    state
        .cache_catalog(
            "billing",
            &json!([{"id": "a"}, {"id": "b"}]),
            at("2026-11-22T06:00:00Z"),
        )
        .expect("replace");
    assert_eq!(
        state.cached_catalog("billing").expect("read"),
        Some(CachedCatalog {
            entries: json!([{"id": "a"}, {"id": "b"}]),
            listed_at: at("2026-11-22T06:00:00Z"),
        })
    );
    assert_eq!(
        state.cached_catalog("crm").expect("read"),
        Some(CachedCatalog {
            entries: json!([]),
            listed_at: at("2026-11-22T05:01:00Z"),
        })
    );
}

#[test]
fn last_run_is_kept_per_schedule() {
    let (_dir, _path, state) = fresh();
    assert_eq!(state.last_run("backup/billing").expect("read"), None);
    state
        .set_last_run("backup/billing", at("2026-11-22T02:00:00Z"))
        .expect("set");
    state
        .set_last_run("drill/billing", at("2026-11-22T04:30:00Z"))
        .expect("set");
    state
        .set_last_run("backup/billing", at("2026-11-23T02:00:00Z"))
        .expect("replace");
    assert_eq!(
        state.last_run("backup/billing").expect("read"),
        Some(at("2026-11-23T02:00:00Z"))
    );
    assert_eq!(
        state.last_run("drill/billing").expect("read"),
        Some(at("2026-11-22T04:30:00Z"))
    );
}

// ---- names and conversions ----

#[test]
fn kinds_and_statuses_have_stable_names() {
    let kinds: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "backup",
            "anonymized_backup",
            "prune",
            "heal",
            "drill",
            "verify",
            "anonymized_copy",
            "restore"
        ]
    );
    let statuses: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        statuses,
        ["running", "ok", "degraded", "failed", "interrupted"]
    );
    for kind in JobKind::ALL {
        assert_eq!(kind.as_str().parse::<JobKind>(), Ok(kind));
        assert_eq!(
            serde_json::to_value(kind).expect("json"),
            json!(kind.as_str())
        );
        assert_eq!(kind.to_string(), kind.as_str());
    }
    for status in JobStatus::ALL {
        assert_eq!(status.as_str().parse::<JobStatus>(), Ok(status));
        assert_eq!(
            serde_json::to_value(status).expect("json"),
            json!(status.as_str())
        );
    }
    let e = "Backup".parse::<JobKind>().expect_err("case matters");
    assert_eq!(
        e.to_string(),
        "unknown job kind \"Backup\" (expected one of: backup, anonymized_backup, prune, heal, \
         drill, verify, anonymized_copy, restore)"
    );

    assert_eq!(JobKind::from(BackupKind::Full), JobKind::Backup);
    assert_eq!(
        JobKind::from(BackupKind::Anonymized),
        JobKind::AnonymizedBackup
    );
    assert_eq!(JobStatus::from(BackupStatus::Ok), JobStatus::Ok);
    assert_eq!(JobStatus::from(BackupStatus::Degraded), JobStatus::Degraded);
    assert_eq!(JobStatus::from(BackupStatus::Failed), JobStatus::Failed);
}

#[test]
fn job_end_from_a_backup_report() {
    let report = BackupReport {
        id: "20261122T020000.000Z-7f3a".to_owned(),
        source: "billing".to_owned(),
        kind: BackupKind::Full,
        status: BackupStatus::Degraded,
        targets: Vec::new(),
        plaintext_bytes: 409_000_000,
        stored_bytes: 148_000_000,
        duration_s: 7.8,
        tables: 6,
        rows: 1_000_000,
        sha256: None,
        error: Some("target frankfurt: timed out".to_owned()),
    };
    let finished = at("2026-11-22T02:00:08Z");
    let end = JobEnd::from_backup_report(&report, finished).expect("json");
    assert_eq!(end.status, JobStatus::Degraded);
    assert_eq!(end.finished_at, finished);
    assert_eq!(end.bytes, Some(148_000_000));
    assert_eq!(end.error.as_deref(), Some("target frankfurt: timed out"));
    let details = end.details.expect("details");
    assert_eq!(details["id"], json!("20261122T020000.000Z-7f3a"));
    assert_eq!(details["rows"], json!(1_000_000));

    let (_dir, _path, state) = fresh();
    let id = state
        .record_job_start(
            JobKind::from(report.kind),
            &report.source,
            at("2026-11-22T02:00:00Z"),
        )
        .expect("start");
    state
        .record_job_end(
            id,
            &JobEnd::from_backup_report(&report, finished).expect("json"),
        )
        .expect("end");
    let job = state.job(id).expect("read").expect("exists");
    assert_eq!(
        job.details.as_ref().map(|d| &d["status"]),
        Some(&json!("degraded"))
    );
}

#[test]
fn sql_errors_name_the_file_the_action_and_a_way_out() {
    let (_dir, path, state) = fresh();
    state
        .conn
        .execute_batch("DROP TABLE schedule_runs")
        .expect("drop");
    let e = state
        .set_last_run("backup/billing", at("2026-11-22T02:00:00Z"))
        .expect_err("no table")
        .to_string();
    assert!(
        e.starts_with(&format!(
            "state file {}: recording the last run of a schedule: no such table: schedule_runs",
            path.display()
        )),
        "{e}"
    );
    assert!(e.contains("moving it aside loses no backup"), "{e}");
}
