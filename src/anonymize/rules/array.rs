//! `array`: a rule applied to each element of an array value, written either as a
//! PostgreSQL array literal (`{a,"b c",NULL}`, n-D, optional `[1:2]=` bounds) or as
//! a JSON array (`["a","b"]`, as SQLite stores lists). The output uses the input's
//! syntax; NULL elements stay NULL; a `keep` rule returns the value unchanged.
//!
//! PostgreSQL literals are read as `array_in` reads them and written as `array_out`
//! writes them: elements are quoted when empty, equal to `NULL` in any case, or
//! containing `{`, `}`, `,`, `"`, `\` or white space, with `"` and `\` escaped by a
//! backslash.

use super::faker::Faker;
use super::{Rule, RuleError, json};

/// One element of a PostgreSQL array literal.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Text(String),
    Sub(Vec<Node>),
}

/// The `array` rule on a whole value.
pub(crate) fn apply(faker: &mut Faker, element: &Rule, value: &str) -> Result<String, RuleError> {
    let t = value.trim_start();
    if let Some(bounds) = pg_bounds(t) {
        let mut items = parse_pg(&t[bounds..]).map_err(RuleError::NotArray)?;
        if *element == Rule::Keep {
            return Ok(value.to_owned());
        }
        transform(faker, element, &mut items)?;
        let mut out = String::with_capacity(value.len() + 16);
        out.push_str(&t[..bounds]);
        write_pg(&items, &mut out);
        Ok(out)
    } else if t.starts_with('[') {
        json::apply_elements(faker, element, value)
    } else {
        Err(RuleError::NotArray("expected \"{\" or \"[\"".into()))
    }
}

/// Length of an optional `[lo:hi]…=` prefix when `s` is a PostgreSQL literal.
fn pg_bounds(s: &str) -> Option<usize> {
    if s.starts_with('{') {
        return Some(0);
    }
    let mut rest = s;
    while let Some(r) = rest.strip_prefix('[') {
        let close = r.find(']')?;
        let dim = &r[..close];
        let ok = dim.split(':').all(|n| {
            !n.is_empty()
                && n.trim_start_matches('-')
                    .bytes()
                    .all(|b| b.is_ascii_digit())
        });
        if !ok || dim.split(':').count() > 2 {
            return None;
        }
        rest = &r[close + 1..];
    }
    let rest = rest.strip_prefix('=')?;
    let rest = rest.trim_start_matches(is_pg_space);
    (rest.len() < s.len() && rest.starts_with('{')).then_some(s.len() - rest.len())
}

fn is_pg_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

fn parse_pg(s: &str) -> Result<Vec<Node>, String> {
    let mut p = PgParser { s, i: 0 };
    let items = p.array()?;
    p.skip_space();
    if p.i != s.len() {
        return Err(format!(
            "unexpected text after the closing brace at byte {}",
            p.i
        ));
    }
    Ok(items)
}

struct PgParser<'a> {
    s: &'a str,
    i: usize,
}

impl PgParser<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += c.len_utf8();
        Some(c)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(is_pg_space) {
            self.i += 1;
        }
    }

    fn err(&self, what: &str) -> String {
        format!("{what} at byte {}", self.i)
    }

    /// `{ … }`, the opening brace next.
    fn array(&mut self) -> Result<Vec<Node>, String> {
        if self.bump() != Some('{') {
            return Err(self.err("expected \"{\""));
        }
        let mut items = Vec::new();
        self.skip_space();
        if self.peek() == Some('}') {
            self.i += 1;
            return Ok(items);
        }
        loop {
            self.skip_space();
            let node = match self.peek() {
                Some('{') => Node::Sub(self.array()?),
                Some('"') => Node::Text(self.quoted()?),
                Some(_) => self.unquoted()?,
                None => return Err(self.err("unterminated array")),
            };
            items.push(node);
            self.skip_space();
            match self.bump() {
                Some(',') => {}
                Some('}') => return Ok(items),
                _ => return Err(self.err("expected \",\" or \"}\"")),
            }
        }
    }

    fn quoted(&mut self) -> Result<String, String> {
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            match self.bump() {
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some(c) => out.push(c),
                    None => return Err(self.err("unterminated escape")),
                },
                Some(c) => out.push(c),
                None => return Err(self.err("unterminated quoted element")),
            }
        }
    }

    fn unquoted(&mut self) -> Result<Node, String> {
        let mut out = String::new();
        let mut escaped = false;
        // Length of `out` up to its last escaped or non-space char.
        let mut keep = 0;
        loop {
            match self.peek() {
                Some(',' | '}') => break,
                Some('{' | '"') => return Err(self.err("unexpected character in unquoted element")),
                Some('\\') => {
                    self.i += 1;
                    let c = self.bump().ok_or_else(|| self.err("unterminated escape"))?;
                    out.push(c);
                    escaped = true;
                    keep = out.len();
                }
                Some(c) => {
                    self.i += c.len_utf8();
                    out.push(c);
                    if !is_pg_space(c) {
                        keep = out.len();
                    }
                }
                None => return Err(self.err("unterminated array")),
            }
        }
        out.truncate(keep);
        if out.is_empty() {
            return Err(self.err("empty unquoted element"));
        }
        if !escaped && out.eq_ignore_ascii_case("NULL") {
            Ok(Node::Null)
        } else {
            Ok(Node::Text(out))
        }
    }
}

fn write_pg(items: &[Node], out: &mut String) {
    out.push('{');
    for (i, node) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match node {
            Node::Null => out.push_str("NULL"),
            Node::Sub(sub) => write_pg(sub, out),
            Node::Text(s) => {
                let quote = s.is_empty()
                    || s.eq_ignore_ascii_case("NULL")
                    || s.chars()
                        .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || is_pg_space(c));
                if quote {
                    out.push('"');
                    for c in s.chars() {
                        if c == '"' || c == '\\' {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                } else {
                    out.push_str(s);
                }
            }
        }
    }
    out.push('}');
}

fn transform(faker: &mut Faker, element: &Rule, items: &mut [Node]) -> Result<(), RuleError> {
    for node in items {
        match node {
            Node::Null => {}
            Node::Sub(sub) => transform(faker, element, sub)?,
            Node::Text(s) => {
                *node = match faker.apply(element, s, false)? {
                    Some(t) => Node::Text(t),
                    None => Node::Null,
                };
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Locale;
    use super::*;

    fn round_trip(s: &str) -> String {
        let items = parse_pg(s).expect("parses");
        let mut out = String::new();
        write_pg(&items, &mut out);
        out
    }

    fn arr(element: Rule) -> Rule {
        Rule::Array {
            element: Box::new(element),
        }
    }

    #[test]
    fn pg_literals_round_trip_exactly() {
        for s in [
            r#"{"a b","c\"d",NULL,e}"#,
            r#"{{1,2},{3,NULL}}"#,
            r#"{{{a,b}},{{"",c}}}"#,
            "{}",
            "{\"NULL\",null_ish,\"x\\\\y\",\"{br}\",\"t\tab\",\"é 😀\",plain}",
            r#"{vip,relance}"#,
        ] {
            assert_eq!(round_trip(s), s);
        }
        assert_eq!(
            parse_pg(r#"{"a b","c\"d",NULL,e}"#).expect("parses"),
            vec![
                Node::Text("a b".into()),
                Node::Text("c\"d".into()),
                Node::Null,
                Node::Text("e".into())
            ]
        );
        // array_in leniency: spaces around elements, escapes in unquoted text, any-case NULL.
        assert_eq!(
            parse_pg(r#"{ a , b\,c , null ,\NULL, "q" }"#).expect("parses"),
            vec![
                Node::Text("a".into()),
                Node::Text("b,c".into()),
                Node::Null,
                Node::Text("NULL".into()),
                Node::Text("q".into())
            ]
        );
        assert_eq!(round_trip(r#"{ a , b\,c }"#), r#"{a,"b,c"}"#);
        for bad in [
            "{", "{a", "{a,}", "{\"a}", "{a}x", "{a\"b}", "a,b", "{{a},b",
        ] {
            assert!(parse_pg(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pg_arrays_transform_elements() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        let e1 = f
            .apply(&Rule::Email, "a@x.fr", false)
            .expect("rule applies")
            .expect("not null");
        let e2 = f
            .apply(&Rule::Email, "b c@x.fr", false)
            .expect("rule applies")
            .expect("not null");
        let out = f
            .apply(&arr(Rule::Email), r#"{a@x.fr,"b c@x.fr",NULL}"#, false)
            .expect("rule applies")
            .expect("not null");
        assert_eq!(out, format!("{{{e1},{e2},NULL}}"));
        let out = f
            .apply(
                &arr(Rule::Redact {
                    text: "x \"y\"".into(),
                }),
                "{{a,b},{NULL,d}}",
                false,
            )
            .expect("rule applies")
            .expect("not null");
        assert_eq!(out, r#"{{"x \"y\"","x \"y\""},{NULL,"x \"y\""}}"#);
        let out = f
            .apply(&arr(Rule::Null), "[2:3]={a,b}", false)
            .expect("rule applies")
            .expect("not null");
        assert_eq!(out, "[2:3]={NULL,NULL}");
        let v = r#"{"a b","c\"d",NULL,e}"#;
        assert_eq!(
            f.apply(&arr(Rule::Keep), v, false)
                .expect("rule applies")
                .expect("not null"),
            v
        );
        assert_eq!(
            f.apply(&arr(Rule::Email), "{}", false)
                .expect("rule applies")
                .expect("not null"),
            "{}"
        );
    }

    #[test]
    fn json_arrays_transform_elements() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        let e1 = f
            .apply(&Rule::Email, "a@x.fr", false)
            .expect("rule applies")
            .expect("not null");
        let out = f
            .apply(&arr(Rule::Email), r#"["a@x.fr", null, ["a@x.fr"]]"#, false)
            .expect("rule applies")
            .expect("not null");
        assert_eq!(out, format!(r#"["{e1}",null,["{e1}"]]"#));
        let out = f
            .apply(&arr(Rule::Null), r#"["vip","relance"]"#, false)
            .expect("rule applies")
            .expect("not null");
        assert_eq!(out, "[null,null]");
        for bad in ["vip,relance", "{\"a\": 1}", "[1,", ""] {
            let e = f
                .apply(&arr(Rule::Email), bad, false)
                .expect_err("must fail");
            assert!(
                e.to_string().contains("not a PostgreSQL array literal"),
                "{bad}: {e}"
            );
        }
    }
}
