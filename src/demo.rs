//! `coffre demo`: the whole cycle with nothing configured — a sample SQLite
//! billing database, fresh keys, a backup to two local directories standing for
//! two regions, a restore into a new file, and a table-by-table comparison.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Config;
use crate::dump::Identity;
use crate::pipeline::Context;
use crate::pipeline::backup::{BackupOptions, BackupReport, run_backup};
use crate::pipeline::restore::{RestoreOptions, run_restore};
use crate::progress::Progress;
use crate::source::{ChunkSink, Source, SourceError, SqliteDatabase};
use crate::{fixture, keys};

/// What the demo did and where everything is.
#[derive(Debug, Serialize)]
pub struct DemoReport {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub identity_file: PathBuf,
    pub database: PathBuf,
    pub restored: PathBuf,
    pub backup: BackupReport,
    pub tables: Vec<(String, u64)>,
    pub equal: bool,
}

impl DemoReport {
    /// The summary printed for people.
    pub fn text(&self) -> String {
        let data = self
            .dir
            .join("region-a")
            .join(&self.backup.source)
            .join(&self.backup.id)
            .join("data.sql.zst.age");
        let mut s = String::new();
        s.push_str(&format!("coffre demo in {}\n", self.dir.display()));
        s.push_str(&format!(
            "  sample database   {}\n",
            self.database.display()
        ));
        s.push_str(&format!("  configuration     {}\n", self.config.display()));
        s.push_str(&format!(
            "  identity (secret) {}\n",
            self.identity_file.display()
        ));
        s.push_str(&format!(
            "  backup {} → {} ({} rows, {} bytes stored in each of {} regions)\n",
            self.backup.id,
            format!("{:?}", self.backup.status).to_lowercase(),
            self.backup.rows,
            self.backup.stored_bytes,
            self.backup.targets.len()
        ));
        s.push_str(&format!(
            "  restored into     {}\n",
            self.restored.display()
        ));
        for (t, n) in &self.tables {
            s.push_str(&format!("    {t:<18} {n} rows\n"));
        }
        s.push_str(if self.equal {
            "  restored database equals the original, table by table\n"
        } else {
            "  RESTORED DATABASE DIFFERS FROM THE ORIGINAL\n"
        });
        s.push_str(&format!(
            "try: coffre --config {} list\n     age -d -i {} {} | zstd -d | sqlite3 by-hand.db\n",
            self.config.display(),
            self.identity_file.display(),
            data.display()
        ));
        s
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo directory {0} already holds a demo: remove it or pass --dir elsewhere")]
    Exists(PathBuf),
    #[error("demo: {0}")]
    Step(String),
}

fn step<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> DemoError {
    move |e| DemoError::Step(format!("{what}: {e}"))
}

struct Discard;
impl ChunkSink for Discard {
    fn send(&mut self, _chunk: Vec<u8>) -> Result<(), SourceError> {
        Ok(())
    }
}

/// Runs the demo in `dir` (created; must not hold a previous demo).
pub async fn run(dir: &Path, scale: u64) -> Result<DemoReport, DemoError> {
    let config_path = dir.join("coffre.toml");
    if config_path.exists() {
        return Err(DemoError::Exists(dir.to_owned()));
    }
    std::fs::create_dir_all(dir).map_err(step("creating the directory"))?;
    let dir = dir
        .canonicalize()
        .map_err(step("resolving the directory"))?;
    let database = dir.join("billing.db");
    let restored = dir.join("restored.db");
    let identity_file = dir.join("identity.txt");

    let db = database.clone();
    tokio::task::spawn_blocking(move || fixture::create_sqlite(&db, scale))
        .await
        .map_err(step("sample database"))?
        .map_err(step("sample database"))?;
    let key = keys::generate();
    keys::write_identity_file(&identity_file, &key).map_err(step("keys"))?;
    keys::write_random_key_file(&dir.join("integrity.key")).map_err(step("keys"))?;
    let config_text = format!(
        "# Written by `coffre demo`.\n\
         state_dir = \"state\"\n\n\
         [encryption]\n\
         recipients = [\"{}\"]\n\
         identity_file = \"identity.txt\"\n\n\
         [integrity]\n\
         key_file = \"integrity.key\"\n\n\
         [targets.region-a]\ntype = \"fs\"\npath = \"region-a\"\n\n\
         [targets.region-b]\ntype = \"fs\"\npath = \"region-b\"\n\n\
         [sources.billing]\ntype = \"sqlite\"\npath = \"billing.db\"\ntargets = [\"region-a\", \"region-b\"]\n",
        key.recipient
    );
    std::fs::write(&config_path, config_text).map_err(step("writing the configuration"))?;
    let config = Config::load(&config_path).map_err(step("configuration"))?;
    let ctx = Context::new(config).await.map_err(step("configuration"))?;

    let backup = run_backup(&ctx, "billing", BackupOptions::default(), Progress::new())
        .await
        .map_err(step("backup"))?;
    if let Some(e) = &backup.error {
        return Err(DemoError::Step(format!("backup: {e}")));
    }
    let opts = RestoreOptions {
        skip_erasures: None,
        backup_id: backup.id.clone(),
        to: restored.display().to_string(),
        target: None,
        force: false,
    };
    let restore = run_restore(&ctx, &opts, Progress::new())
        .await
        .map_err(step("restore"))?;

    // Compare both databases through the same dumper: equal stats mean equal rows.
    let (a, b) = (database.clone(), restored.clone());
    let (original, copy) = tokio::task::spawn_blocking(move || {
        let s1 = SqliteDatabase::new(a).dump(&mut Identity, &mut Discard);
        let s2 = SqliteDatabase::new(b).dump(&mut Identity, &mut Discard);
        (s1, s2)
    })
    .await
    .map_err(step("comparison"))?;
    let original = original.map_err(step("reading the original"))?;
    let copy = copy.map_err(step("reading the restored copy"))?;
    Ok(DemoReport {
        equal: original.differences(&copy).is_empty(),
        tables: restore
            .tables
            .iter()
            .map(|t| (t.table.clone(), t.restored_rows))
            .collect(),
        dir: dir.clone(),
        config: config_path
            .canonicalize()
            .unwrap_or_else(|_| config_path.clone()),
        identity_file,
        database,
        restored,
        backup,
    })
}
