//! The catalog: which backups exist, read from the stores alone.
//!
//! A backup is listed when at least one target holds a manifest that parses and
//! whose integrity tag checks. A copy counts as whole only if its own manifest
//! checks and the data object is present with the recorded size; copies that
//! fail are listed with why (`rejected-manifest` names a forged or altered
//! manifest) and are never restored from. Folders whose every manifest fails
//! are not backups: they are reported apart ([`Listing::untrusted`]). Nothing else is needed: a fresh install with the same
//! configuration and integrity key sees every backup.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::integrity::IntegrityKey;
use crate::manifest::{
    self, DATA_OBJECT, MANIFEST_OBJECT, MAX_MANIFEST_BYTES, Manifest, ManifestError,
};
use crate::pipeline::{Context, ContextError};
use crate::store::DynStore;

/// State of one copy of a backup, as seen by listing.
#[derive(Debug, Clone, Serialize)]
pub struct Copy {
    pub target: String,
    /// `ok`, `missing-data`, `size-mismatch`, `invalid-manifest` (unreadable or
    /// malformed) or `rejected-manifest` (its integrity tag does not check).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip)]
    pub manifest: Option<Manifest>,
}

/// One backup with its copies.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub source: String,
    pub copies: Vec<Copy>,
}

impl Entry {
    /// The manifest of the first whole copy (targets in configuration order).
    pub fn manifest(&self) -> Option<&Manifest> {
        self.copies
            .iter()
            .find(|c| c.status == "ok")
            .and_then(|c| c.manifest.as_ref())
            .or_else(|| self.copies.iter().find_map(|c| c.manifest.as_ref()))
    }

    /// What the API and the catalog cache show of a backup: metadata only.
    pub fn summary(&self) -> serde_json::Value {
        let m = self.manifest();
        serde_json::json!({
            "id": self.id,
            "source": self.source,
            "kind": m.map(|m| m.kind.as_str()),
            "started_at": m.map(|m| m.started_at),
            "finished_at": m.map(|m| m.finished_at),
            "plaintext_bytes": m.map(|m| m.plaintext_bytes),
            "rows": m.map(|m| m.tables.total_rows()),
            "copies": self
                .copies
                .iter()
                .map(|c| serde_json::json!({ "target": c.target, "status": c.status }))
                .collect::<Vec<_>>(),
        })
    }

    /// Copies whose manifest and data object look whole.
    pub fn good_copies(&self) -> impl Iterator<Item = &Copy> {
        self.copies.iter().filter(|c| c.status == "ok")
    }
}

/// A backup listing, with the targets that could not be read.
#[derive(Debug, Default)]
pub struct Listing {
    /// Backups with at least one trusted manifest, oldest first.
    pub entries: Vec<Entry>,
    /// Folders holding a manifest none of whose copies can be trusted (forged,
    /// altered, unparsable): never backups, reported so that someone looks.
    pub untrusted: Vec<Entry>,
    /// (target, error) for targets that could not be listed.
    pub unreachable: Vec<(String, String)>,
}

/// Lists the backups of one source across all its targets, oldest first.
pub async fn list_source(ctx: &Context, source: &str) -> Result<Listing, ContextError> {
    let stores = ctx.stores_of(source)?;
    let mut by_id: BTreeMap<String, Vec<Copy>> = BTreeMap::new();
    let mut listing = Listing::default();
    let key = ctx.integrity_key()?;
    for store in &stores {
        match list_store(store, source, key).await {
            Ok(copies) => {
                for (id, copy) in copies {
                    by_id.entry(id).or_default().push(copy);
                }
            }
            Err(e) => listing.unreachable.push((store.name().to_owned(), e)),
        }
    }
    for (id, copies) in by_id {
        let entry = Entry {
            id,
            source: source.to_owned(),
            copies,
        };
        if entry.copies.iter().any(|c| c.manifest.is_some()) {
            listing.entries.push(entry);
        } else {
            listing.untrusted.push(entry);
        }
    }
    Ok(listing)
}

/// Lists every source (or one), oldest first within each source.
pub async fn list(ctx: &Context, source: Option<&str>) -> Result<Listing, ContextError> {
    let names = match source {
        Some(s) => {
            ctx.config.source(s)?;
            vec![s.to_owned()]
        }
        None => ctx.source_names(),
    };
    let mut all = Listing::default();
    for name in names {
        let l = list_source(ctx, &name).await?;
        all.entries.extend(l.entries);
        all.untrusted.extend(l.untrusted);
        for u in l.unreachable {
            if !all.unreachable.contains(&u) {
                all.unreachable.push(u);
            }
        }
    }
    Ok(all)
}

/// Finds one backup by id in any source.
pub async fn find(ctx: &Context, id: &str) -> Result<Option<Entry>, ContextError> {
    let listing = list(ctx, None).await?;
    Ok(listing.entries.into_iter().find(|e| e.id == id))
}

async fn list_store(
    store: &DynStore,
    source: &str,
    integrity: &IntegrityKey,
) -> Result<Vec<(String, Copy)>, String> {
    let objects = store
        .list(&format!("{source}/"))
        .await
        .map_err(|e| e.to_string())?;
    let mut folders: BTreeMap<String, (Option<u64>, bool)> = BTreeMap::new();
    for o in objects {
        let rest = &o.key[source.len() + 1..];
        let Some((id, name)) = rest.split_once('/') else {
            continue;
        };
        if !manifest::looks_like_backup_id(id) {
            continue;
        }
        let f = folders.entry(id.to_owned()).or_default();
        if name == DATA_OBJECT {
            f.0 = Some(o.size);
        } else if name == MANIFEST_OBJECT {
            f.1 = true;
        }
    }
    let mut out = Vec::new();
    for (id, (data_size, has_manifest)) in folders {
        if !has_manifest {
            continue; // incomplete: never listed
        }
        let key = manifest::object_key(source, &id, MANIFEST_OBJECT);
        let location = format!("{}:{key}", store.name());
        let copy = match store.get_bytes(&key, MAX_MANIFEST_BYTES).await {
            Err(e) => Copy {
                target: store.name().to_owned(),
                status: "invalid-manifest".into(),
                detail: Some(e.to_string()),
                manifest: None,
            },
            Ok(bytes) => match Manifest::parse(&bytes, &location, integrity) {
                Err(e) => Copy {
                    target: store.name().to_owned(),
                    status: match e {
                        ManifestError::Forged { .. } => "rejected-manifest".into(),
                        ManifestError::Invalid { .. } => "invalid-manifest".into(),
                    },
                    detail: Some(e.to_string()),
                    manifest: None,
                },
                Ok(m) if m.id != id || m.source != source => Copy {
                    target: store.name().to_owned(),
                    status: "invalid-manifest".into(),
                    detail: Some(format!(
                        "manifest {location} describes {}/{}, not {source}/{id}",
                        m.source, m.id
                    )),
                    manifest: None,
                },
                Ok(m) => {
                    let want = m.data().map(|d| d.size);
                    let (status, detail) = match data_size {
                        None => ("missing-data", Some(format!("{DATA_OBJECT} is missing"))),
                        Some(s) if Some(s) != want => (
                            "size-mismatch",
                            Some(format!(
                                "{DATA_OBJECT} has {s} bytes, the manifest says {}",
                                want.unwrap_or(0)
                            )),
                        ),
                        Some(_) => ("ok", None),
                    };
                    Copy {
                        target: store.name().to_owned(),
                        status: status.into(),
                        detail,
                        manifest: Some(m),
                    }
                }
            },
        };
        out.push((id, copy));
    }
    Ok(out)
}
