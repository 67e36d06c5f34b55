//! Scratch databases of drills: created fresh and uniquely named for one drill, dropped
//! after it, and — since a killed drill drops nothing — the leftovers of earlier drills
//! of the same source removed first, under the source's drill lock.
//!
//! PostgreSQL and MySQL: a database `coffre_drill_<source>_<hash>_<time>` on the
//! `scratch_url` server, where `<hash>` (of the full source name and of where its backups
//! are stored) keeps apart two sources whose names share a prefix, and two appliances
//! whose sources share a name. SQLite: a file in `state_dir/drills/scratch/<source>/`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::source::{MysqlDatabase, PgDatabase, SourceError};

/// Where a source's drills make their scratch databases.
#[derive(Debug, Clone)]
pub enum Server {
    /// The `scratch_url` server's maintenance connection (creates and drops).
    Postgres(PgDatabase),
    /// The `scratch_url` server (creates and drops).
    Mysql(MysqlDatabase),
    /// Files under `state_dir`.
    Sqlite(PathBuf),
}

impl Server {
    /// For messages (never a password).
    pub fn describe(&self) -> String {
        match self {
            Server::Postgres(admin) => admin.redacted_url(),
            Server::Mysql(admin) => admin.redacted_url(),
            Server::Sqlite(state_dir) => state_dir.display().to_string(),
        }
    }

    /// Drops the scratch databases of `source` killed drills left; returns how many.
    /// Call it holding the source's drill lock. Blocking.
    pub fn clean_leftovers(&self, source: &str, scope: &str) -> Result<usize, SourceError> {
        match self {
            Server::Postgres(admin) => clean_pg_leftovers(admin, source, scope).map(|v| v.len()),
            Server::Mysql(admin) => clean_mysql_leftovers(admin, source, scope).map(|v| v.len()),
            Server::Sqlite(state_dir) => clean_sqlite_leftovers(state_dir, source),
        }
    }

    /// A fresh scratch database for a drill of `source`. Blocking.
    pub fn create(
        &self,
        source: &str,
        scope: &str,
        now: DateTime<Utc>,
    ) -> Result<Scratch, SourceError> {
        match self {
            Server::Postgres(admin) => create_pg(admin, source, scope, now),
            Server::Mysql(admin) => create_mysql(admin, source, scope, now),
            Server::Sqlite(state_dir) => create_sqlite(state_dir, source, now),
        }
    }
}

/// Where one drill restores.
#[derive(Debug, Clone)]
pub enum Scratch {
    Postgres {
        /// The scratch database.
        database: PgDatabase,
        /// The server's maintenance database (`scratch_url`), which drops it.
        admin_url: String,
        name: String,
    },
    Mysql {
        /// The scratch database.
        database: MysqlDatabase,
        /// The server (`scratch_url`), which drops it.
        admin: MysqlDatabase,
        name: String,
    },
    Sqlite {
        path: PathBuf,
    },
}

impl Scratch {
    /// The destination to give `restore --to`.
    pub fn restore_url(&self) -> String {
        match self {
            Scratch::Postgres { database, .. } => database.url.clone(),
            Scratch::Mysql { database, .. } => database.url.clone(),
            Scratch::Sqlite { path } => path.display().to_string(),
        }
    }

    /// For reports (never a password).
    pub fn describe(&self) -> String {
        match self {
            Scratch::Postgres { database, .. } => database.redacted_url(),
            Scratch::Mysql { database, .. } => database.redacted_url(),
            Scratch::Sqlite { path } => path.display().to_string(),
        }
    }

    /// Drops the scratch database (or removes the file). Blocking.
    pub fn drop_now(&self) -> Result<(), SourceError> {
        match self {
            Scratch::Postgres {
                database,
                admin_url,
                name,
            } => {
                let mut admin = database.clone();
                admin.url.clone_from(admin_url);
                drop_pg(&admin, name)
            }
            Scratch::Mysql { admin, name, .. } => drop_mysql(admin, name),
            Scratch::Sqlite { path } => remove_sqlite(path),
        }
    }
}

/// The prefix of every scratch database of `source` on a server; `scope` says
/// where the source's backups are stored.
pub fn db_prefix(source: &str, scope: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(source.as_bytes());
    hasher.update([0]);
    hasher.update(scope.as_bytes());
    let hash = hex::encode(hasher.finalize());
    let short: String = source
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(20)
        .collect();
    format!("coffre_drill_{short}_{}_", &hash[..6])
}

/// A fresh scratch database name: the prefix, the time and 16 random bits.
fn scratch_name(source: &str, scope: &str, now: DateTime<Utc>) -> String {
    let suffix: u16 = rand::random();
    format!(
        "{}{}_{suffix:04x}",
        db_prefix(source, scope),
        now.format("%Y%m%d%H%M%S")
    )
}

/// Drops every scratch database of `source` left by killed drills; returns their names.
/// Call it holding the source's drill lock. Blocking.
pub fn clean_pg_leftovers(
    admin: &PgDatabase,
    source: &str,
    scope: &str,
) -> Result<Vec<String>, SourceError> {
    let prefix = db_prefix(source, scope);
    // LIKE with "_" escaped: the prefix is matched literally.
    let pattern = format!("{}%", prefix.replace('_', "\\_"));
    let names = admin.query(&format!(
        "SELECT datname FROM pg_database WHERE datname LIKE '{pattern}' ORDER BY 1"
    ))?;
    let mut dropped = Vec::new();
    for name in names.into_iter().filter(|n| n.starts_with(&prefix)) {
        drop_pg(admin, &name)?;
        dropped.push(name);
    }
    Ok(dropped)
}

/// Creates a fresh scratch database of `source` on the server of `admin`. Blocking.
pub fn create_pg(
    admin: &PgDatabase,
    source: &str,
    scope: &str,
    now: DateTime<Utc>,
) -> Result<Scratch, SourceError> {
    let name = scratch_name(source, scope, now);
    admin.query(&format!(
        "CREATE DATABASE {}",
        crate::dump::quote_ident(&name)
    ))?;
    let mut database = admin.clone();
    database.url = with_database(&admin.url, &name)?;
    Ok(Scratch::Postgres {
        database,
        admin_url: admin.url.clone(),
        name,
    })
}

fn drop_pg(admin: &PgDatabase, name: &str) -> Result<(), SourceError> {
    // WITH (FORCE) (PostgreSQL 13+) ends sessions a killed drill left behind.
    admin
        .query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            crate::dump::quote_ident(name)
        ))
        .map(|_| ())
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> Result<String, SourceError> {
    let mut parsed = url::Url::parse(url).map_err(|e| {
        SourceError::Other(format!(
            "scratch_url {}: {e}",
            crate::source::postgres::redact_url(url)
        ))
    })?;
    parsed.set_path(&format!("/{name}"));
    Ok(parsed.to_string())
}

/// Drops every scratch database of `source` on a MySQL server left by killed drills.
pub fn clean_mysql_leftovers(
    admin: &MysqlDatabase,
    source: &str,
    scope: &str,
) -> Result<Vec<String>, SourceError> {
    let prefix = db_prefix(source, scope);
    let pattern = prefix.replace('_', "\\_");
    let names = admin.query(&format!(
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '{pattern}%'"
    ))?;
    let mut dropped = Vec::new();
    for name in names.into_iter().filter_map(|row| row.into_iter().next()) {
        if name.starts_with(&prefix) {
            drop_mysql(admin, &name)?;
            dropped.push(name);
        }
    }
    Ok(dropped)
}

/// Creates a fresh scratch database of `source` on the MySQL server of `admin`.
pub fn create_mysql(
    admin: &MysqlDatabase,
    source: &str,
    scope: &str,
    now: DateTime<Utc>,
) -> Result<Scratch, SourceError> {
    let name = scratch_name(source, scope, now);
    admin.query(&format!(
        "CREATE DATABASE {} CHARACTER SET utf8mb4",
        crate::dump::mysql_rows::quote_mysql_ident(&name)
    ))?;
    Ok(Scratch::Mysql {
        database: admin.with_database(&name)?,
        admin: admin.clone(),
        name,
    })
}

fn drop_mysql(admin: &MysqlDatabase, name: &str) -> Result<(), SourceError> {
    admin
        .query(&format!(
            "DROP DATABASE IF EXISTS {}",
            crate::dump::mysql_rows::quote_mysql_ident(name)
        ))
        .map(|_| ())
}

/// The directory of the SQLite scratch files of `source`.
pub fn sqlite_dir(state_dir: &Path, source: &str) -> PathBuf {
    state_dir.join("drills").join("scratch").join(source)
}

/// Removes every SQLite scratch file of `source` (killed drills); returns how many.
pub fn clean_sqlite_leftovers(state_dir: &Path, source: &str) -> Result<usize, SourceError> {
    let dir = sqlite_dir(state_dir, source);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_error(&dir, &e)),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry.map_err(|e| io_error(&dir, &e))?.path();
        remove_sqlite(&path)?;
        removed += 1;
    }
    Ok(removed)
}

/// A fresh SQLite scratch path of `source` (the file does not exist yet).
pub fn create_sqlite(
    state_dir: &Path,
    source: &str,
    now: DateTime<Utc>,
) -> Result<Scratch, SourceError> {
    let dir = sqlite_dir(state_dir, source);
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, &e))?;
    let suffix: u16 = rand::random();
    let path = dir.join(format!("{}-{suffix:04x}.db", now.format("%Y%m%d%H%M%S")));
    Ok(Scratch::Sqlite { path })
}

fn remove_sqlite(path: &Path) -> Result<(), SourceError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path, &e)),
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> SourceError {
    SourceError::Other(format!(
        "drill scratch space {}: {e} (check state_dir)",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_keep_sources_apart_and_fit_postgres_names() {
        let a = db_prefix("billing", "s3://b/");
        let b = db_prefix("billing-eu", "s3://b/");
        assert!(a.starts_with("coffre_drill_billing_"), "{a}");
        assert!(!b.starts_with(&a), "{a} is a prefix of {b}");
        let long = db_prefix(&"x".repeat(63), "s3://b/");
        // + 14 digits of time, "_" and 4 hex digits: within PostgreSQL's 63 bytes.
        assert!(long.len() + 19 <= 63, "{long}");
        assert_ne!(db_prefix("a-b", ""), db_prefix("a_b", ""));
        // Another appliance's source of the same name is not a leftover of this one.
        assert_ne!(
            db_prefix("billing", "s3://b/"),
            db_prefix("billing", "s3://c/")
        );
    }

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://drill@127.0.0.1:5432/postgres", "coffre_drill_x").ok(),
            Some("postgres://drill@127.0.0.1:5432/coffre_drill_x".to_owned())
        );
        assert_eq!(
            with_database("postgres://drill@db/postgres?sslmode=require", "d").ok(),
            Some("postgres://drill@db/d?sslmode=require".to_owned())
        );
    }

    #[test]
    fn sqlite_leftovers_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = Utc::now();
        let Scratch::Sqlite { path } = create_sqlite(dir.path(), "demo", now).expect("create")
        else {
            panic!("sqlite scratch expected");
        };
        std::fs::write(&path, b"x").expect("write");
        // Another source's scratch space is not touched.
        let other = create_sqlite(dir.path(), "demo-2", now).expect("create");
        std::fs::write(other.restore_url(), b"x").expect("write");
        assert_eq!(
            clean_sqlite_leftovers(dir.path(), "demo").expect("clean"),
            1
        );
        assert!(!path.exists());
        assert!(Path::new(&other.restore_url()).exists());
        assert_eq!(
            clean_sqlite_leftovers(dir.path(), "demo").expect("clean"),
            0
        );
    }
}
