//! The anonymizer as a [`RowTransform`]: applies a policy's rules to the rows of a
//! dump as they stream by, deterministically (one [`Faker`] for the whole dump).
//!
//! Fail closed: a column the policy has no rule for stops the dump, as do large
//! objects (their bytes cannot be anonymized by column rules).
//!
//! Billing data repeats itself (an invoice carries its client's e-mail, log lines
//! a handful of user agents, invoice lines a catalogue's wording), and a rule is
//! a pure function of the value while no unique-column collision gets resolved.
//! Each column of a table therefore memoizes its results ([`Memo`]): bounded in
//! bytes, switched off for columns whose values do not repeat, and emptied when
//! the faker resolves a collision.

use std::collections::HashSet;
use std::sync::Arc;

use super::policy::Policy;
use super::rules::{Faker, Rule};
use super::schema::SchemaInfo;
use crate::dump::{RowTransform, TableInfo, TransformError};
use crate::memo::{self, Memo};

/// The schema name SQLite tables are given in policies.
pub const SQLITE_SCHEMA: &str = "main";

/// One column's plan for the current table.
struct ColumnPlan {
    name: String,
    rule: Option<Rule>,
    unique: bool,
    memo: Memo<Option<Box<[u8]>>>,
}

/// Whether a column with this rule memoizes its results: not for rules with nothing
/// to remember, nor for unique columns (their result also depends on what the faker
/// produced before).
fn memoizes(rule: Option<&Rule>, unique: bool) -> bool {
    match rule {
        None | Some(Rule::Keep | Rule::Null | Rule::Redact { .. }) => false,
        Some(_) => !unique,
    }
}

/// Rewrites rows following a policy.
pub struct Anonymizer {
    policy: Arc<Policy>,
    faker: Faker,
    unique: HashSet<String>,
    plan: Vec<ColumnPlan>,
    mask: Vec<bool>,
    /// Columns of the current table whose memo is on: a pure rule, not unique.
    pure: Vec<bool>,
    /// Columns of the current table whose rule ignores the value (`null`, `redact`):
    /// their COPY text.
    constants: Vec<Option<Box<[u8]>>>,
    values: u64,
    rows: u64,
    /// The schema of tables a dump names without one (SQLite, MySQL).
    default_schema: String,
}

impl Anonymizer {
    /// `unique` lists the `schema.table.column` names under a single-column unique
    /// constraint, whose fakes must stay unique.
    pub fn new(policy: Arc<Policy>, key: &[u8], unique: HashSet<String>) -> Anonymizer {
        let faker = Faker::new(key, policy.locale);
        Anonymizer {
            policy,
            faker,
            unique,
            plan: Vec::new(),
            mask: Vec::new(),
            pure: Vec::new(),
            constants: Vec::new(),
            values: 0,
            rows: 0,
            default_schema: SQLITE_SCHEMA.to_owned(),
        }
    }

    /// Tables a dump names without a schema are looked up in the policy under `schema`
    /// (default `main`, SQLite's; a MySQL source's database name).
    pub fn with_default_schema(mut self, schema: String) -> Anonymizer {
        self.default_schema = schema;
        self
    }

    /// Unique columns of a schema, as [`Anonymizer::new`] wants them.
    pub fn unique_columns(schema: &SchemaInfo) -> HashSet<String> {
        schema
            .tables
            .iter()
            .flat_map(|t| {
                t.columns
                    .iter()
                    .filter(|c| c.unique)
                    .map(move |c| format!("{}.{}.{}", t.schema, t.name, c.name))
            })
            .collect()
    }

    /// Values rewritten so far.
    pub fn values_rewritten(&self) -> u64 {
        self.values
    }

    /// Rows that went through a rewriting plan so far.
    pub fn rows_rewritten(&self) -> u64 {
        self.rows
    }
}

impl RowTransform for Anonymizer {
    fn begin_table(&mut self, table: &TableInfo) -> Result<bool, TransformError> {
        self.plan.clear();
        self.mask.clear();
        self.pure.clear();
        self.constants.clear();
        let schema = if table.schema.is_empty() {
            self.default_schema.as_str()
        } else {
            table.schema.as_str()
        };
        if schema == SQLITE_SCHEMA && table.name == "sqlite_sequence" {
            return Ok(false); // SQLite's own counters: no personal data
        }
        let mut rewrite = false;
        for col in &table.columns {
            let rule = self
                .policy
                .rule_for(schema, &table.name, col)
                .ok_or_else(|| {
                    TransformError(format!(
                        "column {schema}.{}.{col} has no rule in policy {} (fail closed): \
                         the database changed since the policy was checked; run \
                         `coffre policy check` and review the policy",
                        table.name,
                        self.policy.file.display()
                    ))
                })?;
            let rule = (*rule != Rule::Keep).then(|| rule.clone());
            rewrite |= rule.is_some();
            self.mask.push(rule.is_some());
            let unique = self
                .unique
                .contains(&format!("{schema}.{}.{col}", table.name));
            self.pure.push(memoizes(rule.as_ref(), unique));
            let constant = match &rule {
                Some(Rule::Null) => Some(None),
                Some(Rule::Redact { text }) => Some(Some(text.as_bytes())),
                _ => None,
            };
            self.constants.push(constant.map(|value| {
                let mut copy = Vec::new();
                crate::dump::copy_text::encode_field(value, &mut copy);
                copy.into()
            }));
            self.plan.push(ColumnPlan {
                memo: Memo::disabled(), // set below, once the table's count is known
                unique,
                name: col.clone(),
                rule,
            });
        }
        // The table's memos share one budget.
        let limits = memo::column_limits(self.pure.iter().filter(|p| **p).count());
        for (plan, pure) in self.plan.iter_mut().zip(&self.pure) {
            if *pure {
                plan.memo = Memo::new(limits);
            }
        }
        Ok(rewrite)
    }

    fn transform_row(
        &mut self,
        table: &TableInfo,
        fields: &mut [Option<Vec<u8>>],
    ) -> Result<(), TransformError> {
        self.rows += 1;
        for (field, plan) in fields.iter_mut().zip(self.plan.iter_mut()) {
            let Some(rule) = &plan.rule else { continue };
            let Some(value) = field.as_ref() else {
                continue; // NULL stays NULL
            };
            // Rules that ignore the value also take binary values (bytea, blobs).
            match rule {
                Rule::Null => {
                    *field = None;
                    self.values += 1;
                    continue;
                }
                Rule::Redact { text } => {
                    *field = Some(text.clone().into_bytes());
                    self.values += 1;
                    continue;
                }
                _ => {}
            }
            let epoch = self.faker.resolutions();
            if let Some(hit) = plan.memo.get(value, epoch) {
                *field = hit.as_deref().map(<[u8]>::to_vec);
                self.values += 1;
                continue;
            }
            let text = std::str::from_utf8(value).map_err(|_| {
                TransformError(format!(
                    "column {}.{}: value is not UTF-8 text; rule {} needs text (use keep or null)",
                    table.qualified(),
                    plan.name,
                    rule.name()
                ))
            })?;
            let out = self.faker.apply(rule, text, plan.unique).map_err(|e| {
                TransformError(format!("column {}.{}: {e}", table.qualified(), plan.name))
            })?;
            // Memoized under the epoch the result was computed in: a collision
            // resolved while computing it empties the memo instead.
            plan.memo
                .put_with(value, out.as_ref().map_or(0, String::len), epoch, || {
                    out.as_deref().map(|o| o.as_bytes().into())
                });
            *field = out.map(String::into_bytes);
            self.values += 1;
        }
        Ok(())
    }

    fn column_mask(&self) -> Option<&[bool]> {
        Some(&self.mask)
    }

    /// The columns whose results this anonymizer memoizes itself (pure rules on columns
    /// that are not unique); the epoch is the faker's count of resolved collisions.
    fn pure_columns(&self) -> Option<(&[bool], u64)> {
        Some((&self.pure, self.faker.resolutions()))
    }

    fn constant_columns(&self) -> Option<&[Option<Box<[u8]>>]> {
        Some(&self.constants)
    }

    fn large_object(&mut self) -> Result<(), TransformError> {
        Err(TransformError(
            "the database holds large objects, which no policy rule can anonymize (fail closed): \
             store them in bytea columns, or back up this source without --anonymize"
                .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::anonymize::rules::Locale;

    const POLICY: &str = r#"
locale = "fr_FR"

[tables."public.t"]
email = "email"
ua = "user_agent"
note = "scrub"
code = "keep"
"#;

    fn rows() -> Vec<[&'static str; 4]> {
        let mut rows = Vec::new();
        for i in 0..20_000 {
            let email = ["a@x.fr", "b@x.fr", "C@X.FR", "d@x.fr"][i % 4];
            let ua = ["Mozilla/5.0 A", "curl/8.0"][i % 2];
            let note = ["appeler le 06 12 34 56 78", "RAS", "mail a@x.fr"][i % 3];
            rows.push([email, ua, note, "k"]);
        }
        rows
    }

    /// The memo changes nothing: every value is what the faker alone gives.
    #[test]
    fn memoized_results_equal_direct_ones() {
        let policy = Arc::new(Policy::from_str_at(POLICY, Path::new("p.toml")).expect("policy"));
        let mut anon = Anonymizer::new(policy.clone(), b"0123456789abcdef", HashSet::new());
        let mut direct = Faker::new(b"0123456789abcdef", Locale::FrFr);
        let table = TableInfo {
            schema: "public".into(),
            name: "t".into(),
            columns: vec!["email".into(), "ua".into(), "note".into(), "code".into()],
        };
        assert!(anon.begin_table(&table).expect("begin"));
        let rules = ["email", "ua", "note"]
            .map(|c| policy.rule_for("public", "t", c).expect("rule").clone());
        for row in rows() {
            let mut fields: Vec<Option<Vec<u8>>> =
                row.iter().map(|v| Some(v.as_bytes().to_vec())).collect();
            anon.transform_row(&table, &mut fields).expect("row");
            for (i, rule) in rules.iter().enumerate() {
                let want = direct.apply(rule, row[i], false).expect("direct");
                assert_eq!(
                    fields[i].as_deref(),
                    want.as_deref().map(str::as_bytes),
                    "column {i} of {row:?}"
                );
            }
            assert_eq!(fields[3].as_deref(), Some(&b"k"[..]));
        }
        // The repeated columns were served from the memo.
        assert!(
            anon.plan
                .iter()
                .take(3)
                .all(|p| !p.memo.is_off() && p.memo.hits() > 10_000)
        );
    }

    /// Forwards only what a parser needs: no memo, no constants.
    struct NoShortcuts(Anonymizer);

    impl RowTransform for NoShortcuts {
        fn begin_table(&mut self, t: &TableInfo) -> Result<bool, TransformError> {
            self.0.begin_table(t)
        }
        fn transform_row(
            &mut self,
            t: &TableInfo,
            fields: &mut [Option<Vec<u8>>],
        ) -> Result<(), TransformError> {
            self.0.transform_row(t, fields)
        }
        fn column_mask(&self) -> Option<&[bool]> {
            self.0.column_mask()
        }
    }

    /// The PostgreSQL parser's shortcuts (outputs remembered by input text, constants
    /// written for `null` and `redact` without decoding) change nothing: the same text
    /// and stats as every value through the rules.
    #[test]
    fn parser_shortcuts_give_what_the_rules_give() {
        let policy = Arc::new(
            Policy::from_str_at(
                r#"
locale = "fr_FR"

[tables."public.t"]
email = "email"
pdf = "null"
note = { rule = "redact", text = "caché\t \"x\"" }
code = "keep"
"#,
                Path::new("p.toml"),
            )
            .expect("policy"),
        );
        let mut dump = String::from("COPY public.t (email, pdf, note, code) FROM stdin;\n");
        for i in 0..20_000 {
            let email = ["a@x.fr", "b@x.fr", "\\N", "C@X.FR"][i % 4];
            let pdf = if i % 3 == 0 {
                "\\N".to_owned()
            } else {
                format!("\\\\x{i:08x}")
            };
            let note = ["RAS", "\\N", "tab\\there"][i % 3];
            dump.push_str(&format!("{email}\t{pdf}\t{note}\tk{i}\n"));
        }
        dump.push_str("\\.\n");
        let parse = |t: &mut dyn RowTransform| {
            let mut p =
                crate::dump::pg_plain::PgPlainParser::new(t, crate::dump::pg_plain::Output::Emit);
            for piece in dump.as_bytes().chunks(8192) {
                p.feed(piece).expect("feed");
            }
            p.finish().expect("finish")
        };
        let key = b"0123456789abcdef";
        let mut fast = Anonymizer::new(policy.clone(), key, HashSet::new());
        let mut slow = NoShortcuts(Anonymizer::new(policy, key, HashSet::new()));
        let (fast_out, fast_stats) = parse(&mut fast);
        let (slow_out, slow_stats) = parse(&mut slow);
        assert_eq!(fast_out, slow_out);
        assert_eq!(fast_stats, slow_stats);
        let text = String::from_utf8(fast_out).expect("utf-8");
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            rows[0],
            format!(
                "{}\t\\N\tcaché\\t \"x\"\tk0",
                rows[0].split('\t').next().unwrap_or_default()
            )
        );
        assert!(
            rows[1].contains("\t\\N\t\\N\tk1"),
            "a NULL stays NULL under redact: {}",
            rows[1]
        );
        assert!(!text.contains("a@x.fr") && !text.contains("\\x0000"));
        assert!(
            fast.rows_rewritten() < slow.0.rows_rewritten() / 10,
            "rows answered without the rules: {} of {}",
            fast.rows_rewritten(),
            slow.0.rows_rewritten()
        );
    }

    /// Columns whose rule leaves nothing to remember, and unique columns, do not
    /// memoize (the memo's own trial is tested in `memo.rs`).
    #[test]
    fn which_columns_memoize() {
        assert!(memoizes(Some(&Rule::Email), false));
        assert!(
            !memoizes(Some(&Rule::Email), true),
            "unique columns never memoize"
        );
        for rule in [None, Some(Rule::Keep), Some(Rule::Null)] {
            assert!(!memoizes(rule.as_ref(), false), "{rule:?}");
        }
    }
}
