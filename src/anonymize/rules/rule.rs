//! The [`Rule`] type: what to do with one value, as a policy writes it.

use std::fmt::Write as _;

use super::json;

/// One anonymization rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// The value as it is.
    Keep,
    /// NULL.
    Null,
    /// A fixed text.
    Redact {
        text: String,
    },
    FirstName,
    LastName,
    /// `Prénom Nom`.
    FullName,
    /// `prenom.nom.<6 base32 chars>@<non-routable domain>`.
    Email,
    /// A phone number laid out like the input (`+33 6 12 34 56 78`, `06.12.34.56.78`, …).
    Phone,
    StreetAddress,
    Postcode,
    City,
    Company,
    /// 14 digits, valid Luhn key, its first 9 digits the fake of the original's SIREN.
    Siret,
    /// 9 digits, valid Luhn key.
    Siren,
    /// Same country, length and spacing; valid mod-97 check digits.
    Iban,
    /// Same length (8 or 11) and country letters.
    Bic,
    /// Same family (IPv4/IPv6) and `/prefix`.
    IpAddress,
    UserAgent,
    /// Shifts a date or timestamp by 1 to `days` days, forwards or backwards (never
    /// 0 unless `days == 0`), the same shift for every value on one calendar day;
    /// the rest of the text (time, offset, `T`/`Z`) is kept byte for byte.
    DateShift {
        days: u32,
    },
    /// Multiplies by `1 ± up to percent/100`, keeping the sign and the number of
    /// fraction digits (integers stay integers).
    NumericNoise {
        percent: f64,
    },
    /// Lowercase hex HMAC-SHA256 of the exact value (64 chars).
    Hmac,
    /// Free text: e-mails, phone numbers, IBANs and card numbers found inside are
    /// replaced by fakes of the same kind; the rest is kept byte for byte.
    Scrub,
    /// A JSON document: `paths` (`"email"`, `"a.b"`, `"items[*].email"`, `"[*]"`,
    /// rooted at the document) get their rule; `others` applies to string leaves no
    /// path matches.
    Json {
        paths: Vec<(String, Rule)>,
        others: Box<Rule>,
    },
    /// Each element of a PostgreSQL array literal (`{a,"b c",NULL}`, n-D) or of a
    /// JSON array (`["a","b"]`); NULL elements stay NULL.
    Array {
        element: Box<Rule>,
    },
}

/// Every rule name, in the order of the documentation.
pub(crate) const RULE_NAMES: &[&str] = &[
    "keep",
    "null",
    "redact",
    "first_name",
    "last_name",
    "full_name",
    "email",
    "phone",
    "street_address",
    "postcode",
    "city",
    "company",
    "siret",
    "siren",
    "iban",
    "bic",
    "ip_address",
    "user_agent",
    "date_shift",
    "numeric_noise",
    "hmac",
    "scrub",
    "json",
    "array",
];

/// The largest `days` of a `date_shift` (100 years).
const MAX_SHIFT_DAYS: i64 = 36_500;

impl Rule {
    /// Parses a rule as written in a policy: a string (`"email"`, `"keep"`, `"null"`,
    /// `"hmac"`, `"scrub"`, `"siret"`, …) or a table (`{ rule = "redact", text = "…" }`,
    /// `{ rule = "date_shift", days = 30 }`, `{ rule = "numeric_noise", percent = 5 }`,
    /// `{ rule = "json", paths = { "email" = "email", "contact.tel" = "phone" },
    /// others = "keep" }`, `{ rule = "array", element = "email" }`).
    ///
    /// Unknown rule names and unknown keys are errors that name them, list the valid
    /// ones and suggest the closest.
    pub fn from_toml(v: &toml::Value) -> Result<Rule, String> {
        match v {
            toml::Value::String(name) => simple(name).ok_or_else(|| {
                if needs_table(name) {
                    format!(
                        "rule \"{name}\" needs parameters: write {}",
                        table_example(name)
                    )
                } else {
                    unknown_rule(name)
                }
            }),
            toml::Value::Table(t) => from_table(t),
            other => Err(format!(
                "a rule is a string such as \"email\" or a table such as \
                 {{ rule = \"redact\", text = \"…\" }}, not {}",
                a_type(other)
            )),
        }
    }

    /// The rule's name as a policy writes it: `"email"`, `"date_shift"`, ….
    pub fn name(&self) -> &'static str {
        match self {
            Rule::Keep => "keep",
            Rule::Null => "null",
            Rule::Redact { .. } => "redact",
            Rule::FirstName => "first_name",
            Rule::LastName => "last_name",
            Rule::FullName => "full_name",
            Rule::Email => "email",
            Rule::Phone => "phone",
            Rule::StreetAddress => "street_address",
            Rule::Postcode => "postcode",
            Rule::City => "city",
            Rule::Company => "company",
            Rule::Siret => "siret",
            Rule::Siren => "siren",
            Rule::Iban => "iban",
            Rule::Bic => "bic",
            Rule::IpAddress => "ip_address",
            Rule::UserAgent => "user_agent",
            Rule::DateShift { .. } => "date_shift",
            Rule::NumericNoise { .. } => "numeric_noise",
            Rule::Hmac => "hmac",
            Rule::Scrub => "scrub",
            Rule::Json { .. } => "json",
            Rule::Array { .. } => "array",
        }
    }

    /// A short stable text identifying the rule and its parameters (for policy
    /// hashing): `email`, `date_shift(days=30)`, `redact(text="…")`,
    /// `json(paths={"a.b":phone,"email":email},others=keep)` (paths sorted),
    /// `array(element=email)`.
    pub fn fingerprint(&self) -> String {
        let mut s = String::new();
        self.write_fingerprint(&mut s);
        s
    }

    fn write_fingerprint(&self, s: &mut String) {
        s.push_str(self.name());
        match self {
            Rule::Redact { text } => {
                s.push_str("(text=");
                push_quoted(s, text);
                s.push(')');
            }
            Rule::DateShift { days } => {
                let _ = write!(s, "(days={days})");
            }
            Rule::NumericNoise { percent } => {
                let _ = write!(s, "(percent={percent})");
            }
            Rule::Json { paths, others } => {
                let mut sorted: Vec<&(String, Rule)> = paths.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                s.push_str("(paths={");
                for (i, (path, rule)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    push_quoted(s, path);
                    s.push(':');
                    rule.write_fingerprint(s);
                }
                s.push_str("},others=");
                others.write_fingerprint(s);
                s.push(')');
            }
            Rule::Array { element } => {
                s.push_str("(element=");
                element.write_fingerprint(s);
                s.push(')');
            }
            _ => {}
        }
    }

    /// Whether the rule can serve a unique column: it maps distinct values to
    /// distinct values (with the [`Faker`](super::Faker)'s collision handling).
    /// `redact` gives every row the same text, and `scrub`, `json` and `array`
    /// rewrite only parts of a value, so they are not.
    pub fn keeps_unique(&self) -> bool {
        !matches!(
            self,
            Rule::Redact { .. } | Rule::Scrub | Rule::Json { .. } | Rule::Array { .. }
        )
    }
}

/// "a string", "an integer", … for error messages.
fn a_type(v: &toml::Value) -> String {
    let t = v.type_str();
    let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {t}")
}

/// JSON-style quoting: stable across Rust versions, unlike `{:?}`.
fn push_quoted(s: &mut String, text: &str) {
    match serde_json::to_string(text) {
        Ok(q) => s.push_str(&q),
        Err(_) => {
            s.push('"');
            s.push_str(text);
            s.push('"');
        }
    }
}

fn simple(name: &str) -> Option<Rule> {
    Some(match name {
        "keep" => Rule::Keep,
        "null" => Rule::Null,
        "first_name" => Rule::FirstName,
        "last_name" => Rule::LastName,
        "full_name" => Rule::FullName,
        "email" => Rule::Email,
        "phone" => Rule::Phone,
        "street_address" => Rule::StreetAddress,
        "postcode" => Rule::Postcode,
        "city" => Rule::City,
        "company" => Rule::Company,
        "siret" => Rule::Siret,
        "siren" => Rule::Siren,
        "iban" => Rule::Iban,
        "bic" => Rule::Bic,
        "ip_address" => Rule::IpAddress,
        "user_agent" => Rule::UserAgent,
        "hmac" => Rule::Hmac,
        "scrub" => Rule::Scrub,
        _ => return None,
    })
}

fn needs_table(name: &str) -> bool {
    matches!(
        name,
        "redact" | "date_shift" | "numeric_noise" | "json" | "array"
    )
}

fn table_example(name: &str) -> &'static str {
    match name {
        "redact" => "{ rule = \"redact\", text = \"…\" }",
        "date_shift" => "{ rule = \"date_shift\", days = 30 }",
        "numeric_noise" => "{ rule = \"numeric_noise\", percent = 5 }",
        "json" => "{ rule = \"json\", paths = { \"email\" = \"email\" }, others = \"keep\" }",
        "array" => "{ rule = \"array\", element = \"email\" }",
        _ => "{ rule = \"…\" }",
    }
}

fn unknown_rule(name: &str) -> String {
    format!(
        "unknown rule \"{name}\"{}; valid rules: {}",
        did_you_mean(name, RULE_NAMES),
        RULE_NAMES.join(", ")
    )
}

fn from_table(t: &toml::Table) -> Result<Rule, String> {
    let name = match t.get("rule") {
        Some(toml::Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(format!(
                "key \"rule\" must be a string naming the rule, not {}",
                a_type(other)
            ));
        }
        None => {
            let keys: Vec<&str> = t.keys().map(String::as_str).collect();
            let hint = did_you_mean_any(&keys, &["rule"]);
            return Err(format!(
                "a rule table needs a \"rule\" key naming the rule{hint}, \
                 e.g. {{ rule = \"redact\", text = \"…\" }}"
            ));
        }
    };
    let valid_keys: &[&str] = match name {
        "redact" => &["rule", "text"],
        "date_shift" => &["rule", "days"],
        "numeric_noise" => &["rule", "percent"],
        "json" => &["rule", "paths", "others"],
        "array" => &["rule", "element"],
        n if simple(n).is_some() => &["rule"],
        n => return Err(unknown_rule(n)),
    };
    for key in t.keys() {
        if !valid_keys.contains(&key.as_str()) {
            return Err(format!(
                "unknown key \"{key}\" in rule \"{name}\"{}; valid keys: {}",
                did_you_mean(key, valid_keys),
                valid_keys.join(", ")
            ));
        }
    }
    let missing = |key: &str| {
        format!(
            "rule \"{name}\" needs key \"{key}\": write {}",
            table_example(name)
        )
    };
    match name {
        "redact" => match t.get("text") {
            Some(toml::Value::String(text)) => Ok(Rule::Redact { text: text.clone() }),
            Some(other) => Err(format!(
                "key \"text\" of rule \"redact\" must be a string, not {}",
                a_type(other)
            )),
            None => Err(missing("text")),
        },
        "date_shift" => match t.get("days") {
            Some(toml::Value::Integer(d)) if (0..=MAX_SHIFT_DAYS).contains(d) => {
                let days = u32::try_from(*d).map_err(|e| e.to_string())?;
                Ok(Rule::DateShift { days })
            }
            Some(toml::Value::Integer(d)) => Err(format!(
                "key \"days\" of rule \"date_shift\" is {d}: it must be between 0 and {MAX_SHIFT_DAYS}"
            )),
            Some(other) => Err(format!(
                "key \"days\" of rule \"date_shift\" must be an integer, not {}",
                a_type(other)
            )),
            None => Err(missing("days")),
        },
        "numeric_noise" => {
            let percent = match t.get("percent") {
                Some(toml::Value::Integer(p)) => *p as f64,
                Some(toml::Value::Float(p)) => *p,
                Some(other) => {
                    return Err(format!(
                        "key \"percent\" of rule \"numeric_noise\" must be a number, not {}",
                        a_type(other)
                    ));
                }
                None => return Err(missing("percent")),
            };
            if !(0.0..=100.0).contains(&percent) {
                return Err(format!(
                    "key \"percent\" of rule \"numeric_noise\" is {percent}: it must be between 0 and 100"
                ));
            }
            Ok(Rule::NumericNoise { percent })
        }
        "json" => {
            let mut paths = Vec::new();
            match t.get("paths") {
                Some(toml::Value::Table(p)) => {
                    for (path, rule) in p {
                        json::check_path(path).map_err(|e| format!("json path \"{path}\": {e}"))?;
                        let rule = Rule::from_toml(rule)
                            .map_err(|e| format!("json path \"{path}\": {e}"))?;
                        paths.push((path.clone(), rule));
                    }
                }
                Some(other) => {
                    return Err(format!(
                        "key \"paths\" of rule \"json\" must be a table of path = rule, not {}",
                        a_type(other)
                    ));
                }
                None => {}
            }
            let others = match t.get("others") {
                Some(v) => Rule::from_toml(v).map_err(|e| format!("json others: {e}"))?,
                None => Rule::Keep,
            };
            Ok(Rule::Json {
                paths,
                others: Box::new(others),
            })
        }
        "array" => match t.get("element") {
            Some(v) => {
                let element = Rule::from_toml(v).map_err(|e| format!("array element: {e}"))?;
                Ok(Rule::Array {
                    element: Box::new(element),
                })
            }
            None => Err(missing("element")),
        },
        n => simple(n).ok_or_else(|| unknown_rule(n)),
    }
}

/// ` (did you mean "x"?)` when a valid word is close to `word`, else empty.
fn did_you_mean(word: &str, valid: &[&str]) -> String {
    let best = valid
        .iter()
        .map(|v| (edit_distance(word, v), *v))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, v)) if d <= 2.max(word.chars().count() / 3) => format!(" (did you mean \"{v}\"?)"),
        _ => String::new(),
    }
}

fn did_you_mean_any(words: &[&str], valid: &[&str]) -> String {
    words
        .iter()
        .map(|w| did_you_mean(w, valid))
        .find(|s| !s.is_empty())
        .map(|s| format!(" (found \"{}\"{s})", words.join("\", \"")))
        .unwrap_or_default()
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Rule, String> {
        let doc: toml::Table = toml::from_str(&format!("r = {s}")).expect("parses");
        Rule::from_toml(&doc["r"])
    }

    #[test]
    fn every_simple_name_parses_and_round_trips_its_name() {
        for name in RULE_NAMES {
            match parse(&format!("\"{name}\"")) {
                Ok(rule) => {
                    assert_eq!(rule.name(), *name);
                    assert_eq!(rule.fingerprint(), *name);
                    let table = parse(&format!("{{ rule = \"{name}\" }}")).expect("parses");
                    assert_eq!(table, rule);
                }
                Err(e) => {
                    assert!(needs_table(name), "{name}: {e}");
                    assert!(e.contains("needs parameters"), "{e}");
                }
            }
        }
    }

    #[test]
    fn tables_parse_with_parameters() {
        assert_eq!(
            parse("{ rule = \"redact\", text = \"[masqué]\" }").expect("parses"),
            Rule::Redact {
                text: "[masqué]".into()
            }
        );
        assert_eq!(
            parse("{ rule = \"date_shift\", days = 30 }").expect("parses"),
            Rule::DateShift { days: 30 }
        );
        assert_eq!(
            parse("{ rule = \"numeric_noise\", percent = 5 }").expect("parses"),
            Rule::NumericNoise { percent: 5.0 }
        );
        assert_eq!(
            parse("{ rule = \"numeric_noise\", percent = 2.5 }").expect("parses"),
            Rule::NumericNoise { percent: 2.5 }
        );
        let json = parse(
            "{ rule = \"json\", paths = { \"email\" = \"email\", \"contact.tel\" = \"phone\", \
             \"items[*].iban\" = { rule = \"iban\" } }, others = \"scrub\" }",
        )
        .expect("parses");
        let Rule::Json { paths, others } = &json else {
            panic!("{json:?}")
        };
        assert_eq!(paths.len(), 3);
        assert!(paths.contains(&("contact.tel".into(), Rule::Phone)));
        assert_eq!(**others, Rule::Scrub);
        assert_eq!(
            json.fingerprint(),
            "json(paths={\"contact.tel\":phone,\"email\":email,\"items[*].iban\":iban},others=scrub)"
        );
        let arr = parse("{ rule = \"array\", element = \"email\" }").expect("parses");
        assert_eq!(
            arr,
            Rule::Array {
                element: Box::new(Rule::Email)
            }
        );
        assert_eq!(arr.fingerprint(), "array(element=email)");
        assert_eq!(
            parse("{ rule = \"json\" }").expect("parses"),
            Rule::Json {
                paths: vec![],
                others: Box::new(Rule::Keep)
            }
        );
    }

    #[test]
    fn fingerprints_name_parameters() {
        assert_eq!(
            Rule::DateShift { days: 30 }.fingerprint(),
            "date_shift(days=30)"
        );
        assert_eq!(
            Rule::NumericNoise { percent: 2.5 }.fingerprint(),
            "numeric_noise(percent=2.5)"
        );
        assert_eq!(
            Rule::Redact {
                text: "a \"b\"".into()
            }
            .fingerprint(),
            "redact(text=\"a \\\"b\\\"\")"
        );
        assert_ne!(
            Rule::DateShift { days: 30 }.fingerprint(),
            Rule::DateShift { days: 31 }.fingerprint()
        );
    }

    #[test]
    fn unknown_rule_names_list_valid_ones_with_a_suggestion() {
        let e = parse("\"emial\"").expect_err("must fail");
        assert!(e.contains("unknown rule \"emial\""), "{e}");
        assert!(e.contains("did you mean \"email\""), "{e}");
        assert!(e.contains("valid rules: keep, null, redact"), "{e}");
        let e = parse("{ rule = \"date_shfit\", days = 3 }").expect_err("must fail");
        assert!(e.contains("did you mean \"date_shift\""), "{e}");
        let e = parse("\"zzzzzzzzzzzz\"").expect_err("must fail");
        assert!(!e.contains("did you mean"), "{e}");
        assert!(e.contains("valid rules"), "{e}");
    }

    #[test]
    fn unknown_keys_are_named_with_the_valid_ones() {
        let e = parse("{ rule = \"date_shift\", dayz = 3 }").expect_err("must fail");
        assert!(e.contains("unknown key \"dayz\""), "{e}");
        assert!(e.contains("did you mean \"days\""), "{e}");
        assert!(e.contains("valid keys: rule, days"), "{e}");
        let e = parse("{ rule = \"email\", text = \"x\" }").expect_err("must fail");
        assert!(e.contains("unknown key \"text\" in rule \"email\""), "{e}");
        let e = parse("{ rul = \"email\" }").expect_err("must fail");
        assert!(e.contains("needs a \"rule\" key"), "{e}");
        assert!(e.contains("did you mean \"rule\""), "{e}");
    }

    #[test]
    fn bad_parameters_are_errors() {
        for (src, needle) in [
            ("\"redact\"", "needs parameters"),
            ("{ rule = \"redact\" }", "needs key \"text\""),
            ("{ rule = \"redact\", text = 3 }", "must be a string"),
            ("{ rule = \"date_shift\" }", "needs key \"days\""),
            ("{ rule = \"date_shift\", days = -1 }", "between 0 and"),
            (
                "{ rule = \"date_shift\", days = \"3\" }",
                "must be an integer",
            ),
            (
                "{ rule = \"numeric_noise\", percent = 150 }",
                "between 0 and 100",
            ),
            ("{ rule = \"array\" }", "needs key \"element\""),
            (
                "{ rule = \"array\", element = \"emial\" }",
                "array element: unknown rule",
            ),
            (
                "{ rule = \"json\", paths = { \"a..b\" = \"email\" } }",
                "json path \"a..b\"",
            ),
            (
                "{ rule = \"json\", paths = { \"a\" = \"nope\" } }",
                "json path \"a\": unknown rule",
            ),
            ("{ rule = \"json\", paths = [\"a\"] }", "must be a table"),
            ("3", "not an integer"),
            ("{ rule = 3 }", "must be a string"),
        ] {
            let e = parse(src).expect_err("must fail");
            assert!(e.contains(needle), "{src}: {e}");
        }
    }

    #[test]
    fn keeps_unique_flags_rules_that_repeat_values() {
        assert!(Rule::Email.keeps_unique());
        assert!(Rule::Hmac.keeps_unique());
        assert!(!Rule::Redact { text: "x".into() }.keeps_unique());
        assert!(!Rule::Scrub.keeps_unique());
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("emial", "email"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("days", "days"), 0);
    }
}
