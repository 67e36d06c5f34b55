//! MySQL and MariaDB through their own client tools: `mariadb-dump` (or `mysqldump`)
//! streamed for backups, the `mariadb` (or `mysql`) client for restores and checks.
//!
//! The dump is what `mysql db < dump.sql` restores by hand. Its flags, and why:
//! - `--single-transaction`: one consistent snapshot (REPEATABLE READ and
//!   `START TRANSACTION WITH CONSISTENT SNAPSHOT`) without locking the tables. It is
//!   consistent for InnoDB tables only (MyISAM has no snapshot), and a DDL statement
//!   run during the dump breaks it (the dump then fails or misses the table).
//! - `--routines --triggers --events`: the whole database, not only its tables
//!   (views always come). Events need the EVENT privilege: set `events = false`
//!   for a backup user without it.
//! - `--hex-blob`: binary columns as `0x…`, so the dump is UTF-8 text whatever the
//!   bytes, and a binary value cannot be mistaken for text by the anonymizer;
//!   [`crate::dump::mysql_rows`] reads `0x…` (and `''` for empty ones).
//! - `--complete-insert`: every INSERT names its columns, so the rows describe
//!   themselves (MySQL and MariaDB leave out different generated and invisible
//!   columns) and a policy is checked against the columns really dumped.
//! - `--default-character-set=utf8mb4`: text arrives as UTF-8 from any column
//!   charset; `--skip-dump-date`: the same data gives the same bytes;
//!   `--no-tablespaces`: no PROCESS privilege needed (MySQL 8.0.21+);
//!   `--net-buffer-length=1M`: INSERT statements of about 1 MiB, which any server's
//!   default `max_allowed_packet` (16 MiB or more) accepts on restore;
//!   `--max-allowed-packet=1G`: rows up to the protocol's limit can be read.
//!   TIMESTAMP values are dumped in UTC (`--tz-utc`, on by default).
//!
//! `mariadb-dump` is preferred when both exist: against MariaDB it is the matching
//! tool, and against Oracle MySQL 5.7/8 it works with the flags above, whereas
//! Oracle's `mysqldump` 8 fails against MariaDB unless given its own
//! `--column-statistics=0`. Both paths are configurable.
//!
//! Passwords (from the URL, or set by the config from an env variable or a file)
//! reach the tools through a private `--defaults-extra-file` (mode 0600, removed
//! after use), never on the command line nor in `MYSQL_PWD` (deprecated by MySQL).
//!
//! Restores: MySQL commits every DDL statement on its own, so a dump cannot load in
//! one transaction. A restore therefore goes into an empty database
//! ([`Destination::check_empty`]), and its `abort` drops every table, view,
//! routine and event that was not there when it began. Restoring over existing
//! objects (`--force`) cannot be undone: the dump's `DROP TABLE IF EXISTS` already
//! replaced them. Routines, views and triggers keep their DEFINER, which the
//! restoring user must be allowed to set (SET USER / SUPER).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use super::{
    ChunkSink, Destination, RestoreSession, Source, SourceError, StartedDump, StderrTail,
    ToolProcess, run_dump_tool, spawn_tool, status_text,
};
use crate::dump::mysql_rows::{MysqlRewriter, quote_mysql_ident};
use crate::dump::{DumpStats, Identity, RowTransform};

const CHUNK: usize = crate::pipeline::CHUNK;

/// The parts of a `mysql://user:password@host:port/database?socket=/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlUrl {
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub socket: Option<String>,
}

impl MysqlUrl {
    pub fn parse(url: &str) -> Result<MysqlUrl, SourceError> {
        let bad = |why: &str| {
            SourceError::Other(format!(
                "bad MySQL URL {}: {why} (expected mysql://user@host:3306/database)",
                redact_url(url)
            ))
        };
        let u = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(u.scheme(), "mysql" | "mariadb") {
            return Err(bad("the scheme must be mysql://"));
        }
        let decode = |s: &str| percent_decode(s).ok_or_else(|| bad("bad percent-encoding"));
        let user = match u.username() {
            "" => None,
            s => Some(decode(s)?),
        };
        let password = u.password().map(decode).transpose()?;
        let host = u.host_str().filter(|h| !h.is_empty()).map(str::to_owned);
        let database = match u.path().trim_start_matches('/') {
            "" => None,
            s if s.contains('/') => return Err(bad("the path must be one database name")),
            s => Some(decode(s)?),
        };
        if database.as_deref().is_some_and(|d| d.starts_with('-')) {
            return Err(bad("a database name must not start with `-`"));
        }
        let mut socket = None;
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                "socket" => socket = Some(v.into_owned()),
                other => return Err(bad(&format!("unknown parameter `{other}` (only socket=)"))),
            }
        }
        Ok(MysqlUrl {
            user,
            password,
            host,
            port: u.port(),
            database,
            socket,
        })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Removes the password of a `mysql://user:pass@host/db` URL.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "the given MySQL URL".to_owned(),
    }
}

/// The first of `names` found on PATH, or the last name as is (so that the spawn
/// error names a tool).
fn first_on_path(names: &[&str]) -> PathBuf {
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    names
        .iter()
        .find_map(|n| dirs.iter().map(|d| d.join(n)).find(|p| p.is_file()))
        .unwrap_or_else(|| PathBuf::from(names.last().copied().unwrap_or("mysql")))
}

/// One MySQL or MariaDB database and the client tools to reach it.
#[derive(Debug, Clone)]
pub struct MysqlDatabase {
    /// `mysql://user@host:port/database`; a password in it is used but never shown.
    pub url: String,
    /// Used when the URL has none (the config reads it from an env variable or a file).
    pub password: Option<String>,
    /// `mariadb-dump` or `mysqldump`.
    pub dump_tool: PathBuf,
    /// `mariadb` or `mysql`.
    pub client: PathBuf,
    /// Dump events too (needs the EVENT privilege).
    pub events: bool,
}

/// A private option file holding the password, removed on drop.
pub struct DefaultsFile {
    path: PathBuf,
}

impl DefaultsFile {
    fn create(password: &str) -> Result<DefaultsFile, SourceError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = std::env::temp_dir().join(format!(
            "coffre-mysql-{}-{:016x}.cnf",
            std::process::id(),
            rand::random::<u64>()
        ));
        let write = |path: &Path| -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            f.write_all(defaults_file_text(password).as_bytes())?;
            f.sync_all()
        };
        // Removed on drop, also when the write fails half-way.
        let file = DefaultsFile { path };
        write(&file.path).map_err(|e| {
            SourceError::Other(format!(
                "cannot write the MySQL option file {}: {e} (check TMPDIR)",
                file.path.display()
            ))
        })?;
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DefaultsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `[client]` with the password quoted and escaped as option files read it.
fn defaults_file_text(password: &str) -> String {
    let mut quoted = String::with_capacity(password.len() + 2);
    for c in password.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c => quoted.push(c),
        }
    }
    format!("[client]\npassword=\"{quoted}\"\n")
}

impl MysqlDatabase {
    /// A database with the default tools from PATH (`mariadb-dump` before
    /// `mysqldump`, `mariadb` before `mysql`).
    pub fn new(url: impl Into<String>) -> Self {
        MysqlDatabase {
            url: url.into(),
            password: None,
            dump_tool: first_on_path(&["mariadb-dump", "mysqldump"]),
            client: first_on_path(&["mariadb", "mysql"]),
            events: true,
        }
    }

    /// The URL without any password, for messages.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, database: &str) -> Result<MysqlDatabase, SourceError> {
        let mut u = url::Url::parse(&self.url).map_err(|e| {
            SourceError::Other(format!("bad MySQL URL {}: {e}", self.redacted_url()))
        })?;
        u.set_path(&format!("/{database}"));
        Ok(MysqlDatabase {
            url: u.to_string(),
            ..self.clone()
        })
    }

    /// The database the URL names, or an error saying how to name one.
    pub fn database(&self) -> Result<String, SourceError> {
        MysqlUrl::parse(&self.url)?
            .database
            .ok_or_else(|| SourceError::Database {
                database: self.redacted_url(),
                message: "the URL names no database: use mysql://user@host:3306/DATABASE".into(),
            })
    }

    /// A command for `tool` with the connection options (and the option file that
    /// holds the password, to keep alive until the command ends).
    pub fn command(&self, tool: &Path) -> Result<(Command, Option<DefaultsFile>), SourceError> {
        let u = MysqlUrl::parse(&self.url)?;
        let mut cmd = Command::new(tool);
        let password = u.password.as_deref().or(self.password.as_deref());
        let defaults = password.map(DefaultsFile::create).transpose()?;
        // Must be the first option.
        if let Some(d) = &defaults {
            cmd.arg(format!("--defaults-extra-file={}", d.path.display()));
        }
        if let Some(h) = &u.host {
            cmd.arg(format!("--host={h}"));
        }
        if let Some(p) = u.port {
            cmd.arg(format!("--port={p}"));
        }
        if let Some(user) = &u.user {
            cmd.arg(format!("--user={user}"));
        }
        if let Some(s) = &u.socket {
            cmd.arg(format!("--socket={s}"));
        }
        Ok((cmd, defaults))
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

    /// A client command reading SQL: binary mode (bytes as they are, only
    /// `DELIMITER` understood), stop at the first error.
    fn client_command(&self) -> Result<(Command, Option<DefaultsFile>), SourceError> {
        let (mut cmd, defaults) = self.command(&self.client)?;
        cmd.args([
            "--binary-mode",
            "--batch",
            "--default-character-set=utf8mb4",
            "--max-allowed-packet=1073741824",
            "--connect-timeout=15",
        ]);
        if let Some(db) = MysqlUrl::parse(&self.url)?.database {
            cmd.arg(format!("--database={db}"));
        }
        Ok((cmd, defaults))
    }

    /// Runs SQL with the client; returns the rows of its last result, tab-separated
    /// fields (no NULL marker: NULL reads as `NULL`).
    pub fn query(&self, sql: &str) -> Result<Vec<Vec<String>>, SourceError> {
        let (mut cmd, _defaults) = self.client_command()?;
        cmd.args(["--skip-column-names", "--raw", "-e", sql])
            .stdin(Stdio::null());
        let out = cmd.output().map_err(|source| SourceError::Spawn {
            tool: self.client.display().to_string(),
            source,
        })?;
        if !out.status.success() {
            return Err(self.tool_error(
                &self.client,
                status_text(out.status),
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect())
    }

    /// Runs SQL text written by `write` to the client's input (stop at the first
    /// error). Blocking.
    pub fn run_sql<T>(
        &self,
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<T>,
    ) -> Result<T, SourceError> {
        let (mut cmd, _defaults) = self.client_command()?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = spawn_tool(&self.client, &mut cmd)?;
        let tail = StderrTail::default();
        let err_thread = child.stderr.take().map(|e| tail.spawn(e));
        let written = match child.stdin.take() {
            Some(stdin) => {
                let mut w = std::io::BufWriter::with_capacity(CHUNK, stdin);
                write(&mut w).and_then(|t| w.flush().map(|()| t))
            }
            None => Err(std::io::Error::other("no stdin")),
        };
        let status = child
            .wait()
            .map_err(|e| SourceError::Other(e.to_string()))?;
        if let Some(t) = err_thread {
            let _ = t.join();
        }
        if !status.success() {
            return Err(self.tool_error(&self.client, status_text(status), tail.text()));
        }
        written.map_err(|e| SourceError::Other(format!("writing SQL to the mysql client: {e}")))
    }

    /// Tables, views, routines and events of the database, as `(kind, name)`.
    fn objects(&self) -> Result<Vec<(String, String)>, SourceError> {
        let rows = self.query(
            "SELECT IF(table_type = 'VIEW', 'VIEW', 'TABLE'), table_name \
             FROM information_schema.tables WHERE table_schema = DATABASE() \
             UNION ALL SELECT routine_type, routine_name FROM information_schema.routines \
             WHERE routine_schema = DATABASE() \
             UNION ALL SELECT 'EVENT', event_name FROM information_schema.events \
             WHERE event_schema = DATABASE()",
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|mut r| {
                let name = r.pop()?;
                let kind = r.pop()?;
                Some((kind, name))
            })
            .collect())
    }

    /// Drops the objects of the database not in `keep`; returns what was dropped.
    fn drop_objects_except(&self, keep: &[(String, String)]) -> Result<Vec<String>, SourceError> {
        let mut sql = String::from("SET FOREIGN_KEY_CHECKS = 0;\n");
        let mut dropped = Vec::new();
        for (kind, name) in self.objects()? {
            if keep.iter().any(|(k, n)| *k == kind && *n == name) {
                continue;
            }
            sql.push_str(&format!(
                "DROP {kind} IF EXISTS {};\n",
                quote_mysql_ident(&name)
            ));
            dropped.push(format!("{} {name}", kind.to_lowercase()));
        }
        if !dropped.is_empty() {
            self.run_sql(|w| w.write_all(sql.as_bytes()))?;
        }
        Ok(dropped)
    }
}

impl Source for MysqlDatabase {
    fn kind(&self) -> &'static str {
        "mysql"
    }

    fn dump_tool(&self) -> Result<String, SourceError> {
        let out = Command::new(&self.dump_tool)
            .arg("--version")
            .output()
            .map_err(|source| SourceError::Spawn {
                tool: self.dump_tool.display().to_string(),
                source,
            })?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn start_dump(&self) -> Result<Box<dyn StartedDump>, SourceError> {
        let database = self.database()?;
        let (mut cmd, defaults) = self.command(&self.dump_tool)?;
        cmd.args([
            "--single-transaction",
            "--quick",
            "--routines",
            "--triggers",
            "--hex-blob",
            "--complete-insert",
            "--skip-dump-date",
            "--no-tablespaces",
            "--default-character-set=utf8mb4",
            "--net-buffer-length=1048576",
            "--max-allowed-packet=1073741824",
        ]);
        if self.events {
            cmd.arg("--events");
        }
        cmd.arg(&database)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let process = ToolProcess::spawn(&self.dump_tool, &mut cmd)?;
        Ok(Box::new(MysqlDump {
            db: self.clone(),
            process,
            _defaults: defaults,
        }))
    }
}

/// A running `mariadb-dump`/`mysqldump`, read through the INSERT rewriter.
struct MysqlDump {
    db: MysqlDatabase,
    /// Declared before the defaults file: the tool is stopped before its file is removed.
    process: ToolProcess,
    _defaults: Option<DefaultsFile>,
}

impl StartedDump for MysqlDump {
    fn run(
        self: Box<Self>,
        transform: &mut dyn RowTransform,
        out: &mut dyn ChunkSink,
    ) -> Result<DumpStats, SourceError> {
        let MysqlDump {
            db,
            process,
            _defaults,
        } = *self;
        run_dump_tool(
            process,
            MysqlRewriter::new(transform),
            out,
            &db.redacted_url(),
            |status, stderr| db.tool_error(&db.dump_tool, status, stderr),
        )
    }
}

impl Destination for MysqlDatabase {
    fn kind(&self) -> &'static str {
        "mysql"
    }

    fn describe(&self) -> String {
        self.redacted_url()
    }

    fn check_empty(&self) -> Result<(), SourceError> {
        self.database()?;
        let objects = self.objects()?;
        if objects.is_empty() {
            return Ok(());
        }
        let count = |kinds: &[&str]| {
            objects
                .iter()
                .filter(|(k, _)| kinds.contains(&k.as_str()))
                .count()
        };
        Err(SourceError::NotEmpty {
            database: self.redacted_url(),
            what: format!(
                "{} tables, {} views, {} routines, {} events",
                count(&["TABLE"]),
                count(&["VIEW"]),
                count(&["PROCEDURE", "FUNCTION"]),
                count(&["EVENT"])
            ),
        })
    }

    fn begin(&self) -> Result<Box<dyn RestoreSession>, SourceError> {
        self.database()?;
        let before = self.objects()?;
        let (mut cmd, defaults) = self.client_command()?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = spawn_tool(&self.client, &mut cmd)?;
        let tail = StderrTail::default();
        let err_thread = child.stderr.take().map(|e| tail.spawn(e));
        let stdin = child.stdin.take();
        // Identity is zero-sized: leaking a box of it allocates nothing.
        let identity: &'static mut Identity = Box::leak(Box::new(Identity));
        Ok(Box::new(MysqlSession {
            db: self.clone(),
            child,
            stdin,
            tail,
            err_thread,
            _defaults: defaults,
            parser: Some(MysqlRewriter::watching(identity)),
            before,
        }))
    }

    fn count_rows(&self, tables: &[(String, String)]) -> Result<Vec<u64>, SourceError> {
        if tables.is_empty() {
            return Ok(Vec::new());
        }
        let parts: Vec<String> = tables
            .iter()
            .enumerate()
            .map(|(i, (_, name))| format!("SELECT {i}, count(*) FROM {}", quote_mysql_ident(name)))
            .collect();
        let rows = self.query(&parts.join(" UNION ALL "))?;
        let mut counts = vec![0u64; tables.len()];
        for r in rows {
            if let [i, n] = r.as_slice()
                && let (Ok(i), Ok(n)) = (i.parse::<usize>(), n.parse::<u64>())
                && i < counts.len()
            {
                counts[i] = n;
            }
        }
        Ok(counts)
    }
}

/// A restore into MySQL: the client runs the text statement by statement (each
/// DDL commits), while the same text is parsed to count and checksum its rows;
/// `abort` drops what the restore created.
struct MysqlSession {
    db: MysqlDatabase,
    child: Child,
    stdin: Option<ChildStdin>,
    tail: StderrTail,
    err_thread: Option<std::thread::JoinHandle<()>>,
    _defaults: Option<DefaultsFile>,
    parser: Option<MysqlRewriter<'static>>,
    /// Objects of the database before the restore: kept by `abort`.
    before: Vec<(String, String)>,
}

impl MysqlSession {
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
        self.db
            .tool_error(&self.db.client, status, self.tail.text())
    }
}

impl RestoreSession for MysqlSession {
    fn write(&mut self, sql: &[u8]) -> Result<(), SourceError> {
        let (Some(parser), Some(stdin)) = (self.parser.as_mut(), self.stdin.as_mut()) else {
            return Err(SourceError::Other("restore input already closed".into()));
        };
        parser.feed(sql).map_err(|source| SourceError::Dump {
            database: self.db.redacted_url(),
            source,
        })?;
        if stdin.write_all(sql).is_err() {
            return Err(self.failed());
        }
        Ok(())
    }

    /// The rows of the text, counted and checksummed as the backup counted them.
    fn end_input(&mut self) -> Result<Option<DumpStats>, SourceError> {
        let parser = self
            .parser
            .take()
            .ok_or_else(|| SourceError::Other("restore input already closed".into()))?;
        let (_, stats) = parser.finish().map_err(|source| SourceError::Dump {
            database: self.db.redacted_url(),
            source,
        })?;
        Ok(Some(stats))
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
            let err = self
                .db
                .tool_error(&self.db.client, status_text(status), self.tail.text());
            self.abort();
            return Err(err);
        }
        Ok(())
    }

    fn abort(mut self: Box<Self>) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        match self.db.drop_objects_except(&self.before) {
            Ok(dropped) => tracing::info!(
                database = %self.db.redacted_url(),
                dropped = dropped.len(),
                "aborted mysql restore: dropped what it created"
            ),
            Err(error) => tracing::warn!(
                database = %self.db.redacted_url(),
                %error,
                "aborted mysql restore: could not drop what it created; empty the database by hand"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::mysql_rows::{decode_literal, push_hex, push_quoted};

    #[test]
    fn parses_urls_and_never_shows_the_password() {
        let u = MysqlUrl::parse("mysql://backup:s%40cret@db.example:3307/billing").expect("url");
        assert_eq!(
            u,
            MysqlUrl {
                user: Some("backup".into()),
                password: Some("s@cret".into()),
                host: Some("db.example".into()),
                port: Some(3307),
                database: Some("billing".into()),
                socket: None,
            }
        );
        let u = MysqlUrl::parse("mysql://root@localhost/x?socket=/run/mysqld/mysqld.sock")
            .expect("socket");
        assert_eq!(u.socket.as_deref(), Some("/run/mysqld/mysqld.sock"));
        assert_eq!(u.port, None);
        assert_eq!(MysqlUrl::parse("mysql://h").expect("no db").database, None);
        for (bad, says) in [
            ("postgres://h/db", "scheme"),
            ("mysql://h/a/b", "one database"),
            ("mysql://h/-x", "must not start"),
            ("mysql://h/db?sslmode=x", "unknown parameter"),
        ] {
            let e = MysqlUrl::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let db = MysqlDatabase::new("mysql://u:pw@h:3306/d");
        assert_eq!(db.redacted_url(), "mysql://u:***@h:3306/d");
        assert_eq!(db.database().expect("db"), "d");
        let (cmd, defaults) = db.command(Path::new("mysql")).expect("command");
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.iter().all(|a| !a.contains("pw")), "{args:?}");
        assert!(args[0].starts_with("--defaults-extra-file="), "{args:?}");
        let file = defaults.expect("option file");
        let text = std::fs::read_to_string(file.path()).expect("read");
        assert_eq!(text, "[client]\npassword=\"pw\"\n");
        let path = file.path().to_owned();
        drop(file);
        assert!(!path.exists(), "the option file is removed");
        assert_eq!(
            defaults_file_text("a\"b\\c #d"),
            "[client]\npassword=\"a\\\"b\\\\c #d\"\n"
        );
    }

    /// The test server: `COFFRE_TEST_MYSQL_URL`, or root on 127.0.0.1:3306.
    fn server() -> MysqlDatabase {
        let url = std::env::var("COFFRE_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
        let db = MysqlDatabase::new(url);
        if let Err(e) = db.query("SELECT 1") {
            panic!(
                "the MySQL/MariaDB test server {} is unreachable: {e}; start it or set \
                 COFFRE_TEST_MYSQL_URL",
                db.redacted_url()
            );
        }
        db
    }

    /// A throwaway database, dropped on drop.
    struct Scratch {
        admin: MysqlDatabase,
        name: String,
        db: MysqlDatabase,
    }

    impl Scratch {
        fn new(prefix: &str) -> Scratch {
            let admin = server();
            let name = format!(
                "{prefix}{}_{:08x}",
                std::process::id(),
                rand::random::<u32>()
            );
            admin
                .query(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
                .expect("create database");
            let db = admin.with_database(&name).expect("url");
            Scratch { admin, name, db }
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = self
                .admin
                .query(&format!("DROP DATABASE IF EXISTS `{}`", self.name));
        }
    }

    struct VecSink(Vec<u8>);

    impl ChunkSink for VecSink {
        fn send(&mut self, chunk: Vec<u8>) -> Result<(), SourceError> {
            self.0.extend(chunk);
            Ok(())
        }
    }

    #[test]
    fn the_server_reads_literals_as_the_decoder_does() {
        let db = server();
        // Arguments of `mysql -e` are UTF-8 text; every byte goes through a dump below.
        let ascii: Vec<u8> = (0..=127u8).collect();
        let all: Vec<u8> = (0..=255u8).collect();
        let mut literals: Vec<Vec<u8>> = [
            "'NULL'",
            "''",
            r"'\0\'\Z\b\t\n\r\\'",
            r"'\%\_\x'",
            "'it''s'",
            "\"a\"\"b\"",
            "'😀 é'",
            "0x00FF27",
            "0xabc",
            "X'00ff'",
            "x''",
            "b'101'",
            "b'100000001'",
            "0b11",
            "_binary 'a\\0'",
            "_binary 0x41",
            "_utf8mb4 'é'",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let mut q = Vec::new();
        push_quoted(&ascii, &mut q);
        literals.push(q);
        let mut h = Vec::new();
        push_hex(&all, &mut h);
        literals.push(h);
        let mut sql = Vec::from(&b"SELECT "[..]);
        for (i, lit) in literals.iter().enumerate() {
            if i > 0 {
                sql.extend_from_slice(b", ");
            }
            sql.extend_from_slice(b"HEX(");
            sql.extend_from_slice(lit);
            sql.push(b')');
        }
        let sql = String::from_utf8(sql).expect("the literals are UTF-8");
        let rows = db.query(&sql).expect("query");
        assert_eq!(rows.len(), 1);
        for (lit, by_server) in literals.iter().zip(&rows[0]) {
            let (_, ours) = decode_literal(lit).expect("decode");
            assert_eq!(
                hex::encode_upper(ours.unwrap_or_default()),
                *by_server,
                "{}",
                String::from_utf8_lossy(lit)
            );
        }
    }

    /// Collects the decoded values of every row.
    struct Collect(Vec<Vec<Option<Vec<u8>>>>);

    impl RowTransform for Collect {
        fn begin_table(
            &mut self,
            _t: &crate::dump::TableInfo,
        ) -> Result<bool, crate::dump::TransformError> {
            Ok(true)
        }
        fn transform_row(
            &mut self,
            _t: &crate::dump::TableInfo,
            fields: &mut [Option<Vec<u8>>],
        ) -> Result<(), crate::dump::TransformError> {
            self.0.push(fields.to_vec());
            Ok(())
        }
    }

    #[test]
    fn dumps_every_byte_exactly_and_restores_all_or_nothing() {
        let src = Scratch::new("coffre_my_src_");
        let all: Vec<u8> = (0..=255u8).collect();
        let text = "tab\t nl\n cr\r bs\\ q' dq\" nul\0 z\x1a 😀 NULL";
        let mut sql = Vec::from(
            &b"CREATE TABLE t (id INT PRIMARY KEY, s TEXT, b VARBINARY(300), n INT, \
            c BIT(9)) DEFAULT CHARSET=utf8mb4;\n\
            INSERT INTO t VALUES (1, "[..],
        );
        push_quoted(text.as_bytes(), &mut sql);
        sql.extend_from_slice(b", ");
        push_hex(&all, &mut sql);
        sql.extend_from_slice(
            b", -7, b'100000001'), (2, '', '', NULL, NULL), (3, 'NULL', NULL, 0, b'0');\n\
            CREATE VIEW v AS SELECT id FROM t;\n\
            CREATE FUNCTION f(x INT) RETURNS INT DETERMINISTIC RETURN x + 1;\n\
            CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW SET NEW.n = NEW.n + 1;\n",
        );
        src.db.run_sql(|w| w.write_all(&sql)).expect("load");

        let mut collect = Collect(Vec::new());
        let mut sink = VecSink(Vec::new());
        let stats = src.db.dump(&mut collect, &mut sink).expect("dump");
        assert!(src.db.dump_tool().expect("version").contains("Ver"));
        assert_eq!(stats.tables.len(), 1);
        assert_eq!(stats.tables[0].rows, 3);
        assert_eq!(stats.tables[0].columns, ["id", "s", "b", "n", "c"]);
        let v = |s: &[u8]| Some(s.to_vec());
        assert_eq!(
            collect.0,
            [
                vec![v(b"1"), v(text.as_bytes()), v(&all), v(b"-7"), v(&[1, 1])],
                vec![v(b"2"), v(b""), v(b""), None, None],
                // BIT(9) is two bytes, as --hex-blob writes it.
                vec![v(b"3"), v(b"NULL"), None, v(b"0"), v(&[0, 0])],
            ]
        );

        // A restore that fails half-way leaves the database as it was.
        let dst = Scratch::new("coffre_my_dst_");
        dst.db.check_empty().expect("empty");
        let mut session = dst.db.begin().expect("begin");
        let dump = sink.0;
        let half = dump.len() / 2;
        session.write(&dump[..half]).expect("write");
        std::thread::sleep(std::time::Duration::from_millis(300));
        session.abort();
        dst.db
            .check_empty()
            .expect("abort dropped what the restore created");

        let mut session = dst.db.begin().expect("begin");
        session.write(&dump).expect("write");
        let seen = session.end_input().expect("end").expect("stats");
        assert_eq!(seen, stats);
        session.commit().expect("commit");
        let e = dst.db.check_empty().expect_err("now full");
        assert!(
            e.to_string().contains("1 tables, 1 views, 1 routines"),
            "{e}"
        );
        let checksum =
            |d: &MysqlDatabase| d.query("CHECKSUM TABLE t").expect("checksum")[0][1].clone();
        assert_eq!(checksum(&src.db), checksum(&dst.db));
        assert_eq!(
            dst.db
                .count_rows(&[(String::new(), "t".into())])
                .expect("count"),
            [3]
        );
        let triggers = dst.db.query("SHOW TRIGGERS").expect("triggers");
        assert_eq!(triggers.len(), 1);
    }

    #[test]
    fn a_password_goes_through_the_option_file() {
        let scratch = Scratch::new("coffre_my_pw_");
        let user = format!("coffre_pw_{:08x}", rand::random::<u32>());
        let password = "p\"w\\d #x 'é";
        let mut q = Vec::new();
        push_quoted(password.as_bytes(), &mut q);
        let q = String::from_utf8(q).expect("utf8");
        scratch
            .admin
            .query(&format!(
                "CREATE USER '{user}'@'%' IDENTIFIED BY {q}; \
                 CREATE USER '{user}'@'localhost' IDENTIFIED BY {q}; \
                 GRANT ALL ON `{}`.* TO '{user}'@'%'; GRANT ALL ON `{}`.* TO '{user}'@'localhost'",
                scratch.name, scratch.name
            ))
            .expect("create user");
        let u = MysqlUrl::parse(&scratch.db.url).expect("url");
        let mut db = MysqlDatabase::new(format!(
            "mysql://{user}@{}:{}/{}",
            u.host.as_deref().unwrap_or("127.0.0.1"),
            u.port.unwrap_or(3306),
            scratch.name
        ));
        db.password = Some(password.into());
        let result = db.query("SELECT CURRENT_USER()");
        let _ = scratch.admin.query(&format!(
            "DROP USER IF EXISTS '{user}'@'%'; DROP USER IF EXISTS '{user}'@'localhost'"
        ));
        let rows = result.expect("log in with the password");
        assert!(rows[0][0].starts_with(&user), "{rows:?}");
        db.password = Some("wrong".into());
        assert!(db.query("SELECT 1").is_err());
    }
}
