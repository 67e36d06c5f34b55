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
use tracing::Instrument as _;

use super::encode::{EncodeError, Encoded, encode};
use super::fanout::{FanOutEnd, branch, fan_out};
use super::lock::{LockError, SourceLock, clean_leftovers};
use super::{Context, ContextError, Piece, channel, seconds_since};
use crate::anonymize::setup::{self, SetupError};
use crate::dump::{DumpStats, Identity, RowTransform};
use crate::keys;
use crate::manifest::{
    self, BackupKind, Compression, DATA_OBJECT, Encryption, MANIFEST_OBJECT, Manifest, ObjectEntry,
};
use crate::progress::Progress;
use crate::source::{ChunkSink, SourceError};

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

/// Options of one backup.
#[derive(Debug, Clone, Copy, Default)]
pub struct BackupOptions {
    /// Anonymize with the source's policy; `None` follows the source's `anonymize`.
    pub anonymize: Option<bool>,
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

/// Errors that stop a backup before it starts (configuration, policy, keys).
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Anonymize(#[from] SetupError),
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    #[error(transparent)]
    Lock(#[from] LockError),
}

/// Runs one backup. Errors of the configuration come back as `Err`; failures of
/// the job itself are in the report (status `failed`, with the reason).
pub async fn run_backup(
    ctx: &Context,
    source_name: &str,
    options: BackupOptions,
    progress: Arc<Progress>,
) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    let started_at = Utc::now();
    let id = manifest::new_backup_id(started_at);
    let source = ctx.source(source_name)?;
    let anonymize = options.anonymize.unwrap_or(
        ctx.config
            .source(source_name)
            .map_err(ContextError::from)?
            .anonymize(),
    );
    let kind = if anonymize {
        BackupKind::Anonymized
    } else {
        BackupKind::Full
    };
    // The dump tool starts first: it connects, takes its snapshot and reads the catalog
    // while the policy is checked; no row of it is read before the check passes, and a
    // failed check (or lock) drops it, which stops the tool.
    let started_dump = source.start_dump();
    // The dump tool's version, asked meanwhile too.
    let dump_tool = {
        let s = source.clone();
        tokio::task::spawn_blocking(move || s.dump_tool())
    };
    // Policy, key and the fail-closed check against the live schema, before any row.
    let prepared = if anonymize {
        let prepared = tokio::task::block_in_place(|| setup::prepare(ctx, source_name))?;
        for w in &prepared.warnings {
            tracing::warn!("{w}");
        }
        Some(prepared)
    } else {
        None
    };
    let (policy_sha256, unique_columns, transform): (
        Option<String>,
        Vec<String>,
        Box<dyn RowTransform>,
    ) = match prepared {
        Some(p) => (
            Some(p.policy_sha256),
            p.unique_columns,
            Box::new(p.anonymizer),
        ),
        None => (
            None,
            raw_unique_columns(ctx, source_name),
            Box::new(Identity),
        ),
    };
    let span = tracing::info_span!("backup", source = %source_name, id = %id);
    let dump_tool = dump_tool
        .await
        .map_err(|e| SourceError::Other(e.to_string()))
        .and_then(|r| r)
        .unwrap_or_else(|e| format!("unknown ({e})"));
    let job = StoreJob {
        source: source_name.to_owned(),
        id: id.clone(),
        kind,
        source_type: source.kind().to_owned(),
        dump_tool,
        recipients: ctx.config.encryption.recipients.clone(),
        started_at,
        started,
        policy_sha256,
        unique_columns,
        derived_from: None,
    };
    let producer_progress = progress.clone();
    let producer = move |tx: tokio::sync::mpsc::Sender<Piece>| -> Result<DumpStats, SourceError> {
        let mut sink = ChannelSink {
            tx,
            progress: producer_progress,
        };
        let mut transform = transform;
        let stats = started_dump?.run(transform.as_mut(), &mut sink)?;
        sink.tx
            .blocking_send(Piece::End)
            .map_err(|_| SourceError::Downstream)?;
        Ok(stats)
    };
    store_backup(ctx, job, producer, progress)
        .instrument(span)
        .await
}

/// What a stored backup is, besides its bytes.
pub struct StoreJob {
    pub source: String,
    pub id: String,
    pub kind: BackupKind,
    pub source_type: String,
    pub dump_tool: String,
    /// age recipients the data is encrypted to.
    pub recipients: Vec<String>,
    pub started_at: chrono::DateTime<Utc>,
    pub started: Instant,
    pub policy_sha256: Option<String>,
    pub unique_columns: Vec<String>,
    pub derived_from: Option<String>,
}

/// Stores one stream of SQL text as a backup of `job.source` in all its targets:
/// `producer` runs on a blocking thread, sends the text and ends with
/// [`Piece::End`]; encoding, fan-out, uploads and manifests follow.
pub async fn store_backup<P>(
    ctx: &Context,
    job: StoreJob,
    producer: P,
    progress: Arc<Progress>,
) -> Result<BackupReport, BackupError>
where
    P: FnOnce(tokio::sync::mpsc::Sender<Piece>) -> Result<DumpStats, SourceError> + Send + 'static,
{
    let source_name = job.source.as_str();
    let id = job.id.clone();
    let kind = job.kind;
    let stores = ctx.stores_of(source_name)?;
    let integrity = ctx.integrity_key()?;
    let _lock = SourceLock::acquire(&ctx.config.state_dir, source_name)?;
    clean_leftovers(&stores, source_name).await;
    let recipients = keys::parse_recipients(&job.recipients)?;
    let compression = ctx.config.compression.clone();
    tracing::info!(targets = stores.len(), "backup started");

    let (src_tx, src_rx) = channel();
    let (enc_tx, enc_rx) = channel();

    let source_task = tokio::task::spawn_blocking(move || producer(src_tx));
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
    let data_key = manifest::object_key(source_name, &id, DATA_OBJECT);
    let mut branches = Vec::new();
    let mut uploads = Vec::new();
    let mut stalls = Vec::new();
    for store in &stores {
        let stall = ctx.stall_timeout(store.name());
        stalls.push(stall);
        let (b, body) = branch(store.name(), stall);
        branches.push(b);
        let store = store.clone();
        let key = data_key.clone();
        uploads.push(tokio::spawn(
            async move { store.put_stream(&key, body).await },
        ));
    }
    let fan_task = tokio::spawn(fan_out(enc_rx, branches));
    // If this future is dropped (a service shutting down cancels its jobs), the spawned
    // stages go with it: uploads are abandoned by their stores' drop guards (S3 multipart
    // uploads aborted, fs temp files removed) and no manifest is written.
    let _stages = AbortOnDrop(
        uploads
            .iter()
            .map(tokio::task::JoinHandle::abort_handle)
            .chain([fan_task.abort_handle()])
            .collect(),
    );

    let fan_end = fan_task.await.unwrap_or(FanOutEnd::Upstream);
    let dropped: &[(String, String)] = match &fan_end {
        FanOutEnd::Complete { dropped } => dropped,
        _ => &[],
    };
    let mut upload_results = Vec::new();
    for ((store, u), stall) in stores.iter().zip(uploads).zip(&stalls) {
        upload_results.push(
            finish_upload(store.name(), u, *stall, dropped)
                .await
                .map(|_| ()),
        );
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
        kind,
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
            source_type: job.source_type.clone(),
            kind,
            started_at: job.started_at,
            finished_at: Utc::now(),
            coffre_version: env!("CARGO_PKG_VERSION").to_owned(),
            dump_tool: job.dump_tool.clone(),
            compression: Compression {
                algorithm: "zstd".into(),
                level: ctx.config.compression.level,
            },
            encryption: Encryption {
                algorithm: "age".into(),
                recipients: job.recipients.clone(),
            },
            plaintext_bytes: enc.plaintext_bytes,
            objects: vec![ObjectEntry {
                name: DATA_OBJECT.into(),
                size: enc.stored_bytes,
                sha256: enc.sha256.clone(),
            }],
            tables: stats.clone(),
            unique_columns: job.unique_columns.clone(),
            policy_sha256: job.policy_sha256.clone(),
            derived_from: job.derived_from.clone(),
            mac: None,
        };
        let body = Bytes::from(m.to_json(integrity));
        let manifest_key = manifest::object_key(source_name, &id, MANIFEST_OBJECT);
        for (store, outcome) in stores.iter().zip(outcomes.iter_mut()) {
            if outcome.status != "ok" {
                continue;
            }
            if let Err(e) = store.put_bytes(&manifest_key, body.clone()).await {
                outcome.status = "failed";
                outcome.error = Some(e.to_string());
                // A data object without its manifest is never listed; remove it.
                let _ = store.delete(&data_key).await;
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
            let _ = store.delete(&data_key).await;
        }
        report.error = failure;
    }
    report.targets = outcomes;
    report.duration_s = seconds_since(job.started);
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

/// For a raw backup of a source that has a policy: the unique columns, recorded so
/// that an anonymized copy made later from this backup keeps them unique. Best
/// effort: a failure only loses that hint.
fn raw_unique_columns(ctx: &Context, source: &str) -> Vec<String> {
    let has_policy = ctx
        .config
        .source(source)
        .map(|s| s.policy().is_some())
        .unwrap_or(false);
    if !has_policy {
        return Vec::new();
    }
    match tokio::task::block_in_place(|| setup::live_schema(ctx, source)) {
        Ok(schema) => {
            let mut v: Vec<String> =
                crate::anonymize::transform::Anonymizer::unique_columns(&schema)
                    .into_iter()
                    .collect();
            v.sort();
            v
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the unique columns of the source");
            Vec::new()
        }
    }
}

/// Aborts spawned tasks when dropped (harmless for tasks that already ended).
struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for handle in &self.0 {
            handle.abort();
        }
    }
}

/// How long a target dropped from the fan-out gets to abandon its object.
const DROPPED_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits for one target's upload. A target that dropped out of the fan-out
/// failed for the reason the fan-out gave; a healthy one has, after the last
/// chunk, at most its last parts and the commit to send, bounded by the S3
/// client's own timeouts; past `4 × stall` (a dropped one: past
/// [`DROPPED_GRACE`]) it is cancelled (its multipart upload aborted by the
/// store's drop guard) and counted as failed.
async fn finish_upload(
    target: &str,
    upload: tokio::task::JoinHandle<Result<u64, crate::store::StoreError>>,
    stall: std::time::Duration,
    dropped: &[(String, String)],
) -> Result<u64, String> {
    let abort = upload.abort_handle();
    let why_dropped = dropped
        .iter()
        .find(|(name, _)| name == target)
        .map(|(_, why)| format!("target {target}: {why}"));
    // A dropped target has failed already: give its store a moment to abandon
    // the object, no more (a frozen server would hold it for minutes).
    let wait = if why_dropped.is_some() {
        DROPPED_GRACE.min(stall)
    } else {
        stall * 4
    };
    let outcome = tokio::time::timeout(wait, upload).await;
    match outcome {
        Ok(Ok(Ok(bytes))) => match why_dropped {
            // Cannot happen (a dropped branch's stream ends in an error), but a
            // target that missed chunks must never count as whole.
            Some(why) => Err(why),
            None => Ok(bytes),
        },
        Ok(Ok(Err(e))) => Err(why_dropped.unwrap_or_else(|| e.to_string())),
        Ok(Err(e)) => Err(format!("target {target}: upload task failed: {e}")),
        Err(_) => {
            abort.abort();
            Err(why_dropped.unwrap_or_else(|| {
                format!(
                    "target {target}: stalled: the upload did not finish within {} s of the last chunk",
                    wait.as_secs()
                )
            }))
        }
    }
}
