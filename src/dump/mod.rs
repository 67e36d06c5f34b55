//! Dump streams: a database dump parsed into row events, and written back.
//!
//! Both source kinds produce plain SQL text (what `psql` or `sqlite3` restore by
//! hand). While the text streams through, a parser recognises table data (COPY
//! blocks for PostgreSQL, one-line INSERTs for SQLite), offers each row to a
//! [`RowTransform`] (identity for raw backups, the anonymizer for anonymized ones)
//! and keeps per-table [`TableStats`] so that a restore can be checked.

pub mod copy_text;
pub mod mysql_rows;
pub mod pg_plain;
pub mod sqlite_rows;
pub mod sqlite_sql;
pub mod stats;

pub use stats::{DumpStats, TableStats};

/// A table whose rows follow, as the dump names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    pub schema: String,
    pub name: String,
    pub columns: Vec<String>,
}

impl TableInfo {
    /// `schema.name` (or just `name` when the schema is empty, as in SQLite).
    pub fn qualified(&self) -> String {
        qualified_name(&self.schema, &self.name)
    }
}

/// `"name"` with inner double quotes doubled: an SQL identifier, as PostgreSQL
/// and SQLite read it.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with inner single quotes doubled: an SQL string literal, as PostgreSQL (with
/// `standard_conforming_strings` on, as pg_dump sets it) and SQLite read it.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Appends `value` to `out` with each byte `escape` maps replaced by its escape; the
/// runs between escapes are copied whole.
#[inline]
pub fn push_escaped(value: &[u8], out: &mut Vec<u8>, escape: impl Fn(u8) -> Option<&'static [u8]>) {
    let mut copied = 0; // value[..copied] is in `out`
    for (i, &b) in value.iter().enumerate() {
        if let Some(escaped) = escape(b) {
            out.extend_from_slice(&value[copied..i]);
            out.extend_from_slice(escaped);
            copied = i + 1;
        }
    }
    out.extend_from_slice(&value[copied..]);
}

/// `schema.name`, or `name` alone when the schema is empty (SQLite).
pub fn qualified_name(schema: &str, name: &str) -> String {
    if schema.is_empty() {
        name.to_owned()
    } else {
        format!("{schema}.{name}")
    }
}

/// Errors a transform may raise; they stop the dump.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransformError(pub String);

/// Rewrites rows on their way from the source to the stores.
///
/// Values are the decoded text form of each field (`None` for NULL). A transform
/// that returns `false` from `begin_table` leaves that table's rows untouched: the
/// parser then copies them without decoding (the fast path of raw backups).
pub trait RowTransform: Send {
    fn begin_table(&mut self, table: &TableInfo) -> Result<bool, TransformError>;
    fn transform_row(
        &mut self,
        table: &TableInfo,
        fields: &mut [Option<Vec<u8>>],
    ) -> Result<(), TransformError>;
    /// Which columns of the current table `transform_row` rewrites (`true`), if not
    /// all. Columns outside the mask are not decoded: they reach `transform_row` as
    /// `None` and are written back byte for byte, whatever it does with them.
    fn column_mask(&self) -> Option<&[bool]> {
        None
    }
    /// Called when the dump holds a large object (PostgreSQL `lo_create`), whose
    /// bytes no column rule sees. The default lets it through.
    fn large_object(&mut self) -> Result<(), TransformError> {
        Ok(())
    }
    /// Asked after each `transform_row`: `true` leaves that row out of the output and
    /// of the stats (an erased row). Rewriters that cannot leave rows out refuse a
    /// transform that asks to (MySQL's multi-row INSERTs).
    fn drop_row(&mut self) -> bool {
        false
    }
    /// Which columns of the current table (after a `begin_table` that returned `true`)
    /// `transform_row` rewrites as a pure function of the value, so that a parser may
    /// remember a column's output text by its input text and skip the transform on a
    /// repeat; and an epoch that changes whenever results remembered before stop being
    /// valid. `None` (the default): no such column. A column a parser answers from memory
    /// reaches `transform_row` as `None`, or the call is skipped when every rewritten
    /// column of the row was answered (from memory or as a constant).
    fn pure_columns(&self) -> Option<(&[bool], u64)> {
        None
    }
    /// Columns of the current table (after a `begin_table` that returned `true`) whose
    /// output does not depend on their value (`null`, `redact`): the PostgreSQL COPY
    /// text written instead of any non-NULL value (a NULL stays NULL). A parser may
    /// write it without decoding the value; the column then reaches `transform_row` as
    /// `None`, and the call is skipped when no other column of the row needs it. `None`
    /// (the default): no such column.
    fn constant_columns(&self) -> Option<&[Option<Box<[u8]>>]> {
        None
    }
    /// A line of SQL outside table data (PostgreSQL plain dumps), or its replacement.
    fn rewrite_sql_line(&mut self, _line: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// A streaming rewriter of dump text (`pg_dump` plain, `mariadb-dump`, coffre's SQLite
/// SQL): fed in chunks of any size, its output taken as it grows, its per-table stats
/// returned at the end.
pub trait Rewriter {
    fn feed(&mut self, chunk: &[u8]) -> Result<(), DumpError>;
    /// Bytes of output waiting to be taken.
    fn output_len(&self) -> usize;
    fn take_output(&mut self) -> Vec<u8>;
    /// Ends the text: the last output and the stats of every table.
    fn finish(self) -> Result<(Vec<u8>, DumpStats), DumpError>;
}

/// Streams `input` through `rewriter`, handing its output to `send` in pieces of about
/// `chunk` bytes; returns the stats. `read_err` and `dump_err` name the failure in the
/// caller's terms.
pub fn pump<R: Rewriter, E>(
    input: &mut dyn std::io::Read,
    mut rewriter: R,
    chunk: usize,
    send: &mut dyn FnMut(Vec<u8>) -> Result<(), E>,
    read_err: impl Fn(std::io::Error) -> E,
    dump_err: impl Fn(DumpError) -> E,
) -> Result<DumpStats, E> {
    let mut buf = vec![0u8; chunk];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        rewriter.feed(&buf[..n]).map_err(&dump_err)?;
        if rewriter.output_len() >= chunk {
            send(rewriter.take_output())?;
        }
    }
    let (rest, stats) = rewriter.finish().map_err(dump_err)?;
    if !rest.is_empty() {
        send(rest)?;
    }
    Ok(stats)
}

/// The transform of raw backups and restores: every row as it is.
#[derive(Debug, Default, Clone, Copy)]
pub struct Identity;

impl RowTransform for Identity {
    fn begin_table(&mut self, _table: &TableInfo) -> Result<bool, TransformError> {
        Ok(false)
    }
    fn transform_row(
        &mut self,
        _table: &TableInfo,
        _fields: &mut [Option<Vec<u8>>],
    ) -> Result<(), TransformError> {
        Ok(())
    }
}

/// Errors of dump parsing.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("dump line {line}: {message}")]
    Syntax { line: u64, message: String },
    #[error("dump ended inside the data of table {table}: the dump is truncated")]
    Truncated { table: String },
    #[error("row {row} of table {table}: {source}")]
    Transform {
        table: String,
        row: u64,
        #[source]
        source: TransformError,
    },
    #[error("row {row} of table {table} has {found} fields, the table has {expected} columns")]
    FieldCount {
        table: String,
        row: u64,
        found: usize,
        expected: usize,
    },
}
