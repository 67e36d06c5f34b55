//! What a source database holds, as far as a policy cares: its tables, their columns,
//! each column's type, and whether it is unique, NOT NULL or generated.
//!
//! [`postgres_schema`] reads the catalog through `psql` (the tables `pg_dump` writes
//! COPY blocks for); [`mysql_schema`] reads `information_schema` of the source's
//! database (its name is the schema of the tables, as policies write them);
//! [`sqlite_schema`] reads the file with SQLite's own pragmas. [`ColumnInfo::kind`]
//! sorts the type names of all three into the few families the policy check needs.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use serde::Deserialize;

use crate::source::{MysqlDatabase, PgDatabase, SourceError};

/// Which kind of database a [`SchemaInfo`] describes; type names differ between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `data_type` is PostgreSQL's `format_type()` of the column (domains resolved to
    /// their base type): `text`, `character varying(10)`, `text[]`, `jsonb`, …
    Postgres,
    /// `data_type` is MySQL's `COLUMN_TYPE`: `varchar(255)`, `bigint(20) unsigned`,
    /// `decimal(12,2)`, `longtext` (MariaDB's JSON), `json` (MySQL's), …
    Mysql,
    /// `data_type` is the declared type, as written in `CREATE TABLE` (maybe empty).
    Sqlite,
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    /// The type name; see [`Dialect`].
    pub data_type: String,
    /// Part of a single-column UNIQUE or PRIMARY KEY constraint or unique index
    /// (partial unique indexes included; expression indexes not).
    pub unique: bool,
    /// Declared NOT NULL (a primary key is).
    pub not_null: bool,
    /// Computed by the database: absent from dumps, so it needs no rule.
    pub generated: bool,
}

/// One table whose rows are in a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    /// `public`, …; `main` for SQLite.
    pub schema: String,
    pub name: String,
    /// In table order.
    pub columns: Vec<ColumnInfo>,
}

impl TableSchema {
    /// `schema.table`, the key of the table in a policy.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// The tables of a database, sorted by schema then name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaInfo {
    pub dialect: Dialect,
    pub tables: Vec<TableSchema>,
}

impl SchemaInfo {
    /// The table `schema.name`.
    pub fn table(&self, schema: &str, name: &str) -> Option<&TableSchema> {
        self.tables
            .iter()
            .find(|t| t.schema == schema && t.name == name)
    }
}

/// The family of a column type, for telling which rules can produce valid values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeKind {
    /// `text`, `character varying(n)`, `character(n)`, `citext`, SQLite TEXT affinity.
    Text,
    /// `smallint`, `integer`, `bigint`, SQLite INTEGER affinity.
    Integer,
    /// `numeric`, `real`, `double precision`, `money`, SQLite REAL affinity.
    Decimal,
    Boolean,
    /// `date` (SQLite: declared `DATE`).
    Date,
    /// `timestamp [with|without] time zone` (SQLite: `DATETIME`, `TIMESTAMP`).
    Timestamp,
    /// `json`, `jsonb` (SQLite: declared `JSON`).
    Json,
    /// `inet`, `cidr`.
    Inet,
    /// `bytea`, SQLite BLOB.
    Bytes,
    /// A PostgreSQL array of the inner kind.
    Array(Box<TypeKind>),
    /// A SQLite column declared without a type: it holds anything.
    Any,
    /// Anything else: enums, `uuid`, geometric types, ranges, …
    Other,
}

impl ColumnInfo {
    /// The family of this column's type, read as `dialect` writes types.
    pub fn kind(&self, dialect: Dialect) -> TypeKind {
        match dialect {
            Dialect::Postgres => postgres_kind(&self.data_type),
            Dialect::Mysql => mysql_kind(&self.data_type),
            Dialect::Sqlite => sqlite_kind(&self.data_type),
        }
    }
}

fn postgres_kind(data_type: &str) -> TypeKind {
    let t = data_type.trim();
    if let Some(inner) = t.strip_suffix("[]") {
        return TypeKind::Array(Box::new(postgres_kind(inner)));
    }
    // Drop the modifier: `character varying(10)`, `numeric(12,2)`, `timestamp(3) with time zone`.
    let base: String = match (t.find('('), t.find(')')) {
        (Some(open), Some(close)) if open < close => {
            format!("{}{}", &t[..open], &t[close + 1..])
        }
        _ => t.to_owned(),
    };
    let base = base.trim().trim_matches('"').to_ascii_lowercase();
    match base.as_str() {
        "text" | "character varying" | "character" | "varchar" | "char" | "bpchar" | "name"
        | "citext" => TypeKind::Text,
        "smallint" | "integer" | "bigint" | "int2" | "int4" | "int8" => TypeKind::Integer,
        "numeric" | "decimal" | "real" | "double precision" | "float4" | "float8" | "money" => {
            TypeKind::Decimal
        }
        "boolean" | "bool" => TypeKind::Boolean,
        "date" => TypeKind::Date,
        "timestamp without time zone"
        | "timestamp with time zone"
        | "timestamp"
        | "timestamptz" => TypeKind::Timestamp,
        "json" | "jsonb" => TypeKind::Json,
        "inet" | "cidr" => TypeKind::Inet,
        "bytea" => TypeKind::Bytes,
        _ => TypeKind::Other,
    }
}

/// MySQL's and MariaDB's column types.
fn mysql_kind(column_type: &str) -> TypeKind {
    let t = column_type.trim().to_ascii_lowercase();
    if t == "tinyint(1)" || t == "boolean" || t == "bool" {
        return TypeKind::Boolean;
    }
    let base = t.split(['(', ' ']).next().unwrap_or_default().to_owned();
    match base.as_str() {
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => TypeKind::Text,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => TypeKind::Integer,
        "decimal" | "numeric" | "float" | "double" | "real" => TypeKind::Decimal,
        "date" => TypeKind::Date,
        "datetime" | "timestamp" => TypeKind::Timestamp,
        "json" => TypeKind::Json,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => TypeKind::Bytes,
        _ => TypeKind::Other,
    }
}

/// One column of `information_schema`, one JSON object per line.
#[derive(Deserialize)]
struct MysqlColumnRow {
    t: String,
    c: String,
    p: u64,
    ty: String,
    nn: serde_json::Value,
    g: serde_json::Value,
    u: serde_json::Value,
}

/// Base tables of the connection's database; generated columns are flagged; a column is
/// unique when a unique index (or the primary key) has it as its only column. One JSON
/// object per line, so that names with any character survive the client's output.
const MYSQL_COLUMNS_SQL: &str = r"
SELECT JSON_OBJECT(
    't', c.TABLE_NAME, 'c', c.COLUMN_NAME, 'p', c.ORDINAL_POSITION,
    'ty', c.COLUMN_TYPE,
    'nn', c.IS_NULLABLE = 'NO',
    'g', c.EXTRA LIKE '%GENERATED%' OR c.GENERATION_EXPRESSION IS NOT NULL
         AND c.GENERATION_EXPRESSION <> '',
    'u', EXISTS (SELECT 1 FROM information_schema.STATISTICS s
                 WHERE s.TABLE_SCHEMA = c.TABLE_SCHEMA AND s.TABLE_NAME = c.TABLE_NAME
                   AND s.COLUMN_NAME = c.COLUMN_NAME AND s.NON_UNIQUE = 0
                   AND (SELECT COUNT(*) FROM information_schema.STATISTICS s2
                        WHERE s2.TABLE_SCHEMA = s.TABLE_SCHEMA AND s2.TABLE_NAME = s.TABLE_NAME
                          AND s2.INDEX_NAME = s.INDEX_NAME) = 1))
FROM information_schema.COLUMNS c
JOIN information_schema.TABLES t
  ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE'
";

fn truthy(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_i64().is_some_and(|n| n != 0),
        _ => false,
    }
}

/// The tables of the source's MySQL database (schema: the database's name), read from
/// `information_schema` with the client.
pub fn mysql_schema(db: &MysqlDatabase) -> Result<SchemaInfo, SourceError> {
    let database = db.database()?;
    let rows = db.query(MYSQL_COLUMNS_SQL)?;
    let mut parsed: Vec<MysqlColumnRow> = Vec::with_capacity(rows.len());
    for row in rows {
        let line = row.join("\t");
        let r = serde_json::from_str(&line).map_err(|e| SourceError::Database {
            database: db.redacted_url(),
            message: format!("unexpected information_schema answer: {e}"),
        })?;
        parsed.push(r);
    }
    parsed.sort_by(|a, b| (&a.t, a.p).cmp(&(&b.t, b.p)));
    let mut tables: Vec<TableSchema> = Vec::new();
    for row in parsed {
        if tables.last().is_none_or(|t| t.name != row.t) {
            tables.push(TableSchema {
                schema: database.clone(),
                name: row.t.clone(),
                columns: Vec::new(),
            });
        }
        if let Some(table) = tables.last_mut() {
            table.columns.push(ColumnInfo {
                name: row.c,
                data_type: row.ty,
                unique: truthy(&row.u),
                not_null: truthy(&row.nn),
                generated: truthy(&row.g),
            });
        }
    }
    Ok(SchemaInfo {
        dialect: Dialect::Mysql,
        tables,
    })
}

/// SQLite's affinity rules (§3.1 of its datatype page), with the date and JSON names
/// people declare singled out, since SQLite stores those as text or numbers.
fn sqlite_kind(declared: &str) -> TypeKind {
    let t = declared.to_ascii_uppercase();
    let t = t.trim();
    let base = t.split('(').next().unwrap_or_default().trim();
    match base {
        "" => return TypeKind::Any,
        "DATE" => return TypeKind::Date,
        "DATETIME" | "TIMESTAMP" => return TypeKind::Timestamp,
        "JSON" | "JSONB" => return TypeKind::Json,
        "BOOLEAN" | "BOOL" => return TypeKind::Boolean,
        _ => {}
    }
    if t.contains("INT") {
        TypeKind::Integer
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        TypeKind::Text
    } else if t.contains("BLOB") {
        TypeKind::Bytes
    } else {
        // REAL, FLOA, DOUB, and NUMERIC affinity (DECIMAL, NUMERIC, …).
        TypeKind::Decimal
    }
}

/// One row of the catalog query: a column, or a table without columns (`c` null).
#[derive(Deserialize)]
struct PgColumnRow {
    s: String,
    t: String,
    c: Option<String>,
    ty: Option<String>,
    nn: Option<bool>,
    g: bool,
    u: bool,
}

/// Every table `pg_dump` writes rows of: ordinary and partitioned tables
/// (`relkind` r, p; partitions are tables of their own) of every schema but the
/// system ones, extension members excluded unless they are extension config tables.
/// Dropped columns are left out; generated ones are listed with `generated` set.
/// One JSON document comes back, so names with any character survive psql's output.
const PG_COLUMNS_SQL: &str = r"
SELECT coalesce(json_agg(json_build_object(
    's', n.nspname, 't', c.relname, 'c', a.attname,
    'ty', CASE WHEN ty.typtype = 'd' THEN format_type(ty.typbasetype, ty.typtypmod)
               ELSE format_type(a.atttypid, a.atttypmod) END,
    'nn', a.attnotnull,
    'g', coalesce(a.attgenerated <> '', false),
    'u', EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                 WHERE i.indrelid = c.oid AND i.indisunique AND i.indnkeyatts = 1
                   AND i.indkey[0] = a.attnum))
    ORDER BY n.nspname, c.relname, a.attnum), '[]')
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a
       ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_depend d
      JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
      WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
        AND d.deptype = 'e' AND NOT c.oid = ANY (coalesce(e.extconfig, '{}')))
";

/// The tables of a PostgreSQL database, read from its catalog with `psql`.
pub fn postgres_schema(db: &PgDatabase) -> Result<SchemaInfo, SourceError> {
    let lines = db.query(PG_COLUMNS_SQL)?;
    let rows: Vec<PgColumnRow> =
        serde_json::from_str(&lines.join("\n")).map_err(|e| SourceError::Database {
            database: db.redacted_url(),
            message: format!("unexpected catalog answer: {e}"),
        })?;
    let mut tables: Vec<TableSchema> = Vec::new();
    for row in rows {
        let same = tables
            .last()
            .is_some_and(|t| t.schema == row.s && t.name == row.t);
        if !same {
            tables.push(TableSchema {
                schema: row.s,
                name: row.t,
                columns: Vec::new(),
            });
        }
        if let (Some(name), Some(table)) = (row.c, tables.last_mut()) {
            table.columns.push(ColumnInfo {
                name,
                data_type: row.ty.unwrap_or_default(),
                unique: row.u,
                not_null: row.nn.unwrap_or(false),
                generated: row.g,
            });
        }
    }
    Ok(SchemaInfo {
        dialect: Dialect::Postgres,
        tables,
    })
}

/// The tables of an SQLite file (schema `main`), opened read-only. SQLite's internal
/// tables (`sqlite_sequence`, `sqlite_stat*`) are left out: they hold no rows of the
/// application.
pub fn sqlite_schema(path: &Path) -> Result<SchemaInfo, SourceError> {
    let err = |e: &dyn std::fmt::Display| SourceError::Database {
        database: path.display().to_string(),
        message: e.to_string(),
    };
    if !path.is_file() {
        return Err(err(&"no such database file (check the source's path)"));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| err(&e))?;
    read_sqlite(&conn).map_err(|e| err(&e))
}

fn read_sqlite(conn: &Connection) -> rusqlite::Result<SchemaInfo> {
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        // (name, declared type, not null, position in the primary key, hidden)
        let raw: Vec<(String, String, bool, i64, i64)> = conn
            .prepare("SELECT name, type, \"notnull\", pk, hidden FROM pragma_table_xinfo(?1)")?
            .query_map([&name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut unique = unique_sqlite_columns(conn, &name)?;
        let pk: Vec<&str> = raw
            .iter()
            .filter(|c| c.3 > 0)
            .map(|c| c.0.as_str())
            .collect();
        // A single-column primary key is unique, also as INTEGER PRIMARY KEY (the rowid,
        // which has no index of its own).
        if let [only] = pk.as_slice() {
            unique.push((*only).to_owned());
        }
        let columns = raw
            .iter()
            .map(|(column, data_type, not_null, pk, hidden)| ColumnInfo {
                name: column.clone(),
                data_type: data_type.clone(),
                unique: unique.contains(column),
                not_null: *not_null || *pk > 0,
                // 2: generated VIRTUAL, 3: generated STORED (1 is a hidden column of a
                // virtual table, which coffre's SQLite source refuses anyway).
                generated: matches!(hidden, 2 | 3),
            })
            .collect();
        tables.push(TableSchema {
            schema: "main".to_owned(),
            name,
            columns,
        });
    }
    Ok(SchemaInfo {
        dialect: Dialect::Sqlite,
        tables,
    })
}

/// Columns that alone make up a unique index of `table` (partial indexes included).
fn unique_sqlite_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM pragma_index_list(?1) WHERE \"unique\"")?
        .query_map([table], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut columns = Vec::new();
    for index in indexes {
        // cid -2 is an expression, -1 the rowid; both have a NULL name.
        let keys: Vec<Option<String>> = conn
            .prepare("SELECT name FROM pragma_index_info(?1)")?
            .query_map([&index], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if let [Some(column)] = keys.as_slice() {
            columns.push(column.clone());
        }
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_types_have_kinds() {
        let kind = postgres_kind;
        assert_eq!(kind("text"), TypeKind::Text);
        assert_eq!(kind("character varying(10)"), TypeKind::Text);
        assert_eq!(kind("character(14)"), TypeKind::Text);
        assert_eq!(kind("bigint"), TypeKind::Integer);
        assert_eq!(kind("numeric(12,2)"), TypeKind::Decimal);
        assert_eq!(kind("date"), TypeKind::Date);
        assert_eq!(kind("timestamp with time zone"), TypeKind::Timestamp);
        assert_eq!(kind("timestamp(3) without time zone"), TypeKind::Timestamp);
        assert_eq!(kind("jsonb"), TypeKind::Json);
        assert_eq!(kind("inet"), TypeKind::Inet);
        assert_eq!(kind("bytea"), TypeKind::Bytes);
        assert_eq!(kind("text[]"), TypeKind::Array(Box::new(TypeKind::Text)));
        assert_eq!(
            kind("character varying(3)[]"),
            TypeKind::Array(Box::new(TypeKind::Text))
        );
        assert_eq!(kind("humeur"), TypeKind::Other);
        assert_eq!(kind("uuid"), TypeKind::Other);
    }

    #[test]
    fn sqlite_types_follow_affinity() {
        let kind = sqlite_kind;
        assert_eq!(kind("TEXT"), TypeKind::Text);
        assert_eq!(kind("varchar(20)"), TypeKind::Text);
        assert_eq!(kind("INTEGER"), TypeKind::Integer);
        assert_eq!(kind("BLOB"), TypeKind::Bytes);
        assert_eq!(kind(""), TypeKind::Any);
        assert_eq!(kind("REAL"), TypeKind::Decimal);
        assert_eq!(kind("DATE"), TypeKind::Date);
        assert_eq!(kind("datetime"), TypeKind::Timestamp);
        assert_eq!(kind("JSON"), TypeKind::Json);
    }

    #[test]
    fn sqlite_schema_lists_columns_unique_and_generated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(
            "CREATE TABLE a (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, n TEXT, \
                 twice INTEGER GENERATED ALWAYS AS (id * 2) VIRTUAL, x);
             CREATE TABLE b (code TEXT PRIMARY KEY, k1 INT, k2 INT, UNIQUE (k1, k2)) WITHOUT ROWID;
             CREATE TABLE c (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT);
             CREATE UNIQUE INDEX c_lower ON c (lower(v));",
        )
        .expect("create");
        drop(conn);
        let schema = sqlite_schema(&path).expect("schema");
        assert_eq!(schema.dialect, Dialect::Sqlite);
        let names: Vec<String> = schema.tables.iter().map(TableSchema::qualified).collect();
        assert_eq!(names, ["main.a", "main.b", "main.c"], "no sqlite_sequence");
        let a = schema.table("main", "a").expect("a");
        let col = |t: &TableSchema, n: &str| t.column(n).expect("column").clone();
        assert!(col(a, "id").unique && col(a, "id").not_null);
        assert!(col(a, "email").unique && col(a, "email").not_null);
        assert!(!col(a, "n").unique && !col(a, "n").not_null);
        assert!(col(a, "twice").generated);
        assert_eq!(col(a, "x").kind(Dialect::Sqlite), TypeKind::Any);
        let b = schema.table("main", "b").expect("b");
        assert!(col(b, "code").unique);
        assert!(!col(b, "k1").unique, "part of a two-column unique");
        let c = schema.table("main", "c").expect("c");
        assert!(col(c, "id").unique);
        assert!(!col(c, "v").unique, "an expression index does not count");
    }

    #[test]
    fn sqlite_schema_of_a_missing_file_names_it() {
        let err = sqlite_schema(Path::new("/nonexistent/x.db"))
            .expect_err("must fail")
            .to_string();
        assert!(
            err.starts_with("/nonexistent/x.db: no such database file"),
            "{err}"
        );
    }
}
