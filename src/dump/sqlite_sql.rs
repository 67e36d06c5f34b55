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

/// `"name"` with inner quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The marker line (with its newline) that precedes a table's rows.
pub fn data_marker(table: &TableInfo) -> String {
    let cols: Vec<String> = table.columns.iter().map(|c| quote_ident(c)).collect();
    format!(
        "-- coffre:data {} ({})\n",
        quote_ident(&table.name),
        cols.join(", ")
    )
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
    current: Option<(TableInfo, RowAccumulator, Vec<u8>)>,
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
            stats: DumpStats::default(),
        }
    }

    /// Feeds text; `on_statement` receives each complete statement (with its `;`).
    pub fn feed<E>(
        &mut self,
        chunk: &[u8],
        on_statement: &mut dyn FnMut(&[u8]) -> Result<(), E>,
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
                        if self.comment_leading {
                            let comment = self.stmt.split_off(self.comment_start);
                            self.stmt.clear();
                            self.comment(&comment)?;
                        } else {
                            self.stmt.push(b);
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
                let stmt = std::mem::take(&mut self.stmt);
                self.statement(&stmt, on_statement)?;
                self.words_seen = 0;
                self.is_trigger = false;
            }
        }
        Ok(())
    }

    /// Ends the text: everything must have been complete statements.
    pub fn finish(mut self) -> Result<DumpStats, DumpError> {
        self.end_word();
        if self.lex == Lex::Line && self.comment_leading {
            let comment = self.stmt.split_off(self.comment_start);
            self.stmt.clear();
            self.comment(&comment)?;
        }
        if !self.stmt.iter().all(u8::is_ascii_whitespace) {
            return Err(DumpError::Syntax {
                line: self.line_no,
                message: "the dump ends inside a statement: it is truncated".into(),
            });
        }
        self.close_table();
        Ok(self.stats)
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

    fn comment(&mut self, text: &[u8]) -> Result<(), DumpError> {
        let text = text.trim_ascii();
        if let Some(rest) = text.strip_prefix(MARKER) {
            self.close_table();
            let mut header = b"COPY ".to_vec();
            header.extend_from_slice(rest);
            header.extend_from_slice(b" FROM stdin;");
            let table = parse_copy_header(&header).map_err(|message| DumpError::Syntax {
                line: self.line_no,
                message,
            })?;
            let prefix = format!("INSERT INTO {} VALUES(", quote_ident(&table.name)).into_bytes();
            self.current = Some((table, RowAccumulator::default(), prefix));
        }
        Ok(())
    }

    fn statement<E: From<DumpError>>(
        &mut self,
        stmt: &[u8],
        on_statement: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let trimmed = stmt.trim_ascii();
        let is_row = match &mut self.current {
            Some((_, acc, prefix)) if trimmed.starts_with(prefix) => {
                acc.add(trimmed);
                true
            }
            _ => false,
        };
        if !is_row {
            self.close_table();
        }
        on_statement(trimmed)
    }

    fn close_table(&mut self) {
        if let Some((table, acc, _)) = self.current.take() {
            self.stats.tables.push(acc.finish(&table));
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
    fn truncated_statement_is_an_error() {
        let mut p = SqliteSqlParser::new();
        p.feed::<DumpError>(b"INSERT INTO t VALUES('abc", &mut |_| Ok(()))
            .expect("feed");
        assert!(p.finish().is_err());
    }
}
