//! Re-applying the erasure ledger to a restored database, inside the restore's
//! transaction, before it commits: so an erased person never comes back, even for a moment.
//!
//! For PostgreSQL, through the restore's own `psql` ([`SessionSql`]):
//!
//! 1. the session takes the text forms `pg_dump` uses (UTC, ISO dates, exact floats, hex
//!    bytea), so a row read back here is the line a dump would hold;
//! 2. the foreign keys that point at a table with `delete` rows are dropped, to be added
//!    back at the end;
//! 3. each table's rule runs, the tables furthest from the subject first: `delete` removes
//!    the matched rows (`DELETE … RETURNING` gives their text), `pseudonymize` reads them,
//!    rewrites them with the table's anonymization rules and writes them back by `ctid`
//!    (`UPDATE … RETURNING` gives the new text);
//! 4. each dropped foreign key is added back, validated when no row points at a deleted
//!    one, else `NOT VALID` (rows kept by law, such as invoices, may point at an erased
//!    client): reported either way.
//!
//! The rows removed and rewritten give the expected per-table counts and checksums of the
//! erased database ([`Applied::expected`]), so a drill still checks every table exactly.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::rules::{Action, ErasureRules, quote_table};
use crate::anonymize::policy::Policy;
use crate::anonymize::schema::Dialect;
use crate::anonymize::transform::Anonymizer;
use crate::dump::{DumpStats, RowTransform, TableInfo, copy_text, quote_ident, quote_literal};
use crate::source::{SessionSql, SourceError};

/// What to erase, and how.
pub struct Plan {
    pub policy: Arc<Policy>,
    pub rules: ErasureRules,
    /// The key of pseudonyms (the anonymization key, or one derived from the integrity key).
    pub key: Vec<u8>,
    /// `schema.table.column` under a unique constraint (their pseudonyms stay unique).
    pub unique: HashSet<String>,
    /// The ledger entries applied.
    pub erasures: Vec<Applies>,
    /// The schema of tables a dump names without one (SQLite's `main`, a MySQL source's
    /// database).
    pub default_schema: String,
}

impl Plan {
    /// The distinct keys of the erased subjects, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .erasures
            .iter()
            .map(|e| e.subject.rsplit_once('=').map_or("", |(_, k)| k).to_owned())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// The keys as a list of SQL literals, for `IN (…)`.
    fn key_list(keys: &[String]) -> String {
        keys.iter()
            .map(|k| quote_literal(k))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The queries that are true when no row of a `delete` rule is left for these keys,
    /// for the tables `present` says the database has, in its dialect (MySQL: tables
    /// unqualified, as the drill's scratch database is not the source's).
    fn verify_sql(
        &self,
        keys: &[String],
        dialect: Dialect,
        present: &dyn Fn(&str) -> bool,
    ) -> Vec<String> {
        let key_list = Plan::key_list(keys);
        let (quote, cast): (fn(&str) -> String, &str) = match dialect {
            Dialect::Mysql => (crate::dump::mysql_rows::quote_mysql_ident, "CHAR"),
            Dialect::Postgres | Dialect::Sqlite => (quote_ident, "text"),
        };
        let table_name = |t: &str| match dialect {
            Dialect::Mysql => quote(t.split_once('.').map_or(t, |(_, n)| n)),
            Dialect::Postgres | Dialect::Sqlite => quote_table(t, &quote),
        };
        let subject = |column: &str| format!("CAST({column} AS {cast}) IN ({key_list})");
        self.rules
            .in_order()
            .into_iter()
            .filter(|r| r.action == Action::Delete && present(&r.table))
            .map(|r| {
                format!(
                    "SELECT NOT EXISTS (SELECT 1 FROM {} WHERE {})",
                    table_name(&r.table),
                    self.rules
                        .predicate(&r.table, &subject, &quote, &table_name)
                )
            })
            .collect()
    }
}

/// Applies `plan` to an SQLite or MySQL dump (`dialect`) on its way from `input` into
/// `write`: the rows of `delete` rules are left out, those of `pseudonymize` rules
/// rewritten, the others go through as they are. The text written is what the
/// expectation is computed on. Tables the dump names without a schema are looked up
/// under `default_schema` (`main`, or a MySQL source's database).
pub fn apply_stream(
    plan: &Plan,
    dialect: Dialect,
    default_schema: &str,
    input: &mut dyn std::io::Read,
    write: &mut dyn FnMut(Vec<u8>) -> Result<(), SourceError>,
) -> Result<Applied, SourceError> {
    let keys = plan.keys();
    let mut anonymizer = Anonymizer::new(plan.policy.clone(), &plan.key, plan.unique.clone())
        .with_default_schema(default_schema.to_owned());
    let mut filter = super::filter::EraseFilter::new(
        &mut anonymizer,
        super::filter::Inner::ErasedRows,
        &plan.rules,
        &keys,
        default_schema,
    );
    let read_err = |e: std::io::Error| SourceError::Other(format!("reading the backup: {e}"));
    let expected = match dialect {
        Dialect::Mysql => crate::dump::pump(
            input,
            crate::dump::mysql_rows::MysqlRewriter::new(&mut filter),
            crate::pipeline::CHUNK,
            write,
            read_err,
            SourceError::from,
        )?,
        Dialect::Sqlite | Dialect::Postgres => crate::dump::pump(
            input,
            crate::dump::sqlite_rows::SqliteRewriter::new(&mut filter),
            crate::pipeline::CHUNK,
            write,
            read_err,
            SourceError::from,
        )?,
    };
    let tables = plan
        .rules
        .in_order()
        .into_iter()
        .map(|r| TableOutcome {
            table: r.table.clone(),
            action: r.action,
            rows: match r.action {
                Action::Delete => filter.dropped.get(&r.table).copied().unwrap_or(0),
                Action::Pseudonymize => filter.rewritten.get(&r.table).copied().unwrap_or(0),
            },
        })
        .collect();
    Ok(Applied {
        erasures: plan.erasures.clone(),
        subjects: keys.len(),
        tables,
        foreign_keys_not_valid: Vec::new(),
        skipped: Vec::new(),
        verify_sql: plan.verify_sql(&keys, dialect, &|t| {
            let name = t.split_once('.').map_or(t, |(_, n)| n);
            expected.tables.iter().any(|s| s.name == name)
        }),
        expected,
    })
}

/// One ledger entry, as a report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applies {
    pub id: String,
    pub subject: String,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
}

/// One table after the erasure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableOutcome {
    pub table: String,
    pub action: Action,
    /// Rows deleted or rewritten.
    pub rows: u64,
}

/// What applying the ledger did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub erasures: Vec<Applies>,
    /// Distinct subjects.
    pub subjects: usize,
    pub tables: Vec<TableOutcome>,
    /// Foreign keys added back `NOT VALID`, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys_not_valid: Vec<String>,
    /// Rules of tables the backup does not hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    /// The manifest's tables with the erased rows taken out and the rewritten ones in.
    #[serde(skip)]
    pub expected: DumpStats,
    /// Read-only queries that are true when no row of a `delete` rule is left, for a
    /// drill to run on the committed database.
    #[serde(skip)]
    pub verify_sql: Vec<String>,
}

/// Per-table change of a checksum: rows taken out and put in.
#[derive(Default)]
struct Delta {
    removed: u64,
    added: u64,
    sub: u128,
    add: u128,
}

impl Delta {
    fn remove(&mut self, line: &[u8]) {
        self.removed += 1;
        self.sub = self.sub.wrapping_add(xxhash_rust::xxh3::xxh3_128(line));
    }
    fn insert(&mut self, line: &[u8]) {
        self.added += 1;
        self.add = self.add.wrapping_add(xxhash_rust::xxh3::xxh3_128(line));
    }
}

fn fail(message: String) -> SourceError {
    SourceError::Other(format!("applying the erasure ledger: {message}"))
}

/// Applies `plan` to a PostgreSQL restore whose manifest recorded `manifest`.
pub fn apply_postgres(
    sql: &mut dyn SessionSql,
    plan: &Plan,
    manifest: &DumpStats,
) -> Result<Applied, SourceError> {
    let keys = plan.keys();
    let mut applied = Applied {
        erasures: plan.erasures.clone(),
        subjects: keys.len(),
        tables: Vec::new(),
        foreign_keys_not_valid: Vec::new(),
        skipped: Vec::new(),
        expected: manifest.clone(),
        verify_sql: plan.verify_sql(&keys, Dialect::Postgres, &|t| {
            manifest.tables.iter().any(|s| s.qualified() == t)
        }),
    };
    if keys.is_empty() {
        return Ok(applied);
    }
    let key_list = Plan::key_list(&keys);
    let quote = |s: &str| quote_ident(s);
    let stats_of = |table: &str| manifest.tables.iter().find(|t| t.qualified() == table);

    // Which rules apply: a table the backup lacks has nothing to erase, but a link
    // through it cannot be followed.
    let mut rules = Vec::new();
    for rule in plan.rules.in_order() {
        let Some(stats) = stats_of(&rule.table) else {
            applied
                .skipped
                .push(format!("{}: not in this backup", rule.table));
            continue;
        };
        let mut at = rule;
        loop {
            if !stats_of(&at.table)
                .is_some_and(|s| s.columns.iter().any(|c| c == at.matches.column()))
            {
                return Err(fail(format!(
                    "the rule of {} matches on {}.{}, which this backup does not hold: fix the \
                     policy's [erasure] section for backups of this age",
                    rule.table,
                    at.table,
                    at.matches.column()
                )));
            }
            match &at.matches {
                super::rules::Match::Subject { .. } => break,
                super::rules::Match::Via { parent, .. } => {
                    at = plan.rules.tables.get(parent).ok_or_else(|| {
                        fail(format!(
                            "{} links to {parent}, which has no rule",
                            rule.table
                        ))
                    })?;
                }
            }
        }
        rules.push((rule, stats));
    }

    sql.execute(
        "SET LOCAL DateStyle = ISO; SET LOCAL TimeZone = 'UTC'; SET LOCAL IntervalStyle = postgres; \
         SET LOCAL extra_float_digits = 3; SET LOCAL bytea_output = hex",
    )?;

    // Foreign keys into tables that lose rows: dropped now, added back at the end.
    let deleted: Vec<String> = rules
        .iter()
        .filter(|(r, _)| r.action == Action::Delete)
        .map(|(r, _)| quote_literal(&quote_table(&r.table, &quote)))
        .collect();
    let mut foreign_keys = Vec::new();
    if !deleted.is_empty() {
        let lines = sql.copy_lines(&format!(
            "SELECT format('%I.%I', cn.nspname, cr.relname), quote_ident(c.conname), \
                    pg_get_constraintdef(c.oid), format('%I.%I', pn.nspname, pr.relname), \
                    (SELECT string_agg(quote_ident(a.attname), ',' ORDER BY k.i) \
                       FROM unnest(c.conkey) WITH ORDINALITY k(n, i) \
                       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n), \
                    (SELECT string_agg(quote_ident(a.attname), ',' ORDER BY k.i) \
                       FROM unnest(c.confkey) WITH ORDINALITY k(n, i) \
                       JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n) \
             FROM pg_catalog.pg_constraint c \
             JOIN pg_catalog.pg_class cr ON cr.oid = c.conrelid \
             JOIN pg_catalog.pg_namespace cn ON cn.oid = cr.relnamespace \
             JOIN pg_catalog.pg_class pr ON pr.oid = c.confrelid \
             JOIN pg_catalog.pg_namespace pn ON pn.oid = pr.relnamespace \
             WHERE c.contype = 'f' AND c.confrelid = ANY (ARRAY[{}]::regclass[]) \
             ORDER BY 1, 2",
            deleted.join(", ")
        ))?;
        for line in lines {
            let f: Vec<String> = copy_text::split_fields(&line)
                .map(|raw| {
                    copy_text::decode_field(raw)
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                        .unwrap_or_default()
                })
                .collect();
            if let [child, name, def, parent, columns, parent_columns] = f.as_slice() {
                sql.execute(&format!("ALTER TABLE {child} DROP CONSTRAINT {name}"))?;
                foreign_keys.push((
                    child.clone(),
                    name.clone(),
                    def.clone(),
                    parent.clone(),
                    columns.clone(),
                    parent_columns.clone(),
                ));
            }
        }
    }

    let mut anonymizer = Anonymizer::new(plan.policy.clone(), &plan.key, plan.unique.clone());
    for (rule, stats) in rules {
        let table = quote_table(&rule.table, &quote);
        let columns = stats
            .columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let subject = |column: &str| format!("CAST({column} AS text) IN ({key_list})");
        let predicate = plan
            .rules
            .predicate(&rule.table, &subject, &quote, &|t| quote_table(t, &quote));
        let mut delta = Delta::default();
        match rule.action {
            Action::Delete => {
                for line in sql.copy_lines(&format!(
                    "DELETE FROM {table} WHERE {predicate} RETURNING {columns}"
                ))? {
                    delta.remove(&line);
                }
            }
            Action::Pseudonymize => {
                let info = TableInfo {
                    schema: stats.schema.clone(),
                    name: stats.name.clone(),
                    columns: stats.columns.clone(),
                };
                let rewrite = anonymizer
                    .begin_table(&info)
                    .map_err(|e| fail(e.to_string()))?;
                let mask: Vec<bool> = anonymizer
                    .column_mask()
                    .map(<[bool]>::to_vec)
                    .unwrap_or_else(|| vec![true; info.columns.len()]);
                let rows = sql.copy_lines(&format!(
                    "SELECT ctid, {columns} FROM {table} WHERE {predicate}"
                ))?;
                for line in rows {
                    let Some(tab) = line.iter().position(|b| *b == b'\t') else {
                        continue;
                    };
                    let (ctid, text) = (&line[..tab], &line[tab + 1..]);
                    delta.remove(text);
                    if !rewrite {
                        delta.insert(text);
                        continue;
                    }
                    let mut fields: Vec<Option<Vec<u8>>> = copy_text::split_fields(text)
                        .map(copy_text::decode_field)
                        .collect();
                    anonymizer
                        .transform_row(&info, &mut fields)
                        .map_err(|e| fail(e.to_string()))?;
                    let sets: Vec<String> = info
                        .columns
                        .iter()
                        .zip(&fields)
                        .zip(&mask)
                        .filter(|(_, m)| **m)
                        .map(|((c, v), _)| {
                            let value = match v {
                                Some(v) => quote_literal(&String::from_utf8_lossy(v)),
                                None => "NULL".to_owned(),
                            };
                            format!("{} = {value}", quote_ident(c))
                        })
                        .collect();
                    let ctid = String::from_utf8_lossy(ctid);
                    let new = sql.copy_lines(&format!(
                        "UPDATE {table} SET {} WHERE ctid = {} RETURNING {columns}",
                        sets.join(", "),
                        quote_literal(&ctid)
                    ))?;
                    for n in new {
                        delta.insert(&n);
                    }
                }
            }
        }
        let rows = match rule.action {
            Action::Delete => delta.removed,
            Action::Pseudonymize => delta.added,
        };
        if let Some(t) = applied
            .expected
            .tables
            .iter_mut()
            .find(|t| t.qualified() == rule.table)
        {
            t.rows = t.rows - delta.removed + delta.added;
            let mut sum = u128::from_le_bytes(
                hex::decode(&t.checksum)
                    .ok()
                    .and_then(|b| <[u8; 16]>::try_from(b).ok())
                    .unwrap_or([0; 16]),
            );
            sum = sum.wrapping_sub(delta.sub).wrapping_add(delta.add);
            t.checksum = hex::encode(sum.to_le_bytes());
        }
        applied.tables.push(TableOutcome {
            table: rule.table.clone(),
            action: rule.action,
            rows,
        });
    }

    // Foreign keys back: validated if nothing points at a deleted row.
    for (child, name, def, parent, columns, parent_columns) in foreign_keys {
        let c: Vec<String> = columns.split(',').map(|x| format!("c.{x}")).collect();
        let p: Vec<String> = parent_columns
            .split(',')
            .map(|x| format!("p.{x}"))
            .collect();
        let orphans = sql.copy_lines(&format!(
            "SELECT count(*) FROM {child} c WHERE ROW({}) IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM {parent} p WHERE ({}) = ({}))",
            c.join(", "),
            p.join(", "),
            c.join(", ")
        ))?;
        let orphans: u64 = orphans
            .first()
            .and_then(|l| std::str::from_utf8(l).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let already = def.trim_end().ends_with("NOT VALID");
        let suffix = if orphans > 0 && !already {
            " NOT VALID"
        } else {
            ""
        };
        sql.execute(&format!(
            "ALTER TABLE {child} ADD CONSTRAINT {name} {def}{suffix}"
        ))?;
        if orphans > 0 {
            applied.foreign_keys_not_valid.push(format!(
                "{child} {name}: {orphans} kept rows point at erased rows of {parent}; the \
                 constraint is back NOT VALID (new rows are checked, these are not)"
            ));
        }
    }
    // A query last, so that a failed statement above surfaces here.
    sql.copy_lines("SELECT 1")?;
    Ok(applied)
}
