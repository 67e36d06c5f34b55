//! The erasure ledger applied to a dump as it streams by: the rows of an erased subject
//! that the rules delete are left out, the others go on to the inner transform (the
//! anonymizer of an anonymized copy, which rewrites every personal field anyway).
//!
//! A `->` link needs the rows of the table it goes through: that table must come first
//! in the dump (it does in `pg_dump`'s alphabetical order for the billing schema), or the
//! filter stops the copy (fail closed) rather than let a row through. Foreign keys that
//! point at a table that lost rows are written `NOT VALID` (PostgreSQL), so the copy
//! restores with `psql` alone even where kept rows point at an erased one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::rules::{Action, ErasureRules, Match};
use crate::dump::{RowTransform, TableInfo, TransformError};

struct Current {
    table: String,
    action: Option<Action>,
    /// The column compared, and the set it is compared with (`None`: the subject keys).
    matched_on: usize,
    via: Option<(String, String)>,
    /// Columns of this table that links from other tables read, by index.
    collect: Vec<(usize, String)>,
}

/// What the inner transform sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inner {
    /// Every row that is kept (an anonymized copy: the anonymizer rewrites them all).
    AllRows,
    /// Only the rows of an erased subject that a `pseudonymize` rule matches (a restore:
    /// the anonymizer rewrites those, every other row stays as it was).
    ErasedRows,
}

/// A [`RowTransform`] that leaves erased rows out, around another transform.
pub struct EraseFilter<'a> {
    inner: &'a mut dyn RowTransform,
    feeds: Inner,
    rules: &'a ErasureRules,
    keys: HashSet<Vec<u8>>,
    /// The schema of tables a dump names without one.
    default_schema: String,
    /// (table, column) → values of matched rows, for the links through that table.
    linked: HashMap<(String, String), HashSet<Vec<u8>>>,
    seen: HashSet<String>,
    current: Option<Current>,
    mask: Vec<bool>,
    drop: bool,
    /// Rows left out, by table.
    pub dropped: BTreeMap<String, u64>,
    /// Rows of erased subjects given to the inner transform (`ErasedRows`), by table.
    pub rewritten: BTreeMap<String, u64>,
    /// Foreign keys written `NOT VALID`.
    pub relaxed: BTreeSet<String>,
}

impl<'a> EraseFilter<'a> {
    pub fn new(
        inner: &'a mut dyn RowTransform,
        feeds: Inner,
        rules: &'a ErasureRules,
        keys: &[String],
        default_schema: &str,
    ) -> EraseFilter<'a> {
        EraseFilter {
            inner,
            feeds,
            rules,
            keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            default_schema: default_schema.to_owned(),
            linked: HashMap::new(),
            seen: HashSet::new(),
            current: None,
            mask: Vec::new(),
            drop: false,
            dropped: BTreeMap::new(),
            rewritten: BTreeMap::new(),
            relaxed: BTreeSet::new(),
        }
    }

    fn qualified(&self, table: &TableInfo) -> String {
        let schema = if table.schema.is_empty() {
            &self.default_schema
        } else {
            &table.schema
        };
        format!("{schema}.{}", table.name)
    }
}

impl RowTransform for EraseFilter<'_> {
    fn begin_table(&mut self, table: &TableInfo) -> Result<bool, TransformError> {
        let inner = self.inner.begin_table(table)?;
        let name = self.qualified(table);
        self.seen.insert(name.clone());
        let index =
            |column: &str| {
                table.columns.iter().position(|c| c == column).ok_or_else(|| {
                TransformError(format!(
                    "erasure: table {name} has no column {column:?} in this backup: fix the \
                     policy's [erasure] section for backups of this age"
                ))
            })
            };
        let mut collect = Vec::new();
        for rule in self.rules.tables.values() {
            if let Match::Via {
                parent,
                parent_column,
                ..
            } = &rule.matches
                && *parent == name
            {
                collect.push((index(parent_column)?, parent_column.clone()));
                self.linked
                    .entry((name.clone(), parent_column.clone()))
                    .or_default();
            }
        }
        self.current = None;
        self.mask = match self.inner.column_mask() {
            Some(m) => m.to_vec(),
            None => vec![true; table.columns.len()],
        };
        let Some(rule) = self.rules.tables.get(&name) else {
            return Ok(inner && self.feeds == Inner::AllRows);
        };
        let matched_on = index(rule.matches.column())?;
        let via = match &rule.matches {
            Match::Subject { .. } => None,
            Match::Via {
                parent,
                parent_column,
                ..
            } => {
                if !self.seen.contains(parent) {
                    return Err(TransformError(format!(
                        "erasure: {name} matches through {parent}, whose rows come later in \
                         this dump: the erasure cannot be applied to it in one pass (fail \
                         closed); restore the backup instead, which applies it in the database"
                    )));
                }
                Some((parent.clone(), parent_column.clone()))
            }
        };
        self.mask[matched_on] = true;
        for (i, _) in &collect {
            self.mask[*i] = true;
        }
        self.current = Some(Current {
            table: name,
            action: Some(rule.action),
            matched_on,
            via,
            collect,
        });
        Ok(true)
    }

    fn transform_row(
        &mut self,
        table: &TableInfo,
        fields: &mut [Option<Vec<u8>>],
    ) -> Result<(), TransformError> {
        if let Some(cur) = &self.current {
            let value = fields.get(cur.matched_on).and_then(|f| f.as_deref());
            let matched = value.is_some_and(|v| match &cur.via {
                None => self.keys.contains(v),
                Some(link) => self.linked.get(link).is_some_and(|set| set.contains(v)),
            });
            if matched {
                for (i, column) in &cur.collect {
                    if let Some(Some(v)) = fields.get(*i) {
                        self.linked
                            .entry((cur.table.clone(), column.clone()))
                            .or_default()
                            .insert(v.clone());
                    }
                }
                if cur.action == Some(Action::Delete) {
                    *self.dropped.entry(cur.table.clone()).or_default() += 1;
                    self.drop = true;
                    return Ok(());
                }
                if self.feeds == Inner::ErasedRows {
                    *self.rewritten.entry(cur.table.clone()).or_default() += 1;
                    return self.inner.transform_row(table, fields);
                }
            }
        }
        match self.feeds {
            Inner::AllRows => self.inner.transform_row(table, fields),
            Inner::ErasedRows => Ok(()),
        }
    }

    fn column_mask(&self) -> Option<&[bool]> {
        Some(&self.mask)
    }

    fn large_object(&mut self) -> Result<(), TransformError> {
        self.inner.large_object()
    }

    fn drop_row(&mut self) -> bool {
        std::mem::take(&mut self.drop)
    }

    /// `ADD CONSTRAINT … FOREIGN KEY (…) REFERENCES T(…);` with T a table that lost rows
    /// gets `NOT VALID`.
    fn rewrite_sql_line(&mut self, line: &[u8]) -> Option<Vec<u8>> {
        if self.dropped.is_empty() {
            return None;
        }
        let text = std::str::from_utf8(line).ok()?;
        let body = text.trim_start().strip_prefix("ADD CONSTRAINT ")?;
        if !body.contains(" FOREIGN KEY (") || !text.ends_with(';') || text.ends_with(" NOT VALID;")
        {
            return None;
        }
        let referenced = body.split(" REFERENCES ").nth(1)?.split('(').next()?.trim();
        let unquoted = referenced.replace('"', "");
        if !self.dropped.contains_key(&unquoted) {
            return None;
        }
        let name = body.split_whitespace().next().unwrap_or("").to_owned();
        self.relaxed.insert(format!("{name} → {unquoted}"));
        Some(format!("{} NOT VALID;", &text[..text.len() - 1]).into_bytes())
    }
}
