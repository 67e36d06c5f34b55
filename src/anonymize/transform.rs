//! The anonymizer as a [`RowTransform`]: applies a policy's rules to the rows of a
//! dump as they stream by, deterministically (one [`Faker`] for the whole dump).
//!
//! Fail closed: a column the policy has no rule for stops the dump, as do large
//! objects (their bytes cannot be anonymized by column rules).

use std::collections::HashSet;
use std::sync::Arc;

use super::policy::Policy;
use super::rules::{Faker, Rule};
use super::schema::SchemaInfo;
use crate::dump::{RowTransform, TableInfo, TransformError};

/// The schema name SQLite tables are given in policies.
pub const SQLITE_SCHEMA: &str = "main";

/// One column's plan for the current table.
struct ColumnPlan {
    name: String,
    rule: Option<Rule>,
    unique: bool,
}

/// Rewrites rows following a policy.
pub struct Anonymizer {
    policy: Arc<Policy>,
    faker: Faker,
    unique: HashSet<String>,
    plan: Vec<ColumnPlan>,
    mask: Vec<bool>,
    values: u64,
    rows: u64,
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
            values: 0,
            rows: 0,
        }
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

fn schema_of(table: &TableInfo) -> &str {
    if table.schema.is_empty() {
        SQLITE_SCHEMA
    } else {
        &table.schema
    }
}

impl RowTransform for Anonymizer {
    fn begin_table(&mut self, table: &TableInfo) -> Result<bool, TransformError> {
        self.plan.clear();
        self.mask.clear();
        let schema = schema_of(table);
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
            self.plan.push(ColumnPlan {
                unique: self
                    .unique
                    .contains(&format!("{schema}.{}.{col}", table.name)),
                name: col.clone(),
                rule,
            });
        }
        Ok(rewrite)
    }

    fn transform_row(
        &mut self,
        table: &TableInfo,
        fields: &mut [Option<Vec<u8>>],
    ) -> Result<(), TransformError> {
        self.rows += 1;
        for (field, plan) in fields.iter_mut().zip(&self.plan) {
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
            *field = out.map(String::into_bytes);
            self.values += 1;
        }
        Ok(())
    }

    fn column_mask(&self) -> Option<&[bool]> {
        Some(&self.mask)
    }

    fn large_object(&mut self) -> Result<(), TransformError> {
        Err(TransformError(
            "the database holds large objects, which no policy rule can anonymize (fail closed): \
             store them in bytea columns, or back up this source without --anonymize"
                .into(),
        ))
    }
}
