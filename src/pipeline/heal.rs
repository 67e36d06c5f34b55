//! Heal: make every copy of every backup whole again by copying it from a
//! healthy target.
//!
//! For each backup and each target of its source, the copy is checked the way
//! `verify` does (manifest tag, size, SHA-256 of the data object, no
//! decryption). A copy that is missing, truncated, corrupt, unreadable or
//! described by a rejected or invalid manifest is rewritten from a whole copy
//! in another target: the data object is streamed from the good store into the
//! broken one through a hashing adapter whose stream ends with an error item if
//! the size or SHA-256 differ from the manifest (so the store abandons the
//! object: all or nothing), then the manifest is written, byte for byte as read
//! from the good target (its tag stays valid), last. A good copy that turns out
//! bad during the copy is never written anywhere; the next good target is tried.
//! A manifest whose tag does not check is never copied from: it is overwritten.
//!
//! Healing holds each source's lock (no backup of it runs meanwhile) and first
//! removes what interrupted writes left in the reachable targets. Targets that
//! cannot be listed are reported and the others healed; folders with no trusted
//! manifest anywhere are not backups: reported, never copied. `--dry-run` checks
//! everything the same way and writes nothing.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::lock::{self, LockError, SourceLock};
use super::{Context, ContextError};
use crate::catalog::{self, Copy, Entry};
use crate::integrity::IntegrityKey;
use crate::manifest::{
    self, DATA_OBJECT, MANIFEST_OBJECT, MAX_MANIFEST_BYTES, Manifest, ObjectEntry,
};
use crate::progress::Progress;
use crate::store::{ByteStream, DynStore, StoreError};

/// Errors that stop `heal` before it starts (configuration, keys, a source
/// whose lock another job holds).
#[derive(Debug, thiserror::Error)]
pub enum HealError {
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Lock(#[from] LockError),
}

/// Why one attempt to copy a backup into a target failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The copy read from the good target is not what its manifest says: the
    /// next good target is tried.
    #[error("target {target}: {key}: {reason}")]
    Source {
        target: String,
        key: String,
        reason: String,
    },
    /// Writing to the target being healed failed.
    #[error("{0}")]
    Destination(#[source] StoreError),
    /// The data object was written but the manifest could not be.
    #[error("{source} (the data object was written; the manifest was not)")]
    Manifest {
        #[source]
        source: StoreError,
    },
}

/// Options of `coffre heal`.
#[derive(Debug, Clone, Default)]
pub struct HealOptions {
    /// Only this source (default: every source).
    pub source: Option<String>,
    /// Check and report what would be copied, write nothing.
    pub dry_run: bool,
}

/// What was wrong with a copy before healing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Problem {
    /// No manifest in this target.
    Missing,
    /// A manifest but no data object.
    MissingData,
    /// The data object's size differs from the manifest's.
    SizeMismatch,
    /// The data object's SHA-256 differs from the manifest's.
    Corrupt,
    /// The data object could not be read to the end.
    Unreadable,
    /// The manifest cannot be read or parsed.
    InvalidManifest,
    /// The manifest's integrity tag does not check (forged or altered).
    RejectedManifest,
    /// The target could not be listed.
    Unreachable,
}

/// Outcome for one copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyStatus {
    /// Already whole.
    Ok,
    /// Was broken, now rewritten from a whole copy.
    Healed,
    /// Broken and not healed (see `error`).
    Failed,
    /// `--dry-run`: broken, would be rewritten from `from`.
    WouldHeal,
}

/// One copy of a backup after healing.
#[derive(Debug, Clone, Serialize)]
pub struct CopyHeal {
    pub target: String,
    pub status: CopyStatus,
    /// What was wrong, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
    /// The object concerned (relative to the target's root) when something was wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What was wrong, for people (names the target and the object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The target it was (or would be) copied from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Bytes of the data object copied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Why it could not be healed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One backup after healing.
#[derive(Debug, Clone, Serialize)]
pub struct BackupHeal {
    pub id: String,
    pub source: String,
    /// Every copy whole at the end.
    pub ok: bool,
    pub copies: Vec<CopyHeal>,
}

/// Overall outcome of `coffre heal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealStatus {
    /// Every copy was already whole.
    Ok,
    /// Every copy is whole now; some were rewritten.
    Healed,
    /// Some copies are not whole (could not be healed, or `--dry-run`).
    Degraded,
}

/// What `coffre heal` reports.
#[derive(Debug, Clone, Serialize)]
pub struct HealReport {
    pub status: HealStatus,
    pub dry_run: bool,
    /// Copies rewritten (or, with `--dry-run`, to rewrite).
    pub healed: usize,
    /// Copies left broken (with `--dry-run`: that could not be healed).
    pub failed: usize,
    pub backups: Vec<BackupHeal>,
    /// Folders with a manifest in some target but no trusted one anywhere: not
    /// backups, never copied; listed so that someone looks (see `coffre list`).
    pub untrusted: Vec<Untrusted>,
    /// Targets that could not be listed, as `target: error`.
    pub unreachable: Vec<String>,
}

/// A folder that looks like a backup but whose every manifest fails its check.
#[derive(Debug, Clone, Serialize)]
pub struct Untrusted {
    pub id: String,
    pub source: String,
    pub copies: Vec<Copy>,
}

impl HealReport {
    /// True when every copy is whole at the end.
    pub fn is_whole(&self) -> bool {
        self.status != HealStatus::Degraded
    }
}

/// Heals every backup of one source, or of every source.
pub async fn run_heal(
    ctx: &Context,
    opts: &HealOptions,
    progress: Arc<Progress>,
) -> Result<HealReport, HealError> {
    let sources = match &opts.source {
        Some(s) => {
            ctx.config.source(s).map_err(ContextError::from)?;
            vec![s.clone()]
        }
        None => ctx.source_names(),
    };
    let integrity = ctx.integrity_key()?;
    // Every target must be built before anything is touched.
    for source in &sources {
        ctx.stores_of(source)?;
    }
    // Healing writes backups: no other job may write the same sources meanwhile.
    let _locks: Vec<SourceLock> = if opts.dry_run {
        Vec::new()
    } else {
        sources
            .iter()
            .map(|s| SourceLock::acquire(&ctx.config.state_dir, s))
            .collect::<Result<_, _>>()?
    };
    let mut backups = Vec::new();
    let mut untrusted = Vec::new();
    let mut unreachable = Vec::new();
    for source in &sources {
        let stores = ctx.stores_of(source)?;
        let listing = catalog::list_source(ctx, source).await?;
        for (t, e) in &listing.unreachable {
            tracing::warn!(source = %source, target_name = %t, error = %e, "target could not be listed");
            let line = format!("{t}: {e}");
            if !unreachable.contains(&line) {
                unreachable.push(line);
            }
        }
        if !opts.dry_run {
            // Holding the lock: what interrupted writes left (e.g. the multipart
            // upload of a region stopped mid-backup) can go.
            let reachable: Vec<DynStore> = stores
                .iter()
                .filter(|s| !listing.unreachable.iter().any(|(t, _)| t == s.name()))
                .cloned()
                .collect();
            lock::clean_leftovers(&reachable, source).await;
        }
        for e in &listing.untrusted {
            tracing::warn!(source = %source, id = %e.id, "folder without a trusted manifest left alone");
            untrusted.push(Untrusted {
                id: e.id.clone(),
                source: e.source.clone(),
                copies: e.copies.clone(),
            });
        }
        for entry in &listing.entries {
            let span = tracing::info_span!("heal", source = %source, id = %entry.id);
            let job = BackupJob {
                entry,
                stores: &stores,
                unreachable: &listing.unreachable,
                integrity,
                progress: &progress,
                dry_run: opts.dry_run,
            };
            backups.push(job.run().instrument(span).await);
        }
    }
    let count = |s: CopyStatus| {
        backups
            .iter()
            .flat_map(|b| &b.copies)
            .filter(|c| c.status == s)
            .count()
    };
    let (healed, would_heal, failed) = (
        count(CopyStatus::Healed),
        count(CopyStatus::WouldHeal),
        count(CopyStatus::Failed),
    );
    let status = if failed > 0 || would_heal > 0 || !unreachable.is_empty() {
        HealStatus::Degraded
    } else if healed > 0 {
        HealStatus::Healed
    } else {
        HealStatus::Ok
    };
    Ok(HealReport {
        status,
        dry_run: opts.dry_run,
        healed: healed + would_heal,
        failed,
        backups,
        untrusted,
        unreachable,
    })
}

/// The state of one copy after checking it.
enum Checked {
    /// Manifest tag, size and SHA-256 all match.
    Whole,
    Broken {
        problem: Problem,
        key: String,
        detail: String,
        /// A manifest object exists in the target (parsable or not).
        has_manifest: bool,
    },
}

/// The healing of one backup across the targets of its source.
struct BackupJob<'a> {
    entry: &'a Entry,
    stores: &'a [DynStore],
    unreachable: &'a [(String, String)],
    integrity: &'a IntegrityKey,
    progress: &'a Arc<Progress>,
    dry_run: bool,
}

impl BackupJob<'_> {
    fn key(&self, name: &str) -> String {
        manifest::object_key(&self.entry.source, &self.entry.id, name)
    }

    async fn run(&self) -> BackupHeal {
        // 1. Check every copy (hashing the whole ones).
        let mut checks = Vec::with_capacity(self.stores.len());
        for store in self.stores {
            checks.push(self.check(store).await);
        }
        // 2. Heal the broken ones from the whole ones, in the order of `targets`.
        let mut good: Vec<usize> = checks
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c, Some(Checked::Whole)))
            .map(|(i, _)| i)
            .collect();
        let mut copies: Vec<CopyHeal> = self
            .stores
            .iter()
            .map(|s| CopyHeal {
                target: s.name().to_owned(),
                status: CopyStatus::Ok,
                problem: None,
                key: None,
                detail: None,
                from: None,
                bytes: None,
                error: None,
            })
            .collect();
        // Good copies that failed their check while being copied from.
        let mut turned_bad: Vec<(usize, String, String)> = Vec::new();
        for (i, check) in checks.into_iter().enumerate() {
            let (problem, key, detail, has_manifest) = match check {
                Some(Checked::Whole) => continue,
                None => {
                    let copy = &mut copies[i];
                    copy.status = CopyStatus::Failed;
                    copy.problem = Some(Problem::Unreachable);
                    copy.detail = Some(format!("target {} could not be listed", copy.target));
                    copy.error = self
                        .unreachable
                        .iter()
                        .find(|(t, _)| t == &copy.target)
                        .map(|(_, e)| e.clone());
                    continue;
                }
                Some(Checked::Broken {
                    problem,
                    key,
                    detail,
                    has_manifest,
                }) => (problem, key, detail, has_manifest),
            };
            let outcome = if self.dry_run {
                good.first()
                    .map(|&g| (self.stores[g].name().to_owned(), 0))
                    .ok_or_else(Vec::new)
            } else {
                self.heal_copy(&self.stores[i], has_manifest, &mut good, &mut turned_bad)
                    .await
            };
            let copy = &mut copies[i];
            copy.problem = Some(problem);
            copy.key = Some(key);
            copy.detail = Some(detail);
            match outcome {
                Ok((from, _)) if self.dry_run => {
                    copy.status = CopyStatus::WouldHeal;
                    copy.from = Some(from);
                }
                Ok((from, bytes)) => {
                    tracing::info!(target_name = %copy.target, from = %from, bytes, "copy healed");
                    copy.status = CopyStatus::Healed;
                    copy.from = Some(from);
                    copy.bytes = Some(bytes);
                }
                Err(mut errors) => {
                    if errors.is_empty() {
                        errors.push(format!(
                            "no whole copy of backup {} in any target to heal from",
                            self.entry.id
                        ));
                    }
                    let error = errors.join("; ");
                    tracing::warn!(target_name = %copy.target, error = %error, "copy not healed");
                    copy.status = CopyStatus::Failed;
                    copy.error = Some(error);
                }
            }
        }
        for (g, key, reason) in turned_bad {
            let copy = &mut copies[g];
            copy.status = CopyStatus::Failed;
            copy.problem = Some(Problem::Corrupt);
            copy.detail = Some(format!("target {}: {key}: {reason}", copy.target));
            copy.key = Some(key);
            copy.error = Some(
                "it was whole when checked but failed its check while being copied: run heal again"
                    .into(),
            );
        }
        BackupHeal {
            id: self.entry.id.clone(),
            source: self.entry.source.clone(),
            ok: copies
                .iter()
                .all(|c| matches!(c.status, CopyStatus::Ok | CopyStatus::Healed)),
            copies,
        }
    }

    /// Rewrites the copy in `to` from the first of the `good` targets whose copy
    /// checks while being copied; returns that target and the bytes copied, or
    /// the errors met. A good copy that fails its check is dropped from `good`
    /// and recorded in `turned_bad` (by index, with the key and why).
    async fn heal_copy(
        &self,
        to: &DynStore,
        has_manifest: bool,
        good: &mut Vec<usize>,
        turned_bad: &mut Vec<(usize, String, String)>,
    ) -> Result<(String, u64), Vec<String>> {
        let mut errors = Vec::new();
        while let Some(&g) = good.first() {
            let from = &self.stores[g];
            match self.copy_backup(from, to, has_manifest).await {
                Ok(bytes) => return Ok((from.name().to_owned(), bytes)),
                Err(CopyError::Source {
                    target,
                    key,
                    reason,
                }) => {
                    // That copy is not whole after all: never copy from it again.
                    tracing::warn!(from = %target, key = %key, reason = %reason, "a whole copy failed its check while being copied; trying the next");
                    errors.push(format!("target {target}: {key}: {reason}"));
                    turned_bad.push((g, key, reason));
                    good.remove(0);
                }
                Err(e) => {
                    // The target being healed failed: another source would not help.
                    errors.push(e.to_string());
                    break;
                }
            }
        }
        Err(errors)
    }

    /// Checks one copy; `None` when its target could not be listed.
    async fn check(&self, store: &DynStore) -> Option<Checked> {
        let name = store.name();
        if self.unreachable.iter().any(|(t, _)| t == name) {
            return None;
        }
        let manifest_key = self.key(MANIFEST_OBJECT);
        let data_key = self.key(DATA_OBJECT);
        let Some(copy) = self.entry.copies.iter().find(|c| c.target == name) else {
            return Some(Checked::Broken {
                problem: Problem::Missing,
                detail: format!("target {name}: {manifest_key} is missing"),
                key: manifest_key,
                has_manifest: false,
            });
        };
        let said = |c: &Copy| c.detail.clone().unwrap_or_else(|| c.status.clone());
        let data_problem = |problem, reason: String| Checked::Broken {
            problem,
            detail: format!("target {name}: {data_key}: {reason}"),
            key: data_key.clone(),
            has_manifest: true,
        };
        let manifest_problem = |problem, detail: String| Checked::Broken {
            problem,
            detail,
            key: manifest_key.clone(),
            has_manifest: true,
        };
        Some(match copy.status.as_str() {
            "ok" => match copy.manifest.as_ref().and_then(Manifest::data) {
                Some(want) => match hash_object(store, &data_key, want, self.progress).await {
                    Ok(()) => Checked::Whole,
                    Err((problem, reason)) => data_problem(problem, reason),
                },
                None => manifest_problem(
                    Problem::InvalidManifest,
                    format!("target {name}: {manifest_key} lists no {DATA_OBJECT}"),
                ),
            },
            "missing-data" => data_problem(Problem::MissingData, said(copy)),
            "size-mismatch" => data_problem(Problem::SizeMismatch, said(copy)),
            "rejected-manifest" => manifest_problem(Problem::RejectedManifest, said(copy)),
            _ => manifest_problem(Problem::InvalidManifest, said(copy)),
        })
    }

    /// Copies the backup from `from` (checking it on the way) into `to`: data
    /// object first, then the manifest exactly as read from `from`.
    async fn copy_backup(
        &self,
        from: &DynStore,
        to: &DynStore,
        had_manifest: bool,
    ) -> Result<u64, CopyError> {
        let manifest_key = self.key(MANIFEST_OBJECT);
        let data_key = self.key(DATA_OBJECT);
        let source_error = |key: &str, reason: String| CopyError::Source {
            target: from.name().to_owned(),
            key: key.to_owned(),
            reason,
        };
        // The manifest is read again and checked: these exact bytes are written.
        let bytes: Bytes = from
            .get_bytes(&manifest_key, MAX_MANIFEST_BYTES)
            .await
            .map_err(|e| source_error(&manifest_key, e.to_string()))?;
        let location = format!("{}:{manifest_key}", from.name());
        let m = Manifest::parse(&bytes, &location, self.integrity)
            .map_err(|e| source_error(&manifest_key, e.to_string()))?;
        if m.id != self.entry.id || m.source != self.entry.source {
            return Err(source_error(
                &manifest_key,
                format!("it describes {}/{}", m.source, m.id),
            ));
        }
        let want = m
            .data()
            .cloned()
            .ok_or_else(|| source_error(&manifest_key, format!("it lists no {DATA_OBJECT}")))?;
        let body = from
            .get(&data_key)
            .await
            .map_err(|e| source_error(&data_key, e.to_string()))?;
        let verdict = Arc::new(OnceLock::new());
        let checked = verified_stream(body, want.clone(), verdict.clone(), self.progress.clone());
        let written = to.put_stream(&data_key, checked).await;
        if let Some(reason) = verdict.get() {
            if written.is_ok() {
                // Cannot happen (the stream ended with an error), but never keep it.
                let _ = to.delete(&data_key).await;
            }
            return Err(source_error(&data_key, reason.clone()));
        }
        let written = written.map_err(CopyError::Destination)?;
        if written != want.size {
            let _ = to.delete(&data_key).await;
            return Err(CopyError::Destination(StoreError::Backend {
                target: to.name().to_owned(),
                op: "put",
                key: data_key,
                message: format!("{written} bytes written, {} expected", want.size),
            }));
        }
        if let Err(source) = to.put_bytes(&manifest_key, bytes).await {
            if !had_manifest {
                // A data object without its manifest is never left behind.
                let _ = to.delete(&data_key).await;
            }
            return Err(CopyError::Manifest { source });
        }
        Ok(written)
    }
}

/// Reads an object to the end and checks its size and SHA-256 against `want`.
async fn hash_object(
    store: &DynStore,
    key: &str,
    want: &ObjectEntry,
    progress: &Progress,
) -> Result<(), (Problem, String)> {
    let mut body = match store.get(key).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Err((Problem::MissingData, "is missing".into())),
        Err(e) => return Err((Problem::Unreadable, e.to_string())),
    };
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| (Problem::Unreadable, format!("read failed: {e}")))?;
        size += chunk.len() as u64;
        if size > want.size {
            return Err((
                Problem::SizeMismatch,
                format!(
                    "larger than the {} bytes recorded in the manifest",
                    want.size
                ),
            ));
        }
        progress.add_stored(chunk.len());
        hasher.update(&chunk);
    }
    if size != want.size {
        return Err((
            Problem::SizeMismatch,
            format!("{size} bytes, the manifest says {}", want.size),
        ));
    }
    let got = hex::encode(hasher.finalize());
    if got != want.sha256 {
        return Err((
            Problem::Corrupt,
            format!(
                "SHA-256 {got} differs from the manifest's {}: the object is corrupt or was altered",
                want.sha256
            ),
        ));
    }
    Ok(())
}

/// State of [`verified_stream`].
struct Verifying {
    body: ByteStream,
    want: ObjectEntry,
    hasher: Sha256,
    size: u64,
    verdict: Arc<OnceLock<String>>,
    progress: Arc<Progress>,
    done: bool,
}

impl Verifying {
    /// Ends the stream with an error item and records why in the verdict.
    fn fail(mut self, reason: String) -> Option<(std::io::Result<Bytes>, Verifying)> {
        self.done = true;
        let error = std::io::Error::other(reason.clone());
        let _ = self.verdict.set(reason);
        Some((Err(error), self))
    }
}

/// `body` passed through, hashed on the way: if the bytes differ from `want`
/// (size or SHA-256) or `body` fails, the stream ends with an error item instead
/// of ending cleanly, so that the store writing it abandons the object, and
/// `verdict` says why. A clean end means the bytes are exactly the recorded ones.
pub fn verified_stream(
    body: ByteStream,
    want: ObjectEntry,
    verdict: Arc<OnceLock<String>>,
    progress: Arc<Progress>,
) -> ByteStream {
    let state = Verifying {
        body,
        want,
        hasher: Sha256::new(),
        size: 0,
        verdict,
        progress,
        done: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        match s.body.next().await {
            Some(Ok(chunk)) => {
                s.size += chunk.len() as u64;
                if s.size > s.want.size {
                    let reason = format!(
                        "object is larger than the {} bytes recorded in the manifest",
                        s.want.size
                    );
                    return s.fail(reason);
                }
                s.hasher.update(&chunk);
                s.progress.add_stored(chunk.len());
                Some((Ok(chunk), s))
            }
            Some(Err(e)) => {
                let reason = format!("read failed: {e}");
                s.fail(reason)
            }
            None => {
                s.done = true;
                if s.size != s.want.size {
                    let reason = format!(
                        "object has {} bytes, the manifest says {}",
                        s.size, s.want.size
                    );
                    return s.fail(reason);
                }
                let got = hex::encode(std::mem::take(&mut s.hasher).finalize());
                if got != s.want.sha256 {
                    let reason = format!(
                        "SHA-256 {got} differs from the manifest's {}: the object is corrupt or was altered",
                        s.want.sha256
                    );
                    return s.fail(reason);
                }
                None
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_for(data: &[u8]) -> ObjectEntry {
        ObjectEntry {
            name: DATA_OBJECT.into(),
            size: data.len() as u64,
            sha256: hex::encode(Sha256::digest(data)),
        }
    }

    async fn run(
        items: Vec<std::io::Result<Bytes>>,
        want: ObjectEntry,
    ) -> (Vec<String>, Option<String>) {
        let verdict = Arc::new(OnceLock::new());
        let body = futures::stream::iter(items).boxed();
        let out: Vec<String> = verified_stream(body, want, verdict.clone(), Progress::new())
            .map(|item| match item {
                Ok(b) => format!("ok {}", b.len()),
                Err(e) => format!("err {e}"),
            })
            .collect()
            .await;
        (out, verdict.get().cloned())
    }

    fn chunks(data: &[u8]) -> Vec<std::io::Result<Bytes>> {
        data.chunks(3)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect()
    }

    #[tokio::test]
    async fn whole_bytes_pass_and_end_cleanly() {
        let data = b"0123456789abcdef".to_vec();
        let (out, verdict) = run(chunks(&data), entry_for(&data)).await;
        assert_eq!(out.len(), 6, "{out:?}");
        assert!(out.iter().all(|o| o.starts_with("ok")), "{out:?}");
        assert_eq!(verdict, None);
    }

    #[tokio::test]
    async fn a_flipped_byte_ends_with_an_error() {
        let data = b"0123456789abcdef".to_vec();
        let mut bad = data.clone();
        bad[7] ^= 1;
        let (out, verdict) = run(chunks(&bad), entry_for(&data)).await;
        let last = out.last().expect("items");
        assert!(last.starts_with("err SHA-256"), "{out:?}");
        assert!(verdict.is_some_and(|v| v.contains("differs")));
    }

    #[tokio::test]
    async fn short_long_and_failing_bodies_end_with_an_error() {
        let data = b"0123456789abcdef".to_vec();
        let (out, verdict) = run(chunks(&data[..10]), entry_for(&data)).await;
        assert!(out.last().expect("items").contains("10 bytes"), "{out:?}");
        assert!(verdict.is_some());

        let mut long = data.clone();
        long.extend_from_slice(b"xyz");
        let (out, _) = run(chunks(&long), entry_for(&data)).await;
        assert!(out.last().expect("items").contains("larger"), "{out:?}");
        assert_eq!(out.iter().filter(|o| o.starts_with("err")).count(), 1);

        let mut items = chunks(&data[..6]);
        items.push(Err(std::io::Error::other("connection reset")));
        items.push(Ok(Bytes::from_static(b"never")));
        let (out, verdict) = run(items, entry_for(&data)).await;
        assert_eq!(
            out.last().map(String::as_str),
            Some("err read failed: connection reset")
        );
        assert_eq!(out.len(), 3, "nothing after the error: {out:?}");
        assert!(verdict.is_some());
    }

    /// A store whose data object turns corrupt after it was first read whole.
    struct Decaying {
        inner: crate::store::fs::FsStore,
        gets: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl crate::store::Store for Decaying {
        fn name(&self) -> &str {
            self.inner.name()
        }
        fn location(&self) -> String {
            self.inner.location()
        }
        async fn put_stream(&self, key: &str, body: ByteStream) -> Result<u64, StoreError> {
            self.inner.put_stream(key, body).await
        }
        async fn put_bytes(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
            self.inner.put_bytes(key, data).await
        }
        async fn get(&self, key: &str) -> Result<ByteStream, StoreError> {
            let n = self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n == 0 || !key.ends_with(DATA_OBJECT) {
                return self.inner.get(key).await;
            }
            let mut data = self.inner.get_bytes(key, 1 << 30).await?.to_vec();
            data[3] ^= 1;
            Ok(futures::stream::iter([Ok(Bytes::from(data))]).boxed())
        }
        async fn get_bytes(&self, key: &str, max: u64) -> Result<Bytes, StoreError> {
            self.inner.get_bytes(key, max).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<crate::store::ObjectMeta>, StoreError> {
            self.inner.list(prefix).await
        }
        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.inner.delete(key).await
        }
        async fn cleanup_incomplete(&self, prefix: &str) -> Result<usize, StoreError> {
            self.inner.cleanup_incomplete(prefix).await
        }
    }

    fn manifest_of(data: &[u8]) -> Manifest {
        Manifest {
            format: manifest::FORMAT.into(),
            id: "20260101T000000.000Z-0001".into(),
            source: "s".into(),
            source_type: "sqlite".into(),
            kind: manifest::BackupKind::Full,
            started_at: chrono::Utc::now(),
            finished_at: chrono::Utc::now(),
            coffre_version: "0".into(),
            dump_tool: "t".into(),
            compression: manifest::Compression {
                algorithm: "zstd".into(),
                level: 1,
            },
            encryption: manifest::Encryption {
                algorithm: "age".into(),
                recipients: vec![],
            },
            plaintext_bytes: 1,
            objects: vec![entry_for(data)],
            tables: crate::dump::DumpStats::default(),
            unique_columns: vec![],
            policy_sha256: None,
            derived_from: None,
            mac: None,
        }
    }

    /// The first whole copy fails its check while being copied from: the next
    /// whole one is used, and the first is reported, not trusted.
    #[tokio::test]
    async fn a_source_that_turns_bad_is_skipped_for_the_next() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = |name: &str| crate::store::fs::FsStore::new(name, dir.path().join(name));
        let key = IntegrityKey::from_bytes(vec![7; 32], "test").expect("key");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let m = manifest_of(&data);
        let json = Bytes::from(m.to_json(&key));
        let decaying = Arc::new(Decaying {
            inner: fs("a"),
            gets: Default::default(),
        });
        let a: DynStore = decaying.clone();
        let b: DynStore = Arc::new(fs("b"));
        let c: DynStore = Arc::new(fs("c"));
        let data_key = manifest::object_key(&m.source, &m.id, DATA_OBJECT);
        let manifest_key = manifest::object_key(&m.source, &m.id, MANIFEST_OBJECT);
        for s in [&a, &b] {
            s.put_bytes(&data_key, Bytes::from(data.clone()))
                .await
                .expect("put data");
            s.put_bytes(&manifest_key, json.clone())
                .await
                .expect("put manifest");
        }
        let copy = |target: &str| Copy {
            target: target.into(),
            status: "ok".into(),
            detail: None,
            manifest: Some(m.clone()),
        };
        let entry = Entry {
            id: m.id.clone(),
            source: m.source.clone(),
            copies: vec![copy("a"), copy("b")],
        };
        let stores = vec![a, b, c.clone()];
        let progress = Progress::new();
        let job = |dry_run| BackupJob {
            entry: &entry,
            stores: &stores,
            unreachable: &[],
            integrity: &key,
            progress: &progress,
            dry_run,
        };
        let dry = job(true).run().await;
        assert_eq!(dry.copies[2].status, CopyStatus::WouldHeal);
        assert_eq!(dry.copies[2].from.as_deref(), Some("a"));
        assert!(
            c.list("").await.expect("list").is_empty(),
            "a dry run writes nothing"
        );

        // Whole when checked, corrupt when copied from.
        decaying.gets.store(0, std::sync::atomic::Ordering::SeqCst);
        let report = job(false).run().await;
        let [a, b, c_copy] = &report.copies[..] else {
            panic!("{report:?}")
        };
        assert_eq!(c_copy.status, CopyStatus::Healed, "{report:?}");
        assert_eq!(c_copy.problem, Some(Problem::Missing));
        assert_eq!(c_copy.from.as_deref(), Some("b"));
        assert_eq!(c_copy.bytes, Some(data.len() as u64));
        assert!(c_copy.error.is_none(), "{report:?}");
        assert_eq!(a.status, CopyStatus::Failed, "{report:?}");
        assert_eq!(a.problem, Some(Problem::Corrupt));
        assert!(
            a.detail.as_deref().is_some_and(|d| d.contains("SHA-256")),
            "{a:?}"
        );
        assert_eq!(b.status, CopyStatus::Ok);
        assert!(!report.ok);
        let got = c.get_bytes(&data_key, 1 << 30).await.expect("healed data");
        assert!(got[..] == data[..]);
        let got = c
            .get_bytes(&manifest_key, 1 << 20)
            .await
            .expect("healed manifest");
        assert_eq!(got, json, "the manifest is copied byte for byte");
    }
}
