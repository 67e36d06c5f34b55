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
//! The output is compact JSON. Key order may change (serde_json sorts keys without
//! its `preserve_order` feature; jsonb has its own order anyway), and numbers pass
//! through `f64` when they do not fit 64-bit integers.

use serde_json::Value;

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

/// The `json` rule on a whole value.
pub(crate) fn apply(
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
            Rule::Null | Rule::Redact { .. } | Rule::Json { .. } => apply_node(faker, rule, node),
            Rule::Array { element } => walk(faker, paths, node, &next, element),
            rule => walk(faker, paths, node, &next, rule),
        },
    }
}

/// An unmatched leaf: only strings take the default rule.
fn leaf_default(faker: &mut Faker, node: &mut Value, default: &Rule) -> Result<(), RuleError> {
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
pub(crate) fn apply_node(
    faker: &mut Faker,
    rule: &Rule,
    node: &mut Value,
) -> Result<(), RuleError> {
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

#[cfg(test)]
mod tests {
    use super::super::Locale;
    use super::*;
    use serde_json::json;

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
}
