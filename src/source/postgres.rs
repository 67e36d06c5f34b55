//! PostgreSQL through its own client tools: `pg_dump --format=plain` streamed for
//! backups (one consistent snapshot: pg_dump reads in one repeatable-read
//! transaction), `psql --single-transaction` for restores, `psql` for checks.
//!
//! Connection settings follow libpq (URL, PGPASSWORD, PGPASSFILE, sslmode, service
//! files), so coffre reaches exactly what `psql` reaches. A configured
//! `password_file` is handed to the child as PGPASSWORD, never logged.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use super::{
    ChunkSink, Destination, RestoreSession, SessionSql, Source, SourceError, StartedDump,
    StderrTail, ToolProcess, run_dump_tool, spawn_tool, status_text,
};
use crate::dump::pg_plain::{Output, PgPlainParser};
use crate::dump::{DumpStats, RowTransform};

/// One PostgreSQL database and the client tools to reach it.
#[derive(Debug, Clone)]
pub struct PgDatabase {
    pub url: String,
    pub password: Option<String>,
    pub pg_dump: PathBuf,
    pub psql: PathBuf,
    pub owners_and_privileges: bool,
}

impl PgDatabase {
    /// A database with the default tools from PATH.
    pub fn new(url: impl Into<String>) -> Self {
        PgDatabase {
            url: url.into(),
            password: None,
            pg_dump: PathBuf::from("pg_dump"),
            psql: PathBuf::from("psql"),
            owners_and_privileges: false,
        }
    }

    /// The URL without any password, for messages.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    fn command(&self, tool: &Path) -> Command {
        let mut cmd = Command::new(tool);
        if let Some(p) = &self.password {
            cmd.env("PGPASSWORD", p);
        }
        // Stable text forms, so that row checksums can be recomputed later.
        cmd.env("PGTZ", "UTC")
            .env("PGDATESTYLE", "ISO")
            .env("PGAPPNAME", "coffre")
            .env("PGCLIENTENCODING", "UTF8");
        if std::env::var_os("PGCONNECT_TIMEOUT").is_none() {
            cmd.env("PGCONNECT_TIMEOUT", "15");
        }
        cmd
    }

    fn tool_error(&self, tool: &Path, status: String, stderr: String) -> SourceError {
        SourceError::Tool {
            tool: tool
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            database: self.redacted_url(),
            status,
            stderr,
        }
    }

    /// Runs one SQL command with psql; returns its unaligned, tuples-only output lines.
    pub fn query(&self, sql: &str) -> Result<Vec<String>, SourceError> {
        let mut cmd = self.command(&self.psql);
        cmd.args(["-X", "-w", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(&self.url)
            .args(["-c", sql])
            .stdin(Stdio::null());
        let out = cmd.output().map_err(|source| SourceError::Spawn {
            tool: self.psql.display().to_string(),
            source,
        })?;
        if !out.status.success() {
            return Err(self.tool_error(
                &self.psql,
                status_text(out.status),
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect())
    }
}

/// Removes the password of a `postgres://user:pass@host/db` URL.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

pub use crate::dump::quote_ident;

impl Source for PgDatabase {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn dump_tool(&self) -> Result<String, SourceError> {
        let out = self
            .command(&self.pg_dump)
            .arg("--version")
            .output()
            .map_err(|source| SourceError::Spawn {
                tool: self.pg_dump.display().to_string(),
                source,
            })?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn start_dump(&self) -> Result<Box<dyn StartedDump>, SourceError> {
        let mut cmd = self.command(&self.pg_dump);
        cmd.args(["-w", "--format=plain", "--encoding=UTF8"]);
        if !self.owners_and_privileges {
            cmd.args(["--no-owner", "--no-privileges"]);
        }
        cmd.arg(format!("--dbname={}", self.url))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let process = ToolProcess::spawn(&self.pg_dump, &mut cmd)?;
        Ok(Box::new(PgDump {
            db: self.clone(),
            process,
        }))
    }
}

/// A running `pg_dump`, read through the plain-format parser.
struct PgDump {
    db: PgDatabase,
    process: ToolProcess,
}

impl StartedDump for PgDump {
    fn run(
        self: Box<Self>,
        transform: &mut dyn RowTransform,
        out: &mut dyn ChunkSink,
    ) -> Result<DumpStats, SourceError> {
        let db = self.db;
        run_dump_tool(
            self.process,
            PgPlainParser::new(transform, Output::Emit),
            out,
            &db.redacted_url(),
            |status, stderr| db.tool_error(&db.pg_dump, status, stderr),
        )
    }
}

impl Destination for PgDatabase {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn describe(&self) -> String {
        self.redacted_url()
    }

    fn check_empty(&self) -> Result<(), SourceError> {
        let rows = self.query(
            "SELECT count(*) FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'",
        )?;
        let n: u64 = rows
            .first()
            .and_then(|r| r.trim().parse().ok())
            .unwrap_or(0);
        if n > 0 {
            return Err(SourceError::NotEmpty {
                database: self.redacted_url(),
                what: format!("{n} relations"),
            });
        }
        Ok(())
    }

    fn begin(&self) -> Result<Box<dyn RestoreSession>, SourceError> {
        let mut cmd = self.command(&self.psql);
        cmd.args([
            "-X",
            "-w",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            "-d",
        ])
        .arg(&self.url)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = spawn_tool(&self.psql, &mut cmd)?;
        let tail = StderrTail::default();
        let err_thread = child.stderr.take().map(|e| tail.spawn(e));
        let stdin = child.stdin.take();
        // psql's output (a few lines of pg_dump's SELECTs, then the answers of
        // `SessionSql::copy_lines`), line by line; read at once so that psql never blocks.
        let (lines_tx, lines) = std::sync::mpsc::channel::<Vec<u8>>();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(out).split(b'\n') {
                    let Ok(l) = line else { break };
                    if lines_tx.send(l).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Box::new(PsqlSession {
            db: self.clone(),
            child,
            stdin,
            tail,
            err_thread,
            lines,
        }))
    }

    fn count_rows(&self, tables: &[(String, String)]) -> Result<Vec<u64>, SourceError> {
        if tables.is_empty() {
            return Ok(Vec::new());
        }
        let parts: Vec<String> = tables
            .iter()
            .enumerate()
            .map(|(i, (schema, name))| {
                format!(
                    "SELECT {i}, count(*) FROM {}.{}",
                    quote_ident(schema),
                    quote_ident(name)
                )
            })
            .collect();
        let sql = format!("{} ORDER BY 1", parts.join(" UNION ALL "));
        let rows = self.query(&sql)?;
        let mut counts = vec![0u64; tables.len()];
        for r in rows {
            if let Some((i, n)) = r.split_once('|')
                && let (Ok(i), Ok(n)) = (i.parse::<usize>(), n.parse::<u64>())
                && i < counts.len()
            {
                counts[i] = n;
            }
        }
        Ok(counts)
    }
}

/// A restore into PostgreSQL: psql reads the SQL in one transaction, committed
/// only when its input ends cleanly; killing it rolls everything back.
struct PsqlSession {
    db: PgDatabase,
    child: Child,
    stdin: Option<ChildStdin>,
    tail: StderrTail,
    err_thread: Option<std::thread::JoinHandle<()>>,
    lines: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl SessionSql for PsqlSession {
    fn execute(&mut self, sql: &str) -> Result<(), SourceError> {
        let mut text = sql.trim_end().trim_end_matches(';').to_owned();
        text.push_str(";\n");
        self.write(text.as_bytes())
    }

    fn copy_lines(&mut self, query: &str) -> Result<Vec<Vec<u8>>, SourceError> {
        let mut nonce = [0u8; 12];
        let _ = getrandom::fill(&mut nonce);
        let nonce = hex::encode(nonce);
        let begin = format!("coffre-begin-{nonce}");
        let end = format!("coffre-end-{nonce}");
        let query = query.trim_end().trim_end_matches(';');
        self.write(
            format!("\\echo {begin}\nCOPY ({query}) TO STDOUT;\n\\echo {end}\n").as_bytes(),
        )?;
        if let Some(stdin) = self.stdin.as_mut()
            && stdin.flush().is_err()
        {
            return Err(self.failed());
        }
        let mut rows = Vec::new();
        let mut inside = false;
        loop {
            let Ok(line) = self.lines.recv() else {
                // psql stopped: ON_ERROR_STOP after a failed statement.
                return Err(self.failed());
            };
            if !inside {
                inside = line == begin.as_bytes();
            } else if line == end.as_bytes() {
                return Ok(rows);
            } else {
                rows.push(line);
            }
        }
    }
}

impl PsqlSession {
    fn failed(&mut self) -> SourceError {
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .map(status_text)
            .unwrap_or_else(|e| e.to_string());
        if let Some(t) = self.err_thread.take() {
            let _ = t.join();
        }
        self.db.tool_error(&self.db.psql, status, self.tail.text())
    }
}

impl RestoreSession for PsqlSession {
    fn write(&mut self, sql: &[u8]) -> Result<(), SourceError> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(SourceError::Other("restore input already closed".into()));
        };
        if stdin.write_all(sql).is_err() {
            return Err(self.failed());
        }
        Ok(())
    }

    /// The SQL text is what pg_dump wrote, byte for byte (its SHA-256 matched the
    /// manifest before the input ended), so its rows need no second look here;
    /// restored row counts are checked in the database after the commit.
    fn end_input(&mut self) -> Result<Option<DumpStats>, SourceError> {
        Ok(None)
    }

    fn commit(mut self: Box<Self>) -> Result<(), SourceError> {
        drop(self.stdin.take());
        let status = self
            .child
            .wait()
            .map_err(|e| SourceError::Other(e.to_string()))?;
        if let Some(t) = self.err_thread.take() {
            let _ = t.join();
        }
        if !status.success() {
            return Err(self
                .db
                .tool_error(&self.db.psql, status_text(status), self.tail.text()));
        }
        Ok(())
    }

    fn abort(mut self: Box<Self>) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn sql(&mut self) -> Option<&mut dyn SessionSql> {
        Some(self)
    }
}
