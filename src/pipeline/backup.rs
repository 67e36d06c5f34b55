//! One backup of one source to all its targets in one pass.
//!
//! Stages: the source dumps on a blocking thread; the encoder (zstd → age →
//! SHA-256) on another; the fan-out and one upload per target on async tasks.
//! Only after the data object is complete in a target is its manifest written
//! there, so a backup appears in a store only when it is whole.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;

use super::encode::{EncodeError, Encoded, encode};
use super::fanout::{FanOutEnd, branch, fan_out};
use super::{Context, ContextError, Piece, channel, seconds_since};
use crate::dump::{DumpStats, Identity};
use crate::keys;
use crate::manifest::{
    self, BackupKind, Compression, DATA_OBJECT, Encryption, MANIFEST_OBJECT, Manifest, ObjectEntry,
};
use crate::progress::Progress;
use crate::source::{ChunkSink, SourceError};
use crate::store::DynStore;

/// Outcome of a backup as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupStatus {
    /// Stored in every target.
    Ok,
    /// Stored in some targets only.
    Degraded,
    /// Stored nowhere.
    Failed,
}

/// Outcome in one target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetOutcome {
    pub target: String,
    pub location: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `coffre backup` reports.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub id: String,
    pub source: String,
    pub kind: BackupKind,
    pub status: BackupStatus,
    pub targets: Vec<TargetOutcome>,
    pub plaintext_bytes: u64,
    pub stored_bytes: u64,
    pub duration_s: f64,
    pub tables: usize,
    pub rows: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Sends the source's chunks down the pipeline.
struct ChannelSink {
    tx: tokio::sync::mpsc::Sender<Piece>,
    progress: Arc<Progress>,
}

impl ChunkSink for ChannelSink {
    fn send(&mut self, chunk: Vec<u8>) -> Result<(), SourceError> {
        self.progress.add_plain(chunk.len());
        self.tx
            .blocking_send(Piece::Data(Bytes::from(chunk)))
            .map_err(|_| SourceError::Downstream)
    }
}

/// Runs one backup. Errors of the configuration come back as `Err`; failures of
/// the job itself are in the report (status `failed`, with the reason).
pub async fn run_backup(
    ctx: &Context,
    source_name: &str,
    progress: Arc<Progress>,
) -> Result<BackupReport, ContextError> {
    let started = Instant::now();
    let started_at = Utc::now();
    let id = manifest::new_backup_id(started_at);
    let source = ctx.source(source_name)?;
    let stores = ctx.stores_of(source_name)?;
    let recipients = keys::parse_recipients(&ctx.config.encryption.recipients)?;
    let compression = ctx.config.compression.clone();
    let span = tracing::info_span!("backup", source = %source_name, id = %id);
    let _guard = span.enter();
    tracing::info!(targets = stores.len(), "backup started");

    let dump_tool = {
        let s = source.clone();
        tokio::task::spawn_blocking(move || s.dump_tool())
            .await
            .map_err(|e| SourceError::Other(e.to_string()))
            .and_then(|r| r)
            .unwrap_or_else(|e| format!("unknown ({e})"))
    };

    let (src_tx, src_rx) = channel();
    let (enc_tx, enc_rx) = channel();

    let source_task = {
        let source = source.clone();
        let progress = progress.clone();
        tokio::task::spawn_blocking(move || -> Result<DumpStats, SourceError> {
            let mut sink = ChannelSink {
                tx: src_tx,
                progress,
            };
            let stats = source.dump(&mut Identity, &mut sink)?;
            sink.tx
                .blocking_send(Piece::End)
                .map_err(|_| SourceError::Downstream)?;
            Ok(stats)
        })
    };
    let encode_task = {
        let progress = progress.clone();
        tokio::task::spawn_blocking(move || {
            encode(
                src_rx,
                enc_tx,
                recipients,
                compression.level,
                compression.threads,
                progress,
            )
        })
    };
    let data_key = |store: &DynStore| {
        let _ = store;
        manifest::object_key(source_name, &id, DATA_OBJECT)
    };
    let mut branches = Vec::new();
    let mut uploads = Vec::new();
    for store in &stores {
        let (b, body) = branch(store.name());
        branches.push(b);
        let store = store.clone();
        let key = data_key(&store);
        uploads.push(tokio::spawn(
            async move { store.put_stream(&key, body).await },
        ));
    }
    let fan_task = tokio::spawn(fan_out(enc_rx, branches));

    let fan_end = fan_task.await.unwrap_or(FanOutEnd::Upstream);
    let mut upload_results = Vec::new();
    for u in uploads {
        upload_results.push(match u.await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(format!("upload task failed: {e}")),
        });
    }
    let encoded: Result<Encoded, EncodeError> = encode_task
        .await
        .unwrap_or_else(|e| Err(EncodeError::Age(format!("encoder task failed: {e}"))));
    let dumped: Result<DumpStats, SourceError> = source_task
        .await
        .unwrap_or_else(|e| Err(SourceError::Other(format!("source task failed: {e}"))));

    let mut outcomes: Vec<TargetOutcome> = stores
        .iter()
        .zip(&upload_results)
        .map(|(s, r)| TargetOutcome {
            target: s.name().to_owned(),
            location: s.location(),
            status: if r.is_ok() { "ok" } else { "failed" },
            error: r.as_ref().err().cloned(),
        })
        .collect();

    let every_target_failed = |outcomes: &[TargetOutcome]| {
        format!(
            "every target failed: {}",
            outcomes
                .iter()
                .map(|o| format!("{}: {}", o.target, o.error.as_deref().unwrap_or("stopped")))
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    // The root cause first: a dead target list explains a stopped source.
    let failure: Option<String> = match (&dumped, &encoded, fan_end) {
        (_, _, FanOutEnd::NoTargets) => Some(every_target_failed(&outcomes)),
        (Err(e), _, _) => Some(format!("source {source_name}: {e}")),
        (_, Err(e), _) => Some(format!("encoding: {e}")),
        _ => None,
    };

    let mut report = BackupReport {
        id: id.clone(),
        source: source_name.to_owned(),
        kind: BackupKind::Full,
        status: BackupStatus::Failed,
        targets: Vec::new(),
        plaintext_bytes: 0,
        stored_bytes: 0,
        duration_s: 0.0,
        tables: 0,
        rows: 0,
        sha256: None,
        error: None,
    };

    if let (None, Ok(stats), Ok(enc)) = (&failure, &dumped, &encoded) {
        let m = Manifest {
            format: manifest::FORMAT.into(),
            id: id.clone(),
            source: source_name.to_owned(),
            source_type: source.kind().to_owned(),
            kind: BackupKind::Full,
            started_at,
            finished_at: Utc::now(),
            coffre_version: env!("CARGO_PKG_VERSION").to_owned(),
            dump_tool,
            compression: Compression {
                algorithm: "zstd".into(),
                level: ctx.config.compression.level,
            },
            encryption: Encryption {
                algorithm: "age".into(),
                recipients: ctx.config.encryption.recipients.clone(),
            },
            plaintext_bytes: enc.plaintext_bytes,
            objects: vec![ObjectEntry {
                name: DATA_OBJECT.into(),
                size: enc.stored_bytes,
                sha256: enc.sha256.clone(),
            }],
            tables: stats.clone(),
        };
        let body = Bytes::from(m.to_json());
        let manifest_key = manifest::object_key(source_name, &id, MANIFEST_OBJECT);
        for (store, outcome) in stores.iter().zip(outcomes.iter_mut()) {
            if outcome.status != "ok" {
                continue;
            }
            if let Err(e) = store.put_bytes(&manifest_key, body.clone()).await {
                outcome.status = "failed";
                outcome.error = Some(e.to_string());
                // A data object without its manifest is never listed; remove it.
                let _ = store.delete(&data_key(store)).await;
            }
        }
        report.plaintext_bytes = enc.plaintext_bytes;
        report.stored_bytes = enc.stored_bytes;
        report.sha256 = Some(enc.sha256.clone());
        report.tables = stats.tables.len();
        report.rows = stats.total_rows();
        let ok = outcomes.iter().filter(|o| o.status == "ok").count();
        report.status = if ok == outcomes.len() {
            BackupStatus::Ok
        } else if ok > 0 {
            BackupStatus::Degraded
        } else {
            BackupStatus::Failed
        };
        if report.status == BackupStatus::Failed {
            report.error = Some(every_target_failed(&outcomes));
        }
    } else {
        for o in outcomes.iter_mut() {
            if o.status == "ok" {
                // Upload completed but the backup as a whole failed: never keep it.
                o.status = "failed";
            }
        }
        for store in &stores {
            let _ = store.delete(&data_key(store)).await;
        }
        report.error = failure;
    }
    report.targets = outcomes;
    report.duration_s = seconds_since(started);
    match report.status {
        BackupStatus::Ok => tracing::info!(
            bytes = report.stored_bytes,
            seconds = report.duration_s,
            "backup stored"
        ),
        BackupStatus::Degraded => tracing::warn!(error = ?report.targets, "backup degraded"),
        BackupStatus::Failed => tracing::error!(error = ?report.error, "backup failed"),
    }
    Ok(report)
}
