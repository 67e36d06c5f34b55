//! `json`: rules applied inside a JSON document at paths.
//!
//! Paths are rooted at the document: `email` is the top-level key, `a.b` a nested
//! key, `items[*].email` the key of every element of an array, `[*]` every element
//! of a top-level array. Keys containing `.`, `[` or `]` cannot be named.
//!
//! - A string leaf at a path gets the path's rule (`null` gives JSON `null`).
//! - A number leaf keeps being a number under `numeric_noise`, `keep` and `null`;
//!   every other rule works on text, so the number's text is transformed and the
//!   result is a string (`hmac`, `phone`, `siret`, …). Booleans and `null` change
//!   only under `null` and `redact`.
//! - An object or array at a path: `null` and `redact` replace it, `json` applies
//!   to it as a nested document, `array` applies its element rule to its string
//!   leaves, `keep` keeps it, any other rule applies to its string leaves; deeper
//!   paths inside it still win.
//! - `others` applies to the string leaves no path reaches (default `keep`).
//!
//! The document is rewritten as it is read, token by token, never built as a tree:
//! the output is compact JSON with the input's key order; duplicate keys are all
//! kept (and all rewritten); numbers no rule touches are copied as written. A
//! number a rule does touch is first written in its canonical form (`1.50` →
//! `1.5`), so that its fake does not depend on how it was typed.

use std::borrow::Cow;

use super::faker::Faker;
use super::{Rule, RuleError};

/// Checks a path's syntax (for policies).
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path: name a key (\"email\"), a nested key (\"a.b\") or \"[*]\"".into());
    }
    let mut off = 0;
    let mut first = true;
    while off < path.len() {
        let rest = &path[off..];
        if let Some(after) = rest.strip_prefix("[*]") {
            off = path.len() - after.len();
        } else if rest.starts_with('[') {
            return Err("only \"[*]\" (every element) may follow a key in brackets".into());
        } else {
            if !first && !path[..off].ends_with('.') {
                return Err("a key must follow \".\"".into());
            }
            let end = rest.find(['.', '[', ']']).unwrap_or(rest.len());
            if end == 0 {
                return Err("empty key (two dots in a row, or a leading or trailing dot?)".into());
            }
            off += end;
        }
        first = false;
        if path[off..].starts_with('.') {
            off += 1;
            if off == path.len() {
                return Err("trailing \".\"".into());
            }
        } else if path[off..].starts_with(']') {
            return Err("unbalanced \"]\"".into());
        }
    }
    Ok(())
}

/// One step of a concrete path inside a document.
#[derive(Clone, Copy)]
enum Step<'k> {
    Key(&'k str),
    Index,
}

/// The offset in `pattern` after matching `step` at `off`, if it matches.
fn advance(pattern: &str, off: usize, step: Step<'_>) -> Option<usize> {
    let rest = pattern.get(off..)?;
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    let consumed = pattern.len() - rest.len();
    match step {
        Step::Index => rest.strip_prefix("[*]").map(|r| pattern.len() - r.len()),
        Step::Key(k) => {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            (end > 0 && &rest[..end] == k).then_some(consumed + end)
        }
    }
}

/// Deepest nesting accepted, as serde_json's default.
const MAX_DEPTH: usize = 128;

/// The `json` rule on a whole value.
pub(crate) fn apply(
    faker: &mut Faker,
    paths: &[(String, Rule)],
    others: &Rule,
    value: &str,
) -> Result<String, RuleError> {
    let mut rw = Rewriter::new(faker, value);
    let done = if paths.is_empty() && *others == Rule::Keep {
        rw.value(Op::Skip).and_then(|()| rw.end()) // only checked
    } else {
        rw.document(paths, others).and_then(|()| rw.end())
    };
    match done {
        Ok(()) if paths.is_empty() && *others == Rule::Keep => Ok(value.to_owned()),
        Ok(()) => Ok(rw.out),
        Err(Fail::Syntax(m)) => Err(RuleError::NotJson(m)),
        Err(Fail::Rule(e)) => Err(e),
    }
}

/// The `array` rule on a JSON array: `element` applies to each element (to an
/// element's string leaves when it is an object), nested arrays element-wise, and
/// `null` elements stay `null`. A `keep` element returns the value unchanged.
pub(crate) fn apply_elements(
    faker: &mut Faker,
    element: &Rule,
    value: &str,
) -> Result<String, RuleError> {
    let mut rw = Rewriter::new(faker, value);
    let done = match rw.peek() {
        Some(b'[') if *element == Rule::Keep => rw.value(Op::Skip).and_then(|()| rw.end()),
        Some(b'[') => rw.elements(element, 0).and_then(|()| rw.end()),
        _ => Err(Fail::Syntax("not an array".into())),
    };
    match done {
        Ok(()) if *element == Rule::Keep => Ok(value.to_owned()),
        Ok(()) => Ok(rw.out),
        Err(Fail::Syntax(m)) => Err(RuleError::NotArray(m)),
        Err(Fail::Rule(e)) => Err(e),
    }
}

/// Why a rewrite stopped: the text is not JSON, or a rule failed on a leaf.
enum Fail {
    Syntax(String),
    Rule(RuleError),
}

impl From<RuleError> for Fail {
    fn from(e: RuleError) -> Self {
        Fail::Rule(e)
    }
}

/// What to do with the next value of the input.
#[derive(Clone, Copy)]
enum Op<'r> {
    /// Copy it (compacted).
    Copy,
    /// Read it and write nothing (a value replaced as a whole).
    Skip,
    /// Visit its children: `active` are the path patterns (index into `paths`,
    /// offset) that match the path so far; `default` is the rule of string leaves no
    /// path reaches.
    Walk {
        paths: &'r [(String, Rule)],
        active: &'r [(usize, usize)],
        default: &'r Rule,
    },
    /// Apply a rule matched by a path (or an array element's rule) to it.
    Apply(&'r Rule),
}

/// Reads one JSON text and writes its rewrite.
struct Rewriter<'f, 'v> {
    faker: &'f mut Faker,
    src: &'v str,
    pos: usize,
    out: String,
    depth: usize,
}

impl<'f, 'v> Rewriter<'f, 'v> {
    fn new(faker: &'f mut Faker, src: &'v str) -> Self {
        Rewriter {
            faker,
            src,
            pos: 0,
            out: String::with_capacity(src.len() + 16),
            depth: 0,
        }
    }

    fn syntax(&self, what: &str) -> Fail {
        Fail::Syntax(format!("{what} at byte {}", self.pos))
    }

    /// The next byte after white space, not consumed.
    fn peek(&mut self) -> Option<u8> {
        let b = self.src.as_bytes();
        while self.pos < b.len() && matches!(b[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        b.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), Fail> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax(&format!("expected '{}'", byte as char)))
        }
    }

    /// Only white space may follow the document.
    fn end(&mut self) -> Result<(), Fail> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.syntax("trailing characters")),
        }
    }

    /// A whole document under a `json` rule's paths.
    fn document(&mut self, paths: &[(String, Rule)], others: &Rule) -> Result<(), Fail> {
        let active: Vec<(usize, usize)> = (0..paths.len()).map(|i| (i, 0)).collect();
        self.value(Op::Walk {
            paths,
            active: &active,
            default: others,
        })
    }

    /// Reads the next value and writes it as `op` says.
    fn value(&mut self, op: Op<'_>) -> Result<(), Fail> {
        match self.peek() {
            Some(b'{' | b'[') => match op {
                Op::Apply(Rule::Keep) => self.container(Op::Copy),
                Op::Apply(Rule::Null) => {
                    self.container(Op::Skip)?;
                    self.out.push_str("null");
                    Ok(())
                }
                Op::Apply(Rule::Redact { text }) => {
                    self.container(Op::Skip)?;
                    write_string(&mut self.out, text);
                    Ok(())
                }
                Op::Apply(Rule::Json { paths, others }) => self.document(paths, others),
                op => self.container(op),
            },
            Some(b'"') => {
                let raw = self.string_token()?;
                self.string_leaf(op, raw)
            }
            Some(_) => {
                let token = self.scalar_token()?;
                self.scalar_leaf(op, token)
            }
            None => Err(self.syntax("unexpected end")),
        }
    }

    /// An object or an array; `op` is `Copy`, `Skip`, `Walk`, or `Apply` of a rule
    /// that reaches string leaves.
    fn container(&mut self, op: Op<'_>) -> Result<(), Fail> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.syntax(&format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let emit = !matches!(op, Op::Skip);
        let object = self.src.as_bytes()[self.pos] == b'{';
        let close = if object { b'}' } else { b']' };
        self.pos += 1;
        if emit {
            self.out.push(if object { '{' } else { '[' });
        }
        if self.peek() == Some(close) {
            self.pos += 1;
        } else {
            loop {
                let key = if object {
                    let raw = self.string_token()?;
                    self.expect(b':')?;
                    if emit {
                        self.out.push_str(raw);
                        self.out.push(':');
                    }
                    Some(raw)
                } else {
                    None
                };
                match op {
                    Op::Copy | Op::Skip => self.value(op)?,
                    // Every leaf takes the rule: a walk that no path can match.
                    Op::Apply(rule) => self.value(Op::Walk {
                        paths: &[],
                        active: &[],
                        default: match rule {
                            Rule::Array { element } => element,
                            rule => rule,
                        },
                    })?,
                    Op::Walk {
                        paths,
                        active,
                        default,
                    } => {
                        let decoded;
                        let step = match key {
                            Some(raw) => {
                                decoded = decode(raw)?;
                                Step::Key(&decoded)
                            }
                            None => Step::Index,
                        };
                        self.child(paths, active, step, default)?;
                    }
                }
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if emit {
                            self.out.push(',');
                        }
                    }
                    Some(b) if b == close => {
                        self.pos += 1;
                        break;
                    }
                    _ => {
                        return Err(self.syntax(if object {
                            "expected ',' or '}'"
                        } else {
                            "expected ',' or ']'"
                        }));
                    }
                }
            }
        }
        if emit {
            self.out.push(close as char);
        }
        self.depth -= 1;
        Ok(())
    }

    /// The member or element reached by `step` from a node walked with `active`.
    fn child(
        &mut self,
        paths: &[(String, Rule)],
        active: &[(usize, usize)],
        step: Step<'_>,
        default: &Rule,
    ) -> Result<(), Fail> {
        let mut next = Vec::new();
        let mut matched: Option<&Rule> = None;
        for &(i, off) in active {
            let (pattern, rule) = &paths[i];
            if let Some(off) = advance(pattern, off, step) {
                if off == pattern.len() {
                    matched = Some(rule);
                } else {
                    next.push((i, off));
                }
            }
        }
        let is_container = matches!(self.peek(), Some(b'{' | b'['));
        let walk = |default| Op::Walk {
            paths,
            active: &next,
            default,
        };
        let op = match matched {
            None if is_container && next.is_empty() && *default == Rule::Keep => Op::Copy,
            None => walk(default),
            Some(rule) if !is_container => Op::Apply(rule),
            Some(rule) => match rule {
                Rule::Null | Rule::Redact { .. } | Rule::Json { .. } => Op::Apply(rule),
                Rule::Array { element } => walk(element),
                rule => walk(rule),
            },
        };
        self.value(op)
    }

    /// Elements of a JSON array under the `array` rule (see [`apply_elements`]).
    fn elements(&mut self, element: &Rule, depth: usize) -> Result<(), Fail> {
        if depth >= MAX_DEPTH {
            return Err(self.syntax(&format!("nested deeper than {MAX_DEPTH} levels")));
        }
        self.expect(b'[')?;
        self.out.push('[');
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                match self.peek() {
                    Some(b'[') => self.elements(element, depth + 1)?,
                    Some(b'n') => self.value(Op::Copy)?,
                    _ => self.value(Op::Apply(element))?,
                }
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.out.push(',');
                    }
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.syntax("expected ',' or ']'")),
                }
            }
        }
        self.out.push(']');
        Ok(())
    }

    /// A string, given as its raw token (quotes included).
    fn string_leaf(&mut self, op: Op<'_>, raw: &str) -> Result<(), Fail> {
        let rule = match op {
            Op::Copy => {
                self.out.push_str(raw);
                return Ok(());
            }
            Op::Skip => return Ok(()),
            Op::Walk { default, .. } => default,
            Op::Apply(rule) => rule,
        };
        match rule {
            Rule::Keep => self.out.push_str(raw),
            Rule::Null => self.out.push_str("null"),
            Rule::Redact { text } => write_string(&mut self.out, text),
            Rule::Json { paths, others } => {
                // A document stored as a JSON string.
                let inner = apply(self.faker, paths, others, &decode(raw)?)?;
                write_string(&mut self.out, &inner);
            }
            rule => {
                let text = decode(raw)?;
                match self.faker.apply(rule, &text, false)? {
                    Some(t) => write_string(&mut self.out, &t),
                    None => self.out.push_str("null"),
                }
            }
        }
        Ok(())
    }

    /// A number, `true`, `false` or `null`. Only a rule a path matched changes one:
    /// `null` and `redact` replace any; other rules rewrite numbers (see the module
    /// documentation).
    fn scalar_leaf(&mut self, op: Op<'_>, token: &str) -> Result<(), Fail> {
        let rule = match op {
            Op::Apply(rule) if !matches!(rule, Rule::Keep | Rule::Json { .. }) => rule,
            Op::Skip => return Ok(()),
            _ => {
                self.out.push_str(token);
                return Ok(());
            }
        };
        match rule {
            Rule::Null => self.out.push_str("null"),
            Rule::Redact { text } => write_string(&mut self.out, text),
            _ if !token.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) => {
                self.out.push_str(token);
            }
            rule => {
                let canonical = canonical_number(token).ok_or_else(|| self.syntax("bad number"))?;
                match (rule, self.faker.apply(rule, &canonical, false)?) {
                    (_, None) => self.out.push_str("null"),
                    (Rule::NumericNoise { .. }, Some(t)) => match canonical_number(&t) {
                        Some(n) => self.out.push_str(&n),
                        None => write_string(&mut self.out, &t),
                    },
                    (_, Some(t)) => write_string(&mut self.out, &t),
                }
            }
        }
        Ok(())
    }

    /// The raw token of the string starting here (quotes included), checked.
    fn string_token(&mut self) -> Result<&'v str, Fail> {
        if self.peek() != Some(b'"') {
            return Err(self.syntax("expected a string"));
        }
        let b = self.src.as_bytes();
        let start = self.pos;
        let mut i = start + 1;
        loop {
            match b.get(i) {
                None => {
                    self.pos = i;
                    return Err(self.syntax("unterminated string"));
                }
                Some(b'"') => break,
                Some(b'\\') => match b.get(i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                    Some(b'u')
                        if b.len() >= i + 6
                            && b[i + 2..i + 6].iter().all(u8::is_ascii_hexdigit) =>
                    {
                        i += 6
                    }
                    _ => {
                        self.pos = i;
                        return Err(self.syntax("invalid escape"));
                    }
                },
                Some(&c) if c < 0x20 => {
                    self.pos = i;
                    return Err(self.syntax("control character in a string"));
                }
                Some(_) => i += 1,
            }
        }
        self.pos = i + 1;
        Ok(&self.src[start..i + 1])
    }

    /// A number, `true`, `false` or `null`, checked.
    fn scalar_token(&mut self) -> Result<&'v str, Fail> {
        let b = self.src.as_bytes();
        let start = self.pos;
        for word in ["true", "false", "null"] {
            if self.src[start..].starts_with(word) {
                self.pos += word.len();
                return Ok(word);
            }
        }
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        let digits = |i: &mut usize| {
            let s = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > s
        };
        let int_start = i;
        if !digits(&mut i) || (b[int_start] == b'0' && i - int_start > 1) {
            self.pos = int_start;
            return Err(self.syntax("expected a value"));
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                self.pos = i;
                return Err(self.syntax("expected a digit after '.'"));
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digits(&mut i) {
                self.pos = i;
                return Err(self.syntax("expected a digit in the exponent"));
            }
        }
        self.pos = i;
        Ok(&self.src[start..i])
    }
}

/// The text of a checked string token.
fn decode(raw: &str) -> Result<Cow<'_, str>, Fail> {
    let inner = &raw[1..raw.len() - 1];
    if !inner.contains('\\') {
        return Ok(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(raw)
        .map(Cow::Owned)
        .map_err(|e| Fail::Syntax(format!("{e} in string {raw}")))
}

/// A JSON number in serde_json's canonical form (`1.50` → `1.5`, `1e3` → `1000.0`).
fn canonical_number(text: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Number>(text)
        .ok()
        .map(|n| n.to_string())
}

/// `s` as a JSON string: `"` and `\` escaped, control characters as `\n`, `\t`…
/// or `\u00XX`, the rest as UTF-8.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut copied = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..0x20 => "",
            _ => continue,
        };
        out.push_str(&s[copied..i]);
        if esc.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(esc);
        }
        copied = i + 1;
    }
    out.push_str(&s[copied..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::super::Locale;
    use super::*;
    use serde_json::{Value, json};

    /// The tree-based rewrite this module replaced (serde_json `Value`s), kept as
    /// the oracle of the streaming one: both must give the same documents.
    mod reference {
        use serde_json::Value;

        use super::super::super::faker::Faker;
        use super::super::super::{Rule, RuleError};
        use super::super::{Step, advance};

        /// The `json` rule on a whole value.
        pub(super) fn apply(
            faker: &mut Faker,
            paths: &[(String, Rule)],
            others: &Rule,
            value: &str,
        ) -> Result<String, RuleError> {
            let mut doc: Value =
                serde_json::from_str(value).map_err(|e| RuleError::NotJson(e.to_string()))?;
            if paths.is_empty() && *others == Rule::Keep {
                return Ok(value.to_owned());
            }
            apply_doc(faker, paths, others, &mut doc)?;
            serde_json::to_string(&doc).map_err(|e| RuleError::NotJson(e.to_string()))
        }

        fn apply_doc(
            faker: &mut Faker,
            paths: &[(String, Rule)],
            others: &Rule,
            doc: &mut Value,
        ) -> Result<(), RuleError> {
            let active: Vec<(usize, usize)> = (0..paths.len()).map(|i| (i, 0)).collect();
            walk(faker, paths, doc, &active, others)
        }

        /// Visits the children of `node`; `active` are the patterns (index, offset) that
        /// match the path so far; `default` is the rule of unmatched string leaves.
        fn walk(
            faker: &mut Faker,
            paths: &[(String, Rule)],
            node: &mut Value,
            active: &[(usize, usize)],
            default: &Rule,
        ) -> Result<(), RuleError> {
            match node {
                Value::Object(map) => {
                    for (k, v) in map.iter_mut() {
                        child(faker, paths, v, active, Step::Key(k), default)?;
                    }
                    Ok(())
                }
                Value::Array(items) => {
                    for v in items.iter_mut() {
                        child(faker, paths, v, active, Step::Index, default)?;
                    }
                    Ok(())
                }
                Value::String(_) => leaf_default(faker, node, default),
                _ => Ok(()),
            }
        }

        fn child(
            faker: &mut Faker,
            paths: &[(String, Rule)],
            node: &mut Value,
            active: &[(usize, usize)],
            step: Step<'_>,
            default: &Rule,
        ) -> Result<(), RuleError> {
            let mut next = Vec::new();
            let mut matched: Option<&Rule> = None;
            for &(i, off) in active {
                let (pattern, rule) = &paths[i];
                if let Some(off) = advance(pattern, off, step) {
                    if off == pattern.len() {
                        matched = Some(rule);
                    } else {
                        next.push((i, off));
                    }
                }
            }
            let is_container = matches!(node, Value::Object(_) | Value::Array(_));
            match matched {
                None if !is_container => leaf_default(faker, node, default),
                None if next.is_empty() && *default == Rule::Keep => Ok(()),
                None => walk(faker, paths, node, &next, default),
                Some(rule) if !is_container => apply_node(faker, rule, node),
                Some(rule) => match rule {
                    Rule::Null | Rule::Redact { .. } | Rule::Json { .. } => {
                        apply_node(faker, rule, node)
                    }
                    Rule::Array { element } => walk(faker, paths, node, &next, element),
                    rule => walk(faker, paths, node, &next, rule),
                },
            }
        }

        /// An unmatched leaf: only strings take the default rule.
        fn leaf_default(
            faker: &mut Faker,
            node: &mut Value,
            default: &Rule,
        ) -> Result<(), RuleError> {
            if *default == Rule::Keep {
                return Ok(());
            }
            if let Value::String(s) = node {
                *node = match faker.apply(default, s, false)? {
                    Some(t) => Value::String(t),
                    None => Value::Null,
                };
            }
            Ok(())
        }

        /// Applies `rule` to one node matched by a path (or an array element).
        fn apply_node(faker: &mut Faker, rule: &Rule, node: &mut Value) -> Result<(), RuleError> {
            match rule {
                Rule::Keep => return Ok(()),
                Rule::Null => {
                    *node = Value::Null;
                    return Ok(());
                }
                Rule::Redact { text } => {
                    *node = Value::String(text.clone());
                    return Ok(());
                }
                Rule::Json { paths, others } => {
                    return match node {
                        Value::String(s) => {
                            // A document stored as a JSON string.
                            let out = apply(faker, paths, others, s)?;
                            *node = Value::String(out);
                            Ok(())
                        }
                        Value::Object(_) | Value::Array(_) => apply_doc(faker, paths, others, node),
                        _ => Ok(()),
                    };
                }
                _ => {}
            }
            match node {
                Value::String(s) => {
                    *node = match faker.apply(rule, s, false)? {
                        Some(t) => Value::String(t),
                        None => Value::Null,
                    };
                }
                Value::Number(n) => {
                    let text = n.to_string();
                    let out = faker.apply(rule, &text, false)?;
                    *node = match (rule, out) {
                        (_, None) => Value::Null,
                        (Rule::NumericNoise { .. }, Some(t)) => {
                            match serde_json::from_str::<serde_json::Number>(&t) {
                                Ok(n) => Value::Number(n),
                                Err(_) => Value::String(t),
                            }
                        }
                        (_, Some(t)) => Value::String(t),
                    };
                }
                Value::Object(_) | Value::Array(_) => {
                    let element = match rule {
                        Rule::Array { element } => element.as_ref(),
                        rule => rule,
                    };
                    walk(faker, &[], node, &[], element)?;
                }
                Value::Bool(_) | Value::Null => {}
            }
            Ok(())
        }

        pub(super) fn transform_json(
            faker: &mut Faker,
            element: &Rule,
            items: &mut [Value],
        ) -> Result<(), RuleError> {
            for item in items {
                match item {
                    Value::Array(sub) => transform_json(faker, element, sub)?,
                    Value::Null => {}
                    item => apply_node(faker, element, item)?,
                }
            }
            Ok(())
        }
    }

    fn rule(paths: &[(&str, Rule)], others: Rule) -> Rule {
        Rule::Json {
            paths: paths
                .iter()
                .map(|(p, r)| (p.to_string(), r.clone()))
                .collect(),
            others: Box::new(others),
        }
    }

    fn run(f: &mut Faker, r: &Rule, v: &str) -> Value {
        serde_json::from_str(
            &f.apply(r, v, false)
                .expect("rule applies")
                .expect("not null"),
        )
        .expect("parses")
    }

    #[test]
    fn paths_check() {
        for ok in [
            "email",
            "a.b",
            "items[*].email",
            "[*]",
            "[*].email",
            "m[*][*]",
            "a.b[*].c",
            "a.[*]",
        ] {
            assert_eq!(check_path(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a..b", ".a", "a.", "a[0]", "a]", "a[*]b", "[*]x", "a["] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seed_details_document() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        let v = r#"{"email": "camille.martin1@exemple.fr", "telephone": "+33 6 37 53 71 97", "essai": 1, "commentaire": "ok \"cité\""}"#;
        let r = rule(
            &[("email", Rule::Email), ("telephone", Rule::Phone)],
            Rule::Keep,
        );
        let out = run(&mut f, &r, v);
        let email = f
            .apply(&Rule::Email, "camille.martin1@exemple.fr", false)
            .expect("rule applies")
            .expect("not null");
        let phone = f
            .apply(&Rule::Phone, "+33 6 37 53 71 97", false)
            .expect("rule applies")
            .expect("not null");
        assert_eq!(
            out,
            json!({"email": email, "telephone": phone, "essai": 1, "commentaire": "ok \"cité\""})
        );
        // Compact output.
        let text = f
            .apply(&r, v, false)
            .expect("rule applies")
            .expect("not null");
        assert!(!text.contains(": "), "{text}");
    }

    #[test]
    fn nested_arrays_others_and_numbers() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        let v = json!({
            "items": [{"email": "a@x.fr", "n": 1}, {"email": "b@x.fr"}, {"other": "c@x.fr"}],
            "contact": {"tel": "0612345678", "name": "Camille", "age": 42, "vip": true},
            "amount": 1234.5,
            "siret": 73282932000074u64,
            "free": "appeler le 06 12 34 56 78",
            "gone": {"x": [1, 2]}
        })
        .to_string();
        let r = rule(
            &[
                ("items[*].email", Rule::Email),
                ("contact.tel", Rule::Phone),
                ("contact", Rule::Keep),
                ("amount", Rule::NumericNoise { percent: 10.0 }),
                ("siret", Rule::Siret),
                ("gone", Rule::Null),
            ],
            Rule::Scrub,
        );
        let out = run(&mut f, &r, &v);
        let email = |f: &mut Faker, e: &str| {
            f.apply(&Rule::Email, e, false)
                .expect("rule applies")
                .expect("not null")
        };
        assert_eq!(out["items"][0]["email"], email(&mut f, "a@x.fr"));
        assert_eq!(out["items"][1]["email"], email(&mut f, "b@x.fr"));
        // Not under a path: `others` (scrub) finds the e-mail in the text.
        assert_eq!(out["items"][2]["other"], email(&mut f, "c@x.fr"));
        assert_eq!(out["items"][0]["n"], 1);
        // `contact` is kept, but its deeper path still applies.
        assert_ne!(out["contact"]["tel"], "0612345678");
        assert_eq!(out["contact"]["tel"].as_str().expect("a string").len(), 10);
        assert_eq!(out["contact"]["name"], "Camille");
        assert_eq!(out["contact"]["age"], 42);
        assert_eq!(out["contact"]["vip"], true);
        let amount = out["amount"].as_f64().expect("a number");
        assert!(
            amount != 1234.5 && (amount - 1234.5).abs() <= 123.46,
            "{amount}"
        );
        assert!(out["siret"].is_string());
        assert_eq!(out["siret"].as_str().expect("a string").len(), 14);
        assert!(
            !out["free"]
                .as_str()
                .expect("a string")
                .contains("06 12 34 56 78")
        );
        assert!(
            out["free"]
                .as_str()
                .expect("a string")
                .starts_with("appeler le 0")
        );
        assert_eq!(out["gone"], Value::Null);
    }

    #[test]
    fn top_level_arrays_containers_and_nested_documents() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        let out = run(
            &mut f,
            &rule(&[("[*]", Rule::Email)], Rule::Keep),
            r#"["a@x.fr", null, "b@x.fr"]"#,
        );
        assert_eq!(
            out[0],
            f.apply(&Rule::Email, "a@x.fr", false)
                .expect("rule applies")
                .expect("not null")
        );
        assert_eq!(out[1], Value::Null);
        // A rule on an object reaches its string leaves.
        let out = run(
            &mut f,
            &rule(&[("c", Rule::Hmac)], Rule::Keep),
            r#"{"c": {"a": "x", "b": ["y", 3]}, "d": "z"}"#,
        );
        assert_eq!(out["c"]["a"].as_str().expect("a string").len(), 64);
        assert_eq!(out["c"]["b"][1], 3);
        assert_eq!(out["d"], "z");
        // A JSON document stored as a string, and `redact` on an object.
        let inner = rule(&[("e", Rule::Email)], Rule::Keep);
        let out = run(
            &mut f,
            &rule(
                &[("doc", inner), ("o", Rule::Redact { text: "x".into() })],
                Rule::Keep,
            ),
            r#"{"doc": "{\"e\": \"a@x.fr\"}", "o": {"k": 1}}"#,
        );
        let doc: Value =
            serde_json::from_str(out["doc"].as_str().expect("a string")).expect("parses");
        assert_eq!(
            doc["e"],
            f.apply(&Rule::Email, "a@x.fr", false)
                .expect("rule applies")
                .expect("not null")
        );
        assert_eq!(out["o"], "x");
        // `null` on a string leaf gives JSON null.
        let out = run(
            &mut f,
            &rule(&[("a", Rule::Null)], Rule::Keep),
            r#"{"a": "x"}"#,
        );
        assert_eq!(out["a"], Value::Null);
    }

    #[test]
    fn no_op_and_bad_json() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        let v = r#"{"b": 1,  "a": "x"}"#;
        assert_eq!(
            f.apply(&rule(&[], Rule::Keep), v, false)
                .expect("rule applies")
                .expect("not null"),
            v
        );
        let e = f
            .apply(&rule(&[("a", Rule::Email)], Rule::Keep), "{nope", false)
            .expect_err("must fail");
        assert!(e.to_string().starts_with("value is not valid JSON"), "{e}");
    }

    const DOCS: &[&str] = &[
        r#"{"email": "lea.bernard1@exemple.fr", "essai": 1, "telephone": "+33 6 37 53 71 97", "commentaire": "ok \"cité\""}"#,
        r#"{"items": [{"email": "a@x.fr", "n": 1}, {"email": "b@x.fr"}, {"other": "c@x.fr"}], "contact": {"tel": "0612345678", "name": "Camille", "age": 42, "vip": true}, "amount": 1234.5, "siret": 73282932000074, "free": "appeler le 06 12 34 56 78", "gone": {"x": [1, 2]}}"#,
        r#"["a@x.fr", null, "b@x.fr", 12, true, {"e": "c@x.fr", "a": ["d@x.fr", 3]}, [["e@x.fr"], []]]"#,
        r#"{"n\u00e9": "\u00e9l\u00e8ve 06 12 34 56 78", "e": "x\ud83d\ude00y@y.fr", "t": "tab\there \\ \/ \b\f\r\n \u0001"}"#,
        r#"{"amount": 1.50, "big": 1234567890123456789, "neg": -0.5e-3, "z": 0, "e": 1E+2}"#,
        r#"{"a": {}, "b": [], "c": [{}], "d": "", "e": null, "f": false}"#,
        "  {\n \"a\" : [ 1 , \"x@y.fr\" ] ,\"b\":null , \"c\" : { \"a\" : \"FR76 3000 6000 0112 3456 7890 189\" } }  ",
        r#""just a string: a@x.fr""#,
        "42",
        "null",
    ];

    fn rule_sets() -> Vec<Rule> {
        vec![
            rule(
                &[
                    ("email", Rule::Email),
                    ("telephone", Rule::Phone),
                    ("commentaire", Rule::Scrub),
                ],
                Rule::Scrub,
            ),
            rule(
                &[
                    ("items[*].email", Rule::Email),
                    ("contact.tel", Rule::Phone),
                    ("contact", Rule::Keep),
                    ("amount", Rule::NumericNoise { percent: 10.0 }),
                    ("siret", Rule::Siret),
                    ("gone", Rule::Null),
                ],
                Rule::Scrub,
            ),
            rule(
                &[("[*]", Rule::Email), ("[*].a[*]", Rule::Hmac)],
                Rule::Keep,
            ),
            rule(
                &[
                    ("c", Rule::Hmac),
                    (
                        "a",
                        Rule::Redact {
                            text: "x\"y".into(),
                        },
                    ),
                    ("b", Rule::Null),
                ],
                Rule::Keep,
            ),
            rule(
                &[
                    (
                        "a",
                        Rule::Array {
                            element: Box::new(Rule::Email),
                        },
                    ),
                    ("e", Rule::Email),
                    (
                        "c",
                        rule(&[("a", Rule::Iban)], Rule::Redact { text: "r".into() }),
                    ),
                ],
                Rule::Null,
            ),
            rule(
                &[],
                Rule::Redact {
                    text: "gone".into(),
                },
            ),
            rule(
                &[
                    ("amount", Rule::NumericNoise { percent: 5.0 }),
                    ("big", Rule::Keep),
                    ("neg", Rule::Hmac),
                    ("e", Rule::NumericNoise { percent: 5.0 }),
                    ("z", Rule::Redact { text: "0".into() }),
                ],
                Rule::Keep,
            ),
            rule(&[("[*]", Rule::Null)], Rule::Scrub),
        ]
    }

    /// The streaming rewrite gives the documents the tree-based one gave, for every
    /// rule set on every document (and fails where it failed).
    #[test]
    fn streaming_rewrite_equals_the_tree_rewrite() {
        let mut compared = 0;
        for r in rule_sets() {
            let Rule::Json { paths, others } = &r else {
                unreachable!()
            };
            for doc in DOCS {
                let mut fs = Faker::new(b"k", Locale::FrFr);
                let mut ft = Faker::new(b"k", Locale::FrFr);
                let streamed = apply(&mut fs, paths, others, doc);
                let tree = reference::apply(&mut ft, paths, others, doc);
                match (streamed, tree) {
                    (Ok(a), Ok(b)) => {
                        let a: Value = serde_json::from_str(&a).expect("streamed output parses");
                        let b: Value = serde_json::from_str(&b).expect("tree output parses");
                        assert_eq!(a, b, "{doc} under {r:?}");
                        compared += 1;
                    }
                    (Err(a), Err(b)) => assert_eq!(
                        std::mem::discriminant(&a),
                        std::mem::discriminant(&b),
                        "{doc}: {a} / {b}"
                    ),
                    (a, b) => panic!("{doc} under {r:?}: streamed {a:?}, tree {b:?}"),
                }
            }
        }
        assert!(compared > 60, "{compared}");
    }

    /// Arrays under the `array` rule: the same elements as the tree-based rewrite.
    #[test]
    fn streaming_elements_equal_the_tree_elements() {
        let docs = [
            r#"["a@x.fr", null, "b@x.fr", 12, true, {"e": "c@x.fr", "a": ["d@x.fr", 3]}, [["e@x.fr"], []]]"#,
            r#"[]"#,
            r#"[[null, "06 12 34 56 78"], "x"]"#,
        ];
        let rules = [
            Rule::Email,
            Rule::Scrub,
            Rule::Null,
            Rule::Redact { text: "r".into() },
            Rule::Hmac,
            Rule::Keep,
        ];
        for element in &rules {
            for doc in docs {
                let mut fs = Faker::new(b"k", Locale::FrFr);
                let mut ft = Faker::new(b"k", Locale::FrFr);
                let streamed = apply_elements(&mut fs, element, doc);
                let mut items: Value = serde_json::from_str(doc).expect("test doc");
                let Value::Array(list) = &mut items else {
                    unreachable!()
                };
                let tree = reference::transform_json(&mut ft, element, list);
                match (streamed, tree) {
                    (Ok(a), Ok(())) => {
                        let a: Value = serde_json::from_str(&a).expect("streamed output parses");
                        assert_eq!(a, items, "{doc} under {element:?}");
                    }
                    (Err(a), Err(b)) => assert_eq!(
                        std::mem::discriminant(&a),
                        std::mem::discriminant(&b),
                        "{doc}: {a} / {b}"
                    ),
                    (a, b) => panic!("{doc} under {element:?}: streamed {a:?}, tree {b:?}"),
                }
            }
        }
    }

    /// Key order and numbers nobody touches are kept (even past 64 bits, where the
    /// tree rewrite rounded them through `f64`); output is compact; every duplicate
    /// key is rewritten, not only the last.
    #[test]
    fn order_numbers_and_duplicates_are_kept() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        let r = [("e".to_owned(), Rule::Email)];
        let out = apply(
            &mut f,
            &r,
            &Rule::Keep,
            r#"{ "z": 1.50, "e": "a@x.fr", "a": 1e2, "e": "b@x.fr", "b": 123456789012345678901234 }"#,
        )
        .expect("rewrites");
        let fake = |f: &mut Faker, v: &str| {
            f.apply(&Rule::Email, v, false)
                .expect("rule applies")
                .expect("not null")
        };
        assert_eq!(
            out,
            format!(
                r#"{{"z":1.50,"e":"{}","a":1e2,"e":"{}","b":123456789012345678901234}}"#,
                fake(&mut f, "a@x.fr"),
                fake(&mut f, "b@x.fr")
            )
        );
    }

    /// Malformed documents are refused with where it went wrong; a deep one too,
    /// instead of overflowing the stack.
    #[test]
    fn malformed_documents_are_refused() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        let r = [("a".to_owned(), Rule::Email)];
        for bad in [
            "{nope",
            "[1,]",
            r#"{"a":1,}"#,
            r#""unterminated"#,
            "01",
            "1.",
            "[1] x",
            r#"{"a" 1}"#,
            "nul",
            "",
            r#"{"a": "bad \q escape"}"#,
            "{\"a\": \"raw\ttab\"}",
            r#"{"a": "\u12"}"#,
        ] {
            let e = apply(&mut f, &r, &Rule::Keep, bad).expect_err(bad);
            assert!(matches!(e, RuleError::NotJson(_)), "{bad}: {e}");
            let e = apply(&mut f, &[], &Rule::Keep, bad).expect_err(bad);
            assert!(matches!(e, RuleError::NotJson(_)), "{bad} (no rule): {e}");
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let e = apply(&mut f, &r, &Rule::Scrub, &deep).expect_err("too deep");
        assert!(e.to_string().contains("nested deeper than 128"), "{e}");
        let e = apply_elements(&mut f, &Rule::Email, &deep).expect_err("too deep");
        assert!(matches!(e, RuleError::NotArray(_)), "{e}");
        assert!(matches!(
            apply_elements(&mut f, &Rule::Email, r#"{"a": 1}"#),
            Err(RuleError::NotArray(_))
        ));
    }
}
