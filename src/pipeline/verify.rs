//! Verify: re-read every stored copy of backups and check each against its
//! manifest (size and SHA-256), without decrypting: no identity needed.

use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Context, ContextError};
use crate::catalog::{self, Entry};
use crate::manifest::{self, DATA_OBJECT, MANIFEST_OBJECT};
use crate::progress::Progress;

/// The check of one copy.
#[derive(Debug, Clone, Serialize)]
pub struct CopyCheck {
    pub target: String,
    /// `ok`, `corrupt`, `missing` or `unreadable`.
    pub status: String,
    /// The object a failed check is about (key relative to the target's root).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The checks of one backup.
#[derive(Debug, Clone, Serialize)]
pub struct BackupCheck {
    pub id: String,
    pub source: String,
    pub ok: bool,
    pub copies: Vec<CopyCheck>,
}

/// What `coffre verify` reports.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub backups: Vec<BackupCheck>,
    /// Targets that could not be listed.
    pub unreachable: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error("no backup {0} in any target (see `coffre list`)")]
    NotFound(String),
}

/// Verifies one backup (by id) or every backup (of one source, or all).
pub async fn run_verify(
    ctx: &Context,
    id: Option<&str>,
    source: Option<&str>,
    progress: &Progress,
) -> Result<VerifyReport, VerifyError> {
    let listing = catalog::list(ctx, source).await?;
    let entries: Vec<&Entry> = match id {
        Some(id) => {
            let e = listing
                .entries
                .iter()
                .find(|e| e.id == id)
                .ok_or_else(|| VerifyError::NotFound(id.to_owned()))?;
            vec![e]
        }
        None => listing.entries.iter().collect(),
    };
    let mut backups = Vec::new();
    for entry in entries {
        backups.push(check_entry(ctx, entry, progress).await?);
    }
    let unreachable: Vec<String> = listing
        .unreachable
        .iter()
        .map(|(t, e)| format!("{t}: {e}"))
        .collect();
    Ok(VerifyReport {
        ok: backups.iter().all(|b| b.ok) && unreachable.is_empty(),
        backups,
        unreachable,
    })
}

async fn check_entry(
    ctx: &Context,
    entry: &Entry,
    progress: &Progress,
) -> Result<BackupCheck, VerifyError> {
    let mut copies = Vec::new();
    let targets = ctx
        .config
        .source(&entry.source)
        .map_err(ContextError::from)?
        .targets();
    let manifest_key = manifest::object_key(&entry.source, &entry.id, MANIFEST_OBJECT);
    let key = manifest::object_key(&entry.source, &entry.id, DATA_OBJECT);
    for target in targets {
        let Some(copy) = entry.copies.iter().find(|c| &c.target == target) else {
            copies.push(CopyCheck {
                target: target.clone(),
                status: "missing".into(),
                key: Some(manifest_key.clone()),
                detail: Some("no manifest in this target".into()),
            });
            continue;
        };
        let Some(m) = &copy.manifest else {
            copies.push(CopyCheck {
                target: target.clone(),
                status: "corrupt".into(),
                key: Some(manifest_key.clone()),
                detail: copy.detail.clone(),
            });
            continue;
        };
        let Some(store) = ctx.store(target) else {
            continue;
        };
        let want = m.data().cloned();
        let check = match (want, store.get(&key).await) {
            (None, _) => (
                "corrupt",
                Some("the manifest lists no data object".to_owned()),
            ),
            (_, Err(e)) if e.is_not_found() => ("missing", Some(format!("{key} is missing"))),
            (_, Err(e)) => ("unreadable", Some(e.to_string())),
            (Some(want), Ok(mut body)) => {
                let mut hasher = Sha256::new();
                let mut size = 0u64;
                let mut failure = None;
                while let Some(chunk) = body.next().await {
                    match chunk {
                        Ok(c) => {
                            size += c.len() as u64;
                            progress.add_stored(c.len());
                            hasher.update(&c);
                        }
                        Err(e) => {
                            failure = Some(e.to_string());
                            break;
                        }
                    }
                }
                let got = hex::encode(hasher.finalize());
                match failure {
                    Some(e) => ("unreadable", Some(format!("{key}: {e}"))),
                    None if size != want.size => (
                        "corrupt",
                        Some(format!(
                            "{key}: {size} bytes, the manifest says {}",
                            want.size
                        )),
                    ),
                    None if got != want.sha256 => (
                        "corrupt",
                        Some(format!(
                            "{key}: SHA-256 {got} differs from the manifest's {}",
                            want.sha256
                        )),
                    ),
                    None => ("ok", None),
                }
            }
        };
        copies.push(CopyCheck {
            target: target.clone(),
            status: check.0.into(),
            key: (check.0 != "ok").then(|| key.clone()),
            detail: check.1,
        });
    }
    Ok(BackupCheck {
        id: entry.id.clone(),
        source: entry.source.clone(),
        ok: copies.iter().all(|c| c.status == "ok"),
        copies,
    })
}
