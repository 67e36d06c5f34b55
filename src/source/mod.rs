//! Databases: the `Source` trait (one consistent snapshot as SQL text) and the
//! `Destination` trait (restore that text), for PostgreSQL and SQLite.
//!
//! Both sides are blocking code meant to run on their own thread
//! (`tokio::task::spawn_blocking`), joined to the async stages by bounded channels.

pub mod mysql;
pub mod postgres;
pub mod sqlite;

use std::io::Read;
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Mutex};

use crate::dump::{DumpError, DumpStats, RowTransform};

pub use mysql::MysqlDatabase;
pub use postgres::PgDatabase;
pub use sqlite::SqliteDatabase;

/// Errors of sources and destinations, naming the database and the fix.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{tool} failed ({status}) on {database}: {stderr}")]
    Tool {
        tool: String,
        database: String,
        status: String,
        stderr: String,
    },
    #[error(
        "cannot run {tool}: {source} (is it installed and on PATH? set its path in the source config)"
    )]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{database}: {message}")]
    Database { database: String, message: String },
    #[error("{database}: {source}")]
    Dump {
        database: String,
        #[source]
        source: DumpError,
    },
    #[error(
        "destination {database} is not empty ({what}): restore into an empty database, or pass --force"
    )]
    NotEmpty { database: String, what: String },
    #[error("{0}")]
    Parse(#[from] DumpError),
    #[error("the pipeline downstream stopped")]
    Downstream,
    #[error("{0}")]
    Other(String),
}

/// Where a source sends its SQL text, chunk by chunk.
pub trait ChunkSink {
    /// Sends one chunk; an error means the consumer is gone (stop dumping).
    fn send(&mut self, chunk: Vec<u8>) -> Result<(), SourceError>;
}

/// A database that can be dumped as one consistent snapshot.
pub trait Source: Send + Sync {
    /// `postgres` or `sqlite`.
    fn kind(&self) -> &'static str;
    /// Name and version of the dump tool, for the manifest.
    fn dump_tool(&self) -> Result<String, SourceError>;
    /// Starts a dump of one consistent snapshot. An external dump tool starts now: it
    /// connects, takes its snapshot and reads the catalog while the caller gets ready
    /// (checks its policy, takes its lock), and its output waits in the pipe until
    /// [`StartedDump::run`] reads it. Dropped unread, the dump stops its tool. Blocking,
    /// briefly (a process spawn).
    fn start_dump(&self) -> Result<Box<dyn StartedDump>, SourceError>;
    /// Streams one consistent snapshot as SQL text through `transform` into `out`;
    /// returns the per-table stats of what was sent. Blocking.
    fn dump(
        &self,
        transform: &mut dyn RowTransform,
        out: &mut dyn ChunkSink,
    ) -> Result<DumpStats, SourceError> {
        self.start_dump()?.run(transform, out)
    }
}

/// A dump started by [`Source::start_dump`], not read yet.
pub trait StartedDump: Send {
    /// Streams the snapshot as SQL text through `transform` into `out`; returns the
    /// per-table stats of what was sent. Blocking.
    fn run(
        self: Box<Self>,
        transform: &mut dyn RowTransform,
        out: &mut dyn ChunkSink,
    ) -> Result<DumpStats, SourceError>;
}

/// Spawns a client tool; failing that, an error naming the tool and the fix.
pub(crate) fn spawn_tool(
    tool: &std::path::Path,
    cmd: &mut Command,
) -> Result<std::process::Child, SourceError> {
    cmd.spawn().map_err(|source| SourceError::Spawn {
        tool: tool.display().to_string(),
        source,
    })
}

/// A dump tool's process started ahead of its reader, its stdout piped. Dropped before
/// [`run_dump_tool`] takes it, the process is killed and reaped: a backup that stops
/// before reading (a failed policy check, a lock held elsewhere) leaves no tool running.
pub(crate) struct ToolProcess {
    child: Option<std::process::Child>,
}

impl ToolProcess {
    /// Spawns `cmd` (stdout and stderr must be piped) and widens its stdout pipe, so that
    /// the tool and the database run ahead while the reader is busy.
    pub(crate) fn spawn(tool: &std::path::Path, cmd: &mut Command) -> Result<Self, SourceError> {
        let child = spawn_tool(tool, cmd)?;
        // 1 MiB (Linux's default limit) instead of 64 KiB.
        #[cfg(target_os = "linux")]
        if let Some(stdout) = &child.stdout
            && let Err(e) = rustix::pipe::fcntl_setpipe_size(stdout, DUMP_PIPE_BYTES)
        {
            tracing::debug!(error = %e, "the dump pipe keeps its default size");
        }
        Ok(ToolProcess { child: Some(child) })
    }
}

impl Drop for ToolProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A database a backup can be restored into.
pub trait Destination: Send + Sync {
    fn kind(&self) -> &'static str;
    /// For messages (never holds a password).
    fn describe(&self) -> String;
    /// Refuses a destination that already holds tables. Blocking.
    fn check_empty(&self) -> Result<(), SourceError>;
    /// Starts loading SQL text. Blocking.
    fn begin(&self) -> Result<Box<dyn RestoreSession>, SourceError>;
    /// Row counts of the given `schema.table` names after a restore. Blocking.
    fn count_rows(&self, tables: &[(String, String)]) -> Result<Vec<u64>, SourceError>;
}

/// One restore in progress: nothing is visible until `commit`.
pub trait RestoreSession: Send {
    fn write(&mut self, sql: &[u8]) -> Result<(), SourceError>;
    /// End of the SQL text: what it held (per-table stats, when the session
    /// parses it), checked against the manifest before committing.
    fn end_input(&mut self) -> Result<Option<DumpStats>, SourceError>;
    fn commit(self: Box<Self>) -> Result<(), SourceError>;
    fn abort(self: Box<Self>);
    /// SQL inside the restore's transaction, after the input ended and before the commit
    /// (where erasures are applied); `None` where the destination has no such channel.
    fn sql(&mut self) -> Option<&mut dyn SessionSql> {
        None
    }
}

/// SQL run inside a restore's transaction, before it commits.
pub trait SessionSql {
    /// Runs statements that return no rows; a failure may only surface at the next query.
    fn execute(&mut self, sql: &str) -> Result<(), SourceError>;
    /// Runs one query (a `SELECT`, or a statement with `RETURNING`) and returns its rows
    /// as PostgreSQL COPY text lines, without their line ends.
    fn copy_lines(&mut self, query: &str) -> Result<Vec<Vec<u8>>, SourceError>;
}

/// Keeps the last bytes a child process writes on stderr, on its own thread.
#[derive(Clone, Default)]
pub(crate) struct StderrTail(Arc<Mutex<Vec<u8>>>);

const STDERR_KEEP: usize = 16 * 1024;

impl StderrTail {
    pub(crate) fn spawn(
        &self,
        mut pipe: impl Read + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        let buf = self.0.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                if let Ok(mut b) = buf.lock() {
                    b.extend_from_slice(&chunk[..n]);
                    if b.len() > STDERR_KEEP {
                        let cut = b.len() - STDERR_KEEP;
                        b.drain(..cut);
                    }
                }
            }
        })
    }

    pub(crate) fn text(&self) -> String {
        let b = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        let s = String::from_utf8_lossy(&b);
        let s = s.trim();
        if s.is_empty() {
            "(no message)".to_owned()
        } else {
            s.to_owned()
        }
    }
}

/// The pipe buffer asked for between a dump tool and coffre.
#[cfg(target_os = "linux")]
const DUMP_PIPE_BYTES: usize = 1 << 20;

/// Runs a dump tool whose stdout is SQL text: streams it through `rewriter` into `out` in
/// pipeline-sized chunks, kills the tool if the stream fails, and reports the tool's own
/// failure (`tool_error(status, stderr tail)`) first. `database` names the source in
/// messages (never with a password). Blocking.
pub(crate) fn run_dump_tool<R: crate::dump::Rewriter>(
    mut process: ToolProcess,
    rewriter: R,
    out: &mut dyn ChunkSink,
    database: &str,
    tool_error: impl FnOnce(String, String) -> SourceError,
) -> Result<DumpStats, SourceError> {
    let Some(mut child) = process.child.take() else {
        return Err(SourceError::Other("the dump tool was already read".into()));
    };
    let tail = StderrTail::default();
    let err_thread = child.stderr.take().map(|e| tail.spawn(e));
    let result = match child.stdout.take() {
        None => Err(SourceError::Other("the dump tool has no stdout".into())),
        Some(mut stdout) => crate::dump::pump(
            &mut stdout,
            rewriter,
            crate::pipeline::CHUNK,
            &mut |chunk| out.send(chunk),
            |e| SourceError::Other(format!("reading the dump tool's output: {e}")),
            |source| SourceError::Dump {
                database: database.to_owned(),
                source,
            },
        ),
    };
    if result.is_err() {
        let _ = child.kill();
    }
    let status = child
        .wait()
        .map_err(|e| SourceError::Other(e.to_string()))?;
    if let Some(t) = err_thread {
        let _ = t.join();
    }
    if !status.success() {
        return Err(tool_error(status_text(status), tail.text()));
    }
    result
}

pub(crate) fn status_text(status: ExitStatus) -> String {
    match status.code() {
        Some(c) => format!("exit code {c}"),
        None => "killed by a signal".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::process::Stdio;

    use super::*;

    fn sleeper() -> ToolProcess {
        let mut cmd = Command::new("sleep");
        cmd.arg("30")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        ToolProcess::spawn(std::path::Path::new("sleep"), &mut cmd).expect("sleep starts")
    }

    /// A dump tool started ahead and never read (a failed policy check) is killed and
    /// reaped when dropped: nothing is left running.
    #[test]
    fn an_unread_tool_is_stopped_when_dropped() {
        let process = sleeper();
        let pid = process.child.as_ref().expect("a child").id();
        let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
        assert!(proc_dir.exists(), "the tool runs");
        let started = std::time::Instant::now();
        drop(process);
        assert!(!proc_dir.exists(), "the tool is gone, reaped");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    /// A tool that was read is not killed: its exit status is the one reported.
    #[test]
    fn a_read_tool_reports_its_own_failure() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "printf 'SELECT 1;\\n'; echo broken >&2; exit 3"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let process = ToolProcess::spawn(std::path::Path::new("sh"), &mut cmd).expect("sh starts");
        struct Sink(Vec<u8>);
        impl ChunkSink for Sink {
            fn send(&mut self, chunk: Vec<u8>) -> Result<(), SourceError> {
                self.0.extend(chunk);
                Ok(())
            }
        }
        let mut identity = crate::dump::Identity;
        let mut sink = Sink(Vec::new());
        let err = run_dump_tool(
            process,
            crate::dump::pg_plain::PgPlainParser::new(
                &mut identity,
                crate::dump::pg_plain::Output::Emit,
            ),
            &mut sink,
            "db",
            |status, stderr| SourceError::Other(format!("{status}: {stderr}")),
        )
        .expect_err("exit 3 fails");
        assert_eq!(err.to_string(), "exit code 3: broken");
    }
}
