//! `coffre serve`: backups on time from cron schedules, never overlapping for a source, each
//! recorded in the state store; probes and metrics; SIGTERM → exit 0; a restart resumes; a
//! backup cancelled at shutdown leaves nothing listed and is recorded `interrupted`.
//! SQLite sources and fs targets only: no server needed.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{BIN, Target, Workspace};
use crate::interrupted::{random_blobs, walkdir};

/// A port nobody listens on now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A small SQLite database with one table.
pub(crate) fn small_db(path: &Path, rows: i64) {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL);")
        .expect("schema");
    for i in 0..rows {
        conn.execute(
            "INSERT INTO t (id, name) VALUES (?1, ?2)",
            rusqlite::params![i, format!("row {i}")],
        )
        .expect("insert");
    }
}

/// `GET path` on 127.0.0.1:port: (status, body), or `None` if nothing answers.
pub(crate) fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Starts `coffre serve`, its logs in `serve-N.log` of the workspace.
pub(crate) fn start(ws: &Workspace, n: u32) -> Child {
    start_with_env(ws, n, &[])
}

/// Same, with extra environment variables.
pub(crate) fn start_with_env(ws: &Workspace, n: u32, env: &[(&str, &str)]) -> Child {
    let log = std::fs::File::create(ws.path(&format!("serve-{n}.log"))).expect("log file");
    Command::new(BIN)
        .arg("--config")
        .arg(&ws.config)
        .arg("serve")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn coffre serve")
}

pub(crate) fn logs(ws: &Workspace, n: u32) -> String {
    std::fs::read_to_string(ws.path(&format!("serve-{n}.log"))).unwrap_or_default()
}

/// Waits until `/readyz` answers 200.
pub(crate) fn wait_ready(ws: &Workspace, child: &mut Child, port: u16, n: u32) {
    let started = Instant::now();
    loop {
        if let Some((200, _)) = http_get(port, "/readyz") {
            return;
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("coffre serve exited ({status}):\n{}", logs(ws, n));
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not ready within 60 s:\n{}",
            logs(ws, n)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM and waits for the exit code, at most `within`.
pub(crate) fn terminate(ws: &Workspace, mut child: Child, within: Duration, n: u32) -> i32 {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let sent = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code().unwrap_or(-1);
        }
        if sent.elapsed() > within {
            let _ = child.kill();
            panic!(
                "coffre serve still running {} s after SIGTERM:\n{}",
                within.as_secs(),
                logs(ws, n)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A job as the state store holds it.
#[derive(Debug)]
pub(crate) struct JobRow {
    pub(crate) source: String,
    pub(crate) kind: String,
    pub(crate) status: String,
    pub(crate) started_at: String,
    pub(crate) finished_at: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) backup_id: Option<String>,
}

/// Every job of the state store (opened read-only), oldest first.
pub(crate) fn jobs(ws: &Workspace) -> Vec<JobRow> {
    let path = ws.path("state/state.db");
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Vec::new();
    };
    let Ok(mut stmt) = conn.prepare(
        "SELECT source, kind, status, started_at, finished_at, error, details FROM jobs \
         ORDER BY id",
    ) else {
        return Vec::new(); // not created yet
    };
    stmt.query_map([], |row| {
        let details: Option<String> = row.get(6)?;
        Ok(JobRow {
            source: row.get(0)?,
            kind: row.get(1)?,
            status: row.get(2)?,
            started_at: row.get(3)?,
            finished_at: row.get(4)?,
            error: row.get(5)?,
            backup_id: details.and_then(|d| {
                serde_json::from_str::<serde_json::Value>(&d)
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_owned))
            }),
        })
    })
    .expect("query jobs")
    .collect::<Result<_, _>>()
    .expect("read jobs")
}

/// Checks one source's history against its listed backups: one `ok` job per backup, jobs
/// one after the other.
fn check_history(ws: &Workspace, all: &[JobRow], source: &str) -> usize {
    let mine: Vec<&JobRow> = all.iter().filter(|j| j.source == source).collect();
    for job in &mine {
        assert_eq!(job.status, "ok", "{job:?}");
        assert_eq!(job.kind, "backup", "{job:?}");
    }
    let mut recorded: Vec<String> = mine.iter().filter_map(|j| j.backup_id.clone()).collect();
    recorded.sort();
    let listed = ws.listed(source);
    assert_eq!(listed, recorded, "one ok job per listed backup of {source}");
    for pair in mine.windows(2) {
        let end = pair[0].finished_at.as_deref().expect("ended");
        // RFC 3339 UTC text of fixed width: text order is time order.
        assert!(
            end <= pair[1].started_at.as_str(),
            "jobs of {source} overlap: {pair:?}"
        );
    }
    mine.len()
}

#[test]
fn scheduled_backups_run_on_time_never_overlap_and_resume_after_a_restart() {
    let port = free_port();
    let ws = Workspace::new(
        &[Target::Fs("local")],
        &format!(
            "[service]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace_secs = 20\n\
             [sources.alpha]\ntype = \"sqlite\"\npath = \"alpha.db\"\ntargets = [\"local\"]\n\
             schedule = \"*/2 * * * * *\"\n\
             [sources.beta]\ntype = \"sqlite\"\npath = \"beta.db\"\ntargets = [\"local\"]\n\
             schedule = \"*/2 * * * * *\"\n\
             [sources.gone]\ntype = \"sqlite\"\npath = \"gone.db\"\ntargets = [\"local\"]\n\
             schedule = \"*/2 * * * * *\"\n"
        ),
    );
    small_db(&ws.path("alpha.db"), 200);
    small_db(&ws.path("beta.db"), 300);

    let mut child = start(&ws, 1);
    wait_ready(&ws, &mut child, port, 1);
    let (status, body) = http_get(port, "/healthz").expect("healthz answers");
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_secs(7));

    let (status, metrics) = http_get(port, "/metrics").expect("metrics answer");
    assert_eq!(status, 200);
    for source in ["alpha", "beta"] {
        for series in [
            format!("coffre_backup_last_success_timestamp_seconds{{source=\"{source}\"}}"),
            format!("coffre_backup_newest_good_age_seconds{{source=\"{source}\"}}"),
            format!("coffre_backup_last_status{{source=\"{source}\",status=\"ok\"}} 1"),
            format!("coffre_backup_last_stored_bytes{{source=\"{source}\"}}"),
            format!("coffre_backup_last_duration_seconds{{source=\"{source}\"}}"),
            format!("coffre_backup_last_target_ok{{source=\"{source}\",target=\"local\"}} 1"),
            format!("coffre_jobs_total{{source=\"{source}\",kind=\"backup\",status=\"ok\"}}"),
        ] {
            assert!(metrics.contains(&series), "no {series} in\n{metrics}");
        }
    }
    // A source whose database is missing: failed, and said so.
    for series in [
        "coffre_backup_last_status{source=\"gone\",status=\"failed\"} 1",
        "coffre_backup_last_status{source=\"gone\",status=\"ok\"} 0",
        "coffre_jobs_running{source=\"gone\"} 0",
        "coffre_schedule_skipped_slots_total{source=\"gone\"} 0",
    ] {
        assert!(metrics.contains(series), "no {series} in\n{metrics}");
    }
    assert!(
        !metrics.contains("coffre_backup_last_success_timestamp_seconds{source=\"gone\"}"),
        "{metrics}"
    );
    assert_eq!(http_get(port, "/readyz").map(|r| r.0), Some(200));

    let code = terminate(&ws, child, Duration::from_secs(25), 1);
    assert_eq!(code, 0, "{}", logs(&ws, 1));
    let first = jobs(&ws);
    let failed: Vec<&JobRow> = first.iter().filter(|j| j.source == "gone").collect();
    assert!(failed.len() >= 2, "{failed:?}");
    for job in failed {
        assert_eq!(job.status, "failed", "{job:?}");
        assert!(
            job.error.as_deref().is_some_and(|e| !e.is_empty()),
            "{job:?}"
        );
    }
    let mut counts = Vec::new();
    for source in ["alpha", "beta"] {
        let n = check_history(&ws, &first, source);
        // 7 s at one slot every 2 s, plus the catch-up at start-up.
        assert!(n >= 2, "{source}: {n} backups in 7 s:\n{}", logs(&ws, 1));
        counts.push(n);
    }

    // A restart resumes: more jobs, the history kept.
    let mut child = start(&ws, 2);
    wait_ready(&ws, &mut child, port, 2);
    std::thread::sleep(Duration::from_secs(4));
    let code = terminate(&ws, child, Duration::from_secs(25), 2);
    assert_eq!(code, 0, "{}", logs(&ws, 2));
    let second = jobs(&ws);
    assert!(
        second.iter().filter(|j| j.source == "gone").count() > 0,
        "the failing source is still scheduled"
    );
    for (source, before) in ["alpha", "beta"].into_iter().zip(counts) {
        let n = check_history(&ws, &second, source);
        assert!(
            n > before,
            "{source}: {n} jobs after the restart, {before} before:\n{}",
            logs(&ws, 2)
        );
    }
}

#[test]
fn sigterm_mid_backup_cancels_it_after_the_grace_and_lists_nothing_partial() {
    let port = free_port();
    let source = |schedule: &str| {
        format!(
            "[service]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace_secs = 1\n\
             [sources.big]\ntype = \"sqlite\"\npath = \"big.db\"\ntargets = [\"local\"]\n\
             {schedule}"
        )
    };
    let ws = Workspace::new(
        &[Target::Fs("local")],
        &source("schedule = \"*/2 * * * * *\"\n"),
    );
    random_blobs(&ws.path("big.db"), 60);

    // Never run: the slot just passed is caught up at once.
    let mut child = start(&ws, 1);
    let started = Instant::now();
    loop {
        if jobs(&ws).iter().any(|j| j.status == "running") {
            break;
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("coffre serve exited ({status}):\n{}", logs(&ws, 1));
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no backup started within 60 s:\n{}",
            logs(&ws, 1)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let it write part of its data.
    std::thread::sleep(Duration::from_millis(300));
    let code = terminate(&ws, child, Duration::from_secs(30), 1);
    assert_eq!(code, 0, "{}", logs(&ws, 1));

    let history = jobs(&ws);
    assert_eq!(history.len(), 1, "{history:?}");
    let job = &history[0];
    assert_eq!(job.status, "interrupted", "{job:?}\n{}", logs(&ws, 1));
    assert!(job.finished_at.is_some(), "{job:?}");
    assert!(
        job.error.as_deref().unwrap_or("").contains("interrupted"),
        "{job:?}"
    );
    assert!(
        ws.listed("big").is_empty(),
        "a cancelled backup is never listed"
    );

    // The next start (with no schedule, so that no new backup writes meanwhile) removes
    // whatever the cancelled one left.
    let text = std::fs::read_to_string(&ws.config).expect("config");
    std::fs::write(
        &ws.config,
        text.replace("schedule = \"*/2 * * * * *\"\n", ""),
    )
    .expect("config");
    let mut child = start(&ws, 2);
    wait_ready(&ws, &mut child, port, 2);
    let partials: Vec<String> = walkdir(&ws.path("local"))
        .into_iter()
        .filter(|p| p.contains(".partial-"))
        .collect();
    assert!(partials.is_empty(), "temporary files left: {partials:?}");
    let code = terminate(&ws, child, Duration::from_secs(10), 2);
    assert_eq!(code, 0, "{}", logs(&ws, 2));
    assert!(ws.listed("big").is_empty());
}

#[test]
fn a_source_with_anonymize_gets_scheduled_anonymized_backups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("billing.db");
    crate::harness::load_billing_sqlite(&db, 40);
    let ws = crate::anonymize::sqlite_anon_workspace(&db, crate::anonymize::KEY_A);
    let port = free_port();
    let mut config = std::fs::read_to_string(&ws.config).expect("config");
    config.push_str(&format!(
        "anonymize = true\nschedule = \"*/2 * * * * *\"\n\
         [service]\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    std::fs::write(&ws.config, config).expect("config");

    let mut child = start(&ws, 1);
    wait_ready(&ws, &mut child, port, 1);
    let started = Instant::now();
    while !jobs(&ws).iter().any(|j| j.status != "running") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no job ended within 60 s:\n{}",
            logs(&ws, 1)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, metrics) = http_get(port, "/metrics").expect("metrics answer");
    assert!(
        metrics.contains(
            "coffre_jobs_total{source=\"lite\",kind=\"anonymized_backup\",status=\"ok\"}"
        ),
        "{metrics}"
    );
    assert_eq!(terminate(&ws, child, Duration::from_secs(70), 1), 0);
    let history = jobs(&ws);
    assert!(!history.is_empty());
    for job in &history {
        assert_eq!(job.kind, "anonymized_backup", "{job:?}");
        assert_eq!(job.status, "ok", "{job:?}\n{}", logs(&ws, 1));
    }
    let (code, listing) = ws.json(&["list", "lite"]);
    assert_eq!(code, 0, "{listing:#}");
    let backups = listing["backups"].as_array().expect("backups");
    assert_eq!(backups.len(), history.len(), "{listing:#}");
    for backup in backups {
        assert_eq!(backup["kind"], "anonymized", "{backup:#}");
    }
}
