//! The checks a drill runs on its restored scratch database: reading every table back
//! (the source's own dump code, so counts and checksums are computed exactly as at
//! backup time) and the SQL assertions, each in a read-only transaction.

use rusqlite::{Connection, OpenFlags};

use super::report::AssertionResult;
use super::scratch::Scratch;
use crate::dump::{DumpStats, Identity};
use crate::source::{ChunkSink, Source as _, SourceError, SqliteDatabase};

/// Counts and checksums of every table of the restored database. Blocking work runs on
/// its own thread.
pub async fn read_back(scratch: &Scratch) -> Result<DumpStats, SourceError> {
    let scratch = scratch.clone();
    tokio::task::spawn_blocking(move || {
        let mut sink = Discard;
        match &scratch {
            Scratch::Postgres { database, .. } => database.dump(&mut Identity, &mut sink),
            Scratch::Mysql { database, .. } => database.dump(&mut Identity, &mut sink),
            Scratch::Sqlite { path } => SqliteDatabase::new(path).dump(&mut Identity, &mut sink),
        }
    })
    .await
    .map_err(|e| SourceError::Other(format!("read-back task failed: {e}")))?
}

/// A sink that drops the dump text: only its stats are wanted.
struct Discard;

impl ChunkSink for Discard {
    fn send(&mut self, _chunk: Vec<u8>) -> Result<(), SourceError> {
        Ok(())
    }
}

/// Runs every assertion; each must return one row of one true value.
pub async fn run_assertions(scratch: &Scratch, assertions: &[String]) -> Vec<AssertionResult> {
    let scratch = scratch.clone();
    let assertions = assertions.to_vec();
    let joined = tokio::task::spawn_blocking(move || {
        assertions
            .iter()
            .map(|sql| {
                let (ok, result) = match run_one(&scratch, sql) {
                    Ok(values) => judge(&values),
                    Err(e) => (false, format!("error: {e}")),
                };
                AssertionResult {
                    sql: sql.clone(),
                    ok,
                    result,
                }
            })
            .collect::<Vec<_>>()
    })
    .await;
    joined.unwrap_or_else(|e| {
        vec![AssertionResult {
            sql: String::new(),
            ok: false,
            result: format!("assertion task failed: {e}"),
        }]
    })
}

/// The rows of one assertion, each as text of its first column.
fn run_one(scratch: &Scratch, sql: &str) -> Result<Vec<String>, String> {
    match scratch {
        Scratch::Postgres { database, .. } => {
            // psql sends both as one transaction and prints the last result only.
            let wrapped = format!(
                "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; {}",
                sql.trim().trim_end_matches(';')
            );
            database.query(&wrapped).map_err(|e| e.to_string())
        }
        Scratch::Mysql { database, .. } => {
            // The client prints the rows of the assertion only.
            let wrapped = format!(
                "SET SESSION TRANSACTION READ ONLY; START TRANSACTION READ ONLY; {}; ROLLBACK",
                sql.trim().trim_end_matches(';')
            );
            database
                .query(&wrapped)
                .map(|rows| {
                    rows.into_iter()
                        .map(|row| row.into_iter().next().unwrap_or_default())
                        .collect()
                })
                .map_err(|e| e.to_string())
        }
        Scratch::Sqlite { path } => {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| e.to_string())?;
            let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
            let rows = stmt
                .query_map([], |row| {
                    let v: rusqlite::types::Value = row.get(0)?;
                    Ok(match v {
                        rusqlite::types::Value::Null => String::new(),
                        rusqlite::types::Value::Integer(i) => i.to_string(),
                        rusqlite::types::Value::Real(f) => f.to_string(),
                        rusqlite::types::Value::Text(t) => t,
                        rusqlite::types::Value::Blob(b) => format!("<{} bytes>", b.len()),
                    })
                })
                .map_err(|e| e.to_string())?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())
        }
    }
}

/// Passes on exactly one row holding a true value (`t`, `true`, `1`).
fn judge(values: &[String]) -> (bool, String) {
    match values {
        [one] => {
            let truth = matches!(one.trim(), "t" | "true" | "TRUE" | "1");
            (truth, one.trim().to_owned())
        }
        [] => (false, "no row (expected one true value)".to_owned()),
        many => (
            false,
            format!("{} rows (expected one true value)", many.len()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_true_value_passes() {
        assert!(judge(&["t".into()]).0);
        assert!(judge(&["1".into()]).0);
        assert_eq!(judge(&["f".into()]), (false, "f".to_owned()));
        assert!(!judge(&[]).0);
        assert!(!judge(&["t".into(), "t".into()]).0);
        assert!(!judge(&["".into()]).0);
    }

    #[tokio::test]
    async fn sqlite_assertions_run_read_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2);")
            .expect("setup");
        drop(conn);
        let scratch = Scratch::Sqlite { path: path.clone() };
        let results = {
            let assertions = [
                "SELECT count(*) = 2 FROM t".to_owned(),
                "SELECT count(*) = 3 FROM t".to_owned(),
                "DELETE FROM t".to_owned(),
                "SELECT nope FROM t".to_owned(),
            ];
            let scratch = scratch.clone();
            tokio::task::spawn_blocking(move || {
                assertions
                    .iter()
                    .map(|sql| match run_one(&scratch, sql) {
                        Ok(v) => judge(&v),
                        Err(e) => (false, e),
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .expect("join")
        };
        assert!(results[0].0, "{results:?}");
        assert_eq!(results[1], (false, "0".to_owned()));
        assert!(
            !results[2].0 && results[2].1.contains("readonly"),
            "{results:?}"
        );
        assert!(
            !results[3].0 && results[3].1.contains("nope"),
            "{results:?}"
        );
        let conn = Connection::open(&path).expect("open");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 2, "the DELETE must not have run");
    }
}
