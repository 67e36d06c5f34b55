//! SQLite rows as a transform sees them, and read back from coffre's own dump text.
//!
//! A backup taken with a transform ([`value_text`] in, [`push_field`] out) and a
//! stored raw dump rewritten later by [`SqliteRewriter`] (its INSERT literals
//! decoded by [`decode_values`]) go through the same conversions, so an anonymized
//! copy of a raw backup is byte for byte an anonymized backup of the same data.

use rusqlite::types::{Value, ValueRef};

use super::sqlite_sql::{SqlItem, SqliteSqlParser, push_literal};
use super::stats::{DumpStats, RowAccumulator};
use super::{DumpError, RowTransform, TableInfo};

/// The text form a transform sees: decimal numbers, text as is, blobs as bytes.
pub(crate) fn value_text(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Null => None,
        Value::Integer(i) => Some(i.to_string().into_bytes()),
        Value::Real(f) => Some(format!("{f:?}").into_bytes()),
        Value::Text(t) => Some(t.clone().into_bytes()),
        Value::Blob(b) => Some(b.clone()),
    }
}

/// `field == value_text(v)`, without copying text or blobs.
fn is_value_text(v: &Value, field: Option<&[u8]>) -> bool {
    match (v, field) {
        (Value::Null, None) => true,
        (Value::Text(t), Some(f)) => t.as_bytes() == f,
        (Value::Blob(b), Some(f)) => b.as_slice() == f,
        (Value::Integer(_) | Value::Real(_), Some(f)) => value_text(v).as_deref() == Some(f),
        _ => false,
    }
}

/// Appends one field after the transform: a value the transform left as it was
/// keeps its literal (and type); a rewritten one becomes text, or NULL.
pub(crate) fn push_field(original: &Value, field: Option<&[u8]>, out: &mut Vec<u8>) {
    if is_value_text(original, field) {
        push_literal(ValueRef::from(original), out);
    } else {
        match field {
            None => out.extend_from_slice(b"NULL"),
            Some(t) => push_literal(ValueRef::Text(t), out),
        }
    }
}

/// Decodes the values of one row statement: `args` is what follows its
/// `INSERT INTO … VALUES(` prefix, `lit,lit,…);`, each literal as
/// [`push_literal`] writes it. Appends the values to `out`; anything else is an
/// error naming what was expected.
pub fn decode_values(args: &[u8], out: &mut Vec<Value>) -> Result<(), String> {
    let mut i = 0;
    loop {
        let value = literal(args, &mut i).map_err(|e| format!("value {}: {e}", out.len() + 1))?;
        out.push(value);
        match args.get(i) {
            Some(b',') => i += 1,
            Some(b')') if &args[i..] == b");" => return Ok(()),
            _ => {
                return Err(format!(
                    "after value {}: expected `,` or `);` at the end, found {}",
                    out.len(),
                    shown(&args[i..])
                ));
            }
        }
    }
}

/// The start of `rest`, for an error message.
fn shown(rest: &[u8]) -> String {
    if rest.is_empty() {
        return "the end of the statement".into();
    }
    let head: String = String::from_utf8_lossy(&rest[..rest.len().min(20)])
        .chars()
        .take(12)
        .collect();
    format!("`{head}`")
}

fn literal(s: &[u8], i: &mut usize) -> Result<Value, String> {
    let rest = &s[*i..];
    match rest.first() {
        Some(b'N') if rest.starts_with(b"NULL") => {
            *i += 4;
            Ok(Value::Null)
        }
        Some(b'X') => {
            *i += 1;
            let hex = quoted(s, i)?;
            hex::decode(&hex)
                .map(Value::Blob)
                .map_err(|e| format!("bad blob X'…': {e}"))
        }
        Some(b'\'' | b'c') => text(s, i),
        Some(b'-' | b'0'..=b'9') => number(s, i),
        _ => Err(format!(
            "expected NULL, a number, 'text', char(N) or X'hex', found {}",
            shown(rest)
        )),
    }
}

/// `'…'` at `s[*i]` with `''` for a quote; returns the bytes inside.
fn quoted(s: &[u8], i: &mut usize) -> Result<Vec<u8>, String> {
    if s.get(*i) != Some(&b'\'') {
        return Err(format!("expected `'`, found {}", shown(&s[*i..])));
    }
    let mut out = Vec::new();
    let mut j = *i + 1;
    loop {
        match memchr::memchr(b'\'', &s[j..]) {
            None => return Err("unterminated quoted string".into()),
            Some(k) => {
                out.extend_from_slice(&s[j..j + k]);
                j += k + 1;
                if s.get(j) == Some(&b'\'') {
                    out.push(b'\'');
                    j += 1;
                } else {
                    *i = j;
                    return Ok(out);
                }
            }
        }
    }
}

/// Text: `'…'` and `char(N)` parts joined with `||`.
fn text(s: &[u8], i: &mut usize) -> Result<Value, String> {
    let mut bytes = Vec::new();
    loop {
        if s[*i..].starts_with(b"char(") {
            let start = *i + 5;
            let len = s[start..].iter().take_while(|b| b.is_ascii_digit()).count();
            let code = std::str::from_utf8(&s[start..start + len])
                .ok()
                .and_then(|d| d.parse::<u32>().ok())
                .and_then(char::from_u32)
                .filter(|_| s.get(start + len) == Some(&b')'))
                .ok_or_else(|| format!("bad char(N) at {}", shown(&s[*i..])))?;
            let mut utf8 = [0u8; 4];
            bytes.extend_from_slice(code.encode_utf8(&mut utf8).as_bytes());
            *i = start + len + 1;
        } else {
            bytes.extend_from_slice(&quoted(s, i)?);
        }
        if s[*i..].starts_with(b"||") {
            *i += 2;
        } else {
            break;
        }
    }
    String::from_utf8(bytes)
        .map(Value::Text)
        .map_err(|_| "text is not UTF-8".into())
}

/// An integer (`-12`) or a real (`1.5`, `1e-7`, `9.0e999` for infinity).
fn number(s: &[u8], i: &mut usize) -> Result<Value, String> {
    let start = *i;
    let len = 1 + s[start + 1..]
        .iter()
        .take_while(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        .count();
    let token = &s[start..start + len];
    // Only ASCII digits, signs, dots and e: UTF-8.
    let text = std::str::from_utf8(token).map_err(|_| "bad number".to_owned())?;
    let value = if token.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        text.parse::<f64>().map(Value::Real).ok()
    } else {
        text.parse::<i64>().map(Value::Integer).ok()
    };
    *i += len;
    value.ok_or_else(|| format!("bad number `{text}`"))
}

/// Applies a [`RowTransform`] to SQLite dump text written by coffre: every piece
/// is copied as it is, except the rows of the tables the transform rewrites,
/// which are decoded, transformed and written back as a backup taken with that
/// transform writes them. Counts and checksums the rows it writes.
///
/// Feed it the dump in chunks of any size; take the output as it grows. Memory
/// is bounded by the longest statement.
pub struct SqliteRewriter<'t> {
    parser: SqliteSqlParser,
    rows: Rows<'t>,
}

/// The side of the rewriter that sees the parser's pieces.
struct Rows<'t> {
    transform: &'t mut dyn RowTransform,
    out: Vec<u8>,
    current: Option<Current>,
    stats: DumpStats,
    values: Vec<Value>,
    fields: Vec<Option<Vec<u8>>>,
}

/// The table whose rows follow.
struct Current {
    table: TableInfo,
    rewrite: bool,
    acc: RowAccumulator,
}

impl<'t> SqliteRewriter<'t> {
    pub fn new(transform: &'t mut dyn RowTransform) -> Self {
        SqliteRewriter {
            parser: SqliteSqlParser::without_stats(),
            rows: Rows {
                transform,
                out: Vec::with_capacity(crate::pipeline::CHUNK + 4096),
                current: None,
                stats: DumpStats::default(),
                values: Vec::new(),
                fields: Vec::new(),
            },
        }
    }

    /// Parses a chunk. Output produced so far is in [`Self::take_output`].
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), DumpError> {
        let rows = &mut self.rows;
        self.parser
            .feed_items::<DumpError>(chunk, &mut |item| rows.item(item))
    }

    /// Bytes of output waiting to be taken.
    pub fn output_len(&self) -> usize {
        self.rows.out.len()
    }

    /// Takes the output produced so far.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::replace(
            &mut self.rows.out,
            Vec::with_capacity(crate::pipeline::CHUNK + 4096),
        )
    }

    /// Ends the dump: returns the last output and the stats of every table, as
    /// written.
    pub fn finish(self) -> Result<(Vec<u8>, DumpStats), DumpError> {
        let SqliteRewriter { parser, mut rows } = self;
        parser.finish_items::<DumpError>(&mut |item| rows.item(item))?;
        rows.close_table();
        Ok((rows.out, rows.stats))
    }
}

impl Rows<'_> {
    fn item(&mut self, item: SqlItem<'_>) -> Result<(), DumpError> {
        match item {
            SqlItem::Comment { raw, marker } => {
                if let Some(table) = marker {
                    self.close_table();
                    let rewrite = self.transform.begin_table(table).map_err(|source| {
                        DumpError::Transform {
                            table: table.qualified(),
                            row: 0,
                            source,
                        }
                    })?;
                    self.current = Some(Current {
                        table: table.clone(),
                        rewrite,
                        acc: RowAccumulator::default(),
                    });
                }
                self.out.extend_from_slice(raw);
            }
            SqlItem::Statement {
                raw,
                text,
                line,
                row: Some(row),
            } if self.current.is_some() => {
                self.out.extend_from_slice(&raw[..raw.len() - text.len()]);
                self.row(text, row.prefix_len, line)?;
            }
            SqlItem::Statement { raw, .. } => {
                self.close_table();
                self.out.extend_from_slice(raw);
            }
            SqlItem::Trailing(raw) => self.out.extend_from_slice(raw),
        }
        Ok(())
    }

    /// One row statement of the current table.
    fn row(&mut self, text: &[u8], prefix_len: usize, line: u64) -> Result<(), DumpError> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        if !cur.rewrite {
            self.out.extend_from_slice(text);
            cur.acc.add(text);
            return Ok(());
        }
        let row = cur.acc.rows() + 1;
        self.values.clear();
        decode_values(&text[prefix_len..], &mut self.values).map_err(|e| DumpError::Syntax {
            line,
            message: format!("row {row} of table {}: {e}", cur.table.qualified()),
        })?;
        if self.values.len() != cur.table.columns.len() {
            return Err(DumpError::FieldCount {
                table: cur.table.qualified(),
                row,
                found: self.values.len(),
                expected: cur.table.columns.len(),
            });
        }
        self.fields.clear();
        self.fields.extend(self.values.iter().map(value_text));
        self.transform
            .transform_row(&cur.table, &mut self.fields)
            .map_err(|source| DumpError::Transform {
                table: cur.table.qualified(),
                row,
                source,
            })?;
        if self.transform.drop_row() {
            return Ok(());
        }
        let start = self.out.len();
        self.out.extend_from_slice(&text[..prefix_len]);
        for (i, (value, field)) in self.values.iter().zip(&self.fields).enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            push_field(value, field.as_deref(), &mut self.out);
        }
        self.out.extend_from_slice(b");");
        cur.acc.add(&self.out[start..]);
        Ok(())
    }

    fn close_table(&mut self) {
        if let Some(cur) = self.current.take() {
            self.stats.tables.push(cur.acc.finish(&cur.table));
        }
    }
}

impl super::Rewriter for SqliteRewriter<'_> {
    fn feed(&mut self, chunk: &[u8]) -> Result<(), DumpError> {
        SqliteRewriter::feed(self, chunk)
    }
    fn output_len(&self) -> usize {
        SqliteRewriter::output_len(self)
    }
    fn take_output(&mut self) -> Vec<u8> {
        SqliteRewriter::take_output(self)
    }
    fn finish(self) -> Result<(Vec<u8>, DumpStats), DumpError> {
        SqliteRewriter::finish(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::{Identity, TransformError};

    fn literal_of(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        push_literal(ValueRef::from(v), &mut out);
        out
    }

    fn decode_one(lit: &[u8]) -> Result<Value, String> {
        let mut args = lit.to_vec();
        args.extend_from_slice(b");");
        let mut out = Vec::new();
        decode_values(&args, &mut out)?;
        assert_eq!(out.len(), 1);
        Ok(out.remove(0))
    }

    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
            _ => a == b,
        }
    }

    #[test]
    fn every_literal_push_literal_writes_decodes_exactly() {
        let values = [
            Value::Null,
            Value::Integer(0),
            Value::Integer(-1),
            Value::Integer(i64::MIN),
            Value::Integer(i64::MAX),
            Value::Real(3.0),
            Value::Real(0.1),
            Value::Real(-2.5e-7),
            Value::Real(1e308),
            Value::Real(f64::MAX),
            Value::Real(f64::MIN_POSITIVE),
            Value::Real(5e-324),
            Value::Real(-0.0),
            Value::Real(f64::INFINITY),
            Value::Real(f64::NEG_INFINITY),
            Value::Text(String::new()),
            Value::Text("it's".into()),
            Value::Text("''".into()),
            Value::Text("'".into()),
            Value::Text("a\nb".into()),
            Value::Text("\n".into()),
            Value::Text("\r\n\n".into()),
            Value::Text("tab\there".into()),
            Value::Text("nul\0byte\0".into()),
            Value::Text("\u{1f}\u{1}x".into()),
            Value::Text("émoji \u{1f600} ||, char(10) X'00' NULL);".into()),
            Value::Text("NULL".into()),
            Value::Text("-12".into()),
            Value::Blob(Vec::new()),
            Value::Blob(vec![0, 0, 1, 0x27, 0xff]),
        ];
        for v in &values {
            let lit = literal_of(v);
            let back = decode_one(&lit).unwrap_or_else(|e| {
                panic!("{}: {e}", String::from_utf8_lossy(&lit));
            });
            assert!(
                same(&back, v),
                "{} read back as {back:?}, not {v:?}",
                String::from_utf8_lossy(&lit)
            );
            // And SQLite agrees with the decoder.
            if !matches!(v, Value::Real(f) if *f == 0.0) {
                let conn = rusqlite::Connection::open_in_memory().expect("db");
                let sql = format!("SELECT {}", String::from_utf8_lossy(&lit));
                let by_sqlite: Value = conn.query_row(&sql, [], |r| r.get(0)).expect("query");
                assert!(same(&by_sqlite, &back), "{sql}: {by_sqlite:?}");
            }
        }
        // A whole row, as dump_table writes it.
        let mut args = Vec::new();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                args.push(b',');
            }
            push_literal(ValueRef::from(v), &mut args);
        }
        args.extend_from_slice(b");");
        let mut out = Vec::new();
        decode_values(&args, &mut out).expect("row");
        assert_eq!(out.len(), values.len());
        assert!(out.iter().zip(&values).all(|(a, b)| same(a, b)));
    }

    #[test]
    fn anything_else_is_a_clear_error() {
        for (bad, says) in [
            ("", "expected NULL, a number"),
            ("nul", "expected NULL, a number"),
            ("'abc", "unterminated"),
            ("'a'||", "expected `'`"),
            ("char(x)", "bad char(N)"),
            ("char(1114112)", "bad char(N)"),
            ("X'0'", "bad blob"),
            ("X'zz'", "bad blob"),
            ("99999999999999999999", "bad number"),
            ("1.2.3", "bad number"),
            ("- 1", "bad number"),
            ("x'00'", "expected NULL"),
            ("+1", "expected NULL"),
            ("$1", "expected NULL"),
        ] {
            let e = decode_one(bad.as_bytes()).expect_err(bad);
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let mut out = Vec::new();
        for (bad, says) in [
            ("1,2", "expected `,` or `);`"),
            ("1, 2);", "value 2: expected NULL"),
            ("1);x", "expected `,` or `);`"),
            ("1)", "expected `,` or `);`"),
            ("'a' 'b');", "found ` 'b');`"),
        ] {
            out.clear();
            let e = decode_values(bad.as_bytes(), &mut out).expect_err(bad);
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let e = decode_one(b"'\xff'").expect_err("not utf-8");
        assert!(e.contains("UTF-8"), "{e}");
    }

    /// Upper-cases the text of column `b`; nulls column `c`; fails on "boom".
    struct Upper;

    impl RowTransform for Upper {
        fn begin_table(&mut self, table: &TableInfo) -> Result<bool, TransformError> {
            Ok(table.name != "kept")
        }
        fn transform_row(
            &mut self,
            _table: &TableInfo,
            fields: &mut [Option<Vec<u8>>],
        ) -> Result<(), TransformError> {
            if fields[0].as_deref() == Some(b"boom") {
                return Err(TransformError("boom".into()));
            }
            if let Some(b) = fields[1].as_mut() {
                b.make_ascii_uppercase();
            }
            fields[2] = None;
            Ok(())
        }
    }

    const DUMP: &str = "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n\
        CREATE TABLE \"t\" (a, b, c, d AS (a + 1));\n\
        -- coffre:data \"t\" (\"a\", \"b\", \"c\")\n\
        INSERT INTO \"t\"(\"a\",\"b\",\"c\") VALUES(1,'x;y'||char(10)||'z',X'00ff');\n\
        INSERT INTO \"t\"(\"a\",\"b\",\"c\") VALUES(2.5,'',NULL);\n\
        INSERT INTO \"t\"(\"a\",\"b\",\"c\") VALUES(NULL,1,9.0e999);\n\
        CREATE TABLE kept (a);\n\
        -- coffre:data \"kept\" (\"a\")\n\
        INSERT INTO \"kept\" VALUES('secret');\n\
        CREATE TABLE \"e\" (a, b, c);\n\
        -- coffre:data \"e\" (\"a\", \"b\", \"c\")\n\
        -- another comment\n\
        CREATE INDEX i ON t (a); /* x */ COMMIT;\n";

    fn rewrite(
        text: &[u8],
        transform: &mut dyn RowTransform,
        piece: usize,
    ) -> (Vec<u8>, DumpStats) {
        let mut r = SqliteRewriter::new(transform);
        let mut out = Vec::new();
        for chunk in text.chunks(piece) {
            r.feed(chunk).expect("feed");
            out.extend(r.take_output());
        }
        let (rest, stats) = r.finish().expect("finish");
        out.extend(rest);
        (out, stats)
    }

    fn restore_stats(text: &[u8]) -> DumpStats {
        let mut p = SqliteSqlParser::new();
        p.feed::<DumpError>(text, &mut |_| Ok(())).expect("feed");
        p.finish().expect("finish")
    }

    #[test]
    fn identity_gives_the_text_back_byte_for_byte() {
        for piece in [1, 3, 7, 4096] {
            for text in [DUMP.to_owned(), format!("  \n{DUMP}\n\n-- last")] {
                let (out, stats) = rewrite(text.as_bytes(), &mut Identity, piece);
                assert_eq!(String::from_utf8_lossy(&out), text);
                assert_eq!(stats, restore_stats(text.as_bytes()));
            }
        }
    }

    #[test]
    fn rewrites_marked_rows_only_and_counts_what_it_writes() {
        for piece in [1, 5, 4096] {
            let (out, stats) = rewrite(DUMP.as_bytes(), &mut Upper, piece);
            let out = String::from_utf8(out).expect("utf8");
            let want = DUMP
                .replace(
                    "VALUES(1,'x;y'||char(10)||'z',X'00ff')",
                    "VALUES(1,'X;Y'||char(10)||'Z',NULL)",
                )
                // An integer left alone stays an integer; NULL for the infinity.
                .replace("VALUES(NULL,1,9.0e999)", "VALUES(NULL,1,NULL)");
            assert_eq!(out, want);
            assert_eq!(stats, restore_stats(out.as_bytes()), "a restore verifies");
            let rows: Vec<(&str, u64)> = stats
                .tables
                .iter()
                .map(|t| (t.name.as_str(), t.rows))
                .collect();
            assert_eq!(rows, [("t", 3), ("kept", 1), ("e", 0)]);
        }
    }

    #[test]
    fn a_rewritten_row_is_what_a_backup_with_the_transform_writes() {
        // A rewritten blob, number or text becomes text; an unchanged one keeps its type.
        let cases = [
            (Value::Integer(7), Some(&b"7"[..]), "7"),
            (Value::Integer(7), Some(&b"8"[..]), "'8'"),
            (Value::Real(1e300), Some(&b"1e300"[..]), "1e300"),
            (Value::Real(0.5), Some(&b"0.50"[..]), "'0.50'"),
            (Value::Text("a".into()), Some(&b"a"[..]), "'a'"),
            (Value::Text("a".into()), None, "NULL"),
            (Value::Null, None, "NULL"),
            (Value::Null, Some(&b""[..]), "''"),
            (Value::Blob(vec![0x61]), Some(&b"a"[..]), "X'61'"),
            (Value::Blob(vec![0x61]), Some(&b"b\n"[..]), "'b'||char(10)"),
        ];
        for (original, field, want) in cases {
            assert_eq!(
                field.map(<[u8]>::to_vec) == value_text(&original),
                is_value_text(&original, field)
            );
            let mut out = Vec::new();
            push_field(&original, field, &mut out);
            assert_eq!(
                String::from_utf8_lossy(&out),
                want,
                "{original:?} {field:?}"
            );
        }
    }

    #[test]
    fn bad_rows_and_failing_transforms_name_table_and_row() {
        let text = "-- coffre:data \"t\" (\"a\", \"b\", \"c\")\n\
            INSERT INTO \"t\" VALUES(1,'a',2);\nINSERT INTO \"t\" VALUES(1,'a');\n";
        let mut upper = Upper;
        let mut r = SqliteRewriter::new(&mut upper);
        let e = r.feed(text.as_bytes()).expect_err("two fields");
        assert!(
            matches!(e, DumpError::FieldCount { ref table, row: 2, found: 2, expected: 3 } if table == "t"),
            "{e}"
        );
        let text =
            "-- coffre:data \"t\" (\"a\", \"b\", \"c\")\nINSERT INTO \"t\" VALUES(1,'a',2,y);\n";
        let e = SqliteRewriter::new(&mut Upper)
            .feed(text.as_bytes())
            .expect_err("bad literal");
        assert!(
            e.to_string()
                .starts_with("dump line 2: row 1 of table t: value 4: expected NULL"),
            "{e}"
        );
        let text =
            "-- coffre:data \"t\" (\"a\", \"b\", \"c\")\nINSERT INTO \"t\" VALUES('boom',1,2);\n";
        let e = SqliteRewriter::new(&mut Upper)
            .feed(text.as_bytes())
            .expect_err("transform");
        assert!(matches!(e, DumpError::Transform { row: 1, .. }), "{e}");
        let mut identity = Identity;
        let mut r = SqliteRewriter::new(&mut identity);
        r.feed(b"INSERT INTO t VALUES('abc").expect("feed");
        let e = r.finish().expect_err("truncated");
        assert!(e.to_string().contains("truncated"), "{e}");
    }
}
