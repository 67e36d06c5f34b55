//! Streaming parser of `pg_dump --format=plain` output.
//!
//! SQL text passes through untouched; a light lexer follows quotes, dollar quotes
//! and comments so that only a real `COPY … FROM stdin;` statement starts a data
//! block. Data lines are counted and checksummed, and offered to the transform.
//! Memory is bounded by the longest line (one row), whatever the dump size.

use memchr::memchr;

use super::stats::{DumpStats, RowAccumulator};
use super::{DumpError, RowTransform, TableInfo, copy_text};
use crate::memo::{self, Memo};

/// Whether the parser keeps the (possibly rewritten) text or only watches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Emit,
    Discard,
}

enum State {
    Sql,
    Copy {
        table: TableInfo,
        acc: RowAccumulator,
        rewrite: bool,
        /// Columns the transform rewrites (`None`: all of them).
        mask: Option<Vec<bool>>,
        /// Output text by input text of the transform's pure columns.
        memo: Box<RawMemos>,
        /// The output of columns whose rule ignores the value (a NULL stays NULL).
        constants: Vec<Option<Box<[u8]>>>,
    },
}

/// The memos of one table's pure columns: a column's output field by its input field,
/// both in COPY text form, so that a repeated value (an invoice's e-mail, a catalogue
/// line, a browser string) is copied instead of being decoded, rewritten and encoded
/// again. Bounded as the anonymizer's column memos ([`memo::column_limits`]).
///
/// `pure[i]`: column `i` may use `memos[i]`.
#[derive(Default)]
struct RawMemos {
    pure: Vec<bool>,
    memos: Vec<Memo<Box<[u8]>>>,
    /// Where each column's answer was copied in `answers`, on a hit.
    hit: Vec<Option<(usize, usize)>>,
    answers: Vec<u8>,
}

impl RawMemos {
    fn new(transform: &dyn RowTransform, columns: usize) -> RawMemos {
        match transform.pure_columns() {
            Some((pure, _)) if pure.iter().any(|p| *p) => {
                let limits = memo::column_limits(pure.iter().filter(|p| **p).count());
                RawMemos {
                    pure: pure.to_vec(),
                    memos: (0..columns)
                        .map(|i| match pure.get(i) {
                            Some(true) => Memo::new(limits),
                            _ => Memo::disabled(),
                        })
                        .collect(),
                    hit: Vec::with_capacity(columns),
                    answers: Vec::new(),
                }
            }
            _ => RawMemos::default(),
        }
    }

    fn is_pure(&self, column: usize) -> bool {
        self.pure.get(column) == Some(&true)
    }
}

/// Feed it the dump in chunks of any size; take the output as it grows.
pub struct PgPlainParser<'t> {
    transform: &'t mut dyn RowTransform,
    output: Output,
    lexer: SqlLexer,
    state: State,
    carry: Vec<u8>,
    out: Vec<u8>,
    line_no: u64,
    stats: DumpStats,
    fields: Vec<Option<Vec<u8>>>,
    /// Field boundaries of the current row (start, end), reused across rows.
    spans: Vec<(usize, usize)>,
}

impl<'t> PgPlainParser<'t> {
    pub fn new(transform: &'t mut dyn RowTransform, output: Output) -> Self {
        PgPlainParser {
            transform,
            output,
            lexer: SqlLexer::default(),
            state: State::Sql,
            carry: Vec::new(),
            out: Vec::with_capacity(crate::pipeline::CHUNK + 4096),
            line_no: 0,
            stats: DumpStats::default(),
            fields: Vec::new(),
            spans: Vec::new(),
        }
    }

    /// Parses a chunk. Output produced so far is in [`Self::take_output`].
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), DumpError> {
        if !self.carry.is_empty() {
            match memchr(b'\n', chunk) {
                None => {
                    self.carry.extend_from_slice(chunk);
                    return Ok(());
                }
                Some(i) => {
                    let mut line = std::mem::take(&mut self.carry);
                    line.extend_from_slice(&chunk[..i]);
                    self.line(&line, true)?;
                    line.clear();
                    self.carry = line;
                    chunk = &chunk[i + 1..];
                }
            }
        }
        while let Some(i) = memchr(b'\n', chunk) {
            self.line(&chunk[..i], true)?;
            chunk = &chunk[i + 1..];
        }
        self.carry.extend_from_slice(chunk);
        Ok(())
    }

    /// Bytes of output waiting to be taken.
    pub fn output_len(&self) -> usize {
        self.out.len()
    }

    /// Takes the output produced so far.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::replace(
            &mut self.out,
            Vec::with_capacity(crate::pipeline::CHUNK + 4096),
        )
    }

    /// Ends the dump: returns the last output and the stats of every table.
    pub fn finish(mut self) -> Result<(Vec<u8>, DumpStats), DumpError> {
        if !self.carry.is_empty() {
            let line = std::mem::take(&mut self.carry);
            self.line(&line, false)?;
        }
        if let State::Copy { table, .. } = &self.state {
            return Err(DumpError::Truncated {
                table: table.qualified(),
            });
        }
        Ok((self.out, self.stats))
    }

    fn emit(&mut self, line: &[u8], newline: bool) {
        if self.output == Output::Emit {
            self.out.extend_from_slice(line);
            if newline {
                self.out.push(b'\n');
            }
        }
    }

    fn line(&mut self, line: &[u8], newline: bool) -> Result<(), DumpError> {
        self.line_no += 1;
        match &mut self.state {
            State::Sql => {
                if self.lexer.at_statement_start()
                    && line.starts_with(b"COPY ")
                    && line.ends_with(b" FROM stdin;")
                {
                    let table = parse_copy_header(line).map_err(|message| DumpError::Syntax {
                        line: self.line_no,
                        message,
                    })?;
                    let rewrite = self.transform.begin_table(&table).map_err(|source| {
                        DumpError::Transform {
                            table: table.qualified(),
                            row: 0,
                            source,
                        }
                    })?;
                    let mask = self.transform.column_mask().map(<[bool]>::to_vec);
                    let constants = match self.transform.constant_columns() {
                        Some(c) if rewrite => c.to_vec(),
                        _ => Vec::new(),
                    };
                    let memo = Box::new(if rewrite {
                        RawMemos::new(self.transform, table.columns.len())
                    } else {
                        RawMemos::default()
                    });
                    self.state = State::Copy {
                        table,
                        acc: RowAccumulator::default(),
                        rewrite,
                        mask,
                        memo,
                        constants,
                    };
                } else if !(self.lexer.at_statement_start() && line.starts_with(b"\\")) {
                    if self.lexer.at_statement_start()
                        && line.starts_with(b"SELECT pg_catalog.lo_create(")
                    {
                        self.transform
                            .large_object()
                            .map_err(|source| DumpError::Transform {
                                table: "(large objects)".into(),
                                row: 0,
                                source,
                            })?;
                    }
                    // psql meta-commands (`\restrict KEY`, `\connect`) are whole
                    // lines outside SQL: they do not start a statement.
                    self.lexer.scan_line(line);
                }
                match self.transform.rewrite_sql_line(line) {
                    Some(new) => self.emit(&new, newline),
                    None => self.emit(line, newline),
                }
            }
            State::Copy {
                table,
                acc,
                rewrite,
                mask,
                memo,
                constants,
            } => {
                if line == b"\\." {
                    self.stats.tables.push(acc.finish(table));
                    self.state = State::Sql;
                    self.emit(line, newline);
                } else if *rewrite {
                    // Only the columns the transform rewrites are decoded; the others go
                    // back out as the raw bytes they came in, and a pure column's repeat
                    // as the bytes remembered for it.
                    self.spans.clear();
                    if !table.columns.is_empty() {
                        let mut start = 0;
                        for tab in memchr::memchr_iter(b'\t', line) {
                            self.spans.push((start, tab));
                            start = tab + 1;
                        }
                        self.spans.push((start, line.len()));
                    }
                    let row = acc.rows() + 1;
                    if self.spans.len() != table.columns.len() {
                        return Err(DumpError::FieldCount {
                            table: table.qualified(),
                            row,
                            found: self.spans.len(),
                            expected: table.columns.len(),
                        });
                    }
                    let wanted = |i: usize| mask.as_ref().is_none_or(|m| m.get(i) == Some(&true));
                    let constant = |i: usize| constants.get(i).and_then(Option::as_deref);
                    let memoizing = !memo.pure.is_empty();
                    // Answers are valid in the transform's epoch they were computed in.
                    let epoch = self.transform.pure_columns().map_or(0, |(_, e)| e);
                    if memoizing {
                        memo.hit.clear();
                        memo.answers.clear();
                    }
                    let mut misses = 0;
                    self.fields.clear();
                    for (i, &(a, b)) in self.spans.iter().enumerate() {
                        let raw = &line[a..b];
                        if memoizing
                            && memo.is_pure(i)
                            && let Some(v) = memo.memos[i].get(raw, epoch)
                        {
                            let at = memo.answers.len();
                            memo.answers.extend_from_slice(v);
                            memo.hit.push(Some((at, memo.answers.len())));
                            self.fields.push(None);
                            continue;
                        }
                        if memoizing {
                            memo.hit.push(None);
                        }
                        if constant(i).is_some() {
                            self.fields.push(None);
                        } else if wanted(i) {
                            misses += 1;
                            self.fields.push(copy_text::decode_field(raw));
                        } else {
                            self.fields.push(None);
                        }
                    }
                    // Every rewritten column answered (from memory, or a constant): the
                    // transform has nothing to do for this row.
                    if misses > 0 || (!memoizing && constants.is_empty()) {
                        self.transform
                            .transform_row(table, &mut self.fields)
                            .map_err(|source| DumpError::Transform {
                                table: table.qualified(),
                                row,
                                source,
                            })?;
                        if self.transform.drop_row() {
                            return Ok(());
                        }
                    }
                    // A collision resolved by this row: what was remembered before, and
                    // what this row gave, may differ from a fresh result.
                    let keep_answers =
                        memoizing && self.transform.pure_columns().map_or(0, |(_, e)| e) == epoch;
                    let start = self.out.len();
                    for (i, &(a, b)) in self.spans.iter().enumerate() {
                        if i > 0 {
                            self.out.push(b'\t');
                        }
                        if let Some(Some((x, y))) = memo.hit.get(i) {
                            self.out.extend_from_slice(&memo.answers[*x..*y]);
                        } else if let Some(c) = constant(i) {
                            let raw = &line[a..b];
                            self.out.extend_from_slice(if copy_text::is_null(raw) {
                                raw
                            } else {
                                c
                            });
                        } else if wanted(i) {
                            let at = self.out.len();
                            copy_text::encode_field(self.fields[i].as_deref(), &mut self.out);
                            if keep_answers && memo.is_pure(i) {
                                let output = &self.out[at..];
                                memo.memos[i]
                                    .put_with(&line[a..b], output.len(), epoch, || output.into());
                            }
                        } else {
                            self.out.extend_from_slice(&line[a..b]);
                        }
                    }
                    acc.add(&self.out[start..]);
                    self.out.push(b'\n');
                    if self.output == Output::Discard {
                        self.out.truncate(start);
                    }
                } else {
                    acc.add(line);
                    self.emit(line, newline);
                }
            }
        }
        Ok(())
    }
}

/// Parses `COPY schema.table (a, "B") FROM stdin;` into a table description.
pub fn parse_copy_header(line: &[u8]) -> Result<TableInfo, String> {
    let text = std::str::from_utf8(line).map_err(|_| "COPY header is not UTF-8".to_owned())?;
    let rest = text
        .strip_prefix("COPY ")
        .and_then(|r| r.strip_suffix(" FROM stdin;"))
        .ok_or_else(|| format!("not a COPY header: {text}"))?;
    let (first, rest) = parse_ident(rest)?;
    let (schema, name, mut rest) = match rest.strip_prefix('.') {
        Some(r) => {
            let (second, r) = parse_ident(r)?;
            (first, second, r)
        }
        None => (String::new(), first, rest),
    };
    rest = rest.trim_start();
    let mut columns = Vec::new();
    if let Some(mut r) = rest.strip_prefix('(') {
        loop {
            r = r.trim_start();
            let (col, after) = parse_ident(r)?;
            columns.push(col);
            let after = after.trim_start();
            if let Some(a) = after.strip_prefix(',') {
                r = a;
            } else if let Some(a) = after.strip_prefix(')') {
                rest = a;
                break;
            } else {
                return Err(format!("bad column list in COPY header: {text}"));
            }
        }
    }
    if !rest.trim().is_empty() {
        return Err(format!("unexpected text in COPY header: {text}"));
    }
    Ok(TableInfo {
        schema,
        name,
        columns,
    })
}

fn parse_ident(s: &str) -> Result<(String, &str), String> {
    if let Some(body) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if body[i + 1..].starts_with('"') {
                    out.push('"');
                    chars.next();
                } else {
                    return Ok((out, &body[i + 1..]));
                }
            } else {
                out.push(c);
            }
        }
        Err(format!("unterminated quoted identifier: {s}"))
    } else {
        let end = s
            .find(|c: char| c == '.' || c == '(' || c == ')' || c == ',' || c.is_whitespace())
            .unwrap_or(s.len());
        if end == 0 {
            return Err(format!("expected an identifier at: {s}"));
        }
        Ok((s[..end].to_owned(), &s[end..]))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum Lex {
    #[default]
    Code,
    Single,
    EscapeSingle,
    Double,
    Block(u32),
    Dollar(Vec<u8>),
}

/// Tracks whether the next line starts a new SQL statement.
#[derive(Debug, Default)]
struct SqlLexer {
    state: Lex,
    /// Something other than white space or comments since the last `;`.
    in_statement: bool,
}

impl SqlLexer {
    fn at_statement_start(&self) -> bool {
        self.state == Lex::Code && !self.in_statement
    }

    fn scan_line(&mut self, line: &[u8]) {
        let mut i = 0;
        while i < line.len() {
            match &mut self.state {
                Lex::Code => {
                    let b = line[i];
                    match b {
                        b'-' if line.get(i + 1) == Some(&b'-') => return,
                        b'/' if line.get(i + 1) == Some(&b'*') => {
                            self.state = Lex::Block(1);
                            i += 2;
                            continue;
                        }
                        b';' => self.in_statement = false,
                        b'\'' => {
                            let escape = i > 0
                                && matches!(line[i - 1], b'E' | b'e')
                                && (i < 2 || !is_ident_byte(line[i - 2]));
                            self.state = if escape {
                                Lex::EscapeSingle
                            } else {
                                Lex::Single
                            };
                            self.in_statement = true;
                        }
                        b'"' => {
                            self.state = Lex::Double;
                            self.in_statement = true;
                        }
                        b'$' if i == 0 || !is_ident_byte(line[i - 1]) => {
                            self.in_statement = true;
                            if let Some(len) = dollar_tag_len(&line[i..]) {
                                self.state = Lex::Dollar(line[i..i + len].to_vec());
                                i += len;
                                continue;
                            }
                        }
                        b' ' | b'\t' | b'\r' => {}
                        _ => self.in_statement = true,
                    }
                    i += 1;
                }
                Lex::Single => match memchr(b'\'', &line[i..]) {
                    Some(j) => {
                        i += j + 1;
                        if line.get(i) == Some(&b'\'') {
                            i += 1;
                        } else {
                            self.state = Lex::Code;
                        }
                    }
                    None => return,
                },
                Lex::EscapeSingle => {
                    match line[i] {
                        b'\\' => i += 1,
                        b'\'' if line.get(i + 1) == Some(&b'\'') => i += 1,
                        b'\'' => self.state = Lex::Code,
                        _ => {}
                    }
                    i += 1;
                }
                Lex::Double => match memchr(b'"', &line[i..]) {
                    Some(j) => {
                        i += j + 1;
                        if line.get(i) == Some(&b'"') {
                            i += 1;
                        } else {
                            self.state = Lex::Code;
                        }
                    }
                    None => return,
                },
                Lex::Block(depth) => {
                    if line[i] == b'*' && line.get(i + 1) == Some(&b'/') {
                        *depth -= 1;
                        if *depth == 0 {
                            self.state = Lex::Code;
                        }
                        i += 2;
                    } else if line[i] == b'/' && line.get(i + 1) == Some(&b'*') {
                        *depth += 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                Lex::Dollar(tag) => match memchr::memmem::find(&line[i..], tag) {
                    Some(j) => {
                        i += j + tag.len();
                        self.state = Lex::Code;
                    }
                    None => return,
                },
            }
        }
    }
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Length of a dollar-quote opener (`$$` or `$tag$`) at the start of `s`.
fn dollar_tag_len(s: &[u8]) -> Option<usize> {
    if s.first() != Some(&b'$') {
        return None;
    }
    let mut j = 1;
    while j < s.len() && s[j] != b'$' {
        let b = s[j];
        let ok = b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 || (j > 1 && b.is_ascii_digit());
        if !ok {
            return None;
        }
        j += 1;
    }
    (j < s.len()).then_some(j + 1)
}

impl super::Rewriter for PgPlainParser<'_> {
    fn feed(&mut self, chunk: &[u8]) -> Result<(), DumpError> {
        PgPlainParser::feed(self, chunk)
    }
    fn output_len(&self) -> usize {
        PgPlainParser::output_len(self)
    }
    fn take_output(&mut self) -> Vec<u8> {
        PgPlainParser::take_output(self)
    }
    fn finish(self) -> Result<(Vec<u8>, DumpStats), DumpError> {
        PgPlainParser::finish(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::Identity;

    const DUMP: &str = "\\restrict abc\n\
        SET x = 1;\n\
        CREATE FUNCTION f() RETURNS void AS $body$\n\
        COPY fake (a) FROM stdin;\n\
        $body$ LANGUAGE sql;\n\
        COMMENT ON TABLE t IS 'it''s\n\
        COPY also_fake FROM stdin;\n\
        ';\n\
        COPY \"Compta\".\"Mixed \"\"Q\"\"\" (id, \"order\", note) FROM stdin;\n\
        1\tx\tline\\nbreak\n\
        2\t\\N\t\n\
        \\.\n\
        COPY public.empty  FROM stdin;\n\
        \n\
        \\.\n\
        SELECT 1;\n";

    /// Rewrites column `b` (reversed, escapes included) and counts its calls; with `pure`,
    /// says the column is pure, and moves its epoch on the value "bump".
    struct Reverse {
        pure: bool,
        calls: u64,
        epoch: u64,
        flags: Vec<bool>,
    }

    impl RowTransform for Reverse {
        fn begin_table(&mut self, _t: &TableInfo) -> Result<bool, super::super::TransformError> {
            self.flags = vec![false, self.pure, false];
            Ok(true)
        }
        fn transform_row(
            &mut self,
            _t: &TableInfo,
            fields: &mut [Option<Vec<u8>>],
        ) -> Result<(), super::super::TransformError> {
            if let Some(v) = fields[1].as_mut() {
                self.calls += 1;
                if v == b"bump" {
                    self.epoch += 1;
                }
                v.reverse();
                v.extend_from_slice(format!("#{}", self.epoch).as_bytes());
            }
            Ok(())
        }
        fn column_mask(&self) -> Option<&[bool]> {
            Some(&[false, true, false])
        }
        fn pure_columns(&self) -> Option<(&[bool], u64)> {
            self.pure.then_some((&self.flags[..], self.epoch))
        }
    }

    #[test]
    fn remembered_fields_give_the_output_of_the_transform_itself() {
        let mut dump = String::from("COPY public.t (a, b, c) FROM stdin;\n");
        for i in 0..20_000 {
            let b = ["x\\ty", "same", "\\N", "é\\n"][i % 4];
            // Once, the transform's epoch moves: what was remembered must be forgotten.
            let b = if i == 10_001 { "bump" } else { b };
            dump.push_str(&format!("{i}\t{b}\tc{}\n", i % 3));
        }
        dump.push_str("\\.\n");
        let run = |pure: bool| {
            let mut t = Reverse {
                pure,
                calls: 0,
                epoch: 0,
                flags: Vec::new(),
            };
            let mut p = PgPlainParser::new(&mut t, Output::Emit);
            for piece in dump.as_bytes().chunks(4096) {
                p.feed(piece).expect("feed");
            }
            let (out, stats) = p.finish().expect("finish");
            (out, stats, t.calls)
        };
        let (plain, plain_stats, plain_calls) = run(false);
        let (memo, memo_stats, memo_calls) = run(true);
        assert_eq!(memo, plain, "the same text, epochs included");
        assert_eq!(memo_stats, plain_stats);
        assert_eq!(plain_calls, 15_000, "every non-NULL value once");
        assert!(
            memo_calls < 100,
            "repeats answered from memory: {memo_calls}"
        );
        let text = String::from_utf8_lossy(&memo);
        assert!(
            text.contains("\temas#0\t") && text.contains("\temas#1\t"),
            "both epochs"
        );
    }

    #[test]
    fn finds_only_real_copy_blocks() {
        let mut t = Identity;
        let mut p = PgPlainParser::new(&mut t, Output::Emit);
        // Feed in awkward pieces to exercise line carry-over.
        for piece in DUMP.as_bytes().chunks(7) {
            p.feed(piece).expect("feed");
        }
        let (out, stats) = p.finish().expect("finish");
        let names: Vec<String> = stats.tables.iter().map(|t| t.qualified()).collect();
        assert_eq!(names, vec!["Compta.Mixed \"Q\"", "public.empty"]);
        assert_eq!(stats.tables[0].columns, vec!["id", "order", "note"]);
        assert_eq!(stats.tables[0].rows, 2);
        assert_eq!(stats.tables[1].rows, 1);
        assert!(stats.tables[1].columns.is_empty());
        assert_eq!(out, DUMP.as_bytes(), "identity output equals input");
    }

    #[test]
    fn meta_command_lines_do_not_hide_a_copy() {
        let mut t = Identity;
        let mut p = PgPlainParser::new(&mut t, Output::Discard);
        p.feed(b"\\restrict k3y\nCOPY public.t (a) FROM stdin;\n1\n\\.\n\\unrestrict k3y\n")
            .expect("feed");
        let (_, stats) = p.finish().expect("finish");
        assert_eq!(stats.tables.len(), 1);
        assert_eq!(stats.tables[0].rows, 1);
    }

    #[test]
    fn truncated_copy_is_an_error() {
        let mut t = Identity;
        let mut p = PgPlainParser::new(&mut t, Output::Discard);
        p.feed(b"COPY public.t (a) FROM stdin;\n1\n").expect("feed");
        let err = p.finish().expect_err("must fail");
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    struct Upper;
    impl RowTransform for Upper {
        fn begin_table(&mut self, t: &TableInfo) -> Result<bool, super::super::TransformError> {
            Ok(t.name == "t")
        }
        fn transform_row(
            &mut self,
            _t: &TableInfo,
            fields: &mut [Option<Vec<u8>>],
        ) -> Result<(), super::super::TransformError> {
            for f in fields.iter_mut().flatten() {
                f.make_ascii_uppercase();
            }
            Ok(())
        }
    }

    #[test]
    fn rewrites_rows_and_checksums_the_output() {
        let mut t = Upper;
        let mut p = PgPlainParser::new(&mut t, Output::Emit);
        p.feed(b"COPY public.t (a, b) FROM stdin;\nab\\tc\t\\N\n\\.\n")
            .expect("feed");
        let (out, stats) = p.finish().expect("finish");
        assert_eq!(out, b"COPY public.t (a, b) FROM stdin;\nAB\\tC\t\\N\n\\.\n");
        let mut acc = RowAccumulator::default();
        acc.add(b"AB\\tC\t\\N");
        assert_eq!(
            stats.tables[0].checksum,
            acc.finish(&TableInfo {
                schema: String::new(),
                name: String::new(),
                columns: vec![]
            })
            .checksum
        );
    }

    #[test]
    fn wrong_field_count_is_reported() {
        let mut t = Upper;
        let mut p = PgPlainParser::new(&mut t, Output::Discard);
        let err = p
            .feed(b"COPY public.t (a, b) FROM stdin;\nonly-one\n")
            .expect_err("must fail");
        assert!(err.to_string().contains("1 fields"), "{err}");
    }
}
