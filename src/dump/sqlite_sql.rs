//! SQLite dump text: how coffre writes it, and how it is split back into statements.
//!
//! The dump is what `sqlite3 new.db < dump.sql` restores by hand. Each row is one
//! `INSERT INTO "t" VALUES(…);` on one line (control characters in text are spelled
//! `char(N)`), and each table's rows follow a marker comment
//! `-- coffre:data "t" ("a", "b")` so that a restore can count and checksum them.

use memchr::memchr;
use rusqlite::types::ValueRef;

use super::pg_plain::parse_copy_header;
use super::stats::{DumpStats, RowAccumulator};
use super::{DumpError, TableInfo};

const MARKER: &[u8] = b"-- coffre:data ";

pub use super::quote_ident;

/// The marker line (with its newline) that precedes a table's rows.
pub fn data_marker(table: &TableInfo) -> String {
    let cols: Vec<String> = table.columns.iter().map(|c| quote_ident(c)).collect();
    format!(
        "-- coffre:data {} ({})\n",
        quote_ident(&table.name),
        cols.join(", ")
    )
}

/// The start of a row statement of `table`, up to the opening parenthesis of its
/// values: `INSERT INTO "t" VALUES(`, or with the column list when the table has
/// columns the dump leaves out (generated ones): `INSERT INTO "t"("a","b") VALUES(`.
pub fn insert_prefix(table: &TableInfo, with_columns: bool) -> String {
    if with_columns {
        let cols: Vec<String> = table.columns.iter().map(|c| quote_ident(c)).collect();
        format!(
            "INSERT INTO {}({}) VALUES(",
            quote_ident(&table.name),
            cols.join(",")
        )
    } else {
        format!("INSERT INTO {} VALUES(", quote_ident(&table.name))
    }
}

/// Appends one value as an SQLite literal that reads back to the same value and type.
pub fn push_literal(value: ValueRef<'_>, out: &mut Vec<u8>) {
    match value {
        ValueRef::Null => out.extend_from_slice(b"NULL"),
        ValueRef::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        ValueRef::Real(f) => {
            if f.is_nan() {
                out.extend_from_slice(b"NULL");
            } else if f.is_infinite() {
                out.extend_from_slice(if f > 0.0 { b"9.0e999" } else { b"-9.0e999" });
            } else {
                // `{:?}` is the shortest text that reads back exactly, always with a
                // decimal point or exponent, so the value stays REAL.
                out.extend_from_slice(format!("{f:?}").as_bytes());
            }
        }
        ValueRef::Text(t) => push_text(t, out),
        ValueRef::Blob(b) => {
            out.extend_from_slice(b"X'");
            out.extend_from_slice(hex::encode(b).as_bytes());
            out.push(b'\'');
        }
    }
}

fn push_text(t: &[u8], out: &mut Vec<u8>) {
    let mut open = false;
    let mut first = true;
    for &b in t {
        if b < 0x20 && b != b'\t' {
            if open {
                out.push(b'\'');
                open = false;
            }
            if !first {
                out.extend_from_slice(b"||");
            }
            out.extend_from_slice(format!("char({b})").as_bytes());
        } else {
            if !open {
                if !first {
                    out.extend_from_slice(b"||");
                }
                out.push(b'\'');
                open = true;
            }
            if b == b'\'' {
                out.push(b'\'');
            }
            out.push(b);
        }
        first = false;
    }
    if first {
        out.extend_from_slice(b"''");
    } else if open {
        out.push(b'\'');
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    Code,
    Single,
    Double,
    Bracket,
    Backtick,
    Line,
    Block,
}

/// One piece of SQLite SQL text, as [`SqliteSqlParser::feed_items`] reports it.
/// The `raw` bytes of the pieces, in order, are the text exactly.
#[derive(Debug, Clone, Copy)]
pub enum SqlItem<'a> {
    /// A complete statement. `text` is `raw` without the white space before it,
    /// and ends with `;`; `line` is the line of that `;`.
    Statement {
        raw: &'a [u8],
        text: &'a [u8],
        line: u64,
        /// Set when the statement is a row of the table of the last marker.
        row: Option<RowOf<'a>>,
    },
    /// A line comment alone on its line(s), with the white space before it and
    /// its newline (none at the very end of the text).
    Comment {
        raw: &'a [u8],
        /// Set when the comment is a `-- coffre:data` marker: that table's rows follow.
        marker: Option<&'a TableInfo>,
    },
    /// White space after the last statement.
    Trailing(&'a [u8]),
}

/// A row statement: `INSERT INTO "t" VALUES(…);` right after the marker of `t`.
#[derive(Debug, Clone, Copy)]
pub struct RowOf<'a> {
    pub table: &'a TableInfo,
    /// Length of the statement's `INSERT INTO … VALUES(` prefix: the values follow.
    pub prefix_len: usize,
}

/// The table of the last marker, while its rows follow.
struct Marked {
    table: TableInfo,
    acc: RowAccumulator,
    /// [`insert_prefix`] without, then with, the column list.
    prefixes: [Vec<u8>; 2],
}

impl Marked {
    fn prefix_len(&self, text: &[u8]) -> Option<usize> {
        self.prefixes
            .iter()
            .find(|p| text.starts_with(p))
            .map(Vec::len)
    }
}

/// Splits SQLite SQL text into complete statements, as `sqlite3_complete` would,
/// and counts the rows of each marked table.
pub struct SqliteSqlParser {
    stmt: Vec<u8>,
    lex: Lex,
    word: Vec<u8>,
    words_seen: u32,
    is_trigger: bool,
    depth: u32,
    line_no: u64,
    /// Previous byte seen in code (to spot `--` and `/*` across chunks).
    prev: u8,
    /// Where the running line comment starts in `stmt`, and whether only white
    /// space precedes it.
    comment_start: usize,
    comment_leading: bool,
    current: Option<Marked>,
    /// Whether rows are checksummed (off for a caller that checksums the rows it writes).
    count: bool,
    stats: DumpStats,
}

impl Default for SqliteSqlParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SqliteSqlParser {
    pub fn new() -> Self {
        SqliteSqlParser {
            stmt: Vec::new(),
            lex: Lex::Code,
            word: Vec::new(),
            words_seen: 0,
            is_trigger: false,
            depth: 0,
            line_no: 1,
            prev: 0,
            comment_start: 0,
            comment_leading: false,
            current: None,
            count: true,
            stats: DumpStats::default(),
        }
    }

    /// A parser that reports rows but does not checksum them: the stats of
    /// [`Self::finish`] then hold the tables with no rows.
    pub fn without_stats() -> Self {
        SqliteSqlParser {
            count: false,
            ..Self::new()
        }
    }

    /// Feeds text; `on_statement` receives each complete statement (trimmed, with
    /// its `;`).
    pub fn feed<E>(
        &mut self,
        chunk: &[u8],
        on_statement: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<DumpError>,
    {
        self.feed_items(chunk, &mut |item| match item {
            SqlItem::Statement { text, .. } => on_statement(text),
            _ => Ok(()),
        })
    }

    /// Feeds text; `on_item` receives every piece of it, statements and comments.
    pub fn feed_items<E>(
        &mut self,
        chunk: &[u8],
        on_item: &mut dyn FnMut(SqlItem<'_>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<DumpError>,
    {
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            match self.lex {
                Lex::Single | Lex::Double | Lex::Bracket | Lex::Backtick => {
                    let close = match self.lex {
                        Lex::Single => b'\'',
                        Lex::Double => b'"',
                        Lex::Bracket => b']',
                        _ => b'`',
                    };
                    match memchr(close, &chunk[i..]) {
                        Some(j) => {
                            self.count_lines(&chunk[i..i + j]);
                            self.stmt.extend_from_slice(&chunk[i..=i + j]);
                            self.lex = Lex::Code;
                            self.prev = 0;
                            i += j + 1;
                        }
                        None => {
                            self.count_lines(&chunk[i..]);
                            self.stmt.extend_from_slice(&chunk[i..]);
                            return Ok(());
                        }
                    }
                    continue;
                }
                Lex::Line => {
                    if b == b'\n' {
                        self.line_no += 1;
                        self.lex = Lex::Code;
                        self.prev = 0;
                        self.stmt.push(b);
                        if self.comment_leading {
                            let raw = std::mem::take(&mut self.stmt);
                            self.comment(&raw, raw.len() - 1, on_item)?;
                            self.reuse(raw);
                        }
                    } else {
                        self.stmt.push(b);
                    }
                    i += 1;
                    continue;
                }
                Lex::Block => {
                    self.stmt.push(b);
                    if b == b'\n' {
                        self.line_no += 1;
                    }
                    if b == b'/' && self.stmt.len() >= 2 && self.stmt[self.stmt.len() - 2] == b'*' {
                        self.lex = Lex::Code;
                        self.prev = 0;
                    }
                    i += 1;
                    continue;
                }
                Lex::Code => {}
            }
            if b.is_ascii_alphanumeric() || b == b'_' {
                self.word.push(b.to_ascii_uppercase());
                self.stmt.push(b);
                i += 1;
                continue;
            }
            self.end_word();
            match b {
                b'\'' => self.lex = Lex::Single,
                b'"' => self.lex = Lex::Double,
                b'[' => self.lex = Lex::Bracket,
                b'`' => self.lex = Lex::Backtick,
                b'-' if self.prev == b'-' => {
                    self.lex = Lex::Line;
                    self.comment_start = self.stmt.len() - 1;
                    self.comment_leading = self.stmt[..self.comment_start]
                        .iter()
                        .all(u8::is_ascii_whitespace);
                }
                b'*' if self.prev == b'/' => self.lex = Lex::Block,
                b'\n' => self.line_no += 1,
                _ => {}
            }
            self.prev = if self.lex == Lex::Code { b } else { 0 };
            self.stmt.push(b);
            i += 1;
            if b == b';' && self.depth == 0 {
                let raw = std::mem::take(&mut self.stmt);
                self.statement(&raw, on_item)?;
                self.reuse(raw);
                self.words_seen = 0;
                self.is_trigger = false;
            }
        }
        Ok(())
    }

    /// Ends the text: everything must have been complete statements.
    pub fn finish(self) -> Result<DumpStats, DumpError> {
        self.finish_items::<DumpError>(&mut |_| Ok(()))
    }

    /// [`Self::finish`], reporting the last pieces (a comment without a newline,
    /// trailing white space) to `on_item`.
    pub fn finish_items<E>(
        mut self,
        on_item: &mut dyn FnMut(SqlItem<'_>) -> Result<(), E>,
    ) -> Result<DumpStats, E>
    where
        E: From<DumpError>,
    {
        self.end_word();
        if self.lex == Lex::Line && self.comment_leading {
            let raw = std::mem::take(&mut self.stmt);
            self.comment(&raw, raw.len(), on_item)?;
        }
        if !self.stmt.iter().all(u8::is_ascii_whitespace) {
            return Err(DumpError::Syntax {
                line: self.line_no,
                message: "the dump ends inside a statement: it is truncated".into(),
            }
            .into());
        }
        if !self.stmt.is_empty() {
            on_item(SqlItem::Trailing(&self.stmt))?;
        }
        self.close_table();
        Ok(self.stats)
    }

    /// Gives a statement buffer back, emptied, to keep its capacity.
    fn reuse(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        self.stmt = buf;
    }

    fn count_lines(&mut self, s: &[u8]) {
        self.line_no += memchr::memchr_iter(b'\n', s).count() as u64;
    }

    fn end_word(&mut self) {
        if self.word.is_empty() {
            return;
        }
        self.words_seen += 1;
        let w = self.word.as_slice();
        if self.words_seen <= 3 && w == b"TRIGGER" {
            self.is_trigger = true;
        } else if self.words_seen == 1 && w != b"CREATE" {
            self.words_seen = 100;
        }
        if self.is_trigger {
            match w {
                b"BEGIN" | b"CASE" => self.depth += 1,
                b"END" => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
        }
        self.word.clear();
    }

    /// A leading line comment: `raw[self.comment_start..end]` is its text.
    fn comment<E: From<DumpError>>(
        &mut self,
        raw: &[u8],
        end: usize,
        on_item: &mut dyn FnMut(SqlItem<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let text = raw[self.comment_start..end].trim_ascii();
        let Some(rest) = text.strip_prefix(MARKER) else {
            return on_item(SqlItem::Comment { raw, marker: None });
        };
        self.close_table();
        let mut header = b"COPY ".to_vec();
        header.extend_from_slice(rest);
        header.extend_from_slice(b" FROM stdin;");
        let table = parse_copy_header(&header).map_err(|message| DumpError::Syntax {
            line: self.line_no,
            message,
        })?;
        let prefixes = [
            insert_prefix(&table, false).into_bytes(),
            insert_prefix(&table, true).into_bytes(),
        ];
        let marked = self.current.insert(Marked {
            table,
            acc: RowAccumulator::default(),
            prefixes,
        });
        on_item(SqlItem::Comment {
            raw,
            marker: Some(&marked.table),
        })
    }

    fn statement<E: From<DumpError>>(
        &mut self,
        raw: &[u8],
        on_item: &mut dyn FnMut(SqlItem<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let text = raw.trim_ascii();
        let prefix_len = match &mut self.current {
            Some(marked) => {
                let len = marked.prefix_len(text);
                if len.is_some() && self.count {
                    marked.acc.add(text);
                }
                len
            }
            None => None,
        };
        if prefix_len.is_none() {
            self.close_table();
        }
        let row = match (prefix_len, &self.current) {
            (Some(prefix_len), Some(marked)) => Some(RowOf {
                table: &marked.table,
                prefix_len,
            }),
            _ => None,
        };
        on_item(SqlItem::Statement {
            raw,
            text,
            line: self.line_no,
            row,
        })
    }

    fn close_table(&mut self) {
        if let Some(marked) = self.current.take() {
            self.stats.tables.push(marked.acc.finish(&marked.table));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> (Vec<String>, DumpStats) {
        let mut p = SqliteSqlParser::new();
        let mut out = Vec::new();
        for piece in text.as_bytes().chunks(5) {
            p.feed::<DumpError>(piece, &mut |s| {
                out.push(String::from_utf8_lossy(s).into_owned());
                Ok(())
            })
            .expect("feed");
        }
        (out, p.finish().expect("finish"))
    }

    #[test]
    fn splits_statements_triggers_and_counts_rows() {
        let text = "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n\
            CREATE TABLE \"t;x\" (a TEXT, [b;] INT); -- trailing; comment\n\
            -- coffre:data \"t;x\" (\"a\", \"b;\")\n\
            INSERT INTO \"t;x\" VALUES('x;y'||char(10)||'z',1);\n\
            INSERT INTO \"t;x\" VALUES('it''s',NULL);\n\
            CREATE TRIGGER tr AFTER INSERT ON \"t;x\" BEGIN\n  UPDATE \"t;x\" SET a = CASE WHEN 1 THEN 'a;' END;\n  SELECT 1;\nEND;\n\
            /* block; */ COMMIT;\n";
        let (stmts, stats) = split(text);
        assert_eq!(stmts.len(), 7, "{stmts:#?}");
        assert!(stmts[5].starts_with("CREATE TRIGGER") && stmts[5].ends_with("END;"));
        assert_eq!(stats.tables.len(), 1);
        assert_eq!(stats.tables[0].name, "t;x");
        assert_eq!(stats.tables[0].columns, vec!["a", "b;"]);
        assert_eq!(stats.tables[0].rows, 2);
    }

    #[test]
    fn literals_read_back_exactly() {
        let conn = rusqlite::Connection::open_in_memory().expect("db");
        let values: Vec<rusqlite::types::Value> = vec![
            rusqlite::types::Value::Null,
            rusqlite::types::Value::Integer(i64::MIN),
            rusqlite::types::Value::Real(3.0),
            rusqlite::types::Value::Real(0.1),
            rusqlite::types::Value::Real(f64::INFINITY),
            rusqlite::types::Value::Text("a'b\nc\r\td\u{1f600}".into()),
            rusqlite::types::Value::Text(String::new()),
            rusqlite::types::Value::Blob(vec![0, 1, 255]),
        ];
        for v in values {
            let mut lit = Vec::new();
            push_literal(ValueRef::from(&v), &mut lit);
            let sql = format!("SELECT {}", String::from_utf8(lit).expect("utf8"));
            let back: rusqlite::types::Value =
                conn.query_row(&sql, [], |r| r.get(0)).expect("query");
            assert_eq!(back, v, "{sql}");
        }
    }

    #[test]
    fn items_give_the_text_back_and_rows_with_a_column_list_count() {
        // Tables with generated columns list their stored columns in each INSERT.
        let text = "\n CREATE TABLE t (a, b AS (a * 2), c);\n\
            -- coffre:data \"t\" (\"a\", \"c\")\n\
            INSERT INTO \"t\"(\"a\",\"c\") VALUES(1,'x');\n  -- note\r\n\
            INSERT INTO \"t\"(\"a\",\"c\") VALUES(2,NULL);\nCOMMIT;\n\n-- end";
        let mut p = SqliteSqlParser::new();
        let mut raw = Vec::new();
        let mut seen = Vec::new();
        for piece in text.as_bytes().chunks(3) {
            p.feed_items::<DumpError>(piece, &mut |item| {
                match item {
                    SqlItem::Statement {
                        raw: r,
                        text,
                        line,
                        row,
                    } => {
                        raw.extend_from_slice(r);
                        assert!(r.ends_with(text));
                        let what = match row {
                            Some(row) => {
                                assert_eq!(
                                    &text[..row.prefix_len],
                                    b"INSERT INTO \"t\"(\"a\",\"c\") VALUES("
                                );
                                format!("row of {} at line {line}", row.table.name)
                            }
                            None => format!("statement at line {line}"),
                        };
                        seen.push(what);
                    }
                    SqlItem::Comment { raw: r, marker } => {
                        raw.extend_from_slice(r);
                        seen.push(format!("comment {:?}", marker.map(|t| &t.name)));
                    }
                    SqlItem::Trailing(r) => raw.extend_from_slice(r),
                }
                Ok(())
            })
            .expect("feed");
        }
        let stats = p
            .finish_items::<DumpError>(&mut |item| {
                match item {
                    SqlItem::Comment { raw: r, .. } | SqlItem::Trailing(r) => {
                        raw.extend_from_slice(r);
                        seen.push("last".into());
                    }
                    SqlItem::Statement { .. } => panic!("no statement left"),
                }
                Ok(())
            })
            .expect("finish");
        assert_eq!(String::from_utf8_lossy(&raw), text);
        assert_eq!(
            seen,
            [
                "statement at line 2",
                "comment Some(\"t\")",
                "row of t at line 4",
                "comment None",
                "row of t at line 6",
                "statement at line 7",
                "last"
            ]
        );
        assert_eq!(stats.tables.len(), 1);
        assert_eq!(stats.tables[0].rows, 2);
        let mut quiet = SqliteSqlParser::without_stats();
        quiet
            .feed::<DumpError>(text.as_bytes(), &mut |_| Ok(()))
            .expect("feed");
        assert_eq!(quiet.finish().expect("finish").tables[0].rows, 0);
    }

    #[test]
    fn truncated_statement_is_an_error() {
        let mut p = SqliteSqlParser::new();
        p.feed::<DumpError>(b"INSERT INTO t VALUES('abc", &mut |_| Ok(()))
            .expect("feed");
        assert!(p.finish().is_err());
    }
}
