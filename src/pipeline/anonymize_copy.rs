//! An anonymized copy of an existing backup, without touching production:
//! store → SHA-256 → age⁻¹ (the appliance's identity) → zstd⁻¹ → anonymizer →
//! zstd → age (the requester's recipient only) → the source's targets, as a new
//! backup of kind `anonymized` that names the backup it was derived from.
//!
//! The dump is parsed as its source type wrote it (`pg_dump` plain text, or
//! coffre's SQLite SQL) and rows go through the same conversions as in an
//! anonymized backup, so the copy is that backup's text, byte for byte.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use tokio::sync::mpsc::Sender;

use super::backup::{BackupError, BackupReport, StoreJob, store_backup};
use super::restore::{download, open_plaintext};
use super::{CHUNK, Context, ContextError, Piece, channel};
use crate::anonymize::setup::{self, SetupError};
use crate::catalog;
use crate::dump::mysql_rows::MysqlRewriter;
use crate::dump::pg_plain::{Output, PgPlainParser};
use crate::dump::sqlite_rows::SqliteRewriter;
use crate::dump::{DumpStats, pump};
use crate::erasure::filter::{EraseFilter, Inner};
use crate::erasure::ledger;
use crate::erasure::rules::ErasureRules;
use crate::keys;
use crate::manifest::{self, BackupKind};
use crate::progress::Progress;
use crate::source::SourceError;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    #[error("no backup {0} in any target (see `coffre list`)")]
    NotFound(String),
    #[error("backup {id} has no whole copy{}", .target.as_ref().map(|t| format!(" in target {t}")).unwrap_or_default())]
    NoCopy { id: String, target: Option<String> },
    #[error(
        "backup {id} is a {source_type} backup: anonymized copies are made of postgres, mysql and sqlite backups only (back up the source with --anonymize instead)"
    )]
    UnsupportedSourceType { id: String, source_type: String },
    #[error("erasure ledger of source {source_name}: {reason}")]
    Erasure { source_name: String, reason: String },
}

/// The dump formats a copy can be made of, by the manifest's `source_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DumpFormat {
    /// `pg_dump --format=plain`.
    Postgres,
    /// coffre's own SQLite SQL text.
    Sqlite,
    /// `mariadb-dump` / `mysqldump` output.
    Mysql,
}

impl DumpFormat {
    fn of(source_type: &str) -> Option<DumpFormat> {
        match source_type {
            "postgres" => Some(DumpFormat::Postgres),
            "sqlite" => Some(DumpFormat::Sqlite),
            "mysql" => Some(DumpFormat::Mysql),
            _ => None,
        }
    }
}

/// Options of `coffre anonymize`.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    pub backup_id: String,
    /// The requester's age recipient: the only key that decrypts the copy.
    pub recipient: String,
    /// Read the backup from this target (default: the first whole copy).
    pub target: Option<String>,
}

/// The erasure rules and erased keys of a source whose ledger is not empty. The ledger is
/// read from the stores too (the identity is at hand), so a fresh install applies it.
async fn ledger_of(
    ctx: &Context,
    source: &str,
) -> Result<Option<(ErasureRules, Vec<String>)>, CopyError> {
    let err = |reason: String| CopyError::Erasure {
        source_name: source.to_owned(),
        reason,
    };
    // Without a state store (unreadable state_dir), the stores alone give the ledger.
    let state = super::restore::open_state(ctx)
        .await
        .inspect_err(
            |e| tracing::warn!(error = %e, "the erasure ledger is read from the stores only"),
        )
        .ok();
    let ledger = ledger::load(ctx, state.as_ref(), source, true)
        .await
        .map_err(|e| err(e.to_string()))?;
    if ledger.erasures.is_empty() {
        return Ok(None);
    }
    let (_, rules) = ledger::rules_of(ctx, source).map_err(|e| err(e.to_string()))?;
    tracing::info!(
        source,
        erasures = ledger.erasures.len(),
        "the erasure ledger is applied to the copy"
    );
    Ok(Some((rules, ledger.keys())))
}

/// Makes the copy; its report is a backup report (status per target).
pub async fn run_anonymize_copy(
    ctx: &Context,
    opts: &CopyOptions,
    progress: Arc<Progress>,
) -> Result<BackupReport, CopyError> {
    let started = Instant::now();
    let started_at = Utc::now();
    keys::parse_recipients(std::slice::from_ref(&opts.recipient))?;
    let entry = catalog::find(ctx, &opts.backup_id)
        .await?
        .ok_or_else(|| CopyError::NotFound(opts.backup_id.clone()))?;
    let copy = entry
        .good_copies()
        .find(|c| opts.target.as_ref().is_none_or(|t| &c.target == t))
        .ok_or_else(|| CopyError::NoCopy {
            id: entry.id.clone(),
            target: opts.target.clone(),
        })?;
    let m = copy
        .manifest
        .clone()
        .ok_or_else(|| CopyError::NotFound(opts.backup_id.clone()))?;
    let format =
        DumpFormat::of(&m.source_type).ok_or_else(|| CopyError::UnsupportedSourceType {
            id: m.id.clone(),
            source_type: m.source_type.clone(),
        })?;
    let store = ctx.store(&copy.target).ok_or_else(|| CopyError::NoCopy {
        id: entry.id.clone(),
        target: Some(copy.target.clone()),
    })?;
    let identities = ctx.identities()?.0;
    let prepared = setup::with_unique(&ctx.config, &m.source, &m.unique_columns)?;
    let mut anonymizer = prepared.anonymizer;
    let erasures = ledger_of(ctx, &m.source).await?;
    let default_schema = setup::default_schema(&ctx.config, &m.source);

    let (dl_tx, dl_rx) = channel();
    let download_task = tokio::spawn(download(store.clone(), m.clone(), dl_tx, progress.clone()));
    let what = format!("backup {} in target {}", m.id, store.name());
    let producer = move |tx: Sender<Piece>| -> Result<DumpStats, SourceError> {
        let fail = |e: String| SourceError::Other(format!("reading {what}: {e}"));
        let mut zstd = open_plaintext(dl_rx, &identities)
            .map_err(|e| fail(format!("{e} (is the identity file the right one?)")))?;
        let mut send = |chunk: Vec<u8>| {
            tx.blocking_send(Piece::Data(Bytes::from(chunk)))
                .map_err(|_| SourceError::Downstream)
        };
        let read_err = |e: std::io::Error| fail(e.to_string());
        let mut filter;
        let transform: &mut dyn crate::dump::RowTransform = match &erasures {
            Some((rules, keys)) => {
                filter = EraseFilter::new(
                    &mut anonymizer,
                    Inner::AllRows,
                    rules,
                    keys,
                    &default_schema,
                );
                &mut filter
            }
            None => &mut anonymizer,
        };
        let stats = match format {
            DumpFormat::Postgres => pump(
                &mut zstd,
                PgPlainParser::new(transform, Output::Emit),
                CHUNK,
                &mut send,
                read_err,
                SourceError::from,
            ),
            DumpFormat::Sqlite => pump(
                &mut zstd,
                SqliteRewriter::new(transform),
                CHUNK,
                &mut send,
                read_err,
                SourceError::from,
            ),
            DumpFormat::Mysql => pump(
                &mut zstd,
                MysqlRewriter::new(transform),
                CHUNK,
                &mut send,
                read_err,
                SourceError::from,
            ),
        }?;
        tx.blocking_send(Piece::End)
            .map_err(|_| SourceError::Downstream)?;
        Ok(stats)
    };
    let job = StoreJob {
        source: m.source.clone(),
        id: manifest::new_backup_id(started_at),
        kind: BackupKind::Anonymized,
        source_type: m.source_type.clone(),
        dump_tool: m.dump_tool.clone(),
        recipients: vec![opts.recipient.clone()],
        started_at,
        started,
        policy_sha256: Some(prepared.policy_sha256),
        unique_columns: m.unique_columns.clone(),
        derived_from: Some(m.id.clone()),
    };
    let mut report = store_backup(ctx, job, producer, progress).await?;
    // A failed download explains a broken stream better than the decoder does.
    if let Ok(Err(e)) = download_task.await {
        report.error = Some(e.to_string());
    }
    Ok(report)
}
