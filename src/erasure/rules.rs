//! Erasure rules: what erasing one subject means for a source's schema, read from the
//! `[erasure]` section of the source's policy file and checked against the live schema
//! like the rest of the policy (fail closed).
//!
//! ```toml
//! [erasure]
//! subject = "public.clients.id"        # the table and key column that name a subject
//!
//! [erasure.tables]
//! "public.contacts" = { match = "client_id", action = "delete" }
//! "public.factures" = { match = "client_id", action = "pseudonymize" }
//! "public.lignes_facture" = { match = "facture_id -> public.factures.id", action = "pseudonymize" }
//! "public.clients" = { match = "id", action = "delete" }
//! ```
//!
//! A table's `match` is a column holding the subject's key, or `column -> schema.table.column`:
//! the rows whose column holds that column of a matched row of another table of the rules.
//! `delete` removes the matched rows; `pseudonymize` rewrites them with the table's
//! anonymization rules (the rest of the policy) and keeps them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::anonymize::schema::{Dialect, SchemaInfo, TableSchema};
use crate::config::Problem;
use crate::config::did_you_mean;
use crate::config::locate::Locations;

const KEYS: &[&str] = &["subject", "tables"];
const RULE_KEYS: &[&str] = &["match", "action"];
const ACTIONS: &[&str] = &["delete", "pseudonymize"];

/// What happens to a matched row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Delete,
    Pseudonymize,
}

/// How a table's rows are tied to a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// The column holds the subject's key.
    Subject { column: String },
    /// The column holds `parent_column` of a matched row of `parent` (`schema.table`).
    Via {
        column: String,
        parent: String,
        parent_column: String,
    },
}

impl Action {
    /// `deleted` or `pseudonymized`.
    pub fn past_tense(self) -> &'static str {
        match self {
            Action::Delete => "deleted",
            Action::Pseudonymize => "pseudonymized",
        }
    }
}

impl Match {
    pub fn column(&self) -> &str {
        match self {
            Match::Subject { column } | Match::Via { column, .. } => column,
        }
    }
}

/// The rule of one table.
#[derive(Debug, Clone)]
pub struct TableRule {
    /// `schema.table`.
    pub table: String,
    pub action: Action,
    pub matches: Match,
    pub line: Option<usize>,
}

/// The `[erasure]` section of a policy.
#[derive(Debug, Clone)]
pub struct ErasureRules {
    /// `schema.table` of the subject.
    pub subject_table: String,
    pub subject_column: String,
    pub subject_line: Option<usize>,
    /// By `schema.table`.
    pub tables: BTreeMap<String, TableRule>,
    pub line: Option<usize>,
}

/// Splits `schema.table.column` into (`schema.table`, `column`).
fn split_column(text: &str) -> Option<(String, String)> {
    let (table, column) = text.rsplit_once('.')?;
    let (schema, name) = table.split_once('.')?;
    if schema.is_empty() || name.is_empty() || column.is_empty() {
        return None;
    }
    Some((table.to_owned(), column.to_owned()))
}

/// Parses `column` or `column -> schema.table.column`.
fn parse_match(text: &str) -> Result<Match, String> {
    match text.split_once("->") {
        None => {
            let column = text.trim();
            if column.is_empty() {
                return Err("match is empty: name the column that holds the subject's key".into());
            }
            Ok(Match::Subject {
                column: column.to_owned(),
            })
        }
        Some((column, parent)) => {
            let column = column.trim();
            let (parent, parent_column) = split_column(parent.trim()).ok_or_else(|| {
                format!(
                    "match {text:?}: after \"->\" write schema.table.column, e.g. \
                     \"facture_id -> public.factures.id\""
                )
            })?;
            if column.is_empty() {
                return Err(format!("match {text:?}: name a column before \"->\""));
            }
            Ok(Match::Via {
                column: column.to_owned(),
                parent,
                parent_column,
            })
        }
    }
}

fn unknown_key(key: &str, valid: &[&str], place: &str) -> String {
    let mut message = format!(
        "unknown key {key:?} in {place} (expected one of: {})",
        valid.join(", ")
    );
    if let Some(close) = did_you_mean(key, valid.iter().copied()) {
        let _ = write!(message, "; did you mean {close:?}?");
    }
    message.push(')');
    message
}

/// Parses the `[erasure]` table; problems go to `problems` with their lines.
pub(crate) fn parse(
    value: &toml::Value,
    at: &Locations,
    problems: &mut Vec<Problem>,
) -> Option<ErasureRules> {
    let line = at.line(&["erasure"]);
    let mut report =
        |line: Option<usize>, message: String| problems.push(Problem { line, message });
    let Some(root) = value.as_table() else {
        report(
            line,
            format!(
                "erasure must be a table, not {}: write an [erasure] section with subject = \
                 \"schema.table.column\" and [erasure.tables]",
                value.type_str()
            ),
        );
        return None;
    };
    let mut ok = true;
    for key in root.keys().filter(|k| !KEYS.contains(&k.as_str())) {
        report(
            at.line(&["erasure", key]),
            unknown_key(key, KEYS, "[erasure]"),
        );
        ok = false;
    }
    let subject_line = at.line(&["erasure", "subject"]);
    let subject = match root.get("subject").map(|v| v.as_str()) {
        Some(Some(text)) => match split_column(text) {
            Some(s) => Some(s),
            None => {
                report(
                    subject_line,
                    format!(
                        "erasure subject {text:?} must be \"schema.table.column\", e.g. \
                         \"public.clients.id\""
                    ),
                );
                None
            }
        },
        Some(None) => {
            report(
                subject_line,
                "erasure subject must be a string: subject = \"schema.table.column\"".into(),
            );
            None
        }
        None => {
            report(
                line,
                "[erasure] has no subject: add subject = \"schema.table.column\", the key that \
                 names a person (e.g. \"public.clients.id\")"
                    .into(),
            );
            None
        }
    };
    let mut tables = BTreeMap::new();
    match root.get("tables").map(|v| v.as_table()) {
        Some(Some(list)) => {
            for (name, rule) in list {
                let rline = at.line(&["erasure", "tables", name]);
                if name
                    .split_once('.')
                    .is_none_or(|(s, t)| s.is_empty() || t.is_empty())
                {
                    report(
                        rline,
                        format!("erasure table {name:?} must be \"schema.table\", in quotes"),
                    );
                    ok = false;
                    continue;
                }
                let Some(rule) = rule.as_table() else {
                    report(
                        rline,
                        format!(
                            "erasure table {name:?} must be {{ match = \"column\", action = \
                             \"delete\" | \"pseudonymize\" }}"
                        ),
                    );
                    ok = false;
                    continue;
                };
                for key in rule.keys().filter(|k| !RULE_KEYS.contains(&k.as_str())) {
                    report(
                        at.line(&["erasure", "tables", name, key]),
                        unknown_key(key, RULE_KEYS, &format!("erasure table {name:?}")),
                    );
                    ok = false;
                }
                let action = match rule.get("action").and_then(|v| v.as_str()) {
                    Some("delete") => Some(Action::Delete),
                    Some("pseudonymize") => Some(Action::Pseudonymize),
                    other => {
                        let mut message = format!(
                            "erasure table {name:?}: action must be one of {}",
                            ACTIONS.join(", ")
                        );
                        if let Some(close) =
                            other.and_then(|o| did_you_mean(o, ACTIONS.iter().copied()))
                        {
                            let _ = write!(message, " (did you mean {close:?}?)");
                        }
                        report(at.line(&["erasure", "tables", name, "action"]), message);
                        None
                    }
                };
                let matches = match rule.get("match").and_then(|v| v.as_str()) {
                    Some(text) => match parse_match(text) {
                        Ok(m) => Some(m),
                        Err(e) => {
                            report(
                                at.line(&["erasure", "tables", name, "match"]),
                                format!("erasure table {name:?}: {e}"),
                            );
                            None
                        }
                    },
                    None => {
                        report(
                            rline,
                            format!(
                                "erasure table {name:?} has no match: add match = \"column\" \
                                 (the column holding the subject's key) or \"column -> \
                                 schema.table.column\""
                            ),
                        );
                        None
                    }
                };
                match (action, matches) {
                    (Some(action), Some(matches)) => {
                        tables.insert(
                            name.clone(),
                            TableRule {
                                table: name.clone(),
                                action,
                                matches,
                                line: rline,
                            },
                        );
                    }
                    _ => ok = false,
                }
            }
        }
        Some(None) => {
            report(
                at.line(&["erasure", "tables"]),
                "erasure tables must be a table: [erasure.tables] then \"schema.table\" = { … }"
                    .into(),
            );
            ok = false;
        }
        None => {
            report(
                line,
                "[erasure] has no tables: add [erasure.tables] with one rule per table that \
                 holds the subject's data"
                    .into(),
            );
            ok = false;
        }
    }
    let (subject_table, subject_column) = subject?;
    ok.then_some(ErasureRules {
        subject_table,
        subject_column,
        subject_line,
        tables,
        line,
    })
}

impl ErasureRules {
    /// How many `->` links separate a table from the subject (0: it matches the key).
    pub fn depth(&self, table: &str) -> usize {
        let mut depth = 0;
        let mut at = table;
        while let Some(TableRule {
            matches: Match::Via { parent, .. },
            ..
        }) = self.tables.get(at)
        {
            depth += 1;
            at = parent;
            if depth > self.tables.len() {
                break; // a cycle: refused by `check`
            }
        }
        depth
    }

    /// The rules in the order they are applied: the tables furthest from the subject
    /// first, so that every table's match still sees the rows of the tables it goes
    /// through, untouched.
    pub fn in_order(&self) -> Vec<&TableRule> {
        let mut rules: Vec<&TableRule> = self.tables.values().collect();
        rules.sort_by_key(|r| std::cmp::Reverse(self.depth(&r.table)));
        rules
    }

    /// Whether `subject` (`[schema.]table.column`, the schema optional) names this
    /// policy's subject.
    pub fn names_subject(&self, table: &str, column: &str) -> bool {
        column == self.subject_column
            && (table == self.subject_table
                || self
                    .subject_table
                    .split_once('.')
                    .is_some_and(|(_, name)| name == table))
    }

    /// The SQL condition selecting the rows of `table` that belong to the erased subjects:
    /// `subject(quoted column)` compares a column with the subjects' keys, `quote` quotes
    /// a column, `table_name` names a table of the rules in SQL.
    pub fn predicate(
        &self,
        table: &str,
        subject: &dyn Fn(&str) -> String,
        quote: &dyn Fn(&str) -> String,
        table_name: &dyn Fn(&str) -> String,
    ) -> String {
        match self.tables.get(table).map(|r| &r.matches) {
            Some(Match::Subject { column }) => subject(&quote(column)),
            Some(Match::Via {
                column,
                parent,
                parent_column,
            }) => format!(
                "{} IN (SELECT {} FROM {} WHERE {})",
                quote(column),
                quote(parent_column),
                table_name(parent),
                self.predicate(parent, subject, quote, table_name)
            ),
            None => "FALSE".to_owned(),
        }
    }
}

/// `"schema"."table"` from `schema.table`.
pub fn quote_table(table: &str, quote: &dyn Fn(&str) -> String) -> String {
    match table.split_once('.') {
        Some((schema, name)) => format!("{}.{}", quote(schema), quote(name)),
        None => quote(table),
    }
}

/// Checks the rules against the schema: every table and column they name must exist,
/// links must lead to a table of the rules without a cycle, and the subject's own table
/// must have a rule. Each problem is `(line, message)`.
pub fn check(rules: &ErasureRules, schema: &SchemaInfo) -> Vec<(Option<usize>, String)> {
    let mut out = Vec::new();
    let find = |name: &str| -> Option<&TableSchema> {
        schema.tables.iter().find(|t| t.qualified() == name)
    };
    let names: Vec<String> = schema.tables.iter().map(TableSchema::qualified).collect();
    let missing_table = |name: &str| {
        let close = did_you_mean(name, names.iter().map(String::as_str))
            .map(|c| format!(" (did you mean {c:?}?)"))
            .unwrap_or_default();
        let hint = match schema.dialect {
            Dialect::Sqlite => " (SQLite tables are \"main.table\")",
            Dialect::Mysql => " (MySQL tables are \"database.table\")",
            Dialect::Postgres => "",
        };
        format!("erasure: table {name} is not in the database{close}{hint}")
    };
    let missing_column = |table: &TableSchema, column: &str| {
        let close = did_you_mean(column, table.columns.iter().map(|c| c.name.as_str()))
            .map(|c| format!(" (did you mean {c:?}?)"))
            .unwrap_or_default();
        format!(
            "erasure: column {column:?} is not in table {}{close}",
            table.qualified()
        )
    };
    match find(&rules.subject_table) {
        None => out.push((rules.subject_line, missing_table(&rules.subject_table))),
        Some(t) if t.column(&rules.subject_column).is_none() => {
            out.push((rules.subject_line, missing_column(t, &rules.subject_column)));
        }
        Some(_) => {}
    }
    if !rules.tables.contains_key(&rules.subject_table) {
        out.push((
            rules.subject_line,
            format!(
                "erasure: the subject's table {} has no rule: add \"{}\" = {{ match = \"{}\", \
                 action = \"delete\" }} (or \"pseudonymize\") under [erasure.tables]",
                rules.subject_table, rules.subject_table, rules.subject_column
            ),
        ));
    }
    for rule in rules.tables.values() {
        let Some(table) = find(&rule.table) else {
            out.push((rule.line, missing_table(&rule.table)));
            continue;
        };
        if table.column(rule.matches.column()).is_none() {
            out.push((rule.line, missing_column(table, rule.matches.column())));
        }
        if let Match::Via {
            parent,
            parent_column,
            ..
        } = &rule.matches
        {
            if !rules.tables.contains_key(parent) {
                out.push((
                    rule.line,
                    format!(
                        "erasure: {} matches through {parent}, which has no rule under \
                         [erasure.tables]: give it one (the link needs its matched rows)",
                        rule.table
                    ),
                ));
            } else if let Some(p) = find(parent)
                && p.column(parent_column).is_none()
            {
                out.push((rule.line, missing_column(p, parent_column)));
            }
            if rules.depth(&rule.table) > rules.tables.len() {
                out.push((
                    rule.line,
                    format!(
                        "erasure: the links from {} come back to it: every chain of \"->\" \
                         must end at a table matched by the subject's key",
                        rule.table
                    ),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Result<ErasureRules, Vec<Problem>> {
        let value: toml::Table = toml::from_str(text).expect("toml");
        let lines = crate::config::locate::LineIndex::new(text);
        let doc = toml::de::DeTable::parse(text).expect("toml");
        let at = Locations::from_document(doc.get_ref(), &lines);
        let mut problems = Vec::new();
        let parsed = parse(&value["erasure"], &at, &mut problems);
        match parsed {
            Some(r) if problems.is_empty() => Ok(r),
            _ => Err(problems),
        }
    }

    const BILLING: &str = r#"
[erasure]
subject = "public.clients.id"
[erasure.tables]
"public.contacts" = { match = "client_id", action = "delete" }
"public.factures" = { match = "client_id", action = "pseudonymize" }
"public.lignes_facture" = { match = "facture_id -> public.factures.id", action = "pseudonymize" }
"public.clients" = { match = "id", action = "delete" }
"#;

    #[test]
    fn parses_links_and_orders_the_furthest_tables_first() {
        let r = rules(BILLING).expect("valid");
        assert_eq!(r.subject_table, "public.clients");
        assert_eq!(r.subject_column, "id");
        assert_eq!(r.depth("public.lignes_facture"), 1);
        assert_eq!(r.depth("public.clients"), 0);
        let order: Vec<&str> = r.in_order().iter().map(|t| t.table.as_str()).collect();
        assert_eq!(order[0], "public.lignes_facture");
        let q = |s: &str| format!("\"{s}\"");
        let subject = |c: &str| format!("{c} IN ('42')");
        assert_eq!(
            r.predicate("public.lignes_facture", &subject, &q, &|t| quote_table(
                t, &q
            )),
            "\"facture_id\" IN (SELECT \"id\" FROM \"public\".\"factures\" WHERE \"client_id\" IN ('42'))"
        );
        assert!(r.names_subject("clients", "id"));
        assert!(r.names_subject("public.clients", "id"));
        assert!(!r.names_subject("clients", "email"));
    }

    #[test]
    fn typos_are_named_with_their_line() {
        let text = BILLING
            .replace(
                "action = \"delete\" }\n\"public.factures\"",
                "action = \"delet\" }\n\"public.factures\"",
            )
            .replace("[erasure.tables]", "subjet = 1\n[erasure.tables]");
        let problems = rules(&text).expect_err("invalid");
        let messages: Vec<String> = problems
            .iter()
            .map(|p| format!("{:?}: {}", p.line, p.message))
            .collect();
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("Some(4)") && m.contains("did you mean \"subject\"")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("Some(6)") && m.contains("did you mean \"delete\"")),
            "{messages:?}"
        );
    }
}
