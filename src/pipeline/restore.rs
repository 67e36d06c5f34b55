//! Restore: store → SHA-256 check → age⁻¹ → zstd⁻¹ → destination, streamed.
//!
//! The download is hashed as it arrives; the destination commits only after the
//! last byte matched the manifest's size and SHA-256 and the rows seen matched
//! the manifest's per-table counts and checksums. Otherwise it rolls back
//! (psql's single transaction is killed; an SQLite temp file is removed). When a
//! copy fails its integrity check, the next target holding the backup is tried.

use std::io::{BufReader, Read};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::{Receiver, Sender};

use super::{CHUNK, Context, ContextError, Piece, channel, seconds_since};
use crate::anonymize::schema::Dialect;
use crate::catalog;
use crate::dump::DumpStats;
use crate::erasure::apply::{Applied, Plan, apply_postgres, apply_stream};
use crate::keys::Identities;
use crate::manifest::{self, DATA_OBJECT, Manifest};
use crate::progress::Progress;
use crate::source::{Destination, PgDatabase, SourceError, SqliteDatabase};
use crate::store::DynStore;

/// Errors of a restore, naming the backup, the target and the fix.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error("no backup {0} in any target (see `coffre list`)")]
    NotFound(String),
    #[error("backup {id} has no copy in target {target}")]
    NoCopy { id: String, target: String },
    #[error("backup {id} is a {kind} backup; it cannot be restored into {destination}")]
    KindMismatch {
        id: String,
        kind: String,
        destination: String,
    },
    #[error(
        "{0:?} is not a destination: use postgres://…, mysql://…, sqlite:///path/file.db or a file path"
    )]
    BadDestination(String),
    #[error(
        "the identity file {file} does not decrypt backup {id}: none of its identities matches the backup's recipients"
    )]
    WrongIdentity { file: String, id: String },
    #[error("target {target}: {key}: {reason}")]
    Integrity {
        target: String,
        key: String,
        reason: String,
    },
    #[error("restore into {destination}: {source}")]
    Destination {
        destination: String,
        #[source]
        source: SourceError,
    },
    #[error("restored rows do not match backup {id}: {}", .differences.join("; "))]
    Rows {
        id: String,
        differences: Vec<String>,
    },
    #[error("every copy of backup {id} failed: {}", .attempts.join("; "))]
    AllCopiesFailed { id: String, attempts: Vec<String> },
    #[error("{0}")]
    Other(String),
}

/// Options of `coffre restore`.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub backup_id: String,
    pub to: String,
    pub target: Option<String>,
    pub force: bool,
    /// `Some(actor)`: restore without re-applying the erasure ledger, on that actor's
    /// explicit request (recorded in the audit log).
    pub skip_erasures: Option<String>,
}

/// One table after a restore.
#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    pub table: String,
    pub expected_rows: u64,
    pub restored_rows: u64,
}

/// What `coffre restore` reports.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub id: String,
    pub source: String,
    pub target: String,
    pub destination: String,
    pub plaintext_bytes: u64,
    pub stored_bytes: u64,
    pub duration_s: f64,
    pub rows: u64,
    pub tables: Vec<TableCheck>,
    /// Copies tried before the one that worked, with why they failed.
    pub failed_attempts: Vec<String>,
    /// The erasure ledger re-applied before the commit (absent: the ledger of the source
    /// is empty, or `erasures_skipped`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erasures: Option<Applied>,
    /// The ledger was not applied, on this actor's request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erasures_skipped_by: Option<String>,
}

/// Parses a `--to` value into a destination of the right kind.
pub fn destination_for(
    ctx: &Context,
    source: &str,
    to: &str,
) -> Result<Box<dyn Destination>, RestoreError> {
    if to.starts_with("postgres://") || to.starts_with("postgresql://") {
        let url = url::Url::parse(to).map_err(|_| RestoreError::BadDestination(to.into()))?;
        if url.password().is_some() {
            return Err(RestoreError::Other(
                "the destination URL must not contain a password: use PGPASSWORD or PGPASSFILE"
                    .into(),
            ));
        }
        let mut db: PgDatabase = ctx.postgres(source)?;
        db.url = to.to_owned();
        if db.password.is_some() && std::env::var_os("PGPASSWORD").is_none() {
            // The source's password is for the source, not for another server.
            db.password = None;
        }
        return Ok(Box::new(db));
    }
    if to.starts_with("mysql://") || to.starts_with("mariadb://") {
        let url = url::Url::parse(to).map_err(|_| RestoreError::BadDestination(to.into()))?;
        if url.password().is_some() {
            return Err(RestoreError::Other(
                "the destination URL must not contain a password: use the source's \
                 password_file, or an option file the client reads (~/.my.cnf)"
                    .into(),
            ));
        }
        let mut db = ctx.mysql(source)?;
        db.url = to.to_owned();
        // The source's password is for the source, not for another server.
        db.password = None;
        return Ok(Box::new(db));
    }
    let path = to
        .strip_prefix("sqlite://")
        .or_else(|| to.strip_prefix("sqlite:"))
        .unwrap_or(to);
    if path.is_empty() || path.contains("://") {
        return Err(RestoreError::BadDestination(to.into()));
    }
    Ok(Box::new(SqliteDatabase::new(path)))
}

/// Restores one backup.
pub async fn run_restore(
    ctx: &Context,
    opts: &RestoreOptions,
    progress: Arc<Progress>,
) -> Result<RestoreReport, RestoreError> {
    let started = Instant::now();
    let entry = catalog::find(ctx, &opts.backup_id)
        .await?
        .ok_or_else(|| RestoreError::NotFound(opts.backup_id.clone()))?;
    let first = entry
        .manifest()
        .ok_or_else(|| RestoreError::NotFound(opts.backup_id.clone()))?
        .clone();
    let destination: Arc<dyn Destination> =
        Arc::from(destination_for(ctx, &entry.source, &opts.to)?);
    if destination.kind() != first.source_type {
        return Err(RestoreError::KindMismatch {
            id: first.id.clone(),
            kind: first.source_type.clone(),
            destination: destination.describe(),
        });
    }
    let (identities, identity_name) = ctx.identities()?;
    let identities = Arc::new(identities);

    if !opts.force {
        on_destination(&destination, |d| d.check_empty()).await?;
    }
    let plan = match &opts.skip_erasures {
        None => erasure_plan(ctx, &first).await?.map(Arc::new),
        Some(actor) => {
            audit_skip(ctx, &first, actor, &opts.to).await?;
            None
        }
    };

    // Candidate copies: the named target, or every copy that looks whole.
    let candidates: Vec<(DynStore, Manifest)> = match &opts.target {
        Some(t) => {
            let copy = entry
                .copies
                .iter()
                .find(|c| &c.target == t)
                .and_then(|c| c.manifest.clone())
                .ok_or_else(|| RestoreError::NoCopy {
                    id: entry.id.clone(),
                    target: t.clone(),
                })?;
            let store = ctx.store(t).ok_or_else(|| RestoreError::NoCopy {
                id: entry.id.clone(),
                target: t.clone(),
            })?;
            vec![(store, copy)]
        }
        None => entry
            .good_copies()
            .filter_map(|c| Some((ctx.store(&c.target)?, c.manifest.clone()?)))
            .collect(),
    };
    if candidates.is_empty() {
        return Err(RestoreError::AllCopiesFailed {
            id: entry.id.clone(),
            attempts: entry
                .copies
                .iter()
                .map(|c| format!("{}: {}", c.target, c.detail.as_deref().unwrap_or(&c.status)))
                .collect(),
        });
    }

    let mut failed_attempts = Vec::new();
    for (store, m) in candidates {
        let attempt = restore_copy(
            store.clone(),
            &m,
            destination.clone(),
            identities.clone(),
            &identity_name,
            plan.clone(),
            progress.clone(),
        )
        .await;
        match attempt {
            Ok(erasures) => {
                let expected = erasures.as_ref().map_or(&m.tables, |a| &a.expected);
                let tables = check_counts(&destination, &m.id, expected).await?;
                return Ok(RestoreReport {
                    id: m.id.clone(),
                    source: m.source.clone(),
                    target: store.name().to_owned(),
                    destination: destination.describe(),
                    plaintext_bytes: m.plaintext_bytes,
                    stored_bytes: m.data().map(|d| d.size).unwrap_or(0),
                    duration_s: seconds_since(started),
                    rows: expected.total_rows(),
                    tables,
                    failed_attempts,
                    erasures,
                    erasures_skipped_by: opts.skip_erasures.clone(),
                });
            }
            Err(e @ RestoreError::Integrity { .. }) if opts.target.is_none() => {
                tracing::warn!(target_name = %store.name(), error = %e, "copy failed its integrity check; trying the next target");
                failed_attempts.push(e.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    Err(RestoreError::AllCopiesFailed {
        id: opts.backup_id.clone(),
        attempts: failed_attempts,
    })
}

/// The erasure plan of a backup's source: its whole ledger (re-applying an erasure is
/// harmless, and one recorded just before a backup may not have reached the database
/// yet), the policy's rules, and the key of pseudonyms. `None` when the ledger is empty.
pub async fn erasure_plan(ctx: &Context, m: &Manifest) -> Result<Option<Plan>, RestoreError> {
    let err = |e: &dyn std::fmt::Display| {
        RestoreError::Other(format!("erasure ledger of source {}: {e}", m.source))
    };
    // Without a state store (unreadable state_dir), the stores alone give the ledger.
    let state = open_state(ctx)
        .await
        .inspect_err(
            |e| tracing::warn!(error = %e, "the erasure ledger is read from the stores only"),
        )
        .ok();
    let ledger = crate::erasure::ledger::load(ctx, state.as_ref(), &m.source, true)
        .await
        .map_err(|e| err(&e))?;
    if ledger.erasures.is_empty() {
        return Ok(None);
    }
    let (policy, rules) = crate::erasure::ledger::rules_of(ctx, &m.source).map_err(|e| {
        err(&format!(
            "{e}; it holds {} erasures, which every restore must re-apply",
            ledger.erasures.len()
        ))
    })?;
    let key = crate::erasure::pseudonym_key(ctx).map_err(|e| err(&e))?;
    Ok(Some(Plan {
        policy: Arc::new(policy),
        rules,
        key,
        unique: m.unique_columns.iter().cloned().collect(),
        default_schema: crate::anonymize::setup::default_schema(&ctx.config, &m.source),
        erasures: ledger
            .erasures
            .iter()
            .map(|e| crate::erasure::apply::Applies {
                id: e.id.clone(),
                subject: e.subject.to_string(),
                recorded_at: e.recorded_at,
            })
            .collect(),
    }))
}

/// The state store, opened off the async threads.
pub(crate) async fn open_state(
    ctx: &Context,
) -> Result<std::sync::Mutex<crate::state::State>, RestoreError> {
    let dir = ctx.config.state_dir.clone();
    tokio::task::spawn_blocking(move || crate::state::State::open_in(&dir))
        .await
        .map_err(|e| RestoreError::Other(e.to_string()))?
        .map(std::sync::Mutex::new)
        .map_err(|e| RestoreError::Other(e.to_string()))
}

/// Records in the audit log that a restore skips the erasure ledger.
async fn audit_skip(
    ctx: &Context,
    m: &Manifest,
    actor: &str,
    to: &str,
) -> Result<(), RestoreError> {
    let state = open_state(ctx).await?;
    let guard = state
        .lock()
        .map_err(|_| RestoreError::Other("the state store's lock is poisoned".into()))?;
    let destination = crate::source::postgres::redact_url(to);
    crate::audit::record(
        &guard,
        &crate::state::NewAuditEntry {
            time: chrono::Utc::now(),
            actor: actor.to_owned(),
            ip: "local".into(),
            action: "restore_skip_erasures".into(),
            target: format!("backup:{}", m.id),
            outcome: "ok".into(),
            details: serde_json::json!({ "source": m.source, "to": destination }),
        },
    )
    .map_err(|e| RestoreError::Other(format!("cannot record the skip in the audit log: {e}")))?;
    tracing::warn!(backup = %m.id, actor, "restore without re-applying the erasure ledger");
    Ok(())
}

/// Runs a blocking call on the destination off the async threads.
async fn on_destination<T, F>(destination: &Arc<dyn Destination>, f: F) -> Result<T, RestoreError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Destination) -> Result<T, SourceError> + Send + 'static,
{
    let d = destination.clone();
    tokio::task::spawn_blocking(move || f(d.as_ref()))
        .await
        .map_err(|e| RestoreError::Other(e.to_string()))?
        .map_err(|source| RestoreError::Destination {
            destination: destination.describe(),
            source,
        })
}

async fn check_counts(
    destination: &Arc<dyn Destination>,
    id: &str,
    expected: &DumpStats,
) -> Result<Vec<TableCheck>, RestoreError> {
    let names: Vec<(String, String)> = expected
        .tables
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect();
    let counts = on_destination(destination, move |d| d.count_rows(&names)).await?;
    let tables: Vec<TableCheck> = expected
        .tables
        .iter()
        .zip(counts)
        .map(|(t, n)| TableCheck {
            table: t.qualified(),
            expected_rows: t.rows,
            restored_rows: n,
        })
        .collect();
    let differences: Vec<String> = tables
        .iter()
        .filter(|t| t.expected_rows != t.restored_rows)
        .map(|t| {
            format!(
                "table {}: {} rows restored, {} expected",
                t.table, t.restored_rows, t.expected_rows
            )
        })
        .collect();
    if !differences.is_empty() {
        return Err(RestoreError::Rows {
            id: id.to_owned(),
            differences,
        });
    }
    Ok(tables)
}

/// Downloads one copy, checking size and SHA-256; sends `End` only when both match.
pub(crate) async fn download(
    store: DynStore,
    m: Manifest,
    tx: Sender<Piece>,
    progress: Arc<Progress>,
) -> Result<(), RestoreError> {
    let key = manifest::object_key(&m.source, &m.id, DATA_OBJECT);
    let integrity = |reason: String| RestoreError::Integrity {
        target: store.name().to_owned(),
        key: key.clone(),
        reason,
    };
    let want = m
        .data()
        .ok_or_else(|| integrity("the manifest lists no data object".into()))?
        .clone();
    let mut body = store
        .get(&key)
        .await
        .map_err(|e| integrity(e.to_string()))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk: Bytes = chunk.map_err(|e| integrity(format!("download failed: {e}")))?;
        size += chunk.len() as u64;
        if size > want.size {
            return Err(integrity(format!(
                "object is larger than the {} bytes recorded in the manifest",
                want.size
            )));
        }
        hasher.update(&chunk);
        progress.add_stored(chunk.len());
        if tx.send(Piece::Data(chunk)).await.is_err() {
            // The restoring side stopped; its error tells why.
            return Ok(());
        }
    }
    if size != want.size {
        return Err(integrity(format!(
            "object has {size} bytes, the manifest says {}",
            want.size
        )));
    }
    let got = hex::encode(hasher.finalize());
    if got != want.sha256 {
        return Err(integrity(format!(
            "SHA-256 {got} differs from the manifest's {}: the object is corrupt or was altered",
            want.sha256
        )));
    }
    let _ = tx.send(Piece::End).await;
    Ok(())
}

/// A `Read` over the download channel: EOF only after `End`.
pub(crate) struct ChannelReader {
    rx: Receiver<Piece>,
    current: Bytes,
    ended: bool,
}

impl ChannelReader {
    pub(crate) fn new(rx: Receiver<Piece>) -> Self {
        ChannelReader {
            rx,
            current: Bytes::new(),
            ended: false,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(b)) => self.current = b,
                Some(Piece::End) => self.ended = true,
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the download stopped before its end",
                    ));
                }
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// The SQL text of a download: age-decrypted, then zstd-decompressed.
pub(crate) type Plaintext = zstd::stream::read::Decoder<
    'static,
    BufReader<age::stream::StreamReader<BufReader<ChannelReader>>>,
>;

/// Why a download could not be opened as SQL text.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("none of the identities matches the backup's recipients")]
    WrongIdentity,
    #[error("{0}")]
    Stream(String),
}

/// Opens the download channel as SQL text: age with `identities`, then zstd.
pub(crate) fn open_plaintext(
    rx: Receiver<Piece>,
    identities: &Identities,
) -> Result<Plaintext, OpenError> {
    let reader = BufReader::with_capacity(CHUNK, ChannelReader::new(rx));
    let decryptor =
        age::Decryptor::new_buffered(reader).map_err(|e| OpenError::Stream(e.to_string()))?;
    let plain = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => OpenError::WrongIdentity,
            other => OpenError::Stream(other.to_string()),
        })?;
    zstd::stream::read::Decoder::new(plain).map_err(|e| OpenError::Stream(e.to_string()))
}

enum DecodeFailure {
    WrongIdentity,
    Stream(String),
    Destination(SourceError),
    Rows(Vec<String>),
}

/// Decrypts, decompresses and loads; commits only when everything checked.
fn decode_into(
    rx: Receiver<Piece>,
    identities: &Identities,
    destination: &dyn Destination,
    m: &Manifest,
    plan: Option<&Plan>,
    progress: &Progress,
) -> Result<Option<Applied>, DecodeFailure> {
    let mut zstd = open_plaintext(rx, identities).map_err(|e| match e {
        OpenError::WrongIdentity => DecodeFailure::WrongIdentity,
        OpenError::Stream(reason) => DecodeFailure::Stream(reason),
    })?;
    let mut session = destination.begin().map_err(DecodeFailure::Destination)?;
    // SQLite and MySQL: the ledger is applied to the text on its way in (the session
    // parses every statement anyway); the text written is then what the restore is
    // checked against.
    let streamed = match m.source_type.as_str() {
        "sqlite" => Some(Dialect::Sqlite),
        "mysql" => Some(Dialect::Mysql),
        _ => None,
    };
    if let (Some(plan), Some(dialect)) = (plan, streamed) {
        let result = (|| {
            let write = &mut |chunk: Vec<u8>| {
                progress.add_plain(chunk.len());
                session.write(&chunk)
            };
            let applied = apply_stream(plan, dialect, &plan.default_schema, &mut zstd, write)
                .map_err(DecodeFailure::Destination)?;
            if let Some(seen) = session.end_input().map_err(DecodeFailure::Destination)? {
                let differences = applied.expected.differences(&seen);
                if !differences.is_empty() {
                    return Err(DecodeFailure::Rows(differences));
                }
            }
            Ok(applied)
        })();
        return match result {
            Ok(applied) => session
                .commit()
                .map(|()| Some(applied))
                .map_err(DecodeFailure::Destination),
            Err(e) => {
                session.abort();
                Err(e)
            }
        };
    }
    let mut buf = vec![0u8; CHUNK];
    let result = (|| {
        loop {
            let n = match zstd.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DecodeFailure::Stream(e.to_string())),
            };
            progress.add_plain(n);
            session
                .write(&buf[..n])
                .map_err(DecodeFailure::Destination)?;
        }
        // Everything must have been read: the channel's End proves the hash matched.
        let mut rest = zstd.finish();
        let mut tail = [0u8; 1];
        match rest.read(&mut tail) {
            Ok(0) => {}
            Ok(_) => {
                return Err(DecodeFailure::Stream(
                    "data after the end of the compressed stream".into(),
                ));
            }
            Err(e) => return Err(DecodeFailure::Stream(e.to_string())),
        }
        if let Some(seen) = session.end_input().map_err(DecodeFailure::Destination)? {
            let differences = m.tables.differences(&seen);
            if !differences.is_empty() {
                return Err(DecodeFailure::Rows(differences));
            }
        }
        // The ledger, inside the same transaction: nothing erased is ever committed.
        let Some(plan) = plan else { return Ok(None) };
        let Some(sql) = session.sql() else {
            return Err(DecodeFailure::Destination(SourceError::Other(format!(
                "the erasure ledger of source {} holds {} erasures, and re-applying them to a \
                 {} restore is not supported yet: pass --skip-erasures (recorded in the audit \
                 log) and apply them by hand before the database is used",
                m.source,
                plan.erasures.len(),
                m.source_type
            ))));
        };
        apply_postgres(sql, plan, &m.tables)
            .map(Some)
            .map_err(DecodeFailure::Destination)
    })();
    match result {
        Ok(applied) => session
            .commit()
            .map(|()| applied)
            .map_err(DecodeFailure::Destination),
        Err(e) => {
            session.abort();
            Err(e)
        }
    }
}

async fn restore_copy(
    store: DynStore,
    m: &Manifest,
    destination: Arc<dyn Destination>,
    identities: Arc<Identities>,
    identity_name: &str,
    plan: Option<Arc<Plan>>,
    progress: Arc<Progress>,
) -> Result<Option<Applied>, RestoreError> {
    let (tx, rx) = channel();
    let target = store.name().to_owned();
    let key = manifest::object_key(&m.source, &m.id, DATA_OBJECT);
    let dl = tokio::spawn(download(store, m.clone(), tx, progress.clone()));
    let decode = {
        let m = m.clone();
        let destination = destination.clone();
        tokio::task::spawn_blocking(move || {
            decode_into(
                rx,
                &identities,
                destination.as_ref(),
                &m,
                plan.as_deref(),
                &progress,
            )
        })
    };
    let decoded = decode
        .await
        .map_err(|e| RestoreError::Other(format!("restore task failed: {e}")))?;
    let downloaded = dl
        .await
        .map_err(|e| RestoreError::Other(format!("download task failed: {e}")))?;
    // A failed download explains a broken stream: report it first.
    downloaded?;
    decoded.map_err(|f| match f {
        DecodeFailure::WrongIdentity => RestoreError::WrongIdentity {
            file: identity_name.to_owned(),
            id: m.id.clone(),
        },
        DecodeFailure::Stream(reason) => RestoreError::Integrity {
            target,
            key,
            reason: format!("cannot decrypt or decompress: {reason}"),
        },
        DecodeFailure::Destination(source) => RestoreError::Destination {
            destination: destination.describe(),
            source,
        },
        DecodeFailure::Rows(differences) => RestoreError::Rows {
            id: m.id.clone(),
            differences,
        },
    })
}
