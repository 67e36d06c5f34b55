//! SQLite: a consistent snapshot of a database file read inside one read
//! transaction (SQLite's snapshot isolation), written as SQL text that
//! `sqlite3 new.db < dump.sql` restores; restores go to a temporary file renamed
//! into place only after every check passed.

use std::path::{Path, PathBuf};

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use super::{ChunkSink, Destination, RestoreSession, Source, SourceError, StartedDump};
use crate::dump::sqlite_rows::{push_field, value_text};
use crate::dump::sqlite_sql::{
    SqliteSqlParser, data_marker, insert_prefix, push_literal, quote_ident,
};
use crate::dump::stats::RowAccumulator;
use crate::dump::{DumpError, DumpStats, RowTransform, TableInfo};

const CHUNK: usize = crate::pipeline::CHUNK;

/// One SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteDatabase {
    pub path: PathBuf,
}

impl SqliteDatabase {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteDatabase { path: path.into() }
    }

    fn err(&self, e: impl std::fmt::Display) -> SourceError {
        SourceError::Database {
            database: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    fn open_read_only(&self) -> Result<Connection, SourceError> {
        if !self.path.is_file() {
            return Err(self.err("no such database file (check the source's path)"));
        }
        Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| self.err(e))
    }
}

struct SchemaItem {
    kind: String,
    name: String,
    sql: String,
}

/// Writes a whole snapshot; runs inside the caller's read transaction.
fn write_dump(
    conn: &Connection,
    transform: &mut dyn RowTransform,
    out: &mut dyn ChunkSink,
    db: &SqliteDatabase,
) -> Result<DumpStats, SourceError> {
    let items: Vec<SchemaItem> = {
        let mut stmt = conn
            .prepare(
                "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL \
                 AND name NOT LIKE 'sqlite\\_stat%' ESCAPE '\\' ORDER BY rowid",
            )
            .map_err(|e| db.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SchemaItem {
                    kind: r.get(0)?,
                    name: r.get(1)?,
                    sql: r.get(2)?,
                })
            })
            .map_err(|e| db.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| db.err(e))?
    };
    if let Some(v) = items
        .iter()
        .find(|i| i.kind == "table" && i.sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL"))
    {
        return Err(db.err(format!(
            "virtual table {:?} is not supported by coffre's SQLite source",
            v.name
        )));
    }
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 64 * 1024);
    buf.extend_from_slice(b"PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n");
    let mut stats = DumpStats::default();
    let tables: Vec<&SchemaItem> = items
        .iter()
        .filter(|i| i.kind == "table" && i.name != "sqlite_sequence")
        .collect();
    for t in &tables {
        buf.extend_from_slice(t.sql.as_bytes());
        buf.extend_from_slice(b";\n");
        stats
            .tables
            .push(dump_table(conn, &t.name, transform, out, &mut buf, db)?);
    }
    if items.iter().any(|i| i.name == "sqlite_sequence") {
        buf.extend_from_slice(b"DELETE FROM sqlite_sequence;\n");
        stats.tables.push(dump_table(
            conn,
            "sqlite_sequence",
            transform,
            out,
            &mut buf,
            db,
        )?);
    }
    for i in items
        .iter()
        .filter(|i| i.kind != "table" && !i.name.starts_with("sqlite_autoindex"))
    {
        buf.extend_from_slice(i.sql.as_bytes());
        buf.extend_from_slice(b";\n");
    }
    buf.extend_from_slice(b"COMMIT;\n");
    out.send(buf)?;
    Ok(stats)
}

fn dump_table(
    conn: &Connection,
    name: &str,
    transform: &mut dyn RowTransform,
    out: &mut dyn ChunkSink,
    buf: &mut Vec<u8>,
    db: &SqliteDatabase,
) -> Result<crate::dump::TableStats, SourceError> {
    // Generated columns are hidden from INSERT: list only the stored ones.
    let mut all = 0usize;
    let mut columns = Vec::new();
    {
        let mut stmt = conn
            .prepare(&format!("PRAGMA table_xinfo({})", quote_ident(name)))
            .map_err(|e| db.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| db.err(e))?;
        while let Some(r) = rows.next().map_err(|e| db.err(e))? {
            all += 1;
            let hidden: i64 = r.get(6).map_err(|e| db.err(e))?;
            if hidden == 0 {
                columns.push(r.get::<_, String>(1).map_err(|e| db.err(e))?);
            }
        }
    }
    let table = TableInfo {
        schema: String::new(),
        name: name.to_owned(),
        columns,
    };
    let rewrite = transform
        .begin_table(&table)
        .map_err(|source| SourceError::Dump {
            database: db.path.display().to_string(),
            source: DumpError::Transform {
                table: name.to_owned(),
                row: 0,
                source,
            },
        })?;
    buf.extend_from_slice(data_marker(&table).as_bytes());
    let col_list: Vec<String> = table.columns.iter().map(|c| quote_ident(c)).collect();
    let prefix = insert_prefix(&table, table.columns.len() != all);
    let select = if table.columns.is_empty() {
        return Ok(RowAccumulator::default().finish(&table));
    } else {
        format!("SELECT {} FROM {}", col_list.join(","), quote_ident(name))
    };
    let mut stmt = conn.prepare(&select).map_err(|e| db.err(e))?;
    let n = table.columns.len();
    let mut rows = stmt.query([]).map_err(|e| db.err(e))?;
    let mut acc = RowAccumulator::default();
    let mut fields: Vec<Option<Vec<u8>>> = Vec::with_capacity(n);
    let mut originals: Vec<Value> = Vec::with_capacity(n);
    while let Some(r) = rows.next().map_err(|e| db.err(e))? {
        let start = buf.len();
        buf.extend_from_slice(prefix.as_bytes());
        if rewrite {
            originals.clear();
            fields.clear();
            for i in 0..n {
                let v: Value = r.get(i).map_err(|e| db.err(e))?;
                fields.push(value_text(&v));
                originals.push(v);
            }
            transform
                .transform_row(&table, &mut fields)
                .map_err(|source| SourceError::Dump {
                    database: db.path.display().to_string(),
                    source: DumpError::Transform {
                        table: name.to_owned(),
                        row: acc.rows() + 1,
                        source,
                    },
                })?;
            for i in 0..n {
                if i > 0 {
                    buf.push(b',');
                }
                // An unchanged value keeps its type; a rewritten one becomes text.
                push_field(&originals[i], fields[i].as_deref(), buf);
            }
        } else {
            for i in 0..n {
                if i > 0 {
                    buf.push(b',');
                }
                push_literal(r.get_ref(i).map_err(|e| db.err(e))?, buf);
            }
        }
        buf.extend_from_slice(b");");
        acc.add(&buf[start..]);
        buf.push(b'\n');
        if buf.len() >= CHUNK {
            out.send(std::mem::replace(
                buf,
                Vec::with_capacity(CHUNK + 64 * 1024),
            ))?;
        }
    }
    Ok(acc.finish(&table))
}

impl Source for SqliteDatabase {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn dump_tool(&self) -> Result<String, SourceError> {
        Ok(format!("sqlite {}", rusqlite::version()))
    }

    /// SQLite is read in-process: the snapshot is taken when the dump runs.
    fn start_dump(&self) -> Result<Box<dyn StartedDump>, SourceError> {
        Ok(Box::new(SqliteDump(self.clone())))
    }
}

/// A SQLite dump not started yet.
struct SqliteDump(SqliteDatabase);

impl StartedDump for SqliteDump {
    fn run(
        self: Box<Self>,
        transform: &mut dyn RowTransform,
        out: &mut dyn ChunkSink,
    ) -> Result<DumpStats, SourceError> {
        self.0.read_snapshot(transform, out)
    }
}

impl SqliteDatabase {
    fn read_snapshot(
        &self,
        transform: &mut dyn RowTransform,
        out: &mut dyn ChunkSink,
    ) -> Result<DumpStats, SourceError> {
        let mut conn = self.open_read_only()?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| self.err(e))?;
        // One read transaction: every table is read from the same snapshot.
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let stats = write_dump(&tx, transform, out, self)?;
        tx.finish().map_err(|e| self.err(e))?;
        Ok(stats)
    }
}

impl Destination for SqliteDatabase {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn check_empty(&self) -> Result<(), SourceError> {
        match std::fs::metadata(&self.path) {
            Err(_) => Ok(()),
            Ok(m) if m.len() == 0 => Ok(()),
            Ok(_) => Err(SourceError::NotEmpty {
                database: self.describe(),
                what: "the file exists".into(),
            }),
        }
    }

    fn begin(&self) -> Result<Box<dyn RestoreSession>, SourceError> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| self.err(e))?;
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "restore.db".into());
        let temp = dir.join(format!(
            ".{file_name}.coffre-partial-{:08x}",
            rand::random::<u32>()
        ));
        let conn = Connection::open(&temp).map_err(|e| self.err(e))?;
        conn.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
            .map_err(|e| self.err(e))?;
        Ok(Box::new(SqliteSession {
            db: self.clone(),
            temp,
            conn: Some(conn),
            parser: Some(SqliteSqlParser::new()),
        }))
    }

    fn count_rows(&self, tables: &[(String, String)]) -> Result<Vec<u64>, SourceError> {
        let conn = self.open_read_only()?;
        tables
            .iter()
            .map(|(_, name)| {
                conn.query_row(
                    &format!("SELECT count(*) FROM {}", quote_ident(name)),
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n as u64)
                .map_err(|e| self.err(e))
            })
            .collect()
    }
}

/// A restore into a temporary SQLite file, renamed into place on commit.
struct SqliteSession {
    db: SqliteDatabase,
    temp: PathBuf,
    conn: Option<Connection>,
    parser: Option<SqliteSqlParser>,
}

impl RestoreSession for SqliteSession {
    fn write(&mut self, sql: &[u8]) -> Result<(), SourceError> {
        let (Some(parser), Some(conn)) = (self.parser.as_mut(), self.conn.as_ref()) else {
            return Err(SourceError::Other("restore input already closed".into()));
        };
        let db = &self.db;
        parser.feed::<SourceError>(sql, &mut |stmt| {
            let text = std::str::from_utf8(stmt).map_err(|e| db.err(e))?;
            conn.execute_batch(text).map_err(|e| {
                let head: String = text.chars().take(120).collect();
                db.err(format!("restoring statement `{head}`: {e}"))
            })
        })
    }

    fn end_input(&mut self) -> Result<Option<DumpStats>, SourceError> {
        let parser = self
            .parser
            .take()
            .ok_or_else(|| SourceError::Other("restore input already closed".into()))?;
        parser
            .finish()
            .map(Some)
            .map_err(|source| SourceError::Dump {
                database: self.db.describe(),
                source,
            })
    }

    fn commit(mut self: Box<Self>) -> Result<(), SourceError> {
        if let Some(conn) = self.conn.take() {
            conn.close().map_err(|(_, e)| self.db.err(e))?;
        }
        let f = std::fs::File::open(&self.temp).map_err(|e| self.db.err(e))?;
        f.sync_all().map_err(|e| self.db.err(e))?;
        std::fs::rename(&self.temp, &self.db.path).map_err(|e| self.db.err(e))?;
        Ok(())
    }

    fn abort(mut self: Box<Self>) {
        drop(self.conn.take());
        let _ = std::fs::remove_file(&self.temp);
    }
}

impl Drop for SqliteSession {
    fn drop(&mut self) {
        if self.conn.is_some() {
            drop(self.conn.take());
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// True when `path` looks like an SQLite file (its 16-byte header).
pub fn is_sqlite_file(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|_| &head == b"SQLite format 3\0")
        .unwrap_or(false)
}
