//! Sampled values of the text columns a policy keeps, searched for personal data
//! (e-mails, phone numbers, IBANs, card numbers): a column named `ref_externe`
//! that holds e-mails is found by its contents, not its name.
//!
//! At most [`SAMPLE_ROWS`] non-NULL values per column are read, with one query
//! per table. Findings are warnings that name the column, the kind and how many
//! sampled values matched — never a value.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::policy::Policy;
use super::rules::{Rule, detect_personal};
use super::schema::{Dialect, SchemaInfo, TypeKind};
use crate::dump::mysql_rows::quote_mysql_ident;
use crate::dump::{quote_ident, quote_literal};
use crate::source::{MysqlDatabase, PgDatabase, SourceError};

/// Values read per kept column.
pub const SAMPLE_ROWS: usize = 200;

/// A kept text column and the values read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSample {
    pub schema: String,
    pub table: String,
    pub column: String,
    pub values: Vec<String>,
}

/// The text and JSON columns `policy` keeps as they are, per table
/// (`(schema, table, columns)`), in schema order.
pub fn kept_text_columns(
    policy: &Policy,
    schema: &SchemaInfo,
) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for t in &schema.tables {
        let cols: Vec<String> = t
            .columns
            .iter()
            .filter(|c| !c.generated)
            .filter(|c| matches!(c.kind(schema.dialect), TypeKind::Text | TypeKind::Json))
            .filter(|c| policy.rule_for(&t.schema, &t.name, &c.name) == Some(&Rule::Keep))
            .map(|c| c.name.clone())
            .collect();
        if !cols.is_empty() {
            out.push((t.schema.clone(), t.name.clone(), cols));
        }
    }
    out
}

/// Columns per JSON object of the PostgreSQL sample query (`json_build_object` takes at
/// most 100 arguments, two per column).
const PG_COLUMNS_PER_OBJECT: usize = 40;

/// Reads samples from PostgreSQL through one `psql` call (blocking): one row per table
/// (per 40 columns), `INDEX|{"column": [values…]}`.
pub fn postgres_samples(
    db: &PgDatabase,
    columns: &[(String, String, Vec<String>)],
) -> Result<Vec<ColumnSample>, SourceError> {
    let mut parts = Vec::new();
    for (i, (schema, table, cols)) in columns.iter().enumerate() {
        let relation = format!("{}.{}", quote_ident(schema), quote_ident(table));
        for chunk in cols.chunks(PG_COLUMNS_PER_OBJECT) {
            let fields: Vec<String> = chunk
                .iter()
                .map(|c| {
                    format!(
                        "{}, (SELECT coalesce(json_agg(v), '[]') FROM (SELECT {col}::text AS v \
                         FROM {relation} WHERE {col} IS NOT NULL LIMIT {SAMPLE_ROWS}) s)",
                        quote_literal(c),
                        col = quote_ident(c)
                    )
                })
                .collect();
            parts.push(format!(
                "SELECT {i}, json_build_object({})",
                fields.join(", ")
            ));
        }
    }
    let mut maps: Vec<serde_json::Map<String, serde_json::Value>> =
        vec![serde_json::Map::new(); columns.len()];
    if !parts.is_empty() {
        let unexpected = |e: String| SourceError::Database {
            database: db.redacted_url(),
            message: format!("unexpected answer to the sample query: {e}"),
        };
        // A row starts with `INDEX|{`; a line that does not continues the row before it.
        let mut rows: Vec<String> = Vec::new();
        for line in db.query(&parts.join(" UNION ALL "))? {
            let starts = line
                .split_once("|{")
                .is_some_and(|(i, _)| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()));
            match rows.last_mut() {
                Some(row) if !starts => {
                    row.push('\n');
                    row.push_str(&line);
                }
                _ => rows.push(line),
            }
        }
        for line in rows {
            let (i, json) = line
                .split_once('|')
                .ok_or_else(|| unexpected(format!("no table index in {line:.60}")))?;
            let i: usize = i.parse().map_err(|_| unexpected(format!("index {i:?}")))?;
            let map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(json).map_err(|e| unexpected(e.to_string()))?;
            maps.get_mut(i)
                .ok_or_else(|| unexpected(format!("index {i} out of range")))?
                .extend(map);
        }
    }
    let mut out = Vec::new();
    for ((schema, table, cols), map) in columns.iter().zip(&maps) {
        for c in cols {
            let values = map
                .get(c)
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            out.push(ColumnSample {
                schema: schema.clone(),
                table: table.clone(),
                column: c.clone(),
                values,
            });
        }
    }
    Ok(out)
}

/// Reads samples from an SQLite file, opened read-only.
pub fn sqlite_samples(
    path: &Path,
    columns: &[(String, String, Vec<String>)],
) -> Result<Vec<ColumnSample>, SourceError> {
    let err = |e: rusqlite::Error| SourceError::Database {
        database: path.display().to_string(),
        message: e.to_string(),
    };
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(err)?;
    let mut out = Vec::new();
    for (schema, table, cols) in columns {
        for c in cols {
            let sql = format!(
                "SELECT CAST({col} AS TEXT) FROM {t} WHERE {col} IS NOT NULL AND typeof({col}) = 'text' LIMIT {SAMPLE_ROWS}",
                col = quote_ident(c),
                t = quote_ident(table)
            );
            let mut stmt = conn.prepare(&sql).map_err(err)?;
            let values = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            out.push(ColumnSample {
                schema: schema.clone(),
                table: table.clone(),
                column: c.clone(),
                values,
            });
        }
    }
    Ok(out)
}

/// Reads samples from MySQL through its client (blocking), one query per column; values
/// travel in hexadecimal, so that any byte survives the client's line output.
pub fn mysql_samples(
    db: &MysqlDatabase,
    columns: &[(String, String, Vec<String>)],
) -> Result<Vec<ColumnSample>, SourceError> {
    let mut out = Vec::new();
    for (schema, table, cols) in columns {
        for c in cols {
            let col = quote_mysql_ident(c);
            let sql = format!(
                "SELECT HEX({col}) FROM {} WHERE {col} IS NOT NULL LIMIT {SAMPLE_ROWS}",
                quote_mysql_ident(table)
            );
            let values = db
                .query(&sql)?
                .into_iter()
                .filter_map(|row| row.into_iter().next())
                .filter_map(|h| hex::decode(h.trim()).ok())
                .filter_map(|bytes| String::from_utf8(bytes).ok())
                .collect();
            out.push(ColumnSample {
                schema: schema.clone(),
                table: table.clone(),
                column: c.clone(),
                values,
            });
        }
    }
    Ok(out)
}

/// Samples every kept text column of `schema` (blocking), from the database it
/// describes.
pub fn sample(
    policy: &Policy,
    schema: &SchemaInfo,
    from: SampleFrom<'_>,
) -> Result<Vec<ColumnSample>, SourceError> {
    let columns = kept_text_columns(policy, schema);
    match (schema.dialect, from) {
        (Dialect::Postgres, SampleFrom::Postgres(db)) => postgres_samples(db, &columns),
        (Dialect::Sqlite, SampleFrom::Sqlite(path)) => sqlite_samples(path, &columns),
        (Dialect::Mysql, SampleFrom::Mysql(db)) => mysql_samples(db, &columns),
        _ => Ok(Vec::new()),
    }
}

/// Where samples come from.
pub enum SampleFrom<'a> {
    Postgres(&'a PgDatabase),
    Mysql(&'a MysqlDatabase),
    Sqlite(&'a Path),
}

/// One warning per kept column whose sampled values look personal, naming the
/// kind and the count (no value is ever shown).
pub fn findings(policy_file: &Path, samples: &[ColumnSample]) -> Vec<String> {
    let mut out = Vec::new();
    for s in samples {
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for v in &s.values {
            if let Some(kind) = detect_personal(v) {
                match counts.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((kind, 1)),
                }
            }
        }
        if counts.is_empty() {
            continue;
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let what: Vec<String> = counts
            .iter()
            .map(|(k, n)| format!("{n} look like {k}s"))
            .collect();
        out.push(format!(
            "policy {}: column \"{}.{}.{}\" is kept, but of {} sampled values {}: give it a rule \
             (e.g. scrub, email, phone) or confirm that keeping it is intended",
            policy_file.display(),
            s.schema,
            s.table,
            s.column,
            s.values.len(),
            what.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(values: &[&str]) -> ColumnSample {
        ColumnSample {
            schema: "public".into(),
            table: "clients".into(),
            column: "ref_externe".into(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn personal_values_are_counted_by_kind_and_never_shown() {
        let s = sample(&[
            "jean.dupont@exemple.fr",
            "marie@exemple.org",
            "appeler le 06 12 34 56 78",
            "RAS",
        ]);
        let w = findings(Path::new("policies/x.toml"), &[s]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("\"public.clients.ref_externe\""), "{w:?}");
        assert!(
            w[0].contains("of 4 sampled values 2 look like e-mails, 1 look like phone numbers"),
            "{w:?}"
        );
        assert!(
            !w[0].contains("dupont") && !w[0].contains("06 12"),
            "no value shown: {w:?}"
        );
    }

    #[test]
    fn plain_columns_give_no_warning() {
        let s = sample(&["Paris", "EUR", "2024-01-01", "facture payée"]);
        assert!(findings(Path::new("p.toml"), &[s]).is_empty());
    }

    #[test]
    fn sqlite_samples_read_kept_text_columns_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, memo TEXT, note TEXT);
             INSERT INTO t (memo, note) VALUES ('x@y.fr', 'a'), (NULL, 'b'), ('RAS', 'c');",
        )
        .expect("schema");
        drop(conn);
        let cols = vec![("main".to_owned(), "t".to_owned(), vec!["memo".to_owned()])];
        let got = sqlite_samples(&path, &cols).expect("samples");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].values, vec!["x@y.fr".to_owned(), "RAS".to_owned()]);
        let w = findings(Path::new("p.toml"), &got);
        assert_eq!(w.len(), 1, "{w:?}");
    }
}
