//! MySQL and MariaDB dump text (`mariadb-dump`, `mysqldump`) parsed into row events.
//!
//! [`MysqlRewriter`] copies the dump through and, for every multi-row
//! `INSERT INTO `t` (…) VALUES (…),(…);`, cuts the values into tuples as they stream
//! by, so that memory is bounded by one tuple, not by the INSERT line (mysqldump
//! writes lines of megabytes). Each tuple is counted and checksummed; the tuples of
//! the tables the [`RowTransform`] rewrites are decoded (exact MySQL escapes, hex,
//! bit and `_binary` literals, NULL), transformed and written back.
//!
//! Columns come from the INSERT's own column list (coffre dumps with
//! `--complete-insert`), or else from the table's `CREATE TABLE`, whose column list
//! is read by a small hand parser: sqlparser is not a dependency of coffre, and
//! mysqldump's DDL (MariaDB's `INVISIBLE`, `/*M!…*/` and `/*!50001 …*/` comments,
//! table options) is regular enough that the list of column names and their base
//! types is all that is needed.
//!
//! The checksummed text of a row is its tuple `(…)` exactly as written out: an
//! unchanged value keeps its original literal, so a row copied and the same row
//! decoded and re-encoded read the same, and a restore that parses the text it
//! loads (see [`MysqlRewriter::watching`]) finds the same checksums.

use std::collections::HashMap;

use memchr::{memchr, memchr2};

use super::stats::{DumpStats, RowAccumulator};
use super::{DumpError, RowTransform, TableInfo};

/// `name` between backticks, inner backticks doubled: an identifier as MySQL reads it.
pub fn quote_mysql_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// How a value was written in the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Literal {
    Null,
    /// A bare number (`12`, `-1.5`, `1e-7`): its text is the value.
    Number,
    /// A quoted string (`'…'`, `"…"`, `_utf8mb4 '…'`).
    Text,
    /// A binary string: `0x…`, `X'…'`, `0b…`, `b'…'`, `_binary …`.
    Binary,
}

/// Decodes one value literal, trimmed: its kind and bytes (`None` for NULL).
/// Strings follow MySQL's escapes: `\0 \' \" \b \n \r \t \Z \\`, `''` inside
/// `'…'`; `\%` and `\_` stay two characters; any other `\x` is `x`.
pub fn decode_literal(lit: &[u8]) -> Result<(Literal, Option<Vec<u8>>), String> {
    if lit.eq_ignore_ascii_case(b"NULL") {
        return Ok((Literal::Null, None));
    }
    match lit.first() {
        Some(b'\'' | b'"') => decode_string(lit).map(|v| (Literal::Text, Some(v))),
        Some(b'_') => {
            let name_len = lit
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            let name = &lit[..name_len];
            let rest = lit[name_len..].trim_ascii_start();
            if name.eq_ignore_ascii_case(b"_binary") {
                let (_, v) = decode_literal(rest)?;
                let v = v.ok_or("_binary NULL is not a value")?;
                Ok((Literal::Binary, Some(v)))
            } else if [&b"_utf8mb4"[..], b"_utf8", b"_utf8mb3"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
            {
                let (kind, v) = decode_literal(rest)?;
                if kind == Literal::Null || kind == Literal::Number {
                    return Err(format!("bad literal after {}", shown(name)));
                }
                Ok((Literal::Text, v))
            } else {
                Err(format!(
                    "unsupported character set introducer {} (dump with \
                     --default-character-set=utf8mb4)",
                    shown(name)
                ))
            }
        }
        Some(b'0') if matches!(lit.get(1), Some(b'x')) => {
            if lit.len() == 2 {
                return Err("empty hex literal 0x".into());
            }
            hex_digits(&lit[2..]).map(|v| (Literal::Binary, Some(v)))
        }
        Some(b'0') if matches!(lit.get(1), Some(b'b')) => {
            bit_digits(&lit[2..]).map(|v| (Literal::Binary, Some(v)))
        }
        Some(b'x' | b'X') if lit.get(1) == Some(&b'\'') => {
            let body = quoted_plain(&lit[1..])?;
            if body.len() % 2 == 1 {
                return Err(format!("odd number of hex digits in {}", shown(lit)));
            }
            hex_digits(body).map(|v| (Literal::Binary, Some(v)))
        }
        Some(b'b' | b'B') if lit.get(1) == Some(&b'\'') => {
            let body = quoted_plain(&lit[1..])?;
            bit_digits_or_empty(body).map(|v| (Literal::Binary, Some(v)))
        }
        _ if is_number(lit) => Ok((Literal::Number, Some(lit.to_vec()))),
        _ => Err(format!(
            "expected NULL, a number, 'text', 0x… or _binary '…', found {}",
            shown(lit)
        )),
    }
}

/// `'…'` with nothing but hex or bit digits inside: the digits.
fn quoted_plain(s: &[u8]) -> Result<&[u8], String> {
    match s {
        [b'\'', body @ .., b'\''] if !body.contains(&b'\'') => Ok(body),
        _ => Err(format!("bad literal {}", shown(s))),
    }
}

fn hex_digits(digits: &[u8]) -> Result<Vec<u8>, String> {
    let val = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(digits.len().div_ceil(2));
    // An odd count is padded on the left, as MySQL reads 0xABC as 0x0ABC.
    let (head, pairs) = digits.split_at(digits.len() % 2);
    if let [h] = head {
        out.push(val(*h).ok_or_else(|| format!("bad hex digit in {}", shown(digits)))?);
    }
    for pair in pairs.chunks_exact(2) {
        match (val(pair[0]), val(pair[1])) {
            (Some(a), Some(b)) => out.push((a << 4) | b),
            _ => return Err(format!("bad hex digit in {}", shown(digits))),
        }
    }
    Ok(out)
}

fn bit_digits_or_empty(digits: &[u8]) -> Result<Vec<u8>, String> {
    if digits.is_empty() {
        Ok(Vec::new())
    } else {
        bit_digits(digits)
    }
}

/// Bits, most significant first, padded on the left to whole bytes.
fn bit_digits(digits: &[u8]) -> Result<Vec<u8>, String> {
    if digits.is_empty() || digits.iter().any(|b| !matches!(b, b'0' | b'1')) {
        return Err(format!("bad bit literal digits {}", shown(digits)));
    }
    let mut out = Vec::with_capacity(digits.len().div_ceil(8));
    let first = digits.len() % 8;
    let (head, rest) = digits.split_at(first);
    let byte = |bits: &[u8]| bits.iter().fold(0u8, |acc, b| (acc << 1) | (b - b'0'));
    if !head.is_empty() {
        out.push(byte(head));
    }
    out.extend(rest.chunks_exact(8).map(byte));
    Ok(out)
}

/// A bare number: `[+-]digits[.digits][e[+-]digits]` or `.digits…`.
fn is_number(s: &[u8]) -> bool {
    let s = s
        .strip_prefix(b"-")
        .or_else(|| s.strip_prefix(b"+"))
        .unwrap_or(s);
    let int = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut i = int;
    let mut frac = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        frac = s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        i += frac;
    }
    if int + frac == 0 {
        return false;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp = s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == s.len()
}

/// One quoted string, the whole of `lit`.
fn decode_string(lit: &[u8]) -> Result<Vec<u8>, String> {
    let q = lit[0];
    let mut out = Vec::with_capacity(lit.len());
    let mut i = 1;
    loop {
        let Some(k) = memchr2(q, b'\\', &lit[i..]) else {
            return Err(format!("unterminated string {}", shown(lit)));
        };
        out.extend_from_slice(&lit[i..i + k]);
        i += k;
        if lit[i] == b'\\' {
            let Some(&c) = lit.get(i + 1) else {
                return Err(format!("unterminated string {}", shown(lit)));
            };
            match c {
                b'0' => out.push(0),
                b'b' => out.push(8),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'Z' => out.push(0x1a),
                b'%' | b'_' => out.extend_from_slice(&[b'\\', c]),
                _ => out.push(c),
            }
            i += 2;
        } else if lit.get(i + 1) == Some(&q) {
            out.push(q);
            i += 2;
        } else if i + 1 == lit.len() {
            return Ok(out);
        } else {
            return Err(format!(
                "unexpected {} after a string (strings side by side are not supported)",
                shown(&lit[i + 1..])
            ));
        }
    }
}

/// Appends `value` as a string literal, escaped as mysqldump escapes
/// (`mysql_real_escape_string`): `\0 \n \r \\ \' \" \Z`.
pub fn push_quoted(value: &[u8], out: &mut Vec<u8>) {
    out.reserve(value.len() + 2);
    out.push(b'\'');
    super::push_escaped(value, out, |b| match b {
        0 => Some(b"\\0"),
        b'\n' => Some(b"\\n"),
        b'\r' => Some(b"\\r"),
        b'\\' => Some(b"\\\\"),
        b'\'' => Some(b"\\'"),
        b'"' => Some(b"\\\""),
        0x1a => Some(b"\\Z"),
        _ => None,
    });
    out.push(b'\'');
}

/// Appends bytes as a hex literal `0x…` (upper case, as `--hex-blob` writes them),
/// or `''` when empty (`0x` alone is not a literal).
pub fn push_hex(value: &[u8], out: &mut Vec<u8>) {
    if value.is_empty() {
        out.extend_from_slice(b"''");
        return;
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(2 + 2 * value.len());
    out.extend_from_slice(b"0x");
    for &b in value {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
}

/// Appends a value the transform rewrote: NULL, a hex literal for binary columns and
/// binary originals, a bare number where a number was and still is, else a string.
pub fn push_value(original: Literal, binary_column: bool, value: Option<&[u8]>, out: &mut Vec<u8>) {
    match value {
        None => out.extend_from_slice(b"NULL"),
        Some(v) if binary_column || original == Literal::Binary => push_hex(v, out),
        Some(v) if original == Literal::Number && is_number(v) => out.extend_from_slice(v),
        Some(v) => push_quoted(v, out),
    }
}

/// The start of `rest`, for an error message.
fn shown(rest: &[u8]) -> String {
    if rest.is_empty() {
        return "the end of the value".into();
    }
    let head: String = String::from_utf8_lossy(&rest[..rest.len().min(24)])
        .chars()
        .take(16)
        .collect();
    format!("`{head}`")
}

/// Splits a complete tuple `( v , v … )` into the spans of its values, trimmed of
/// white space. Appends to `spans`.
fn split_values(tuple: &[u8], spans: &mut Vec<(usize, usize)>) -> Result<(), String> {
    let end = tuple.len() - 1; // the closing parenthesis
    let mut start = 1;
    let mut depth = 0u32;
    let mut i = 1;
    let push = |a: usize, b: usize, spans: &mut Vec<(usize, usize)>| {
        let v = &tuple[a..b];
        let lead = v.len() - v.trim_ascii_start().len();
        let trail = v.len() - v.trim_ascii_end().len();
        spans.push((a + lead, (b - trail).max(a + lead)));
    };
    while i < end {
        match tuple[i] {
            q @ (b'\'' | b'"') => {
                let mut j = i + 1;
                loop {
                    match memchr2(q, b'\\', &tuple[j..end]) {
                        None => return Err("unterminated string".into()),
                        Some(k) if tuple[j + k] == b'\\' => j += k + 2,
                        Some(k) => {
                            i = j + k + 1;
                            break;
                        }
                    }
                }
                continue;
            }
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                push(start, i, spans);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    push(start, end, spans);
    Ok(())
}

/// Columns of a table as its `CREATE TABLE` declares them.
#[derive(Debug, Clone, Default)]
struct Declared {
    columns: Vec<String>,
    binary: Vec<bool>,
}

impl Declared {
    fn binary_of(&self, column: &str) -> bool {
        self.columns
            .iter()
            .position(|c| c == column)
            .is_some_and(|i| self.binary[i])
    }
}

/// Base types whose values are bytes, not text.
const BINARY_TYPES: &[&str] = &[
    "binary",
    "varbinary",
    "tinyblob",
    "blob",
    "mediumblob",
    "longblob",
    "bit",
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
];

/// Words that start a table element other than a column.
const NOT_COLUMNS: &[&str] = &[
    "PRIMARY",
    "KEY",
    "INDEX",
    "UNIQUE",
    "FULLTEXT",
    "SPATIAL",
    "CONSTRAINT",
    "FOREIGN",
    "CHECK",
    "PERIOD",
    "SYSTEM",
];

/// A tiny cursor over SQL text: white space, words, identifiers.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while self.i < self.s.len() {
            let rest = &self.s[self.i..];
            if rest[0].is_ascii_whitespace() {
                self.i += 1;
            } else if rest.starts_with(b"/*") && !rest.starts_with(b"/*!") {
                match rest[2..].windows(2).position(|w| w == b"*/") {
                    Some(k) => self.i += k + 4,
                    None => self.i = self.s.len(),
                }
            } else {
                break;
            }
        }
    }

    fn word(&mut self) -> &'a [u8] {
        self.ws();
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
        {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    /// Consumes `word` (any case) if it comes next.
    fn keyword(&mut self, word: &str) -> bool {
        let save = self.i;
        if self.word().eq_ignore_ascii_case(word.as_bytes()) {
            true
        } else {
            self.i = save;
            false
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    /// `` `name` `` or a bare name.
    fn ident(&mut self) -> Result<String, String> {
        self.ws();
        if self.s.get(self.i) == Some(&b'`') {
            let mut out = Vec::new();
            let mut j = self.i + 1;
            loop {
                match memchr(b'`', &self.s[j..]) {
                    None => return Err("unterminated `identifier`".into()),
                    Some(k) => {
                        out.extend_from_slice(&self.s[j..j + k]);
                        j += k + 1;
                        if self.s.get(j) == Some(&b'`') {
                            out.push(b'`');
                            j += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            self.i = j;
            String::from_utf8(out).map_err(|_| "identifier is not UTF-8".into())
        } else {
            let start = self.i;
            while self.i < self.s.len()
                && (self.s[self.i].is_ascii_alphanumeric() || matches!(self.s[self.i], b'_' | b'$'))
            {
                self.i += 1;
            }
            if start == self.i {
                return Err(format!(
                    "expected a name, found {}",
                    shown(&self.s[start..])
                ));
            }
            Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
        }
    }

    /// A table name, `db`.`t` or `t`: the table part.
    fn table(&mut self) -> Result<String, String> {
        let mut name = self.ident()?;
        while self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            name = self.ident()?;
        }
        Ok(name)
    }
}

/// `INSERT [IGNORE] INTO t [(cols)] VALUES`: the table and its column list.
fn parse_insert_header(code: &[u8]) -> Result<(String, Option<Vec<String>>), String> {
    let mut c = Cursor { s: code, i: 0 };
    if !(c.keyword("INSERT") || c.keyword("REPLACE")) {
        return Err("expected INSERT".into());
    }
    while c.keyword("LOW_PRIORITY")
        || c.keyword("DELAYED")
        || c.keyword("HIGH_PRIORITY")
        || c.keyword("IGNORE")
    {}
    c.keyword("INTO");
    let table = c.table()?;
    let mut columns = None;
    if c.peek() == Some(b'(') {
        c.i += 1;
        let mut cols = Vec::new();
        loop {
            cols.push(c.ident()?);
            match c.peek() {
                Some(b',') => c.i += 1,
                Some(b')') => {
                    c.i += 1;
                    break;
                }
                _ => return Err(format!("bad column list of INSERT INTO {table}")),
            }
        }
        columns = Some(cols);
    }
    if !(c.keyword("VALUES") || c.keyword("VALUE")) {
        return Err(format!("expected VALUES in INSERT INTO {table}"));
    }
    c.ws();
    if c.i != code.len() {
        return Err(format!(
            "unexpected text before the values of INSERT INTO {table}"
        ));
    }
    Ok((table, columns))
}

/// `CREATE TABLE t (…)`: the table and its columns; `None` for `CREATE TABLE … LIKE`
/// or `… AS SELECT`, which name no columns.
fn parse_create_table(code: &[u8]) -> Result<Option<(String, Declared)>, String> {
    let mut c = Cursor { s: code, i: 0 };
    c.keyword("CREATE");
    if c.keyword("OR") {
        c.keyword("REPLACE");
    }
    c.keyword("TEMPORARY");
    if !c.keyword("TABLE") {
        return Err("expected CREATE TABLE".into());
    }
    if c.keyword("IF") {
        c.keyword("NOT");
        c.keyword("EXISTS");
    }
    let table = c.table()?;
    if c.peek() != Some(b'(') {
        return Ok(None);
    }
    let body_start = c.i + 1;
    // Table elements split at top-level commas, quotes and parentheses followed.
    let mut items = Vec::new();
    let mut depth = 0u32;
    let mut start = body_start;
    let mut i = body_start;
    let s = code;
    loop {
        let Some(&b) = s.get(i) else {
            return Err(format!("unterminated column list in CREATE TABLE {table}"));
        };
        match b {
            q @ (b'\'' | b'"' | b'`') => {
                let mut j = i + 1;
                loop {
                    match memchr2(q, b'\\', &s[j..]) {
                        None => return Err(format!("unterminated quote in CREATE TABLE {table}")),
                        Some(k) if s[j + k] == b'\\' && q != b'`' => j += k + 2,
                        Some(k) if s[j + k] == b'\\' => j += k + 1,
                        Some(k) => {
                            j += k + 1;
                            if s.get(j) == Some(&q) {
                                j += 1;
                            } else {
                                break;
                            }
                        }
                    }
                }
                i = j;
                continue;
            }
            b'(' => depth += 1,
            b')' if depth == 0 => {
                items.push(&s[start..i]);
                break;
            }
            b')' => depth -= 1,
            b',' if depth == 0 => {
                items.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let mut declared = Declared::default();
    for item in items {
        let mut c = Cursor { s: item, i: 0 };
        let first = c.peek();
        let name = if first == Some(b'`') {
            c.ident()?
        } else {
            let save = c.i;
            let w = c.word();
            if NOT_COLUMNS
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k.as_bytes()))
            {
                continue;
            }
            c.i = save;
            c.ident()?
        };
        let ty = String::from_utf8_lossy(c.word()).to_ascii_lowercase();
        let upper = item.to_ascii_uppercase();
        let binary = BINARY_TYPES.contains(&ty.as_str())
            || upper.windows(20).any(|w| w == b"CHARACTER SET BINARY");
        declared.columns.push(name);
        declared.binary.push(binary);
    }
    Ok(Some((table, declared)))
}

/// What a statement is, once its first words are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Insert,
    CreateTable,
    /// The client command `DELIMITER x`, a line of its own.
    Delimiter,
    Other,
}

/// Where the first code byte of `stmt` is, past white space and comments (not
/// `/*!…*/`, which is code); `None` while only white space and comments came.
fn skip_trivia(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if rest[0].is_ascii_whitespace() {
            i += 1;
        } else if rest[0] == b'#'
            || (rest.starts_with(b"--") && rest.get(2).is_some_and(|c| c.is_ascii_whitespace()))
        {
            i += memchr(b'\n', rest)? + 1;
        } else if rest.starts_with(b"/*") && !rest.starts_with(b"/*!") && !rest.starts_with(b"/*M!")
        {
            i += 2 + rest[2..].windows(2).position(|w| w == b"*/")? + 2;
        } else if rest == b"-" || rest == b"--" || rest == b"/" {
            return None; // may still become a comment
        } else {
            return Some(i);
        }
    }
    None
}

/// The statement kind from its code, or `None` if more text is needed to know.
fn kind_of(code: &[u8]) -> Option<Kind> {
    let word_end = |s: &[u8]| {
        s.iter()
            .take_while(|b| b.is_ascii_alphabetic() || **b == b'_')
            .count()
    };
    let n = word_end(code);
    if n == code.len() {
        return None;
    }
    let first = &code[..n];
    if first.eq_ignore_ascii_case(b"DELIMITER") && code[n].is_ascii_whitespace() {
        return Some(Kind::Delimiter);
    }
    if first.eq_ignore_ascii_case(b"INSERT") || first.eq_ignore_ascii_case(b"REPLACE") {
        return Some(Kind::Insert);
    }
    if !first.eq_ignore_ascii_case(b"CREATE") {
        return Some(Kind::Other);
    }
    let mut rest = &code[n..];
    loop {
        let trimmed = rest.trim_ascii_start();
        let n = word_end(trimmed);
        if n == trimmed.len() {
            return None;
        }
        let w = &trimmed[..n];
        if w.eq_ignore_ascii_case(b"TABLE") {
            return Some(Kind::CreateTable);
        }
        if !(w.eq_ignore_ascii_case(b"OR")
            || w.eq_ignore_ascii_case(b"REPLACE")
            || w.eq_ignore_ascii_case(b"TEMPORARY"))
        {
            return Some(Kind::Other);
        }
        rest = &trimmed[n..];
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    Code,
    /// Inside a quote: `'`, `"` or `` ` ``.
    Quote(u8),
    LineComment,
    BlockComment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// SQL text outside row data.
    Sql,
    /// Before a tuple's `(`.
    Expect,
    /// Inside a tuple: parenthesis depth, open quote (0: none), after a backslash.
    Tuple { depth: u32, quote: u8, escape: bool },
    /// After a tuple's `)`: `,` or the delimiter.
    After,
}

/// One table of the dump: what its rows are, and what they added up to.
struct Table {
    info: TableInfo,
    binary: Vec<bool>,
    acc: RowAccumulator,
    begun: bool,
}

/// The table whose rows are streaming, as the transform sees it.
struct Active {
    index: usize,
    rewrite: bool,
    mask: Option<Vec<bool>>,
}

/// Applies a [`RowTransform`] to MySQL dump text: every piece is copied as it is,
/// except the rows of the tables the transform rewrites, which are decoded,
/// transformed and written back. Counts and checksums every row it writes.
///
/// Feed it the dump in chunks of any size; take the output as it grows. Memory is
/// bounded by one tuple and by the longest statement other than row data.
pub struct MysqlRewriter<'t> {
    transform: &'t mut dyn RowTransform,
    keep_output: bool,
    out: Vec<u8>,
    /// Line of the start of `stmt` (or of the current tuple), from 1.
    line: u64,
    delimiter: Vec<u8>,
    phase: Phase,
    /// The statement being read (SQL phase): its bytes with the white space and
    /// comments before it.
    stmt: Vec<u8>,
    lex: Lex,
    escape: bool,
    /// Where in `stmt` the current run of code bytes starts (comments and quotes
    /// end a run: a delimiter or comment opener must lie within one run).
    code_run: usize,
    comment_start: usize,
    kind: Option<Kind>,
    depth: u32,
    /// The tuple being read, from `(` to `)`.
    tuple: Vec<u8>,
    /// Bytes after a tuple that may be the start of the delimiter.
    sep: Vec<u8>,
    /// What of the current INSERT waits on the tuples kept.
    hold: Hold,
    tables: Vec<Table>,
    by_name: HashMap<String, usize>,
    declared: HashMap<String, Declared>,
    active: Option<Active>,
    spans: Vec<(usize, usize)>,
    fields: Vec<Option<Vec<u8>>>,
    originals: Vec<Option<Vec<u8>>>,
    literals: Vec<Literal>,
}

const OUT_CAPACITY: usize = crate::pipeline::CHUNK + 4096;

/// A transform may leave tuples out ([`RowTransform::drop_row`]): the bytes between two
/// tuples wait for the tuple after them, and an INSERT waits for its first kept tuple.
#[derive(Default)]
struct Hold {
    /// The bytes between two tuples (`,` and white space).
    between: Vec<u8>,
    /// Where the current INSERT starts in the output while none of its tuples was kept:
    /// not taken by [`MysqlRewriter::take_output`], and removed if none is (an INSERT
    /// with no tuple is not SQL).
    held: Option<usize>,
    /// Whether a tuple of the current INSERT was written.
    kept_any: bool,
}

impl Hold {
    /// A tuple is kept: the bytes before it go out (not before the first), and the
    /// INSERT is no longer held.
    fn keep(&mut self, out: &mut Vec<u8>) {
        if self.kept_any {
            out.extend_from_slice(&self.between);
        }
        self.between.clear();
        self.kept_any = true;
        self.held = None;
    }
}

impl<'t> MysqlRewriter<'t> {
    pub fn new(transform: &'t mut dyn RowTransform) -> Self {
        MysqlRewriter {
            transform,
            keep_output: true,
            out: Vec::with_capacity(OUT_CAPACITY),
            line: 1,
            delimiter: b";".to_vec(),
            phase: Phase::Sql,
            stmt: Vec::new(),
            lex: Lex::Code,
            escape: false,
            code_run: 0,
            comment_start: 0,
            kind: None,
            depth: 0,
            tuple: Vec::new(),
            sep: Vec::new(),
            hold: Hold::default(),
            tables: Vec::new(),
            by_name: HashMap::new(),
            declared: HashMap::new(),
            active: None,
            spans: Vec::new(),
            fields: Vec::new(),
            originals: Vec::new(),
            literals: Vec::new(),
        }
    }

    /// A rewriter that only counts and checksums (a restore checking the text it
    /// loads): it keeps no output.
    pub fn watching(transform: &'t mut dyn RowTransform) -> Self {
        MysqlRewriter {
            keep_output: false,
            out: Vec::new(),
            ..Self::new(transform)
        }
    }

    /// Parses a chunk. Output produced so far is in [`Self::take_output`].
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), DumpError> {
        let mut i = 0;
        while i < chunk.len() {
            i = match self.phase {
                Phase::Sql => self.sql(chunk, i)?,
                _ => self.rows(chunk, i)?,
            };
        }
        Ok(())
    }

    /// Bytes of output waiting to be taken.
    pub fn output_len(&self) -> usize {
        self.hold.held.unwrap_or(self.out.len())
    }

    /// Takes the output produced so far (up to an INSERT none of whose tuples is kept yet).
    pub fn take_output(&mut self) -> Vec<u8> {
        match self.hold.held {
            Some(at) => {
                let rest = self.out.split_off(at);
                self.hold.held = Some(0);
                std::mem::replace(&mut self.out, rest)
            }
            None => std::mem::replace(&mut self.out, Vec::with_capacity(OUT_CAPACITY)),
        }
    }

    /// Ends the dump: returns the last output and the stats of every table, in
    /// dump order, as written.
    pub fn finish(mut self) -> Result<(Vec<u8>, DumpStats), DumpError> {
        if self.phase != Phase::Sql {
            return Err(DumpError::Truncated {
                table: self.active_name(),
            });
        }
        if matches!(self.lex, Lex::Quote(_) | Lex::BlockComment) {
            return Err(DumpError::Syntax {
                line: self.line,
                message: "the dump ends inside a quoted string or a comment: it is truncated"
                    .into(),
            });
        }
        self.emit_stmt();
        // Tables without rows are offered to the transform too (a policy that
        // misses a column fails the same way whether the table is empty or not).
        for t in &mut self.tables {
            if !t.begun {
                t.begun = true;
                self.transform
                    .begin_table(&t.info)
                    .map_err(|source| DumpError::Transform {
                        table: t.info.qualified(),
                        row: 0,
                        source,
                    })?;
            }
        }
        let stats = DumpStats {
            tables: self.tables.iter().map(|t| t.acc.finish(&t.info)).collect(),
        };
        Ok((self.out, stats))
    }

    fn active_name(&self) -> String {
        self.active
            .as_ref()
            .map(|a| self.tables[a.index].info.qualified())
            .unwrap_or_default()
    }

    fn emit_stmt(&mut self) {
        self.line += memchr::memchr_iter(b'\n', &self.stmt).count() as u64;
        if self.keep_output {
            self.out.extend_from_slice(&self.stmt);
        }
        self.stmt.clear();
        self.lex = Lex::Code;
        self.escape = false;
        self.code_run = 0;
        self.kind = None;
        self.depth = 0;
    }

    fn syntax(&self, offset_in_stmt: usize, message: String) -> DumpError {
        let before = &self.stmt[..offset_in_stmt.min(self.stmt.len())];
        DumpError::Syntax {
            line: self.line + memchr::memchr_iter(b'\n', before).count() as u64,
            message,
        }
    }

    fn classify(&mut self) -> Option<(Kind, usize)> {
        let start = skip_trivia(&self.stmt)?;
        if let Some(k) = self.kind {
            return Some((k, start));
        }
        let k = kind_of(&self.stmt[start..])?;
        self.kind = Some(k);
        Some((k, start))
    }

    /// SQL text from `chunk[i]`; returns where it stopped (the end of the chunk,
    /// or the start of row data).
    fn sql(&mut self, chunk: &[u8], mut i: usize) -> Result<usize, DumpError> {
        while i < chunk.len() {
            match self.lex {
                Lex::Quote(q) => {
                    if self.escape {
                        self.stmt.push(chunk[i]);
                        self.escape = false;
                        i += 1;
                        continue;
                    }
                    let rest = &chunk[i..];
                    let found = if q == b'`' {
                        memchr(q, rest)
                    } else {
                        memchr2(q, b'\\', rest)
                    };
                    match found {
                        None => {
                            self.stmt.extend_from_slice(rest);
                            return Ok(chunk.len());
                        }
                        Some(k) => {
                            self.stmt.extend_from_slice(&rest[..=k]);
                            i += k + 1;
                            if rest[k] == b'\\' {
                                self.escape = true;
                            } else {
                                self.lex = Lex::Code;
                                self.code_run = self.stmt.len();
                            }
                        }
                    }
                }
                Lex::LineComment => match memchr(b'\n', &chunk[i..]) {
                    None => {
                        self.stmt.extend_from_slice(&chunk[i..]);
                        return Ok(chunk.len());
                    }
                    Some(k) => {
                        self.stmt.extend_from_slice(&chunk[i..i + k]);
                        i += k;
                        self.lex = Lex::Code;
                        self.code_run = self.stmt.len();
                        // The newline itself is read as code (it may end a DELIMITER line).
                    }
                },
                Lex::BlockComment => match memchr(b'/', &chunk[i..]) {
                    None => {
                        self.stmt.extend_from_slice(&chunk[i..]);
                        return Ok(chunk.len());
                    }
                    Some(k) => {
                        self.stmt.extend_from_slice(&chunk[i..=i + k]);
                        i += k + 1;
                        let n = self.stmt.len();
                        if n >= self.comment_start + 4 && self.stmt[n - 2] == b'*' {
                            self.lex = Lex::Code;
                            self.code_run = n;
                        }
                    }
                },
                Lex::Code => {
                    let b = chunk[i];
                    i += 1;
                    self.stmt.push(b);
                    let n = self.stmt.len();
                    match b {
                        b'\'' | b'"' | b'`' => self.lex = Lex::Quote(b),
                        b'#' => self.lex = Lex::LineComment,
                        b'*' if n >= self.code_run + 2 && self.stmt[n - 2] == b'/' => {
                            self.lex = Lex::BlockComment;
                            self.comment_start = n - 2;
                        }
                        // `--` and a space starts a comment (`--` and a newline is
                        // an empty one, already over).
                        b' ' | b'\t' | b'\r'
                            if n >= self.code_run + 3 && &self.stmt[n - 3..n - 1] == b"--" =>
                        {
                            self.lex = Lex::LineComment;
                        }
                        b'(' if self.depth == 0 && self.values_paren() => {
                            self.stmt.pop();
                            self.start_rows()?;
                            return Ok(i);
                        }
                        b'(' => self.depth += 1,
                        b')' => self.depth = self.depth.saturating_sub(1),
                        _ => {}
                    }
                    if b == b'\n' && self.lex == Lex::Code {
                        if let Some((Kind::Delimiter, start)) = self.classify() {
                            let line = &self.stmt[start + "DELIMITER".len()..];
                            let new = line.trim_ascii();
                            if new.is_empty() {
                                return Err(
                                    self.syntax(start, "DELIMITER without a delimiter".into())
                                );
                            }
                            self.delimiter = new.to_vec();
                            self.emit_stmt();
                        }
                    } else if self.lex == Lex::Code
                        && n >= self.code_run + self.delimiter.len()
                        && self.stmt.ends_with(&self.delimiter)
                    {
                        match self.classify() {
                            Some((Kind::Delimiter, _)) => {}
                            Some((Kind::CreateTable, start)) => {
                                self.create_table(start)?;
                                self.emit_stmt();
                            }
                            _ => self.emit_stmt(),
                        }
                    }
                }
            }
        }
        Ok(i)
    }

    /// Whether the `(` just read opens the values of an INSERT.
    fn values_paren(&mut self) -> bool {
        if !matches!(self.classify(), Some((Kind::Insert, _))) {
            return false;
        }
        let before = self.stmt[..self.stmt.len() - 1].trim_ascii_end();
        [&b"VALUES"[..], b"VALUE"].iter().any(|w| {
            before.len() > w.len()
                && before[before.len() - w.len()..].eq_ignore_ascii_case(w)
                && before[before.len() - w.len() - 1].is_ascii_whitespace()
        })
    }

    fn create_table(&mut self, start: usize) -> Result<(), DumpError> {
        let parsed = parse_create_table(&self.stmt[start..]).map_err(|m| self.syntax(start, m))?;
        if let Some((name, declared)) = parsed {
            if self
                .active
                .as_ref()
                .is_some_and(|a| self.tables[a.index].info.name == name)
            {
                self.active = None;
            }
            match self.by_name.get(&name) {
                Some(&i) => {
                    let t = &mut self.tables[i];
                    if t.acc.rows() == 0 {
                        t.info.columns.clone_from(&declared.columns);
                        t.binary.clone_from(&declared.binary);
                    }
                }
                None => {
                    self.by_name.insert(name.clone(), self.tables.len());
                    self.tables.push(Table {
                        info: TableInfo {
                            schema: String::new(),
                            name: name.clone(),
                            columns: declared.columns.clone(),
                        },
                        binary: declared.binary.clone(),
                        acc: RowAccumulator::default(),
                        begun: false,
                    });
                }
            }
            self.declared.insert(name, declared);
        }
        Ok(())
    }

    /// The INSERT header is complete in `stmt`: resolve its table, offer it to the
    /// transform, copy the header out and start reading tuples.
    fn start_rows(&mut self) -> Result<(), DumpError> {
        let start = skip_trivia(&self.stmt).unwrap_or(0);
        let (name, listed) =
            parse_insert_header(&self.stmt[start..]).map_err(|m| self.syntax(start, m))?;
        let declared = self.declared.get(&name);
        let (columns, binary) = match listed {
            Some(cols) => {
                let binary = cols
                    .iter()
                    .map(|c| declared.is_some_and(|d| d.binary_of(c)))
                    .collect();
                (cols, binary)
            }
            None => match declared {
                Some(d) => (d.columns.clone(), d.binary.clone()),
                None => {
                    return Err(self.syntax(
                        start,
                        format!(
                            "INSERT INTO {} lists no columns and no CREATE TABLE of it came \
                             before: dump with --complete-insert (as coffre's mysql source does) \
                             or with the table definitions",
                            quote_mysql_ident(&name)
                        ),
                    ));
                }
            },
        };
        let index = match self.by_name.get(&name) {
            Some(&i) => i,
            None => {
                self.by_name.insert(name.clone(), self.tables.len());
                self.tables.push(Table {
                    info: TableInfo {
                        schema: String::new(),
                        name: name.clone(),
                        columns: columns.clone(),
                    },
                    binary: binary.clone(),
                    acc: RowAccumulator::default(),
                    begun: false,
                });
                self.tables.len() - 1
            }
        };
        let table = &mut self.tables[index];
        if table.info.columns != columns {
            if table.acc.rows() > 0 {
                return Err(self.syntax(
                    start,
                    format!(
                        "INSERT INTO {} lists columns ({}) but earlier rows of it had ({})",
                        quote_mysql_ident(&name),
                        columns.join(", "),
                        self.tables[index].info.columns.join(", ")
                    ),
                ));
            }
            table.info.columns = columns;
            table.binary = binary;
            self.active = None;
        }
        if self.active.as_ref().map(|a| a.index) != Some(index) {
            let table = &mut self.tables[index];
            table.begun = true;
            let rewrite =
                self.transform
                    .begin_table(&table.info)
                    .map_err(|source| DumpError::Transform {
                        table: table.info.qualified(),
                        row: 0,
                        source,
                    })?;
            let mask = self.transform.column_mask().map(<[bool]>::to_vec);
            self.active = Some(Active {
                index,
                rewrite,
                mask,
            });
        }
        let header_at = self.out.len();
        self.emit_stmt();
        if self.keep_output {
            self.hold.held = Some(header_at);
            self.hold.kept_any = false;
            self.hold.between.clear();
        }
        self.tuple.clear();
        self.tuple.push(b'(');
        self.phase = Phase::Tuple {
            depth: 1,
            quote: 0,
            escape: false,
        };
        Ok(())
    }

    /// Row data from `chunk[i]`; returns where it stopped.
    fn rows(&mut self, chunk: &[u8], mut i: usize) -> Result<usize, DumpError> {
        while i < chunk.len() {
            match self.phase {
                Phase::Sql => return Ok(i),
                Phase::Tuple {
                    mut depth,
                    mut quote,
                    mut escape,
                } => {
                    let mut done = false;
                    while i < chunk.len() {
                        if escape {
                            self.tuple.push(chunk[i]);
                            i += 1;
                            escape = false;
                        } else if quote != 0 {
                            match memchr2(quote, b'\\', &chunk[i..]) {
                                None => {
                                    self.tuple.extend_from_slice(&chunk[i..]);
                                    i = chunk.len();
                                }
                                Some(k) => {
                                    self.tuple.extend_from_slice(&chunk[i..=i + k]);
                                    if chunk[i + k] == b'\\' {
                                        escape = true;
                                    } else {
                                        quote = 0;
                                    }
                                    i += k + 1;
                                }
                            }
                        } else {
                            let rest = &chunk[i..];
                            let k = rest
                                .iter()
                                .position(|b| matches!(b, b'\'' | b'"' | b'(' | b')'))
                                .unwrap_or(rest.len());
                            self.tuple.extend_from_slice(&rest[..k]);
                            i += k;
                            let Some(&b) = rest.get(k) else { break };
                            self.tuple.push(b);
                            i += 1;
                            match b {
                                b'(' => depth += 1,
                                b')' => {
                                    depth -= 1;
                                    if depth == 0 {
                                        done = true;
                                        break;
                                    }
                                }
                                _ => quote = b,
                            }
                        }
                    }
                    if done {
                        self.tuple_done()?;
                        self.phase = Phase::After;
                    } else {
                        self.phase = Phase::Tuple {
                            depth,
                            quote,
                            escape,
                        };
                    }
                }
                Phase::Expect => {
                    let b = chunk[i];
                    i += 1;
                    if b.is_ascii_whitespace() {
                        self.pass(b);
                    } else if b == b'(' {
                        self.tuple.clear();
                        self.tuple.push(b'(');
                        self.phase = Phase::Tuple {
                            depth: 1,
                            quote: 0,
                            escape: false,
                        };
                    } else {
                        return Err(self.after_error(&[b], "`(` after `,`"));
                    }
                }
                Phase::After => {
                    let b = chunk[i];
                    i += 1;
                    if self.sep.is_empty() && b.is_ascii_whitespace() {
                        self.pass(b);
                    } else if self.sep.is_empty() && b == b',' {
                        self.pass(b);
                        self.phase = Phase::Expect;
                    } else {
                        self.sep.push(b);
                        if self.sep == self.delimiter {
                            if self.keep_output {
                                if self.hold.kept_any {
                                    self.out.extend_from_slice(&self.hold.between);
                                    self.out.extend_from_slice(&self.sep);
                                } else if let Some(at) = self.hold.held {
                                    // Every tuple was left out: so is the INSERT.
                                    self.out.truncate(at);
                                }
                                self.hold.between.clear();
                                self.hold.held = None;
                            }
                            self.sep.clear();
                            self.phase = Phase::Sql;
                        } else if !self.delimiter.starts_with(&self.sep) {
                            let sep = std::mem::take(&mut self.sep);
                            let want =
                                format!("`,` or `{}`", String::from_utf8_lossy(&self.delimiter));
                            return Err(self.after_error(&sep, &want));
                        }
                    }
                }
            }
        }
        Ok(i)
    }

    /// A byte between two tuples: held until the next tuple is kept.
    fn pass(&mut self, b: u8) {
        if b == b'\n' {
            self.line += 1;
        }
        if self.keep_output {
            self.hold.between.push(b);
        }
    }

    fn after_error(&self, found: &[u8], want: &str) -> DumpError {
        let rows = self
            .active
            .as_ref()
            .map(|a| self.tables[a.index].acc.rows())
            .unwrap_or(0);
        DumpError::Syntax {
            line: self.line,
            message: format!(
                "after row {rows} of table {}: expected {want}, found {}",
                self.active_name(),
                shown(found)
            ),
        }
    }

    /// A whole tuple is in `self.tuple`: count it, and rewrite it if asked.
    fn tuple_done(&mut self) -> Result<(), DumpError> {
        let line = self.line;
        self.line += memchr::memchr_iter(b'\n', &self.tuple).count() as u64;
        let Some(active) = self.active.as_ref() else {
            return Ok(());
        };
        let table = &mut self.tables[active.index];
        if !active.rewrite {
            if self.keep_output {
                self.hold.keep(&mut self.out);
                self.out.extend_from_slice(&self.tuple);
            }
            table.acc.add(&self.tuple);
            return Ok(());
        }
        let row = table.acc.rows() + 1;
        let syntax = |message: String| DumpError::Syntax {
            line,
            message: format!("row {row} of table {}: {message}", table.info.qualified()),
        };
        self.spans.clear();
        split_values(&self.tuple, &mut self.spans).map_err(syntax)?;
        if self.spans.len() != table.info.columns.len() {
            return Err(DumpError::FieldCount {
                table: table.info.qualified(),
                row,
                found: self.spans.len(),
                expected: table.info.columns.len(),
            });
        }
        let wanted = |i: usize| active.mask.as_ref().is_none_or(|m| m.get(i) == Some(&true));
        self.fields.clear();
        self.literals.clear();
        for (i, &(a, b)) in self.spans.iter().enumerate() {
            if wanted(i) {
                let (lit, value) = decode_literal(&self.tuple[a..b])
                    .map_err(|e| syntax(format!("column {}: {e}", table.info.columns[i])))?;
                self.literals.push(lit);
                self.fields.push(value);
            } else {
                self.literals.push(Literal::Null);
                self.fields.push(None);
            }
        }
        self.originals.clone_from(&self.fields);
        self.transform
            .transform_row(&table.info, &mut self.fields)
            .map_err(|source| DumpError::Transform {
                table: table.info.qualified(),
                row,
                source,
            })?;
        if self.transform.drop_row() {
            // Left out, with the separator before it.
            self.hold.between.clear();
            return Ok(());
        }
        if self.keep_output {
            self.hold.keep(&mut self.out);
        }
        let start = self.out.len();
        let mut copied = 0;
        for (i, &(a, b)) in self.spans.iter().enumerate() {
            if !wanted(i) || self.fields[i] == self.originals[i] {
                continue;
            }
            self.out.extend_from_slice(&self.tuple[copied..a]);
            push_value(
                self.literals[i],
                table.binary.get(i) == Some(&true),
                self.fields[i].as_deref(),
                &mut self.out,
            );
            copied = b;
        }
        self.out.extend_from_slice(&self.tuple[copied..]);
        table.acc.add(&self.out[start..]);
        if !self.keep_output {
            self.out.truncate(start);
        }
        Ok(())
    }
}

impl super::Rewriter for MysqlRewriter<'_> {
    fn feed(&mut self, chunk: &[u8]) -> Result<(), DumpError> {
        MysqlRewriter::feed(self, chunk)
    }
    fn output_len(&self) -> usize {
        MysqlRewriter::output_len(self)
    }
    fn take_output(&mut self) -> Vec<u8> {
        MysqlRewriter::take_output(self)
    }
    fn finish(self) -> Result<(Vec<u8>, DumpStats), DumpError> {
        MysqlRewriter::finish(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::{Identity, TransformError};

    type Decoded = (Literal, Option<Vec<u8>>);

    fn dec(lit: &str) -> Decoded {
        decode_literal(lit.as_bytes()).unwrap_or_else(|e| panic!("{lit}: {e}"))
    }

    #[test]
    fn every_escape_and_literal_decodes_exactly() {
        let t = |s: &[u8]| (Literal::Text, Some(s.to_vec()));
        let b = |s: &[u8]| (Literal::Binary, Some(s.to_vec()));
        let cases: Vec<(&str, Decoded)> = vec![
            ("NULL", (Literal::Null, None)),
            ("null", (Literal::Null, None)),
            ("'NULL'", t(b"NULL")),
            ("''", t(b"")),
            ("\"\"", t(b"")),
            (r"'\0'", t(b"\0")),
            (r"'\''", t(b"'")),
            (r#"'\"'"#, t(b"\"")),
            (r"'\\'", t(b"\\")),
            (r"'\n'", t(b"\n")),
            (r"'\r'", t(b"\r")),
            (r"'\Z'", t(b"\x1a")),
            (r"'\t\b'", t(b"\t\x08")),
            (r"'\%\_'", t(b"\\%\\_")),
            (r"'\x\q'", t(b"xq")),
            ("'it''s'", t(b"it's")),
            ("\"say \"\"hi\"\"\"", t(b"say \"hi\"")),
            ("'tab\there'", t(b"tab\there")),
            ("'raw\nnewline'", t(b"raw\nnewline")),
            ("'😀 é'", t("😀 é".as_bytes())),
            (r"'C:\\Partage\\x'", t(br"C:\Partage\x")),
            ("'a,b),(c;'", t(b"a,b),(c;")),
            ("_utf8mb4'x'", t(b"x")),
            ("_utf8mb4 'x'", t(b"x")),
            ("0x00FF27", b(&[0, 0xff, 0x27])),
            ("0xabc", b(&[0x0a, 0xbc])),
            ("X'00ff'", b(&[0, 0xff])),
            ("x''", b(b"")),
            ("b'101'", b(&[5])),
            ("B''", b(b"")),
            ("b'100000001'", b(&[1, 1])),
            ("0b11111111", b(&[0xff])),
            ("_binary '\\0\\'x'", b(b"\0'x")),
            ("_binary 0x41", b(b"A")),
            ("_binary X'41'", b(b"A")),
            ("_BINARY'A'", b(b"A")),
            ("0", (Literal::Number, Some(b"0".to_vec()))),
            ("-12", (Literal::Number, Some(b"-12".to_vec()))),
            (
                "0.00000015",
                (Literal::Number, Some(b"0.00000015".to_vec())),
            ),
            ("1.5e-7", (Literal::Number, Some(b"1.5e-7".to_vec()))),
            ("-1E+300", (Literal::Number, Some(b"-1E+300".to_vec()))),
            (".5", (Literal::Number, Some(b".5".to_vec()))),
        ];
        for (lit, want) in cases {
            assert_eq!(dec(lit), want, "{lit}");
        }
    }

    #[test]
    fn anything_else_is_a_clear_error() {
        for (bad, says) in [
            ("", "expected NULL"),
            ("nul", "expected NULL"),
            ("'abc", "unterminated"),
            ("'abc\\'", "unterminated"),
            ("'a' 'b'", "side by side"),
            ("0x", "empty hex"),
            ("0xZZ", "bad hex digit"),
            ("X'abc'", "odd number"),
            ("b'102'", "bad bit"),
            ("_latin1'x'", "unsupported character set"),
            ("_binary NULL", "not a value"),
            ("1.2.3", "expected NULL"),
            ("1e", "expected NULL"),
            ("NOW()", "expected NULL"),
        ] {
            let e = decode_literal(bad.as_bytes()).expect_err(bad);
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn push_quoted_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255u8).collect();
        for v in [
            &all[..],
            b"",
            b"''",
            b"\\",
            b"\\'",
            "😀\t\n".as_bytes(),
            b"NULL",
        ] {
            let mut out = Vec::new();
            push_quoted(v, &mut out);
            let (lit, back) = decode_literal(&out).expect("decode");
            assert_eq!((lit, back.as_deref()), (Literal::Text, Some(v)));
            let mut hex = Vec::new();
            push_hex(v, &mut hex);
            let (_, back) = decode_literal(&hex).expect("decode hex");
            assert_eq!(back.as_deref(), Some(v));
        }
        let mut out = Vec::new();
        push_quoted(b"a\0b'c\"d\\e\nf\rg\x1ah\ti", &mut out);
        assert_eq!(out, br#"'a\0b\'c\"d\\e\nf\rg\Zh	i'"#);
    }

    #[test]
    fn rewritten_values_keep_their_kind() {
        let cases: [(Literal, bool, Option<&[u8]>, &str); 9] = [
            (Literal::Number, false, Some(b"42"), "42"),
            (Literal::Number, false, Some(b"4x"), "'4x'"),
            (Literal::Text, false, Some(b"42"), "'42'"),
            (Literal::Text, false, None, "NULL"),
            (Literal::Binary, false, Some(b"A\0"), "0x4100"),
            (Literal::Text, true, Some(b"A"), "0x41"),
            (Literal::Null, true, Some(b""), "''"),
            (Literal::Null, false, Some(b"x"), "'x'"),
            (Literal::Text, false, Some(b"it's"), r"'it\'s'"),
        ];
        for (lit, binary, v, want) in cases {
            let mut out = Vec::new();
            push_value(lit, binary, v, &mut out);
            assert_eq!(String::from_utf8_lossy(&out), want);
        }
    }

    #[test]
    fn reads_column_lists_of_create_table_and_insert() {
        let ddl = b"CREATE TABLE IF NOT EXISTS `db`.`t``x` (\n  `id` int(11) NOT NULL,\n  \
            `a,b` varchar(10) DEFAULT 'x,''(y' COMMENT 'it\\'s, ok',\n  \
            `pdf` longblob,\n  `c` bit(5) DEFAULT b'0',\n  \
            `d` int(11) GENERATED ALWAYS AS (`id` + 1) VIRTUAL,\n  \
            `e` char(3) CHARACTER SET binary,\n  plain text,\n  \
            PRIMARY KEY (`id`),\n  UNIQUE KEY `u` (`a,b`),\n  KEY `k` (`c`),\n  \
            CONSTRAINT `f` FOREIGN KEY (`id`) REFERENCES `o` (`id`),\n  \
            CONSTRAINT `ck` CHECK (`id` > 0)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;";
        let (name, d) = parse_create_table(ddl).expect("parse").expect("columns");
        assert_eq!(name, "t`x");
        assert_eq!(d.columns, ["id", "a,b", "pdf", "c", "d", "e", "plain"]);
        assert_eq!(d.binary, [false, false, true, true, false, true, false]);
        assert!(
            parse_create_table(b"CREATE TABLE t LIKE u;")
                .expect("like")
                .is_none()
        );
        let (t, cols) =
            parse_insert_header(b"INSERT IGNORE INTO `t` (`a`, `b``c`) VALUES ").expect("header");
        assert_eq!(
            (t.as_str(), cols),
            ("t", Some(vec!["a".into(), "b`c".into()]))
        );
        let (t, cols) = parse_insert_header(b"REPLACE INTO t VALUES").expect("header");
        assert_eq!((t.as_str(), cols), ("t", None));
    }

    /// Upper-cases column `b`; nulls `c` unless it is absent; fails on "boom";
    /// leaves table `kept` alone.
    struct Upper {
        mask: Option<Vec<bool>>,
        seen: Vec<String>,
    }

    impl Upper {
        fn new() -> Self {
            Upper {
                mask: None,
                seen: Vec::new(),
            }
        }
    }

    impl RowTransform for Upper {
        fn begin_table(&mut self, table: &TableInfo) -> Result<bool, TransformError> {
            self.seen.push(table.name.clone());
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
            if fields.len() > 2 {
                fields[2] = None;
            }
            Ok(())
        }
        fn column_mask(&self) -> Option<&[bool]> {
            self.mask.as_deref()
        }
    }

    /// A dump with every trap, as mariadb-dump writes it (one line per tuple).
    const DUMP: &str = "/*M!999999\\- enable the sandbox mode */ \n\
        -- MariaDB dump 10.19\n\
        /*!40101 SET NAMES utf8mb4 */;\n\
        # hash comment with 'quote\n\
        DROP TABLE IF EXISTS `t`;\n\
        CREATE TABLE `t` (\n  `a` varchar(20) DEFAULT 'x;y',\n  `b` text,\n  `c` varbinary(8),\n  PRIMARY KEY (`a`)\n) ENGINE=InnoDB;\n\
        LOCK TABLES `t` WRITE;\n\
        /*!40000 ALTER TABLE `t` DISABLE KEYS */;\n\
        INSERT INTO `t` (`a`, `b`, `c`) VALUES (1,'x\\'y\\\"\\\\\\0\\Z\\r\\n\t 😀),(;',0x00FF27),\n\
        ('NULL',NULL,''),\n(-1.5e-7,'',_binary 'a\\0'),(  'sp' , 'ace' , b'101'  );\n\
        /*!40000 ALTER TABLE `t` ENABLE KEYS */;\n\
        UNLOCK TABLES;\n\
        CREATE TABLE `kept` (`a` text);\n\
        INSERT INTO `kept` VALUES ('secret'),('s2');\n\
        CREATE TABLE `e` (`a` int, `b` int, `c` int);\n\
        /*!50001 CREATE TABLE `v` (`x` int) */;\n\
        DELIMITER ;;\n\
        CREATE PROCEDURE `p`()\nbegin insert into t values (9); select 'a;;b'; end\n;;\n\
        /*!50003 CREATE*/ /*!50003 TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN\n\
        INSERT INTO `kept` VALUES ('no'); END */;;\n\
        DELIMITER ;\n\
        -- the end\n";

    fn rewrite(
        text: &[u8],
        transform: &mut dyn RowTransform,
        piece: usize,
    ) -> (Vec<u8>, DumpStats) {
        let mut r = MysqlRewriter::new(transform);
        let mut out = Vec::new();
        for chunk in text.chunks(piece) {
            r.feed(chunk).expect("feed");
            out.extend(r.take_output());
        }
        let (rest, stats) = r.finish().expect("finish");
        out.extend(rest);
        (out, stats)
    }

    fn split_at(text: &[u8], cut: usize, transform: &mut dyn RowTransform) -> (Vec<u8>, DumpStats) {
        let mut r = MysqlRewriter::new(transform);
        r.feed(&text[..cut]).expect("feed");
        r.feed(&text[cut..]).expect("feed");
        let mut out = r.take_output();
        let (rest, stats) = r.finish().expect("finish");
        out.extend(rest);
        (out, stats)
    }

    fn watched(text: &[u8]) -> DumpStats {
        let mut id = Identity;
        let mut r = MysqlRewriter::watching(&mut id);
        r.feed(text).expect("feed");
        assert_eq!(r.output_len(), 0);
        r.finish().expect("finish").1
    }

    #[test]
    fn identity_gives_the_text_back_and_counts_tuples() {
        let (out, stats) = rewrite(DUMP.as_bytes(), &mut Identity, 1 << 20);
        assert_eq!(String::from_utf8_lossy(&out), DUMP);
        let rows: Vec<(&str, u64, usize)> = stats
            .tables
            .iter()
            .map(|t| (t.name.as_str(), t.rows, t.columns.len()))
            .collect();
        assert_eq!(rows, [("t", 4, 3), ("kept", 2, 1), ("e", 0, 3)]);
        assert_eq!(stats, watched(DUMP.as_bytes()));
        // The checksum is the tuples' own text.
        let mut acc = RowAccumulator::default();
        acc.add(b"('secret')");
        acc.add(b"('s2')");
        assert_eq!(
            stats.tables[1].checksum,
            acc.finish(&TableInfo {
                schema: String::new(),
                name: "kept".into(),
                columns: vec!["a".into()],
            })
            .checksum
        );
    }

    /// Leaves out the rows whose first field is one of `drop`.
    struct Drop {
        drop: Vec<&'static str>,
        dropping: bool,
    }

    impl RowTransform for Drop {
        fn begin_table(&mut self, _t: &TableInfo) -> Result<bool, TransformError> {
            Ok(true)
        }
        fn transform_row(
            &mut self,
            _t: &TableInfo,
            fields: &mut [Option<Vec<u8>>],
        ) -> Result<(), TransformError> {
            let first = fields.first().and_then(|f| f.as_deref()).unwrap_or(b"");
            self.dropping = self.drop.iter().any(|d| d.as_bytes() == first);
            Ok(())
        }
        fn drop_row(&mut self) -> bool {
            std::mem::take(&mut self.dropping)
        }
    }

    #[test]
    fn left_out_tuples_take_their_comma_and_an_emptied_insert_goes_whole() {
        let text = "CREATE TABLE `t` (`a` int);\n\
            INSERT INTO `t` (`a`) VALUES (1),(2),\n(3);\n\
            INSERT INTO `t` (`a`) VALUES (4);\n\
            INSERT INTO `t` (`a`) VALUES (5),(6);\n\
            SELECT 1;\n";
        let want = "CREATE TABLE `t` (`a` int);\n\
            INSERT INTO `t` (`a`) VALUES (2);\n\
            SELECT 1;\n";
        for piece in [1, 2, 5, 4096] {
            let mut d = Drop {
                drop: vec!["1", "3", "4", "5", "6"],
                dropping: false,
            };
            let (out, stats) = rewrite(text.as_bytes(), &mut d, piece);
            assert_eq!(String::from_utf8_lossy(&out), want, "pieces of {piece}");
            assert_eq!(stats.tables[0].rows, 1);
            assert_eq!(stats, watched(&out), "a restore of the output verifies");
        }
        let mut keep_all = Drop {
            drop: Vec::new(),
            dropping: false,
        };
        let (out, _) = rewrite(text.as_bytes(), &mut keep_all, 3);
        assert_eq!(
            String::from_utf8_lossy(&out),
            text,
            "nothing left out: the same text"
        );
    }

    #[test]
    fn every_split_point_gives_the_same_text_and_stats() {
        let text = DUMP.as_bytes();
        let (whole, whole_stats) = rewrite(text, &mut Identity, text.len());
        let (upper_whole, upper_stats) = rewrite(text, &mut Upper::new(), text.len());
        for cut in 0..=text.len() {
            assert_eq!(
                split_at(text, cut, &mut Identity),
                (whole.clone(), whole_stats.clone()),
                "cut {cut}"
            );
            assert_eq!(
                split_at(text, cut, &mut Upper::new()),
                (upper_whole.clone(), upper_stats.clone()),
                "cut {cut}"
            );
        }
        for piece in [1, 2, 3, 7] {
            assert_eq!(
                rewrite(text, &mut Upper::new(), piece),
                (upper_whole.clone(), upper_stats.clone())
            );
        }
    }

    #[test]
    fn rewrites_the_rows_it_is_asked_to_and_a_restore_verifies() {
        let mut upper = Upper::new();
        let (out, stats) = rewrite(DUMP.as_bytes(), &mut upper, 5);
        assert_eq!(upper.seen, ["t", "kept", "e"]);
        let out = String::from_utf8(out).expect("utf8");
        let want = DUMP
            .replace(
                "(1,'x\\'y\\\"\\\\\\0\\Z\\r\\n\t 😀),(;',0x00FF27)",
                "(1,'X\\'Y\\\"\\\\\\0\\Z\\r\\n\t 😀),(;',NULL)",
            )
            .replace("('NULL',NULL,'')", "('NULL',NULL,NULL)")
            .replace("(-1.5e-7,'',_binary 'a\\0')", "(-1.5e-7,'',NULL)")
            .replace("(  'sp' , 'ace' , b'101'  )", "(  'sp' , 'ACE' , NULL  )");
        assert_eq!(out, want);
        assert_eq!(
            stats,
            watched(out.as_bytes()),
            "a restore of the output verifies"
        );
    }

    #[test]
    fn columns_outside_the_mask_are_neither_decoded_nor_touched() {
        let mut upper = Upper::new();
        upper.mask = Some(vec![false, true, false]);
        let (out, stats) = rewrite(DUMP.as_bytes(), &mut upper, 4096);
        let out = String::from_utf8(out).expect("utf8");
        // `c` was nulled by the transform but is outside the mask: written back as is.
        assert!(
            out.contains("(1,'X\\'Y\\\"\\\\\\0\\Z\\r\\n\t 😀),(;',0x00FF27)"),
            "{out}"
        );
        assert!(out.contains("(-1.5e-7,'',_binary 'a\\0')"));
        assert_eq!(stats, watched(out.as_bytes()));
    }

    /// Sets column `b` to bytes that need every escape, and `c` (binary) to bytes.
    struct Traps;

    impl RowTransform for Traps {
        fn begin_table(&mut self, t: &TableInfo) -> Result<bool, TransformError> {
            Ok(t.name == "t")
        }
        fn transform_row(
            &mut self,
            _t: &TableInfo,
            f: &mut [Option<Vec<u8>>],
        ) -> Result<(), TransformError> {
            f[1] = Some(b"\0'\"\\\n\r\x1a\t%_ NULL \xf0\x9f\x98\x80".to_vec());
            f[2] = Some(vec![0, 0x27, 0x5c, 0xff]);
            Ok(())
        }
    }

    #[test]
    fn re_encoded_values_decode_back_to_what_the_transform_wrote() {
        let (out, _) = rewrite(DUMP.as_bytes(), &mut Traps, 4096);
        /// Collects column b and c of every row of t.
        type Pair = (Option<Vec<u8>>, Option<Vec<u8>>);
        struct Collect(Vec<Pair>);
        impl RowTransform for Collect {
            fn begin_table(&mut self, t: &TableInfo) -> Result<bool, TransformError> {
                Ok(t.name == "t")
            }
            fn transform_row(
                &mut self,
                _t: &TableInfo,
                f: &mut [Option<Vec<u8>>],
            ) -> Result<(), TransformError> {
                self.0.push((f[1].clone(), f[2].clone()));
                Ok(())
            }
        }
        let mut collect = Collect(Vec::new());
        let (again, _) = rewrite(&out, &mut collect, 3);
        assert_eq!(again, out, "unchanged values keep their literal");
        assert_eq!(collect.0.len(), 4);
        for (b, c) in &collect.0 {
            assert_eq!(
                b.as_deref(),
                Some(&b"\0'\"\\\n\r\x1a\t%_ NULL \xf0\x9f\x98\x80"[..])
            );
            assert_eq!(c.as_deref(), Some(&[0u8, 0x27, 0x5c, 0xff][..]));
        }
        assert!(String::from_utf8_lossy(&out).contains("0x00275CFF"));
    }

    #[test]
    fn a_long_insert_line_is_read_tuple_by_tuple() {
        let mut text =
            b"CREATE TABLE `big` (`id` int, `s` text, `p` blob);\nINSERT INTO `big` VALUES "
                .to_vec();
        let n = 30_000;
        for i in 0..n {
            if i > 0 {
                text.push(b',');
            }
            text.extend_from_slice(
                format!("({i},'row \\'{i}\\' ,),( ',0x{:04X})", i % 65536).as_bytes(),
            );
        }
        text.extend_from_slice(b";\n");
        assert!(text.len() > 800_000);
        let mut upper = Upper::new();
        let mut r = MysqlRewriter::new(&mut upper);
        let mut out = Vec::new();
        for chunk in text.chunks(64 << 10) {
            r.feed(chunk).expect("feed");
            assert!(r.tuple.capacity() < 4096, "one tuple at a time");
            assert!(r.stmt.capacity() < 4096);
            out.extend(r.take_output());
        }
        let (rest, stats) = r.finish().expect("finish");
        out.extend(rest);
        assert_eq!(stats.tables[0].rows, n);
        assert!(String::from_utf8_lossy(&out).contains("(19999,'ROW \\'19999\\' ,),( ',NULL)"));
        assert_eq!(stats, watched(&out));
    }

    #[test]
    fn bad_rows_and_failing_transforms_name_table_and_row() {
        let head = "CREATE TABLE `t` (`a` text, `b` text, `c` text);\n";
        let cases = [
            (
                "INSERT INTO `t` VALUES ('a','b','c'),('a','b');\n",
                "row 2 of table t has 2 fields",
            ),
            (
                "INSERT INTO `t` VALUES ('a','b',NOW());\n",
                "dump line 2: row 1 of table t: column c: expected NULL",
            ),
            (
                "INSERT INTO `t` VALUES ('boom','b','c');\n",
                "row 1 of table t: boom",
            ),
            (
                "INSERT INTO `t` VALUES ('a','b','c') x;\n",
                "dump line 2: after row 1 of table t: expected `,` or `;`",
            ),
            (
                "INSERT INTO `t` VALUES ('a','b','c'),x;\n",
                "expected `(` after `,`",
            ),
            (
                "INSERT INTO `u` VALUES (1);\n",
                "INSERT INTO `u` lists no columns",
            ),
        ];
        for (rows, says) in cases {
            let text = format!("{head}{rows}");
            let mut upper = Upper::new();
            let mut r = MysqlRewriter::new(&mut upper);
            let e = r
                .feed(text.as_bytes())
                .and_then(|()| r.finish().map(|_| ()))
                .expect_err(rows);
            assert!(e.to_string().contains(says), "{rows}: {e}");
        }
        for cut in [
            "INSERT INTO `t` VALUES ('a','b','c'),('x",
            "INSERT INTO `t` VALUES ('a','b','c')",
        ] {
            let mut id = Identity;
            let mut r = MysqlRewriter::new(&mut id);
            r.feed(format!("{head}{cut}").as_bytes()).expect("feed");
            let e = r.finish().expect_err("truncated");
            assert!(
                matches!(&e, DumpError::Truncated { table } if table == "t"),
                "{e}"
            );
        }
        let mut id = Identity;
        let mut r = MysqlRewriter::new(&mut id);
        r.feed(b"SELECT 'abc").expect("feed");
        let e = r.finish().expect_err("truncated");
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    #[test]
    fn identifiers_are_quoted_with_backticks() {
        assert_eq!(quote_mysql_ident("a`b"), "`a``b`");
    }
}
